"""Tests for botcore-db (botcore.cli.db) and botcore.db.dump: the schema commands on a bot's
config, clear one-line errors, and dump/load moving every row — ids, foreign keys,
timestamps, JSON — from SQLite to PostgreSQL and MariaDB."""

from __future__ import annotations

import gzip
import io
import json
import os
import subprocess
import sys
import textwrap
from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path

from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    Date,
    ForeignKey,
    Integer,
    LargeBinary,
    MetaData,
    Table,
    insert,
    select,
)
from twisted.trial.unittest import SkipTest, SynchronousTestCase

from botcore.cli.db import main
from botcore.db import dump, migrate
from botcore.db.engine import make_engine, make_session_factory
from botcore.db.models import MYSQL_TABLE_OPTIONS, Base
from botcore.db.storage import PluginStore
from botcore.db.types import CIText, UTCDateTime
from botcore.testing import (
    MYSQL,
    POSTGRESQL,
    SQLITE,
    backend_classes,
    free_port,
    fresh_database,
    in_ci,
    use_entry_points,
)
from tests.migrations.backends import core_head


def write_config(folder: Path, url: str, name: str = "bot.ini", extra: str = "") -> Path:
    path = folder / name
    path.write_text(f"[bot]\nname = testbot\n\n[database:main]\nurl = {url}\n{extra}")
    return path


class CommandTestCase(SynchronousTestCase):
    """Runs botcore-db in-process on a config in the test's folder."""

    def setUp(self) -> None:
        self.folder = Path(self.mktemp()).absolute()
        self.folder.mkdir(parents=True)
        self.config = write_config(self.folder, "sqlite:///bot.sqlite")

    def run_cli(self, *argv: str, config: Path | None = None) -> tuple[int, str, str]:
        out, err = io.StringIO(), io.StringIO()
        status = main(["-c", str(config or self.config), *argv], stdout=out, stderr=err)
        return status, out.getvalue(), err.getvalue()

    def sqlite_engine(self):
        engine = make_engine(f"sqlite:///{self.folder / 'bot.sqlite'}")
        self.addCleanup(engine.dispose)
        return engine


class SchemaCommandTests(CommandTestCase):
    """upgrade, downgrade, current, history and check."""

    def test_upgrade_then_current(self) -> None:
        """upgrade migrates the config's database (a path relative to the config file),
        says from what to what, and current then shows the head."""
        status, out, err = self.run_cli("upgrade")
        self.assertEqual((status, err), (0, ""))
        self.assertIn("Running upgrade  -> 0001", out)
        self.assertIn(
            f"database main (sqlite:///{self.folder / 'bot.sqlite'}): upgraded from "
            f"nothing (no revision) to {core_head()}",
            out,
        )
        self.assertTrue((self.folder / "bot.sqlite").exists())
        status, out, _ = self.run_cli("current")
        self.assertEqual(status, 0)
        self.assertEqual(out.splitlines()[0], f"{core_head()} (head)")
        self.assertIn(f"is at revision {core_head()} (current)", out)
        status, out, _ = self.run_cli("upgrade")
        self.assertIn(f"already at {core_head()}", out)

    def test_options_after_command(self) -> None:
        """-c and --database may also come after the command."""
        out, err = io.StringIO(), io.StringIO()
        status = main(
            ["upgrade", "-c", str(self.config), "--database", "main"], stdout=out, stderr=err
        )
        self.assertEqual(status, 0, err.getvalue())

    def test_check(self) -> None:
        """check exits 1 naming the command when the database is behind, 0 when it is
        current and matches the models."""
        status, out, _ = self.run_cli("check")
        self.assertEqual(status, 1)
        self.assertIn(f"is empty (no tables); run: botcore-db -c {self.config} upgrade", out)
        self.run_cli("upgrade")
        status, out, _ = self.run_cli("check")
        self.assertEqual(status, 0)
        self.assertIn(f"is at {core_head()} (current) and matches the models", out)

    def test_check_finds_model_changes(self) -> None:
        """check exits 1 and lists the differences when a model has no migration."""
        self.run_cli("upgrade")
        table = Table("cli_probe", Base.metadata, Column("id", Integer, primary_key=True))
        self.addCleanup(Base.metadata.remove, table)
        status, out, _ = self.run_cli("check")
        self.assertEqual(status, 1)
        self.assertIn("differs from the models:\n  add_table cli_probe", out)
        self.assertIn("revision -m MESSAGE", out)

    def test_downgrade_and_history(self) -> None:
        """downgrade base undoes everything; history lists the revisions."""
        self.run_cli("upgrade")
        status, out, _ = self.run_cli("downgrade", "base")
        self.assertEqual(status, 0)
        self.assertIn(f"downgraded from {core_head()} to nothing", out)
        self.assertEqual(migrate.current(self.sqlite_engine()), frozenset())
        status, out, _ = self.run_cli("history")
        self.assertEqual(status, 0)
        self.assertIn("<base> -> 0001 (botcore)", out)

    def test_revision_for_a_plugin_branch(self) -> None:
        """revision --branch writes the next revision of a plugin package's branch into
        that package's folder."""
        from tests.migrations.test_migrations import plugin_package

        location = plugin_package(self) / "weather_migrations"
        info = location.parent / "botcore_weather-1.0.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(
            "Metadata-Version: 2.1\nName: botcore-weather\nVersion: 1.0\n"
        )
        (info / "entry_points.txt").write_text(
            "[botcore.migrations]\nweather = weather_migrations\n"
        )
        use_entry_points(self, "weather")
        sys.path.insert(0, str(location.parent))
        self.addCleanup(sys.path.remove, str(location.parent))
        self.addCleanup(sys.modules.pop, "weather_migrations", None)
        self.assertEqual(self.run_cli("upgrade")[0], 0)
        status, out, err = self.run_cli(
            "revision", "-m", "more weather", "--branch", "weather", "--empty"
        )
        self.assertEqual(status, 0, err)
        written = Path(out.split("wrote ", 1)[1].strip())
        self.assertEqual(written.parent, location)
        self.assertIn("down_revision = 'weather_0001'", written.read_text().replace('"', "'"))


