"""The message model end to end through the core chain: replies that answer their trigger,
threads, reactions, edits and deletions of the bot's own messages, and how each degrades
on a source that cannot carry it (plugins/core.py's `degrade`, in Format)."""

from __future__ import annotations

from botcore.event import Attachment, Event, EventType, Message, Response
from botcore.plugins.core import degrade
from botcore.processor import Processor, match
from botcore.testing import PluginTestCase

EVERYTHING = frozenset(
    {"action", "notice", "multiline", "message-ids", "reply", "thread", "react", "edit", "delete"}
)


class Chatty(Processor):
    """Replies, reacts, and edits or deletes its own replies later."""

    @match("ping")
    def ping(self, event: Event) -> None:
        event.addresponse("pong")

    @match("thumbs")
    def thumbs(self, event: Event) -> None:
        event.react("\N{THUMBS UP SIGN}")

    @match("work")
    def work(self, event: Event) -> None:
        first = event.addresponse("working...")
        self.bot.call_later(5, lambda later: later.edit(first.id, "done"), event)

    @match("oops")
    def oops(self, event: Event) -> None:
        first = event.addresponse("a mistake")
        self.bot.call_later(5, lambda later: later.delete(first.id), event)

    @match("unthreaded")
    def unthreaded(self, event: Event) -> None:
        event.addresponse("not an answer", reply_to=False)

    @match("elsewhere")
    def elsewhere(self, event: Event) -> None:
        event.addresponse("over here", target="#other")


class FullModelTests(PluginTestCase):
    """A source with message ids, replies, threads, reactions, edits and deletions."""

    extra_processors = (Chatty,)
    source_supports = EVERYTHING
    public = True

    def said(self, text, **kw):
        return self.say(f"botcore: {text}", message_id="m-1", **kw)

    def test_reply_answers_its_trigger(self):
        """A reply in the trigger's conversation is marked as answering it, and still
        addressed by name as before."""
        self.said("ping")
        (reply,) = self.replies
        self.assertEqual(
            (reply.text, reply.kind, reply.reply_to), ("user: pong", "message", "m-1")
        )

    def test_reply_stays_in_thread(self):
        """A reply to a message in a thread goes to that thread."""
        self.said("ping", thread_id="t-9")
        self.assertEqual(self.replies[0].thread_id, "t-9")

    def test_reply_false_is_not_marked(self):
        """reply_to=False: a plain line."""
        self.said("unthreaded")
        self.assertIsNone(self.replies[0].reply_to)

    def test_elsewhere_is_not_marked(self):
        """A reply sent to another conversation answers nothing there."""
        self.said("elsewhere")
        (reply,) = self.replies
        self.assertEqual((reply.target, reply.reply_to, reply.thread_id), ("#other", None, None))

    def test_reaction(self):
        """A reaction goes to the source as a reaction to the trigger, without a nick."""
        self.said("thumbs")
        (reply,) = self.replies
        self.assertEqual(
            (reply.kind, reply.text, reply.refers_to), ("reaction", "\N{THUMBS UP SIGN}", "m-1")
        )

    def test_edit_own_reply_by_local_id(self):
        """A plugin edits its earlier reply by the Response's id: the source is given the
        network id the reply was sent as."""
        self.said("work")
        (first,) = self.replies
        sent_as = self.source.last_id
        self.assertEqual(self.source.sent_messages("#test")[-1].message_id, sent_as)
        self.assertEqual(self.advance(5), ["user: done"])
        edit = self.source.sent[-1]
        self.assertEqual((edit.kind, edit.refers_to), ("edit", sent_as))
        self.assertEqual(self.source.network_id(first.id), sent_as)

    def test_delete_own_reply(self):
        self.said("oops")
        sent_as = self.source.last_id
        self.advance(5)
        deletion = self.source.sent[-1]
        self.assertEqual((deletion.kind, deletion.refers_to), ("delete", sent_as))

    def test_delayed_reply_answers_the_trigger(self):
        """A delayed event keeps its trigger's message id: the edit is made in reply to it."""
        self.said("work")
        self.advance(5)
        self.assertEqual(self.source.sent[-1].reply_to, "m-1")


