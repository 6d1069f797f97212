"""Reminders: ``remind me in 10 minutes to stretch``, ``remind alice at 15:30 the meeting``,
``remind me every day at 9:00 to drink water``; ``my reminders`` lists yours and ``cancel
reminder <n>`` drops one. Reminders are kept in the database and survive restarts; one
that falls due while its network is not connected is said as soon as it is. One for
someone the network knows is not there (nobody on the console has their nick) waits for
them to come back, for ``absent_keep`` seconds at most, and is then dropped."""

from __future__ import annotations

import re
import threading
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import Boolean, Integer, String, Text, func, select
from sqlalchemy.orm import Mapped, Session, mapped_column
from twisted.internet.defer import Deferred
from twisted.logger import Logger
from twisted.python.failure import Failure

from botcore.db.models import Base
from botcore.db.types import UTCDateTime
from botcore.event import Event, EventType, Lifecycle, Sender
from botcore.humanize import duration
from botcore.interfaces import IScheduledCall
from botcore.options import FloatOption, IntOption, TimezoneOption
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


def _delayed(reminder: Reminder, data: dict[str, Any] | None = None) -> Event:
    """A delayed event in ``reminder``'s conversation, from its setter."""
    return Event(
        source=reminder.source,
        type=EventType.DELAYED,
        sender=Sender(reminder.source, reminder.setter_id, reminder.setter),
        channel=reminder.channel,
        public=reminder.public,
        data=data or {},
    )


