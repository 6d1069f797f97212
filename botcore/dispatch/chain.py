"""The processor chain: processors in priority order, indexed by event type, with a fast
path that skips ``@match``-only processors whose patterns cannot match a message.

A chain is immutable; the dispatcher swaps whole chains, so an event sees one or another."""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from twisted.internet.defer import Deferred

from botcore.dispatch.outgoing import OutgoingFilter, filters_of
from botcore.processor import Priority

if TYPE_CHECKING:
    from botcore.bus.catalogue import Catalogue
    from botcore.event import Event
    from botcore.processor import Processor, TypeLineage


class Chain:
    """An immutable chain: processors in ascending priority (load order for ties), with a
    per-event-type index so an event only meets the processors that handle its type.

    Swapping the dispatcher's chain is one attribute assignment, so an event sees the old
    chain or the new one, never a mix.

    With a ``catalogue`` (the dispatcher's), a processor subscribed to a type also gets
    its subtypes, and one subscribed to a topic its types (`Processor.subscribes`); the
    index is worked out again when the catalogue changes (a plugin declared a type)."""

    def __init__(
        self, processors: Iterable[Processor] = (), catalogue: Catalogue | None = None
    ) -> None:
        self.processors: tuple[Processor, ...] = tuple(
            sorted(processors, key=lambda processor: processor.priority)
        )
        self.catalogue = catalogue
        self._generation = self._current_generation()
        self._by_type: dict[str, tuple[Processor, ...]] = {}
        self._steps: dict[str, tuple[Processor | MatchRun, ...]] = {}
        self._hooks: dict[str, tuple[Hooks, Hooks]] = {}
        self._wants: dict[tuple[str, bool, bool], bool] = {}
        self._background: dict[str, tuple[Processor, ...]] = {}
        #: The processors' outgoing filters, in order (`botcore.dispatch.outgoing`).
        self._filters = filters_of(self.processors)
        #: Events (and periodic runs) running with this chain. Reactor thread.
        self.users = 0
        self._released: list[Deferred[None]] = []

    def released(self) -> Deferred[None]:
        """Fires once no event or periodic run is using this chain (at once if none is):
        after a reload, when the old processors may be shut down. Reactor thread."""
        d: Deferred[None] = Deferred()
        if self.users == 0:
            d.callback(None)
        else:
            self._released.append(d)
        return d

    def _use(self) -> Chain:
        self.users += 1
        return self

    def _done_with(self, result: Any) -> Any:
        self.users -= 1
        if self.users == 0 and self._released:
            waiters, self._released = self._released, []
            for d in waiters:
                d.callback(None)
        return result

    def _current_generation(self) -> int:
        return -1 if self.catalogue is None else self.catalogue.generation

    def _check_generation(self) -> None:
        generation = self._current_generation()
        if generation != self._generation:
            # New dicts, so that a thread filling the old ones leaves nothing stale here.
            self._by_type, self._steps, self._hooks, self._wants = {}, {}, {}, {}
            self._background = {}
            self._generation = generation

    def for_type(self, event_type: str) -> tuple[Processor, ...]:
        """The processors subscribed to ``event_type``, in order. Any thread."""
        self._check_generation()
        by_type = self._by_type
        found = by_type.get(event_type)
        if found is None:
            lineage: TypeLineage | None = self.catalogue
            found = tuple(p for p in self.processors if p.subscribes(event_type, lineage))
            by_type[event_type] = found
        return found

    def steps(self, event_type: str) -> tuple[Processor | MatchRun, ...]:
        """`for_type` but the background processors, with each run of processors that
        only have ``@match`` handlers made one `MatchRun`, which skips those that cannot
        match. Any thread."""
        self._check_generation()
        steps = self._steps
        found = steps.get(event_type)
        if found is None:
            foreground = (p for p in self.for_type(event_type) if not _is_background(p))
            found = steps[event_type] = _steps(foreground)
        return found

    def background(self, event_type: str) -> tuple[Processor, ...]:
        """The background processors subscribed to ``event_type``, in order."""
        self._check_generation()
        cache = self._background
        found = cache.get(event_type)
        if found is None:
            found = cache[event_type] = tuple(
                p for p in self.for_type(event_type) if _is_background(p)
            )
        return found

    def hooks(self, event_type: str) -> tuple[Hooks, Hooks]:
        """The pre- and post-hooks of ``event_type``'s events: (name, method) pairs in
        ascending hook priority, then chain order. Any thread."""
        self._check_generation()
        cache = self._hooks
        found = cache.get(event_type)
        if found is None:
            kinds: dict[str, list[tuple[int, int, str, Callable[..., Any]]]] = {
                "pre": [],
                "post": [],
            }
            for index, processor in enumerate(self.processors):
                hooks = getattr(processor, "hooks", None)
                for spec, method in hooks() if hooks is not None else ():
                    if processor.hooked(spec, event_type, self.catalogue):
                        name = f"{processor.name}.{type(processor).__name__}.{spec.attribute}"
                        kinds[spec.kind].append((spec.priority, index, name, method))
            found = cache[event_type] = (
                tuple((name, method) for _, _, name, method in sorted(kinds["pre"])),
                tuple((name, method) for _, _, name, method in sorted(kinds["post"])),
            )
        return found

    def filters(self) -> tuple[OutgoingFilter, ...]:
        """The outgoing filters of the chain's processors, in ascending filter priority,
        then chain order. Any thread."""
        return self._filters

    def wants(self, event: Event, addressed: bool) -> bool:
        """Whether any processor would do something with ``event`` (``addressed``: it may
        turn out to be said to the bot), from event types and the cheap checks alone, so
        that a source can drop an event nobody wants without handing it to a worker.

        Counted are the work band's processors that accept it (as addressed, if it may
        be), any processor elsewhere that ``observes`` (says it records every event it
        accepts: a log, last sightings), and for an event that may be addressed the post
        band (an addressed event nothing handled is complained about); the rest of the
        pre and post bands only ready events and replies for the work band. Any thread;
        the answer for each (type, addressed, processed) is worked out once per chain."""
        self._check_generation()
        key = (event.type, addressed, event.processed)
        wants = self._wants
        found = wants.get(key)
        if found is None:
            pre, post = self.hooks(event.type)
            found = bool(pre or post) or any(
                (
                    p.priority in Priority.WORK
                    or getattr(p, "observes", False)
                    or (addressed and p.priority in Priority.POST)
                )
                and (addressed or not p.addressed)
                and (p.processed or not event.processed)
                and not _idle(p)
                for p in self.for_type(event.type)
            )
            wants[key] = found
        return found

    def __len__(self) -> int:
        return len(self.processors)

    def __iter__(self):
        return iter(self.processors)


