"""Background processors: after the replies, on their own bounded pool, counted, drained
on stop."""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from botcore.dispatch.dispatcher import Dispatcher
from botcore.event import Event
from botcore.processor import Processor, handler
from botcore.testing import (
    InlineReactor,
    InlineThreadPool,
    ManualThreadPool,
    MemorySource,
    PluginTestCase,
    StubContext,
)


class Answer(Processor):
    event_types = ("deploy",)
    addressed = False

    @handler
    def answer(self, event):
        event.addresponse("deployed", target="#ops")
        event.extra["answered"] = True


class Slow(Processor):
    """A background processor: sees the event as the chain left it."""

    event_types = ("deploy",)
    addressed = False
    processed = True
    background = True
    seen: list = []

    @handler
    def later(self, event):
        self.seen.append((event.id, event.extra.get("answered"), len(event.responses)))
        event.addresponse("indexed", target="#ops")


class Broken(Processor):
    event_types = ("deploy",)
    addressed = False
    processed = True
    background = True

    @handler
    def fail(self, event):
        raise ValueError("background broke")


class BackgroundTests(SynchronousTestCase):
    def setUp(self):
        Slow.seen = []
        self.reactor = InlineReactor()
        self.pool = ManualThreadPool()

    def dispatcher(self, *classes, **config):
        dispatcher = Dispatcher(
            config, reactor=self.reactor, threadpool=InlineThreadPool(), background_pool=self.pool
        )
        context = StubContext(reactor=self.reactor, dispatcher=dispatcher)
        self.source = MemorySource("ci", context)
        context.add_source(self.source)
        dispatcher._get_source = context.get_source
        dispatcher.set_chain([cls("ops", context) for cls in classes])
        dispatcher.startService()
        self.addCleanup(self.stop, dispatcher)
        return dispatcher

    def stop(self, dispatcher):
        if dispatcher.running:
            d = dispatcher.stopService()
            self.pool.run_all()
            self.successResultOf(d)

    def publish(self, dispatcher):
        return self.successResultOf(dispatcher.publish(Event(source="ci", type="deploy")))

    def test_after_the_reply(self):
        """The reply is sent and the event done before the background processor runs;
        it sees a copy of the event as the chain left it, and its reply follows."""
        dispatcher = self.dispatcher(Answer, Slow)
        event = self.publish(dispatcher)
        self.assertEqual([r.text for r in self.source.sent], ["deployed"])
        self.assertEqual(Slow.seen, [])
        self.assertEqual(len(self.pool.jobs), 1)
        self.pool.run_all()
        self.assertEqual(Slow.seen, [(event.id, True, 0)])
        self.assertEqual([r.text for r in self.source.sent], ["deployed", "indexed"])
        self.assertEqual([r.text for r in event.responses], ["deployed"])  # not changed
        tally = dispatcher.stats.processors["ops.Slow"]
        self.assertEqual((tally.seen, tally.handled), (1, 1))

    def test_queue_full_drop_new(self):
        """Beyond background_queue, the new event's background work is dropped and
        counted; threads bound what runs at once."""
        dispatcher = self.dispatcher(Slow, background_threads=1, background_queue=2)
        for _ in range(4):
            self.publish(dispatcher)
        self.assertEqual(len(self.pool.jobs), 1)  # one thread: one running
        self.assertEqual(dispatcher.background.dropped, 1)
        self.pool.run_all()
        self.assertEqual(len(Slow.seen), 3)
        self.flushLoggedErrors()

    def test_queue_full_drop_oldest(self):
        """With drop-oldest, the oldest waiting is dropped for the new one."""
        dispatcher = self.dispatcher(
            Slow, background_threads=1, background_queue=1, background_full="drop-oldest"
        )
        events = [self.publish(dispatcher) for _ in range(3)]
        self.pool.run_all()
        self.assertEqual([seen[0] for seen in Slow.seen], [events[0].id, events[2].id])
        self.assertEqual(dispatcher.background.dropped, 1)

    def test_failure_logged_and_counted(self):
        """A failing background processor is logged with its traceback and counted."""
        dispatcher = self.dispatcher(Broken, Slow)
        self.publish(dispatcher)
        self.pool.run_all()
        self.assertEqual(len(self.flushLoggedErrors(ValueError)), 1)
        self.assertEqual(dispatcher.background.failed, 1)
        self.assertEqual(dispatcher.stats.processors["ops.Broken"].failed, 1)
        self.assertEqual(len(Slow.seen), 1)  # the next one still ran

    def test_drained_on_stop(self):
        """Stopping waits for the background work, then stops."""
        dispatcher = self.dispatcher(Slow)
        self.publish(dispatcher)
        d = dispatcher.stopService(timeout=10)
        self.assertNoResult(d)
        self.pool.run_all()
        self.successResultOf(d)
        self.assertEqual(len(Slow.seen), 1)

    def test_stop_timeout(self):
        """Background work past the timeout is given up on (logged), and the stop goes on."""
        dispatcher = self.dispatcher(Slow, background_threads=1)
        self.publish(dispatcher)
        self.publish(dispatcher)
        d = dispatcher.stopService(timeout=5)
        self.assertNoResult(d)
        self.reactor.advance(5)
        self.successResultOf(d)
        self.assertEqual(Slow.seen, [])
        self.assertTrue(self.pool.stopped)


class BotBackgroundTests(PluginTestCase):
    """Through a real bot and its [bot] settings."""

    load = ()
    extra_processors = (Answer, Slow)
    plugin_config = {"bot": {"background_threads": "1", "background_queue": "5"}}

    def setUp(self):
        Slow.seen = []
        super().setUp()

    def test_runs_after_reply(self):
        """A background processor of a loaded plugin runs (inline here) after the reply."""
        self.successResultOf(self.bot.context.dispatch(Event(source="test", type="deploy")))
        self.assertEqual([r.text for r in self.source.sent], ["deployed", "indexed"])
        self.assertEqual(self.bot.dispatcher.background.settings.background_queue, 5)
