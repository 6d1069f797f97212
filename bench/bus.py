"""Benchmark of the event catalogue: events/s published through a real Dispatcher (inline
pool and reactor, one recording processor) with schema validation on and off, and the
cost of validation alone per event. Reactors are not built yet, so their cost is not
measured here."""

from __future__ import annotations

import argparse
import time

from botcore.bus.catalogue import Catalogue, EventTypeSpec
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


class Count(Processor):
    event_types = None
    addressed = False
    processed = True

    def __init__(self, bot: StubContext) -> None:
        super().__init__("count", bot)
        self.seen = 0

    @handler
    def count(self, event: Event) -> None:
        self.seen += 1


def run(events: int, validate: bool) -> float:
    reactor = InlineReactor()
    context = StubContext(reactor=reactor)
    catalogue = Catalogue(validate=validate)
    catalogue.declare(DEPLOY)
    dispatcher = Dispatcher(reactor=reactor, threadpool=InlineThreadPool(), catalogue=catalogue)
    counter = Count(context)
    dispatcher.set_chain([counter])
    dispatcher.startService()
    start = time.perf_counter()
    for n in range(events):
        dispatcher.publish(
            Event(source="bench", type="deploy", data={"env": "prod", "version": str(n)})
        )
    elapsed = time.perf_counter() - start
    dispatcher.stopService()
    assert counter.seen == events, counter.seen
    return events / elapsed


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
    for validate in (False, True):
        rate = run(args.events, validate)
        print(f"validation {'on ' if validate else 'off'}: {rate:10.0f} events/s")
    print(f"validation alone: {validation_only(args.events):.1f} µs/event")


if __name__ == "__main__":
    main()
