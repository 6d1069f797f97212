"""Tests for the facts a source answers about itself: the bot's names there and which
targets are channels (botcore.source, and the test and console sources built on it)."""

from __future__ import annotations

import io

from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from botcore.cli.repl import ConsoleSource
from botcore.event import Response
from botcore.source import (
    SentMessage,
    SentMessages,
    Source,
    is_channel_on,
    names_on,
    unique_names,
)
from botcore.testing import MemorySource, PluginTestCase, StubContext


def named_bot() -> StubContext:
    """A bot configured with the names botcore, bc and BotCore."""
    return StubContext(reactor=Clock(), names=["bc", "BotCore"])


class NamesTests(SynchronousTestCase):
    """Source.names: the current nick, then the configured names, each once."""

    def test_nick_first(self) -> None:
        """The nick on the source comes first, then [bot] name and names; names equal but
        for case count once (the first spelling)."""
        source = Source("irc", named_bot())
        self.assertEqual(source.names(), ("botcore", "bc"))
        source.nick = "robo"
        self.assertEqual(source.names(), ("robo", "botcore", "bc"))
        source.nick = "BOTCORE"
        self.assertEqual(source.names(), ("BOTCORE", "bc"))

    def test_names_on(self) -> None:
        """names_on asks the named source; for one not running, the configured names."""
        bot = named_bot()
        source = Source("irc", bot)
        source.nick = "robo"
        bot.add_source(source)
        self.assertEqual(names_on(bot, "irc"), ("robo", "botcore", "bc"))
        self.assertEqual(names_on(bot, "gone"), ("botcore", "bc"))

    def test_unique_names(self) -> None:
        """Empty names are left out; the first spelling stays."""
        self.assertEqual(unique_names(["a", "", None, "A", "b"]), ("a", "b"))


class ChannelTests(SynchronousTestCase):
    """is_channel: each source's own rule."""

    def test_base_has_no_channels(self) -> None:
        """The base source knows no channels."""
        self.assertFalse(Source("s", named_bot()).is_channel("#python"))

    def test_memory_source(self) -> None:
        """The test source's channels start with # or &, or with the chantypes given."""
        bot = named_bot()
        source = MemorySource("test", bot)
        self.assertTrue(source.is_channel("#test"))
        self.assertTrue(source.is_channel("&local"))
        self.assertFalse(source.is_channel("user"))
        self.assertFalse(source.is_channel(""))
        plus = MemorySource("test", bot, chantypes="+")
        self.assertTrue(plus.is_channel("+modeless"))
        self.assertFalse(plus.is_channel("#test"))

    def test_console_source(self) -> None:
        """The console's channels are named as on IRC."""
        from botcore.cli.repl import Console
        from botcore.settings import read_config

        path = self.mktemp()
        with open(path, "w", encoding="utf-8") as handle:
            handle.write("[bot]\nautoload = no\n[database:main]\nurl = sqlite://\n")
        console = Console(read_config(path), io.StringIO())
        source = console.source
        self.assertIsInstance(source, ConsoleSource)
        self.assertTrue(source.is_channel("#botcore"))
        self.assertFalse(source.is_channel("user"))
        self.assertEqual(source.names(), ("botcore",))

    def test_is_channel_on(self) -> None:
        """is_channel_on asks the named source; a source not running has no channels."""
        bot = named_bot()
        bot.add_source(MemorySource("test", bot))
        self.assertTrue(is_channel_on(bot, "test", "#x"))
        self.assertFalse(is_channel_on(bot, "test", "x"))
        self.assertFalse(is_channel_on(bot, "gone", "#x"))


class BotSourceTests(PluginTestCase):
    """The test bot's source answers with the configured names."""

    load = ()
    plugin_config = {"bot": {"name": "robbie", "names": ["rob"]}}

    def test_names(self) -> None:
        """The test source's names: its nick (the bot's name), then the other names."""
        self.assertEqual(self.source.names(), ("robbie", "rob"))
        self.source.nick = "robbie_"
        self.assertEqual(names_on(self.bot, "test"), ("robbie_", "robbie", "rob"))


class SentMessagesTests(SynchronousTestCase):
    """The bounded memory of what the bot sent, per conversation."""

    def sent(self, local, network, target="#a"):
        return SentMessage(local, network, target, "text", 0.0)

    def test_per_target_bound(self):
        """The oldest of a conversation is forgotten, its local id with it."""
        memory = SentMessages(per_target=2)
        for n in range(3):
            memory.add(self.sent(f"l{n}", f"n{n}"))
        self.assertEqual([m.message_id for m in memory.recent("#a")], ["n1", "n2"])
        self.assertEqual(memory.network_id("l0"), "l0")
        self.assertEqual(memory.network_id("l2"), "n2")

    def test_targets_bound(self):
        """Past ``targets`` conversations, the least recently written is forgotten."""
        memory = SentMessages(per_target=5, targets=2)
        memory.add(self.sent("a", "na", "#a"))
        memory.add(self.sent("b", "nb", "#b"))
        memory.add(self.sent("a2", "na2", "#a"))  # #a used again: #b is now the oldest
        memory.add(self.sent("c", "nc", "#c"))
        self.assertEqual(memory.recent("#b"), [])
        self.assertEqual(len(memory.recent("#a")), 2)
        self.assertEqual(memory.network_id("b"), "b")

    def test_split_reply_keeps_first_id(self):
        """A reply sent as several messages is known by the first."""
        memory = SentMessages()
        memory.add(self.sent("l", "first"))
        memory.add(self.sent("l", "second"))
        self.assertEqual(memory.network_id("l"), "first")

    def test_zero_remembers_nothing(self):
        memory = SentMessages(per_target=0)
        memory.add(self.sent("l", "n"))
        self.assertEqual((memory.recent("#a"), memory.network_id("l")), ([], "l"))

    def test_source_option(self):
        """A source remembers as many as its ``sent_memory`` says."""
        source = MemorySource(
            "test", StubContext(reactor=Clock()), {"sent_memory": 1}, supports={"message-ids"}
        )
        for text in ("one", "two"):
            source.send(Response(text, target="#a", source="test"))
        self.assertEqual([m.text for m in source.sent_messages("#a")], ["two"])
