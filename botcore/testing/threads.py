"""Work that normally crosses threads, made deterministic for tests: thread pools that
run work at once or when the test says, a clock whose ``callFromThread`` runs at once, and
real threads that race."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from twisted.internet.task import Clock
from twisted.python.failure import Failure


@dataclass
class Job:
    """One piece of work handed to a thread pool: ``run`` calls it and hands the outcome
    to ``on_result`` as ``callInThreadWithCallback`` would."""

    on_result: Callable[[bool, Any], None]
    function: Callable[..., Any]
    args: tuple[Any, ...]
    kw: dict[str, Any]

    def run(self) -> None:
        try:
            result = self.function(*self.args, **self.kw)
        except BaseException:
            self.on_result(False, Failure())
        else:
            self.on_result(True, result)


class InlineThreadPool:
    """A thread pool that runs work at once, in the calling thread: deterministic tests of
    code that normally runs in the dispatcher's pool."""

    def __init__(self) -> None:
        self.started = False

    def start(self) -> None:
        self.started = True

    def stop(self) -> None:
        self.started = False

    def callInThreadWithCallback(
        self,
        onResult: Callable[[bool, Any], None],
        function: Callable[..., Any],
        *args: Any,
        **kw: Any,
    ) -> None:
        Job(onResult, function, args, kw).run()


class ManualThreadPool:
    """A thread pool that only queues work; the test runs the jobs, in the order it
    chooses, with `run`. What is queued at one time is what a real pool could run in
    parallel."""

    def __init__(self) -> None:
        self.started = False
        self.stopped = False
        self.jobs: list[Job] = []

    def start(self) -> None:
        self.started = True

    def stop(self) -> None:
        self.started = False
        self.stopped = True

    def callInThreadWithCallback(
        self,
        onResult: Callable[[bool, Any], None],
        function: Callable[..., Any],
        *args: Any,
        **kw: Any,
    ) -> None:
        self.jobs.append(Job(onResult, function, args, kw))

    def run(self, index: int = 0) -> None:
        """Run (to completion) the job queued at ``index``."""
        self.jobs.pop(index).run()

    def run_all(self) -> None:
        """Run queued jobs, oldest first, including those queued meanwhile."""
        while self.jobs:
            self.run(0)


class InlineReactor(Clock):
    """A `Clock` whose ``callFromThread`` runs the call at once."""

    running = False

    def callFromThread(self, function: Callable[..., Any], *args: Any, **kw: Any) -> None:
        function(*args, **kw)

    def stop(self) -> None:
        self.running = False


def at_once(count: int, race: Callable[[int, Callable[[], None]], None]) -> list[BaseException]:
    """Run ``race(number, start)`` in ``count`` threads (numbered from 0) and wait for them;
    ``start()`` returns in all of them at the same moment, once every one has called it.
    Returns what the threads raised (nothing when all went well)."""
    barrier = threading.Barrier(count)
    errors: list[BaseException] = []

    def thd(number: int) -> None:
        try:

            def start() -> None:
                barrier.wait(timeout=30)

            race(number, start)
        except BaseException as e:  # reported to the caller: a thread must not die silently
            errors.append(e)

    threads = [threading.Thread(target=thd, args=(n,)) for n in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    return errors
