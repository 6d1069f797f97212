"""What the event bus knows: ``event stats`` (or ``event stats topics``, ``processors``,
``reactors``, ``filters``) tells the counters since the start: events seen, handled and
failed, and the time spent, busiest first (outgoing filters: replies seen, changed,
dropped and failed); ``event types`` lists the declared event types and topics,
and ``event type <name>`` describes one (its parent, topics and payload schema)."""

from __future__ import annotations

import json
from typing import Any

from botcore.event import Event
from botcore.processor import Processor, match

#: How many rows one answer lists (the busiest).
TOP = 10


def _seconds(value: float) -> str:
    return f"{value * 1000:.0f}ms" if value < 1 else f"{value:.1f}s"


class EventStats(Processor):
    """Tells the bus's counters."""

    usage = "event stats [types|topics|processors|reactors|filters]"
    features = ("events",)

    @match(r"^event\s+stats(?:\s+(types|topics|processors|reactors|filters))?$", simple=False)
    def stats(self, event: Event, kind: str | None) -> None:
        stats = self.bot.event_stats
        kind = kind or "types"
        if kind == "reactors":
            rows: list[tuple[str, Any]] = sorted(
                stats.reactors.items(), key=lambda item: (-item[1].fired, item[0])
            )
            parts = [
                f"{name}: {t.fired} fired, {t.condition_false} condition false, {t.failed} failed"
                for name, t in rows[:TOP]
            ]
        elif kind == "filters":
            rows = sorted(stats.filters.items(), key=lambda item: (-item[1].seconds, item[0]))
            parts = [
                f"{name}: {t.seen} seen, {t.changed} changed, {t.dropped} dropped, "
                f"{t.failed} failed, {_seconds(t.seconds)}"
                for name, t in rows[:TOP]
            ]
        else:
            if kind == "topics":
                tallies = stats.topics(self.bot.catalogue)
            elif kind == "processors":
                tallies = stats.processors
            else:
                tallies = stats.types
            key = (lambda i: (-i[1].seconds, i[0])) if kind == "processors" else None
            rows = sorted(tallies.items(), key=key or (lambda i: (-i[1].seen, i[0])))
            parts = [
                f"{name}: {t.seen} seen, {t.handled} handled, {t.failed} failed, "
                f"{_seconds(t.seconds)}"
                for name, t in rows[:TOP]
            ]
        if not parts:
            event.addresponse(f"No {kind} counted yet")
            return
        more = f" (and {len(rows) - TOP} more)" if len(rows) > TOP else ""
        event.addresponse("; ".join(parts) + more)


class EventTypes(Processor):
    """Lists and describes the event types and topics."""

    usage = "event types | event type <name>"
    features = ("events",)

    @match(r"^event\s+types$", simple=False)
    def types(self, event: Event) -> None:
        catalogue = self.bot.catalogue
        names = ", ".join(spec.name for spec in catalogue.types())
        topics = ", ".join(topic.name for topic in catalogue.topics())
        event.addresponse(f"Event types: {names}" + (f"; topics: {topics}" if topics else ""))

    @match(r"^event\s+type\s+(\S+)$", simple=False)
    def describe(self, event: Event, name: str) -> None:
        catalogue = self.bot.catalogue
        topic = catalogue.topic(name)
        if topic is not None:
            types = ", ".join(sorted(topic.types)) or "no types"
            event.addresponse(f"Topic {name}: {topic.description or '(no description)'} ({types})")
            return
        if name not in catalogue:
            event.addresponse(f"There is no event type or topic called {name}")
            return
        spec = catalogue[name]
        words = [f"{name}: {spec.description or '(no description)'}"]
        if spec.parent:
            words.append(f"subtype of {' < '.join(catalogue.ancestry(name)[1:])}")
        topics = catalogue.topics_of(name)
        if topics:
            words.append(f"in {', '.join(sorted(topics))}")
        words.append(f"payload schema {json.dumps(spec.schema, sort_keys=True)}")
        event.addresponse("; ".join(words))
