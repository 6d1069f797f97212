"""Benchmark of the Matrix round trip: a probe client (matrix-nio's state machine on treq)
sends ``echo`` commands to the bot on a real Synapse, in a plain and in an encrypted room,
and times the replies (sequential latency, a pipelined burst)."""

from __future__ import annotations

import argparse
import configparser
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from measure import percentile  # noqa: E402

from tests.sources.matrix_harness import Peer, SynapseServer, wait_until  # noqa: E402

BOT = "benchbot"

USAGE = """\
Start Synapse (from .synapse-venv; .ci/install-matrix.sh) and, in this process on the
real reactor, the bot (core + basic plugins, Matrix source) and a probe client; print
p50/p99 round-trip latency of sequential echo commands and replies/s for a burst of
pipelined ones, in a plain room and in an encrypted room. Bot, probe and their
encryption share this one process (and its CPU); Synapse runs beside them.
"""


def write_config(directory: Path, url: str, user_id: str) -> Path:
    parser = configparser.ConfigParser(interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read_dict(
        {
            "bot": {"name": BOT, "autoload": "no", "load": "core, basic"},
            "database:main": {"url": f"sqlite:///{directory / 'bot.sqlite'}"},
            "plugin:core": {"limit_time": "0"},
            "source:matrix": {
                "type": "matrix",
                "homeserver": url,
                "user_id": user_id,
                "password": "${ENV:MATRIX_PASSWORD}",
                "invites": "everyone",
                "reply_to_trigger": "no",
            },
        }
    )
    path = directory / "bot.ini"
    with open(path, "w", encoding="utf-8") as handle:
        parser.write(handle)
    return path


async def measure(reactor: Any, args: argparse.Namespace) -> list[dict[str, Any]]:
    from botcore.bot import Bot
    from botcore.settings import read_config

    directory = Path(tempfile.mkdtemp(prefix="botcore-bench-matrix-"))
    server = SynapseServer()
    rows: list[dict[str, Any]] = []
    bot = None
    peer = None
    try:
        server.start()
        bot_id = server.register("benchbot", "benchbot-password")
        probe_id = server.register("probe", "probe-password")
        config = read_config(
            write_config(directory, server.url, bot_id),
            environ={"MATRIX_PASSWORD": "benchbot-password"},
        )
        bot = Bot(config, reactor=reactor)
        await bot.startService()
        source: Any = bot.get_source("matrix")
        await wait_until(lambda: source.state == "connected", "the bot to sync")
        (directory / "probe").mkdir()
        peer = Peer(server.url, probe_id, "probe-password", directory / "probe")
        await peer.start()
        for encrypted in (False, True):
            room = await peer.create_room(bot_id, encrypted=encrypted)
            await peer.wait_event(
                room,
                lambda raw: (
                    raw.get("type") == "m.room.member"
                    and raw.get("state_key") == bot_id
                    and raw["content"].get("membership") == "join"
                ),
                "the bot to join",
            )
            # Warm up: the first message shares the room keys.
            await peer.send(room, f"{BOT}: echo warm")
            await peer.wait_text(room, bot_id, "warm")
            latencies = []
            for i in range(args.count):
                began = time.perf_counter()
                await peer.send(room, f"{BOT}: echo seq{i:04d}")
                await peer.wait_text(room, bot_id, f"seq{i:04d}")
                latencies.append(time.perf_counter() - began)
            began = time.perf_counter()
            for i in range(args.burst):
                await peer.send(room, f"{BOT}: echo burst{i:04d}")
            await wait_until(
                lambda room=room: (
                    sum("burst" in t for t in peer.texts(room, bot_id)) == args.burst
                ),
                "the burst's replies",
                timeout=args.count * 5 + 60,
            )
            elapsed = time.perf_counter() - began
            rows.append(
                {
                    "room": "encrypted" if encrypted else "plain",
                    "p50_ms": percentile(latencies, 0.5) * 1000,
                    "p99_ms": percentile(latencies, 0.99) * 1000,
                    "burst": args.burst,
                    "burst_per_s": args.burst / elapsed,
                }
            )
    finally:
        if peer is not None:
            await peer.stop()
        if bot is not None and bot.running:
            await bot.stopService()
        server.cleanup()
        shutil.rmtree(directory, ignore_errors=True)
    return rows


def print_table(rows: list[dict[str, Any]]) -> None:
    print(f"{'room':<10} {'p50 ms':>8} {'p99 ms':>8} {'burst':>6} {'replies/s':>10}")
    for row in rows:
        print(
            f"{row['room']:<10} {row['p50_ms']:8.1f} {row['p99_ms']:8.1f} "
            f"{row['burst']:6d} {row['burst_per_s']:10.1f}"
        )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=USAGE)
    parser.add_argument("--count", type=int, default=50, help="sequential echoes per room")
    parser.add_argument("--burst", type=int, default=50, help="pipelined echoes per room")
    args = parser.parse_args(argv)

    from twisted.internet import reactor
    from twisted.internet.defer import Deferred

    result: dict[str, Any] = {}

    def run() -> None:
        d = Deferred.fromCoroutine(measure(reactor, args))

        def done(value: Any) -> None:
            result["value"] = value
            reactor.stop()  # type: ignore[attr-defined]

        d.addBoth(done)

    reactor.callWhenRunning(run)  # type: ignore[attr-defined]
    reactor.run()  # type: ignore[attr-defined]
    value = result.get("value")
    if not isinstance(value, list):
        print(f"the benchmark failed: {value}", file=sys.stderr)
        sys.exit(1)
    print_table(value)


if __name__ == "__main__":
    main()
