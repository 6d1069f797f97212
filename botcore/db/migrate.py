"""alembic, driven from code: the migration environment in the ``migrations`` package,
plus the revisions third-party plugin packages ship, applied through botcore's engines.

No alembic.ini is read; the configuration is built here, so migrations work the same from
a checkout and from an installed package. Every function blocks (call it at startup, from
botcore-db, or from a worker thread)."""

from __future__ import annotations

import io
import os
import re
import sys
from collections.abc import Collection, Iterable, Iterator
from contextlib import contextmanager, redirect_stdout
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, TextIO, cast

from alembic import command
from alembic.config import Config
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import MetaData, inspect

from botcore.db import types

# Re-exported: they moved to revisions, which start-up imports without alembic.
from botcore.db.revisions import ENTRY_POINT_GROUP as ENTRY_POINT_GROUP
from botcore.db.revisions import ENTRY_POINTS_VARIABLE as ENTRY_POINTS_VARIABLE
from botcore.db.revisions import PluginImportError as PluginImportError
from botcore.db.revisions import entry_points as entry_points
from botcore.db.revisions import load_entry_point as load_entry_point
from botcore.db.revisions import migrations_directory as migrations_directory
from botcore.db.revisions import plugin_version_locations as plugin_version_locations
from botcore.db.revisions import version_locations

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection, Engine

#: The branch label of the core's revisions (``botcore@head``).
CORE_BRANCH = "botcore"

_CORE_REVISION = re.compile(r"^\d{4}$")


def alembic_config(
    connection: Connection | None = None,
    *,
    stdout: IO[str] | None = None,
    target_metadata: MetaData | None = None,
    extra_locations: Iterable[Path] | None = None,
) -> Config:
    """An alembic `Config` for the core environment and every plugin package's revisions.

    ``connection`` is the connection env.py migrates (a botcore engine's, so it has the
    backend settings); ``target_metadata`` is what autogenerate and `compare` compare with.
    ``extra_locations`` replaces the entry-point lookup (tests).
    """
    directory = migrations_directory()
    locations = version_locations(extra_locations)
    config = Config(stdout=cast("TextIO", stdout or sys.stdout))
    config.set_main_option("script_location", str(directory))
    config.set_main_option("path_separator", "os")
    config.set_main_option("version_locations", os.pathsep.join(str(p) for p in locations))
    # ConfigParser interpolation: %% is one %.
    config.set_main_option("file_template", "%%(rev)s_%%(slug)s")
    config.set_main_option("truncate_slug_length", "40")
    config.attributes["connection"] = connection
    config.attributes["target_metadata"] = target_metadata
    return config


def script_directory(config: Config | None = None) -> ScriptDirectory:
    """The revisions alembic knows (core and plugin packages)."""
    return ScriptDirectory.from_config(config or alembic_config())


@dataclass(frozen=True)
class SchemaState:
    """Where a database's schema stands against the revisions this botcore ships.

    ``revisions`` are the rows of alembic's version table: only the tips, so a core
    revision a plugin revision depends on is applied without being listed. ``applied`` is
    those revisions with everything they rest on.
    """

    revisions: frozenset[str]
    heads: frozenset[str]
    empty: bool
    unknown: frozenset[str]
    applied: frozenset[str] = frozenset()

    @property
    def current(self) -> bool:
        """Every head (core and plugin branches) is applied and nothing unknown is."""
        return not self.unknown and self.heads <= self.applied and self.revisions <= self.heads

    def describe(self) -> str:
        """What is wrong, as the end of a sentence starting with the database's name."""
        if self.current:
            return f"is at revision {_revs(self.revisions)} (current)"
        if self.empty:
            return "is empty (no tables)"
        if not self.revisions:
            return "has tables but no botcore schema revision"
        if self.unknown:
            return (
                f"is at revision {_revs(self.unknown)}, which this botcore does not know "
                "(a newer botcore, or a plugin package that is no longer installed?)"
            )
        return f"is at revision {_revs(self.revisions)}; the current one is {_revs(self.heads)}"


def _revs(revisions: Iterable[str]) -> str:
    return ", ".join(sorted(revisions)) or "none"


def schema_state(engine: Engine, **kw: Any) -> SchemaState:
    """Compare the database's revisions with the heads of the revision scripts; ``kw``
    goes to `alembic_config`."""
    script = script_directory(alembic_config(**kw))
    with engine.connect() as connection:
        revisions = current_of(connection)
        empty = not revisions and not inspect(connection).get_table_names()
    known = {rev.revision for rev in script.walk_revisions()}
    unknown = frozenset(r for r in revisions if r not in known)
    applied: frozenset[str] = frozenset()
    if revisions and not unknown:
        applied = frozenset(r.revision for r in script.iterate_revisions(tuple(revisions), "base"))
    return SchemaState(
        revisions=revisions,
        heads=frozenset(script.get_heads()),
        empty=empty,
        unknown=unknown,
        applied=applied,
    )


