"""Every query the bundled plugins make for ordinary traffic is served by an index, on
SQLite, PostgreSQL and MariaDB: the statements a realistic run of events through the
default plugin set emits are captured and EXPLAINed against tables of 1,000 rows, and a
full table scan fails the test. On SQLite, no statement calls back into Python (the
case-insensitive collation, the fold function, LIKE) once per row."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

from sqlalchemy import event as sa_event
from sqlalchemy import insert, select, text

from botcore.db import types
from botcore.db.models import Base
from botcore.event import EventType
from botcore.testing import PluginTestCase, backend_variants

#: Rows each per-message table is filled with.
ROWS = 1000

#: The plugins a user runs, as conf.example.ini loads them (core comes by itself).
DEFAULT_PLUGINS = (
    "basic",
    "help",
    "factoid",
    "karma",
    "memo",
    "seen",
    "urlgrab",
    "log",
    "remind",
    "calc",
    "decide",
    "identity",
    "admin",
    "irc_admin",
)

#: Full scans known and left to another change: (dialect, a part of the statement) ->
#: why. Each is allowed on that dialect only.
KNOWN_SCANS: dict[tuple[str, str], str] = {}


def _family(dialect: str) -> str:
    """The dialect's name, MariaDB's as MySQL's (SQLAlchemy names it either)."""
    return "mysql" if dialect == "mariadb" else dialect


#: Statements whose plan is read: the rest (inserts, savepoints) cannot scan a table.
_PLANNED = re.compile(r"^\s*(SELECT|UPDATE|DELETE)\b", re.IGNORECASE)


def prefill(engine: Any, source: str, now: Any) -> None:
    """``ROWS`` identities (their last sightings, memos to them, most delivered), facts
    ``fact<n>``, karma of ``thing<n>`` and web addresses, as a bot that has run a while
    has them."""
    t = Base.metadata.tables
    earlier = now - timedelta(days=30)
    names = [f"gone{n}" for n in range(ROWS)]
    with engine.begin() as connection:
        connection.execute(
            insert(t["identities"]),
            [{"source": source, "identity": name, "created": earlier} for name in names],
        )
        ids = dict(
            connection.execute(select(t["identities"].c.identity, t["identities"].c.id)).all()
        )
        connection.execute(
            insert(t["sightings"]),
            [
                {
                    "identity_id": ids[name],
                    "source": source,
                    "nick": name,
                    "channel": "#old",
                    "kind": "message",
                    "text": "see you",
                    "time": earlier,
                }
                for name in names
            ],
        )
        connection.execute(
            insert(t["memos"]),
            [
                {
                    "from_source": source,
                    "from_nick": names[n - 1],
                    "from_identity_id": ids[names[n - 1]],
                    "to_source": source,
                    "to_nick": names[n],
                    "memo": "call me",
                    "private": False,
                    "time": earlier,
                    "delivered": n % 50 != 0,
                    "notified": False,
                }
                for n in range(ROWS)
            ],
        )
        connection.execute(
            insert(t["factoids"]), [{"id": n + 1, "created": earlier} for n in range(ROWS)]
        )
        connection.execute(
            insert(t["factoid_names"]),
            [
                {
                    "factoid_id": n + 1,
                    # One in 50 a wildcard name ("fact50 $arg" matches "fact50 anything").
                    "name": f"fact{n} $arg" if n % 50 == 0 else f"fact{n}",
                    "wild": n % 50 == 0,
                    # Keyed as FactoidName keys it: recall asks for names by key word.
                    "wild_key": f"fact{n}" if n % 50 == 0 else None,
                    "author": "x",
                    "created": earlier,
                }
                for n in range(ROWS)
            ],
        )
        connection.execute(
            insert(t["factoid_values"]),
            [
                {
                    "factoid_id": n + 1,
                    "verb": "is",
                    "value": f"answer {n}",
                    "author": "x",
                    "created": earlier,
                }
                for n in range(ROWS)
            ],
        )
        connection.execute(
            insert(t["karma"]), [{"subject": f"thing{n}", "value": n % 7} for n in range(ROWS)]
        )
        connection.execute(
            insert(t["urls"]),
            [
                {
                    "source": source,
                    "channel": f"#chan{n % 20}",
                    "sender_id": names[n],
                    "nick": names[n],
                    "identity_id": ids[names[n]],
                    "url": f"https://example.invalid/{n}",
                    "time": earlier,
                }
                for n in range(ROWS)
            ],
        )
        if engine.dialect.name == "sqlite":
            connection.execute(text("ANALYZE"))
        elif engine.dialect.name in ("mysql", "mariadb"):
            for name in ("identities", "sightings", "memos", "factoid_names", "karma", "urls"):
                connection.execute(text(f"ANALYZE TABLE {name}"))
        else:
            connection.execute(text("ANALYZE"))


