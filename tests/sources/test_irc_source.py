"""The IRC source as a service: server rotation, backoff, reconnecting and rejoining,
stopping, options, replies and truncation, and a round trip through a real bot."""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

from twisted.internet import error
from twisted.internet.task import Clock
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase
from zope.interface.verify import verifyObject

from botcore.config import ConfigErrors
from botcore.event import Response
from botcore.interfaces import IChannelSource
from botcore.settings import read_config
from botcore.sources.irc import IRCSource
from botcore.sources.irc.wire import text_budget
from botcore.testing import PluginTestCase, StubContext
from tests.sources.irc_harness import BASE, RecordingIRCSource, ScriptedEndpoint

A = "tcp:a.example:6667"
B = "tcp:b.example:6667"


class ServiceTestCase(SynchronousTestCase):
    """A recording source whose connections go to scripted endpoints."""

    def setUp(self) -> None:
        self.clock = Clock()
        self.plan: dict[str, list[bool]] = {}
        self.connected: list[tuple[str, Any, Any]] = []

    def make(self, jitter: float = 1.0, **options: Any) -> RecordingIRCSource:
        source = RecordingIRCSource(
            "irc",
            StubContext(reactor=self.clock),
            {**BASE, "servers": [A, B], **options},
            reactor=self.clock,
            endpoint_factory=lambda server: ScriptedEndpoint(server, self.plan, self.connected),
            jitter=lambda: jitter,
        )
        source.setup()
        self.source = source
        return source

    def welcome(self, index: int = -1, nick: str = "bot") -> None:
        protocol = self.connected[index][1]
        protocol.dataReceived(f":srv 001 {nick} :Welcome {nick}!~bot@host\r\n".encode())

    def stop(self) -> None:
        if self.source.running:
            self.successResultOf(self.source.stopService())
        self.assertEqual(self.clock.getDelayedCalls(), [])


