"""Benchmark of the XMPP round trip: a probe client sends ``echo`` commands to the bot in a
MUC room and in a private chat on a real Prosody and times the replies (sequential
latency, a burst's throughput, and the CPU the bot and the server spend per reply)."""

from __future__ import annotations

import argparse
import configparser
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from measure import BenchError, ChildProcess, percentile

BOT = "benchbot"
#: The longest any one wait (a server or bot start, a login, one reply) may take.
WAIT = 30.0
USERS = {"bot": "botpass", "probe": "probepass"}

USAGE = """\
Start Prosody (tests/sources/xmpp_harness.py, free loopback port, test certificate) and
the bot (core + basic plugins, the XMPP source) in its own process, log a probe client in
(Twisted's jabber client, the real reactor), and print, in a MUC room and in a private
chat, p50/p99 round-trip latency of sequential echo commands, replies/s for a burst of
them sent back to back, and the CPU seconds the bot's process (and Prosody's) spent per
1,000 replies.
"""


# -- the bot, in its own process ------------------------------------------------------------


def serve(path: str) -> None:
    """Run a bot from the config at ``path`` until SIGTERM (the bench's child process)."""
    from twisted.internet import reactor as the_reactor
    from twisted.logger import (
        FilteringLogObserver,
        LogLevel,
        LogLevelFilterPredicate,
        globalLogBeginner,
        textFileLogObserver,
    )

    from botcore.bot import Bot
    from botcore.settings import read_config

    predicate = LogLevelFilterPredicate(defaultLogLevel=LogLevel.warn)
    observer = FilteringLogObserver(textFileLogObserver(sys.stderr), [predicate])
    globalLogBeginner.beginLoggingTo([observer], redirectStandardIO=False)
    reactor: Any = the_reactor
    bot = Bot(read_config(path, environ={}), reactor=reactor)
    reactor.callWhenRunning(bot.startService)
    reactor.addSystemEventTrigger("before", "shutdown", bot.stopService)
    reactor.run()


