"""The bus's counters, through a real dispatcher."""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from botcore.bus.catalogue import Catalogue, EventTypeSpec, TopicSpec
from botcore.dispatch.dispatcher import Dispatcher
from botcore.event import Event
from botcore.processor import Processor, handler
from botcore.testing import InlineReactor, InlineThreadPool, StubContext


class Answers(Processor):
    event_types = ("deploy",)
    addressed = False

    @handler
    def answer(self, event):
        event.addresponse("done", target="#ops")


class Watches(Processor):
    event_types = ("deploy",)
    addressed = False
    processed = True

    @handler
    def watch(self, event):
        pass


class Fails(Processor):
    event_types = ("deploy",)
    addressed = False
    processed = True

    @handler
    def fail(self, event):
        raise ValueError("no")


class CounterTests(SynchronousTestCase):
    def setUp(self):
        self.reactor = InlineReactor()
        self.catalogue = Catalogue()
        self.catalogue.declare(EventTypeSpec("deploy", "d"))
        self.catalogue.declare(EventTypeSpec("rollback", "r", parent="deploy"))
        self.catalogue.declare_topic(TopicSpec("ops", "o", frozenset({"deploy"})))
        self.dispatcher = Dispatcher(
            reactor=self.reactor, threadpool=InlineThreadPool(), catalogue=self.catalogue
        )
        self.context = StubContext(reactor=self.reactor, dispatcher=self.dispatcher)
        self.dispatcher.startService()
        self.addCleanup(self.dispatcher.stopService)
        self.stats = self.dispatcher.stats

    def publish(self, type="deploy"):
        self.successResultOf(self.dispatcher.publish(Event(source="ci", type=type)))

    def test_processors(self):
        """Each processor's runs: handled when it answered, seen when it did nothing,
        failed when it raised; its time is counted."""
        self.dispatcher.set_chain([cls("ops", self.context) for cls in (Answers, Watches, Fails)])
        self.publish()
        self.publish("rollback")
        self.flushLoggedErrors(ValueError)
        counts = {n: (t.seen, t.handled, t.failed) for n, t in self.stats.processors.items()}
        self.assertEqual(
            counts, {"ops.Answers": (2, 2, 0), "ops.Watches": (2, 0, 0), "ops.Fails": (2, 0, 2)}
        )
        self.assertGreater(self.stats.processors["ops.Answers"].seconds, 0)
        self.assertEqual(
            (self.stats.types["deploy"].seen, self.stats.types["deploy"].failed), (1, 1)
        )
        self.assertEqual(self.stats.topics(self.catalogue)["ops"].seen, 2)

    def test_handled_and_seen_events(self):
        """An answered event is handled; one nobody did anything with is only seen."""
        self.dispatcher.set_chain([Answers("ops", self.context)])
        self.publish()
        self.publish("other")
        self.assertEqual(self.stats.types["deploy"].handled, 1)
        other = self.stats.types["other"]
        self.assertEqual((other.seen, other.handled, other.failed), (1, 0, 0))

    def test_call_later_step(self):
        """A call_later's function is a step of its own, by its name."""
        self.dispatcher.set_chain([])

        def remind(event):
            event.addresponse("now", target="#ops")

        self.dispatcher.call_later(5, remind, Event(source="ci", type="message"))
        self.reactor.advance(5)
        name = next(n for n in self.stats.processors if n.endswith("remind"))
        self.assertEqual(self.stats.processors[name].handled, 1)
        self.assertEqual(self.stats.types["delayed"].handled, 1)

    def test_snapshot(self):
        """snapshot is plain values, ready for a metrics endpoint."""
        self.dispatcher.set_chain([Watches("ops", self.context)])
        self.publish()
        self.stats.reactor("page-on-call").fired += 1
        found = self.stats.snapshot(self.catalogue)
        self.assertEqual(found["types"]["deploy"]["seen"], 1)
        self.assertEqual(found["topics"]["ops"]["seen"], 1)
        self.assertEqual(
            found["reactors"], {"page-on-call": {"fired": 1, "condition_false": 0, "failed": 0}}
        )
