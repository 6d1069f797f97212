"""Outgoing flood control for one IRC connection: a token bucket in front of the socket,
with a priority lane for protocol lines and fair turns between the targets of replies."""

from __future__ import annotations

from collections import OrderedDict, deque
from collections.abc import Callable
from typing import TYPE_CHECKING

from twisted.logger import Logger

if TYPE_CHECKING:
    from twisted.internet.interfaces import IDelayedCall, IReactorTime


class TokenBucket:
    """``burst`` tokens at most, refilled at ``rate`` tokens a second on ``clock``."""

    def __init__(self, clock: IReactorTime, burst: float, rate: float) -> None:
        self.clock = clock
        self.burst = max(1.0, float(burst))
        self.rate = rate
        self.tokens = self.burst
        self._stamp = clock.seconds()

    def take(self) -> bool:
        """Spend one token if there is one (always True when ``rate <= 0``)."""
        if self.rate <= 0:
            return True
        now = self.clock.seconds()
        if now > self._stamp:
            self.tokens = min(self.burst, self.tokens + (now - self._stamp) * self.rate)
        self._stamp = now
        # A hair of slack: a timer set for the exact refill time must find a whole token.
        if self.tokens >= 1.0 - 1e-9:
            self.tokens = max(0.0, self.tokens - 1.0)
            return True
        return False

    def wait(self) -> float:
        """Seconds until the next token."""
        if self.rate <= 0:
            return 0.0
        return max(0.0, (1.0 - self.tokens) / self.rate)


class OutgoingQueue:
    """Sends lines through ``write`` no faster than a token bucket allows: ``burst`` lines
    at once, then ``rate`` lines a second (``rate <= 0`` sends everything at once).

    Lines put without a target (PONG, JOIN, NICK, ...) go first; the others wait in one
    queue per target, each target's lines in order, the targets taking turns. At most
    ``limit`` messages wait; beyond that new messages are dropped (protocol lines never
    are), and the drops logged. Reactor thread; time comes from ``clock``.
    """

    log = Logger()

    def __init__(
        self,
        write: Callable[[bytes], object],
        clock: IReactorTime,
        *,
        burst: int = 5,
        rate: float = 1.0,
        limit: int = 500,
    ) -> None:
        self._write = write
        self._clock = clock
        self.bucket = TokenBucket(clock, burst, rate)
        self.limit = limit
        self._priority: deque[bytes] = deque()
        self._targets: OrderedDict[str, deque[bytes]] = OrderedDict()
        self._queued = 0
        self._timer: IDelayedCall | None = None
        self._dropping = 0
        #: Lines written and lines dropped so far (for logs, tests and the benchmark).
        self.sent = 0
        self.dropped = 0

    @property
    def queued(self) -> int:
        """Lines waiting to be sent."""
        return self._queued

    def put(self, line: bytes, target: str | None = None) -> bool:
        """Send ``line`` now if the bucket allows, else queue it. False when it was
        dropped because the queue is full."""
        if self._queued == 0 and self.bucket.take():
            self._send(line)
            return True
        # Protocol lines are few and vital (a dropped PONG costs the connection): only
        # messages are dropped when the queue is full.
        if self._queued >= self.limit and target is not None:
            self.dropped += 1
            if not self._dropping:
                self.log.warn(
                    "outgoing queue full ({limit} lines): dropping new lines until it drains",
                    limit=self.limit,
                )
            self._dropping += 1
            return False
        if target is None:
            self._priority.append(line)
        else:
            lines = self._targets.get(target)
            if lines is None:
                lines = self._targets[target] = deque()
            lines.append(line)
        self._queued += 1
        self._schedule()
        return True

    def clear(self) -> int:
        """Forget every waiting line (the connection is gone); return how many there were."""
        count = self._queued
        self._priority.clear()
        self._targets.clear()
        self._queued = 0
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None
        return count

    def _send(self, line: bytes) -> None:
        self.sent += 1
        self._write(line)

    def _schedule(self) -> None:
        if self._timer is not None and self._timer.active():
            return
        self._timer = self._clock.callLater(self.bucket.wait(), self._drain)

    def _drain(self) -> None:
        self._timer = None
        while self._queued and self.bucket.take():
            self._send(self._next())
        if self._queued:
            self._schedule()
        elif self._dropping:
            self.log.warn(
                "outgoing queue drained; {count} line(s) were dropped", count=self._dropping
            )
            self._dropping = 0

    def _next(self) -> bytes:
        self._queued -= 1
        if self._priority:
            return self._priority.popleft()
        target, lines = next(iter(self._targets.items()))
        line = lines.popleft()
        if lines:
            self._targets.move_to_end(target)
        else:
            del self._targets[target]
        return line
