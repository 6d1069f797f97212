"""Karma: say ``foo++``, ``foo--`` or ``foo==`` (optionally with a reason in brackets,
``python++ (for list comprehensions)``) to vote on anything; ``karma for foo`` tells its
score, ``karmaladder`` and ``reverse karmaladder`` the best and worst. Names ignore case;
nobody can vote on their own nick. Where a network has channels (IRC), votes count only
when said in one, unless configured; where it has none (the console), every
conversation is private and votes count there.

Votes are written behind: kept in memory, summed per subject, and written in one batch
every ``flush_interval`` seconds, when the bot stops and when the plugin is unloaded or
reloaded, so a clean stop loses no vote and a crash at most the last interval's
(``karma for``, the ladders and a vote's answer count the unwritten ones too).
``flush_interval = 0`` writes each vote at once."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any, NamedTuple

from sqlalchemy import ForeignKey, Integer, String, Text, bindparam, delete, select
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Mapped, Session, mapped_column

from botcore.db.behind import Behind, WritesBehind
from botcore.db.engine import mark_written
from botcore.db.models import Base
from botcore.db.types import CIText, UTCDateTime, fold, utcnow
from botcore.db.upsert import Upsert
from botcore.event import Event
from botcore.interfaces import IChannelSource
from botcore.options import BoolOption, FloatOption, IntOption, ListOption
from botcore.processor import Priority, Processor, authorise, handler, match

#: The longest subject and reason stored.
MAX_SUBJECT = 255
MAX_REASON = 1000


class Karma(Base):
    """The score of one subject (unique, ignoring case)."""

    __tablename__ = "karma"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    subject: Mapped[str] = mapped_column(CIText(MAX_SUBJECT), unique=True)
    value: Mapped[int] = mapped_column(Integer, default=0)
    created: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)


class KarmaVote(Base):
    """One vote: who changed which subject's karma, by how much, why and when."""

    __tablename__ = "karma_votes"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    karma_id: Mapped[int] = mapped_column(ForeignKey("karma.id", ondelete="CASCADE"), index=True)
    voter: Mapped[str] = mapped_column(String(255))
    change: Mapped[int] = mapped_column(Integer)
    reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    time: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


# The tables behind the models, for the Core statements below: from the metadata, since a
# model's __table__ is typed as any FromClause (which has no insert or delete).
_karma = Base.metadata.tables[Karma.__tablename__]
_votes = Base.metadata.tables[KarmaVote.__tablename__]
_ID = select(_karma.c.id).where(_karma.c.subject == bindparam("p_subject"))


# Creates the subject or adds to its value in one statement: two votes for the same new
# subject at once cannot lose one (the database serialises them on the unique key).
_VOTE = Upsert(
    _karma,
    key=("subject",),
    columns=("subject", "value", "created", "updated"),
    update=lambda new: {"value": _karma.c.value + new.value, "updated": new.updated},
)


#: A subject's stored score, and its id and score (built once: building costs more than
#: running them).
_VALUE = select(_karma.c.value).where(_karma.c.subject == bindparam("p_subject"))
_ID_VALUE = select(_karma.c.id, _karma.c.value).where(_karma.c.subject == bindparam("p_subject"))
_INSERT_VOTE = _votes.insert()


def change_karma(
    session: Session, subject: str, change: int, voter: str, reason: str | None = None
) -> int:
    """Add ``change`` to ``subject``'s karma (creating it at 0 first) and record the vote;
    return the new value. Worker thread; the caller's transaction commits it."""
    now = utcnow()
    _VOTE.execute(session, {"subject": subject, "value": change, "created": now, "updated": now})
    connection = session.connection()
    karma_id, value = connection.execute(_ID_VALUE, {"p_subject": subject}).one()
    connection.execute(
        _INSERT_VOTE,
        {
            "karma_id": karma_id,
            "voter": voter[:255],
            "change": change,
            "reason": reason,
            "time": now,
        },
    )
    return value


class Vote(NamedTuple):
    """One vote not yet written."""

    voter: str
    change: int
    reason: str | None
    time: datetime


class Tally(NamedTuple):
    """A subject's unwritten votes: its spelling (the first vote's), their sum and each."""

    subject: str
    change: int
    votes: tuple[Vote, ...]


def _add_votes(old: Tally, new: Tally) -> Tally:
    return Tally(old.subject, old.change + new.change, old.votes + new.votes)


