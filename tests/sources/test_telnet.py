"""Tests for the telnet console source: the nick handshake, lines to events and replies
to lines, bad input, disconnects, and listening."""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

from twisted.internet import reactor
from twisted.internet.address import IPv4Address
from twisted.internet.defer import Deferred, ensureDeferred, succeed
from twisted.internet.endpoints import TCP4ClientEndpoint
from twisted.internet.error import CannotListenError
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.testing import (
    MemoryReactor,
    MemoryReactorClock,
    RaisingMemoryReactor,
    StringTransport,
    StringTransportWithDisconnection,
)
from twisted.logger import LogLevel, capturedLogs, formatEvent, globalLogPublisher
from twisted.protocols.basic import LineOnlyReceiver
from twisted.trial.unittest import SynchronousTestCase, TestCase
from zope.interface.verify import verifyObject

from botcore.bot import Bot
from botcore.dispatch.dispatcher import Dispatcher
from botcore.event import Event, Response
from botcore.interfaces import ISource
from botcore.options import ServerEndpointOption
from botcore.processor import Processor, match
from botcore.settings import read_config
from botcore.sources.telnet import Console, ConsoleFactory, ListenFailed, TelnetSource
from botcore.testing import InlineReactor, InlineThreadPool, ManualThreadPool, StubContext


