"""Tests for botcore.db.engine and botcore.types: each backend's connection settings,
case-insensitive text and UTC timestamps on SQLite, PostgreSQL and MariaDB, the schema
check at startup, and plugin tables that survive a reload of their module."""

from __future__ import annotations

import importlib
import os
import shutil
import subprocess
import sys
import tempfile
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

from sqlalchemy import (
    Column,
    Integer,
    MetaData,
    String,
    Table,
    bindparam,
    func,
    insert,
    inspect,
    select,
    text,
)
from sqlalchemy.exc import IntegrityError, InvalidRequestError, OperationalError, StatementError
from sqlalchemy.orm import Session
from sqlalchemy.pool import StaticPool
from twisted.logger import formatEvent, globalLogPublisher
from twisted.trial.unittest import SkipTest, SynchronousTestCase

import botcore.db.storage
from botcore.bot import Bot
from botcore.db import migrate, types
from botcore.db.engine import make_engine
from botcore.db.models import MYSQL_TABLE_OPTIONS, Base, forget_models
from botcore.db.service import Database, DatabaseUnavailable, SchemaNotCurrent
from botcore.event import Lifecycle
from botcore.settings import read_config
from botcore.testing import (
    MYSQL,
    POSTGRESQL,
    SQLITE,
    InlineReactor,
    InlineThreadPool,
    backend_classes,
    free_port,
    fresh_database,
    fresh_engine,
)
from tests.migrations.backends import core_head


def capture_log(testcase: SynchronousTestCase) -> list[str]:
    """The text of every event logged during the test."""
    logged: list[dict] = []
    globalLogPublisher.addObserver(logged.append)
    testcase.addCleanup(globalLogPublisher.removeObserver, logged.append)

    class Texts(list):
        def __iter__(self):
            return iter([formatEvent(event) for event in logged])

        def __len__(self):
            return len(logged)

    return Texts()


class SQLiteEngineTests(SynchronousTestCase):
    """The settings every SQLite connection gets."""

    def setUp(self) -> None:
        self.engine = make_engine(fresh_database(self, SQLITE), busy_timeout=2.5)
        self.addCleanup(self.engine.dispose)

    def pragma(self, name: str):
        with self.engine.connect() as connection:
            return connection.exec_driver_sql(f"PRAGMA {name}").scalar()

    def test_pragmas(self) -> None:
        """WAL journal, synchronous=NORMAL, foreign keys on, the configured busy timeout."""
        self.assertEqual(self.pragma("journal_mode"), "wal")
        self.assertEqual(self.pragma("synchronous"), 1)
        self.assertEqual(self.pragma("foreign_keys"), 1)
        self.assertEqual(self.pragma("busy_timeout"), 2500)

    def test_no_mysql_dialect(self) -> None:
        """Every model is imported and created on SQLite without loading SQLAlchemy's
        MySQL dialect (the models' MariaDB table options wait for MariaDB)."""
        script = (
            "import sys\n"
            "from botcore.db.engine import make_engine\n"
            "from botcore.loading.reloader import Reloader\n"
            "engine = make_engine('sqlite://')\n"
            "Reloader().import_models().create_all(engine)\n"
            "print(sorted(m for m in sys.modules if m.startswith('sqlalchemy.dialects.')))\n"
        )
        found = subprocess.run(
            [sys.executable, "-c", script], capture_output=True, text=True, check=True
        ).stdout
        self.assertIn("sqlalchemy.dialects.sqlite", found)
        self.assertNotIn("mysql", found)

    def test_regexp(self) -> None:
        """SQLite gets a REGEXP function (Python's re.search); NULL stays NULL."""
        with self.engine.connect() as connection:
            row = connection.exec_driver_sql(
                "SELECT 'karma++' REGEXP '^\\w+\\+\\+$', 'abc' REGEXP 'x', NULL REGEXP 'a'"
            ).one()
        self.assertEqual(tuple(row), (1, 0, None))

    def test_like_folds_unicode(self) -> None:
        """SQLite's LIKE ignores the case of non-ASCII letters too, and honours ESCAPE."""
        with self.engine.connect() as connection:
            row = connection.exec_driver_sql(
                "SELECT 'Ärger' LIKE 'äR%', 'abc' LIKE 'A_C', '50%' LIKE '50!%' ESCAPE '!', "
                "'500' LIKE '50!%' ESCAPE '!'"
            ).one()
        self.assertEqual(tuple(row), (1, 1, 1, 0))

    def test_memory_database_is_shared(self) -> None:
        """An in-memory database uses one shared connection, so every session (and
        thread) sees the same tables."""
        engine = make_engine("sqlite://")
        self.addCleanup(engine.dispose)
        self.assertIsInstance(engine.pool, StaticPool)
        with engine.begin() as connection:
            connection.exec_driver_sql("CREATE TABLE t (x INTEGER)")
        with engine.connect() as connection:
            self.assertEqual(connection.exec_driver_sql("SELECT count(*) FROM t").scalar(), 0)

    def test_relative_path(self) -> None:
        """A relative SQLite path is taken relative to the config file's folder."""
        database = Database("main", {"url": "sqlite:///data/bot.sqlite"}, "/srv/bot")
        self.assertEqual(database.resolved_url(), "sqlite:////srv/bot/data/bot.sqlite")
        absolute = Database("main", {"url": "sqlite:////var/bot.sqlite"}, "/srv/bot")
        self.assertEqual(absolute.resolved_url(), "sqlite:////var/bot.sqlite")

    def test_echo(self) -> None:
        """echo in the config makes the engine log its SQL."""
        database = Database("main", {"url": "sqlite://", "echo": True})
        engine = database.create_engine()
        self.addCleanup(engine.dispose)
        self.assertTrue(engine.echo)


