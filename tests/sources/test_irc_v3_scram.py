"""SASL SCRAM-SHA-256 against a scripted IRC server on a loopback port whose SASL side is
scramp's *server* (no Debian IRC server or services offers SCRAM): the bot logs in, a
wrong password is refused (and with sasl_required the bot does not stay), and a server
that cannot prove it knows the password is not believed."""

from __future__ import annotations

import base64
from typing import Any

import scramp
from twisted.internet import defer, reactor
from twisted.internet.endpoints import TCP4ServerEndpoint
from twisted.internet.protocol import Factory
from twisted.logger import globalLogPublisher
from twisted.protocols.basic import LineOnlyReceiver
from twisted.trial.unittest import TestCase

from botcore.sources.irc import IRCSource
from botcore.testing import StubContext
from tests.sources.test_irc_integration import wait_until

WAIT = 10.0
MECHANISM = scramp.ScramMechanism("SCRAM-SHA-256")
ACCOUNT = "scrambot"
PASSWORD = "correct horse battery staple"


class ScramIRCServer(LineOnlyReceiver):
    """Just enough IRC for a SASL login: CAP LS/REQ/END, AUTHENTICATE driven by scramp's
    server, then a welcome. ``factory.forge`` makes it send a server-final message with
    a wrong signature (a server that does not know the password)."""

    delimiter = b"\r\n"

    def connectionMade(self) -> None:
        self.factory.connections.append(self)
        self.lines: list[str] = []
        self.nick = "*"
        self.mechanism: str | None = None
        self.scram: Any = None
        self.capped = False

    def reply(self, line: str) -> None:
        self.sendLine(f":scram.test {line}".encode())

    def lineReceived(self, data: bytes) -> None:
        line = data.decode("utf-8")
        self.lines.append(line)
        words = line.split(" ")
        command = words[0].upper()
        if command == "CAP" and words[1] == "LS":
            self.capped = True
            self.reply("CAP * LS :sasl=SCRAM-SHA-256,PLAIN")
        elif command == "CAP" and words[1] == "REQ":
            self.reply(f"CAP {self.nick} ACK :{line.split(':', 1)[1]}")
        elif command == "CAP" and words[1] == "END":
            self.welcome()
        elif command == "NICK":
            self.nick = words[1]
        elif command == "AUTHENTICATE":
            self.authenticate(words[1])
        elif command == "PING":
            self.reply("PONG scram.test :" + line.split(":", 1)[-1])

    def welcome(self) -> None:
        self.reply(f"001 {self.nick} :Welcome {self.nick}!bot@127.0.0.1")

    def authenticate(self, argument: str) -> None:
        if self.mechanism is None:
            self.mechanism = argument
            if argument != "SCRAM-SHA-256":
                self.reply(f"904 {self.nick} :only SCRAM here")
                self.mechanism = None
                return
            self.scram = MECHANISM.make_server(self.factory.auth_info)
            self.sendLine(b"AUTHENTICATE +")
            return
        if argument == "*":
            self.reply(f"906 {self.nick} :SASL authentication aborted")
            self.mechanism = None
            return
        message = base64.b64decode(argument).decode("utf-8") if argument != "+" else ""
        try:
            if self.scram.stage is None:
                self.scram.set_client_first(message)
                self.challenge(self.scram.get_server_first())
            elif self.scram.stage.name == "get_server_first":
                self.scram.set_client_final(message)
                final = self.scram.get_server_final()
                if self.factory.forge:
                    final = "v=" + base64.b64encode(b"\0" * 32).decode()
                self.challenge(final)
            else:
                self.reply(f"900 {self.nick} {self.nick}!bot@127.0.0.1 {ACCOUNT} :logged in")
                self.reply(f"903 {self.nick} :SASL authentication successful")
        except scramp.ScramException:
            self.reply(f"904 {self.nick} :SASL authentication failed")
            self.mechanism = None

    def challenge(self, text: str) -> None:
        self.sendLine(b"AUTHENTICATE " + base64.b64encode(text.encode("utf-8")))


