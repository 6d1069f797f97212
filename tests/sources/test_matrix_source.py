"""The Matrix source on recorded homeserver answers and a Clock: login by password and
by a kept token, what is kept in the store folder, the sync loop (history skipped on a
new login, the position kept, backoff, 429's retry_after_ms), events with their ids,
replies, threads, edits, reactions and redactions both ways, invites by policy, and the
content conversions (HTML, reply fallbacks, mention pills, files and their URLs)."""

from __future__ import annotations

import json
import os
import shutil
import stat
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.error import ConnectionRefusedError
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase
from zope.interface.verify import verifyObject

from botcore.event import Attachment, Event, EventType, Response
from botcore.interfaces import IChannelSource
from botcore.sources.matrix import MatrixSource, MediaURLOption, RoomListOption
from botcore.sources.matrix import content as mc
from botcore.sources.matrix.client import MatrixClient, without_token
from botcore.testing import StubContext

HS = "http://hs.example"
BOT = "@bot:example.org"
ALICE = "@alice:example.org"
ROOM = "!room:example.org"
DM = "!dm:example.org"


@dataclass
class Request:
    method: str
    url: str
    headers: dict[str, str]
    body: bytes | None
    deferred: Deferred[tuple[int, bytes]]

    @property
    def path(self) -> str:
        return self.url[len(HS) :]

    @property
    def json(self) -> Any:
        return json.loads(self.body) if self.body else None


class Recorded:
    """A homeserver that answers only when the test says: requests wait in ``pending``."""

    def __init__(self) -> None:
        self.pending: list[Request] = []
        self.done: list[Request] = []

    def __call__(
        self, method: str, url: str, headers: dict[str, str], body: bytes | None
    ) -> Deferred[tuple[int, bytes]]:
        d: Deferred[tuple[int, bytes]] = Deferred()
        self.pending.append(Request(method, url, headers, body, d))
        return d

    def take(self, fragment: str) -> Request:
        for request in self.pending:
            if fragment in request.path:
                self.pending.remove(request)
                self.done.append(request)
                return request
        raise AssertionError(f"no pending request to {fragment}: {[r.path for r in self.pending]}")

    def answer(self, fragment: str, body: Any, status: int = 200) -> Request:
        request = self.take(fragment)
        request.deferred.callback((status, json.dumps(body).encode()))
        return request

    def fail(self, fragment: str, error: Exception) -> Request:
        request = self.take(fragment)
        request.deferred.errback(error)
        return request


def message(event_id: str, body: str, sender: str = ALICE, **content: Any) -> dict[str, Any]:
    return {
        "type": "m.room.message",
        "event_id": event_id,
        "sender": sender,
        "origin_server_ts": 1_700_000_000_000,
        "content": {"msgtype": "m.text", "body": body, **content},
    }


def member(
    user: str, membership: str, sender: str | None = None, **content: Any
) -> dict[str, Any]:
    return {
        "type": "m.room.member",
        "event_id": f"$m-{user}-{membership}",
        "sender": sender or user,
        "state_key": user,
        "origin_server_ts": 1_700_000_000_000,
        "content": {"membership": membership, **content},
    }


def sync(batch: str, rooms: dict[str, list[dict[str, Any]]] | None = None, **extra: Any) -> Any:
    join = {
        room: {"timeline": {"events": events, "limited": False}, "state": {"events": []}}
        for room, events in (rooms or {}).items()
    }
    return {"next_batch": batch, "rooms": {"join": join, **extra}}


