"""botcore-db revision --plugin: a third-party plugin's revisions written into its own
migrations package (found through its entry point), right on SQLite, PostgreSQL and
MariaDB whichever backend they were written on, and botcore-db check naming the command."""

from __future__ import annotations

import importlib
import io
import re
import sys
from pathlib import Path

from sqlalchemy import inspect
from twisted.trial.unittest import SynchronousTestCase

from botcore.cli.db import main
from botcore.db import migrate
from botcore.db.engine import make_engine
from botcore.db.models import forget_models
from botcore.loading.reloader import Reloader
from botcore.testing import SQLITE, backend_classes, fresh_database, use_entry_points
from tests.migrations.backends import core_head

MODELS_V1 = '''
"""Counts things (a third-party plugin for the tests)."""

from sqlalchemy import Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from botcore.db.models import Base
from botcore.db.types import CIText


class Tally(Base):
    __tablename__ = "tally_counts"
    __table_args__ = (
        UniqueConstraint("source", "name"),
        Index("ix_tally_counts_owner", "owner"),
        Index("ix_tally_counts_label", "label"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    source: Mapped[str] = mapped_column(CIText(64))
    name: Mapped[str] = mapped_column(CIText(255))
    owner: Mapped[str] = mapped_column(CIText(64))
    label: Mapped[str] = mapped_column(String(64))
    count: Mapped[int] = mapped_column(Integer, default=0)
'''

# The second version adds a column and two indexes over CIText columns to the table.
MODELS_V2 = MODELS_V1.replace(
    '        Index("ix_tally_counts_label", "label"),\n',
    '        Index("ix_tally_counts_label", "label"),\n'
    '        Index("ix_tally_counts_owner_kind", "owner", "kind"),\n'
    '        UniqueConstraint("kind", "label"),\n',
).replace(
    "    count: Mapped[int]",
    "    kind: Mapped[str | None] = mapped_column(CIText(20), nullable=True)\n"
    "    count: Mapped[int]",
)

# The third widens a plain column: on SQLite a batch rebuild of the table, which drops its
# key indexes; the revision makes them again.
MODELS_V3 = MODELS_V2.replace(
    "label: Mapped[str] = mapped_column(String(64))",
    "label: Mapped[str] = mapped_column(String(128))",
)

ENTRY_POINTS = """\
[botcore.plugins]
tally = tally_plugin

[botcore.migrations]
tally = tally_plugin.migrations
"""


def squashed(source: str) -> str:
    """``source`` without whitespace or the trailing commas a formatter adds when it wraps
    a call (the revision files are formatted when ruff is at hand), to compare calls."""
    return re.sub(r",([)\]])", r"\1", "".join(source.split()))


def install_tally(
    testcase: SynchronousTestCase, under: str = "src", entry_points: str = ENTRY_POINTS
) -> Path:
    """Put a ``tally_plugin`` package (models, an empty migrations package and the entry
    points of an installed distribution) on sys.path; returns its migrations folder."""
    folder = Path(testcase.mktemp()).absolute() / under
    package = folder / "tally_plugin"
    (package / "migrations").mkdir(parents=True)
    (package / "__init__.py").write_text(MODELS_V1)
    (package / "migrations" / "__init__.py").write_text("")
    info = folder / "botcore_tally-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: botcore-tally\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(entry_points)
    sys.path.insert(0, str(folder))
    importlib.invalidate_caches()
    use_entry_points(testcase, "tally")

    def uninstall() -> None:
        sys.path.remove(str(folder))
        forget_models("tally_plugin")
        for name in ("tally_plugin", "tally_plugin.migrations"):
            sys.modules.pop(name, None)
        importlib.invalidate_caches()

    testcase.addCleanup(uninstall)
    return package / "migrations"


def reimport_tally(source: str, migrations: Path) -> None:
    (migrations.parent / "__init__.py").write_text(source)
    forget_models("tally_plugin")
    sys.modules.pop("tally_plugin", None)
    importlib.invalidate_caches()
    importlib.import_module("tally_plugin")


