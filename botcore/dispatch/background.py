"""Background processors: those marked ``background = True`` run on a second, bounded pool
once the event's replies have been sent, so that they never delay a conversation.

The dispatcher hands each finished event that has background processors to `Background`
(on a copy, so that the event its callers got does not change under them); the queue is
bounded, and what happens when it is full is ``background_full`` (counted); stopping
drains it within a timeout."""

from __future__ import annotations

import dataclasses
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from twisted.internet.defer import Deferred, succeed
from twisted.logger import Logger

from botcore.dispatch.workers import WorkerPool
from botcore.options import ChoiceOption, IntOption

if TYPE_CHECKING:
    from botcore.bus.stats import BusStats
    from botcore.dispatch.chain import Chain
    from botcore.event import Event
    from botcore.interfaces import Reactor
    from botcore.processor import Processor

#: Runs one step on a worker thread as the dispatcher does (session, commit, retries,
#: failures logged with their traceback); returns its outcome (`botcore.bus.stats`).
StepRunner = Callable[[Any, Callable[..., Any], tuple[Any, ...], dict[str, Any], Any], str]


class BackgroundOptions:
    """The ``[bot]`` keys of the background pool (options of the dispatcher)."""

    background_threads = IntOption(
        "Worker threads of background processors (they run after the replies are sent).",
        2,
        min=1,
        max=100,
    )
    background_queue = IntOption(
        "Events that may wait for a background worker; what happens to more is background_full.",
        1000,
        min=1,
    )
    background_full = ChoiceOption(
        "When the background queue is full: drop-new (the new event's background work is "
        "dropped) or drop-oldest (the oldest waiting is); either is counted and logged.",
        "drop-new",
        choices=("drop-new", "drop-oldest"),
    )


@dataclasses.dataclass(slots=True)
class _Job:
    event: Event
    processors: tuple[Processor, ...]
    chain: Chain


class Background:
    """The background queue and pool. Reactor thread, except `thd_run`."""

    log = Logger()

    def __init__(
        self,
        settings: BackgroundOptions,
        *,
        reactor: Reactor,
        run_step: StepRunner,
        discard_session: Callable[[Any], None],
        route: Callable[[Event], None],
        monitors: Callable[[], tuple[Any, ...]] = tuple,
        stats: BusStats,
        threadpool: Any = None,
    ) -> None:
        self.settings = settings
        self.reactor = reactor
        self._run_step = run_step
        self._discard_session = discard_session
        #: The dispatcher's monitors (`DispatchMonitor`), read afresh for each job.
        self._monitors = monitors
        self._route = route
        self._stats = stats
        self._own_pool = threadpool is None
        self.threadpool = threadpool
        self._queue: deque[_Job] = deque()
        self._active = 0
        self._waiters: list[Deferred[bool]] = []
        self._accepting = False
        #: Background work dropped because the queue was full; steps that failed.
        self.dropped = 0
        self.failed = 0

    def start(self) -> None:
        if self.threadpool is None:
            self.threadpool = WorkerPool(self.settings.background_threads, "botcore-background")
        self.threadpool.start()
        self._accepting = True

    @property
    def idle(self) -> bool:
        return not self._queue and not self._active

    def submit(self, event: Event, chain: Chain) -> None:
        """Queue ``event``'s background processors of ``chain`` (if it has any), on a copy
        of the event with no replies of its own yet. Reactor thread."""
        processors = chain.background(event.type)
        if not processors or not self._accepting:
            return
        if len(self._queue) >= self.settings.background_queue:
            self.dropped += 1
            if self.settings.background_full == "drop-oldest":
                old = self._queue.popleft()
                old.chain._done_with(None)
                what = f"the oldest waiting ({old.event.type} event {old.event.id})"
            else:
                what = f"{event.type} event {event.id}'s"
            self.log.warn(
                "background queue full ({size}): dropped {what} background work "
                "({dropped} dropped in all)",
                size=len(self._queue),
                what=what,
                dropped=self.dropped,
            )
            if self.settings.background_full != "drop-oldest":
                return
        copy = dataclasses.replace(
            event, responses=[], extra=dict(event.extra), data=dict(event.data), _session=None
        )
        self._queue.append(_Job(copy, processors, chain._use()))
        self._pump()

    def _pump(self) -> None:
        while self._queue and self._active < self.settings.background_threads:
            job = self._queue.popleft()
            self._active += 1

            def on_result(ok: bool, result: Any, job: _Job = job) -> None:
                self.reactor.callFromThread(self._done, job, ok, result)

            self.threadpool.callInThreadWithCallback(on_result, self.thd_run, job)

    def thd_run(self, job: _Job) -> list[tuple[Any, str, float]]:
        """Run the job's processors that accept its event; what each did. Worker thread."""
        steps = []
        event = job.event
        clock = time.perf_counter
        monitors = self._monitors()
        try:
            for processor in job.processors:
                if not processor.accepts(event):
                    continue
                started = clock()
                outcome = self._run_step(event, processor.process, (), {}, processor)
                seconds = clock() - started
                steps.append((processor, outcome, seconds))
                for monitor in monitors:
                    monitor.step_done(processor, seconds, outcome == "failed")
        finally:
            self._discard_session(event)
        return steps

    def _done(self, job: _Job, ok: bool, result: Any) -> None:
        self._active -= 1
        job.chain._done_with(None)
        if ok:
            self.failed += sum(1 for _, outcome, _ in result if outcome == "failed")
            self._stats.record_steps(result)
            self._route(job.event)
        else:
            self.failed += 1
            self.log.failure(
                "background work on {type} event {id} aborted",
                result,
                type=job.event.type,
                id=job.event.id,
            )
        self._pump()
        if self.idle:
            waiters, self._waiters = self._waiters, []
            for d in waiters:
                d.callback(True)

    def stop(self, timeout: float) -> Deferred[None]:
        """Take no more work; let the queued and running finish within ``timeout``
        seconds (what is left is dropped, logged), then stop the pool."""
        self._accepting = False
        if self.idle:
            drained: Deferred[bool] = succeed(True)
        else:
            drained = Deferred()
            self._waiters.append(drained)
            timer = self.reactor.callLater(timeout, self._timed_out, drained, timeout)

            def stop_timer(ok: bool) -> bool:
                if timer.active():
                    timer.cancel()
                return ok

            drained.addCallback(stop_timer)
        return drained.addCallback(self._stop_pool)

    def _timed_out(self, d: Deferred[bool], timeout: float) -> None:
        if d not in self._waiters:
            return
        self._waiters.remove(d)
        left = len(self._queue)
        for job in self._queue:
            job.chain._done_with(None)
        self._queue.clear()
        self.log.warn(
            "background work still running after {timeout}s; not waiting for it "
            "({left} waiting dropped)",
            timeout=timeout,
            left=left,
        )
        d.callback(False)

    def _stop_pool(self, drained: bool) -> None:
        pool = self.threadpool
        if pool is None:
            return
        if self._own_pool:
            self.threadpool = None
        if drained or not self._own_pool:
            pool.stop()
        else:
            # Joining a stuck worker would block the reactor; its threads are daemons.
            threading.Thread(target=pool.stop, daemon=True).start()