class NoTriggerReplyTests(PluginTestCase):
    """reply_to_trigger = no: replies are plain lines even where the source marks them."""

    extra_processors = (Chatty,)
    source_supports = EVERYTHING
    plugin_config = {"source:test": {"reply_to_trigger": False}}

    def test_plain(self):
        self.say("ping", message_id="m-1")
        self.assertIsNone(self.replies[0].reply_to)


class PlainSourceTests(PluginTestCase):
    """A source with none of the message model (the defaults: reactions become nothing,
    edits are sent again as new messages, deletions are dropped)."""

    extra_processors = (Chatty,)
    source_supports = frozenset({"action", "notice", "multiline"})
    public = True

    def test_reply_is_a_plain_addressed_line(self):
        self.say("botcore: ping", message_id="m-1", thread_id="t-1")
        (reply,) = self.replies
        self.assertEqual(
            (reply.text, reply.kind, reply.reply_to, reply.thread_id),
            ("user: pong", "message", None, None),
        )

    def test_reaction_becomes_nothing(self):
        self.say("botcore: thumbs", message_id="m-1")
        self.assertEqual(self.replies, [])

    def test_edit_resent(self):
        self.say("botcore: work")
        self.assertEqual(self.advance(5), ["user: done"])
        self.assertEqual(self.source.sent[-1].kind, "message")
        self.assertIsNone(self.source.sent[-1].refers_to)

    def test_delete_dropped(self):
        self.say("botcore: oops")
        self.assertEqual(self.advance(5), [])

    def test_nothing_remembered_without_ids(self):
        self.say("botcore: ping")
        self.assertEqual(self.source.sent_messages("#test"), [])


class FallbackTests(PluginTestCase):
    """reaction_fallback = text and edit_fallback = none."""

    extra_processors = (Chatty,)
    source_supports = frozenset({"action", "notice", "multiline"})
    plugin_config = {"source:test": {"reaction_fallback": "text", "edit_fallback": "none"}}

    def test_reaction_as_a_line(self):
        self.assertEqual(self.responses("thumbs", message_id="m-1"), ["\N{THUMBS UP SIGN}"])

    def test_edit_dropped(self):
        self.say("work")
        self.assertEqual(self.advance(5), [])


class ReactionWithoutIdTests(PluginTestCase):
    """A source that can react, to a message that came without an id: the fallback."""

    extra_processors = (Chatty,)
    source_supports = EVERYTHING
    plugin_config = {"source:test": {"reaction_fallback": "text"}}

    def test_no_id(self):
        self.assertEqual(self.responses("thumbs"), ["\N{THUMBS UP SIGN}"])
        self.assertEqual(self.replies[0].kind, "message")


class IncomingTypesTests(PluginTestCase):
    """Edits, deletions and reactions arriving from a network pass through the core
    without being taken for commands, and an edit's secrets are scrubbed like a
    message's."""

    extra_processors = (Chatty,)
    source_supports = EVERYTHING

    def test_edit_is_not_a_command(self):
        event = self.say("ping", type=EventType.EDIT, refers_to="m-1")
        self.assertEqual(self.replies, [])
        self.assertFalse(event.processed)

    def test_edit_scrubbed(self):
        event = self.say("auth hunter2", type=EventType.EDIT, refers_to="m-1")
        self.assertNotIn("hunter2", event.message.raw)
        self.assertEqual(self.replies, [])

    def test_reaction_and_delete_pass(self):
        for kind in (EventType.REACTION, EventType.DELETE):
            event = self.say(None, type=kind, refers_to="m-1", reaction="+1")
            self.assertEqual(self.replies, [])
            self.assertIsNotNone(event.identity)


class DegradeTests(PluginTestCase):
    """`degrade` alone, for what the chain never produces by itself."""

    source_supports = EVERYTHING

    def test_explicit_reply_resolved(self):
        """reply_to naming the bot's own earlier reply by local id gets its network id."""
        earlier = Response("hello", source="test", target="#test")
        self.source.remember_sent(earlier, "net-7")
        answer = Response("again", source="test", target="#test", reply_to=earlier.id)
        self.assertEqual(degrade(answer, self.source).reply_to, "net-7")

    def test_unknown_id_passed_as_network_id(self):
        answer = Response("x", source="test", target="#test", kind="edit", refers_to="abc")
        self.assertEqual(degrade(answer, self.source).refers_to, "abc")

    def test_unchanged_is_the_same_object(self):
        plain = Response("x", source="test", target="#test")
        self.assertIs(degrade(plain, self.source), plain)


