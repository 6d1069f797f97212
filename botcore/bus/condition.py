"""A small, safe expression language for reactors' conditions and templates: Python's
expression syntax parsed with `ast`, but only literals, the event's fields, ``.``/``[]``
lookups, comparisons (``==``, ``<``, ``in``, ...) and ``and``/``or``/``not`` — no calls,
no names but the event's, so a condition from the config can read the event and nothing
else (no ``eval``).

The names: ``type``, ``source``, ``channel``, ``sender`` (the nick), ``public``,
``text`` (the message's text, as the processors left it), ``data`` (the payload) and
``id``. A lookup of something absent (``data.env`` when there is no ``env``) is None."""

from __future__ import annotations

import ast
import operator
import re
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from botcore.event import Event

#: Longest condition accepted (it is evaluated on the reactor thread for every event).
MAX_LENGTH = 500
#: Deepest nesting accepted.
MAX_DEPTH = 20

NAMES = ("type", "source", "channel", "sender", "public", "text", "data", "id")

_COMPARE: dict[type[ast.cmpop], Callable[[Any, Any], Any]] = {
    ast.Eq: operator.eq,
    ast.NotEq: operator.ne,
    ast.Lt: operator.lt,
    ast.LtE: operator.le,
    ast.Gt: operator.gt,
    ast.GtE: operator.ge,
    ast.In: lambda a, b: a in b,
    ast.NotIn: lambda a, b: a not in b,
    ast.Is: operator.is_,
    ast.IsNot: operator.is_not,
}


class ConditionError(ValueError):
    """A condition that is not of the language; the message says what is not allowed."""


def fields(event: Event) -> dict[str, Any]:
    """The names a condition or template may use, for ``event``."""
    return {
        "type": event.type,
        "source": event.source,
        "channel": event.channel,
        "sender": event.sender.nick if event.sender is not None else None,
        "public": event.public,
        "text": event.message.raw if event.message is not None else None,
        "data": event.data,
        "id": event.id,
    }


Compiled = Callable[[Mapping[str, Any]], Any]


def compile_condition(text: str) -> Compiled:
    """Parse ``text`` into a function of the event's `fields`; `ConditionError` when it
    is too long, not an expression, or uses anything but the language."""
    if len(text) > MAX_LENGTH:
        raise ConditionError(f"longer than {MAX_LENGTH} characters")
    try:
        tree = ast.parse(text.strip(), mode="eval")
    except SyntaxError as error:
        raise ConditionError(f"not an expression: {error.msg}") from None
    return _compile(tree.body, 0)


def _compile(node: ast.AST, depth: int) -> Compiled:
    if depth > MAX_DEPTH:
        raise ConditionError(f"nested deeper than {MAX_DEPTH}")
    depth += 1
    if isinstance(node, ast.Constant):
        value = node.value
        if not isinstance(value, (str, int, float, bool, type(None))):
            raise ConditionError(f"{value!r} is not a string, number, boolean or None")
        return lambda names: value
    if isinstance(node, ast.Name):
        name = node.id
        if name not in NAMES:
            raise ConditionError(f"unknown name {name!r} (known: {', '.join(NAMES)})")
        return lambda names: names.get(name)
    if isinstance(node, (ast.List, ast.Tuple)):
        items = [_compile(item, depth) for item in node.elts]
        return lambda names: [item(names) for item in items]
    if isinstance(node, ast.Attribute):
        inner = _compile(node.value, depth)
        key = node.attr
        return lambda names: _lookup(inner(names), key)
    if isinstance(node, ast.Subscript):
        inner = _compile(node.value, depth)
        index = _compile(node.slice, depth)
        return lambda names: _lookup(inner(names), index(names))
    if isinstance(node, ast.BoolOp):
        parts = [_compile(value, depth) for value in node.values]
        if isinstance(node.op, ast.And):
            return lambda names: all(part(names) for part in parts)
        return lambda names: any(part(names) for part in parts)
    if isinstance(node, ast.UnaryOp):
        operand = _compile(node.operand, depth)
        if isinstance(node.op, ast.Not):
            return lambda names: not operand(names)
        if isinstance(node.op, ast.USub):
            return lambda names: -operand(names)
        raise ConditionError(f"operator {type(node.op).__name__} is not allowed")
    if isinstance(node, ast.Compare):
        left = _compile(node.left, depth)
        tests = []
        for op, right in zip(node.ops, node.comparators, strict=True):
            function = _COMPARE.get(type(op))
            if function is None:
                raise ConditionError(f"comparison {type(op).__name__} is not allowed")
            tests.append((function, _compile(right, depth)))

        def compare(names: Mapping[str, Any]) -> bool:
            value = left(names)
            for function, right in tests:
                other = right(names)
                if not function(value, other):
                    return False
                value = other
            return True

        return compare
    raise ConditionError(f"{type(node).__name__} is not allowed (no calls, no arithmetic)")


def _lookup(value: Any, key: Any) -> Any:
    """``value[key]`` for a mapping or a list, None when it has none; nothing else
    (no attributes of Python objects)."""
    if isinstance(value, Mapping):
        return value.get(key)
    if (
        isinstance(value, (list, tuple))
        and isinstance(key, int)
        and -len(value) <= key < len(value)
    ):
        return value[key]
    return None


_FIELD = re.compile(r"\{([^{}]*)\}")


def compile_template(text: str) -> Callable[[Mapping[str, Any]], str]:
    """A template: text with ``{expression}`` fields in the condition language
    (``{sender} deployed {data.version} to {data.env}``; ``{{`` and ``}}`` are braces);
    `ConditionError` for a bad field. A field that is None is empty."""
    pieces: list[str | Compiled] = []
    at = 0
    escaped = text.replace("{{", "\0").replace("}}", "\1")
    for found in _FIELD.finditer(escaped):
        pieces.append(escaped[at : found.start()])
        try:
            pieces.append(compile_condition(found.group(1)))
        except ConditionError as error:
            raise ConditionError(f"field {{{found.group(1)}}}: {error}") from None
        at = found.end()
    pieces.append(escaped[at:])
    literal = [p for p in pieces if isinstance(p, str)]
    if any("{" in p or "}" in p for p in literal):
        raise ConditionError("an unmatched { or } (write {{ or }} for a brace)")

    def render(names: Mapping[str, Any]) -> str:
        out = []
        for piece in pieces:
            if isinstance(piece, str):
                out.append(piece.replace("\0", "{").replace("\1", "}"))
            else:
                value = piece(names)
                out.append("" if value is None else str(value))
        return "".join(out)

    return render
