"""Tests for botcore.dispatch.dispatcher with a clock, an inline or hand-driven thread pool and a
real SQLite database: chain order, per-conversation ordering, commits and rollbacks,
fatal errors, routing, delayed and periodic work, shutdown and chain swaps."""

from __future__ import annotations

import threading

from sqlalchemy import Integer, String, select
from sqlalchemy import text as sql
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from twisted.logger import formatEvent, globalLogPublisher
from twisted.trial.unittest import SynchronousTestCase

from botcore.db.service import Database
from botcore.dispatch.chain import Chain
from botcore.dispatch.dispatcher import BATCH, Dispatcher
from botcore.errors import DispatcherOverloaded, DispatcherStopped
from botcore.event import Event, EventType, Response, Sender
from botcore.options import FloatOption
from botcore.processor import Processor, handler, periodic
from botcore.testing import (
    InlineReactor,
    InlineThreadPool,
    ManualThreadPool,
    MemorySource,
    StubContext,
    sqlite_database,
)
from tests.botcore.dispatch.test_fastpath import WAIT


class NoteBase(DeclarativeBase):
    """Tables for these tests only, kept out of the core's metadata (and its migrations)."""


class Note(NoteBase):
    """A row a test processor writes."""

    __tablename__ = "test_notes"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    text: Mapped[str] = mapped_column(String(100))


def note_texts(database: Database) -> list[str]:
    """Every committed `Note`'s text, in insertion order (read in a fresh session)."""
    with database.session_factory() as session:
        return list(session.scalars(select(Note.text).order_by(Note.id)))


class Step(Processor):
    """A processor that records each event it sees, then does ``action(event)``."""

    event_types = None
    addressed = False
    processed = True

    def __init__(self, label, bot, seen, priority=0, action=None, event_types=None):
        super().__init__(label, bot)
        self.label = label
        self.seen = seen
        self.priority = priority
        self.action = action
        if event_types is not None:
            self.event_types = frozenset(event_types)

    @handler
    def record(self, event):
        self.seen.append((self.label, describe(event)))
        if self.action is not None:
            self.action(event)


def describe(event: Event) -> str:
    return event.message.raw if event.message is not None else event.type


def message(text: str, channel: str | None = "#a", source: str = "irc") -> Event:
    return Event(
        source=source,
        type=EventType.MESSAGE,
        sender=Sender(source, "alice", "alice"),
        channel=channel,
        addressed=True,
        message=text,
    )


class DispatcherTestCase(SynchronousTestCase):
    """Builds a started dispatcher on a clock, with sources 'irc' and 'xmpp' and a real
    SQLite database; ``self.context`` is the processors' and sources' bot, publishing
    through the dispatcher built last."""

    def setUp(self):
        self.reactor = InlineReactor()
        self.context = StubContext(reactor=self.reactor)
        for name in ("irc", "xmpp"):
            self.context.add_source(MemorySource(name, self.context))
        self.sources = self.context.sources

    def step(self, label, seen, priority=0, action=None, event_types=None) -> Step:
        """A `Step` on this test's context."""
        return Step(label, self.context, seen, priority, action, event_types)

    def dispatcher(self, processors=(), pool=None, **config) -> Dispatcher:
        self.database = sqlite_database(self, metadata=NoteBase.metadata)
        self.fatal = []
        self.logged = []
        dispatcher = Dispatcher(
            config,
            reactor=self.reactor,
            threadpool=pool if pool is not None else InlineThreadPool(),
            database=self.database,
            sources=self.context.get_source,
            on_fatal=self.fatal.append,
        )
        globalLogPublisher.addObserver(self.logged.append)
        self.addCleanup(globalLogPublisher.removeObserver, self.logged.append)
        dispatcher.set_chain(processors)
        dispatcher.startService()
        self.addCleanup(self.stop, dispatcher)
        self.context.dispatcher = dispatcher
        return dispatcher

    def stop(self, dispatcher):
        if dispatcher.running:
            dispatcher.stopService()
        self.assertEqual(self.reactor.getDelayedCalls(), [])

    def logged_texts(self):
        from twisted.logger import formatEvent

        return [formatEvent(event) for event in self.logged]


class ChainTests(DispatcherTestCase):
    """Which processors run, and in what order."""

    def test_priority_order(self):
        """Processors run in ascending priority; ties keep load order."""
        seen = []
        dispatcher = self.dispatcher(
            [
                self.step("a", seen, 5),
                self.step("b", seen, -1000),
                self.step("c", seen, 5),
                self.step("d", seen, 0),
                self.step("e", seen, 5),
            ]
        )
        self.successResultOf(dispatcher.dispatch(message("hi")))
        self.assertEqual([label for label, _ in seen], ["b", "d", "a", "c", "e"])

    def test_event_types(self):
        """An event only meets the processors that handle its type."""
        seen = []
        dispatcher = self.dispatcher(
            [
                self.step("messages", seen, event_types=[EventType.MESSAGE]),
                self.step("states", seen, event_types=[EventType.STATE]),
                self.step("all", seen),
            ]
        )
        self.successResultOf(dispatcher.dispatch(Event(source="irc", type=EventType.STATE)))
        self.assertEqual(seen, [("states", "state"), ("all", "state")])

    def test_accepts(self):
        """A processor that does not accept the event (processed already) is skipped."""
        seen = []

        class Strict(Step):
            processed = False

        dispatcher = self.dispatcher(
            [
                self.step("first", seen, 0, lambda e: e.addresponse("done")),
                Strict("strict", self.context, seen, 1),
                self.step("late", seen, 2),
            ]
        )
        self.successResultOf(dispatcher.dispatch(message("x")))
        self.assertEqual([label for label, _ in seen], ["first", "late"])

    def test_chain_object(self):
        """A Chain sorts by priority, indexes by type and can be set directly."""
        seen = []
        chain = Chain([self.step("b", seen, 2), self.step("a", seen, 1)])
        self.assertEqual([p.label for p in chain], ["a", "b"])
        self.assertEqual(len(chain), 2)
        dispatcher = self.dispatcher()
        self.assertIs(dispatcher.set_chain(chain), chain)
        self.assertIs(dispatcher.chain, chain)

    def test_fires_with_event(self):
        """dispatch's Deferred fires with the processed event."""
        dispatcher = self.dispatcher([self.step("a", [], 0, lambda e: e.addresponse("hi"))])
        event = message("x")
        self.assertIs(self.successResultOf(dispatcher.dispatch(event)), event)
        self.assertEqual(event.responses, [Response("hi", target="#a", source="irc")])