class Traffic(PluginTestCase):
    """A bot with the default plugin set and a day's traffic (`traffic`)."""

    load = DEFAULT_PLUGINS
    public = True

    def traffic(self) -> None:
        """What a bot sees all day: chatter from people it knows and from new ones, in
        channels and in private, web addresses, karma votes, joins, and the common
        commands (seen, a fact, karma, a memo and its delivery, my messages, last url)."""
        self.say("hello everyone", sender="gone3")
        self.say("hi", sender="newcomer")
        self.say("a private word", sender="gone4", public=False)
        self.say("see https://example.invalid/page for details", sender="gone5")
        self.say("thing5++", sender="gone6")
        self.say(
            self.make_event(None, sender="gone7", type=EventType.STATE, data={"kind": "join"})
        )
        for command in (
            "seen gone8",
            "seen nobody",
            "fact9?",
            "what is fact10",
            "karma for thing11",
            "tell gone12 the build is green",
            "my messages",
            "last url",
        ):
            self.say(f"botcore: {command}", sender="gone13")
        self.say("back again", sender="gone12")  # a memo to deliver
        self.say("and gone", sender="gone50")  # an undelivered memo from the filling
        self.advance(self.processor("Record").flush_interval)  # seen writes
        self.advance(self.processor("Deliver").refresh_interval)  # who has memos waiting


class QueryPlanTests(Traffic):
    """The per-message statements of the default plugin set, EXPLAINed."""

    def setUp(self) -> None:
        super().setUp()
        self.engine = self.bot.databases["main"].engine
        prefill(self.engine, self.source_name, self.bot.now())
        self.statements: dict[str, tuple[str, Any]] = {}

    def capture(self) -> None:
        """From now on, remember each distinct statement the plugins run, with the first
        parameters it ran with."""

        def executed(connection, cursor, statement, parameters, context, executemany):
            if _PLANNED.match(statement) and statement not in self.statements:
                first = parameters[0] if executemany else parameters
                self.statements[statement] = (statement, first)

        sa_event.listen(self.engine, "before_cursor_execute", executed)
        self.addCleanup(sa_event.remove, self.engine, "before_cursor_execute", executed)

    def plan(self, statement: str, parameters: Any) -> list[str]:
        """The scans of ``statement``'s plan that read a whole table, in words."""
        dialect = self.engine.dialect.name
        with self.engine.connect() as connection:
            if dialect == "sqlite":
                rows = connection.exec_driver_sql(f"EXPLAIN QUERY PLAN {statement}", parameters)
                details = [row[-1] for row in rows]
                # "SCAN t" reads the whole table, "SCAN t USING INDEX i" the whole index;
                # a search, a constant row or a subquery's result are no full scans.
                return [
                    d
                    for d in details
                    if d.startswith("SCAN ") and not d.startswith(("SCAN CONSTANT", "SCAN ("))
                ]
            if dialect == "postgresql":
                # A sequential scan that remains when the planner is told to avoid them is
                # one no index can replace.
                connection.exec_driver_sql("SET enable_seqscan = off")
                rows = connection.exec_driver_sql(f"EXPLAIN {statement}", parameters)
                return [row[0].strip() for row in rows if "Seq Scan" in row[0]]
            result = connection.exec_driver_sql(f"EXPLAIN {statement}", parameters)
            columns = list(result.keys())
            scans = []
            for row in result:
                info = dict(zip(columns, row, strict=True))
                # ALL: the whole table; index: the whole of an index.
                if info.get("type") in ("ALL", "index") and not info.get("key"):
                    scans.append(f"{info.get('table')}: type {info['type']}, no index")
                elif info.get("type") == "index":
                    scans.append(f"{info.get('table')}: type index (every entry of {info['key']})")
            return scans

    def test_no_full_scans(self) -> None:
        """No statement of the realistic traffic reads a whole table."""
        self.capture()
        self.traffic()
        self.assertGreater(len(self.statements), 10, "the traffic ran the plugins' queries")
        scans = {}
        for statement, parameters in self.statements.values():
            found = self.plan(statement, parameters)
            known = [
                part
                for dialect, part in KNOWN_SCANS
                if dialect == _family(self.engine.dialect.name)
                and part in " ".join(statement.split())
            ]
            if found and not known:
                scans[" ".join(statement.split())] = found
        self.maxDiff = None
        self.assertEqual(scans, {})


class PythonCallbackTests(Traffic):
    """SQLite runs no Python per row: the collation, the fold function and LIKE are
    called a few times per statement (to index what is written), not once per row."""

    def test_callbacks_per_event(self) -> None:
        """The realistic traffic makes far fewer callbacks than the tables have rows."""
        engine = self.bot.databases["main"].engine
        prefill(engine, self.source_name, self.bot.now())
        calls: dict[str, int] = {}

        def counted(name: str, function: Any) -> Any:
            def call(*args: Any) -> Any:
                calls[name] = calls.get(name, 0) + 1
                return function(*args)

            return call

        def connected(dbapi_connection: Any, record: Any) -> None:
            dbapi_connection.create_function(
                types.FOLD_FUNCTION, 1, counted("fold", types.sqlite_fold), deterministic=True
            )
            dbapi_connection.create_collation(
                types.COLLATION, counted("collation", types.sqlite_collate)
            )
            for arguments in (2, 3):
                dbapi_connection.create_function(
                    "like", arguments, counted("like", types.sqlite_like), deterministic=True
                )

        # New connections, each given counting versions after the engine's own set-up.
        engine.dispose()
        sa_event.listen(engine, "connect", connected)
        self.addCleanup(sa_event.remove, engine, "connect", connected)
        self.traffic()
        self.assertTrue(calls, "the counting functions were in use")
        # Writing an indexed CIText value folds it once per index: a few dozen here.
        self.assertLess(sum(calls.values()), ROWS // 10, calls)


backend_variants(QueryPlanTests, globals())
