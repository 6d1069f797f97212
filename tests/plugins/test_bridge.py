"""The bridge plugin on memory sources: relaying between conversations of a bridge,
templates, no loops and no doubles, receipts carrying edits, deletions, replies and
reactions, ignores across networks, the commands, and bridges changed at run time."""

from __future__ import annotations

import configparser
from pathlib import Path
from typing import Any, ClassVar

from sqlalchemy import text
from twisted.internet.defer import succeed
from twisted.trial.unittest import SynchronousTestCase

from botcore.accounts import models as accounts
from botcore.bus.bridges import parse_conversations
from botcore.config import ConfigErrors
from botcore.event import Attachment, Event, EventType, Message, Response, Sender
from botcore.settings import read_config
from botcore.testing import MemorySource, PluginTestCase, backend_variants

#: What a network with the whole message model carries.
MODEL = frozenset(
    {"action", "notice", "multiline", "message-ids", "reply", "edit", "delete", "react"}
)
#: A network with ids and replies but no edits, deletions or reactions (IRC with tags).
PLAIN = frozenset({"action", "notice", "multiline", "message-ids", "reply"})


class BridgeCase(PluginTestCase):
    """Three memory sources, ``test`` (the test source), ``irc`` and ``xmpp``, bridged
    by ``[bridge:dev]`` unless a class says otherwise."""

    load = ["bridge", "basic", "identity"]
    source_supports = MODEL
    run_examples = False
    bridge: ClassVar[dict[str, Any]] = {
        "conversations": "test:#dev irc:#dev, xmpp:dev@muc.example"
    }
    irc_supports: ClassVar[frozenset[str]] = MODEL
    xmpp_supports: ClassVar[frozenset[str]] = PLAIN
    irc_truncation: ClassVar[int | None] = None

    @classmethod
    def config_for(cls) -> dict[str, dict[str, Any]]:
        return {"bridge:dev": cls.bridge}

    def setUp(self) -> None:
        type(self).plugin_config = {**self.config_for(), **dict(self.extra_config())}
        super().setUp()
        self.irc = MemorySource(
            "irc", self.bot.context, {}, supports=self.irc_supports, truncation=self.irc_truncation
        )
        self.irc.setServiceParent(self.bot.sources)
        self.xmpp = MemorySource("xmpp", self.bot.context, {}, supports=self.xmpp_supports)
        self.xmpp.setServiceParent(self.bot.sources)
        self.sources = {"test": self.source, "irc": self.irc, "xmpp": self.xmpp}
        self.ids = 0

    def extra_config(self) -> dict[str, dict[str, Any]]:
        return {}

    def event(
        self,
        text: str | None,
        source: str = "test",
        channel: str | None = None,
        nick: str = "alice",
        type: str = EventType.MESSAGE,
        message_id: str | bool | None = True,
        **fields: Any,
    ) -> Event:
        """An event said in a bridged conversation (``#dev``, or the XMPP room), with a
        fresh network id unless ``message_id`` says otherwise."""
        if channel is None:
            channel = "dev@muc.example" if source == "xmpp" else "#dev"
        if message_id is True:
            self.ids += 1
            message_id = f"{source}-orig-{self.ids}"
        return Event(
            source=source,
            type=type,
            sender=Sender(f"{source}:{nick}", nick, nick),
            channel=channel,
            public=True,
            message=Message(text) if text is not None else None,
            message_id=message_id or None,
            **fields,
        )

    def dispatch(self, event: Event) -> Event:
        """Send ``event`` through the bot; return it processed."""
        return self.successResultOf(self.sources[event.source].dispatch(event))

    def said(self, *args: Any, **kw: Any) -> Event:
        return self.dispatch(self.event(*args, **kw))

    def texts(self, source: str) -> list[str]:
        """What the bot sent on ``source``, and forget it."""
        sent = self.sources[source].sent
        found = [str(r.text) for r in sent]
        del sent[:]
        return found

    def sent(self, source: str) -> list[Response]:
        found = list(self.sources[source].sent)
        del self.sources[source].sent[:]
        return found

    def receipts(self) -> int:
        sessions = self.bot.databases["main"].session_factory
        assert sessions is not None
        with sessions() as session:
            # By the table's name: a reload of the plugin (ReloadTests) unmaps the model
            # class this module imported.
            return session.scalar(text("SELECT COUNT(*) FROM bridge_receipts")) or 0


