"""The events plugin: the bus's counters and catalogue, asked in chat."""

from __future__ import annotations

from botcore.event import Event
from botcore.processor import Processor, handler
from botcore.testing import PluginTestCase


class Boom(Processor):
    """Fails on every deploy event."""

    event_types = ("deploy",)
    addressed = False

    @handler
    def boom(self, event):
        raise RuntimeError("boom")


class EventStatsTests(PluginTestCase):
    load = ("events", "basic")
    extra_processors = (Boom,)
    plugin_config = {
        "event:deploy": {"description": "A deployment finished."},
        "event:rollback": {"description": "A deployment undone.", "parent": "deploy"},
        "topic:ops": {"types": "deploy"},
    }

    def publish(self, type):
        self.successResultOf(self.bot.context.dispatch(Event(source="test", type=type)))

    def test_types(self):
        """Events seen, handled (answered) and failed, by type."""
        self.assertResponseMatches("ping", "^pong$")
        self.publish("rollback")
        self.flushLoggedErrors(RuntimeError)
        answer = self.responses("event stats")[0]
        self.assertRegex(answer, r"message: 1 seen, 1 handled, 0 failed, \d+ms")
        self.assertRegex(answer, r"rollback: 1 seen, 0 handled, 1 failed")

    def test_topics_and_processors(self):
        """A topic sums its types and subtypes; processors are counted by plugin.Class."""
        self.publish("deploy")
        self.publish("rollback")
        self.flushLoggedErrors(RuntimeError)
        self.assertResponseMatches("event stats topics", r"^ops: 2 seen, 0 handled, 2 failed, ")
        self.assertResponseMatches(
            "event stats processors", r"testing\.Boom: 2 seen, 0 handled, 2 failed"
        )
        self.assertResponseMatches("event stats reactors", "^No reactors counted yet$")

    def test_filters(self):
        """event stats filters tells each outgoing filter's counts (Format's here: every
        reply the bot sent, the answers to earlier asks included)."""
        self.assertResponseMatches("ping", "^pong$")
        self.assertResponseMatches(
            "event stats filters",
            r"^core\.Format\.fit: 1 seen, 0 changed, 0 dropped, 0 failed, \d+ms$",
        )

    def test_catalogue(self):
        """event types lists types and topics; event type describes one."""
        self.assertResponseMatches("event types", r"^Event types: .*deploy.*; topics: ops$")
        self.assertResponseMatches(
            "event type rollback",
            r"^rollback: A deployment undone\.; subtype of deploy; in ops; payload schema "
            r'\{"type": "object"\}$',
        )
        self.assertResponseMatches("event type ops", r"^Topic ops: \(no description\) \(deploy\)$")
        self.assertResponseMatches(
            "event type nope", "^There is no event type or topic called nope$"
        )
