"""The event log: what a real bot records (and what it never does), batching, retention
by age and count on a schedule, the query API on every backend, and ``botcore-db
events``."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import insert, text
from sqlalchemy.orm import Session
from twisted.trial.unittest import SynchronousTestCase

from botcore.bus.catalogue import Catalogue, EventTypeSpec, TopicSpec
from botcore.bus.log import (
    MAX_LIMIT,
    EventFilter,
    EventLog,
    EventRecord,
    parse_when,
    prune,
    recent,
    row_of,
)
from botcore.cli.db import main
from botcore.event import Event, Message, Sender
from botcore.testing import (
    InlineReactor,
    InlineThreadPool,
    ManualThreadPool,
    PluginTestCase,
    backend_classes,
    backend_variants,
    fresh_engine,
    sqlite_database,
)

T0 = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)


def rows(bot_or_database):
    database = getattr(bot_or_database, "databases", {"main": bot_or_database})["main"]
    with database.open_session() as session:
        return list(reversed(recent(session, limit=MAX_LIMIT)))


class RecordingTests(PluginTestCase):
    """A bot with ``[events] log = yes`` records what happened, through the dispatcher."""

    load = ("basic",)
    public = True
    plugin_config = {
        "events": {"log": "yes", "log_payload": "full", "log_types": "message, deploy"},
        "event:deploy": {"schema": '{"type": "object", "required": ["env"]}'},
    }

    def test_public_recorded_private_not(self):
        """A public message is recorded with its text once the flush interval passes;
        a private one is not (log_private is off)."""
        self.say("hello there")
        self.assertEqual(rows(self.bot), [])  # waiting in memory, not yet written
        self.say(self.make_event("psst, a secret", public=False, channel=None))
        self.advance(1.0)
        found = rows(self.bot)
        self.assertEqual([(r.type, r.channel, r.text) for r in found], [
            ("message", "#test", "hello there")
        ])  # fmt: skip
        self.assertEqual(found[0].sender, "user")
        self.assertTrue(found[0].public)

    def test_secrets_never_recorded(self):
        """A password said in public is recorded as the Secrets processor left it."""
        self.say("botcore: auth hunter2")
        self.advance(1.0)
        (found,) = rows(self.bot)
        self.assertNotIn("hunter2", found.text)
        self.assertNotIn("hunter2", found.summary)

    def test_published_type_with_payload(self):
        """An event published through the bot interface is recorded with its payload;
        a type not in log_types (lifecycle) is not."""
        deploy = Event(source="test", type="deploy", data={"env": "prod", "when": T0})
        self.successResultOf(self.bot.context.dispatch(deploy))
        self.advance(1.0)
        (found,) = rows(self.bot)
        self.assertEqual(found.type, "deploy")
        self.assertEqual(found.event_id, deploy.id)
        # What JSON cannot hold is written as text.
        self.assertEqual(found.payload, {"env": "prod", "when": str(T0)})
        self.assertEqual(found.summary, "keys: env, when")

    def test_stop_writes_what_waits(self):
        """Stopping the bot writes the records still in memory."""
        self.say("last words")
        self.successResultOf(self.bot.stopService())
        self.assertEqual([r.text for r in rows(self.bot)], ["last words"])

    def test_reload_turns_it_off(self):
        """A config reload with log = no stops recording (and its timers)."""
        path = self.directory / "bot.ini"
        path.write_text(path.read_text().replace("log = yes", "log = no"))
        self.assertEqual(self.bot.reload_config(), [])
        self.say("not recorded")
        self.advance(5.0)
        self.assertEqual(rows(self.bot), [])


backend_variants(RecordingTests, globals())


class PrivateAndSummaryTests(PluginTestCase):
    """log_private and the summary payload (the default)."""

    load = ("basic",)
    plugin_config = {"events": {"log": "yes", "log_private": "yes"}}

    def test_private_summary(self):
        """With log_private a private message is recorded, but in summary only: no text,
        no payload, its length and keys instead. Lifecycle events are recorded too
        (every type but periodic), the final one as the bot stops."""
        self.say("twelve chars")
        self.successResultOf(self.bot.stopService())
        found = rows(self.bot)
        messages = [r for r in found if r.type == "message"]
        self.assertEqual(len(messages), 1)
        self.assertIsNone(messages[0].text)
        self.assertIsNone(messages[0].payload)
        self.assertEqual(messages[0].summary, "keys: -; text: 12 characters")
        states = [r.summary for r in found if r.type == "lifecycle"]
        self.assertEqual(len(states), 4)  # starting, running, stopping, stopped
        self.assertNotIn("periodic", [r.type for r in found])


class EventLogUnitTests(SynchronousTestCase):
    """The EventLog service on a real SQLite database, an injected clock and thread."""

    def setUp(self):
        self.clock = InlineReactor()
        self.database = sqlite_database(self)
        self.catalogue = Catalogue()
        self.catalogue.declare(EventTypeSpec("deploy", "d"))
        self.catalogue.declare(EventTypeSpec("rollback", "r", parent="deploy"))
        self.catalogue.declare(EventTypeSpec("alert", "a"))
        self.catalogue.declare_topic(TopicSpec("pages", "p", frozenset({"alert"})))

    def service(self, threadpool=None, **config):
        config.setdefault("log", True)
        log = EventLog(
            config,
            database=self.database,
            reactor=self.clock,
            catalogue=self.catalogue,
            threadpool=threadpool or InlineThreadPool(),
        )
        log.startService()
        self.addCleanup(lambda: log.running and log.stopService())
        return log

    def event(self, type="deploy", when=T0, **kw):
        return Event(source="ci", type=type, time=when, **kw)

    def test_types_subtypes_and_topics(self):
        """log_types takes types with their subtypes, and topics."""
        log = self.service(log_types=["deploy", "pages"])
        for type in ("deploy", "rollback", "alert", "message"):
            log.record(self.event(type))
        self.clock.advance(1.0)
        self.assertEqual([r.type for r in rows(self.database)], ["deploy", "rollback", "alert"])
        self.assertEqual(log.written, 3)

    def test_off_records_nothing(self):
        """With log off nothing is recorded and no timer runs."""
        log = self.service(log=False)
        log.record(self.event())
        self.assertEqual(self.clock.getDelayedCalls(), [])
        self.assertEqual(rows(self.database), [])

    def test_buffer_bound(self):
        """Past max_buffered, records are dropped and counted until a write frees room."""
        log = self.service(max_buffered=2)
        for _ in range(3):
            log.record(self.event())
        self.assertEqual(log.dropped, 1)
        self.clock.advance(1.0)
        log.record(self.event())
        self.clock.advance(1.0)
        self.assertEqual(len(rows(self.database)), 3)
        self.flushLoggedErrors()

    def test_one_write_at_a_time(self):
        """Records arriving while a write is under way wait for the next flush, and the
        writes happen on the log's thread, not the caller's."""
        pool = ManualThreadPool()
        log = self.service(threadpool=pool, prune_interval=3600)
        pool.run()  # the prune at start
        log.record(self.event())
        self.clock.advance(1.0)
        self.assertEqual(len(pool.jobs), 1)
        log.record(self.event())
        self.clock.advance(1.0)  # a write is under way: nothing more is queued
        self.assertEqual(len(pool.jobs), 1)
        pool.run()
        self.clock.advance(1.0)
        pool.run()
        self.assertEqual(len(rows(self.database)), 2)

    def test_failed_write_counted(self):
        """A write that fails is logged and counted; the log goes on."""
        log = self.service()
        with self.database.open_session() as session:
            session.execute(text("DROP TABLE event_log"))
            session.commit()
        log.record(self.event())
        self.clock.advance(1.0)
        self.assertEqual(log.failed, 1)
        self.assertTrue(self.flushLoggedErrors())

    def test_pruned_on_schedule(self):
        """Every prune_interval the records past keep_count go, oldest first, and those
        older than keep_days (by the reactor clock)."""
        self.clock.advance(T0.timestamp())
        log = self.service(keep_count=3, keep_days=10, prune_interval=60)
        for day in reversed(range(5)):  # recorded oldest first, as they happen
            log.record(self.event(when=T0 - timedelta(days=day), data={"day": day}))
        self.clock.advance(1.0)
        self.assertEqual(len(rows(self.database)), 5)
        self.clock.advance(59.0)
        kept = [T0 - timedelta(days=2), T0 - timedelta(days=1), T0]
        self.assertEqual([r.time for r in rows(self.database)], kept)
        self.assertEqual(log.pruned, 2)
        self.clock.advance(9 * 86400 + 60)  # T0 - 1 day is now ten days old and more
        self.assertEqual([r.time for r in rows(self.database)], [T0])


class QueryTestsMixin:
    """recent and prune on each backend (``self.backend``)."""

    def setUp(self):
        self.engine = fresh_engine(self, self.backend, migrated=True)
        self.session = Session(self.engine)
        self.addCleanup(self.session.close)
        self.rows = [
            ("deploy", "ci", None, T0),
            ("alert", "ci", None, T0 + timedelta(minutes=1)),
            ("message", "irc", "#ops", T0 + timedelta(minutes=2)),
            ("deploy", "irc", "#ops", T0 + timedelta(minutes=3)),
        ]
        for type, source, channel, when in self.rows:
            event = Event(
                source=source,
                type=type,
                channel=channel,
                time=when,
                public=True,
                sender=Sender(source, "alice!a@host", "alice"),
                message=Message("héllo") if type == "message" else None,
                data={"n": 1},
            )
            self.session.execute(insert(EventRecord), [row_of(event, full=True)])
        self.session.commit()

    def test_filters(self):
        """By types, source, channel and time, newest first, limited."""
        found = recent(self.session, EventFilter(types=("deploy",)))
        self.assertEqual([r.time for r in found], [T0 + timedelta(minutes=3), T0])
        found = recent(self.session, EventFilter(source="irc", channel="#ops"))
        self.assertEqual([r.type for r in found], ["deploy", "message"])
        window = EventFilter(since=T0 + timedelta(minutes=1), until=T0 + timedelta(minutes=3))
        self.assertEqual([r.type for r in recent(self.session, window)], ["message", "alert"])
        self.assertEqual(len(recent(self.session, limit=1)), 1)
        message = recent(self.session, EventFilter(types=("message",)))[0]
        self.assertEqual(message.text, "héllo")
        self.assertEqual(message.as_dict()["time"], (T0 + timedelta(minutes=2)).isoformat())

    def test_prune(self):
        """prune keeps the newest keep_count and nothing older than keep_days."""
        self.assertEqual(prune(self.session, T0 + timedelta(days=1), 0, 3), 1)
        self.assertEqual(len(recent(self.session)), 3)
        now = T0 + timedelta(days=1, minutes=2, seconds=30)
        self.assertEqual(prune(self.session, now, 1, 0), 2)
        self.assertEqual([r.type for r in recent(self.session)], ["deploy"])
        self.assertEqual(prune(self.session, now, 1, 10), 0)


backend_classes(QueryTestsMixin, globals(), "EventQueryTests")


class ParseWhenTests(SynchronousTestCase):
    def test_forms(self):
        """ISO times (UTC unless they say otherwise) and times ago."""
        now = T0
        self.assertEqual(parse_when("2h", now), T0 - timedelta(hours=2))
        self.assertEqual(parse_when("7d", now), T0 - timedelta(days=7))
        self.assertEqual(parse_when("1.5m", now), T0 - timedelta(seconds=90))
        self.assertEqual(parse_when("2026-11-01T10:00", now), T0 - timedelta(hours=2))
        self.assertEqual(parse_when("2026-11-01T13:00+01:00", now), T0)
        with self.assertRaisesRegex(ValueError, "expected a time such as"):
            parse_when("yesterday", now)


class EventsCommandTests(SynchronousTestCase):
    """botcore-db events on a bot's config file."""

    def setUp(self):
        self.folder = Path(self.mktemp()).absolute()
        self.folder.mkdir(parents=True)
        self.config = self.folder / "bot.ini"
        self.config.write_text("[database:main]\nurl = sqlite:///bot.sqlite\n")
        self.assertEqual(self.run_cli("upgrade")[0], 0)
        database = sqlite_database(self)
        database.url = f"sqlite:///{self.folder / 'bot.sqlite'}"
        from sqlalchemy import create_engine

        engine = create_engine(database.url)
        self.addCleanup(engine.dispose)
        with Session(engine) as session:
            for minutes, type, data in ((0, "deploy", {"env": "prod"}), (5, "alert", {})):
                event = Event(
                    source="ci", type=type, time=T0 + timedelta(minutes=minutes), data=data
                )
                session.execute(insert(EventRecord), [row_of(event, full=True)])
            session.commit()

    def run_cli(self, *argv):
        out, err = io.StringIO(), io.StringIO()
        status = main(["-c", str(self.config), *argv], stdout=out, stderr=err)
        return status, out.getvalue(), err.getvalue()

    def test_lines_and_filters(self):
        """Oldest first, one line each; --type and --until filter."""
        status, out, _ = self.run_cli("events")
        self.assertEqual(status, 0)
        self.assertEqual(out.splitlines(), [
            '2026-11-01 12:00:00  deploy  ci  {"env": "prod"}',
            "2026-11-01 12:05:00  alert  ci  (keys: -)",
        ])  # fmt: skip
        status, out, _ = self.run_cli("events", "--type", "alert", "--type", "deploy", "-n", "1")
        self.assertEqual(out.splitlines(), ["2026-11-01 12:05:00  alert  ci  (keys: -)"])
        status, out, _ = self.run_cli("events", "--until", "2026-11-01T12:01")
        self.assertEqual(len(out.splitlines()), 1)
        status, out, _ = self.run_cli("events", "--source", "nope")
        self.assertIn("no recorded event matches", out)

    def test_json(self):
        """--json: one object per line."""
        _, out, _ = self.run_cli("events", "--json", "--type", "deploy")
        (line,) = out.splitlines()
        record = json.loads(line)
        self.assertEqual((record["type"], record["payload"]), ("deploy", {"env": "prod"}))
        self.assertEqual(record["time"], T0.isoformat())

    def test_bad_time(self):
        """A --since that is no time is one line on stderr and exit status 1."""
        status, _, err = self.run_cli("events", "--since", "yesterday")
        self.assertEqual(status, 1)
        self.assertIn("botcore-db: error: expected a time such as", err)

    def test_console_script(self):
        """The installed botcore-db script runs it."""
        script = Path(sys.executable).parent / "botcore-db"
        done = subprocess.run(
            [str(script), "-c", str(self.config), "events", "--since", "2026-11-01T12:04"],
            capture_output=True,
            text=True,
            timeout=120,
        )
        self.assertEqual(done.returncode, 0, done.stderr)
        self.assertEqual(done.stdout.splitlines(), ["2026-11-01 12:05:00  alert  ci  (keys: -)"])
