"""The event type catalogue: each type has a name, a description, a JSON Schema for its
payload (``Event.data``) and optionally a parent type. Built-in types are described the
same way, so plugins' and the core's types are listed together. Topics are named sets of
types; a processor subscribed to a type or a topic also gets the types' subtypes.

Validation uses the ``jsonschema`` library (Draft 2020-12): a well-kept implementation
whose errors carry the path of the failing field, which the refusal message names. It is
imported when a schema must really be checked: the built-in types' schemas are known, and
their payloads (every message, on the reactor thread) are first given a plain structural
check that accepts exactly what the schema accepts (tests/botcore/bus/test_catalogue.py
proves it on valid and invalid payloads); only a payload it refuses goes to ``jsonschema``,
whose error is the one reported. Every other type (a plugin's, the config's, one a web
client fires) is checked by ``jsonschema`` alone, as is a built-in type re-declared with
another schema."""

from __future__ import annotations

import copy
import json
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from botcore.event import Event, EventType

if TYPE_CHECKING:
    from jsonschema import Draft202012Validator


class InvalidEvent(ValueError):
    """An event refused before any processor saw it; the message names the failing field."""

    def __init__(self, event_type: str, field: str, reason: str) -> None:
        super().__init__(f"invalid {event_type} event: {field}: {reason}")
        self.event_type = event_type
        self.field = field
        self.reason = reason


@dataclass(frozen=True)
class EventTypeSpec:
    """One declared event type."""

    name: str
    description: str
    schema: Mapping[str, Any] = field(default_factory=lambda: {"type": "object"})
    parent: str | None = None


@dataclass(frozen=True)
class TopicSpec:
    """A named set of event types (Baroque's topics): subscribing to the topic is
    subscribing to each of its types, and so to their subtypes too. Its types need not
    be declared yet (a plugin loaded later may declare them)."""

    name: str
    description: str
    types: frozenset[str] = frozenset()


_OBJECT: dict[str, Any] = {"type": "object"}

#: The core's own types (their payloads are open objects: sources add details). Actions
#: and notices are not subtypes of ``message``: a processor subscribed to ``message`` (the
#: default) would then get every /me and every notice, which the processors that want
#: them ask for by name (``EventType.TEXT``).
BUILTIN: tuple[EventTypeSpec, ...] = (
    EventTypeSpec(EventType.MESSAGE, "A message typed by a person.", _OBJECT),
    EventTypeSpec(EventType.ACTION, "An action (/me) typed by a person.", _OBJECT),
    EventTypeSpec(EventType.NOTICE, "A notice typed by a person.", _OBJECT),
    EventTypeSpec(
        EventType.STATE,
        "A change on a source: joined, parted, renamed, ...",
        {"type": "object", "properties": {"state": {"type": "string"}}},
    ),
    EventTypeSpec(EventType.INVITE, "An invitation to a channel.", _OBJECT),
    EventTypeSpec(EventType.SOURCE, "A source connected or disconnected.", _OBJECT),
    EventTypeSpec(
        EventType.LIFECYCLE,
        "The bot's state changed (starting, running, stopping, stopped, failed; a failure "
        "says why: failed to start, failed to stop).",
        {
            "type": "object",
            "properties": {
                "state": {"type": "string"},
                "previous": {"type": "string"},
                # Why, for a failure: "failed to start: ..." or "failed to stop: ...".
                "reason": {"type": "string"},
                # What failed to stop, one "name: error" each.
                "errors": {"type": "array", "items": {"type": "string"}},
            },
            "required": ["state"],
        },
    ),
    EventTypeSpec(EventType.DELAYED, "A call_later call came due.", _OBJECT),
    EventTypeSpec(EventType.PERIODIC, "A periodic task's tick.", _OBJECT),
    EventTypeSpec(EventType.EDIT, "A message changed after it was sent.", _OBJECT),
    EventTypeSpec(EventType.DELETE, "A message taken back.", _OBJECT),
    EventTypeSpec(EventType.REACTION, "A reaction to a message.", _OBJECT),
)


#: A check of a payload that answers True only when the schema it stands for accepts it
#: (False: let jsonschema decide). It looks at plain dicts, lists and strings only (exact
#: types, so no subclass can answer differently than jsonschema would see it); anything
#: else is left to jsonschema.
FastCheck = Callable[[Any], bool]