class SessionSettingsMixin:
    """What a server session is set to when it connects."""

    backend: str

    def setUp(self) -> None:
        self.engine = fresh_engine(self, self.backend)

    def test_session_settings(self) -> None:
        """PostgreSQL: time zone UTC. MariaDB: ANSI_QUOTES, +00:00, InnoDB, utf8mb4."""
        with self.engine.connect() as connection:
            if self.backend == POSTGRESQL:
                self.assertEqual(connection.exec_driver_sql("SHOW timezone").scalar(), "UTC")
            elif self.backend == MYSQL:
                row = connection.exec_driver_sql(
                    "SELECT @@SESSION.sql_mode, @@SESSION.time_zone, "
                    "@@SESSION.default_storage_engine, @@SESSION.character_set_client"
                ).one()
                self.assertIn("ANSI_QUOTES", row[0].split(","))
                self.assertEqual(tuple(row[1:]), ("+00:00", "InnoDB", "utf8mb4"))
                # Identifiers are quoted the ANSI way, which SQLAlchemy noticed.
                self.assertEqual(connection.exec_driver_sql('SELECT 1 AS "x"').scalar(), 1)
        self.assertTrue(self.engine.pool._pre_ping)

    def test_mysql_tables(self) -> None:
        """Migrated tables on MariaDB are InnoDB, utf8mb4, with binary collation."""
        if self.backend != MYSQL:
            return
        migrate.upgrade(self.engine)
        with self.engine.connect() as connection:
            row = connection.exec_driver_sql(
                "SELECT engine, table_collation FROM information_schema.tables "
                "WHERE table_schema = DATABASE() AND table_name = 'plugin_data'"
            ).one()
        self.assertEqual(tuple(row), ("InnoDB", "utf8mb4_bin"))

    def test_mysql_model_tables(self) -> None:
        """A model's table created from the models on MariaDB (create_all, or the
        table's own create) is InnoDB, utf8mb4, with binary collation too."""
        if self.backend != MYSQL:
            return
        tables = [Base.metadata.tables["plugin_data"], Base.metadata.tables["event_log"]]
        with self.engine.begin() as connection:
            tables[0].create(connection)
            Base.metadata.create_all(connection, tables=tables[1:])
            rows = connection.exec_driver_sql(
                "SELECT table_name, engine, table_collation FROM information_schema.tables "
                "WHERE table_schema = DATABASE() ORDER BY table_name"
            ).all()
        self.assertEqual(
            [tuple(row) for row in rows],
            [(t.name, "InnoDB", "utf8mb4_bin") for t in sorted(tables, key=lambda t: t.name)],
        )


class PostgreSQLSessionSettingsTests(SessionSettingsMixin, SynchronousTestCase):
    backend = POSTGRESQL


class MariaDBSessionSettingsTests(SessionSettingsMixin, SynchronousTestCase):
    backend = MYSQL


PROBE = MetaData()
probe = Table(
    "ci_probe",
    PROBE,
    Column("id", Integer, primary_key=True),
    Column("name", types.CIText(50), nullable=False, unique=True),
    Column("plain", String(50)),
    Column("at", types.UTCDateTime()),
    **MYSQL_TABLE_OPTIONS,
)
# As a model on Base gets it: on SQLite the unique name is a key index, not the collation.
types.index_by_key(probe)


