"""Remembers when and where each person was last seen (speaking, joining, leaving,
changing nick) and answers ``seen <who> [on <source>]``, across every identity linked to
the person's account: "bob was last seen 3 hours ago on libera in #python saying 'hi'".

What people say to the bot in private is not repeated: a private sighting only says when."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, Integer, String, select
from sqlalchemy.orm import Mapped, mapped_column

from botcore.accounts import models as accounts
from botcore.accounts.models import Identity
from botcore.db.models import Base
from botcore.db.types import CIText, UTCDateTime
from botcore.db.upsert import Upsert
from botcore.event import Event, EventType, Sender
from botcore.humanize import ago
from botcore.processor import Priority, Processor, handler, match
from botcore.source import names_on

#: The most of a message kept (and repeated) per sighting.
MAX_TEXT = 400


class Sighting(Base):
    """The last time one identity was seen: where, doing what, saying what."""

    __tablename__ = "sightings"
    __table_args__ = (Index("ix_sightings_source_nick", "source", "nick"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    identity_id: Mapped[int] = mapped_column(
        ForeignKey("identities.id", ondelete="CASCADE"), unique=True
    )
    source: Mapped[str] = mapped_column(CIText(64))
    nick: Mapped[str] = mapped_column(CIText(255))
    #: The channel, or None for a private message or a quit.
    channel: Mapped[str | None] = mapped_column(CIText(255), nullable=True)
    #: message, action, join, part, kick, quit or nick.
    kind: Mapped[str] = mapped_column(String(16))
    text: Mapped[str | None] = mapped_column(String(MAX_TEXT), nullable=True)
    time: Mapped[datetime] = mapped_column(UTCDateTime())


def _sighting_of(event: Event, sender: Sender) -> dict[str, Any] | None:
    """What the event shows of its ``sender``, as Sighting columns (None: nothing to
    record)."""
    channel = event.channel if event.public else None
    if event.type in (EventType.MESSAGE, EventType.ACTION):
        if event.message is None:
            return None
        text = event.message.raw[:MAX_TEXT] if event.public else None
        return {"nick": sender.nick, "channel": channel, "kind": event.type, "text": text}
    kind = event.data.get("kind")
    if kind in ("join", "part", "kick"):
        text = (event.data.get("message") or "")[:MAX_TEXT] or None
        return {"nick": sender.nick, "channel": channel, "kind": kind, "text": text}
    if kind == "quit":
        text = (event.data.get("message") or "")[:MAX_TEXT] or None
        return {"nick": sender.nick, "channel": None, "kind": kind, "text": text}
    if kind == "nick" and event.data.get("new"):
        new = str(event.data["new"])[:255]
        return {"nick": new, "channel": None, "kind": kind, "text": new}
    return None


# One statement per sighting, whether the identity was seen before or not (and when two
# conversations record the same new identity at once, one inserts and the other updates).
_RECORD = Upsert(
    Sighting.__table__,
    key=("identity_id",),
    columns=("identity_id", "source", "nick", "channel", "kind", "text", "time"),
)


class Record(Processor):
    """Records each sighting of each identity."""

    usage = "(automatic) remembers when and where people were last seen"
    features = ("seen",)
    addressed = False
    processed = True
    priority = Priority.RECORD  # after the "seen" command has answered from the last one
    event_types = (EventType.MESSAGE, EventType.ACTION, EventType.STATE)

    @handler
    def record(self, event: Event) -> None:
        # The core's Identify has run: no identity means an anonymous sender (no sender,
        # or an id too long to store), of whom nothing can be kept.
        identity = event.identity
        if event.sender is None or identity is None:
            return
        values = _sighting_of(event, event.sender)
        if values is None:
            return
        session = event.session
        values.update(identity_id=identity, source=event.source, time=event.time)
        _RECORD.execute(session, values)


class Seen(Processor):
    """Answers when and where somebody was last seen."""

    usage = "seen <who> [on <source>]"
    features = ("seen",)

    @match(r"^(?:have\s+you\s+)?seen\s+(\S+?)(?:\s+on\s+(\S+))?$", simple=False)
    def seen(self, event: Event, who: str, source: str | None) -> None:
        where = source or event.source
        if who.casefold() in {name.casefold() for name in names_on(self.bot, where)}:
            event.addresponse("I'm right here")
            return
        session = event.session
        identities = set(
            session.scalars(
                select(Sighting.identity_id).where(Sighting.source == where, Sighting.nick == who)
            )
        )
        identities.update(
            session.scalars(
                select(Identity.id).where(Identity.source == where, Identity.identity == who)
            )
        )
        account = accounts.find_account(session, who) if source is None else None
        account_ids = set(
            session.scalars(
                select(Identity.account_id).where(
                    Identity.id.in_(identities), Identity.account_id.is_not(None)
                )
            )
        )
        if account is not None:
            account_ids.add(account.id)
        if account_ids:
            identities.update(
                session.scalars(select(Identity.id).where(Identity.account_id.in_(account_ids)))
            )
        row = None
        if identities:
            row = session.scalars(
                select(Sighting)
                .where(Sighting.identity_id.in_(identities))
                .order_by(Sighting.time.desc(), Sighting.id.desc())
                .limit(1)
            ).first()
        if row is None:
            on = f" on {source}" if source else ""
            event.addresponse("I haven't seen %s%s", (who, on))
            return
        event.addresponse(self.describe(who, row))

    def describe(self, who: str, row: Sighting) -> str:
        """``bob was last seen 3 hours ago on libera in #python saying 'hi'``."""
        now = self.bot.now()
        name = who if row.nick.casefold() == who.casefold() else f"{who} (as {row.nick})"
        said = f"{name} was last seen {ago((now - row.time).total_seconds())} on {row.source}"
        place = f" in {row.channel}" if row.channel else ""
        reason = f" ({row.text})" if row.text else ""
        if row.kind == EventType.MESSAGE:
            doing = f" saying '{row.text}'" if row.text else ""
        elif row.kind == EventType.ACTION:
            doing = f" doing '* {row.nick} {row.text}'" if row.text else ""
        elif row.kind == "join":
            doing, place = f" joining {row.channel}", ""
        elif row.kind == "part":
            doing, place = f" leaving {row.channel}{reason}", ""
        elif row.kind == "kick":
            doing, place = f" being kicked from {row.channel}{reason}", ""
        elif row.kind == "quit":
            doing = f" quitting{reason}"
        elif row.kind == "nick":
            doing = f" changing nick to {row.text}"
        else:
            doing = ""
        return said + place + doing
