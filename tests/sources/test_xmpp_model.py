"""The message model on the XMPP source, on a memory transport: ids (XEP-0359), replies
(XEP-0461), threads, corrections (XEP-0308), reactions (XEP-0444), retractions
(XEP-0424, XEP-0425) and files by URL (XEP-0066) in and out, the room's reflection of
the bot's own messages, and the nick a room forces on the bot."""

from __future__ import annotations

from twisted.words.xish import domish

from botcore.event import Attachment, Event, EventType, Response
from botcore.sources.xmpp import model
from botcore.sources.xmpp import stanzas as st
from tests.sources.test_xmpp_source import ROOM, SourceTestCase

MUC_USER = "http://jabber.org/protocol/muc#user"


def parse(xml: str) -> list[domish.Element]:
    """The stanzas in ``xml`` (what the bot sent), parsed."""
    found: list[domish.Element] = []
    stream = domish.elementStream()
    stream.DocumentStartEvent = lambda root: None
    stream.ElementEvent = found.append
    stream.DocumentEndEvent = lambda: None
    stream.parse(b"<stream>" + xml.encode("utf-8"))
    return found


class ModelTestCase(SourceTestCase):
    def setUp(self) -> None:
        super().setUp()
        self.join_room(
            f"<presence from='{ROOM}/alice'><x xmlns='{MUC_USER}'>"
            "<item role='participant'/></x></presence>"
            f"<presence from='{ROOM}/bob'><x xmlns='{MUC_USER}'>"
            "<item role='participant'/></x></presence>"
        )
        self.sent()
        self.events.clear()

    def room_message(self, nick: str, inner: str, sid: str | None = None, own: str = "") -> None:
        stamp = f"<stanza-id xmlns='urn:xmpp:sid:0' by='{ROOM}' id='{sid}'/>" if sid else ""
        ident = f" id='{own}'" if own else ""
        self.feed(
            f"<message from='{ROOM}/{nick}' type='groupchat'{ident}>{inner}{stamp}</message>"
        )

    def sent_stanzas(self) -> list[domish.Element]:
        return parse(self.sent())

    def of(self, kind: str) -> list[Event]:
        return [e for e in self.events if e.type == kind]

    def bot_says(self, text: str, target: str = ROOM, **fields: object) -> Response:
        response = Response(text, target=target, source="xmpp", **fields)  # type: ignore[arg-type]
        self.source.send(response)
        return response

    def reflect(self, stanza: domish.Element, sid: str, nick: str = "testbot") -> None:
        """The room sends the bot's message back, with its stanza-id."""
        body = st.text_of(st.child(stanza, "body")) or ""
        self.room_message(
            nick,
            f"<body>{body}</body><origin-id xmlns='urn:xmpp:sid:0' id='{stanza['id']}'/>",
            sid,
            stanza["id"],
        )


class IdTests(ModelTestCase):
    def test_room_message_id_is_the_rooms_stanza_id(self) -> None:
        """In a room the id is the stanza-id by the room, never one claiming another by
        or the sender's own id."""
        self.room_message(
            "alice",
            "<body>hi</body><stanza-id xmlns='urn:xmpp:sid:0' by='evil@example.org' id='x'/>",
            "s-1",
            "a-1",
        )
        self.room_message(
            "alice",
            "<body>again</body><stanza-id xmlns='urn:xmpp:sid:0' by='evil@example.org' id='x'/>",
            own="a-2",
        )
        self.assertEqual([e.message_id for e in self.texts()], ["s-1", None])

    def test_private_message_id_is_origin_id_else_id(self) -> None:
        """In a chat the id is the sender's origin-id, else the stanza's id."""
        self.feed(
            "<message from='a@example.org/x' type='chat' id='m-1'><body>one</body>"
            "<origin-id xmlns='urn:xmpp:sid:0' id='o-1'/></message>"
            "<message from='a@example.org/x' type='chat' id='m-2'><body>two</body></message>"
        )
        self.assertEqual([e.message_id for e in self.texts()], ["o-1", "m-2"])

    def test_overlong_ids_are_no_ids(self) -> None:
        """A hostile megabyte-long id is ignored, not kept."""
        huge = "x" * 10_000
        self.room_message("alice", "<body>hi</body>", huge, huge)
        (event,) = self.texts()
        self.assertIsNone(event.message_id)


