"""Outgoing flood control: the token bucket, order, fairness between targets, the
priority lane, and the bounded queue."""

from __future__ import annotations

from twisted.internet.task import Clock
from twisted.logger import LogLevel, globalLogPublisher
from twisted.trial.unittest import SynchronousTestCase

from botcore.sources.irc.flood import OutgoingQueue, TokenBucket


class TokenBucketTests(SynchronousTestCase):
    def test_burst_then_rate(self) -> None:
        """A full bucket gives ``burst`` tokens, then one per 1/rate seconds."""
        clock = Clock()
        bucket = TokenBucket(clock, burst=3, rate=2.0)
        self.assertEqual([bucket.take() for _ in range(4)], [True, True, True, False])
        self.assertEqual(bucket.wait(), 0.5)
        clock.advance(0.5)
        self.assertTrue(bucket.take())
        self.assertFalse(bucket.take())

    def test_never_more_than_burst(self) -> None:
        """A long idle time refills only up to ``burst``."""
        clock = Clock()
        bucket = TokenBucket(clock, burst=2, rate=10.0)
        bucket.take()
        clock.advance(1000)
        self.assertEqual([bucket.take() for _ in range(3)], [True, True, False])

    def test_rate_zero_is_unlimited(self) -> None:
        """Rate 0 switches the limit off."""
        bucket = TokenBucket(Clock(), burst=1, rate=0)
        self.assertTrue(all(bucket.take() for _ in range(100)))
        self.assertEqual(bucket.wait(), 0.0)


class QueueTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        self.written: list[bytes] = []
        self.events: list[dict] = []
        globalLogPublisher.addObserver(self.events.append)
        self.addCleanup(globalLogPublisher.removeObserver, self.events.append)

    def queue(self, **kw: object) -> OutgoingQueue:
        return OutgoingQueue(self.written.append, self.clock, **kw)

    def test_burst_sent_at_once_rest_paced(self) -> None:
        """The first ``burst`` lines leave at once, the rest one per 1/rate seconds."""
        queue = self.queue(burst=3, rate=2.0)
        for i in range(6):
            queue.put(b"%d" % i, "#a")
        self.assertEqual(self.written, [b"0", b"1", b"2"])
        self.clock.advance(0.5)
        self.assertEqual(self.written[3:], [b"3"])
        self.clock.advance(1.0)
        self.assertEqual(self.written[3:], [b"3", b"4", b"5"])
        self.assertEqual(queue.queued, 0)
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_order_kept_per_target(self) -> None:
        """Lines to one target leave in the order they were put."""
        queue = self.queue(burst=1, rate=1.0)
        for i in range(20):
            queue.put(b"%02d" % i, "#a")
        self.clock.pump([1.0] * 20)
        self.assertEqual(self.written, [b"%02d" % i for i in range(20)])

    def test_targets_take_turns(self) -> None:
        """Waiting lines for different targets interleave, each target in order."""
        queue = self.queue(burst=1, rate=1.0)
        queue.put(b"a0", "#a")
        for i in range(1, 4):
            queue.put(b"a%d" % i, "#a")
        for i in range(3):
            queue.put(b"b%d" % i, "#b")
        queue.put(b"c0", "#c")
        self.clock.pump([1.0] * 10)
        self.assertEqual(self.written, [b"a0", b"a1", b"b0", b"c0", b"a2", b"b1", b"a3", b"b2"])

    def test_priority_lane_first(self) -> None:
        """Lines without a target (protocol lines such as PONG) jump the queue."""
        queue = self.queue(burst=1, rate=1.0)
        for i in range(3):
            queue.put(b"m%d" % i, "#a")
        queue.put(b"PONG")
        self.clock.advance(1.0)
        self.assertEqual(self.written, [b"m0", b"PONG"])

    def test_bounded_with_logged_drop(self) -> None:
        """Beyond ``limit`` waiting lines new ones are dropped, counted and logged once,
        and the drain is logged with the count."""
        queue = self.queue(burst=1, rate=1.0, limit=3)
        results = [queue.put(b"%d" % i, "#a") for i in range(8)]
        self.assertEqual(results, [True, True, True, True, False, False, False, False])
        self.assertEqual(queue.dropped, 4)
        warnings = [e for e in self.events if e.get("log_level") == LogLevel.warn]
        self.assertEqual(len(warnings), 1)
        self.clock.pump([1.0] * 4)
        self.assertEqual(self.written, [b"0", b"1", b"2", b"3"])
        drained = [e for e in self.events if "drained" in e.get("log_format", "")]
        self.assertEqual(drained[0]["count"], 4)

    def test_protocol_lines_never_dropped(self) -> None:
        """A full queue still takes protocol lines (a lost PONG would cost the connection)."""
        queue = self.queue(burst=1, rate=1.0, limit=2)
        for i in range(4):
            queue.put(b"%d" % i, "#a")
        self.assertTrue(queue.put(b"PONG"))
        self.clock.advance(1.0)
        self.assertEqual(self.written, [b"0", b"PONG"])
        self.clock.pump([1.0] * 3)
        self.assertEqual(self.written, [b"0", b"PONG", b"1", b"2"])

    def test_flood_control_off(self) -> None:
        """With rate 0 every line is written at once."""
        queue = self.queue(burst=1, rate=0, limit=1)
        for i in range(100):
            queue.put(b"%d" % i, "#a")
        self.assertEqual(len(self.written), 100)
        self.assertEqual(queue.sent, 100)
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_clear(self) -> None:
        """clear() forgets the waiting lines and cancels the timer."""
        queue = self.queue(burst=1, rate=1.0)
        for i in range(5):
            queue.put(b"%d" % i, "#a")
        self.assertEqual(queue.clear(), 4)
        self.assertEqual(self.clock.getDelayedCalls(), [])
        self.clock.advance(10)
        self.assertEqual(self.written, [b"0"])

    def test_new_line_waits_behind_queue(self) -> None:
        """A new line never overtakes waiting ones, even when a token is free."""
        queue = self.queue(burst=2, rate=1.0)
        for i in range(3):
            queue.put(b"%d" % i, "#a")
        self.clock.advance(0.5)
        queue.put(b"3", "#a")
        self.clock.pump([0.5, 1.0])
        self.assertEqual(self.written, [b"0", b"1", b"2", b"3"])