class ForeignKeyViolation(Exception):
    """A migration on SQLite left rows whose foreign keys point nowhere (it is undone)."""


@contextmanager
def _connected(engine: Engine, **kw: Any) -> Iterator[Config]:
    with engine.connect() as connection:
        sqlite = connection.dialect.name == "sqlite"
        if sqlite:
            # Rebuilding a table (alembic's batch mode) drops the old one, which SQLite
            # would cascade into its children with foreign keys on. So they are off for
            # the migration (set outside a transaction: SQLite ignores it inside one), as
            # SQLite's documentation advises for schema changes, checked at its end, and
            # on again after. (A data migration deleting parent rows on SQLite must
            # delete their children itself.)
            connection.exec_driver_sql("PRAGMA foreign_keys=OFF")
            connection.commit()
        try:
            with connection.begin():
                if sqlite:
                    # pysqlite would begin only before a data change, leaving the DDL
                    # before it committed whatever happens: one transaction for all.
                    connection.exec_driver_sql("BEGIN")
                    dangling = _dangling_foreign_keys(connection)
                yield alembic_config(connection, **kw)
                if sqlite:
                    _check_foreign_keys(connection, dangling)
        finally:
            if sqlite:
                connection.exec_driver_sql("PRAGMA foreign_keys=ON")
                connection.commit()


def _dangling_foreign_keys(connection: Connection) -> set[tuple[Any, ...]]:
    return {tuple(row) for row in connection.exec_driver_sql("PRAGMA foreign_key_check")}


def _check_foreign_keys(connection: Connection, before: set[tuple[Any, ...]]) -> None:
    """Refuse a migration that left rows with dangling foreign keys (ones that dangled
    before it are not its doing)."""
    broken = _dangling_foreign_keys(connection) - before
    if broken:
        tables = sorted({row[0] for row in broken})
        raise ForeignKeyViolation(
            f"the migration left {len(broken)} row(s) with dangling foreign keys "
            f"in {', '.join(tables)}; nothing was changed"
        )


def upgrade(engine: Engine, revision: str = "heads", **kw: Any) -> None:
    """Apply revisions up to ``revision`` (default: every head)."""
    with _connected(engine, **kw) as config:
        command.upgrade(config, revision)


def downgrade(engine: Engine, revision: str, **kw: Any) -> None:
    """Undo revisions down to ``revision`` (``base`` undoes everything)."""
    with _connected(engine, **kw) as config:
        command.downgrade(config, revision)


def stamp(engine: Engine, revision: str = "heads", **kw: Any) -> None:
    """Record ``revision`` as applied without running anything."""
    with _connected(engine, **kw) as config:
        command.stamp(config, revision)


def current(engine: Engine) -> frozenset[str]:
    """The revisions the database is at."""
    with engine.connect() as connection:
        return current_of(connection)


def current_of(connection: Connection) -> frozenset[str]:
    """The revisions the database of ``connection`` is at."""
    return frozenset(MigrationContext.configure(connection).get_current_heads())


def history(stdout: IO[str] | None = None, **kw: Any) -> None:
    """Print every revision, newest first."""
    command.history(alembic_config(stdout=stdout, **kw), indicate_current=False)


def compare(engine: Engine, metadata: MetaData, **kw: Any) -> list[Any]:
    """The differences between the models of ``metadata`` and the database, as alembic's
    autogenerate sees them (empty when they match)."""
    from alembic.autogenerate import compare_metadata

    with engine.connect() as connection, types.unreflected_key_indexes():
        context = MigrationContext.configure(
            connection, opts={**comparison_options(connection.dialect.name), **kw}
        )
        differences = compare_metadata(context, metadata)
        if connection.dialect.name == "sqlite":
            differences += types.compare_key_indexes(connection, metadata)
        return differences


