"""Benchmark of start-up and footprint: time from starting ``twistd -n botcore`` to its
first answer on the telnet console, with a current schema, and its resident memory idle
and after a run of events."""

from __future__ import annotations

import argparse
import configparser
import os
import socket
import statistics
import sys
import tempfile
import time
from pathlib import Path

from dispatch import DEFAULT_PLUGINS
from measure import BenchError, ChildProcess

from botcore.testing.network import free_port

BOT = "startbot"
WAIT = 60.0

USAGE = """\
Start the bot as a user does (twistd -n botcore -c bot.ini: the default plugin set, SQLite,
the telnet console) several times on a database whose schema is current, and print the
time from the start of the process to its first answer (a nick, then "ping"); then its
resident memory idle, and after --events more commands.
"""


def write_config(directory: Path, port: int, plugins: list[str]) -> Path:
    parser = configparser.ConfigParser(interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    sections = {
        "bot": {"name": BOT, "autoload": "no", "load": ", ".join(plugins)},
        "database:main": {"url": f"sqlite:///{directory / 'bot.sqlite'}"},
        "logging": {"level": "warn"},
        "source:console": {"type": "telnet", "endpoint": f"tcp:{port}:interface=127.0.0.1"},
        "plugin:core": {"limit_time": "0"},
    }
    if "urlgrab" in plugins:
        sections["plugin:urlgrab"] = {"fetch_titles": "no"}
    if "log" in plugins:
        sections["plugin:log"] = {"path": str(directory / "logs/{source}/{channel}/{day}.log")}
    parser.read_dict(sections)
    path = directory / "bot.ini"
    with open(path, "w", encoding="utf-8") as handle:
        parser.write(handle)
    return path


class Console:
    """A blocking telnet-console client that reads line by line."""

    def __init__(self, port: int, deadline: float) -> None:
        while True:
            try:
                self.sock = socket.create_connection(("127.0.0.1", port), timeout=WAIT)
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise BenchError("the bot's console never listened") from None
                time.sleep(0.002)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buffer = b""

    def line(self) -> str:
        while b"\n" not in self.buffer:
            data = self.sock.recv(65536)
            if not data:
                raise BenchError("the console closed the connection")
            self.buffer += data
        line, self.buffer = self.buffer.split(b"\n", 1)
        return line.decode("utf-8", "replace").rstrip("\r")

    def until(self, text: str) -> None:
        while text not in self.line():
            pass

    def send(self, text: str) -> None:
        self.sock.sendall(text.encode() + b"\n")

    def close(self) -> None:
        self.sock.close()


class BotProcess(ChildProcess):
    """``twistd -n botcore -c CONFIG`` in its own process."""

    def __init__(self, config: Path) -> None:
        twistd = Path(sys.executable).with_name("twistd")
        command = [str(twistd), "-n", "--pidfile=", "botcore", "-c", str(config)]
        super().__init__(command, config.parent / "bot.log", config.parent, WAIT)

    def cpu(self) -> float:
        """CPU seconds (user and system, all threads) the process has used so far."""
        fields = Path(f"/proc/{self.process.pid}/stat").read_text().rpartition(")")[2].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def rss(self) -> tuple[float, float]:
        """(resident MiB now, the most it has been) from /proc."""
        found = {}
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                found[key] = int(value.split()[0]) / 1024
        return found["VmRSS"], found["VmHWM"]


def first_answer(bot: BotProcess, port: int) -> tuple[float, float, Console]:
    """Seconds from the start of ``bot`` to its answer to "ping", the CPU seconds it had
    used by then, and the console."""
    console = Console(port, bot.started + WAIT)
    console.until("What is your nick?")
    console.send("prober")
    console.until("Hi prober!")
    console.send("ping")
    console.until("pong")
    return time.monotonic() - bot.started, bot.cpu(), console


def load(console: Console, events: int, window: int) -> float:
    """Send ``events`` pings, ``window`` outstanding; seconds they took."""
    started = time.monotonic()
    sent = answered = 0
    while answered < events:
        while sent < events and sent - answered < window:
            console.send("ping")
            sent += 1
        if console.line() == "pong":
            answered += 1
    return time.monotonic() - started


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="bench/startup.py", description=USAGE)
    parser.add_argument("--runs", type=int, default=5, help="measured starts")
    parser.add_argument("--events", type=int, default=100_000, help="commands after idle")
    parser.add_argument("--window", type=int, default=20, help="commands outstanding")
    parser.add_argument("--idle", type=float, default=2.0, help="seconds idle before RSS")
    parser.add_argument(
        "--plugins", default="default", help="plugins, comma-separated, or 'default'"
    )
    parser.add_argument(
        "--no-bytecode-cache",
        action="store_true",
        help="leave PYTHONDONTWRITEBYTECODE as it is (by default it is unset for the bot, "
        "so its first, unmeasured start writes the .pyc files later ones read, as they "
        "would be for a user)",
    )
    args = parser.parse_args(argv)
    if not args.no_bytecode_cache:
        os.environ.pop("PYTHONDONTWRITEBYTECODE", None)  # the bot inherits the environment
    cached = not os.environ.get("PYTHONDONTWRITEBYTECODE")
    plugins = (
        list(DEFAULT_PLUGINS)
        if args.plugins == "default"
        else [p for p in args.plugins.split(",") if p]
    )
    with tempfile.TemporaryDirectory(prefix="botcore-startup-") as tmp:
        port = free_port()
        config = write_config(Path(tmp), port, plugins)
        # The first start creates the schema: not measured.
        bot = BotProcess(config)
        try:
            first_answer(bot, port)[2].close()
        finally:
            bot.stop()
        times, cpus = [], []
        for run in range(args.runs):
            bot = BotProcess(config)
            try:
                seconds, cpu, console = first_answer(bot, port)
                times.append(seconds)
                cpus.append(cpu)
                if run < args.runs - 1:
                    console.close()
                    continue
                time.sleep(args.idle)
                idle, _ = bot.rss()
                took = load(console, args.events, args.window) if args.events else 0.0
                after, peak = bot.rss()
                console.close()
            finally:
                bot.stop()
    print(f"plugins: {', '.join(plugins)}")
    print(f"bytecode cache: {'used' if cached else 'off (PYTHONDONTWRITEBYTECODE)'}")
    print(f"{'first answer s':<28} {'min':>7} {'median':>7} {'max':>7}")
    print("-" * 52)
    for label, values in (("start to first answer", times), ("CPU used by then", cpus)):
        print(
            f"{label:<28} {min(values):>7.3f} "
            f"{statistics.median(values):>7.3f} {max(values):>7.3f}"
        )
    print()
    print(f"{'resident memory MiB':<28} {'value':>7}")
    print("-" * 36)
    print(f"{'idle after first answer':<28} {idle:>7.1f}")
    if args.events:
        print(f"{f'after {args.events} commands':<28} {after:>7.1f}")
        print(f"{'peak':<28} {peak:>7.1f}")
        print(f"({args.events} commands in {took:.1f} s, {args.events / took:.0f}/s)")


if __name__ == "__main__":
    main()