class MatrixSourceTestCase(SynchronousTestCase):
    options: dict[str, Any] = {}

    def setUp(self) -> None:
        self.clock = Clock()
        self.directory = Path(tempfile.mkdtemp(prefix="botcore-matrix-unit-"))
        self.addCleanup(shutil.rmtree, self.directory, True)
        self.hs = Recorded()
        self.events: list[Event] = []
        self.source = self.make()

    def make(self, **options: Any) -> MatrixSource:
        bot = StubContext(reactor=self.clock, name="testbot")
        config = {
            "homeserver": HS,
            "user_id": BOT,
            "password": "secret",
            "store": str(self.directory / "store"),
            "encryption": False,
            "rooms": [ROOM],
            "invites": "list",
            "invite_from": [ALICE, "friends.example"],
            **self.options,
            **options,
        }
        source = MatrixSource("matrix", bot, config, reactor=self.clock, requester=self.hs,
                              jitter=lambda: 1.0)  # fmt: skip
        source.setup()
        source.emit = self.events.append  # type: ignore[method-assign]
        return source

    def tearDown(self) -> None:
        if self.source.running:
            d = self.source.stopService()
            self.successResultOf(d)
        self.assertEqual([c for c in self.clock.getDelayedCalls() if c.active()], [])

    def log_in(self, first_sync: Any = None) -> None:
        """Start the source and answer its login, profile and first sync."""
        self.source.startService()
        login = self.hs.answer(
            "/login",
            {"user_id": BOT, "access_token": "tok1", "device_id": "DEV1"},
        )
        self.assertEqual(login.json["password"], "secret")
        self.hs.answer("/displayname", {"displayname": "Testbot"})
        self.hs.answer("/sync", first_sync or sync("b1"))
        self.hs.answer("/join/", {"room_id": ROOM})

    def session(self) -> dict[str, Any]:
        with open(self.directory / "store" / "session.json", encoding="utf-8") as handle:
            data: dict[str, Any] = json.load(handle)
        return data

    def texts(self) -> list[Event]:
        return [e for e in self.events if e.type in EventType.TEXT]


class RoomOptionTests(SynchronousTestCase):
    def test_room_ids_and_aliases(self) -> None:
        """Room ids with a server part, the opaque ids of room version 12 (no server
        part, as Synapse creates them) and aliases are rooms; anything else is refused
        with the shapes expected."""
        option = RoomListOption("rooms", [])
        rooms = ["!abc:example.org", "!7lzVKgzuxMBOQkBS6NLj8OtFirNudyZPskZTis6Yf4Y", "#dev:x.org"]
        self.assertEqual(option.parse(", ".join(rooms)), rooms)
        for bad in ("#dev", "#:x.org", "!", "!:x.org", "!abc:", "dev", "@bob:x.org", "!a:x !b:y"):
            with self.assertRaises(ValueError) as caught:
                option.parse(bad)
            self.assertIn("'!id'", str(caught.exception))


class LoginTests(MatrixSourceTestCase):
    def test_password_login_kept_in_the_store(self) -> None:
        """A password login keeps token, device and sync position in session.json (0600
        in a 0700 folder); the bot's names are its display name, user id and localpart."""
        self.log_in()
        self.assertEqual(self.source.state, "connected")
        data = self.session()
        self.assertEqual(
            (data["access_token"], data["device_id"], data["next_batch"]), ("tok1", "DEV1", "b1")
        )
        path = self.directory / "store" / "session.json"
        self.assertEqual(stat.S_IMODE(os.stat(path).st_mode), 0o600)
        self.assertEqual(stat.S_IMODE(os.stat(path.parent).st_mode), 0o700)
        self.assertEqual(self.source.names()[:3], ("Testbot", BOT, "bot"))
        sync_request = self.hs.pending[0]
        self.assertIn("since=b1", sync_request.path)
        self.assertEqual(sync_request.headers["Authorization"], "Bearer tok1")
        self.assertNotIn("access_token", sync_request.path)

    def test_kept_token_resumed_and_position_kept(self) -> None:
        """A restart takes up the kept token (whoami, no login) and syncs from the kept
        position with full state: what came before is not processed again."""
        self.log_in()
        self.hs.answer("/sync", sync("b2", {ROOM: [message("$1", "testbot: hi")]}))
        self.assertEqual([e.message_id for e in self.texts()], ["$1"])
        self.successResultOf(self.source.stopService())
        self.hs.pending.clear()
        self.hs.done.clear()
        self.source = self.make()
        self.source.startService()
        whoami = self.hs.answer("/whoami", {"user_id": BOT, "device_id": "DEV1"})
        self.assertEqual(whoami.headers["Authorization"], "Bearer tok1")
        self.hs.answer("/displayname", {"displayname": "Testbot"})
        first = self.hs.take("/sync")
        self.assertIn("since=b2", first.path)
        self.assertIn("full_state=true", first.path)
        self.assertEqual([r.path for r in self.hs.done if "/login" in r.path], [])

    def test_history_of_a_new_login_not_answered(self) -> None:
        """The first sync of a new login brings old messages: they are not processed."""
        self.log_in(sync("b1", {ROOM: [message("$old", "testbot: echo old")]}))
        self.assertEqual(self.texts(), [])

    def test_refused_token_logs_in_again(self) -> None:
        """M_UNKNOWN_TOKEN on sync: the kept token is dropped and the password logs in
        again on the same device, from the same sync position."""
        self.log_in()
        self.hs.answer("/sync", {"errcode": "M_UNKNOWN_TOKEN", "error": "gone"}, status=401)
        self.assertIsNone(self.session()["access_token"])
        self.clock.advance(self.source.retry_delay(1))
        login = self.hs.answer(
            "/login", {"user_id": BOT, "access_token": "tok2", "device_id": "DEV1"}
        )
        self.assertEqual(login.json["device_id"], "DEV1")
        self.hs.answer("/displayname", {"displayname": "Testbot"})
        self.assertEqual((self.session()["access_token"], self.session()["next_batch"]),
                         ("tok2", "b1"))  # fmt: skip

    def test_wrong_password_gives_up(self) -> None:
        """M_FORBIDDEN at login: logged and the source fails, no retry loop."""
        self.source.startService()
        self.hs.answer("/login", {"errcode": "M_FORBIDDEN", "error": "bad"}, status=403)
        self.assertEqual(self.source.state, "failed")
        self.assertEqual(self.hs.pending, [])


