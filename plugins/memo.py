"""Leaves messages for people who are not around: ``tell <who> [on <source>] <text>`` (or
``pm <who> <text>`` / ``msg <who> <text>`` for a private one) is passed on when they next
say something, wherever they are, and they are told privately when they join a channel.

``<who>`` is a nick (on this source, or on the one named with ``on``) or an account name: a
memo for an account, or for a nick linked to one, reaches whichever of the person's
identities speaks first. ``my messages`` lists the memos you got, ``message <n>`` shows one.
In a channel only a few memos are said at once; the rest go privately. Memos are kept in
the database, so they survive restarts."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy import Boolean, ForeignKey, Index, Integer, Text, and_, func, or_, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from botcore.accounts import models as accounts
from botcore.accounts.identify import proven_account
from botcore.accounts.models import Account
from botcore.db.engine import mark_written
from botcore.db.models import Base
from botcore.db.types import CIText, UTCDateTime
from botcore.event import Event, EventType
from botcore.humanize import ago
from botcore.options import BoolOption, IntOption
from botcore.processor import Priority, Processor, handler, match
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


def for_sender(event: Event) -> ColumnElement[bool]:
    """The condition selecting memos addressed to the event's sender: by nick on this
    source, or to their account once they are authenticated as it (holding a nick linked
    to an account does not show its memos)."""
    by_nick = and_(Memo.to_source == event.source, Memo.to_nick == event.who.nick)
    account = proven_account(event)
    if account is not None:
        return or_(by_nick, Memo.to_account_id == account)
    return by_nick


def _waiting(session: Session, condition: ColumnElement[bool]) -> int:
    """How many undelivered memos match ``condition``."""
    query = select(func.count()).select_from(Memo).where(condition, Memo.delivered.is_(False))
    return session.scalar(query) or 0


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

    def describe(self, memo: Memo) -> str:
        return (
            f"{memo.from_nick} said {ago((self.now() - memo.time).total_seconds())}: {memo.memo}"
        )


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
        memo = Memo(
            from_source=event.source,
            from_nick=event.who.nick,
            from_identity_id=event.identity,
            memo=text,
            private=how.lower() in ("pm", "privmsg", "msg"),
            time=event.time,
        )
        if isinstance(recipient, Account):
            memo.to_account_id = recipient.id
        else:
            memo.to_source, memo.to_nick = source, who
        session.add(memo)
        mark_written(session)
        where = "" if source == event.source else f" on {source}"
        event.addresponse("Okay, I'll tell %s%s", (who, where))

    def _over_cap(
        self, event: Event, session: Session, source: str, who: str, recipient: Account | None
    ) -> str | None:
        """Why a new memo would be one too many (the sender's or the recipient's memos
        waiting undelivered at their cap), or None. Worker thread."""
        if self.max_pending_from:
            if event.identity is not None:
                mine = Memo.from_identity_id == event.identity
            else:
                mine = and_(Memo.from_source == event.source, Memo.from_nick == event.who.nick)
            if _waiting(session, mine) >= self.max_pending_from:
                return (
                    f"You already have {self.max_pending_from} memos waiting to be delivered; "
                    "I'll take more once some of them are"
                )
        if self.max_pending_to:
            if recipient is not None:
                theirs = Memo.to_account_id == recipient.id
            else:
                theirs = and_(Memo.to_source == source, Memo.to_nick == who)
            if _waiting(session, theirs) >= self.max_pending_to:
                return (
                    f"{who} already has {self.max_pending_to} memos waiting; "
                    "I'll take more once they have read some"
                )
        return None

    def _recipient(self, session: Session, source: str, who: str) -> Account | None:
        """The account a memo for ``who`` on ``source`` goes to: the account of that
        identity, else the account of that name; None for a plain nick."""
        identity = accounts.find_identity(session, source, who)
        if identity is not None and identity.account_id is not None:
            return session.get(Account, identity.account_id)
        return accounts.find_account(session, who)


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

    @handler
    def deliver(self, event: Event) -> None:
        if event.sender is None or event.extra.get("memo_read"):
            return
        if not self.may_receive(event):
            return
        memos = event.session.scalars(
            select(Memo)
            .where(for_sender(event), Memo.delivered.is_(False))
            .order_by(Memo.time, Memo.id)
            .limit(100)
        ).all()
        if not memos:
            return
        private_target = {"target": event.sender.nick, "address": False}
        said = 0
        moved = 0
        for memo in memos:
            memo.delivered = True
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
        if not self.may_receive(event):
            return
        memos = event.session.scalars(
            select(Memo).where(
                for_sender(event), Memo.delivered.is_(False), Memo.notified.is_(False)
            )
        ).all()
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
        return list(
            event.session.scalars(
                select(Memo).where(for_sender(event)).order_by(Memo.time, Memo.id)
            )
        )

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
