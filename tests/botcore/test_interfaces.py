"""Tests for botcore.interfaces: the base classes (and test doubles built on them) provide
what ISource and IProcessor promise."""

from __future__ import annotations

from twisted.application.service import IService
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase
from zope.interface.verify import verifyClass, verifyObject

from botcore.interfaces import IProcessor, ISource
from botcore.processor import Processor, match
from botcore.source import Source
from botcore.testing import MemorySource, StubContext
from tests.botcore.fixtures_sources.fake import FakeSource


class Hello(Processor):
    @match("hello")
    def hello(self, event):
        event.addresponse("hi")


class InterfaceTests(SynchronousTestCase):
    """zope.interface verification of the core's extension points."""

    def setUp(self):
        self.context = StubContext(reactor=Clock())

    def test_processor(self):
        """A Processor subclass instance provides IProcessor."""
        self.assertTrue(verifyObject(IProcessor, Hello("hello", self.context)))
        self.assertTrue(verifyClass(IProcessor, Hello))

    def test_source_subclass(self):
        """A Source subclass instance provides ISource (and so IService)."""
        source = FakeSource("fake", self.context, {})
        self.assertTrue(verifyObject(ISource, source))
        self.assertTrue(IService.providedBy(source))
        self.assertEqual((source.name, source.type, source.state), ("fake", "fake", "stopped"))

    def test_memory_source(self):
        """The shared test source provides ISource."""
        self.assertTrue(verifyObject(ISource, MemorySource("test", self.context)))

    def test_source_base(self):
        """The Source base class declares ISource; its send is left to subclasses."""
        self.assertTrue(verifyClass(ISource, Source))
        self.assertRaises(NotImplementedError, Source("s", self.context).send, None)

    def test_not_a_processor(self):
        """verifyObject rejects an object missing the interface's methods."""

        class Half:
            name = priority = event_types = addressed = processed = None
            autoload = permission = usage = features = config = None

        from zope.interface import directlyProvides
        from zope.interface.exceptions import Invalid

        half = Half()
        directlyProvides(half, IProcessor)
        self.assertRaises(Invalid, verifyObject, IProcessor, half)