class RotationTests(ServiceTestCase):
    def test_first_server_first(self) -> None:
        """Starting connects to the first server and registers there."""
        source = self.make()
        source.startService()
        self.assertEqual([c[0] for c in self.connected], [A])
        self.assertEqual(source.state, "connecting")
        self.welcome()
        self.assertEqual(source.state, "connected")
        self.stop()

    def test_next_server_after_failure_with_backoff(self) -> None:
        """A refused connection moves on to the next server after the backoff delay, the
        delay doubling with each failure in a row up to the cap."""
        self.plan = {A: [False], B: [False]}
        source = self.make(reconnect_delay=2.0, reconnect_max_delay=10.0)
        source.startService()
        self.assertEqual(self.connected, [])
        self.assertEqual(source.state, "reconnecting")
        delays = []
        for _ in range(5):
            [call] = self.clock.getDelayedCalls()
            delays.append(call.getTime() - self.clock.seconds())
            self.clock.advance(delays[-1])
        self.assertEqual(delays, [2.0, 4.0, 8.0, 10.0, 10.0])
        self.assertEqual(source.failures, 6)
        self.assertEqual(source.rotation.current, A)
        self.stop()

    def test_jitter(self) -> None:
        """Jitter scales each delay to between half and all of it."""
        source = self.make(jitter=0.0, reconnect_delay=2.0)
        source.failures = 3
        self.assertEqual(source.retry_delay(1), 4.0)
        source._jitter = lambda: 0.5
        self.assertEqual(source.retry_delay(1), 6.0)

    def test_huge_failure_count_capped(self) -> None:
        """However many failures, the delay stays at the cap."""
        source = self.make(reconnect_max_delay=300.0)
        source.failures = 10_000
        self.assertEqual(source.retry_delay(10_000), 300.0)

    def test_unregistered_connection_counts_as_failure(self) -> None:
        """A connection closed before the welcome counts as a failure and moves on."""
        source = self.make(reconnect_delay=1.0)
        source.startService()
        transport = self.connected[0][2]
        transport.loseConnection()
        self.assertEqual(source.failures, 1)
        self.assertEqual(source.rotation.current, B)
        self.clock.advance(1.0)
        self.assertEqual([c[0] for c in self.connected], [A, B])
        self.stop()

    def test_registered_connection_lost_retries_same_server(self) -> None:
        """After a good connection ends the bot reconnects to the same server quickly,
        says it was disconnected, and rejoins its channels (including ones joined on
        command, but not ones it left)."""
        source = self.make(channels=["#a", "#b"], reconnect_delay=1.0)
        source.startService()
        self.welcome()
        source.join("#c", "key")
        source.part("#b")
        source.take_events()
        self.connected[0][2].loseConnection()
        [event] = source.take_events()
        self.assertEqual(event.data["state"], "disconnected")
        self.assertEqual(source.state, "reconnecting")
        self.assertEqual(source.failures, 0)
        self.clock.advance(1.0)
        self.assertEqual([c[0] for c in self.connected], [A, A])
        self.connected[1][2].clear()
        self.welcome()
        sent = self.connected[1][2].value().decode()
        self.assertIn("JOIN #a\r\n", sent)
        self.assertIn("JOIN #c key\r\n", sent)
        self.assertNotIn("#b", sent)
        self.assertEqual(source.connections, 2)
        self.stop()

    def test_ping_timeouts_back_off(self) -> None:
        """A server that registers the bot and then never answers its PING: each ping
        time-out is one more failure in a row, so the waits before reconnecting double
        (and the next server is tried), as for connections that never register."""
        source = self.make(reconnect_delay=1.0, ping_interval=10.0, ping_timeout=5.0)
        source.startService()
        delays = []
        for n in range(4):
            self.welcome()
            self.clock.advance(10.0)  # silence: the bot sends a PING...
            self.clock.advance(5.0)  # ...that is never answered
            self.assertEqual(source.failures, n + 1)
            [call] = self.clock.getDelayedCalls()
            delays.append(call.getTime() - self.clock.seconds())
            self.clock.advance(delays[-1])
        self.assertEqual(delays, [1.0, 2.0, 4.0, 8.0])
        self.assertEqual([c[0] for c in self.connected], [A, B, A, B, A])
        self.stop()

    def test_good_connection_after_timeouts_resets_backoff(self) -> None:
        """A connection that ends other than by a ping time-out was a good one: the
        next reconnection is quick again."""
        source = self.make(reconnect_delay=1.0, ping_interval=10.0, ping_timeout=5.0)
        source.startService()
        for _ in range(2):
            self.welcome()
            self.clock.advance(10.0)
            self.clock.advance(5.0)
            [call] = self.clock.getDelayedCalls()
            self.clock.advance(call.getTime() - self.clock.seconds())
        self.welcome()
        self.connected[-1][2].loseConnection()
        self.assertEqual(source.failures, 0)
        [call] = self.clock.getDelayedCalls()
        self.assertEqual(call.getTime() - self.clock.seconds(), 1.0)
        self.stop()

    def test_bad_endpoint_is_a_failure(self) -> None:
        """An endpoint that cannot even be built is logged as a failed attempt."""
        source = self.make()
        source._make_endpoint = lambda server: 1 / 0
        source.rotation._make_endpoint = source._make_endpoint
        source.startService()
        self.assertEqual(source.failures, 1)
        self.assertEqual(len(self.flushLoggedErrors(ZeroDivisionError)), 0)
        self.stop()


class StopTests(ServiceTestCase):
    def test_quit_and_stop(self) -> None:
        """Stopping says QUIT, closes the connection and does not reconnect."""
        source = self.make(quit_message="see you")
        source.startService()
        self.welcome()
        transport = self.connected[0][2]
        d = source.stopService()
        self.assertIn(b"QUIT :see you\r\n", transport.value())
        self.successResultOf(d)
        self.assertEqual(source.state, "stopped")
        self.clock.advance(1000)
        self.assertEqual(len(self.connected), 1)
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_stop_while_waiting(self) -> None:
        """Stopping between attempts cancels the next one."""
        self.plan = {A: [False], B: [False]}
        source = self.make()
        source.startService()
        self.successResultOf(source.stopService())
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_stuck_connection_aborted(self) -> None:
        """A connection that does not close within five seconds is aborted."""
        source = self.make()
        source.startService()
        self.welcome()
        transport = self.connected[0][2]
        transport.loseConnection = lambda: None  # a peer that never lets go
        d = source.stopService()
        self.clock.advance(4.9)
        self.assertFalse(transport.disconnected)
        self.clock.advance(0.1)
        self.assertTrue(transport.disconnected)
        self.assertNoResult(d)
        self.connected[0][1].connectionLost(Failure(error.ConnectionAborted()))
        self.successResultOf(d)

    def test_stop_without_start(self) -> None:
        """Stopping a source that never started is fine."""
        source = self.make()
        source.running = True
        self.successResultOf(source.stopService())


