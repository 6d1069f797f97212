"""The dispatcher: runs each event through the processor chain on its own thread pool.

Events of one conversation are processed one after another in arrival order, and their
replies leave in that order; different conversations run in parallel."""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from twisted.application.service import Service
from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.task import LoopingCall
from twisted.logger import Logger
from twisted.python import threadable
from twisted.python.failure import Failure
from zope.interface import implementer

from botcore.db.engine import commit_if_changed, rollback
from botcore.dispatch.chain import Chain, MatchRun
from botcore.dispatch.workers import WorkerPool
from botcore.errors import DispatcherStopped
from botcore.event import Event, EventType
from botcore.interfaces import IScheduledCall
from botcore.options import FloatOption, IntOption

if TYPE_CHECKING:
    from twisted.internet.interfaces import IDelayedCall

    from botcore.db.service import Database
    from botcore.interfaces import ISource
    from botcore.processor import Processor


@dataclass
class _Work:
    event: Event
    deferred: Deferred[Event] | None
    call: tuple[Callable[..., Any], tuple[Any, ...], dict[str, Any]] | None = None


@implementer(IScheduledCall)
class ScheduledCall:
    """A cancellable `Dispatcher.call_later`; safe to cancel from any thread."""

    def __init__(self, dispatcher: Dispatcher, delay: float, work: _Work) -> None:
        self._dispatcher = dispatcher
        self._delay = delay
        self._work = work
        self._timer: IDelayedCall | None = None
        self.cancelled = False
        self.called = False

    def active(self) -> bool:
        """Whether the call is still due to run."""
        return not (self.cancelled or self.called)

    def cancel(self) -> None:
        """Stop the call from running (a no-op when it already ran)."""
        if not self.active():
            return
        self.cancelled = True
        self._dispatcher._on_reactor(self._cancel_timer)

    def _schedule(self) -> None:
        if self.cancelled:
            return
        if not self._dispatcher._accepting:
            # Stopped: there is no pool to run it in any more.
            self.cancelled = True
            self._dispatcher.log.warn(
                "dropped a call_later of {function} scheduled while the dispatcher is stopped",
                function=getattr(self._work.call[0], "__qualname__", self._work.call[0]),
            )
            return
        self._timer = self._dispatcher.reactor.callLater(self._delay, self._fire)
        self._dispatcher._scheduled.add(self)

    def _cancel_timer(self) -> None:
        self._dispatcher._scheduled.discard(self)
        if self._timer is not None and self._timer.active():
            self._timer.cancel()

    def _fire(self) -> None:
        self._dispatcher._scheduled.discard(self)
        if self.cancelled:
            return
        self.called = True
        self._dispatcher._enqueue(self._work)


