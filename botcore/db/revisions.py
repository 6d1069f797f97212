"""The schema's revisions and a database's place among them, read without alembic: at
start-up a current schema costs one query and no alembic import (about a third of the
bot's import time); anything else goes to `botcore.db.migrate`, which uses alembic."""

from __future__ import annotations

import ast
import os
import re
from collections.abc import Iterable
from importlib import metadata as importlib_metadata
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import inspect, text

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection, Engine

#: Entry-point group naming packages that hold a third-party plugin's revisions.
ENTRY_POINT_GROUP = "botcore.migrations"
#: When set, the only entry points botcore uses (plugins, sources, migrations) are those
#: whose names it lists (separated by commas or spaces; empty: none). botcore's own test
#: suite sets it empty, so it tests the core and bundled plugins whatever else is installed.
ENTRY_POINTS_VARIABLE = "BOTCORE_ENTRY_POINTS"
#: The table alembic keeps the applied revisions in.
VERSION_TABLE = "alembic_version"


class PluginImportError(Exception):
    """A plugin module or plugin package that migrations need cannot be imported."""


class UnreadableRevision(Exception):
    """A revision file whose ``revision`` and ``down_revision`` are not plain literals
    (alembic itself can still read it: ask `botcore.db.migrate`)."""


def entry_points(group: str) -> list[Any]:
    """The installed entry points of ``group`` that botcore uses (see
    `ENTRY_POINTS_VARIABLE`)."""
    points = list(importlib_metadata.entry_points(group=group))
    allowed = os.environ.get(ENTRY_POINTS_VARIABLE)
    if allowed is None:
        return points
    names = set(re.split(r"[,\s]+", allowed)) - {""}
    return [point for point in points if point.name in names]


def load_entry_point(entry_point: Any) -> Any:
    """Import what a ``botcore.migrations`` entry point names; `PluginImportError` if it
    cannot be imported."""
    try:
        return entry_point.load()
    except Exception as e:
        raise PluginImportError(
            f"{ENTRY_POINT_GROUP} entry point {entry_point.name} = {entry_point.value} "
            f"cannot be imported: {type(e).__name__}: {e}"
        ) from e


def migrations_directory() -> Path:
    """The folder of the ``botcore.migrations`` package (env.py, script.py.mako, versions/)."""
    # Found by name, as plugins are: the db layer does not import the revisions it runs.
    return Path(str(resources.files("botcore.migrations")))


def plugin_version_locations() -> list[Path]:
    """The revision folders third-party packages declare in the ``botcore.migrations``
    entry-point group (each entry point names a package of revision files)."""
    found = []
    for entry_point in entry_points(ENTRY_POINT_GROUP):
        module = load_entry_point(entry_point)
        paths = getattr(module, "__path__", None)
        found.append(Path(next(iter(paths))) if paths else Path(module.__file__).parent)
    return found


def version_locations(extra_locations: Iterable[Path] | None = None) -> list[Path]:
    """Every folder of revision files: the core's, then the plugin packages' (or
    ``extra_locations`` in their place)."""
    locations = [migrations_directory() / "versions"]
    locations += list(plugin_version_locations() if extra_locations is None else extra_locations)
    return locations


def _literal(tree: ast.Module, name: str, path: Path) -> Any:
    for node in tree.body:
        targets: list[ast.expr] = []
        if isinstance(node, ast.Assign):
            targets, value = node.targets, node.value
        elif isinstance(node, ast.AnnAssign) and node.value is not None:
            targets, value = [node.target], node.value
        if any(isinstance(t, ast.Name) and t.id == name for t in targets):
            try:
                return ast.literal_eval(value)
            except ValueError:
                raise UnreadableRevision(f"{path}: {name} is not a literal") from None
    raise UnreadableRevision(f"{path}: no {name}")


def revision_graph(locations: Iterable[Path]) -> dict[str, tuple[str, ...]]:
    """Each revision in the files of ``locations`` -> the revisions it comes after;
    `UnreadableRevision` for a file that does not say them as literals."""
    graph: dict[str, tuple[str, ...]] = {}
    for location in locations:
        for path in sorted(Path(location).glob("*.py")):
            if path.name.startswith("_"):
                continue
            tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
            revision = _literal(tree, "revision", path)
            down = _literal(tree, "down_revision", path)
            if not isinstance(revision, str):
                raise UnreadableRevision(f"{path}: revision is not a string")
            if down is None:
                downs: tuple[str, ...] = ()
            elif isinstance(down, str):
                downs = (down,)
            elif isinstance(down, (tuple, list)) and all(isinstance(d, str) for d in down):
                downs = tuple(down)
            else:
                raise UnreadableRevision(f"{path}: down_revision is not a revision")
            graph[revision] = downs
    return graph


def heads(graph: dict[str, tuple[str, ...]]) -> frozenset[str]:
    """The revisions nothing comes after."""
    below = {down for downs in graph.values() for down in downs}
    return frozenset(revision for revision in graph if revision not in below)


def applied(connection: Connection) -> frozenset[str] | None:
    """The revisions in the database's version table (None: it has none)."""
    if not inspect(connection).has_table(VERSION_TABLE):
        return None
    rows = connection.execute(text(f"SELECT version_num FROM {VERSION_TABLE}"))
    return frozenset(row[0] for row in rows)


def is_current(engine: Engine, extra_locations: Iterable[Path] | None = None) -> bool:
    """Whether the database is exactly at the heads of the revision files: True means
    current; False means "ask `botcore.db.migrate`" (empty, old, unknown, or current in a
    way only alembic can tell). `UnreadableRevision` and the database's errors are
    raised. Blocks."""
    wanted = heads(revision_graph(version_locations(extra_locations)))
    with engine.connect() as connection:
        found = applied(connection)
    return bool(found) and found == wanted
