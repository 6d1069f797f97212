"""The alembic environment on every backend: each revision from empty to head, no
difference left between the models and the migrated schema, down to base and up again,
and a plugin package's own branch of revisions applied beside the core's."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

from sqlalchemy import inspect, text
from sqlalchemy.exc import IntegrityError
from twisted.trial.unittest import SynchronousTestCase

from botcore.db import migrate
from botcore.db.engine import make_engine
from botcore.loading.reloader import Reloader
from botcore.testing import backend_classes, fresh_database, fresh_engine, use_entry_points
from tests.migrations.backends import core_head


class MigrationTestsMixin:
    """Migrations on one backend."""

    backend: str

    def setUp(self) -> None:
        self.engine = fresh_engine(self, self.backend)

    def tables(self) -> set[str]:
        return set(inspect(self.engine).get_table_names())

    def test_every_revision_in_sequence(self) -> None:
        """Each revision applies on top of the one before, from an empty database to head,
        and the result matches the models exactly."""
        script = migrate.script_directory()
        revisions = list(reversed(list(script.walk_revisions())))
        self.assertTrue(revisions)
        self.assertTrue(migrate.schema_state(self.engine).empty)
        for revision in revisions:
            migrate.upgrade(self.engine, revision.revision)
            self.assertIn(revision.revision, migrate.current(self.engine))
        state = migrate.schema_state(self.engine)
        self.assertTrue(state.current, state.describe())
        self.assertEqual(migrate.compare(self.engine, Reloader().import_models()), [])

    def test_downgrade_to_base_and_up_again(self) -> None:
        """Every revision's downgrade works: down to base leaves only alembic's table, and
        upgrading again gives the same schema as the models."""
        migrate.upgrade(self.engine)
        self.assertIn("plugin_data", self.tables())
        migrate.downgrade(self.engine, "base")
        self.assertEqual(self.tables(), {"alembic_version"})
        self.assertEqual(migrate.current(self.engine), frozenset())
        migrate.upgrade(self.engine)
        self.assertTrue(migrate.schema_state(self.engine).current)
        self.assertEqual(migrate.compare(self.engine, Reloader().import_models()), [])

    def test_not_current_is_described(self) -> None:
        """An empty database and one downgraded to base are not current, and say so."""
        state = migrate.schema_state(self.engine)
        self.assertFalse(state.current)
        self.assertEqual(state.describe(), "is empty (no tables)")
        migrate.upgrade(self.engine)
        migrate.downgrade(self.engine, "base")
        state = migrate.schema_state(self.engine)
        self.assertFalse(state.empty)
        self.assertEqual(state.describe(), "has tables but no botcore schema revision")


backend_classes(MigrationTestsMixin, globals(), "MigrationTests")


PLUGIN_REVISION = '''
"""Weather reports for a third-party plugin."""

import sqlalchemy as sa
from alembic import op

revision = "weather_0001"
down_revision = None
branch_labels = ("weather",)
depends_on = "0001"


def upgrade():
    op.create_table(
        "weather_report",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("place", sa.String(50), nullable=False),
    )


def downgrade():
    op.drop_table("weather_report")
'''


def plugin_package(testcase: SynchronousTestCase) -> Path:
    """A folder of one third-party revision (branch ``weather``)."""
    folder = Path(testcase.mktemp()).absolute()
    (folder / "weather_migrations").mkdir(parents=True)
    (folder / "weather_migrations" / "__init__.py").write_text("")
    (folder / "weather_migrations" / "weather_0001_reports.py").write_text(PLUGIN_REVISION)
    return folder


class PluginBranchTests(SynchronousTestCase):
    """A plugin package's revisions, found through its entry point."""

    def setUp(self) -> None:
        self.engine = make_engine(fresh_database(self, "sqlite"))
        self.addCleanup(self.engine.dispose)

    def install(self) -> Path:
        """Put a package with a ``botcore.migrations`` entry point on sys.path."""
        folder = plugin_package(self)
        info = folder / "botcore_weather-1.0.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(
            "Metadata-Version: 2.1\nName: botcore-weather\nVersion: 1.0\n"
        )
        (info / "entry_points.txt").write_text(
            textwrap.dedent(
                """\
                [botcore.migrations]
                weather = weather_migrations
                """
            )
        )
        sys.path.insert(0, str(folder))
        self.addCleanup(sys.path.remove, str(folder))
        self.addCleanup(sys.modules.pop, "weather_migrations", None)
        use_entry_points(self, "weather")
        return folder / "weather_migrations"

    def test_entry_point_locations(self) -> None:
        """A package declaring a botcore.migrations entry point adds its folder of
        revisions."""
        location = self.install()
        self.assertIn(location, migrate.plugin_version_locations())

    def test_upgrade_applies_every_branch(self) -> None:
        """upgrade brings both the core and the plugin's branch to their heads; the
        plugin's revision runs after the core revision it depends on."""
        self.install()
        state = migrate.schema_state(self.engine)
        self.assertEqual(state.heads, {core_head(), "weather_0001"})
        migrate.upgrade(self.engine)
        # alembic keeps only the tips: 0001 is applied as weather_0001's dependency, so
        # it is listed only when it is also the core's head.
        self.assertEqual(migrate.current(self.engine), {"weather_0001"} | {core_head()} - {"0001"})
        tables = set(inspect(self.engine).get_table_names())
        self.assertTrue({"plugin_data", "weather_report"} <= tables)
        self.assertTrue(migrate.schema_state(self.engine).current)

    def test_downgrade_one_branch(self) -> None:
        """The plugin's branch can be taken down on its own, leaving the core's."""
        location = plugin_package(self) / "weather_migrations"
        migrate.upgrade(self.engine, extra_locations=[location])
        migrate.downgrade(self.engine, "weather@base", extra_locations=[location])
        self.assertEqual(migrate.current(self.engine), {core_head()})
        self.assertNotIn("weather_report", inspect(self.engine).get_table_names())

    def test_uninstalled_plugin_revision_is_unknown(self) -> None:
        """A database at a revision of a package no longer installed is reported as
        unknown, not silently treated as current."""
        location = plugin_package(self) / "weather_migrations"
        migrate.upgrade(self.engine, extra_locations=[location])
        state = migrate.schema_state(self.engine, extra_locations=[])
        self.assertFalse(state.current)
        self.assertEqual(state.unknown, {"weather_0001"})
        self.assertIn("does not know", state.describe())


