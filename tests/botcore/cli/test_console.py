"""Tests of ``botcore-console``: where it connects (addresses, endpoint strings, a config
file), and the real client process talking to a real telnet console source on loopback."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from twisted.internet import defer, protocol, reactor
from twisted.trial.unittest import SynchronousTestCase, TestCase

from botcore.cli.console import AddressError, address_of, configured_address, main
from botcore.dispatch.dispatcher import Dispatcher
from botcore.event import Event
from botcore.processor import Processor, match
from botcore.sources.telnet import TelnetSource
from botcore.testing import InlineThreadPool, StubContext, free_port

EXAMPLE = Path(__file__).resolve().parents[3] / "conf.example.ini"


class AddressTests(SynchronousTestCase):
    """Where the client connects."""

    def test_forms(self):
        """PORT, HOST:PORT, [V6]:PORT and the console's own endpoint strings."""
        self.assertEqual(address_of("3000"), ("127.0.0.1", 3000))
        self.assertEqual(address_of("localhost:4000"), ("localhost", 4000))
        self.assertEqual(address_of("[::1]:4000"), ("::1", 4000))
        self.assertEqual(address_of("tcp:3000:interface=127.0.0.1"), ("127.0.0.1", 3000))
        self.assertEqual(address_of("tcp:port=3001"), ("127.0.0.1", 3001))
        self.assertEqual(address_of("tcp6:3002:interface=\\:\\:1"), ("::1", 3002))
        self.assertEqual(address_of("tcp:3003:interface=0.0.0.0"), ("127.0.0.1", 3003))
        self.assertEqual(address_of("unix:/run/bot.sock"), "/run/bot.sock")
        for bad in ("", "nope", "host:port", "99999", "ssl:3000"):
            self.assertRaises(AddressError, address_of, bad)

    def test_from_the_example_config(self):
        """-c conf.example.ini finds the example console's address."""
        self.assertEqual(configured_address(str(EXAMPLE), None), ("127.0.0.1", 3000))
        self.assertEqual(configured_address(str(EXAMPLE), "console"), ("127.0.0.1", 3000))
        self.assertRaises(AddressError, configured_address, str(EXAMPLE), "libera")

    def test_usage_errors(self):
        """A bad address is a usage error (2) with one line of explanation."""
        import io

        err = io.StringIO()
        self.assertEqual(main(["not an address"], stderr=err), 2)
        self.assertIn("expected PORT, HOST:PORT or an endpoint", err.getvalue())


class Ping(Processor):
    """Answers ping, and says back what it was given (to check the text's round trip)."""

    @match("ping")
    def ping(self, event: Event) -> None:
        event.addresponse("pong")

    @match("say {any}")
    def say(self, event: Event, text: str) -> None:
        event.addresponse(text)


class _Client(protocol.ProcessProtocol):
    """The botcore-console process: its output so far, a Deferred for a text in it, and
    one for its end (with the exit status)."""

    def __init__(self) -> None:
        self.out = b""
        self.err = b""
        self.waiting: list[tuple[bytes, defer.Deferred[None]]] = []
        self.ended: defer.Deferred[int] = defer.Deferred()

    def outReceived(self, data: bytes) -> None:
        self.out += data
        for item in list(self.waiting):
            if item[0] in self.out:
                self.waiting.remove(item)
                item[1].callback(None)

    def errReceived(self, data: bytes) -> None:
        self.err += data

    def processEnded(self, reason: Any) -> None:
        self.ended.callback(reason.value.exitCode)

    def wait_for(self, text: str) -> defer.Deferred[None]:
        d: defer.Deferred[None] = defer.Deferred()
        needle = text.encode("utf-8")
        if needle in self.out:
            d.callback(None)
        else:
            self.waiting.append((needle, d))
        return d


class RealConsoleTests(TestCase):
    """The client as a real process against a real telnet console on 127.0.0.1."""

    # Bounded: a client or console that hangs fails the test.
    timeout = 60

    def setUp(self) -> None:
        self.bot = StubContext(reactor=reactor, names=["bc"])
        self.dispatcher = Dispatcher(
            {}, reactor=reactor, threadpool=InlineThreadPool(), sources=self.bot.get_source
        )
        self.bot.dispatcher = self.dispatcher
        self.dispatcher.set_chain([Ping("testing", self.bot, {})])
        self.dispatcher.startService()
        self.addCleanup(self.dispatcher.stopService)
        self.source = TelnetSource(
            "console", self.bot, {"endpoint": "tcp:0:interface=127.0.0.1", "max_line": 8192}
        )
        self.source.setup()
        self.bot.add_source(self.source)
        self.source.startService()
        self.addCleanup(self.source.stopService)
        assert self.source.port is not None
        self.port = self.source.port.getHost().port

    def spawn(self, *args: str) -> _Client:
        client = _Client()
        reactor.spawnProcess(
            client,
            sys.executable,
            [sys.executable, "-m", "botcore.cli.console", *args],
            env=None,
        )
        return client

    @defer.inlineCallbacks
    def test_conversation(self) -> Any:
        """Typed lines reach the bot (the nick first), its replies come back as lines, and
        the end of input ends the client with status 0."""
        client = self.spawn(f"127.0.0.1:{self.port}", "--linger", "0.2")
        yield client.wait_for("nick")
        client.transport.write(b"alice\n")
        yield client.wait_for("Hi alice")
        client.transport.write(b"ping\n")
        yield client.wait_for("pong")
        client.transport.write("say caf\xe9 \u2603\r\n".encode())
        yield client.wait_for("caf\xe9 \u2603")
        client.transport.closeStdin()
        status = yield client.ended
        self.assertEqual(status, 0, client.err)
        text = client.out.decode("utf-8")
        self.assertNotIn("\r", text)
        self.assertIn("\npong\n", text)
        self.assertIn("\ncaf\xe9 \u2603\n", text)

    @defer.inlineCallbacks
    def test_piped(self) -> Any:
        """Piped commands (input ending at once) still get their replies."""
        client = self.spawn(f"tcp:{self.port}:interface=127.0.0.1", "--linger", "3")
        client.transport.write(b"bob\nping\n")
        client.transport.closeStdin()
        yield client.wait_for("pong")
        status = yield client.ended
        self.assertEqual(status, 0, client.err)

    @defer.inlineCallbacks
    def test_nobody_listening(self) -> Any:
        """With no bot listening it says so and exits with status 1."""
        client = self.spawn(str(free_port()))
        client.transport.closeStdin()
        status = yield client.ended
        self.assertEqual(status, 1)
        self.assertIn(b"cannot connect to 127.0.0.1:", client.err)
        self.assertIn(b"is the bot running", client.err)