class TypesMixin:
    """CIText and UTCDateTime behave the same on every backend."""

    backend: str

    def setUp(self) -> None:
        self.engine = fresh_engine(self, self.backend)
        with self.engine.begin() as connection:
            types.create_collation(connection)
            PROBE.create_all(connection)

    def add(self, **values) -> None:
        with self.engine.begin() as connection:
            connection.execute(insert(probe).values(**values))

    def names(self, *where) -> list[str]:
        with self.engine.connect() as connection:
            return list(
                connection.scalars(select(probe.c.name).where(*where).order_by(probe.c.name))
            )

    def test_unique_ignores_case(self) -> None:
        """Two names differing only in case collide, ASCII or not."""
        self.add(name="Karma")
        self.assertRaises(IntegrityError, self.add, name="kARMA")
        self.add(name="Ärger")
        self.assertRaises(IntegrityError, self.add, name="äRGER")
        self.assertEqual(self.names(), ["Ärger", "Karma"])

    def test_accents_and_spaces_count(self) -> None:
        """Accents and trailing spaces make different names (no accent folding, no
        padding) on every backend."""
        for name in ("café", "cafe", "foo", "foo "):
            self.add(name=name)
        self.assertEqual(len(self.names()), 4)

    def test_equality_ignores_case_and_keeps_spelling(self) -> None:
        """Looking a name up in another case finds it, spelled as it was written."""
        self.add(name="KarmaBot")
        self.add(name="Ärger")
        self.assertEqual(self.names(probe.c.name == "karmabot"), ["KarmaBot"])
        self.assertEqual(self.names(probe.c.name.in_(["ÄRGER", "x"])), ["Ärger"])

    def test_like_family_ignores_case(self) -> None:
        """like, startswith, contains, endswith and ilike on CIText ignore case (and work
        on PostgreSQL despite its nondeterministic collation)."""
        for name in ("KarmaBot", "Ärgernis", "other"):
            self.add(name=name)
        self.assertEqual(self.names(probe.c.name.like("KAR%")), ["KarmaBot"])
        self.assertEqual(self.names(probe.c.name.startswith("kar")), ["KarmaBot"])
        self.assertEqual(self.names(probe.c.name.contains("RGERN")), ["Ärgernis"])
        self.assertEqual(self.names(probe.c.name.endswith("BOT")), ["KarmaBot"])
        self.assertEqual(self.names(probe.c.name.ilike("äRG%")), ["Ärgernis"])
        self.assertEqual(self.names(probe.c.name.not_like("%A%")), ["Ärgernis", "other"])

    def test_compared_with_other_expressions(self) -> None:
        """A CIText column compared with another column, an SQL expression, a typed or
        untyped bound parameter, or a subquery still ignores case; != and NOT IN too."""
        self.add(name="Karma", plain="KARMA")
        self.add(name="other", plain="x")
        by_plain = self.names(probe.c.name == probe.c.plain)
        self.assertEqual(by_plain, ["Karma"])
        self.assertEqual(self.names(probe.c.name == func.upper("karma")), ["Karma"])
        with self.engine.connect() as connection:
            for parameter in (bindparam("p"), bindparam("p", type_=String)):
                found = connection.scalars(
                    select(probe.c.name).where(probe.c.name == parameter), {"p": "KARMA"}
                )
                self.assertEqual(list(found), ["Karma"])
        inner = select(probe.c.plain).where(probe.c.plain == "KARMA").scalar_subquery()
        uppercase = select(func.upper(probe.c.name))
        self.assertEqual(self.names(probe.c.name.in_(uppercase)), ["Karma", "other"])
        self.assertEqual(self.names(probe.c.name == inner), ["Karma"])
        self.assertEqual(self.names(probe.c.name != "KARMA"), ["other"])
        self.assertEqual(self.names(probe.c.name.not_in(["KARMA"])), ["other"])
        self.assertEqual(self.names(probe.c.name == None), [])  # noqa: E711 (SQL's IS NULL)
        listed = bindparam("names", ["KARMA", "y"], expanding=True)
        self.assertEqual(self.names(probe.c.name.in_(listed)), ["Karma"])
        self.assertEqual(self.names(probe.c.name.in_([probe.c.plain])), ["Karma"])

    def test_numbers_compare_as_their_text(self) -> None:
        """A number compared with a CIText column matches the text it would be stored as,
        as on the other backends."""
        self.add(name="5")
        self.assertEqual(self.names(probe.c.name == 5), ["5"])
        self.assertEqual(self.names(probe.c.name.in_([5, 6])), ["5"])

    def test_order_ignores_case(self) -> None:
        """Sorting by a CIText column ignores case."""
        for name in ("b", "A", "C"):
            self.add(name=name)
        self.assertEqual(self.names(), ["A", "b", "C"])

    def test_plain_strings_are_case_sensitive(self) -> None:
        """A plain String column compares case-sensitively everywhere (MariaDB too)."""
        self.add(name="x", plain="Hello")
        with self.engine.connect() as connection:
            found = connection.scalars(select(probe.c.plain).where(probe.c.plain == "hello"))
            self.assertEqual(list(found), [])

    def test_utc_round_trip(self) -> None:
        """An aware timestamp in any zone comes back as the same instant in UTC, with its
        microseconds; comparisons in queries use UTC too."""
        moment = datetime(2024, 3, 1, 12, 30, 15, 123456, tzinfo=timezone(timedelta(hours=5.5)))
        self.add(name="x", at=moment)
        with self.engine.connect() as connection:
            stored = connection.scalar(select(probe.c.at))
            later = connection.scalar(
                select(probe.c.name).where(probe.c.at > moment - timedelta(microseconds=1))
            )
            earlier = connection.scalar(
                select(probe.c.name).where(probe.c.at > moment.astimezone(UTC))
            )
        self.assertEqual(stored, moment)
        self.assertEqual(stored.tzinfo, UTC)
        self.assertEqual(stored.hour, 7)
        self.assertEqual(stored.microsecond, 123456)
        self.assertEqual(later, "x")
        self.assertIsNone(earlier)

    def test_naive_timestamp_refused(self) -> None:
        """A naive datetime (which zone?) is refused instead of being stored wrong."""
        error = self.assertRaises(StatementError, self.add, name="x", at=datetime(2024, 1, 1))
        self.assertIn("naive datetime", str(error))