def _is_object(data: Any) -> bool:
    # {"type": "object"}: jsonschema's "object" is a dict.
    return type(data) is dict


def _is_state(data: Any) -> bool:
    # {"type": "object", "properties": {"state": {"type": "string"}}}
    return type(data) is dict and ("state" not in data or type(data["state"]) is str)


def _is_lifecycle(data: Any) -> bool:
    # The LIFECYCLE schema above: "state" required; "state", "previous" and "reason"
    # strings; "errors" a list (jsonschema's "array") of strings.
    if type(data) is not dict or type(data.get("state")) is not str:
        return False
    for key in ("previous", "reason"):
        if key in data and type(data[key]) is not str:
            return False
    if "errors" in data:
        errors = data["errors"]
        return type(errors) is list and all(type(item) is str for item in errors)
    return True


def schema_key(schema: Mapping[str, Any]) -> str | None:
    """A schema written out canonically (keys sorted), to recognise one; None if it is not
    plain JSON."""
    try:
        return json.dumps(schema, sort_keys=True, allow_nan=False)
    except (TypeError, ValueError):
        return None


def _fast_checks() -> Mapping[tuple[str, str | None], FastCheck]:
    checks: dict[str, FastCheck] = {EventType.STATE: _is_state, EventType.LIFECYCLE: _is_lifecycle}
    return MappingProxyType(
        {
            (spec.name, schema_key(spec.schema)): checks.get(spec.name, _is_object)
            for spec in BUILTIN
        }
    )


#: The structural check of each built-in type, by (name, schema written out): a type gets
#: one only when both are the built-in's, whoever declares it, so a built-in type declared
#: again with another schema is checked by jsonschema alone.
FAST_CHECKS = _fast_checks()


def _where(path: Any) -> str:
    parts = [str(part) for part in path]
    return "data." + ".".join(parts) if parts else "data"