class OrderingTests(DispatcherTestCase):
    """One conversation in arrival order, different conversations in parallel, driven
    step by step with a hand-run thread pool."""

    def setUp(self):
        super().setUp()
        self.pool = ManualThreadPool()
        self.seen = []
        self.dispatcher_ = self.dispatcher(
            [self.step("echo", self.seen, 0, lambda e: e.addresponse(describe(e)))], self.pool
        )

    def queued(self):
        """What the pool could run in parallel right now."""
        return [(job.args[0].channel, describe(job.args[0])) for job in self.pool.jobs]

    def test_one_conversation_at_a_time(self):
        """Only one event of a conversation is handed to the pool at a time, in arrival
        order, while another conversation's events run alongside."""
        dispatch = self.sources["irc"].dispatch
        for channel, text in [
            ("#a", "a1"),
            ("#a", "a2"),
            ("#b", "b1"),
            ("#a", "a3"),
            ("#b", "b2"),
        ]:
            dispatch(message(text, channel))
        self.assertEqual(self.queued(), [("#a", "a1"), ("#b", "b1")])
        self.pool.run(1)
        self.assertEqual(self.queued(), [("#a", "a1"), ("#b", "b2")])
        self.pool.run(1)
        self.assertEqual(self.queued(), [("#a", "a1")])
        self.pool.run(0)
        self.assertEqual(self.queued(), [("#a", "a2")])
        self.pool.run_all()
        self.assertEqual([label for _, label in self.seen], ["b1", "b2", "a1", "a2", "a3"])

    def test_replies_leave_in_order(self):
        """Replies of one conversation are sent in arrival order."""
        dispatch = self.sources["irc"].dispatch
        deferreds = [dispatch(message(text, "#a")) for text in ("1", "2", "3")]
        dispatch(message("other", "#b"))
        self.pool.run(1)
        self.assertNoResult(deferreds[0])
        self.pool.run_all()
        self.assertEqual(
            [(r.target, r.text) for r in self.sources["irc"].sent],
            [("#b", "other"), ("#a", "1"), ("#a", "2"), ("#a", "3")],
        )

    def test_burst_in_one_hand_off(self):
        """Events of one conversation queued behind a running one go to one worker
        together (up to BATCH), run in arrival order; each one's replies leave and its
        Deferred fires, in order, and the worker counts once."""
        dispatch = self.sources["irc"].dispatch
        deferreds = [dispatch(message(f"a{n}", "#a")) for n in range(BATCH + 8)]
        self.assertEqual(self.queued(), [("#a", "a0")])
        self.pool.run()
        self.assertEqual(self.queued(), [("#a", "a1")])  # a1 to a32, one hand-off
        self.assertEqual(self.dispatcher_.load()["active"], 1)
        self.assertEqual(self.dispatcher_.load()["waiting"], {"irc": 7})
        self.pool.run()
        self.assertEqual(self.queued(), [("#a", f"a{BATCH + 1}")])
        self.pool.run()
        self.assertEqual(self.pool.jobs, [])
        for d in deferreds:
            self.successResultOf(d)
        texts = [f"a{n}" for n in range(BATCH + 8)]
        self.assertEqual([label for _, label in self.seen], texts)
        self.assertEqual([r.text for r in self.sources["irc"].sent], texts)
        self.assertTrue(self.dispatcher_.idle)
        self.assertEqual(self.dispatcher_.load()["active"], 0)

    def test_no_batch_on_the_last_worker(self):
        """With the last free worker, one event at a time (round-robin as before)."""
        dispatcher = self.dispatcher([self.step("echo", self.seen, 0)], self.pool, threads=2)
        dispatcher.dispatch(message("b0", "#b"))
        for n in range(3):
            dispatcher.dispatch(message(f"a{n}", "#a"))
        self.pool.run(1)  # a0 done: a1 gets the last worker alone
        self.assertEqual(sorted(self.queued()), [("#a", "a1"), ("#b", "b0")])
        self.pool.run(0)  # b0 done: a worker is free again
        self.pool.run_all()
        self.assertEqual([label for _, label in self.seen], ["a0", "b0", "a1", "a2"])

    def test_stuck_in_a_batch(self):
        """A batch past the handler deadline is one stuck run (its worker replaced);
        when it ends, the counts are back to nothing running."""
        dispatcher = self.dispatcher(
            [self.step("echo", self.seen, 0)], self.pool, handler_deadline=5
        )
        deferreds = [dispatcher.dispatch(message(f"a{n}", "#a")) for n in range(4)]
        self.pool.run()
        self.reactor.advance(5)
        self.assertEqual((dispatcher.stuck, dispatcher.load()["active"]), (1, 0))
        self.pool.run()
        for d in deferreds:
            self.successResultOf(d)
        self.assertEqual((dispatcher.stuck, dispatcher.stuck_total), (0, 1))
        self.assertEqual(dispatcher.load()["active"], 0)
        self.assertTrue(dispatcher.idle)

    def test_exit_in_a_batch_stops_it(self):
        """A run of a batch that asks the bot to exit is fatal as ever, and the runs after
        it in the batch are not run (failed as stopped)."""

        def action(event):
            if event.message.raw == "a2":
                raise SystemExit(3)

        dispatcher = self.dispatcher([self.step("echo", self.seen, 0, action)], self.pool)
        deferreds = [dispatcher.dispatch(message(f"a{n}", "#a")) for n in range(4)]
        self.pool.run()
        self.pool.run()
        self.assertEqual([label for _, label in self.seen], ["a0", "a1", "a2"])
        self.successResultOf(deferreds[1])
        self.failureResultOf(deferreds[2], SystemExit)
        self.failureResultOf(deferreds[3], DispatcherStopped)
        self.assertEqual(len(self.fatal), 1)
        self.flushLoggedErrors(SystemExit, DispatcherStopped)

    def test_private_conversations(self):
        """Private events (no channel) of one source share one ordered conversation."""
        dispatch = self.dispatcher_.dispatch
        dispatch(message("p1", None))
        dispatch(message("p2", None))
        self.assertEqual(self.queued(), [(None, "p1")])
        self.pool.run_all()
        self.assertEqual([label for _, label in self.seen], ["p1", "p2"])

    def test_sources_are_separate_conversations(self):
        """The same channel name on two sources is two conversations."""
        self.dispatcher_.dispatch(message("irc", "#a", "irc"))
        self.dispatcher_.dispatch(message("xmpp", "#a", "xmpp"))
        self.assertEqual(len(self.pool.jobs), 2)
        self.pool.run_all()

    def test_idle(self):
        """The dispatcher is idle only when nothing is queued or running."""
        self.assertTrue(self.dispatcher_.idle)
        self.dispatcher_.dispatch(message("x"))
        self.dispatcher_.dispatch(message("y"))
        self.assertFalse(self.dispatcher_.idle)
        self.pool.run(0)
        self.assertFalse(self.dispatcher_.idle)
        self.pool.run(0)
        self.assertTrue(self.dispatcher_.idle)