backend_classes(TypesMixin, globals(), "TypesTests")


class SQLiteKeyIndexTests(SynchronousTestCase):
    """On SQLite, CIText lookups and unique checks use the key indexes and never call the
    Python collation (which re-takes the GIL per comparison)."""

    def setUp(self) -> None:
        self.collated = 0
        collate = types.sqlite_collate

        def counting(left: str, right: str) -> int:
            self.collated += 1
            return collate(left, right)

        # Registered on each new connection from the module attribute.
        self.patch(types, "sqlite_collate", counting)
        self.engine = make_engine(fresh_database(self, SQLITE))
        self.addCleanup(self.engine.dispose)
        migrate.upgrade(self.engine)

    def test_lookups_and_upserts_do_not_collate(self) -> None:
        """Storing, finding and updating 200 keys through PluginStore, and a unique clash,
        take no collation call; sorting by the column still does."""
        from botcore.db.storage import PluginStore

        with Session(self.engine) as session:
            store = PluginStore(session, "probe")
            for number in range(200):
                store.set(f"Key{number}", number)
            session.commit()
        with Session(self.engine) as session:
            store = PluginStore(session, "PROBE")
            for number in range(200):
                self.assertEqual(store.get(f"KEY{number}"), number)
                store.set(f"kEy{number}", number + 1)
            self.assertIn("key7", store)
            session.commit()
        with self.engine.begin() as connection:
            self.assertRaises(
                IntegrityError,
                connection.execute,
                insert(botcore.db.storage.PluginData).values(
                    plugin="Probe",
                    key="KEY1",
                    value=1,
                    created=types.utcnow(),
                    updated=types.utcnow(),
                ),
            )
        self.assertEqual(self.collated, 0)
        with self.engine.connect() as connection:
            connection.execute(
                select(botcore.db.storage.PluginData.key).order_by(
                    botcore.db.storage.PluginData.key
                )
            ).all()
        self.assertGreater(self.collated, 0)

    def test_query_plan_uses_key_index(self) -> None:
        """SQLite searches the key index for an equality on a CIText column."""
        statement = select(botcore.db.storage.PluginData.id).where(
            botcore.db.storage.PluginData.plugin == "a", botcore.db.storage.PluginData.key == "b"
        )
        compiled = statement.compile(self.engine)
        with self.engine.connect() as connection:
            plan = connection.exec_driver_sql(
                f"EXPLAIN QUERY PLAN {compiled}", tuple(compiled.params.values())
            ).all()
        self.assertIn("USING INDEX uq_plugin_data_plugin_key_key", " ".join(map(str, plan)))

    def test_mapped_attributes_in_a_list(self) -> None:
        """A list of mapped attributes on the right of IN compares ignoring case too."""
        data = botcore.db.storage.PluginData
        with Session(self.engine) as session:
            botcore.db.storage.PluginStore(session, "Same").set("SAME", 1)
            session.commit()
            found = session.scalars(select(data.key).where(data.plugin.in_([data.key])))
            self.assertEqual(list(found), ["SAME"])

    def test_statement_cache_tells_columns_apart(self) -> None:
        """Statements that differ only in which CIText column is compared (or LIKEd) have
        different cache keys, so SQLAlchemy's statement cache cannot mix them up."""
        data = botcore.db.storage.PluginData
        for make in (lambda c: c == "x", lambda c: c.like("x%")):
            first = select(data.id).where(make(data.plugin))._generate_cache_key()
            second = select(data.id).where(make(data.key))._generate_cache_key()
            self.assertNotEqual(first, second)

    def test_index_by_key_is_idempotent_and_leaves_plain_columns(self) -> None:
        """A second call adds nothing; tables without CIText constraints get no twin."""
        metadata = MetaData()
        table = Table(
            "twins",
            metadata,
            Column("id", Integer, primary_key=True),
            Column("name", types.CIText(20), unique=True),
            Column("code", String(20), unique=True),
            Column("owner", Integer, index=True),
        )
        types.index_by_key(table)
        types.index_by_key(table)
        keyed = [index for index in table.indexes if types.is_key_index(index)]
        self.assertEqual([index.name for index in keyed], ["uq_twins_name_key"])
        self.assertTrue(keyed[0].unique)
        with self.engine.begin() as connection:
            metadata.create_all(connection)
            sql = " ".join(
                row[0]
                for row in connection.exec_driver_sql(
                    "SELECT sql FROM sqlite_master WHERE tbl_name = 'twins' AND sql IS NOT NULL"
                )
            )
        self.assertIn("uq_twins_name_key ON twins (botcore_fold(name))", sql)
        self.assertIn("UNIQUE (code)", sql)
        self.assertNotIn("UNIQUE (name)", sql)


