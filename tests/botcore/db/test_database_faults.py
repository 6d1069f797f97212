"""Database faults under the dispatcher: which errors are retried, the backoff, the
"database" complaint and its log line (once per outage), and a real PostgreSQL server
stopped and restarted under a running dispatcher."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import psycopg
import pymysql
from sqlalchemy import event as sa_event
from sqlalchemy import exc as sa_exc
from sqlalchemy import select
from twisted.internet import reactor as global_reactor
from twisted.internet import threads
from twisted.internet.defer import Deferred
from twisted.logger import formatEvent, globalLogPublisher
from twisted.trial.unittest import SynchronousTestCase, TestCase

from botcore.db.faults import CONFLICT, UNAVAILABLE, classify_error
from botcore.db.service import Database
from botcore.db.storage import PluginData, PluginStore
from botcore.dispatch.dispatcher import Dispatcher
from botcore.event import Event, EventType, Sender
from botcore.processor import Processor, handler
from botcore.testing import InlineReactor, InlineThreadPool, PluginTestCase, StubContext
from tests.migrations.backends import PostgresCluster


def wrapped(orig: BaseException, cls=sa_exc.OperationalError, invalidated=False):
    """``orig`` as SQLAlchemy raises it."""
    return cls("SELECT 1", {}, orig, connection_invalidated=invalidated)


def dropped() -> sa_exc.OperationalError:
    return wrapped(psycopg.OperationalError("server closed the connection unexpectedly"))


def deadlock() -> sa_exc.OperationalError:
    return wrapped(psycopg.errors.DeadlockDetected("deadlock detected"))


class ClassifyTests(SynchronousTestCase):
    """Which database errors are worth retrying, and as what."""

    def test_postgresql(self) -> None:
        """Lost connections, refused connections and shutdowns are outages; deadlocks and
        serialization failures are conflicts; constraint violations are neither."""
        self.assertEqual(classify_error(dropped()), UNAVAILABLE)
        shutdown = psycopg.errors.AdminShutdown("terminating connection")
        self.assertEqual(classify_error(wrapped(shutdown)), UNAVAILABLE)
        self.assertEqual(classify_error(deadlock()), CONFLICT)
        serial = psycopg.errors.SerializationFailure("could not serialize")
        self.assertEqual(classify_error(wrapped(serial)), CONFLICT)
        unique = psycopg.errors.UniqueViolation("duplicate key")
        self.assertIsNone(classify_error(wrapped(unique, sa_exc.IntegrityError)))
        syntax = psycopg.errors.SyntaxError("syntax error")
        self.assertIsNone(classify_error(wrapped(syntax, sa_exc.ProgrammingError)))
        bad = psycopg.ProgrammingError("the query has 1 placeholder but 2 parameters")
        self.assertIsNone(classify_error(wrapped(bad, sa_exc.ProgrammingError)))

    def test_mysql(self) -> None:
        """MariaDB: gone away and lost connection are outages, deadlock and lock wait
        timeout conflicts, duplicate keys neither."""
        gone = pymysql.err.OperationalError(2006, "MySQL server has gone away")
        self.assertEqual(classify_error(wrapped(gone)), UNAVAILABLE)
        refused = pymysql.err.OperationalError(2003, "Can't connect")
        self.assertEqual(classify_error(wrapped(refused)), UNAVAILABLE)
        self.assertEqual(
            classify_error(wrapped(pymysql.err.InterfaceError(0, ""), sa_exc.InterfaceError)),
            UNAVAILABLE,
        )
        lock = pymysql.err.OperationalError(1213, "Deadlock found")
        self.assertEqual(classify_error(wrapped(lock)), CONFLICT)
        wait = pymysql.err.OperationalError(1205, "Lock wait timeout exceeded")
        self.assertEqual(classify_error(wrapped(wait)), CONFLICT)
        duplicate = pymysql.err.IntegrityError(1062, "Duplicate entry")
        self.assertIsNone(classify_error(wrapped(duplicate, sa_exc.IntegrityError)))

    def test_sqlite(self) -> None:
        """SQLite: a locked (busy) database is a conflict; a missing table is not retried."""
        self.assertEqual(
            classify_error(wrapped(sqlite3.OperationalError("database is locked"))), CONFLICT
        )
        missing = sqlite3.OperationalError("no such table: karma")
        self.assertIsNone(classify_error(wrapped(missing)))

    def test_invalidated_and_others(self) -> None:
        """Whatever the driver, an invalidated connection is an outage and a pool
        timeout a conflict; errors that are not the database's are not retried."""
        self.assertEqual(classify_error(wrapped(Exception("x"), invalidated=True)), UNAVAILABLE)
        self.assertEqual(classify_error(sa_exc.TimeoutError("QueuePool limit")), CONFLICT)
        self.assertIsNone(classify_error(ValueError("x")))
        self.assertIsNone(classify_error(sa_exc.InvalidRequestError("x")))


