"""Dispatcher.wants: whether any processor of the chain would do something with an event,
from types and cheap checks, so a source can leave out what nobody wants (channel chatter
with only addressed commands loaded) without a worker hand-off."""

from __future__ import annotations

from botcore.event import EventType
from botcore.testing import PluginTestCase


class CommandsOnlyTests(PluginTestCase):
    """core + basic: only addressed commands."""

    load = ["basic"]
    public = True

    def wants(self, text: str | None, **kw) -> bool:
        return self.bot.dispatcher.wants(self.make_event(text, **kw))

    def test_chatter_unwanted(self):
        """A channel line that names no name of the bot is wanted by nobody, and indeed
        gets nothing when dispatched anyway."""
        self.assertFalse(self.wants("hello all, lunch?"))
        self.assertEqual(self.responses("hello all, lunch?"), [])

    def test_addressed_wanted(self):
        """Every way of addressing the bot, in any case, is wanted (and answered)."""
        for text in ("botcore: ping", "BotCore, ping", "ping, botcore", "botcore ping"):
            self.assertTrue(self.wants(text), text)
        self.assertEqual(self.responses("BotCore, ping"), ["user: pong"])

    def test_name_anywhere_wanted(self):
        """A line that holds the name anywhere is wanted: Addressed decides later."""
        self.assertTrue(self.wants("is botcore is asleep?"))

    def test_private_wanted(self):
        """A private message is always said to the bot."""
        self.assertTrue(self.wants("ping", public=False))

    def test_state_unwanted(self):
        """A join nobody handles is wanted by nobody."""
        self.assertFalse(self.wants(None, type=EventType.STATE, data={"kind": "join"}))


class ObserverTests(PluginTestCase):
    """With the log (it observes every event), everything is wanted."""

    load = ["basic", "log"]
    public = True

    def test_everything_wanted(self):
        """The log wants chatter and joins."""
        dispatcher = self.bot.dispatcher
        self.assertTrue(dispatcher.wants(self.make_event("hello all, lunch?")))
        join = self.make_event(None, type=EventType.STATE, data={"kind": "join"})
        self.assertTrue(dispatcher.wants(join))


class ReloadTests(PluginTestCase):
    """The answer follows the chain: loading a plugin that watches chatter changes it."""

    load = ["basic"]
    public = True

    def test_after_load(self):
        """Loading the log (it records every line) makes chatter wanted. (A plugin with
        no tables: loading one with tables here and forgetting it at the end would unmap
        the model classes other test modules imported from it.)"""
        event = self.make_event("python++")
        self.assertFalse(self.bot.dispatcher.wants(event))
        self.successResultOf(self.bot.plugins.load_plugin("log"))
        self.assertTrue(self.bot.dispatcher.wants(event))
