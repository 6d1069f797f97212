"""Tests for botcore.accounts.throttle and the auth facade's use of it: failed logins slow
down the connection, the address and the account they came from or tried, in bounded
memory, on an injected clock."""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from botcore.accounts.permissions import Permissions
from botcore.accounts.throttle import KnownAddresses, Throttle, address_key
from botcore.event import Event, EventType, Sender


def attempt(connection: str, address: str | None = None, source: str = "irc") -> Event:
    data = {"address": address} if address is not None else {}
    return Event(
        source=source,
        type=EventType.MESSAGE,
        sender=Sender(connection, "mallory", "mallory"),
        data=data,
    )


class AddressKeyTests(SynchronousTestCase):
    """What counts as one address."""

    def test_loopback_is_one(self) -> None:
        """Every 127/8 address, ::1 and a mapped 127.x are the same address."""
        keys = {address_key(a) for a in ("127.0.0.1", "127.0.0.2", "127.9.9.9", "::1",
                                         "::ffff:127.0.0.5")}  # fmt: skip
        self.assertEqual(keys, {"loopback"})

    def test_ipv6_by_64(self) -> None:
        """Two addresses of one /64 are one; another /64 is another."""
        self.assertEqual(address_key("2001:db8::1"), address_key("2001:db8::ffff:1"))
        self.assertNotEqual(address_key("2001:db8::1"), address_key("2001:db8:0:1::1"))

    def test_others(self) -> None:
        """IPv4 addresses and host names are themselves (names ignoring case); no host is
        None."""
        self.assertEqual(address_key("192.0.2.7"), "192.0.2.7")
        self.assertNotEqual(address_key("192.0.2.7"), address_key("192.0.2.8"))
        self.assertEqual(address_key("User/Cloak.Example"), "user/cloak.example")
        self.assertEqual(address_key("::ffff:192.0.2.7"), "192.0.2.7")
        self.assertIsNone(address_key(None))
        self.assertIsNone(address_key(""))


class ThrottleTests(SynchronousTestCase):
    """One throttle."""

    def test_grows_and_is_bounded(self) -> None:
        """Free failures, then the delay doubles per failure, never past the longest; a
        window with no failure starts afresh."""
        throttle = Throttle(free=2, window=300.0, delay=10.0, longest=60.0)
        throttle.failed("k", 0.0)
        self.assertEqual(throttle.wait("k", 0.0), 0.0)
        throttle.failed("k", 0.0)
        self.assertEqual(throttle.wait("k", 0.0), 10.0)
        self.assertEqual(throttle.wait("k", 4.0), 6.0)
        throttle.failed("k", 10.0)
        self.assertEqual(throttle.wait("k", 10.0), 20.0)
        for _ in range(100):
            throttle.failed("k", 10.0)
        self.assertEqual(throttle.wait("k", 10.0), 60.0)
        self.assertEqual(throttle.wait("k", 309.0), 0.0)
        self.assertEqual(throttle.wait("k", 310.0), 0.0)
        self.assertEqual(len(throttle), 0)

    def test_memory_bounded(self) -> None:
        """However many keys fail, at most max_keys are kept: the oldest go first."""
        throttle = Throttle(free=0, window=300.0, delay=10.0, longest=60.0, max_keys=100)
        for n in range(10000):
            throttle.failed(n, float(n) / 100)
        self.assertEqual(len(throttle), 100)
        self.assertGreater(throttle.wait(9999, 100.0), 0.0)
        self.assertEqual(throttle.wait(0, 100.0), 0.0)

    def test_known_addresses_bounded(self) -> None:
        """An account keeps its last per_account addresses, for max_accounts accounts."""
        known = KnownAddresses(per_account=2, max_accounts=3)
        for n in range(5):
            known.add(1, f"10.0.0.{n}", 0.0)
        self.assertFalse(known.knows(1, "10.0.0.0", 1.0, 100.0))
        self.assertTrue(known.knows(1, "10.0.0.4", 1.0, 100.0))
        self.assertFalse(known.knows(1, "10.0.0.4", 101.0, 100.0))
        for account in range(2, 10):
            known.add(account, "x", 0.0)
        self.assertFalse(known.knows(1, "10.0.0.4", 1.0, 100.0))
        self.assertTrue(known.knows(9, "x", 1.0, 100.0))


class AttemptTests(SynchronousTestCase):
    """Permissions.attempt_wait / attempt_failed."""

    def test_reconnecting_does_not_reset_the_address(self) -> None:
        """A guesser who reconnects for every guess (a new connection each time) is
        slowed by its address once it passes address_failures."""
        auth = Permissions({})
        for n in range(auth.address_failures):
            event = attempt(f"connection-{n}", "127.0.0.1")
            self.assertEqual(auth.attempt_wait(event, None, 0.0)[0], 0.0)
            auth.attempt_failed(event, None, 0.0)
        fresh = attempt("connection-new", "127.0.0.3")  # another loopback address: the same
        self.assertEqual(auth.attempt_wait(fresh, None, 0.0), (10.0, "from your address"))
        elsewhere = attempt("connection-other", "192.0.2.1")
        self.assertEqual(auth.attempt_wait(elsewhere, None, 0.0)[0], 0.0)

    def test_many_addresses_at_one_account(self) -> None:
        """Guesses at one account from many addresses slow further guesses at it, but
        not its owner from an address it authenticated from before."""
        auth = Permissions({})
        owner = attempt("owner-1", "198.51.100.1")
        auth.attempt_succeeded(owner, 7, 0.0)
        for n in range(auth.account_failures):
            event = attempt(f"c{n}", f"192.0.2.{n}")
            auth.attempt_failed(event, 7, 1.0)
        guesser = attempt("c-new", "203.0.113.9")
        self.assertEqual(auth.attempt_wait(guesser, 7, 1.0), (10.0, "at that account lately"))
        self.assertEqual(auth.attempt_wait(guesser, 8, 1.0)[0], 0.0)  # other accounts
        owner_again = attempt("owner-2", "198.51.100.1")
        self.assertEqual(auth.attempt_wait(owner_again, 7, 1.0)[0], 0.0)
        # Bounded: the account waits at most failure_window at a time, never forever.
        for _ in range(200):
            auth.attempt_failed(guesser, 7, 2.0)
        self.assertLessEqual(auth.attempt_wait(guesser, 7, 2.0)[0], auth.failure_window)
        self.assertEqual(auth.attempt_wait(attempt("c2", "203.0.113.10"), 7, 303.0)[0], 0.0)

    def test_irc_mask_host_is_the_address(self) -> None:
        """Without data['address'], the host of an IRC mask is the address."""
        event = Event(
            source="irc",
            type=EventType.MESSAGE,
            sender=Sender("irc", "m", "m"),
            data={"mask": "m!u@Host.Example"},
        )
        self.assertEqual(Permissions.address_of(event), "host.example")
        self.assertIsNone(Permissions.address_of(attempt("c")))

    def test_reload_keeps_failures_with_new_settings(self) -> None:
        """A reload keeps counted failures and applies the new numbers to them."""
        old = Permissions({})
        event = attempt("c", "192.0.2.1")
        for _ in range(3):
            old.attempt_failed(event, None, 0.0)
        new = Permissions({"address_failures": 2, "max_failures": 50}, None, old)
        self.assertEqual(new.attempt_wait(attempt("d", "192.0.2.1"), None, 0.0)[0], 20.0)
