"""Remembers when and where each person was last seen (speaking, joining, leaving,
changing nick) and answers ``seen <who> [on <source>]``, across every identity linked to
the person's account: "bob was last seen 3 hours ago on libera in #python saying 'hi'".

What people say to the bot in private is not repeated: a private sighting only says when.

Sightings are written behind: the newest of each person is kept in memory and written in
one batch every ``flush_interval`` seconds, when the bot stops and when the plugin is
unloaded or reloaded, so a clean stop loses nothing and a crash at most the last interval's
sightings (``seen`` answers from the unwritten ones too). ``flush_interval = 0`` writes
each sighting at once."""

from __future__ import annotations

import unicodedata
from collections.abc import Mapping
from datetime import datetime
from types import SimpleNamespace
from typing import Any

from sqlalchemy import (
    BigInteger,
    ForeignKey,
    Index,
    Integer,
    String,
    bindparam,
    select,
    union_all,
)
from sqlalchemy.orm import Mapped, mapped_column

from botcore.accounts import models as accounts
from botcore.accounts.models import Identity
from botcore.db.behind import Behind, WritesBehind
from botcore.db.models import Base
from botcore.db.types import CIText, UTCDateTime, fold
from botcore.db.upsert import Upsert
from botcore.event import Event, EventType, Sender
from botcore.humanize import ago
from botcore.options import FloatOption
from botcore.processor import Priority, Processor, handler, match
from botcore.source import names_on

#: The most of a message kept (and repeated) per sighting.
MAX_TEXT = 400


class Sighting(Base):
    """The last time one identity was seen: where, doing what, saying what."""

    __tablename__ = "sightings"
    __table_args__ = (Index("ix_sightings_source_nick", "source", "nick"),)

    #: 64-bit where the upsert takes a number per write (PostgreSQL, MariaDB; 0016).
    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
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


def unwritten_named(unwritten: Behind[int, dict[str, Any]], source: str, nick: str) -> set[int]:
    """The identities with an unwritten sighting as ``nick`` on ``source`` (compared as
    the CIText columns compare)."""
    source, nick = fold(source), fold(nick)
    return {
        values["identity_id"]
        for values in unwritten.values()
        if fold(values["nick"]) == nick and fold(values["source"]) == source
    }


# The statements of a "seen", built once (building one costs more than running it).
_sightings = Base.metadata.tables[Sighting.__tablename__]
_identities = Base.metadata.tables[Identity.__tablename__]
_accounts = Base.metadata.tables[accounts.Account.__tablename__]


def _who(anywhere: bool) -> Any:
    """The identities meant by ``:who`` on ``:where`` (last seen as that nick there, or of
    that name), every identity of their accounts and, ``anywhere``, of the account named
    ``:username``: one branch per way in, each on its index (an OR of them, or a derived
    table of the named ones, would keep the planners from the indexes)."""
    s, i = _sightings.c, _identities.c
    last_seen_as = (s.source == bindparam("where"), s.nick == bindparam("who"))
    named = (i.source == bindparam("where"), i.identity == bindparam("who"))
    other = _identities.alias("named")
    branches: list[Any] = [
        select(s.identity_id).where(*last_seen_as),
        select(i.id).where(*named),
        select(i.id).where(
            i.account_id.in_(
                select(other.c.account_id).where(
                    other.c.source == bindparam("where"),
                    other.c.identity == bindparam("who"),
                    other.c.account_id.is_not(None),
                )
            )
        ),
        select(i.id).where(
            i.account_id.in_(
                select(other.c.account_id)
                .join(_sightings, s.identity_id == other.c.id)
                .where(*last_seen_as, other.c.account_id.is_not(None))
            )
        ),
    ]
    if anywhere:
        branches.append(
            select(i.id).where(
                i.account_id
                == select(_accounts.c.id)
                .where(_accounts.c.username == bindparam("username"))
                .scalar_subquery()
            )
        )
    return union_all(*branches)


