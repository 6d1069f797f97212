"""Attacks on logins through the identity plugin, as conversations: a guesser who
reconnects for every guess, or guesses at one account from many addresses, is slowed
down, and told so; the owner is not locked out for good. A deleted account's logins end
with it."""

from __future__ import annotations

from botcore.accounts import models as accounts
from botcore.event import Event, Sender
from botcore.testing import PluginTestCase

SECRET = "correct-horse-battery-staple"


class ThrottleConversationTests(PluginTestCase):
    load = ("identity",)

    def setUp(self) -> None:
        super().setUp()
        with self.bot.databases["main"].session_factory() as session:
            account = accounts.create_account(session, "admin")
            row = accounts.identify(session, "test", "admin")
            accounts.link(session, row, account)
            accounts.add_credential(session, account.id, "password", SECRET)
            session.commit()

    def guess(self, text: str, connection: str, address: str) -> Event:
        return self.make_event(
            text, sender=Sender(connection, "admin", "admin"), data={"address": address}
        )

    def test_reconnecting_guesser_slowed_by_address(self) -> None:
        """A new connection for every wrong password does not start afresh: past
        address_failures, every connection from that address is told to wait."""
        for n in range(10):
            self.assertResponseMatches(
                self.guess("auth nope", f"c{n}", "127.0.0.2"), "didn't work"
            )
        self.assertResponseMatches(
            self.guess(f"auth {SECRET}", "c-new", "127.0.0.5"),
            r"Too many failed attempts from your address; try again in 10 seconds",
        )
        # The owner elsewhere is not held up, and the address waits only so long.
        self.assertResponseMatches(
            self.guess(f"auth {SECRET}", "owner", "192.0.2.1"), "now authenticated"
        )
        self.advance(10)
        self.assertResponseMatches(
            self.guess(f"auth {SECRET}", "c-later", "127.0.0.1"), "now authenticated"
        )

    def test_many_addresses_slowed_by_account(self) -> None:
        """Wrong passwords for one account from many addresses slow every further
        attempt at it, except from an address it authenticated from before."""
        self.assertResponseMatches(
            self.guess(f"auth {SECRET}", "owner", "198.51.100.1"), "now authenticated"
        )
        for n in range(20):
            self.assertResponseMatches(
                self.guess("auth nope", f"c{n}", f"192.0.2.{n}"), "didn't work"
            )
        self.assertResponseMatches(
            self.guess(f"auth {SECRET}", "c-new", "203.0.113.1"),
            "Too many failed attempts at that account lately; try again in 10 seconds",
        )
        self.assertResponseMatches(
            self.guess(f"auth {SECRET}", "owner-again", "198.51.100.1"), "now authenticated"
        )


class DeletedAccountTests(PluginTestCase):
    load = ("identity",)

    def test_login_does_not_carry_over_to_a_reused_id(self) -> None:
        """A connection logged in as an account that is then deleted is not logged in as
        a new account that gets the same id (SQLite reuses it) once its identity is linked
        to that account."""
        with self.bot.databases["main"].session_factory() as session:
            root = accounts.create_account(session, "root")
            row = accounts.identify(session, "test", "root")
            accounts.link(session, row, root)
            accounts.add_credential(session, root.id, "password", SECRET)
            accounts.set_permission(session, root.id, "admin", "auth")
            session.commit()
        self.say(f"auth {SECRET}", sender="root")
        mallory = Sender("test:mallory-1", "mallory", "mallory")
        self.assertResponseMatches("create account mallory", "Created", sender=mallory)
        old = self.say("who am i", sender=mallory)
        self.assertTrue(old.authenticated)
        self.assertResponseMatches("delete account mallory", "Deleted", sender="root")
        self.assertResponseMatches("create account bob", "Created", sender="bob")
        new = self.say("who am i", sender="bob")
        self.assertEqual(new.account, old.account)  # the same id, given again
        self.assertResponseMatches("link mallory on test to bob", "Linked", sender="root")
        after = self.say("who am i", sender=mallory)
        self.assertEqual(after.account, new.account)
        self.assertFalse(after.authenticated)
