"""Leaves messages for people who are not around: ``tell <who> [on <source>] <text>`` (or
``pm <who> <text>`` / ``msg <who> <text>`` for a private one) is passed on when they next
say something, wherever they are, and they are told privately when they join a channel.

``<who>`` is a nick (on this source, or on the one named with ``on``) or an account name: a
memo for an account, or for a nick linked to one, reaches whichever of the person's
identities speaks first. ``my messages`` lists the memos you got, ``message <n>`` shows one.
In a channel only a few memos are said at once; the rest go privately. Memos are kept in
the database, so they survive restarts.

Ordinary chatter costs no query: the bot keeps in memory who has memos waiting (by nick and
by account), updated with every memo left and read again from the database every
``refresh_interval`` seconds (for memos left or delivered by another process), and looks
in the database only for a sender who may have one."""

from __future__ import annotations

import threading
import unicodedata
from datetime import datetime
from functools import lru_cache
from typing import TYPE_CHECKING, Any, Protocol

from sqlalchemy import (
    Boolean,
    ForeignKey,
    Index,
    Integer,
    Text,
    and_,
    bindparam,
    func,
    insert,
    or_,
    select,
    update,
)
from sqlalchemy import event as sa_event
from sqlalchemy.orm import Mapped, Session, mapped_column

from botcore.accounts.identify import proven_account
from botcore.accounts.models import Account, Identity
from botcore.db.engine import mark_written
from botcore.db.models import Base
from botcore.db.types import CIText, UTCDateTime, fold
from botcore.event import Event, EventType
from botcore.humanize import ago
from botcore.options import BoolOption, FloatOption, IntOption
from botcore.processor import Priority, Processor, handler, match, periodic
from botcore.source import names_on

if TYPE_CHECKING:
    from sqlalchemy import ColumnElement

#: The longest memo text accepted.
MAX_MEMO = 1000