def comparison_options(dialect: str, tables: Collection[str] | None = None) -> dict[str, Any]:
    """How models are compared with databases on ``dialect`` (env.py and `compare` use
    the same). With ``tables``, only those tables are compared (a plugin's revision
    holds its own tables only, the core's none of a plugin package's)."""
    from botcore.db import autogen

    def include_object(
        obj: Any, name: str | None, type_: str, reflected: bool, compare_to: Any
    ) -> bool:
        if tables is not None:
            table = obj if type_ == "table" else getattr(obj, "table", None)
            if getattr(table, "name", None) not in tables:
                return False
        # A model's index or constraint made for other backends only (see
        # botcore.db.types.index_by_key) is not missing here; SQLite's key indexes cannot be
        # reflected, so alembic cannot compare them: types.compare_key_indexes does.
        if reflected:
            return True
        return types.made_for(obj, dialect) and not (
            dialect == "sqlite" and types.is_key_index(obj)
        )

    return {
        "compare_type": compare_type,
        "compare_server_default": False,
        "include_name": include_name,
        "include_object": include_object,
        "render_as_batch": True,
        "render_item": render_item,
        "process_revision_directives": autogen.rewrite,
    }


def include_name(name: str | None, type_: str, parent_names: dict[str, Any]) -> bool:
    """alembic's bookkeeping table is not a model."""
    return not (type_ == "table" and name == "alembic_version")


def compare_type(
    context: Any,
    inspected_column: Any,
    metadata_column: Any,
    inspected_type: Any,
    metadata_type: Any,
) -> bool | None:
    """Type comparison that knows the backends' spellings of the same type: MariaDB
    reflects JSON as LONGTEXT. None defers to alembic."""
    from sqlalchemy import JSON, Text

    dialect = context.dialect
    if (
        dialect.name in ("mysql", "mariadb")
        and isinstance(metadata_type, JSON)
        and isinstance(inspected_type, Text)
    ):
        return False
    return None


def render_item(type_: str, obj: Any, autogen_context: Any) -> str | bool:
    """Render botcore's column types as ``botcore.db.types.X(...)`` in new revisions."""
    from botcore.db import types

    if type_ == "type" and isinstance(obj, (types.CIText, types.UTCDateTime)):
        autogen_context.imports.add("import botcore.db.types")
        return f"botcore.db.types.{obj!r}"
    return False


def next_core_revision(script: ScriptDirectory | None = None) -> str:
    """The id the next core revision gets: one more than the highest ``NNNN``."""
    script = script or script_directory()
    numbers = [
        int(rev.revision) for rev in script.walk_revisions() if _CORE_REVISION.match(rev.revision)
    ]
    return f"{max(numbers, default=0) + 1:04d}"


def revision(
    engine: Engine,
    message: str,
    *,
    autogenerate: bool = True,
    metadata: MetaData | None = None,
    branch: str = CORE_BRANCH,
    version_path: str | Path | None = None,
    stdout: IO[str] | None = None,
    tables: Collection[str] | None = None,
    **kw: Any,
) -> list[Path]:
    """Write the next revision of ``branch`` (the core's by default: ``NNNN_slug.py`` in
    migrations/versions) and return the files written. With ``autogenerate`` it holds the
    differences between the models of ``metadata`` and ``engine``'s database, which must
    be current; with ``tables``, those of these tables only.
    ``kw`` goes to `alembic_config`."""
    rev_id = None
    if branch == CORE_BRANCH:
        rev_id = next_core_revision(script_directory(alembic_config(**kw)))
        version_path = version_path or migrations_directory() / "versions"
    return _write_revision(
        engine,
        message,
        autogenerate=autogenerate,
        metadata=metadata,
        stdout=stdout,
        tables=tables,
        config_kw=kw,
        rev_id=rev_id,
        head=f"{branch}@head",
        version_path=str(version_path) if version_path else None,
    )


def _write_revision(
    engine: Engine,
    message: str,
    *,
    autogenerate: bool,
    metadata: MetaData | None,
    stdout: IO[str] | None,
    tables: Collection[str] | None,
    config_kw: dict[str, Any],
    **revision_kw: Any,
) -> list[Path]:
    with engine.begin() as connection, types.unreflected_key_indexes():
        config = alembic_config(
            connection,
            stdout=stdout or io.StringIO(),
            target_metadata=metadata if autogenerate else None,
            **config_kw,
        )
        config.attributes["tables"] = None if tables is None else frozenset(tables)
        # alembic says "Generating PATH ... done" on sys.stdout itself: to ``stdout``.
        with redirect_stdout(config.stdout):
            result = command.revision(
                config, message=message, autogenerate=autogenerate, **revision_kw
            )
    paths = [Path(s.path) for s in (result if isinstance(result, list) else [result]) if s]
    _tidy(paths)
    return paths


class PluginMigrationsError(Exception):
    """A plugin's migrations package cannot be found or written to; the message says
    what to do."""


