"""The event log: an opt-in record of the bot's events in the database (``event_log``),
written in batches off the conversations' path, pruned by age and count on a schedule,
and read back with filters (`recent`, ``botcore-db events``, the HTTP API).

The Python API for readers is `EventFilter`, `recent`, `parse_when` and `LoggedEvent`;
they take a session, so any thread that may use the database may call them."""

from __future__ import annotations

import json
import re
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, cast

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CursorResult,
    Integer,
    String,
    Table,
    Text,
    delete,
    insert,
    select,
)
from sqlalchemy.orm import Mapped, Session, mapped_column
from twisted.application.service import Service
from twisted.internet.defer import Deferred, succeed
from twisted.internet.task import LoopingCall
from twisted.logger import Logger
from twisted.python.threadpool import ThreadPool

from botcore.db.models import Base
from botcore.db.types import UTCDateTime
from botcore.event import Event, EventType
from botcore.options import BoolOption, ChoiceOption, FloatOption, IntOption, ListOption

if TYPE_CHECKING:
    from botcore.bus.catalogue import Catalogue
    from botcore.db.service import Database
    from botcore.interfaces import Reactor

#: Column sizes; longer values are cut (the type and source names are short by nature).
MAX_NAME = 100
MAX_PLACE = 255
#: The most text of a message recorded (``full`` payloads).
MAX_TEXT = 2000
#: The most rows `recent` returns, whatever the caller asks.
MAX_LIMIT = 1000

_ID = BigInteger().with_variant(Integer(), "sqlite")


class EventRecord(Base):
    """One recorded event."""

    __tablename__ = "event_log"

    id: Mapped[int] = mapped_column(_ID, primary_key=True, autoincrement=True)
    event_id: Mapped[str] = mapped_column(String(32))
    time: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    type: Mapped[str] = mapped_column(String(MAX_NAME), index=True)
    source: Mapped[str] = mapped_column(String(MAX_NAME), index=True)
    channel: Mapped[str | None] = mapped_column(String(MAX_PLACE), nullable=True)
    public: Mapped[bool] = mapped_column(Boolean)
    sender: Mapped[str | None] = mapped_column(String(MAX_PLACE), nullable=True)
    #: What the event's payload and text were like: its keys and the text's length.
    summary: Mapped[str] = mapped_column(String(MAX_PLACE))
    #: The payload and the message's text (as the processors left it: secrets taken
    #: out), with ``payload = full`` only.
    payload: Mapped[Any] = mapped_column(JSON, nullable=True)
    text: Mapped[str | None] = mapped_column(Text, nullable=True)


_table = cast(Table, EventRecord.__table__)


@dataclass(frozen=True)
class EventFilter:
    """Which recorded events `recent` returns: all of ``types`` (exact names; empty: any),
    of ``source`` and ``channel`` when given, from ``since`` (included) to ``until``
    (excluded)."""

    types: tuple[str, ...] = ()
    source: str | None = None
    channel: str | None = None
    since: datetime | None = None
    until: datetime | None = None


@dataclass(frozen=True)
class LoggedEvent:
    """One row of the event log, as readers get it."""

    id: int
    event_id: str
    time: datetime
    type: str
    source: str
    channel: str | None
    public: bool
    sender: str | None
    summary: str
    payload: Any
    text: str | None

    def as_dict(self) -> dict[str, Any]:
        """The row as JSON-ready values (the time in ISO 8601, UTC)."""
        return {
            "id": self.id,
            "event_id": self.event_id,
            "time": self.time.isoformat(),
            "type": self.type,
            "source": self.source,
            "channel": self.channel,
            "public": self.public,
            "sender": self.sender,
            "summary": self.summary,
            "payload": self.payload,
            "text": self.text,
        }


