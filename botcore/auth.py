"""Permission checks for ``@authorise``.

Until accounts exist, permissions come from the configuration: per sender, per source,
then the global ``[auth] permissions``; anything not granted is refused."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from botcore.event import Event
from botcore.options import DictOption, ListOption


def parse_grants(words: Iterable[str]) -> dict[str, str]:
    """``["+a", "-b", "c"]`` -> ``{"a": "yes", "b": "no", "c": "auth"}``."""
    grants: dict[str, str] = {}
    for word in words:
        for item in word.split():
            if item.startswith("+"):
                grants[item[1:]] = "yes"
            elif item.startswith("-"):
                grants[item[1:]] = "no"
            else:
                grants[item] = "auth"
    return grants


def check_grant(value: str | None, event: Event) -> bool | None:
    """What one level's grant says: True, False, or None when this level is silent."""
    if value is None:
        return None
    if value == "auth":
        return event.authenticated
    return value == "yes"


class Permissions:
    """Decides whether an event's sender holds a permission. Thread-safe (read-only)."""

    permissions = ListOption(
        "Permissions everyone has: +perm (always), -perm (never), perm (once authenticated).",
        [],
    )
    grants = DictOption(
        "Permissions of particular senders: 'SOURCE:SENDER_ID = +perm perm ...' per line.", {}
    )

    def __init__(
        self,
        config: dict[str, Any] | None = None,
        source_permissions: Callable[[str], list[str]] | None = None,
    ) -> None:
        self.config = dict(config or {})
        self._source_permissions = source_permissions or (lambda name: [])
        self._global = parse_grants(self.permissions)
        self._senders = {key: parse_grants([value]) for key, value in self.grants.items()}

    def authorise(self, event: Event, permission: str) -> bool:
        """Resolve in order: the sender's grants, the source's ``permissions``, the global
        ``permissions``; default no. Worker thread or reactor thread."""
        if event.sender is not None:
            sender = self._senders.get(f"{event.source}:{event.sender.id}", {})
            verdict = check_grant(sender.get(permission), event)
            if verdict is not None:
                return verdict
        source = parse_grants(self._source_permissions(event.source))
        verdict = check_grant(source.get(permission), event)
        if verdict is not None:
            return verdict
        return bool(check_grant(self._global.get(permission), event))