CAT = Attachment("https://files.example/cat.png", "cat.png", "image/png", 12345)
NOTES = Attachment("https://files.example/n.txt", "notes.txt")


class Sharer(Processor):
    """Replies with files."""

    @match("cat")
    def cat(self, event: Event) -> None:
        event.addresponse("here:", attachments=(CAT, NOTES))

    @match("bare")
    def bare(self, event: Event) -> None:
        event.addresponse("", attachments=[CAT], address=False)


class AttachmentsSupportedTests(PluginTestCase):
    """A source that sends files: a reply's attachments reach it as they are."""

    extra_processors = (Sharer,)
    source_supports = frozenset({"multiline", "attachments"})

    def test_kept(self):
        self.say("cat")
        (reply,) = self.replies
        self.assertEqual((reply.text, reply.attachments), ("here:", (CAT, NOTES)))

    def test_file_alone_is_no_nonsense(self):
        """A file sent to the bot without a word is not a command it failed to
        understand; with words it is."""
        event = self.make_event("")
        event.message = Message("", attachments=(CAT,))
        self.assertNoResponse(event)
        event = self.make_event("florble")
        event.message = Message("florble", attachments=(CAT,))
        self.assertEqual(len(self.responses(event)), 1)

    def test_list_made_a_tuple(self):
        """Attachments given as a list are kept as a tuple (a Response stays hashable)."""
        self.say("bare")
        self.assertEqual(self.replies[0].attachments, (CAT,))


class AttachmentsDegradedTests(PluginTestCase):
    """A source without files (IRC, telnet): each attachment becomes a line of the text
    with its name, type, size and URL, so nothing is dropped unseen; one-line networks
    get the lines joined."""

    extra_processors = (Sharer,)
    source_supports = frozenset({"action", "notice"})

    def test_described_in_the_text(self):
        self.say("cat")
        (reply,) = self.replies
        self.assertEqual(
            reply.text,
            "here: cat.png (image/png, 12 KB) https://files.example/cat.png"
            " notes.txt https://files.example/n.txt",
        )
        self.assertEqual(reply.attachments, ())

    def test_file_alone(self):
        """A reply that is only a file reads as its description."""
        self.assertEqual(
            self.responses("bare"), ["cat.png (image/png, 12 KB) https://files.example/cat.png"]
        )

    def test_lines_on_a_multiline_source(self):
        self.source.supports = frozenset({"multiline"})
        self.say("cat")
        self.assertEqual(
            self.replies[0].text.split("\n"),
            [
                "here:",
                "cat.png (image/png, 12 KB) https://files.example/cat.png",
                "notes.txt https://files.example/n.txt",
            ],
        )

    def test_split_one_line_each(self):
        """With conflate=False on a one-line network, each file is a message of its own."""
        event = self.make_event("x")
        event.addresponse("look", attachments=(CAT, NOTES), conflate=False)
        self.processor("Format").format(event)
        self.assertEqual(
            [r.text for r in event.responses],
            [
                "look",
                "cat.png (image/png, 12 KB) https://files.example/cat.png",
                "notes.txt https://files.example/n.txt",
            ],
        )

    def test_not_on_reactions(self):
        """A reaction, a deletion or an edit carries no files; an edit's become text."""
        supports = frozenset({"react", "edit", "delete", "attachments"})
        self.source.supports = supports
        reaction = Response(
            "+1", "#test", "test", kind="reaction", refers_to="m", attachments=(CAT,)
        )
        self.assertEqual(degrade(reaction, self.source).attachments, ())
        self.assertEqual(degrade(reaction, self.source).text, "+1")
        edit = Response("new", "#test", "test", kind="edit", refers_to="m", attachments=(CAT,))
        degraded = degrade(edit, self.source)
        self.assertEqual((degraded.text, degraded.attachments), (f"new\n{CAT.describe()}", ()))
