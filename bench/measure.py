"""What the benchmark scripts share: the load driver, the network-less source, starting a
bot, counting logged problems, running under the real reactor, and the percentile.

The scripts are run as ``python bench/NAME.py``, which puts this folder on sys.path."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from twisted.internet import task
from twisted.internet.defer import Deferred, ensureDeferred
from twisted.logger import LogLevel, formatEventAsClassicLogText, globalLogBeginner

from botcore.event import Event, EventType, Lifecycle, Response, Sender
from botcore.source import Source

if TYPE_CHECKING:
    from botcore.bot import Bot
    from botcore.config import Config
    from botcore.interfaces import IBotContext
    from botcore.loading.reloader import Reloader

#: The bot's name (and nick) in the benchmarks that run a whole bot.
BOT_NAME = "botcore"


class ChildProcess:
    """A program the benchmark starts (the bot in its own process), its output in
    ``log``; `stop` asks it to end with SIGTERM and kills it after ``wait`` seconds."""

    def __init__(self, command: Sequence[str], log: Path, cwd: Path, wait: float) -> None:
        self.log = log
        self.wait = wait
        self._log = open(log, "ab")  # noqa: SIM115 (closed in stop)
        self.started = time.monotonic()
        self.process = subprocess.Popen(
            list(command), stdin=subprocess.DEVNULL, stdout=self._log, stderr=self._log, cwd=cwd
        )

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(self.wait)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(self.wait)
        self._log.close()


class BenchError(Exception):
    """The benchmark could not run (the bot did not start, a server is missing...)."""


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds process ``pid`` has used so far (Linux /proc)."""
    with open(f"/proc/{pid}/stat", encoding="ascii") as handle:
        fields = handle.read().rsplit(")", 1)[1].split()
    # After the command name: state is field 3, utime 14 and stime 15 (proc(5)).
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def percentile(values: list[float], fraction: float) -> float:
    """The value below which ``fraction`` of ``values`` fall (nearest rank)."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


# -- traffic -----------------------------------------------------------------------------


def message(source: str, nick: str, text: str, channel: str | None = None, **kw: Any) -> Event:
    """A message event from ``nick`` on ``source``, in ``channel`` (by default privately,
    in the conversation named after the nick)."""
    return Event(
        source=source,
        type=EventType.MESSAGE,
        sender=Sender(source, nick, nick),
        channel=channel or nick,
        message=text,
        **kw,
    )


class Load:
    """A closed loop of events: each conversation keeps ``inflight`` events outstanding,
    sending its next as soon as one is done, until ``total`` have been dispatched. A
    conversation is a function of the event's number in the run (0, 1, ...) that gives
    the event to send. Records each event's latency (the ``dispatch`` call to its
    Deferred firing) and counts the events ``failed`` says failed. Reactor thread."""

    def __init__(
        self,
        dispatch: Callable[[Event], Deferred[Event]],
        conversations: Sequence[Callable[[int], Event]],
        total: int,
        inflight: int = 1,
        failed: Callable[[Event], bool] | None = None,
    ) -> None:
        self.dispatch = dispatch
        self.conversations = conversations
        self.total = total
        self.inflight = inflight
        self.is_failure = failed
        self.dispatched = 0
        self.done = 0
        self.failed = 0
        self.latencies: list[float] = []
        self.finished: Deferred[None] = Deferred()
        self.started = 0.0
        self.elapsed = 0.0

    def run(self) -> Deferred[None]:
        """Start the loop; the Deferred fires when every event is done."""
        self.started = time.perf_counter()
        for _ in range(self.inflight):
            for conversation in self.conversations:
                self._next(conversation)
        return self.finished

    def _next(self, conversation: Callable[[int], Event]) -> None:
        if self.dispatched >= self.total:
            return
        event = conversation(self.dispatched)
        self.dispatched += 1
        started = time.perf_counter()
        self.dispatch(event).addCallback(self._done, conversation, started)

    def _done(self, event: Event, conversation: Callable[[int], Event], started: float) -> None:
        now = time.perf_counter()
        self.latencies.append(now - started)
        if self.is_failure is not None and self.is_failure(event):
            self.failed += 1
        self.done += 1
        if self.done == self.total:
            self.elapsed = now - self.started
            self.finished.callback(None)
        else:
            self._next(conversation)

    @property
    def rate(self) -> float:
        """Events per second over the run."""
        return self.total / self.elapsed


# -- the bot -----------------------------------------------------------------------------


class BenchSource(Source):
    """A source with no network: counts the replies it is asked to send."""

    type = "bench"
    supports = frozenset({"action", "notice", "multiline"})

    def __init__(self, name: str, bot: IBotContext) -> None:
        super().__init__(name, bot, {})
        self.nick = BOT_NAME
        self.sent = 0

    def send(self, response: Response) -> None:
        self.sent += 1


async def start_bot(
    config: Config, reactor: Any, reloader: Reloader | None = None
) -> tuple[Bot, BenchSource]:
    """A started bot of ``config`` under ``reactor``, with a `BenchSource` named
    ``bench``; `BenchError` (the bot stopped again) when it or a plugin failed."""
    from botcore.bot import Bot

    bot = Bot(config, reactor=reactor, reloader=reloader)
    source = BenchSource("bench", bot.context)
    source.setServiceParent(bot.sources)
    await bot.startService()
    problems = [f"plugin {name}: {why}" for name, why in bot.plugins.failed.items()]
    if bot.state != Lifecycle.RUNNING or problems:
        await bot.stopService()
        raise BenchError("; ".join([f"the bot is {bot.state}", *problems]))
    return bot, source


# -- running -----------------------------------------------------------------------------


class Problems:
    """A log observer that counts warnings and errors, and shows the first few."""

    def __init__(self, shown: int = 5, out: Any = sys.stderr) -> None:
        self.count = 0
        self.shown = shown
        self.out = out

    def __call__(self, event: dict[str, Any]) -> None:
        level = event.get("log_level")
        if level is not None and level >= LogLevel.warn:
            self.count += 1
            if self.count <= self.shown:
                self.out.write(formatEventAsClassicLogText(event))


def react(program: str, main: Callable[[Any, Problems], Awaitable[None]]) -> None:
    """Run ``main(reactor, problems)`` under the real reactor with the log's warnings and
    errors counted in ``problems``, then exit; a `BenchError` is printed, as ``program``'s,
    and exits with status 1."""
    problems = Problems()
    globalLogBeginner.beginLoggingTo([problems], redirectStandardIO=False)

    async def guarded(reactor: Any) -> None:
        try:
            await main(reactor, problems)
        except BenchError as e:
            print(f"{program}: {e}", file=sys.stderr)
            raise SystemExit(1) from None

    task.react(lambda reactor: ensureDeferred(guarded(reactor)))
