"""Benchmark of the event hot path: events/s and latency through the real chain.

Runs the real Bot (Reloader, Dispatcher and its thread pool, SQLite) under the real reactor
with the default plugin set (or the plugins named, padded with synthetic processors) and
tables pre-filled to each size asked for, and prints one row per case and the time each
processor spent per event."""

from __future__ import annotations

import argparse
import cProfile
import gc
import itertools
import pstats
import sys
import tempfile
import threading
import time
import types
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from measure import BOT_NAME, Load, Problems, message, percentile, react, start_bot

from botcore.event import Event
from botcore.loading.reloader import Reloader
from botcore.processor import Processor, match
from botcore.settings import read_config
from botcore.testing import StubContext

SYNTHETIC = "benchsynthetic"

#: The plugins a user runs (conf.example.ini's autoload loads every bundled one).
DEFAULT_PLUGINS = (
    "core",
    "basic",
    "help",
    "factoid",
    "karma",
    "memo",
    "seen",
    "urlgrab",
    "log",
    "remind",
    "calc",
    "decide",
    "identity",
    "admin",
    "irc_admin",
)

USAGE = """\
Push message events through the real dispatcher (by default the default plugin set, with
tables pre-filled to 1,000 and to 100,000 rows) and print throughput, latency and the time
each processor spent per event, for each case.
"""


# -- the synthetic plugin -----------------------------------------------------------


#: Command words of the kind real plugins have, so synthetic commands start differently.
WORDS = (
    "weather",
    "karma",
    "remind",
    "tell",
    "seen",
    "google",
    "calc",
    "convert",
    "define",
    "translate",
    "dice",
    "roll",
    "flip",
    "quote",
    "fact",
    "imdb",
    "wiki",
    "github",
    "issue",
    "ticket",
    "deploy",
    "news",
    "feed",
    "poll",
    "vote",
    "topic",
    "memo",
    "note",
    "todo",
    "alarm",
    "timer",
    "stock",
    "hash",
    "base64",
    "rot13",
    "urban",
    "spell",
    "rhyme",
    "synonym",
    "lyrics",
    "movie",
    "zodiac",
    "jira",
    "lunch",
    "office",
    "yell",
    "xkcd",
)


