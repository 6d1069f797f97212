"""Benchmark of the web front door: requests/s and latency of POST /api/v1/fire (a
``ping`` through the chain, answered ``pong``) and of GET /api/v1/status, over loopback
HTTP with treq (persistent connections), against a real bot (core, basic; SQLite) under
the real reactor. The client runs in the same process and on the same reactor as the bot,
so the numbers are a floor: a separate client would leave the bot the whole reactor."""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import treq
from measure import percentile
from twisted.internet import task
from twisted.internet.defer import DeferredList, ensureDeferred
from twisted.web.client import HTTPConnectionPool

from botcore.accounts import models as accounts
from botcore.bot import Bot
from botcore.settings import read_config
from botcore.testing import free_port
from botcore.web import tokens


async def client(reactor, pool, method, url, body, headers, remaining, latencies) -> None:
    """Send requests one after another until ``remaining`` runs out; each one's time."""
    while remaining[0] > 0:
        remaining[0] -= 1
        began = time.perf_counter()
        response = await treq.request(
            method, url, data=body, headers=headers, pool=pool, reactor=reactor
        )
        text = await response.text()
        if response.code != 200 or (method == "POST" and "pong" not in text):
            raise SystemExit(f"{method} {url}: {response.code} {text}")
        latencies.append(time.perf_counter() - began)


async def run(reactor, args) -> None:
    folder = Path(tempfile.mkdtemp(prefix="botcore-bench-web-"))
    port = free_port()
    (folder / "bot.ini").write_text(
        f"[bot]\nname = bench\nautoload = no\nload = core, basic\nthreads = {args.threads}\n"
        f"[plugin:core]\nlimit_time = 0\n"
        f"[database:main]\nurl = sqlite:///{folder}/bot.sqlite\n"
        f"[source:web]\ntype = web\nendpoint = tcp:{port}:interface=127.0.0.1\n",
        encoding="utf-8",
    )
    bot = Bot(read_config(folder / "bot.ini"))
    await bot.startService()
    with bot.databases["main"].open_session() as session:
        account = accounts.create_account(session, "bench")
        _, secret = tokens.create_token(session, account.id, "bench")
        session.commit()
    pool = HTTPConnectionPool(reactor)
    pool.maxPersistentPerHost = args.clients
    headers = {"Authorization": f"Bearer {secret}", "Content-Type": "application/json"}
    base = f"http://127.0.0.1:{port}/api/v1"
    print(f"{'request':<24}{'clients':>8}{'requests':>10}{'req/s':>10}{'p50 ms':>9}{'p99 ms':>9}")
    for name, method, path, body in (
        ("POST /fire ping", "POST", "/fire", json.dumps({"text": "ping"}).encode()),
        ("GET /status", "GET", "/status", None),
    ):
        latencies: list[float] = []
        remaining = [args.requests + args.warmup]
        began = time.perf_counter()
        clients = [
            ensureDeferred(
                client(reactor, pool, method, base + path, body, headers, remaining, latencies)
            )
            for _ in range(args.clients)
        ]
        await DeferredList(clients, fireOnOneErrback=True, consumeErrors=True)
        elapsed = time.perf_counter() - began
        measured = latencies[args.warmup :]
        print(
            f"{name:<24}{args.clients:>8}{len(measured):>10}"
            f"{len(latencies) / elapsed:>10.0f}{percentile(measured, 0.5) * 1000:>9.2f}"
            f"{percentile(measured, 0.99) * 1000:>9.2f}"
        )
    await pool.closeCachedConnections()
    await bot.stopService()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--warmup", type=int, default=200)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--threads", type=int, default=10)
    args = parser.parse_args()
    task.react(lambda reactor: ensureDeferred(run(reactor, args)))


if __name__ == "__main__":
    main()
