"""Permission checks for ``@authorise``, authentication state, and the scrubbing of secrets
from text before anything logs it.

Permissions resolve in order: the account's own permission row, then per-sender config
grants, the source's ``permissions``, the global ``[auth] permissions``; anything not
granted is refused."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from sqlalchemy import event as sa_event

from botcore.accounts.throttle import KnownAddresses, Throttle, address_key
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
class Failures:
    """Failed authentications, each counted three times: for the connection that made it
    (which a reconnect resets), for its address (which it does not) and for the account
    it tried (which guessing from many addresses does not escape)."""

    connections: Throttle = field(default_factory=lambda: Throttle(5, 300.0, 10.0, 300.0))
    addresses: Throttle = field(default_factory=lambda: Throttle(10, 300.0, 10.0, 300.0))
    accounts: Throttle = field(default_factory=lambda: Throttle(20, 300.0, 10.0, 300.0))
    known: KnownAddresses = field(default_factory=KnownAddresses)

    def __len__(self) -> int:
        return len(self.connections) + len(self.addresses) + len(self.accounts)


@dataclass
class AuthState:
    """What survives a configuration reload: caches of identities and permission rows,
    authenticated connections, failed attempts and pending link tokens. Guarded by
    ``lock``; any thread."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    #: (source, identity) folded -> ((identity id, account id or None), expiry).
    identities: dict[tuple[str, str], tuple[tuple[int, int | None], float]] = field(
        default_factory=dict
    )
    #: account id -> (its permission rows, expiry).
    permissions: dict[int, tuple[dict[str, str], float]] = field(default_factory=dict)
    #: Bumped by every clearing of the caches: a row read before a clearing is not cached
    #: after it (it may be the row the change replaced).
    generation: int = 0
    #: (source, connection) -> (account id, expiry on the bot's clock).
    connections: dict[tuple[str, str], tuple[int, float]] = field(default_factory=dict)
    #: Failed attempts by connection, address and account, and where accounts
    #: authenticated from.
    failures: Failures = field(default_factory=lambda: Failures())
    #: (source, connection) of the credential checks running now (one per connection).
    checking: set[tuple[str, str]] = field(default_factory=set)
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
    cache_time = FloatOption(
        "Seconds an identity's account and an account's permissions are kept in memory "
        "(read on every message). Changes made through the bot apply at once; this bounds "
        "how long one made outside it (botcore-setup, another bot on the same database) "
        "takes. 0: read them from the database every time.",
        300.0,
        min=0,
    )
    max_failures = IntOption(
        "Failed authentication attempts one connection may make within failure_window "
        "seconds before it must wait between attempts (other connections, the real "
        "owner's too, are not held up).",
        5,
        min=1,
    )
    address_failures = IntOption(
        "Failed authentication attempts from one address (every loopback address counts "
        "as one; an IPv6 address by its /64; an IRC host as itself) within failure_window "
        "seconds before every connection from there must wait between attempts: a "
        "reconnect does not start afresh.",
        10,
        min=1,
    )
    account_failures = IntOption(
        "Failed authentication attempts at one account, from anywhere, within "
        "failure_window seconds before further attempts at it must wait between them "
        "(guessing from many addresses is slowed too). Addresses the account has "
        "authenticated from since the bot started are not held up by this.",
        20,
        min=1,
    )
    failure_window = FloatOption(
        "The window, in seconds, in which failed attempts are counted: a connection, "
        "address or account with no failure for that long starts afresh.",
        300.0,
        min=1,
    )
    failure_delay = FloatOption(
        "Seconds a connection, address or account past its number of failures waits "
        "before its next attempt; doubled for each further failure, up to failure_window "
        "(so nobody is locked out for longer than that at a time).",
        10.0,
        min=0.01,
    )
    max_checks = IntOption(
        "Password checks (argon2, 64 MiB of memory each) that may run at once in all; "
        "an attempt beyond that is answered 'busy' without checking.",
        2,
        min=1,
    )

    #: Seconds an address an account authenticated from stays known as the account's.
    known_for = 30 * 86400.0

    def __init__(
        self,
        config: dict[str, Any] | None = None,
        source_permissions: Callable[[str], list[str]] | None = None,
        previous: Permissions | None = None,
        clock: Callable[[], float] | None = None,
    ) -> None:
        self.config = dict(config or {})
        #: What cache expiry is measured by (seconds; monotonic unless given).
        self.clock: Callable[[], float] = clock or (
            previous.clock if previous is not None else time.monotonic
        )
        self._source_permissions = source_permissions or (lambda name: [])
        self._global = parse_grants(self.permissions)
        self._senders = {key: parse_grants([value]) for key, value in self.grants.items()}
        self.state: AuthState = previous.state if previous is not None else AuthState()
        failures = self.state.failures
        for throttle, free in (
            (failures.connections, self.max_failures),
            (failures.addresses, self.address_failures),
            (failures.accounts, self.account_failures),
        ):
            throttle.free = free
            throttle.window = throttle.longest = self.failure_window
            throttle.delay = self.failure_delay
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
        database), or None (also once its ``cache_time`` has passed). Any thread."""
        key = (source.casefold(), identity.casefold())
        with self.state.lock:
            found = self.state.identities.get(key)
            if found is None:
                return None
            if found[1] <= self.clock():
                del self.state.identities[key]
                return None
            return found[0]

    def _store(self, cache: dict[Any, Any], key: Any, value: Any, generation: int) -> None:
        """Cache ``value`` read from the database when the caches were at ``generation``:
        not if they have been cleared since (the row may be older than the change that
        cleared them). Holds ``state.lock``."""
        if self.cache_time <= 0 or self.state.generation != generation:
            return
        if len(cache) > 10000:
            cache.clear()
        cache[key] = (value, self.clock() + self.cache_time)

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
        with self.state.lock:
            generation = self.state.generation
        row = accounts.find_identity(session, source, identity)
        if row is None:
            if may_create is not None and not may_create():
                return None
            # Not cached yet: the new row exists only once the session commits.
            row = accounts.identify(session, source, identity)
            return (row.id, row.account_id)
        found = (row.id, row.account_id)
        with self.state.lock:
            self._store(self.state.identities, key, found, generation)
        return found

    def account_permissions(self, session: Session, account_id: int) -> dict[str, str]:
        """The account's permission rows (cached for ``cache_time`` seconds, or until
        `invalidate`). Callers only read the dict."""
        from botcore.accounts import models as accounts

        with self.state.lock:
            cached = self.state.permissions.get(account_id)
            if cached is not None and cached[1] > self.clock():
                return cached[0]
            generation = self.state.generation
        found = accounts.permissions_of(session, account_id)
        with self.state.lock:
            self._store(self.state.permissions, account_id, found, generation)
        return found

    def invalidate(self, session: Session | None = None) -> None:
        """Forget cached identities and permissions, now and, given the session that made
        a change, again when it commits or rolls back; a row read before either is not
        cached after it (so no thread keeps the old rows once the change is in)."""
        self._clear()
        if session is not None:
            sa_event.listen(session, "after_commit", lambda s: self._clear(), once=True)
            sa_event.listen(session, "after_rollback", lambda s: self._clear(), once=True)

    def _clear(self) -> None:
        with self.state.lock:
            self.state.identities.clear()
            self.state.permissions.clear()
            self.state.generation += 1

    # -- authenticated connections ---------------------------------------------------

    @staticmethod
    def followed(event: Event) -> bool:
        """Whether the source follows the sender's connection, so that an authentication
        can be remembered for it: not where it cannot see the connection end (an IRC
        sender who shares no channel with the bot could quit, and someone else come
        back with the same nick and mask, unseen)."""
        return event.sender is not None and event.data.get("connection_followed") is not False

    def remember(self, event: Event, account_id: int, now: float) -> bool:
        """Count the event's connection as authenticated for ``account_id`` until
        ``timeout`` seconds from ``now``; False (nothing remembered) when the source
        does not follow the sender's connection."""
        if event.sender is None or not self.followed(event):
            return False
        with self.state.lock:
            connections = self.state.connections
            if len(connections) > 10000:
                for key in [k for k, (_, expiry) in connections.items() if expiry <= now]:
                    del connections[key]
            connections[(event.source, event.sender.connection)] = (
                account_id,
                now + self.timeout,
            )
        return True

    def forget(self, event: Event) -> None:
        """End the authentication of the event's connection."""
        if event.sender is not None:
            with self.state.lock:
                self.state.connections.pop((event.source, event.sender.connection), None)

    def forget_account(self, account_id: int, session: Session | None = None) -> None:
        """The account is deleted: end every authentication remembered for it, its
        pending link tokens and the addresses it is known at, now and again when
        ``session`` (the deleting one) commits. A remembered login names the account by
        its id, which a database may give to the next new account (SQLite reuses the
        highest one): kept, it would log that connection in as the new account as soon as
        its identity were linked to it."""

        def clear(*_: object) -> None:
            with self.state.lock:
                connections = self.state.connections
                for key in [k for k, (account, _) in connections.items() if account == account_id]:
                    del connections[key]
                tokens = self.state.tokens
                for token in [t for t, pending in tokens.items() if pending[0] == account_id]:
                    del tokens[token]
                self.state.failures.known.forget_account(account_id)
                self.state.failures.accounts.forget(account_id)

        clear()
        if session is not None:
            sa_event.listen(session, "after_commit", clear, once=True)

    def remembered(self, event: Event, now: float) -> bool:
        """Whether the event's connection is authenticated for the event's account."""
        if event.sender is None or event.account is None or not self.followed(event):
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

    # -- failed attempts and running checks -------------------------------------------

    @staticmethod
    def connection_key(event: Event) -> tuple[str, str]:
        """What failed attempts are counted by: the connection that made them, never the
        identity claimed (an impostor's failures must not hold up the real owner)."""
        return (event.source, event.who.connection)

    def wait_before_attempt(self, key: tuple[str, str], now: float) -> float:
        """Seconds the connection must wait before its next attempt is checked: 0 while it
        has failed fewer than ``max_failures`` times in ``failure_window``; then
        ``failure_delay`` after its last failure, doubled for each failure beyond."""
        with self.state.lock:
            return self.state.failures.connections.wait(key, now)

    def failed(self, key: tuple[str, str], now: float) -> None:
        """Count one failed attempt made over the connection (only)."""
        with self.state.lock:
            self.state.failures.connections.failed(key, now)

    @staticmethod
    def address_of(event: Event) -> str | None:
        """Where the event's sender is, as `address_key` counts it: the source's
        ``data["address"]`` (the console's peer), else the host of an IRC
        ``data["mask"]``; None where the source says neither (XMPP)."""
        address = event.data.get("address")
        if not isinstance(address, str):
            mask = event.data.get("mask")
            address = mask.rpartition("@")[2] if isinstance(mask, str) and "@" in mask else None
        return address_key(address)

    def attempt_wait(self, event: Event, account: int | None, now: float) -> tuple[float, str]:
        """(seconds the sender must wait before an attempt at ``account`` is checked, what
        is being slowed down in words for the user): the longest of their connection's,
        their address's and the account's waits. The account's does not hold up an
        address the account authenticated from before (its owner, most likely)."""
        failures = self.state.failures
        address = self.address_of(event)
        with self.state.lock:
            waits = [(failures.connections.wait(self.connection_key(event), now), "from here")]
            if address is not None:
                waits.append(
                    (failures.addresses.wait((event.source, address), now), "from your address")
                )
            if account is not None and not (
                address is not None and failures.known.knows(account, address, now, self.known_for)
            ):
                waits.append((failures.accounts.wait(account, now), "at that account lately"))
        return max(waits, key=lambda pair: pair[0])

    def attempt_failed(self, event: Event, account: int | None, now: float) -> None:
        """Count a failed attempt at ``account`` (None: no such account) by the event's
        sender, for their connection, their address and the account."""
        failures = self.state.failures
        address = self.address_of(event)
        with self.state.lock:
            failures.connections.failed(self.connection_key(event), now)
            if address is not None:
                failures.addresses.failed((event.source, address), now)
            if account is not None:
                failures.accounts.failed(account, now)

    def attempt_succeeded(self, event: Event, account: int, now: float) -> None:
        """The sender proved ``account`` theirs: their address is one it is known at."""
        address = self.address_of(event)
        if address is not None:
            with self.state.lock:
                self.state.failures.known.add(account, address, now)

    def start_check(self, key: tuple[str, str]) -> bool:
        """Claim a slot for one credential check by the connection: False when that
        connection already has one running or ``max_checks`` are running in all. The
        caller ends it with `end_check`."""
        with self.state.lock:
            checking = self.state.checking
            if key in checking or len(checking) >= self.max_checks:
                return False
            checking.add(key)
            return True

    def end_check(self, key: tuple[str, str]) -> None:
        """Give back the slot `start_check` claimed."""
        with self.state.lock:
            self.state.checking.discard(key)
