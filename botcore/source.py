"""The base of every source: a `Service` that turns network input into events and sends
the replies back. Everything here runs on the reactor thread."""

from __future__ import annotations

import threading
from collections import Counter, OrderedDict, deque
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from twisted.application.service import Service
from twisted.internet.defer import Deferred, succeed
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from botcore.errors import DispatcherOverloaded, DispatcherStopped
from botcore.interfaces import ISource
from botcore.options import BoolOption, ChoiceOption, IntOption, ListOption, Option

if TYPE_CHECKING:
    from botcore.event import Event, Response
    from botcore.interfaces import IBotContext


#: Most events a paused source holds back (what its last read brought: a few hundred at
#: most from a 64 KiB read); more means it did not stop reading, and they are dropped.
HELD_LIMIT = 10_000


@dataclass(frozen=True)
class SentMessage:
    """One message the bot sent, as the network knows it."""

    #: The `botcore.event.Response` id it was sent for.
    local_id: str
    #: The network's id of the message.
    message_id: str
    #: Where it went (a channel, or a person's nick or address).
    target: str | None
    text: str
    #: When it was sent, in reactor seconds.
    time: float


class SentMessages:
    """The bot's own recent messages on one source, per conversation, newest last: what
    a plugin edits, deletes or reacts to later. Bounded: ``per_target`` messages for each
    of at most ``targets`` conversations (the least recently used is forgotten). Written
    on the reactor thread, read from any."""

    def __init__(self, per_target: int = 50, targets: int = 1000) -> None:
        self.per_target = per_target
        self.targets = targets
        self._lock = threading.Lock()
        self._by_target: OrderedDict[str | None, deque[SentMessage]] = OrderedDict()
        #: Local Response id -> the network id, for what is still remembered.
        self._ids: dict[str, str] = {}

    def add(self, sent: SentMessage) -> None:
        """Remember ``sent`` (the first network id of a local id is kept: a reply split
        into several messages is edited or deleted by its first)."""
        if self.per_target <= 0:
            return
        with self._lock:
            queue = self._by_target.get(sent.target)
            if queue is None:
                queue = self._by_target[sent.target] = deque()
                while len(self._by_target) > self.targets:
                    _, dropped = self._by_target.popitem(last=False)
                    for old in dropped:
                        self._forget(old)
            else:
                self._by_target.move_to_end(sent.target)
            queue.append(sent)
            self._ids.setdefault(sent.local_id, sent.message_id)
            while len(queue) > self.per_target:
                self._forget(queue.popleft())

    def _forget(self, old: SentMessage) -> None:
        if self._ids.get(old.local_id) == old.message_id:
            del self._ids[old.local_id]

    def recent(self, target: str | None) -> list[SentMessage]:
        """What the bot sent to ``target``, oldest first (a copy)."""
        with self._lock:
            return list(self._by_target.get(target, ()))

    def network_id(self, message: str) -> str:
        """The network id of a message given by its local Response id or its network id
        (returned unchanged when not a remembered local id)."""
        with self._lock:
            return self._ids.get(message, message)


class SourceSection:
    """Keys every ``[source:NAME]`` section has, whatever its type."""

    type = Option("The source type: the module under sources/ that implements it.", required=True)


