"""A plugin author's whole path, as README tells it: ``botcore-plugin new`` writes the
package, pip installs it (editable) into a scratch venv while a bot runs there, ``load``
finds it and ``reload`` picks up an edit, ``botcore-db revision --plugin`` writes its
first migration and ``upgrade`` applies it on SQLite, ``trial tests_NAME`` in its folder
runs only its tests, and botcore's own tests still pass with it installed."""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
from pathlib import Path

from twisted.trial.unittest import SynchronousTestCase

import botcore
from botcore.cli import skeleton
from botcore.db.migrate import ENTRY_POINTS_VARIABLE

CHECKOUT = Path(botcore.__file__).resolve().parent.parent

#: Run in the scratch venv: a bot starts without the plugin, pip installs it, load finds
#: it, an edit of the editable source is picked up by reload.
LATE_INSTALL = '''
import os, subprocess, sys
from pathlib import Path

from botcore.testing import PluginTestCase

PACKAGE = Path(os.environ["PLUGIN_PACKAGE"])


class LateInstallTests(PluginTestCase):
    load = ("help",)

    def test_install_load_reload(self):
        """pip install -e while the bot runs; load, help, reload after an edit."""
        self.assertNotIn("you said: hello", self.responses("tally hello"))
        result = subprocess.run(
            [sys.executable, "-m", "pip", "install", "-q", "--no-deps",
             "--no-build-isolation", "--no-index", "-e", str(PACKAGE)],
            capture_output=True, text=True, timeout=300,
        )
        self.assertEqual(result.returncode, 0, result.stdout + result.stderr)
        self.successResultOf(self.bot.plugins.load_plugin("tally"))
        self.assertResponseMatches("tally hello", "^you said: hello$")
        self.assertResponseMatches("help tally", 'For example: "tally hello"')
        module = PACKAGE / "botcore_tally" / "__init__.py"
        original = module.read_text()
        module.write_text(original.replace('"you said"', '"you told me"'))
        try:
            self.successResultOf(self.bot.plugins.reload_plugin("tally"))
            self.assertResponseMatches("tally hello", "^you told me: hello$")
        finally:
            module.write_text(original)
'''

#: What the author adds to the plugin: a table with a case-insensitive unique name.
MODEL = """

from sqlalchemy import UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from botcore.db.models import Base
from botcore.db.types import CIText


class TallyCount(Base):
    __tablename__ = "tally_counts"
    __table_args__ = (UniqueConstraint("name"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(CIText(64))
    count: Mapped[int] = mapped_column(default=0)
"""


class PluginPackageTests(SynchronousTestCase):
    """The skeleton from botcore-plugin new, installed and used for real."""

    def run_in(self, python: Path, *argv: str, cwd: Path, timeout: float = 300) -> str:
        env = {k: v for k, v in os.environ.items() if k != ENTRY_POINTS_VARIABLE}
        env["PYTHONDONTWRITEBYTECODE"] = "1"
        result = subprocess.run(
            [str(python), *argv],
            cwd=cwd,
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        output = result.stdout + result.stderr
        self.assertEqual(result.returncode, 0, f"{argv} failed:\n{output}")
        return output

    def scratch_venv(self, folder: Path) -> Path:
        """A venv without pip of its own that sees this one's packages and botcore's
        checkout (one .pth file), so nothing is downloaded."""
        venv = folder / "venv"
        subprocess.run(
            [sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120
        )
        python = venv / "bin" / "python"
        purelib = subprocess.run(
            [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            capture_output=True,
            text=True,
            check=True,
            timeout=60,
        ).stdout.strip()
        ours = sysconfig.get_paths()["purelib"]
        (Path(purelib) / "botcore-test-env.pth").write_text(f"{ours}\n{CHECKOUT}\n")
        return python

    def test_author_path(self) -> None:
        """Skeleton -> editable install into a running bot -> load, reload -> first
        revision and upgrade on SQLite -> the plugin's own tests -> botcore's tests."""
        folder = Path(self.mktemp()).absolute()
        folder.mkdir(parents=True)
        package = skeleton.write("tally", folder)
        python = self.scratch_venv(folder)

        checks = folder / "checks"
        checks.mkdir()
        (checks / "late_install_check.py").write_text(LATE_INSTALL)
        os.environ["PLUGIN_PACKAGE"] = str(package)
        self.addCleanup(os.environ.pop, "PLUGIN_PACKAGE", None)
        output = self.run_in(python, "-m", "twisted.trial", "late_install_check", cwd=checks)
        self.assertIn("PASSED (successes=2)", output)  # the test and test_examples

        # The author adds a table and writes its first revision into the package.
        plugin = package / "botcore_tally" / "__init__.py"
        plugin.write_text(plugin.read_text() + MODEL)
        bot = folder / "bot"
        bot.mkdir()
        config = bot / "bot.ini"
        config.write_text("[bot]\nname = testbot\n\n[database:main]\nurl = sqlite:///bot.sqlite\n")
        db = [str(python), "-m", "botcore.cli.db", "-c", str(config)]

        def botcore_db(*argv: str, status: int = 0) -> str:
            env = {k: v for k, v in os.environ.items() if k != ENTRY_POINTS_VARIABLE}
            result = subprocess.run(
                [*db, *argv], cwd=bot, env=env, capture_output=True, text=True, timeout=300
            )
            output = result.stdout + result.stderr
            self.assertEqual(result.returncode, status, f"{argv}:\n{output}")
            return output

        botcore_db("upgrade")
        output = botcore_db("check", status=1)
        self.assertIn(f"botcore-db -c {config} revision --plugin tally -m MESSAGE", output)
        botcore_db("revision", "--plugin", "tally", "-m", "tally counts")
        (revision,) = (package / "botcore_tally" / "migrations").glob("tally_0001_*.py")
        self.assertIn("botcore.db.keyed.create_unique(", revision.read_text())
        self.assertIn("upgraded", botcore_db("upgrade"))
        self.assertIn("matches the models", botcore_db("check"))
        self.assertIn("tally_0001", botcore_db("current"))

        # trial in the plugin's folder runs the plugin's tests and nothing of botcore's.
        output = self.run_in(python, "-m", "twisted.trial", "tests_tally", cwd=package)
        self.assertIn("PASSED (successes=4)", output)  # 3 tests, one test_examples
        self.assertNotIn("tests.", output)

        # botcore's own migration and db-cli tests with the plugin (and its branch)
        # installed beside them.
        output = self.run_in(
            python,
            "-m",
            "twisted.trial",
            "tests.migrations.test_migrations.SQLiteMigrationTests",
            "tests.botcore.cli.test_db_cli.SchemaCommandTests",
            cwd=CHECKOUT,
        )
        self.assertIn("PASSED", output)
        self.assertNotIn("tally", output)