class ReplyAndThreadTests(ModelTestCase):
    def test_incoming_reply_and_thread(self) -> None:
        """An XEP-0461 reply is the event's reply_to, its quoted fallback taken out of the
        text; <thread> is its thread_id."""
        quoted = "> bob wrote: hello\n"
        self.room_message(
            "alice",
            f"<body>{quoted}testbot: ping</body>"
            "<reply xmlns='urn:xmpp:reply:0' to='room@conference.example.org/bob' id='s-0'/>"
            "<fallback xmlns='urn:xmpp:fallback:0' for='urn:xmpp:reply:0'>"
            f"<body start='0' end='{len(quoted)}'/></fallback><thread>t-1</thread>",
            "s-1",
        )
        (event,) = self.texts()
        self.assertEqual(
            (event.message.raw, event.reply_to, event.thread_id, event.message_id),
            ("testbot: ping", "s-0", "t-1", "s-1"),
        )

    def test_bad_fallback_ranges_change_nothing(self) -> None:
        """A fallback range outside the body, or not a number, is ignored."""
        self.room_message(
            "alice",
            "<body>hello</body><reply xmlns='urn:xmpp:reply:0' id='s-0'/>"
            "<fallback xmlns='urn:xmpp:fallback:0' for='urn:xmpp:reply:0'>"
            "<body start='0' end='999'/><body start='x' end='2'/></fallback>",
            "s-1",
        )
        self.assertEqual(self.texts()[0].message.raw, "hello")

    def test_reply_out_names_the_author_and_quotes(self) -> None:
        """The bot's reply in a room carries an origin-id, an XEP-0461 reply naming the
        message's author with a quoted fallback (XEP-0428 range), and the thread."""
        self.room_message("alice", "<body>testbot: ping\nsecond line</body>", "s-1")
        self.bot_says("alice: pong", reply_to="s-1", thread_id="t-1")
        (stanza,) = self.sent_stanzas()
        origin = st.child(stanza, "origin-id", st.NS_SID)
        self.assertEqual(origin["id"], stanza["id"])
        reply = st.child(stanza, "reply", st.NS_REPLY)
        self.assertEqual((reply["id"], reply["to"]), ("s-1", f"{ROOM}/alice"))
        body = str(st.child(stanza, "body"))
        self.assertEqual(body, "> testbot: ping\nalice: pong")
        fallback = st.child(stanza, "fallback", st.NS_FALLBACK)
        marked = st.child(fallback, "body")
        self.assertEqual((fallback["for"], marked["start"]), (st.NS_REPLY, "0"))
        self.assertEqual(body[int(marked["end"]) :], "alice: pong")
        self.assertEqual(str(st.child(stanza, "thread")), "t-1")

    def test_long_reply_only_first_piece_answers(self) -> None:
        """A reply split into several messages: the first is the reply, all are in the
        thread."""
        self.source.message_length = 100
        self.bot_says(" ".join(["word"] * 60), reply_to="unknown", thread_id="t")
        stanzas = self.sent_stanzas()
        self.assertGreater(len(stanzas), 1)
        replies = [st.child(s, "reply", st.NS_REPLY) is not None for s in stanzas]
        self.assertEqual(replies, [True] + [False] * (len(stanzas) - 1))
        self.assertTrue(all(str(st.child(s, "thread")) == "t" for s in stanzas))
        # Nothing known of the message replied to: no 'to' and no quote.
        self.assertIsNone(st.child(stanzas[0], "reply", st.NS_REPLY).getAttribute("to"))
        self.assertIsNone(st.child(stanzas[0], "fallback", st.NS_FALLBACK))