class SyncLoopTests(MatrixSourceTestCase):
    def test_backoff_after_failures_then_recovery(self) -> None:
        """A homeserver that is down is retried after a growing delay; once it answers
        the source is connected again and says so."""
        self.log_in()
        self.hs.fail("/sync", ConnectionRefusedError())
        self.assertEqual(self.source.state, "reconnecting")
        self.assertEqual(self.hs.pending, [])
        self.clock.advance(self.source.retry_delay(1))
        self.hs.fail("/sync", ConnectionRefusedError())
        self.clock.advance(self.source.retry_delay(2) - 0.01)
        self.assertEqual(self.hs.pending, [])
        self.clock.advance(0.01)
        self.hs.answer("/sync", sync("b2"))
        self.assertEqual(self.source.state, "connected")
        states = [e.data["state"] for e in self.events if e.type == EventType.SOURCE]
        self.assertEqual(states, ["connected", "disconnected", "connected"])

    def test_rate_limit_waits_retry_after_ms(self) -> None:
        """A 429 is asked again only after its retry_after_ms."""
        self.log_in()
        self.hs.answer(
            "/sync", {"errcode": "M_LIMIT_EXCEEDED", "retry_after_ms": 2500}, status=429
        )
        self.clock.advance(2.4)
        self.assertEqual(self.hs.pending, [])
        self.clock.advance(0.1)
        self.hs.answer("/sync", sync("b2"))
        self.assertEqual(self.source.state, "connected")
        self.assertEqual(self.source.failures, 0)

    def test_request_timeout_bounded(self) -> None:
        """A sync that never answers is dropped after sync_timeout + request_timeout."""
        self.log_in()
        self.clock.advance(self.source.sync_timeout + self.source.request_timeout)
        self.assertEqual(self.source.state, "reconnecting")


