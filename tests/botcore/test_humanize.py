"""Tests for botcore.humanize: times worded for people."""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from botcore.humanize import ago, duration


class AgoTests(SynchronousTestCase):
    """ago() says how long ago something happened, in its largest unit."""

    def test_units(self):
        """The largest whole unit only, singular and plural."""
        self.assertEqual(ago(2), "just now")
        self.assertEqual(ago(42), "42 seconds ago")
        self.assertEqual(ago(60), "1 minute ago")
        self.assertEqual(ago(7300), "2 hours ago")
        self.assertEqual(ago(86400 * 3), "3 days ago")
        self.assertEqual(ago(86400 * 800), "2 years ago")

    def test_future(self):
        """A time slightly in the future (clock skew) is 'just now', not negative."""
        self.assertEqual(ago(-30), "just now")


class DurationTests(SynchronousTestCase):
    """duration() words a length of time."""

    def test_units(self):
        """Largest units first, singular and plural, zero units left out."""
        self.assertEqual(duration(0), "0 seconds")
        self.assertEqual(duration(1), "1 second")
        self.assertEqual(duration(3600), "1 hour")
        self.assertEqual(duration(5400), "1 hour and 30 minutes")
        self.assertEqual(duration(3725), "1 hour, 2 minutes and 5 seconds")
        self.assertEqual(duration(2 * 86400 + 60), "2 days and 1 minute")

    def test_rounds(self):
        """Fractions round to whole seconds, so 599.9999 (clock arithmetic) is 10 minutes."""
        self.assertEqual(duration(599.9999), "10 minutes")
        self.assertEqual(duration(59.4), "59 seconds")

    def test_negative(self):
        """A clock that went backwards reads as 0 seconds, not a negative time."""
        self.assertEqual(duration(-5), "0 seconds")
