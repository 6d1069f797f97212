"""Hostile and broken input never crashes or stalls the IRC protocol: invalid UTF-8,
over-long lines, missing parameters, malformed prefixes, unexpected numerics, a
property-based test feeding it random lines, and a hostile server on loopback (framing
tricks, an empty NICK, a server that goes silent after registering).

No handler may raise on any of it: `IRCProtocol.handleCommand` turns a handler's exception
into a warning so the connection survives, and these tests fail on that warning."""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from twisted.internet import reactor
from twisted.internet.defer import Deferred, succeed
from twisted.internet.endpoints import TCP4ServerEndpoint
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.task import Clock
from twisted.logger import LogLevel, formatEvent, globalLogPublisher
from twisted.trial.unittest import SynchronousTestCase, TestCase

from botcore.event import EventType
from botcore.sources.irc.protocol import MALFORMED, MAX_LINE, IRCProtocol
from botcore.testing import StubContext
from tests.sources.irc_harness import BASE, RecordingIRCSource, Wire, make_source

COMMANDS = [
    "PRIVMSG", "NOTICE", "JOIN", "PART", "KICK", "QUIT", "NICK", "MODE", "TOPIC", "INVITE",
    "PING", "PONG", "ERROR", "CAP", "AUTHENTICATE", "ACCOUNT", "CHGHOST", "AWAY", "WALLOPS",
    "001", "002", "004", "005", "302", "303", "324", "329", "330", "332", "333", "353",
    "354", "366", "372", "375", "376", "396", "401", "403", "421", "432", "433", "437",
    "464", "471", "473", "474", "475", "477", "900", "903", "904", "907", "999", "000",
    "BATCH", "TAGMSG", "FAIL", "WARN", "NOTE", "SETNAME", "ACK", "902", "905", "906", "908",
]  # fmt: skip
WORDS = ["bot", "#chan", "alice", "*", "=", "@", "+", "", ":", "\x01", "\x01ACTION", "-",
         "+o", "-v+b", "bot!u@h", "!@", "#", "@#chan", "PREFIX=(ov)@+", "CHANTYPES=",
         "PREFIX=garbage", "CASEMAPPING=ascii", "sasl", "LS", "ACK", "NAK", "multi-prefix",
         "\x01VERSION\x01", "\x01PING x\x01", "é", "\udcff", "0", "152",
         "account-notify", "+b1", "-b1", "netsplit", "netjoin", "draft/multiline",
         "labeled-response", "chathistory", "sts=port=6697", "sts=duration=9", "NEW", "DEL",
         "message-tags", "echo-message", "batch", "sasl=SCRAM-SHA-256", "+"]  # fmt: skip

word = st.one_of(st.sampled_from(WORDS), st.text(max_size=12))
prefix = st.one_of(
    st.just(""),
    st.sampled_from(["irc.example.net", "alice!a@h", "bot!~bot@host", "!", "@", "a!", "x@"]),
    st.text(max_size=15),
)
structured = st.builds(
    lambda tags, pre, command, params, trailing: (
        (f"@{tags} " if tags else "")
        + (f":{pre} " if pre else "")
        + command
        + "".join(" " + p for p in params)
        + (f" :{trailing}" if trailing is not None else "")
    ),
    st.one_of(
        st.just(""),
        st.sampled_from(
            [
                "account=alice",
                "a=b;c",
                "=;;",
                "x\\",
                "batch=b1",
                "label=bc1;msgid=m",
                "+draft/react=x;+draft/reply=m",
                "time=2024-01-01T00:00:00Z",
                "time=junk",
                "batch=b1;draft/multiline-concat",
                "msgid=m;+reply=r",
            ]
        ),
    ),
    prefix,
    st.one_of(st.sampled_from(COMMANDS), st.text(min_size=1, max_size=6)),
    st.lists(word, max_size=6),
    st.one_of(st.none(), word, st.text(max_size=40)),
).map(lambda line: line.encode("utf-8", "surrogateescape"))
raw = st.binary(max_size=120)
lines = st.lists(st.one_of(structured, structured, raw), min_size=1, max_size=30)


def handler_errors(logged: list[dict]) -> list[str]:
    """The handler exceptions `IRCProtocol.handleCommand` caught, as logged."""
    return [formatEvent(e) for e in logged if e.get("log_format") == MALFORMED]


def check_no_handler_raised(testcase: SynchronousTestCase, logged: list[dict]) -> None:
    """Fail when a handler raised or anything logged a traceback."""
    testcase.assertEqual(handler_errors(logged), [], "a handler raised")
    testcase.assertFalse([e for e in logged if e.get("log_failure") is not None])


