"""The telnet console: people connect with telnet (or nc), pick a nick, and talk to the bot
in private, one line per message. Handy for development and for a bot with no network."""

from __future__ import annotations

import itertools
import secrets
import typing
import unicodedata
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, cast

from twisted.internet.defer import Deferred, DeferredList, fail, maybeDeferred
from twisted.internet.endpoints import serverFromString
from twisted.internet.interfaces import IPushProducer
from twisted.internet.protocol import Protocol, ServerFactory
from twisted.logger import Logger
from zope.interface import implementer

from botcore.accounts.login import NickOwner, nick_owner, password_login
from botcore.accounts.names import UnclearName, normalise, skeleton
from botcore.accounts.secrets import scrub
from botcore.accounts.throttle import address_key
from botcore.event import Event, EventType, Message, Response, Sender
from botcore.humanize import duration
from botcore.options import BoolOption, FloatOption, IntOption, ServerEndpointOption
from botcore.source import Source

if TYPE_CHECKING:
    from twisted.internet.interfaces import (
        IAddress,
        IDelayedCall,
        IListeningPort,
        IReactorTime,
    )
    from twisted.python.failure import Failure

    from botcore.interfaces import IBotContext


class ListenFailed(Exception):
    """The console could not listen on its endpoint."""


class StreamTransport(typing.Protocol):
    """What a console uses of its connection's transport: `ITransport`'s writing, closing
    and peer, with ``disconnecting`` and ``abortConnection``, and the producer methods
    (`IConsumer` and `IPushProducer`: the transport says when its write buffer is full,
    and can stop reading), which every stream transport Twisted has (TCP, TLS, UNIX
    sockets, StringTransport) though ITransport lacks them."""

    disconnecting: bool

    def write(self, data: bytes) -> None: ...

    def loseConnection(self) -> None: ...

    def abortConnection(self) -> None: ...

    def getPeer(self) -> IAddress: ...

    def registerProducer(self, producer: object, streaming: bool) -> None: ...

    def unregisterProducer(self) -> None: ...

    def pauseProducing(self) -> None: ...

    def resumeProducing(self) -> None: ...


#: `StreamTransport`'s members, checked by name: an isinstance check on a runtime
#: Protocol breaks once zope.interface has looked at the class (the source loader asks
#: ``implementedBy`` of every class here, which adds ``__provides__`` to its members).
_STREAM_MEMBERS = (
    "disconnecting",
    "write",
    "loseConnection",
    "abortConnection",
    "getPeer",
    "registerProducer",
    "unregisterProducer",
    "pauseProducing",
    "resumeProducing",
)


def stream_of(transport: object) -> StreamTransport:
    """``transport`` as the `StreamTransport` it is; a TypeError for anything else."""
    missing = [name for name in _STREAM_MEMBERS if not hasattr(transport, name)]
    if missing:
        raise TypeError(
            f"the telnet console needs a stream transport, not {transport!r} "
            f"(it has no {', '.join(missing)})"
        )
    return cast(StreamTransport, transport)


