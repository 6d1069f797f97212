"""The bus's config sections: event types (``[event:NAME]``) and topics (``[topic:NAME]``)
declared without code, checked with the rest of the config and put in the catalogue."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from botcore.bus.catalogue import Catalogue, EventTypeSpec, TopicSpec
from botcore.options import ListOption, Option

if TYPE_CHECKING:
    from botcore.config import Config


class SchemaOption(Option):
    """A JSON Schema (Draft 2020-12) for an event's payload, written as JSON (it may run
    over several indented lines)."""

    kind = "JSON Schema"

    def parse(self, raw: str) -> dict[str, Any]:
        try:
            schema = json.loads(raw)
        except ValueError as error:
            raise ValueError(f"expected a JSON Schema written as JSON: {error}") from None
        if not isinstance(schema, dict):
            raise ValueError('expected a JSON Schema: a JSON object such as {"type": "object"}')
        # Imported here: the bot loads jsonschema only when a schema must really be checked.
        from jsonschema import Draft202012Validator
        from jsonschema.exceptions import SchemaError

        try:
            Draft202012Validator.check_schema(schema)
        except SchemaError as error:
            raise ValueError(f"not a valid JSON Schema: {error.message}") from None
        return schema

    def format(self, value: Any) -> str:
        return json.dumps(value)


class EventSection:
    """Keys of an ``[event:NAME]`` section: an event type declared in the config."""

    description = Option("What an event of this type says happened (one sentence).", "")
    schema = SchemaOption(
        "JSON Schema the payload (event.data) must match, as JSON.", {"type": "object"}
    )
    parent = Option(
        "The type this one is a subtype of (a built-in or another [event:NAME]): its "
        "subscribers get these events too, and the payload must match its schema as well.",
        "",
    )


class TopicSection:
    """Keys of a ``[topic:NAME]`` section: a named set of event types."""

    description = Option("What the topic gathers (one sentence).", "")
    types = ListOption(
        "Event types in the topic; a processor subscribed to the topic gets these and "
        "their subtypes.",
        [],
    )


#: What could not be declared: (section, key or None, message).
Problem = tuple[str, str | None, str]


def declare_from_config(catalogue: Catalogue, config: Config) -> list[Problem]:
    """Declare every ``[event:NAME]`` and ``[topic:NAME]`` of ``config`` in ``catalogue``
    (a parent before its subtypes, whatever the file's order); return what could not be
    declared. Reactor thread."""
    problems: list[Problem] = []
    pending = {name: config.section(f"event:{name}") for name in config.names("event")}
    while pending:
        ready = [
            name
            for name, section in pending.items()
            if not section.get("parent") or section["parent"] not in pending
        ]
        if not ready:  # the rest are each other's ancestors
            for name, section in pending.items():
                problems.append(
                    (f"event:{name}", "parent", f"{section['parent']} is its own ancestor")
                )
            break
        for name in ready:
            section = pending.pop(name)
            spec = EventTypeSpec(
                name,
                section.get("description") or "",
                section.get("schema") or {"type": "object"},
                section.get("parent") or None,
            )
            try:
                catalogue.declare(spec)
            except ValueError as error:
                key = "parent" if spec.parent else None
                problems.append((f"event:{name}", key, _without_name(str(error), name)))
    for name in config.names("topic"):
        section = config.section(f"topic:{name}")
        topic = TopicSpec(name, section.get("description") or "", frozenset(section["types"]))
        try:
            catalogue.declare_topic(topic)
        except ValueError as error:
            problems.append((f"topic:{name}", None, _without_name(str(error), name, "topic")))
    return problems


def _without_name(message: str, name: str, kind: str = "event type") -> str:
    # The catalogue's message starts with the type's name, which the section says.
    prefix = f"{kind} {name}: "
    return message[len(prefix) :] if message.startswith(prefix) else message