class RevisionTests(SynchronousTestCase):
    """Writing new revisions (the developer's botcore-db revision)."""

    def test_next_core_revision(self) -> None:
        """The next core revision id is one more than the highest NNNN."""
        script = migrate.script_directory()
        highest = max(int(r.revision) for r in script.walk_revisions() if r.revision.isdigit())
        self.assertEqual(migrate.next_core_revision(), f"{highest + 1:04d}")

    def test_autogenerate_new_model(self) -> None:
        """A model added on Base shows up as a difference and in a generated revision,
        numbered in sequence, with botcore's types rendered importably."""
        from sqlalchemy import Column, Integer, Table

        from botcore.db.models import Base
        from botcore.db.types import CIText, UTCDateTime

        engine = make_engine(fresh_database(self, "sqlite"))
        self.addCleanup(engine.dispose)
        migrate.upgrade(engine)
        table = Table(
            "revision_probe",
            Base.metadata,
            Column("id", Integer, primary_key=True),
            Column("name", CIText(40), nullable=False),
            Column("seen", UTCDateTime()),
        )
        self.addCleanup(Base.metadata.remove, table)
        differences = migrate.compare(engine, Reloader().import_models())
        self.assertEqual([d[0] for d in differences], ["add_table"])
        folder = Path(self.mktemp()).absolute()
        folder.mkdir()
        paths = migrate.revision(
            engine,
            "add revision probe",
            metadata=Reloader().import_models(),
            version_path=folder,
            extra_locations=[folder],
        )
        self.assertEqual(len(paths), 1)
        self.assertTrue(paths[0].name.startswith(migrate.next_core_revision() + "_add_revision"))
        source = paths[0].read_text()
        self.assertIn("down_revision = ", source)
        self.assertIn("import botcore.db.types", source)
        self.assertIn("botcore.db.types.CIText(40)", source)
        self.assertIn("botcore.db.types.UTCDateTime()", source)
        # The written revision applies and leaves nothing to compare.
        migrate.upgrade(engine, extra_locations=[folder])
        self.assertEqual(migrate.compare(engine, Reloader().import_models()), [])
        with engine.connect() as connection:
            self.assertEqual(
                connection.execute(text("SELECT count(*) FROM revision_probe")).scalar(), 0
            )

    def test_autogenerate_model_mysql_options(self) -> None:
        """A new model's table is written with its MariaDB options (InnoDB, utf8mb4,
        binary collation) though the revision is written on SQLite."""
        from sqlalchemy import Column, Integer

        from botcore.db.models import Base, forget_models

        engine = make_engine(fresh_database(self, "sqlite"))
        self.addCleanup(engine.dispose)
        migrate.upgrade(engine)

        class RevisionModel(Base):
            __tablename__ = "revision_model"
            id = Column(Integer, primary_key=True)

        self.addCleanup(forget_models, RevisionModel.__module__)
        folder = Path(self.mktemp()).absolute()
        folder.mkdir()
        [path] = migrate.revision(
            engine,
            "add revision model",
            metadata=Reloader().import_models(),
            version_path=folder,
            extra_locations=[folder],
        )
        source = path.read_text()
        for option in (
            'mysql_charset="utf8mb4"',
            'mysql_collate="utf8mb4_bin"',
            'mysql_engine="InnoDB"',
        ):
            self.assertIn(option, source)