class RetryPolicyTests(SynchronousTestCase):
    """The backoff the database asks for."""

    def test_backoff_doubles_and_is_bounded(self) -> None:
        """Delays double from retry_delay, never exceed the cap, and stop after retries."""
        database = Database("main", {"retries": 5, "retry_delay": 1.5})
        delays = [database.retry_delay_for(CONFLICT, attempt) for attempt in range(6)]
        self.assertEqual(delays, [1.5, 3.0, 5.0, 5.0, 5.0, None])

    def test_outage_fails_fast(self) -> None:
        """While the database is known to be down, a lost connection is not waited for,
        but a conflict still is."""
        database = Database("main", {})
        self.assertEqual(database.retry_delay_for(UNAVAILABLE, 0), 0.2)
        database.unavailable = True
        self.assertIsNone(database.retry_delay_for(UNAVAILABLE, 0))
        self.assertEqual(database.retry_delay_for(CONFLICT, 0), 0.2)


class Writer(Processor):
    """Stores a value per message and says so; fails as the test tells it to."""

    addressed = False

    def __init__(self, bot, failures=()):
        super().__init__("faults", bot)
        self.failures = list(failures)
        self.runs = 0
        self.sessions = []

    @handler
    def write(self, event):
        self.runs += 1
        self.sessions.append(event.session)
        event.addresponse(f"saved {event.message.raw}")
        if self.failures:
            failure = self.failures.pop(0)
            if failure is not None:
                raise failure()
        PluginStore(event.session, "faults").set(event.message.raw, self.runs)


def message(text: str, channel: str = "#a") -> Event:
    return Event(
        source="irc",
        type=EventType.MESSAGE,
        sender=Sender("irc", "alice", "alice"),
        channel=channel,
        addressed=True,
        message=text,
    )