def write_votes(session: Session, tallies: list[Tally]) -> None:
    """Add each tally's sum to its subject's karma (creating it at 0 first) and record its
    votes: one upsert of every subject, one select of their ids, one insert of every vote.
    Worker thread; the caller's transaction commits it."""
    if not tallies:
        return
    connection = session.connection()
    # In one order, so that two writers lock the rows alike.
    tallies = sorted(tallies, key=lambda tally: fold(tally.subject))
    connection.execute(
        _VOTE.statement(connection.dialect.name),
        [
            {
                "p_subject": tally.subject,
                "p_value": tally.change,
                "p_created": tally.votes[0].time,
                "p_updated": tally.votes[-1].time,
            }
            for tally in tallies
        ],
    )
    ids = {
        fold(subject): karma_id
        for karma_id, subject in connection.execute(
            select(_karma.c.id, _karma.c.subject).where(
                _karma.c.subject.in_([tally.subject for tally in tallies])
            )
        )
    }
    connection.execute(
        _INSERT_VOTE,
        [
            {
                "karma_id": ids[fold(tally.subject)],
                "voter": vote.voter[:255],
                "change": vote.change,
                "reason": vote.reason,
                "time": vote.time,
            }
            for tally in tallies
            for vote in tally.votes
        ],
    )
    mark_written(session)


def stored_value(connection: Connection, subject: str) -> int | None:
    """``subject``'s written score, or None when it has none."""
    return connection.execute(_VALUE, {"p_subject": subject}).scalar_one_or_none()


def _alternatives(tokens: list[str]) -> str:
    return "|".join(re.escape(token) for token in sorted(tokens, key=len, reverse=True))


class Set(WritesBehind):
    """Changes karma: ``<subject>++``, ``<subject>--``, ``<subject>==``, each optionally
    followed by a reason in brackets. A subject is one word, or several in parentheses:
    ``(free software)++``."""

    usage = "<subject>(++|--|==) [(<reason>)]"
    features = ("karma",)
    addressed = False
    priority = Priority.EARLY  # before the factoids (FALLBACK), which would read "foo++"

    increase = ListOption("Tokens that add one to the karma of what precedes them.", ["++"])
    decrease = ListOption("Tokens that take one from the karma of what precedes them.", ["--"])
    neutral = ListOption(
        "Tokens that record a vote without changing the karma of what precedes them.", ["=="]
    )
    public_only = BoolOption(
        "On sources with channels (IRC), only count votes said in a channel (a private "
        "vote is refused with a reason); on sources without (the console) votes count.",
        True,
    )
    reply = BoolOption(
        "Answer every vote with the new score (otherwise only votes addressed to the bot "
        "are answered).",
        False,
    )
    ignore = ListOption("Subjects whose karma cannot be changed.", [])
    flush_interval = FloatOption(
        "Seconds between writes of the votes, summed per subject in one batch (also "
        "written when the bot stops and when the plugin is unloaded or reloaded; a crash "
        "loses at most this many seconds of them). 0 writes each vote at once.",
        2.0,
        min=0,
    )

    def __init__(self, *args: Any, **kw: Any) -> None:
        super().__init__(*args, **kw)
        #: Folded subject -> its unwritten votes.
        self.behind: Behind[str, Tally] = Behind(_add_votes)
        self._pattern: re.Pattern[str] | None = None
        self._changes: dict[str, int] = {}
        self._ignored: frozenset[str] = frozenset()

    def setup(self) -> None:
        changes: dict[str, int] = {}
        for tokens, change in ((self.neutral, 0), (self.decrease, -1), (self.increase, 1)):
            for token in tokens:
                changes[token] = change
        self._changes = changes
        self._ignored = frozenset(subject.casefold() for subject in self.ignore)
        if not changes:
            self._pattern = None
            return
        tokens = _alternatives(list(changes))
        self._pattern = re.compile(
            rf"^\s*(?:\((?P<phrase>[^()]+)\)|(?P<word>\S+?))\s*(?P<token>{tokens})"
            rf"(?:\s*[\[({{]\s*(?P<reason>.+?)\s*[\])}}])?\s*$",
            re.DOTALL,
        )

    def _has_channels(self, source: str) -> bool:
        """Whether the source has channels, as it says by providing `IChannelSource`: a
        private vote there could have been said in public. The console has none, so its
        conversations, all private, are where karma is used. Any thread."""
        found = self.bot.get_source(source)
        return found is None or IChannelSource.providedBy(found)

    @handler
    def vote(self, event: Event) -> None:
        if event.message is None or self._pattern is None:
            return
        found = self._pattern.match(event.message.deaddressed)
        if found is None:
            return
        subject = " ".join((found.group("phrase") or found.group("word")).split())
        if not subject or "\n" in found.group(0).strip():
            return
        if self.public_only and not event.public and self._has_channels(event.source):
            event.addresponse("Karma can only be changed in public")
            return
        if len(subject) > MAX_SUBJECT:
            event.addresponse("That's too long for karma (at most %d characters)", MAX_SUBJECT)
            return
        if event.sender is not None and subject.casefold() == event.sender.nick.casefold():
            event.addresponse("You can't change your own karma")
            return
        if subject.casefold() in self._ignored:
            event.processed = True
            return
        reason = found.group("reason")
        if reason is not None:
            reason = reason[:MAX_REASON]
        change = self._changes[found.group("token")]
        voter = f"{event.source}:{event.sender.id}" if event.sender else event.source
        vote = Vote(voter, change, reason, utcnow())
        self.behind.add(fold(subject), Tally(subject, change, (vote,)))
        self.added(event)
        if self.reply or event.addressed:
            value = self.value(event.session.connection(), subject)
            event.addresponse("%s now has karma of %d", (subject, value or 0))
        else:
            event.processed = True

    def write_behind(self, event: Event | None, batch: dict[str, Tally]) -> None:
        assert event is not None
        write_votes(event.session, list(batch.values()))

    def value(self, connection: Connection, subject: str) -> int | None:
        """``subject``'s score, its unwritten votes counted (None: it has none). The
        unwritten ones are read first: a flush that ends in between is counted twice
        rather than not at all."""
        tally = self.behind.get(fold(subject))
        stored = stored_value(connection, subject)
        if tally is None:
            return stored
        return (stored or 0) + tally.change