class PluginRevisionMixin:
    """The revisions are written on ``self.backend`` and applied there and on SQLite."""

    backend = SQLITE

    def setUp(self) -> None:
        self.folder = Path(self.mktemp()).absolute()
        self.folder.mkdir(parents=True)
        url = "sqlite:///bot.sqlite"
        if self.backend != SQLITE:
            url = fresh_database(self, self.backend)
        self.config = self.folder / "bot.ini"
        self.config.write_text(f"[bot]\nname = testbot\n\n[database:main]\nurl = {url}\n")

    def cli(self, *argv: str) -> tuple[int, str]:
        out, err = io.StringIO(), io.StringIO()
        status = main(["-c", str(self.config), *argv], stdout=out, stderr=err)
        return status, out.getvalue() + err.getvalue()

    def assert_migrates_everywhere(self, location: Path) -> None:
        """A fresh database of this backend and a fresh SQLite one come to every head
        through the plugin's revisions and then match the models exactly."""
        backends = {SQLITE, self.backend}
        for backend in sorted(backends):
            engine = make_engine(fresh_database(self, backend))
            self.addCleanup(engine.dispose)
            migrate.upgrade(engine)
            self.assertEqual(migrate.compare(engine, Reloader().import_models()), [], backend)
            self.assertIn("tally_counts", inspect(engine).get_table_names())
            # And back down the plugin's branch alone, leaving the core's.
            migrate.downgrade(engine, "tally@base")
            self.assertNotIn("tally_counts", inspect(engine).get_table_names())
            self.assertEqual(migrate.current(engine), {core_head()})

    def test_first_and_next_revision(self) -> None:
        """The first revision starts the plugin's branch in its own package (no down
        revision, its label, depending on the core's head) with the CIText constraint and
        indexes as botcore.db.keyed calls; the next one extends the branch; both migrate
        every backend to exactly the models."""
        location = install_tally(self)
        status, out = self.cli("upgrade")
        self.assertEqual(status, 0, out)
        status, out = self.cli("check")
        self.assertEqual(status, 1, out)
        self.assertIn("add_table tally_counts", out)
        self.assertIn(f"-c {self.config} revision --plugin tally -m MESSAGE", out)

        status, out = self.cli("revision", "--plugin", "tally", "-m", "tally counts")
        self.assertEqual(status, 0, out)
        (first,) = location.glob("tally_0001_*.py")
        self.assertIn(f"wrote {first}", out)
        source = first.read_text()
        self.assertIn('revision = "tally_0001"', source)
        self.assertIn("down_revision = None", source)
        self.assertIn('branch_labels = ("tally",)', source)
        self.assertIn(f'depends_on = "{core_head()}"', source)
        bare = squashed(source)
        self.assertIn(
            'botcore.db.keyed.create_unique("uq_tally_counts_source_name","tally_counts",'
            '["source","name"],keyed=["source","name"])',
            bare,
        )
        self.assertIn(
            'botcore.db.keyed.create_index("ix_tally_counts_owner","tally_counts",'
            '["owner"],keyed=["owner"])',
            bare,
        )
        self.assertIn('sa.Column("name",botcore.db.types.CIText(255),nullable=False)', bare)
        self.assertNotIn("UniqueConstraint", source)
        # The plain index is alembic's own; nothing of the core is in it.
        self.assertIn('op.create_index("ix_tally_counts_label","tally_counts",["label"]', bare)
        self.assertNotIn("plugin_data", source)
        self.assert_migrates_everywhere(location)

        status, out = self.cli("upgrade")
        self.assertEqual(status, 0, out)
        status, out = self.cli("check")
        self.assertEqual(status, 0, out)
        reimport_tally(MODELS_V2, location)
        status, out = self.cli("check")
        self.assertEqual(status, 1, out)
        self.assertIn("revision --plugin tally -m MESSAGE", out)
        status, out = self.cli("revision", "--plugin", "tally", "-m", "tally kinds")
        self.assertEqual(status, 0, out)
        (second,) = location.glob("tally_0002_*.py")
        source = second.read_text()
        self.assertIn('down_revision = "tally_0001"', source)
        self.assertIn("branch_labels = None", source)
        self.assertIn('"ix_tally_counts_owner_kind"', source)
        self.assertIn('"uq_tally_counts_kind_label"', source)
        self.assertEqual(source.count("botcore.db.keyed.drop_"), 2)
        status, out = self.cli("upgrade")
        self.assertEqual(status, 0, out)
        status, out = self.cli("check")
        self.assertEqual(status, 0, out)
        self.assert_migrates_everywhere(location)

    def test_rebuild_restores_key_indexes(self) -> None:
        """A change SQLite makes by rebuilding the table is followed by a restore of its
        key indexes, and the result matches the models on every backend."""
        location = install_tally(self)
        for source, message in ((MODELS_V2, "tally counts"), (MODELS_V3, "wider labels")):
            reimport_tally(source, location)
            self.assertEqual(self.cli("upgrade")[0], 0)
            status, out = self.cli("revision", "--plugin", "tally", "-m", message)
            self.assertEqual(status, 0, out)
        (third,) = location.glob("tally_0002_*.py")
        source = third.read_text()
        self.assertIn("batch_alter_table", source)
        self.assertEqual(source.count("botcore.db.keyed.restore("), 2, source)
        bare = squashed(source)
        self.assertIn(
            '("uq_tally_counts_source_name",["source","name"],["source","name"],True)', bare
        )
        self.assertEqual(self.cli("upgrade")[0], 0)
        status, out = self.cli("check")
        self.assertEqual(status, 0, out)
        self.assert_migrates_everywhere(location)