class FoldTests(SynchronousTestCase):
    """The comparison key SQLite's collation uses."""

    def test_fold(self) -> None:
        """Case folds (Σ/ς, ǅ/ǆ, ligatures) as ICU's secondary strength does; ß and ss stay
        apart; canonically equal spellings are equal."""
        self.assertEqual(types.fold("ΣΑΣ"), types.fold("σας"))
        self.assertEqual(types.fold("ǅ"), types.fold("ǆ"))
        self.assertEqual(types.fold("ﬁ"), types.fold("FI"))
        self.assertNotEqual(types.fold("straße"), types.fold("STRASSE"))
        self.assertEqual(types.fold("STRAẞE"), types.fold("straße"))
        self.assertEqual(types.fold("cafe\u0301"), types.fold("CAFÉ"))
        self.assertEqual(types.sqlite_collate("a", "B"), -1)
        self.assertEqual(types.sqlite_collate("Ä", "ä"), 0)


class StartupTests(SynchronousTestCase):
    """What `Database.startService` does with the schema it finds (SQLite)."""

    def setUp(self) -> None:
        self.directory = Path(self.mktemp()).absolute()
        self.directory.mkdir(parents=True)
        self.url = f"sqlite:///{self.directory / 'bot.sqlite'}"
        self.config_path = str(self.directory / "bot.ini")

    def database(self, **config) -> Database:
        database = Database(
            "main", {"url": self.url, **config}, str(self.directory), self.config_path
        )
        self.addCleanup(lambda: database.running and database.stopService())
        return database

    def test_new_sqlite_brought_to_head(self) -> None:
        """A SQLite file that does not exist yet is created and migrated at startup."""
        database = self.database()
        database.startService()
        self.assertTrue(migrate.schema_state(database.engine).current)
        self.assertIn("plugin_data", inspect(database.engine).get_table_names())
        with database.session_factory() as session:
            self.assertEqual(session.execute(text("SELECT count(*) FROM plugin_data")).scalar(), 0)

    def test_current_database_left_alone(self) -> None:
        """A database already at head starts without running anything."""
        self.database().startService()
        log = capture_log(self)
        self.database().startService()
        self.assertFalse([line for line in log if "upgraded" in line])

    def prepare_behind(self) -> None:
        engine = make_engine(self.url)
        migrate.upgrade(engine)
        migrate.downgrade(engine, "base")
        engine.dispose()

    def test_behind_refuses_with_command(self) -> None:
        """A database that is not new and not current stops startup with one line naming
        the exact command to run."""
        self.prepare_behind()
        error = self.assertRaises(SchemaNotCurrent, self.database().startService)
        message = str(error)
        self.assertNotIn("\n", message)
        self.assertIn(f"run: botcore-db -c {self.config_path} upgrade", message)
        self.assertIn("auto_upgrade = true", message)

    def test_named_database_command(self) -> None:
        """For a database other than main, the command names it."""
        database = Database("logs", {"url": self.url}, str(self.directory), self.config_path)
        self.assertEqual(database.command, f"botcore-db -c {self.config_path} --database logs")

    def test_auto_upgrade(self) -> None:
        """With auto_upgrade, a database that is behind is upgraded at startup (logged)."""
        self.prepare_behind()
        log = capture_log(self)
        database = self.database(auto_upgrade=True)
        database.startService()
        self.assertTrue(migrate.schema_state(database.engine).current)
        self.assertIn(f"database main: schema upgraded from nothing to {core_head()}", list(log))

    def test_unknown_revision_refused(self) -> None:
        """A database at a revision this botcore does not know is refused even with
        auto_upgrade (it may be from a newer version)."""
        self.database().startService()
        engine = make_engine(self.url)
        with engine.begin() as connection:
            connection.exec_driver_sql("UPDATE alembic_version SET version_num = '9999'")
        engine.dispose()
        error = self.assertRaises(SchemaNotCurrent, self.database(auto_upgrade=True).startService)
        self.assertIn("9999, which this botcore does not know", str(error))

    def test_unreachable_server(self) -> None:
        """A server that cannot be reached at startup fails it with one line."""
        database = Database(
            "main",
            {
                "url": f"postgresql+psycopg://nobody@127.0.0.1:{free_port()}/x",
                "connect_timeout": 1,
            },
        )
        self.addCleanup(lambda: database.running and database.stopService())
        error = self.assertRaises(DatabaseUnavailable, database.startService)
        self.assertIn("database main (postgresql+psycopg://nobody@127.0.0.1", str(error))
        self.assertIn("cannot be reached", str(error))
        self.assertNotIn("\n", str(error))

    def test_bot_refuses_to_start(self) -> None:
        """The bot fails to start, logging one line that names the command to run."""
        self.prepare_behind()
        Path(self.config_path).write_text(
            f"[bot]\nautoload = no\n\n[database:main]\nurl = {self.url}\n"
        )
        config = read_config(self.config_path)
        bot = Bot(config, reactor=InlineReactor(), threadpool=InlineThreadPool())
        log = capture_log(self)
        self.successResultOf(bot.startService())
        self.flushLoggedErrors(SchemaNotCurrent)
        self.assertEqual(bot.state, Lifecycle.FAILED)
        self.assertEqual(bot.exit_code, 1)
        failures = [line for line in log if line.startswith("botcore failed to start")]
        self.assertEqual(len(failures), 1)
        self.assertIn(f"run: botcore-db -c {self.config_path} upgrade", failures[0])
        self.assertFalse(bot.databases["main"].running)