class Memo(Base):
    """One memo: who left it, for whom (a nick on a source, or an account), and whether it
    has been delivered (and whether the recipient was told of it when joining)."""

    __tablename__ = "memos"
    __table_args__ = (
        Index("ix_memos_to_source_to_nick_delivered", "to_source", "to_nick", "delivered"),
        Index("ix_memos_to_account_id_delivered", "to_account_id", "delivered"),
        Index("ix_memos_from_identity_id_delivered", "from_identity_id", "delivered"),
        # Who has memos waiting is read from it every refresh_interval (0023).
        Index("ix_memos_delivered", "delivered"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    from_source: Mapped[str] = mapped_column(CIText(64))
    from_nick: Mapped[str] = mapped_column(CIText(255))
    from_identity_id: Mapped[int | None] = mapped_column(
        ForeignKey("identities.id", ondelete="SET NULL"), nullable=True
    )
    #: A memo for a nick names its source and nick; one for an account names the account.
    to_source: Mapped[str | None] = mapped_column(CIText(64), nullable=True)
    to_nick: Mapped[str | None] = mapped_column(CIText(255), nullable=True)
    to_account_id: Mapped[int | None] = mapped_column(
        ForeignKey("accounts.id", ondelete="CASCADE"), nullable=True
    )
    memo: Mapped[str] = mapped_column(Text)
    private: Mapped[bool] = mapped_column(Boolean, default=False)
    time: Mapped[datetime] = mapped_column(UTCDateTime())
    delivered: Mapped[bool] = mapped_column(Boolean, default=False)
    notified: Mapped[bool] = mapped_column(Boolean, default=False)


# The statements made for a sender, built once (building one over CIText columns, and
# its cache key, costs more than running it): each in two forms, memos by nick only and by
# nick or account (`_for_sender`), with the sender's values bound as ``p_*`` parameters.
_BY_NICK = and_(Memo.to_source == bindparam("p_source"), Memo.to_nick == bindparam("p_nick"))
_BY_NICK_OR_ACCOUNT = or_(_BY_NICK, Memo.to_account_id == bindparam("p_account"))
# What a delivery says of each memo, as columns (loading whole objects, then writing
# each one back, costs more than the statements).
_WAITING = {
    by_account: select(Memo.id, Memo.from_nick, Memo.memo, Memo.private, Memo.time)
    .where(condition, Memo.delivered.is_(False))
    .order_by(Memo.time, Memo.id)
    .limit(bindparam("p_limit"))
    for by_account, condition in ((False, _BY_NICK), (True, _BY_NICK_OR_ACCOUNT))
}
_INSERT = insert(Memo)
_DELIVERED = (
    update(Memo)
    .where(Memo.id.in_(bindparam("p_ids", expanding=True)))
    .values(delivered=True)
    .execution_options(synchronize_session=False)
)
_UNNOTIFIED = {
    by_account: select(Memo).where(condition, Memo.delivered.is_(False), Memo.notified.is_(False))
    for by_account, condition in ((False, _BY_NICK), (True, _BY_NICK_OR_ACCOUNT))
}
_MINE = {
    by_account: select(Memo).where(condition).order_by(Memo.time, Memo.id)
    for by_account, condition in ((False, _BY_NICK), (True, _BY_NICK_OR_ACCOUNT))
}


def _for_sender(event: Event) -> tuple[bool, dict[str, Any]]:
    """Which form of a sender's statement to use, and its parameters: memos addressed to
    the event's sender by nick on this source, or to their account once they are
    authenticated as it (holding a nick linked to an account does not show its memos)."""
    params: dict[str, Any] = {"p_source": event.source, "p_nick": event.who.nick}
    account = proven_account(event)
    if account is None:
        return False, params
    params["p_account"] = account
    return True, params


def _count_waiting(condition: ColumnElement[bool]) -> Any:
    """A scalar subquery: how many undelivered memos match ``condition``."""
    return (
        select(func.count())
        .select_from(Memo)
        .where(condition, Memo.delivered.is_(False))
        .scalar_subquery()
    )


# How many memos wait from a sender (by identity, or by source and nick without one) and
# for a recipient (an account, or a nick), in one statement; keyed by (by identity, for an
# account).
_SENT_BY_IDENTITY = Memo.from_identity_id == bindparam("p_identity")
_SENT_BY_NICK = and_(
    Memo.from_source == bindparam("p_from_source"), Memo.from_nick == bindparam("p_from_nick")
)
_FOR_ACCOUNT = Memo.to_account_id == bindparam("p_account")
_OVER_CAP = {
    (by_identity, for_account): select(
        _count_waiting(_SENT_BY_IDENTITY if by_identity else _SENT_BY_NICK),
        _count_waiting(_FOR_ACCOUNT if for_account else _BY_NICK),
    )
    for by_identity in (False, True)
    for for_account in (False, True)
}


# The account a memo for (source, nick) goes to, in one statement: that identity's
# account, else the account of that name (`Tell._recipient`).
_RECIPIENT = select(
    func.coalesce(
        select(Identity.account_id)
        .where(
            Identity.source == bindparam("p_source"),
            Identity.identity == bindparam("p_identity"),
            Identity.account_id.is_not(None),
        )
        .scalar_subquery(),
        select(Account.id).where(Account.username == bindparam("p_username")).scalar_subquery(),
    )
)


@lru_cache(maxsize=8192)
def name_key(source: str, nick: str) -> tuple[str, str]:
    """What a (source, nick) is remembered by in `Waiting`: coarser than any backend's
    case-insensitive comparison of the CIText columns (folded, accents, punctuation and
    ignorable characters dropped), so two names the database takes as equal always have
    the same key; names that differ only in what is dropped share one, which costs a
    query, never a memo."""

    def coarse(text: str) -> str:
        decomposed = unicodedata.normalize("NFKD", fold(text))
        return "".join(char for char in decomposed if char.isalnum())

    return coarse(source), coarse(nick)


class Waiting:
    """Who may have memos waiting undelivered: keys of (source, nick) (`name_key`) and
    account ids. Never misses anyone who has one (every memo left is added once its
    session commits; a full read from the database replaces it now and then); it may name
    somebody whose memos were delivered since, which costs one query. Any thread.

    Its state is plain objects (a dict), handed to the next version of the plugin on
    reload."""

    def __init__(self, state: dict[str, Any] | None = None) -> None:
        if state is None:
            state = {
                "lock": threading.Lock(),
                "nicks": set(),
                "accounts": set(),
                # False until read from the database once: everybody may have memos.
                "ready": False,
                # Bumped by every addition, so a removal or a read that overlapped one
                # does not undo it.
                "version": 0,
            }
        self.state = state

    def may_have(self, source: str, nick: str, account: int | None) -> bool:
        """Whether this sender (by nick, or by the account they proved) may have memos
        waiting."""
        state = self.state
        if not state["ready"]:
            return True
        key = name_key(source, nick)
        with state["lock"]:
            return key in state["nicks"] or (account is not None and account in state["accounts"])

    def version(self) -> int:
        with self.state["lock"]:
            return int(self.state["version"])

    def add(self, source: str | None, nick: str | None, account: int | None) -> None:
        """Somebody now has a memo waiting."""
        state = self.state
        with state["lock"]:
            if source is not None and nick is not None:
                state["nicks"].add(name_key(source, nick))
            if account is not None:
                state["accounts"].add(account)
            state["version"] += 1

    def add_after_commit(
        self, session: Session, source: str | None, nick: str | None, account: int | None
    ) -> None:
        """Add the recipient of a memo just left in ``session`` (to ``source`` and
        ``nick``, or to ``account``) once the session has committed it (before, a
        delivery that did not see it yet could remove them again)."""
        sa_event.listen(
            session, "after_commit", lambda s: self.add(source, nick, account), once=True
        )

    def remove(self, source: str, nick: str, account: int | None, since: int) -> None:
        """The sender has no memo waiting any more, as a query begun at version ``since``
        found: forgotten, unless a memo was added since."""
        state = self.state
        with state["lock"]:
            if state["version"] != since:
                return
            state["nicks"].discard(name_key(source, nick))
            if account is not None:
                state["accounts"].discard(account)

    def remove_after_commit(
        self, session: Session, source: str, nick: str, account: int | None, since: int
    ) -> None:
        """`remove` once ``session`` commits (a rollback leaves the memos waiting)."""
        sa_event.listen(
            session,
            "after_commit",
            lambda s: self.remove(source, nick, account, since),
            once=True,
        )

    def load(self, session: Session) -> None:
        """Read who has memos waiting from the database (one query on the delivered
        index). Worker thread."""
        since = self.version()
        # Not DISTINCT: SQLite would compare the names with the Python collation, once
        # per row; the undelivered are few (each sender and recipient has a cap).
        # "= false", not "IS false": MariaDB uses the index only for the former.
        rows = session.execute(
            select(Memo.to_source, Memo.to_nick, Memo.to_account_id).where(
                Memo.delivered == False  # noqa: E712
            )
        ).all()
        nicks = {name_key(source, nick) for source, nick, _ in rows if source is not None and nick}
        accounts_ = {account for _, _, account in rows if account is not None}
        state = self.state
        with state["lock"]:
            if state["version"] != since:
                # Memos were left while reading: keep what they added too.
                nicks |= state["nicks"]
                accounts_ |= state["accounts"]
            state["nicks"], state["accounts"] = nicks, accounts_
            state["ready"] = True


class _Said(Protocol):
    """What describing a memo reads of it (a `Memo`, or a row of its columns)."""

    @property
    def from_nick(self) -> str: ...
    @property
    def memo(self) -> str: ...
    @property
    def time(self) -> datetime: ...


class _MemoProcessor(Processor):
    """Shared by the memo processors: permissions and how a memo is described."""

    abstract = True

    sendmemo_required = BoolOption(
        "Only senders holding the 'sendmemo' permission may leave memos (otherwise anyone).",
        False,
    )
    recvmemo_required = BoolOption(
        "Only people holding the 'recvmemo' permission get memos (otherwise anyone).", False
    )

    def may_send(self, event: Event) -> bool:
        return not self.sendmemo_required or self.authorised(event, "sendmemo")

    def may_receive(self, event: Event) -> bool:
        return not self.recvmemo_required or self.authorised(event, "recvmemo")

    def now(self) -> datetime:
        return self.bot.now()

    def describe(self, memo: _Said) -> str:
        return (
            f"{memo.from_nick} said {ago((self.now() - memo.time).total_seconds())}: {memo.memo}"
        )

    def waiting_of(self) -> Waiting | None:
        """Who has memos waiting, as this plugin's Deliver keeps it (None: not loaded)."""
        for processor in self.bot.loaded().get(self.name, ()):
            if isinstance(processor, Deliver):
                return processor.waiting
        return None


class Tell(_MemoProcessor):
    """Leaves a memo."""

    usage = "tell <who> [on <source>] <text> | pm <who> [on <source>] <text>"
    features = ("memo",)
    permission = "sendmemo"

    max_pending_from = IntOption(
        "Memos one sender may have waiting undelivered (0: no limit).", 20, min=0
    )
    max_pending_to = IntOption(
        "Memos one recipient (a nick or an account) may have waiting undelivered (0: no limit).",
        50,
        min=0,
    )

    @match(r"^\s*(tell|ask|pm|privmsg|msg)\s+(\S+?)[,:]?\s+(.*?)\s*$", "deaddressed", False)
    def tell(self, event: Event, how: str, who: str, text: str) -> None:
        if not text or who.lower() in ("me", "myself", "us"):
            return  # "tell me a joke" is not a memo
        if not self.may_send(event):
            event.complain = "notauthed"
            return
        source = event.source
        first, _, rest = text.partition(" ")
        if first.lower() == "on" and rest:
            name, _, after = rest.strip().partition(" ")
            if name in self.bot.config.names("source") or self.bot.get_source(name):
                if not after.strip():
                    return
                source, text = name, after.strip()
        if len(text) > MAX_MEMO:
            event.addresponse("That's too long for a memo (at most %d characters)", (MAX_MEMO,))
            return
        if who.casefold() in {name.casefold() for name in names_on(self.bot, source)}:
            event.addresponse("I can't leave a memo for myself")
            return
        session = event.session
        recipient = self._recipient(session, source, who)
        refusal = self._over_cap(event, session, source, who, recipient)
        if refusal is not None:
            event.addresponse(refusal)
            return
        to_source, to_nick = (None, None) if recipient is not None else (source, who)
        session.connection().execute(
            _INSERT,
            {
                "from_source": event.source,
                "from_nick": event.who.nick,
                "from_identity_id": event.identity,
                "to_source": to_source,
                "to_nick": to_nick,
                "to_account_id": recipient,
                "memo": text,
                "private": how.lower() in ("pm", "privmsg", "msg"),
                "time": event.time,
                "delivered": False,
                "notified": False,
            },
        )
        mark_written(session)
        waiting = self.waiting_of()
        if waiting is not None:
            waiting.add_after_commit(session, to_source, to_nick, recipient)
        where = "" if source == event.source else f" on {source}"
        event.addresponse("Okay, I'll tell %s%s", (who, where))

    def _over_cap(
        self, event: Event, session: Session, source: str, who: str, recipient: int | None
    ) -> str | None:
        """Why a new memo would be one too many (the sender's or the recipient's memos
        waiting undelivered at their cap), or None. Both counts in one statement. Worker
        thread."""
        if not (self.max_pending_from or self.max_pending_to):
            return None
        params: dict[str, Any] = {}
        if event.identity is not None:
            params["p_identity"] = event.identity
        else:
            params.update(p_from_source=event.source, p_from_nick=event.who.nick)
        if recipient is not None:
            params["p_account"] = recipient
        else:
            params.update(p_source=source, p_nick=who)
        statement = _OVER_CAP[event.identity is not None, recipient is not None]
        sent, waiting = session.connection().execute(statement, params).one()
        if self.max_pending_from and (sent or 0) >= self.max_pending_from:
            return (
                f"You already have {self.max_pending_from} memos waiting to be delivered; "
                "I'll take more once some of them are"
            )
        if self.max_pending_to and (waiting or 0) >= self.max_pending_to:
            return (
                f"{who} already has {self.max_pending_to} memos waiting; "
                "I'll take more once they have read some"
            )
        return None

    def _recipient(self, session: Session, source: str, who: str) -> int | None:
        """The id of the account a memo for ``who`` on ``source`` goes to: the account of
        that identity, else the account of that name; None for a plain nick."""
        params = {
            "p_source": source,
            "p_identity": who,
            "p_username": unicodedata.normalize("NFKC", who),
        }
        found = session.connection().execute(_RECIPIENT, params).scalar()
        return None if found is None else int(found)


class Deliver(_MemoProcessor):
    """Passes memos on when their recipient speaks."""

    usage = "(automatic) says your memos when you next speak"
    features = ("memo",)
    addressed = False
    processed = True
    priority = Priority.LATE  # after the commands, so 'my messages' can look before delivery
    #: Checked only with recvmemo_required; named here so permission listings know it.
    permission = "recvmemo"
    event_types = (EventType.MESSAGE, EventType.ACTION)

    public_limit = IntOption(
        "Memos said in a channel at once; the rest are sent privately.", 3, min=0
    )
    refresh_interval = FloatOption(
        "Seconds between reads of who has memos waiting from the database (the bot keeps "
        "it in memory, updated by every memo left here, so that ordinary chatter costs no "
        "query; the read catches memos left or delivered by another process).",
        60.0,
        min=1,
    )

    #: The most memos one delivery says.
    batch = 100

    def __init__(self, *args: Any, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self.waiting = Waiting()

    def export_state(self) -> Any:
        return self.waiting.state

    def import_state(self, state: Any) -> None:
        self.waiting = Waiting(state)

    @periodic(config_key="refresh_interval", initial_delay=0)
    def refresh(self, event: Event) -> None:
        """Read who has memos waiting afresh. Worker thread."""
        self.waiting.load(event.session)

    @handler
    def deliver(self, event: Event) -> None:
        if event.sender is None or event.extra.get("memo_read"):
            return
        account = proven_account(event)
        if not self.waiting.may_have(event.source, event.who.nick, account):
            return
        if not self.may_receive(event):
            return
        since = self.waiting.version()
        by_account, params = _for_sender(event)
        params["p_limit"] = self.batch
        connection = event.session.connection()
        memos = connection.execute(_WAITING[by_account], params).all()
        if not memos:
            # Nothing waits (delivered elsewhere, or never there): nothing to look for
            # next time. Nothing was written, so there is no commit to wait for.
            self.waiting.remove(event.source, event.who.nick, account, since)
            return
        if len(memos) < self.batch:
            # All of them said: forgotten once that is committed.
            self.waiting.remove_after_commit(
                event.session, event.source, event.who.nick, account, since
            )
        private_target = {"target": event.sender.nick, "address": False}
        said = 0
        moved = 0
        connection.execute(_DELIVERED, {"p_ids": [memo.id for memo in memos]})
        for memo in memos:
            text = self.describe(memo)
            if memo.private or not event.public:
                event.addresponse(text, **private_target, processed=False)
            elif said < self.public_limit:
                event.addresponse(text, processed=False)
                said += 1
            else:
                event.addresponse(text, **private_target, processed=False)
                moved += 1
        if moved:
            event.addresponse(
                "%d more memo%s sent to you privately",
                (moved, "" if moved == 1 else "s"),
                processed=False,
            )
        mark_written(event.session)


class Notify(_MemoProcessor):
    """Tells people privately about their memos when they join a channel."""

    usage = "(automatic) tells you privately about memos waiting for you when you join"
    features = ("memo",)
    addressed = False
    processed = True
    event_types = (EventType.STATE,)

    @handler
    def notify(self, event: Event) -> None:
        if event.sender is None or event.data.get("kind") != "join":
            return
        waiting = self.waiting_of()
        if waiting is not None and not waiting.may_have(
            event.source, event.who.nick, proven_account(event)
        ):
            return
        if not self.may_receive(event):
            return
        by_account, params = _for_sender(event)
        memos = event.session.scalars(_UNNOTIFIED[by_account], params).all()
        if not memos:
            return
        for memo in memos:
            memo.notified = True
        mark_written(event.session)
        count = len(memos)
        event.addresponse(
            "You have %d new memo%s; say 'my messages' to me to see them",
            (count, "" if count == 1 else "s"),
            target=event.sender.nick,
            address=False,
        )


class Messages(_MemoProcessor):
    """Lists and shows the memos you got."""

    usage = "my messages | message <n>"
    features = ("memo",)

    list_limit = IntOption("Memos 'my messages' lists at most (the newest).", 10, min=1)

    def _mine(self, event: Event) -> list[Memo]:
        by_account, params = _for_sender(event)
        return list(event.session.scalars(_MINE[by_account], params))

    @match(r"(?:my\s+)?(?:messages|memos)")
    def list_messages(self, event: Event) -> None:
        if not self.may_receive(event):
            event.complain = "notauthed"
            return
        event.extra["memo_read"] = True
        mine = self._mine(event)
        if not mine:
            event.addresponse("You have no memos")
            return
        numbered = list(enumerate(mine, 1))[-self.list_limit :]
        items = []
        for number, memo in numbered:
            new = "" if memo.delivered else " (new)"
            if memo.private and event.public:
                items.append(f"{number}: from {memo.from_nick}{new}, private")
            else:
                short = (
                    memo.memo
                    if len(memo.memo) <= 40
                    else memo.memo[:39] + "\N{HORIZONTAL ELLIPSIS}"
                )
                items.append(f"{number}: from {memo.from_nick}{new}: {short}")
        event.addresponse("; ".join(items))

    @match(r"(?:message|memo)\s+#?{digits}")
    def show_message(self, event: Event, number: str) -> None:
        if not self.may_receive(event):
            event.complain = "notauthed"
            return
        event.extra["memo_read"] = True
        mine = self._mine(event)
        index = int(number)
        if not 1 <= index <= len(mine):
            event.addresponse(
                "You have no memo %d (you have %d)" if mine else "You have no memos",
                (index, len(mine)) if mine else None,
            )
            return
        memo = mine[index - 1]
        if memo.private and event.public:
            event.addresponse("That one is private: ask me in private")
            return
        memo.delivered = True
        mark_written(event.session)
        event.addresponse(self.describe(memo))
