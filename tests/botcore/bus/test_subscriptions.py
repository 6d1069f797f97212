"""Who gets an event: subtypes delivered to a parent's subscribers, topics, and types and
topics declared in the config."""

from __future__ import annotations

from pathlib import Path
from textwrap import dedent

from twisted.trial.unittest import SynchronousTestCase

from botcore.bus.catalogue import Catalogue, EventTypeSpec, InvalidEvent, TopicSpec
from botcore.config import ConfigErrors
from botcore.dispatch.dispatcher import Dispatcher
from botcore.event import Event, EventType
from botcore.processor import Processor, handler
from botcore.settings import read_config
from botcore.testing import InlineReactor, InlineThreadPool, PluginTestCase, StubContext

DEPLOY = EventTypeSpec(
    "deploy",
    "A deployment finished.",
    {"type": "object", "properties": {"env": {"type": "string"}}, "required": ["env"]},
)
ROLLBACK = EventTypeSpec("rollback", "A deployment undone.", parent="deploy")
HOTFIX_ROLLBACK = EventTypeSpec("hotfix-rollback", "A hotfix undone.", parent="rollback")
ALERT = EventTypeSpec("alert", "Something is on fire.")


def recorder(name, types=(), topics=()):
    """A processor class subscribed to ``types`` and ``topics`` that records what it gets
    (in ``seen``, a class attribute, so that the loaded instance can be read back)."""

    class Recorder(Processor):
        event_types = types
        addressed = False
        processed = True
        seen: list[str] = []

        @handler
        def record(self, event):
            self.seen.append(event.type)

    Recorder.topics = topics
    Recorder.__name__ = Recorder.__qualname__ = name
    Recorder.seen = []
    return Recorder


class DeliveryTests(SynchronousTestCase):
    """Through a real dispatcher and chain, with the catalogue the dispatcher validates
    against."""

    def setUp(self):
        self.reactor = InlineReactor()
        self.catalogue = Catalogue()
        for spec in (DEPLOY, ROLLBACK, HOTFIX_ROLLBACK, ALERT):
            self.catalogue.declare(spec)
        self.dispatcher = Dispatcher(
            reactor=self.reactor, threadpool=InlineThreadPool(), catalogue=self.catalogue
        )
        self.context = StubContext(reactor=self.reactor, dispatcher=self.dispatcher)
        self.dispatcher.startService()
        self.addCleanup(self.dispatcher.stopService)

    def chain(self, *classes):
        processors = [cls("test", self.context) for cls in classes]
        self.dispatcher.set_chain(processors)
        return processors

    def publish(self, type, **data):
        data.setdefault("env", "prod")
        return self.successResultOf(
            self.dispatcher.publish(Event(source="ci", type=type, data=data))
        )

    def test_subtypes_reach_parent_subscribers(self):
        """A processor subscribed to deploy gets rollbacks and their own subtypes; one
        subscribed to a subtype does not get the parent."""
        on_deploy, on_rollback = self.chain(
            recorder("OnDeploy", ("deploy",)), recorder("OnRollback", ("rollback",))
        )
        for type in ("deploy", "rollback", "hotfix-rollback", "alert"):
            self.publish(type)
        self.assertEqual(on_deploy.seen, ["deploy", "rollback", "hotfix-rollback"])
        self.assertEqual(on_rollback.seen, ["rollback", "hotfix-rollback"])

    def test_type_declared_after_chain(self):
        """A subtype declared once the chain is built (a plugin loaded later) is delivered
        to the parent's subscribers from then on."""
        (on_deploy,) = self.chain(recorder("OnDeploy", ("deploy",)))
        self.publish("canary")  # not declared yet: nobody subscribes to it
        self.catalogue.declare(EventTypeSpec("canary", "A canary deploy.", parent="deploy"))
        self.publish("canary")
        self.assertEqual(on_deploy.seen, ["canary"])

    def test_topics(self):
        """A topic subscriber gets each of the topic's types and their subtypes, nothing
        else; a topic declared later counts at once."""
        self.catalogue.declare_topic(
            TopicSpec("ops", "Operations.", frozenset({"deploy", "alert"}))
        )
        on_ops, on_nothing = self.chain(
            recorder("OnOps", (), ("ops",)), recorder("OnOther", (), ("other",))
        )
        for type in ("deploy", "hotfix-rollback", "alert", "message"):
            self.publish(type)
        self.assertEqual(on_ops.seen, ["deploy", "hotfix-rollback", "alert"])
        self.catalogue.declare_topic(TopicSpec("other", "Others.", frozenset({"alert"})))
        self.publish("alert")
        self.assertEqual(on_nothing.seen, ["alert"])
        self.assertEqual(self.catalogue.topics_of("hotfix-rollback"), {"ops"})

    def test_types_and_topics_together(self):
        """Subscribing to types and topics at once gets the union, each event once."""
        self.catalogue.declare_topic(TopicSpec("ops", "Operations.", frozenset({"alert"})))
        (both,) = self.chain(recorder("Both", ("deploy", "alert"), ("ops",)))
        for type in ("rollback", "alert", "message"):
            self.publish(type)
        self.assertEqual(both.seen, ["rollback", "alert"])

    def test_accepts_asks_the_catalogue(self):
        """Processor.accepts takes a subtype with the bot's catalogue, and refuses other
        types as before."""
        (on_deploy,) = self.chain(recorder("OnDeploy", ("deploy",)))
        self.assertTrue(on_deploy.accepts(Event(source="ci", type="rollback")))
        self.assertFalse(on_deploy.accepts(Event(source="ci", type="alert")))
        self.assertFalse(on_deploy.subscribes("rollback"))  # without a catalogue
        self.assertTrue(on_deploy.subscribes("rollback", self.catalogue))

    def test_defaults_unchanged(self):
        """A default processor (messages only) gets neither actions nor notices."""
        (default,) = self.chain(recorder("Default", (EventType.MESSAGE,)))
        for type in ("message", "action", "notice"):
            self.publish(type)
        self.assertEqual(default.seen, ["message"])

    def test_topic_named_like_a_type(self):
        """A topic may not take a type's name (subscriptions could not tell them apart)."""
        with self.assertRaisesRegex(ValueError, "an event type has that name"):
            self.catalogue.declare_topic(TopicSpec("deploy", "x"))