def recent(
    session: Session, filters: EventFilter | None = None, limit: int = 50
) -> list[LoggedEvent]:
    """The newest ``limit`` (at most `MAX_LIMIT`) recorded events that pass ``filters``,
    newest first. Any thread with a session."""
    filters = filters or EventFilter()
    limit = max(0, min(int(limit), MAX_LIMIT))
    query = select(_table)
    if filters.types:
        query = query.where(_table.c.type.in_(filters.types))
    if filters.source is not None:
        query = query.where(_table.c.source == filters.source)
    if filters.channel is not None:
        query = query.where(_table.c.channel == filters.channel)
    if filters.since is not None:
        query = query.where(_table.c.time >= filters.since)
    if filters.until is not None:
        query = query.where(_table.c.time < filters.until)
    query = query.order_by(_table.c.id.desc()).limit(limit)
    return [LoggedEvent(**row._mapping) for row in session.execute(query)]


_RELATIVE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$", re.IGNORECASE)
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_when(text: str, now: datetime) -> datetime:
    """A time given as ISO 8601 (``2026-12-01``, ``2026-12-01T10:30``, with ``Z`` or an
    offset; without one it is UTC) or as a time ago (``90s``, ``15m``, ``2h``, ``7d``,
    ``1w``) before ``now``; ValueError saying what was expected."""
    relative = _RELATIVE.match(text)
    if relative is not None:
        seconds = float(relative.group(1)) * _UNITS[relative.group(2).lower()]
        return now - timedelta(seconds=seconds)
    try:
        when = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(
            f"expected a time such as 2026-12-01T10:30 (UTC unless it says otherwise) or "
            f"a time ago such as 15m, 2h or 7d, not {text!r}"
        ) from None
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)


def prune(session: Session, now: datetime, keep_days: float, keep_count: int) -> int:
    """Delete the records older than ``keep_days`` days and those beyond the newest
    ``keep_count`` (0: no such limit); how many were deleted. Commits. Worker thread."""
    deleted = 0
    if keep_days > 0:
        cutoff = now - timedelta(days=keep_days)
        deleted += _deleted(session, _table.c.time < cutoff)
    if keep_count > 0:
        # The id of the newest record past the limit, then everything up to it: MariaDB
        # refuses a DELETE with a subquery on its own table.
        query = select(_table.c.id).order_by(_table.c.id.desc()).offset(keep_count).limit(1)
        last = session.execute(query).scalar()
        if last is not None:
            deleted += _deleted(session, _table.c.id <= last)
    session.commit()
    return deleted


def _deleted(session: Session, condition: Any) -> int:
    result = cast(CursorResult[Any], session.execute(delete(_table).where(condition)))
    return result.rowcount or 0


def row_of(event: Event, full: bool) -> dict[str, Any]:
    """What is recorded of ``event``: always its place, sender and a summary; with
    ``full`` its payload (made JSON: what JSON cannot hold is written as text) and its
    message's text. Reactor thread: a snapshot taken before the event changes."""
    message = event.message
    text = message.raw if message is not None else None
    keys = ", ".join(sorted(str(key) for key in event.data))
    summary = f"keys: {keys or '-'}"
    if text is not None:
        summary += f"; text: {len(text)} characters"
    payload = None
    if full and event.data:
        payload = json.loads(json.dumps(event.data, default=str))
    return {
        "event_id": event.id,
        "time": event.time if event.time.tzinfo is not None else event.time.replace(tzinfo=UTC),
        "type": event.type[:MAX_NAME],
        "source": event.source[:MAX_NAME],
        "channel": event.channel[:MAX_PLACE] if event.channel is not None else None,
        "public": bool(event.public),
        "sender": event.sender.nick[:MAX_PLACE] if event.sender is not None else None,
        "summary": summary[:MAX_PLACE],
        "payload": payload,
        "text": text[:MAX_TEXT] if full and text is not None else None,
    }


