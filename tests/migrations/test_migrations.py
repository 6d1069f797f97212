"""The alembic environment on every backend: each revision from empty to head, no
difference left between the models and the migrated schema, down to base and up again,
and a plugin package's own branch of revisions applied beside the core's."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

from sqlalchemy import inspect, text
from twisted.trial.unittest import SynchronousTestCase

from botcore import migrate
from botcore.database import make_engine
from tests.migrations.backends import backend_classes, core_head, fresh_database


class MigrationTestsMixin:
    """Migrations on one backend."""

    backend: str

    def setUp(self) -> None:
        self.engine = make_engine(fresh_database(self, self.backend))
        self.addCleanup(self.engine.dispose)

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
        self.assertEqual(migrate.compare(self.engine), [])

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
        self.assertEqual(migrate.compare(self.engine), [])

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

        from botcore.database import Base
        from botcore.types import CIText, UTCDateTime

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
        differences = migrate.compare(engine)
        self.assertEqual([d[0] for d in differences], ["add_table"])
        folder = Path(self.mktemp()).absolute()
        folder.mkdir()
        paths = migrate.revision(
            engine,
            "add revision probe",
            version_path=folder,
            extra_locations=[folder],
        )
        self.assertEqual(len(paths), 1)
        self.assertTrue(paths[0].name.startswith(migrate.next_core_revision() + "_add_revision"))
        source = paths[0].read_text()
        self.assertIn("down_revision = ", source)
        self.assertIn("import botcore.types", source)
        self.assertIn("botcore.types.CIText(40)", source)
        self.assertIn("botcore.types.UTCDateTime()", source)
        # The written revision applies and leaves nothing to compare.
        migrate.upgrade(engine, extra_locations=[folder])
        self.assertEqual(migrate.compare(engine), [])
        with engine.connect() as connection:
            self.assertEqual(
                connection.execute(text("SELECT count(*) FROM revision_probe")).scalar(), 0
            )