class Catalogue:
    """The known event types and topics, their validators and refusal counts. Reactor
    thread for declaring; `validate`, `ancestry` and `topics_of` may run on any thread
    (they only read, and fill caches that a declaration replaces whole)."""

    def __init__(self, *, validate: bool = True, strict: bool = False) -> None:
        self.enabled = validate
        #: Whether an undeclared type is refused (otherwise it passes unchecked).
        self.strict = strict
        self._types: dict[str, EventTypeSpec] = {}
        #: Per type, the schema as declared (a deep copy: what a validator is built from).
        self._schemas: dict[str, dict[str, Any]] = {}
        #: Per type, its structural check when it has one (`FAST_CHECKS`).
        self._fast: dict[str, FastCheck] = {}
        #: Per type, its jsonschema validator, built the first time one is needed (the
        #: caches below are replaced whole by a declaration).
        self._validators: dict[str, Draft202012Validator] = {}
        #: Per type, the (check or None, type name) of it and its ancestors, nearest first.
        self._checks: dict[str, tuple[tuple[FastCheck | None, str], ...]] = {}
        self._ancestry: dict[str, tuple[str, ...]] = {}
        self._topics: dict[str, TopicSpec] = {}
        self._topics_of: dict[str, frozenset[str]] = {}
        #: Changes with every declaration: what was worked out from the catalogue before
        #: (a chain's index of who subscribes to a type) is stale when it differs.
        self.generation = 0
        #: Events refused, by type.
        self.refused: Counter[str] = Counter()
        for spec in BUILTIN:
            self.declare(spec)

    def declare(self, spec: EventTypeSpec) -> None:
        """Add (or replace, on a plugin reload) a type; a bad schema or an unknown parent
        is a ValueError that names the type."""
        if spec.parent is not None and spec.parent not in self._types:
            raise ValueError(f"event type {spec.name}: unknown parent type {spec.parent}")
        if spec.parent is not None and spec.name in self.ancestry(spec.parent):
            raise ValueError(f"event type {spec.name}: parent {spec.parent} is its own subtype")
        schema = dict(spec.schema)
        fast = FAST_CHECKS.get((spec.name, schema_key(schema)))
        if fast is None:  # a built-in's schema is known to be valid (a test checks it)
            from jsonschema import Draft202012Validator
            from jsonschema.exceptions import SchemaError

            try:
                Draft202012Validator.check_schema(schema)
            except SchemaError as error:
                raise ValueError(f"event type {spec.name}: bad schema: {error.message}") from None
        self._types[spec.name] = spec
        self._schemas[spec.name] = copy.deepcopy(schema)
        if fast is None:
            self._fast.pop(spec.name, None)
        else:
            self._fast[spec.name] = fast
        self._changed()

    def declare_topic(self, topic: TopicSpec) -> None:
        """Add (or replace) a topic; a name that is also a type's is a ValueError."""
        if topic.name in self._types:
            raise ValueError(f"topic {topic.name}: an event type has that name")
        self._topics[topic.name] = topic
        self._changed()

    def _changed(self) -> None:
        # New dicts rather than clear(): a reader on another thread filling the old cache
        # does not leave a stale entry in the new one.
        self._ancestry = {}
        self._topics_of = {}
        self._checks = {}
        self._validators = {}
        self.generation += 1

    def topics(self) -> list[TopicSpec]:
        """Every topic, by name."""
        return [self._topics[name] for name in sorted(self._topics)]

    def topic(self, name: str) -> TopicSpec | None:
        """The topic called ``name``, or None."""
        return self._topics.get(name)

    def topics_of(self, name: str) -> frozenset[str]:
        """The topics that take events of type ``name``: those listing it or one of its
        ancestors."""
        cache = self._topics_of
        found = cache.get(name)
        if found is None:
            lineage = self.ancestry(name)
            found = cache[name] = frozenset(
                topic.name
                for topic in self._topics.values()
                if not topic.types.isdisjoint(lineage)
            )
        return found

    def __contains__(self, name: object) -> bool:
        return name in self._types

    def __getitem__(self, name: str) -> EventTypeSpec:
        return self._types[name]

    def types(self) -> list[EventTypeSpec]:
        """Every type, by name."""
        return [self._types[name] for name in sorted(self._types)]

    def ancestry(self, name: str) -> tuple[str, ...]:
        """The type and its ancestors, nearest first (an undeclared type is its own)."""
        cache = self._ancestry
        found = cache.get(name)
        if found is None:
            chain = [name]
            spec = self._types.get(name)
            while spec is not None and spec.parent is not None and spec.parent not in chain:
                chain.append(spec.parent)
                spec = self._types.get(spec.parent)
            found = cache[name] = tuple(chain)
        return found

    def is_a(self, name: str, ancestor: str) -> bool:
        """Whether ``name`` is ``ancestor`` or one of its subtypes."""
        return ancestor in self.ancestry(name)

    def validate(self, event: Event) -> None:
        """Raise `InvalidEvent` (and count it) unless the event's type is declared and its
        payload matches the type's schema and every ancestor's (an undeclared type passes
        unless the catalogue is strict)."""
        if not self.enabled:
            return
        checks = self._checks.get(event.type)
        if checks is None:
            if event.type not in self._types:
                if not self.strict:
                    return
                self.refused[event.type] += 1
                raise InvalidEvent(event.type, "type", "not a declared event type")
            checks = self._checks_of(event.type)
        data = event.data
        for fast, name in checks:
            if fast is not None and fast(data):
                continue
            # No structural check, or it refused: jsonschema decides, and names the field.
            error = next(iter(self._validator(name).iter_errors(data)), None)
            if error is not None:
                self.refused[event.type] += 1
                raise InvalidEvent(event.type, _where(error.absolute_path), error.message)

    def _checks_of(self, name: str) -> tuple[tuple[FastCheck | None, str], ...]:
        cache = self._checks
        found = cache[name] = tuple((self._fast.get(each), each) for each in self.ancestry(name))
        return found

    def _validator(self, name: str) -> Draft202012Validator:
        """The type's jsonschema validator, built (and jsonschema imported) on first use.
        Two threads may both build one; either is kept."""
        cache = self._validators
        validator = cache.get(name)
        if validator is None:
            from jsonschema import Draft202012Validator

            validator = cache[name] = Draft202012Validator(self._schemas[name])
        return validator