class TelnetSource(Source):
    """Listens on ``endpoint``; each connection is one person, known by the nick they give.

    A nick that belongs to an account (its identity here is linked to one) is theirs only
    once they give the account's password, which authenticates the connection; otherwise
    they get a guest nick. Look-alikes of nicks in use or of accounts' nicks are refused.
    Every line they type becomes a private, addressed ``message`` event; replies come back
    as lines (actions as ``* botname text``). Reactor thread only.
    """

    type = "telnet"
    #: Stops reading every console while the dispatcher's backlog of it is full.
    can_pause = True
    supports = frozenset({"action", "multiline"})

    endpoint = ServerEndpointOption(
        "Where the console listens: a Twisted server endpoint string (keep it on loopback).",
        "tcp:3000:interface=127.0.0.1",
    )
    max_line = IntOption(
        "Longest line accepted, in bytes; longer lines are refused with an error.",
        8192,
        min=16,
    )
    trusted = BoolOption(
        "Count everyone on the console as authenticated (anyone who can connect is trusted).",
        False,
    )
    register_timeout = FloatOption(
        "Seconds a new connection has to give a nick before it is closed.", 60.0, min=1
    )
    idle_timeout = FloatOption(
        "Seconds without a line from someone after which their connection is closed (0: never).",
        3600.0,
        min=0,
    )
    max_connections = IntOption(
        "Most connections at once. When full, a newcomer replaces the oldest connection "
        "that has not given a nick yet; with every one named, more are refused.",
        32,
        min=1,
    )
    max_connections_per_address = IntOption(
        "Most connections at once from one address (every loopback address counts as "
        "one; an IPv6 address by its /64), with the same replacement as max_connections.",
        8,
        min=1,
    )
    output_limit = IntOption(
        "Bytes of replies one connection may have waiting once its socket's buffer is full; "
        "a client that reads slower than the bot writes is disconnected beyond that.",
        262144,
        min=1024,
    )

    #: Over-long lines in a row after which a connection is considered a flood and closed.
    max_overlong = 3
    #: Messages one person may have waiting for the bot before further lines are refused.
    max_pending = 50
    #: Longest nick accepted.
    max_nick = 32
    #: Seconds connections may take to close when the source stops before they are cut.
    close_timeout = 5.0

    log = Logger()

    #: The source's name (Service's may be None; Source's never is).
    name: str

    def __init__(
        self,
        name: str,
        bot: IBotContext,
        config: dict[str, Any] | None = None,
        *,
        reactor: IReactorTime | None = None,
    ) -> None:
        super().__init__(name, bot, config)
        #: The reactor the console listens and times with: the bot's unless a test gives
        #: another.
        self.reactor: IReactorTime = reactor if reactor is not None else bot.reactor
        self.port: IListeningPort | None = None
        self.listening_on: str | None = None
        self.consoles: set[Console] = set()
        self.by_nick: dict[str, Console] = {}
        #: Nicks (casefolded) held for a connection that chose them while it is found
        #: out whose they are, or while it is asked for their account's password.
        self.claims: dict[str, Console] = {}
        #: The events of each connection (by id) still being processed, oldest first.
        self.waiting: dict[str, list[Event]] = {}
        #: Connections (ids) that left while their events were still being processed,
        #: by nick (casefolded): their replies must not reach a newcomer with that nick.
        self.departed: dict[str, list[str]] = {}
        self._ids = itertools.count(1)

    def setup(self) -> None:
        self.nick = self.bot.name
        if self.port is not None and self.endpoint != self.listening_on:
            self.log.warn(
                "source {source}: the new endpoint {endpoint} takes effect when the bot "
                "restarts (still listening on {old})",
                source=self.name,
                endpoint=self.endpoint,
                old=self.listening_on,
            )

    # -- service ------------------------------------------------------------------

    def startService(self) -> Deferred[None]:
        """Start listening; the Deferred fails with `ListenFailed` (port in use, bad
        address), which makes the bot's start fail."""
        super().startService()
        self.set_state("connecting")
        try:
            endpoint = serverFromString(self.reactor, self.endpoint)
            d = endpoint.listen(ConsoleFactory(self))
        except Exception as e:
            d = fail(e)
        return d.addCallbacks(self._listening, self._listen_failed)

    def _listening(self, port: IListeningPort) -> None:
        self.port = port
        self.listening_on = self.endpoint
        self.set_state("connected")
        self.log.info(
            "source {source}: telnet console listening on {endpoint}",
            source=self.name,
            endpoint=self.endpoint,
        )

    def _listen_failed(self, failure: Failure) -> None:
        self.set_state("failed")
        reason = failure.getErrorMessage().strip() or type(failure.value).__name__
        raise ListenFailed(f"source {self.name}: cannot listen on {self.endpoint}: {reason}")

    def stopService(self) -> Deferred[None]:
        """Say goodbye to everyone (with why: the bot stops, or only this console, as
        `stop_reason` says), close their connections and stop listening. Fires
        once every connection is closed: the reactor drops connections still open when
        it shuts down, with whatever they had not yet written, so replies and goodbyes
        would be lost. A connection not closed after ``close_timeout`` is aborted."""
        super().stopService()
        consoles = list(self.consoles)
        waits: list[Deferred[Any]] = [console.closed for console in consoles]
        if self.stop_reason:
            # Only this console stops (a reload, say): the bot itself runs on.
            goodbye = f"this console is being {self.stop_reason}; the bot runs on. Bye."
        else:
            goodbye = "the bot is shutting down; bye."
        for console in consoles:
            console.close(goodbye)
        port, self.port = self.port, None
        if port is not None:
            waits.append(maybeDeferred(port.stopListening))
        d = DeferredList(waits, consumeErrors=True)
        if consoles:
            timer = self.reactor.callLater(self.close_timeout, self._abort, consoles)
            d.addBoth(lambda result: timer.cancel() if timer.active() else None)
        return d.addBoth(lambda _: self.set_state("stopped"))

    def _abort(self, consoles: list[Console]) -> None:
        for console in consoles:
            if not console.closed.called:
                self.log.info(
                    "source {source}: {connection} did not close in time; aborting it",
                    source=self.name,
                    connection=console.connection_id,
                )
                console.stream.abortConnection()

    # -- people -------------------------------------------------------------------

    def next_connection_id(self) -> str:
        """A new connection's id, never one an earlier connection had (not after a
        reload of the source either): authentications are remembered by it."""
        return f"{self.name}#{next(self._ids)}.{secrets.token_hex(6)}"

    def refusal(self, console: Console) -> str | None:
        """Why a new connection must be refused, or None to accept it. When the console
        is full (in all, or from the new connection's address, every loopback address
        counting as one), the oldest connection that has not given a nick yet makes room
        (it is told why and closed), so connections that never register cannot keep
        everyone out; only when every connection has a nick is the new one refused."""
        same = [other for other in self.consoles if other.address == console.address]
        if len(same) >= self.max_connections_per_address and not self._evict(same):
            return "too many connections from your address"
        if len(self.consoles) >= self.max_connections and not self._evict(self.consoles):
            return "too many connections to the console"
        return None

    def _evict(self, among: Iterable[Console]) -> bool:
        """Close the oldest of ``among`` without a nick (one that has not chosen one
        before one that is giving a nick's password); False when all have one."""
        unnamed = [other for other in among if other.nick is None]
        if not unnamed:
            return False
        oldest = min(unnamed, key=lambda other: (other.claim is not None, other.serial))
        self.log.info(
            "source {source}: the console is full; closing {connection} ({peer}), the "
            "oldest connection without a nick, to make room",
            source=self.name,
            connection=oldest.connection_id,
            peer=oldest.peer,
        )
        self.consoles.discard(oldest)
        oldest.close("sorry, the console is full and you gave no nick yet; goodbye.")
        return True

    def console_for(self, nick: str | None) -> Console | None:
        """The connection of the person called ``nick``, or None."""
        if not nick:
            return None
        return self.by_nick.get(nick.casefold())

    def check_nick(self, nick: str) -> str | None:
        """Why ``nick`` (NFKC-normalised) cannot be used, or None when it can: it must be
        a clear name (`botcore.accounts.names.normalise`: no invisible characters, no
        mixed scripts), not the bot's, not in use or held, and not a look-alike of a nick
        in use or held (``admin`` spelt with a Cyrillic a, beside ``admin``)."""
        if not nick:
            return "a nick cannot be empty"
        if any(c.isspace() for c in nick):
            return "a nick cannot contain spaces"
        if not nick.isprintable():
            return "a nick cannot contain control characters"
        if len(nick) > self.max_nick:
            return f"a nick is at most {self.max_nick} characters"
        try:
            normalise(nick)
        except UnclearName as e:
            return str(e).replace("a name", "a nick", 1)
        key = nick.casefold()
        if key in {n.casefold() for n in self.names()}:
            return "that is my name"
        if key in self.by_nick or key in self.claims:
            return f"the nick {nick} is in use"
        look = skeleton(nick)
        for other in [*self.names(), *self.by_nick, *self.claims]:
            if other.casefold() != key and skeleton(other) == look:
                return f"the nick {nick} looks too much like {other}"
        return None

    # -- nicks that belong to accounts ------------------------------------------------
    #
    # A nick chosen on a console that keeps accounts is first looked up (worker thread):
    # when its identity here is linked to an account, the connection must give that
    # account's password before it is known by the nick; otherwise it gets a guest nick.
    # A nick that merely looks like an account's is refused. Until then the nick is held
    # (`claims`), so nobody else takes it meanwhile, and nothing sent to it reaches the
    # connection. A trusted console trusts every nick and holds none.

    def claim(self, console: Console, nick: str) -> None:
        """Hold ``nick`` for ``console`` and find out whose it is. Reactor thread."""
        self.claims[nick.casefold()] = console
        try:
            self.bot.call_later(
                0, self._thd_owner, Event(self.name, "console-nick"), console, nick
            )
        except Exception as e:  # the dispatcher is stopping
            self.log.info(
                "source {source}: cannot look up the nick {nick}: {why}",
                source=self.name,
                nick=nick,
                why=e,
            )
            self.release(console)
            console.send_line("sorry, I can't take nicks right now; goodbye.")
            console.close()

    def release(self, console: Console) -> None:
        """Stop holding the nick ``console`` asked for (it has it now, or not)."""
        if console.claim is not None and self.claims.get(console.claim.casefold()) is console:
            del self.claims[console.claim.casefold()]
        console.claim = None
        console.claim_account = None
        console.claim_username = None

    def _thd_owner(self, event: Event, console: Console, nick: str) -> None:
        """Look ``nick`` up (worker thread), then answer `Console.owner_known`."""
        try:
            session = event.session
        except RuntimeError:  # a bot with no database keeps no accounts
            owner: NickOwner | None = NickOwner()
        else:
            try:
                owner = nick_owner(session, self.name, nick)
            except Exception:
                self.log.failure("source {source}: looking up a nick failed", source=self.name)
                owner = None
        self.bot.call_from_thread(console.owner_known, nick, owner)

    def _thd_login(
        self, event: Event, console: Console, login: Event, account: int, secret: str
    ) -> None:
        """Check the password given for a held nick (worker thread), then answer
        `Console.logged_in`."""
        try:
            problem = password_login(
                event.session, self.bot.auth, login, account, secret, self.bot.seconds()
            )
        except Exception:
            self.log.failure("source {source}: checking a password failed", source=self.name)
            problem = "I can't check passwords right now"
        self.bot.call_from_thread(console.logged_in, problem)

    def guest_nick(self) -> str:
        """A nick nobody on the console has: ``guest-`` and six hex digits."""
        while True:
            nick = f"guest-{secrets.token_hex(3)}"
            if self.check_nick(nick) is None:
                return nick

    def is_channel(self, target: str) -> bool:
        """Never: the console has no channels, every conversation is with one person."""
        return False

    def is_present(self, target: str) -> bool:
        """Whether someone is connected with the nick ``target`` (a reply to anyone else
        is dropped)."""
        return self.console_for(target) is not None

    def joined(self, console: Console) -> None:
        nick = console.nick
        assert nick is not None
        self.by_nick[nick.casefold()] = console
        self.log.info(
            "source {source}: {nick} joined ({connection} from {peer})",
            source=self.name,
            nick=nick,
            connection=console.connection_id,
            peer=console.peer,
        )

    def left(self, console: Console) -> None:
        self.consoles.discard(console)
        self.release(console)
        if console.nick is not None and self.by_nick.get(console.nick.casefold()) is console:
            del self.by_nick[console.nick.casefold()]
            self.log.info("source {source}: {nick} left", source=self.name, nick=console.nick)
            if console.connection_id in self.waiting:
                key = console.nick.casefold()
                self.departed.setdefault(key, []).append(console.connection_id)

    def verified_identity(self, event: Event) -> str | None:
        """On a ``trusted`` console, the sender's nick (whoever can connect is trusted)."""
        if self.trusted and event.sender is not None and event.source == self.name:
            return event.sender.id
        return None

    def pause_reading(self) -> None:
        """Stop reading every console (a new one starts held)."""
        for console in list(self.consoles):
            console.hold(True)

    def resume_reading(self) -> None:
        """Read every console again (until what one had held back pauses it anew)."""
        for console in list(self.consoles):
            if self.input_paused:
                break
            console.hold(False)

    def message(self, console: Console, text: str) -> Deferred[Event]:
        """Turn one line from ``console`` into an event and dispatch it."""
        nick = console.nick
        assert nick is not None
        # Scrubbed: a line may carry a password ("auth hunter2").
        self.log.debug(
            "source {source}: {nick} says {text!r}", source=self.name, nick=nick, text=scrub(text)
        )
        event = Event(
            source=self.name,
            type=EventType.MESSAGE,
            sender=Sender(connection=console.connection_id, id=nick, nick=nick),
            channel=nick,
            public=False,
            addressed=True,
            message=Message(text),
            authenticated=bool(self.trusted),
            # Where the person is, for slowing down password guessing by address.
            data={"address": console.host},
        )
        self.waiting.setdefault(console.connection_id, []).append(event)
        d = self.dispatch(event)
        d.addBoth(self._answered, console.connection_id, nick, event)
        return d

    def _answered(self, result: Any, connection: str, nick: str, event: Event) -> Any:
        # The event's replies have been sent (or it was refused).
        waiting = self.waiting[connection]
        waiting.remove(event)
        if not waiting:
            del self.waiting[connection]
            departed = self.departed.get(nick.casefold())
            if departed is not None and connection in departed:
                departed.remove(connection)
                if not departed:
                    del self.departed[nick.casefold()]
        return result

    # -- replies ------------------------------------------------------------------

    def _still_here(self, sender: Sender) -> bool:
        console = self.console_for(sender.id)
        return console is not None and console.connection_id == sender.connection

    def _for_departed(self, response: Response) -> bool:
        """Whether ``response`` answers an event of someone called as its target who has
        left (a newcomer may have taken the nick meanwhile)."""
        for connection in self.departed.get((response.target or "").casefold(), ()):
            for event in self.waiting[connection]:
                if any(reply is response for reply in event.responses):
                    return True
        return False

    def send(self, response: Response) -> None:
        """Write a reply to the person it is for. A reply to someone not connected is
        dropped (with a debug log), and so is a reply to someone who has left since
        they spoke, even when someone else has taken their nick meanwhile."""
        console = self.console_for(response.target)
        if console is None:
            self.log.debug(
                "source {source}: dropped a reply to {target}, who is not connected",
                source=self.name,
                target=response.target,
            )
            return
        if self.departed and self._for_departed(response):
            self.log.debug(
                "source {source}: dropped a reply to {nick}, who has left",
                source=self.name,
                nick=response.target,
            )
            return
        for line in format_reply(response, self.nick or self.name):
            console.send_line(line)

    def rejected(self, event: Event, reason: str) -> None:
        super().rejected(event, reason)
        if event.sender is not None and self._still_here(event.sender):
            console = self.console_for(event.sender.id)
            assert console is not None
            console.send_line(f"sorry, {reason}: your message was not processed.")


