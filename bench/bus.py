"""Benchmark of the event bus: events/s published through a real Dispatcher (inline pool
and reactor, one counting processor) with schema validation on and off; delivered to a
processor subscribed to the parent type or to a topic; with the event log recording
every event (full payloads, written to SQLite in batches); with one reactor whose
condition (data.env == 'prod') holds; and the cost per event of validation alone and of
one reactor with a condition alone."""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import Any

from botcore.bus.catalogue import Catalogue, EventTypeSpec, TopicSpec
from botcore.bus.log import EventLog
from botcore.bus.reactors import Reactor, Reactors
from botcore.bus.reactors import _condition as reactor_condition
from botcore.bus.stats import BusStats
from botcore.db.service import Database
from botcore.dispatch.dispatcher import Dispatcher
from botcore.event import Event
from botcore.processor import Processor, handler
from botcore.testing import InlineReactor, InlineThreadPool, StubContext

DEPLOY = EventTypeSpec(
    "deploy",
    "A deployment finished.",
    {
        "type": "object",
        "properties": {"env": {"enum": ["prod", "staging"]}, "version": {"type": "string"}},
        "required": ["env", "version"],
    },
)


ROLLBACK = EventTypeSpec("rollback", "A deployment undone.", parent="deploy")


class Count(Processor):
    event_types = None
    addressed = False
    processed = True

    def __init__(
        self, bot: StubContext, types: tuple[str, ...] | None = None, topics: Any = ()
    ) -> None:
        super().__init__("count", bot)
        self.event_types = None if types is None else frozenset(types)
        self.topics = frozenset(topics)
        self.seen = 0

    @handler
    def count(self, event: Event) -> None:
        self.seen += 1


def run(
    events: int,
    validate: bool,
    type: str = "deploy",
    subscribe: tuple[str, ...] | None = None,
    topics: tuple[str, ...] = (),
    log: bool = False,
    with_reactor: bool = False,
) -> float:
    """Events/s of ``type`` through a dispatcher whose one processor subscribes to
    ``subscribe`` (None: every type) and ``topics``; with ``log``, the event log records
    each (full payload) into a fresh SQLite file, written every 1000 events."""
    reactor = InlineReactor()
    catalogue = Catalogue(validate=validate)
    catalogue.declare(DEPLOY)
    catalogue.declare(ROLLBACK)
    catalogue.declare_topic(TopicSpec("ops", "Operations.", frozenset({"deploy"})))
    dispatcher = Dispatcher(reactor=reactor, threadpool=InlineThreadPool(), catalogue=catalogue)
    # The processors' bot sees the dispatcher's catalogue, as in a real bot.
    context = StubContext(reactor=reactor, dispatcher=dispatcher)
    counter = Count(context, subscribe, topics)
    dispatcher.set_chain([counter])
    dispatcher.startService()
    event_log = None
    if log:
        folder = tempfile.mkdtemp(prefix="bench-bus-")
        database = Database("main", {"url": f"sqlite:///{Path(folder) / 'bus.sqlite'}"})
        database.startService()
        event_log = EventLog(
            {"log": True, "log_payload": "full", "flush_interval": 3600.0},
            database=database,
            reactor=reactor,
            catalogue=catalogue,
            threadpool=InlineThreadPool(),
        )
        event_log.startService()
        dispatcher.observers.append(event_log.record)
    fired: list[Event] = []
    if with_reactor:
        reactors = Reactors(catalogue, dispatcher.stats)
        condition = reactor_condition("data.env == 'prod'")
        reactors.add(Reactor("bench", frozenset({"deploy"}), fired.append, condition))
        dispatcher.observers.append(reactors.observe)
    start = time.perf_counter()
    for n in range(events):
        dispatcher.publish(
            Event(source="bench", type=type, data={"env": "prod", "version": str(n)})
        )
        if event_log is not None and n % 1000 == 999:
            event_log.flush()
    if event_log is not None:
        event_log.stopService()
        assert event_log.written == events, event_log.written
    elapsed = time.perf_counter() - start
    dispatcher.stopService()
    assert counter.seen == events, counter.seen
    assert len(fired) == (events if with_reactor else 0), len(fired)
    return events / elapsed


def reactor_only(events: int) -> float:
    """Microseconds per event of one reactor with a condition (observe, condition,
    reaction, counters), without the dispatcher."""
    catalogue = Catalogue()
    catalogue.declare(DEPLOY)
    reactors = Reactors(catalogue, BusStats())
    fired: list[Event] = []
    condition = reactor_condition("data.env == 'prod'")
    reactors.add(Reactor("bench", frozenset({"deploy"}), fired.append, condition))
    event = Event(source="bench", type="deploy", data={"env": "prod", "version": "1"})
    start = time.perf_counter()
    for _ in range(events):
        reactors.observe(event)
    return (time.perf_counter() - start) / events * 1e6


def validation_only(events: int) -> float:
    catalogue = Catalogue()
    catalogue.declare(DEPLOY)
    event = Event(source="bench", type="deploy", data={"env": "prod", "version": "1"})
    start = time.perf_counter()
    for _ in range(events):
        catalogue.validate(event)
    return (time.perf_counter() - start) / events * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=20000)
    args = parser.parse_args()
    subtype = {"validate": True, "type": "rollback"}
    cases: list[tuple[str, dict[str, Any]]] = [
        ("validation off", {"validate": False}),
        ("validation on", {"validate": True}),
        ("subtype to parent's subscriber", {**subtype, "subscribe": ("deploy",)}),
        ("subtype to topic subscriber", {**subtype, "subscribe": (), "topics": ("ops",)}),
        ("event log on (full, SQLite)", {"validate": True, "log": True}),
        ("one reactor with a condition", {"validate": True, "with_reactor": True}),
    ]
    for name, kw in cases:
        rate = run(args.events, **kw)
        print(f"{name:32} {rate:10.0f} events/s")
    print(f"{'validation alone':32} {validation_only(args.events):10.1f} µs/event")
    print(f"{'one reactor alone':32} {reactor_only(args.events):10.1f} µs/event")


if __name__ == "__main__":
    main()