OOB = "<x xmlns='jabber:x:oob'><url>{}</url>{}</x>"
CAT = "https://up.example.org/abc/cat.png"


class OutOfBandTests(ModelTestCase):
    def test_upload_shared_as_its_url(self) -> None:
        """A file shared as XEP-0363 clients do (the URL as the body and in an OOB
        <x>) is a message with an attachment named by its URL's last segment, and no
        text besides."""
        self.room_message("alice", f"<body>{CAT}</body>" + OOB.format(CAT, ""), "s-1")
        (event,) = self.texts()
        self.assertEqual(
            (event.type, event.message.raw, event.message.attachments),
            (EventType.MESSAGE, "", (Attachment(CAT, "cat.png"),)),
        )

    def test_caption_description_and_no_body(self) -> None:
        """Other lines of the body are the text; <desc> names the file; an OOB without
        a body is still a message; only http(s) URLs are taken, at most ten."""
        self.room_message(
            "alice", f"<body>look\n{CAT}</body>" + OOB.format(CAT, "<desc>My cat</desc>"), "s-1"
        )
        self.room_message("bob", OOB.format("https://x.example/f%20g.txt", ""), "s-2")
        self.room_message(
            "bob", "<body>hi</body>" + OOB.format("aesgcm://x.example/k#key", "")
            + OOB.format("javascript:alert(1)", "") + OOB.format("https://a b", ""), "s-3"
        )  # fmt: skip
        self.room_message("bob", "<body>many</body>" + OOB.format(CAT, "") * 20, "s-4")
        first, second, third, fourth = self.texts()
        self.assertEqual(
            (first.message.raw, first.message.attachments), ("look", (Attachment(CAT, "My cat"),))
        )
        self.assertEqual(
            (second.message.raw, second.message.attachments),
            ("", (Attachment("https://x.example/f%20g.txt", "f g.txt"),)),
        )
        self.assertEqual((third.message.raw, third.message.attachments), ("hi", ()))
        self.assertEqual(len(fourth.message.attachments), model.MAX_OOB)

    def test_sent_with_oob_and_the_url_in_the_body(self) -> None:
        """The bot's reply with files: their URLs in the body (alone when there is no
        text, so clients show the file inline) and one OOB <x> each."""
        self.bot_says("", attachments=(Attachment(CAT, "cat.png"),))
        self.bot_says("two files", attachments=(Attachment(CAT), Attachment(CAT + "?2", "b")))
        first, second = self.sent_stanzas()
        self.assertEqual(str(st.child(first, "body")), CAT)
        (x,) = first.elements(st.NS_OOB, "x")
        self.assertEqual(
            (str(st.child(x, "url", st.NS_OOB)), str(st.child(x, "desc", st.NS_OOB))),
            (CAT, "cat.png"),
        )
        self.assertEqual(str(st.child(second, "body")), f"two files\n{CAT}\n{CAT}?2")
        urls = [str(st.child(x, "url")) for x in second.elements(st.NS_OOB, "x")]
        self.assertEqual(urls, [CAT, CAT + "?2"])
        self.assertIsNone(st.child(next(second.elements(st.NS_OOB, "x")), "desc"))
        self.assertIn("attachments", self.source.supports)


class ReflectionTests(ModelTestCase):
    def test_reflection_gives_the_rooms_id_and_is_no_event(self) -> None:
        """The room's reflection of the bot's message is not an event; its stanza-id is
        remembered as the message's network id, found from the Response's id."""
        response = self.bot_says("hello room")
        (stanza,) = self.sent_stanzas()
        self.assertEqual(self.source.sent_messages(ROOM), [])
        self.reflect(stanza, "s-9")
        self.assertEqual(self.events, [])
        (sent,) = self.source.sent_messages(ROOM)
        self.assertEqual((sent.message_id, sent.text), ("s-9", "hello room"))
        self.assertEqual(self.source.network_id(response.id), "s-9")

    def test_own_message_known_by_origin_id_under_another_nick(self) -> None:
        """A reflection from a nick the bot no longer has (a nick change in flight) is
        still the bot's own, known by its origin-id."""
        self.bot_says("hello")
        (stanza,) = self.sent_stanzas()
        self.reflect(stanza, "s-9", nick="oldnick")
        self.assertEqual(self.events, [])
        self.assertEqual(len(self.source.sent_messages(ROOM)), 1)

    def test_private_message_remembered_at_once(self) -> None:
        """In a chat the bot's own id is the network id, remembered as it is sent."""
        response = self.bot_says("hi", target="a@example.org/x")
        (stanza,) = self.sent_stanzas()
        self.assertEqual(stanza["type"], "chat")
        self.assertEqual(self.source.network_id(response.id), stanza["id"])