_Starts = tuple[tuple[str, frozenset[str] | None], ...]
#: A chain's hooks of one kind for one event type: (name, method), in order.
Hooks = tuple[tuple[str, Callable[..., Any]], ...]


def _is_background(processor: Processor) -> bool:
    return bool(getattr(processor, "background", False))


def _idle(processor: Processor) -> bool:
    """Whether the processor does nothing in the chain: no handler and no ``process`` of
    its own (one that only has hooks or outgoing filters)."""
    match_starts = getattr(processor, "match_starts", None)
    return match_starts is not None and match_starts() == ()


def _steps(processors: Iterable[Processor]) -> tuple[Processor | MatchRun, ...]:
    steps: list[Processor | MatchRun] = []
    run: list[tuple[Processor, _Starts]] = []
    for processor in processors:
        match_starts = getattr(processor, "match_starts", None)
        starts = match_starts() if match_starts is not None else None
        if starts == ():
            continue  # nothing to run (hooks or outgoing filters only)
        if starts is not None:
            run.append((processor, starts))
            continue
        if run:
            steps.append(MatchRun(run))
            run = []
        steps.append(processor)
    if run:
        steps.append(MatchRun(run))
    return tuple(steps)


class MatchRun:
    """Consecutive processors that only run ``@match`` handlers, indexed by the characters
    each handler's text can start with (`Processor.match_starts`), so that a message meets
    only the processors that could match it; the others would do nothing. Commands mostly
    start with a word of their own, so with many plugins most are skipped unseen."""

    def __init__(self, run: list[tuple[Processor, _Starts]]) -> None:
        self.processors = tuple(processor for processor, _ in run)
        self.versions = tuple(sorted({version for _, starts in run for version, _ in starts}))
        self._anything: set[int] = set()  # processors with a handler whose regex tells nothing
        self._by_first: dict[tuple[str, str], set[int]] = {}
        for index, (_, starts) in enumerate(run):
            for version, first in starts:
                if first is None:
                    self._anything.add(index)
                    continue
                for char in first:
                    self._by_first.setdefault((version, char), set()).add(index)
        self._everyone = tuple(range(len(self.processors)))
        self._orders: dict[tuple[str, ...], tuple[int, ...]] = {}

    def candidates(self, message: Any) -> tuple[int, ...]:
        """Indices of the processors that could match ``message`` as it is, ascending."""
        if message is None:
            return ()
        key = []
        for version in self.versions:
            text = getattr(message, version, None)
            if not isinstance(text, str):
                return self._everyone
            first = text[:1]
            if not first.isascii():  # case-blind matching beyond ASCII: let the regex say
                return self._everyone
            key.append(first.lower())
        found = self._orders.get(tuple(key))
        if found is None:
            indices = set(self._anything)
            for version, first in zip(self.versions, key, strict=True):
                indices.update(self._by_first.get((version, first), ()))
            found = tuple(sorted(indices))
            if len(self._orders) < 4096:
                self._orders[tuple(key)] = found
        return found

    def run(self, event: Event, run: Callable[[Processor], None]) -> None:
        """Call ``run`` for each processor that could match and accepts the event, in
        order; the message is looked at again after each (it may have changed)."""
        order = self.candidates(event.message)
        at = 0
        while at < len(order):
            index = order[at]
            at += 1
            processor = self.processors[index]
            if processor.accepts(event):
                run(processor)
                now = self.candidates(event.message)
                if now is not order:
                    order = now
                    at = bisect_right(order, index)
