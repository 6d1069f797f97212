"""The event type catalogue, and validation on each publish path."""

from __future__ import annotations

import itertools
import os
import random
import subprocess
import sys
from collections import OrderedDict, defaultdict
from pathlib import Path
from types import MappingProxyType

from jsonschema import Draft202012Validator
from twisted.trial.unittest import SynchronousTestCase

from botcore.bus.catalogue import (
    BUILTIN,
    FAST_CHECKS,
    Catalogue,
    EventTypeSpec,
    InvalidEvent,
    schema_key,
)
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


class Text(str):
    pass


class Mapping(dict):
    pass


#: Values a payload field may take: each JSON type, and Python values JSON has no word for.
VALUES = [
    "",
    "running",
    Text("t"),
    0,
    1,
    2.5,
    True,
    False,
    None,
    [],
    ["a"],
    ["a", "b"],
    ["a", 1],
    [None],
    [["a"]],
    ("a",),
    (),
    {},
    {"a": "b"},
    b"bytes",
]
FIELDS = ["state", "previous", "reason", "errors", "other"]


def payloads():
    """Payloads valid and invalid for the built-in schemas: every field alone with every
    value, pairs of fields, random mixtures, and what is not an object."""
    yield from (value for value in VALUES if not isinstance(value, dict))
    yield from ({}, MappingProxyType({}), OrderedDict(), defaultdict(list), Mapping())
    yield Mapping(state="x")
    for name, value in itertools.product(FIELDS, VALUES):
        yield {name: value}
        yield {"state": "running", name: value}
    for (a, b), x, y in itertools.product(
        itertools.combinations(FIELDS, 2), VALUES[:12], VALUES[:12]
    ):
        yield {a: x, b: y}
    rng = random.Random(14)
    for _ in range(3000):
        fields = rng.sample(FIELDS, rng.randint(0, len(FIELDS)))
        yield {name: rng.choice(VALUES) for name in fields}


class BuiltinFastCheckTests(SynchronousTestCase):
    """The built-in types' structural checks accept exactly what their schemas accept."""

    def test_schemas_valid(self):
        # declare() skips check_schema for these.
        for spec in BUILTIN:
            Draft202012Validator.check_schema(dict(spec.schema))

    def test_every_builtin_has_a_check(self):
        for spec in BUILTIN:
            self.assertIn((spec.name, schema_key(spec.schema)), FAST_CHECKS, spec.name)

    def test_equivalent_to_schema(self):
        """On plain JSON payloads the check says what jsonschema says; on any payload it
        never accepts what jsonschema refuses (what it refuses goes to jsonschema)."""
        checked = 0
        for spec in BUILTIN:
            fast = FAST_CHECKS[(spec.name, schema_key(spec.schema))]
            validator = Draft202012Validator(dict(spec.schema))
            for data in payloads():
                valid = validator.is_valid(data)
                if fast(data):
                    self.assertTrue(valid, (spec.name, data))
                elif plain_json(data):
                    self.assertFalse(valid, (spec.name, data))
                checked += 1
        self.assertGreater(checked, 10_000)

    def test_errors_as_jsonschema_reports_them(self):
        catalogue = Catalogue()
        cases = [
            ("lifecycle", {"state": 1}, "data.state", "1 is not of type 'string'"),
            ("lifecycle", {"state": "x", "errors": ["a", 2]}, "data.errors.1", None),
            ("lifecycle", {"state": "x", "errors": ("a",)}, "data.errors", None),
            ("state", {"state": None}, "data.state", None),
            ("message", MappingProxyType({}), "data", None),
        ]
        for name, data, where, reason in cases:
            with self.assertRaises(InvalidEvent) as caught:
                catalogue.validate(Event(source="x", type=name, data=data))
            self.assertEqual(caught.exception.field, where)
            if reason is not None:
                self.assertEqual(caught.exception.reason, reason)
        self.assertEqual(catalogue.refused["lifecycle"], 3)
        # A subclass of dict or str is left to jsonschema, which takes it.
        catalogue.validate(Event(source="x", type="state", data=Mapping(state=Text("up"))))

    def test_builtin_declared_again_with_another_schema(self):
        """A built-in type declared with another schema (config, plugin) is checked by
        jsonschema alone; declared back with its own, it gets its check again."""
        catalogue = Catalogue()
        strict = {"type": "object", "required": ["text"]}
        catalogue.declare(EventTypeSpec("message", "m", strict))
        with self.assertRaises(InvalidEvent):
            catalogue.validate(Event(source="x", type="message", data={}))
        catalogue.declare(BUILTIN[0])
        catalogue.validate(Event(source="x", type="message", data={}))

    def test_subtype_of_builtin_fully_checked(self):
        catalogue = Catalogue()
        catalogue.declare(
            EventTypeSpec(
                "command",
                "c",
                {"type": "object", "properties": {"n": {"type": "integer"}}},
                parent="message",
            )
        )
        catalogue.validate(Event(source="x", type="command", data={"n": 1}))
        with self.assertRaises(InvalidEvent) as caught:
            catalogue.validate(Event(source="x", type="command", data={"n": "1"}))
        self.assertEqual(caught.exception.field, "data.n")

    def test_schema_copied_at_declaration(self):
        # The validator is built later, from the schema as it was declared.
        schema = {"type": "object", "properties": {"n": {"type": "integer"}}}
        catalogue = Catalogue()
        catalogue.declare(EventTypeSpec("count", "c", schema))
        schema["properties"]["n"]["type"] = "string"
        with self.assertRaises(InvalidEvent):
            catalogue.validate(Event(source="x", type="count", data={"n": "1"}))

    def test_builtins_need_no_jsonschema(self):
        """Validating built-in events does not import jsonschema; a plugin's type does."""
        program = (
            "import sys\n"
            "from botcore.bus.catalogue import Catalogue, EventTypeSpec\n"
            "from botcore.event import Event\n"
            "catalogue = Catalogue()\n"
            "catalogue.validate(Event(source='x', type='message', data={'a': 1}))\n"
            "catalogue.validate(Event(source='x', type='lifecycle', data={'state': 'up'}))\n"
            "print('jsonschema' in sys.modules)\n"
            "catalogue.declare(EventTypeSpec('deploy', 'd', {'type': 'object'}))\n"
            "print('jsonschema' in sys.modules)\n"
        )
        root = Path(__file__).resolve().parents[3]
        result = subprocess.run(
            [sys.executable, "-c", program],
            capture_output=True,
            text=True,
            timeout=120,
            env={**os.environ, "PYTHONPATH": str(root)},
            cwd=str(root),
            check=False,
        )
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertEqual(result.stdout.split(), ["False", "True"])


def plain_json(value):
    """Whether ``value`` is made of exactly JSON's types (no subclass, no tuple)."""
    if type(value) is dict:
        return all(type(k) is str and plain_json(v) for k, v in value.items())
    if type(value) is list:
        return all(plain_json(v) for v in value)
    return type(value) in (str, int, float, bool) or value is None


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
