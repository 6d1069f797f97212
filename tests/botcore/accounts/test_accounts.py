"""The account models and their API on every backend: the migration matches the models,
identities are unique ignoring case and created once under concurrency, permissions resolve
account -> source -> global -> no, and password hashes are salted and not reversible."""

from __future__ import annotations

import threading
from typing import Any

from sqlalchemy import MetaData, func, inspect, select
from twisted.trial.unittest import SynchronousTestCase

from botcore.accounts import models as accounts
from botcore.accounts.models import Account, AccountError, Identity
from botcore.accounts.permissions import Permissions
from botcore.accounts.secrets import find_secret, scrub
from botcore.db import migrate
from botcore.db.engine import make_session_factory
from botcore.event import Event, EventType, Sender
from botcore.options import options_of
from botcore.testing import backend_classes, fresh_engine

TABLES = ("accounts", "identities", "account_attributes", "credentials", "permissions")


class AccountStorageMixin:
    """Accounts on one backend."""

    backend: str

    def setUp(self) -> None:
        self.engine = fresh_engine(self, self.backend, migrated=True)
        self.sessions = make_session_factory(self.engine)

    def test_migration_matches_models(self) -> None:
        """Migration 0002 creates exactly the tables the models declare."""
        metadata = MetaData()
        for name in TABLES:
            accounts.Account.metadata.tables[name].to_metadata(metadata)
        self.assertEqual(migrate.compare(self.engine, metadata, include_name=_ours), [])

    def test_downgrade_and_upgrade(self) -> None:
        """Migration 0002 downgrades (dropping every accounts table) and upgrades again."""
        migrate.downgrade(self.engine, "0001")
        names = set(inspect(self.engine).get_table_names())
        self.assertEqual(names & set(TABLES), set())
        migrate.upgrade(self.engine, "0002")
        self.assertLessEqual(set(TABLES), set(inspect(self.engine).get_table_names()))

    def test_identity_unique_ignoring_case(self) -> None:
        """The same identity in another case is the same row."""
        with self.sessions() as session:
            first = accounts.identify(session, "irc", "Alice!a@host")
            session.commit()
            self.assertEqual(accounts.identify(session, "IRC", "alice!A@HOST").id, first.id)

    def test_concurrent_first_sight_creates_one_row(self) -> None:
        """Many threads seeing a new identity at once create exactly one row and all get
        its id."""
        count = 8
        barrier = threading.Barrier(count)
        ids: list[int] = []
        errors: list[BaseException] = []

        def thd() -> None:
            try:
                with self.sessions() as session:
                    barrier.wait(timeout=10)
                    row = accounts.identify(session, "irc", "newcomer")
                    ids.append(row.id)
                    session.commit()
            except BaseException as e:  # reported below
                errors.append(e)

        threads = [threading.Thread(target=thd) for _ in range(count)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        self.assertEqual(errors, [])
        self.assertEqual(len(set(ids)), 1)
        self.assertEqual(len(ids), count)
        with self.sessions() as session:
            rows = session.scalar(select(func.count()).select_from(Identity))
        self.assertEqual(rows, 1)

    def test_linking_across_sources(self) -> None:
        """Two identities on two sources linked to one account share its attributes and
        permission rows; identities_of and account_of find each other."""
        with self.sessions() as session:
            account = accounts.create_account(session, "alice")
            irc = accounts.identify(session, "irc", "alice")
            xmpp = accounts.identify(session, "xmpp", "alice@example.org")
            accounts.link(session, irc, account)
            accounts.link(session, xmpp, account)
            accounts.set_attribute(session, account.id, "tz", "UTC")
            accounts.set_permission(session, account.id, "deploy", "yes")
            session.commit()
            self.assertEqual(
                [(i.source, i.identity) for i in accounts.identities_of(session, account.id)],
                [("irc", "alice"), ("xmpp", "alice@example.org")],
            )
            self.assertEqual(accounts.account_of(session, xmpp.id).username, "alice")
            self.assertEqual(accounts.attributes_of(session, account.id), {"tz": "UTC"})
            accounts.delete_account(session, account)
            session.commit()
            self.assertIsNone(accounts.account_of(session, irc.id))
            self.assertEqual(accounts.permissions_of(session, account.id), {})

    def test_account_names_unique_ignoring_case(self) -> None:
        """A second account whose name differs only in case is refused."""
        with self.sessions() as session:
            accounts.create_account(session, "Alice")
            session.commit()
            self.assertRaises(AccountError, accounts.create_account, session, "aLICE")

    def test_lookalike_names_refused(self) -> None:
        """Once admin exists, names that display like it (Cyrillic a, dotless i, dotted
        capital I, fullwidth letters, a zero-width space) are refused, at creation and at
        renaming; a name is stored in NFKC and found in any compatibility form."""
        with self.sessions() as session:
            accounts.create_account(session, "admin")
            other = accounts.create_account(session, "\uff42\uff4f\uff42")
            session.commit()
            self.assertEqual(other.username, "bob")
            self.assertEqual(accounts.find_account(session, "\uff42ob").id, other.id)
            for name in ("\u0430dmin", "adm\u0131n", "ADM\u0130N", "admin\u200b", "adrnin"):
                self.assertRaises(AccountError, accounts.create_account, session, name)
                self.assertRaises(AccountError, accounts.rename_account, session, other, name)
            accounts.rename_account(session, other, "bobby")
            self.assertEqual(other.username, "bobby")
            session.commit()

    def test_resolution_with_account_rows(self) -> None:
        """The account's own row decides before the source and global options."""
        with self.sessions() as session:
            account = accounts.create_account(session, "alice")
            accounts.set_permission(session, account.id, "a", "no")
            accounts.set_permission(session, account.id, "b", "yes")
            accounts.set_permission(session, account.id, "c", "auth")
            session.commit()
            account_id = account.id
        auth = permissions(["+a -b"], permissions=["+a +b +c"])
        event = make_event(account_id, self.sessions)
        self.addCleanup(event.close_session)
        self.assertEqual(auth.resolve(event, "a"), (False, "account"))
        self.assertEqual(auth.resolve(event, "b"), (True, "account"))
        self.assertEqual(auth.resolve(event, "c"), (False, "account"))
        event.authenticated = True
        self.assertEqual(auth.resolve(event, "c"), (True, "account"))
        self.assertEqual(auth.resolve(event, "d"), (False, "default"))


backend_classes(AccountStorageMixin, globals(), "AccountStorageTests")


def _ours(name: str | None, type_: str, parent_names: dict[str, Any]) -> bool:
    if type_ == "table":
        return name in TABLES
    return True


def permissions(source: list[str] | None = None, **config: Any) -> Permissions:
    options = options_of(Permissions)
    parsed = {key: options[key].parse(" ".join(value)) for key, value in config.items()}
    return Permissions(parsed, lambda name: source or [])


def make_event(account: int | None = None, sessions: Any = None, authenticated=False) -> Event:
    event = Event(
        source="irc",
        type=EventType.MESSAGE,
        sender=Sender("irc", "alice", "alice"),
        account=account,
        authenticated=authenticated,
    )
    event._session_factory = sessions
    return event


class ResolutionTableTests(SynchronousTestCase):
    """Each level (source, global, default) with each value (yes, no, auth), and that the
    first level that speaks decides."""

    def test_table(self) -> None:
        """+perm is yes, -perm no, perm yes once authenticated; source before global."""
        cases = [
            # (source grant, global grant, authenticated, expected, level)
            ("+p", None, False, True, "source"),
            ("-p", "+p", True, False, "source"),
            ("p", None, False, False, "source"),
            ("p", "+p", True, True, "source"),
            (None, "+p", False, True, "global"),
            (None, "-p", True, False, "global"),
            (None, "p", False, False, "global"),
            (None, "p", True, True, "global"),
            (None, None, True, False, "default"),
        ]
        for source, global_, authenticated, expected, level in cases:
            auth = permissions(
                [source] if source else [], permissions=[global_] if global_ else []
            )
            event = make_event(authenticated=authenticated)
            self.assertEqual(
                auth.resolve(event, "p"), (expected, level), (source, global_, authenticated)
            )


class StateTests(SynchronousTestCase):
    """What a config reload keeps."""

    def test_reload_keeps_connections_and_clears_caches(self) -> None:
        """A new Permissions built from the old keeps authenticated connections and failed
        attempts but forgets cached rows (changed outside the bot, perhaps)."""
        old = permissions()
        event = make_event(account=1)
        old.remember(event, 1, now=0.0)
        old.failed(("irc", "alice"), now=0.0)
        old.state.permissions[1] = ({"a": "yes"}, float("inf"))
        new = Permissions({}, None, old)
        self.assertTrue(new.remembered(event, now=10.0))
        self.assertFalse(new.remembered(event, now=3601.0))
        self.assertEqual(len(new.state.failures), 1)
        self.assertEqual(new.state.permissions, {})


class PasswordTests(SynchronousTestCase):
    """argon2id hashes."""

    def test_hashes_salted_and_not_reversible(self) -> None:
        """Two hashes of one password differ, hold no plaintext, verify only the right
        password, and are argon2id."""
        one, two = accounts.hash_password("hunter2"), accounts.hash_password("hunter2")
        self.assertNotEqual(one, two)
        for hashed in (one, two):
            self.assertTrue(hashed.startswith("$argon2id$"))
            self.assertNotIn("hunter2", hashed)
            self.assertTrue(accounts.verify_password(hashed, "hunter2"))
            self.assertFalse(accounts.verify_password(hashed, "hunter3"))
        self.assertFalse(accounts.verify_password("not a hash", "hunter2"))


class ScrubTests(SynchronousTestCase):
    """Finding and removing secrets in text."""

    def test_commands_with_secrets(self) -> None:
        """Each secret-carrying command loses its secret, addressed or not."""
        for text in (
            "auth s3cret",
            "botcore: auth s3cret",
            "authenticate alice on irc using password s3cret words",
            "set my password to s3cret",
            "set password on irc s3cret",
            "create account bob password s3cret",
            "link token s3cret",
        ):
            scrubbed, secret = find_secret(text)
            self.assertNotIn("s3cret", scrubbed)
            self.assertIn("s3cret", secret)
            self.assertNotIn("s3cret", scrub(text))

    def test_other_text_untouched(self) -> None:
        """Ordinary text, and words merely containing 'auth', are left alone."""
        for text in ("author is here", "hello", "the auth"):
            self.assertIsNone(find_secret(text))
            self.assertEqual(scrub(text), text)


class AccountErrorTests(SynchronousTestCase):
    """Bad names are clear errors."""

    def test_bad_names(self) -> None:
        """Empty and spaced usernames are refused with AccountError before any query."""
        self.assertRaises(AccountError, accounts.create_account, None, "")
        self.assertRaises(AccountError, accounts.create_account, None, "two words")
        self.assertIsInstance(Account(username="x"), Account)


class CacheTests(SynchronousTestCase):
    """Identities and permission rows are cached for cache_time, cleared by a change made
    through the bot, and never keep a row read before such a clearing."""

    def setUp(self) -> None:
        from twisted.internet.task import Clock

        self.engine = fresh_engine(self, "sqlite", migrated=True)
        self.sessions = make_session_factory(self.engine)
        self.clock = Clock()
        with self.sessions() as session:
            self.account = accounts.create_account(session, "alice").id
            accounts.set_permission(session, self.account, "op", "yes")
            session.commit()
        self.auth = self.make(cache_time=["300"])
        self.reads = 0

        def counted(connection, cursor, statement, *rest) -> None:
            if "FROM permissions" in statement:
                self.reads += 1

        from sqlalchemy import event as sa_event

        sa_event.listen(self.engine, "before_cursor_execute", counted)
        self.addCleanup(sa_event.remove, self.engine, "before_cursor_execute", counted)

    def make(self, **config: Any) -> Permissions:
        options = options_of(Permissions)
        parsed = {key: options[key].parse(" ".join(value)) for key, value in config.items()}
        return Permissions(parsed, None, clock=self.clock.seconds)

    def rows(self, auth: Permissions | None = None) -> dict[str, str]:
        with self.sessions() as session:
            return (auth or self.auth).account_permissions(session, self.account)

    def change_outside(self, value: str) -> None:
        """Another process changes the row: the bot is not told (its reads not counted)."""
        reads = self.reads
        with self.sessions() as session:
            accounts.set_permission(session, self.account, "op", value)
            session.commit()
        self.reads = reads

    def test_cached_for_cache_time(self) -> None:
        """A change made outside the bot is seen once cache_time has passed, not before;
        the rows are read once in that time."""
        self.assertEqual(self.rows(), {"op": "yes"})
        self.change_outside("no")
        self.clock.advance(299)
        self.assertEqual(self.rows(), {"op": "yes"})
        self.assertEqual(self.reads, 1)
        self.clock.advance(1)
        self.assertEqual(self.rows(), {"op": "no"})
        self.assertEqual(self.reads, 2)

    def test_no_cache(self) -> None:
        """cache_time = 0 reads the rows every time."""
        auth = self.make(cache_time=["0"])
        self.rows(auth)
        self.change_outside("no")
        self.assertEqual(self.rows(auth), {"op": "no"})
        self.assertEqual(self.reads, 2)

    def test_change_through_the_bot_clears(self) -> None:
        """invalidate(session) clears the caches at once and again when the change
        commits: the next check reads the new row."""
        self.assertEqual(self.rows(), {"op": "yes"})
        with self.sessions() as session:
            accounts.set_permission(session, self.account, "op", "no")
            self.auth.invalidate(session)
            session.commit()
        self.assertEqual(self.rows(), {"op": "no"})

    def test_row_read_before_a_clearing_not_kept(self) -> None:
        """A row read while another thread's change commits (the clearing comes between
        the read and the caching) is used once but not cached."""
        from sqlalchemy import event as sa_event

        done: list[bool] = []

        def change_meanwhile(connection, cursor, statement, *rest) -> None:
            if "FROM permissions" in statement and not done:
                done.append(True)
                self.auth.invalidate()  # the other thread's commit, right after our read

        sa_event.listen(self.engine, "after_cursor_execute", change_meanwhile)
        self.addCleanup(sa_event.remove, self.engine, "after_cursor_execute", change_meanwhile)
        self.assertEqual(self.rows(), {"op": "yes"})
        self.change_outside("no")
        self.assertEqual(self.rows(), {"op": "no"}, "the first read was not cached")

    def test_identities_expire_and_clear(self) -> None:
        """A known identity is answered from the cache until cache_time or a clearing."""
        with self.sessions() as session:
            accounts.identify(session, "irc", "bob")
            session.commit()
            found = self.auth.identity_of(session, "irc", "bob")
        self.assertEqual(self.auth.known_identity("IRC", "BOB"), found)
        self.clock.advance(300)
        self.assertIsNone(self.auth.known_identity("irc", "bob"))
        with self.sessions() as session:
            self.auth.identity_of(session, "irc", "bob")
        self.auth.invalidate()
        self.assertIsNone(self.auth.known_identity("irc", "bob"))