class IncomingTests(MatrixSourceTestCase):
    def setUp(self) -> None:
        super().setUp()
        self.log_in()

    def feed(self, room: str, *events: dict[str, Any]) -> str:
        """Answer the pending sync with ``events`` in ``room``; the new sync position."""
        batch = f"b{len(self.hs.done)}"
        self.hs.answer("/sync", sync(batch, {room: list(events)}))
        return batch

    def test_room_message_with_ids(self) -> None:
        """A room message is public, carries its event id, reply and sender's user id,
        which is also the verified identity; the bot's own events are not processed."""
        self.feed(
            ROOM,
            message("$1", "> <@x:y> quoted\n\ntestbot: hi",
                    **{"m.relates_to": {"m.in_reply_to": {"event_id": "$0"}}}),
            message("$2", "mine", sender=BOT),
        )  # fmt: skip
        [event] = self.texts()
        self.assertEqual((event.channel, event.public, event.message_id), (ROOM, True, "$1"))
        self.assertEqual(event.reply_to, "$0")
        self.assertEqual(event.message.raw if event.message else None, "testbot: hi")
        self.assertEqual(event.who.id, ALICE)
        self.assertEqual(self.source.verified_identity(event), ALICE)
        self.assertTrue(self.source.is_channel(ROOM))

    def test_html_pill_addresses_the_bot(self) -> None:
        """A mention pill of the bot's user id addresses it; HTML becomes plain text."""
        self.feed(
            ROOM,
            message("$1", "Testbot: echo x", format=mc.HTML,
                    formatted_body=f'<a href="https://matrix.to/#/{BOT}">Testbot</a>: '
                                   "echo <b>x</b>"),
        )  # fmt: skip
        [event] = self.texts()
        self.assertTrue(event.addressed)
        self.assertEqual(event.message.raw if event.message else None, "Testbot: echo x")

    def test_image_is_a_message_with_an_attachment(self) -> None:
        """An m.image is a message whose attachment links the file over HTTP (the
        homeserver's download URL), named, typed and sized as its info says; its text
        is empty (the body only names the file)."""
        self.feed(
            ROOM,
            message("$1", "cat.png", msgtype="m.image", url="mxc://example.org/AbC",
                    info={"mimetype": "image/png", "size": 70}),
        )  # fmt: skip
        [event] = self.texts()
        assert event.message is not None
        self.assertEqual(event.type, EventType.MESSAGE)
        self.assertEqual(event.message.raw, "")
        self.assertEqual(
            event.message.attachments,
            (Attachment(f"{HS}/_matrix/media/v3/download/example.org/AbC", "cat.png",
                        "image/png", 70),),
        )  # fmt: skip

    def test_edit_reaction_redaction_and_thread(self) -> None:
        """Edits, reactions (and their redaction), redactions and thread messages become
        the message model's events."""
        self.feed(
            ROOM,
            message("$e", "* new", **{"m.new_content": {"msgtype": "m.text", "body": "new"},
                                      "m.relates_to": {"rel_type": "m.replace",
                                                       "event_id": "$1"}}),
            {"type": "m.reaction", "event_id": "$r", "sender": ALICE,
             "content": {"m.relates_to": {"rel_type": "m.annotation", "event_id": "$1",
                                          "key": "👍"}}},
            {"type": "m.room.redaction", "event_id": "$x", "sender": ALICE, "redacts": "$r",
             "content": {}},
            {"type": "m.room.redaction", "event_id": "$y", "sender": ALICE, "redacts": "$1",
             "content": {}},
            message("$t", "in thread", **{"m.relates_to": {"rel_type": "m.thread",
                                                           "event_id": "$root",
                                                           "is_falling_back": True,
                                                           "m.in_reply_to": {"event_id": "$z"}}}),
        )  # fmt: skip
        kinds = [(e.type, e.refers_to, e.reaction, e.data.get("removed")) for e in self.events
                 if e.type in (EventType.EDIT, EventType.REACTION, EventType.DELETE)]  # fmt: skip
        self.assertEqual(
            kinds,
            [
                (EventType.EDIT, "$1", None, None),
                (EventType.REACTION, "$1", "👍", None),
                (EventType.REACTION, "$1", "👍", True),
                (EventType.DELETE, "$1", None, None),
            ],
        )
        [threaded] = self.texts()
        self.assertEqual((threaded.thread_id, threaded.reply_to), ("$root", None))

    def test_hostile_events_break_nothing(self) -> None:
        """Events with missing or mistyped fields are skipped; the next message is still
        processed and the sync position moves on."""
        batch = self.feed(
            ROOM,
            {"type": "m.room.message", "event_id": "$a", "sender": ALICE, "content": []},
            {"type": "m.room.message", "event_id": "$b", "content": {"body": "x"}},
            {"type": "m.room.member", "event_id": "$c", "sender": ALICE, "state_key": 5,
             "content": {"membership": "join"}},
            {"type": "m.reaction", "event_id": "$d", "sender": ALICE,
             "content": {"m.relates_to": "up"}},
            {"type": "m.room.redaction", "event_id": "$e", "sender": ALICE, "content": {}},
            message("$f", "testbot: still here", format=mc.HTML, formatted_body="<b><i>"),
        )  # fmt: skip
        self.assertEqual([e.message_id for e in self.events if e.type in EventType.TEXT], ["$f"])
        self.assertEqual(self.session()["next_batch"], batch)

    def test_membership_changes_are_state_events(self) -> None:
        """Members joining, leaving and kicked become state events."""
        self.feed(
            ROOM,
            member(ALICE, "join"),
            member(ALICE, "leave"),
            member("@carol:example.org", "leave", sender=ALICE),
        )
        self.assertEqual(
            [e.data["kind"] for e in self.events if e.type == EventType.STATE],
            ["join", "part", "part"],
        )

    def test_invites_by_policy(self) -> None:
        """An invitation from a listed user or server is accepted (and a direct one makes
        a private conversation); any other is refused."""
        invite = {
            "invite_state": {
                "events": [
                    {"type": "m.room.member", "sender": ALICE, "state_key": BOT,
                     "content": {"membership": "invite", "is_direct": True}},
                ]
            }
        }  # fmt: skip
        stranger = {
            "invite_state": {
                "events": [
                    {"type": "m.room.member", "sender": "@eve:evil.example", "state_key": BOT,
                     "content": {"membership": "invite"}},
                ]
            }
        }  # fmt: skip
        self.hs.answer("/sync", sync("b5", invite={DM: invite, "!evil:x": stranger}))
        self.hs.answer(f"/join/{DM.replace('!', '%21').replace(':', '%3A')}", {"room_id": DM})
        self.hs.answer("/leave", {})
        self.assertIn(DM, self.source.direct_rooms)
        self.assertFalse(self.source.is_channel(DM))
        self.assertEqual(len([e for e in self.events if e.type == EventType.INVITE]), 2)
        self.hs.answer("/sync", sync("b6", {DM: [message("$d", "echo hi")]}))
        [event] = self.texts()
        self.assertEqual((event.public, event.addressed), (False, True))
        self.assertTrue(self.source.accepts_invite("@bob:friends.example"))
        self.assertFalse(self.source.accepts_invite("@bob:example.org"))


