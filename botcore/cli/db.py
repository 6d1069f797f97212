"""botcore-db: the database half of running a bot — upgrade, downgrade, inspect and check
its schema, write new revisions, and move its data between backends with dump and load.

It reads the bot's own config file (``-c bot.ini``) and works on one ``[database:NAME]``
(``--database``, default ``main``). Errors are one line on stderr and a non-zero exit."""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import sys
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import IO, TYPE_CHECKING, Any

from alembic.util import CommandError
from sqlalchemy.exc import ArgumentError, DBAPIError, SQLAlchemyError
from sqlalchemy.orm import Session

from botcore.bus import log as event_log
from botcore.config import ConfigErrors
from botcore.db import dump, migrate
from botcore.db.dump import DumpError
from botcore.db.engine import describe_url
from botcore.db.faults import first_line
from botcore.db.service import Database
from botcore.loading.reloader import Reloader

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

PROG = "botcore-db"


class CommandFailed(Exception):
    """A command could not do its job; the message is the one line to print."""


class Context:
    """What a subcommand works with: the database section, its engine, the output."""

    def __init__(self, args: argparse.Namespace, stdout: IO[str]) -> None:
        from botcore.settings import read_config

        self.args = args
        self.stdout = stdout
        config = read_config(args.config)
        name = args.database
        if name != "main" and name not in config.names("database"):
            known = ", ".join(config.names("database")) or "main"
            raise CommandFailed(f"{args.config} has no [database:{name}] section (known: {known})")
        self.database = Database.from_config(name, config)
        self.label = f"database {name} ({describe_url(self.database.resolved_url())})"
        self._engine: Engine | None = None

    @property
    def engine(self) -> Engine:
        if self._engine is None:
            self._engine = self.database.create_engine()
        return self._engine

    def say(self, text: str) -> None:
        print(text, file=self.stdout)

    def close(self) -> None:
        if self._engine is not None:
            self._engine.dispose()


# -- subcommands ----------------------------------------------------------------------------


def cmd_upgrade(context: Context) -> int:
    before = migrate.current(context.engine)
    migrate.upgrade(context.engine, context.args.revision)
    after = migrate.current(context.engine)
    if before == after:
        context.say(f"{context.label}: already at {_revs(after)}")
    else:
        context.say(f"{context.label}: upgraded from {_revs(before)} to {_revs(after)}")
    return 0


def cmd_downgrade(context: Context) -> int:
    before = migrate.current(context.engine)
    migrate.downgrade(context.engine, context.args.revision)
    after = migrate.current(context.engine)
    context.say(f"{context.label}: downgraded from {_revs(before)} to {_revs(after)}")
    return 0


def cmd_current(context: Context) -> int:
    state = migrate.schema_state(context.engine)
    for revision in sorted(state.revisions):
        context.say(f"{revision}{' (head)' if revision in state.heads else ''}")
    context.say(f"{context.label} {state.describe()}")
    return 0


def cmd_history(context: Context) -> int:
    migrate.history(stdout=context.stdout)
    return 0


def cmd_check(context: Context) -> int:
    state = migrate.schema_state(context.engine)
    if not state.current:
        context.say(f"{context.label} {state.describe()}; run: {context.database.command} upgrade")
        return 1
    metadata = Reloader().import_models()
    differences = migrate.compare(context.engine, metadata)
    if differences:
        context.say(f"{context.label} is at {_revs(state.revisions)} but differs from the models:")
        for difference in differences:
            context.say(f"  {_describe_difference(difference)}")
        owners = table_owners(metadata)
        plugins = sorted({_owner(d, owners) or "" for d in differences})
        for plugin in plugins:
            option = f" --plugin {plugin}" if plugin else ""
            for_what = f"plugin {plugin}'s tables" if plugin else "the core's tables"
            context.say(
                f"write a revision for {for_what if len(plugins) > 1 or plugin else 'them'}: "
                f"{context.database.command} revision{option} -m MESSAGE"
            )
        for module, tables in sorted(_foreign_tables(metadata, owners, differences).items()):
            context.say(
                f"  (tables {', '.join(sorted(tables))} are {module}'s: if it is a plugin "
                "package of its own, give it a botcore.migrations entry point named like "
                "the plugin and use revision --plugin NAME instead)"
            )
        return 1
    context.say(f"{context.label} is at {_revs(state.heads)} (current) and matches the models")
    return 0


def table_owners(metadata: Any) -> dict[str, str]:
    """table name -> the third-party plugin (one with a ``botcore.migrations`` entry point
    of its name) whose modules declare it; the core's and bundled plugins' are absent."""
    from botcore.db.models import Base

    reloader = Reloader()
    prefixes: dict[str, str] = {}
    for entry_point in migrate.entry_points(migrate.ENTRY_POINT_GROUP):
        packages = {entry_point.value.partition(":")[0].strip().rpartition(".")[0]}
        with contextlib.suppress(Exception):  # a migrations package without a plugin
            packages.add(reloader.plugin_location(entry_point.name)[0])
        for package in packages - {""}:
            prefixes[package] = entry_point.name
    owners: dict[str, str] = {}
    for mapper in Base.registry.mappers:
        module = mapper.class_.__module__
        for prefix, plugin in prefixes.items():
            if module == prefix or module.startswith(prefix + "."):
                for table in mapper.tables:
                    if table.name in metadata.tables:
                        owners[table.name] = plugin
    return owners


