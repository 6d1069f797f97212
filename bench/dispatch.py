"""Benchmark of the event hot path: events/s and latency through the real default chain.

Runs the real Bot (Reloader, Dispatcher and its thread pool, SQLite) under the real reactor
with the core and basic plugins plus synthetic processors, and prints one row per size."""

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
from pathlib import Path
from typing import Any

from measure import BOT_NAME, Load, Problems, message, percentile, react, start_bot

from botcore.event import Event
from botcore.loading.reloader import Reloader
from botcore.processor import Processor, match
from botcore.settings import read_config
from botcore.testing import StubContext

SYNTHETIC = "benchsynthetic"

USAGE = """\
Push message events through the real dispatcher (core + basic plugins, padded with
synthetic processors) and print throughput and latency for each chain size.
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
        "__module__": f"plugins.{SYNTHETIC}",
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
    module = types.ModuleType(f"plugins.{SYNTHETIC}", "Synthetic processors for the benchmark.")
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
    lines += ["", "[database:main]", f"url = sqlite:///{directory / 'bench.sqlite'}", ""]
    path = directory / "bench.ini"
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


async def run_case(reactor: Any, args: argparse.Namespace, size: int) -> dict[str, Any]:
    """Build and start a bot whose chain has about ``size`` processors, push the events
    through it, stop it, and return the row of figures."""
    plugins = [p for p in args.plugins.split(",") if p]
    with tempfile.TemporaryDirectory(prefix="botcore-bench-") as tmp:
        config = read_config(write_config(Path(tmp), plugins, args.threads))
        # Only counted: a stub context is enough of a bot for them.
        context = StubContext(reactor=reactor)
        reloader = Reloader(config.section("bot"))
        base = sum(len(reloader.processors(name, context, {})) for name in plugins)
        synthetic = max(0, size - base)
        bot, source = await start_bot(
            config, reactor, BenchReloader(config.section("bot"), synthetic)
        )
        chain = len(bot.dispatcher.chain)
        talks = conversations(args.conversations, source.name)
        if args.warmup:
            await Load(source.dispatch, talks, args.warmup, args.inflight).run()
        sent_before = source.sent
        load = Load(source.dispatch, talks, args.events, args.inflight)
        profiler = Profiler(bot.dispatcher) if args.profile else None
        gc.collect()
        cpu = time.process_time()
        await load.run()
        cpu = time.process_time() - cpu
        if profiler is not None:
            profiler.report(f"{args.profile}.{size}", sys.stderr)
        replies = source.sent - sent_before
        await bot.stopService()
    return {
        "chain": chain,
        "synthetic": synthetic,
        "threads": bot.dispatcher.threads,
        "events": args.events,
        "seconds": load.elapsed,
        "rate": load.rate,
        "cpu_us": cpu / args.events * 1e6,
        "p50": percentile(load.latencies, 0.50) * 1e3,
        "p99": percentile(load.latencies, 0.99) * 1e3,
        "replies": replies,
    }


def print_table(rows: list[dict[str, Any]], errors: int, out: Any = sys.stdout) -> None:
    header = (
        f"{'processors':>10} {'synthetic':>9} {'threads':>7} {'events':>8} {'seconds':>8} "
        f"{'events/s':>9} {'cpu us/ev':>9} {'p50 ms':>7} {'p99 ms':>7} {'replies':>8}"
    )
    print(header, file=out)
    print("-" * len(header), file=out)
    for r in rows:
        print(
            f"{r['chain']:>10} {r['synthetic']:>9} {r['threads']:>7} {r['events']:>8} "
            f"{r['seconds']:>8.2f} {r['rate']:>9.0f} {r['cpu_us']:>9.1f} {r['p50']:>7.2f} "
            f"{r['p99']:>7.2f} {r['replies']:>8}",
            file=out,
        )
    if len(rows) >= 2:
        first, last = rows[0], rows[-1]
        ratio = first["rate"] / last["rate"]
        print(
            f"cost per event at {last['chain']} vs {first['chain']} processors: {ratio:.2f}x",
            file=out,
        )
    print(f"errors logged: {errors}", file=out)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="bench/dispatch.py", description=USAGE)
    parser.add_argument("--events", type=int, default=100_000, help="events per case")
    parser.add_argument("--threads", type=int, default=None, help="[bot] threads (default 10)")
    parser.add_argument(
        "--processors", default="10,100", help="chain sizes to measure, comma-separated"
    )
    parser.add_argument("--conversations", type=int, default=50, help="channels + privates")
    parser.add_argument(
        "--inflight", type=int, default=2, help="events outstanding per conversation"
    )
    parser.add_argument("--warmup", type=int, default=2000, help="unmeasured events first")
    parser.add_argument(
        "--profile", metavar="PREFIX", help="cProfile each case; write PREFIX.SIZE.*.prof"
    )
    parser.add_argument("--plugins", default="core,basic", help="real plugins to load")
    args = parser.parse_args(argv)
    try:
        args.sizes = [int(s) for s in args.processors.split(",") if s.strip()]
    except ValueError:
        parser.error(f"--processors: expected numbers, found {args.processors!r}")
    if args.events < 1:
        parser.error("--events must be at least 1")
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)

    async def everything(reactor: Any, problems: Problems) -> None:
        rows = [await run_case(reactor, args, size) for size in args.sizes]
        print_table(rows, problems.count)

    react("bench/dispatch.py", everything)


if __name__ == "__main__":
    main()
