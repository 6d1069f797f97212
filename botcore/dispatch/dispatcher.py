"""The dispatcher: runs each event through the processor chain on its own thread pool and
sends its replies, wherever they go.

Events of one conversation are processed one after another in arrival order, and their
replies leave in that order; different conversations run in parallel.

No source and no handler can take the whole bot (`Dispatcher` says how): conversations
waiting for a worker are served round-robin across sources, one source holds at most
most of the workers, a source's backlog is bounded (a source that can is told to pause
its input while its backlog is full, so nothing it reads is dropped), and a run that goes
past the handler deadline is logged and its worker replaced."""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Hashable, Iterable, Mapping
from dataclasses import dataclass
from itertools import pairwise
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Protocol

from twisted.application.service import Service
from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.task import LoopingCall
from twisted.logger import Logger
from twisted.python import threadable
from twisted.python.failure import Failure
from zope.interface import implementer

from botcore.bus.catalogue import Catalogue, InvalidEvent
from botcore.bus.stats import FAILED, HANDLED, SEEN, BusStats
from botcore.db.engine import commit_if_changed, has_changes, rollback
from botcore.dispatch.background import Background, BackgroundOptions
from botcore.dispatch.chain import Chain, MatchRun
from botcore.dispatch.outgoing import Outgoing
from botcore.dispatch.workers import WorkerPool
from botcore.errors import DispatcherOverloaded, DispatcherStopped
from botcore.event import Event, EventType
from botcore.interfaces import IScheduledCall, Reactor
from botcore.options import FloatOption, IntOption

if TYPE_CHECKING:
    from twisted.internet.interfaces import IDelayedCall

    from botcore.db.service import Database
    from botcore.event import Response
    from botcore.interfaces import ISource
    from botcore.processor import Processor


_Call = tuple[Callable[..., Any], tuple[Any, ...], dict[str, Any]]

#: The source of the bot's own events (lifecycle, periodic).
_OWN_SOURCE = "botcore"
#: The keyword arguments of a step that takes none (one, read-only, for every step).
_NO_KEYWORDS: Mapping[str, Any] = MappingProxyType({})

#: What `Dispatcher.route` sends for a True or False reply no processor worded (the core
#: Address processor words them, in its configured phrases).
ACKNOWLEDGED = "Okay"
REFUSED = "No"

#: The type of the carrier event `Dispatcher.send` shows the outgoing filters.
OUTGOING = "outgoing"

#: The most runs of one conversation one worker takes in one hand-off (`Dispatcher._start`):
#: a burst that arrived in one read (a pipelined IRC burst in one channel) costs one
#: thread wake-up per batch, not one per event, and the worker goes on with the next
#: while the reactor sends the last one's replies.
BATCH = 32


class DispatchMonitor(Protocol):
    """What watches the dispatcher's work (the web front door's metrics): told of each
    event accepted, each step run and each reply sent. Must be quick and thread-safe."""

    def event_dispatched(self, event: Event) -> None:
        """An event was accepted for processing. Reactor thread."""

    def step_done(self, who: Any, seconds: float, failed: bool) -> None:
        """A processor (or a call_later/periodic function) ran on an event for
        ``seconds``; ``failed``: it raised. Worker thread."""

    def reply_sent(self, response: Response) -> None:
        """A reply was handed to its source. Reactor thread."""

    def step_retried(self, who: Any, kind: str) -> None:
        """A step is run again after a database failure of ``kind`` (see
        `Database.classify`). Worker thread."""

    def event_skipped(self, event: Event) -> None:
        """A source left ``event`` out before dispatching it, as no processor wants it
        (`Dispatcher.wants`). Reactor thread."""


@dataclass(slots=True, eq=False)
class _Work:
    """One run of the chain, whatever asked for it: an event handed to `Dispatcher.dispatch`
    (``deferred`` fires with it), a `Dispatcher.call_later` or a periodic tick (``call``
    runs first). ``key`` is the queue it waits in: the event's conversation, or the
    periodic task's own."""

    event: Event
    key: Hashable
    deferred: Deferred[Event] | None = None
    call: _Call | None = None
    #: Counted against its source's backlog bound (an event from `Dispatcher.dispatch`).
    bounded: bool = False
    #: When it was handed to the pool (reactor clock), and whether it went past the
    #: handler deadline; ``step`` is what it is running (set by its worker thread).
    started: float = 0.0
    stuck: bool = False
    step: Any = None
    #: The chain it runs with (its background processors run after it).
    chain: Chain | None = None
    #: What each step did, (name, outcome, seconds), and the whole run's seconds: for the
    #: counters (`BusStats`), added up on the reactor thread once the work is finished.
    steps: list[tuple[Any, str, float]] | None = None
    spent: float = 0.0
    #: The run after this one in the same hand-off to a worker (`Dispatcher._start`).
    next: _Work | None = None


@implementer(IScheduledCall)
class ScheduledCall:
    """A cancellable `Dispatcher.call_later`; safe to cancel from any thread. Only the
    caller's handle: the dispatcher keeps its timer and runs its work."""

    def __init__(self, on_cancel: Callable[[ScheduledCall], None]) -> None:
        self._on_cancel = on_cancel
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
        self._on_cancel(self)


