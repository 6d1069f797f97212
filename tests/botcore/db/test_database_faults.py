"""Database faults under the dispatcher: which errors are retried, the backoff, the
"database" complaint and its log line (once per outage), and a real PostgreSQL server
stopped and restarted under a running dispatcher."""

from __future__ import annotations

import contextlib
import socket
import sqlite3
import threading
import time
from pathlib import Path

import psycopg
import pymysql
from sqlalchemy import event as sa_event
from sqlalchemy import exc as sa_exc
from sqlalchemy import select
from sqlalchemy.engine import make_url
from twisted.internet import reactor as global_reactor
from twisted.internet import threads
from twisted.internet.defer import Deferred, ensureDeferred
from twisted.internet.task import deferLater
from twisted.logger import formatEvent, globalLogPublisher
from twisted.trial.unittest import SynchronousTestCase, TestCase

from botcore.db.engine import CLIENT_GRACE
from botcore.db.faults import CONFLICT, UNAVAILABLE, classify_error
from botcore.db.service import Database
from botcore.db.storage import PluginData, PluginStore
from botcore.dispatch.dispatcher import Dispatcher
from botcore.event import Event, EventType, Sender
from botcore.processor import Processor, handler, match
from botcore.testing import (
    POSTGRESQL,
    InlineReactor,
    InlineThreadPool,
    PluginTestCase,
    StubContext,
    fresh_database,
)
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

    def test_sqlite_read_only_is_an_outage(self) -> None:
        """A database file made read-only under the running bot (SQLITE_READONLY) is an
        outage to wait out, not a bug to complain about (issue 12, item 18)."""
        folder = Path(self.mktemp()).absolute()
        folder.mkdir(parents=True)
        connection = sqlite3.connect(folder / "x.sqlite")
        connection.execute("CREATE TABLE t (x)")
        connection.commit()
        connection.close()
        reader = sqlite3.connect(f"file:{folder / 'x.sqlite'}?mode=ro", uri=True)
        self.addCleanup(reader.close)
        try:
            reader.execute("INSERT INTO t VALUES (1)")
        except sqlite3.OperationalError as e:
            error = e
        self.assertEqual(classify_error(wrapped(error)), UNAVAILABLE)

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
        self.now = 0.0
        self.database = Database(
            "main",
            {"url": f"sqlite:///{folder / 'bot.sqlite'}"},
            sleep=self.sleeps.append,
            clock=lambda: self.now,
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
        the backoff; the others do not even try it, until one is let through after a
        while (1 s, then 2 s when that one fails too); the outage is logged once, and
        its end once."""
        writer = Writer(self.context, [dropped] * 5)
        events = self.run_events(writer, "one", "two", "three")
        for event in events:
            self.assertEqual(event.complain, "database")
            self.assertEqual(event.responses, [])
        self.assertEqual(self.sleeps, [0.2, 0.4, 0.8])
        self.assertEqual(writer.runs, 6)
        self.assertEqual(len(writer.failures), 1)  # two and three never reached it
        down = [t for t in self.texts() if "database main unavailable" in t]
        self.assertEqual(len(down), 1)
        self.assertIn("server closed the connection unexpectedly", down[0])
        self.assertIn("trying it again in 1s", down[0])

        self.now = 1.0
        (event,) = self.run_events(writer, "four")  # tried: the 5th failure, still down
        self.assertEqual(event.complain, "database")
        self.assertEqual(writer.failures, [])
        self.assertEqual(len(self.sleeps), 3)
        self.now = 2.5
        (event,) = self.run_events(writer, "five")  # waits 2 s now: not tried
        self.assertEqual(event.complain, "database")
        self.now = 3.0
        (event,) = self.run_events(writer, "six")
        self.assertEqual([r.text for r in event.responses], ["saved six"])
        self.assertFalse(self.database.unavailable)
        self.assertEqual(self.stored(), {"six": 9})
        texts = self.texts()
        self.assertEqual(len([t for t in texts if "database main unavailable" in t]), 1)
        self.assertEqual(texts.count("database main is available again"), 1)

    def test_flapping_outage_backs_off(self) -> None:
        """A database that fails again just after it came back (a read-only file: reads
        work, writes fail) is not tried by every event: the wait goes on doubling, so
        the outage is logged at most once per wait, not once per event."""
        writer = Writer(self.context, [dropped] * 4)
        self.run_events(writer, "one")  # 4 tries: the outage begins, 1 s
        for step, wait in enumerate([2, 4, 8, 10, 10]):
            writer.failures = [None] + [dropped] * 4  # one write works, one fails
            self.now += 100 if step == 0 else 0  # the first wait long over
            (ok,) = self.run_events(writer, f"ok{step}")
            self.assertEqual(ok.complain, None)
            (failed,) = self.run_events(writer, f"fail{step}")
            self.assertEqual(failed.complain, "database")
            self.assertIn(f"trying it again in {wait}s", self.texts()[-1])
            for _ in range(5):  # the events until then do not touch it
                (event,) = self.run_events(writer, "meanwhile")
                self.assertEqual(event.complain, "database")
            self.assertEqual(writer.failures, [])
            self.now += wait
        lines = [t for t in self.texts() if "database main unavailable" in t]
        self.assertEqual(len(lines), 6)

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
        from botcore.plugins.core import Complain

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
        after, a database complaint while the server is down; once back, the database is
        tried again within Database.MAX_OUTAGE_WAIT and every later event is saved; every
        saved row is there afterwards; the outage is logged once."""
        answers: dict[int, str] = {}
        await self.stream(1, 10, answers)
        # Stop the server while events keep coming.
        stopping = threads.deferToThread(self.cluster.stop)
        await self.stream(11, 20, answers)
        await stopping
        await self.stream(21, 30, answers)
        await threads.deferToThread(self.cluster.start)
        started = time.monotonic()
        number = 30
        while time.monotonic() - started < 20:
            number += 1
            answers[number] = await self.dispatch(str(number))
            if answers[number].startswith("saved"):
                break
            await deferLater(global_reactor, 0.1, lambda: None)
        recovery = time.monotonic() - started
        back = number
        await self.stream(back + 1, back + 10, answers)

        self.assertEqual(sorted(answers), list(range(1, back + 11)))
        for number in [*range(1, 11), *range(back, back + 11)]:
            self.assertEqual(answers[number], f"saved {number}")
        for number in range(31, back):
            self.assertEqual(answers[number], "complaint: database")
        for number in range(21, 31):
            self.assertEqual(answers[number], "complaint: database")
        for number in range(11, 21):
            self.assertIn(answers[number], (f"saved {number}", "complaint: database"))
        self.assertLess(recovery, Database.MAX_OUTAGE_WAIT + 5)

        saved = {n for n, answer in answers.items() if answer.startswith("saved")}
        with self.database.session_factory() as session:
            keys = set(session.scalars(select(PluginData.key)))
        self.assertTrue({str(n) for n in saved} <= keys, "a committed row was lost")
        texts = [formatEvent(event) for event in self.logged]
        self.assertEqual(len([t for t in texts if "database main unavailable" in t]), 1)
        self.assertEqual(texts.count("database main is available again"), 1)


class FreezingProxy:
    """A TCP proxy on loopback in front of a server, that can stop forwarding: a peer
    that accepts connections and data and never answers, as a stopped (SIGSTOP) server
    or a network partition looks to the client."""

    def __init__(self, host: str, port: int) -> None:
        self.target = (host, port)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.flowing = threading.Event()
        self.flowing.set()
        self.closed = False
        self.sockets: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self.closed:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(self.target)
            self.sockets += [client, upstream]
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(source, sink), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                self.flowing.wait()
                if self.closed:
                    return
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for end in (source, sink):
                with contextlib.suppress(OSError):
                    end.shutdown(socket.SHUT_RDWR)

    def freeze(self) -> None:
        self.flowing.clear()

    def thaw(self) -> None:
        self.flowing.set()

    def close(self) -> None:
        self.closed = True
        self.flowing.set()
        self.listener.close()
        for end in self.sockets:
            with contextlib.suppress(OSError):
                end.close()


class HungPostgreSQLTests(TestCase):
    """A real PostgreSQL server behind a proxy that stops answering under a running
    dispatcher with its real thread pool (issue 12, item 11): statements end within
    the bound, the outage is declared, events needing no database are answered at once
    meanwhile, and the events after the outage are saved again."""

    timeout = 120

    def setUp(self) -> None:
        url = make_url(fresh_database(self, POSTGRESQL))
        self.proxy = FreezingProxy(url.host or "127.0.0.1", url.port or 5432)
        self.addCleanup(self.proxy.close)
        self.context = StubContext(reactor=global_reactor)
        self.database = Database(
            "main",
            {
                "url": url.set(host="127.0.0.1", port=self.proxy.port).render_as_string(
                    hide_password=False
                ),
                "auto_upgrade": True,
                "retries": 1,
                "retry_delay": 0.05,
                "connect_timeout": 1,
                "statement_timeout": 1,
            },
        )
        self.database.startService()
        self.addCleanup(self.database.stopService)

        class Saver(Processor):
            addressed = False

            @match("save {word}")
            def save(self, event, word):
                PluginStore(event.session, "faults").set(word, 1)
                event.addresponse(f"saved {word}")

        class Echo(Processor):
            addressed = False

            @match("echo {word}")
            def echo(self, event, word):
                event.addresponse(word)

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
        self.dispatcher.set_chain(
            [
                Saver("saver", self.context),
                Echo("echo", self.context),
                Complainer("complain", self.context),
            ]
        )
        self.dispatcher.startService()
        self.addCleanup(self.dispatcher.stopService)
        self.addCleanup(self.proxy.thaw)  # let the workers' connections end

    async def say(self, text: str, channel: str, bound: float) -> tuple[str, float]:
        started = time.monotonic()
        d = self.dispatcher.dispatch(message(text, channel))
        d.addTimeout(bound, global_reactor)
        event = await d
        return " / ".join(str(r.text) for r in event.responses), time.monotonic() - started

    async def test_hung_server(self) -> None:
        self.assertEqual((await self.say("save one", "#a", 30))[0], "saved one")
        self.proxy.freeze()
        # The statement waits for the server, bounded: statement_timeout + CLIENT_GRACE,
        # and a reconnect bounded by connect_timeout (libpq's least: 2 s).
        saving = ensureDeferred(self.say("save two", "#a", 30))
        echoes = [await self.say(f"echo {n}", f"#e{n}", 5) for n in range(3)]
        self.assertEqual([answer for answer, _ in echoes], ["0", "1", "2"])
        answer, took = await saving
        self.assertEqual(answer, "complaint: database")
        self.assertLess(took, 1 + CLIENT_GRACE + 2 * 2 + 3)
        self.assertTrue(self.database.unavailable)
        # Known down: the next ones do not wait for it.
        answer, took = await self.say("save three", "#a", 30)
        self.assertEqual(answer, "complaint: database")
        self.assertLess(took, 1)
        self.proxy.thaw()
        deadline = time.monotonic() + 30
        while True:
            answer, _ = await self.say("save four", "#a", 30)
            if answer == "saved four" or time.monotonic() > deadline:
                break
            await deferLater(global_reactor, 0.2, lambda: None)
        self.assertEqual(answer, "saved four")
        self.assertFalse(self.database.unavailable)
