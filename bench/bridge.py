"""Benchmark of the bridge plugin across three real networks at once: messages said on
IRC, XMPP and Matrix relayed by one bot (in its own process) to the two others; relay
latency per direction (sequential, then under a burst) and copies relayed per second."""

from __future__ import annotations

import argparse
import os
import re
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from measure import BenchError, ChildProcess, percentile  # noqa: E402
from xmpp_roundtrip import serve  # noqa: E402

from tests.ircserver import LineClient  # noqa: E402
from tests.sources.bridge_harness import BOT, Networks, muc  # noqa: E402
from tests.sources.matrix_harness import Peer, wait_until  # noqa: E402

#: The longest any one wait (a start, a login, the bot joining) may take.
WAIT = 60.0
CHANNEL = "#bench"
ROOM = muc("bench")
NETWORKS = ("irc", "xmpp", "matrix")
#: What each bench message carries, so that every copy is known wherever it arrives.
TOKEN = re.compile(r"bench (irc|xmpp|matrix) (\w+) (\d+)")

USAGE = """\
Start ngircd, Prosody and Synapse (tests/sources/bridge_harness.py), the bot (core, basic
and bridge; one three-way bridge of #bench, bench@conference.localhost and a Matrix room)
in its own process, and a person's client on each network in this process (the real
reactor). Print, for each of the six directions, the p50/p99 relay latency of --count
sequential messages (each relayed to both other networks before the next) and of a burst
(--burst messages from each network at once), and the copies relayed per second in the
burst.
"""


class BotProcess(ChildProcess):
    """This script's ``--serve`` in its own process: the bot."""

    def __init__(self, config: Path, log: Path) -> None:
        command = [sys.executable, os.path.abspath(__file__), "--serve", str(config)]
        super().__init__(command, log, ROOT, WAIT)


class Arrivals:
    """When each copy arrived, by (origin network, phase, number, network it reached)."""

    def __init__(self) -> None:
        self.times: dict[tuple[str, str, int, str], float] = {}
        self.order: dict[str, list[tuple[str, str, int]]] = {n: [] for n in NETWORKS}

    def seen(self, network: str, text: str) -> None:
        found = TOKEN.search(text)
        if found is None:
            return
        origin, phase, number = found.group(1), found.group(2), int(found.group(3))
        key = (origin, phase, number, network)
        if key not in self.times:
            self.times[key] = time.perf_counter()
            self.order[network].append((origin, phase, number))

    def count(self, phase: str) -> int:
        return sum(1 for key in self.times if key[1] == phase)


class TimedLineClient(LineClient):
    """An IRC client that notes when each of the bot's lines in CHANNEL arrives."""

    arrivals: Arrivals

    def lineReceived(self, line: bytes) -> None:
        text = line.decode("utf-8", "replace")
        if text.startswith(f":{BOT}!") and f" PRIVMSG {CHANNEL} :" in text:
            self.arrivals.seen("irc", text)
        super().lineReceived(line)


class TimedPeer(Peer):
    """A Matrix client that notes when each of the bot's messages arrives (in its sync)."""

    arrivals: Arrivals
    bot_id: str

    async def sync_once(self, timeout_ms: int = 500) -> None:
        before = len(self.events)
        await super().sync_once(timeout_ms)
        for _room, raw in self.events[before:]:
            if raw.get("sender") == self.bot_id and raw.get("type") == "m.room.message":
                self.arrivals.seen("matrix", str(raw.get("content", {}).get("body", "")))


