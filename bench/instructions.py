"""Benchmark of the hot path in CPU instructions per event: bench/dispatch.py run twice
under valgrind's callgrind, with a short and a long run of events; the difference of the
two totals, divided by the difference in events, is what one event costs, without the
start, the filling of the tables and the warm-up."""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from measure import BenchError

HERE = Path(__file__).resolve().parent
_COLLECTED = re.compile(r"Collected\s*:\s*(\d+)")

USAGE = """\
Count the CPU instructions one event costs on the hot path (bench/dispatch.py's default
plugin set and realistic traffic, one case) with valgrind's callgrind: unlike seconds, the
count does not move with the machine's load, so code measured in different sittings, or
while other work runs, compares. Under valgrind the threads take turns, so what the count
leaves out is the cost of threads contending for the GIL; a run takes about a minute.
"""


def count(args: argparse.Namespace, events: int, pythonpath: str | None) -> int:
    """The instructions of one whole bench/dispatch.py run of ``events`` events."""
    command = [
        "valgrind",
        "--tool=callgrind",
        "--callgrind-out-file=/dev/null",
        sys.executable,
        str(HERE / "dispatch.py"),
        f"--plugins={args.plugins}",
        f"--rows={args.rows}",
        f"--events={events}",
        f"--warmup={args.warmup}",
        "--table-events=0",
    ]
    if args.traffic:
        command.append(f"--traffic={args.traffic}")
    env = dict(os.environ)
    if pythonpath is not None:
        env["PYTHONPATH"] = pythonpath
    done = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    found = _COLLECTED.search(done.stderr)
    if done.returncode != 0 or found is None:
        tail = "\n".join((done.stdout + done.stderr).splitlines()[-15:])
        raise BenchError(f"bench/dispatch.py under callgrind failed:\n{tail}")
    return int(found.group(1))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="bench/instructions.py", description=USAGE)
    parser.add_argument("--plugins", default="default", help="as bench/dispatch.py's")
    parser.add_argument("--rows", type=int, default=1000, help="rows in the tables")
    parser.add_argument("--traffic", choices=("realistic", "commands"), default=None)
    parser.add_argument("--events", type=int, default=2000, help="events counted")
    parser.add_argument("--warmup", type=int, default=500, help="unmeasured events first")
    parser.add_argument(
        "--code",
        action="append",
        metavar="DIR",
        help="a tree of botcore to count instead of the installed one (for example a git "
        "worktree of older code, put first on PYTHONPATH); may be given more than once",
    )
    args = parser.parse_args(argv)
    if args.events < 1:
        parser.error("--events must be at least 1")
    if shutil.which("valgrind") is None:
        raise SystemExit("bench/instructions.py needs valgrind (Debian package valgrind)")
    trees: list[str | None] = list(args.code) if args.code else [None]
    jobs = [(tree, events) for tree in trees for events in (args.events, 2 * args.events)]
    # Each callgrind run keeps to one core: two at a time (counts do not depend on load).
    with ThreadPoolExecutor(max_workers=2) as pool:
        totals = list(pool.map(lambda job: count(args, job[1], job[0]), jobs))
    print(
        f"plugins {args.plugins}, {args.rows} rows; instructions of runs of {args.events} "
        f"and {2 * args.events} events (after {args.warmup} unmeasured)"
    )
    header = f"{'code':<40} {'short run':>15} {'long run':>15} {'per event':>11}"
    print(header)
    print("-" * len(header))
    for index, tree in enumerate(trees):
        short, long = totals[2 * index], totals[2 * index + 1]
        per_event = (long - short) / args.events
        name = tree or "installed"
        print(f"{name:<40} {short:>15,} {long:>15,} {per_event:>11,.0f}")


if __name__ == "__main__":
    try:
        main()
    except BenchError as error:
        raise SystemExit(str(error)) from None
