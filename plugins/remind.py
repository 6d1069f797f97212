"""Reminders: ``remind me in 10 minutes to stretch``, ``remind alice at 15:30 the meeting``,
``remind me every day at 9:00 to drink water``; ``my reminders`` lists yours and ``cancel
reminder <n>`` drops one. Reminders are kept in the database and survive restarts."""

from __future__ import annotations

import re
import threading
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import Boolean, Integer, String, Text, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from botcore.db.models import Base
from botcore.db.types import UTCDateTime
from botcore.event import Event, EventType, Lifecycle, Sender
from botcore.humanize import duration
from botcore.interfaces import IScheduledCall
from botcore.options import IntOption, TimezoneOption
from botcore.processor import Processor, handler, match


class Reminder(Base):
    """One reminder: where it was set, by whom, for whom, what to say and when. ``every``
    (seconds) repeats it; whole days keep the wall-clock time across DST changes."""

    __tablename__ = "reminders"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    source: Mapped[str] = mapped_column(String(64))
    channel: Mapped[str] = mapped_column(String(255))
    public: Mapped[bool] = mapped_column(Boolean)
    setter_id: Mapped[str] = mapped_column(String(255))
    setter: Mapped[str] = mapped_column(String(255))
    target: Mapped[str] = mapped_column(String(255))
    text: Mapped[str] = mapped_column(Text)
    due: Mapped[datetime] = mapped_column(UTCDateTime())
    every: Mapped[int | None] = mapped_column(Integer, nullable=True)
    created: Mapped[datetime] = mapped_column(UTCDateTime())


class ReminderError(Exception):
    """A reminder that cannot be set; the message is for the user."""


_UNITS = {
    "s": 1,
    "sec": 1,
    "secs": 1,
    "second": 1,
    "seconds": 1,
    "m": 60,
    "min": 60,
    "mins": 60,
    "minute": 60,
    "minutes": 60,
    "h": 3600,
    "hr": 3600,
    "hrs": 3600,
    "hour": 3600,
    "hours": 3600,
    "d": 86400,
    "day": 86400,
    "days": 86400,
    "w": 604800,
    "week": 604800,
    "weeks": 604800,
}
_UNIT = "|".join(sorted(_UNITS, key=len, reverse=True))
# "an hour" needs the space: "and" is not "an d(ay)".
_AMOUNT = rf"(?:(?<!\d)\d{{1,6}}\s*|\b(?:an?|one)\s+)(?:{_UNIT})(?![a-z])"
_DURATION = rf"{_AMOUNT}(?:\s*,?\s*(?:and\s+)?{_AMOUNT})*"
_TIME = r"\d{1,2}(?::\d{2})?\s*(?:[ap]\.?m\.?)?"
_CONNECTOR = r"(?:(?:to|that|about)\s+)?"

_IN = re.compile(rf"^in\s+(?P<duration>{_DURATION})\s+{_CONNECTOR}(?P<text>.+)$", re.I | re.S)
_AT = re.compile(rf"^at\s+(?P<time>{_TIME})\s+{_CONNECTOR}(?P<text>.+)$", re.I | re.S)
_EVERY_DAY = re.compile(
    rf"^(?:every\s+day|daily)\s+at\s+(?P<time>{_TIME})\s+{_CONNECTOR}(?P<text>.+)$", re.I | re.S
)
_EVERY = re.compile(
    rf"^every\s+(?P<duration>{_DURATION}|second|minute|hour|day|week)\s+{_CONNECTOR}(?P<text>.+)$",
    re.I | re.S,
)
_TRAILING_IN = re.compile(
    rf"^{_CONNECTOR}(?P<text>.+?)\s+in\s+(?P<duration>{_DURATION})$", re.I | re.S
)
_PIECE = re.compile(rf"((?<!\d)\d+|\ban?(?=\s)|\bone(?=\s))\s*({_UNIT})(?![a-z])", re.I)


def parse_duration(text: str) -> int:
    """``"1 hour and 30 minutes"`` -> 5400 seconds."""
    total = 0
    for amount, unit in _PIECE.findall(text):
        count = int(amount) if amount.isdigit() else 1
        total += count * _UNITS[unit.lower()]
    if not _PIECE.search(text):
        total = _UNITS[text.strip().lower()]  # "every hour"
    return total


def parse_time(text: str) -> tuple[int, int]:
    """``"15:30"``, ``"9"``, ``"3:15pm"`` -> (hour, minute); ReminderError when impossible."""
    found = re.fullmatch(r"(\d{1,2})(?::(\d{2}))?\s*(?:([ap])\.?m\.?)?", text.strip(), re.I)
    if found is None:
        raise ReminderError(f"I don't understand the time {text!r}")
    hour, minute = int(found.group(1)), int(found.group(2) or 0)
    half = (found.group(3) or "").lower()
    if half:
        if not 1 <= hour <= 12:
            raise ReminderError(f"{text} is not a time")
        hour = hour % 12 + (12 if half == "p" else 0)
    if hour > 23 or minute > 59:
        raise ReminderError(f"{text} is not a time")
    return hour, minute