class ErrorTests(CommandTestCase):
    """Problems are one line on stderr and a non-zero exit."""

    def test_missing_config(self) -> None:
        """A config file that is not there: the config errors, exit 2."""
        status, _, err = self.run_cli("current", config=self.folder / "nope.ini")
        self.assertEqual(status, 2)
        self.assertIn("nope.ini: file not found", err)

    def test_unknown_database(self) -> None:
        """--database naming a section the config does not have."""
        status, _, err = self.run_cli("--database", "logs", "current")
        self.assertEqual(status, 1)
        self.assertEqual(
            err, f"botcore-db: error: {self.config} has no [database:logs] section (known: main)\n"
        )

    def test_unreachable_server(self) -> None:
        """A server that does not answer: one line, exit 1."""
        config = write_config(
            self.folder,
            f"postgresql+psycopg://nobody@127.0.0.1:{free_port()}/x",
            "pg.ini",
            "connect_timeout = 1\n",
        )
        status, _, err = self.run_cli("current", config=config)
        self.assertEqual(status, 1)
        self.assertTrue(err.startswith("botcore-db: error: "), err)
        self.assertEqual(err.count("\n"), 1)

    def test_unknown_revision(self) -> None:
        """Upgrading to a revision that does not exist."""
        status, _, err = self.run_cli("upgrade", "9999")
        self.assertEqual(status, 1)
        self.assertTrue(err.startswith("botcore-db: error: "), err)
        self.assertIn("9999", err)
        self.assertEqual(err.count("\n"), 1)

    def test_bad_dump_files(self) -> None:
        """Loading a missing file, or one that is not a dump."""
        self.run_cli("upgrade")
        status, _, err = self.run_cli("load", str(self.folder / "missing.json"))
        self.assertEqual(
            (status, err), (1, f"botcore-db: error: {self.folder}/missing.json: no such file\n")
        )
        junk = self.folder / "junk.json"
        junk.write_text('{"hello": 1}')
        status, _, err = self.run_cli("load", str(junk))
        self.assertEqual((status, err), (1, f"botcore-db: error: {junk}: not a botcore dump\n"))
        broken = self.folder / "broken.json.gz"
        broken.write_bytes(b"not gzip")
        status, _, err = self.run_cli("load", str(broken))
        self.assertEqual(status, 1)
        self.assertIn("not a readable dump", err)

    def test_broken_plugin_package(self) -> None:
        """A plugin package whose migrations entry point cannot be imported: one line
        naming it, for upgrade and check alike."""
        folder = self.folder / "site"
        info = folder / "botcore_broken-1.0.dist-info"
        info.mkdir(parents=True)
        (info / "METADATA").write_text(
            "Metadata-Version: 2.1\nName: botcore-broken\nVersion: 1.0\n"
        )
        (info / "entry_points.txt").write_text(
            "[botcore.migrations]\nbroken = broken_migrations\n"
        )
        use_entry_points(self, "broken")
        (folder / "broken_migrations.py").write_text("raise ImportError('needs libfoo')\n")
        sys.path.insert(0, str(folder))
        self.addCleanup(sys.path.remove, str(folder))
        self.addCleanup(sys.modules.pop, "broken_migrations", None)
        for command in ("upgrade", "check"):
            status, _, err = self.run_cli(command)
            self.assertEqual(status, 1)
            self.assertEqual(
                err,
                "botcore-db: error: botcore.migrations entry point broken = broken_migrations "
                "cannot be imported: ImportError: needs libfoo\n",
            )

    def test_usage(self) -> None:
        """A missing command is a usage error (exit 2)."""
        self.assertEqual(main([], stdout=io.StringIO(), stderr=io.StringIO()), 2)


