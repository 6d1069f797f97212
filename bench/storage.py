"""Benchmark of storage through the dispatcher: karma-style upserts, one committed change
per event, on SQLite (WAL) and PostgreSQL; prints committed writes/s and p50/p99 latency.

Each event runs a processor that reads a subject's count with `PluginStore` and writes it
back incremented; the dispatcher commits after it. Conversations keep one event in flight
each (the dispatcher serialises a conversation anyway) and own their subjects, so the
final counts must add up to the number of events: the run checks that."""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from measure import BenchSource, Load, Problems, message, percentile, react
from sqlalchemy import create_engine, select, text
from sqlalchemy.engine import make_url

from botcore.db.service import Database
from botcore.db.storage import PluginData, PluginStore
from botcore.dispatch.dispatcher import Dispatcher
from botcore.event import Event
from botcore.processor import Processor, match
from botcore.testing import StubContext

USAGE = """\
Karma-style upserts through the real dispatcher and thread pool: one committed write per
event. Prints committed writes/s and latency for each backend.
"""


class Karma(Processor):
    """``subject++``: one read and one upsert of the subject's count."""

    addressed = False

    @match(r"^(\S+)\+\+$", simple=False)
    def increment(self, event: Event, subject: str) -> None:
        store = PluginStore(event.session, "karma")
        count = store.get(subject, 0) + 1
        store.set(subject, count)
        event.addresponse(f"{subject} now has {count}")


def voter(conversation: int, subjects: int) -> Callable[[int], Event]:
    """Channel ``#c<conversation>`` (a `measure.Load` conversation): one user voting on
    the channel's own ``subjects`` subjects in turn."""
    nick, channel = f"user{conversation}", f"#c{conversation}"

    def vote(number: int) -> Event:
        subject = f"c{conversation}s{number % subjects}"
        return message("bench", nick, f"{subject}++", channel, addressed=True)

    return vote


def failed(event: Event) -> bool:
    """Whether a vote went wrong: a complaint, or no answer."""
    return bool(event.complain) or not event.responses


def postgres_database(admin_url: str) -> tuple[str, Any]:
    """A fresh database on the server, and a function that drops it."""
    admin = make_url(admin_url)
    name = f"botcore_bench_{uuid.uuid4().hex[:10]}"
    engine = create_engine(admin, isolation_level="AUTOCOMMIT")
    with engine.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))

    def drop() -> None:
        with engine.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        engine.dispose()

    return admin.set(database=name).render_as_string(hide_password=False), drop


async def run_backend(reactor: Any, args: argparse.Namespace, backend: str) -> dict[str, Any]:
    drop = None
    if backend == "sqlite":
        folder = Path(tempfile.mkdtemp(prefix="botcore-bench-"))
        url = f"sqlite:///{folder / 'bench.sqlite'}"
    else:
        url, drop = postgres_database(args.postgres)
    database = Database("main", {"url": url, "auto_upgrade": True, "pool_size": args.threads})
    database.startService()
    # The replies go to a source that counts them (the dispatcher routes every reply).
    context = StubContext(reactor=reactor)
    context.add_source(BenchSource("bench", context))
    dispatcher = Dispatcher(
        {"threads": args.threads},
        reactor=reactor,
        database=database,
        sources=context.get_source,
    )
    context.dispatcher = dispatcher
    dispatcher.set_chain([Karma("karma", context)])
    dispatcher.startService()
    voters = [voter(conversation, args.subjects) for conversation in range(args.conversations)]
    try:
        if args.warmup:
            await Load(dispatcher.dispatch, voters, args.warmup, failed=failed).run()
        load = Load(dispatcher.dispatch, voters, args.events, failed=failed)
        await load.run()
        with database.session_factory() as session:
            total = sum(session.scalars(select(PluginData.value)))
        expected = args.events + args.warmup
        return {
            "backend": backend,
            "threads": args.threads,
            "events": args.events,
            "seconds": load.elapsed,
            "rate": load.rate,
            "p50": percentile(load.latencies, 0.50) * 1000,
            "p99": percentile(load.latencies, 0.99) * 1000,
            "failed": load.failed,
            "checked": "ok" if total == expected else f"LOST {expected - (total or 0)}",
        }
    finally:
        await dispatcher.stopService()
        database.stopService()
        if drop is not None:
            drop()


def print_table(rows: list[dict[str, Any]], out: Any = sys.stdout) -> None:
    header = (
        f"{'backend':<11} {'threads':>7} {'events':>7} {'seconds':>8} {'writes/s':>9} "
        f"{'p50 ms':>7} {'p99 ms':>7} {'failed':>6} {'counts':>7}"
    )
    print(header, file=out)
    print("-" * len(header), file=out)
    for r in rows:
        print(
            f"{r['backend']:<11} {r['threads']:>7} {r['events']:>7} {r['seconds']:>8.2f} "
            f"{r['rate']:>9.0f} {r['p50']:>7.2f} {r['p99']:>7.2f} {r['failed']:>6} "
            f"{r['checked']:>7}",
            file=out,
        )


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="bench/storage.py", description=USAGE)
    parser.add_argument("--events", type=int, default=20_000, help="measured events per backend")
    parser.add_argument("--warmup", type=int, default=1000, help="unmeasured events first")
    parser.add_argument("--threads", type=int, default=10, help="dispatcher threads")
    parser.add_argument("--conversations", type=int, default=20, help="channels in parallel")
    parser.add_argument("--subjects", type=int, default=50, help="karma subjects per channel")
    parser.add_argument(
        "--backends", default="sqlite,postgresql", help="comma-separated: sqlite, postgresql"
    )
    parser.add_argument(
        "--postgres",
        default=os.environ.get("BOTCORE_TEST_POSTGRES_URL"),
        metavar="URL",
        help="PostgreSQL server to make a scratch database on "
        "(default: $BOTCORE_TEST_POSTGRES_URL)",
    )
    args = parser.parse_args(argv)
    args.backend_list = [b.strip() for b in args.backends.split(",") if b.strip()]
    unknown = set(args.backend_list) - {"sqlite", "postgresql"}
    if unknown:
        parser.error(f"--backends: unknown {', '.join(sorted(unknown))}")
    if "postgresql" in args.backend_list and not args.postgres:
        print("no --postgres URL (or BOTCORE_TEST_POSTGRES_URL): skipping PostgreSQL")
        args.backend_list.remove("postgresql")
    if args.events < 1:
        parser.error("--events must be at least 1")
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)

    async def everything(reactor: Any, problems: Problems) -> None:
        rows = [await run_backend(reactor, args, backend) for backend in args.backend_list]
        print_table(rows)
        print(f"warnings and errors logged: {problems.count}")

    react("bench/storage.py", everything)


if __name__ == "__main__":
    main()
