"""Tests for the facts a source answers about itself: the bot's names there and which
targets are channels (botcore.source, and the test and console sources built on it)."""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from typing import Any

from twisted.trial.unittest import SynchronousTestCase

from botcore.cli.repl import ConsoleSource
from botcore.source import Source, is_channel_on, names_on, unique_names
from botcore.testing import MemorySource, PluginTestCase


@dataclass
class NamedBot:
    """Just what a source asks of its bot for names: the configured names, and sources."""

    name: str = "botcore"
    names: list[str] = field(default_factory=lambda: ["botcore", "bc", "BotCore"])
    sources: dict[str, Any] = field(default_factory=dict)

    def get_source(self, name: str | None) -> Any:
        return self.sources.get(name) if name is not None else None


class NamesTests(SynchronousTestCase):
    """Source.names: the current nick, then the configured names, each once."""

    def test_nick_first(self) -> None:
        """The nick on the source comes first, then [bot] name and names; names equal but
        for case count once (the first spelling)."""
        source = Source("irc", NamedBot())
        self.assertEqual(source.names(), ("botcore", "bc"))
        source.nick = "robo"
        self.assertEqual(source.names(), ("robo", "botcore", "bc"))
        source.nick = "BOTCORE"
        self.assertEqual(source.names(), ("BOTCORE", "bc"))

    def test_no_bot(self) -> None:
        """A source without a bot answers to its nick alone."""
        source = Source("irc", None)
        self.assertEqual(source.names(), ())
        source.nick = "robo"
        self.assertEqual(source.names(), ("robo",))

    def test_names_on(self) -> None:
        """names_on asks the named source; for one not running, the configured names."""
        bot = NamedBot()
        source = Source("irc", bot)
        source.nick = "robo"
        bot.sources["irc"] = source
        self.assertEqual(names_on(bot, "irc"), ("robo", "botcore", "bc"))
        self.assertEqual(names_on(bot, "gone"), ("botcore", "bc"))
        self.assertEqual(names_on(None, "irc"), ())

    def test_unique_names(self) -> None:
        """Empty names are left out; the first spelling stays."""
        self.assertEqual(unique_names(["a", "", None, "A", "b"]), ("a", "b"))


class ChannelTests(SynchronousTestCase):
    """is_channel: each source's own rule."""

    def test_base_has_no_channels(self) -> None:
        """The base source knows no channels."""
        self.assertFalse(Source("s", None).is_channel("#python"))

    def test_memory_source(self) -> None:
        """The test source's channels start with # or &, or with the chantypes given."""
        source = MemorySource("test")
        self.assertTrue(source.is_channel("#test"))
        self.assertTrue(source.is_channel("&local"))
        self.assertFalse(source.is_channel("user"))
        self.assertFalse(source.is_channel(""))
        plus = MemorySource("test", chantypes="+")
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
        bot = NamedBot()
        bot.sources["test"] = MemorySource("test")
        self.assertTrue(is_channel_on(bot, "test", "#x"))
        self.assertFalse(is_channel_on(bot, "test", "x"))
        self.assertFalse(is_channel_on(bot, "gone", "#x"))
        self.assertFalse(is_channel_on(None, "test", "#x"))


class BotSourceTests(PluginTestCase):
    """The test bot's source answers with the configured names."""

    load = ()
    plugin_config = {"bot": {"name": "robbie", "names": ["rob"]}}

    def test_names(self) -> None:
        """The test source's names: its nick (the bot's name), then the other names."""
        self.assertEqual(self.source.names(), ("robbie", "rob"))
        self.source.nick = "robbie_"
        self.assertEqual(names_on(self.bot, "test"), ("robbie_", "robbie", "rob"))
