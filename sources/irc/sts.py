"""IRCv3 Strict Transport Security: a server that says ``sts`` is reached over TLS only.

On a plain connection the server's ``sts=port=P`` makes the bot reconnect with TLS on
port P at once; on a TLS connection ``sts=duration=D`` is a policy: for D seconds the
host is never contacted in plain text (a refused TLS connection is retried as TLS, with
the usual backoff). Policies are kept in memory and, when the bot has a database, in
the core's ``plugin_data`` table (plugin ``irc``, key ``irc-sts``), so they outlive a
restart as the specification asks."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from twisted.internet.defer import Deferred, maybeDeferred, succeed
from twisted.internet.threads import deferToThreadPool
from twisted.logger import Logger

if TYPE_CHECKING:
    from twisted.internet.interfaces import IReactorTime

#: Where policies are stored in ``plugin_data``.
STORE_PLUGIN = "irc"
STORE_KEY = "irc-sts"


@dataclass(frozen=True)
class Policy:
    """Connect to ``host`` with TLS on ``port`` until ``expires`` (reactor seconds);
    ``expires`` None for an upgrade learnt on a plain connection, which holds until the
    TLS connection says how long."""

    host: str
    port: int
    expires: float | None


def parse_sts(value: str) -> dict[str, str]:
    """``port=6697,duration=300`` as a dict (unknown keys kept, junk skipped)."""
    found: dict[str, str] = {}
    for item in value.split(","):
        key, _, val = item.partition("=")
        if key.strip():
            found[key.strip().lower()] = val.strip()
    return found


class StsPolicies:
    """The policies one source knows, by host name (compared case-blind). Reactor
    thread; persisted through ``store`` (load/save of a JSON-able dict) when given."""

    log = Logger()

    def __init__(self, clock: IReactorTime, store: Any = None) -> None:
        self.clock = clock
        self.store = store
        self._policies: dict[str, Policy] = {}

    def load(self) -> Deferred[None]:
        """Read the stored policies (failures are logged: then only new ones count)."""
        if self.store is None:
            return succeed(None)
        d = self.store.load()

        def loaded(value: Any) -> None:
            if not isinstance(value, dict):
                return
            for host, entry in value.items():
                try:
                    policy = Policy(str(host).lower(), int(entry["port"]), float(entry["expires"]))
                except (KeyError, TypeError, ValueError):
                    continue
                if policy.host not in self._policies:
                    self._policies[policy.host] = policy

        def failed(failure: Any) -> None:
            self.log.warn(
                "cannot read the stored STS policies ({why}); only new ones apply",
                why=failure.getErrorMessage(),
            )

        d.addCallbacks(loaded, failed)
        return d

    def get(self, host: str) -> Policy | None:
        """The policy in force for ``host``, or None (an expired one is forgotten)."""
        policy = self._policies.get(host.lower())
        if policy is None:
            return None
        if policy.expires is not None and policy.expires <= self.clock.seconds():
            del self._policies[host.lower()]
            self._save()
            return None
        return policy

    def upgrade(self, host: str, port: int) -> None:
        """A plain connection said: use TLS on ``port`` (until a TLS connection says for
        how long; not stored)."""
        current = self._policies.get(host.lower())
        if current is None or current.expires is None:
            self._policies[host.lower()] = Policy(host.lower(), port, None)

    def secure(self, host: str, port: int, duration: float) -> None:
        """A TLS connection to ``host``:``port`` said ``duration``: the policy holds for
        that long from now (0 removes it)."""
        if duration <= 0:
            self._policies.pop(host.lower(), None)
        else:
            expires = self.clock.seconds() + duration
            self._policies[host.lower()] = Policy(host.lower(), port, expires)
        self._save()

    def _save(self) -> None:
        if self.store is None:
            return
        value = {
            host: {"port": policy.port, "expires": policy.expires}
            for host, policy in self._policies.items()
            if policy.expires is not None
        }
        d = self.store.save(value)
        d.addErrback(
            lambda failure: self.log.warn(
                "cannot store the STS policies ({why})", why=failure.getErrorMessage()
            )
        )


class DatabaseStore:
    """Loads and saves the policies in ``plugin_data`` on the reactor's thread pool,
    through a `botcore.db.service.Database`."""

    def __init__(self, reactor: Any, database: Any) -> None:
        self.reactor = reactor
        self.database = database

    def _run(self, work: Any) -> Deferred[Any]:
        pool = getattr(self.reactor, "getThreadPool", None)
        if pool is None:
            # A test's clock has no threads: the work is short, done at once.
            return maybeDeferred(work)
        return deferToThreadPool(self.reactor, pool(), work)

    def load(self) -> Deferred[Any]:
        return self._run(lambda: self._in_session(lambda store: store.get(STORE_KEY)))

    def save(self, value: dict[str, Any]) -> Deferred[Any]:
        return self._run(lambda: self._in_session(lambda store: store.set(STORE_KEY, value)))

    def _in_session(self, work: Any) -> Any:
        from botcore.db.engine import commit_if_changed
        from botcore.db.storage import PluginStore

        session = self.database.open_session()
        try:
            result = work(PluginStore(session, STORE_PLUGIN))
            commit_if_changed(session)
            return result
        finally:
            session.close()