class EventLog(Service):
    """Records the events the dispatcher finished (`record`, which the dispatcher calls)
    into ``event_log``: the configured types only, events of private conversations only
    when told to. Rows wait in memory (at most ``max_buffered``; more are dropped and
    counted) and are written together every ``flush_interval`` seconds on a thread of
    its own, so that no conversation waits for them; the log is pruned every
    ``prune_interval``. Stopping writes what is waiting. Reactor thread.

    Its settings are the ``[events]`` section; a config reload gives it the new one
    (`reconfigure`), turning the log on or off too."""

    log = BoolOption(
        "Record events in the database (table event_log; botcore-db events shows them).",
        False,
    )
    log_types = ListOption(
        "Event types or topics recorded (with their subtypes); empty: every type but periodic.",
        [],
    )
    log_payload = ChoiceOption(
        "What is recorded of each event: summary (its place, sender, payload keys and text "
        "length) or full (also the payload and the text, secrets taken out).",
        "summary",
        choices=("summary", "full"),
    )
    log_private = BoolOption(
        "Also record events of private conversations (someone talking to the bot alone).",
        False,
    )
    keep_days = FloatOption(
        "Records older than this many days are pruned (0: kept whatever their age).",
        30.0,
        min=0,
    )
    keep_count = IntOption(
        "Most records kept; the oldest beyond that are pruned (0: no limit).", 100000, min=0
    )
    prune_interval = FloatOption("Seconds between two prunings of the event log.", 3600.0, min=1)
    flush_interval = FloatOption(
        "Seconds records wait in memory before they are written together.", 1.0, min=0.01
    )
    max_buffered = IntOption(
        "Records that may wait to be written; more are dropped (and counted) until the "
        "database catches up.",
        10000,
        min=1,
    )

    logger = Logger()

    def __init__(
        self,
        config: dict[str, Any] | None,
        *,
        database: Database | None,
        reactor: Reactor,
        catalogue: Catalogue,
        threadpool: Any = None,
    ) -> None:
        self.setName("event-log")
        self.config = dict(config or {})
        self.database = database
        self.reactor = reactor
        self.catalogue = catalogue
        self._own_pool = threadpool is None
        self.threadpool = threadpool
        self._buffer: deque[dict[str, Any]] = deque()
        self._writing: Deferred[Any] | None = None
        self._flusher: LoopingCall | None = None
        self._pruner: LoopingCall | None = None
        #: Counts, since the start: rows written, rows dropped (buffer full), rows lost to
        #: a failed write, rows pruned.
        self.written = 0
        self.dropped = 0
        self.failed = 0
        self.pruned = 0

    # -- recording (reactor thread) ---------------------------------------------------

    def wants(self, event: Event) -> bool:
        """Whether ``event`` is to be recorded under the current settings."""
        if not self.log or self.database is None:
            return False
        if not self.log_private and event.sender is not None and not event.public:
            return False
        wanted = self.log_types
        if not wanted:
            return event.type != EventType.PERIODIC
        lineage = self.catalogue.ancestry(event.type)
        topics = self.catalogue.topics_of(event.type)
        return any(name in lineage or name in topics for name in wanted)

    def record(self, event: Event) -> None:
        """Queue ``event`` for writing if it is wanted (`wants`). Reactor thread."""
        if not self.running or not self.wants(event):
            return
        if len(self._buffer) >= self.max_buffered:
            self.dropped += 1
            if self.dropped == 1 or self.dropped % 1000 == 0:
                self.logger.warn(
                    "event log: {count} records waiting to be written; dropped {dropped} "
                    "in all (is the database slow?)",
                    count=len(self._buffer),
                    dropped=self.dropped,
                )
            return
        self._buffer.append(row_of(event, self.log_payload == "full"))

    # -- writing and pruning ----------------------------------------------------------

    def startService(self) -> None:
        super().startService()
        if self.threadpool is None:
            self.threadpool = ThreadPool(minthreads=0, maxthreads=1, name="botcore-event-log")
        self.threadpool.start()
        self._start_timers()

    def reconfigure(self, config: dict[str, Any]) -> None:
        """Take a new ``[events]`` section (a config reload): the timers start or stop
        with ``log``, and take new intervals. Reactor thread."""
        self.config = dict(config)
        if self.running:
            self._stop_timers()
            self._start_timers()

    def _start_timers(self) -> None:
        if not self.log or self.database is None:
            return
        clock: Any = self.reactor
        self._flusher = LoopingCall(self.flush)
        self._flusher.clock = clock
        self._flusher.start(self.flush_interval, now=False)
        self._pruner = LoopingCall(self.prune)
        self._pruner.clock = clock
        self._pruner.start(self.prune_interval, now=True)

    def _stop_timers(self) -> None:
        for loop in (self._flusher, self._pruner):
            if loop is not None and loop.running:
                loop.stop()
        self._flusher = self._pruner = None

    def stopService(self) -> Deferred[None]:
        """Stop the timers, write what is waiting, stop the thread. Fires when done."""
        super().stopService()
        self._stop_timers()
        d = self._after_writing().addCallback(lambda _: self.flush())
        return d.addBoth(self._stop_pool)

    def _stop_pool(self, result: Any) -> None:
        if self.threadpool is not None and self._own_pool:
            self.threadpool.stop()
            self.threadpool = None

    def _after_writing(self) -> Deferred[Any]:
        if self._writing is None:
            return succeed(None)
        d: Deferred[Any] = Deferred()

        def done(result: Any) -> Any:
            d.callback(None)
            return result

        self._writing.addBoth(done)
        return d

    def _in_thread(self, function: Any, *args: Any) -> Deferred[Any]:
        """Run ``function(*args)`` on the log's thread; fires on the reactor thread."""
        d: Deferred[Any] = Deferred()

        def on_result(ok: bool, result: Any) -> None:
            self.reactor.callFromThread(d.callback if ok else d.errback, result)

        self.threadpool.callInThreadWithCallback(on_result, function, *args)
        return d

    def flush(self) -> Deferred[Any]:
        """Write the records waiting, in one transaction (unless a write is under way:
        they wait for the next). Fires when written (a failure is logged and counted)."""
        if self._writing is not None or not self._buffer or self.threadpool is None:
            return succeed(None)
        rows = list(self._buffer)
        self._buffer.clear()
        d = self._in_thread(self._thd_write, rows)
        d.addCallbacks(self._written, self._write_failed, errbackArgs=(len(rows),))
        # (A pool that runs it at once has already written it.)
        self._writing = None if d.called else d
        return d

    def _thd_write(self, rows: Sequence[dict[str, Any]]) -> int:
        assert self.database is not None  # nothing is recorded without one
        with self.database.open_session() as session:
            session.execute(insert(_table), list(rows))
            session.commit()
        return len(rows)

    def _written(self, count: int) -> None:
        self._writing = None
        self.written += count

    def _write_failed(self, failure: Any, count: int) -> None:
        self._writing = None
        self.failed += count
        self.logger.failure(
            "event log: {count} records could not be written", failure, count=count
        )

    def prune(self) -> Deferred[Any]:
        """Delete the records past ``keep_days`` and ``keep_count`` (when the log is on).
        Fires with how many were deleted (0 after a failure, which is logged)."""
        if not self.log or self.database is None or self.threadpool is None:
            return succeed(0)
        now = datetime.fromtimestamp(self.reactor.seconds(), UTC)
        d = self._in_thread(self._thd_prune, now, self.keep_days, self.keep_count)
        d.addCallbacks(self._pruned, self._prune_failed)
        return d

    def _thd_prune(self, now: datetime, keep_days: float, keep_count: int) -> int:
        assert self.database is not None
        with self.database.open_session() as session:
            return prune(session, now, keep_days, keep_count)

    def _pruned(self, count: int) -> int:
        self.pruned += count
        if count:
            self.logger.info("event log: pruned {count} records", count=count)
        return count

    def _prune_failed(self, failure: Any) -> int:
        self.logger.failure("event log: pruning failed", failure)
        return 0