def plugin_migrations(plugin: str) -> Path:
    """The folder of the package that plugin ``plugin``'s ``botcore.migrations`` entry
    point names; `PluginMigrationsError` when there is none."""
    for entry_point in entry_points(ENTRY_POINT_GROUP):
        if entry_point.name == plugin:
            module = load_entry_point(entry_point)
            paths = list(getattr(module, "__path__", None) or [])
            return Path(paths[0]) if paths else Path(module.__file__).parent
    raise PluginMigrationsError(
        f"no installed package declares a {ENTRY_POINT_GROUP} entry point named {plugin}: "
        f"add one to the plugin's pyproject.toml ([project.entry-points."
        f'"{ENTRY_POINT_GROUP}"] {plugin} = "PACKAGE.migrations", a package with an '
        "__init__.py) and install it again with pip install -e"
    )


def _writable_source(location: Path, plugin: str) -> None:
    """Refuse to write revisions into an installed copy or a folder we cannot write."""
    if any(part in ("site-packages", "dist-packages") for part in location.resolve().parts):
        raise PluginMigrationsError(
            f"plugin {plugin}'s migrations package {location} is an installed copy "
            "(site-packages): revisions belong in the plugin's source; install it "
            "editable (pip install -e FOLDER) and run this again"
        )
    if not os.access(location, os.W_OK):
        raise PluginMigrationsError(
            f"plugin {plugin}'s migrations package {location} is not writable"
        )


def branch_revisions(script: ScriptDirectory, branch: str) -> list[str]:
    """The revisions of ``branch`` (a plugin's label), oldest first (empty when it has
    none yet)."""
    try:
        heads = script.get_revisions(f"{branch}@head")
    except Exception:  # alembic: the label is unknown
        return []
    found: list[str] = []
    for head in heads:
        if head is None:
            continue
        for rev in script.iterate_revisions(head.revision, "base"):
            if branch in (rev.branch_labels or ()) and rev.revision not in found:
                found.append(rev.revision)
    return found[::-1]


def plugin_revision(
    engine: Engine,
    plugin: str,
    message: str,
    *,
    autogenerate: bool = True,
    metadata: MetaData | None = None,
    tables: Collection[str] | None = None,
    location: Path | None = None,
    stdout: IO[str] | None = None,
    **kw: Any,
) -> list[Path]:
    """Write the next revision of third-party plugin ``plugin``'s branch into its own
    migrations package (``location``, else the one its ``botcore.migrations`` entry point
    names) and return the files written. The first starts the branch: no down revision,
    the branch label ``plugin``, depending on the core's current head (so its tables may
    refer to the core's); later ones extend it. Ids are ``<plugin>_NNNN``. With
    ``autogenerate``, the revision holds the differences of ``tables`` (the plugin's
    own). `PluginMigrationsError` when the package is missing, installed or read-only."""
    if not plugin.isidentifier() or plugin == CORE_BRANCH:
        raise PluginMigrationsError(f"{plugin!r} cannot name a plugin's branch")
    location = location or plugin_migrations(plugin)
    _writable_source(location, plugin)
    script = script_directory(alembic_config(**kw))
    existing = branch_revisions(script, plugin)
    pattern = re.compile(rf"^{re.escape(plugin)}_(\d+)$")
    numbers = [int(m.group(1)) for m in map(pattern.match, existing) if m]
    rev_id = f"{plugin}_{max(numbers, default=0) + 1:04d}"
    revision_kw: dict[str, Any] = {"rev_id": rev_id, "version_path": str(location)}
    if existing:
        revision_kw["head"] = f"{plugin}@head"
    else:
        core = script.get_revision(f"{CORE_BRANCH}@head")
        assert core is not None
        revision_kw.update(head="base", branch_label=plugin, depends_on=core.revision)
    return _write_revision(
        engine,
        message,
        autogenerate=autogenerate,
        metadata=metadata,
        stdout=stdout,
        tables=tables,
        config_kw=kw,
        **revision_kw,
    )


def _tidy(paths: list[Path]) -> None:
    # Sort the imports and format a new revision the way the project's linter wants it,
    # when ruff is installed (a developer's checkout); otherwise leave it as written.
    import shutil
    import subprocess

    ruff = shutil.which("ruff") or str(Path(sys.executable).with_name("ruff"))
    if not Path(ruff).exists():
        return
    files = [str(p) for p in paths]
    subprocess.run([ruff, "check", "--quiet", "--fix", "--select", "I,F401", *files], check=False)
    subprocess.run([ruff, "format", "--quiet", *files], check=False)