def format_reply(response: Response, nick: str) -> list[str]:
    """The lines a reply is written as: one per line of text, actions as ``* nick text``."""
    # Text: the dispatcher words acknowledgements before a source sees them.
    lines = cast(str, response.text).replace("\r\n", "\n").replace("\r", "\n").split("\n")
    if response.action:
        return [f"* {nick} {line}" for line in lines]
    return lines


_serials = itertools.count()


@implementer(IPushProducer)
class Console(Protocol):
    """One telnet connection: asks for a nick, then relays lines to the source.

    Lines end with ``\\n`` or ``\\r\\n``; a line longer than the source's ``max_line`` is
    refused with an error and the rest of it discarded.

    What it holds is bounded: the console is its transport's producer, so when the
    transport's write buffer is full (the client does not read) it stops reading from
    the client, and once more than ``output_limit`` bytes wait on top of that buffer the
    client is cut off. A connection that gives no nick in ``register_timeout`` seconds,
    or no line in ``idle_timeout``, is closed."""

    #: The connection's transport as what the console uses of it (from connectionMade on).
    stream: StreamTransport

    def __init__(self, source: TelnetSource, connection_id: str) -> None:
        self.source = source
        self.connection_id = connection_id
        self.nick: str | None = None
        #: The nick asked for while it is held (looked up, or waiting for a password).
        self.claim: str | None = None
        #: The account whose password the held nick needs, once asked for, and its name.
        self.claim_account: int | None = None
        self.claim_username: str | None = None
        #: Whether a look-up or password check is under way for the connection, and the
        #: lines that came meanwhile (at most max_pending).
        self.checking = False
        self._early: list[str] = []
        self.peer = "?"
        #: Who the connection comes from, for the per-address cap (the host, for TCP).
        self.address = "?"
        #: The peer's host as it came (an IP address, for TCP), or None.
        self.host: str | None = None
        #: Order of arrival: the oldest connection without a nick makes room first.
        self.serial = next(_serials)
        #: Fires when the connection is closed.
        self.closed: Deferred[None] = Deferred()
        self._buffer = b""
        self._discarding = False
        self._overlong = 0
        #: Whether the transport said its write buffer is full (and reading is paused).
        self._paused = False
        #: Whether the source's input is paused (the dispatcher's backlog is full): reading
        #: is paused too.
        self._held = False
        #: Bytes written since then.
        self._backlog = 0
        #: Whether the console has closed (or aborted) the connection itself.
        self._closing = False
        self._timer: IDelayedCall | None = None
        self._registered = False

    # -- wire -----------------------------------------------------------------

    def connectionMade(self) -> None:
        self.stream = stream_of(self.transport)
        peer = self.stream.getPeer()
        host, port = getattr(peer, "host", None), getattr(peer, "port", None)
        self.peer = f"{host}:{port}" if host is not None else str(peer)
        self.host = str(host) if host is not None else None
        # Every loopback address is one (127.0.0.2-.5 are the same machine), an IPv6
        # address counts by its /64.
        self.address = address_key(self.host) or str(peer)
        refusal = self.source.refusal(self)
        if refusal is not None:
            self.source.log.info(
                "source {source}: refused {peer}: {why}",
                source=self.source.name,
                peer=self.peer,
                why=refusal,
            )
            self.close(f"sorry, {refusal}; try again later.")
            return
        self.stream.registerProducer(self, True)
        self._registered = True
        self.source.consoles.add(self)
        if self.source.input_paused:
            self.hold(True)
        name = self.source.nick or self.source.name
        self.send_line(f"Hello, this is {name}'s console.")
        self.send_line("What is your nick?")
        self._timer = self.source.reactor.callLater(
            self.source.register_timeout, self._timed_out, "no nick given"
        )

    def connectionLost(self, reason: Any = None) -> None:
        self._closing = True
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None
        self.source.left(self)
        if not self.closed.called:
            self.closed.callback(None)

    def dataReceived(self, data: bytes) -> None:
        limit = self.source.max_line
        lines = (self._buffer + data).split(b"\n")
        self._buffer = lines.pop()
        for index, line in enumerate(lines):
            if self._gone():
                return
            if self._held:
                # The source's input is paused: the rest waits for `hold` (False).
                self._buffer = b"\n".join([*lines[index:], self._buffer])
                return
            if self._discarding:
                # The end of an over-long line already refused.
                self._discarding = False
                continue
            if line.endswith(b"\r"):
                line = line[:-1]
            if len(line) > limit:
                self._line_too_long()
                continue
            self._overlong = 0
            self._line_received(line)
        if self._gone():
            return
        # + 1: the buffered part of a line may already hold the "\r" of its "\r\n".
        if len(self._buffer) > limit + 1:
            self._buffer = b""
            if not self._discarding:
                self._discarding = True
                self._line_too_long()

    def send_line(self, text: str) -> None:
        if self._closing:
            return
        data = text.encode("utf-8", "replace") + b"\r\n"
        if self._paused:
            self._backlog += len(data)
            if self._backlog > self.source.output_limit:
                self._cut_off()
                return
        self.stream.write(data)

    def close(self, goodbye: str | None = None) -> None:
        """Say ``goodbye`` and close the connection once it is written; a connection
        whose output is backed up is aborted instead (it would never finish)."""
        if self._closing:
            return
        if goodbye:
            self.send_line(goodbye)
            if self._closing:
                return  # that was too much: cut off
        self._closing = True
        self._unregister()
        if self._paused:
            self.stream.abortConnection()
        else:
            self.stream.loseConnection()

    def _gone(self) -> bool:
        return self._closing or self.stream.disconnecting

    def _unregister(self) -> None:
        # A registered producer keeps the transport from closing (loseConnection waits
        # for it), so it goes first.
        if self._registered:
            self._registered = False
            self.stream.unregisterProducer()

    def _cut_off(self) -> None:
        self.source.log.info(
            "source {source}: cutting off {connection} ({peer}): it does not read what "
            "the bot writes ({count} bytes waiting)",
            source=self.source.name,
            connection=self.connection_id,
            peer=self.peer,
            count=self._backlog,
        )
        self._closing = True
        self._unregister()
        self.stream.abortConnection()

    def _timed_out(self, why: str) -> None:
        self._timer = None
        self.source.log.info(
            "source {source}: closing {connection} ({peer}): {why}",
            source=self.source.name,
            connection=self.connection_id,
            peer=self.peer,
            why=why,
        )
        self.close(f"{why}; goodbye.")

    def _heard(self) -> None:
        """A line came in: the idle timer starts again."""
        idle = self.source.idle_timeout
        if self.nick is None:
            return  # the registration timer runs until a nick is given
        if self._timer is not None and self._timer.active():
            if idle > 0:
                self._timer.reset(idle)
                return
            self._timer.cancel()
            self._timer = None
        elif idle > 0:
            self._timer = self.source.reactor.callLater(
                idle, self._timed_out, f"idle for {duration(idle)}"
            )

    # -- IPushProducer: the transport's write buffer is full, or has room again ----

    def pauseProducing(self) -> None:
        # Twisted's transports say so again on every write while the buffer is full.
        if self._paused:
            return
        self._paused = True
        self._backlog = 0
        if not self._gone() and not self._held:
            self.stream.pauseProducing()  # read nothing more until the client reads

    def resumeProducing(self) -> None:
        self._paused = False
        self._backlog = 0
        if not self._gone() and not self._held:
            self.stream.resumeProducing()

    def hold(self, held: bool) -> None:
        """Stop reading from the client (``held``: the source's input is paused; the
        lines of the current read not yet handled wait) or read again, those lines
        first; the transport stays paused while the client's output is backed up."""
        if held == self._held:
            return
        self._held = held
        if self._gone():
            return
        if not self._paused:
            if held:
                self.stream.pauseProducing()
            else:
                self.stream.resumeProducing()
        if not held and b"\n" in self._buffer:
            self.dataReceived(b"")  # the lines held back

    def stopProducing(self) -> None:
        self._closing = True

    # -- lines ----------------------------------------------------------------

    def _line_too_long(self) -> None:
        self._overlong += 1
        if self._overlong >= self.source.max_overlong:
            self.source.log.info(
                "source {source}: closing {connection}: too many over-long lines",
                source=self.source.name,
                connection=self.connection_id,
            )
            self.close("error: too many over-long lines; goodbye.")
            return
        self.send_line(f"error: line longer than {self.source.max_line} bytes; line ignored.")

    def _line_received(self, raw: bytes) -> None:
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            self.send_line("error: invalid UTF-8; line ignored.")
            return
        text = text.strip()
        self._heard()
        if self.checking:
            # Typed (or piped) before the nick's look-up ended: taken in order after it.
            if len(self._early) >= self.source.max_pending:
                self.send_line("one moment, I'm still checking; line ignored.")
            else:
                self._early.append(text)
            return
        self._take(text)

    def _take(self, text: str) -> None:
        if self.nick is None:
            self._choose_nick(text)
        elif not text:
            return
        elif text == "/quit":
            self.close("bye.")
        elif len(self.source.waiting.get(self.connection_id, ())) >= self.source.max_pending:
            self.send_line("error: too many messages waiting for an answer; line ignored.")
        else:
            self.source.message(self, text)

    def _checked(self) -> None:
        """A look-up or password check has ended: take the lines that came meanwhile."""
        self.checking = False
        while self._early and not self.checking and not self._gone():
            self._take(self._early.pop(0))

    def _choose_nick(self, nick: str) -> None:
        if self.claim_account is not None:
            self._password(nick)
            return
        nick = unicodedata.normalize("NFKC", nick)
        problem = self.source.check_nick(nick)
        if problem is not None:
            self.send_line(f"{problem}; what is your nick?")
            return
        if self.source.trusted:
            self._join(nick)
            return
        self.claim = nick
        self.checking = True
        self.source.claim(self, nick)

    def owner_known(self, nick: str, owner: NickOwner | None) -> None:
        """Whose the nick asked for is (None: that could not be found out). Reactor
        thread."""
        if self._closing or self.claim != nick:
            self.checking = False
            self.source.release(self)
            return
        self._decide(nick, owner)
        self._checked()

    def _decide(self, nick: str, owner: NickOwner | None) -> None:
        if owner is None:
            self.source.release(self)
            self._join_as_guest(f"I can't check who {nick} belongs to right now")
        elif owner.looks_like is not None:
            self.source.release(self)
            self.send_line(
                f"the nick {nick} looks too much like {owner.looks_like}, which belongs to "
                "an account; what is your nick?"
            )
        elif owner.account is None:
            self.source.release(self)
            self._join(nick)
        elif not owner.has_password:
            self.source.release(self)
            self.send_line(
                f"the nick {nick} belongs to the account {owner.username}, which has no "
                "password here (an admin can set one); what is your nick?"
            )
        else:
            self.claim_account, self.claim_username = owner.account, owner.username
            self.send_line(
                f"{nick} belongs to the account {owner.username}: type its password to "
                "use it, or an empty line to be a guest."
            )

    def _password(self, secret: str) -> None:
        """The line after the password prompt: check it (an empty one: be a guest)."""
        nick, account = self.claim, self.claim_account
        assert nick is not None and account is not None
        if not secret:
            self.source.release(self)
            self._join_as_guest(None)
            return
        login = Event(
            source=self.source.name,
            type=EventType.MESSAGE,
            sender=Sender(connection=self.connection_id, id=nick, nick=nick),
            channel=nick,
            public=False,
            data={"address": self.host},
        )
        self.checking = True
        try:
            self.source.bot.call_later(
                0,
                self.source._thd_login,
                Event(self.source.name, "console-login"),
                self,
                login,
                account,
                secret,
            )
        except Exception:  # the dispatcher is stopping
            self.logged_in("I can't check passwords right now")

    def logged_in(self, problem: str | None) -> None:
        """The password check's outcome: None (the nick is theirs now, authenticated),
        else why not (they become a guest). Reactor thread."""
        nick, username = self.claim, self.claim_username
        self.source.release(self)
        if self._closing or nick is None:
            self.checking = False
            return
        if problem is None:
            self._join(nick)
            self.send_line(f"You are authenticated as {username}.")
        else:
            self._join_as_guest(f"sorry, {problem}")
        self._checked()

    def _join_as_guest(self, why: str | None) -> None:
        nick = self.source.guest_nick()
        self.send_line(f"{why + '; ' if why else ''}you are {nick} here.")
        self._join(nick)

    def _join(self, nick: str) -> None:
        self.nick = nick
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None
        self._heard()  # the idle timer from now on
        self.source.joined(self)
        name = self.source.nick or self.source.name
        self.send_line(f"Hi {nick}! Every line you type is a message to {name}; /quit leaves.")


class ConsoleFactory(ServerFactory):
    """Builds a `Console` for each connection to a `TelnetSource`."""

    noisy = False

    def __init__(self, source: TelnetSource) -> None:
        self.source = source

    def buildProtocol(self, addr: Any) -> Console:
        console = Console(self.source, self.source.next_connection_id())
        console.factory = self
        return console