def check_alive(testcase: SynchronousTestCase, wire: Wire) -> None:
    """The protocol still answers PING and still turns a message into an event."""
    wire.sent()
    wire.source.take_events()
    wire.receive("PING :sanity", ":zed!z@h PRIVMSG #sanity :still there?")
    testcase.assertIn("PONG :sanity", wire.sent())
    testcase.assertFalse(wire.transport.disconnected)
    messages = [e for e in wire.source.take_events() if e.type == EventType.MESSAGE]
    testcase.assertEqual([e.message.raw for e in messages], ["still there?"])


class RandomLinesTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.logged: list[dict] = []
        globalLogPublisher.addObserver(self.logged.append)
        self.addCleanup(globalLogPublisher.removeObserver, self.logged.append)

    def wire(self, registered: bool) -> Wire:
        wire = Wire(make_source(Clock(), channels=["#chan"], regain_interval=5.0))
        if registered:
            wire.register()
            wire.join("#chan", "@bot alice +bob")
        return wire

    @settings(
        max_examples=300,
        deadline=None,
        derandomize=True,
        suppress_health_check=[HealthCheck.too_slow],
    )
    @given(lines=lines, registered=st.booleans(), chunk=st.integers(min_value=1, max_value=64))
    def test_random_lines(self, lines: list[bytes], registered: bool, chunk: int) -> None:
        """Random lines, cut into random chunks, never raise, never close the connection,
        never log a traceback, and leave the protocol working."""
        wire = self.wire(registered)
        data = b"\r\n".join(lines) + b"\r\n"
        for start in range(0, len(data), chunk):
            wire.protocol.dataReceived(data[start : start + chunk])
        for event in wire.source.take_events():
            if event.type in EventType.TEXT:
                self.assertIsNotNone(event.sender)
                self.assertIsInstance(event.message.raw, str)
                self.assertTrue(event.channel)
        wire.clock.advance(1)
        if not registered:
            wire.register()
        check_alive(self, wire)
        check_no_handler_raised(self, self.logged)
        wire.lose()
        self.logged.clear()


class HostileInputTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.logged: list[dict] = []
        globalLogPublisher.addObserver(self.logged.append)
        self.addCleanup(globalLogPublisher.removeObserver, self.logged.append)
        self.source = make_source(Clock(), channels=["#chan"])
        self.wire = Wire(self.source)
        self.wire.register()
        self.wire.join("#chan", "@bot alice")
        self.source.take_events()

    def tearDown(self) -> None:
        check_alive(self, self.wire)
        check_no_handler_raised(self, self.logged)
        self.wire.lose()

    def warnings(self) -> list[str]:
        return [e["log_format"] for e in self.logged if e.get("log_level") == LogLevel.warn]

    def test_invalid_utf8(self) -> None:
        """Text that is not UTF-8 is decoded with the fallback encoding."""
        self.wire.receive(b":alice!a@h PRIVMSG #chan :caf\xe9 \x81")
        [event] = self.source.take_events()
        self.assertEqual(event.message.raw, "café \ufffd")

    def test_overlong_line_dropped(self) -> None:
        """A line over the limit is dropped with a warning; the next lines still count."""
        self.wire.receive(
            b":alice!a@h PRIVMSG #chan :" + b"x" * MAX_LINE, ":alice!a@h PRIVMSG #chan :ok"
        )
        [event] = self.source.take_events()
        self.assertEqual(event.message.raw, "ok")
        self.assertEqual(len(self.warnings()), 1)

    def test_complete_line_then_start_of_overlong_line(self) -> None:
        """A complete line followed, in the same read, by the start of an over-long line
        is delivered; the over-long line is dropped whole, up to its end, so its tail
        never runs as a command."""
        self.wire.protocol.dataReceived(
            b":alice!a@h PRIVMSG #chan :first\r\n:evil!e@h PRIVMSG #chan :"
            + b"y" * (MAX_LINE + 10)
        )
        self.wire.protocol.dataReceived(b"PING :smuggled\r\n:alice!a@h PRIVMSG #chan :next\r\n")
        self.assertEqual([e.message.raw for e in self.source.take_events()], ["first", "next"])
        self.assertNotIn("PONG :smuggled", self.wire.sent())
        self.assertEqual(len(self.warnings()), 1)

    def test_overlong_line_across_chunks(self) -> None:
        """An endless line arriving in pieces is dropped without holding it all in memory."""
        self.wire.protocol.dataReceived(b":alice!a@h PRIVMSG #chan :")
        for _ in range(5):
            self.wire.protocol.dataReceived(b"y" * MAX_LINE)
            self.assertLessEqual(len(self.wire.protocol._buffer), MAX_LINE)
        self.wire.protocol.dataReceived(b"tail\r\n:alice!a@h PRIVMSG #chan :after\r\n")
        self.assertEqual([e.message.raw for e in self.source.take_events()], ["after"])

    def test_missing_parameters(self) -> None:
        """Commands without their parameters are ignored quietly."""
        for command in ("PRIVMSG", "NOTICE", "JOIN", "PART", "KICK", "NICK", "MODE", "INVITE",
                        "TOPIC", "CAP", "AUTHENTICATE", "ACCOUNT", "CHGHOST", "PING"):  # fmt: skip
            self.wire.receive(f":alice!a@h {command}")
        for numeric in ("001", "002", "003", "004", "005", "010", "251", "252", "254", "255",
                        "302", "303", "330", "331", "332", "353", "354", "366", "372", "375",
                        "376", "396", "433", "474", "900", "904"):  # fmt: skip
            self.wire.receive(f":irc.example.net {numeric}")
        self.assertEqual([e for e in self.source.take_events() if e.type != "source"], [])
        self.assertFalse([e for e in self.logged if e.get("log_failure") is not None])

    def test_malformed_prefixes(self) -> None:
        """Prefixes without a nick, user or host make no event and no error."""
        for pre in ("", "!", "@", "!@", "nick!", "!user@host", ":"):
            self.wire.receive(f":{pre} PRIVMSG #chan :x", f":{pre} JOIN #chan", f":{pre} QUIT :x")
        self.assertFalse([e for e in self.logged if e.get("log_failure") is not None])

    def test_unexpected_numerics(self) -> None:
        """Numerics nobody expects are ignored."""
        self.wire.receive(":irc.example.net 999 bot a b :c", ":irc.example.net 000", "123")
        self.assertEqual(self.source.take_events(), [])

    def test_crazy_modes(self) -> None:
        """Nonsense MODE lines leave the member list consistent."""
        self.wire.receive(
            ":op!o@h MODE #chan +oooo alice",
            ":op!o@h MODE #chan -+-+",
            ":op!o@h MODE #chan +v nobody",
            ":op!o@h MODE #chan",
            ":op!o@h MODE #chan +b",
        )
        self.assertEqual(self.source.members("#chan"), {"bot": "@", "alice": "@"})

    def test_blank_and_control_lines(self) -> None:
        """Blank lines, lone CRs and NULs are skipped."""
        self.wire.protocol.dataReceived(b"\r\n\n\r\r\n\0\r\n   \r\n")
        self.assertEqual(self.source.take_events(), [])