class SendingTests(ServiceTestCase):
    def test_interface(self) -> None:
        """The source provides IChannelSource and supports actions, notices, multi-line
        messages and topics."""
        source = self.make()
        verifyObject(IChannelSource, source)
        self.assertEqual(source.type, "irc")
        self.assertEqual(source.supports, {"action", "notice", "multiline", "topic"})

    def test_replies_when_disconnected_dropped(self) -> None:
        """Replies while not connected are dropped with a log line, never raised."""
        source = self.make()
        source.send(Response("hi", target="#chan", source="irc"))
        source.say("#chan", "hi")
        source.topic("#chan", "hi")
        self.assertEqual(self.connected, [])

    def test_reply_routing(self) -> None:
        """send() turns replies into PRIVMSG, NOTICE or ACTION; a reply without a valid
        target is dropped."""
        source = self.make()
        source.startService()
        self.welcome()
        transport = self.connected[0][2]
        transport.clear()
        source.send(Response("hello", target="#chan", source="irc"))
        source.send(Response("waves", target="#chan", source="irc", action=True))
        source.send(Response("psst", target="alice", source="irc", notice=True))
        source.send(Response("x", target=None, source="irc"))
        source.send(Response("x", target="bad target", source="irc"))
        self.assertEqual(
            transport.value(),
            b"PRIVMSG #chan :hello\r\nPRIVMSG #chan :\x01ACTION waves\x01\r\n"
            b"NOTICE alice :psst\r\n",
        )
        self.stop()

    def test_truncation_point(self) -> None:
        """The truncation point is max_lines lines' worth for the reply's target, smaller
        for actions, and uses the learned mask once connected."""
        source = self.make(max_lines=4)
        reply = Response("x", target="#chan", source="irc")
        guess = text_budget("bot", "~botcore", "", "PRIVMSG", "#chan")
        self.assertEqual(source.truncation_point(reply), 4 * guess)
        self.assertEqual(source.truncation_point(reply.replace(action=True)), 4 * (guess - 9))
        self.assertGreater(source.truncation_point(), 1000)
        source.startService()
        self.welcome()
        known = text_budget("bot", "~bot", "host", "PRIVMSG", "#chan")
        self.assertEqual(source.truncation_point(reply), 4 * known)
        self.stop()

    def test_reload_joins_new_channels_and_applies_flood_options(self) -> None:
        """A config reload joins newly configured channels and changes flood control."""
        source = self.make(channels=["#a"])
        source.startService()
        self.welcome()
        transport = self.connected[0][2]
        transport.clear()
        source.config = {**source.config, "channels": ["#a", "#b"], "flood_rate": 3.0}
        source.setup()
        self.assertEqual(transport.value(), b"JOIN #b\r\n")
        self.assertEqual(source.protocol.queue.bucket.rate, 3.0)
        self.stop()

    def test_reload_changes_nick(self) -> None:
        """A config reload with another nick asks for it at once."""
        source = self.make()
        source.startService()
        self.welcome()
        transport = self.connected[0][2]
        transport.clear()
        source.config = {**source.config, "nick": "renamed"}
        source.setup()
        self.assertEqual(transport.value(), b"NICK renamed\r\n")
        self.stop()

    def test_nick_defaults_to_bot_name(self) -> None:
        """Without a nick option the bot's name is the nick."""
        bot = StubContext(reactor=self.clock, name="robbie")
        source = IRCSource("irc", bot, {"servers": [A]}, reactor=self.clock)
        source.setup()
        self.assertEqual(source.nick, "robbie")