class DatabaseTests(DispatcherTestCase):
    """The event's session: lazy, committed after each processor, rolled back on error."""

    def add(self, text):
        def action(event):
            event.session.add(Note(text=text))

        return action

    def test_commit_after_each_processor(self):
        """A row added by one processor is committed before the next processor runs."""
        visible = []

        def check(event):
            visible.extend(note_texts(self.database))
            raise ValueError("after the check")

        dispatcher = self.dispatcher(
            [self.step("one", [], 1, self.add("one")), self.step("two", [], 2, check)]
        )
        event = self.successResultOf(dispatcher.dispatch(message("x")))
        self.assertEqual(visible, ["one"])
        self.assertEqual(note_texts(self.database), ["one"])
        self.assertEqual(event.complain, "exception")
        self.flushLoggedErrors(ValueError)

    def test_rollback_on_exception(self):
        """A raising processor's uncommitted row is rolled back; later processors still run
        and their rows are committed; the event complains 'exception'."""
        seen = []

        def add_then_fail(event):
            event.session.add(Note(text="two"))
            event.session.flush()
            raise RuntimeError("processor two broke")

        dispatcher = self.dispatcher(
            [
                self.step("one", seen, 1, self.add("one")),
                self.step("two", seen, 2, add_then_fail),
                self.step("three", seen, 3, self.add("three")),
            ]
        )
        event = self.successResultOf(dispatcher.dispatch(message("x")))
        self.assertEqual([label for label, _ in seen], ["one", "two", "three"])
        self.assertEqual(note_texts(self.database), ["one", "three"])
        self.assertEqual(event.complain, "exception")
        [failure] = self.flushLoggedErrors(RuntimeError)
        self.assertEqual(str(failure.value), "processor two broke")

    def test_failed_step_replies_dropped(self):
        """The replies of a processor that raises, or whose commit fails, are dropped with
        its changes; the replies of the processors around it stay."""

        def reply_then_fail(event):
            event.addresponse("beer is back to zero")
            raise RuntimeError("after the reply")

        def reply_then_duplicate(event):
            event.addresponse("noted again")
            event.session.add(Note(id=1, text="again"))

        dispatcher = self.dispatcher(
            [
                self.step("one", [], 1, lambda e: e.session.add(Note(id=1, text="first"))),
                self.step("two", [], 2, reply_then_fail),
                self.step("three", [], 3, reply_then_duplicate),
                self.step("four", [], 4, lambda e: e.addresponse("still here")),
            ]
        )
        event = self.successResultOf(dispatcher.dispatch(message("x")))
        self.assertEqual([r.text for r in event.responses], ["still here"])
        self.assertEqual(event.complain, "exception")
        from sqlalchemy.exc import IntegrityError

        self.assertEqual(len(self.flushLoggedErrors(RuntimeError, IntegrityError)), 2)

    def test_failed_commit(self):
        """A commit that fails (a constraint) is rolled back and complained about; the next
        processors still run with a usable session."""

        def duplicate(event):
            event.session.add(Note(id=1, text="again"))

        dispatcher = self.dispatcher(
            [
                self.step("one", [], 1, lambda e: e.session.add(Note(id=1, text="first"))),
                self.step("two", [], 2, duplicate),
                self.step("three", [], 3, self.add("three")),
            ]
        )
        event = self.successResultOf(dispatcher.dispatch(message("x")))
        self.assertEqual(note_texts(self.database), ["first", "three"])
        self.assertEqual(event.complain, "exception")
        from sqlalchemy.exc import IntegrityError

        self.assertEqual(len(self.flushLoggedErrors(IntegrityError)), 1)

    def test_textual_write_committed(self):
        """A write made with textual SQL is committed like an ORM one."""

        def raw(event):
            event.session.execute(sql("INSERT INTO test_notes (text) VALUES ('raw')"))

        dispatcher = self.dispatcher([self.step("raw", [], 0, raw)])
        self.successResultOf(dispatcher.dispatch(message("x")))
        self.assertEqual(note_texts(self.database), ["raw"])

    def test_session_is_lazy(self):
        """No session is opened for an event no processor asks one for."""
        dispatcher = self.dispatcher([self.step("plain", [], 0, lambda e: e.addresponse("x"))])
        opened = []
        factory = self.database.session_factory

        def counting():
            opened.append(True)
            return factory()

        self.database.session_factory = counting
        self.successResultOf(dispatcher.dispatch(message("x")))
        self.assertEqual(opened, [])
        dispatcher.set_chain(
            [self.step("reader", [], 0, lambda e: e.session.scalars(select(Note)))]
        )
        self.successResultOf(dispatcher.dispatch(message("y")))
        self.assertEqual(opened, [True])

    def test_session_closed(self):
        """The session is closed once the chain has run."""
        sessions = []

        def use(event):
            sessions.append(event.session)
            event.session.add(Note(text="x"))

        dispatcher = self.dispatcher([self.step("writer", [], 0, use)])
        event = self.successResultOf(dispatcher.dispatch(message("x")))
        self.assertFalse(event.has_session)
        self.assertFalse(sessions[0].in_transaction())
        self.assertEqual(note_texts(self.database), ["x"])


