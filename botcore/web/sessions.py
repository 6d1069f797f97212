"""Dashboard sessions of the HTTP front door, in the database so that a login outlives a
restart of the bot and a reload of the web source: the SHA-256 digest of the session id
(never the id), its account, the front door it was made on, its CSRF token and when it
expires. Logging out deletes the row; expired rows are deleted as new logins come.

Everything here takes a session and leaves committing to the caller (worker thread)."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import datetime, timedelta

from sqlalchemy import ForeignKey, Integer, String, delete, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from botcore.accounts.models import Account
from botcore.db.engine import mark_written
from botcore.db.models import Base
from botcore.db.types import UTCDateTime, utcnow

#: Live sessions one account may hold on one front door (the oldest go first).
MAX_PER_ACCOUNT = 20
MAX_SOURCE = 100
#: Seconds between writes of a session's pushed-on expiry.
RENEW_EVERY = 60.0


class WebSession(Base):
    """One dashboard login."""

    __tablename__ = "web_sessions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    #: sha256 of the session id (the cookie's value), hex.
    digest: Mapped[str] = mapped_column(String(64), unique=True)
    account_id: Mapped[int] = mapped_column(
        ForeignKey("accounts.id", ondelete="CASCADE"), index=True
    )
    #: The web source it was made on: a session is good there only.
    source: Mapped[str] = mapped_column(String(MAX_SOURCE))
    csrf: Mapped[str] = mapped_column(String(64))
    created: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    expires: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)


def digest_of(sid: str) -> str:
    return hashlib.sha256(sid.encode("utf-8")).hexdigest()


def create_session(
    session: Session, account_id: int, source: str, now: datetime, lifetime: float
) -> tuple[WebSession, str]:
    """A new session of the account on ``source``, lasting ``lifetime`` seconds unless
    used: (its row, the session id for the cookie, never stored). Expired sessions go,
    and the account's oldest beyond `MAX_PER_ACCOUNT`."""
    session.execute(delete(WebSession).where(WebSession.expires <= now))
    live = list(
        session.scalars(
            select(WebSession)
            .where(WebSession.account_id == account_id, WebSession.source == source)
            .order_by(WebSession.id)
        )
    )
    for old in live[: max(0, len(live) - MAX_PER_ACCOUNT + 1)]:
        session.delete(old)
    sid = secrets.token_urlsafe(32)
    row = WebSession(
        digest=digest_of(sid),
        account_id=account_id,
        source=source,
        csrf=secrets.token_urlsafe(24),
        created=now,
        expires=now + timedelta(seconds=lifetime),
    )
    session.add(row)
    session.flush()
    mark_written(session)
    return row, sid


def find_session(
    session: Session, sid: str, source: str, now: datetime, lifetime: float
) -> tuple[WebSession, Account] | None:
    """The live session ``sid`` on ``source`` and its account, or None; its expiry is
    pushed on to ``lifetime`` from now (written at most once per `RENEW_EVERY` seconds,
    so that a dashboard that polls does not write on every request)."""
    if not sid or len(sid) > 200:
        return None
    wanted = digest_of(sid)
    row = session.scalars(select(WebSession).where(WebSession.digest == wanted)).one_or_none()
    if row is None or row.source != source or not hmac.compare_digest(row.digest, wanted):
        return None
    if row.expires <= now:
        session.delete(row)
        session.flush()
        mark_written(session)
        return None
    account = session.get(Account, row.account_id)
    if account is None:
        return None
    if now + timedelta(seconds=lifetime) - row.expires >= timedelta(
        seconds=min(RENEW_EVERY, lifetime / 2)
    ):
        row.expires = now + timedelta(seconds=lifetime)
        session.flush()
        mark_written(session)
    return row, account


def end_session(session: Session, sid: str) -> bool:
    """Delete the session ``sid`` (logout); False when there was none."""
    result = session.execute(delete(WebSession).where(WebSession.digest == digest_of(sid)))
    mark_written(session)
    return bool(getattr(result, "rowcount", 0))
