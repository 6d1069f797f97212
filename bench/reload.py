"""Benchmark of hot reload: how long reloading a typical plugin takes, and how much dispatch
throughput is left while a plugin is reloaded over and over.

Runs the real Bot (core + basic + a typical package plugin with a database table, loaded
from a plugin folder) under the real reactor with SQLite, and prints one table."""

from __future__ import annotations

import argparse
import itertools
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from measure import BOT_NAME, Load, Problems, message, percentile, react, start_bot
from twisted.internet.defer import Deferred
from twisted.python.failure import Failure

from botcore.bot import Bot
from botcore.event import Event
from botcore.loading.reloader import Reloader
from botcore.settings import read_config

PLUGIN = "benchreload"

USAGE = """\
Reload a typical plugin (a package: processors, a helper module, a database model) many
times and report p50/p99 of the reload; then push events through the real dispatcher
without reloads and during back-to-back reloads, and compare the throughput.
"""

INIT = '''
"""A typical plugin for the reload benchmark: a few commands, a helper module, a table."""

from __future__ import annotations

import re

from sqlalchemy import Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from botcore.db.models import Base
from botcore.options import IntOption, Option
from botcore.processor import Processor, match

from .helpers import reverse, shout, words

VERSION = @VERSION@


class BenchNote(Base):
    __tablename__ = "bench_reload_notes"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    text: Mapped[str] = mapped_column(String(200))


class Words(Processor):
    """Text toys."""

    usage = "reverse <text> | shout <text> | count words in <text>"
    limit = IntOption("Longest text.", 400)

    @match("reverse {any}")
    def reverse(self, event, text):
        event.addresponse(reverse(text[: self.limit]))

    @match("shout {any}")
    def shout(self, event, text):
        event.addresponse(shout(text))

    @match("count words in {any}")
    def count(self, event, text):
        event.addresponse(f"{len(words(text))} words")


class Bench(Processor):
    """What the benchmark's traffic asks for."""

    greeting = Option("What to answer.", "ok")

    def setup(self):
        self.pattern = re.compile(r"\\d+")
        self.served = getattr(self, "served", 0)

    @match("bench {digits}")
    def bench(self, event, number):
        self.served += 1
        event.addresponse(f"{self.greeting} {number} v{VERSION}")

    def export_state(self):
        return self.served

    def import_state(self, state):
        self.served = state
'''

HELPERS = '''
"""Helpers of the benchmark plugin."""

from __future__ import annotations

import re

_WORD = re.compile(r"\\w+")


def words(text: str) -> list[str]:
    return _WORD.findall(text)


def reverse(text: str) -> str:
    return text[::-1]


def shout(text: str) -> str:
    return text.upper() + "!"
'''


def write_plugin(folder: Path, version: int) -> None:
    package = folder / PLUGIN
    package.mkdir(parents=True, exist_ok=True)
    (package / "__init__.py").write_text(
        textwrap.dedent(INIT).replace("@VERSION@", str(version)), encoding="utf-8"
    )
    (package / "helpers.py").write_text(textwrap.dedent(HELPERS), encoding="utf-8")


def write_config(directory: Path) -> Path:
    path = directory / "bench.ini"
    path.write_text(
        f"[bot]\nname = {BOT_NAME}\nautoload = no\nload = core, basic, {PLUGIN}\n"
        "plugin_dirs = plugins\n\n"
        "[plugin:core]\nlimit_time = 0\n\n"
        f"[database:main]\nurl = sqlite:///{directory / 'bench.sqlite'}\n",
        encoding="utf-8",
    )
    return path


def asker(source: str, index: int) -> Callable[[int], Event]:
    """Private correspondent ``index`` (a `measure.Load` conversation): every event is a
    command the plugin answers."""
    nick = f"user{index}"
    return lambda number: message(source, nick, f"bench {number}", public=False)