class FatalTests(DispatcherTestCase):
    """SystemExit and KeyboardInterrupt are not swallowed."""

    def check_fatal(self, exception):
        seen = []

        def die(event):
            raise exception

        dispatcher = self.dispatcher(
            [self.step("dies", seen, 1, die), self.step("after", seen, 2)]
        )
        failure = self.failureResultOf(dispatcher.dispatch(message("x")), type(exception))
        self.assertEqual([label for label, _ in seen], ["dies"])
        self.assertEqual(len(self.fatal), 1)
        self.assertIs(self.fatal[0].value, failure.value)
        self.flushLoggedErrors(type(exception))
        return dispatcher

    def test_system_exit(self):
        """SystemExit aborts the chain, fails the Deferred and calls on_fatal."""
        self.check_fatal(SystemExit(3))

    def test_keyboard_interrupt(self):
        """KeyboardInterrupt is treated like SystemExit."""
        self.check_fatal(KeyboardInterrupt())

    def test_next_events_still_run(self):
        """After a fatal event the conversation's next event is still processed."""
        pool = ManualThreadPool()
        seen = []

        def maybe_die(event):
            if describe(event) == "die":
                raise SystemExit(1)

        dispatcher = self.dispatcher([self.step("s", seen, 0, maybe_die)], pool)
        first = dispatcher.dispatch(message("die"))
        second = dispatcher.dispatch(message("live"))
        pool.run_all()
        self.failureResultOf(first, SystemExit)
        self.successResultOf(second)
        self.flushLoggedErrors(SystemExit)

    def test_other_base_exception_is_a_failure(self):
        """A BaseException other than SystemExit and KeyboardInterrupt is a handler failure
        like any: logged, complained about, the chain goes on, the sender is answered and
        the bot is not stopped."""

        class Odd(BaseException):
            pass

        seen = []

        def die(event):
            event.addresponse("half done")
            raise Odd("odd")

        def complain(event):
            if event.complain:
                event.addresponse(f"complaint: {event.complain}")

        dispatcher = self.dispatcher(
            [self.step("dies", seen, 1, die), self.step("complain", seen, 2, complain)]
        )
        event = self.successResultOf(dispatcher.dispatch(message("x")))
        self.assertEqual([label for label, _ in seen], ["dies", "complain"])
        self.assertEqual([r.text for r in event.responses], ["complaint: exception"])
        self.assertEqual(self.fatal, [])
        self.assertEqual(len(self.flushLoggedErrors(Odd)), 1)

    def test_recursion_error_traceback_shortened(self):
        """A RecursionError's thousand-frame traceback is logged shortened: its first and
        last frames, and how many were left out."""

        def recurse(event, depth=0):
            recurse(event, depth + 1)

        dispatcher = self.dispatcher([self.step("deep", [], 1, recurse)])
        self.successResultOf(dispatcher.dispatch(message("x")))
        [error] = [e for e in self.logged if e.get("log_failure") is not None]
        failure = error["log_failure"]
        self.assertTrue(failure.check(RecursionError))
        self.assertEqual(len(failure.frames), 40)
        self.assertGreater(error["cut"], 500)
        text = formatEvent(error)
        self.assertIn("traceback shortened", text)
        self.assertLess(len(failure.getTraceback().splitlines()), 200)
        self.flushLoggedErrors(RecursionError)

    def test_periodic_system_exit(self):
        """SystemExit in a periodic handler also reaches on_fatal."""

        class Dies(Processor):
            @periodic(interval=10)
            def tick(self, event):
                raise SystemExit(2)

        self.dispatcher([Dies("dies", self.context)])
        self.reactor.advance(10)
        self.assertEqual(len(self.fatal), 1)
        self.assertIsInstance(self.fatal[0].value, SystemExit)
        self.flushLoggedErrors(SystemExit)


class RoutingTests(DispatcherTestCase):
    """Where replies go."""

    def test_every_reply_routed_in_order(self):
        """The dispatcher sends every reply itself, in the order they were added, whether
        it is for the event's own source or another; the Deferred fires after."""
        sent = []

        def reply(event):
            event.addresponse("here")
            event.addresponse("there", source="xmpp", target="room@muc")
            event.addresponse("here again")

        dispatcher = self.dispatcher([self.step("r", [], 0, reply)])
        for source in self.sources.values():
            source.send = lambda response, name=source.name: sent.append((name, response.text))
        d = dispatcher.dispatch(message("x"))
        d.addCallback(lambda event: sent.append(("fired", None)))
        self.successResultOf(d)
        self.assertEqual(
            sent,
            [("irc", "here"), ("xmpp", "there"), ("irc", "here again"), ("fired", None)],
        )

    def test_notice_never_answered(self):
        """A notice gets no reply, whatever added one: a processor's answer, a complaint
        after a failure, a reply for another source; the event still fires."""

        def answer(event):
            event.addresponse("answer")
            event.addresponse("elsewhere", source="xmpp", target="room")

        def fail(event):
            raise ValueError("boom")

        def complain(event):
            if event.complain:
                event.addresponse(f"complaint: {event.complain}")

        dispatcher = self.dispatcher(
            [
                self.step("answer", [], 0, answer),
                self.step("fail", [], 1, fail),
                self.step("complain", [], 2, complain),
            ]
        )
        notice = message("hello?")
        notice.type = EventType.NOTICE
        event = self.successResultOf(dispatcher.dispatch(notice))
        self.assertEqual(event.responses, [])
        self.assertEqual(self.sources["irc"].sent, [])
        self.assertEqual(self.sources["xmpp"].sent, [])
        self.flushLoggedErrors(ValueError)
        # A message is answered as ever (the same chain).
        self.successResultOf(dispatcher.dispatch(message("hello?")))
        self.flushLoggedErrors(ValueError)
        self.assertEqual(
            [r.text for r in self.sources["irc"].sent], ["answer", "complaint: exception"]
        )

    def test_unworded_acknowledgement(self):
        """A True or False reply that reaches routing (no core Address in the chain) is
        sent as a word, never as a bool, with a warning; the event holds what was sent."""

        def reply(event):
            event.addresponse(True)
            event.addresponse(False, source="xmpp", target="room")

        dispatcher = self.dispatcher([self.step("r", [], 0, reply)])
        event = self.successResultOf(dispatcher.dispatch(message("x")))
        sent = self.sources["irc"].sent + self.sources["xmpp"].sent
        self.assertEqual([r.text for r in sent], ["Okay", "No"])
        self.assertEqual([type(r.text) for r in sent], [str, str])
        self.assertEqual([r.text for r in event.responses], ["Okay", "No"])
        warnings = [t for t in self.logged_texts() if "not text" in t]
        self.assertEqual(len(warnings), 2, self.logged_texts())
        self.assertIn("Address", warnings[0])

    def test_other_text_made_a_string(self):
        """A reply whose text is neither a string nor a bool is sent as its str()."""
        dispatcher = self.dispatcher([self.step("r", [], 0, lambda e: e.addresponse(42))])
        self.successResultOf(dispatcher.dispatch(message("x")))
        self.assertEqual([r.text for r in self.sources["irc"].sent], ["42"])

    def test_source_dispatch_sends_own(self):
        """Source.dispatch sends the replies for its own source once processed."""
        self.dispatcher([self.step("r", [], 0, lambda e: e.addresponse("hi"))])
        self.sources["irc"].dispatch(message("x"))
        self.assertEqual(self.sources["irc"].sent, [Response("hi", target="#a", source="irc")])

    def test_unknown_source(self):
        """A reply for an unknown source is logged and dropped; the others still go."""

        def reply(event):
            event.addresponse("lost", source="nowhere")
            event.addresponse("found", source="xmpp")

        dispatcher = self.dispatcher([self.step("r", [], 0, reply)])
        self.successResultOf(dispatcher.dispatch(message("x")))
        self.assertEqual([r.text for r in self.sources["xmpp"].sent], ["found"])
        self.assertTrue(
            any("unknown source 'nowhere'" in text for text in self.logged_texts()),
            self.logged_texts(),
        )

    def test_send_failure_logged(self):
        """A source whose send raises is logged; the other replies are still sent."""

        def reply(event):
            event.addresponse("a", source="irc2")
            event.addresponse("b", source="xmpp")

        dispatcher = self.dispatcher([self.step("r", [], 0, reply)])
        broken = MemorySource("irc2", self.context)
        broken.send = lambda response: 1 / 0
        self.sources["irc2"] = broken
        self.successResultOf(dispatcher.dispatch(message("x")))
        self.assertEqual([r.text for r in self.sources["xmpp"].sent], ["b"])
        self.assertEqual(len(self.flushLoggedErrors(ZeroDivisionError)), 1)