class Talk(Processor):
    """Replies the tests ask for, and a record of every event seen."""

    def __init__(self, *args: Any, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self.seen: list[Event] = []

    @match("ping")
    def ping(self, event: Event) -> None:
        self.seen.append(event)
        event.addresponse("pong")

    @match("wave")
    def wave(self, event: Event) -> None:
        event.addresponse("waves", action=True)

    @match("poem")
    def poem(self, event: Event) -> None:
        event.addresponse("roses are red\nviolets are blue")

    @match("ack")
    def ack(self, event: Event) -> None:
        event.addresponse(True)

    @match("greet bob")
    def greet_bob(self, event: Event) -> None:
        event.addresponse(f"{event.sender.nick} says hi", target="bob")


class TelnetTestCase(SynchronousTestCase):
    """A telnet source with a real dispatcher running `Talk` inline."""

    config: ClassVar[dict[str, Any]] = {"max_line": 64}
    pool_class: Any = InlineThreadPool

    def setUp(self) -> None:
        self.clock = InlineReactor()
        self.pool = self.pool_class()
        self.bot = StubContext(reactor=self.clock, names=["bc"])
        self.dispatcher = Dispatcher(
            {}, reactor=self.clock, threadpool=self.pool, sources=self.bot.get_source
        )
        self.bot.dispatcher = self.dispatcher
        self.talk = Talk("testing", self.bot, {})
        self.dispatcher.set_chain([self.talk])
        self.dispatcher.startService()
        self.addCleanup(self._stop_dispatcher)
        self.source = TelnetSource("console", self.bot, dict(self.config))
        self.source.setup()
        self.bot.add_source(self.source)
        self.ports = 40000

    def _stop_dispatcher(self) -> None:
        if self.dispatcher.running:
            self.successResultOf(self.dispatcher.stopService())

    def connect(self, nick: str | None = None) -> tuple[Console, StringTransport]:
        """A new connection; with ``nick``, past the handshake and with its output cleared."""
        self.ports += 1
        peer = IPv4Address("TCP", "127.0.0.1", self.ports)
        console = ConsoleFactory(self.source).buildProtocol(peer)
        transport = StringTransport(peerAddress=peer)
        console.makeConnection(transport)
        if nick is not None:
            self.give_nick(console, nick)
            self.assertIn(f"Hi {nick}!", transport.value().decode())
            transport.clear()
        return console, transport

    def give_nick(self, console: Console, nick: str) -> None:
        """Type ``nick`` and let the console find out whose it is (a job on the pool, run
        here whatever the pool; nothing else queued is run)."""
        manual = isinstance(self.pool, ManualThreadPool)
        before = len(self.pool.jobs) if manual else 0
        console.dataReceived(nick.encode() + b"\r\n")
        self.clock.advance(0)
        while manual and len(self.pool.jobs) > before:
            self.pool.run(before)

    def lines(self, transport: StringTransport) -> list[str]:
        """The lines written so far (each must end with CRLF); clears the transport."""
        data = transport.value().decode("utf-8")
        transport.clear()
        self.assertTrue(data == "" or data.endswith("\r\n"), repr(data))
        return data.split("\r\n")[:-1]

    def say(self, console: Console, transport: StringTransport, text: str) -> list[str]:
        console.dataReceived(text.encode("utf-8") + b"\r\n")
        self.clock.advance(0)  # a nick is looked up in a call_later
        return self.lines(transport)


class HandshakeTests(TelnetTestCase):
    """Connecting and choosing a nick."""

    def test_greeting(self) -> None:
        """A new connection is greeted and asked for a nick."""
        _, transport = self.connect()
        self.assertEqual(
            self.lines(transport), ["Hello, this is botcore's console.", "What is your nick?"]
        )

    def test_nick_accepted(self) -> None:
        """A valid nick is welcomed and the person is known by it."""
        console, transport = self.connect()
        transport.clear()
        self.assertEqual(
            self.say(console, transport, "alice"),
            ["Hi alice! Every line you type is a message to botcore; /quit leaves."],
        )
        self.assertIs(self.source.console_for("alice"), console)

    def test_bad_nicks(self) -> None:
        """Empty nicks, nicks with spaces, nicks in use (in any case) and the bot's own
        names are refused with the reason, and the question is asked again."""
        self.connect("alice")
        console, transport = self.connect()
        transport.clear()
        for nick, reason in [
            ("", "a nick cannot be empty"),
            ("al ice", "a nick cannot contain spaces"),
            ("ALICE", "the nick ALICE is in use"),
            ("BC", "that is my name"),
            ("x" * 33, "a nick is at most 32 characters"),
        ]:
            self.assertEqual(
                self.say(console, transport, nick), [f"{reason}; what is your nick?"], nick
            )
        self.assertIsNone(console.nick)
        self.say(console, transport, "bob")
        self.assertEqual(console.nick, "bob")

    def test_unclear_and_lookalike_nicks(self) -> None:
        """Nicks with invisible characters, punctuation beyond a little ASCII, or mixed
        scripts are refused, and so are look-alikes of a nick in use; fullwidth letters
        are read as the ASCII ones."""
        self.connect("cop")
        self.connect("copy")
        console, transport = self.connect()
        transport.clear()
        for nick, reason in [
            ("c\u043ep", "a nick cannot mix scripts (cyrillic, latin)"),
            ("\u0441\u043e\u0440", "the nick \u0441\u043e\u0440 looks too much like cop"),
            ("c\u043ep\u0443", "a nick cannot mix scripts (cyrillic, latin)"),
            (
                "\u0441\u043e\u0440\u0443",
                "the nick \u0441\u043e\u0440\u0443 looks too much like copy",
            ),
            ("bob\u00ad", "a nick cannot contain control characters"),
            ("b\u00b7b", "a nick cannot contain U+00B7 (middle dot)"),
            ("\uff43\uff4f\uff50", "the nick cop is in use"),
        ]:
            self.assertEqual(
                self.say(console, transport, nick), [f"{reason}; what is your nick?"], nick
            )
        self.assertEqual(
            self.say(console, transport, "\uff42\uff4f\uff42")[0],
            "Hi bob! Every line you type is a message to botcore; /quit leaves.",
        )

    def test_nick_free_again_after_leaving(self) -> None:
        """When someone leaves, their nick can be taken by someone else."""
        console, _ = self.connect("alice")
        console.connectionLost(None)
        self.assertIsNone(self.source.console_for("alice"))
        other, _ = self.connect("alice")
        self.assertIs(self.source.console_for("alice"), other)

    def test_is_a_source(self) -> None:
        """The telnet source provides ISource, supports actions and multi-line text, and
        has no truncation point; its nick is the bot's name."""
        verifyObject(ISource, self.source)
        self.assertEqual(self.source.type, "telnet")
        self.assertEqual(self.source.supports, frozenset({"action", "multiline"}))
        self.assertIsNone(self.source.truncation_point())
        self.assertEqual(self.source.nick, "botcore")

    def test_names_and_no_channels(self) -> None:
        """The console answers to the bot's names and has no channels: every target is a
        person, however it is spelled."""
        self.assertEqual(self.source.names(), ("botcore", "bc"))
        for target in ("#chan", "&local", "alice", ""):
            self.assertFalse(self.source.is_channel(target), target)


class MessageTests(TelnetTestCase):
    """Lines in, events to the dispatcher, replies out."""

    def test_line_becomes_private_addressed_event(self) -> None:
        """Each line is a private message addressed to the bot, from the person's nick,
        over their connection, not authenticated."""
        console, transport = self.connect("alice")
        self.assertEqual(self.say(console, transport, "ping"), ["pong"])
        [event] = self.talk.seen
        self.assertEqual(event.source, "console")
        self.assertEqual(event.type, "message")
        self.assertEqual(event.sender.id, "alice")
        self.assertEqual(event.sender.nick, "alice")
        self.assertEqual(event.sender.connection, console.connection_id)
        self.assertEqual(event.channel, "alice")
        self.assertFalse(event.public)
        self.assertTrue(event.addressed)
        self.assertFalse(event.authenticated)
        self.assertEqual(event.message.raw, "ping")

    def test_trusted_console_is_authenticated(self) -> None:
        """With ``trusted``, events from the console count as authenticated."""
        self.source.config["trusted"] = True
        console, transport = self.connect("alice")
        self.say(console, transport, "ping")
        self.assertTrue(self.talk.seen[0].authenticated)

    def test_line_endings_and_chunks(self) -> None:
        """Lines may end with LF or CRLF and arrive split or several at once."""
        console, transport = self.connect("alice")
        console.dataReceived(b"pi")
        console.dataReceived(b"ng\npi")
        console.dataReceived(b"ng\r")
        console.dataReceived(b"\nping\r\nping\n")
        self.assertEqual(self.lines(transport), ["pong"] * 4)

    def test_blank_lines_ignored(self) -> None:
        """Blank lines are not messages."""
        console, transport = self.connect("alice")
        self.assertEqual(self.say(console, transport, "   "), [])
        self.assertEqual(self.talk.seen, [])

    def test_action(self) -> None:
        """An action is written as ``* botname text``."""
        console, transport = self.connect("alice")
        self.assertEqual(self.say(console, transport, "wave"), ["* botcore waves"])

    def test_multiline(self) -> None:
        """Multi-line text becomes several lines."""
        console, transport = self.connect("alice")
        self.assertEqual(
            self.say(console, transport, "poem"), ["roses are red", "violets are blue"]
        )

    def test_acknowledgement(self) -> None:
        """A bare True reply (no core Address in this chain to word it) reaches the
        console as a word from the dispatcher, not as ``True``."""
        console, transport = self.connect("alice")
        self.assertEqual(self.say(console, transport, "ack"), ["Okay"])

    def test_several_users(self) -> None:
        """Replies go to the person who spoke, not to everyone."""
        alice, alice_wire = self.connect("alice")
        bob, bob_wire = self.connect("bob")
        self.assertEqual(self.say(bob, bob_wire, "wave"), ["* botcore waves"])
        self.assertEqual(self.lines(alice_wire), [])
        self.assertEqual(self.say(alice, alice_wire, "ping"), ["pong"])
        self.assertEqual(self.lines(bob_wire), [])

    def test_reply_from_elsewhere(self) -> None:
        """A reply routed to the source (a delayed call, another source) reaches the nick
        it is for, found case-insensitively."""
        _, transport = self.connect("Alice")
        self.source.send(Response("hello there", target="alice", source="console"))
        self.assertEqual(self.lines(transport), ["hello there"])

    def test_reply_to_nobody(self) -> None:
        """A reply to a nick nobody uses is dropped quietly."""
        self.source.send(Response("hello?", target="nobody", source="console"))
        self.assertEqual(self.flushLoggedErrors(), [])

    def test_quit(self) -> None:
        """``/quit`` says goodbye and closes the connection."""
        console, transport = self.connect("alice")
        self.assertEqual(self.say(console, transport, "/quit"), ["bye."])
        self.assertTrue(transport.disconnecting)


class BadInputTests(TelnetTestCase):
    """Input that is refused without disturbing the session."""

    def test_invalid_utf8(self) -> None:
        """A line that is not UTF-8 gets an error line; the session goes on."""
        console, transport = self.connect("alice")
        console.dataReceived(b"\xff\xfe ping\r\n")
        self.assertEqual(self.lines(transport), ["error: invalid UTF-8; line ignored."])
        self.assertEqual(self.say(console, transport, "ping"), ["pong"])
        self.assertFalse(transport.disconnecting)

    def test_invalid_utf8_nick(self) -> None:
        """A nick that is not UTF-8 is refused the same way."""
        console, transport = self.connect()
        transport.clear()
        console.dataReceived(b"\xc3(\n")
        self.assertEqual(self.lines(transport), ["error: invalid UTF-8; line ignored."])
        self.assertIsNone(console.nick)

    def test_overlong_line(self) -> None:
        """A complete line longer than ``max_line`` gets an error and is not a message;
        the next line works."""
        console, transport = self.connect("alice")
        console.dataReceived(b"p" * 65 + b"\r\nping\r\n")
        self.assertEqual(
            self.lines(transport), ["error: line longer than 64 bytes; line ignored.", "pong"]
        )
        self.assertEqual(len(self.talk.seen), 1)

    def test_line_of_exactly_max_line(self) -> None:
        """A line of exactly ``max_line`` bytes is accepted, even split before its CRLF."""
        console, transport = self.connect("alice")
        console.dataReceived(b"ping" + b" " * 60 + b"\r")
        console.dataReceived(b"\n")
        self.assertEqual(self.lines(transport), ["pong"])

    def test_overlong_line_in_pieces(self) -> None:
        """An over-long line arriving in pieces gets one error; the rest of it, up to its
        end, is discarded, and the following line works."""
        console, transport = self.connect("alice")
        console.dataReceived(b"x" * 70)
        self.assertEqual(
            self.lines(transport), ["error: line longer than 64 bytes; line ignored."]
        )
        console.dataReceived(b"ping" * 40)
        console.dataReceived(b"ping\r\nping\r\n")
        self.assertEqual(self.lines(transport), ["pong"])
        self.assertEqual(len(self.talk.seen), 1)
        self.assertFalse(transport.disconnecting)

    def test_flood_disconnects(self) -> None:
        """Three over-long lines in a row close the connection."""
        console, transport = self.connect("alice")
        console.dataReceived((b"x" * 70 + b"\n") * 5)
        self.assertEqual(
            self.lines(transport),
            ["error: line longer than 64 bytes; line ignored."] * 2
            + ["error: too many over-long lines; goodbye."],
        )
        self.assertTrue(transport.disconnecting)
        self.assertEqual(self.talk.seen, [])

    def test_good_line_resets_flood_count(self) -> None:
        """Over-long lines separated by normal ones do not count as a flood."""
        console, transport = self.connect("alice")
        console.dataReceived((b"x" * 70 + b"\nping\n") * 4)
        self.assertFalse(transport.disconnecting)
        self.assertEqual(len(self.talk.seen), 4)


class PendingTests(TelnetTestCase):
    """Events still being processed: disconnects, limits and shutdown."""

    pool_class = ManualThreadPool

    def test_nick_held_while_looked_up(self) -> None:
        """While the console finds out whose a nick is, it is held: nobody else may take
        it, replies to the nick do not reach the connection that asked for it, and lines
        typed meanwhile are taken, in order, once it is known."""
        alice, _ = self.connect("alice")
        asking, wire = self.connect()
        wire.clear()
        asking.dataReceived(b"bob\r\nping\r\n")
        self.clock.advance(0)
        self.assertEqual(self.lines(wire), [])
        other, other_wire = self.connect()
        other_wire.clear()
        self.assertEqual(self.say(other, other_wire, "BOB"),
                         ["the nick BOB is in use; what is your nick?"])  # fmt: skip
        alice.dataReceived(b"greet bob\r\n")
        self.pool.run(-1)  # alice's line, not the look-up
        self.assertEqual(self.lines(wire), [])
        self.pool.run_all()  # the look-up (no database here: the nick is free), then ping
        self.assertEqual(
            self.lines(wire),
            ["Hi bob! Every line you type is a message to botcore; /quit leaves.", "pong"],
        )
        self.assertEqual(self.source.claims, {})

    def test_lines_while_looked_up_bounded(self) -> None:
        """Lines past max_pending typed during the look-up are refused."""
        self.patch(TelnetSource, "max_pending", 2)
        asking, wire = self.connect()
        asking.dataReceived(b"bob\r\none\r\ntwo\r\nthree\r\n")
        self.assertIn("one moment, I'm still checking; line ignored.", self.lines(wire))

    def test_leaving_while_looked_up(self) -> None:
        """A connection that leaves while its nick is looked up frees the nick."""
        asking, _ = self.connect()
        asking.dataReceived(b"bob\r\n")
        self.clock.advance(0)
        self.assertIn("bob", self.source.claims)
        asking.connectionLost(None)
        self.assertEqual(self.source.claims, {})
        self.pool.run_all()
        self.assertIsNone(self.source.console_for("bob"))

    def test_disconnect_mid_event(self) -> None:
        """Someone who leaves while their message is processed is cleaned up; the reply is
        dropped without an error."""
        console, transport = self.connect("alice")
        console.dataReceived(b"ping\r\n")
        transport.loseConnection()
        console.connectionLost(None)
        self.assertIsNone(self.source.console_for("alice"))
        self.assertNotIn(console, self.source.consoles)
        self.pool.run_all()
        self.assertEqual(self.lines(transport), [])
        self.assertEqual(len(self.talk.seen), 1)
        self.assertEqual(self.flushLoggedErrors(), [])

    def test_reply_not_given_to_new_owner_of_nick(self) -> None:
        """A reply to someone who left is not given to a newcomer with the same nick."""
        console, _ = self.connect("alice")
        console.dataReceived(b"ping\r\n")
        console.connectionLost(None)
        _, newcomer = self.connect("alice")
        self.pool.run_all()
        self.assertEqual(self.lines(newcomer), [])

    def test_newcomer_gets_own_replies(self) -> None:
        """Someone who takes the nick of a person who left gets the replies to their own
        lines, and nothing is kept of the departed once their events are done."""
        console, _ = self.connect("alice")
        console.dataReceived(b"ping\n")
        console.connectionLost(None)
        newcomer, wire = self.connect("alice")
        newcomer.dataReceived(b"wave\n")
        self.pool.run_all()
        self.assertEqual(self.lines(wire), ["* botcore waves"])
        self.assertEqual((self.source.waiting, self.source.departed), ({}, {}))

    def test_departed_reply_to_someone_else(self) -> None:
        """A reply that someone who left asked to be sent to another person still goes."""
        _, bob_wire = self.connect("bob")
        console, _ = self.connect("alice")
        console.dataReceived(b"greet bob\n")
        console.connectionLost(None)
        self.connect("alice")
        self.pool.run_all()
        self.assertEqual(self.lines(bob_wire), ["alice says hi"])

    def test_replies_in_order(self) -> None:
        """Replies leave in the order the lines came in."""
        console, transport = self.connect("alice")
        console.dataReceived(b"ping\nwave\nping\n")
        self.pool.run_all()
        self.assertEqual(self.lines(transport), ["pong", "* botcore waves", "pong"])

    def test_too_many_waiting(self) -> None:
        """Lines beyond ``max_pending`` unanswered ones are refused with an error."""
        self.patch(TelnetSource, "max_pending", 2)
        console, transport = self.connect("alice")
        console.dataReceived(b"ping\nping\nping\n")
        self.assertEqual(
            self.lines(transport),
            ["error: too many messages waiting for an answer; line ignored."],
        )
        self.pool.run_all()
        self.assertEqual(self.lines(transport), ["pong", "pong"])
        console.dataReceived(b"ping\n")
        self.pool.run_all()
        self.assertEqual(self.lines(transport), ["pong"])

    def test_shutdown_refusal(self) -> None:
        """A line that arrives while the bot is shutting down is answered with why it was
        not processed."""
        console, transport = self.connect("alice")
        d = self.dispatcher.stopService()
        self.pool.run_all()
        self.successResultOf(d)
        self.assertEqual(
            self.say(console, transport, "ping"),
            ["sorry, the bot is shutting down: your message was not processed."],
        )
        self.assertEqual(self.talk.seen, [])


class ServiceTests(TelnetTestCase):
    """Listening and stopping."""

    def make_source(self, reactor: Any, **config: Any) -> TelnetSource:
        source = TelnetSource("console", self.bot, config, reactor=reactor)
        source.setup()
        return source

    def test_listens_on_endpoint(self) -> None:
        """Starting listens on the configured endpoint (loopback port 3000 by default) and
        marks the source connected."""
        reactor = MemoryReactor()
        source = self.make_source(reactor)
        self.successResultOf(source.startService())
        [(port, factory, _, interface)] = reactor.tcpServers
        self.assertEqual((port, interface), (3000, "127.0.0.1"))
        self.assertIsInstance(factory, ConsoleFactory)
        self.assertEqual(source.state, "connected")

    def test_port_in_use(self) -> None:
        """When the endpoint cannot be listened on, the start fails with one clear error
        naming the source and the endpoint."""
        error = CannotListenError("127.0.0.1", 3000, OSError(98, "Address already in use"))
        source = self.make_source(RaisingMemoryReactor(listenException=error))
        failure = self.failureResultOf(source.startService(), ListenFailed)
        message = failure.getErrorMessage()
        self.assertIn("source console: cannot listen on tcp:3000:interface=127.0.0.1", message)
        self.assertIn("Address already in use", message)
        self.assertEqual(source.state, "failed")

    def test_bad_endpoint_at_start(self) -> None:
        """An endpoint that was not validated (set in code) fails the start, not raises."""
        source = self.make_source(MemoryReactor(), endpoint="nonsense:1")
        self.failureResultOf(source.startService(), ListenFailed)

    def test_stop_closes_connections(self) -> None:
        """Stopping says goodbye to everyone, closes their connections and stops
        listening; it is done when the connections are closed."""
        reactor = MemoryReactorClock()
        self.source = source = self.make_source(reactor)
        self.successResultOf(source.startService())
        waiting, waiting_wire = self.connect()
        talking, talking_wire = self.connect("alice")
        d = source.stopService()
        for transport in (waiting_wire, talking_wire):
            self.assertIn("the bot is shutting down; bye.", self.lines(transport))
            self.assertTrue(transport.disconnecting)
        self.assertIsNone(source.port)
        waiting.connectionLost(None)
        self.assertNoResult(d)
        talking.connectionLost(None)
        self.successResultOf(d)
        self.assertEqual(source.state, "stopped")
        self.assertEqual(reactor.getDelayedCalls(), [])

    def test_stop_aborts_stuck_connections(self) -> None:
        """A connection that has not closed ``close_timeout`` seconds after the stop (a
        client that does not read) is aborted."""
        reactor = MemoryReactorClock()
        self.source = source = self.make_source(reactor)
        self.successResultOf(source.startService())
        console, transport = self.connect("alice")
        d = source.stopService()
        reactor.advance(source.close_timeout - 0.1)
        self.assertFalse(transport.disconnected)
        reactor.advance(0.1)
        self.assertTrue(transport.disconnected)
        console.connectionLost(None)
        self.successResultOf(d)

    def test_endpoint_change_needs_restart(self) -> None:
        """A reload that changes the endpoint keeps the old one and says so."""
        source = self.make_source(MemoryReactor())
        self.successResultOf(source.startService())
        source.config["endpoint"] = "tcp:3001:interface=127.0.0.1"
        with capturedLogs() as events:
            source.setup()
        [warning] = [e for e in events if e["log_level"] == LogLevel.warn]
        self.assertIn("takes effect when the bot restarts", formatEvent(warning))
        self.assertEqual(source.listening_on, "tcp:3000:interface=127.0.0.1")

    def test_stop_without_connections(self) -> None:
        """Stopping with nobody connected is done at once."""
        reactor = MemoryReactorClock()
        source = self.make_source(reactor)
        self.successResultOf(source.startService())
        self.successResultOf(source.stopService())
        self.assertEqual(source.state, "stopped")


class EndpointOptionTests(SynchronousTestCase):
    """The ``endpoint`` option is checked when the configuration is read."""

    def test_valid(self) -> None:
        """Endpoint strings are accepted as written (surrounding space removed)."""
        option = ServerEndpointOption("help")
        self.assertEqual(
            option.parse(" tcp:3000:interface=127.0.0.1 "), "tcp:3000:interface=127.0.0.1"
        )
        self.assertEqual(option.parse("unix:/tmp/bot.sock"), "unix:/tmp/bot.sock")

    def test_invalid(self) -> None:
        """A bad endpoint is a config error saying what was expected and what is wrong."""
        option = ServerEndpointOption("help")
        # A port out of range passed the check and failed only at listening, after a
        # reload had stopped the old console (found by the second adversarial pass).
        for text in ("tcp:port", "carrier-pigeon:1", "", "tcp:99999", "tcp6:port=-1"):
            with self.assertRaises(ValueError) as raised:
                option.parse(text)
            self.assertIn("expected a Twisted server endpoint", str(raised.exception))


class _MemoryReactor(MemoryReactorClock):
    """Listens in memory, with a clock, running ``callFromThread`` inline."""

    def callFromThread(self, function: Any, *args: Any, **kw: Any) -> None:
        function(*args, **kw)


class StopReasonTests(SynchronousTestCase):
    """A real bot with two consoles: what their users are told when one stops alone."""

    def setUp(self) -> None:
        folder = Path(self.mktemp()).absolute()
        folder.mkdir(parents=True)
        ini = folder / "bot.ini"
        ini.write_text(
            f"[bot]\nautoload = no\nload =\n\n"
            f"[database:main]\nurl = sqlite:///{folder / 'bot.sqlite'}\n\n"
            "[source:console]\ntype = telnet\nendpoint = tcp:3001:interface=127.0.0.1\n\n"
            "[source:other]\ntype = telnet\nendpoint = tcp:3002:interface=127.0.0.1\n",
            encoding="utf-8",
        )
        self.reactor = _MemoryReactor()
        self.bot = Bot(read_config(ini), reactor=self.reactor, threadpool=InlineThreadPool())
        self.successResultOf(self.bot.startService())
        self.addCleanup(lambda: self.bot.running and self.successResultOf(self.bot.stopService()))

    def connect(self, name: str) -> StringTransportWithDisconnection:
        source = self.bot.get_source(name)
        console = ConsoleFactory(source).buildProtocol(None)
        transport = StringTransportWithDisconnection(
            peerAddress=IPv4Address("TCP", "127.0.0.1", 40001)
        )
        transport.protocol = console
        console.makeConnection(transport)
        console.dataReceived(b"alice\r\n")
        transport.clear()
        return transport

    def test_reload_says_the_console_is_reloaded(self) -> None:
        """``reload source console`` tells the console's users that the console is being
        reloaded (not that the bot shuts down); another console's users hear nothing."""
        console, other = self.connect("console"), self.connect("other")
        self.successResultOf(ensureDeferred(self.bot.reload_source("console")))
        self.assertEqual(
            console.value().decode().splitlines(),
            ["this console is being reloaded; the bot runs on. Bye."],
        )
        self.assertFalse(console.connected)
        self.assertEqual(other.value(), b"")
        self.assertTrue(other.connected)
        self.assertEqual(self.bot.get_source("console").stop_reason, None)

    def test_unload_and_disconnect_say_so(self) -> None:
        """Unloading or disconnecting one console says which it is."""
        transport = self.connect("console")
        self.successResultOf(ensureDeferred(self.bot.disconnect_source("console")))
        self.assertIn(b"this console is being disconnected", transport.value())
        self.successResultOf(ensureDeferred(self.bot.connect_source("console")))
        transport = self.connect("console")
        self.successResultOf(ensureDeferred(self.bot.unload_source("console")))
        self.assertIn(b"this console is being unloaded", transport.value())

    def test_bot_stop_says_the_bot_stops(self) -> None:
        """When the whole bot stops, every console says the bot is shutting down."""
        transports = [self.connect("console"), self.connect("other")]
        self.successResultOf(self.bot.stopService())
        for transport in transports:
            self.assertEqual(transport.value(), b"the bot is shutting down; bye.\r\n")


class LimitsTests(TelnetTestCase):
    """Timeouts, connection caps and the bound on what waits to be written, on a clock."""

    config: ClassVar[dict[str, Any]] = {
        "max_line": 64,
        "register_timeout": 60.0,
        "idle_timeout": 600.0,
        "max_connections": 4,
        "max_connections_per_address": 2,
        "output_limit": 1024,
    }

    def connect_from(self, host: str) -> tuple[Console, StringTransport]:
        self.ports += 1
        peer = IPv4Address("TCP", host, self.ports)
        console = ConsoleFactory(self.source).buildProtocol(peer)
        transport = StringTransport(peerAddress=peer)
        console.makeConnection(transport)
        return console, transport

    def test_registration_timeout(self) -> None:
        """A connection that gives no nick within ``register_timeout`` is told so and
        closed; empty lines and refused nicks do not extend it."""
        console, transport = self.connect()
        self.clock.advance(59)
        console.dataReceived(b"\r\n" * 3 + b"al ice\r\n")
        self.assertFalse(transport.disconnecting)
        transport.clear()
        self.clock.advance(1)
        self.assertEqual(self.lines(transport), ["no nick given; goodbye."])
        self.assertTrue(transport.disconnecting)
        console.connectionLost(None)
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_nick_stops_registration_timer(self) -> None:
        """Once a nick is given the registration timeout no longer applies."""
        _, transport = self.connect("alice")
        self.clock.advance(120)
        self.assertFalse(transport.disconnecting)

    def test_idle_timeout(self) -> None:
        """Someone who sends no line for ``idle_timeout`` seconds is closed; every line
        they send starts the wait again."""
        console, transport = self.connect("alice")
        self.clock.advance(599)
        self.assertEqual(self.say(console, transport, "ping"), ["pong"])
        self.clock.advance(599)
        self.assertFalse(transport.disconnecting)
        self.clock.advance(1)
        self.assertEqual(self.lines(transport), ["idle for 10 minutes; goodbye."])
        self.assertTrue(transport.disconnecting)
        console.connectionLost(None)
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_idle_timeout_off(self) -> None:
        """``idle_timeout = 0`` never closes an idle connection."""
        self.source.config["idle_timeout"] = 0.0
        _, transport = self.connect("alice")
        self.assertEqual(self.clock.getDelayedCalls(), [])
        self.clock.advance(10**6)
        self.assertFalse(transport.disconnecting)

    def named_from(self, host: str, nick: str) -> tuple[Console, StringTransport]:
        console, transport = self.connect_from(host)
        self.give_nick(console, nick)
        transport.clear()
        return console, transport

    def test_cap_per_address(self) -> None:
        """A third connection from one address, when both before it have nicks, is
        refused with why; another address is still accepted, and a place freed is taken
        again."""
        first, _ = self.named_from("10.0.0.1", "one")
        self.named_from("10.0.0.1", "two")
        refused, transport = self.connect_from("10.0.0.1")
        self.assertEqual(
            transport.value(),
            b"sorry, too many connections from your address; try again later.\r\n",
        )
        self.assertTrue(transport.disconnecting)
        refused.connectionLost(None)
        _, other = self.connect_from("10.0.0.2")
        self.assertFalse(other.disconnecting)
        first.connectionLost(None)
        _, again = self.connect_from("10.0.0.1")
        self.assertFalse(again.disconnecting)

    def test_loopback_is_one_address(self) -> None:
        """Every 127/8 address counts as one: 127.0.0.2 and 127.0.0.5 share the cap of
        one address (the machine is the same)."""
        self.named_from("127.0.0.2", "one")
        self.named_from("127.0.0.3", "two")
        _, transport = self.connect_from("127.0.0.5")
        self.assertIn(b"too many connections from your address", transport.value())
        self.assertTrue(transport.disconnecting)

    def test_full_address_evicts_its_oldest_unnamed(self) -> None:
        """When one address is full, its oldest connection without a nick makes room for
        the newcomer (and is told why); named ones are kept."""
        self.named_from("127.0.0.1", "alice")
        idle, idle_transport = self.connect_from("127.0.0.9")
        idle_transport.clear()
        _, transport = self.connect_from("127.0.0.4")
        self.assertFalse(transport.disconnecting)
        self.assertEqual(
            self.lines(idle_transport),
            ["sorry, the console is full and you gave no nick yet; goodbye."],
        )
        self.assertTrue(idle_transport.disconnecting)
        idle.connectionLost(None)
        self.assertEqual(len(self.source.consoles), 2)

    def test_evicts_idle_before_one_choosing(self) -> None:
        """Of the connections without a nick, one that has chosen none makes room before
        an older one whose chosen nick is being looked up (or given a password)."""
        choosing, choosing_wire = self.connect_from("127.0.0.1")
        choosing.claim = "admin"  # as while its look-up or password check runs
        _, idle_wire = self.connect_from("127.0.0.1")
        self.connect_from("127.0.0.1")
        self.assertTrue(idle_wire.disconnecting)
        self.assertFalse(choosing_wire.disconnecting)

    def test_cap_in_all(self) -> None:
        """Beyond ``max_connections`` named connections, from any addresses, more are
        refused."""
        for n in range(4):
            self.named_from(f"10.0.0.{n}", f"nick{n}")
        _, transport = self.connect_from("10.0.1.1")
        self.assertIn(b"too many connections to the console", transport.value())
        self.assertTrue(transport.disconnecting)
        self.assertEqual(len(self.source.consoles), 4)

    def test_full_console_evicts_the_oldest_unnamed(self) -> None:
        """A console filled by connections that give no nick does not keep everyone out:
        the oldest of them makes room for each newcomer, and named people stay."""
        self.named_from("10.0.0.1", "alice")
        silent = [self.connect_from(f"10.0.0.{n}") for n in range(2, 5)]
        for n in range(3):
            _, transport = self.connect_from(f"10.0.1.{n}")
            self.assertFalse(transport.disconnecting)
            self.assertTrue(silent[n][1].disconnecting)
            silent[n][0].connectionLost(None)
        self.assertEqual(len(self.source.consoles), 4)
        self.assertIsNotNone(self.source.console_for("alice"))

    def test_full_transport_stops_reading(self) -> None:
        """When the transport says its buffer is full the console stops reading from the
        client, and reads again once it has room."""
        console, transport = self.connect("alice")
        self.assertIs(transport.producer, console)
        self.assertTrue(transport.streaming)
        console.pauseProducing()
        self.assertEqual(transport.producerState, "paused")
        console.resumeProducing()
        self.assertEqual(transport.producerState, "producing")

    def test_backed_up_output_cuts_the_client_off(self) -> None:
        """A client whose output backs up beyond ``output_limit`` once the transport is
        full is aborted (not closed politely: it would never finish); up to the limit
        it is kept."""
        console, transport = self.connect()
        for _ in range(20):  # about 40 bytes each: within 1024
            console.pauseProducing()  # as Twisted's transports do, on every full write
            console.dataReceived(b"\r\n")
        self.assertFalse(transport.disconnecting)
        for _ in range(10):
            console.pauseProducing()
            console.dataReceived(b"\r\n")
        self.assertTrue(transport.disconnected)  # StringTransport's mark of an abort
        self.assertLessEqual(len(transport.value()), 1024 + 200)
        self.assertIsNone(transport.producer)

    def test_catching_up_resets_the_count(self) -> None:
        """A client that reads again (the transport resumes) starts with a clean slate."""
        console, transport = self.connect("alice")
        for _ in range(5):
            console.pauseProducing()
            for _ in range(20):
                self.source.send(Response("x" * 40, target="alice", source="console"))
            console.resumeProducing()
        self.assertFalse(transport.disconnecting)

    def test_close_while_backed_up_aborts(self) -> None:
        """A timeout on a client whose output is backed up aborts the connection."""
        console, transport = self.connect()
        console.pauseProducing()
        self.clock.advance(60)
        self.assertTrue(transport.disconnected)


#: Bound on any one wait over real TCP (generous: only wrong behaviour fails the test).
WAIT = 60.0


class NeverReads(Protocol):
    """A hostile client: never reads a byte, and sends empty lines (each answered with
    a prompt for a nick) as fast as its socket takes them."""

    def __init__(self) -> None:
        self.lost: Deferred[None] = Deferred()

    def connectionMade(self) -> None:
        self.transport.pauseProducing()  # never read
        self.transport.write(b"\n" * (8 * 1024 * 1024))

    def connectionLost(self, reason: Any = None) -> None:
        self.lost.callback(None)


class Polite(LineOnlyReceiver):
    """A client that reads: lets a test wait for a line."""

    delimiter = b"\r\n"

    def __init__(self) -> None:
        self.lines: list[str] = []
        self._waiting: list[tuple[str, Deferred[str]]] = []

    def lineReceived(self, line: bytes) -> None:
        text = line.decode("utf-8")
        self.lines.append(text)
        for waiter in list(self._waiting):
            if waiter[0] in text:
                self._waiting.remove(waiter)
                waiter[1].callback(text)

    def wait_for(self, text: str) -> Deferred[str]:
        for line in self.lines:
            if text in line:
                self.lines.remove(line)
                return succeed(line)
        d: Deferred[str] = Deferred()
        self._waiting.append((text, d))
        return d.addTimeout(WAIT, reactor)


class HostileClientTests(TestCase):
    """The console over real loopback TCP with a client that never reads."""

    timeout = 3 * WAIT

    async def start(self) -> TelnetSource:
        bot = StubContext(reactor=reactor, names=["bc"])
        dispatcher = Dispatcher(
            {}, reactor=reactor, threadpool=InlineThreadPool(), sources=bot.get_source
        )
        bot.dispatcher = dispatcher
        dispatcher.set_chain([Talk("testing", bot, {})])
        dispatcher.startService()
        self.addCleanup(dispatcher.stopService)
        source = TelnetSource("console", bot, {"endpoint": "tcp:0:interface=127.0.0.1"})
        source.setup()
        bot.add_source(source)
        await source.startService()
        self.addCleanup(source.stopService)
        self.endpoint = TCP4ClientEndpoint(reactor, "127.0.0.1", source.port.getHost().port)
        return source

    async def polite(self, nick: str) -> Polite:
        client = await self.endpoint.connect(Factory.forProtocol(Polite))
        self.addCleanup(client.transport.loseConnection)
        await client.wait_for("What is your nick?")
        client.sendLine(nick.encode())
        await client.wait_for(f"Hi {nick}!")
        return client

    async def test_client_that_never_reads(self) -> None:
        """A client that floods empty lines and never reads is cut off once what waits
        for it passes the bound (bounded memory: the transport holds at most its own
        buffer plus ``output_limit``), and the other clients are served throughout."""
        source = await self.start()
        alice = await self.polite("alice")
        buffered: list[int] = []

        def observe(event: dict[str, Any]) -> None:
            if "cutting off" in event.get("log_format", ""):
                # The hostile console's transport, at the moment it is cut off.
                [hostile] = [c for c in source.consoles if c.nick is None]
                transport: Any = hostile.transport
                waiting = len(transport.dataBuffer) - transport.offset + transport._tempDataLen
                buffered.append(waiting)

        globalLogPublisher.addObserver(observe)
        self.addCleanup(globalLogPublisher.removeObserver, observe)
        hostile = await self.endpoint.connect(Factory.forProtocol(NeverReads))
        self.addCleanup(hostile.transport.abortConnection)
        await hostile.lost.addTimeout(WAIT, reactor)
        [waiting] = buffered
        self.assertLessEqual(waiting, 65536 + source.output_limit + 100)
        alice.sendLine(b"ping")
        await alice.wait_for("pong")
        await self.polite("bob")
        self.assertEqual(len(source.consoles), 2)
