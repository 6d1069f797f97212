"""botcore-plugin new NAME: the plugin package it writes, and what it refuses."""

from __future__ import annotations

import io
import tomllib
from pathlib import Path

from twisted.trial.unittest import SynchronousTestCase

from botcore.cli.repl import main


class NewPluginTests(SynchronousTestCase):
    """The skeleton's files (its install, tests and load are in tests/test_plugin_package)."""

    def run_new(self, *argv: str) -> tuple[int, str, str]:
        out, err = io.StringIO(), io.StringIO()
        status = main(["new", *argv], stdout=out, stderr=err)
        return status, out.getvalue(), err.getvalue()

    def test_files(self) -> None:
        """The package has a pyproject naming both entry points, the plugin module (a
        command with an example, an option, a periodic task), an empty migrations
        package, a test package of its own name and a README; each Python file compiles."""
        folder = Path(self.mktemp())
        folder.mkdir()
        status, out, err = self.run_new("tally_ho", "-d", str(folder))
        self.assertEqual(status, 0, err)
        target = folder / "botcore-tally_ho"
        self.assertIn(f"wrote {target}", out)
        self.assertIn("python -m twisted.trial tests_tally_ho", out)
        project = tomllib.loads((target / "pyproject.toml").read_text())["project"]
        self.assertEqual(project["name"], "botcore-tally_ho")
        points = project["entry-points"]
        self.assertEqual(points["botcore.plugins"], {"tally_ho": "botcore_tally_ho"})
        self.assertEqual(points["botcore.migrations"], {"tally_ho": "botcore_tally_ho.migrations"})
        plugin = (target / "botcore_tally_ho" / "__init__.py").read_text()
        for needle in (
            "class TallyHo(Processor)",
            "@match(",
            "@example(",
            "@periodic(",
            "Option(",
        ):
            self.assertIn(needle, plugin)
        migrations = target / "botcore_tally_ho" / "migrations"
        self.assertEqual([p.name for p in migrations.iterdir()], ["__init__.py"])
        self.assertTrue((target / "tests_tally_ho" / "__init__.py").exists())
        self.assertIn(
            "PluginTestCase", (target / "tests_tally_ho" / "test_tally_ho.py").read_text()
        )
        self.assertIn("revision --plugin tally_ho", (target / "README.rst").read_text())
        for path in target.rglob("*.py"):
            compile(path.read_text(), str(path), "exec")

    def test_refusals(self) -> None:
        """A name that is no module name, upper case, or a folder already there: exit 2,
        one line, nothing written."""
        folder = Path(self.mktemp())
        folder.mkdir()
        for name in ("no-dash", "class", "Tally", "1st"):
            status, _out, err = self.run_new(name, "-d", str(folder))
            self.assertEqual(status, 2, name)
            self.assertIn("botcore-plugin new: error:", err)
        self.assertEqual(list(folder.iterdir()), [])
        self.assertEqual(self.run_new("tally", "-d", str(folder))[0], 0)
        status, _out, err = self.run_new("tally", "-d", str(folder))
        self.assertEqual(status, 2)
        self.assertIn("already exists", err)