class SourceDispatchTests(DispatcherTestCase):
    """Source.dispatch: an event in, its replies out through the dispatcher, a Deferred
    that never fails."""

    def test_fires_after_replies(self):
        """The Deferred fires with the event once its replies have been sent."""
        self.dispatcher([self.step("r", [], 0, lambda e: e.addresponse("hi"))])
        source = self.sources["irc"]
        seen = []

        def fired(processed):
            seen.append([r.text for r in source.sent])
            return processed

        event = message("x")
        self.assertIs(self.successResultOf(source.dispatch(event).addCallback(fired)), event)
        self.assertEqual(seen, [["hi"]])

    def test_stopping_bot_rejects(self):
        """While the bot stops, the source is told through rejected(); the Deferred
        still fires with the event."""
        dispatcher = self.dispatcher([self.step("r", [])])
        self.successResultOf(dispatcher.stopService())
        source = self.sources["irc"]
        told = []
        source.rejected = lambda event, reason: told.append((event.message.raw, reason))
        event = message("x")
        self.assertIs(self.successResultOf(source.dispatch(event)), event)
        self.assertEqual(told, [("x", "the bot is shutting down")])

    def test_aborted_event_does_not_fail(self):
        """An event whose chain aborted is logged; the source's Deferred fires with it."""

        def die(event):
            raise SystemExit(1)

        self.dispatcher([self.step("dies", [], 0, die)])
        event = message("x")
        self.assertIs(self.successResultOf(self.sources["irc"].dispatch(event)), event)
        self.assertEqual(self.sources["irc"].sent, [])
        self.flushLoggedErrors(SystemExit)


class CallLaterTests(DispatcherTestCase):
    """call_later: delayed work through the chain, in the same conversation."""

    def setUp(self):
        super().setUp()
        self.seen = []
        self.calls = []
        self.dispatcher_ = self.dispatcher(
            [self.step("chain", self.seen, 0, event_types=[EventType.DELAYED])]
        )

    def later(self, event, *args, **kw):
        self.calls.append((event, args, kw))
        event.addresponse("later %s", args[0] if args else "")

    def test_runs_after_delay(self):
        """The function runs after the delay with a 'delayed' event and the extra
        arguments, then the chain runs on that event."""
        original = message("remind me")
        self.dispatcher_.call_later(30, self.later, original, "tea", loud=True)
        self.reactor.advance(29.9)
        self.assertEqual(self.calls, [])
        self.reactor.advance(0.1)
        [(event, args, kw)] = self.calls
        self.assertEqual((event.type, args, kw), (EventType.DELAYED, ("tea",), {"loud": True}))
        self.assertEqual(event.conversation, original.conversation)
        self.assertNotEqual(event.id, original.id)
        self.assertEqual(self.seen, [("chain", "remind me")])

    def test_replies_to_conversation(self):
        """The delayed event's replies are sent to the original conversation."""
        self.dispatcher_.call_later(5, self.later, message("x", "#b"), "tea")
        self.reactor.advance(5)
        self.assertEqual(
            self.sources["irc"].sent, [Response("later tea", target="#b", source="irc")]
        )

    def test_cancel(self):
        """A cancelled call does not run; cancelling again, or after it ran, is harmless."""
        call = self.dispatcher_.call_later(5, self.later, message("x"))
        self.assertTrue(call.active())
        call.cancel()
        call.cancel()
        self.assertFalse(call.active())
        self.reactor.advance(10)
        self.assertEqual(self.calls, [])
        done = self.dispatcher_.call_later(1, self.later, message("x"))
        self.reactor.advance(1)
        self.assertFalse(done.active())
        done.cancel()
        self.assertEqual(len(self.calls), 1)

    def test_queued_behind_conversation(self):
        """A delayed event waits behind an event of its conversation still running."""
        pool = ManualThreadPool()
        seen = []
        dispatcher = self.dispatcher([self.step("s", seen, 0)], pool)
        dispatcher.dispatch(message("first"))
        dispatcher.call_later(1, lambda event: seen.append(("call", "delayed")), message("x"))
        self.reactor.advance(1)
        self.assertEqual(len(pool.jobs), 1)
        pool.run_all()
        self.assertEqual(seen, [("s", "first"), ("call", "delayed"), ("s", "x")])

    def test_from_worker_thread(self):
        """call_later from a worker thread schedules on the reactor thread."""
        reactor_calls = []
        self.reactor.callFromThread = lambda f, *a, **kw: reactor_calls.append((f, a, kw))
        worker = threading.Thread(
            target=lambda: self.dispatcher_.call_later(2, self.later, message("x"), "tea")
        )
        worker.start()
        worker.join()
        # Nothing touched the clock from the worker: the scheduling waits for the reactor.
        self.assertEqual(self.reactor.getDelayedCalls(), [])
        self.assertEqual(len(reactor_calls), 1)
        del self.reactor.callFromThread
        for function, args, kw in reactor_calls:
            function(*args, **kw)
        self.reactor.advance(2)
        self.assertEqual([r.text for r in self.sources["irc"].sent], ["later tea"])

    def test_cancel_from_worker_thread(self):
        """A call cancelled from a worker thread does not run, even if its time comes
        before the reactor has dropped its timer; the timer is dropped on the reactor."""
        reactor_calls = []
        call = self.dispatcher_.call_later(2, self.later, message("x"))
        self.reactor.callFromThread = lambda f, *a, **kw: reactor_calls.append((f, a, kw))
        worker = threading.Thread(target=call.cancel)
        worker.start()
        worker.join()
        self.assertFalse(call.active())
        self.assertEqual(len(reactor_calls), 1)
        self.reactor.advance(2)
        self.assertEqual(self.calls, [])
        del self.reactor.callFromThread
        for function, args, kw in reactor_calls:
            function(*args, **kw)
        self.assertEqual(self.reactor.getDelayedCalls(), [])
        self.assertTrue(self.dispatcher_.idle)

    def test_cancelled_at_stop(self):
        """Pending calls are cancelled when the dispatcher stops."""
        self.dispatcher_.call_later(5, self.later, message("x"))
        self.successResultOf(self.dispatcher_.stopService())
        self.reactor.advance(10)
        self.assertEqual(self.calls, [])

    def test_after_stop(self):
        """A call scheduled after the dispatcher stopped is dropped (and logged) instead of
        failing later for want of a thread pool."""
        self.successResultOf(self.dispatcher_.stopService())
        call = self.dispatcher_.call_later(1, self.later, message("x"))
        self.assertFalse(call.active())
        self.reactor.advance(1)
        self.assertEqual(self.calls, [])
        self.assertTrue(
            any("dropped a call_later" in text for text in self.logged_texts()),
            self.logged_texts(),
        )

    def test_function_error(self):
        """An exception in the delayed function is logged, complained about, and the chain
        still runs."""

        def broken(event):
            raise KeyError("gone")

        self.dispatcher_.call_later(1, broken, message("x"))
        self.reactor.advance(1)
        self.assertEqual(self.seen, [("chain", "x")])
        self.assertEqual(len(self.flushLoggedErrors(KeyError)), 1)


