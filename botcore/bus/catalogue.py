"""The event type catalogue: each type has a name, a description, a JSON Schema for its
payload (``Event.data``) and optionally a parent type. Built-in types are described the
same way, so plugins' and the core's types are listed together.

Validation uses the ``jsonschema`` library (Draft 2020-12): a well-kept implementation
whose errors carry the path of the failing field, which the refusal message names."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError

from botcore.event import Event, EventType


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


_OBJECT: dict[str, Any] = {"type": "object"}

#: The core's own types (their payloads are open objects: sources add details).
BUILTIN: tuple[EventTypeSpec, ...] = (
    EventTypeSpec(EventType.MESSAGE, "A message typed by a person.", _OBJECT),
    EventTypeSpec(EventType.ACTION, "An action (/me) typed by a person.", _OBJECT, "message"),
    EventTypeSpec(EventType.NOTICE, "A notice typed by a person.", _OBJECT, "message"),
    EventTypeSpec(
        EventType.STATE,
        "A change on a source: joined, parted, renamed, ...",
        {"type": "object", "properties": {"state": {"type": "string"}}},
    ),
    EventTypeSpec(EventType.INVITE, "An invitation to a channel.", _OBJECT),
    EventTypeSpec(EventType.SOURCE, "A source connected or disconnected.", _OBJECT),
    EventTypeSpec(
        EventType.LIFECYCLE,
        "The bot's state changed (starting, running, stopping, stopped, failed).",
        {
            "type": "object",
            "properties": {"state": {"type": "string"}, "previous": {"type": "string"}},
            "required": ["state"],
        },
    ),
    EventTypeSpec(EventType.DELAYED, "A call_later call came due.", _OBJECT),
    EventTypeSpec(EventType.PERIODIC, "A periodic task's tick.", _OBJECT),
    EventTypeSpec(EventType.EDIT, "A message changed after it was sent.", _OBJECT),
    EventTypeSpec(EventType.DELETE, "A message taken back.", _OBJECT),
    EventTypeSpec(EventType.REACTION, "A reaction to a message.", _OBJECT),
)


def _where(path: Any) -> str:
    parts = [str(part) for part in path]
    return "data." + ".".join(parts) if parts else "data"


class Catalogue:
    """The known event types, their validators and refusal counts. Reactor thread for
    declaring; `validate` may run on any thread (it only reads)."""

    def __init__(self, *, validate: bool = True, strict: bool = False) -> None:
        self.enabled = validate
        #: Whether an undeclared type is refused (otherwise it passes unchecked).
        self.strict = strict
        self._types: dict[str, EventTypeSpec] = {}
        self._validators: dict[str, Draft202012Validator] = {}
        self._ancestry: dict[str, tuple[str, ...]] = {}
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
        try:
            Draft202012Validator.check_schema(dict(spec.schema))
        except SchemaError as error:
            raise ValueError(f"event type {spec.name}: bad schema: {error.message}") from None
        self._types[spec.name] = spec
        self._validators[spec.name] = Draft202012Validator(dict(spec.schema))
        self._ancestry.clear()

    def __contains__(self, name: object) -> bool:
        return name in self._types

    def __getitem__(self, name: str) -> EventTypeSpec:
        return self._types[name]

    def types(self) -> list[EventTypeSpec]:
        """Every type, by name."""
        return [self._types[name] for name in sorted(self._types)]

    def ancestry(self, name: str) -> tuple[str, ...]:
        """The type and its ancestors, nearest first (an undeclared type is its own)."""
        found = self._ancestry.get(name)
        if found is None:
            chain = [name]
            spec = self._types.get(name)
            while spec is not None and spec.parent is not None and spec.parent not in chain:
                chain.append(spec.parent)
                spec = self._types.get(spec.parent)
            found = self._ancestry[name] = tuple(chain)
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
        if event.type not in self._types:
            if not self.strict:
                return
            self.refused[event.type] += 1
            raise InvalidEvent(event.type, "type", "not a declared event type")
        for name in self.ancestry(event.type):
            error = next(iter(self._validators[name].iter_errors(event.data)), None)
            if error is not None:
                self.refused[event.type] += 1
                raise InvalidEvent(event.type, _where(error.absolute_path), error.message)