class Dispatcher(Service):
    """Runs events through the chain. Reactor thread, except where a method says otherwise.

    ``sources(name)`` returns the source of that name (or None) for routing replies;
    ``on_fatal`` is called when a processor raises SystemExit or KeyboardInterrupt.
    """

    threads = IntOption("Worker threads that run processors.", 10, min=1, max=500)
    shutdown_timeout = FloatOption(
        "Seconds in-flight events may take to finish when the bot stops.", 10.0, min=0
    )

    log = Logger()

    def __init__(
        self,
        config: dict[str, Any] | None = None,
        *,
        reactor: Any = None,
        threadpool: Any = None,
        database: Database | None = None,
        sources: Callable[[str], ISource | None] | None = None,
        on_fatal: Callable[[Failure], None] | None = None,
    ) -> None:
        if reactor is None:
            from twisted.internet import reactor
        self.setName("dispatcher")
        self.config = dict(config or {})
        self.reactor = reactor
        self.database = database
        self._get_source = sources or (lambda name: None)
        self._on_fatal = on_fatal
        self._own_pool = threadpool is None
        self.threadpool = threadpool
        self.chain = Chain()
        self._queues: dict[tuple[str, str | None], deque[_Work]] = {}
        self._inflight = 0
        self._accepting = False
        self._drain_waiters: list[Deferred[None]] = []
        self._scheduled: set[ScheduledCall] = set()
        self._periodic: list[_PeriodicTask] = []
        self._done: list[tuple[Deferred[Any], bool, Any]] = []
        self._done_lock = threading.Lock()
        self._done_wake_pending = False

    # -- lifecycle ------------------------------------------------------------

    def startService(self) -> None:
        super().startService()
        if self.threadpool is None:
            self.threadpool = WorkerPool(self.threads, name="botcore-dispatch")
        self.threadpool.start()
        self._accepting = True
        self._start_periodic()

    def stopService(self) -> Deferred[None]:
        """Accept no new events, let the in-flight ones finish (up to ``shutdown_timeout``),
        then stop the pool. Fires when done."""
        super().stopService()
        self._accepting = False
        self._stop_periodic()
        for scheduled in list(self._scheduled):
            scheduled.cancel()
        d = self.drain(self.shutdown_timeout)
        d.addCallback(self._stop_pool)
        return d

    def _stop_pool(self, drained: bool) -> None:
        if not drained:
            self._abandon_queued()
        if not self._own_pool:
            self.threadpool.stop()
            return
        if drained:
            self.threadpool.stop()
        else:
            # Joining a stuck worker would block the reactor; its threads are daemons.
            threading.Thread(target=self.threadpool.stop, daemon=True).start()
        self.threadpool = None

    def _abandon_queued(self) -> None:
        # Events waiting behind a stuck one would otherwise wait forever for a pool that
        # is going away: tell their sources they were not processed.
        for queue in self._queues.values():
            while queue:
                work = queue.popleft()
                if work.deferred is not None:
                    work.deferred.errback(
                        DispatcherStopped(f"stopped before {work.event.type} event was processed")
                    )

    def drain(self, timeout: float | None = None) -> Deferred[bool]:
        """Fire with True once no event is queued or running, or False after ``timeout``
        seconds with events still in flight (logged)."""
        if self.idle:
            return succeed(True)
        d: Deferred[bool] = Deferred()
        self._drain_waiters.append(d)
        if timeout is not None:
            timer = self.reactor.callLater(timeout, self._drain_timeout, d, timeout)
            d.addBoth(lambda result: (timer.cancel() if timer.active() else None, result)[1])
        return d

    @property
    def idle(self) -> bool:
        """No event queued or running."""
        return self._inflight == 0 and not self._queues

    def _drain_timeout(self, d: Deferred[bool], timeout: float) -> None:
        if d in self._drain_waiters:
            self._drain_waiters.remove(d)
            self.log.warn(
                "{count} event(s) still running after {timeout}s; not waiting for them",
                count=self._inflight,
                timeout=timeout,
            )
            d.callback(False)

    def _check_drained(self) -> None:
        if self.idle:
            waiters, self._drain_waiters = self._drain_waiters, []
            for d in waiters:
                d.callback(True)

    # -- the chain ------------------------------------------------------------

    def set_chain(self, processors: Iterable[Processor]) -> Chain:
        """Swap in a new chain atomically; events already running keep the old one.
        Periodic handlers are restarted for the new chain."""
        chain = processors if isinstance(processors, Chain) else Chain(processors)
        self._stop_periodic()
        self.chain = chain
        if self.running:
            self._start_periodic()
        return chain

    # -- dispatching ----------------------------------------------------------

    def dispatch(self, event: Event) -> Deferred[Event]:
        """Queue an event; the Deferred fires with it once every processor has run.

        Replies for the event's own source are left for the caller (the source) to send;
        replies for other sources are sent here. Reactor thread.
        """
        if not self._accepting:
            return fail(DispatcherStopped(f"not accepting events; dropped {event.type} event"))
        d: Deferred[Event] = Deferred()
        self._enqueue(_Work(event, d))
        return d

    def call_later(
        self, delay: float, function: Callable[..., Any], event: Event, *args: Any, **kw: Any
    ) -> ScheduledCall:
        """After ``delay`` seconds, run ``function(delayed_event, *args, **kw)`` in the pool,
        then the chain on that ``delayed`` event; its replies go to the same conversation.
        Any thread; returns a cancellable handle."""
        work = _Work(event.derive(EventType.DELAYED), None, (function, args, kw))
        scheduled = ScheduledCall(self, delay, work)
        self._on_reactor(scheduled._schedule)
        return scheduled

    def _on_reactor(self, function: Callable[[], None]) -> None:
        if threadable.isInIOThread():
            function()
        else:
            self.reactor.callFromThread(function)

    def _enqueue(self, work: _Work) -> None:
        key = work.event.conversation
        queue = self._queues.get(key)
        if queue is not None:
            queue.append(work)
            return
        self._queues[key] = deque()
        self._start(key, work)

    def _start(self, key: tuple[str, str | None], work: _Work) -> None:
        self._inflight += 1
        chain = self.chain._use()
        d = self._in_pool(self.thd_process, work.event, chain, work.call)
        d.addBoth(self._finished, key, work)
        d.addBoth(chain._done_with)

    def _in_pool(self, function: Callable[..., Any], *args: Any) -> Deferred[Any]:
        d: Deferred[Any] = Deferred()

        def on_result(ok: bool, result: Any) -> None:
            # Worker thread. Results are batched: only the first of a batch wakes the
            # reactor, which then fires them all, in the order they were finished.
            with self._done_lock:
                self._done.append((d, ok, result))
                if self._done_wake_pending:
                    return
                self._done_wake_pending = True
            self.reactor.callFromThread(self._fire_done)

        self.threadpool.callInThreadWithCallback(on_result, function, *args)
        return d

    def _fire_done(self) -> None:
        with self._done_lock:
            done, self._done = self._done, []
            self._done_wake_pending = False
        for d, ok, result in done:
            if ok:
                d.callback(result)
            else:
                d.errback(result)

    def _finished(self, result: Event | Failure, key: tuple[str, str | None], work: _Work) -> None:
        self._inflight -= 1
        if isinstance(result, Failure):
            self.log.failure("event {id} aborted", result, id=work.event.id)
            if work.deferred is not None:
                work.deferred.errback(result)
            if self._on_fatal is not None and result.check(SystemExit, KeyboardInterrupt):
                self._on_fatal(result)
        else:
            self.route(result, own_source=work.deferred is not None)
            if work.deferred is not None:
                work.deferred.callback(result)
        queue = self._queues[key]
        if queue:
            self._start(key, queue.popleft())
        else:
            del self._queues[key]
            self._check_drained()

    def route(self, event: Event, own_source: bool = False) -> None:
        """Send the event's replies to their sources, except (with ``own_source``) those
        for the source the event came from. Unknown sources are logged. Reactor thread."""
        for response in event.responses:
            if own_source and response.source == event.source:
                continue
            source = self._get_source(response.source)
            if source is None:
                self.log.warn(
                    "dropped a reply for unknown source {source!r} (event {id})",
                    source=response.source,
                    id=event.id,
                )
                continue
            try:
                source.send(response)
            except Exception:
                self.log.failure("source {source} failed to send a reply", source=source.name)

    # -- worker thread --------------------------------------------------------

    def thd_process(
        self,
        event: Event,
        chain: Chain,
        call: tuple[Callable[..., Any], tuple[Any, ...], dict[str, Any]] | None = None,
    ) -> Event:
        """Run ``call`` (if any) then every processor of ``chain`` that accepts the event,
        committing the session after each one that changed something. Worker thread."""
        if self.database is not None and event._session_factory is None:
            event._session_factory = self.database.session_factory
        try:
            if call is not None:
                function, args, kw = call
                self._thd_run(event, function, args, kw, getattr(function, "__qualname__", "call"))
            for step in chain.steps(event.type):
                if type(step) is MatchRun:
                    step.run(event, lambda p: self._thd_run(event, p.process, (), {}, p))
                elif step.accepts(event):
                    self._thd_run(event, step.process, (), {}, step)
        finally:
            self._thd_discard_session(event)
        return event

    def _thd_run(
        self,
        event: Event,
        function: Callable[..., Any],
        args: tuple[Any, ...],
        kw: dict[str, Any],
        who: Any,
    ) -> None:
        mark = (len(event.responses), event.processed)
        try:
            function(event, *args, **kw)
        except Exception as error:
            if not self._thd_retry(event, function, args, kw, who, error, mark):
                self._thd_fail(event, "{who} failed on event {id}", who)
            return
        if event.has_session:
            try:
                commit_if_changed(event.session)
            except Exception as error:
                if not self._thd_retry(event, function, args, kw, who, error, mark):
                    self._thd_fail(event, "commit after {who} failed on event {id}", who)

    def _thd_retry(
        self,
        event: Event,
        function: Callable[..., Any],
        args: tuple[Any, ...],
        kw: dict[str, Any],
        who: Any,
        error: Exception,
        mark: tuple[int, bool],
    ) -> bool:
        """If ``error`` is a database failure worth retrying (dropped connection, restarted
        server, deadlock; see `Database.classify`), run the step again on a fresh session,
        with the event's replies reset to ``mark``, waiting the database's backoff between
        tries; when it keeps failing, give up with a ``database`` complaint. Returns False,
        doing nothing, for any other error. Worker thread."""
        database = self.database
        kind = database.classify(error) if database is not None else None
        if kind is None:
            return False
        attempt = 0
        while True:
            self._thd_discard_session(event)
            del event.responses[mark[0] :]
            event.processed = mark[1]
            delay = database.retry_delay_for(kind, attempt)
            if delay is None:
                database.gave_up(kind, error, f"{who} on event {event.id}")
                event.complain = "database"
                return True
            database.sleep(delay)
            attempt += 1
            try:
                function(event, *args, **kw)
                if event.has_session:
                    commit_if_changed(event.session)
                return True
            except Exception as again:
                kind = database.classify(again)
                if kind is None:
                    self._thd_fail(event, "{who} failed on event {id} (retried)", who)
                    return True
                error = again

    def _thd_fail(self, event: Event, message: str, who: Any) -> None:
        """Log the exception being handled, complain to the user and undo the step's
        uncommitted changes. Worker thread; call from an ``except`` block."""
        self.log.failure(message, who=who, id=event.id)
        event.complain = "exception"
        self._thd_rollback(event)

    def _thd_discard_session(self, event: Event) -> None:
        try:
            event.close_session()
        except Exception:
            self.log.failure("closing the session of event {id} failed", id=event.id)

    def _thd_rollback(self, event: Event) -> None:
        if not event.has_session:
            return
        try:
            rollback(event.session)
        except Exception:
            self.log.failure("rollback failed on event {id}", id=event.id)

    # -- periodic handlers ----------------------------------------------------

    def _start_periodic(self) -> None:
        for processor in self.chain:
            for method, interval, delay in processor.periodic_tasks():
                task = _PeriodicTask(self, processor, method, interval)
                task.start(delay)
                self._periodic.append(task)

    def _stop_periodic(self) -> None:
        tasks, self._periodic = self._periodic, []
        for task in tasks:
            task.stop()