class Ticker(Processor):
    """Periodic handlers for the tests."""

    every = FloatOption("Seconds between b ticks.", 20.0)

    def __init__(self, *args, **kw):
        super().__init__(*args, **kw)
        self.ticks = []

    @periodic(interval=10)
    def a(self, event):
        self.ticks.append(("a", event.type))
        event.addresponse("tick", source="xmpp", target="room")

    @periodic(config_key="every", initial_delay=1)
    def b(self, event):
        self.ticks.append(("b", event.type))


class PeriodicTests(DispatcherTestCase):
    """@periodic handlers on the dispatcher's clock."""

    def test_interval(self):
        """A periodic handler first runs one interval after start, then every interval."""
        ticker = Ticker("t", self.context)
        self.dispatcher([ticker])
        self.reactor.advance(9)
        self.assertEqual(ticker.ticks, [("b", "periodic")])
        self.reactor.advance(1)
        self.reactor.advance(10)
        self.assertEqual([name for name, _ in ticker.ticks].count("a"), 2)

    def test_config_key_and_initial_delay(self):
        """config_key reads the interval from the plugin section; initial_delay sets the
        first run."""
        ticker = Ticker("t", self.context, {"every": 3.0})
        self.dispatcher([ticker])
        for _ in range(8):
            self.reactor.advance(1)
        self.assertEqual([name for name, _ in ticker.ticks if name == "b"], ["b"] * 3)

    def test_replies_routed(self):
        """A periodic event's replies go to the sources they name."""
        self.dispatcher([Ticker("t", self.context)])
        self.reactor.advance(10)
        self.assertEqual(
            self.sources["xmpp"].sent, [Response("tick", target="room", source="xmpp")]
        )

    def test_chain_sees_periodic_event(self):
        """After the handler, the chain runs on the periodic event."""
        seen = []
        self.dispatcher(
            [
                Ticker("t", self.context),
                self.step("all", seen, 5, event_types=[EventType.PERIODIC]),
            ]
        )
        self.reactor.advance(1)
        self.assertEqual(seen, [("all", "periodic")])

    def test_no_overlap(self):
        """A run still going is not overlapped: the ticks meanwhile are skipped."""
        pool = ManualThreadPool()
        ticker = Ticker("t", self.context, {"every": 0.0})
        self.dispatcher([ticker], pool)
        self.reactor.advance(10)
        self.assertEqual(len(pool.jobs), 1)
        self.reactor.advance(10)
        self.reactor.advance(10)
        self.assertEqual(len(pool.jobs), 1)
        pool.run_all()
        self.assertEqual(ticker.ticks, [("a", "periodic")])
        self.reactor.advance(10)
        self.assertEqual(len(pool.jobs), 1)
        pool.run_all()
        self.assertEqual(len(ticker.ticks), 2)

    def test_stopped_with_dispatcher(self):
        """Stopping the dispatcher stops its periodic handlers."""
        ticker = Ticker("t", self.context)
        dispatcher = self.dispatcher([ticker])
        self.successResultOf(dispatcher.stopService())
        self.reactor.advance(100)
        self.assertEqual(ticker.ticks, [])

    def test_restarted_with_chain(self):
        """A new chain replaces the old chain's periodic handlers."""
        old, new = Ticker("old", self.context), Ticker("new", self.context)
        dispatcher = self.dispatcher([old])
        dispatcher.set_chain([new])
        self.reactor.advance(10)
        self.assertEqual(old.ticks, [])
        self.assertEqual(len(new.ticks), 2)

    def test_runs_in_a_queue_of_its_own(self):
        """A tick neither waits for an event of the bot's own conversation (lifecycle
        events) nor for another periodic handler's run."""
        pool = ManualThreadPool()
        dispatcher = self.dispatcher([Ticker("t", self.context)], pool)
        dispatcher.dispatch(
            Event(source="botcore", type=EventType.LIFECYCLE, data={"state": "running"})
        )
        self.reactor.advance(1)  # b
        self.reactor.advance(9)  # a
        self.assertEqual(
            [job.args[0].type for job in pool.jobs],
            [EventType.LIFECYCLE, EventType.PERIODIC, EventType.PERIODIC],
        )
        pool.run_all()
        self.assertTrue(dispatcher.idle)

    def test_holds_the_chain(self):
        """A periodic run still going keeps its chain in use after a swap, so the old
        processors are not shut down under it."""
        pool = ManualThreadPool()
        dispatcher = self.dispatcher([Ticker("t", self.context)], pool)
        old = dispatcher.chain
        self.reactor.advance(1)
        dispatcher.set_chain([])
        released = old.released()
        self.assertNoResult(released)
        pool.run_all()
        self.successResultOf(released)

    def test_drain_waits_for_periodic(self):
        """A periodic run in progress counts as in flight when draining."""
        pool = ManualThreadPool()
        dispatcher = self.dispatcher([Ticker("t", self.context, {"every": 0.0})], pool)
        self.reactor.advance(10)
        drained = dispatcher.drain()
        self.assertNoResult(drained)
        pool.run_all()
        self.assertTrue(self.successResultOf(drained))