class RelayTests(BridgeCase):
    """Messages, actions and their templates."""

    def test_relayed_to_every_other_conversation(self) -> None:
        """A message in one conversation is said in each other one, under the sender's
        nick, and not where it was said."""
        self.said("hello there")
        irc = self.sent("irc")
        self.assertEqual([(r.text, r.target) for r in irc], [("<alice> hello there", "#dev")])
        self.assertEqual(self.texts("xmpp"), ["<alice> hello there"])
        self.assertEqual(self.xmpp.sent, [])
        self.assertEqual(self.texts("test"), [])
        self.assertFalse(irc[0].address)

    def test_other_channels_not_relayed(self) -> None:
        """A channel that is no end of a bridge is not relayed, nor private messages."""
        self.said("elsewhere", channel="#other")
        event = self.event("private", channel="alice")
        event.public = False
        self.dispatch(event)
        self.assertEqual(self.texts("irc"), [])
        self.assertEqual(self.texts("xmpp"), [])

    def test_from_each_side(self) -> None:
        """Every end relays to the others, whichever it is."""
        self.said("from irc", source="irc", nick="bob")
        self.assertEqual(self.texts("test"), ["<bob> from irc"])
        self.assertEqual(self.texts("xmpp"), ["<bob> from irc"])
        self.assertEqual(self.texts("irc"), [])

    def test_channel_names_as_the_source_folds_them(self) -> None:
        """#DEV is #dev where the source compares names case-blind."""
        self.said("shouted", channel="#DEV")
        self.assertEqual(self.texts("irc"), ["<alice> shouted"])

    def test_action(self) -> None:
        """An action is relayed with the action template."""
        self.said("waves", type=EventType.ACTION)
        self.assertEqual(self.texts("irc"), ["* alice waves"])

    def test_irc_formatting_left_out_elsewhere(self) -> None:
        """IRC's bold and colour codes reach IRC as they are and other networks without
        them."""
        self.said("\x02bold\x02 \x0304red\x03", source="irc")
        self.assertEqual(self.texts("test"), ["<alice> bold red"])

    def test_commands_still_answered_here(self) -> None:
        """A command said in a bridged conversation is relayed, and answered only where
        it was said (answer = here)."""
        self.said("botcore: echo hi")
        self.assertEqual(self.texts("test"), ["hi"])
        self.assertEqual(self.texts("irc"), ["<alice> botcore: echo hi"])
        self.assertEqual(self.texts("xmpp"), ["<alice> botcore: echo hi"])

    def test_nothing_to_complain_about(self) -> None:
        """Relaying a message addressed to the bot does not stop the bot from saying it
        did not understand."""
        self.said("botcore: florble the wuzzle")
        self.assertEqual(len(self.texts("test")), 1)


CAT = Attachment("https://files.example/cat.png", "cat.png", "image/png", 70)


class AttachmentTests(BridgeCase):
    """Files travel with the message: as files to a network that takes them (xmpp here),
    as their names and URLs where it does not (irc: one line a message, no files)."""

    irc_supports = MODEL - {"multiline"}
    xmpp_supports = PLAIN | {"attachments"}

    def shared(self, caption: str, source: str = "test") -> Event:
        """``CAT`` said with ``caption`` on ``source``; the event processed."""
        event = self.event(caption, source=source)
        event.message = Message(caption, attachments=(CAT,))
        return self.dispatch(event)

    def test_file_alone(self) -> None:
        """A file said without text: its description follows the sender's name on one
        line where files cannot go; a network with files gets the file itself."""
        self.shared("")
        self.assertEqual(
            self.texts("irc"),
            ["<alice> cat.png (image/png, 70 bytes) https://files.example/cat.png"],
        )
        (copy,) = self.sent("xmpp")
        self.assertEqual((copy.text.strip(), copy.attachments), ("<alice>", (CAT,)))

    def test_file_with_a_caption(self) -> None:
        """The caption is relayed as text, the file after it (on a line of its own on a
        one-line network)."""
        self.shared("look")
        self.assertEqual(
            self.texts("irc"),
            ["<alice> look", "cat.png (image/png, 70 bytes) https://files.example/cat.png"],
        )
        (copy,) = self.sent("xmpp")
        self.assertEqual((copy.text, copy.attachments), ("<alice> look", (CAT,)))
        self.assertEqual(self.texts("test"), [])  # not back where it was said

    def test_from_a_network_with_files(self) -> None:
        """A file from xmpp reaches a multi-line network without files as text after
        the sender's name."""
        self.shared("", source="xmpp")
        self.assertEqual(
            self.texts("test"),
            ["<alice> cat.png (image/png, 70 bytes) https://files.example/cat.png"],
        )

    def test_receipt_for_a_file(self) -> None:
        """A relayed file has receipts like any message, one per copy."""
        self.shared("")
        self.assertEqual(self.receipts(), 2)


class TemplateTests(BridgeCase):
    """Templates: per bridge and per target source."""

    bridge = {
        "conversations": "test:#dev irc:#dev xmpp:dev@muc.example",
        "template": "[{source}] {name}: {text}",
        "template.xmpp": "{name} ({bridge}) says {text}",
        "action_template.irc": "~ {nick} {text}",
    }

    def test_templates(self) -> None:
        """Each target's template shapes its copy; the others take the bridge's."""
        self.said("hi")
        self.assertEqual(self.texts("irc"), ["[test] alice: hi"])
        self.assertEqual(self.texts("xmpp"), ["alice (dev) says hi"])

    def test_action_template_override(self) -> None:
        """action_template.SOURCE overrides the action template for that source."""
        self.said("waves", type=EventType.ACTION)
        self.assertEqual(self.texts("irc"), ["~ alice waves"])
        self.assertEqual(self.texts("xmpp"), ["* alice waves"])


