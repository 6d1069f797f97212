"""Tests for botcore.testing.context: the stub bot context keeps the IBotContext contract."""

from __future__ import annotations

from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase
from zope.interface.verify import verifyObject

from botcore.errors import DispatcherStopped
from botcore.event import Event
from botcore.interfaces import IBotContext
from botcore.testing import MemorySource
from botcore.testing.context import StubContext


class StubContextTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        self.context = StubContext(reactor=self.clock, names=["bc"])

    def test_provides_the_interface(self) -> None:
        """The stub provides every attribute and method of IBotContext."""
        self.assertTrue(verifyObject(IBotContext, self.context))

    def test_names_and_clock(self) -> None:
        """Its names start with its name; its time is the clock's."""
        self.assertEqual(self.context.names, ["botcore", "bc"])
        self.clock.advance(90)
        self.assertEqual(self.context.seconds(), 90.0)
        self.assertEqual(self.context.now().timestamp(), 90.0)

    def test_sources(self) -> None:
        """get_source finds the sources added, and None for any other name."""
        source = MemorySource("test", self.context)
        self.context.add_source(source)
        self.assertIs(self.context.get_source("test"), source)
        self.assertIsNone(self.context.get_source("other"))
        self.assertIsNone(self.context.get_source(None))

    def test_no_dispatcher(self) -> None:
        """Without a dispatcher, publishing fails as a stopped bot's would."""
        self.failureResultOf(self.context.dispatch(Event("test", "message")), DispatcherStopped)
        with self.assertRaises(DispatcherStopped):
            self.context.call_later(1, lambda event: None, Event("test", "message"))
