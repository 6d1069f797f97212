"""Benchmark of the event bus: events/s published through a real Dispatcher (inline pool
and reactor, one counting processor) with schema validation on and off; delivered to a
processor subscribed to the parent type or to a topic; with the event log recording
every event (full payloads, written to SQLite in batches); with one reactor whose
condition (data.env == 'prod') holds; the cost per event of validation alone and of one
reactor with a condition alone; and replies/s on the reply path (one reply per event,
fitted by the core's Format, handed to a memory source) with no other outgoing filter and
with one, and the cost per reply of one outgoing filter alone.

The reply-path cases run on an older checkout too (where Format is a step of the chain
and there are no filters; the filter cases are left out there), for comparisons in one
sitting: ``PYTHONPATH=/path/to/old python bench/bus.py``."""

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
from botcore.event import Event, Response
from botcore.plugins.core import Format
from botcore.processor import Processor, handler
from botcore.testing import InlineReactor, InlineThreadPool, MemorySource, StubContext

try:
    from botcore.dispatch.outgoing import Outgoing, OutgoingFilter
    from botcore.processor import outgoing
except ImportError:  # a checkout from before the outgoing filters
    outgoing = None  # type: ignore[assignment]

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


class Answer(Processor):
    """One reply to every deploy event."""

    event_types = ("deploy",)
    addressed = False

    @handler
    def answer(self, event: Event) -> None:
        event.addresponse("deployed", source="bench", target="#ops")


def replies(events: int, with_filter: bool = False) -> float:
    """Replies/s: events of one reply each through a dispatcher whose chain is Answer and
    the core's Format (a filter where there are filters), with ``with_filter`` one more
    outgoing filter (it changes nothing), each reply handed to a memory source."""
    reactor = InlineReactor()
    catalogue = Catalogue(validate=False)
    catalogue.declare(DEPLOY)
    context = StubContext(reactor=reactor)
    dispatcher = Dispatcher(
        reactor=reactor,
        threadpool=InlineThreadPool(),
        catalogue=catalogue,
        sources=context.get_source,
    )
    context.dispatcher = dispatcher
    source = MemorySource("bench", context)
    context.add_source(source)
    chain: list[Processor] = [Answer("bench", context), Format("core", context)]
    if with_filter:
        assert outgoing is not None

        class Pass(Processor):
            @outgoing(priority=0)
            def check(self, response: Any, event: Event) -> Any:
                return response

        chain.append(Pass("bench", context))
    dispatcher.set_chain(chain)
    dispatcher.startService()
    start = time.perf_counter()
    for n in range(events):
        dispatcher.publish(Event(source="bench", type="deploy", data={"version": str(n)}))
    elapsed = time.perf_counter() - start
    dispatcher.stopService()
    assert len(source.sent) == events, len(source.sent)
    return events / elapsed


def filter_only(events: int) -> float:
    """Microseconds per reply of one outgoing filter (that changes nothing) in the
    pipeline, counters included, over the pipeline with no filter."""
    pipeline = Outgoing(BusStats())
    one = (OutgoingFilter("bench.Pass.check", 0, lambda response, event: response),)
    response = Response("deployed", source="bench", target="#ops")
    event = Event(source="bench", type="deploy")

    def per_reply(filters: Any) -> float:
        start = time.perf_counter()
        for _ in range(events):
            pipeline.run(response, event, filters)
        return (time.perf_counter() - start) / events * 1e6

    return per_reply(one) - per_reply(())


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
    parser.add_argument(
        "--repeat", type=int, default=5, help="runs of each reply-path case (the best is shown)"
    )
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
    # The reply-path cases alternate, best of --repeat runs each: the machine is shared.
    plain: list[float] = []
    filtered: list[float] = []
    alone: list[float] = []
    for _ in range(args.repeat):
        plain.append(replies(args.events))
        if outgoing is not None:
            filtered.append(replies(args.events, with_filter=True))
            alone.append(filter_only(args.events))
    print(f"{'replies, Format only':32} {max(plain):10.0f} replies/s")
    if outgoing is not None:
        print(f"{'replies, Format + one filter':32} {max(filtered):10.0f} replies/s")
        print(f"{'one outgoing filter alone':32} {min(alone):10.2f} µs/reply")


if __name__ == "__main__":
    main()