class Dispatcher(BackgroundOptions, Service):
    """Runs events through the chain and sends their replies. Reactor thread, except where
    a method says otherwise.

    Every run of the chain is a work item (`_Work`) and takes one path: queued behind the
    others of its conversation, run in the pool, finished, its replies routed (`route`).
    Events from sources and from `dispatch` callers, ``call_later`` work and periodic
    ticks differ only in what starts them.

    Sharing the workers: a conversation holds at most one worker (its events run one
    after another); conversations whose next event waits for a worker are queued per
    source and served round-robin across sources, and within a source in the order they
    became ready; one source holds at most ``threads`` less a quarter of them (the rest
    are kept for the others). A source's backlog is bounded by ``max_queued``: once that
    many of its events wait, a source that can pause (``can_pause``) is told to stop
    reading its network (`Source.pause_input`) and told to read again once its backlog
    is down to half (`Source.resume_input`); events it still makes from what it had
    already read are held by the source (`Source.dispatch`) until then, and any it hands
    over regardless are still taken, up to twice ``max_queued``. Past that bound (or
    past ``max_queued`` for a source that cannot pause) new events are dropped: counted
    in ``dropped``, logged once per backlog, failed with `DispatcherOverloaded`. A run
    still going after ``handler_deadline`` seconds is logged with its event and what it
    is running, counted in ``stuck_total``, and no longer counts against the workers:
    the pool gets a replacement thread, up to ``max_threads`` in all, so that handlers
    blocked forever cannot stop the others.

    ``sources(name)`` returns the source of that name (or None) for routing replies;
    ``on_fatal`` is called when a processor raises SystemExit or KeyboardInterrupt.
    """

    threads = IntOption("Worker threads that run processors.", 10, min=1, max=500)
    shutdown_timeout = FloatOption(
        "Seconds in-flight events may take to finish when the bot stops.", 10.0, min=0
    )
    handler_deadline = FloatOption(
        "Seconds an event may run before it is logged as stuck and its worker thread "
        "replaced (up to max_threads).",
        30.0,
        min=0.1,
    )
    max_threads = IntOption(
        "Most worker threads, replacements for stuck events included (at least threads).",
        50,
        min=1,
        max=1000,
    )
    max_queued = IntOption(
        "Events of one source that may wait for a worker before the source is told to "
        "pause reading its network (it reads again once half are done); a source that "
        "cannot pause has more dropped (counted and logged), one that can has what it "
        "already read taken up to twice this.",
        1000,
        min=1,
    )

    log = Logger()

    def __init__(
        self,
        config: dict[str, Any] | None = None,
        *,
        reactor: Reactor,
        threadpool: Any = None,
        database: Database | None = None,
        sources: Callable[[str | None], ISource | None] | None = None,
        on_fatal: Callable[[Failure], None] | None = None,
        catalogue: Catalogue | None = None,
        stats: BusStats | None = None,
        background_pool: Any = None,
    ) -> None:
        self.setName("dispatcher")
        #: The counters per event type and processor (``event stats``).
        self.stats = stats if stats is not None else BusStats()
        #: The event types every publish path validates against.
        self.catalogue = catalogue if catalogue is not None else Catalogue()
        self.config = dict(config or {})
        self.reactor = reactor
        self.database = database
        self._get_source = sources or (lambda name: None)
        self._on_fatal = on_fatal
        self._own_pool = threadpool is None
        self.threadpool = threadpool
        self.chain = Chain(catalogue=self.catalogue)
        #: The outgoing filters' pipeline (`route`); its filters are the chain's.
        self.outgoing = Outgoing(self.stats)
        self._queues: dict[Hashable, deque[_Work]] = {}
        self._inflight = 0
        #: Conversations' next work waiting for a worker, by source, served round-robin
        #: (the dict's order is the turn order).
        self._ready: dict[str, deque[_Work]] = {}
        #: Runs in the pool not past the deadline, in all and by source.
        self._active = 0
        self._active_by: dict[str, int] = {}
        #: Bounded work waiting (in a conversation or ready), by source.
        self._waiting_by: dict[str, int] = {}
        self._running: set[_Work] = set()
        self._watchdog: IDelayedCall | None = None
        self._dropping: set[str] = set()
        #: Sources told to pause their input (backlog full), by name: the source object
        #: told, which is the one told to resume.
        self._paused: dict[str, ISource] = {}
        #: Events dropped because their source's backlog was full.
        self.dropped = 0
        #: Times a source was told to pause its input.
        self.pauses = 0
        #: Runs that went past the handler deadline (ever), and those still going.
        self.stuck_total = 0
        self.stuck = 0
        self._accepting = False
        self._drain_waiters: list[Deferred[bool]] = []
        self._scheduled: dict[ScheduledCall, IDelayedCall] = {}
        self._periodic: list[_PeriodicTask] = []
        self._done: list[tuple[Deferred[Any], bool, Any]] = []
        self._done_lock = threading.Lock()
        self._done_wake_pending = False
        self._commits_closed = False
        #: Called with every event once the chain has finished with it (replies sent, or
        #: the run aborted), whatever started it, before its Deferred fires: the event
        #: log and the reactors. Reactor thread; an observer's exception is logged.
        self.observers: list[Callable[[Event], None]] = []
        #: Who watches the work as it is done (`DispatchMonitor`: the web front door's
        #: metrics); replaced whole, never changed in place, so worker threads read one
        #: tuple or the other.
        self.monitors: tuple[DispatchMonitor, ...] = ()
        #: Background processors' queue and pool (`botcore.dispatch.background`).
        self.background = Background(
            self,
            reactor=reactor,
            run_step=self._thd_run,
            discard_session=self._thd_discard_session,
            monitors=lambda: self.monitors,
            route=self.route,
            stats=self.stats,
            threadpool=background_pool,
        )

    def load(self) -> dict[str, Any]:
        """How busy the dispatcher is now: events in flight, runs in the pool (not
        stuck), worker threads, stuck runs, events dropped in all, and events waiting
        for a worker by source. Reactor thread."""
        return {
            "inflight": self._inflight,
            "active": self._active,
            "threads": self.threads,
            "capacity": self.capacity,
            "stuck": self.stuck,
            "stuck_total": self.stuck_total,
            "dropped": self.dropped,
            "waiting": dict(self._waiting_by),
            "paused": sorted(self._paused),
            "pauses": self.pauses,
        }

    # -- lifecycle ------------------------------------------------------------

    def startService(self) -> None:
        super().startService()
        if self.threadpool is None:
            self.threadpool = WorkerPool(self.threads, name="botcore-dispatch")
        self.threadpool.start()
        self.background.start()
        self._accepting = True
        self._start_periodic()

    def stopService(self, timeout: float | None = None) -> Deferred[None]:
        """Accept no new events, let the in-flight ones finish (up to ``timeout``, by
        default ``shutdown_timeout``), then stop the pool. Fires when done."""
        super().stopService()
        self._accepting = False
        self._stop_periodic()
        self._stop_watchdog()
        for scheduled in list(self._scheduled):
            scheduled.cancel()
        wait = self.shutdown_timeout if timeout is None else timeout
        started = self.reactor.seconds()

        def background(drained: bool) -> Deferred[bool]:
            # The background work gets what is left of the timeout.
            left = max(0.0, wait - (self.reactor.seconds() - started))
            return self.background.stop(left).addCallback(lambda _: drained)

        return self.drain(wait).addCallback(background).addCallback(self._stop_pool)

    def close_commits(self) -> None:
        """From now on, a source's event (not the bot's own lifecycle and periodic work)
        commits nothing: its sources are about to close, and its reply could no longer be
        sent. Events waiting for a worker are told they were not processed. Reactor
        thread; the bot calls it before it stops the sources."""
        self._commits_closed = True
        self._abandon_queued(own=False)

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

    def _abandon_queued(self, own: bool = True) -> None:
        """Tell the sources of the events waiting (behind a stuck one, or for a worker)
        that they were not processed: they would otherwise wait for a pool that is going
        away. ``own``: the bot's own waiting work too (lifecycle, periodic)."""

        def kept(work: _Work) -> bool:
            return not own and work.event.source == _OWN_SOURCE

        dropped = [w for queue in self._ready.values() for w in queue if not kept(w)]
        dropped += [w for queue in self._queues.values() for w in queue if not kept(w)]
        for source in list(self._ready):
            self._ready[source] = deque(w for w in self._ready[source] if kept(w))
        running = {work.key for work in self._running}
        ready = {w.key for queue in self._ready.values() for w in queue}
        for key in list(self._queues):
            queue = deque(w for w in self._queues[key] if kept(w))
            if key in running or key in ready:
                self._queues[key] = queue
            elif queue:  # its head was dropped: the next one is ready now
                self._queues[key] = queue
                self._make_ready(queue.popleft())
            else:
                del self._queues[key]
        for work in dropped:
            if work.bounded:
                self._waiting_by[work.event.source] -= 1
            if work.deferred is not None:
                work.deferred.errback(
                    DispatcherStopped(f"stopped before {work.event.type} event was processed")
                )
        for name in list(self._paused):
            self._maybe_resume(name)
        self._pump()
        self._check_drained()

    def drain(self, timeout: float | None = None) -> Deferred[bool]:
        """Fire with True once no event is queued or running, or False after ``timeout``
        seconds with events still in flight (logged)."""
        if self.idle:
            return succeed(True)
        d: Deferred[bool] = Deferred()
        self._drain_waiters.append(d)
        if timeout is not None:
            timer = self.reactor.callLater(timeout, self._drain_timeout, d, timeout)

            def stop_timer(drained: bool) -> bool:
                if timer.active():
                    timer.cancel()
                return drained

            d.addCallback(stop_timer)
        return d

    @property
    def idle(self) -> bool:
        """No event queued or running."""
        return self._inflight == 0 and not self._queues

    @property
    def capacity(self) -> int:
        """Runs (not stuck) the pool is given at once: ``threads``, less the stuck runs
        that got no replacement thread (those beyond ``max_threads``)."""
        return self.threads - max(0, self.stuck - self._replacements())

    def _replacements(self) -> int:
        return max(0, self.max_threads - self.threads)

    def _source_share(self) -> int:
        # What one source may hold: all but a quarter of the workers (all of fewer than 4).
        return self.threads - self.threads // 4

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
        new = processors if isinstance(processors, Chain) else None
        chain = new or Chain(processors, self.catalogue)
        self._stop_periodic()
        self.chain = chain
        if self.running:
            self._start_periodic()
        return chain

    # -- what starts work -----------------------------------------------------

    def dispatch(self, event: Event) -> Deferred[Event]:
        """Queue an event; its replies are sent (`route`) once every processor has run,
        then the Deferred fires with it. Reactor thread. An event whose payload does not
        match its type's schema fails with `InvalidEvent` before any processor sees it."""
        if not self._accepting:
            return fail(DispatcherStopped(f"not accepting events; dropped {event.type} event"))
        try:
            self.catalogue.validate(event)
        except InvalidEvent as error:
            return fail(error)
        source = event.source
        waiting = self._waiting_by.get(source, 0)
        bound = self.max_queued
        if waiting >= bound and (source not in self._paused or waiting >= 2 * bound):
            return self._drop(event, waiting)
        if self._dropping and source in self._dropping and waiting < bound // 2:
            self._dropping.discard(source)
        self._waiting_by[source] = waiting + 1
        if waiting + 1 >= bound and source not in self._paused:
            self._pause(source, waiting + 1)
        for monitor in self.monitors:
            monitor.event_dispatched(event)
        d: Deferred[Event] = Deferred()
        self._enqueue(_Work(event, event.conversation, d, bounded=True))
        return d

    def _drop(self, event: Event, waiting: int) -> Deferred[Event]:
        """Refuse an event because its source's backlog is full: counted, logged once
        per backlog."""
        source = event.source
        self.dropped += 1
        if source not in self._dropping:
            self._dropping.add(source)
            why = (
                "it was told to pause but goes on"
                if source in self._paused
                else "it cannot pause its input"
            )
            self.log.warn(
                "source {source} has {count} events waiting for a worker and {why}; "
                "dropping its new events until it catches up ({dropped} dropped in all)",
                source=source,
                count=waiting,
                why=why,
                dropped=self.dropped,
            )
        return fail(
            DispatcherOverloaded(f"source {source} is overloaded; dropped {event.type} event")
        )

    def _pause(self, name: str, waiting: int) -> None:
        """Tell the source ``name`` its backlog is full: it stops reading its network
        (`Source.pause_input`) until `_resume`. A source that cannot pause is left
        alone (its events past the bound are dropped)."""
        source = self._get_source(name)
        if source is None or not getattr(source, "can_pause", False):
            return
        self._paused[name] = source
        self.pauses += 1
        self.log.info(
            "source {source} has {count} events waiting for a worker; pausing its input",
            source=name,
            count=waiting,
        )
        try:
            source.pause_input()
        except Exception:
            self.log.failure("source {source} failed to pause its input", source=name)

    def _maybe_resume(self, name: str) -> None:
        """Once a paused source's backlog is down to half ``max_queued`` (the low-water
        mark), it reads again."""
        if self._waiting_by.get(name, 0) > self.max_queued // 2:
            return
        source = self._paused.pop(name, None)
        if source is None:
            return
        self.log.info("source {source} has caught up; resuming its input", source=name)
        try:
            source.resume_input()
        except Exception:
            self.log.failure("source {source} failed to resume its input", source=name)

    def wants(self, event: Event) -> bool:
        """Whether any processor of the current chain would do something with ``event``
        (see `Chain.wants`); a source may leave out an event for which this is False
        (channel chatter when no processor but addressed commands would see it) instead
        of dispatching it. A private message is always taken as said to the bot, and a
        public one whenever its text holds one of the source's names anywhere, in any
        case (every way of addressing the bot does; what the core's Addressed decides
        later is narrower, so nothing said to the bot is ever left out). Reactor thread:
        cheap (no worker, no database)."""
        message = event.message
        addressed = not event.public
        if not addressed and message is not None:
            source = self._get_source(event.source)
            names = source.names() if source is not None else ()
            text = message.raw.casefold()
            addressed = not names or any(name.casefold() in text for name in names)
        return self.chain.wants(event, addressed)

    def skipped(self, event: Event) -> None:
        """A source left ``event`` out (`wants` said no): told to the monitors, so that
        what they count of a source's events stays true. Reactor thread."""
        for monitor in self.monitors:
            monitor.event_skipped(event)

    def publish(self, event: Event) -> Deferred[Event]:
        """The one entry for events from outside the sources (the HTTP API, a bridge):
        validated like every other path, then dispatched. Reactor thread."""
        return self.dispatch(event)

    def call_later(
        self, delay: float, function: Callable[..., Any], event: Event, *args: Any, **kw: Any
    ) -> ScheduledCall:
        """After ``delay`` seconds, run ``function(delayed_event, *args, **kw)`` in the pool,
        then the chain on that ``delayed`` event; its replies go to the same conversation.
        Any thread; returns a cancellable handle. An invalid delayed event raises
        `InvalidEvent` here, to the caller, and nothing is scheduled."""
        delayed = event.derive(EventType.DELAYED)
        self.catalogue.validate(delayed)
        work = _Work(delayed, delayed.conversation, call=(function, args, kw))
        scheduled = ScheduledCall(self._cancel_scheduled)
        self._on_reactor(lambda: self._schedule(scheduled, delay, work))
        return scheduled

    def _schedule(self, scheduled: ScheduledCall, delay: float, work: _Work) -> None:
        if scheduled.cancelled:
            return
        if not self._accepting:
            # Stopped: there is no pool to run it in any more.
            scheduled.cancelled = True
            function = work.call[0] if work.call is not None else None
            self.log.warn(
                "dropped a call_later of {function} scheduled while the dispatcher is stopped",
                function=getattr(function, "__qualname__", function),
            )
            return
        self._scheduled[scheduled] = self.reactor.callLater(
            delay, self._fire_scheduled, scheduled, work
        )

    def _cancel_scheduled(self, scheduled: ScheduledCall) -> None:
        # Any thread: the timer is the reactor's.
        self._on_reactor(lambda: self._drop_timer(scheduled))

    def _drop_timer(self, scheduled: ScheduledCall) -> None:
        timer = self._scheduled.pop(scheduled, None)
        if timer is not None and timer.active():
            timer.cancel()

    def _fire_scheduled(self, scheduled: ScheduledCall, work: _Work) -> None:
        self._scheduled.pop(scheduled, None)
        if scheduled.cancelled:  # cancelled from a thread, the timer not yet dropped
            return
        scheduled.called = True
        self._enqueue(work)

    def _on_reactor(self, function: Callable[[], None]) -> None:
        if threadable.isInIOThread():
            function()
        else:
            self.reactor.callFromThread(function)

    # -- the one path: enqueue, run in the pool, finish, route ----------------

    def _enqueue(self, work: _Work) -> None:
        queue = self._queues.get(work.key)
        if queue is not None:
            queue.append(work)
            return
        self._queues[work.key] = deque()
        self._make_ready(work)
        self._pump()

    def _make_ready(self, work: _Work) -> None:
        # The conversation's next work: its turn comes with its source's.
        ready = self._ready.get(work.event.source)
        if ready is None:
            self._ready[work.event.source] = ready = deque()
        ready.append(work)

    def _pump(self) -> None:
        """Hand ready work to the pool while it has room: one item per source in turn
        (a source served goes to the back of the turn order, even with nothing left, so
        that its next event waits for the others' turns), skipping a source that holds
        its share."""
        share = self._source_share()
        ready = self._ready
        while self._active < self.capacity:
            chosen = None
            for source, queue in list(ready.items()):
                if not queue:
                    del ready[source]
                elif self._active_by.get(source, 0) < share:
                    chosen = source
                    break
            if chosen is None:
                return  # nothing ready, or every source with work holds its share
            queue = ready.pop(chosen)
            work = queue.popleft()
            ready[chosen] = queue
            self._start(work)

    def _start(self, work: _Work) -> None:
        source = work.event.source
        runs = self._batch(work)
        started = self.reactor.seconds()
        for run in runs:
            self._inflight += 1
            if run.bounded:
                self._waiting_by[source] -= 1
            # The lease lets a reload shut the old processors down once nothing uses them.
            run.chain = self.chain._use()
        # One worker for the whole batch: it counts once, and the run it is on is the
        # one watched for the handler deadline (`_finished` moves on to the next).
        self._active += 1
        self._active_by[source] = self._active_by.get(source, 0) + 1
        work.started = started
        self._running.add(work)
        if self._watchdog is None:
            self._watchdog = self.reactor.callLater(self.handler_deadline, self._watch)
        chain = self.chain
        if len(runs) == 1:
            d = self._in_pool(self.thd_process, work.event, chain, work.call, work)
            d.addBoth(self._finished, work)
            d.addBoth(chain._done_with)
        else:
            deferreds = []
            for run in runs:
                d = Deferred()
                d.addBoth(self._finished, run)
                d.addBoth(chain._done_with)
                deferreds.append(d)
            # The lead's event first, as for one run (what a test's pool shows).
            self.threadpool.callInThreadWithCallback(
                self._batch_ended, self._thd_batch, work.event, chain, runs, deferreds
            )
        # Last: a resumed source may dispatch what it reads at once (this pump re-entered).
        if work.bounded and self._paused and source in self._paused:
            self._maybe_resume(source)

    def _batch(self, work: _Work) -> list[_Work]:
        """``work`` and the runs queued behind it in its conversation that one worker takes
        with it, in order (up to `BATCH`): only while another worker stays free for the
        other conversations, so that when the workers are all busy (or there is one) the
        round-robin between conversations is as before, one run at a time."""
        queue = self._queues.get(work.key)
        if not queue or self._active + 1 >= self.capacity:
            return [work]
        runs = [work]
        for _ in range(min(len(queue), BATCH - 1)):
            runs.append(queue.popleft())
        for run, following in pairwise(runs):
            run.next = following
        return runs

    # -- the handler deadline ---------------------------------------------------

    def _watch(self) -> None:
        """Mark the runs past the deadline stuck, and look again when the next one is
        due. Reactor thread."""
        self._watchdog = None
        now = self.reactor.seconds()
        deadline = self.handler_deadline
        due = None
        for work in list(self._running):
            if work.stuck:
                continue
            if now - work.started >= deadline:
                self._mark_stuck(work, now)
            else:
                at = work.started + deadline
                due = at if due is None else min(due, at)
        if due is not None:
            self._watchdog = self.reactor.callLater(max(0.0, due - now), self._watch)
        self._pump()

    def _mark_stuck(self, work: _Work, now: float) -> None:
        work.stuck = True
        self.stuck += 1
        self.stuck_total += 1
        self._release(work)
        replaced = self.stuck <= self._replacements()
        if replaced:
            grow = getattr(self.threadpool, "grow", None)
            if grow is not None:
                grow()
        event = work.event
        self.log.warn(
            "{type} event {id} from {source} (conversation {conversation!r}) still running "
            "after {seconds:.0f}s, in {step}; {replaced} ({stuck} stuck now, "
            "{total} in all)",
            type=event.type,
            id=event.id,
            source=event.source,
            conversation=work.key,
            seconds=now - work.started,
            step=getattr(work.step, "name", None) or work.step or "the dispatcher",
            replaced="its worker is replaced"
            if replaced
            else f"not replaced: max_threads ({self.max_threads}) reached",
            stuck=self.stuck,
            total=self.stuck_total,
        )

    def _release(self, work: _Work) -> None:
        self._active -= 1
        self._active_by[work.event.source] -= 1
        if not self._active_by[work.event.source]:
            del self._active_by[work.event.source]

    def _stop_watchdog(self) -> None:
        if self._watchdog is not None and self._watchdog.active():
            self._watchdog.cancel()
        self._watchdog = None

    def _in_pool(self, function: Callable[..., Any], *args: Any) -> Deferred[Any]:
        d: Deferred[Any] = Deferred()

        def on_result(ok: bool, result: Any) -> None:
            self._post(d, ok, result)

        self.threadpool.callInThreadWithCallback(on_result, function, *args)
        return d

    def _post(self, d: Deferred[Any], ok: bool, result: Any) -> None:
        """Have ``d`` fired on the reactor thread with ``result``. Results are batched:
        only the first of a batch wakes the reactor, which then fires them all, in the
        order they were finished. Any thread."""
        with self._done_lock:
            self._done.append((d, ok, result))
            if self._done_wake_pending:
                return
            self._done_wake_pending = True
        self.reactor.callFromThread(self._fire_done)

    def _thd_batch(
        self, event: Event, chain: Chain, runs: list[_Work], deferreds: list[Deferred[Event]]
    ) -> None:
        """Run a batch's runs one after another (``event`` is the first's), each one's
        result handed to the reactor as soon as it is done, so that its replies leave
        while the next runs. After a run that asks the bot to exit the rest are not
        run. Worker thread."""
        for index, (run, d) in enumerate(zip(runs, deferreds, strict=True)):
            try:
                self._post(d, True, self.thd_process(run.event, chain, run.call, run))
            except BaseException:
                failure = Failure()
                self._post(d, False, failure)
                if failure.check(SystemExit, KeyboardInterrupt):
                    for rest in deferreds[index + 1 :]:
                        self._post(rest, False, Failure(DispatcherStopped("the bot is exiting")))
                    return

    def _batch_ended(self, ok: bool, result: Any) -> None:
        # Each run's result went its own way (`_thd_batch`); only a failure of the batch
        # itself (none is expected) comes here. Worker thread.
        if not ok:
            self.log.failure("a batch of runs failed", result)

    def _fire_done(self) -> None:
        with self._done_lock:
            done, self._done = self._done, []
            self._done_wake_pending = False
        for d, ok, result in done:
            if ok:
                d.callback(result)
            else:
                d.errback(result)

    def _finished(self, result: Event | Failure, work: _Work) -> None:
        self._inflight -= 1
        self._running.discard(work)
        following = work.next
        if following is not None:
            # Its worker goes on with the next run of the batch: that one is watched now,
            # from now, and the worker still counts (again, if it was stuck and released).
            work.next = None
            following.started = self.reactor.seconds()
            self._running.add(following)
            if work.stuck:
                self._active += 1
                source = work.event.source
                self._active_by[source] = self._active_by.get(source, 0) + 1
        if work.stuck:
            self.stuck -= 1
            if self.stuck < self._replacements():  # it had a replacement
                shrink = getattr(self.threadpool, "shrink", None)
                if shrink is not None:
                    shrink()
            self.log.info(
                "{type} event {id} finished after {seconds:.0f}s (it was stuck)",
                type=work.event.type,
                id=work.event.id,
                seconds=self.reactor.seconds() - work.started,
            )
        elif following is None:
            self._release(work)
        if not self._running:
            self._stop_watchdog()
        if isinstance(result, Failure):
            self.log.failure(
                "{type} event {id} aborted", result, type=work.event.type, id=work.event.id
            )
            self._observe(work, result)
            if work.deferred is not None:
                work.deferred.errback(result)
            if self._on_fatal is not None and result.check(SystemExit, KeyboardInterrupt):
                self._on_fatal(result)
        else:
            # Before the next event of the conversation is handled here (a batch's next
            # may be running already): its replies leave in order.
            self.route(result)
            # Then the counters, log and reactors, before whoever waits for the event;
            # the background processors after the replies.
            self._observe(work, result)
            if work.chain is not None:
                self.background.submit(result, work.chain)
            if work.deferred is not None:
                work.deferred.callback(result)
        if following is not None:
            return  # the conversation's next run is on its way already
        queue = self._queues.get(work.key)
        if queue:
            self._make_ready(queue.popleft())
        elif queue is not None:
            del self._queues[work.key]
        self._pump()
        self._check_drained()

    def _observe(self, work: _Work, result: Event | Failure) -> None:
        event = work.event
        answered = event.processed or bool(event.responses)
        aborted = isinstance(result, Failure)
        self.stats.record(event.type, answered, aborted, work.spent, work.steps or ())
        for observe in self.observers:
            try:
                observe(event)
            except Exception:
                self.log.failure("observer {observer!r} failed", observer=observe)

    def route(self, event: Event) -> None:
        """Send the event's replies, in order, each through the outgoing filters
        (`botcore.dispatch.outgoing`: Format is one) and then to the source it names (the
        event's own or another). This is the one way replies leave, whatever produced
        them: the chain, ``call_later``, periodic and background work, reactors, the HTTP
        API and `send`. The event is left holding what was sent (the filters' results).

        Sources are only given text: an acknowledgement left as True/False (the chain had
        no core Address to word it) is worded here, before the filters, with a warning. A
        reply for an unknown source is logged and dropped, and a send that fails is logged
        without stopping the others. A notice is never answered (bots answering notices
        answer each other forever): its replies are dropped here, whoever added them.
        Reactor thread."""
        responses = event.responses
        if not responses:
            return
        if event.type == EventType.NOTICE:
            self.log.debug(
                "dropped {count} reply(ies) to notice {id}: notices are not answered",
                count=len(responses),
                id=event.id,
            )
            del responses[:]
            return
        filters = self.chain.filters()
        if not filters:
            for index, response in enumerate(responses):
                if not isinstance(response.text, str):
                    response = responses[index] = self._worded(response, event)
                self._hand_over(response, event)
            return
        sent: list[Response] = []
        for response in responses:
            if not isinstance(response.text, str):
                response = self._worded(response, event)
            for filtered in self.outgoing.run(response, event, filters):
                sent.append(filtered)
                self._hand_over(filtered, event)
        # In the event too, so that what was sent is what the event says.
        responses[:] = sent

    def send(self, response: Response, event: Event | None = None) -> None:
        """Send one reply that no event's run produced (plugin code, a bridge) by the one
        path, `route`: through the outgoing filters, then to ``response.source``.
        ``event`` is what the filters are shown as its event; by default a carrier of type
        ``outgoing`` on the reply's source and target. Any thread (from a worker thread it
        is sent on the reactor thread, soon)."""
        carrier = (
            event
            if event is not None
            else Event(
                source=response.source or _OWN_SOURCE,
                type=OUTGOING,
                channel=response.target,
            )
        )
        carrier.responses.append(response)
        self._on_reactor(lambda: self.route(carrier))

    def _hand_over(self, response: Response, event: Event) -> None:
        source = self._get_source(response.source)
        if source is None:
            self.log.warn(
                "dropped a reply for unknown source {source!r} (event {id})",
                source=response.source,
                id=event.id,
            )
            return
        try:
            source.send(response)
        except Exception:
            self.log.failure("source {source} failed to send a reply", source=source.name)
            return
        for monitor in self.monitors:
            monitor.reply_sent(response)

    def _worded(self, response: Response, event: Event) -> Response:
        text = response.text
        words = (ACKNOWLEDGED if text else REFUSED) if isinstance(text, bool) else str(text)
        self.log.warn(
            "a reply of {type} event {id} was {text!r}, not text (is the core Address "
            "processor in the chain, before Format?); sent as {words!r}",
            type=event.type,
            id=event.id,
            text=text,
            words=words,
        )
        return response.replace(text=words)

    # -- worker thread --------------------------------------------------------

    def thd_process(
        self, event: Event, chain: Chain, call: _Call | None = None, work: _Work | None = None
    ) -> Event:
        """Run ``call`` (if any), the event type's pre-hooks, every processor of ``chain``
        that accepts the event, then the post-hooks, committing the session after each
        step that changed something (``work.step`` says which runs, for the stuck-handler
        log). A hook that fails is logged and counted like a processor; the others run.
        Worker thread."""
        if self.database is not None and event._session_factory is None:
            event._session_factory = self.database.open_session
        run: Callable[..., Any] = self._thd_run
        clock = time.perf_counter
        begun = clock()
        if work is not None:
            steps = work.steps = []
            record = steps.append
            monitors = self.monitors  # replaced whole: this event's steps tell these
            thd_run = self._thd_run

            def run(event: Event, function: Any, args: Any, kw: Any, who: Any) -> None:
                work.step = who
                started = clock()
                outcome = thd_run(event, function, args, kw, who)
                seconds = clock() - started
                record((who, outcome, seconds))
                for monitor in monitors:
                    monitor.step_done(who, seconds, outcome == FAILED)

        pre, post = chain.hooks(event.type)
        try:
            if call is not None:
                function, args, kw = call
                run(event, function, args, kw, getattr(function, "__qualname__", "call"))
            for name, hook in pre:
                run(event, hook, (), _NO_KEYWORDS, name)
            for step in chain.steps(event.type):
                if isinstance(step, MatchRun):
                    step.run(event, lambda p: run(event, p.process, (), _NO_KEYWORDS, p))
                elif step.accepts(event):
                    run(event, step.process, (), _NO_KEYWORDS, step)
            for name, hook in post:
                run(event, hook, (), _NO_KEYWORDS, name)
        finally:
            self._thd_discard_session(event)
            if work is not None:
                work.spent = clock() - begun
        return event

    def _thd_run(
        self,
        event: Event,
        function: Callable[..., Any],
        args: tuple[Any, ...],
        kw: dict[str, Any],
        who: Any,
    ) -> str:
        """Run one step and commit what it changed; what it did (`botcore.bus.stats`:
        seen, handled or failed). A database failure worth retrying
        (dropped connection, restarted server, deadlock; see `Database.classify`) runs the
        step again on a fresh session, with the event's replies reset to what they were
        before it, waiting the database's backoff between tries; when it keeps failing,
        the step gives up with a ``database`` complaint. Any other error is logged and
        complained about, and the step's uncommitted changes and its replies are undone.
        Worker thread."""
        replies, processed = len(event.responses), event.processed
        database = self.database
        attempt = 0
        while True:
            committing = False
            try:
                if args or kw:
                    function(event, *args, **kw)
                else:
                    function(event)
                if event.has_session:
                    if self._commits_closed and event.source != _OWN_SOURCE:
                        self._thd_refuse_commit(event, replies, who)
                        return SEEN
                    committing = True
                    commit_if_changed(event.session)
                if len(event.responses) > replies or (event.processed and not processed):
                    return HANDLED
                return SEEN
            except (SystemExit, KeyboardInterrupt):
                raise  # the bot is asked to exit (on_fatal)
            except BaseException as error:
                # Any other BaseException (GeneratorExit, a plugin's own) is a failure like
                # any: the sender gets the complaint, and the chain goes on.
                if database is None or (kind := database.classify(error)) is None:
                    if attempt:
                        message = "{who} failed on event {id} (retried)"
                    elif committing:
                        message = "commit after {who} failed on event {id}"
                    else:
                        message = "{who} failed on event {id}"
                    # What it said went with what it did: the user gets the complaint, not
                    # a "done" for a change that was rolled back.
                    del event.responses[replies:]
                    self._thd_fail(event, message, who)
                    return FAILED
                delay = database.retry_delay_for(kind, attempt)
                if delay is None:
                    self._thd_undo(event, replies, processed)
                    database.gave_up(kind, error, f"{who} on event {event.id}")
                    event.complain = "database"
                    return FAILED
            self._thd_undo(event, replies, processed)
            for monitor in self.monitors:
                monitor.step_retried(who, kind)
            database.sleep(delay)
            attempt += 1

    def _thd_refuse_commit(self, event: Event, replies: int, who: Any) -> None:
        # The bot is stopping and the event's source closing: what the step changed is
        # thrown away with what it said, rather than committed without a reply.
        if has_changes(event.session):
            self.log.info(
                "{who} on event {id}: not committed, the bot is stopping", who=who, id=event.id
            )
        del event.responses[replies:]
        self._thd_rollback(event)

    def _thd_undo(self, event: Event, replies: int, processed: bool) -> None:
        # Before a step is tried again (or given up on): a fresh session, and none of
        # what the failed try said.
        self._thd_discard_session(event)
        del event.responses[replies:]
        event.processed = processed

    def _thd_fail(self, event: Event, message: str, who: Any) -> None:
        """Log the exception being handled, complain to the user and undo the step's
        uncommitted changes. Worker thread; call from an ``except`` block."""
        failure = Failure()
        cut = _shorten(failure)
        if cut:
            message += " (traceback shortened: {cut} frames left out)"
        self.log.failure(message, failure, who=who, id=event.id, cut=cut)
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
                task = _PeriodicTask(processor, method, interval, self.reactor, self._enqueue)
                task.start(delay)
                self._periodic.append(task)

    def _stop_periodic(self) -> None:
        tasks, self._periodic = self._periodic, []
        for task in tasks:
            task.stop()