class BrokenHandlerTests(SynchronousTestCase):
    """The checks above catch a handler that raises, though the protocol survives it."""

    def test_raising_handler_fails_the_check(self) -> None:
        """An IndexError in irc_INVITE (swallowed by handleCommand into a warning) makes
        `check_no_handler_raised` fail."""
        logged: list[dict] = []
        globalLogPublisher.addObserver(logged.append)
        self.addCleanup(globalLogPublisher.removeObserver, logged.append)

        def broken(protocol: IRCProtocol, prefix: str, params: list[str]) -> None:
            params[5]  # the deliberate bug: no such parameter

        self.patch(IRCProtocol, "irc_INVITE", broken)
        wire = Wire(make_source(Clock(), channels=["#chan"]))
        wire.register()
        wire.receive(":alice!a@h INVITE bot #elsewhere")
        check_alive(self, wire)  # the connection survives it...
        with self.assertRaises(self.failureException) as raised:
            check_no_handler_raised(self, logged)  # ...but the check does not
        self.assertIn("ignored a malformed INVITE", str(raised.exception))
        self.assertIn("IndexError", str(raised.exception))
        wire.lose()


class HostileServer(Protocol):
    """One connection to `HostileServerFactory`: welcomes the bot when it registers,
    records every line it sends and lets a test wait (bounded) for one."""

    def __init__(self, factory: HostileServerFactory) -> None:
        self.factory = factory
        self.lines: list[str] = []
        self._buffer = b""
        self._waiters: list[tuple[str, Deferred[str]]] = []
        self.lost: Deferred[None] = Deferred()

    def connectionMade(self) -> None:
        self.factory.connections.append(self)
        waiters, self.factory.waiters = self.factory.waiters, []
        for d in waiters:
            d.callback(self)

    def dataReceived(self, data: bytes) -> None:
        *lines, self._buffer = (self._buffer + data).split(b"\r\n")
        for raw in lines:
            line = raw.decode("utf-8", "replace")
            self.lines.append(line)
            if line.startswith("USER ") and self.factory.welcome:
                self.write(f":irc.hostile 001 {NICK} :Welcome {NICK}!u@h".encode())
            for waiter in list(self._waiters):
                if waiter[0] in line:
                    self._waiters.remove(waiter)
                    waiter[1].callback(line)

    def connectionLost(self, reason: Any = None) -> None:
        self.lost.callback(None)

    def write(self, *lines: bytes) -> None:
        """Send these lines, CR LF after each, in one write."""
        self.transport.write(b"".join(line + b"\r\n" for line in lines))

    def wait_for(self, text: str) -> Deferred[str]:
        """Fires with the first line from the bot containing ``text``; fails after
        `WAIT` seconds."""
        for line in self.lines:
            if text in line:
                return succeed(line)
        d: Deferred[str] = Deferred()
        self._waiters.append((text, d))
        return d.addTimeout(WAIT, reactor)


