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

import threading
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    ColumnElement,
    ForeignKey,
    Index,
    Integer,
    String,
    or_,
    select,
    union_all,
)
from sqlalchemy.orm import Mapped, Session, mapped_column
from twisted.logger import Logger

from botcore.accounts import models as accounts
from botcore.accounts.models import Identity
from botcore.db.engine import mark_written
from botcore.db.models import Base
from botcore.db.types import CIText, UTCDateTime, fold
from botcore.db.upsert import Upsert
from botcore.event import Event, EventType, Lifecycle, Sender
from botcore.humanize import ago
from botcore.options import FloatOption
from botcore.processor import Priority, Processor, handler, match, periodic
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


#: The bot's states after which no more sightings come: the last moment to write them.
_FINAL = frozenset({Lifecycle.STOPPING, Lifecycle.STOPPED, Lifecycle.FAILED})


class Sightings:
    """The sightings not yet written: the newest of each identity (Sighting columns by
    identity id). Recording one is a dictionary update under a lock; `flush` writes them
    all in one statement of many rows. Any thread.

    The dictionary and the locks are shared by every version of the plugin (a reload hands
    them over, see `shared`), so that what the old version records after the hand-over
    is written too, and two versions' flushes never overtake each other."""

    def __init__(
        self,
        pending: dict[int, dict[str, Any]] | None = None,
        lock: Any = None,
        writing: Any = None,
    ) -> None:
        self.pending = {} if pending is None else pending
        self.lock = threading.Lock() if lock is None else lock
        #: Held for a whole flush: the one writing first commits first.
        self.writing = threading.Lock() if writing is None else writing

    def shared(self) -> tuple[dict[int, dict[str, Any]], Any, Any]:
        """What the next version of the plugin takes over (plain objects, no class of
        this module's)."""
        return self.pending, self.lock, self.writing

    def add(self, values: dict[str, Any]) -> None:
        """Keep ``values`` (the columns of a Sighting) as its identity's newest."""
        with self.lock:
            self.pending[values["identity_id"]] = values

    def __len__(self) -> int:
        return len(self.pending)

    def of(self, identities: set[int]) -> list[dict[str, Any]]:
        """The unwritten sightings of these identities."""
        with self.lock:
            return [values for key, values in self.pending.items() if key in identities]

    def named(self, source: str, nick: str) -> set[int]:
        """The identities with an unwritten sighting as ``nick`` on ``source`` (compared
        as the CIText columns compare)."""
        source, nick = fold(source), fold(nick)
        with self.lock:
            found = list(self.pending.values())
        return {
            values["identity_id"]
            for values in found
            if fold(values["nick"]) == nick and fold(values["source"]) == source
        }

    def flush(self, session: Session) -> int:
        """Write every unwritten sighting in one statement and commit; each is forgotten
        only once committed, and only if no newer one of its identity came meanwhile (a
        failure leaves them all for the next flush). Returns how many were written.
        Worker thread."""
        with self.writing:
            with self.lock:
                batch = dict(self.pending)
            if not batch:
                return 0
            connection = session.connection()
            connection.execute(
                _RECORD.statement(connection.dialect.name),
                [{f"p_{name}": value for name, value in row.items()} for row in batch.values()],
            )
            mark_written(session)
            session.commit()
            with self.lock:
                for key, values in batch.items():
                    if self.pending.get(key) is values:
                        del self.pending[key]
            return len(batch)


