"""Test doubles for the IRC source's unit tests: a source that records its events, an
endpoint that connects to StringTransports, and a wire to talk to the protocol over."""

from __future__ import annotations

from typing import Any

from twisted.internet import error
from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.interfaces import IStreamClientEndpoint
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport, StringTransportWithDisconnection
from twisted.python.failure import Failure
from zope.interface import implementer

from botcore.event import Event
from botcore.sources.irc import IRCSource
from botcore.sources.irc.protocol import IRCProtocol
from botcore.testing import StubContext

SERVER = "tcp:irc.example.net:6667"
#: Options every test source starts from: flood control off, so tests see lines at once.
BASE: dict[str, Any] = {"servers": [SERVER], "nick": "bot", "flood_rate": 0.0}
#: What ngircd-like servers announce; tests that need other features send their own.
ISUPPORT = (
    ":irc.example.net 005 bot PREFIX=(qaohv)~&@%+ CHANTYPES=#& CASEMAPPING=rfc1459 "
    "CHANMODES=beI,k,l,imnst STATUSMSG=@+ :are supported by this server"
)


class RecordingIRCSource(IRCSource):
    """An IRC source whose events are kept in ``events`` instead of being dispatched."""

    def __init__(self, *args: Any, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self.events: list[Event] = []

    def emit(self, event: Event) -> None:
        self.events.append(event)

    def take_events(self) -> list[Event]:
        events, self.events = self.events, []
        return events


def make_source(clock: Clock | None = None, **options: Any) -> RecordingIRCSource:
    """A set-up recording source on ``clock`` with BASE options plus ``options``; its bot
    is a stub context on the same clock."""
    clock = clock or Clock()
    source = RecordingIRCSource(
        "irc", StubContext(reactor=clock), {**BASE, **options}, reactor=clock
    )
    source.setup()
    return source


class Wire:
    """A protocol connected to a StringTransport: feed it server lines, read what it sent."""

    def __init__(self, source: IRCSource, server: str = SERVER) -> None:
        self.source = source
        self.clock = source.reactor
        self.protocol = IRCProtocol(source, server)
        self.transport = StringTransport()
        self.protocol.makeConnection(self.transport)

    def receive(self, *lines: str | bytes) -> None:
        """Deliver server lines (CR LF added)."""
        data = b"".join(
            (line if isinstance(line, bytes) else line.encode("utf-8")) + b"\r\n" for line in lines
        )
        self.protocol.dataReceived(data)

    def sent(self) -> list[str]:
        """The lines written since the last call."""
        data = self.transport.value()
        self.transport.clear()
        return [line for line in data.decode("utf-8").split("\r\n") if line]

    def sent_bytes(self) -> list[bytes]:
        data = self.transport.value()
        self.transport.clear()
        return [line + b"\r\n" for line in data.split(b"\r\n") if line]

    def register(self, nick: str = "bot", host: str = "host.example", *extra: str) -> None:
        """Complete registration as nick!~bot@host with ISUPPORT, then forget what the
        bot sent while registering."""
        self.receive(
            f":irc.example.net 001 {nick} :Welcome to the network {nick}!~bot@{host}",
            ISUPPORT.replace(" bot ", f" {nick} "),
            *extra,
        )
        self.sent()

    def join(self, channel: str = "#chan", names: str = "@bot") -> None:
        """The server confirms the bot's JOIN of ``channel`` with a NAMES list."""
        nick = self.protocol.nickname
        self.receive(
            f":{nick}!~bot@host.example JOIN {channel}",
            f":irc.example.net 353 {nick} = {channel} :{names}",
            f":irc.example.net 366 {nick} {channel} :End of /NAMES list.",
        )

    def lose(self, reason: Exception | None = None) -> None:
        """The connection ends."""
        self.protocol.connectionLost(Failure(reason or error.ConnectionDone()))


@implementer(IStreamClientEndpoint)
class ScriptedEndpoint:
    """Connects to a StringTransport (that tells the protocol when it is closed), or
    fails, as ``plan[server]`` says for each attempt (the last entry repeats); each
    connection is appended to ``connected`` as (server, protocol, transport)."""

    def __init__(self, server: str, plan: dict[str, list[bool]], connected: list[Any]) -> None:
        self.server = server
        self._plan = plan
        self._connected = connected

    def connect(self, factory: Any) -> Deferred[Any]:
        outcomes = self._plan.get(self.server) or [True]
        works = outcomes.pop(0) if len(outcomes) > 1 else outcomes[0]
        if not works:
            return fail(error.ConnectionRefusedError(self.server))
        protocol = factory.buildProtocol(None)
        transport = StringTransportWithDisconnection()
        transport.protocol = protocol
        protocol.makeConnection(transport)
        self._connected.append((self.server, protocol, transport))
        return succeed(protocol)