class LongMessageTests(BridgeCase):
    """A long message is split by each target's own limit."""

    irc_truncation = 40

    def test_split_by_the_targets_limit(self) -> None:
        """A copy longer than the target's truncation point is split into several, none
        longer than it, nothing lost; the others get it whole."""
        text = " ".join(f"word{i}" for i in range(30))
        self.said(text)
        irc = self.texts("irc")
        self.assertGreater(len(irc), 1)
        self.assertTrue(all(len(line.encode()) <= 40 for line in irc), irc)
        self.assertEqual(" ".join(irc), f"<alice> {text}")
        self.assertEqual(self.texts("xmpp"), [f"<alice> {text}"])


class LoopTests(BridgeCase):
    """No loops, no doubles."""

    bridge = {
        "conversations": "test:#dev irc:#dev xmpp:dev@muc.example",
        "ignore_nicks": "otherbot, xmpp:relay",
        "ignore_marker": "[nobridge]",
    }

    def test_own_messages_not_relayed(self) -> None:
        """A message from the bot's own nick (an echo, or its copy seen through another
        connection to the network) is never relayed."""
        self.said("<alice> hello", source="irc", nick="botcore")
        self.said("<alice> hello", source="irc", nick="BOTCORE")
        self.assertEqual(self.texts("test"), [])
        self.assertEqual(self.texts("xmpp"), [])

    def test_ignored_nicks_and_marker(self) -> None:
        """ignore_nicks holds back other bots (on every source, or one), and the marker
        holds back messages that start with it."""
        self.said("beep", nick="OtherBot")
        self.said("beep", source="xmpp", nick="relay")
        self.said("[nobridge] not for the others")
        self.assertEqual(self.texts("irc"), [])
        self.said("beep", source="irc", nick="relay")
        self.assertEqual(self.texts("test"), ["<relay> beep"])

    def test_at_most_once_per_target(self) -> None:
        """The same message (same network id) seen again, after a reconnect, is not
        relayed again; one without an id is relayed each time."""
        first = self.event("once", message_id="t-1")
        self.dispatch(first)
        self.dispatch(self.event("once", message_id="t-1"))
        self.assertEqual(self.texts("irc"), ["<alice> once"])
        self.assertEqual(self.texts("xmpp"), ["<alice> once"])
        self.assertEqual(self.receipts(), 2)
        self.said("no id", message_id=None)
        self.said("no id", message_id=None)
        self.assertEqual(self.texts("irc"), ["<alice> no id"] * 2)

    def test_once_across_a_restart(self) -> None:
        """The receipts are in the database: after a restart of the bot the same
        message is still not relayed twice."""
        self.dispatch(self.event("once", message_id="t-9"))
        self.restart()
        self.irc = MemorySource("irc", self.bot.context, {}, supports=MODEL)
        self.irc.setServiceParent(self.bot.sources)
        self.xmpp = MemorySource("xmpp", self.bot.context, {}, supports=PLAIN)
        self.xmpp.setServiceParent(self.bot.sources)
        self.sources = {"test": self.source, "irc": self.irc, "xmpp": self.xmpp}
        self.dispatch(self.event("once", message_id="t-9"))
        self.assertEqual(self.texts("irc"), [])


class OverlapTests(BridgeCase):
    """Two bridges sharing a conversation."""

    bridge = {"conversations": "test:#dev irc:#dev"}

    def extra_config(self) -> dict[str, dict[str, Any]]:
        return {"bridge:ops": {"conversations": "irc:#dev xmpp:dev@muc.example test:#dev"}}

    def test_one_copy_per_conversation(self) -> None:
        """A conversation reached through two bridges gets one copy."""
        self.said("hi")
        self.assertEqual(self.texts("irc"), ["<alice> hi"])
        self.assertEqual(self.texts("xmpp"), ["<alice> hi"])


