"""The dispatcher's worker threads: a small pool with ThreadPool's interface, built for the
one call per event that every event makes."""

from __future__ import annotations

import threading
from collections.abc import Callable
from queue import SimpleQueue
from typing import Any

from twisted.logger import Logger
from twisted.python.failure import Failure


class WorkerPool:
    """The dispatcher's thread pool: up to ``size`` daemon threads, started as work
    arrives, taking calls from one queue. Twisted's ThreadPool would do, but every event
    passes through here, and its coordinator adds a thread hop and a context copy per call
    (bench/dispatch.py: about twice the throughput). Same interface as ThreadPool."""

    log = Logger()

    def __init__(self, size: int, name: str) -> None:
        self.size = size
        self.name = name
        self.started = False
        self._queue: SimpleQueue[Any] = SimpleQueue()
        self._threads: list[threading.Thread] = []
        self._idle = 0
        self._lock = threading.Lock()
        self._stopped = False

    def grow(self) -> None:
        """One thread more may run (a replacement for a worker stuck in a call); started
        when a call finds no free worker."""
        with self._lock:
            self.size += 1

    def shrink(self) -> None:
        """One thread less (the stuck call came back): the next worker to finish a call
        while there are too many ends."""
        with self._lock:
            self.size = max(1, self.size - 1)

    def start(self) -> None:
        """Take calls (again, after `stop`, as ThreadPool does)."""
        self._stopped = False
        self.started = True

    def callInThreadWithCallback(
        self,
        onResult: Callable[[bool, Any], None],
        function: Callable[..., Any],
        *args: Any,
        **kw: Any,
    ) -> None:
        """Run ``function`` in a worker, then ``onResult(ok, result or Failure)`` there."""
        if self._stopped:
            return
        thread = None
        with self._lock:
            # ``_idle``: workers free for new calls, less calls queued with no worker free.
            # Each call takes one at once, so that a second call queued before an idle
            # worker has woken up does not count on it too (and wait behind the first,
            # however slow); a call left without one gets a new worker below ``size``.
            self._idle -= 1
            if self._idle < 0 and len(self._threads) < self.size:
                self._idle += 1
                # A daemon: a processor stuck past the shutdown timeout must not keep the
                # process alive.
                thread = threading.Thread(
                    target=self._work, name=f"{self.name}-{len(self._threads)}", daemon=True
                )
                self._threads.append(thread)
        self._queue.put((onResult, function, args, kw))
        if thread is not None:
            thread.start()

    def _work(self) -> None:
        get, lock = self._queue.get, self._lock
        while True:
            item = get()
            if item is None:
                return
            on_result, function, args, kw = item
            del item
            try:
                result, ok = function(*args, **kw), True
            except BaseException:
                result, ok = Failure(), False
            del function, args, kw
            with lock:  # free once onResult (quick: it hands over to the reactor) returns
                retire = len(self._threads) > self.size and not self._stopped
                if retire:
                    self._threads.remove(threading.current_thread())
                else:
                    self._idle += 1
            try:
                on_result(ok, result)
            except BaseException:
                # As ThreadPool: logged, and the worker lives on (or the pool shrinks).
                self.log.failure("thread pool callback {cb!r} failed", cb=on_result)
            del on_result, result
            if retire:
                return

    def stop(self) -> None:
        """Let the queued calls finish, then end and join the threads."""
        self._stopped = True
        self.started = False
        with self._lock:
            threads, self._threads = self._threads, []
        for _ in threads:
            self._queue.put(None)
        for thread in threads:
            thread.join()
        with self._lock:
            self._idle = 0