def next_at(now: datetime, hour: int, minute: int, zone: ZoneInfo) -> datetime:
    """The next moment (UTC) after ``now`` when the clock in ``zone`` shows hour:minute."""
    local = now.astimezone(zone)
    due = local.replace(hour=hour, minute=minute, second=0, microsecond=0)
    if due <= local:
        due = due + timedelta(days=1)  # aware + timedelta is wall-clock arithmetic
    return due.astimezone(UTC)


def next_repeat(due: datetime, every: int, zone: ZoneInfo) -> datetime:
    """``due`` moved on by ``every`` seconds; whole days in wall-clock time of ``zone``."""
    if every % 86400 == 0:
        return (due.astimezone(zone) + timedelta(seconds=every)).astimezone(UTC)
    return due + timedelta(seconds=every)


class Remind(Processor):
    """Sets, lists, cancels and delivers reminders."""

    usage = (
        "remind <me|who> in <duration> [to] <text> | remind <me|who> at <HH:MM> <text> | "
        "remind <me|who> every day at <HH:MM> <text> | remind <me|who> every <duration> "
        "<text> | my reminders | cancel reminder <n>"
    )
    features = ("remind",)
    event_types = (EventType.MESSAGE, EventType.LIFECYCLE)

    timezone = TimezoneOption(
        "Time zone of times people give (at 15:30), as in Europe/Paris.", "UTC"
    )
    max_reminders = IntOption("The most reminders one person may have waiting.", 20, min=1)
    min_interval = IntOption("The shortest repeat interval, in seconds.", 600, min=1)
    max_days = IntOption("How many days ahead a reminder may be set.", 3650, min=1)

    def __init__(self, *args: Any, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self._lock = threading.Lock()
        self._calls: dict[int, IScheduledCall] = {}
        self._loaded = False
        self.zone = ZoneInfo("UTC")

    def setup(self) -> None:
        try:
            self.zone = ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown timezone {self.timezone!r}") from None
        # Loaded into a bot that is already running (a plugin reload): no lifecycle event
        # will come, so load the waiting reminders now, in the pool.
        if self.bot.state == Lifecycle.RUNNING and not self._loaded:
            self._loaded = True
            self.bot.call_later(0, self._thd_reschedule_all, Event("botcore", "remind"))

    def shutdown(self) -> None:
        with self._lock:
            calls, self._calls = self._calls, {}
        for call in calls.values():
            call.cancel()

    def accepts(self, event: Event) -> bool:
        # Lifecycle events are never addressed; everything else is as for any processor.
        if event.type == EventType.LIFECYCLE:
            return True
        return super().accepts(event)

    def now(self) -> datetime:
        return self.bot.now()

    def show(self, when: datetime) -> str:
        local = when.astimezone(self.zone)
        return f"{local:%Y-%m-%d %H:%M} {local.tzname()}"

    # -- scheduling (any thread) ------------------------------------------------------

    def schedule(self, reminder: Reminder) -> None:
        """Arrange delivery of ``reminder`` in its conversation at its due time."""
        delay = max((reminder.due - self.now()).total_seconds(), 0.0)
        event = Event(
            source=reminder.source,
            type=EventType.DELAYED,
            sender=Sender(reminder.source, reminder.setter_id, reminder.setter),
            channel=reminder.channel,
            public=reminder.public,
        )
        call = self.bot.call_later(delay, self._thd_deliver, event, reminder.id)
        with self._lock:
            old = self._calls.pop(reminder.id, None)
            self._calls[reminder.id] = call
        if old is not None:
            old.cancel()

    def unschedule(self, reminder_id: int) -> None:
        with self._lock:
            call = self._calls.pop(reminder_id, None)
        if call is not None:
            call.cancel()

    @handler
    def on_lifecycle(self, event: Event) -> None:
        if event.type != EventType.LIFECYCLE or event.data.get("state") != Lifecycle.RUNNING:
            return
        self._loaded = True
        self._thd_reschedule_all(event)

    def _thd_reschedule_all(self, event: Event) -> None:
        """Schedule every stored reminder (at startup). Worker thread."""
        for reminder in event.session.scalars(select(Reminder)):
            self.schedule(reminder)

    def _thd_deliver(self, event: Event, reminder_id: int) -> None:
        """Say a due reminder in its conversation; repeat or forget it. Worker thread."""
        with self._lock:
            self._calls.pop(reminder_id, None)
        session = event.session
        reminder = session.get(Reminder, reminder_id)
        if reminder is None:
            return  # cancelled meanwhile
        now = self.now()
        if reminder.target == reminder.setter:
            text = f"{reminder.target}: reminder: {reminder.text}"
        else:
            text = f"{reminder.target}: reminder from {reminder.setter}: {reminder.text}"
        if (now - reminder.due).total_seconds() > 60:
            text += f" (late: it was due {self.show(reminder.due)})"
        event.addresponse(text, address=False)
        if reminder.every:
            due = reminder.due
            while due <= now:
                due = next_repeat(due, reminder.every, self.zone)
            reminder.due = due
            session.commit()
            self.schedule(reminder)
        else:
            session.delete(reminder)

    # -- commands -----------------------------------------------------------------------

    @match(r"^\s*remind\s+(\S+)\s+(.+?)\s*$", version="deaddressed", simple=False)
    def set_reminder(self, event: Event, who: str, rest: str) -> None:
        target = event.who.nick if who.lower() in ("me", "myself") else who
        try:
            due, every, text = self.parse(rest)
        except ReminderError as error:
            event.addresponse(str(error))
            return
        session = event.session
        waiting = session.scalars(
            select(Reminder.id).where(
                Reminder.source == event.source, Reminder.setter_id == event.who.id
            )
        ).all()
        if len(waiting) >= self.max_reminders:
            event.addresponse(
                "You already have %d reminders waiting; cancel one first", len(waiting)
            )
            return
        reminder = Reminder(
            source=event.source,
            channel=event.channel or event.who.nick,
            public=event.public,
            setter_id=event.who.id,
            setter=event.who.nick,
            target=target,
            text=text,
            due=due,
            every=every,
            created=self.now(),
        )
        session.add(reminder)
        session.commit()
        self.schedule(reminder)
        whom = "you" if target == event.who.nick else target
        when = f"at {self.show(due)} (in {duration((due - self.now()).total_seconds())})"
        if every:
            when += f", then every {duration(every)}"
        event.addresponse("Okay, I'll remind %s %s [#%d]", (whom, when, reminder.id))

    def parse(self, rest: str) -> tuple[datetime, int | None, str]:
        """(due, repeat seconds or None, text) from what follows ``remind <who>``."""
        now = self.now()
        every: int | None = None
        found = _EVERY_DAY.match(rest)
        if found:
            due = next_at(now, *parse_time(found["time"]), self.zone)
            every = 86400
        elif found := _EVERY.match(rest):
            every = parse_duration(found["duration"])
            if every < self.min_interval:
                raise ReminderError(
                    f"I won't repeat a reminder more often than every "
                    f"{duration(self.min_interval)}"
                )
            due = now + timedelta(seconds=every)
        elif found := _AT.match(rest):
            due = next_at(now, *parse_time(found["time"]), self.zone)
        elif found := (_IN.match(rest) or _TRAILING_IN.match(rest)):
            seconds = parse_duration(found["duration"])
            if seconds <= 0:
                raise ReminderError("That's now!")
            if seconds > self.max_days * 86400:
                raise ReminderError(
                    f"I can't remember things more than {self.max_days} days ahead"
                )
            due = now + timedelta(seconds=seconds)
        else:
            raise ReminderError(
                "When? Say 'remind me in 10 minutes to ...', 'remind me at 15:30 ...' "
                "or 'remind me every day at 9:00 ...'"
            )
        if every is not None and every > self.max_days * 86400:
            raise ReminderError(f"I can't remember things more than {self.max_days} days ahead")
        text = found["text"].strip()
        if not text:
            raise ReminderError("Remind you of what?")
        return due, every, text

    def _mine(self, session: Session, event: Event) -> list[Reminder]:
        return list(
            session.scalars(
                select(Reminder)
                .where(Reminder.source == event.source, Reminder.setter_id == event.who.id)
                .order_by(Reminder.due, Reminder.id)
            )
        )

    @match(r"^\s*(?:my|list(?:\s+my)?)\s+reminders\s*$", simple=False)
    def list_reminders(self, event: Event) -> None:
        mine = self._mine(event.session, event)
        if not mine:
            event.addresponse("You have no reminders waiting")
            return
        parts = []
        for reminder in mine:
            whom = "" if reminder.target == reminder.setter else f" for {reminder.target}"
            repeat = f" (every {duration(reminder.every)})" if reminder.every else ""
            parts.append(
                f"#{reminder.id}{whom} at {self.show(reminder.due)}{repeat}: {reminder.text}"
            )
        event.addresponse("; ".join(parts))

    @match(r"^\s*(?:cancel|delete|forget)\s+reminder\s+#?(\d{1,12})\s*$", simple=False)
    def cancel_reminder(self, event: Event, number: str) -> None:
        session = event.session
        reminder = session.get(Reminder, int(number))
        if (
            reminder is None
            or reminder.source != event.source
            or reminder.setter_id != event.who.id
        ):
            event.addresponse("You have no reminder #%s; see 'my reminders'", number)
            return
        session.delete(reminder)
        session.commit()
        self.unschedule(reminder.id)
        event.addresponse("Okay, reminder #%s is cancelled", number)