class DispatcherRetryTests(SynchronousTestCase):
    """The dispatcher retrying a step after a database fault (SQLite, inline pool)."""

    def setUp(self) -> None:
        folder = Path(self.mktemp()).absolute()
        folder.mkdir(parents=True)
        self.sleeps: list[float] = []
        self.context = StubContext(reactor=InlineReactor())
        self.database = Database(
            "main", {"url": f"sqlite:///{folder / 'bot.sqlite'}"}, sleep=self.sleeps.append
        )
        self.database.startService()
        self.addCleanup(self.database.stopService)
        self.logged: list[dict] = []
        globalLogPublisher.addObserver(self.logged.append)
        self.addCleanup(globalLogPublisher.removeObserver, self.logged.append)

    def run_events(self, processor, *texts):
        dispatcher = Dispatcher(
            reactor=InlineReactor(), threadpool=InlineThreadPool(), database=self.database
        )
        dispatcher.set_chain([processor])
        dispatcher.startService()
        self.addCleanup(dispatcher.stopService)
        return [self.successResultOf(dispatcher.dispatch(message(text))) for text in texts]

    def stored(self) -> dict:
        with self.database.session_factory() as session:
            rows = session.execute(select(PluginData.key, PluginData.value))
            return {key: value for key, value in rows}

    def texts(self) -> list[str]:
        return [formatEvent(event) for event in self.logged]

    def test_transient_failure_retried(self) -> None:
        """A dropped connection is retried after the backoff; the reply is given once and
        the row committed once."""
        writer = Writer(self.context, [dropped, dropped])
        (event,) = self.run_events(writer, "one")
        self.assertEqual([r.text for r in event.responses], ["saved one"])
        self.assertIsNone(event.complain)
        self.assertEqual(self.sleeps, [0.2, 0.4])
        self.assertEqual(writer.runs, 3)
        self.assertEqual(self.stored(), {"one": 3})
        self.assertEqual(self.flushLoggedErrors(), [])

    def test_retry_uses_fresh_session(self) -> None:
        """Each try gets a new session, the failed one being closed."""
        writer = Writer(self.context, [dropped])
        self.run_events(writer, "one")
        first, second = writer.sessions
        self.assertIsNot(first, second)

    def test_commit_failure_retried(self) -> None:
        """A connection lost at commit runs the step again: one reply, one row."""
        writer = Writer(self.context)
        failures = [dropped()]

        def fail_commit(session):
            if failures:
                raise failures.pop()

        sa_event.listen(self.database.session_factory, "before_commit", fail_commit)
        (event,) = self.run_events(writer, "one")
        self.assertEqual(writer.runs, 2)
        self.assertEqual([r.text for r in event.responses], ["saved one"])
        self.assertEqual(self.stored(), {"one": 2})

    def test_outage(self) -> None:
        """While the database stays down every event still finishes, with a "database"
        complaint and none of the failed step's replies; only the first event waits for
        the backoff; the outage is logged once, and its end once."""
        writer = Writer(self.context, [dropped] * 7)
        events = self.run_events(writer, "one", "two", "three")
        for event in events:
            self.assertEqual(event.complain, "database")
            self.assertEqual(event.responses, [])
        self.assertEqual(self.sleeps, [0.2, 0.4, 0.8])
        self.assertEqual(writer.runs, 6)
        down = [t for t in self.texts() if "database main unavailable" in t]
        self.assertEqual(len(down), 1)
        self.assertIn("server closed the connection unexpectedly", down[0])

        (event,) = self.run_events(writer, "four")  # the 7th failure: still down
        self.assertEqual(event.complain, "database")
        self.assertEqual(len(self.sleeps), 3)
        (event,) = self.run_events(writer, "five")
        self.assertEqual([r.text for r in event.responses], ["saved five"])
        self.assertFalse(self.database.unavailable)
        self.assertEqual(self.stored(), {"five": 8})
        texts = self.texts()
        self.assertEqual(len([t for t in texts if "database main unavailable" in t]), 1)
        self.assertEqual(texts.count("database main is available again"), 1)

    def test_conflict_logged_each_time(self) -> None:
        """A deadlock that does not clear is retried for every event (it is not an
        outage) and logged for each."""
        writer = Writer(self.context, [deadlock] * 8)
        events = self.run_events(writer, "one", "two")
        self.assertEqual([e.complain for e in events], ["database", "database"])
        self.assertEqual(self.sleeps, [0.2, 0.4, 0.8] * 2)
        gave_up = [t for t in self.texts() if "gave up after 4 tries" in t]
        self.assertEqual(len(gave_up), 2)
        self.assertFalse(self.database.unavailable)

    def test_other_errors_not_retried(self) -> None:
        """A bug in a processor is not retried: one try, an "exception" complaint."""
        writer = Writer(self.context, [ValueError])
        (event,) = self.run_events(writer, "one")
        self.assertEqual(writer.runs, 1)
        self.assertEqual(self.sleeps, [])
        self.assertEqual(event.complain, "exception")
        self.assertEqual(len(self.flushLoggedErrors(ValueError)), 1)
        self.assertEqual(self.stored(), {})


class Broken(Processor):
    """Fails as if the database were down."""

    @handler
    def fail(self, event):
        event.session.execute(select(1))
        raise dropped()


