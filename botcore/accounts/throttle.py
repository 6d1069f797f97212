"""Slowing down password guessing: failed authentications counted per connection, per
address and per account, each key waiting longer and longer between attempts, in bounded
memory. Any thread (callers hold the auth state's lock)."""

from __future__ import annotations

import ipaddress
from collections import OrderedDict
from dataclasses import dataclass, field


def address_key(host: str | None) -> str | None:
    """What counts as one address for slowing down and connection slots: every loopback
    address (127.0.0.0/8, ::1) is one, an IPv6 address counts by its /64 (one host
    usually has a whole /64), an IPv4-mapped IPv6 address as its IPv4 address, and a host
    name (an IRC host or cloak) as itself, ignoring case. None for no host."""
    if not host:
        return None
    text = host.strip().strip("[]")
    try:
        address = ipaddress.ip_address(text.split("%", 1)[0])
    except ValueError:
        return text.casefold()
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    if address.is_loopback:
        return "loopback"
    if isinstance(address, ipaddress.IPv6Address):
        return str(ipaddress.IPv6Network((address, 64), strict=False))
    return str(address)


@dataclass
class _Record:
    #: Failures counted (they are forgotten together once ``window`` passes without one).
    count: int = 0
    last: float = 0.0


@dataclass
class Throttle:
    """Failed attempts per key: a key may fail ``free`` times, then waits ``delay``
    seconds after its last failure before its next attempt, doubled for each further
    failure, at most ``longest``; a key with no failure for ``window`` seconds starts
    afresh. At most ``max_keys`` keys are kept: past that the one whose last failure is
    oldest (which waits least) is forgotten, so memory stays bounded however many keys an
    attacker uses. Not locked: the caller holds a lock."""

    free: int
    window: float
    delay: float
    longest: float
    max_keys: int = 10000
    _records: OrderedDict[object, _Record] = field(default_factory=OrderedDict)

    def __len__(self) -> int:
        return len(self._records)

    def wait(self, key: object, now: float) -> float:
        """Seconds ``key`` must wait before its next attempt (0: it may try now)."""
        record = self._records.get(key)
        if record is None:
            return 0.0
        if now - record.last >= self.window:
            del self._records[key]
            return 0.0
        beyond = record.count - self.free
        if beyond < 0:
            return 0.0
        delay = min(self.delay * 2 ** min(beyond, 32), self.longest)
        return max(0.0, record.last + delay - now)

    def failed(self, key: object, now: float) -> None:
        """Count one failed attempt of ``key`` at ``now``."""
        record = self._records.pop(key, None)
        if record is None or now - record.last >= self.window:
            record = _Record()
        record.count = min(record.count + 1, self.free + 64)
        record.last = now
        self._records[key] = record  # the most recent failure last
        while len(self._records) > self.max_keys:
            self._records.popitem(last=False)

    def forget(self, key: object) -> None:
        self._records.pop(key, None)


@dataclass
class KnownAddresses:
    """The addresses each account has authenticated from lately (at most ``per_account``
    each, for at most ``max_accounts`` accounts, least recently used dropped): an account
    under attack from elsewhere slows its guessers, not its owner coming from where they
    usually do. Not locked: the caller holds a lock."""

    per_account: int = 8
    max_accounts: int = 10000
    _known: OrderedDict[int, OrderedDict[str, float]] = field(default_factory=OrderedDict)

    def add(self, account: int, address: str, now: float) -> None:
        addresses = self._known.pop(account, None) or OrderedDict()
        addresses.pop(address, None)
        addresses[address] = now
        while len(addresses) > self.per_account:
            addresses.popitem(last=False)
        self._known[account] = addresses
        while len(self._known) > self.max_accounts:
            self._known.popitem(last=False)

    def knows(self, account: int, address: str, now: float, lifetime: float) -> bool:
        addresses = self._known.get(account)
        when = addresses.get(address) if addresses is not None else None
        return when is not None and now - when < lifetime

    def forget_account(self, account: int) -> None:
        self._known.pop(account, None)