class _PeriodicTask:
    """One ``@periodic`` method on the reactor clock; a run still going is not overlapped."""

    log = Logger()

    def __init__(
        self,
        dispatcher: Dispatcher,
        processor: Processor,
        method: Callable[[Event], None],
        interval: float,
    ) -> None:
        self.dispatcher = dispatcher
        self.processor = processor
        self.method = method
        self.interval = interval
        self.loop = LoopingCall(self.tick)
        self.loop.clock = dispatcher.reactor
        self._delayed: IDelayedCall | None = None
        self.running = False

    def start(self, delay: float) -> None:
        self._delayed = self.dispatcher.reactor.callLater(delay, self._begin)

    def _begin(self) -> None:
        self._delayed = None
        self.loop.start(self.interval, now=True)

    def stop(self) -> None:
        if self._delayed is not None and self._delayed.active():
            self._delayed.cancel()
        self._delayed = None
        if self.loop.running:
            self.loop.stop()

    def tick(self) -> None:
        if self.running:
            self.log.debug("skipping {method}: previous run still going", method=self.method)
            return
        self.running = True
        event = Event(
            source="botcore",
            type=EventType.PERIODIC,
            data={"plugin": self.processor.name, "task": self.method.__name__},
        )
        call = (self.method, (), {})
        dispatcher = self.dispatcher
        dispatcher._inflight += 1
        chain = dispatcher.chain._use()
        d = dispatcher._in_pool(dispatcher.thd_process, event, chain, call)
        d.addCallback(dispatcher.route)
        d.addErrback(self._aborted)
        d.addBoth(self._done)
        d.addBoth(chain._done_with)

    def _aborted(self, failure: Failure) -> None:
        self.log.failure("periodic {m} aborted", failure, m=self.method)
        # As for events: SystemExit in a periodic handler is not swallowed.
        on_fatal = self.dispatcher._on_fatal
        if on_fatal is not None and failure.check(SystemExit, KeyboardInterrupt):
            on_fatal(failure)

    def _done(self, _: Any) -> None:
        self.running = False
        self.dispatcher._inflight -= 1
        self.dispatcher._check_drained()