class DatabaseComplaintTests(PluginTestCase):
    """The user sees a "database unavailable" complaint."""

    load = ()
    extra_processors = (Broken,)
    plugin_config = {"plugin:core": {"database": "The database is down, sorry"}}

    def setUp(self) -> None:
        super().setUp()
        self.bot.databases["main"].sleep = lambda delay: None

    def test_complaint(self) -> None:
        """An event that could not reach the database is answered with a phrase from the
        core Complain processor's "database" list."""
        self.assertResponseMatches("hello", "^The database is down, sorry$")

    def test_default_phrases(self) -> None:
        """The default database phrases say the database is unavailable."""
        from plugins.core import Complain

        for phrase in Complain.database.default:
            self.assertIn("unavailable", phrase.lower())


class PostgreSQLOutageTests(TestCase):
    """A real PostgreSQL server stopped and started again under a running dispatcher
    with its real thread pool."""

    timeout = 180

    def setUp(self) -> None:
        self.cluster = PostgresCluster()
        self.addCleanup(self.cluster.destroy)
        self.cluster.init()
        self.cluster.start()
        self.context = StubContext(reactor=global_reactor)
        self.database = Database(
            "main",
            {
                "url": self.cluster.url,
                "auto_upgrade": True,
                "retries": 2,
                "retry_delay": 0.05,
                "connect_timeout": 2,
            },
        )
        self.database.startService()
        self.addCleanup(self.database.stopService)
        self.logged: list[dict] = []
        globalLogPublisher.addObserver(self.logged.append)
        self.addCleanup(globalLogPublisher.removeObserver, self.logged.append)

        class Complainer(Processor):
            priority = 950
            processed = True
            addressed = False

            @handler
            def complain(self, event):
                if event.complain and not event.responses:
                    event.addresponse(f"complaint: {event.complain}")

        self.dispatcher = Dispatcher(
            {"threads": 4}, reactor=global_reactor, database=self.database
        )
        self.dispatcher.set_chain([Writer(self.context), Complainer("complain", self.context)])
        self.dispatcher.startService()
        self.addCleanup(self.dispatcher.stopService)

    def dispatch(self, text: str) -> Deferred[str]:
        d = self.dispatcher.dispatch(message(text))
        d.addCallback(lambda event: " / ".join(str(r.text) for r in event.responses))
        d.addTimeout(30, global_reactor)
        return d

    async def stream(self, first: int, last: int, answers: dict[int, str]) -> None:
        for number in range(first, last + 1):
            answers[number] = await self.dispatch(str(number))

    async def test_stop_and_restart(self) -> None:
        """Events before, during and after the outage are all answered: saved before and
        after, a database complaint while the server is down; every saved row is there
        afterwards; the outage is logged once."""
        answers: dict[int, str] = {}
        await self.stream(1, 10, answers)
        # Stop the server while events keep coming.
        stopping = threads.deferToThread(self.cluster.stop)
        await self.stream(11, 20, answers)
        await stopping
        await self.stream(21, 30, answers)
        await threads.deferToThread(self.cluster.start)
        started = time.monotonic()
        await self.stream(31, 40, answers)
        recovery = time.monotonic() - started

        self.assertEqual(sorted(answers), list(range(1, 41)))
        for number in [*range(1, 11), *range(31, 41)]:
            self.assertEqual(answers[number], f"saved {number}")
        for number in range(21, 31):
            self.assertEqual(answers[number], "complaint: database")
        for number in range(11, 21):
            self.assertIn(answers[number], (f"saved {number}", "complaint: database"))
        self.assertLess(recovery, 20)

        saved = {n for n, answer in answers.items() if answer.startswith("saved")}
        with self.database.session_factory() as session:
            keys = set(session.scalars(select(PluginData.key)))
        self.assertTrue({str(n) for n in saved} <= keys, "a committed row was lost")
        texts = [formatEvent(event) for event in self.logged]
        self.assertEqual(len([t for t in texts if "database main unavailable" in t]), 1)
        self.assertEqual(texts.count("database main is available again"), 1)