class ScramServerFactory(Factory):
    protocol = ScramIRCServer

    def __init__(self, forge: bool = False) -> None:
        self.forge = forge
        self.connections: list[ScramIRCServer] = []
        # The server's stored credentials: salted, never the password itself.
        self.stored = MECHANISM.make_auth_info(PASSWORD)

    def auth_info(self, username: str) -> tuple[Any, ...]:
        if username != ACCOUNT:
            raise scramp.ScramException("unknown user")
        return self.stored


class ScramTests(TestCase):
    timeout = 3 * WAIT

    def setUp(self) -> defer.Deferred[None]:
        self.logged: list[dict] = []
        globalLogPublisher.addObserver(self.logged.append)
        self.addCleanup(globalLogPublisher.removeObserver, self.logged.append)
        self.sources: list[IRCSource] = []
        return defer.succeed(None)

    async def serve(self, forge: bool = False) -> ScramServerFactory:
        factory = ScramServerFactory(forge)
        port = await TCP4ServerEndpoint(reactor, 0, interface="127.0.0.1").listen(factory)
        self.addCleanup(port.stopListening)
        self.port = port.getHost().port
        return factory

    def start(self, **options: Any) -> IRCSource:
        config = {
            "servers": [f"tcp:127.0.0.1:{self.port}"],
            "nick": ACCOUNT,
            "flood_rate": 0.0,
            "reconnect_delay": 0.05,
            "reconnect_max_delay": 0.2,
            "account_password": PASSWORD,
            **options,
        }
        source = IRCSource("irc", StubContext(reactor=reactor), config, reactor=reactor)
        source.setup()
        source.startService()
        self.sources.append(source)
        self.addCleanup(source.stopService)
        return source

    def log_text(self) -> str:
        return "\n".join(str(e.get("log_format", "")).format(**e) for e in self.logged)

    async def test_scram_login(self) -> None:
        """The bot picks SCRAM-SHA-256 over PLAIN, proves the password and checks the
        server's signature; the password never goes over the wire."""
        factory = await self.serve()
        source = self.start()
        await wait_until(lambda: source.state == "connected", "the login", WAIT)
        protocol = source.protocol
        self.assertEqual((protocol.sasl_mechanism, protocol.account), ("SCRAM-SHA-256", ACCOUNT))
        sent = "\n".join(factory.connections[0].lines)
        self.assertIn("AUTHENTICATE SCRAM-SHA-256", sent)
        self.assertNotIn(PASSWORD, sent)
        decoded = [
            base64.b64decode(line.split()[1])
            for line in factory.connections[0].lines
            if line.startswith("AUTHENTICATE ") and line.split()[1] not in ("+", "SCRAM-SHA-256")
        ]
        self.assertEqual(len(decoded), 2)
        self.assertFalse([d for d in decoded if PASSWORD.encode() in d])

    async def test_wrong_password_with_sasl_required(self) -> None:
        """A wrong password fails SCRAM; with sasl_required the bot does not register
        and tries again later (PLAIN is not in its list here)."""
        factory = await self.serve()
        source = self.start(
            account_password="wrong", sasl_mechanisms=["SCRAM-SHA-256"], sasl_required=True
        )
        await wait_until(lambda: len(factory.connections) >= 2, "a second attempt", WAIT)
        self.assertNotEqual(source.state, "connected")
        self.assertIn("sasl_required is set", self.log_text())
        self.assertFalse([line for line in factory.connections[0].lines if line == "CAP END"])

    async def test_forged_server_signature_not_believed(self) -> None:
        """A server whose final message has a wrong signature does not know the
        password: the bot aborts the exchange (AUTHENTICATE *) and says why."""
        factory = await self.serve(forge=True)
        source = self.start(sasl_mechanisms=["SCRAM-SHA-256"])
        await wait_until(
            lambda: factory.connections and "AUTHENTICATE *" in factory.connections[0].lines,
            "the abort",
            WAIT,
        )
        self.assertIn("SASL SCRAM-SHA-256 aborted: SCRAM-SHA-256:", self.log_text())
        await wait_until(lambda: source.state == "connected", "registration without SASL", WAIT)
        self.assertIsNone(source.protocol.sasl_mechanism)