class DumpCommandTests(CommandTestCase):
    """dump and load through botcore-db between SQLite databases."""

    def fill(self) -> None:
        self.assertEqual(self.run_cli("upgrade")[0], 0)
        sessions = make_session_factory(self.sqlite_engine())
        with sessions() as session:
            store = PluginStore(session, "karma")
            for number in range(25):
                store.set(f"Subject{number}", {"score": number, "by": ["ä", "b"]})
            session.commit()

    def test_round_trip_gzip(self) -> None:
        """A .gz dump is gzip JSON; loading it into an empty database (migrated first)
        gives back every row; loading again into the now full database is refused."""
        self.fill()
        target = self.folder / "dump.json.gz"
        status, out, _ = self.run_cli("dump", str(target))
        self.assertEqual(status, 0)
        # Of as many tables as the migrations make (the rows are all in plugin_data).
        self.assertIn("dumped 25 rows of ", out)
        with gzip.open(target, "rt", encoding="utf-8") as handle:
            data = json.load(handle)
        self.assertEqual(data["revisions"], [core_head()])
        self.assertIn("plugin_data", [table["name"] for table in data["tables"]])

        other = write_config(self.folder, "sqlite:///copy.sqlite", "copy.ini")
        status, out, _ = self.run_cli("load", str(target), config=other)
        self.assertEqual(status, 0)
        self.assertIn("loaded 25 rows into ", out)
        copy = self.folder / "copy.json"
        self.run_cli("dump", str(copy), config=other)
        self.assertEqual(json.loads(copy.read_text())["tables"], data["tables"])

        status, _, err = self.run_cli("load", str(target), config=other)
        self.assertEqual(status, 1)
        self.assertEqual(
            err, "botcore-db: error: table plugin_data is not empty; load into an empty database\n"
        )

    def test_revision_mismatch(self) -> None:
        """A dump is only loaded into a database at the same revisions."""
        self.fill()
        target = self.folder / "dump.json"
        self.run_cli("dump", str(target))
        other = write_config(self.folder, "sqlite:///copy.sqlite", "copy.ini")
        self.run_cli("upgrade", config=other)
        self.run_cli("downgrade", "base", config=other)
        status, _, err = self.run_cli("load", str(target), config=other)
        self.assertEqual(status, 1)
        self.assertIn(f"the dump is at revision {core_head()} but the database is at none", err)


class ConsoleScriptTests(SynchronousTestCase):
    """The installed botcore-db script, end to end."""

    def test_console_script(self) -> None:
        """botcore-db -c bot.ini upgrade, then check, as an operator runs them."""
        script = Path(sys.executable).with_name("botcore-db")
        if not script.exists():
            if in_ci():
                self.fail(f"{script} is not installed")
            raise SkipTest(f"{script} is not installed (pip install -e .)")
        folder = Path(self.mktemp()).absolute()
        folder.mkdir(parents=True)
        config = write_config(folder, "sqlite:///bot.sqlite")
        environ = {**os.environ, "PYTHONWARNINGS": "error"}
        upgrade = subprocess.run(
            [str(script), "-c", str(config), "upgrade"],
            capture_output=True,
            text=True,
            timeout=120,
            env=environ,
        )
        self.assertEqual(upgrade.returncode, 0, upgrade.stderr)
        self.assertIn(f"upgraded from nothing (no revision) to {core_head()}", upgrade.stdout)
        check = subprocess.run(
            [str(script), "-c", str(config), "check"], capture_output=True, text=True, timeout=120
        )
        self.assertEqual(check.returncode, 0, check.stdout + check.stderr)
        bad = subprocess.run(
            [str(script), "-c", str(config), "downgrade", "nonsense"],
            capture_output=True,
            text=True,
            timeout=120,
        )
        self.assertEqual(bad.returncode, 1)
        self.assertEqual(len(bad.stderr.splitlines()), 1, bad.stderr)
        self.assertTrue(bad.stderr.startswith("botcore-db: error: "))