async def measure(reactor: Any, args: argparse.Namespace, directory: Path) -> dict[str, Any]:
    from twisted.internet import protocol
    from twisted.internet.endpoints import TCP4ClientEndpoint

    networks = Networks()
    bot: BotProcess | None = None
    clients: list[Any] = []
    peer: TimedPeer | None = None
    arrivals = Arrivals()
    try:
        began = time.perf_counter()
        networks.start()
        started = time.perf_counter() - began
        bot_id = networks.matrix_ids[BOT]
        (directory / "carol").mkdir()
        peer = await networks.matrix_peer("carol", directory / "carol", TimedPeer)
        peer.arrivals, peer.bot_id = arrivals, bot_id
        room = await networks.matrix_room(peer)
        sections: dict[str, dict[str, str]] = {
            **networks.sources(directory, channels=CHANNEL, rooms=ROOM),
            "bridge:bench": {"conversations": f"irc:{CHANNEL} xmpp:{ROOM} matrix:{room}"},
            "logging": {"level": "warn"},
        }
        config = networks.write_config(directory, sections)
        bot = BotProcess(config, directory / "bot.log")

        # alice on IRC (joined before the bot, so that she sees it join).
        endpoint = TCP4ClientEndpoint(reactor, networks.irc.host, networks.irc.port, timeout=WAIT)
        alice = TimedLineClient("alice")
        alice.arrivals = arrivals
        await endpoint.connect(protocol.Factory.forProtocol(lambda: alice))
        clients.append(alice)
        await alice.registered.addTimeout(WAIT, reactor)
        alice.send(f"JOIN {CHANNEL}")
        bob = await networks.xmpp_client("bob", ROOM)
        clients.append(bob)
        assert bob.stream is not None
        bob.stream.addObserver(
            "/message",
            lambda s: (
                arrivals.seen("xmpp", str(s.body))
                if s.getAttribute("from") == f"{ROOM}/{BOT}" and s.body is not None
                else None
            ),
        )

        def bot_in_all() -> bool:
            if bot is not None and bot.process.poll() is not None:
                raise BenchError(f"the bot exited (see {bot.log})")
            return (
                any(
                    (line.startswith(f":{BOT}!") and " JOIN " in line)
                    or (" 353 " in line and BOT in line)
                    for line in alice.lines
                )
                and any(
                    s.name == "presence" and s.getAttribute("from") == f"{ROOM}/{BOT}"
                    for s in bob.stanzas
                )
                and any(
                    raw.get("type") == "m.room.member"
                    and raw.get("state_key") == bot_id
                    and raw["content"].get("membership") == "join"
                    for _room, raw in peer.events
                )
            )

        await wait_until(bot_in_all, "the bot in the three conversations")

        async def say(network: str, text: str) -> None:
            if network == "irc":
                alice.send(f"PRIVMSG {CHANNEL} :{text}")
            elif network == "xmpp":
                bob.message(ROOM, text, kind="groupchat")
            else:
                assert peer is not None
                await peer.send(room, text)

        sent: dict[tuple[str, str, int], float] = {}

        async def one(network: str, phase: str, number: int) -> None:
            sent[(network, phase, number)] = time.perf_counter()
            await say(network, f"bench {network} {phase} {number}")

        def arrived(phase: str, copies: int) -> Callable[[], bool]:
            return lambda: arrivals.count(phase) >= copies

        # Warm-up: one message from each network, all six copies in.
        for network in NETWORKS:
            await one(network, "warm", 0)
        await wait_until(arrived("warm", 6), "the warm-up copies")

        # Sequential: each message relayed to both others before the next is said.
        for number in range(args.count):
            for index, network in enumerate(NETWORKS):
                await one(network, "seq", number)
                await wait_until(
                    arrived("seq", 2 * (number * 3 + index + 1)), "a sequential message's copies"
                )

        # Burst: --burst from each network at once.
        async def burst(network: str) -> None:
            for number in range(args.burst):
                await one(network, "burst", number)

        from twisted.internet.defer import Deferred, gatherResults

        began = time.perf_counter()
        await gatherResults([Deferred.fromCoroutine(burst(n)) for n in NETWORKS])
        await wait_until(
            arrived("burst", 6 * args.burst), "the burst's copies", timeout=args.window
        )
        burst_elapsed = max(t for k, t in arrivals.times.items() if k[1] == "burst") - began
        rows = []
        for origin in NETWORKS:
            for target in NETWORKS:
                if origin == target:
                    continue
                row: dict[str, Any] = {"direction": f"{origin} -> {target}"}
                for phase in ("seq", "burst"):
                    latencies = [
                        t - sent[(o, p, n)]
                        for (o, p, n, network), t in arrivals.times.items()
                        if o == origin and p == phase and network == target
                    ]
                    row[phase] = latencies
                row["elapsed"] = (
                    max(
                        t
                        for (o, p, _n, network), t in arrivals.times.items()
                        if o == origin and p == "burst" and network == target
                    )
                    - began
                )
                order = [n for o, p, n in arrivals.order[target] if o == origin and p == "burst"]
                row["in_order"] = order == sorted(order)
                rows.append(row)
        back = sum(1 for k in arrivals.times if k[0] == k[3])
        return {
            "rows": rows,
            "burst_elapsed": burst_elapsed,
            "servers_started": started,
            "back_to_origin": back,
        }
    finally:
        for client in clients:
            if isinstance(client, LineClient):
                if client.transport is not None:
                    client.transport.loseConnection()
            else:
                await client.close()
        if peer is not None:
            await peer.stop()
        if bot is not None:
            bot.stop()
        networks.cleanup()