class ReceiptTests(BridgeCase):
    """Edits, deletions, replies and reactions follow the receipts."""

    def test_edit_reaches_the_copies(self) -> None:
        """An edit of a relayed message edits its copy where the network can edit, and
        is sent again as a new message where it cannot (edit_fallback = resend)."""
        self.dispatch(self.event("helo", message_id="t-1"))
        copy = self.sent("irc")[0]
        self.texts("xmpp")
        self.dispatch(self.event("hello", type=EventType.EDIT, refers_to="t-1"))
        edits = self.sent("irc")
        self.assertEqual(
            [(r.kind, r.refers_to, r.text) for r in edits],
            [("edit", self.irc.network_id(copy.id), "<alice> hello")],
        )
        self.assertEqual(self.irc.network_id(copy.id), "irc-1")
        xmpp = self.sent("xmpp")
        self.assertEqual([(r.kind, r.text) for r in xmpp], [("message", "<alice> hello (edited)")])

    def test_edit_of_an_unrelayed_message_is_not_carried(self) -> None:
        """An edit of a message the bridge never relayed is not relayed."""
        self.dispatch(self.event("new text", type=EventType.EDIT, refers_to="unknown"))
        self.assertEqual(self.texts("irc"), [])

    def test_delete_reaches_the_copies(self) -> None:
        """A deletion takes the copies back where the network can; elsewhere nothing."""
        self.dispatch(self.event("oops", message_id="t-2"))
        self.sent("irc"), self.sent("xmpp")
        self.dispatch(self.event(None, type=EventType.DELETE, refers_to="t-2"))
        self.assertEqual([(r.kind, r.refers_to) for r in self.sent("irc")], [("delete", "irc-1")])
        self.assertEqual(self.sent("xmpp"), [])

    def test_reply_to_a_copy(self) -> None:
        """A reply to a copy is relayed as a reply to the original, and to the other
        copies."""
        self.dispatch(self.event("question?", message_id="t-3"))
        self.sent("irc"), self.sent("xmpp")
        self.said("answer", source="irc", nick="bob", reply_to="irc-1")
        back = self.sent("test")
        self.assertEqual([(r.text, r.reply_to) for r in back], [("<bob> answer", "t-3")])
        self.assertEqual(
            [(r.text, r.reply_to) for r in self.sent("xmpp")], [("<bob> answer", "xmpp-1")]
        )

    def test_thread_follows_its_root(self) -> None:
        """A message in a thread is posted in the thread of the root's copy where the
        network has threads (and as a plain line where it has not)."""
        self.irc.supports = MODEL | {"thread"}
        self.dispatch(self.event("root", message_id="t-8"))
        self.sent("irc"), self.sent("xmpp")
        self.said("in the thread", thread_id="t-8")
        self.assertEqual([r.thread_id for r in self.sent("irc")], ["irc-1"])
        self.assertEqual([r.thread_id for r in self.sent("xmpp")], [None])

    def test_reply_in_the_channel_as_the_network_spells_it(self) -> None:
        """A reply to a copy is found when the network spells the channel otherwise than
        the bridge (#DEV for #dev)."""
        self.dispatch(self.event("question?", message_id="t-9"))
        self.sent("irc"), self.sent("xmpp")
        self.said("answer", source="irc", channel="#DEV", nick="bob", reply_to="irc-1")
        self.assertEqual([r.reply_to for r in self.sent("test")], ["t-9"])

    def test_reply_to_a_native_message(self) -> None:
        """A reply to a message said where it was (relayed out) answers its copies."""
        self.dispatch(self.event("first", source="irc", nick="bob", message_id="i-1"))
        self.sent("test"), self.sent("xmpp")
        self.said("second", source="irc", nick="carol", reply_to="i-1")
        self.assertEqual([r.reply_to for r in self.sent("test")], ["test-1"])

    def test_reaction_to_a_copy(self) -> None:
        """A reaction to a copy reaches the original as the bot's reaction, and a network
        without reactions as a short line."""
        self.dispatch(self.event("nice", message_id="t-4"))
        self.sent("irc"), self.sent("xmpp")
        self.dispatch(
            self.event(
                None,
                source="irc",
                nick="bob",
                type=EventType.REACTION,
                refers_to="irc-1",
                reaction="👍",
            )
        )
        self.assertEqual(
            [(r.kind, r.text, r.refers_to) for r in self.sent("test")], [("reaction", "👍", "t-4")]
        )
        self.assertEqual(
            [(r.kind, r.text) for r in self.sent("xmpp")], [("message", "* bob reacted 👍")]
        )

    def test_reaction_taken_back_is_not_carried(self) -> None:
        """A reaction taken back is not relayed (the bot's own stays)."""
        self.dispatch(self.event("nice", message_id="t-5"))
        self.sent("irc"), self.sent("xmpp")
        event = self.event(
            None,
            source="irc",
            nick="bob",
            type=EventType.REACTION,
            refers_to="irc-1",
            reaction="👍",
        )
        event.data["removed"] = True
        self.dispatch(event)
        self.assertEqual(self.sent("test"), [])

    def test_network_ids_written_into_the_receipts(self) -> None:
        """A copy's network id, learnt by its source after the relay, is written into its
        receipt on the next pruning, so it outlasts the source's own memory."""
        self.dispatch(self.event("remember me", message_id="t-7"))
        self.assertEqual(self.copy_ids(), [None, None])
        self.advance(600)
        self.assertEqual(self.copy_ids(), ["irc-1", "xmpp-1"])

    def copy_ids(self) -> list[str | None]:
        sessions = self.bot.databases["main"].session_factory
        assert sessions is not None
        with sessions() as session:
            query = "SELECT copy_id FROM bridge_receipts ORDER BY copy_source"
            return list(session.scalars(text(query)))

    def test_receipts_pruned_by_age(self) -> None:
        """Receipts older than keep_receipts are pruned on schedule; then an edit is not
        carried any more."""
        self.dispatch(self.event("old", message_id="t-6"))
        self.assertEqual(self.receipts(), 2)
        self.advance(7 * 24 * 3600 + 1200)
        self.assertEqual(self.receipts(), 0)
        self.sent("irc")
        self.dispatch(self.event("older", type=EventType.EDIT, refers_to="t-6"))
        self.assertEqual(self.sent("irc"), [])


backend_variants(ReceiptTests, globals())