class Get(Processor):
    """Tells karma: ``karma for <subject>``, ``karmaladder`` (the highest scores) and
    ``reverse karmaladder`` (the lowest)."""

    usage = "karma for <subject> | karmaladder | reverse karmaladder"
    features = ("karma",)

    ladder = IntOption("Subjects listed by karmaladder.", 10, min=1)

    @match(r"karma\s+for\s+(.+)\Z", simple=False)
    def karma(self, event: Event, subject: str) -> None:
        subject = " ".join(subject.strip("()").split())
        connection = event.session.connection()
        setter = voting(self)
        if setter is None:
            value = stored_value(connection, subject)
        else:
            value = setter.value(connection, subject)
        if value is None:
            event.addresponse("%s has no karma", subject)
        else:
            event.addresponse("%s has karma of %d", (subject, value))

    @match(r"(reverse\s+)?karma\s*ladder\Z", simple=False)
    def ladder_of(self, event: Event, reverse: str | None) -> None:
        setter = voting(self)
        tallies = [] if setter is None else setter.behind.values()
        unwritten = {fold(tally.subject): tally for tally in tallies}
        order = _karma.c.value.asc() if reverse else _karma.c.value.desc()
        session = event.session
        # Enough of the written ones that those the unwritten votes push down are made up
        # for; then the unwritten subjects' own scores.
        rows = dict(
            session.execute(
                select(_karma.c.subject, _karma.c.value)
                .order_by(order, _karma.c.subject)
                .limit(self.ladder + len(unwritten))
            ).all()
        )
        if not unwritten:
            ranked = list(rows.items())[: self.ladder]
        else:
            ranked = self._ranked(session, rows, unwritten, bool(reverse))
        if not ranked:
            event.addresponse("Nobody has any karma yet")
            return
        event.addresponse(", ".join(f"{subject}: {value}" for subject, value in ranked))

    def _ranked(
        self, session: Session, rows: dict[str, int], unwritten: dict[str, Tally], reverse: bool
    ) -> list[tuple[str, int]]:
        """The ladder of the written scores ``rows`` with the ``unwritten`` votes counted."""
        scores = {fold(subject): (subject, value) for subject, value in rows.items()}
        if unwritten:
            stored = dict(
                session.execute(
                    select(_karma.c.subject, _karma.c.value).where(
                        _karma.c.subject.in_([tally.subject for tally in unwritten.values()])
                    )
                ).all()
            )
            stored = {fold(subject): (subject, value) for subject, value in stored.items()}
            for key, tally in unwritten.items():
                subject, value = stored.get(key, (tally.subject, 0))
                scores[key] = (subject, value + tally.change)
        return sorted(
            scores.values(), key=lambda item: (item[1] if reverse else -item[1], fold(item[0]))
        )[: self.ladder]


def voting(processor: Processor) -> Set | None:
    """The plugin's Set, which holds the unwritten votes (None: it is not loaded)."""
    for other in processor.bot.loaded().get(processor.name, ()):
        if isinstance(other, Set):
            return other
    return None


class Forget(Processor):
    """Forgets a subject's karma and its votes: ``forget karma for <subject>`` (needs the
    ``karmaadmin`` permission)."""

    usage = "forget karma for <subject>"
    features = ("karma",)
    permission = "karmaadmin"

    @match(r"forget\s+karma\s+(?:for\s+)?(.+)\Z", simple=False)
    @authorise(fallthrough=False)
    def forget(self, event: Event, subject: str) -> None:
        subject = " ".join(subject.strip("()").split())
        session = event.session
        # The unwritten votes first (committed), so that none comes back after.
        setter = voting(self)
        if setter is not None:
            setter.flush_behind(event)
        karma_id = session.execute(_ID, {"p_subject": subject}).scalar_one_or_none()
        if karma_id is None:
            event.addresponse("%s has no karma to forget", subject)
            return
        session.execute(delete(_votes).where(_votes.c.karma_id == karma_id))
        session.execute(delete(_karma).where(_karma.c.id == karma_id))
        event.addresponse(True)
