"""The event type catalogue, and validation on each publish path."""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from botcore.bus.catalogue import Catalogue, EventTypeSpec, InvalidEvent
from botcore.dispatch.dispatcher import Dispatcher
from botcore.event import Event
from botcore.processor import Processor, handler
from botcore.testing import InlineReactor, InlineThreadPool, MemorySource, StubContext

DEPLOY = EventTypeSpec(
    "deploy",
    "A deployment finished.",
    {
        "type": "object",
        "properties": {"env": {"enum": ["prod", "staging"]}, "version": {"type": "string"}},
        "required": ["env", "version"],
    },
)
ROLLBACK = EventTypeSpec(
    "rollback",
    "A deployment undone.",
    {"type": "object", "properties": {"reason": {"type": "string"}}},
    parent="deploy",
)


class Recorder(Processor):
    """Records the type of every event it sees."""

    event_types = None
    addressed = False
    processed = True

    def __init__(self, bot, seen):
        super().__init__("recorder", bot)
        self.seen = seen

    @handler
    def record(self, event):
        self.seen.append((event.type, dict(event.data)))


class CatalogueTests(SynchronousTestCase):
    def setUp(self):
        self.catalogue = Catalogue()
        self.catalogue.declare(DEPLOY)
        self.catalogue.declare(ROLLBACK)

    def test_builtins_listed_with_plugin_types(self):
        names = [spec.name for spec in self.catalogue.types()]
        for name in ("message", "state", "lifecycle", "deploy", "rollback"):
            self.assertIn(name, names)
        self.assertEqual(self.catalogue["lifecycle"].parent, None)

    def test_ancestry(self):
        self.assertEqual(self.catalogue.ancestry("rollback"), ("rollback", "deploy"))
        self.assertTrue(self.catalogue.is_a("rollback", "deploy"))
        self.assertFalse(self.catalogue.is_a("deploy", "rollback"))
        # Not a subtype: processors subscribed to messages would get every /me too.
        self.assertFalse(self.catalogue.is_a("action", "message"))

    def test_failing_field_named(self):
        event = Event(source="x", type="deploy", data={"env": "moon", "version": "1"})
        with self.assertRaises(InvalidEvent) as caught:
            self.catalogue.validate(event)
        self.assertEqual(caught.exception.field, "data.env")
        self.assertIn("data.env", str(caught.exception))
        self.assertEqual(self.catalogue.refused["deploy"], 1)

    def test_subtype_checked_against_parent_schema(self):
        event = Event(source="x", type="rollback", data={"reason": "oops"})
        with self.assertRaises(InvalidEvent) as caught:
            self.catalogue.validate(event)
        self.assertIn("'env' is a required property", str(caught.exception))

    def test_missing_required_and_valid(self):
        self.catalogue.validate(
            Event(source="x", type="deploy", data={"env": "prod", "version": "2"})
        )
        self.assertEqual(self.catalogue.refused["deploy"], 0)

    def test_undeclared_type_strict(self):
        event = Event(source="x", type="nosuch")
        self.catalogue.validate(event)
        strict = Catalogue(strict=True)
        with self.assertRaises(InvalidEvent) as caught:
            strict.validate(event)
        self.assertEqual(caught.exception.field, "type")

    def test_validation_off(self):
        off = Catalogue(validate=False)
        off.declare(DEPLOY)
        off.validate(Event(source="x", type="deploy", data={}))

    def test_bad_declarations(self):
        with self.assertRaisesRegex(ValueError, "unknown parent type nope"):
            self.catalogue.declare(EventTypeSpec("a", "a", parent="nope"))
        with self.assertRaisesRegex(ValueError, "event type b: bad schema"):
            self.catalogue.declare(EventTypeSpec("b", "b", {"type": 5}))
        with self.assertRaisesRegex(ValueError, "its own subtype"):
            self.catalogue.declare(EventTypeSpec("deploy", "d", parent="rollback"))

    def test_lifecycle_requires_state(self):
        with self.assertRaises(InvalidEvent) as caught:
            self.catalogue.validate(Event(source="botcore", type="lifecycle", data={}))
        self.assertIn("'state' is a required property", str(caught.exception))


class PublishPathTests(SynchronousTestCase):
    """Each path that publishes validates before any processor sees the event."""

    def setUp(self):
        self.reactor = InlineReactor()
        self.context = StubContext(reactor=self.reactor)
        self.context.add_source(MemorySource("irc", self.context))
        self.catalogue = Catalogue()
        self.catalogue.declare(DEPLOY)
        self.dispatcher = Dispatcher(
            reactor=self.reactor,
            threadpool=InlineThreadPool(),
            sources=self.context.get_source,
            catalogue=self.catalogue,
        )
        self.seen = []
        self.dispatcher.set_chain([Recorder(self.context, self.seen)])
        self.dispatcher.startService()
        self.addCleanup(self.dispatcher.stopService)

    def bad(self):
        return Event(source="irc", type="deploy", channel="#ops", data={"env": 3})

    def test_dispatch_refuses(self):
        failure = self.failureResultOf(self.dispatcher.dispatch(self.bad()), InvalidEvent)
        self.assertIn("data.env", str(failure.value))
        self.assertEqual(self.seen, [])
        self.assertEqual(self.catalogue.refused["deploy"], 1)

    def test_publish_refuses(self):
        # The entry the HTTP API calls.
        self.failureResultOf(self.dispatcher.publish(self.bad()), InvalidEvent)
        self.assertEqual(self.seen, [])

    def test_publish_delivers_valid(self):
        good = Event(source="irc", type="deploy", data={"env": "prod", "version": "7"})
        self.successResultOf(self.dispatcher.publish(good))
        self.assertEqual(self.seen, [("deploy", {"env": "prod", "version": "7"})])

    def test_call_later_refuses(self):
        # The delayed event keeps the original's payload; an invalid one is refused to the
        # caller and nothing runs.
        self.catalogue.declare(
            EventTypeSpec(
                "delayed",
                "A call_later call came due.",
                {"type": "object", "properties": {"n": {"type": "integer"}}},
            )
        )
        ran = []
        origin = Event(source="irc", type="message", channel="#ops", data={"n": "x"})
        with self.assertRaises(InvalidEvent) as caught:
            self.dispatcher.call_later(0, ran.append, origin)
        self.assertEqual(caught.exception.field, "data.n")
        self.assertEqual(ran, [])
        self.assertEqual(self.seen, [])

    def test_bot_context_dispatch_refuses(self):
        # What a processor uses: the bot interface's dispatch.
        self.context.dispatcher = self.dispatcher
        self.failureResultOf(self.context.dispatch(self.bad()), InvalidEvent)
        self.assertEqual(self.seen, [])
