"""The bus's counters, kept in memory since the start: per event type, per topic (the sum
of its types'), per processor (events seen, handled, failed, time spent) and per reactor
(fired, condition false, failed) and per outgoing filter (replies seen, changed, dropped,
failed, time spent). Shown by the ``event stats`` chat command; `snapshot`
is what a metrics endpoint exports.

Only the reactor thread writes them: the dispatcher's workers time each step into the
work item, and the dispatcher adds them up here when the event is finished."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from botcore.bus.catalogue import Catalogue

#: What one step of the chain did with an event: ran and changed nothing visible, handled
#: it (a reply, or marked it processed), or failed (raised, or gave up on the database).
SEEN = "seen"
HANDLED = "handled"
FAILED = "failed"


@dataclass(slots=True)
class Tally:
    """Counts for one event type, topic or processor."""

    seen: int = 0
    handled: int = 0
    failed: int = 0
    seconds: float = 0.0

    def add(self, outcome: str, seconds: float) -> None:
        self.seen += 1
        if outcome is HANDLED:
            self.handled += 1
        elif outcome is FAILED:
            self.failed += 1
        self.seconds += seconds

    def merge(self, other: Tally) -> None:
        self.seen += other.seen
        self.handled += other.handled
        self.failed += other.failed
        self.seconds += other.seconds


@dataclass(slots=True)
class ReactorTally:
    """Counts for one reactor."""

    fired: int = 0
    condition_false: int = 0
    failed: int = 0


@dataclass(slots=True)
class FilterTally:
    """Counts for one outgoing filter: replies it saw, changed (or split), dropped, and
    failed on (raised), and the time it took."""

    seen: int = 0
    changed: int = 0
    dropped: int = 0
    failed: int = 0
    seconds: float = 0.0


class BusStats:
    """Every counter of the bus. Reactor thread (`record` and the reactor counts); reading
    from another thread sees counts a moment old."""

    def __init__(self) -> None:
        self.types: dict[str, Tally] = {}
        self.processors: dict[str, Tally] = {}
        self.reactors: dict[str, ReactorTally] = {}
        self.filters: dict[str, FilterTally] = {}
        # Each step (a processor, a hook's name) -> its tally in ``processors``: one
        # look-up a step. A reloaded processor's name finds the tally of the old one.
        self._tallies: dict[Any, Tally] = {}

    def record(
        self,
        event_type: str,
        answered: bool,
        aborted: bool,
        seconds: float,
        steps: Iterable[tuple[Any, str, float]] = (),
    ) -> None:
        """Count one finished event of ``event_type`` (handled when ``answered``: it was
        processed or got a reply; failed when a step failed or the run was ``aborted``)
        and each of its ``steps`` as (processor or name, outcome, seconds)."""
        failed = self.record_steps(steps) or aborted
        tally = self.types.get(event_type)
        if tally is None:
            tally = self.types[event_type] = Tally()
        tally.add(FAILED if failed else HANDLED if answered else SEEN, seconds)

    def record_steps(self, steps: Iterable[tuple[Any, str, float]]) -> bool:
        """Count each step, (processor or name, outcome, seconds); whether one failed."""
        failed = False
        tallies = self._tallies
        for who, outcome, spent in steps:
            found = tallies.get(who)
            if found is None:
                found = self._tally_of(who)
            found.seen += 1
            found.seconds += spent
            if outcome is HANDLED:
                found.handled += 1
            elif outcome is FAILED:
                found.failed += 1
                failed = True
        return failed

    def _tally_of(self, who: Any) -> Tally:
        name = _step_name(who)
        found = self.processors.get(name)
        if found is None:
            found = self.processors[name] = Tally()
        if len(self._tallies) > 10000:  # old processors of many reloads
            self._tallies.clear()
        self._tallies[who] = found
        return found

    def reactor(self, name: str) -> ReactorTally:
        """The counts of reactor ``name`` (made on first use)."""
        found = self.reactors.get(name)
        if found is None:
            found = self.reactors[name] = ReactorTally()
        return found

    def filter(self, name: str) -> FilterTally:
        """The counts of outgoing filter ``name`` (made on first use)."""
        found = self.filters.get(name)
        if found is None:
            found = self.filters[name] = FilterTally()
        return found

    def topics(self, catalogue: Catalogue) -> dict[str, Tally]:
        """Per topic: the sum of the counts of the types (and subtypes) it takes."""
        totals = {topic.name: Tally() for topic in catalogue.topics()}
        for event_type, tally in self.types.items():
            for topic in catalogue.topics_of(event_type):
                totals[topic].merge(tally)
        return totals

    def snapshot(self, catalogue: Catalogue | None = None) -> dict[str, Any]:
        """Every counter as plain values (JSON-ready): ``types``, ``topics`` (with a
        catalogue), ``processors``, ``reactors`` and ``filters``, each name -> its counts."""
        found: dict[str, Any] = {
            "types": {name: asdict(t) for name, t in sorted(self.types.items())},
            "processors": {name: asdict(t) for name, t in sorted(self.processors.items())},
            "reactors": {name: asdict(t) for name, t in sorted(self.reactors.items())},
            "filters": {name: asdict(t) for name, t in sorted(self.filters.items())},
        }
        if catalogue is not None:
            found["topics"] = {n: asdict(t) for n, t in sorted(self.topics(catalogue).items())}
        return found


def _step_name(who: Any) -> str:
    """A step's name in the counters: ``plugin.Class`` for a processor, else the call's."""
    if isinstance(who, str):
        return who
    return f"{who.name}.{type(who).__name__}"