class EventsTests(BridgeCase):
    """Notices, joins, parts and kicks, as configured."""

    bridge = {
        "conversations": "test:#dev irc:#dev xmpp:dev@muc.example",
        "relay_notices": "yes",
        "relay_joins": "yes",
        "relay_actions": "no",
    }

    def test_notice_relayed_when_asked(self) -> None:
        """With relay_notices a notice is relayed (as a notice)."""
        self.said("heads up", type=EventType.NOTICE)
        self.clock.advance(0)
        sent = self.sent("irc")
        self.assertEqual([(r.text, r.notice) for r in sent], [("<alice> heads up", True)])

    def test_actions_held_back(self) -> None:
        """With relay_actions = no an action stays where it was done."""
        self.said("waves", type=EventType.ACTION)
        self.assertEqual(self.texts("irc"), [])

    def test_joins_parts_and_kicks(self) -> None:
        """Joins, parts and kicks are relayed as lines of text."""
        self.said(None, type=EventType.STATE, data={"kind": "join"}, message_id=None)
        self.said(
            None, type=EventType.STATE, data={"kind": "kick", "kicked": "mallory"}, message_id=None
        )
        quit = self.event(
            None,
            type=EventType.STATE,
            message_id=None,
            data={"kind": "quit", "channels": ["#dev"]},
        )
        quit.channel = None
        self.dispatch(quit)
        self.assertEqual(
            self.texts("irc"),
            [
                "* alice joined #dev on test",
                "* mallory was kicked from #dev on test",
                "* alice quit #dev on test",
            ],
        )


class DefaultsTests(BridgeCase):
    """What is not relayed by default; the examples of the commands."""

    run_examples = True

    def test_notices_and_joins_not_relayed(self) -> None:
        """By default notices and joins stay where they were."""
        self.said("heads up", type=EventType.NOTICE)
        self.said(None, type=EventType.STATE, data={"kind": "join"}, message_id=None)
        self.assertEqual(self.texts("irc"), [])


class AnswerAllTests(BridgeCase):
    """answer = all."""

    bridge = {"conversations": "test:#dev irc:#dev xmpp:dev@muc.example", "answer": "all"}

    def test_answer_everywhere(self) -> None:
        """The bot's answer to a command is said in every conversation of the bridge."""
        self.said("botcore: echo hi")
        self.assertEqual(self.texts("test"), ["hi"])
        self.assertEqual(self.texts("irc"), ["<alice> botcore: echo hi", "hi"])
        self.assertEqual(self.texts("xmpp"), ["<alice> botcore: echo hi", "hi"])


class PeopleTests(BridgeCase):
    """One name per person, and ignores that follow the person."""

    def extra_config(self) -> dict[str, dict[str, Any]]:
        return (
            {"auth": {"permissions": "+admin"}}
            if self._testMethodName.startswith("test_ignore")
            else {}
        )

    def authenticated(self, event: Event, account: int) -> Event:
        event.authenticated = True
        self.bot.auth.remember(event, account, self.clock.seconds())
        return event

    def test_display_name(self) -> None:
        """An authenticated sender is shown under their account's display name on every
        side; one who is not, under their nick."""
        account = self.link_account("alice", ("test", "alice"), ("irc", "al"))
        sessions = self.bot.databases["main"].session_factory
        assert sessions is not None
        with sessions() as session:
            row = session.get(accounts.Account, account)
            assert row is not None
            accounts.set_display_name(session, row, "Alice Liddell")
            session.commit()
        event = self.event("hi")
        self.dispatch(self.authenticated(event, account))
        self.assertEqual(self.texts("irc"), ["<Alice Liddell> hi"])
        self.said("hello", nick="al", source="irc")
        self.assertEqual(self.texts("test"), ["<al> hello"])

    def test_set_display_name_command(self) -> None:
        """``set display name`` gives the account its name; a look-alike of another
        account's name is refused."""
        self.link_account("bob", ("test", "bob"))
        account = self.link_account("alice", ("test", "alice"))
        event = self.event("set display name Queen Alice", nick="alice", channel="alice")
        event.public = False
        self.dispatch(self.authenticated(event, account))
        self.assertIn("Queen Alice", " ".join(self.texts("test")))
        event = self.event("set display name BOB", nick="alice", channel="alice")
        event.public = False
        self.dispatch(self.authenticated(event, account))
        self.assertRegex(" ".join(self.texts("test")), "looks too much like")

    def test_ignore_follows_the_account(self) -> None:
        """``bridge ignore`` of a person with an account holds back their messages on
        every network; unignore relays them again."""
        self.link_account("mallory", ("test", "mallory"), ("irc", "mal"))
        self.said("botcore: bridge ignore mallory", nick="admin")
        self.assertRegex(self.texts("test")[0], "won't relay account mallory")
        self.texts("irc"), self.texts("xmpp")
        self.said("spam", nick="mallory")
        self.said("spam", nick="mal", source="irc")
        self.assertEqual(self.texts("irc") + self.texts("xmpp") + self.texts("test"), [])
        self.said("botcore: bridge unignore account mallory", nick="admin")
        self.texts("test"), self.texts("irc"), self.texts("xmpp")
        self.said("hi again", nick="mal", source="irc")
        self.assertEqual(self.texts("test"), ["<mal> hi again"])

    def test_someone_elses_name_marked(self) -> None:
        """A nick that looks like another account's name, said by someone not proven to
        be them, is shown with a question mark; by their own linked identity, plainly."""
        self.link_account("alice", ("test", "alice"))
        self.said("I am bob", source="irc", nick="bob")
        self.assertEqual(self.texts("test"), ["<bob> I am bob"])
        self.said("I am alice", source="irc", nick="ALICE")
        self.said("I am alice", source="irc", nick="a1ice")
        self.assertEqual(self.texts("test"), ["<ALICE?> I am alice", "<a1ice?> I am alice"])
        self.said("it's me", nick="alice")
        self.assertEqual(self.texts("irc"), ["<alice> it's me"])

    def test_username_without_display_name(self) -> None:
        """An authenticated sender whose account has no display name is shown under its
        username."""
        account = self.link_account("Alice", ("test", "al1ce"))
        self.dispatch(self.authenticated(self.event("hi", nick="al1ce"), account))
        self.assertEqual(self.texts("irc"), ["<Alice> hi"])

    def test_ignored_joins_not_relayed(self) -> None:
        """An ignored person's joins are not relayed either."""
        self.said("botcore: bridge ignore mallory", nick="admin")
        self.texts("test"), self.texts("irc"), self.texts("xmpp")
        self.bot.config.sections["bridge:dev"]["relay_joins"] = True
        self.said(
            None, nick="mallory", type=EventType.STATE, data={"kind": "join"}, message_id=None
        )
        self.assertEqual(self.texts("irc"), [])

    def test_ignore_a_nick_without_account(self) -> None:
        """Someone without an account is ignored by nick on one source."""
        self.said("botcore: bridge ignore troll on irc", nick="admin")
        self.assertRegex(self.texts("test")[0], "troll on irc")
        self.texts("irc"), self.texts("xmpp")
        self.said("boo", nick="Troll", source="irc")
        self.assertEqual(self.texts("test"), [])
        self.said("boo", nick="troll")
        self.assertEqual(self.texts("irc"), ["<troll> boo"])
        self.texts("xmpp")
        self.said("botcore: bridge ignores", nick="admin")
        self.assertRegex(self.texts("test")[0], "troll on irc")


