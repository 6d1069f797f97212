"""Tests for botcore.db.behind: values coalesced per key, written in batches, kept until
written (or taken out at once), and handed from one version of a plugin to the next."""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from botcore.db.behind import Behind


def _sum(old: int, new: int) -> int:
    return old + new


class BehindTests(SynchronousTestCase):
    """The buffer itself, without a bot."""

    def test_coalesced_per_key(self):
        """A new value replaces the waiting one by default, or is merged with it."""
        latest: Behind[str, int] = Behind()
        latest.add("a", 1)
        latest.add("a", 2)
        self.assertEqual(latest.get("a"), 2)
        summed: Behind[str, int] = Behind(_sum)
        summed.add("a", 1)
        summed.add("a", 2)
        summed.add("b", 5)
        self.assertEqual((summed.get("a"), len(summed)), (3, 2))

    def test_flush_writes_one_batch(self):
        """A flush hands every waiting value to the write function at once, then they
        are gone; a flush with nothing waiting does not call it."""
        behind: Behind[str, int] = Behind(_sum)
        for key in "abca":
            behind.add(key, 1)
        batches = []
        self.assertEqual(behind.flush(lambda batch: batches.append(dict(batch))), 3)
        self.assertEqual(batches, [{"a": 2, "b": 1, "c": 1}])
        self.assertEqual(behind.flush(batches.append), 0)
        self.assertEqual((len(batches), len(behind)), (1, 0))

    def test_readable_until_written(self):
        """With keep, a value being written stays readable until the write returns, and
        one added meanwhile is kept for the next flush."""
        behind: Behind[str, int] = Behind(_sum)
        behind.add("a", 1)
        seen = []

        def write(batch):
            seen.append(behind.get("a"))
            behind.add("a", 10)  # another thread, during the write

        behind.flush(write)
        self.assertEqual(seen, [1])
        self.assertEqual(behind.get("a"), 11, "the newer value is kept")

    def test_failed_write_keeps_values(self):
        """With keep, a write that raises leaves every value for the next flush."""
        behind: Behind[str, int] = Behind()
        behind.add("a", 1)

        def fail(batch):
            raise RuntimeError("disk full")

        self.assertRaises(RuntimeError, behind.flush, fail)
        self.assertEqual(behind.get("a"), 1)

    def test_take_mode(self):
        """Without keep, a flush takes everything out first: what is added during the
        write waits for the next one; the weight counts from the last flush."""
        behind: Behind[str, list[int]] = Behind(lambda old, new: old + new, keep=False)
        self.assertEqual(behind.add("f", [1], 1), 1)
        self.assertEqual(behind.add("f", [2, 3], 2), 3)
        written = []

        def write(batch):
            written.append(batch)
            self.assertEqual(behind.get("f"), None)
            behind.add("f", [4], 1)

        behind.flush(write)
        self.assertEqual(written, [{"f": [1, 2, 3]}])
        self.assertEqual(behind.get("f"), [4])
        self.assertEqual(behind.add("g", [5], 1), 2)

    def test_take_over(self):
        """A new version takes over the old one's store: both add to it, what both had
        for one key is merged, and one flush writes all."""
        old: Behind[str, int] = Behind(_sum)
        old.add("a", 1)
        new: Behind[str, int] = Behind(_sum)
        new.add("a", 100)
        new.add("b", 2)
        new = new.take_over(old.store)
        old.add("c", 3)  # an event still running with the old version
        batches = []
        new.flush(batches.append)
        self.assertEqual(batches, [{"a": 101, "b": 2, "c": 3}])
        self.assertEqual(len(old), 0)