class StopTests(DispatcherTestCase):
    """stopService: refuse new events, wait for in-flight ones, bounded by a timeout."""

    def test_refuses_new_events(self):
        """After stopService, dispatch fails with DispatcherStopped."""
        dispatcher = self.dispatcher([self.step("s", [])])
        self.successResultOf(dispatcher.stopService())
        self.failureResultOf(dispatcher.dispatch(message("x")), DispatcherStopped)

    def test_not_started(self):
        """A dispatcher that was never started refuses events too."""
        dispatcher = Dispatcher(reactor=InlineReactor(), threadpool=InlineThreadPool())
        self.failureResultOf(dispatcher.dispatch(message("x")), DispatcherStopped)

    def test_waits_for_in_flight(self):
        """stopService fires only once the in-flight and queued events have finished; then
        the pool is stopped."""
        pool = ManualThreadPool()
        seen = []
        dispatcher = self.dispatcher([self.step("s", seen)], pool)
        first = dispatcher.dispatch(message("1"))
        second = dispatcher.dispatch(message("2"))
        stopped = dispatcher.stopService()
        self.assertNoResult(stopped)
        self.failureResultOf(dispatcher.dispatch(message("3")), DispatcherStopped)
        pool.run(0)
        self.assertNoResult(stopped)
        self.assertFalse(pool.stopped)
        pool.run(0)
        self.successResultOf(stopped)
        self.successResultOf(first)
        self.successResultOf(second)
        self.assertTrue(pool.stopped)
        self.assertEqual([label for _, label in seen], ["1", "2"])

    def test_timeout(self):
        """After shutdown_timeout seconds stopService gives up waiting (and says so)."""
        pool = ManualThreadPool()
        dispatcher = self.dispatcher([self.step("s", [])], pool, shutdown_timeout=5.0)
        stuck = dispatcher.dispatch(message("stuck"))
        stopped = dispatcher.stopService()
        self.reactor.advance(4.9)
        self.assertNoResult(stopped)
        self.reactor.advance(0.1)
        self.successResultOf(stopped)
        self.assertTrue(pool.stopped)
        self.assertTrue(
            any("still running after 5.0s" in text for text in self.logged_texts()),
            self.logged_texts(),
        )
        # The stuck event finishing later does no harm.
        pool.run_all()
        self.successResultOf(stuck)
        self.assertTrue(dispatcher.idle)

    def test_timeout_fails_queued(self):
        """Events still queued when the timeout gives up fail with DispatcherStopped
        instead of waiting forever for a pool that has stopped."""
        pool = ManualThreadPool()
        dispatcher = self.dispatcher([self.step("s", [])], pool, shutdown_timeout=5.0)
        stuck = dispatcher.dispatch(message("stuck"))
        queued = dispatcher.dispatch(message("queued"))
        stopped = dispatcher.stopService()
        self.reactor.advance(5)
        self.successResultOf(stopped)
        self.failureResultOf(queued, DispatcherStopped)
        pool.run_all()
        self.successResultOf(stuck)
        self.assertEqual(pool.jobs, [])
        self.assertTrue(dispatcher.idle)

    def test_idle_stop(self):
        """An idle dispatcher stops at once."""
        pool = ManualThreadPool()
        dispatcher = self.dispatcher([], pool)
        self.successResultOf(dispatcher.stopService())
        self.assertTrue(pool.stopped)


class ChainSwapTests(DispatcherTestCase):
    """Swapping the chain while events are in flight."""

    def test_in_flight_keeps_old_chain(self):
        """An event already running finishes with the chain it started with; events started
        after the swap use the new chain."""
        pool = ManualThreadPool()
        seen = []
        dispatcher = self.dispatcher(
            [self.step("old-1", seen, 1), self.step("old-2", seen, 2)], pool
        )
        running = dispatcher.dispatch(message("running"))
        dispatcher.set_chain([self.step("new-1", seen, 1), self.step("new-2", seen, 2)])
        later = dispatcher.dispatch(message("later", "#b"))
        pool.run_all()
        self.successResultOf(running)
        self.successResultOf(later)
        self.assertEqual(
            seen,
            [
                ("old-1", "running"),
                ("old-2", "running"),
                ("new-1", "later"),
                ("new-2", "later"),
            ],
        )

    def test_never_a_mix(self):
        """A swap from inside a processor does not change the chain of the running event."""
        seen = []
        holder = {}

        def swap(event):
            holder["dispatcher"].set_chain([self.step("new", seen, 0)])

        holder["dispatcher"] = self.dispatcher(
            [self.step("swap", seen, 1, swap), self.step("old", seen, 2)]
        )
        self.successResultOf(holder["dispatcher"].dispatch(message("x")))
        self.successResultOf(holder["dispatcher"].dispatch(message("y")))
        self.assertEqual(seen, [("swap", "x"), ("old", "x"), ("new", "y")])