def _foreign_tables(
    metadata: Any, owners: dict[str, str], differences: list[Any]
) -> dict[str, set[str]]:
    """module -> the tables of the differences that a module outside botcore and the
    bundled plugins declares, with no ``botcore.migrations`` entry point to own them."""
    from botcore.db.models import Base

    modules = {
        table.name: mapper.class_.__module__
        for mapper in Base.registry.mappers
        for table in mapper.tables
        if table.name in metadata.tables
    }
    named = {name for d in differences for name in _table_names(d)}
    found: dict[str, set[str]] = {}
    for table in named - set(owners):
        module = modules.get(table)
        if module and module.partition(".")[0] not in ("botcore", "tests"):
            found.setdefault(module, set()).add(table)
    return found


def _table_names(difference: Any) -> list[str]:
    if isinstance(difference, list):
        return [n for d in difference for n in _table_names(d)]
    names = []
    for item in difference[1:]:
        table = item if hasattr(item, "columns") and hasattr(item, "schema") else None
        table = table if table is not None else getattr(item, "table", None)
        name = item if isinstance(item, str) else getattr(table, "name", None)
        if isinstance(name, str):
            names.append(name)
    return names


def _owner(difference: Any, owners: dict[str, str]) -> str | None:
    """The plugin whose table a difference is about (None: the core's). alembic's
    differences hold a table, an index or constraint (with its table), or for columns
    (kind, schema, table name, ...); column changes come as a list of those."""
    return next((owners[n] for n in _table_names(difference) if n in owners), None)


def cmd_revision(context: Context) -> int:
    args = context.args
    metadata = Reloader().import_models()
    owners = table_owners(metadata)
    if args.plugin:
        if args.branch != migrate.CORE_BRANCH or args.version_path:
            raise CommandFailed(
                "--plugin finds the branch and its folder itself: leave out --branch "
                "and --version-path"
            )
        paths = migrate.plugin_revision(
            context.engine,
            args.plugin,
            args.message,
            autogenerate=not args.empty,
            metadata=None if args.empty else metadata,
            tables={table for table, plugin in owners.items() if plugin == args.plugin},
        )
    else:
        # The core's revisions hold none of a third-party plugin's tables (without
        # any, everything is compared: tables no model has are dropped).
        core = set(metadata.tables) - set(owners) if owners else None
        paths = migrate.revision(
            context.engine,
            args.message,
            autogenerate=not args.empty,
            metadata=None if args.empty else metadata,
            branch=args.branch,
            version_path=args.version_path,
            tables=core if args.branch == migrate.CORE_BRANCH else None,
        )
    for path in paths:
        context.say(f"wrote {path}")
    return 0


def cmd_dump(context: Context) -> int:
    counts = dump.dump(context.engine, context.args.file, Reloader().import_models())
    context.say(
        f"dumped {sum(counts.values())} rows of {len(counts)} tables from {context.label} "
        f"to {context.args.file}"
    )
    return 0


def cmd_load(context: Context) -> int:
    counts = dump.load(context.engine, context.args.file, Reloader().import_models())
    context.say(
        f"loaded {sum(counts.values())} rows into {len(counts)} tables of {context.label} "
        f"from {context.args.file}"
    )
    return 0


def cmd_events(context: Context) -> int:
    args = context.args
    now = datetime.now(UTC)
    try:
        since = event_log.parse_when(args.since, now) if args.since else None
        until = event_log.parse_when(args.until, now) if args.until else None
    except ValueError as error:
        raise CommandFailed(str(error)) from None
    filters = event_log.EventFilter(
        types=tuple(args.type or ()),
        source=args.source,
        channel=args.channel,
        since=since,
        until=until,
    )
    with Session(context.engine) as session:
        found = event_log.recent(session, filters, args.limit)
    for record in reversed(found):  # oldest first, as a log reads
        if args.json:
            context.say(json.dumps(record.as_dict(), ensure_ascii=False))
            continue
        where = " ".join(part for part in (record.source, record.channel) if part)
        line = f"{record.time:%Y-%m-%d %H:%M:%S}  {record.type}  {where}"
        if record.sender:
            line += f"  <{record.sender}>"
        if record.text is not None:
            line += f"  {record.text}"
        if record.payload is not None:
            line += f"  {json.dumps(record.payload, ensure_ascii=False)}"
        if record.text is None and record.payload is None:
            line += f"  ({record.summary})"
        context.say(line)
    if not found and not args.json:
        context.say(f"{context.label}: no recorded event matches")
    return 0


def _revs(revisions: Any) -> str:
    return ", ".join(sorted(revisions)) or "nothing (no revision)"


