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
import time
import uuid
from pathlib import Path
from typing import Any

from measure import percentile
from sqlalchemy import create_engine, select, text
from sqlalchemy.engine import make_url
from twisted.internet import task
from twisted.internet.defer import Deferred, ensureDeferred
from twisted.logger import LogLevel, globalLogBeginner

from botcore.db.service import Database
from botcore.db.storage import PluginData, PluginStore
from botcore.dispatch.dispatcher import Dispatcher
from botcore.event import Event, EventType, Sender
from botcore.processor import Processor, match

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


class Load:
    """Keeps one event in flight per conversation until ``total`` are done; records each
    event's latency (dispatch() to its Deferred firing)."""

    def __init__(self, dispatcher: Dispatcher, conversations: int, subjects: int, total: int):
        self.dispatcher = dispatcher
        self.conversations = conversations
        self.subjects = subjects
        self.total = total
        self.dispatched = 0
        self.done = 0
        self.failed = 0
        self.latencies: list[float] = []
        self.finished: Deferred[None] = Deferred()
        self.started = 0.0
        self.elapsed = 0.0

    def run(self) -> Deferred[None]:
        self.started = time.perf_counter()
        for conversation in range(self.conversations):
            self._next(conversation)
        return self.finished

    def _next(self, conversation: int) -> None:
        if self.dispatched >= self.total:
            return
        subject = f"c{conversation}s{self.dispatched % self.subjects}"
        self.dispatched += 1
        event = Event(
            source="bench",
            type=EventType.MESSAGE,
            sender=Sender("bench", f"user{conversation}", f"user{conversation}"),
            channel=f"#c{conversation}",
            addressed=True,
            message=f"{subject}++",
        )
        started = time.perf_counter()
        d = self.dispatcher.dispatch(event)
        d.addCallback(self._done, conversation, started)

    def _done(self, event: Event, conversation: int, started: float) -> None:
        now = time.perf_counter()
        self.latencies.append(now - started)
        if event.complain or not event.responses:
            self.failed += 1
        self.done += 1
        if self.done == self.total:
            self.elapsed = now - self.started
            self.finished.callback(None)
        else:
            self._next(conversation)


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
    dispatcher = Dispatcher({"threads": args.threads}, reactor=reactor, database=database)
    dispatcher.set_chain([Karma("karma")])
    dispatcher.startService()
    try:
        if args.warmup:
            await Load(dispatcher, args.conversations, args.subjects, args.warmup).run()
        load = Load(dispatcher, args.conversations, args.subjects, args.events)
        await load.run()
        with database.session_factory() as session:
            total = sum(session.scalars(select(PluginData.value)))
        expected = args.events + args.warmup
        return {
            "backend": backend,
            "threads": args.threads,
            "events": args.events,
            "seconds": load.elapsed,
            "rate": args.events / load.elapsed,
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
    problems = [0]

    def observe(event: dict[str, Any]) -> None:
        level = event.get("log_level")
        if level is not None and level >= LogLevel.warn:
            problems[0] += 1
            if problems[0] <= 5:
                from twisted.logger import formatEventAsClassicLogText

                sys.stderr.write(formatEventAsClassicLogText(event))

    globalLogBeginner.beginLoggingTo([observe], redirectStandardIO=False)

    async def everything(reactor: Any) -> None:
        rows = [await run_backend(reactor, args, backend) for backend in args.backend_list]
        print_table(rows)
        print(f"warnings and errors logged: {problems[0]}")

    task.react(lambda reactor: ensureDeferred(everything(reactor)))


if __name__ == "__main__":
    main()
