"""Typed, documented configuration options.

Processors, sources and core services declare the options they read as class attributes;
the config loader validates INI values against them and the instance reads them back."""

from __future__ import annotations

import re
import string
from collections.abc import Iterable
from typing import Any, ClassVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from twisted.internet.endpoints import serverFromString

#: What stands in for a secret in text that was scrubbed (chat, logs, error messages).
REDACTED = "[secret]"

_TRUE = {"1", "yes", "true", "on"}
_FALSE = {"0", "no", "false", "off"}


class Option:
    """A string option: ``name = Option("one line of help", default)``.

    The value is read from the owning instance's ``config`` mapping (parsed values of its
    INI section); a key that is absent there reads as the default.
    """

    kind: ClassVar[str] = "string"

    def __init__(
        self,
        help: str,
        default: Any = None,
        *,
        name: str | None = None,
        required: bool = False,
        secret: bool = False,
    ) -> None:
        self.help = help
        self.default = default
        #: The INI key: given, or the attribute's name (set when the class is made).
        self.name: str = name or ""
        self.required = required
        self.secret = secret

    def __set_name__(self, owner: type, name: str) -> None:
        if not self.name:
            self.name = name

    def __get__(self, instance: Any, owner: type | None = None) -> Any:
        if instance is None:
            return self
        config = getattr(instance, "config", None) or {}
        return config.get(self.name, self.default)

    def parse(self, raw: str) -> Any:
        """Turn the INI text into a value; raise ``ValueError("expected ...")`` if it is bad."""
        return raw

    def format(self, value: Any) -> str:
        """Render a value the way it would be written in the INI file."""
        return "" if value is None else str(value)

    def display(self, value: Any) -> str | None:
        """The value as it may be shown in chat and logs: None for a secret option's (it
        is never shown); `format` for any other."""
        return None if self.secret else self.format(value)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name}={self.default!r}>"


def redact(text: str, secret: str) -> str:
    """``text`` with ``secret`` (as written, or as ``repr`` shows it) replaced by
    `REDACTED`: for messages that might quote a secret value."""
    if not secret:
        return text
    for form in (secret, repr(secret)[1:-1]):
        text = text.replace(form, REDACTED)
    return text


class _NumberOption(Option):
    """A number option, optionally bounded by ``min``/``max``."""

    def __init__(
        self,
        help: str,
        default: Any = None,
        *,
        min: float | None = None,
        max: float | None = None,
        **kw: Any,
    ) -> None:
        super().__init__(help, default, **kw)
        self.min = min
        self.max = max


class IntOption(_NumberOption):
    """An integer option, optionally bounded by ``min``/``max``."""

    kind = "integer"

    def parse(self, raw: str) -> int:
        try:
            value = int(raw.strip(), 10)
        except ValueError:
            raise ValueError(f"expected an integer, found {raw!r}") from None
        _check_bounds(self, value, raw)
        return value


class FloatOption(_NumberOption):
    """A number option (seconds, rates), optionally bounded by ``min``/``max``."""

    kind = "number"

    def parse(self, raw: str) -> float:
        try:
            value = float(raw.strip())
        except ValueError:
            raise ValueError(f"expected a number, found {raw!r}") from None
        if value != value or value in (float("inf"), float("-inf")):
            raise ValueError(f"expected a finite number, found {raw!r}")
        _check_bounds(self, value, raw)
        return value


def _check_bounds(option: _NumberOption, value: float, raw: str) -> None:
    if option.min is not None and value < option.min:
        raise ValueError(f"expected a number >= {option.min}, found {raw!r}")
    if option.max is not None and value > option.max:
        raise ValueError(f"expected a number <= {option.max}, found {raw!r}")


class BoolOption(Option):
    """A yes/no option: accepts yes/no, true/false, on/off, 1/0."""

    kind = "boolean"

    def parse(self, raw: str) -> bool:
        word = raw.strip().lower()
        if word in _TRUE:
            return True
        if word in _FALSE:
            return False
        raise ValueError(f"expected yes or no, found {raw!r}")

    def format(self, value: Any) -> str:
        return "yes" if value else "no"


class ChoiceOption(Option):
    """One word out of a fixed set (compared case-insensitively)."""

    kind = "choice"

    def __init__(
        self, help: str, default: Any = None, *, choices: Iterable[str], **kw: Any
    ) -> None:
        super().__init__(help, default, **kw)
        self.choices = tuple(choices)

    def parse(self, raw: str) -> str:
        word = raw.strip().lower()
        for choice in self.choices:
            if word == choice.lower():
                return choice
        raise ValueError(f"expected one of {', '.join(self.choices)}, found {raw!r}")


class ModeOption(Option):
    """A file mode in octal (``0640``), 0 to 0777; the value is the number."""

    kind = "octal file mode"

    def parse(self, raw: str) -> int:
        try:
            mode = int(raw.strip(), 8)
        except ValueError:
            mode = -1
        if not 0 <= mode <= 0o777:
            raise ValueError(f"expected an octal file mode such as 0640, found {raw!r}")
        return mode

    def format(self, value: Any) -> str:
        return "" if value is None else f"{value:04o}"