# -- dump/load of related tables across backends --------------------------------------------

RELATED_REVISION = '''
"""Related tables for the dump tests."""

import sqlalchemy as sa
from alembic import op

import botcore.db.types

revision = "related_0001"
down_revision = None
branch_labels = ("related",)
depends_on = "0001"

OPTIONS = dict(mysql_engine="InnoDB", mysql_charset="utf8mb4", mysql_collate="utf8mb4_bin")


def upgrade():
    op.create_table(
        "dump_parent",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("name", botcore.db.types.CIText(50), nullable=False, unique=True),
        sa.Column("born", botcore.db.types.UTCDateTime(), nullable=True),
        **OPTIONS,
    )
    op.create_table(
        "dump_child",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("parent_id", sa.Integer(), sa.ForeignKey("dump_parent.id"), nullable=False),
        sa.Column("next_id", sa.Integer(), sa.ForeignKey("dump_child.id"), nullable=True),
        sa.Column("data", sa.JSON(), nullable=True),
        sa.Column("blob", sa.LargeBinary(), nullable=True),
        sa.Column("flag", sa.Boolean(), nullable=False),
        sa.Column("day", sa.Date(), nullable=True),
        **OPTIONS,
    )


def downgrade():
    op.drop_table("dump_child")
    op.drop_table("dump_parent")
'''

RELATED = MetaData()
parent = Table(
    "dump_parent",
    RELATED,
    Column("id", Integer, primary_key=True),
    Column("name", CIText(50), nullable=False, unique=True),
    Column("born", UTCDateTime(), nullable=True),
    **MYSQL_TABLE_OPTIONS,
)
child = Table(
    "dump_child",
    RELATED,
    Column("id", Integer, primary_key=True),
    Column("parent_id", Integer, ForeignKey("dump_parent.id"), nullable=False),
    Column("next_id", Integer, ForeignKey("dump_child.id"), nullable=True),
    Column("data", JSON, nullable=True),
    Column("blob", LargeBinary, nullable=True),
    Column("flag", Boolean, nullable=False),
    Column("day", Date, nullable=True),
    **MYSQL_TABLE_OPTIONS,
)
# The dump sees the core's table through its model as well.
Base.metadata.tables["plugin_data"].to_metadata(RELATED)

BORN = datetime(2001, 2, 3, 4, 5, 6, 789012, tzinfo=timezone(timedelta(hours=-7)))
PARENTS = [
    {"id": 5, "name": "Ärger", "born": BORN},
    {"id": 17, "name": "karma", "born": None},
    {"id": 42, "name": "Zebra", "born": datetime(2020, 1, 1, tzinfo=UTC)},
]
CHILDREN = [
    # Child 3 points at child 9, inserted after it: loading has to cope.
    {
        "id": 3,
        "parent_id": 42,
        "next_id": 9,
        "data": {"a": [1, 2]},
        "blob": b"\x00\xff",
        "flag": True,
        "day": date(1999, 12, 31),
    },
    {
        "id": 9,
        "parent_id": 5,
        "next_id": None,
        "data": None,
        "blob": None,
        "flag": False,
        "day": None,
    },
    {
        "id": 10,
        "parent_id": 5,
        "next_id": 3,
        "data": "text",
        "blob": b"",
        "flag": True,
        "day": date(2024, 2, 29),
    },
]


