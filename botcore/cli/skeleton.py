"""``botcore-plugin new NAME``: write a ready, pip-installable plugin package (like
Limnoria's ``supybot-plugin-create`` and ``errbot --new-plugin``) to start a plugin from.

The package is ``botcore-NAME/``: a pyproject declaring the ``botcore.plugins`` and
``botcore.migrations`` entry points, the plugin module ``botcore_NAME`` (a command, an
option and a periodic task), an empty migrations package, a passing test in
``tests_NAME`` (named so that ``trial tests_NAME`` in that folder runs only the plugin's
tests) and a README saying how to install, try, test, migrate and reload it."""

from __future__ import annotations

import argparse
import keyword
import string
from pathlib import Path
from typing import IO

PROG = "botcore-plugin new"

PYPROJECT = """\
[build-system]
requires = ["setuptools>=64"]
build-backend = "setuptools.build_meta"

[project]
name = "botcore-$name"
version = "0.1.0"
description = "A botcore plugin: $name."
readme = "README.rst"
requires-python = ">=3.11"
# botcore itself is what the bot's environment already has (pip install -e its checkout).
dependencies = []

# The plugin: NAME = the module (or package) holding its processors.
[project.entry-points."botcore.plugins"]
$name = "botcore_$name"

# Its migrations: NAME = a package of alembic revision files, the plugin's own branch.
[project.entry-points."botcore.migrations"]
$name = "botcore_$name.migrations"

[tool.setuptools.packages.find]
include = ["botcore_$name", "botcore_$name.*"]
"""

PLUGIN = '''\
"""$name: repeats what it is told, and counts how often (this docstring is the plugin's
help; say what your plugin does here)."""

from __future__ import annotations

from twisted.logger import Logger

from botcore.event import Event
from botcore.options import IntOption, Option
from botcore.processor import Processor, example, match, periodic

log = Logger()


class $cls(Processor):
    usage = "$name <anything>"
    features = ("$name",)

    prefix = Option("What the bot says before what it repeats.", "you said")
    report_interval = IntOption("Seconds between two reports of the count to the log.", 3600)

    def setup(self) -> None:
        self.heard = 0

    @match("$name {text:any}")
    @example("$name hello", r"^you said: hello$$")
    def repeat(self, event: Event, text: str) -> None:
        """Worker thread: answer with the prefix and the text."""
        self.heard += 1
        event.addresponse("%s: %s", (self.prefix, text))

    @periodic(config_key="report_interval")
    def report(self, event: Event) -> None:
        """Every ``report_interval`` seconds (worker thread): log the count, start again."""
        log.info("$name: repeated {count} line(s)", count=self.heard)
        self.heard = 0
'''

MIGRATIONS = '''\
"""The revisions of $name's tables (its own branch, "$name").

Declare tables as subclasses of ``botcore.db.models.Base`` in the plugin, then write each
revision with ``botcore-db -c bot.ini revision --plugin $name -m "what changed"``."""
'''

TEST = '''\
"""$name's tests: ``python -m twisted.trial tests_$name`` in this folder."""

from __future__ import annotations

from botcore.testing import PluginTestCase


class ${cls}Tests(PluginTestCase):
    load = ["$name"]

    def test_repeat(self) -> None:
        """The bot repeats what it is told, after its prefix."""
        self.assertResponseMatches("$name hello there", r"^you said: hello there$$")

    def test_report(self) -> None:
        """The periodic report starts the count again."""
        self.say("$name one")
        self.say("$name two")
        processor = self.processor("$cls")
        self.assertEqual(processor.heard, 2)
        self.advance(3600)
        self.assertEqual(processor.heard, 0)


class ${cls}OptionTests(PluginTestCase):
    load = ["$name"]
    plugin_config = {"plugin:$name": {"prefix": "heard"}}
    # The examples show the default prefix: not run with this one.
    run_examples = False

    def test_prefix_option(self) -> None:
        """[plugin:$name] prefix changes what the bot says first."""
        self.assertResponseMatches("$name hi", r"^heard: hi$$")
'''

README = """\
botcore-$name
=======$underline

A botcore plugin: ``$name <anything>`` makes the bot repeat it.

Install it into the bot's environment (editable, so edits are picked up by ``reload``)::

    pip install -e .

A running bot loads it without a restart: ``load $name`` (an admin command); with
``[bot] autoload = yes`` it is loaded at the next start, or name it in ``[bot] load``.
Options go in ``[plugin:$name]``, for example ``prefix = heard``.

Try it without a network::

    botcore-plugin $name

Run its tests (only this plugin's: the package is ``tests_$name``, not ``tests``)::

    python -m twisted.trial tests_$name

Tables: declare them as subclasses of ``botcore.db.models.Base`` in ``botcore_$name``,
then write a revision into ``botcore_$name/migrations`` and apply it::

    botcore-db -c bot.ini revision --plugin $name -m "what changed"
    botcore-db -c bot.ini upgrade

The first revision starts the branch ``$name``; later ones extend it.
``botcore-db -c bot.ini check`` says when the tables and the models differ.
"""


class SkeletonError(Exception):
    """The plugin package cannot be written; the message says why."""


def files(name: str) -> dict[str, str]:
    """Relative path -> text of the package for plugin ``name``."""
    values = {
        "name": name,
        "cls": "".join(part.capitalize() for part in name.split("_")) or name,
        "underline": "=" * len(name),
    }

    def fill(template: str) -> str:
        return string.Template(template).substitute(values)

    return {
        "pyproject.toml": fill(PYPROJECT),
        "README.rst": fill(README),
        f"botcore_{name}/__init__.py": fill(PLUGIN),
        f"botcore_{name}/migrations/__init__.py": fill(MIGRATIONS),
        f"tests_{name}/__init__.py": "",
        f"tests_{name}/test_{name}.py": fill(TEST),
    }


def check_name(name: str) -> None:
    """`SkeletonError` unless ``name`` can be a plugin's (and a module's) name."""
    if not name.isidentifier() or keyword.iskeyword(name) or not name.isascii():
        raise SkeletonError(f"{name!r} is not a valid plugin name (letters, digits and _)")
    if name != name.lower():
        raise SkeletonError(f"{name!r}: plugin names are lower case")


def write(name: str, directory: Path) -> Path:
    """Write plugin ``name``'s package into ``directory/botcore-NAME`` (which must not
    exist) and return that folder."""
    check_name(name)
    target = directory / f"botcore-{name}"
    if target.exists():
        raise SkeletonError(f"{target} already exists")
    for relative, text in files(name).items():
        path = target / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return target


def main(argv: list[str], stdout: IO[str], stderr: IO[str]) -> int:
    """Run ``botcore-plugin new``; 0 when written, 2 for a bad name or an existing folder."""
    parser = argparse.ArgumentParser(
        prog=PROG, description="Write a ready, pip-installable botcore plugin package."
    )
    parser.add_argument("name", metavar="NAME", help="the plugin's name (a module name)")
    parser.add_argument(
        "-d", "--directory", default=".", help="where to put botcore-NAME/ (default: here)"
    )
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:
        return int(e.code or 0)
    try:
        target = write(args.name, Path(args.directory))
    except (SkeletonError, OSError) as e:
        stderr.write(f"{PROG}: error: {e}\n")
        return 2
    stdout.write(
        f"wrote {target}: now\n"
        f"  cd {target}\n"
        "  pip install -e .\n"
        f"  python -m twisted.trial tests_{args.name}\n"
        f"  botcore-plugin {args.name}\n"
    )
    return 0
