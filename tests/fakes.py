"""Shared test doubles: a thread pool the test drives by hand, a source that records what
it is asked to send, a real SQLite database in the test's temporary folder, and threads
that race."""

from __future__ import annotations

import os
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import Integer, String
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from twisted.python.failure import Failure

from botcore.db.service import Database
from botcore.source import Source

if TYPE_CHECKING:
    from twisted.trial.unittest import SynchronousTestCase

    from botcore.event import Response


@dataclass
class Job:
    """One piece of work handed to a `ManualThreadPool`."""

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


class RecordingSource(Source):
    """A source that keeps every response it is asked to send."""

    type = "recording"
    supports = frozenset({"action", "notice", "multiline"})

    def __init__(self, name: str = "recording", bot: Any = None, config: Any = None) -> None:
        super().__init__(name, bot, config)
        self.sent: list[Response] = []

    def send(self, response: Response) -> None:
        self.sent.append(response)


class FakeBase(DeclarativeBase):
    """Tables for tests only, kept out of the core's metadata (and its migrations)."""


class Note(FakeBase):
    """A row a test processor writes."""

    __tablename__ = "test_notes"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    text: Mapped[str] = mapped_column(String(100))


def sqlite_database(testcase: SynchronousTestCase, name: str = "main") -> Database:
    """A started `Database` on a fresh SQLite file, with the test tables; stopped at the
    end of the test."""
    folder = os.path.abspath(testcase.mktemp())
    os.makedirs(folder)
    database = Database(name, {"url": f"sqlite:///{folder}/test.sqlite"})
    database.startService()
    testcase.addCleanup(database.stopService)
    FakeBase.metadata.create_all(database.engine)
    return database


def note_texts(database: Database) -> list[str]:
    """Every committed `Note`'s text, in insertion order (read in a fresh session)."""
    from sqlalchemy import select

    with database.session_factory() as session:
        return list(session.scalars(select(Note.text).order_by(Note.id)))


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def at_once(count: int, race: Callable[[int, Callable[[], None]], None]) -> list[BaseException]:
    """Run ``race(number, start)`` in ``count`` threads (numbered from 0) and wait for them;
    ``start()`` returns in all of them at the same moment, once every one has called it.
    Returns what the threads raised (nothing when all went well)."""
    barrier = threading.Barrier(count)
    errors: list[BaseException] = []

    def thd(number: int) -> None:
        try:
            race(number, lambda: barrier.wait(timeout=30))
        except BaseException as e:  # reported to the caller: a thread must not die silently
            errors.append(e)

    threads = [threading.Thread(target=thd, args=(n,)) for n in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    return errors
