"""Accounts and identities: who a person is across networks, their attributes, credentials
and permission rows, and the calls plugins use to look them up (worker thread, with a session).

A person has one `Account`, linked to many `Identity` rows (one per network name they use);
everything here takes the event's session and leaves committing to the dispatcher."""

from __future__ import annotations

import fnmatch
import unicodedata
from datetime import datetime
from functools import cache
from typing import TYPE_CHECKING

from sqlalchemy import (
    ForeignKey,
    Integer,
    String,
    UniqueConstraint,
    bindparam,
    delete,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, Session, mapped_column

from botcore.accounts import names
from botcore.db.engine import mark_written
from botcore.db.models import Base
from botcore.db.types import CIText, UTCDateTime, utcnow

if TYPE_CHECKING:
    from argon2 import PasswordHasher

MAX_NAME = 64
MAX_IDENTITY = 255
MAX_VALUE = 1024

#: The values a permission row can hold: always, never, once authenticated.
PERMISSION_VALUES = ("yes", "no", "auth")

#: Authentication methods a credential can name.
METHODS = ("password", "hostmask")


class Account(Base):
    """One person (or bot): a unique, case-insensitive username."""

    __tablename__ = "accounts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    username: Mapped[str] = mapped_column(CIText(MAX_NAME), unique=True)
    created: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    #: The name the person chose to be shown under (a bridge's relayed messages), or
    #: None for their username.
    display_name: Mapped[str | None] = mapped_column(String(MAX_NAME), nullable=True)


class Identity(Base):
    """A name on one source (an IRC services account or mask, a telnet nick), optionally
    linked to an account. (source, identity) is unique, ignoring case."""

    __tablename__ = "identities"
    __table_args__ = (UniqueConstraint("source", "identity"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    source: Mapped[str] = mapped_column(CIText(MAX_NAME))
    identity: Mapped[str] = mapped_column(CIText(MAX_IDENTITY))
    account_id: Mapped[int | None] = mapped_column(
        ForeignKey("accounts.id", ondelete="SET NULL"), nullable=True, index=True
    )
    created: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class Attribute(Base):
    """A named value of an account (timezone, email...); names are unique per account."""

    __tablename__ = "account_attributes"
    __table_args__ = (UniqueConstraint("account_id", "name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(CIText(MAX_NAME))
    value: Mapped[str] = mapped_column(String(MAX_VALUE))


class Credential(Base):
    """A way to prove one is an account's owner: ``method`` (password, hostmask) with its
    ``secret`` (an argon2id hash for passwords, a glob for hostmasks), on one source or,
    with ``source`` NULL, on any."""

    __tablename__ = "credentials"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    account_id: Mapped[int] = mapped_column(
        ForeignKey("accounts.id", ondelete="CASCADE"), index=True
    )
    source: Mapped[str | None] = mapped_column(CIText(MAX_NAME), nullable=True)
    method: Mapped[str] = mapped_column(String(16))
    secret: Mapped[str] = mapped_column(String(MAX_IDENTITY))


class Permission(Base):
    """An account's own value (yes, no, auth) for one permission name."""

    __tablename__ = "permissions"
    __table_args__ = (UniqueConstraint("account_id", "name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(CIText(MAX_NAME))
    value: Mapped[str] = mapped_column(String(4))


class AccountError(ValueError):
    """A request about accounts that cannot be done, with a message fit for the user."""


# -- identities ------------------------------------------------------------------------

# The lookups made for ordinary traffic, built once: building a statement over CIText
# columns and working out its cache key cost several times what running it does.
_FIND_IDENTITY = select(Identity).where(
    Identity.source == bindparam("p_source"), Identity.identity == bindparam("p_identity")
)
_FIND_ACCOUNT = select(Account).where(Account.username == bindparam("p_username"))


def find_identity(session: Session, source: str, identity: str) -> Identity | None:
    """The identity row for ``identity`` on ``source`` (ignoring case), or None."""
    return session.scalars(
        _FIND_IDENTITY, {"p_source": source, "p_identity": identity}
    ).one_or_none()


def identify(session: Session, source: str, identity: str) -> Identity:
    """The identity row, created on first sight. Safe under concurrency: when another
    thread (or process) inserts the same identity first, the unique constraint refuses
    ours, the savepoint is rolled back and the winner's row is read instead."""
    found = find_identity(session, source, identity)
    if found is not None:
        return found
    _check("source", source, MAX_NAME)
    _check("identity", identity, MAX_IDENTITY)
    row = Identity(source=source, identity=identity)
    try:
        with session.begin_nested():
            session.add(row)
    except IntegrityError:
        # A locking read sees the winner's committed row even where the transaction's
        # snapshot predates it (MariaDB's REPEATABLE READ).
        found = session.scalars(
            select(Identity)
            .where(Identity.source == source, Identity.identity == identity)
            .with_for_update(read=True)
        ).one_or_none()
        if found is None:
            raise
        return found
    mark_written(session)
    return row


def identities_of(session: Session, account_id: int) -> list[Identity]:
    """Every identity linked to the account, by source then name."""
    return list(
        session.scalars(
            select(Identity)
            .where(Identity.account_id == account_id)
            .order_by(Identity.source, Identity.identity)
        )
    )


def account_of(session: Session, identity_id: int) -> Account | None:
    """The account the identity is linked to, or None."""
    identity = session.get(Identity, identity_id)
    if identity is None or identity.account_id is None:
        return None
    return session.get(Account, identity.account_id)


def link(session: Session, identity: Identity, account: Account) -> None:
    """Link ``identity`` to ``account`` (moving it from any other account)."""
    identity.account_id = account.id
    mark_written(session)


def unlink(session: Session, identity: Identity) -> None:
    """Detach ``identity`` from its account."""
    identity.account_id = None
    mark_written(session)


# -- accounts ------------------------------------------------------------------------


def find_account(session: Session, username: str) -> Account | None:
    """The account called ``username`` (ignoring case, in NFKC), or None."""
    username = unicodedata.normalize("NFKC", username)
    return session.scalars(_FIND_ACCOUNT, {"p_username": username}).one_or_none()


def acceptable_username(session: Session, username: str, account_id: int | None = None) -> str:
    """``username`` normalised (`botcore.accounts.names.normalise`); `AccountError` when
    it is not acceptable, taken, or looks like the name of an account other than
    ``account_id``."""
    _check("username", username, MAX_NAME)
    try:
        username = names.normalise(username)
    except names.UnclearName as e:
        raise AccountError(f"I can't use that name: {e}") from None
    _check("username", username, MAX_NAME)
    looks = names.skeleton(username)
    for other_id, other in session.execute(select(Account.id, Account.username)):
        if other_id == account_id:
            continue
        if other.casefold() == username.casefold():
            raise AccountError(f"there is already an account called {other}")
        if names.skeleton(other) == looks:
            raise AccountError(f"{username} looks too much like the account {other}")
    return username


def create_account(session: Session, username: str) -> Account:
    """A new account; `AccountError` when the name is taken or not acceptable."""
    username = acceptable_username(session, username)
    account = Account(username=username)
    try:
        with session.begin_nested():
            session.add(account)
    except IntegrityError:
        raise AccountError(f"there is already an account called {username}") from None
    mark_written(session)
    return account


def rename_account(session: Session, account: Account, username: str) -> None:
    """Give ``account`` a new username; `AccountError` when it is taken or not
    acceptable."""
    username = acceptable_username(session, username, account.id)
    account.username = username
    mark_written(session)


def delete_account(session: Session, account: Account) -> None:
    """Delete the account, its attributes, credentials and permissions; its identities
    stay, unlinked."""
    for model in (Attribute, Credential, Permission):
        session.execute(delete(model).where(model.account_id == account.id))
    session.execute(
        update(Identity).where(Identity.account_id == account.id).values(account_id=None)
    )
    session.delete(account)
    session.flush()
    mark_written(session)


# -- display names ---------------------------------------------------------------------


def shown_name(account: Account) -> str:
    """What the person is shown as: their display name, else their username."""
    return account.display_name or account.username


def set_display_name(session: Session, account: Account, name: str | None) -> str | None:
    """Give ``account`` the display name ``name`` (None: none, their username is shown);
    returns it normalised (`botcore.accounts.names.normalise`, each word; single spaces
    between words). `AccountError` when it is
    not acceptable, or is or looks like another account's username or display name (one
    person must not be shown as another)."""
    if name is None:
        account.display_name = None
        mark_written(session)
        return None
    _check("display name", name, MAX_NAME)
    try:
        # Words may be separated by single spaces; taken together they are one name
        # (one script, no invisible characters).
        words = name.split()
        names.normalise("".join(words))
        name = " ".join(names.normalise(word) for word in words)
    except names.UnclearName as e:
        raise AccountError(f"I can't use that name: {e}") from None
    _check("display name", name, MAX_NAME)
    looks = names.skeleton(name.replace(" ", ""))
    rows = session.execute(select(Account.id, Account.username, Account.display_name))
    for other_id, username, display in rows:
        if other_id == account.id:
            continue
        for other in (username, display):
            if other and names.skeleton(other.replace(" ", "")) == looks:
                raise AccountError(f"{name} is, or looks too much like, the name of {username}")
    account.display_name = name
    mark_written(session)
    return name


# -- attributes ------------------------------------------------------------------------


def attributes_of(session: Session, account_id: int) -> dict[str, str]:
    """The account's attributes, name -> value."""
    rows = session.scalars(select(Attribute).where(Attribute.account_id == account_id))
    return {row.name: row.value for row in rows}


def set_attribute(session: Session, account_id: int, name: str, value: str | None) -> None:
    """Set (or, with None, remove) one attribute."""
    _check("attribute name", name, MAX_NAME)
    row = session.scalars(
        select(Attribute).where(Attribute.account_id == account_id, Attribute.name == name)
    ).one_or_none()
    if value is None:
        if row is not None:
            session.delete(row)
    else:
        _check("value", value, MAX_VALUE)
        if row is None:
            session.add(Attribute(account_id=account_id, name=name, value=value))
        else:
            row.value = value
    session.flush()
    mark_written(session)


# -- permissions ---------------------------------------------------------------------


def permissions_of(session: Session, account_id: int) -> dict[str, str]:
    """The account's own permission rows, name (lower case) -> yes / no / auth."""
    rows = session.scalars(select(Permission).where(Permission.account_id == account_id))
    return {row.name.lower(): row.value for row in rows}


def set_permission(session: Session, account_id: int, name: str, value: str | None) -> None:
    """Set the account's row for ``name`` to yes, no or auth, or remove it (None)."""
    if value is not None and value not in PERMISSION_VALUES:
        raise AccountError(f"a permission is yes, no or auth, not {value!r}")
    _check("permission", name, MAX_NAME)
    row = session.scalars(
        select(Permission).where(Permission.account_id == account_id, Permission.name == name)
    ).one_or_none()
    if value is None:
        if row is not None:
            session.delete(row)
    elif row is None:
        session.add(Permission(account_id=account_id, name=name, value=value))
    else:
        row.value = value
    session.flush()
    mark_written(session)


# -- credentials ---------------------------------------------------------------------


@cache
def _hasher() -> PasswordHasher:
    from argon2 import PasswordHasher

    # argon2id with the library's defaults (RFC 9106's second recommended profile); each
    # hash carries its own random 16-byte salt and its parameters.
    return PasswordHasher()


def hash_password(secret: str) -> str:
    """An argon2id hash of ``secret`` (with its own random salt), in PHC string form."""
    return _hasher().hash(secret)


def verify_password(hashed: str, secret: str) -> bool:
    """Whether ``secret`` matches ``hashed`` (argon2's constant-time comparison)."""
    from argon2.exceptions import InvalidHashError, VerificationError

    try:
        return _hasher().verify(hashed, secret)
    except (VerificationError, InvalidHashError):
        return False


def credentials_of(
    session: Session, account_id: int, method: str | None = None
) -> list[Credential]:
    """The account's credentials (of one method)."""
    query = select(Credential).where(Credential.account_id == account_id)
    if method is not None:
        query = query.where(Credential.method == method)
    return list(session.scalars(query.order_by(Credential.id)))


def add_credential(
    session: Session, account_id: int, method: str, secret: str, source: str | None = None
) -> Credential:
    """Store a credential; a password is stored as its argon2id hash only (and replaces
    the account's earlier password for the same source)."""
    if method not in METHODS:
        raise AccountError(f"unknown method {method!r} (known: {', '.join(METHODS)})")
    if not secret:
        raise AccountError("the secret cannot be empty")
    if method == "password":
        for old in credentials_of(session, account_id, "password"):
            if (old.source or "").lower() == (source or "").lower():
                session.delete(old)
        stored = hash_password(secret)
    else:
        _check("hostmask", secret, MAX_IDENTITY)
        stored = secret
    row = Credential(account_id=account_id, method=method, secret=stored, source=source)
    session.add(row)
    session.flush()
    mark_written(session)
    return row


def check_credentials(
    session: Session,
    account_id: int,
    source: str,
    method: str,
    secret: str,
) -> bool:
    """Whether ``secret`` proves ownership of the account by ``method`` on ``source``
    (a credential for that source or for any source). For ``hostmask`` the secret is the
    sender's ``nick!user@host``."""
    for credential in credentials_of(session, account_id, method):
        if credential.source is not None and credential.source.lower() != source.lower():
            continue
        if method == "password" and verify_password(credential.secret, secret):
            return True
        if method == "hostmask" and fnmatch.fnmatchcase(secret.lower(), credential.secret.lower()):
            return True
    return False


def _check(what: str, text: str, limit: int) -> None:
    if not isinstance(text, str) or not text.strip():
        raise AccountError(f"the {what} cannot be empty")
    if len(text) > limit:
        raise AccountError(f"the {what} is longer than {limit} characters")