_WHO_THERE = _who(anywhere=False)
_WHO_ANYWHERE = _who(anywhere=True)
#: Every identity of the accounts of the identities ``:ids``.
_LINKED = select(_identities.c.id).where(
    _identities.c.account_id.in_(
        select(_identities.c.account_id).where(
            _identities.c.id.in_(bindparam("ids", expanding=True)),
            _identities.c.account_id.is_not(None),
        )
    )
)
#: The newest sighting of the identities ``:ids``.
_NEWEST = (
    select(*(_sightings.c[name] for name in _RECORD.columns))
    .where(_sightings.c.identity_id.in_(bindparam("ids", expanding=True)))
    .order_by(_sightings.c.time.desc(), _sightings.c.id.desc())
    .limit(1)
)


class Record(WritesBehind):
    """Records each sighting of each identity, written behind (see the module): the
    newest of each identity is kept, and all of them written in one statement."""

    usage = "(automatic) remembers when and where people were last seen"
    features = ("seen",)
    addressed = False
    processed = True
    priority = Priority.RECORD  # after the "seen" command has answered from the last one
    #: Every sighting is recorded, even of an event no other processor wants.
    observes = True
    event_types = (EventType.MESSAGE, EventType.ACTION, EventType.STATE)

    flush_interval = FloatOption(
        "Seconds between writes of the sightings, each person's newest in one batch (also "
        "written when the bot stops and when the plugin is unloaded or reloaded; a crash "
        "loses at most this many seconds of them). 0 writes each sighting at once.",
        2.0,
        min=0,
    )

    def __init__(self, *args: Any, **kw: Any) -> None:
        super().__init__(*args, **kw)
        #: identity id -> its newest unwritten sighting (Sighting columns).
        self.behind: Behind[int, dict[str, Any]] = Behind()

    def write_behind(self, event: Event | None, batch: dict[int, dict[str, Any]]) -> None:
        assert event is not None
        connection = event.session.connection()
        connection.execute(
            _RECORD.statement(connection.dialect.name),
            [{f"p_{name}": value for name, value in row.items()} for row in batch.values()],
        )

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
        values.update(identity_id=identity, source=event.source, time=event.time)
        self.behind.add(identity, values)
        self.added(event)


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
        connection = event.session.connection()
        unwritten = self.unwritten()
        # Who is meant, in one statement: the identities last seen as that nick there,
        # those of that name, every identity of their accounts, and (not asked about one
        # source) of the account of that name.
        parameters = {"where": where, "who": who}
        if source is None:
            parameters["username"] = unicodedata.normalize("NFKC", who)
        identities = set(
            connection.execute(_WHO_ANYWHERE if source is None else _WHO_THERE, parameters)
            .scalars()
            .all()
        )
        if unwritten is not None:
            # Seen as that nick only since the last write: their accounts' identities too.
            new = unwritten_named(unwritten, where, who) - identities
            if new:
                identities |= new
                identities.update(connection.execute(_LINKED, {"ids": list(new)}).scalars())
        row: dict[str, Any] | None = None
        if identities:
            found = connection.execute(_NEWEST, {"ids": list(identities)}).first()
            row = None if found is None else dict(found._mapping)
        if identities and unwritten is not None:
            # Newer than what is written of the same identity: the newest of either wins.
            for values in unwritten.values():
                if values["identity_id"] in identities and (
                    row is None or values["time"] >= row["time"]
                ):
                    row = values
        if row is None:
            on = f" on {source}" if source else ""
            event.addresponse("I haven't seen %s%s", (who, on))
            return
        event.addresponse(self.describe(who, row))

    def unwritten(self) -> Behind[int, dict[str, Any]] | None:
        """The sightings this plugin's Record has not written yet (None: it is not
        loaded)."""
        for processor in self.bot.loaded().get(self.name, ()):
            if isinstance(processor, Record):
                return processor.behind
        return None

    def describe(self, who: str, sighting: Mapping[str, Any]) -> str:
        """``bob was last seen 3 hours ago on libera in #python saying 'hi'``, from the
        columns of a Sighting."""
        now = self.bot.now()
        row = SimpleNamespace(**sighting)
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
