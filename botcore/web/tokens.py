"""API tokens: bearer secrets that belong to an account, for the HTTP front door. A token
is shown once when made; only its SHA-256 digest is stored (it is 256 random bits, so a
slow hash would add nothing), and it can be listed (without its secret) and revoked.

Everything here takes a session and leaves committing to the caller (worker thread)."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import datetime

from sqlalchemy import Boolean, ForeignKey, Integer, String, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from botcore.accounts.models import Account, AccountError
from botcore.db.engine import mark_written
from botcore.db.models import Base
from botcore.db.types import UTCDateTime, utcnow

#: What every token starts with, so that a leaked one is recognisable (secret scanners).
PREFIX = "bct_"
MAX_LABEL = 64
#: Tokens one account may hold (revoked ones not counted).
MAX_TOKENS = 50


class APIToken(Base):
    """One token of an account: a label, the digest of its secret, and whether it was
    revoked (a revoked token is kept, so its listing says so)."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    account_id: Mapped[int] = mapped_column(
        ForeignKey("accounts.id", ondelete="CASCADE"), index=True
    )
    label: Mapped[str] = mapped_column(String(MAX_LABEL))
    #: sha256 of the whole token, hex.
    digest: Mapped[str] = mapped_column(String(64), unique=True)
    created: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    revoked: Mapped[bool] = mapped_column(Boolean, default=False)


def digest_of(token: str) -> str:
    """The stored form of ``token``."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def create_token(session: Session, account_id: int, label: str) -> tuple[APIToken, str]:
    """A new token for the account: (its row, the secret, to be shown once and never
    again). `AccountError` for a bad label or too many tokens."""
    label = label.strip()
    if not label:
        raise AccountError("a token needs a label (what it is for)")
    if len(label) > MAX_LABEL or any(not char.isprintable() for char in label):
        raise AccountError(f"a token's label is at most {MAX_LABEL} printable characters")
    live = [row for row in tokens_of(session, account_id) if not row.revoked]
    if len(live) >= MAX_TOKENS:
        raise AccountError(f"an account holds at most {MAX_TOKENS} tokens; revoke one first")
    secret = PREFIX + secrets.token_urlsafe(32)
    row = APIToken(account_id=account_id, label=label, digest=digest_of(secret))
    session.add(row)
    session.flush()
    mark_written(session)
    return row, secret


def tokens_of(session: Session, account_id: int) -> list[APIToken]:
    """The account's tokens, oldest first (revoked ones too)."""
    return list(
        session.scalars(
            select(APIToken).where(APIToken.account_id == account_id).order_by(APIToken.id)
        )
    )


def revoke_token(session: Session, account_id: int, token_id: int) -> bool:
    """Revoke the account's token ``token_id``; False when it has no such live token."""
    row = session.get(APIToken, token_id)
    if row is None or row.account_id != account_id or row.revoked:
        return False
    row.revoked = True
    session.flush()
    mark_written(session)
    return True


def account_of_token(session: Session, token: str) -> tuple[APIToken, Account] | None:
    """The live token ``token`` and its account, or None (unknown, revoked, or not a
    token at all)."""
    if not token.startswith(PREFIX) or len(token) > 200:
        return None
    wanted = digest_of(token)
    row = session.scalars(select(APIToken).where(APIToken.digest == wanted)).one_or_none()
    # The lookup is by digest; compared again in constant time all the same.
    if row is None or row.revoked or not hmac.compare_digest(row.digest, wanted):
        return None
    account = session.get(Account, row.account_id)
    if account is None:
        return None
    return row, account
