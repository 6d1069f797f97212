"""The dispatcher's monitors (what the web front door's metrics are fed by): told of
each event accepted, each step with its time and whether it failed, each reply sent; and
the dispatcher's load. Inline pool, a clock, no database."""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from botcore.dispatch.dispatcher import Dispatcher
from botcore.event import Event, EventType, Message, Sender
from botcore.processor import Processor, handler
from botcore.testing import (
    InlineReactor,
    InlineThreadPool,
    ManualThreadPool,
    MemorySource,
    StubContext,
)


class Answer(Processor):
    addressed = False

    @handler
    def answer(self, event: Event) -> None:
        event.addresponse("hi")


class Broken(Processor):
    addressed = False
    processed = True
    priority = 10

    @handler
    def fail(self, event: Event) -> None:
        raise RuntimeError("broken")


class Later(Processor):
    """A background processor that fails."""

    addressed = False
    processed = True
    background = True

    @handler
    def fail(self, event: Event) -> None:
        raise RuntimeError("background broke")


class Recorder:
    def __init__(self) -> None:
        self.events: list[tuple[str, str]] = []
        self.steps: list[tuple[str, bool]] = []
        self.replies: list[str] = []

    def event_dispatched(self, event: Event) -> None:
        self.events.append((event.source, event.type))

    def step_done(self, who, seconds: float, failed: bool) -> None:
        assert seconds >= 0
        self.steps.append((type(who).__name__, failed))

    def reply_sent(self, response) -> None:
        self.replies.append(response.text)

    def step_retried(self, who, kind: str) -> None:
        self.steps.append((f"retry {type(who).__name__}", kind))

    def event_skipped(self, event: Event) -> None:
        self.events.append((event.source, f"skipped {event.type}"))


class ObserverTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.reactor = InlineReactor()
        self.context = StubContext(reactor=self.reactor)
        self.source = MemorySource("mem", self.context)
        self.context.add_source(self.source)
        self.dispatcher = Dispatcher(
            {},
            reactor=self.reactor,
            threadpool=InlineThreadPool(),
            sources=self.context.get_source,
        )
        self.dispatcher.set_chain([Answer("t", self.context), Broken("t", self.context)])
        self.dispatcher.startService()
        self.addCleanup(self.dispatcher.stopService)
        self.recorder = Recorder()

    def event(self) -> Event:
        return Event(
            source="mem",
            type=EventType.MESSAGE,
            sender=Sender("c", "u", "u"),
            channel="u",
            message=Message("x"),
        )

    def test_told_of_everything(self) -> None:
        """Each accepted event, each step (a failing one as failed) and each reply
        sent are told."""
        self.dispatcher.monitors = (self.recorder,)
        self.successResultOf(self.dispatcher.dispatch(self.event()))
        self.flushLoggedErrors(RuntimeError)
        self.assertEqual(self.recorder.events, [("mem", "message")])
        self.assertEqual(self.recorder.steps, [("Answer", False), ("Broken", True)])
        self.assertEqual(self.recorder.replies, ["hi"])
        self.assertEqual([r.text for r in self.source.sent], ["hi"])

    def test_skipped_told(self) -> None:
        """An event a source left out (`Dispatcher.skipped`) is told as skipped, and
        nothing runs for it."""
        self.dispatcher.monitors = (self.recorder,)
        self.dispatcher.skipped(self.event())
        self.assertEqual(self.recorder.events, [("mem", "skipped message")])
        self.assertEqual((self.recorder.steps, self.source.sent), ([], []))

    def test_background_steps_told(self) -> None:
        """Background processors' steps are told like the chain's, failures as failed."""
        pool = ManualThreadPool()
        dispatcher = Dispatcher(
            {},
            reactor=self.reactor,
            threadpool=InlineThreadPool(),
            background_pool=pool,
            sources=self.context.get_source,
        )
        dispatcher.set_chain([Answer("t", self.context), Later("t", self.context)])
        dispatcher.startService()
        dispatcher.monitors = (self.recorder,)
        self.successResultOf(dispatcher.dispatch(self.event()))
        self.assertEqual(self.recorder.steps, [("Answer", False)])
        pool.run_all()
        self.flushLoggedErrors(RuntimeError)
        self.assertEqual(self.recorder.steps, [("Answer", False), ("Later", True)])
        d = dispatcher.stopService()
        pool.run_all()
        self.successResultOf(d)

    def test_none_by_default(self) -> None:
        """Without monitors the work is the same."""
        self.successResultOf(self.dispatcher.dispatch(self.event()))
        self.flushLoggedErrors(RuntimeError)
        self.assertEqual([r.text for r in self.source.sent], ["hi"])
        self.assertEqual(self.recorder.events, [])

    def test_load(self) -> None:
        """The load names the pool's threads and what waits, by source."""
        load = self.dispatcher.load()
        self.assertEqual(load["threads"], self.dispatcher.threads)
        self.assertEqual((load["inflight"], load["stuck"], load["dropped"]), (0, 0, 0))
        self.assertEqual(load["waiting"], {})


class StateChangeTests(SynchronousTestCase):
    def test_counted(self) -> None:
        """A source counts the states it enters (a reconnect is connecting again); a
        state set again without a change is not counted."""
        source = MemorySource("mem", StubContext(reactor=InlineReactor()))
        for state in ("connecting", "connected", "connected", "reconnecting", "connecting"):
            source.set_state(state)
        self.assertEqual(
            dict(source.state_changes), {"connecting": 2, "connected": 1, "reconnecting": 1}
        )


class Conflict(Exception):
    """A database conflict, as the fake database below classifies it."""


class ConflictingDatabase:
    """Just what the dispatcher asks of a database when a step fails: ``Conflict`` is
    worth retrying (at once), anything else is not."""

    def open_session(self):
        raise AssertionError("no session is opened here")

    def classify(self, error: BaseException) -> str | None:
        return "conflict" if isinstance(error, Conflict) else None

    def retry_delay_for(self, kind: str, attempt: int) -> float | None:
        return 0.0 if attempt < 3 else None

    def sleep(self, delay: float) -> None:
        pass

    def gave_up(self, kind: str, error: BaseException, what: str) -> None:
        pass


class OnceConflicting(Processor):
    addressed = False

    def __init__(self, *args, **kw) -> None:
        super().__init__(*args, **kw)
        self.tries = 0

    @handler
    def work(self, event: Event) -> None:
        self.tries += 1
        if self.tries == 1:
            raise Conflict("deadlock")
        event.addresponse("done")


class RetryObserverTests(SynchronousTestCase):
    def test_retry_told(self) -> None:
        """A step run again after a database conflict is told as retried, then done."""
        reactor = InlineReactor()
        context = StubContext(reactor=reactor)
        source = MemorySource("mem", context)
        context.add_source(source)
        dispatcher = Dispatcher(
            {},
            reactor=reactor,
            threadpool=InlineThreadPool(),
            database=ConflictingDatabase(),
            sources=context.get_source,
        )
        dispatcher.set_chain([OnceConflicting("t", context)])
        dispatcher.startService()
        self.addCleanup(dispatcher.stopService)
        recorder = Recorder()
        dispatcher.monitors = (recorder,)
        event = Event(
            source="mem",
            type=EventType.MESSAGE,
            sender=Sender("c", "u", "u"),
            channel="u",
            message=Message("x"),
        )
        self.successResultOf(dispatcher.dispatch(event))
        self.assertEqual(
            recorder.steps, [("retry OnceConflicting", "conflict"), ("OnceConflicting", False)]
        )
        self.assertEqual([r.text for r in source.sent], ["done"])