class Remind(Processor):
    """Sets, lists, cancels and delivers reminders."""

    usage = (
        "remind <me|who> in <duration> [to] <text> | remind <me|who> at <HH:MM> <text> | "
        "remind <me|who> every day at <HH:MM> <text> | remind <me|who> every <duration> "
        "<text> | my reminders | cancel reminder <n>"
    )
    features = ("remind",)
    event_types = (EventType.MESSAGE, EventType.LIFECYCLE, EventType.DELAYED)

    timezone = TimezoneOption(
        "Time zone of times people give (at 15:30), as in Europe/Paris.", "UTC"
    )
    max_reminders = IntOption("The most reminders one person may have waiting.", 20, min=1)
    max_per_conversation = IntOption(
        "The most reminders waiting to be said in one conversation (a channel, or in "
        "private one person), whoever set them.",
        50,
        min=1,
    )
    max_per_source = IntOption(
        "The most reminders waiting on one source (network) in all, whoever set them: "
        "strangers cannot fill the database, however many nicks they use.",
        2000,
        min=1,
    )
    min_interval = IntOption("The shortest repeat interval, in seconds.", 600, min=1)
    max_days = IntOption("How many days ahead a reminder may be set.", 3650, min=1)
    source_wait = FloatOption(
        "Seconds a due reminder waits for its source (network) to connect before it looks "
        "for the source again; it is said as soon as the source connects, and kept in the "
        "database until it has been sent.",
        600.0,
        min=1,
    )

    absent_check = FloatOption(
        "Seconds between looks for the person a due reminder is for, when its source "
        "knows they are not there (the console); it is said once they are.",
        60.0,
        min=1,
    )
    absent_keep = FloatOption(
        "Seconds after its time a reminder for someone who is not there (on a source "
        "that can tell, the console) is kept waiting for them; then it is dropped, a "
        "repeating one too.",
        7 * 86400.0,
        min=0,
    )

    log = Logger()

    def __init__(self, *args: Any, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self._lock = threading.Lock()
        #: Held while a new reminder is counted against the caps and stored, so that
        #: conversations setting reminders at once cannot pass a cap together.
        self._setting = threading.Lock()
        self._calls: dict[int, IScheduledCall] = {}
        #: Due reminders waiting for their source to connect (reactor thread only).
        self._waits: dict[int, Deferred[None]] = {}
        self._shut = False
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
        self._shut = True
        with self._lock:
            calls, self._calls = self._calls, {}
        for call in calls.values():
            call.cancel()
        self.bot.call_from_thread(self._stop_waiting)

    def _stop_waiting(self) -> None:
        waits, self._waits = self._waits, {}
        for d in waits.values():
            d.cancel()

    def accepts(self, event: Event) -> bool:
        # Lifecycle events are never addressed, nor are the deliveries this processor
        # dispatches; everything else is as for any processor.
        if event.type == EventType.LIFECYCLE:
            return True
        if event.type == EventType.DELAYED:
            return "remind" in event.data
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
        call = self.bot.call_later(delay, self._thd_due, _delayed(reminder), reminder.id)
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
        self.bot.call_from_thread(self._stop_wait, reminder_id)

    def _stop_wait(self, reminder_id: int) -> None:
        wait = self._waits.pop(reminder_id, None)
        if wait is not None:
            wait.cancel()

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

    # -- delivery ------------------------------------------------------------------------
    #
    # A due reminder is said only to a connected source, and forgotten only once it has
    # been sent: at its time (_thd_due, worker thread) it is handed to the reactor
    # thread (_deliver), which waits for the source to be connected, then dispatches a
    # delivery event that this processor answers with the reminder's text
    # (_thd_say). When the dispatcher has sent the replies and the source is still
    # connected, the reminder is deleted, or moved to its next time (_thd_sent).

    def _thd_due(self, event: Event, reminder_id: int) -> None:
        """A reminder's time has come: deliver it once its source is connected. Worker
        thread."""
        with self._lock:
            self._calls.pop(reminder_id, None)
        reminder = event.session.get(Reminder, reminder_id)
        if reminder is None:
            return  # cancelled meanwhile
        data = {"remind": reminder_id, "due": reminder.due.timestamp()}
        self.bot.call_from_thread(self._deliver, _delayed(reminder, data))

    def _deliver(self, delivery: Event) -> None:
        """Dispatch ``delivery`` if its source is connected, else wait for it. Reactor
        thread."""
        if self._shut:
            return
        reminder_id = delivery.data["remind"]
        source = self.bot.get_source(delivery.source)
        if source is None or source.state != "connected":
            self._wait(delivery, source)
            return
        if source.is_present(delivery.channel) is False:
            self._absent(delivery)
            return
        # A fresh event each time: a try whose reply was lost must not be said again.
        d = self.bot.dispatch(delivery.derive(EventType.DELAYED))
        d.addCallbacks(self._dispatched, self._not_dispatched, (source,), {}, (reminder_id,))

    def _absent(self, delivery: Event) -> None:
        """The reminder's person is not there (the source knows): look again after
        ``absent_check`` seconds, or, ``absent_keep`` seconds after its time, drop it.
        Reactor thread."""
        reminder_id = delivery.data["remind"]
        late = self.bot.seconds() - float(delivery.data.get("due", self.bot.seconds()))
        if late > self.absent_keep:
            self.log.info(
                "reminder #{id} dropped: {target} on {source} has not been there since it "
                "was due, {late} ago",
                id=reminder_id,
                target=delivery.channel,
                source=delivery.source,
                late=duration(late),
            )
            self.bot.call_later(0, self._thd_drop, Event("botcore", "remind"), reminder_id)
            return
        self._wait(delivery, None, self.absent_check)

    def _thd_drop(self, event: Event, reminder_id: int) -> None:
        """Forget a reminder whose person has gone. Worker thread."""
        reminder = event.session.get(Reminder, reminder_id)
        if reminder is not None:
            event.session.delete(reminder)

    def _wait(self, delivery: Event, source: Any, timeout: float | None = None) -> None:
        """Deliver when ``source`` connects, or look for the source again after
        ``source_wait`` seconds (it may have been loaded or reloaded); with ``source``
        None and a ``timeout``, only look again after that long. Reactor thread."""
        if self._shut:
            return
        reminder_id = delivery.data["remind"]
        if timeout is not None:
            wait: Deferred[None] = Deferred()
        elif source is None:
            self.log.info(
                "reminder #{id} is due but source {source} is not running; it waits",
                id=reminder_id,
                source=delivery.source,
            )
            wait = Deferred()
        else:
            wait = source.when_connected()
        old = self._waits.pop(reminder_id, None)
        self._waits[reminder_id] = wait
        if old is not None:
            old.cancel()
        wait.addTimeout(timeout or self.source_wait, self.bot.reactor)

        def done(result: Any) -> None:
            if self._waits.get(reminder_id) is not wait:
                return  # cancelled (reminder cancelled, plugin unloaded) or replaced
            del self._waits[reminder_id]
            self._deliver(delivery)

        wait.addBoth(done)

    def _not_dispatched(self, failure: Failure, reminder_id: int) -> None:
        # The bot is stopping: the reminder stays in the database for the next start.
        self.log.info(
            "reminder #{id} not delivered: {why}; kept", id=reminder_id, why=failure.value
        )

    def _dispatched(self, delivery: Event, source: Any) -> None:
        """The delivery's replies have been handed to the source: forget the reminder if
        it said something and the source took it while connected. Reactor thread."""
        said = any(r.source == delivery.source for r in delivery.responses)
        if not said:
            return  # cancelled meanwhile (or another processor took it over)
        current = self.bot.get_source(delivery.source)
        if current is None or current is not source or current.state != "connected":
            # Dropped by a source that lost its connection: it is said again later.
            self._wait(delivery, current)
            return
        if current.is_present(delivery.channel) is False:
            # Dropped: its person left before it was sent. It waits for them.
            self._absent(delivery)
            return
        self.bot.call_later(0, self._thd_sent, Event("botcore", "remind"), delivery.data["remind"])

    @handler
    def _thd_say(self, event: Event) -> None:
        """Answer a delivery event with its reminder's text. Worker thread."""
        if event.type != EventType.DELAYED or "remind" not in event.data:
            return
        reminder = event.session.get(Reminder, event.data["remind"])
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

    def _thd_sent(self, event: Event, reminder_id: int) -> None:
        """A reminder was sent: repeat or forget it. Worker thread."""
        session = event.session
        reminder = session.get(Reminder, reminder_id)
        if reminder is None:
            return
        if reminder.every:
            now = self.now()
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
        channel = event.channel if event.public and event.channel else target
        with self._setting:
            session = event.session
            refusal = self._over_cap(session, event, channel)
            if refusal is not None:
                event.addresponse(refusal)
                return
            reminder = Reminder(
                source=event.source,
                # In private, the reminder is said to whom it is for (a reminder for alice
                # set in private with bob is no use in bob's conversation, gone when he
                # has).
                channel=channel,
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

    def _over_cap(self, session: Session, event: Event, channel: str) -> str | None:
        """Why one more reminder from the event's sender in ``channel`` would pass a cap
        (the sender's, the conversation's, the source's), in words for them; or None."""

        def count(*where: Any) -> int:
            query = select(func.count()).select_from(Reminder).where(*where)
            return int(session.scalar(query) or 0)

        mine = count(Reminder.source == event.source, Reminder.setter_id == event.who.id)
        if mine >= self.max_reminders:
            return f"You already have {mine} reminders waiting; cancel one first"
        here = count(Reminder.source == event.source, Reminder.channel == channel)
        if here >= self.max_per_conversation:
            where = "here" if event.public else f"for {channel}"
            return (
                f"There are already {here} reminders waiting {where}; "
                "try again once some have been said"
            )
        total = count(Reminder.source == event.source)
        if total >= self.max_per_source:
            return (
                f"I'm already keeping {total} reminders for this network; "
                "try again once some have been said"
            )
        return None

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