class OutgoingTests(MatrixSourceTestCase):
    def setUp(self) -> None:
        super().setUp()
        self.log_in()

    def sent(self) -> Request:
        request = self.hs.take("/send/")
        request.deferred.callback((200, json.dumps({"event_id": "$sent"}).encode()))
        return request

    def test_reply_in_thread_remembered(self) -> None:
        """A reply answers its trigger in its thread; its event id is remembered."""
        response = Response("hello", target=ROOM, source="matrix", reply_to="$t",
                            thread_id="$root")  # fmt: skip
        self.source.send(response)
        request = self.sent()
        self.assertIn("/m.room.message/", request.path)
        self.assertEqual(
            request.json["m.relates_to"],
            {"rel_type": "m.thread", "event_id": "$root", "is_falling_back": False,
             "m.in_reply_to": {"event_id": "$t"}},
        )  # fmt: skip
        self.assertEqual(self.source.network_id(response.id), "$sent")

    def test_alias_folds_to_its_room(self) -> None:
        """Once joined, a room's alias folds as its room id does (a bridge may name the
        room either way); an alias not joined folds as itself."""
        self.source.join("#dev:example.org")
        self.hs.answer("/join/", {"room_id": ROOM})
        self.assertEqual(self.source.fold("#dev:example.org"), self.source.fold(ROOM))
        self.assertNotEqual(self.source.fold("#other:example.org"), self.source.fold(ROOM))

    def test_edit_reaction_delete_and_order(self) -> None:
        """Edits, reactions and deletions leave as m.replace, m.annotation and a
        redaction, one after the other in the order given."""
        self.source.send(Response("v2", target=ROOM, source="matrix", kind="edit", refers_to="$a"))
        self.source.send(
            Response("👍", target=ROOM, source="matrix", kind="reaction", refers_to="$b")
        )
        self.source.send(Response("", target=ROOM, source="matrix", kind="delete", refers_to="$c"))
        self.assertEqual(len([r for r in self.hs.pending if "/send/" in r.path]), 1)
        edit = self.sent()
        self.assertEqual(edit.json["m.new_content"], {"msgtype": "m.text", "body": "v2"})
        reaction = self.sent()
        self.assertIn("/m.reaction/", reaction.path)
        self.assertEqual(reaction.json["m.relates_to"]["key"], "👍")
        redact = self.hs.answer("/redact/", {"event_id": "$r"})
        self.assertIn("/redact/%24c/", redact.path)

    def test_action_notice_and_bad_target(self) -> None:
        """Actions are m.emote, notices m.notice; a reply to no room or known member is
        dropped."""
        self.source.send(Response("waves", target=ROOM, source="matrix", action=True))
        self.assertEqual(self.sent().json["msgtype"], "m.emote")
        self.source.send(Response("fyi", target=ROOM, source="matrix", notice=True))
        self.assertEqual(self.sent().json["msgtype"], "m.notice")
        self.source.send(Response("lost", target="nobody known", source="matrix"))
        self.source.send(Response("lost", target="", source="matrix"))
        self.assertEqual([r for r in self.hs.pending if "/send/" in r.path], [])
        self.assertEqual([r for r in self.hs.pending if "/createRoom" in r.path], [])

    def test_private_reply_makes_a_direct_room_once_the_invitee_is_in(self) -> None:
        """A reply to a user id with no direct room makes one (encrypted when the bot
        encrypts, the person invited) and is sent only once a sync shows them in it."""
        carol = "@carol:example.org"
        self.source.send(Response("psst", target=carol, source="matrix"))
        create = self.hs.answer("/createRoom", {"room_id": "!new:example.org"})
        self.assertEqual((create.json["invite"], create.json["is_direct"]), ([carol], True))
        self.clock.advance(1)
        self.assertEqual([r for r in self.hs.pending if "/send/" in r.path], [])
        self.hs.answer(
            "/sync",
            sync("b2", {"!new:example.org": [member(BOT, "join"),
                                             member(carol, "invite", sender=BOT)]}),
        )  # fmt: skip
        self.clock.advance(0.05)
        request = self.sent()
        self.assertIn("/rooms/%21new%3Aexample.org/send/", request.path)
        self.assertIn("!new:example.org", self.source.direct_rooms)
        self.assertIn("!new:example.org", self.session()["direct_rooms"])

    def test_topic_nick_and_part(self) -> None:
        """topic, set_nick and part become the state, profile and leave requests."""
        self.source.topic(ROOM, "new topic")
        topic = self.hs.answer("/state/m.room.topic", {"event_id": "$t"})
        self.assertEqual(topic.json, {"topic": "new topic"})
        self.source.set_nick("Botty")
        self.hs.answer("/displayname", {})
        self.assertEqual(self.source.names()[0], "Botty")
        self.assertRaises(ValueError, self.source.set_nick, " ")
        self.source.part(ROOM)
        self.hs.answer("/leave", {})
        self.assertNotIn(ROOM, self.source.rooms_wanted())

    def test_interface(self) -> None:
        """The source provides IChannelSource."""
        self.assertTrue(verifyObject(IChannelSource, self.source))