class CorrectionTests(ModelTestCase):
    def test_incoming_correction_is_an_edit_of_the_rooms_id(self) -> None:
        """A correction names the sender's own id; the EDIT event refers to the message's
        id in the room (its stanza-id), with the new text."""
        self.room_message("alice", "<body>helo</body>", "s-1", "a-1")
        self.room_message(
            "alice",
            "<body>hello</body><replace xmlns='urn:xmpp:message-correct:0' id='a-1'/>",
            "s-2",
            "a-2",
        )
        (edit,) = self.of(EventType.EDIT)
        self.assertEqual(
            (edit.message.raw, edit.refers_to, edit.data["correction_id"]),
            ("hello", "s-1", "s-2"),
        )
        self.assertEqual(len(self.texts()), 1)

    def test_correction_of_someone_elses_message_ignored(self) -> None:
        """Bob cannot correct Alice's message."""
        self.room_message("alice", "<body>hi</body>", "s-1", "a-1")
        self.room_message(
            "bob", "<body>forged</body><replace xmlns='urn:xmpp:message-correct:0' id='a-1'/>"
        )
        self.assertEqual(self.of(EventType.EDIT), [])

    def test_private_correction(self) -> None:
        """In a chat the correction refers to the corrected message's id."""
        self.feed(
            "<message from='a@example.org/x' type='chat' id='m-1'><body>a</body></message>"
            "<message from='a@example.org/x' type='chat' id='m-2'><body>b</body>"
            "<replace xmlns='urn:xmpp:message-correct:0' id='m-1'/></message>"
        )
        (edit,) = self.of(EventType.EDIT)
        self.assertEqual((edit.refers_to, edit.addressed, edit.public), ("m-1", True, False))

    def test_bot_corrects_its_own_message(self) -> None:
        """An edit of the bot's room message (by the room's id) is an XEP-0308 correction
        naming the bot's own id of it."""
        self.bot_says("typo")
        (first,) = self.sent_stanzas()
        self.reflect(first, "s-9")
        self.bot_says("fixed", kind="edit", refers_to="s-9")
        (correction,) = self.sent_stanzas()
        self.assertEqual(st.child(correction, "replace", st.NS_CORRECT)["id"], first["id"])
        self.assertEqual(str(st.child(correction, "body")), "fixed")
        self.assertNotEqual(correction["id"], first["id"])
        # Its reflection is the bot's own: no event.
        self.reflect(correction, "s-10")
        self.assertEqual(self.events, [])

    def test_edit_of_unknown_message_follows_edit_fallback(self) -> None:
        """An edit of a message the bot does not remember sending is resent as a new
        message (edit_fallback = resend), or dropped (none)."""
        self.bot_says("again", kind="edit", refers_to="nobody-knows")
        (stanza,) = self.sent_stanzas()
        self.assertIsNone(st.child(stanza, "replace", st.NS_CORRECT))
        self.assertEqual(str(st.child(stanza, "body")), "again")
        self.source.edit_fallback = "none"
        self.bot_says("again", kind="edit", refers_to="nobody-knows")
        self.assertEqual(self.sent(), "")