backend_classes(PluginRevisionMixin, globals(), "PluginRevisionTests")


class RefusalTests(SynchronousTestCase):
    """--plugin refuses what it cannot do, with one clear line."""

    def setUp(self) -> None:
        self.folder = Path(self.mktemp()).absolute()
        self.folder.mkdir(parents=True)
        self.config = self.folder / "bot.ini"
        self.config.write_text("[bot]\nname = testbot\n\n[database:main]\nurl = sqlite:///b.db\n")

    def cli(self, *argv: str) -> tuple[int, str]:
        out, err = io.StringIO(), io.StringIO()
        status = main(["-c", str(self.config), *argv], stdout=out, stderr=err)
        return status, err.getvalue()

    def test_no_entry_point(self) -> None:
        """A plugin without a botcore.migrations entry point is told how to declare one."""
        self.assertEqual(self.cli("upgrade")[0], 0)
        status, err = self.cli("revision", "--plugin", "nosuch", "-m", "x")
        self.assertEqual(status, 1)
        self.assertIn("no installed package declares a botcore.migrations entry point", err)
        self.assertIn('nosuch = "PACKAGE.migrations"', err)

    def test_installed_copy(self) -> None:
        """A migrations package inside site-packages (a regular install) is not written
        to: the message says to install the plugin editable."""
        location = install_tally(self, under="lib/python3/site-packages")
        self.assertEqual(self.cli("upgrade")[0], 0)
        status, err = self.cli("revision", "--plugin", "tally", "-m", "x")
        self.assertEqual(status, 1)
        self.assertIn("installed copy (site-packages)", err)
        self.assertIn("pip install -e", err)
        self.assertEqual(list(location.glob("*.py")), [location / "__init__.py"])

    def test_not_writable(self) -> None:
        """A migrations package that cannot be written to is refused before alembic
        runs."""
        location = install_tally(self)
        self.patch(migrate.os, "access", lambda path, mode: Path(path) != location)
        self.assertEqual(self.cli("upgrade")[0], 0)
        status, err = self.cli("revision", "--plugin", "tally", "-m", "x")
        self.assertEqual(status, 1)
        self.assertIn("is not writable", err)

    def test_tables_without_migrations(self) -> None:
        """check names the module whose tables no botcore.migrations entry point owns,
        and says how to give it one."""
        install_tally(self, entry_points="[botcore.plugins]\ntally = tally_plugin\n")
        importlib.import_module("tally_plugin")
        self.assertEqual(self.cli("upgrade")[0], 0)
        out = io.StringIO()
        status = main(["-c", str(self.config), "check"], stdout=out, stderr=io.StringIO())
        self.assertEqual(status, 1)
        self.assertIn("tables tally_counts are tally_plugin's", out.getvalue())
        self.assertIn("botcore.migrations entry point", out.getvalue())

    def test_with_branch_option(self) -> None:
        """--plugin finds its own branch and folder."""
        install_tally(self)
        status, err = self.cli("revision", "--plugin", "tally", "--branch", "x", "-m", "x")
        self.assertEqual(status, 1)
        self.assertIn("leave out --branch", err)
