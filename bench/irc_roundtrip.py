"""Benchmark of the IRC round trip: a probe client sends ``echo`` commands to the bot in a
channel on a real ngircd and times the replies (sequential latency, pipelined throughput)."""

from __future__ import annotations

import argparse
import configparser
import os
import shutil
import socket
import sys
import tempfile
import threading
import time
from collections import deque
from pathlib import Path
from typing import Any

from measure import BenchError, ChildProcess, cpu_seconds, percentile

CHANNEL = "#bench"
BOT = "benchbot"
WAIT = 30.0

USAGE = """\
Start ngircd (flood penalties off) and the bot (by default core + basic; --plugins default
for the default plugin set; the IRC source) in its own process, connect a probe client,
and print p50/p99 round-trip latency of sequential echo commands and replies/s for a burst
of pipelined ones (the bot's flood control off, then at its defaults: --flood), with the
CPU seconds the bot and ngircd spent per 1,000 replies.
"""


# -- the bot, in its own process ------------------------------------------------------------


def serve(path: str, profile: str | None = None) -> None:
    """Run a bot from the config at ``path`` until SIGTERM (the bench's child process);
    with ``profile``, cProfile data of the reactor thread is written there at the end."""
    from twisted.internet import reactor
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
    bot = Bot(read_config(path), reactor=reactor)
    reactor.callWhenRunning(bot.startService)
    reactor.addSystemEventTrigger("before", "shutdown", bot.stopService)
    if profile is None:
        reactor.run()
        return
    import cProfile

    profiler = cProfile.Profile()
    profiler.runcall(reactor.run)
    profiler.dump_stats(profile)


def plugin_list(plugins: str) -> list[str]:
    """The plugins ``--plugins`` names: ``default`` is bench/dispatch.py's default set."""
    if plugins == "default":
        from dispatch import DEFAULT_PLUGINS

        return list(DEFAULT_PLUGINS)
    return [name.strip() for name in plugins.split(",") if name.strip()]


def write_config(directory: Path, port: int, flood: bool, plugins: list[str]) -> Path:
    source = {
        "type": "irc",
        "servers": f"tcp:127.0.0.1:{port}",
        "nick": BOT,
        "channels": CHANNEL,
    }
    if not flood:
        source["flood_rate"] = "0"
    parser = configparser.ConfigParser(interpolation=None)
    parser.optionxform = str
    sections: dict[str, dict[str, str]] = {
        "bot": {"name": BOT, "autoload": "no", "load": ", ".join(plugins)},
        "database:main": {"url": f"sqlite:///{directory / 'bench.sqlite'}"},
        "plugin:core": {"limit_time": "0"},
        "logging": {"level": "warn"},
        "source:irc": source,
    }
    if "urlgrab" in plugins:
        sections["plugin:urlgrab"] = {"fetch_titles": "no"}  # never the network
    parser.read_dict(sections)
    path = directory / ("flood.ini" if flood else "noflood.ini")
    with open(path, "w", encoding="utf-8") as handle:
        parser.write(handle)
    return path


class BotProcess(ChildProcess):
    """This script's ``--serve`` in its own process: the bot."""

    def __init__(self, config: Path, log: Path, profile: str | None = None) -> None:
        command = [sys.executable, os.path.abspath(__file__), "--serve", str(config)]
        if profile:
            command += ["--profile", os.path.abspath(profile)]
        super().__init__(command, log, config.parent, WAIT)


# -- the probe ------------------------------------------------------------------------------


class Probe:
    """A blocking IRC client with TCP_NODELAY that reads line by line."""

    def __init__(self, port: int, nick: str = "probe") -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=WAIT)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buffer = b""
        self.pending: deque[bytes] = deque()
        self.send(f"NICK {nick}\r\nUSER {nick} 0 * :bench probe\r\n")
        self.wait_for(b" 001 ")

    def send(self, text: str) -> None:
        self.sock.sendall(text.encode("utf-8"))

    def lines(self):
        """Received lines, forever (PINGs answered); raises TimeoutError when idle. Lines
        not yet taken stay in ``pending`` when the caller stops early."""
        while True:
            while not self.pending:
                data = self.sock.recv(262144)
                if not data:
                    raise BenchError("the server closed the probe's connection")
                *complete, self.buffer = (self.buffer + data).split(b"\r\n")
                self.pending.extend(complete)
            line = self.pending.popleft()
            if line.startswith(b"PING "):
                self.send("PONG " + line[5:].decode() + "\r\n")
                continue
            yield line

    def wait_for(self, needle: bytes) -> bytes:
        deadline = time.monotonic() + WAIT
        for line in self.lines():
            if needle in line:
                return line
            if time.monotonic() > deadline:
                break
        raise BenchError(f"probe: no line with {needle!r} within {WAIT}s")

    def close(self) -> None:
        try:
            self.send("QUIT :done\r\n")
        finally:
            self.sock.close()


