"""Writing behind: what need not be durable the moment it happens (a last sighting, a
karma vote, a log line) is kept in memory, coalesced per key, and written in batches.

`Behind` holds the unwritten values; `WritesBehind` is the processor side: a periodic
flush every ``flush_interval`` seconds on a worker thread, one when the bot stops (on its
final lifecycle event, while the database is still there), one when the plugin is
unloaded, and the unwritten values handed to the next version when it is reloaded. So a
clean stop, an unload or a reload loses nothing, and a crash at most the last interval's
writes. ``flush_interval = 0`` writes each value at once."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, Generic, TypeVar

from twisted.logger import Logger

from botcore.event import Event, EventType, Lifecycle
from botcore.processor import Processor, periodic, post_hook

K = TypeVar("K")
V = TypeVar("V")

#: The bot's states after which no more events come: the last moment to write.
FINAL = frozenset({Lifecycle.STOPPING, Lifecycle.STOPPED, Lifecycle.FAILED})


class Store:
    """The unwritten values and their locks: what one version of a plugin hands to the
    next (so that what the old one still adds after the hand-over is written too, and two
    versions' flushes never overtake each other). Plain objects of botcore's, which a
    plugin reload does not replace."""

    def __init__(self) -> None:
        self.pending: dict[Any, Any] = {}
        #: Held for each change of ``pending`` (short).
        self.lock = threading.Lock()
        #: Held for a whole flush: the one writing first commits first.
        self.writing = threading.Lock()
        #: The weight added since the last flush took its batch (`Behind.add`).
        self.count = 0


class Behind(Generic[K, V]):
    """Values waiting to be written, one per key: `add` coalesces a new value with the
    waiting one (``merge(old, new)``; by default the new one replaces it), `flush` writes
    every waiting value in one batch. Any thread.

    With ``keep`` (the default) a value stays readable (`get`, `values`) until the write
    that took it has succeeded, so a reader sees it in memory or in the database; ``merge``
    must then build a new value and leave ``old`` alone (a flush may be writing it). A
    failed write leaves the values for the next flush. Without ``keep``, a flush takes
    every value out at once (``merge`` may change ``old``), and a failed write's values
    are the write function's to deal with."""

    def __init__(
        self,
        merge: Callable[[V, V], V] | None = None,
        keep: bool = True,
        store: Store | None = None,
    ) -> None:
        self.merge = merge
        self.keep = keep
        self.store = Store() if store is None else store

    def add(self, key: K, value: V, weight: int = 1) -> int:
        """Keep ``value`` for ``key`` (coalesced with what waits there); the weight added
        since the last flush took its batch, this one's included."""
        store, merge = self.store, self.merge
        with store.lock:
            pending = store.pending
            if merge is not None and key in pending:
                value = merge(pending[key], value)
            pending[key] = value
            store.count += weight
            return store.count

    def get(self, key: K) -> V | None:
        """The value waiting for ``key``, if any."""
        with self.store.lock:
            return self.store.pending.get(key)

    def values(self) -> list[V]:
        """Every value waiting (a copy)."""
        with self.store.lock:
            return list(self.store.pending.values())

    def discard(self, key: K) -> None:
        """Forget what waits for ``key`` (it is not written)."""
        with self.store.lock:
            self.store.pending.pop(key, None)

    def __len__(self) -> int:
        return len(self.store.pending)

    def flush(self, write: Callable[[dict[K, V]], Any]) -> int:
        """Write every waiting value: ``write(batch)`` (key -> value) does it, in one go.
        With ``keep``, each value is forgotten once ``write`` has returned, unless a newer
        one came meanwhile; when ``write`` raises, all stay. Returns how many were
        written. Flushes run one at a time, in the order they began."""
        store = self.store
        with store.writing:
            with store.lock:
                if not store.pending:
                    return 0
                if self.keep:
                    batch = dict(store.pending)
                else:
                    batch, store.pending = store.pending, {}
                store.count = 0
            write(batch)
            if self.keep:
                with store.lock:
                    pending = store.pending
                    for key, value in batch.items():
                        if pending.get(key) is value:
                            del pending[key]
            return len(batch)

    def take_over(self, store: Store) -> Behind[K, V]:
        """This buffer on ``store`` (a previous version's), with what waits here moved
        there: merged with what waits there for the same key (without ``merge``, the
        value there wins: it came first)."""
        with store.lock, self.store.lock:
            pending, merge = store.pending, self.merge
            for key, value in self.store.pending.items():
                if key not in pending:
                    pending[key] = value
                elif merge is not None:
                    pending[key] = merge(pending[key], value)
            self.store.pending = {}
        return Behind(self.merge, self.keep, store)


class WritesBehind(Processor):
    """A processor that writes behind: it keeps its unwritten values in ``behind`` and
    says how to write a batch of them in `write_behind`; it declares a
    ``flush_interval`` option (seconds; 0 writes at once, with `added`).

    Flushed every ``flush_interval`` seconds, on the bot's final lifecycle event (the
    last moment the database is there), when the plugin is unloaded, and at once with
    ``flush_interval = 0``; a reload hands the unwritten values to the new version."""

    #: Whether `write_behind` needs the event's database session (then a flush at
    #: shutdown goes through the dispatcher; otherwise it is written there and then).
    behind_session: bool = True

    flush_interval: float
    behind: Behind[Any, Any]

    log = Logger()

    def write_behind(self, event: Event | None, batch: dict[Any, Any]) -> None:
        """Write ``batch`` (key -> value), with ``event.session`` when `behind_session`
        (its transaction committed by the caller). Worker thread."""
        raise NotImplementedError

    def added(self, event: Event | None) -> None:
        """Call after each `Behind.add`: writes at once when ``flush_interval`` is 0."""
        if self.flush_interval <= 0:
            self.flush_behind(event)

    def flush_behind(self, event: Event | None) -> int:
        """Write every unwritten value now (committing ``event.session``); how many were
        written. Worker thread."""
        if not len(self.behind):
            return 0

        def write(batch: dict[Any, Any]) -> None:
            self.write_behind(event, batch)
            if self.behind_session and event is not None:
                event.session.commit()

        return self.behind.flush(write)

    @periodic(config_key="flush_interval")
    def flush_periodically(self, event: Event) -> None:
        """Write what was added since the last flush. Worker thread."""
        self.flush_behind(event)

    @post_hook(EventType.LIFECYCLE)
    def flush_at_stop(self, event: Event) -> None:
        # The last moment before the plugins stop: nothing is said after it.
        if event.data.get("state") in FINAL:
            self.flush_behind(event)

    def export_state(self) -> Any:
        return self.behind.store

    def import_state(self, state: Any) -> None:
        if isinstance(state, Store):
            self.behind = self.behind.take_over(state)

    def shutdown(self) -> None:
        # Unloaded or reloaded (a stop has written them already, on its lifecycle event):
        # write what is left. The next version shares the values, so this writes only
        # what it has not written yet.
        if not len(self.behind):
            return
        if not self.behind_session:
            self.flush_behind(None)
            return
        if self.bot.state in FINAL:
            self.log.warn(
                "{name}: {count} unwritten value(s) lost: the bot stopped before they "
                "were written",
                name=self.name,
                count=len(self.behind),
            )
            return
        self.bot.call_later(0, self.flush_behind, Event("botcore", self.name))