#: The checkout, for a subprocess that imports this botcore.
ROOT = Path(__file__).resolve().parents[3]


class SQLiteFileTests(SynchronousTestCase):
    """The SQLite file checks at start (issue 12, item 18)."""

    def setUp(self) -> None:
        self.directory = Path(self.mktemp()).absolute()
        self.directory.mkdir(parents=True)
        self.path = self.directory / "data" / "bot.sqlite"
        self.path.parent.mkdir()

    def database(self, path: Path | None = None, **config) -> Database:
        url = f"sqlite:///{path or self.path}"
        database = Database(
            "main", {"url": url, **config}, str(self.directory), str(self.directory / "bot.ini")
        )
        self.addCleanup(lambda: database.running and database.stopService())
        return database

    def start_and_stop(self, **config) -> None:
        database = self.database(**config)
        database.startService()
        database.stopService()

    def test_deleted_database_refused(self) -> None:
        """A database file the bot used before and that is gone (its folder deleted and
        made again, say) is not silently replaced by an empty one: the bot refuses, in
        one line, naming create = yes; with it, a new one is made."""
        self.start_and_stop()
        for file in self.path.parent.iterdir():
            file.unlink()
        error = self.assertRaises(DatabaseUnavailable, self.database().startService)
        self.assertIn("the file is missing, but this bot had a database there", str(error))
        self.assertIn("set create = yes in [database:main]", str(error))
        self.assertNotIn("\n", str(error))
        self.assertFalse(self.path.exists())
        self.start_and_stop(create=True)
        self.assertTrue(self.path.exists())
        self.start_and_stop()  # there again: no refusal

    def test_new_database_created(self) -> None:
        """A database never seen before is created, as on a first run."""
        self.start_and_stop()
        self.start_and_stop(create=False)
        other = self.directory / "data" / "other.sqlite"
        self.database(other).startService()
        self.assertTrue(other.exists())

    def test_missing_folder_refused(self) -> None:
        """A database whose folder does not exist: one clear line."""
        missing = self.directory / "gone" / "bot.sqlite"
        error = self.assertRaises(DatabaseUnavailable, self.database(missing).startService)
        self.assertIn(f"its folder {missing.parent} does not exist", str(error))

    def unprivileged(self, code: str) -> subprocess.CompletedProcess:
        """Run ``code`` with this botcore as an unprivileged user (root passes every
        permission check): setpriv as nobody, when the tests run as root."""
        if os.getuid() != 0:
            command = [sys.executable, "-c", code]
        elif shutil.which("setpriv") is None:
            raise SkipTest("running as root without setpriv")
        else:
            command = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
            command += [sys.executable, "-c", code]
        return subprocess.run(
            command, capture_output=True, text=True, timeout=60, cwd=str(ROOT), check=False
        )

    def test_unwritable_shm_refused(self) -> None:
        """A -shm (or -wal, or database) file the bot's user cannot write is refused at
        start with a line that names it, before SQLite maps it."""
        folder = Path(tempfile.mkdtemp(prefix="botcore-shm-"))
        self.addCleanup(shutil.rmtree, folder, True)
        os.chmod(folder, 0o755)
        self.path = folder / "data" / "bot.sqlite"
        self.path.parent.mkdir()
        database = self.database()
        database.startService()
        with database.engine.connect() as connection:  # makes the -wal and -shm files
            connection.execute(text("SELECT 1"))
            shm = Path(f"{self.path}-shm")
            self.assertTrue(shm.exists())
            # Everything open to the other user but the -shm file.
            os.chmod(self.path.parent, 0o777)
            for file in self.path.parent.iterdir():
                os.chmod(file, 0o666)
            os.chmod(shm, 0o644)
            code = (
                "from botcore.db.service import Database, DatabaseUnavailable\n"
                f"database = Database('main', {{'url': 'sqlite:///{self.path}'}})\n"
                "try:\n"
                "    database.startService()\n"
                "except DatabaseUnavailable as e:\n"
                "    print('refused:', e)\n"
                "else:\n"
                "    print('started')\n"
            )
            result = self.unprivileged(code)
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertIn("refused:", result.stdout)
        self.assertIn(f"the bot cannot write {shm}", result.stdout)