def synthetic_selectors(index: int) -> list[str]:
    """One or two selectors for synthetic processor ``index``, all distinct. Most start
    with their own command word; one in four has an optional polite prefix, as plenty of
    real ones do (so its first word is not known before the regex runs)."""
    word = WORDS[index % len(WORDS)] + (str(index // len(WORDS)) if index >= len(WORDS) else "")
    first = (
        f"{word} {{any}}",
        f"{word} for {{chunk}}",
        f"(?:please )?{word} {{word}}",
        f"{word}",
    )[index % 4]
    selectors = [first]
    if index % 2:
        selectors.append(f"(?:set )?{word} (on|off)" if index % 3 else f"{word} status")
    return selectors


def synthetic_processor(index: int) -> type[Processor]:
    """A processor that looks like a real plugin command: one or two ``@match`` handlers
    with their own selectors (which the benchmark's traffic does not match)."""

    def command(self: Processor, event: Event, *args: str) -> None:
        event.addresponse(f"{self.name} {index} says {' '.join(args)}")

    namespace: dict[str, Any] = {
        "__module__": f"botcore.plugins.{SYNTHETIC}",
        "__doc__": f"Synthetic command number {index}.",
        "features": (f"synthetic{index}",),
    }
    selectors = synthetic_selectors(index)
    namespace["usage"] = " | ".join(selectors)
    for number, selector in enumerate(selectors):
        # A function per handler: @match marks the function object itself.
        def handle(self: Processor, event: Event, *args: str) -> None:
            command(self, event, *args)

        namespace[f"handle{number}"] = match(selector)(handle)
    return type(f"Synthetic{index}", (Processor,), namespace)


def synthetic_module(count: int) -> types.ModuleType:
    """A plugin module holding ``count`` synthetic processors."""
    module = types.ModuleType(
        f"botcore.plugins.{SYNTHETIC}", "Synthetic processors for the benchmark."
    )
    for index in range(count):
        cls = synthetic_processor(index)
        setattr(module, cls.__name__, cls)
    return module


class BenchReloader(Reloader):
    """The real reloader, which also knows the generated synthetic plugin."""

    def __init__(self, config: dict[str, Any], synthetic: int) -> None:
        super().__init__(config)
        self.synthetic = synthetic_module(synthetic)

    def plugin_names(self) -> list[str]:
        return sorted([*super().plugin_names(), SYNTHETIC])

    def plugin_module(self, name: str) -> types.ModuleType:
        if name == SYNTHETIC:
            return self.synthetic
        return super().plugin_module(name)


# -- traffic --------------------------------------------------------------------------


# The last one nobody handles: core's Complain answers it.
COMMANDS = ("ping", "echo the quick brown fox", "ping", "echo hi", "what time is it?")
CHATTER = (
    "has anyone tried the new release yet?",
    "lunch in ten minutes",
    "I think the build is broken again :(",
    "see https://example.com/some/page for details",
    "ok",
    "brb",
)


class Conversation:
    """One channel (public) or one private correspondent on ``source``, producing a
    fixed mix of addressed commands and chatter (a `measure.Load` conversation)."""

    def __init__(self, index: int, public: bool, source: str) -> None:
        self.public = public
        self.source = source
        self.channel = f"#chan{index}" if public else f"user{index}"
        self.nicks = [f"user{index}-{n}" for n in range(3)] if public else [f"user{index}"]
        self._turn = itertools.count(index)

    def __call__(self, number: int) -> Event:
        turn = next(self._turn)
        nick = self.nicks[turn % len(self.nicks)]
        # Public: 40% addressed commands, 60% chatter; private: commands only.
        if self.public and turn % 5 >= 2:
            text = CHATTER[turn % len(CHATTER)]
        elif self.public:
            text = f"{BOT_NAME}: {COMMANDS[(turn // 5 * 2 + turn % 5) % len(COMMANDS)]}"
        else:
            text = COMMANDS[turn % len(COMMANDS)]
        return message(self.source, nick, text, self.channel, public=self.public)


def conversations(count: int, source: str) -> list[Conversation]:
    """``count`` conversations, four public channels for each private correspondent."""
    return [Conversation(i, public=i % 5 != 4, source=source) for i in range(count)]


class Chatter:
    """One channel (public) or private correspondent of the realistic traffic: several
    speakers per channel, mostly ordinary chatter, now and then a web address or a karma
    vote, a few addressed commands (seen, karma, a factoid, ping, help, a memo for somebody
    who then speaks); private lines are commands. ``rows`` is the size the tables were
    filled to: the commands ask about names that are there (and some that are not)."""

    SPEAKERS = 6

    def __init__(self, index: int, public: bool, source: str, rows: int) -> None:
        self.public = public
        self.source = source
        self.index = index
        self.rows = max(rows, 1)
        self.channel = f"#chan{index}" if public else f"user{index}"
        count = self.SPEAKERS if public else 1
        self.nicks = [f"user{index}-{n}" for n in range(count)] if public else [f"user{index}"]
        self._turn = itertools.count(index)

    def command(self, turn: int, nick: str) -> str:
        other = f"user{(self.index + turn) % 40}-{turn % self.SPEAKERS}"
        thing = turn * 7919 % self.rows
        commands = (
            f"seen {other}",
            f"karma for thing{thing}",
            f"what is fact{thing}",
            f"fact{thing}?",
            "ping",
            f"seen nobody{turn}",
            f"tell {other} the build is green again",
            "help seen",
            "decide lunch or coffee",
            "my messages",
        )
        return commands[turn // 7 % len(commands)]

    def __call__(self, number: int) -> Event:
        turn = next(self._turn)
        nick = self.nicks[turn % len(self.nicks)]
        if not self.public:
            return message(self.source, nick, self.command(turn, nick), self.channel)
        kind = turn % 20
        if kind == 0:  # 5% addressed commands
            text = f"{BOT_NAME}: {self.command(turn, nick)}"
        elif kind == 1 and turn % 40 == 1:  # 2.5% web addresses
            text = f"look at https://example.invalid/page/{turn} it explains the bug"
        elif kind == 2 and turn % 60 == 2:  # under 2% karma votes
            text = f"thing{turn * 31 % self.rows}++"
        else:
            text = CHATTER[turn % len(CHATTER)].replace("https://example.com", "example")
        return message(self.source, nick, text, self.channel, public=True)


def realistic(count: int, source: str, rows: int) -> list[Chatter]:
    """``count`` conversations of realistic traffic, four channels for each private one."""
    return [Chatter(i, public=i % 5 != 4, source=source, rows=rows) for i in range(count)]


# -- tables filled in advance ---------------------------------------------------------


def prefill(engine: Any, source: str, rows: int, speakers: list[str], now: datetime) -> None:
    """Fill the identities, seen, memo, factoid and karma tables to ``rows`` rows each, as
    a bot that has run for a while has them: identities of people long gone (and of the
    traffic's speakers), their last sightings, delivered memos (and a few waiting for
    people who never come back), facts ``fact<n>`` (one in 50 a wildcard name) and karma
    of ``thing<n>``."""
    if rows <= 0:
        return
    from sqlalchemy import insert, select

    from botcore.db.models import Base

    # The loaded plugins' tables, with their column types (UTC times as the bot stores them).
    t = Base.metadata.tables
    names = [*speakers, *(f"gone{n}" for n in range(max(rows - len(speakers), 0)))][:rows]
    earlier = now - timedelta(days=30)
    with engine.begin() as connection:
        connection.execute(
            insert(t["identities"]),
            [
                {"source": source, "identity": name, "account_id": None, "created": earlier}
                for name in names
            ],
        )
        ids = dict(
            connection.execute(select(t["identities"].c.identity, t["identities"].c.id)).all()
        )
        connection.execute(
            insert(t["sightings"]),
            [
                {
                    "identity_id": ids[name],
                    "source": source,
                    "nick": name,
                    "channel": "#old",
                    "kind": "message",
                    "text": "see you",
                    "time": earlier,
                }
                for name in names
            ],
        )
        connection.execute(
            insert(t["memos"]),
            [
                {
                    "from_source": source,
                    "from_nick": names[n % len(names)],
                    "from_identity_id": ids[names[n % len(names)]],
                    "to_source": source,
                    "to_nick": f"gone{n}" if n % 50 else f"never{n}",
                    "to_account_id": None,
                    "memo": "call me",
                    "private": False,
                    "time": earlier,
                    "delivered": n % 50 != 0,
                    "notified": False,
                }
                for n in range(rows)
            ],
        )
        connection.execute(
            insert(t["factoids"]), [{"id": n + 1, "created": earlier} for n in range(rows)]
        )
        connection.execute(
            insert(t["factoid_names"]),
            [
                {
                    "factoid_id": n + 1,
                    # One in 50 a wildcard name ("fact50 $arg" matches "fact50 anything").
                    "name": f"fact{n} $arg" if n % 50 == 0 else f"fact{n}",
                    "wild": n % 50 == 0,
                    # Keyed as FactoidName keys it: recall asks for names by key word.
                    "wild_key": f"fact{n}" if n % 50 == 0 else None,
                    "author": "bench",
                    "created": earlier,
                }
                for n in range(rows)
            ],
        )
        connection.execute(
            insert(t["factoid_values"]),
            [
                {
                    "factoid_id": n + 1,
                    "verb": "is",
                    "value": f"the answer number {n}",
                    "author": "bench",
                    "created": earlier,
                }
                for n in range(rows)
            ],
        )
        connection.execute(
            insert(t["karma"]), [{"subject": f"thing{n}", "value": n % 7} for n in range(rows)]
        )


# -- what each processor costs --------------------------------------------------------


class StepTimes:
    """The wall and CPU (thread) time each processor's steps took, summed per processor,
    between `start` and `stop` (and nothing is wrapped outside them). Wraps the
    dispatcher's run of one step (the processor and the commit after it), so the
    database's cost is the processor's; where the dispatcher has no such method, each
    processor's ``process`` (then without its commit)."""

    def __init__(self, dispatcher: Any) -> None:
        self.dispatcher = dispatcher
        self.totals: list[dict[Any, list[float]]] = []
        self._local = threading.local()
        self._wrapped: list[Any] = []
        self.with_commit = hasattr(dispatcher, "_thd_run")

    def start(self) -> None:
        dispatcher = self.dispatcher
        if self.with_commit:
            original = dispatcher._thd_run

            def run_step(event: Any, function: Any, args: Any, kw: Any, who: Any) -> Any:
                return self._timed(who, original, event, function, args, kw, who)

            dispatcher._thd_run = run_step
            self._wrapped = [dispatcher]
        else:
            for processor in dispatcher.chain:
                self._wrap(processor)
            self._wrapped = list(dispatcher.chain)

    def stop(self) -> None:
        for wrapped in self._wrapped:
            del wrapped.__dict__["_thd_run" if self.with_commit else "process"]
        self._wrapped = []

    def _wrap(self, processor: Any) -> None:
        original = processor.process

        def process(event: Any) -> Any:
            return self._timed(processor, original, event)

        processor.process = process

    def _timed(self, who: Any, function: Any, *args: Any) -> Any:
        totals = getattr(self._local, "totals", None)
        if totals is None:
            totals = self._local.totals = {}
            self.totals.append(totals)
        wall, cpu = time.perf_counter(), time.thread_time()
        try:
            return function(*args)
        finally:
            entry = totals.get(who)
            if entry is None:
                entry = totals[who] = [0, 0.0, 0.0]
            entry[0] += 1
            entry[1] += time.perf_counter() - wall
            entry[2] += time.thread_time() - cpu

    def rows(self, events: int) -> list[tuple[str, float, float, float]]:
        """(processor, steps per event, wall us per event, cpu us per event), costliest
        first."""
        merged: dict[str, list[float]] = {}
        for totals in self.totals:
            for who, (count, wall, cpu) in totals.items():
                name = (
                    f"{who.name}.{type(who).__name__}"
                    if hasattr(who, "priority")
                    else getattr(who, "__qualname__", str(who))
                )
                entry = merged.setdefault(name, [0, 0.0, 0.0])
                entry[0] += count
                entry[1] += wall
                entry[2] += cpu
        rows = [
            (name, count / events, wall / events * 1e6, cpu / events * 1e6)
            for name, (count, wall, cpu) in merged.items()
        ]
        return sorted(rows, key=lambda row: -row[2])


# -- one run ---------------------------------------------------------------------


class Profiler:
    """cProfile for the reactor thread and, separately, for the worker threads (each
    worker's profile is switched on around the dispatcher's ``thd_process``)."""

    def __init__(self, dispatcher: Any) -> None:
        self.reactor = cProfile.Profile()
        self.workers: list[cProfile.Profile] = []
        self._local = threading.local()
        original = dispatcher.thd_process

        def thd_process(*args: Any) -> Any:
            profile = getattr(self._local, "profile", None)
            if profile is None:
                profile = self._local.profile = cProfile.Profile()
                self.workers.append(profile)
            profile.enable()
            try:
                return original(*args)
            finally:
                profile.disable()

        dispatcher.thd_process = thd_process
        self.dispatcher = dispatcher
        self.reactor.enable()

    def report(self, prefix: str, out: Any) -> None:
        self.reactor.disable()
        del self.dispatcher.thd_process
        self.reactor.dump_stats(f"{prefix}.reactor.prof")
        workers = pstats.Stats(*self.workers)
        workers.dump_stats(f"{prefix}.workers.prof")
        for name, stats in (("reactor thread", pstats.Stats(self.reactor)), ("workers", workers)):
            print(f"== {name} (top 25 by own time) ==", file=out)
            stats.stream = out
            stats.sort_stats("tottime").print_stats(25)


def write_config(directory: Path, plugins: list[str], threads: int | None) -> Path:
    lines = [
        "[bot]",
        f"name = {BOT_NAME}",
        "autoload = no",
        # The synthetic processors go right after core, so that every addressed command
        # passes all of them before basic answers it: the worst case for the chain.
        f"load = {', '.join([*plugins[:1], SYNTHETIC, *plugins[1:]])}",
    ]
    if threads is not None:
        lines.append(f"threads = {threads}")
    if "core" in plugins:
        # Real senders do not talk to the bot thousands of times a second: keep the rate
        # limiter counting (its full cost) without ever tripping it.
        lines += ["", "[plugin:core]", "limit_messages = 1000000000"]
    if "urlgrab" in plugins:
        # Never the network: addresses are recorded, no title is fetched.
        lines += ["", "[plugin:urlgrab]", "fetch_titles = no"]
    lines += ["", "[database:main]", f"url = sqlite:///{directory / 'bench.sqlite'}", ""]
    path = directory / "bench.ini"
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


def traffic(args: argparse.Namespace, source: str, rows: int) -> list[Any]:
    if args.traffic == "commands":
        return conversations(args.conversations, source)
    return realistic(args.conversations, source, rows)


def speakers_of(talks: list[Any]) -> list[str]:
    """Every nick the traffic speaks with, each once."""
    return list(dict.fromkeys(nick for talk in talks for nick in talk.nicks))


async def run_case(reactor: Any, args: argparse.Namespace, size: int, rows: int) -> dict[str, Any]:
    """Build and start a bot whose chain has about ``size`` processors (0: the plugins'
    own) and whose tables hold ``rows`` rows, push the events through it, stop it, and
    return the row of figures."""
    plugins = args.plugin_list
    with tempfile.TemporaryDirectory(prefix="botcore-bench-") as tmp:
        config = read_config(write_config(Path(tmp), plugins, args.threads))
        synthetic = 0
        if size:
            # Only counted: a stub context is enough of a bot for them.
            context = StubContext(reactor=reactor)
            reloader = Reloader(config.section("bot"))
            base = sum(len(reloader.processors(name, context, {})) for name in plugins)
            synthetic = max(0, size - base)
        bot, source = await start_bot(
            config, reactor, BenchReloader(config.section("bot"), synthetic)
        )
        chain = len(bot.dispatcher.chain)
        talks = traffic(args, source.name, rows)
        engine = bot.databases["main"].engine
        filled = time.perf_counter()
        prefill(engine, source.name, rows, speakers_of(talks), bot.now())
        filled = time.perf_counter() - filled
        if args.warmup:
            await Load(source.dispatch, talks, args.warmup, args.inflight).run()
        sent_before = source.sent
        load = Load(source.dispatch, talks, args.events, args.inflight)
        steps = StepTimes(bot.dispatcher)
        profiler = Profiler(bot.dispatcher) if args.profile else None
        gc.collect()
        # This coroutine runs on the reactor thread: its thread time is the reactor's.
        cpu, reactor_cpu = time.process_time(), time.thread_time()
        await load.run()
        cpu, reactor_cpu = time.process_time() - cpu, time.thread_time() - reactor_cpu
        if profiler is not None:
            profiler.report(f"{args.profile}.{size}.{rows}", sys.stderr)
        replies = source.sent - sent_before
        # The per-processor table comes from a run of its own: timing every step costs
        # the process about a tenth more CPU, which the figures above must not include.
        if args.table_events:
            steps.start()
            await Load(source.dispatch, talks, args.table_events, args.inflight).run()
            steps.stop()
        await bot.stopService()
    return {
        "chain": chain,
        "synthetic": synthetic,
        "rows": rows,
        "filled": filled,
        "threads": bot.dispatcher.threads,
        "events": args.events,
        "seconds": load.elapsed,
        "rate": load.rate,
        "cpu_us": cpu / args.events * 1e6,
        "reactor_us": reactor_cpu / args.events * 1e6,
        "p50": percentile(load.latencies, 0.50) * 1e3,
        "p99": percentile(load.latencies, 0.99) * 1e3,
        "replies": replies,
        "steps": steps.rows(args.table_events) if args.table_events else [],
        "table_events": args.table_events,
        "with_commit": steps.with_commit,
    }


def print_table(rows: list[dict[str, Any]], errors: int, out: Any = sys.stdout) -> None:
    header = (
        f"{'processors':>10} {'synthetic':>9} {'rows':>7} {'threads':>7} {'events':>8} "
        f"{'seconds':>8} {'events/s':>9} {'cpu us/ev':>9} {'reactor':>7} {'p50 ms':>7} "
        f"{'p99 ms':>7} {'replies':>8}"
    )
    print(header, file=out)
    print("-" * len(header), file=out)
    for r in rows:
        print(
            f"{r['chain']:>10} {r['synthetic']:>9} {r['rows']:>7} {r['threads']:>7} "
            f"{r['events']:>8} {r['seconds']:>8.2f} {r['rate']:>9.0f} {r['cpu_us']:>9.1f} "
            f"{r['reactor_us']:>7.1f} "
            f"{r['p50']:>7.2f} {r['p99']:>7.2f} {r['replies']:>8}",
            file=out,
        )
    if len(rows) >= 2:
        first, last = rows[0], rows[-1]
        ratio = first["rate"] / last["rate"]
        print(
            f"cost per event of the last case vs the first ({last['chain']} processors, "
            f"{last['rows']} rows vs {first['chain']}, {first['rows']}): {ratio:.2f}x",
            file=out,
        )
    print(f"errors logged: {errors}", file=out)
    for r in rows:
        if r["table_events"]:
            print_steps(r, out)


def print_steps(row: dict[str, Any], out: Any = sys.stdout, shown: int = 25) -> None:
    """The time each processor spent per event of the case, costliest first."""
    what = "the processor and the commit after it" if row["with_commit"] else "the processor"
    print(
        f"\nper processor ({row['chain']} processors, {row['rows']} rows; {what}; "
        f"per event of a timed run of {row['table_events']} after the measured one):",
        file=out,
    )
    header = f"{'processor':<32} {'runs/ev':>7} {'wall us/ev':>10} {'cpu us/ev':>9}"
    print(header, file=out)
    print("-" * len(header), file=out)
    steps = row["steps"]
    for name, runs, wall, cpu in steps[:shown]:
        print(f"{name:<32} {runs:>7.2f} {wall:>10.1f} {cpu:>9.1f}", file=out)
    if len(steps) > shown:
        rest = steps[shown:]
        wall = sum(step[2] for step in rest)
        cpu = sum(step[3] for step in rest)
        print(f"{f'({len(rest)} more)':<32} {'':>7} {wall:>10.1f} {cpu:>9.1f}", file=out)
    print(
        f"{'all processors':<32} {'':>7} {sum(s[2] for s in steps):>10.1f} "
        f"{sum(s[3] for s in steps):>9.1f}",
        file=out,
    )


def _numbers(parser: argparse.ArgumentParser, option: str, value: str) -> list[int]:
    try:
        return [int(s.replace("_", "")) for s in value.split(",") if s.strip()]
    except ValueError:
        parser.error(f"{option}: expected numbers, found {value!r}")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="bench/dispatch.py", description=USAGE)
    parser.add_argument("--events", type=int, default=100_000, help="events per case")
    parser.add_argument("--threads", type=int, default=None, help="[bot] threads (default 10)")
    parser.add_argument(
        "--plugins",
        default="default",
        help="real plugins to load, comma-separated, or 'default' (the default set)",
    )
    parser.add_argument(
        "--processors",
        default=None,
        help="chain sizes to pad to with synthetic processors, comma-separated; 0: none "
        "(default: 0 with the default set, 10,100 otherwise)",
    )
    parser.add_argument(
        "--rows",
        default=None,
        help="rows to fill the tables with, comma-separated "
        "(default: 1000,100000 with the default set, 0 otherwise)",
    )
    parser.add_argument(
        "--traffic",
        choices=("realistic", "commands"),
        default=None,
        help="realistic: chatter with a few commands; commands: 40%% addressed ping/echo "
        "(default: realistic with the default set, commands otherwise)",
    )
    parser.add_argument("--conversations", type=int, default=50, help="channels + privates")
    parser.add_argument(
        "--inflight", type=int, default=2, help="events outstanding per conversation"
    )
    parser.add_argument("--warmup", type=int, default=2000, help="unmeasured events first")
    parser.add_argument(
        "--table-events",
        type=int,
        default=None,
        help="events of the timed run after each case that the per-processor table comes "
        "from (default: --events, at most 20,000); 0: no table",
    )
    parser.add_argument(
        "--profile", metavar="PREFIX", help="cProfile each case; write PREFIX.SIZE.ROWS.*.prof"
    )
    args = parser.parse_args(argv)
    default = args.plugins == "default"
    args.plugin_list = (
        list(DEFAULT_PLUGINS) if default else [p for p in args.plugins.split(",") if p]
    )
    if args.processors is None:
        args.processors = "0" if default else "10,100"
    if args.rows is None:
        args.rows = "1000,100000" if default else "0"
    if args.traffic is None:
        args.traffic = "realistic" if default else "commands"
    args.sizes = _numbers(parser, "--processors", args.processors) or [0]
    args.row_counts = _numbers(parser, "--rows", args.rows) or [0]
    if args.events < 1:
        parser.error("--events must be at least 1")
    if args.table_events is None:
        args.table_events = min(args.events, 20_000)
    if args.table_events < 0:
        parser.error("--table-events must be 0 or more")
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)

    async def everything(reactor: Any, problems: Problems) -> None:
        rows = [
            await run_case(reactor, args, size, count)
            for count in args.row_counts
            for size in args.sizes
        ]
        print_table(rows, problems.count)

    react("bench/dispatch.py", everything)


if __name__ == "__main__":
    main()