class DumpMixin:
    """A dump of related tables from SQLite loaded into this backend."""

    backend: str

    def setUp(self) -> None:
        self.location = Path(self.mktemp()).absolute()
        self.location.mkdir(parents=True)
        (self.location / "related_0001_tables.py").write_text(textwrap.dedent(RELATED_REVISION))
        self.source = self.engine_for(SQLITE)
        migrate.upgrade(self.source, extra_locations=[self.location])
        with self.source.begin() as connection:
            connection.execute(insert(parent), PARENTS)
            # Child 9 first: the source checks foreign keys row by row too.
            connection.execute(insert(child), [CHILDREN[1], CHILDREN[0], CHILDREN[2]])
        store_rows(self.source)
        self.file = self.location.parent / "dump.json.gz"
        self.counts = dump.dump(self.source, self.file, models=RELATED)

    def engine_for(self, backend: str):
        engine = make_engine(fresh_database(self, backend))
        self.addCleanup(engine.dispose)
        return engine

    def rows(self, engine) -> dict[str, list[dict]]:
        with engine.connect() as connection:
            return {
                table.name: [
                    dict(row._mapping)
                    for row in connection.execute(select(table).order_by(table.c.id))
                ]
                for table in (parent, child, RELATED.tables["plugin_data"])
            }

    def test_every_row_kept(self) -> None:
        """Every row of every table arrives with its id, its foreign keys, UTC
        timestamps, JSON, bytes, booleans and dates intact."""
        # Tables of other migrations (accounts, plugins) are dumped too, empty.
        filled = {name: count for name, count in self.counts.items() if count}
        self.assertEqual(filled, {"plugin_data": 3, "dump_parent": 3, "dump_child": 3})
        target = self.engine_for(self.backend)
        loaded = dump.load(target, self.file, models=RELATED, extra_locations=[self.location])
        self.assertEqual(loaded, self.counts)
        self.assertEqual(self.rows(target), self.rows(self.source))
        self.assertEqual(self.rows(target)["dump_parent"][0]["born"], BORN)
        self.assertEqual(migrate.current(target), {"related_0001"} | {core_head()} - {"0001"})

    def test_ids_continue_after_load(self) -> None:
        """New rows after a load get ids past the loaded ones (PostgreSQL's sequences are
        reset), and case-insensitive uniqueness still holds."""
        target = self.engine_for(self.backend)
        dump.load(target, self.file, models=RELATED, extra_locations=[self.location])
        with target.begin() as connection:
            result = connection.execute(insert(parent).values(name="new"))
            self.assertEqual(result.inserted_primary_key[0], 43)
        from sqlalchemy.exc import IntegrityError

        with self.assertRaises(IntegrityError), target.begin() as connection:
            connection.execute(insert(parent).values(name="KARMA"))


def store_rows(engine) -> None:
    sessions = make_session_factory(engine)
    with sessions() as session:
        store = PluginStore(session, "karma")
        for key in ("a", "B", "ç"):
            store.set(key, {"k": key})
        session.commit()


backend_classes(DumpMixin, globals(), "DumpTests")
del SQLiteDumpTests  # noqa: F821 (the source is SQLite; SQLite to SQLite is tested above)


class DumpServerCommandMixin:
    """botcore-db dump from SQLite, load into a server, as an operator moves a bot."""

    backend: str

    def test_move_bot(self) -> None:
        """dump FILE on the SQLite config, load FILE on the server's config: the same
        rows, and the server database is current."""
        folder = Path(self.mktemp()).absolute()
        folder.mkdir(parents=True)
        sqlite_config = write_config(folder, "sqlite:///bot.sqlite")
        server_config = write_config(folder, fresh_database(self, self.backend), "server.ini")
        run = lambda *argv: main(list(argv), stdout=io.StringIO(), stderr=io.StringIO())  # noqa: E731
        self.assertEqual(run("-c", str(sqlite_config), "upgrade"), 0)
        engine = make_engine(f"sqlite:///{folder / 'bot.sqlite'}")
        self.addCleanup(engine.dispose)
        store_rows(engine)
        target = folder / "bot.json.gz"
        self.assertEqual(run("-c", str(sqlite_config), "dump", str(target)), 0)
        self.assertEqual(run("-c", str(server_config), "load", str(target)), 0)
        self.assertEqual(run("-c", str(server_config), "check"), 0)
        again = folder / "again.json"
        self.assertEqual(run("-c", str(server_config), "dump", str(again)), 0)
        with gzip.open(target, "rt") as handle:
            first = json.load(handle)["tables"]
        self.assertEqual(json.loads(again.read_text())["tables"], first)


class PostgreSQLDumpCommandTests(DumpServerCommandMixin, SynchronousTestCase):
    backend = POSTGRESQL


class MariaDBDumpCommandTests(DumpServerCommandMixin, SynchronousTestCase):
    backend = MYSQL