class ReactionTests(ModelTestCase):
    def test_reactions_in_added_and_removed(self) -> None:
        """XEP-0444 sends the whole set: new keys are reactions, missing ones removed."""
        reacts = "<reactions xmlns='urn:xmpp:reactions:0' id='s-1'>{}</reactions>"
        self.room_message("alice", reacts.format("<reaction>👍</reaction>"), "s-2")
        self.room_message(
            "alice", reacts.format("<reaction>❤</reaction><reaction>❤</reaction>"), "s-3"
        )
        self.room_message("alice", reacts.format(""), "s-4")
        seen = [
            (e.reaction, e.refers_to, e.data["removed"], e.addressed)
            for e in self.of(EventType.REACTION)
        ]
        self.assertEqual(
            seen,
            [
                ("👍", "s-1", False, False),
                ("❤", "s-1", False, False),
                ("👍", "s-1", True, False),
                ("❤", "s-1", True, False),
            ],
        )
        self.assertEqual(self.texts(), [])

    def test_hostile_reactions_bounded(self) -> None:
        """Hundreds of keys, or absurdly long ones, are cut to what the source keeps."""
        keys = "".join(f"<reaction>{i}</reaction>" for i in range(500))
        self.room_message(
            "alice",
            f"<reactions xmlns='urn:xmpp:reactions:0' id='s-1'>{keys}"
            f"<reaction>{'x' * 1000}</reaction></reactions>",
        )
        self.assertEqual(len(self.of(EventType.REACTION)), model.MAX_REACTIONS)

    def test_bot_reacts_with_its_whole_set(self) -> None:
        """The bot's second reaction to a message sends both keys, without a body."""
        self.bot_says("👍", kind="reaction", refers_to="s-1")
        self.bot_says("🎉", kind="reaction", refers_to="s-1")
        _first, second = self.sent_stanzas()
        self.assertIsNone(st.child(second, "body"))
        self.assertEqual(second["type"], "groupchat")
        found = st.child(second, "reactions", st.NS_REACTIONS)
        self.assertEqual(found["id"], "s-1")
        self.assertEqual([str(r) for r in found.elements(st.NS_REACTIONS, "reaction")],
                         ["👍", "🎉"])  # fmt: skip
        self.assertIsNotNone(st.child(second, "store", st.NS_HINTS))


class RetractionTests(ModelTestCase):
    def test_retraction_in(self) -> None:
        """A retraction by the author is a DELETE of the room's id (current form, and
        the older apply-to form naming the origin-id); by someone else it is ignored."""
        self.room_message("alice", "<body>oops</body>", "s-1", "a-1")
        self.room_message("bob", "<retract xmlns='urn:xmpp:message-retract:1' id='s-1'/>")
        self.assertEqual(self.of(EventType.DELETE), [])
        self.room_message("alice", "<retract xmlns='urn:xmpp:message-retract:1' id='s-1'/>")
        self.room_message(
            "alice",
            "<apply-to xmlns='urn:xmpp:fasten:0' id='a-1'>"
            "<retract xmlns='urn:xmpp:message-retract:0'/></apply-to>",
        )
        self.assertEqual([e.refers_to for e in self.of(EventType.DELETE)], ["s-1", "s-1"])

    def test_moderation_in(self) -> None:
        """A moderator's retraction, announced by the room, is a DELETE marked moderated."""
        self.room_message("alice", "<body>spam</body>", "s-1", "a-1")
        self.feed(
            f"<message from='{ROOM}' type='groupchat'>"
            "<retract xmlns='urn:xmpp:message-retract:1' id='s-1'>"
            f"<moderated xmlns='urn:xmpp:message-moderate:1' by='{ROOM}/bob'/>"
            "<reason>spam</reason></retract></message>"
        )
        (delete,) = self.of(EventType.DELETE)
        self.assertEqual(
            (delete.refers_to, delete.who.nick, delete.data["moderated"], delete.data["reason"]),
            ("s-1", "bob", True, "spam"),
        )

    def test_bot_retracts_its_own_messages_only(self) -> None:
        """The bot retracts its room message by the room's id (and the older form by its
        own), with a fallback body; a message it did not send is not retracted."""
        self.bot_says("mistake")
        (first,) = self.sent_stanzas()
        self.reflect(first, "s-9")
        self.bot_says("", kind="delete", refers_to="s-9")
        (retraction,) = self.sent_stanzas()
        self.assertEqual(st.child(retraction, "retract", st.NS_RETRACT)["id"], "s-9")
        self.assertEqual(st.child(retraction, "apply-to", st.NS_FASTEN)["id"], first["id"])
        self.assertEqual(str(st.child(retraction, "body")), model.RETRACTION_FALLBACK)
        self.bot_says("", kind="delete", refers_to="s-1")
        self.assertEqual(self.sent(), "")

    def test_private_retraction_by_own_id(self) -> None:
        """In a chat the bot's retraction names its own id."""
        response = self.bot_says("oops", target="a@example.org/x")
        (first,) = self.sent_stanzas()
        self.bot_says("", kind="delete", refers_to=self.source.network_id(response.id),
                      target="a@example.org/x")  # fmt: skip
        (retraction,) = self.sent_stanzas()
        self.assertEqual(st.child(retraction, "retract", st.NS_RETRACT)["id"], first["id"])