OnOps = recorder("OnOps", (), ("ops",))
OnDeploy = recorder("OnDeploy", ("deploy",))


class ConfigDeclaredTests(PluginTestCase):
    """[event:NAME] and [topic:NAME] in the bot's config, through read_config and a real
    bot."""

    load = ()
    extra_processors = (OnOps, OnDeploy)
    plugin_config = {
        # The subtype comes first in the file: declared after its parent all the same.
        "event:rollback": {"description": "A deployment undone.", "parent": "deploy"},
        "event:deploy": {
            "description": "A deployment finished.",
            "schema": '{"type": "object", "properties": {"env": {"enum": ["prod", "staging"]}},'
            '\n "required": ["env"]}',
        },
        "topic:ops": {"description": "Operations.", "types": "deploy, alert"},
    }

    def setUp(self):
        OnOps.seen, OnDeploy.seen = [], []
        super().setUp()

    def test_declared(self):
        """The config's types and topics are in the bot's catalogue."""
        catalogue = self.bot.catalogue
        self.assertEqual(catalogue["rollback"].parent, "deploy")
        self.assertEqual(catalogue["deploy"].schema["required"], ["env"])
        self.assertEqual(catalogue.topic("ops").types, {"deploy", "alert"})

    def test_delivery_and_validation(self):
        """A processor of a plugin gets the config's subtypes and topic; a payload that
        breaks the schema is refused naming the field."""
        self.successResultOf(
            self.bot.context.dispatch(Event(source="test", type="rollback", data={"env": "prod"}))
        )
        self.successResultOf(self.bot.context.dispatch(Event(source="test", type="alert")))
        self.assertEqual(OnOps.seen, ["rollback", "alert"])
        self.assertEqual(OnDeploy.seen, ["rollback"])
        bad = Event(source="test", type="rollback", data={"env": "moon"})
        failure = self.failureResultOf(self.bot.context.dispatch(bad), InvalidEvent)
        self.assertEqual(failure.value.field, "data.env")
        self.assertEqual(OnDeploy.seen, ["rollback"])

    def test_reload_declares_new_types(self):
        """A config reload declares a type added to the file."""
        path = self.directory / "bot.ini"
        path.write_text(path.read_text() + "\n[event:canary]\nparent = deploy\n")
        self.assertEqual(self.bot.reload_config(), [])
        self.successResultOf(
            self.bot.context.dispatch(Event(source="test", type="canary", data={"env": "prod"}))
        )
        self.assertEqual(OnDeploy.seen, ["canary"])


class ConfigErrorTests(SynchronousTestCase):
    """Bad [event:NAME] and [topic:NAME] sections are reported with the config's other
    errors, by section and key."""

    def errors(self, text):
        path = Path(self.mktemp())
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(dedent(text))
        with self.assertRaises(ConfigErrors) as raised:
            read_config(path)
        return [(e.section, e.key, e.message) for e in raised.exception.errors]

    def test_bad_schema(self):
        """A schema that is not JSON, not an object or not a valid schema, and an unknown
        key, are each reported at their key."""
        found = self.errors(
            """
            [event:a]
            schema = {"type": 5}
            [event:b]
            schema = not json
            [event:c]
            schema = [1]
            [event:d]
            colour = red
            """
        )
        expected = [("event:a", "schema"), ("event:b", "schema"), ("event:c", "schema")]
        self.assertEqual([(s, k) for s, k, _ in found], [*expected, ("event:d", "colour")])
        self.assertIn("not a valid JSON Schema", found[0][2])
        self.assertIn("expected a JSON Schema written as JSON", found[1][2])

    def test_parents(self):
        """An unknown parent, parents in a circle and a topic named like a type."""
        found = self.errors(
            """
            [event:a]
            parent = nope
            [event:b]
            parent = c
            [event:c]
            parent = b
            [topic:message]
            types = a
            """
        )
        self.assertEqual(
            found,
            [
                ("event:a", "parent", "unknown parent type nope"),
                ("event:b", "parent", "c is its own ancestor"),
                ("event:c", "parent", "b is its own ancestor"),
                ("topic:message", None, "an event type has that name"),
            ],
        )
