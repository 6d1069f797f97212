"""Karma: say ``foo++``, ``foo--`` or ``foo==`` (optionally with a reason in brackets,
``python++ (for list comprehensions)``) to vote on anything; ``karma for foo`` tells its
score, ``karmaladder`` and ``reverse karmaladder`` the best and worst. Names ignore case;
nobody can vote on their own nick. Where a network has channels (IRC), votes count only
when said in one, unless configured; where it has none (the console), every
conversation is private and votes count there."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Integer, String, Text, bindparam, delete, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from botcore.db.models import Base
from botcore.db.types import CIText, UTCDateTime, utcnow
from botcore.db.upsert import Upsert
from botcore.event import Event
from botcore.interfaces import IChannelSource
from botcore.options import BoolOption, IntOption, ListOption
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


def change_karma(
    session: Session, subject: str, change: int, voter: str, reason: str | None = None
) -> int:
    """Add ``change`` to ``subject``'s karma (creating it at 0 first) and record the vote;
    return the new value. Worker thread; the caller's transaction commits it."""
    now = utcnow()
    _VOTE.execute(session, {"subject": subject, "value": change, "created": now, "updated": now})
    connection = session.connection()
    karma_id, value = connection.execute(
        select(_karma.c.id, _karma.c.value).where(_karma.c.subject == subject)
    ).one()
    connection.execute(
        _votes.insert().values(
            karma_id=karma_id, voter=voter[:255], change=change, reason=reason, time=now
        )
    )
    return value


def _alternatives(tokens: list[str]) -> str:
    return "|".join(re.escape(token) for token in sorted(tokens, key=len, reverse=True))


class Set(Processor):
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

    def __init__(self, *args: Any, **kw: Any) -> None:
        super().__init__(*args, **kw)
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
        value = change_karma(event.session, subject, change, voter, reason)
        if self.reply or event.addressed:
            event.addresponse("%s now has karma of %d", (subject, value))
        else:
            event.processed = True


class Get(Processor):
    """Tells karma: ``karma for <subject>``, ``karmaladder`` (the highest scores) and
    ``reverse karmaladder`` (the lowest)."""

    usage = "karma for <subject> | karmaladder | reverse karmaladder"
    features = ("karma",)

    ladder = IntOption("Subjects listed by karmaladder.", 10, min=1)

    @match(r"karma\s+for\s+(.+)\Z", simple=False)
    def karma(self, event: Event, subject: str) -> None:
        subject = " ".join(subject.strip("()").split())
        value = event.session.execute(
            select(_karma.c.value).where(_karma.c.subject == subject)
        ).scalar_one_or_none()
        if value is None:
            event.addresponse("%s has no karma", subject)
        else:
            event.addresponse("%s has karma of %d", (subject, value))

    @match(r"(reverse\s+)?karma\s*ladder\Z", simple=False)
    def ladder_of(self, event: Event, reverse: str | None) -> None:
        order = _karma.c.value.asc() if reverse else _karma.c.value.desc()
        rows = event.session.execute(
            select(_karma.c.subject, _karma.c.value)
            .order_by(order, _karma.c.subject)
            .limit(self.ladder)
        ).all()
        if not rows:
            event.addresponse("Nobody has any karma yet")
            return
        event.addresponse(", ".join(f"{subject}: {value}" for subject, value in rows))


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
        karma_id = session.execute(_ID, {"p_subject": subject}).scalar_one_or_none()
        if karma_id is None:
            event.addresponse("%s has no karma to forget", subject)
            return
        session.execute(delete(_votes).where(_votes.c.karma_id == karma_id))
        session.execute(delete(_karma).where(_karma.c.id == karma_id))
        event.addresponse(True)