class FairnessTests(DispatcherTestCase):
    """Sharing the workers across sources and conversations (issue 12, item 10), driven
    with a hand-run pool: what it holds is what a real pool would run next."""

    def setUp(self):
        super().setUp()
        self.pool = ManualThreadPool()
        self.seen = []

    def flood(self, count, **config):
        dispatcher = self.dispatcher(
            [self.step("echo", self.seen, 0, lambda e: e.addresponse(describe(e)))],
            self.pool,
            **config,
        )
        results = [
            dispatcher.dispatch(message(f"flood{n}", f"#c{n}", "irc")) for n in range(count)
        ]
        return dispatcher, results

    def test_flood_does_not_delay_other_source(self):
        """A flood from one source in 200 conversations: another source's event is run
        among the next few, not after the flood; the flooding source holds at most three
        quarters of the workers while another has work."""
        dispatcher, _ = self.flood(200, threads=4)
        self.assertEqual(len(self.pool.jobs), 3)  # irc's share of 4 workers
        late = dispatcher.dispatch(message("other", "#x", "xmpp"))
        self.assertEqual(len(self.pool.jobs), 4)
        self.pool.run_all()
        self.assertEqual(self.successResultOf(late).responses[0].text, "other")
        order = [label for _, label in self.seen]
        self.assertLess(order.index("other"), 4)
        self.assertEqual(len(order), 201)

    def test_round_robin_across_sources(self):
        """Two flooding sources take turns."""
        dispatcher = self.dispatcher([self.step("echo", self.seen, 0)], self.pool, threads=1)
        for n in range(5):
            dispatcher.dispatch(message(f"a{n}", f"#a{n}", "irc"))
        for n in range(5):
            dispatcher.dispatch(message(f"b{n}", f"#b{n}", "xmpp"))
        self.pool.run_all()
        order = [label[0] for _, label in self.seen]
        for end in range(1, len(order) + 1):
            self.assertLessEqual(abs(order[:end].count("a") - order[:end].count("b")), 2, order)

    def test_round_robin_across_conversations(self):
        """Within a source, a busy conversation goes to the back of the line after each
        event: another conversation's event does not wait for its whole backlog."""
        dispatcher = self.dispatcher([self.step("echo", self.seen, 0)], self.pool, threads=1)
        for n in range(5):
            dispatcher.dispatch(message(f"busy{n}", "#busy"))
        dispatcher.dispatch(message("quiet", "#quiet"))
        self.pool.run_all()
        order = [label for _, label in self.seen]
        self.assertEqual(order[:3], ["busy0", "quiet", "busy1"])

    def test_backlog_bounded(self):
        """A source with max_queued events waiting has its new events dropped: counted,
        logged once, failed with DispatcherOverloaded; other sources are not affected,
        and once the backlog is worked off the source's events are taken again."""
        dispatcher = self.dispatcher([self.step("echo", self.seen, 0)], self.pool, max_queued=5)
        results = [dispatcher.dispatch(message(f"m{n}", "#a")) for n in range(10)]
        self.assertEqual(dispatcher.dropped, 4)
        for result in results[6:]:
            self.failureResultOf(result, DispatcherOverloaded)
        other = dispatcher.dispatch(message("other", "#a", "xmpp"))
        warned = [t for t in self.logged_texts() if "dropping its new events" in t]
        self.assertEqual(len(warned), 1)
        self.assertIn("source irc has 5 events waiting", warned[0])
        self.pool.run_all()
        self.successResultOf(other)
        self.assertEqual(len(self.seen), 7)
        again = dispatcher.dispatch(message("again", "#a"))
        self.pool.run_all()
        self.successResultOf(again)
        self.assertEqual(self.seen[-1][1], "again")

    def test_delayed_and_periodic_work_not_bounded(self):
        """call_later work is not dropped by the backlog bound (it is the bot's own)."""
        dispatcher = self.dispatcher([self.step("echo", self.seen, 0)], self.pool, max_queued=1)
        dispatcher.dispatch(message("m0", "#a"))
        dispatcher.dispatch(message("m1", "#a"))
        for _ in range(3):
            dispatcher.call_later(0, lambda e: None, message("later", "#a"))
        self.reactor.advance(0)
        self.pool.run_all()
        self.assertEqual([text for _, text in self.seen], ["m0", "m1", "later", "later", "later"])
        self.assertEqual(dispatcher.dropped, 0)


class BlockedHandlerTests(SynchronousTestCase):
    """Handlers blocked forever on every worker thread (issue 12, item 3): real threads
    (the dispatcher's WorkerPool) blocked on a threading.Event, the reactor a clock whose
    calls from the workers the test runs."""

    def setUp(self):
        from tests.botcore.dispatch.test_fastpath import QueueingReactor

        self.reactor = QueueingReactor()
        self.context = StubContext(reactor=self.reactor)
        self.release = threading.Event()
        self.addCleanup(self.release.set)
        self.entered = threading.Semaphore(0)
        self.logged = []
        globalLogPublisher.addObserver(self.logged.append)
        self.addCleanup(globalLogPublisher.removeObserver, self.logged.append)

    def dispatcher(self, **config):
        release, entered = self.release, self.entered

        def act(event):
            if event.message.raw.startswith("block"):
                entered.release()
                release.wait(WAIT)
            event.addresponse(event.message.raw)

        dispatcher = Dispatcher(config, reactor=self.reactor)
        dispatcher.set_chain([Step("blocker", self.context, [], 0, act)])
        dispatcher.startService()
        self.addCleanup(self.stop, dispatcher)
        return dispatcher

    def stop(self, dispatcher):
        self.release.set()
        stopped = dispatcher.stopService()
        self.reactor.pump(until=lambda: stopped.called)

    def block(self, dispatcher, count, prefix="#b"):
        """``count`` events that block, in conversations of their own, of two sources;
        waits until every one is blocked. Their events and Deferreds."""
        events = [
            message(f"block{n}", f"{prefix}{n}", "irc" if n % 2 else "xmpp") for n in range(count)
        ]
        blocked = [dispatcher.dispatch(event) for event in events]
        for _ in range(count):
            self.assertTrue(self.entered.acquire(timeout=WAIT), "a handler never started")
        return events, blocked

    def test_blocked_handlers_replaced(self):
        """Every worker blocked: a new event waits only until the handler deadline, then
        the stuck runs are logged (with their event and processor), counted, and given
        replacement threads, and the new event is answered while they are still blocked.
        The pool shrinks back once they return."""
        dispatcher = self.dispatcher(threads=4, handler_deadline=5, max_threads=10)
        events, blocked = self.block(dispatcher, 4)
        hello = dispatcher.dispatch(message("hello", "#x", "irc"))
        self.reactor.advance(4)
        self.assertNoResult(hello)
        self.reactor.advance(1)
        self.reactor.pump(until=lambda: hello.called)
        self.assertEqual(self.successResultOf(hello).responses[0].text, "hello")
        self.assertFalse(self.release.is_set())
        self.assertEqual((dispatcher.stuck, dispatcher.stuck_total), (4, 4))
        texts = [formatEvent(e) for e in self.logged]
        stuck = [t for t in texts if "still running after 5s" in t]
        self.assertEqual(len(stuck), 4)
        self.assertIn("in blocker; its worker is replaced", stuck[0])
        self.assertEqual(
            sorted(event.id for event in events),
            sorted(next(e.id for e in events if e.id in text) for text in stuck),
        )
        self.release.set()
        self.reactor.pump(until=lambda: all(d.called for d in blocked))
        self.assertEqual(dispatcher.stuck, 0)
        self.assertEqual(dispatcher.threadpool.size, 4)

    def test_replacements_bounded(self):
        """No more threads than max_threads: with every replacement blocked too, new
        events wait (they are not handed to a pool that cannot run them)."""
        dispatcher = self.dispatcher(threads=2, handler_deadline=5, max_threads=3)
        self.block(dispatcher, 2)
        self.reactor.advance(5)
        self.assertEqual(dispatcher.capacity, 1)
        self.block(dispatcher, 1, prefix="#more")
        self.reactor.advance(5)
        self.assertEqual(dispatcher.capacity, 0)
        late = dispatcher.dispatch(message("late", "#late"))
        self.assertNoResult(late)
        self.assertLessEqual(len(dispatcher.threadpool._threads), 3)
        texts = [formatEvent(e) for e in self.logged]
        self.assertTrue(any("not replaced: max_threads (3) reached" in t for t in texts))
        self.release.set()
        self.reactor.pump(until=lambda: late.called)
        self.assertEqual(self.successResultOf(late).responses[0].text, "late")