class FactsTests(ServiceTestCase):
    """What the source says about the network: the bot's names and what a channel is."""

    def isupport(self, index: int, *features: str) -> None:
        protocol = self.connected[index][1]
        line = f":srv 005 bot {' '.join(features)} :are supported by this server\r\n"
        protocol.dataReceived(line.encode())

    def test_channels_from_isupport(self) -> None:
        """Channels start with # or & until the server's CHANTYPES says otherwise; the
        last server's word holds while reconnecting, and a new connection starts from the
        defaults again."""
        source = self.make(reconnect_delay=1.0)
        self.assertTrue(source.is_channel("#chan"))
        self.assertTrue(source.is_channel("&local"))
        self.assertFalse(source.is_channel("!safe"))
        self.assertFalse(source.is_channel("alice"))
        self.assertFalse(source.is_channel(""))
        source.startService()
        self.welcome()
        self.isupport(0, "CHANTYPES=#!", "NICKLEN=30")
        self.assertTrue(source.is_channel("!safe"))
        self.assertFalse(source.is_channel("&local"))
        self.assertTrue(source.protocol.is_channel("!safe"))
        self.connected[0][2].loseConnection()
        self.assertTrue(source.is_channel("!safe"))
        self.clock.advance(1.0)
        self.assertFalse(source.is_channel("!safe"))
        self.assertTrue(source.is_channel("&local"))
        self.stop()

    def test_fold_follows_casemapping(self) -> None:
        """Names fold as the server compares them: rfc1459 (``[]\\~`` are the capitals of
        ``{}|^``) until its CASEMAPPING says otherwise, not str.casefold; the last word
        holds while reconnecting, so what is filed under a folded name does not move."""
        source = self.make(reconnect_delay=1.0)
        self.assertEqual(source.fold("#Foo[1]\\~"), "#foo{1}|^")
        self.assertEqual(source.fold("#CAFÉ"), "#cafÉ")  # servers fold ASCII only
        source.startService()
        self.welcome()
        self.isupport(0, "CASEMAPPING=ascii")
        self.assertEqual(source.fold("#Foo[1]"), "#foo[1]")
        self.assertNotEqual(source.fold("#foo[1]"), source.fold("#foo{1}"))
        self.connected[0][2].loseConnection()
        self.clock.advance(1.0)
        self.assertEqual(source.fold("#Foo[1]"), "#foo[1]")
        self.isupport(1, "CASEMAPPING=rfc1459-strict")
        self.assertEqual(source.fold("#A[~]"), "#a{~}")
        self.stop()

    def test_names_follow_the_nick(self) -> None:
        """The bot's names here start with the nick the server gave it, then come its
        configured names."""
        source = self.make()
        self.assertEqual(source.names(), ("bot", "botcore"))
        source.startService()
        self.welcome(nick="bot_")
        self.assertEqual(source.names(), ("bot_", "botcore"))
        self.stop()


class OptionTests(SynchronousTestCase):
    def write(self, source: str) -> Path:
        path = Path(self.mktemp())
        path.write_text(
            "[bot]\nautoload = no\n[source:irc]\ntype = irc\n" + source, encoding="utf-8"
        )
        return path

    def test_valid_section(self) -> None:
        """A typical section parses into typed values."""
        config = read_config(
            self.write(
                "servers = tls:irc.libera.chat:6697\n    tcp:127.0.0.1:6667\n"
                "nick = mybot\nchannels = #a, #b key\nflood_rate = 0.5\n"
            ),
            environ={},
        )
        section = config.section("source:irc")
        self.assertEqual(section["servers"], ["tls:irc.libera.chat:6697", "tcp:127.0.0.1:6667"])
        self.assertEqual(section["channels"], ["#a", "#b key"])
        self.assertEqual(section["flood_rate"], 0.5)

    def test_errors_reported_together(self) -> None:
        """Bad servers, nick, channels and numbers are all reported at once, by key."""
        path = self.write(
            "servers = nonsense:foo\nnick = 1bad nick\nalt_nicks = ok, no way\n"
            "channels = nochannel\nflood_rate = -1\nmax_lines = 0\n"
        )
        with self.assertRaises(ConfigErrors) as caught:
            read_config(path, environ={})
        keys = sorted(e.key for e in caught.exception.errors)
        self.assertEqual(
            keys, ["alt_nicks", "channels", "flood_rate", "max_lines", "nick", "servers"]
        )
        text = str(caught.exception)
        self.assertIn("expected Twisted client endpoints", text)
        self.assertIn("expected an IRC nick", text)

    def test_servers_required(self) -> None:
        """A section without servers is an error."""
        with self.assertRaises(ConfigErrors) as caught:
            read_config(self.write(""), environ={})
        self.assertEqual([e.key for e in caught.exception.errors], ["servers"])


