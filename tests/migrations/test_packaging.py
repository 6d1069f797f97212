"""The migrations ship with the package: built the way a wheel is built (setuptools'
build_py from setup.cfg), the installed copy migrates a database with no checkout and no
alembic.ini around."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

from twisted.trial.unittest import SynchronousTestCase

import botcore
from tests.migrations.backends import core_head

CHECKOUT = Path(botcore.__file__).resolve().parent.parent

CHECK = textwrap.dedent(
    """
    import io, pathlib, sys
    import botcore, botcore.migrations, botcore.plugins.karma, botcore.sources.irc
    from botcore.cli import db as db_cli
    from botcore.db import migrate

    here = pathlib.Path(sys.argv[1])
    for module in (botcore, botcore.migrations, botcore.plugins.karma, botcore.sources.irc):
        assert pathlib.Path(module.__file__).is_relative_to(here), module.__file__
    out, err = io.StringIO(), io.StringIO()
    status = db_cli.main(["-c", sys.argv[2], "upgrade"], stdout=out, stderr=err)
    assert status == 0, err.getvalue()
    status = db_cli.main(["-c", sys.argv[2], "check"], stdout=out, stderr=err)
    assert status == 0, out.getvalue() + err.getvalue()
    generic = {"plugins", "sources", "migrations"} & set(sys.modules)
    assert not generic, f"imported under generic names: {generic}"
    print(out.getvalue())
    """
)


class InstalledPackageTests(SynchronousTestCase):
    """Migrations from an installed copy of botcore."""

    def build(self) -> Path:
        """Build the pure-Python tree a wheel would hold, from a copy of the sources."""
        work = Path(self.mktemp()).absolute()
        source = work / "src"
        source.mkdir(parents=True)
        ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "dropin.cache")
        # The links botcore/plugins, botcore/sources and botcore/migrations are copied as
        # links, with the folders they point to, as a clone of the repository has them.
        for name in ("botcore", "plugins", "sources", "migrations", "twisted"):
            shutil.copytree(CHECKOUT / name, source / name, ignore=ignore, symlinks=True)
        for name in ("setup.cfg", "pyproject.toml", "README.rst"):
            if (CHECKOUT / name).exists():
                shutil.copy(CHECKOUT / name, source / name)
        built = work / "installed"
        result = subprocess.run(
            [
                sys.executable,
                "-c",
                "import setuptools; setuptools.setup()",
                "--quiet",
                "build_py",
                "--build-lib",
                str(built),
            ],
            cwd=source,
            capture_output=True,
            text=True,
            timeout=300,
        )
        self.assertEqual(result.returncode, 0, result.stderr)
        return built

    def test_installed_copy_migrates(self) -> None:
        """The built package holds env.py, the template and every revision, and
        botcore-db from it brings a new database to head and finds it current."""
        built = self.build()
        migrations = built / "botcore" / "migrations"
        for name in ("env.py", "script.py.mako", "__init__.py"):
            self.assertTrue((migrations / name).exists(), name)
        shipped = sorted(p.name for p in (migrations / "versions").glob("[0-9]*.py"))
        expected = sorted(p.name for p in (CHECKOUT / "migrations" / "versions").glob("[0-9]*.py"))
        self.assertEqual(shipped, expected)
        self.assertTrue(shipped)

        folder = Path(self.mktemp()).absolute()
        folder.mkdir()
        config = folder / "bot.ini"
        config.write_text("[bot]\nname = testbot\n\n[database:main]\nurl = sqlite:///bot.sqlite\n")
        environ = {**os.environ, "PYTHONPATH": str(built)}
        result = subprocess.run(
            [sys.executable, "-c", CHECK, str(built), str(config)],
            cwd=folder,
            env=environ,
            capture_output=True,
            text=True,
            timeout=300,
        )
        self.assertEqual(result.returncode, 0, result.stdout + result.stderr)
        self.assertIn(f"upgraded from nothing (no revision) to {core_head()}", result.stdout)
        self.assertIn("matches the models", result.stdout)

    def test_no_generic_top_level_names(self) -> None:
        """What a wheel installs sits under botcore (and the twistd dropin under
        twisted/plugins): no plugins, sources, migrations or tests at the top, where
        another distribution's package of the same name would collide with them."""
        built = self.build()
        self.assertEqual(sorted(p.name for p in built.iterdir()), ["botcore", "twisted"])
        self.assertEqual(sorted(p.name for p in (built / "twisted").iterdir()), ["plugins"])
        self.assertTrue((built / "twisted" / "plugins" / "botcore_dropin.py").is_file())
        for name in ("plugins", "sources", "migrations"):
            folder = built / "botcore" / name
            self.assertFalse(folder.is_symlink(), name)
            self.assertTrue((folder / "__init__.py").is_file(), name)
        self.assertTrue((built / "botcore" / "sources" / "web" / "static").is_dir())
        # Without it every nick check would build the look-alike table from its data.
        self.assertTrue((built / "botcore" / "accounts" / "prototypes.json").is_file())