@implementer(ISource)
class Source(Service):
    """Base class of sources. Subclasses set ``type`` and ``supports``, declare their options,
    and implement `send` (and usually `startService`/`stopService`)."""

    type: ClassVar[str] = ""
    #: Whether the source can stop reading its network when the dispatcher says its
    #: backlog is full (`pause_input`): a source that can implements `pause_reading` and
    #: `resume_reading`; one that cannot has its events past ``[bot] max_queued``
    #: dropped (counted and logged by the dispatcher).
    can_pause: ClassVar[bool] = False
    #: Whether the source is given the administrative `IBotControl` as its ``bot``
    #: rather than only the `IBotContext` (a front door that loads plugins and sources).
    control: ClassVar[bool] = False
    #: What the network offers (a class default; an instance may have its own).
    supports: frozenset[str] = frozenset()

    permissions = ListOption(
        "Permissions everyone on this source has: +perm, -perm, or perm (once authenticated).",
        [],
    )
    enabled = BoolOption("Start this source with the bot.", True)
    reply_to_trigger = BoolOption(
        "Replies are marked as replies to the message that triggered them, where the "
        "network can show it.",
        True,
    )
    reaction_fallback = ChoiceOption(
        "What a reaction becomes where the network has none: none (nothing) or text (a "
        "short line with its key).",
        "none",
        choices=("none", "text"),
    )
    edit_fallback = ChoiceOption(
        "What an edit of the bot's message becomes where the network cannot edit: resend "
        "(sent as a new message) or none (nothing).",
        "resend",
        choices=("resend", "none"),
    )
    sent_memory = IntOption(
        "How many of its own messages the bot remembers per conversation here, for "
        "plugins that edit or delete them (0: none).",
        50,
        min=0,
    )

    log = Logger()

    def __init__(self, name: str, bot: IBotContext, config: dict[str, Any] | None = None) -> None:
        self.setName(name)
        self.bot = bot
        self._names: tuple[tuple[str | None, ...], tuple[str, ...]] | None = None
        self.config = dict(config or {})
        self.nick: str | None = None
        self.state = "stopped"
        #: Why the source is stopping while the bot runs on: "reloaded", "unloaded" or
        #: "disconnected", set by the bot just before it stops this source alone; None
        #: when the whole bot stops. A source may tell its users.
        self.stop_reason: str | None = None
        self._connected_waiters: list[Deferred[None]] = []
        self._sent = SentMessages()
        #: How many times the source has entered each state (reconnects, failures), for
        #: metrics. Reactor thread.
        self.state_changes: Counter[str] = Counter()
        #: Whether the dispatcher told the source to pause its input (`pause_input`) and
        #: has not yet told it to resume; a connection made meanwhile starts paused.
        self.input_paused = False
        #: Events the source made while paused (from what it had already read), each
        #: with the Deferred `dispatch` returned for it: dispatched on `resume_input`.
        self._held: deque[tuple[Event, Deferred[Event]]] = deque()
        #: Events dropped because more than `HELD_LIMIT` were held (a source that does
        #: not stop reading when paused).
        self.held_dropped = 0

    def startService(self) -> Deferred[None] | None:
        """Start (a subclass may return a Deferred that fires once it has started)."""
        super().startService()
        self.stop_reason = None
        return None

    def stopService(self) -> Deferred[None] | None:
        """Stop (a subclass may return a Deferred that fires once it has stopped); events
        still held back by a pause are not processed (their senders are told, as for a
        stopping bot)."""
        super().stopService()
        held, self._held = self._held, deque()
        if held:
            self.log.info(
                "source {source}: {count} event(s) held back by a pause not processed",
                source=self.name,
                count=len(held),
            )
        for event, d in held:
            self.rejected(event, "the bot is shutting down")
            d.callback(event)
        return None

    def setup(self) -> None:
        """(Re)read options from ``config``; called at load and on config reload."""

    def set_state(self, state: str) -> None:
        """Record and log a change of connection state; reaching 'connected' fires what
        `when_connected` handed out."""
        if state != self.state:
            self.log.info(
                "source {source}: {old} -> {new}", source=self.name, old=self.state, new=state
            )
            self.state = state
            self.state_changes[state] += 1
        if state == "connected" and self._connected_waiters:
            waiters, self._connected_waiters = self._connected_waiters, []
            for d in waiters:
                d.callback(None)

    def when_connected(self) -> Deferred[None]:
        """A Deferred that fires (reactor thread) once the source is connected: at once
        when it is, else when it next becomes so (an IRC source: once registered).
        Cancel it to stop waiting. Reactor thread only."""
        if self.state == "connected":
            return succeed(None)
        d: Deferred[None] = Deferred(self._connected_waiters.remove)
        self._connected_waiters.append(d)
        return d

    def truncation_point(self, response: Response | None = None) -> int | None:
        """The most UTF-8 bytes one message may carry; None for no limit."""
        return None

    def send(self, response: Response) -> None:
        """Deliver one reply to the network; its ``text`` is a str. The dispatcher calls
        this for every reply meant for this source, in order."""
        raise NotImplementedError

    def remember_sent(self, response: Response, message_id: str) -> None:
        """Record that ``response`` went out as the network's message ``message_id`` (as
        soon as the source learns the id: at once, or on the server's echo). Reactor
        thread."""
        text = response.text if isinstance(response.text, str) else ""
        self._sent.per_target = self.sent_memory  # as configured now (a reload may change it)
        self._sent.add(
            SentMessage(response.id, message_id, response.target, text, self.bot.seconds())
        )

    def sent_messages(self, target: str | None) -> list[SentMessage]:
        """The bot's recent messages to ``target`` here whose network ids are known,
        oldest first (at most ``sent_memory``). Any thread."""
        return self._sent.recent(target)

    def network_id(self, message: str) -> str:
        """The network's id of the bot's message given by its Response ``id`` (or, when
        that is not remembered, ``message`` itself, taken as a network id). Any thread."""
        return self._sent.network_id(message)

    def names(self) -> tuple[str, ...]:
        """Every name the bot answers to here, each once (compared case-blind): its current
        nick on this source first, then the configured ``[bot] name`` and ``names``. Any
        thread: it reads only values the reactor thread replaces whole."""
        given = (self.nick, *self.bot.names)
        # Asked twice for every message (secrets, addressing): worked out again only when
        # the nick or the configured names change. One tuple, replaced whole.
        last = self._names
        if last is None or last[0] != given:
            last = self._names = (given, unique_names(given))
        return last[1]

    def is_channel(self, target: str) -> bool:
        """Whether ``target`` is a channel here rather than a person. The base knows no
        channels: sources that have them say what theirs look like. Any thread."""
        return False

    def fold(self, name: str) -> str:
        """``name`` as this network compares channel names and nicks: the base compares
        them case-blind (`str.casefold`); sources whose network has a casemapping of its
        own (IRC's CASEMAPPING) say theirs. Any thread."""
        return name.casefold()

    def verified_identity(self, event: Event) -> str | None:
        """The sender's identity as the network vouches for it, or None (the default:
        this source vouches for nobody). Any thread: reads only the event and settings."""
        return None

    def is_present(self, target: str) -> bool | None:
        """Whether ``target`` (a person or channel) is here to be written to now: True,
        False when the source knows it is not (nobody on the console has that nick), or
        None when it cannot tell (the default; IRC and XMPP). Reactor thread."""
        return None

    def dispatch(self, event: Event) -> Deferred[Event]:
        """Hand an event to the dispatcher, which runs it through the chain and sends its
        replies (to this source or any other, through `send`). The Deferred fires with the
        event once its replies have been sent, and never fails: errors are logged (and,
        for a stopping bot, told to the sender through `rejected`)."""
        if self.input_paused and self.can_pause:
            return self._hold(event)
        d = self.bot.dispatch(event)
        d.addErrback(self._failed, event)
        return d

    def _hold(self, event: Event) -> Deferred[Event]:
        # Made while paused, from what the source had already read (the rest of a read
        # that brought the pause): kept, in order, for `resume_input`.
        d: Deferred[Event] = Deferred()
        if len(self._held) >= HELD_LIMIT:
            self.held_dropped += 1
            if self.held_dropped == 1 or self.held_dropped % HELD_LIMIT == 0:
                self.log.warn(
                    "source {source} goes on reading while paused: more than {limit} "
                    "events held; dropping ({count} dropped in all)",
                    source=self.name,
                    limit=HELD_LIMIT,
                    count=self.held_dropped,
                )
            d.callback(event)
            return d
        self._held.append((event, d))
        return d

    def pause_input(self) -> None:
        """The dispatcher holds ``[bot] max_queued`` of this source's events: stop taking
        more from the network (`pause_reading`) until `resume_input`. Events made
        meanwhile from what was already read are held here (at most `HELD_LIMIT`; past
        that they are dropped, counted in ``held_dropped`` and logged) and dispatched on
        `resume_input`. Reactor thread; the dispatcher calls it once per pause, and only
        when ``can_pause``."""
        if self.input_paused:
            return
        self.input_paused = True
        self.pause_reading()

    def resume_input(self) -> None:
        """The dispatcher's backlog of this source is down to half: dispatch the events
        held back, then read again (`resume_reading`), unless those fill the backlog
        again. Reactor thread."""
        if not self.input_paused:
            return
        self.input_paused = False
        # What was held back first, in order, until one of them fills the backlog again.
        held = self._held
        while held and not self.input_paused:
            event, d = held.popleft()
            self.dispatch(event).chainDeferred(d)
        if not self.input_paused:
            self.resume_reading()

    def pause_reading(self) -> None:
        """Stop reading the network (a connection's transport: ``pauseProducing``; a
        poll: no next request); ``input_paused`` is already True. Sources with
        ``can_pause`` implement it. Reactor thread."""

    def resume_reading(self) -> None:
        """Read the network again after `pause_reading` (what was held back first);
        ``input_paused`` is already False. Reactor thread."""

    def _failed(self, failure: Failure, event: Event) -> Event:
        if failure.check(DispatcherOverloaded):
            pass  # logged by the dispatcher; answering a flood would feed it
        elif failure.check(DispatcherStopped):
            self.rejected(event, "the bot is shutting down")
        else:
            self.log.failure(
                "event {id} from {source} failed", failure, id=event.id, source=self.name
            )
        return event

    def rejected(self, event: Event, reason: str) -> None:
        """Tell the sender their event was not processed (override where possible)."""
        self.log.info("event {id} not processed: {reason}", id=event.id, reason=reason)