class ServerStartupMixin:
    """Startup on a server database: only SQLite is set up unasked."""

    backend: str

    def database(self, **config) -> Database:
        url = fresh_database(self, self.backend)
        database = Database("main", {"url": url, **config}, None, "/etc/bot/bot.ini")
        self.addCleanup(lambda: database.running and database.stopService())
        return database

    def test_empty_server_database_refused(self) -> None:
        """An empty PostgreSQL/MariaDB database is not migrated unasked."""
        error = self.assertRaises(SchemaNotCurrent, self.database().startService)
        self.assertIn(
            "is empty (no tables); run: botcore-db -c /etc/bot/bot.ini upgrade", str(error)
        )

    def test_auto_upgrade(self) -> None:
        """With auto_upgrade the server database is migrated at startup."""
        database = self.database(auto_upgrade=True)
        database.startService()
        self.assertTrue(migrate.schema_state(database.engine).current)


class PostgreSQLStartupTests(ServerStartupMixin, SynchronousTestCase):
    backend = POSTGRESQL


class MariaDBStartupTests(ServerStartupMixin, SynchronousTestCase):
    backend = MYSQL


PLUGIN_V1 = '''
"""A plugin with a table."""

from sqlalchemy import Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from botcore.db.models import Base


class ReloadProbe(Base):
    __tablename__ = "reload_probe_factoids"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(50))
'''

PLUGIN_V2 = (
    PLUGIN_V1
    + """
    value: Mapped[str] = mapped_column(String(200), default="")
"""
)


