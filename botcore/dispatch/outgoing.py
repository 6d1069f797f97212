"""The outgoing filters: the one pipeline every reply goes through on its way to a source,
whatever produced it, where plugins' ``@outgoing`` methods may change, split or drop it.

`Dispatcher.route` is the only caller: the chain's replies, ``call_later`` and periodic
work, background processors, reactors' ``say``, the HTTP API and ``bot.send`` all end
there."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from twisted.logger import Logger

from botcore.event import Response

if TYPE_CHECKING:
    from botcore.bus.stats import BusStats
    from botcore.event import Event
    from botcore.processor import Processor


@dataclass(frozen=True, slots=True)
class OutgoingFilter:
    """One filter of the pipeline: ``function(response, event)`` returns a Response, a
    list of them, or None (see `botcore.processor.outgoing`). ``name`` is what the
    counters and the log call it (``plugin.Class.method``)."""

    name: str
    priority: int
    function: Callable[[Response, Event], Any]
    on_error: str = "send"


def filters_of(processors: Iterable[Processor]) -> tuple[OutgoingFilter, ...]:
    """The ``@outgoing`` methods of ``processors``, in ascending filter priority, then the
    processors' order."""
    found: list[tuple[int, int, OutgoingFilter]] = []
    for index, processor in enumerate(processors):
        filters = getattr(processor, "filters", None)
        for spec, method in filters() if filters is not None else ():
            name = f"{processor.name}.{type(processor).__name__}.{spec.attribute}"
            found.append(
                (spec.priority, index, OutgoingFilter(name, spec.priority, method, spec.on_error))
            )
    found.sort(key=lambda item: (item[0], item[1]))
    return tuple(item[2] for item in found)


class Outgoing:
    """Runs replies through filters, counting what each did (`BusStats.filter`). Reactor
    thread."""

    log = Logger()

    def __init__(self, stats: BusStats, clock: Callable[[], float] = time.perf_counter) -> None:
        self.stats = stats
        self.clock = clock

    def run(
        self, response: Response, event: Event, filters: tuple[OutgoingFilter, ...]
    ) -> list[Response]:
        """What ``response`` (a reply of ``event``, its text worded) becomes after each of
        ``filters`` in turn: the replies to send, in order (none: dropped). A filter that
        raises, or returns something other than replies with text, is logged with the
        traceback and counted as failed; the reply then goes on unchanged to the next
        filter, or is dropped when the filter's ``on_error`` is ``drop``."""
        batch = [response]
        clock = self.clock
        for one in filters:
            tally = self.stats.filter(one.name)
            out: list[Response] = []
            for reply in batch:
                started = clock()
                try:
                    result = one.function(reply, event)
                    replies = _replies(result, reply)
                except Exception:
                    tally.seconds += clock() - started
                    tally.seen += 1
                    tally.failed += 1
                    dropped = one.on_error == "drop"
                    self.log.failure(
                        "outgoing filter {name} failed on a reply of {type} event {id}; "
                        "the reply is {what}",
                        name=one.name,
                        type=event.type,
                        id=event.id,
                        what="dropped" if dropped else "sent as it was",
                    )
                    if dropped:
                        tally.dropped += 1
                    else:
                        out.append(reply)
                    continue
                tally.seconds += clock() - started
                tally.seen += 1
                if replies is None:
                    out.append(reply)
                    continue
                if not replies:
                    tally.dropped += 1
                    continue
                tally.changed += 1
                out.extend(replies)
            batch = out
            if not batch:
                break
        return batch


def _replies(result: Any, given: Response) -> list[Response] | None:
    """A filter's result as replies: None when it left ``given`` as it was, [] when it
    dropped it. TypeError for anything that is not replies with text."""
    if result is given:
        return None
    if result is None:
        return []
    if isinstance(result, Response):
        found = [result]
    elif isinstance(result, list | tuple) and len(result) == 1 and result[0] is given:
        return None
    elif isinstance(result, list | tuple):
        found = list(result)
    else:
        raise TypeError(f"an outgoing filter returned {result!r}, not replies")
    for reply in found:
        if not isinstance(reply, Response) or not isinstance(reply.text, str):
            raise TypeError(f"an outgoing filter returned {reply!r}, not a Response with text")
    return found