class Record(Processor):
    """Records each sighting of each identity, written behind (see the module)."""

    usage = "(automatic) remembers when and where people were last seen"
    features = ("seen",)
    addressed = False
    processed = True
    priority = Priority.RECORD  # after the "seen" command has answered from the last one
    #: Every sighting is recorded, even of an event no other processor wants.
    observes = True
    event_types = (EventType.MESSAGE, EventType.ACTION, EventType.STATE, EventType.LIFECYCLE)

    flush_interval = FloatOption(
        "Seconds between writes of the sightings, each person's newest in one batch (also "
        "written when the bot stops and when the plugin is unloaded or reloaded; a crash "
        "loses at most this many seconds of them). 0 writes each sighting at once.",
        2.0,
        min=0,
    )

    log = Logger()

    def __init__(self, *args: Any, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self.sightings = Sightings()

    def export_state(self) -> Any:
        return self.sightings.shared()

    def import_state(self, state: Any) -> None:
        pending, lock, writing = state
        # What this version recorded before the swap (nothing, normally) joins the rest.
        with lock:
            for key, values in self.sightings.pending.items():
                pending.setdefault(key, values)
        self.sightings = Sightings(pending, lock, writing)

    def shutdown(self) -> None:
        # Unloaded or reloaded (a stop has written them already, on its lifecycle event):
        # write what is left, in the pool, with a session of its own.
        if not len(self.sightings):
            return
        if self.bot.state in _FINAL:
            self.log.warn(
                "seen: {count} sighting(s) not written: the bot stopped before they were",
                count=len(self.sightings),
            )
            return
        self.bot.call_later(0, self._flush, Event("botcore", "seen"))

    @periodic(config_key="flush_interval")
    def flush(self, event: Event) -> None:
        """Write the sightings recorded since the last flush. Worker thread."""
        self._flush(event)

    def _flush(self, event: Event) -> None:
        if len(self.sightings):
            self.sightings.flush(event.session)

    @handler
    def record(self, event: Event) -> None:
        if event.type == EventType.LIFECYCLE:
            # The last moment before the plugins stop: nothing is said after it.
            if event.data.get("state") in _FINAL:
                self._flush(event)
            return
        # The core's Identify has run: no identity means an anonymous sender (no sender,
        # or an id too long to store), of whom nothing can be kept.
        identity = event.identity
        if event.sender is None or identity is None:
            return
        values = _sighting_of(event, event.sender)
        if values is None:
            return
        values.update(identity_id=identity, source=event.source, time=event.time)
        self.sightings.add(values)
        if self.flush_interval <= 0:
            self._flush(event)


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
        unwritten = self.unwritten()
        # Who is meant, in one statement: the identities last seen as that nick there,
        # and those of that name.
        identities = set(
            session.scalars(
                union_all(
                    select(Sighting.identity_id).where(
                        Sighting.source == where, Sighting.nick == who
                    ),
                    select(Identity.id).where(Identity.source == where, Identity.identity == who),
                )
            )
        )
        if unwritten is not None:
            identities.update(unwritten.named(where, who))
        account = accounts.find_account(session, who) if source is None else None
        # Then every identity of their accounts (and of the account of that name), in one.
        linked: list[ColumnElement[bool]] = []
        if identities:
            linked.append(
                Identity.account_id.in_(
                    select(Identity.account_id).where(
                        Identity.id.in_(identities), Identity.account_id.is_not(None)
                    )
                )
            )
        if account is not None:
            linked.append(Identity.account_id == account.id)
        if linked:
            identities.update(session.scalars(select(Identity.id).where(or_(*linked))))
        row = None
        if identities:
            row = session.scalars(
                select(Sighting)
                .where(Sighting.identity_id.in_(identities))
                .order_by(Sighting.time.desc(), Sighting.id.desc())
                .limit(1)
            ).first()
        if identities and unwritten is not None:
            # Newer than what is written of the same identity: the newest of either wins.
            for values in unwritten.of(identities):
                if row is None or values["time"] >= row.time:
                    row = Sighting(**values)
        if row is None:
            on = f" on {source}" if source else ""
            event.addresponse("I haven't seen %s%s", (who, on))
            return
        event.addresponse(self.describe(who, row))

    def unwritten(self) -> Sightings | None:
        """The sightings this plugin's Record has not written yet (None: it is not
        loaded)."""
        for processor in self.bot.loaded().get(self.name, ()):
            if isinstance(processor, Record):
                return processor.sightings
        return None

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