class Reloads:
    """Reloads the plugin back to back (one reactor turn between reloads, so events keep
    flowing), until stopped; records each reload's wall time."""

    def __init__(self, reactor: Any, bot: Bot, folder: Path, interval: float) -> None:
        self.reactor = reactor
        self.bot = bot
        self.folder = folder
        self.interval = interval
        self.times: list[float] = []
        self.failures = 0
        self.running = False
        self._version = itertools.count(2)
        #: Whether each reload schedules the next (`start`), or the caller waits for each.
        self.chained = False

    def start(self) -> None:
        self.running = True
        self.chained = True
        self.reactor.callLater(0, self._one)

    def stop(self) -> None:
        self.running = False

    def _one(self) -> Deferred[None] | None:
        """One reload (its import runs off the reactor thread); the next is scheduled
        once it is done. The Deferred fires then."""
        if not self.running:
            return None
        write_plugin(self.folder, next(self._version))
        started = time.perf_counter()

        def done(result: Any) -> None:
            if isinstance(result, Failure):
                self.failures += 1
                print(f"reload failed: {result.value}", file=sys.stderr)
            self.times.append(time.perf_counter() - started)
            if self.chained:
                self.reactor.callLater(self.interval, self._one)

        return self.bot.plugins.reload_plugin(PLUGIN).addBoth(done)


async def run(reactor: Any, args: argparse.Namespace, problems: Problems) -> None:
    directory = Path(tempfile.mkdtemp(prefix="bench-reload-"))
    folder = directory / "plugins"
    write_plugin(folder, 1)
    config = read_config(write_config(directory), reloader=Reloader())
    bot, source = await start_bot(config, reactor)
    askers = [asker(source.name, index) for index in range(args.conversations)]
    try:
        # 1. Reload alone.
        idle = Reloads(reactor, bot, folder, 0)
        idle.running = True
        for _ in range(args.reloads):
            await idle._one()
        idle.stop()
        # 2. Throughput without, then with, continuous reloads (best of --repeat each).
        plain, busy, during = [], [], []
        for _ in range(args.repeat):
            load = Load(source.dispatch, askers, args.events, args.inflight)
            await load.run()
            plain.append(load.rate)
            reloads = Reloads(reactor, bot, folder, args.interval)
            load = Load(source.dispatch, askers, args.events, args.inflight)
            reloads.start()
            await load.run()
            reloads.stop()
            busy.append(load.rate)
            during.extend(reloads.times)
            if reloads.failures or idle.failures:
                raise SystemExit("a reload failed")
        served = bot.plugins.loaded[PLUGIN][1].served
    finally:
        await bot.stopService()
    best_plain, best_busy = max(plain), max(busy)
    print(f"plugin: package with 2 modules, 2 processors (4 commands), 1 table; "
          f"{args.conversations} conversations x {args.inflight} in flight, "
          f"{args.events} events per run, best of {args.repeat}")  # fmt: skip
    print(f"{'measure':<44} {'value':>12}")
    rows = [
        ("reloads alone", f"{len(idle.times)}"),
        ("reload p50 (ms)", f"{percentile(idle.times, 0.5) * 1000:.1f}"),
        ("reload p99 (ms)", f"{percentile(idle.times, 0.99) * 1000:.1f}"),
        ("reloads during the busy runs", f"{len(during)}"),
        ("reload p50 under load (ms)", f"{percentile(during, 0.5) * 1000:.1f}"),
        ("reload p99 under load (ms)", f"{percentile(during, 0.99) * 1000:.1f}"),
        ("events/s without reloads", f"{best_plain:,.0f}"),
        (f"events/s reloading every {args.interval * 1000:g} ms", f"{best_busy:,.0f}"),
        ("throughput kept", f"{best_busy / best_plain:.0%}"),
        (f"served counter handed over (of {2 * args.repeat * args.events:,})", f"{served:,}"),
    ]
    for name, value in rows:
        print(f"{name:<44} {value:>12}")
    print(f"warnings and errors logged: {problems.count}")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="bench/reload.py", description=USAGE)
    parser.add_argument("--reloads", type=int, default=200, help="reloads timed alone")
    parser.add_argument("--events", type=int, default=20_000, help="events per run")
    parser.add_argument("--conversations", type=int, default=20)
    parser.add_argument("--inflight", type=int, default=2, help="events outstanding per one")
    parser.add_argument(
        "--interval",
        type=float,
        default=0.1,
        help="seconds between reloads during the busy run (0: back to back)",
    )
    parser.add_argument("--repeat", type=int, default=3, help="runs of each kind")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    react("bench/reload.py", lambda reactor, problems: run(reactor, args, problems))


if __name__ == "__main__":
    main()