class NickTests(SourceTestCase):
    def test_forced_nick_is_the_sources_nick(self) -> None:
        """After a conflict the room gives the bot nick_: source.nick says so and the bot
        answers to it (and to its wanted nick)."""
        self.sent()
        self.feed(
            f"<presence from='{ROOM}/testbot' type='error'><error type='cancel'>"
            "<conflict xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></presence>"
            f"<presence from='{ROOM}/testbot_'><x xmlns='{MUC_USER}'>"
            "<item role='participant'/><status code='110'/></x></presence>"
        )
        self.assertEqual(self.source.nick, "testbot_")
        self.assertEqual(self.source.names()[:2], ("testbot_", "testbot"))
        # Its own echo under that nick is no event.
        self.feed(f"<message from='{ROOM}/testbot_' type='groupchat'><body>x</body></message>")
        self.assertEqual(self.texts(), [])


class NickTargetTests(ModelTestCase):
    def test_bare_nick_target_is_the_rooms_occupant(self) -> None:
        """A reply to a bare nick (a plugin answering privately) goes to that occupant
        through the room; to a nick nobody has it is dropped, never sent to a server
        named like the nick."""
        self.bot_says("psst", target="alice")
        (stanza,) = self.sent_stanzas()
        self.assertEqual((stanza["to"], stanza["type"]), (f"{ROOM}/alice", "chat"))
        self.bot_says("psst", target="nobody")
        self.assertEqual(self.sent(), "")


class AliasTests(ModelTestCase):
    def test_correction_by_stanza_id_when_origin_id_differs(self) -> None:
        """A chat message whose id attribute differs from its origin-id is known by the
        origin-id; a correction naming its id attribute still finds it."""
        self.feed(
            "<message from='a@example.org/x' type='chat' id='m-1'><body>a</body>"
            "<origin-id xmlns='urn:xmpp:sid:0' id='o-1'/></message>"
            "<message from='a@example.org/x' type='chat' id='m-2'><body>b</body>"
            "<replace xmlns='urn:xmpp:message-correct:0' id='m-1'/></message>"
        )
        (edit,) = self.of(EventType.EDIT)
        self.assertEqual(edit.refers_to, "o-1")

    def test_own_retraction_reflected_is_not_remembered_as_a_message(self) -> None:
        """The room's reflection of the bot's retraction (which has a fallback body) is
        not taken for a message the bot could later correct."""
        self.bot_says("mistake")
        (first,) = self.sent_stanzas()
        self.reflect(first, "s-9")
        self.bot_says("", kind="delete", refers_to="s-9")
        (retraction,) = self.sent_stanzas()
        self.feed(
            f"<message from='{ROOM}/testbot' type='groupchat' id='{retraction['id']}'>"
            f"<body>{model.RETRACTION_FALLBACK}</body>"
            "<retract xmlns='urn:xmpp:message-retract:1' id='s-9'/>"
            f"<stanza-id xmlns='urn:xmpp:sid:0' by='{ROOM}' id='s-10'/></message>"
        )
        self.assertNotIn((ROOM, "s-10"), self.source.ledger.own)
        self.assertEqual(self.events, [])