class NotAdminTests(BridgeCase):
    """The admin commands refuse non-admins."""

    def test_refused(self) -> None:
        """Without admin, ignore, add and remove are refused."""
        for command in ("bridge ignore bob", "bridge add x test:#a irc:#b", "bridge remove dev"):
            self.said(f"botcore: {command}")
            self.assertNotRegex(" ".join(self.texts("test")), "won't relay|relays between|removed")
        self.said("hi")
        self.assertEqual(self.texts("irc")[-1], "<alice> hi")


class CommandTests(BridgeCase):
    """bridge status, add and remove, and bad bridges."""

    def extra_config(self) -> dict[str, dict[str, Any]]:
        return {
            "auth": {"permissions": "+admin"},
            "bridge:nowhere": {"conversations": "test:#dev gopher:#dev"},
            "bridge:lonely": {"conversations": "test:#dev"},
            "bridge:garbled": {"conversations": "test:#dev irc"},
        }

    def status(self) -> str:
        self.said("botcore: bridge status", nick="admin")
        return "\n".join(self.texts("test"))

    def test_status(self) -> None:
        """bridge status names each bridge, its conversations and their sources' states,
        and why a bad bridge is not running."""
        status = self.status()
        self.assertIn(
            "bridge dev: test:#dev (connected), irc:#dev (connected), "
            "xmpp:dev@muc.example (connected)",
            status,
        )
        self.assertIn("bridge nowhere is not running: there is no source called 'gopher'", status)
        self.assertIn(
            "bridge lonely is not running: a bridge needs two or more conversations; it has 1",
            status,
        )
        self.assertIn("bridge garbled is not running: 'irc' is not SOURCE:TARGET", status)
        self.flushLoggedErrors()

    def test_bad_bridges_leave_the_good_ones_running(self) -> None:
        """The bot runs, and the good bridge relays, whatever the bad ones say."""
        self.said("hi")
        self.assertEqual(self.texts("irc"), ["<alice> hi"])
        self.assertEqual(self.bot.state, "running")
        self.flushLoggedErrors()

    def test_add_and_remove(self) -> None:
        """bridge add makes a bridge at once; bridge remove takes one away, a
        configured one too."""
        self.said("botcore: bridge add ops test:#ops irc:#ops", nick="admin")
        self.assertEqual(
            self.texts("test"), ["admin: Bridge ops relays between test:#ops, irc:#ops"]
        )
        self.texts("irc")
        self.said("deploying", channel="#ops")
        self.assertEqual(self.texts("irc"), ["<alice> deploying"])
        self.assertIn("bridge ops (added by command): test:#ops", self.status())
        self.said("botcore: bridge remove ops", nick="admin")
        self.said("botcore: bridge remove dev", nick="admin")
        self.texts("test"), self.texts("irc"), self.texts("xmpp")
        self.said("quiet", channel="#ops")
        self.said("quiet")
        self.assertEqual(self.texts("irc"), [])
        self.said("botcore: bridge remove nothing", nick="admin")
        self.assertEqual(self.texts("test"), ["admin: There is no bridge called nothing"])
        self.flushLoggedErrors()

    def test_add_refuses_bad_bridges(self) -> None:
        """bridge add says what is wrong with a bridge it cannot make."""
        self.said("botcore: bridge add x test:#x gopher:#x", nick="admin")
        self.said("botcore: bridge add y test:#y", nick="admin")
        self.said("botcore: bridge add z test:#z irc", nick="admin")
        self.assertEqual(
            self.texts("test"),
            [
                "admin: I can't bridge that: there is no source called 'gopher'",
                "admin: I can't bridge that: a bridge needs two or more conversations; it has 1",
                "admin: I can't bridge that: 'irc' is not SOURCE:TARGET (a source's name, a "
                "colon, a channel)",
            ],
        )
        self.flushLoggedErrors()

    def rewrite(self, bridges: dict[str, str]) -> None:
        """Give bot.ini these [bridge:NAME] sections (name -> conversations), and only
        these, then reload the config."""
        path = self.directory / "bot.ini"
        parser = configparser.ConfigParser(interpolation=None)
        parser.optionxform = str  # type: ignore[assignment,method-assign]
        parser.read(path)
        for section in parser.sections():
            if section.startswith("bridge:"):
                parser.remove_section(section)
        for name, conversations in bridges.items():
            parser[f"bridge:{name}"] = {"conversations": conversations}
        with open(path, "w") as handle:
            parser.write(handle)
        self.assertEqual(self.bot.reload_config(), [])

    def test_config_reload_adds_and_removes(self) -> None:
        """A config reload adds the bridges the file now has and removes those it lost."""
        self.rewrite({"dev": "test:#dev irc:#dev", "ops": "test:#ops xmpp:ops@muc.example"})
        self.said("now", channel="#ops")
        self.assertEqual(self.texts("xmpp"), ["<alice> now"])
        self.rewrite({"ops": "test:#ops xmpp:ops@muc.example"})
        status = self.status()
        self.assertNotIn("bridge dev", status)
        self.assertIn("bridge ops: test:#ops (connected), xmpp:ops@muc.example", status)
        self.said("gone")
        self.assertEqual(self.texts("irc"), [])

    def test_reload_and_commands(self) -> None:
        """A bridge removed by command stays removed through a reload that leaves its
        section as it was, and comes back when its section changes; one added by
        command gives way to a new section of its name."""
        self.said("botcore: bridge remove dev", nick="admin")
        self.said("botcore: bridge add ops test:#ops irc:#ops", nick="admin")
        self.rewrite({"dev": "test:#dev irc:#dev, xmpp:dev@muc.example"})
        status = self.status()
        self.assertNotIn("bridge dev", status)
        self.assertIn("bridge ops (added by command)", status)
        self.rewrite({"dev": "test:#dev irc:#dev", "ops": "test:#ops xmpp:ops@muc.example"})
        status = self.status()
        self.assertIn("bridge dev: test:#dev (connected), irc:#dev (connected)", status)
        self.assertIn("bridge ops: test:#ops (connected), xmpp:ops@muc.example", status)