def print_table(result: dict[str, Any], args: argparse.Namespace) -> None:
    def ms(values: list[float], fraction: float) -> str:
        return f"{percentile(values, fraction) * 1000:8.1f}" if values else f"{'-':>8}"

    print(
        f"{'direction':<18} {'seq n':>6} {'p50 ms':>8} {'p99 ms':>8} "
        f"{'burst n':>8} {'p50 ms':>8} {'p99 ms':>8} {'copies/s':>9} {'in order':>8}"
    )
    elapsed = result["burst_elapsed"]
    total = 0
    for row in result["rows"]:
        total += len(row["burst"])
        print(
            f"{row['direction']:<18} {len(row['seq']):6d} {ms(row['seq'], 0.5)} "
            f"{ms(row['seq'], 0.99)} {len(row['burst']):8d} {ms(row['burst'], 0.5)} "
            f"{ms(row['burst'], 0.99)} {len(row['burst']) / row['elapsed']:9.1f} "
            f"{'yes' if row['in_order'] else 'NO':>8}"
        )
    print(f"{'all six':<18} {'':6} {'':8} {'':8} {total:8d} {'':8} {'':8} {total / elapsed:9.1f}")
    print(
        f"burst: {args.burst} messages from each network at once, {total} copies in "
        f"{elapsed:.2f} s; copies back where they were said: {result['back_to_origin']}; "
        f"the three servers started in {result['servers_started']:.1f} s"
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=USAGE)
    parser.add_argument("--count", type=int, default=30, help="sequential messages per network")
    parser.add_argument("--burst", type=int, default=100, help="burst messages per network")
    parser.add_argument(
        "--window", type=float, default=120.0, help="seconds the burst's copies may take"
    )
    parser.add_argument("--serve", metavar="CONFIG", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve:
        serve(args.serve)
        return

    from twisted.internet import reactor
    from twisted.internet.defer import Deferred

    directory = Path(tempfile.mkdtemp(prefix="botcore-bench-bridge-"))
    outcome: list[Any] = []

    def run() -> None:
        d = Deferred.fromCoroutine(measure(reactor, args, directory))

        def done(value: Any) -> None:
            outcome.append(value)
            reactor.stop()  # type: ignore[attr-defined]

        d.addBoth(done)

    reactor.callWhenRunning(run)  # type: ignore[attr-defined]
    reactor.run()  # type: ignore[attr-defined]
    result = outcome[0] if outcome else None
    if not isinstance(result, dict):
        log = directory / "bot.log"
        tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
        print(f"bench/bridge.py: the benchmark failed: {result}\n{tail}", file=sys.stderr)
        shutil.rmtree(directory, ignore_errors=True)
        sys.exit(1)
    shutil.rmtree(directory, ignore_errors=True)
    print_table(result, args)


if __name__ == "__main__":
    main()
