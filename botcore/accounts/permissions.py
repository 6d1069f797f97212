"""Permission checks for ``@authorise``, authentication state, and the scrubbing of secrets
from text before anything logs it.

Permissions resolve in order: the account's own permission row, then per-sender config
grants, the source's ``permissions``, the global ``[auth] permissions``; anything not
granted is refused."""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from sqlalchemy import event as sa_event

from botcore.event import Event
from botcore.options import DictOption, FloatOption, IntOption, ListOption

if TYPE_CHECKING:
    from sqlalchemy.orm import Session


@lru_cache(maxsize=256)
def _parsed_grants(words: tuple[str, ...]) -> dict[str, str]:
    # Source permissions are checked per event; their words rarely change, so parse each
    # distinct list once (keyed on the words, it never goes stale). Callers only read it.
    return parse_grants(words)


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


@dataclass
class AuthState:
    """What survives a configuration reload: caches of identities and permission rows,
    authenticated connections, failed attempts and pending link tokens. Guarded by
    ``lock``; any thread."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    #: (source, identity) folded -> (identity id, account id or None).
    identities: dict[tuple[str, str], tuple[int, int | None]] = field(default_factory=dict)
    #: account id -> its permission rows.
    permissions: dict[int, dict[str, str]] = field(default_factory=dict)
    #: (source, connection) -> (account id, expiry on the bot's clock).
    connections: dict[tuple[str, str], tuple[int, float]] = field(default_factory=dict)
    #: (source, identity) folded -> times of recent failed attempts.
    failures: dict[tuple[str, str], deque[float]] = field(default_factory=dict)
    #: token -> (account id, source, identity, expiry).
    tokens: dict[str, tuple[int, str, str, float]] = field(default_factory=dict)


class Permissions:
    """Decides whether an event's sender holds a permission, and keeps who is
    authenticated. Thread-safe."""

    permissions = ListOption(
        "Permissions everyone has: +perm (always), -perm (never), perm (once authenticated).",
        [],
    )
    grants = DictOption(
        "Permissions of particular senders without an account: "
        "'SOURCE:SENDER_ID = +perm perm ...' per line.",
        {},
    )
    timeout = FloatOption(
        "Seconds a successful authentication lasts on one connection.", 3600.0, min=1
    )
    max_failures = IntOption(
        "Failed authentication attempts one identity may make within failure_window "
        "seconds before further attempts are refused unchecked.",
        5,
        min=1,
    )
    failure_window = FloatOption(
        "The window, in seconds, in which failed attempts are counted.", 300.0, min=1
    )

    def __init__(
        self,
        config: dict[str, Any] | None = None,
        source_permissions: Callable[[str], list[str]] | None = None,
        previous: Permissions | None = None,
    ) -> None:
        self.config = dict(config or {})
        self._source_permissions = source_permissions or (lambda name: [])
        self._global = parse_grants(self.permissions)
        self._senders = {key: parse_grants([value]) for key, value in self.grants.items()}
        self.state: AuthState = previous.state if previous is not None else AuthState()
        # A reload (SIGHUP) also picks up accounts changed outside the bot (botcore-setup).
        self._clear()

    # -- resolution -------------------------------------------------------------------

    def authorise(self, event: Event, permission: str) -> bool:
        """Resolve in order: the account's permission row, the sender's config grants, the
        source's ``permissions``, the global ``permissions``; default no. Worker thread
        (reads the event's session when the sender has an account) or reactor thread."""
        return bool(self.resolve(event, permission)[0])

    def resolve(self, event: Event, permission: str) -> tuple[bool, str]:
        """(the verdict, the level that decided it: account, sender, source, global or
        default)."""
        permission = permission.lower()
        if event.account is not None and event._session_factory is not None:
            rows = self.account_permissions(event.session, event.account)
            verdict = check_grant(rows.get(permission), event)
            if verdict is not None:
                return verdict, "account"
        if event.sender is not None:
            sender = self._senders.get(f"{event.source}:{event.sender.id}", {})
            verdict = check_grant(sender.get(permission), event)
            if verdict is not None:
                return verdict, "sender"
        source = _parsed_grants(tuple(self._source_permissions(event.source)))
        verdict = check_grant(source.get(permission), event)
        if verdict is not None:
            return verdict, "source"
        verdict = check_grant(self._global.get(permission), event)
        if verdict is not None:
            return verdict, "global"
        return False, "default"

    # -- caches (worker threads) ------------------------------------------------------

    def known_identity(self, source: str, identity: str) -> tuple[int, int | None] | None:
        """(identity id, account id) of a sender seen before, from the cache alone (no
        database), or None. Any thread."""
        with self.state.lock:
            return self.state.identities.get((source.casefold(), identity.casefold()))

    def identity_of(
        self,
        session: Session,
        source: str,
        identity: str,
        may_create: Callable[[], bool] | None = None,
    ) -> tuple[int, int | None] | None:
        """(identity id, account id) of a sender, creating the identity on first sight;
        None when the sender is new and ``may_create()`` says no new row now."""
        from botcore.accounts import models as accounts

        found = self.known_identity(source, identity)
        if found is not None:
            return found
        key = (source.casefold(), identity.casefold())
        row = accounts.find_identity(session, source, identity)
        if row is None:
            if may_create is not None and not may_create():
                return None
            # Not cached yet: the new row exists only once the session commits.
            row = accounts.identify(session, source, identity)
            return (row.id, row.account_id)
        found = (row.id, row.account_id)
        with self.state.lock:
            if len(self.state.identities) > 10000:
                self.state.identities.clear()
            self.state.identities[key] = found
        return found

    def account_permissions(self, session: Session, account_id: int) -> dict[str, str]:
        """The account's permission rows (cached until `invalidate`)."""
        from botcore.accounts import models as accounts

        with self.state.lock:
            found = self.state.permissions.get(account_id)
        if found is None:
            found = accounts.permissions_of(session, account_id)
            with self.state.lock:
                self.state.permissions[account_id] = found
        return found

    def invalidate(self, session: Session | None = None) -> None:
        """Forget cached identities and permissions, now and, given the session that made
        a change, again when it commits (so no other thread caches the old rows between
        now and then)."""
        self._clear()
        if session is not None:
            sa_event.listen(session, "after_commit", lambda s: self._clear(), once=True)
            sa_event.listen(session, "after_rollback", lambda s: self._clear(), once=True)

    def _clear(self) -> None:
        with self.state.lock:
            self.state.identities.clear()
            self.state.permissions.clear()

    # -- authenticated connections ---------------------------------------------------

    def remember(self, event: Event, account_id: int, now: float) -> None:
        """Count the event's connection as authenticated for ``account_id`` until
        ``timeout`` seconds from ``now``."""
        if event.sender is None:
            return
        with self.state.lock:
            self.state.connections[(event.source, event.sender.connection)] = (
                account_id,
                now + self.timeout,
            )

    def forget(self, event: Event) -> None:
        """End the authentication of the event's connection."""
        if event.sender is not None:
            with self.state.lock:
                self.state.connections.pop((event.source, event.sender.connection), None)

    def remembered(self, event: Event, now: float) -> bool:
        """Whether the event's connection is authenticated for the event's account."""
        if event.sender is None or event.account is None:
            return False
        key = (event.source, event.sender.connection)
        with self.state.lock:
            found = self.state.connections.get(key)
            if found is None:
                return False
            account_id, expiry = found
            if expiry <= now:
                del self.state.connections[key]
                return False
        return account_id == event.account

    # -- failed attempts ----------------------------------------------------------------

    def attempts_left(self, key: tuple[str, str], now: float) -> bool:
        """Whether the identity may try to authenticate now (fewer than ``max_failures``
        failures in the last ``failure_window`` seconds)."""
        key = (key[0].casefold(), key[1].casefold())
        with self.state.lock:
            recent = self.state.failures.get(key)
            if recent is None:
                return True
            while recent and now - recent[0] >= self.failure_window:
                recent.popleft()
            if not recent:
                del self.state.failures[key]
                return True
            return len(recent) < self.max_failures

    def failed(self, key: tuple[str, str], now: float) -> None:
        """Count one failed attempt of the identity."""
        key = (key[0].casefold(), key[1].casefold())
        with self.state.lock:
            if len(self.state.failures) > 10000:
                self.state.failures.clear()
            self.state.failures.setdefault(key, deque(maxlen=self.max_failures)).append(now)