def _describe_difference(difference: Any) -> str:
    if isinstance(difference, list):  # alembic groups column modifications
        return "; ".join(_describe_difference(d) for d in difference)
    kind, *rest = difference
    names = []
    for item in rest:
        name = getattr(item, "name", None)
        names.append(str(name) if name is not None else str(item))
    return f"{kind} {' '.join(n for n in names if n and n != 'None')}"


# -- the command line -----------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "-c",
        "--config",
        default=argparse.SUPPRESS,
        help="the bot's config file (default: bot.ini)",
    )
    common.add_argument(
        "--database",
        default=argparse.SUPPRESS,
        metavar="NAME",
        help="which [database:NAME] section (default: main)",
    )
    parser = argparse.ArgumentParser(
        prog=PROG,
        parents=[common],
        description="Manage a botcore bot's database: migrations, checks, dump and load, "
        "and the event log.",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    def add(name: str, run: Callable[[Context], int], help: str) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, parents=[common], help=help, description=help)
        sub.set_defaults(run=run)
        return sub

    sub = add("upgrade", cmd_upgrade, "apply migrations (to every head, or up to REV)")
    sub.add_argument("revision", nargs="?", default="heads", metavar="REV")
    sub = add("downgrade", cmd_downgrade, "undo migrations down to REV (base: all of them)")
    sub.add_argument("revision", metavar="REV")
    add("current", cmd_current, "show the revisions the database is at")
    add("history", cmd_history, "list every revision, newest first")
    add(
        "check",
        cmd_check,
        "exit 1 unless the database is at head and matches the models",
    )
    sub = add("revision", cmd_revision, "write a new revision from the models (developers)")
    sub.add_argument("-m", "--message", required=True, metavar="MSG")
    sub.add_argument("--empty", action="store_true", help="an empty revision to fill in")
    sub.add_argument(
        "--branch",
        default=migrate.CORE_BRANCH,
        metavar="LABEL",
        help="the branch to extend (a plugin package's label; default: botcore)",
    )
    sub.add_argument("--version-path", metavar="DIR", help="where to write the file")
    sub.add_argument(
        "--plugin",
        metavar="NAME",
        help="a third-party plugin's next revision, written into the package its "
        "botcore.migrations entry point NAME names (the first one starts its branch)",
    )
    sub = add("dump", cmd_dump, "write every row of every table to FILE (JSON, .gz: gzip)")
    sub.add_argument("file", metavar="FILE")
    sub = add("load", cmd_load, "load a dump FILE into an empty (or freshly upgraded) database")
    sub.add_argument("file", metavar="FILE")
    sub = add(
        "events",
        cmd_events,
        "show the newest recorded events ([events] log = yes), oldest first",
    )
    sub.add_argument("--type", action="append", metavar="TYPE", help="only this type (repeatable)")
    sub.add_argument("--source", metavar="NAME", help="only events from this source")
    sub.add_argument("--channel", metavar="NAME", help="only events in this channel")
    sub.add_argument(
        "--since", metavar="WHEN", help="from this time (2026-12-01T10:30, UTC) or ago (2h, 7d)"
    )
    sub.add_argument("--until", metavar="WHEN", help="before this time, or this long ago")
    sub.add_argument(
        "-n",
        "--limit",
        type=int,
        default=50,
        metavar="N",
        help=f"at most N events (default 50, at most {event_log.MAX_LIMIT})",
    )
    sub.add_argument("--json", action="store_true", help="one JSON object per line")
    return parser


def main(
    argv: Sequence[str] | None = None,
    *,
    stdout: IO[str] | None = None,
    stderr: IO[str] | None = None,
) -> int:
    """Run botcore-db; returns the exit status (0 ok, 1 failed, 2 bad config or usage)."""
    stdout = stdout or sys.stdout
    stderr = stderr or sys.stderr
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:
        return int(e.code or 0)
    args.config = getattr(args, "config", "bot.ini")
    args.database = getattr(args, "database", "main")

    # alembic reports each migration it runs through logging.
    handler = logging.StreamHandler(stdout)
    handler.setFormatter(logging.Formatter("  %(message)s"))
    handler.addFilter(lambda record: record.getMessage().startswith("Running "))
    alembic_log = logging.getLogger("alembic")
    alembic_log.addHandler(handler)
    old_level = alembic_log.level
    alembic_log.setLevel(logging.INFO)
    context = None
    try:
        context = Context(args, stdout)
        return args.run(context)
    except ConfigErrors as e:
        print(str(e), file=stderr)
        return 2
    except DBAPIError as e:
        print(f"{PROG}: error: {first_line(e)}", file=stderr)
        return 1
    except (
        CommandFailed,
        DumpError,
        migrate.PluginImportError,
        migrate.PluginMigrationsError,
        CommandError,
        SQLAlchemyError,
        ArgumentError,
        OSError,
    ) as e:
        print(f"{PROG}: error: {first_line(e)}", file=stderr)
        return 1
    finally:
        alembic_log.removeHandler(handler)
        alembic_log.setLevel(old_level)
        if context is not None:
            context.close()


if __name__ == "__main__":
    sys.exit(main())