class HostileServerFactory(Factory):
    def __init__(self, welcome: bool = True) -> None:
        self.welcome = welcome
        self.connections: list[HostileServer] = []
        self.waiters: list[Deferred[HostileServer]] = []

    def buildProtocol(self, addr: Any) -> HostileServer:
        return HostileServer(self)

    def connection(self, index: int) -> Deferred[HostileServer]:
        """Fires with the ``index``-th connection (from 0) once it is made."""
        if index < len(self.connections):
            return succeed(self.connections[index])
        d: Deferred[HostileServer] = Deferred()
        self.waiters.append(d)
        d.addCallback(lambda _: self.connection(index))
        return d.addTimeout(WAIT, reactor)


NICK = "bot"
#: Bound on any one wait for the bot or the server (generous: only wrong behaviour fails).
WAIT = 60.0


class HostileServerTests(TestCase):
    """The IRC source over real TCP on loopback against a server that misbehaves."""

    timeout = 2 * WAIT

    def setUp(self) -> None:
        self.logged: list[dict] = []
        globalLogPublisher.addObserver(self.logged.append)
        self.addCleanup(globalLogPublisher.removeObserver, self.logged.append)

    async def start(self, factory: HostileServerFactory, **options: Any) -> Any:
        port = await TCP4ServerEndpoint(reactor, 0, interface="127.0.0.1").listen(factory)
        self.addCleanup(port.stopListening)
        source = RecordingIRCSource(
            "irc",
            StubContext(reactor=reactor),
            {**BASE, "servers": [f"tcp:127.0.0.1:{port.getHost().port}"], **options},
            reactor=reactor,  # the real one: real sockets, real time
            jitter=lambda: 1.0,
        )
        source.setup()
        self.delays: list[float] = []
        retry_delay = source.retry_delay

        def recorded(attempt: int) -> float:
            self.delays.append(retry_delay(attempt))
            return self.delays[-1]

        source.retry_delay = recorded  # type: ignore[method-assign]
        source.startService()
        self.addCleanup(source.stopService)
        return source

    async def test_complete_line_then_start_of_overlong_line(self) -> None:
        """One read holding a complete line and the start of an over-long one: the line
        is answered, and the over-long line's tail, sent later, is not run."""
        factory = HostileServerFactory()
        await self.start(factory)
        server = await factory.connection(0)
        await server.wait_for("USER ")
        # One write (so, on loopback, one read): a line, then an unfinished over-long one.
        start = b":evil!e@h PRIVMSG bot :" + b"y" * (MAX_LINE + 100)
        server.transport.write(b"PING :first\r\n" + start)
        await server.wait_for("PONG :first")
        server.write(b"PING :smuggled", b"PING :after")
        await server.wait_for("PONG :after")
        self.assertNotIn("PONG :smuggled", server.lines)
        check_no_handler_raised(self, self.logged)

    async def test_empty_nick_keeps_bot_listening(self) -> None:
        """After ``:bot!u@h NICK :`` the bot keeps its nick and still hears private
        messages to it."""
        factory = HostileServerFactory()
        source = await self.start(factory)
        server = await factory.connection(0)
        await server.wait_for("USER ")
        server.write(b":bot!u@h NICK :", b"PING :sync")
        await server.wait_for("PONG :sync")
        self.assertEqual(source.nick, NICK)
        server.write(b":alice!a@h PRIVMSG bot :hello", b"PING :sync2")
        await server.wait_for("PONG :sync2")
        messages = [e for e in source.take_events() if e.type == EventType.MESSAGE]
        self.assertEqual([(e.message.raw, e.channel) for e in messages], [("hello", "alice")])
        check_no_handler_raised(self, self.logged)

    async def test_silent_server_backs_off(self) -> None:
        """A server that registers the bot and then never answers a PING: each ping
        time-out counts as a failure in a row, so the waits before reconnecting grow."""
        factory = HostileServerFactory()
        source = await self.start(
            factory,
            ping_interval=0.1,
            ping_timeout=0.1,
            reconnect_delay=0.05,
            reconnect_max_delay=10.0,
        )
        for index in range(3):
            server = await factory.connection(index)
            await server.wait_for("PING :botcore")  # registered, and now kept waiting
            await server.lost
        await factory.connection(3)
        self.assertEqual(self.delays, [0.05, 0.1, 0.2])
        self.assertEqual(source.failures, 3)
        check_no_handler_raised(self, self.logged)