class AwayTests(BridgeCase):
    """A target whose source is not connected."""

    def extra_config(self) -> dict[str, dict[str, Any]]:
        return {"plugin:bridge": {"max_pending": "2"}}

    def test_overflow_counted(self) -> None:
        """Past max_pending the oldest waiting copies are dropped, counted in bridge
        status and logged; the rest are sent once the source is back."""
        self.irc.set_state("reconnecting")
        for said in ("one", "two", "three"):
            self.said(said)
        status = self.event("bridge status", channel="alice")
        status.public = False
        self.dispatch(status)
        said = "\n".join(self.texts("test"))
        self.assertIn("irc:#dev (reconnecting, 2 waiting, 1 dropped)", said)
        self.assertIn("xmpp:dev@muc.example (connected)", said)
        self.irc.set_state("connected")
        self.clock.advance(0)
        self.assertEqual(self.texts("irc"), ["<alice> two", "<alice> three"])

    def test_held_until_connected(self) -> None:
        """Copies for a source that is not connected wait (counted in bridge status) and
        are sent, in order, once it is connected again."""
        self.irc.set_state("reconnecting")
        self.said("one")
        self.said("two")
        self.assertEqual(self.texts("irc"), [])
        self.assertEqual(self.texts("xmpp"), ["<alice> one", "<alice> two"])
        self.irc.set_state("connected")
        self.clock.advance(0)
        self.assertEqual(self.texts("irc"), ["<alice> one", "<alice> two"])