def wait_for_bot(probe: Probe) -> None:
    """Join the channel and wait until the bot is there."""
    probe.send(f"JOIN {CHANNEL}\r\n")
    probe.wait_for(b" 366 ")
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        probe.send(f"NAMES {CHANNEL}\r\n")
        line = probe.wait_for(b" 353 ")
        if BOT.encode() in line.split(b" :", 1)[-1].split():
            probe.wait_for(b" 366 ")
            return
        probe.wait_for(b" 366 ")
        time.sleep(0.05)
    raise BenchError(f"the bot did not join {CHANNEL} within {WAIT}s")


def sequential(probe: Probe, count: int) -> list[float]:
    """Round-trip times (seconds) of ``count`` echo commands sent one after another."""
    times = []
    lines = probe.lines()
    for i in range(count):
        expected = f"PRIVMSG {CHANNEL} :seq-{i}".encode()
        started = time.perf_counter()
        probe.send(f"PRIVMSG {CHANNEL} :{BOT}: echo seq-{i}\r\n")
        for line in lines:
            if line.endswith(expected):
                times.append(time.perf_counter() - started)
                break
    return times


def burst(probe: Probe, count: int, window: float) -> tuple[int, float, bool]:
    """Send ``count`` echo commands at once (from a writer thread) and read replies until
    all arrived or ``window`` seconds passed. Returns (replies, seconds, in_order)."""
    payload = "".join(f"PRIVMSG {CHANNEL} :{BOT}: echo b-{i}\r\n" for i in range(count))
    data = payload.encode()
    started = time.perf_counter()
    writer = threading.Thread(target=probe.sock.sendall, args=(data,), daemon=True)
    writer.start()
    received = 0
    in_order = True
    last = started
    prefix = f"PRIVMSG {CHANNEL} :b-".encode()
    deadline = started + window
    probe.sock.settimeout(0.2)
    try:
        while received < count and time.perf_counter() < deadline:
            try:
                for line in probe.lines():
                    at = line.find(prefix)
                    if at >= 0:
                        number = int(line[at + len(prefix) :])
                        in_order = in_order and number == received
                        received += 1
                        last = time.perf_counter()
                        if received == count or last > deadline:
                            break
            except TimeoutError:
                continue
    finally:
        probe.sock.settimeout(WAIT)
    writer.join(WAIT)
    return received, last - started, in_order


# -- the run ---------------------------------------------------------------------------------


class CPU:
    """CPU seconds the bot's and the server's processes spend from here to `per_1000`."""

    def __init__(self, bot: int, server: int) -> None:
        self.pids = (bot, server)
        self.before = [cpu_seconds(pid) for pid in self.pids]

    def per_1000(self, replies: int) -> tuple[float, float]:
        bot, server = (
            (cpu_seconds(pid) - before) / max(1, replies) * 1000
            for pid, before in zip(self.pids, self.before, strict=True)
        )
        return bot, server


