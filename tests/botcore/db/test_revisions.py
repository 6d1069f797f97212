"""botcore.db.revisions: the revision files read without alembic agree with alembic, a
current database is told from one that is not, and a bot's start-up with a current schema
does not import alembic."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from twisted.trial.unittest import SynchronousTestCase

from botcore.db import migrate, revisions
from botcore.db.engine import make_engine

ROOT = Path(__file__).resolve().parents[3]


class GraphTests(SynchronousTestCase):
    """The revision graph and heads, as alembic has them."""

    def test_graph_and_heads_match_alembic(self) -> None:
        """Every revision with what it comes after, and the heads, are alembic's."""
        script = migrate.script_directory()
        expected = {}
        for rev in script.walk_revisions():
            down = rev.down_revision
            expected[rev.revision] = (
                () if down is None else (down,) if isinstance(down, str) else tuple(down)
            )
        graph = revisions.revision_graph(revisions.version_locations())
        self.assertEqual(graph, expected)
        self.assertEqual(revisions.heads(graph), frozenset(script.get_heads()))

    def test_unreadable_revision(self) -> None:
        """A revision file that computes its revision is not guessed at."""
        folder = Path(self.mktemp())
        folder.mkdir()
        (folder / "0100_odd.py").write_text('revision = "01" + "00"\ndown_revision = None\n')
        self.assertRaises(revisions.UnreadableRevision, revisions.revision_graph, [folder])
        (folder / "0100_odd.py").write_text("down_revision = None\n")
        self.assertRaises(revisions.UnreadableRevision, revisions.revision_graph, [folder])

    def test_merge_revision(self) -> None:
        """A merge (a tuple of down revisions) ends both branches below it."""
        folder = Path(self.mktemp())
        folder.mkdir()
        for name, down in (("a", None), ("b", '"a"'), ("c", '"a"'), ("d", '("b", "c")')):
            (folder / f"{name}.py").write_text(
                f'revision: str = "{name}"\ndown_revision = {down}\n'
            )
        graph = revisions.revision_graph([folder])
        self.assertEqual(graph["d"], ("b", "c"))
        self.assertEqual(revisions.heads(graph), frozenset({"d"}))


class CurrentTests(SynchronousTestCase):
    """is_current on a SQLite database."""

    def setUp(self) -> None:
        folder = Path(self.mktemp()).absolute()
        folder.mkdir(parents=True)
        self.url = f"sqlite:///{folder / 'bot.sqlite'}"
        self.engine = make_engine(self.url)
        self.addCleanup(self.engine.dispose)

    def test_states(self) -> None:
        """Empty, current, behind and unknown: only current is True."""
        self.assertFalse(revisions.is_current(self.engine))
        migrate.upgrade(self.engine)
        self.assertTrue(revisions.is_current(self.engine))
        self.assertTrue(migrate.schema_state(self.engine).current)
        migrate.downgrade(self.engine, "-1")
        self.assertFalse(revisions.is_current(self.engine))
        migrate.upgrade(self.engine)
        with self.engine.begin() as connection:
            connection.exec_driver_sql("UPDATE alembic_version SET version_num = '9999'")
        self.assertFalse(revisions.is_current(self.engine))


class StartupImportTests(SynchronousTestCase):
    """What a start-up imports."""

    def start_in_child(self, url: str) -> str:
        """Start a Database service on ``url`` in a new interpreter; what it prints."""
        program = (
            "import sys\n"
            "from botcore.db.service import Database\n"
            f"database = Database('main', {{'url': {url!r}, 'auto_upgrade': True}})\n"
            "database.startService()\n"
            "database.stopService()\n"
            "print('alembic' in sys.modules)\n"
        )
        environment = {**os.environ, "PYTHONPATH": str(ROOT)}
        result = subprocess.run(
            [sys.executable, "-c", program],
            capture_output=True,
            text=True,
            timeout=120,
            env=environment,
            cwd=str(ROOT),
            check=False,
        )
        self.assertEqual(result.returncode, 0, result.stderr)
        return result.stdout.strip()

    def test_current_schema_imports_no_alembic(self) -> None:
        """With the schema current, starting the database does not import alembic; with
        one behind, it does (and upgrades)."""
        folder = Path(self.mktemp()).absolute()
        folder.mkdir(parents=True)
        url = f"sqlite:///{folder / 'bot.sqlite'}"
        engine = make_engine(url)
        self.addCleanup(engine.dispose)
        migrate.upgrade(engine)
        self.assertEqual(self.start_in_child(url), "False")
        migrate.downgrade(engine, "-1")
        self.assertEqual(self.start_in_child(url), "True")
        self.assertTrue(revisions.is_current(engine))