class ConfigTests(SynchronousTestCase):
    """The keys of a [bridge:NAME] section are checked with the rest of the config."""

    def write(self, text: str) -> str:
        path = Path(self.mktemp())
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        return str(path)

    def test_unknown_key_and_bad_value(self) -> None:
        """An unknown key, a template with an unknown field and a bad yes/no are config
        errors; template.SOURCE keys are known."""
        path = self.write(
            "[bridge:dev]\nconversations = a:#x b:#y\ncolour = red\n"
            "template = {who}: {text}\ntemplate.b = {name} {text}\nrelay_joins = maybe\n"
        )
        with self.assertRaises(ConfigErrors) as caught:
            read_config(path)
        said = "\n".join(str(error) for error in caught.exception.errors)
        self.assertIn("colour", said)
        self.assertIn("{who}", said)
        self.assertIn("relay_joins", said)
        self.assertNotIn("template.b:", said)

    def test_conversations_required(self) -> None:
        """A bridge without conversations is a config error."""
        with self.assertRaises(ConfigErrors) as caught:
            read_config(self.write("[bridge:dev]\nanswer = all\n"))
        self.assertIn("conversations", str(caught.exception.errors[0]))

    def test_conversations_parsed(self) -> None:
        """Entries split on spaces, commas and new lines, at their first colon, each
        once; malformed ones are named."""
        found, problems = parse_conversations("irc:#dev, m:#dev:example.org\nx:a@b irc:#dev :x y:")
        self.assertEqual([str(c) for c in found], ["irc:#dev", "m:#dev:example.org", "x:a@b"])
        self.assertEqual(len(problems), 2)


class ConsoleTests(BridgeCase):
    """A console (private) conversation as an end of a bridge."""

    bridge = {"conversations": "test:alice irc:#dev"}

    def test_private_conversation_bridged(self) -> None:
        """What alice says to the bot on the console reaches the channel, and the
        channel's messages reach her; her commands are still answered, there only."""
        event = self.event("hello channel", channel="alice")
        event.public = False
        self.dispatch(event)
        self.assertEqual(self.texts("irc"), ["<alice> hello channel"])
        self.said("hello alice", source="irc", nick="bob")
        self.assertEqual(
            [(r.text, r.target) for r in self.sent("test")], [("<bob> hello alice", "alice")]
        )
        event = self.event("echo hi", channel="alice")
        event.public = False
        self.dispatch(event)
        self.assertEqual(self.texts("test"), ["hi"])
        self.assertEqual(self.texts("irc"), ["<alice> echo hi"])


class UnloadedSourceTests(BridgeCase):
    """A conversation whose source is configured but not loaded."""

    def test_copy_left_out(self) -> None:
        """A source that is not running gets no copy (and no receipt); the others do;
        an empty message is not relayed."""
        self.said("warm", message_id=None)  # the bridge is made while xmpp runs
        self.texts("irc")
        self.successResultOf(self.xmpp.disownServiceParent() or succeed(None))
        self.dispatch(self.event("hi", message_id="t-1"))
        self.assertEqual(self.texts("irc"), ["<alice> hi"])
        self.assertEqual(self.receipts(), 1)
        self.said("   ")
        self.assertEqual(self.texts("irc"), [])


class ReloadTests(BridgeCase):
    """The plugin reloaded while the bot runs."""

    def extra_config(self) -> dict[str, dict[str, Any]]:
        return {"auth": {"permissions": "+admin"}}

    def test_reload_keeps_bridges_and_receipts(self) -> None:
        """After a reload, bridges added by command, held copies and receipts are still
        there: an edit reaches a copy made before it."""
        self.said("botcore: bridge add ops test:#ops irc:#ops", nick="admin")
        self.dispatch(self.event("before", message_id="t-1"))
        self.texts("test"), self.texts("irc"), self.texts("xmpp")
        self.successResultOf(self.bot.plugins.reload_plugin("bridge"))
        self.dispatch(self.event("after", type=EventType.EDIT, refers_to="t-1"))
        # (irc-1 is the copy of the bridge add command.)
        self.assertEqual([(r.kind, r.refers_to) for r in self.sent("irc")], [("edit", "irc-2")])
        self.said("still", channel="#ops")
        self.assertEqual(self.texts("irc"), ["<alice> still"])


class DisplayNameTests(PluginTestCase):
    """The identity plugin's display name commands."""

    load = ["identity"]

    def test_set_show_and_remove(self) -> None:
        """An authenticated account sets, shows and removes its display name; one answer
        each; without authentication it is refused."""
        self.link_account("alice", ("test", "alice"))
        self.assertResponseMatches("set display name Alice", "authenticate first", sender="alice")
        event = self.make_event("set my display name to Alice L", sender="alice")
        self.assertEqual(self.responses(self.authed(event)), ["You are shown as Alice L"])
        self.assertResponseMatches(
            self.authed(self.make_event("who am I", sender="alice")), "shown as Alice L"
        )
        self.assertEqual(
            self.responses(self.authed(self.make_event("remove my displayname", sender="alice"))),
            ["You are shown as alice"],
        )

    def authed(self, event: Event) -> Event:
        """``event`` from alice, authenticated (as the core's Identify will find)."""
        account = self.link_account_id("alice")
        event.authenticated = True
        self.bot.auth.remember(event, account, self.clock.seconds())
        return event

    def link_account_id(self, name: str) -> int:
        sessions = self.bot.databases["main"].session_factory
        assert sessions is not None
        with sessions() as session:
            account = accounts.find_account(session, name)
            assert account is not None
            return account.id