class LocalSource(Source):
    """A source with no connection to make (the terminal, a test's memory): connected
    while it runs. Its channels are named as on IRC (``chantypes``)."""

    chantypes = "#&"

    def startService(self) -> None:
        super().startService()
        self.set_state("connected")

    def stopService(self) -> None:
        super().stopService()
        self.set_state("stopped")

    def is_channel(self, target: str) -> bool:
        return bool(target) and target[0] in self.chantypes


def unique_names(names: Iterable[str | None]) -> tuple[str, ...]:
    """The names, each once (the first spelling of those equal but for case), empty ones
    left out."""
    seen: set[str] = set()
    unique = []
    for name in names:
        if name and name.casefold() not in seen:
            seen.add(name.casefold())
            unique.append(name)
    return tuple(unique)


def names_on(bot: IBotContext, source: str | None) -> tuple[str, ...]:
    """The names the bot answers to on the source called ``source``: its `Source.names`,
    or, when no such source is running, the configured names. Any thread."""
    found = bot.get_source(source)
    return found.names() if found is not None else unique_names(bot.names)


def fold_on(bot: IBotContext, source: str | None, name: str) -> str:
    """``name`` as the source called ``source`` compares names (`Source.fold`), or case
    folded when no such source is running. Any thread."""
    found = bot.get_source(source)
    return found.fold(name) if found is not None else name.casefold()


def is_channel_on(bot: IBotContext, source: str | None, target: str) -> bool:
    """Whether ``target`` is a channel on the source called ``source``, as that source
    says; False when no such source is running. Any thread."""
    found = bot.get_source(source)
    return found is not None and found.is_channel(target)