def write_config(directory: Path, port: int, ca_file: str, room: str, domain: str) -> Path:
    parser = configparser.ConfigParser(interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read_dict(
        {
            "bot": {"name": BOT, "autoload": "no", "load": "core, basic"},
            "database:main": {"url": f"sqlite:///{directory / 'bench.sqlite'}"},
            "plugin:core": {"limit_time": "0"},
            "logging": {"level": "warn"},
            "source:xmpp": {
                "type": "xmpp",
                "jid": f"bot@{domain}",
                "password": USERS["bot"],
                "server": f"tcp:127.0.0.1:{port}",
                "ca_file": ca_file,
                "nick": BOT,
                "rooms": room,
            },
        }
    )
    path = directory / "bot.ini"
    with open(path, "w", encoding="utf-8") as handle:
        parser.write(handle)
    return path


class BotProcess(ChildProcess):
    """This script's ``--serve`` in its own process: the bot."""

    def __init__(self, config: Path, log: Path) -> None:
        command = [sys.executable, os.path.abspath(__file__), "--serve", str(config)]
        super().__init__(command, log, Path(__file__).resolve().parent.parent, WAIT)


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds process ``pid`` has used so far (Linux /proc)."""
    with open(f"/proc/{pid}/stat", encoding="ascii") as handle:
        fields = handle.read().rsplit(")", 1)[1].split()
    # After the command name: state is field 3, utime 14 and stime 15 (proc(5)).
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# -- the probe, on the real reactor -------------------------------------------------------


class Replies:
    """Watches the probe's incoming messages for the bot's replies: a waiter for one
    expected text (sequential), or a count of burst replies with their order."""

    def __init__(self, sender: Callable[[str], bool], shown: Callable[[Any], str | None]):
        self.is_bot = sender
        self.shown = shown
        self.expected: str | None = None
        self.waiter: Any = None
        self.prefix: str | None = None
        self.received = 0
        self.in_order = True
        self.highest = -1
        self.last = 0.0
        self.done: Any = None
        self.total = 0

    def __call__(self, stanza: Any) -> bool:
        """Handle one stanza; True when it was a reply of the bot's (not to be kept)."""
        if stanza.name != "message" or not self.is_bot(stanza.getAttribute("from", "")):
            return False
        text = self.shown(stanza)
        if text is None:
            return True
        if self.waiter is not None and text == self.expected:
            waiter, self.waiter = self.waiter, None
            waiter.callback(time.perf_counter())
        elif self.prefix is not None and text.startswith(self.prefix):
            number = int(text[len(self.prefix) :])
            self.in_order = self.in_order and number > self.highest
            self.highest = max(self.highest, number)
            self.received += 1
            self.last = time.perf_counter()
            if self.received == self.total and self.done is not None and not self.done.called:
                self.done.callback(None)
        return True


async def sequential(reactor: Any, probe: Any, to: str, kind: str, command: str, count: int,
                     replies: Replies, tag: str) -> list[float]:  # fmt: skip
    """Round-trip times (seconds) of ``count`` echo commands sent one after another."""
    from twisted.internet.defer import Deferred

    times = []
    for i in range(count):
        text = f"{tag}-{i}"
        replies.expected = text
        replies.waiter = Deferred()
        replies.waiter.addTimeout(WAIT, reactor)
        started = time.perf_counter()
        probe.message(to, command + text, kind=kind)
        try:
            arrived = await replies.waiter
        except Exception as e:
            raise BenchError(f"no reply to {command + text!r} within {WAIT}s") from e
        times.append(arrived - started)
    return times


async def burst(reactor: Any, probe: Any, to: str, kind: str, command: str, count: int,
                replies: Replies, window: float) -> tuple[int, float, bool]:  # fmt: skip
    """Send ``count`` echo commands back to back and wait until all replies arrived or
    ``window`` seconds passed. Returns (replies, seconds, in_order)."""
    from twisted.internet import defer

    replies.prefix = "b-"
    replies.received = 0
    replies.in_order = True
    replies.highest = -1
    replies.total = count
    replies.done = defer.Deferred()
    replies.done.addTimeout(window, reactor)
    started = time.perf_counter()
    replies.last = started
    for i in range(count):
        probe.message(to, f"{command}b-{i}", kind=kind)
    try:
        await replies.done
    except defer.TimeoutError:
        pass
    finally:
        replies.prefix = None
    return replies.received, replies.last - started, replies.in_order


def nodelay(stream: Any) -> None:
    """TCP_NODELAY on the probe's socket (as the IRC probe), under the TLS layer."""
    transport = stream.transport
    while transport is not None and not hasattr(transport, "setTcpNoDelay"):
        transport = getattr(transport, "transport", None)
    if transport is not None:
        transport.setTcpNoDelay(True)


async def measure(reactor: Any, args: argparse.Namespace, server: Any, bot: BotProcess,
                  rows: list[dict[str, Any]]) -> None:  # fmt: skip
    from twisted.internet import defer

    from tests.sources.xmpp_harness import DOMAIN, MUC, XMPPClient, is_self_presence, shown

    room = f"bench@{MUC}"
    bot_jid = f"bot@{DOMAIN}"

    class Probe(XMPPClient):
        """The harness's client; the bot's replies go to ``watch`` and are not kept."""

        watch: Replies | None = None

        def _received(self, stanza: Any) -> None:
            if self.watch is None or not self.watch(stanza):
                super()._received(stanza)

    probe = Probe(server, "probe", USERS["probe"], "bench")
    try:
        await probe.connect(reactor).addTimeout(WAIT, reactor)
    except defer.TimeoutError as e:
        raise BenchError(f"the probe did not log in within {WAIT}s") from e
    nodelay(probe.stream)
    try:
        await probe.join(room, "probe")
        # The bot is in the room (and so logged in, available for private chat) once the
        # room tells the probe of its presence; the bot starts with Prosody.
        try:
            await probe.wait_for(
                lambda s: (
                    s.name == "presence"
                    and s.getAttribute("from") == f"{room}/{BOT}"
                    and s.getAttribute("type") is None
                    and not is_self_presence(s)
                ),
                since=0,
                timeout=WAIT,
            )
        except defer.TimeoutError as e:
            raise BenchError(f"the bot did not join {room} within {WAIT}s") from e
        cases = [
            ("room", room, "groupchat", f"{BOT}: echo ", lambda f: f == f"{room}/{BOT}"),
            ("private", bot_jid, "chat", "echo ", lambda f: f.split("/", 1)[0] == bot_jid),
        ]
        for label, to, kind, command, is_bot in cases:
            replies = Replies(is_bot, shown)
            probe.watch = replies
            await sequential(reactor, probe, to, kind, command, args.warmup, replies, "w")
            bot_cpu, server_cpu = cpu_seconds(bot.process.pid), cpu_seconds(server.process.pid)
            times = await sequential(reactor, probe, to, kind, command, args.count, replies, "s")
            rows.append(
                {
                    "case": f"{label}: {args.count:,} sequential",
                    "replies": len(times),
                    "p50": percentile(times, 0.50) * 1000,
                    "p99": percentile(times, 0.99) * 1000,
                    "rate": len(times) / sum(times),
                    "bot_cpu": (cpu_seconds(bot.process.pid) - bot_cpu) / len(times) * 1000,
                    "server_cpu": (cpu_seconds(server.process.pid) - server_cpu)
                    / len(times)
                    * 1000,
                }
            )
            bot_cpu, server_cpu = cpu_seconds(bot.process.pid), cpu_seconds(server.process.pid)
            received, seconds, in_order = await burst(
                reactor, probe, to, kind, command, args.burst, replies, args.window
            )
            note = "" if in_order else "OUT OF ORDER"
            if received < args.burst:
                note += f" only {received:,} of {args.burst:,} within {args.window:.0f}s"
            per = 1000 / received if received else 0.0
            rows.append(
                {
                    "case": f"{label}: {args.burst:,} back to back",
                    "replies": received,
                    "p50": None,
                    "p99": None,
                    "rate": received / seconds if seconds > 0 else 0.0,
                    "bot_cpu": (cpu_seconds(bot.process.pid) - bot_cpu) * per,
                    "server_cpu": (cpu_seconds(server.process.pid) - server_cpu) * per,
                    "note": note.strip(),
                }
            )
            probe.watch = None
    finally:
        await probe.close()


# -- the run ---------------------------------------------------------------------------------


def run(args: argparse.Namespace) -> list[dict[str, Any]]:
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from tests.sources.xmpp_harness import DOMAIN, MUC, ProsodyServer

    directory = Path(tempfile.mkdtemp(prefix="botcore-bench-xmpp-"))
    os.environ.setdefault("BOTCORE_PROSODY_LOG", "warn")
    server = ProsodyServer(USERS)
    rows: list[dict[str, Any]] = []
    bot: BotProcess | None = None
    try:
        server.start()
        config = write_config(directory, server.port, server.ca_file, f"bench@{MUC}", DOMAIN)
        bot = BotProcess(config, directory / "bot.log")
        outcome: list[BaseException] = []
        run_reactor(args, server, bot, rows, outcome)
        if outcome:
            raise outcome[0]
    finally:
        if bot is not None:
            bot.stop()
            log = bot.log.read_text(errors="replace").strip()
            if log and args.verbose:
                print(f"-- bot log --\n{log}", file=sys.stderr)
        server.cleanup()
        shutil.rmtree(directory, ignore_errors=True)
    return rows


def run_reactor(args: argparse.Namespace, server: Any, bot: BotProcess,
                rows: list[dict[str, Any]], outcome: list[BaseException]) -> None:  # fmt: skip
    """Run `measure` under the real reactor, bounded by --limit seconds in all; the
    reactor also stops on SIGINT/SIGTERM (Twisted's handlers), and `run` cleans up."""
    from twisted.internet import reactor as the_reactor
    from twisted.internet.defer import ensureDeferred

    reactor: Any = the_reactor

    done: list[bool] = []

    def finished(result: Any) -> None:
        done.append(True)
        if hasattr(result, "value"):
            outcome.append(result.value)
        if reactor.running:
            reactor.stop()

    def too_long() -> None:
        outcome.append(BenchError(f"the benchmark did not finish within {args.limit:.0f}s"))
        reactor.stop()

    def start() -> None:
        d = ensureDeferred(measure(reactor, args, server, bot, rows))
        d.addBoth(finished)

    watchdog = reactor.callLater(args.limit, too_long)
    reactor.callWhenRunning(start)
    reactor.run()
    if watchdog.active():
        watchdog.cancel()
    if not done and not outcome:
        outcome.append(BenchError("interrupted (the reactor stopped before the end)"))


def print_table(rows: list[dict[str, Any]]) -> None:
    print("XMPP round trip: probe -> Prosody (STARTTLS, MUC) -> bot process -> Prosody -> probe")
    header = (
        f"{'case':<32} {'replies':>8} {'p50 ms':>8} {'p99 ms':>8} {'replies/s':>10}"
        f" {'bot CPU s/1k':>13} {'prosody CPU s/1k':>17}"
    )
    print(header)
    print("-" * len(header))
    for row in rows:
        p50 = f"{row['p50']:.2f}" if row["p50"] is not None else "-"
        p99 = f"{row['p99']:.2f}" if row["p99"] is not None else "-"
        print(
            f"{row['case']:<32} {row['replies']:>8,} {p50:>8} {p99:>8} {row['rate']:>10,.1f}"
            f" {row['bot_cpu']:>13.2f} {row['server_cpu']:>17.2f}"
            + (f"  {row['note']}" if row.get("note") else "")
        )


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="bench/xmpp_roundtrip.py", description=USAGE)
    parser.add_argument("--count", type=int, default=1000, help="sequential commands")
    parser.add_argument("--warmup", type=int, default=100, help="unmeasured commands first")
    parser.add_argument(
        "--burst",
        type=int,
        default=800,
        help="back-to-back commands (above about 1,000 the dispatcher drops some)",
    )
    parser.add_argument(
        "--window", type=float, default=120.0, help="seconds to wait for a burst's replies"
    )
    parser.add_argument(
        "--limit", type=float, default=900.0, help="seconds the whole measurement may take"
    )
    parser.add_argument("--verbose", action="store_true", help="show the bot's warnings")
    parser.add_argument("--serve", metavar="CONFIG", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if not args.serve and (min(args.count, args.burst) < 1 or args.warmup < 0):
        parser.error("--count and --burst must be at least 1, --warmup at least 0")
    return args


def _terminate(signum: int, frame: Any) -> None:
    # Before and after the reactor runs (Twisted has its own handlers meanwhile): turn
    # SIGTERM into SystemExit so the finally blocks stop the bot and Prosody.
    raise SystemExit(128 + signum)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.serve:
        serve(args.serve)
        return
    signal.signal(signal.SIGTERM, _terminate)
    try:
        rows = run(args)
    except (BenchError, RuntimeError, OSError, subprocess.SubprocessError) as e:
        print(f"bench/xmpp_roundtrip.py: {e}", file=sys.stderr)
        raise SystemExit(1) from None
    print_table(rows)


if __name__ == "__main__":
    main()
