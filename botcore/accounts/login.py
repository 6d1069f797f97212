"""Logging in at the door: who a nick belongs to on a source (an account, or an account's
nick it merely looks like), and a password check for it, slowed down like every other
attempt. For sources where people choose their own nick (the console). Worker thread."""

from __future__ import annotations

from dataclasses import dataclass
from math import ceil
from typing import TYPE_CHECKING

from sqlalchemy import select

from botcore.accounts import models as accounts
from botcore.accounts.names import skeleton

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from botcore.accounts.permissions import Permissions
    from botcore.event import Event

#: Account-linked nicks of one source compared for look-alikes at most (newest first).
MAX_COMPARED = 10000


@dataclass(frozen=True)
class NickOwner:
    """Whose a nick is on a source: the account its identity is linked to (None: nobody's)
    and whether that account has a password usable there; or, for a nick of nobody's,
    the account-linked nick it looks like (``looks_like``)."""

    account: int | None = None
    username: str | None = None
    has_password: bool = False
    looks_like: str | None = None


def nick_owner(session: Session, source: str, nick: str) -> NickOwner:
    """Who ``nick`` on ``source`` belongs to (see `NickOwner`). The same nick in other
    case is the same identity, so it belongs to the same account; a different nick with
    the same look (UTS #39 skeleton: a Cyrillic a for the Latin one, ``rn`` for ``m``)
    looks like it."""
    identity = accounts.find_identity(session, source, nick)
    if identity is not None and identity.account_id is not None:
        account = session.get(accounts.Account, identity.account_id)
        if account is not None:
            passwords = [
                credential
                for credential in accounts.credentials_of(session, account.id, "password")
                if credential.source is None or credential.source.casefold() == source.casefold()
            ]
            return NickOwner(account.id, account.username, bool(passwords))
    look = skeleton(nick)
    linked = session.scalars(
        select(accounts.Identity.identity)
        .where(accounts.Identity.source == source, accounts.Identity.account_id.is_not(None))
        .order_by(accounts.Identity.id.desc())
        .limit(MAX_COMPARED)
    )
    for other in linked:
        if other.casefold() != nick.casefold() and skeleton(other) == look:
            return NickOwner(looks_like=other)
    return NickOwner()


def password_login(
    session: Session, auth: Permissions, event: Event, account: int, secret: str, now: float
) -> str | None:
    """Check ``secret`` as the password of ``account`` for the event's sender and, when it
    is right, remember their connection as authenticated: None then, else why not, in
    words for them. Counted and slowed down as every attempt is (their connection, their
    address, the account), and within ``[auth] max_checks``."""
    wait, what = auth.attempt_wait(event, account, now)
    if wait > 0:
        return f"too many failed attempts {what}; try again in {ceil(wait)} seconds"
    key = auth.connection_key(event)
    if not auth.start_check(key):
        return "I'm busy checking other passwords; try again in a moment"
    try:
        ok = accounts.check_credentials(session, account, event.source, "password", secret)
    finally:
        auth.end_check(key)
    if not ok:
        auth.attempt_failed(event, account, now)
        return "that is not its password"
    auth.attempt_succeeded(event, account, now)
    auth.remember(event, account, now)
    return None