class DiscoTests(ModelTestCase):
    def test_features_announced(self) -> None:
        """Asked (XEP-0030), the bot says it is a bot that knows replies, corrections,
        reactions and retractions; a node it has not is item-not-found."""
        self.feed(
            "<iq type='get' id='d1' from='a@example.org/x'>"
            "<query xmlns='http://jabber.org/protocol/disco#info'/></iq>"
        )
        (answer,) = self.sent_stanzas()
        self.assertEqual((answer["type"], answer["id"], answer["to"]),
                         ("result", "d1", "a@example.org/x"))  # fmt: skip
        query = st.child(answer, "query", st.NS_DISCO_INFO)
        features = {f["var"] for f in query.elements(st.NS_DISCO_INFO, "feature")}
        for wanted in (st.NS_REPLY, st.NS_CORRECT, st.NS_REACTIONS, st.NS_RETRACT, st.NS_OOB):
            self.assertIn(wanted, features)
        self.assertEqual(st.child(query, "identity")["type"], "bot")
        self.feed(
            "<iq type='get' id='d2' from='a@example.org/x'>"
            "<query xmlns='http://jabber.org/protocol/disco#info' node='x'/></iq>"
        )
        self.assertIn("item-not-found", self.sent())


OCCUPANT_ID = "<occupant-id xmlns='urn:xmpp:occupant-id:0' id='{}'/>"


class OccupantIdTests(SourceTestCase):
    """XEP-0421: where the room stamps occupants, authorship follows the occupant-id."""

    def setUp(self) -> None:
        super().setUp()
        self.sent()
        self.feed(
            f"<presence from='{ROOM}/testbot'>{OCCUPANT_ID.format('me')}"
            f"<x xmlns='{MUC_USER}'><item role='participant'/><status code='110'/></x>"
            "</presence>"
        )

    def say(self, nick: str, occupant: str, inner: str, sid: str, own: str) -> None:
        self.feed(
            f"<message from='{ROOM}/{nick}' type='groupchat' id='{own}'>{inner}"
            f"{OCCUPANT_ID.format(occupant)}"
            f"<stanza-id xmlns='urn:xmpp:sid:0' by='{ROOM}' id='{sid}'/></message>"
        )

    def edits(self) -> list[str | None]:
        return [e.refers_to for e in self.events if e.type == EventType.EDIT]

    def test_newcomer_with_the_nick_cannot_correct(self) -> None:
        """Someone else who takes a departed occupant's nick cannot correct their
        message; the same person under a new nick can."""
        fix = "<body>fixed</body><replace xmlns='urn:xmpp:message-correct:0' id='a-1'/>"
        self.say("alice", "A", "<body>helo</body>", "s-1", "a-1")
        self.say("alice", "C", fix, "s-2", "c-1")
        self.assertEqual(self.edits(), [])
        self.say("alice2", "A", fix, "s-3", "a-2")
        self.assertEqual(self.edits(), ["s-1"])

    def test_not_trusted_where_the_room_gives_none(self) -> None:
        """In a room that gave the bot no occupant-id, one written by a client means
        nothing: bob cannot correct alice's message by claiming hers."""
        self.feed(
            f"<presence from='{ROOM}/testbot'><x xmlns='{MUC_USER}'>"
            "<item role='participant'/><status code='110'/></x></presence>"
        )
        self.assertFalse(self.connection.rooms[ROOM].occupant_ids)
        self.say("alice", "A", "<body>helo</body>", "s-1", "a-1")
        self.say(
            "bob",
            "A",
            "<body>forged</body><replace xmlns='urn:xmpp:message-correct:0' id='a-1'/>",
            "s-2",
            "b-1",
        )
        self.assertEqual(self.edits(), [])