class ReloadTests(SynchronousTestCase):
    """Plugin modules that define tables on Base can be reloaded."""

    MODULE = "botcore_reload_probe"

    def setUp(self) -> None:
        self.folder = Path(self.mktemp()).absolute()
        self.folder.mkdir(parents=True)
        self.path = self.folder / f"{self.MODULE}.py"
        self.path.write_text(PLUGIN_V1)
        sys.path.insert(0, str(self.folder))
        self.addCleanup(sys.path.remove, str(self.folder))
        self.addCleanup(sys.modules.pop, self.MODULE, None)
        self.addCleanup(forget_models, self.MODULE)

    def mappers_named(self, name: str) -> list:
        return [m for m in Base.registry.mappers if m.class_.__name__ == name]

    def test_reload_replaces_table_and_mapper(self) -> None:
        """Reloading a changed module neither fails with "table already defined" nor
        leaves the old class mapped: the table and mapper are the new ones."""
        module = importlib.import_module(self.MODULE)
        old = module.ReloadProbe
        self.path.write_text(PLUGIN_V2)
        importlib.invalidate_caches()
        module = importlib.reload(module)
        new = module.ReloadProbe
        self.assertIsNot(old, new)
        self.assertEqual([m.class_ for m in self.mappers_named("ReloadProbe")], [new])
        self.assertIsNone(inspect(old, raiseerr=False))
        table = Base.metadata.tables["reload_probe_factoids"]
        self.assertIs(table, new.__table__)
        self.assertEqual(list(table.columns.keys()), ["id", "name", "value"])

        engine = make_engine("sqlite://")
        self.addCleanup(engine.dispose)
        table.create(engine)
        with Session(engine) as session:
            session.add(new(name="botcore", value="a bot"))
            session.commit()
            found = session.scalars(select(new)).one()
            self.assertEqual((found.name, found.value), ("botcore", "a bot"))

    def test_reload_twice_unchanged(self) -> None:
        """Reloading an unchanged module twice leaves exactly one mapping."""
        module = importlib.import_module(self.MODULE)
        importlib.reload(module)
        module = importlib.reload(module)
        self.assertEqual(
            [m.class_ for m in self.mappers_named("ReloadProbe")], [module.ReloadProbe]
        )

    def test_forget_models(self) -> None:
        """forget_models drops a module's mappings and tables (for unloading it)."""
        module = importlib.import_module(self.MODULE)
        self.assertEqual(forget_models(self.MODULE), ["reload_probe_factoids"])
        self.assertNotIn("reload_probe_factoids", Base.metadata.tables)
        self.assertIsNone(inspect(module.ReloadProbe, raiseerr=False))
        self.assertIn("plugin_data", Base.metadata.tables)

    def test_other_module_same_table_still_conflicts(self) -> None:
        """A different module defining a table of the same name is still an error."""
        importlib.import_module(self.MODULE)
        other = f"{self.MODULE}_other"
        (self.folder / f"{other}.py").write_text(PLUGIN_V1)
        self.addCleanup(sys.modules.pop, other, None)
        self.addCleanup(forget_models, other)
        error = self.assertRaises(InvalidRequestError, importlib.import_module, other)
        self.assertIn("already defined", str(error))
        # The failed class left nothing behind.
        self.assertEqual(len(self.mappers_named("ReloadProbe")), 1)
        self.assertFalse([m for m in Base.registry._managers if not m.is_mapped])


class SQLiteWriterTests(SynchronousTestCase):
    """Writers to one SQLite file queue in Python instead of polling SQLite's lock."""

    def setUp(self) -> None:
        self.engine = make_engine(fresh_database(self, SQLITE), busy_timeout=0.05)
        self.addCleanup(self.engine.dispose)
        with self.engine.begin() as connection:
            connection.exec_driver_sql("CREATE TABLE t (x INTEGER)")
        self.writer = self.engine.sqlite_writer

    def test_held_from_first_write_to_commit(self) -> None:
        """Reading does not take the writer lock; the first write does, and the commit
        (or a rollback) lets go of it."""
        with self.engine.connect() as connection:
            connection.exec_driver_sql("SELECT count(*) FROM t").scalar()
            self.assertFalse(self.writer.lock.locked())
            connection.exec_driver_sql("INSERT INTO t VALUES (1)")
            self.assertTrue(self.writer.lock.locked())
            connection.exec_driver_sql("INSERT INTO t VALUES (2)")
            connection.commit()
            self.assertFalse(self.writer.lock.locked())
            connection.exec_driver_sql("  update t SET x = 3")
            self.assertTrue(self.writer.lock.locked())
            connection.rollback()
            self.assertFalse(self.writer.lock.locked())

    def test_second_writer_waits_then_gives_up(self) -> None:
        """A second connection that wants to write while the first holds the lock waits
        up to the busy timeout, then fails as SQLite would ("database is locked"), which
        the dispatcher retries as a conflict; readers go on meanwhile."""
        from botcore.db.faults import CONFLICT, classify_error

        with self.engine.connect() as first, self.engine.connect() as second:
            first.exec_driver_sql("INSERT INTO t VALUES (1)")
            self.assertEqual(second.exec_driver_sql("SELECT count(*) FROM t").scalar(), 0)
            error = self.assertRaises(
                OperationalError, second.exec_driver_sql, "INSERT INTO t VALUES (2)"
            )
            self.assertIn("database is locked", str(error))
            self.assertEqual(classify_error(error), CONFLICT)
            first.commit()
            second.exec_driver_sql("INSERT INTO t VALUES (2)")
            second.commit()
        with self.engine.connect() as connection:
            self.assertEqual(connection.exec_driver_sql("SELECT count(*) FROM t").scalar(), 2)
        self.assertFalse(self.writer.lock.locked())

    def test_closed_connection_lets_go(self) -> None:
        """A connection thrown away mid-write (invalidated) does not keep the lock."""
        connection = self.engine.connect()
        connection.exec_driver_sql("INSERT INTO t VALUES (1)")
        connection.invalidate()
        connection.close()
        self.assertFalse(self.writer.lock.locked())