DANGLING_REVISION = '''
"""Deletes an account and nothing else: leaves its identities dangling."""

from alembic import op

revision = "dangle_0001"
down_revision = None
branch_labels = ("dangle",)
depends_on = "0009"


def upgrade():
    op.execute("DELETE FROM accounts")


def downgrade():
    pass
'''


class SQLiteKeyIndexMigrationTests(SynchronousTestCase):
    """Revision 0009 on SQLite: unique constraints and indexes over CIText columns become
    key indexes, with every row and foreign key kept."""

    def setUp(self) -> None:
        self.engine = make_engine(fresh_database(self, "sqlite"))
        self.addCleanup(self.engine.dispose)
        migrate.upgrade(self.engine, "0008")

    def sql(self, table: str) -> str:
        with self.engine.connect() as connection:
            rows = connection.execute(
                text("SELECT sql FROM sqlite_master WHERE tbl_name = :t AND sql IS NOT NULL"),
                {"t": table},
            )
            return "\n".join(row[0] for row in rows)

    def rows(self) -> dict[str, list[tuple]]:
        with self.engine.connect() as connection:
            return {
                table: connection.execute(text(f"SELECT * FROM {table} ORDER BY id")).all()
                for table in ("accounts", "identities", "permissions", "karma", "karma_votes")
            }

    def fill(self) -> None:
        with self.engine.begin() as connection:
            for statement in (
                "INSERT INTO accounts VALUES (1, 'Alice', '2024-01-01 00:00:00')",
                "INSERT INTO identities VALUES (1, 'irc', 'Alice!a@host', 1, "
                "'2024-01-01 00:00:00')",
                "INSERT INTO permissions VALUES (1, 1, 'Admin', 'yes')",
                "INSERT INTO karma VALUES (1, 'Ärger', 3, '2024-01-01 00:00:00', "
                "'2024-01-01 00:00:00')",
                "INSERT INTO karma_votes VALUES (1, 1, 'alice', 1, NULL, '2024-01-01 00:00:00')",
            ):
                connection.execute(text(statement))

    def test_rows_and_links_kept(self) -> None:
        """Rebuilding parent tables (accounts, karma) keeps their children's rows and
        links (no cascade), the columns keep their collation, uniqueness still ignores
        case, and foreign keys are enforced again afterwards."""
        self.fill()
        before = self.rows()
        # (0025 adds a column to accounts: the rows are compared before it.)
        migrate.upgrade(self.engine, "0024")
        self.assertEqual(self.rows(), before)
        migrate.upgrade(self.engine)
        karma = self.sql("karma")
        self.assertIn("COLLATE botcore_ci", karma)
        self.assertIn('uq_karma_subject_key ON karma (botcore_fold("subject"))', karma)
        self.assertNotIn("UNIQUE (subject)", karma)
        self.assertEqual(migrate.compare(self.engine, Reloader().import_models()), [])
        with self.engine.connect() as connection:
            self.assertEqual(connection.exec_driver_sql("PRAGMA foreign_keys").scalar(), 1)
            with self.assertRaises(IntegrityError):
                connection.execute(
                    text("INSERT INTO karma VALUES (2, 'äRGER', 0, '2024', '2024')")
                )
            connection.rollback()
            with self.assertRaises(IntegrityError):
                connection.execute(text("INSERT INTO identities VALUES (2, 'x', 'y', 99, '2024')"))

    def test_downgrade_restores_constraints(self) -> None:
        """Downgrading 0009 gives back the collation-ordered unique constraints, rows
        kept."""
        self.fill()
        before = self.rows()
        migrate.upgrade(self.engine)
        migrate.downgrade(self.engine, "0008")
        self.assertEqual(self.rows(), before)
        karma = self.sql("karma")
        self.assertIn("UNIQUE (subject)", karma)
        self.assertIn("COLLATE botcore_ci", karma)
        self.assertNotIn("botcore_fold", karma)

    def dangle(self) -> None:
        """Add an identity whose account does not exist (written with foreign keys off)."""
        with self.engine.connect() as connection:
            connection.exec_driver_sql("PRAGMA foreign_keys=OFF")
            connection.exec_driver_sql("INSERT INTO identities VALUES (2, 'x', 'y', 99, '2024')")
            connection.commit()
            connection.exec_driver_sql("PRAGMA foreign_keys=ON")

    def test_migration_leaving_dangling_keys_is_undone(self) -> None:
        """A revision that leaves rows with dangling foreign keys (here: deleting an
        account, which with foreign keys off cascades nowhere) is refused and undone as a
        whole, with the core revision before it in the same run: no half-rebuilt table,
        still at 0008."""
        self.fill()
        folder = Path(self.mktemp()).absolute()
        folder.mkdir()
        (folder / "dangle_0001.py").write_text(DANGLING_REVISION)
        karma = self.sql("karma")
        error = self.assertRaises(
            migrate.ForeignKeyViolation, migrate.upgrade, self.engine, extra_locations=[folder]
        )
        self.assertIn("identities", str(error))
        self.assertEqual(migrate.current(self.engine), frozenset({"0008"}))
        self.assertEqual(self.sql("karma"), karma)
        self.assertFalse(
            [name for name in inspect(self.engine).get_table_names() if "tmp" in name]
        )
        self.assertEqual(len(self.rows()["accounts"]), 1)

    def test_dangling_keys_from_before_do_not_block(self) -> None:
        """Rows that dangled before the migration are not blamed on it."""
        self.fill()
        self.dangle()
        migrate.upgrade(self.engine)
        self.assertEqual(migrate.current(self.engine), frozenset({core_head()}))

    def test_check_finds_missing_key_index(self) -> None:
        """botcore-db check's comparison notices a key index that is missing (reflection
        cannot see expression indexes; the comparison reads their SQL)."""
        migrate.upgrade(self.engine)
        with self.engine.begin() as connection:
            connection.exec_driver_sql("DROP INDEX uq_karma_subject_key")
        differences = migrate.compare(self.engine, Reloader().import_models())
        self.assertEqual(
            [(d[0], d[1].name) for d in differences], [("add_index", "uq_karma_subject_key")]
        )