#: Frames kept at each end of a logged traceback that is longer than twice this (a
#: RecursionError's runs to a thousand frames and more).
TRACEBACK_ENDS = 20


def _shorten(failure: Failure) -> int:
    """Keep the first and last `TRACEBACK_ENDS` frames of ``failure``; how many were cut."""
    frames = failure.frames
    cut = len(frames) - 2 * TRACEBACK_ENDS
    if cut <= 0:
        return 0
    failure.frames = frames[:TRACEBACK_ENDS] + frames[-TRACEBACK_ENDS:]
    return cut


class _PeriodicTask:
    """One ``@periodic`` method on the reactor clock. Each tick is a work item handed to
    ``submit``, in a queue of the task's own (so the task's runs do not wait for each
    other's conversation, or others'); a tick while the previous run is still going is
    skipped rather than queued."""

    log = Logger()

    def __init__(
        self,
        processor: Processor,
        method: Callable[[Event], None],
        interval: float,
        clock: Any,
        submit: Callable[[_Work], None],
    ) -> None:
        self.processor = processor
        self.method = method
        self.interval = interval
        self.clock = clock
        self._submit = submit
        self.loop = LoopingCall(self.tick)
        self.loop.clock = clock
        self._delayed: IDelayedCall | None = None
        self.running = False

    def start(self, delay: float) -> None:
        self._delayed = self.clock.callLater(delay, self._begin)

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
        done: Deferred[Event] = Deferred()
        done.addBoth(self._done)
        self._submit(_Work(event, self, done, (self.method, (), {})))

    def _done(self, _: Any) -> None:
        # A failure has been logged (and a fatal one acted on) by the dispatcher.
        self.running = False