class ContentTests(SynchronousTestCase):
    def test_html_to_text(self) -> None:
        """HTML bodies: reply quotes left out, line breaks kept, pills as their names."""
        self.assertEqual(
            mc.html_to_text(
                "<mx-reply><blockquote>old</blockquote></mx-reply>"
                '<a href="https://matrix.to/#/@b:x">Bot</a>: one<br>two<p>three</p>'
            ),
            "Bot: one\ntwo\nthree",
        )
        self.assertEqual(
            mc.mentioned_users('<a href="https://matrix.to/#/%40b%3Ax">B</a>'), ["@b:x"]
        )

    def test_reply_fallback_stripped(self) -> None:
        """A plain reply's quoted lines are not part of what the person said."""
        self.assertEqual(mc.strip_reply_fallback("> <@a:b> old\n> more\n\nnew"), "new")
        self.assertEqual(mc.strip_reply_fallback(">not a quote"), ">not a quote")

    def test_mention_pill_out(self) -> None:
        """An addressed reply names its person with a pill and m.mentions."""
        content = mc.message_content("Alice: hi <3", mention=(ALICE, "Alice"))
        self.assertEqual(
            content["formatted_body"], f'<a href="https://matrix.to/#/{ALICE}">Alice</a>: hi &lt;3'
        )
        self.assertEqual(content["m.mentions"], {"user_ids": [ALICE]})

    def test_files(self) -> None:
        """m.image, m.file, m.video and m.audio carry an attachment (its URL still
        mxc://); a body that differs from ``filename`` is a caption; an encrypted file is
        only named; hostile info is left out."""
        for msgtype in sorted(mc.FILE_TYPES):
            parsed = mc.parse_event(
                {"type": "m.room.message",
                 "content": {"msgtype": msgtype, "body": "f.bin", "url": "mxc://s/id"}}
            )  # fmt: skip
            self.assertEqual(
                (parsed.kind, parsed.text, parsed.attachments),
                ("message", "", (Attachment("mxc://s/id", "f.bin"),)),
            )
        captioned = mc.parse_event(
            {"type": "m.room.message",
             "content": {"msgtype": "m.image", "body": "look at *this*", "filename": "a.png",
                         "format": mc.HTML, "formatted_body": "look at <b>this</b>",
                         "url": "mxc://s/id", "info": {"size": "big", "mimetype": 7}}}
        )  # fmt: skip
        self.assertEqual(captioned.text, "look at this")
        self.assertEqual(captioned.attachments, (Attachment("mxc://s/id", "a.png"),))
        encrypted = mc.parse_event(
            {"type": "m.room.message",
             "content": {"msgtype": "m.file", "body": "secret.pdf",
                         "file": {"url": "mxc://s/enc", "key": {}}}}
        )  # fmt: skip
        self.assertEqual(encrypted.attachments, ())
        self.assertIn("secret.pdf", encrypted.text)
        bad = mc.parse_event(
            {"type": "m.room.message",
             "content": {"msgtype": "m.image", "body": "x", "url": "javascript:alert(1)"}}
        )  # fmt: skip
        self.assertEqual((bad.text, bad.attachments), ("x", ()))

    def test_media_url(self) -> None:
        """mxc:// becomes the download URL, or what a configured template says."""
        self.assertEqual(
            mc.media_url("mxc://ex.org/AbC", "https://hs.ex/"),
            "https://hs.ex/_matrix/media/v3/download/ex.org/AbC",
        )
        self.assertEqual(
            mc.media_url("mxc://ex.org/AbC", "https://hs.ex", "https://m.ex/{media_id}/{name}",
                         "a b.png"),
            "https://m.ex/AbC/a%20b.png",
        )  # fmt: skip
        self.assertIsNone(mc.media_url("mxc://ex.org/../x", "https://hs.ex"))
        self.assertEqual(MediaURLOption("t").parse(" https://m/{server}/{media_id} "),
                         "https://m/{server}/{media_id}")  # fmt: skip
        for bad in ("https://m/{nope}", "{media_id}", "https://m/{"):
            with self.assertRaises(ValueError):
                MediaURLOption("t").parse(bad)

    def test_links_keep_their_targets(self) -> None:
        """A link whose text is not its URL keeps the URL beside it (a network without
        HTML would lose it); pills and bare links are said once."""
        self.assertEqual(
            mc.html_to_text(
                'see <a href="https://x.org/d">the docs</a>, <a href="https://y.org/">'
                'https://y.org</a> and <a href="https://matrix.to/#/@a:b">A</a>'
            ),
            "see the docs (https://x.org/d), https://y.org and A",
        )

    def test_garbage_content_ignored(self) -> None:
        """Events without usable content mean nothing, and never raise."""
        for raw in (
            {"type": "m.room.message"},
            {"type": "m.room.message", "content": {"msgtype": "m.image", "body": "x"}},
            {"type": "m.room.message", "content": {"msgtype": "m.text", "body": None}},
            {"type": "m.reaction", "content": {"m.relates_to": "nope"}},
            {"type": "m.room.redaction", "content": {}},
        ):
            parsed = mc.parse_event(raw)
            self.assertIn(parsed.kind, (None, "message"))

    def test_token_query_dropped(self) -> None:
        """nio's access_token query parameter goes (Synapse refuses it with a header)."""
        self.assertEqual(
            without_token("/_matrix/client/v3/sync?access_token=t&since=s1"),
            "/_matrix/client/v3/sync?since=s1",
        )


class EncryptionTests(MatrixSourceTestCase):
    options = {"encryption": True}

    def test_keys_uploaded_after_first_sync(self) -> None:
        """With encryption the device's identity and one-time keys are uploaded, and
        the key store lies in the store folder beside session.json."""
        self.source.startService()
        self.hs.answer("/login", {"user_id": BOT, "access_token": "tok1", "device_id": "DEV1"})
        self.hs.answer("/displayname", {"displayname": "Testbot"})
        self.hs.answer("/sync", sync("b1"))
        upload = self.hs.take("/keys/upload")
        self.assertIn("device_keys", upload.json)
        self.assertEqual(upload.json["device_keys"]["device_id"], "DEV1")
        upload.deferred.callback(
            (200, json.dumps({"one_time_key_counts": {"signed_curve25519": 50}}).encode())
        )
        self.hs.answer("/join/", {"room_id": ROOM})
        self.assertEqual(self.source.state, "connected")
        stored = sorted(p.name for p in (self.directory / "store").iterdir())
        self.assertIn("session.json", stored)
        self.assertTrue(any(name.endswith(".db") for name in stored), stored)
        self.assertIsInstance(self.source.client, MatrixClient)
