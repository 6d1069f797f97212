"""Tests for botcore.accounts.login: whose a nick is on a source (an account, with or
without a password usable there, or a look-alike of an account's nick), and the password
check at the door, counted and slowed down like every attempt."""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from botcore.accounts import models as accounts
from botcore.accounts.login import NickOwner, nick_owner, password_login
from botcore.accounts.permissions import Permissions
from botcore.db.engine import make_session_factory
from botcore.event import Event, EventType, Sender
from botcore.testing import fresh_engine

SECRET = "correct-horse-battery-staple"


class LoginTests(SynchronousTestCase):
    """On SQLite."""

    def setUp(self) -> None:
        self.sessions = make_session_factory(fresh_engine(self, "sqlite", migrated=True))
        with self.sessions() as session:
            admin = accounts.create_account(session, "admin")
            accounts.link(session, accounts.identify(session, "console", "admin"), admin)
            accounts.add_credential(session, admin.id, "password", SECRET)
            carol = accounts.create_account(session, "carol")
            accounts.link(session, accounts.identify(session, "console", "carol"), carol)
            accounts.add_credential(session, carol.id, "password", SECRET, "irc")
            accounts.identify(session, "console", "bob")
            session.commit()
            self.admin, self.carol = admin.id, carol.id

    def test_nick_owner(self) -> None:
        """A linked nick (in any case) is its account's, with whether a password works
        here; an unlinked one is nobody's; a look-alike of a linked one says which."""
        with self.sessions() as session:
            self.assertEqual(
                nick_owner(session, "console", "ADMIN"), NickOwner(self.admin, "admin", True)
            )
            # carol's only password is for irc.
            self.assertEqual(
                nick_owner(session, "console", "carol"), NickOwner(self.carol, "carol", False)
            )
            self.assertEqual(nick_owner(session, "console", "bob"), NickOwner())
            self.assertEqual(nick_owner(session, "console", "newcomer"), NickOwner())
            self.assertEqual(
                nick_owner(session, "console", "adm\u0131n"), NickOwner(looks_like="admin")
            )
            self.assertEqual(nick_owner(session, "irc", "adm\u0131n"), NickOwner())

    def test_password_login(self) -> None:
        """The right password remembers the connection as authenticated; a wrong one is
        counted, and past the free failures the next attempt waits, with why."""
        auth = Permissions({"max_failures": 2})

        def login(connection: str) -> Event:
            return Event(
                source="console",
                type=EventType.MESSAGE,
                sender=Sender(connection, "admin", "admin"),
                data={"address": "192.0.2.1"},
            )

        with self.sessions() as session:
            for _ in range(2):
                self.assertEqual(
                    password_login(session, auth, login("c1"), self.admin, "nope", 0.0),
                    "that is not its password",
                )
            self.assertEqual(
                password_login(session, auth, login("c1"), self.admin, SECRET, 1.0),
                "too many failed attempts from here; try again in 9 seconds",
            )
            event = login("c2")
            self.assertIsNone(password_login(session, auth, event, self.admin, SECRET, 1.0))
            event.account = self.admin
            self.assertTrue(auth.remembered(event, 2.0))
            self.assertEqual(auth.state.checking, set())
