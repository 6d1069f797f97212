"""``botcore-factpack``: import a JSON factpack into a bot's database, or remove one. The
factoid plugin (found by name, like every plugin) knows the format and its tables."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import IO

from botcore.config import ConfigErrors
from botcore.db import migrate
from botcore.db.engine import make_session_factory
from botcore.db.service import Database
from botcore.loading.reloader import Reloader
from botcore.settings import read_config


def main(
    argv: Sequence[str] | None = None,
    *,
    stdout: IO[str] | None = None,
    stderr: IO[str] | None = None,
) -> int:
    """botcore-factpack: import a JSON factpack into a bot's database (or remove one).
    Returns the exit status: 0 done, 1 failed, 2 bad usage."""
    stdout = stdout or sys.stdout
    stderr = stderr or sys.stderr
    parser = argparse.ArgumentParser(
        prog="botcore-factpack", description="Import factoids from a JSON factpack."
    )
    parser.add_argument("-c", "--config", default="bot.ini", help="the bot's config file")
    parser.add_argument("--database", default="main", help="the [database:NAME] to use")
    parser.add_argument("--name", help="the factpack's name (default: the file's stem)")
    parser.add_argument("--remove", action="store_true", help="remove the named factpack")
    parser.add_argument("file", nargs="?", help="the factpack (JSON)")
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:
        return int(e.code or 0)
    try:
        factoid = Reloader().plugin_module("factoid")
    except Exception as e:
        print(f"botcore-factpack: the factoid plugin cannot be imported: {e}", file=stderr)
        return 1
    name = args.name
    if name is None and args.file:
        name = Path(args.file).stem
    if not name or (not args.remove and not args.file):
        print("botcore-factpack: give a FILE (or --remove --name NAME)", file=stderr)
        return 2
    if len(name) > factoid.MAX_FACTPACK:
        print(f"botcore-factpack: the name is over {factoid.MAX_FACTPACK} characters", file=stderr)
        return 2
    engine = None
    try:
        facts: list[tuple[list[str], list[str]]] = []
        if not args.remove:
            with open(args.file, encoding="utf-8") as handle:
                facts = factoid.parse_factpack(json.load(handle))
        config = read_config(args.config)
        database = Database.from_config(args.database, config)
        engine = database.create_engine()
        state = migrate.schema_state(engine)
        if not state.current:
            print(
                f"botcore-factpack: database {args.database} {state.describe()}; "
                f"run: {database.command} upgrade",
                file=stderr,
            )
            return 1
        with make_session_factory(engine)() as session:
            if args.remove:
                removed = factoid.remove_factpack(session, name)
                session.commit()
                print(f"removed factpack {name}: {removed} facts", file=stdout)
                return 0
            if factoid.factpack_imported(session, name):
                print(
                    f"botcore-factpack: factpack {name} is already imported "
                    "(remove it first with --remove)",
                    file=stderr,
                )
                return 1
            added = factoid.import_factpack(session, name, facts)
            session.commit()
        skipped = len(facts) - added
        print(
            f"imported factpack {name}: {added} facts"
            + (f" ({skipped} skipped: their names are taken)" if skipped else ""),
            file=stdout,
        )
        return 0
    except ConfigErrors as e:
        print(str(e), file=stderr)
        return 2
    except (OSError, ValueError, factoid.FactpackError) as e:
        print(f"botcore-factpack: {e}", file=stderr)
        return 1
    except Exception as e:  # a database error: one line, not a traceback
        print(f"botcore-factpack: {type(e).__name__}: {str(e).splitlines()[0]}", file=stderr)
        return 1
    finally:
        if engine is not None:
            engine.dispose()