class BotRoundTripTests(PluginTestCase):
    """The IRC source in a real bot (core and basic plugins, inline dispatcher)."""

    load: ClassVar = ["basic"]
    plugin_config: ClassVar = {"bot": {"name": "botcore"}}

    def setUp(self) -> None:
        super().setUp()
        self.connected: list[tuple[str, Any, Any]] = []
        self.irc = IRCSource(
            "irc",
            self.bot.context,
            {**BASE, "nick": "ircbot", "channels": ["#chan"]},
            endpoint_factory=lambda server: ScriptedEndpoint(server, {}, self.connected),
        )
        self.irc.setup()
        self.irc.setServiceParent(self.bot.sources)
        _, self.protocol, self.transport = self.connected[0]
        self.receive(":srv 001 ircbot :Welcome ircbot!~bot@host", ":ircbot!~bot@host JOIN #chan")
        self.transport.clear()

    def receive(self, *lines: str) -> None:
        self.protocol.dataReceived("".join(line + "\r\n" for line in lines).encode())

    def sent(self) -> list[str]:
        data = self.transport.value().decode()
        self.transport.clear()
        return [line for line in data.split("\r\n") if line]

    def test_echo_in_channel(self) -> None:
        """Addressed by its IRC nick in a channel, the bot answers there."""
        self.receive(":alice!a@h PRIVMSG #chan :ircbot: echo hello world")
        self.assertEqual(self.sent(), ["PRIVMSG #chan :hello world"])

    def test_echo_in_private(self) -> None:
        """A private message is addressed; the answer goes back to the sender."""
        self.receive(":alice!a@h PRIVMSG ircbot :ping")
        self.assertEqual(self.sent(), ["PRIVMSG alice :pong"])

    def test_addressed_by_bot_name(self) -> None:
        """The bot's configured name addresses it too, beside its nick on the network."""
        self.assertEqual(self.irc.names(), ("ircbot", "botcore"))
        self.receive(":alice!a@h PRIVMSG #chan :botcore> echo hello")
        self.assertEqual(self.sent(), ["PRIVMSG #chan :hello"])

    def test_not_addressed(self) -> None:
        """Channel chatter not addressed to the bot gets no answer."""
        self.receive(":alice!a@h PRIVMSG #chan :echo hello")
        self.assertEqual(self.sent(), [])

    def test_unwanted_chatter_skipped(self) -> None:
        """Channel chatter no processor of core and basic would see is left out before
        the dispatcher (no worker hand-off); anything that may be said to the bot is
        not: its names in any case or folded as the server folds nicks, or a private
        line. What is left out is told to the dispatcher's monitors (metrics)."""
        told: list[tuple[str, str]] = []

        class Monitor:
            def event_skipped(self, event: Any) -> None:
                told.append((event.source, event.type))

        self.bot.dispatcher.monitors = (Monitor(),)  # type: ignore[assignment]
        self.receive(":alice!a@h PRIVMSG #chan :just chatting", ":bob!b@h JOIN #chan")
        self.bot.dispatcher.monitors = ()
        self.assertEqual(self.irc.skipped, 2)  # nobody here wants joins either
        self.assertEqual([source for source, _ in told], ["irc", "irc"])
        self.assertEqual(told[0][1], "message")
        self.receive(":alice!a@h PRIVMSG #chan :IRCBOT: echo loud")
        self.assertEqual(self.sent(), ["PRIVMSG #chan :loud"])
        self.receive(
            ":alice!a@h PRIVMSG ircbot :no command here", ":alice!a@h PRIVMSG ircbot :ping"
        )
        complaint, pong = self.sent()  # a private line nothing handles is complained about
        self.assertTrue(complaint.startswith("PRIVMSG alice :"))
        self.assertEqual(pong, "PRIVMSG alice :pong")
        self.receive(":ircbot!~bot@host NICK :bot[1]", ":alice!a@h PRIVMSG #chan :hi BOT{1}")
        self.assertEqual(self.irc.skipped, 2)
        self.receive(":alice!a@h PRIVMSG #chan :bot[1]: echo folded")
        self.assertEqual(self.sent(), ["PRIVMSG #chan :folded"])
        self.assertEqual(self.irc.skipped, 2)

    def test_long_echo_split(self) -> None:
        """A long answer arrives in several lines that each fit."""
        text = " ".join(["lorem"] * 80)
        self.receive(f":alice!a@h PRIVMSG ircbot :echo {text}")
        lines = self.sent()
        self.assertEqual(len(lines), 2)
        self.assertEqual(" ".join(line.split(" :", 1)[1] for line in lines), text)

    def test_disconnected_event_on_stop(self) -> None:
        """Stopping the bot says QUIT on the network."""
        self.successResultOf(self.bot.stopService())
        self.assertIn("QUIT :botcore", self.sent())
        self.assertEqual(self.irc.state, "stopped")


class LoggedRoundTripTests(BotRoundTripTests):
    """The same with the log plugin too, which observes every event: nothing is left out."""

    load: ClassVar = ["basic", "log"]

    def test_unwanted_chatter_skipped(self) -> None:
        """With the log loaded chatter and joins are dispatched and logged, in the folder
        named as the server folds the channel (rfc1459: #Chan[1] is #chan{1})."""
        self.receive(":alice!a@h JOIN #Chan[1]", ":alice!a@h PRIVMSG #Chan[1] :just chatting")
        self.assertEqual(self.irc.skipped, 0)
        self.processor("Log").flush()
        folder = self.directory / "logs" / "irc" / "#chan{1}"
        text = "".join(path.read_text(encoding="utf-8") for path in folder.iterdir())
        self.assertIn("just chatting", text)