def run(args: argparse.Namespace) -> list[dict[str, Any]]:
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from tests.ircserver import IRCServer

    directory = Path(tempfile.mkdtemp(prefix="botcore-bench-irc-"))
    server = IRCServer(penalties=False)
    server.start()
    assert server.process is not None
    rows: list[dict[str, Any]] = []
    try:
        for flood in args.floods:
            profile = f"{args.profile}-flood-{'on' if flood else 'off'}" if args.profile else None
            config = write_config(directory, server.port, flood, args.plugin_names)
            bot = BotProcess(config, directory / f"bot-{flood}.log", profile)
            try:
                probe = Probe(server.port, "probe" if not flood else "probe2")
                try:
                    wait_for_bot(probe)
                    label = "on" if flood else "off"
                    if not flood and args.commands:
                        for _ in sequential(probe, args.warmup):
                            pass
                        cpu = CPU(bot.process.pid, server.process.pid)
                        times = sequential(probe, args.commands)
                        bot_cpu, server_cpu = cpu.per_1000(len(times))
                        rows.append(
                            {
                                "case": f"{args.commands:,} sequential, flood control {label}",
                                "replies": len(times),
                                "p50": percentile(times, 0.50) * 1000,
                                "p99": percentile(times, 0.99) * 1000,
                                "rate": len(times) / sum(times),
                                "bot_cpu": bot_cpu,
                                "server_cpu": server_cpu,
                            }
                        )
                    window = args.window if flood else WAIT * 4
                    cpu = CPU(bot.process.pid, server.process.pid)
                    received, seconds, in_order = burst(probe, args.burst, window)
                    # With flood control on few replies leave in the window, though every
                    # command is handled: its CPU is per 1,000 commands.
                    bot_cpu, server_cpu = cpu.per_1000(args.burst if flood else received)
                    rows.append(
                        {
                            "case": f"{args.burst:,} pipelined, flood control {label}",
                            "replies": received,
                            "p50": None,
                            "p99": None,
                            "rate": received / seconds if seconds > 0 else 0.0,
                            "bot_cpu": bot_cpu,
                            "server_cpu": server_cpu,
                            "note": ("" if in_order else "OUT OF ORDER ")
                            + (f"({window:.0f}s window)" if flood else ""),
                        }
                    )
                finally:
                    probe.close()
            finally:
                bot.stop()
                errors = bot.log.read_text(errors="replace").strip()
                if errors and args.verbose:
                    print(f"-- bot log ({'flood' if flood else 'no flood'}) --\n{errors}")
    finally:
        server.cleanup()
        shutil.rmtree(directory, ignore_errors=True)
    return rows


def print_table(rows: list[dict[str, Any]], plugins: str) -> None:
    print("IRC round trip: probe -> ngircd (penalties off) -> bot process -> ngircd -> probe")
    print(f"plugins: {plugins}")
    header = (
        f"{'case':<42} {'replies':>8} {'p50 ms':>8} {'p99 ms':>8} {'replies/s':>10}"
        f" {'bot CPU s/1k':>13} {'ngircd CPU s/1k':>16}"
    )
    print(header)
    print("-" * len(header))
    for row in rows:
        p50 = f"{row['p50']:.3f}" if row["p50"] is not None else "-"
        p99 = f"{row['p99']:.3f}" if row["p99"] is not None else "-"
        print(
            f"{row['case']:<42} {row['replies']:>8,} {p50:>8} {p99:>8} {row['rate']:>10,.1f}"
            f" {row['bot_cpu']:>13.3f} {row['server_cpu']:>16.3f}"
            + (f"  {row['note']}" if row.get("note") else "")
        )


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="bench/irc_roundtrip.py", description=USAGE)
    parser.add_argument(
        "--plugins",
        default="core,basic",
        help="the bot's plugins: 'default' (bench/dispatch.py's default set) or a "
        "comma-separated list (default: core,basic)",
    )
    parser.add_argument(
        "--flood",
        choices=("off", "on", "both"),
        default="both",
        help="the bot's own flood control: off (flood_rate 0), on (its defaults) or both "
        "(off first, then on: the default); the sequential row runs with it off",
    )
    parser.add_argument("--commands", type=int, default=1000, help="sequential commands")
    parser.add_argument("--warmup", type=int, default=100, help="unmeasured commands first")
    parser.add_argument("--burst", type=int, default=10_000, help="pipelined commands")
    parser.add_argument(
        "--window",
        type=float,
        default=20.0,
        help="seconds to count replies with flood control at its defaults",
    )
    parser.add_argument(
        "--profile",
        metavar="PREFIX",
        help="write cProfile data of the bot's reactor thread to PREFIX-flood-off/-on",
    )
    parser.add_argument("--verbose", action="store_true", help="show the bot's warnings")
    parser.add_argument("--serve", metavar="CONFIG", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    args.plugin_names = plugin_list(args.plugins)
    if not args.plugin_names:
        parser.error("--plugins names no plugin")
    args.floods = {"off": (False,), "on": (True,), "both": (False, True)}[args.flood]
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.serve:
        serve(args.serve, args.profile)
        return
    try:
        rows = run(args)
    except (BenchError, RuntimeError, OSError) as e:
        print(f"bench/irc_roundtrip.py: {e}", file=sys.stderr)
        raise SystemExit(1) from None
    print_table(rows, args.plugins)


if __name__ == "__main__":
    main()