class TimezoneOption(Option):
    """An IANA time zone name (``Europe/Paris``, ``UTC``), checked against the system's
    time zone database; the value is the name."""

    kind = "time zone"

    def parse(self, raw: str) -> str:
        name = raw.strip()
        try:
            ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError, OSError):
            raise ValueError(f"expected a time zone such as Europe/Paris, found {raw!r}") from None
        return name


class TemplateOption(Option):
    """A ``str.format`` template that may use only the named ``fields`` (``{source}``)."""

    kind = "template"

    def __init__(
        self, help: str, default: Any = None, *, fields: Iterable[str], **kw: Any
    ) -> None:
        super().__init__(help, default, **kw)
        self.fields = tuple(fields)

    def parse(self, raw: str) -> str:
        allowed = ", ".join(f"{{{field}}}" for field in self.fields)
        try:
            parts = list(string.Formatter().parse(raw))
        except ValueError as e:
            raise ValueError(f"expected a template with fields {allowed}: {e}") from None
        for _, field, spec, conversion in parts:
            if field is None:
                continue
            if field not in self.fields or spec or conversion:
                shown = "{" + (field or "") + ("!" + conversion if conversion else "")
                shown += (":" + spec if spec else "") + "}"
                raise ValueError(f"expected only the fields {allowed}, found {shown} in {raw!r}")
        return raw


_SPLIT = re.compile(r"[,\n]")


class ListOption(Option):
    """A list of strings, separated by commas or new lines."""

    kind = "list"

    def parse(self, raw: str) -> list[str]:
        return [item.strip() for item in _SPLIT.split(raw) if item.strip()]

    def format(self, value: Any) -> str:
        return ", ".join(value or ())


class LinesOption(ListOption):
    """A non-empty list with one item per line, so items may contain commas (phrases)."""

    kind = "list, one item per line"

    def parse(self, raw: str) -> list[str]:
        lines = [line.strip() for line in raw.splitlines() if line.strip()]
        if not lines:
            raise ValueError("expected at least one line, found none")
        return lines

    def format(self, value: Any) -> str:
        return "\n    ".join(value or ())


class DictOption(Option):
    """A mapping: ``key = value`` or ``key: value`` entries, one per line or comma-separated."""

    kind = "mapping"

    def parse(self, raw: str) -> dict[str, str]:
        result: dict[str, str] = {}
        for entry in _SPLIT.split(raw):
            entry = entry.strip()
            if not entry:
                continue
            key, sep, value = entry.partition("=")
            if not sep:
                key, sep, value = entry.partition(":")
            if not sep or not key.strip():
                raise ValueError(f"expected 'key = value' entries, found {entry!r}")
            result[key.strip()] = value.strip()
        return result

    def format(self, value: Any) -> str:
        return ", ".join(f"{k} = {v}" for k, v in (value or {}).items())


def options_of(*declarers: Any) -> dict[str, Option]:
    """Every `Option` declared on the given classes (or their instances), by INI key."""
    found: dict[str, Option] = {}
    for declarer in declarers:
        cls = declarer if isinstance(declarer, type) else type(declarer)
        # By attribute, as Python resolves it: a subclass that replaces an option with a
        # plain value (a fixed setting) no longer offers that option.
        by_attribute: dict[str, Option] = {}
        for klass in reversed(cls.__mro__):
            for attribute, value in vars(klass).items():
                if isinstance(value, Option):
                    by_attribute[attribute] = value
                else:
                    by_attribute.pop(attribute, None)
        found.update((option.name, option) for option in by_attribute.values())
    return found


def defaults_of(options: Iterable[Option]) -> dict[str, Any]:
    """The default value of each option, by INI key."""
    return {option.name: option.default for option in options}


class _EndpointCheckReactor:
    """A stand-in reactor for checking an endpoint string's syntax: building a server
    endpoint does no I/O, so any object will do."""


class ServerEndpointOption(Option):
    """A Twisted server endpoint string, checked for syntax when the config is read."""

    kind = "endpoint"

    def parse(self, raw: str) -> str:
        text = raw.strip()
        try:
            endpoint = serverFromString(_EndpointCheckReactor(), text)
            # TCP endpoints take any integer as their port and fail only when they listen
            # (after a reload, with the old console gone): check the range here. Twisted
            # keeps the port in the endpoint's _port; other kinds have none.
            port = getattr(endpoint, "_port", None)
            if isinstance(port, int) and not 0 <= port <= 65535:
                raise ValueError(f"port {port} is not in 0-65535")
        except Exception as e:
            raise ValueError(
                f"expected a Twisted server endpoint such as tcp:3000:interface=127.0.0.1, "
                f"found {raw!r} ({e})"
            ) from None
        return text
