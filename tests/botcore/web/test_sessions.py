"""Dashboard sessions in the database, on a migrated SQLite file with a clock given by
the test: made, found by id (stored hashed), renewed at most once a minute, expired,
ended, and bounded per account."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import select
from twisted.trial.unittest import SynchronousTestCase

from botcore.accounts import models as accounts
from botcore.db.engine import make_session_factory
from botcore.testing import fresh_engine
from botcore.web import sessions
from botcore.web.sessions import WebSession

T0 = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)
LIFE = 3600.0


class SessionTests(SynchronousTestCase):
    def setUp(self) -> None:
        engine = fresh_engine(self, "sqlite", migrated=True)
        self.factory = make_session_factory(engine)
        with self.factory() as session:
            self.account = accounts.create_account(session, "alice").id
            session.commit()

    def create(self, now: datetime = T0) -> str:
        with self.factory() as session:
            _, sid = sessions.create_session(session, self.account, "web", now, LIFE)
            session.commit()
            return sid

    def find(self, sid: str, now: datetime, source: str = "web") -> WebSession | None:
        with self.factory() as session:
            found = sessions.find_session(session, sid, source, now, LIFE)
            session.commit()
            if found is None:
                return None
            session.expunge(found[0])
            return found[0]

    def test_found_by_id_stored_hashed(self) -> None:
        """A session is found by its id on its own source only; the id is not stored."""
        sid = self.create()
        row = self.find(sid, T0)
        self.assertIsNotNone(row)
        self.assertEqual(row.digest, sessions.digest_of(sid))
        self.assertNotEqual(row.digest, sid)
        self.assertIsNone(self.find(sid, T0, source="other"))
        self.assertIsNone(self.find("x" + sid, T0))

    def test_renewed_at_most_once_a_minute(self) -> None:
        """Use pushes the expiry on to a lifetime from then, written once a minute."""
        sid = self.create()
        self.assertEqual(
            self.find(sid, T0 + timedelta(seconds=30)).expires, T0 + timedelta(seconds=LIFE)
        )
        later = T0 + timedelta(seconds=90)
        self.assertEqual(self.find(sid, later).expires, later + timedelta(seconds=LIFE))

    def test_expired(self) -> None:
        """Past its expiry a session is not found, and its row is deleted."""
        sid = self.create()
        self.assertIsNone(self.find(sid, T0 + timedelta(seconds=LIFE)))
        with self.factory() as session:
            self.assertEqual(list(session.scalars(select(WebSession))), [])

    def test_ended(self) -> None:
        """Ending a session deletes it; ending it again says there was none."""
        sid = self.create()
        with self.factory() as session:
            self.assertTrue(sessions.end_session(session, sid))
            self.assertFalse(sessions.end_session(session, sid))
            session.commit()
        self.assertIsNone(self.find(sid, T0))

    def test_bounded_per_account(self) -> None:
        """An account keeps at most MAX_PER_ACCOUNT sessions: the oldest go first."""
        sids = [self.create() for _ in range(sessions.MAX_PER_ACCOUNT + 2)]
        self.assertIsNone(self.find(sids[0], T0))
        self.assertIsNone(self.find(sids[1], T0))
        self.assertIsNotNone(self.find(sids[2], T0))
        self.assertIsNotNone(self.find(sids[-1], T0))
