"""mallory's account take-overs, replayed over the real telnet console (a running bot with
the identity plugin, clients over loopback TCP): a nick that belongs to an account is held
until its password is given (a wrong or no password makes a guest), so nobody can say a
link token from an offline admin's nick, nor hold a password-less account's nick, nor
lock the admin out; a look-alike of an account's nick is refused; and a newcomer on a
reused connection id is nobody."""

from __future__ import annotations

import configparser
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from twisted.internet import defer, protocol, reactor, task
from twisted.internet.defer import Deferred, ensureDeferred
from twisted.internet.endpoints import TCP4ClientEndpoint
from twisted.protocols.basic import LineOnlyReceiver
from twisted.trial.unittest import TestCase

from botcore.accounts import models as accounts
from botcore.bot import Bot
from botcore.settings import read_config
from botcore.testing import free_port

WAIT = 15.0
SECRET = "correct-horse-battery-staple"


class ConsoleClient(LineOnlyReceiver):
    """A telnet console user: records lines and waits (bounded) for one."""

    delimiter = b"\r\n"

    def __init__(self) -> None:
        self.lines: list[str] = []
        self._waiters: list[tuple[Callable[[str], bool], Deferred[str]]] = []

    def lineReceived(self, line: bytes) -> None:
        text = line.decode("utf-8", "replace")
        self.lines.append(text)
        for waiter in list(self._waiters):
            if waiter[0](text):
                self._waiters.remove(waiter)
                waiter[1].callback(text)

    def dataReceived(self, data: bytes) -> None:
        # The nick prompt ends without a line break.
        if b"What is your nick?" in data and not data.endswith(b"\r\n"):
            data += b"\r\n"
        super().dataReceived(data)

    def wait_for(self, needle: str, since: int = 0) -> Deferred[str]:
        for line in self.lines[since:]:
            if needle in line:
                return defer.succeed(line)
        d: Deferred[str] = Deferred()
        self._waiters.append((lambda line: needle in line, d))

        def timed_out(failure: Any) -> Any:
            self._waiters[:] = [w for w in self._waiters if w[1] is not d]
            if failure.check(defer.TimeoutError):
                raise AssertionError(f"no line with {needle!r}; got {self.lines[-10:]!r}")
            return failure

        d.addTimeout(WAIT, reactor)
        d.addErrback(timed_out)
        return d


class ConsoleAttackTests(TestCase):
    """A real bot with a telnet console, core and identity plugins on SQLite."""

    timeout = 120

    def setUp(self) -> Deferred[None]:
        return ensureDeferred(self._start())

    async def _start(self) -> None:
        directory = Path(tempfile.mkdtemp(prefix="botcore-console-"))
        self.addCleanup(lambda: [p.unlink() for p in directory.iterdir()] and directory.rmdir())
        self.port = free_port()
        parser = configparser.ConfigParser(interpolation=None)
        parser.optionxform = str  # type: ignore[assignment,method-assign]
        parser.read_dict(
            {
                "bot": {"name": "bc", "autoload": "no", "load": "core, identity"},
                "database:main": {"url": f"sqlite:///{directory / 'bot.sqlite'}"},
                "plugin:core": {"limit_time": "0"},
                "source:console": {
                    "type": "telnet",
                    "endpoint": f"tcp:{self.port}:interface=127.0.0.1",
                },
            }
        )
        path = directory / "bot.ini"
        with open(path, "w", encoding="utf-8") as handle:
            parser.write(handle)
        self.bot = Bot(read_config(path, environ={}))
        await self.bot.startService()
        self.addCleanup(self.bot.stopService)
        self.clients: list[ConsoleClient] = []
        self.addCleanup(self._disconnect)

    def _disconnect(self) -> None:
        for client in self.clients:
            if client.transport is not None:
                client.transport.loseConnection()

    def account(self, name: str, nick: str, password: str | None, **perms: str) -> None:
        """An account linked to ``nick`` on the console, as botcore-setup makes one."""
        sessions = self.bot.databases["main"].session_factory
        assert sessions is not None
        with sessions() as session:
            account = accounts.create_account(session, name)
            accounts.link(session, accounts.identify(session, "console", nick), account)
            if password is not None:
                accounts.add_credential(session, account.id, "password", password)
            for permission, value in perms.items():
                accounts.set_permission(session, account.id, permission, value)
            session.commit()

    async def arrive(self) -> ConsoleClient:
        """A new connection, asked for its nick."""
        client = ConsoleClient()
        endpoint = TCP4ClientEndpoint(reactor, "127.0.0.1", self.port, timeout=WAIT)
        await endpoint.connect(protocol.Factory.forProtocol(lambda: client))
        await client.wait_for("What is your nick?")
        self.clients.append(client)
        return client

    async def connect(self, nick: str, password: str | None = None) -> ConsoleClient:
        """A new connection known as ``nick`` (giving ``password`` when asked for it)."""
        client = await self.arrive()
        if password is None:
            await self.ask(client, nick, f"Hi {nick}!")
        else:
            await self.ask(client, nick, "type its password")
            await self.ask(client, password, f"Hi {nick}!")
        return client

    async def nick_free(self, nick: str) -> None:
        """Wait (bounded) until the console has seen the nick's holder leave."""
        source = self.bot.get_source("console")
        deadline = reactor.seconds() + WAIT
        while source.console_for(nick) is not None:
            self.assertLess(reactor.seconds(), deadline, f"{nick} never left")
            await task.deferLater(reactor, 0.02, lambda: None)

    async def ask(self, client: ConsoleClient, text: str, expect: str) -> str:
        start = len(client.lines)
        client.sendLine(text.encode())
        return await client.wait_for(expect, since=start)

    async def _token_attack(self) -> None:
        self.account("admin", "admin", SECRET, admin="auth")
        mallory = await self.connect("mallory")
        await self.ask(mallory, "create account mallory password m-secret", "Created account")
        await self.ask(mallory, "I am admin on console", "sent a token")
        # The admin is offline: mallory tries to take the nick on a second connection.
        squatter = await self.arrive()
        await self.ask(squatter, "admin", "belongs to the account admin: type its password")
        line = await self.ask(squatter, "m-secret", "you are guest-")
        self.assertIn("that is not its password", line)
        self.assertIsNone(self.bot.get_source("console").console_for("admin"))
        await self.ask(squatter, "who am I", "with no account")
        real = await self.connect("admin", SECRET)
        await self.ask(real, "who am I", "admin (authenticated); identities: admin on console")

    def test_link_token_from_offline_admins_nick(self) -> None:
        """mallory cannot hold the offline admin's nick to say a link token from it: the
        nick asks for the admin's password, and a wrong one makes her a guest; the real
        admin, connecting next with the password, is authenticated."""
        return ensureDeferred(self._token_attack())  # type: ignore[return-value]

    async def _lockout(self) -> None:
        self.account("admin", "admin", SECRET, admin="auth")
        for _ in range(8):
            impostor = await self.arrive()
            await self.ask(impostor, "admin", "type its password")
            await self.ask(impostor, "guess", "you are guest-")
            impostor.transport.loseConnection()
        real = await self.connect("admin", SECRET)
        await self.ask(real, "who am I", "admin (authenticated)")

    def test_impostor_cannot_lock_out_admin(self) -> None:
        """An impostor's wrong passwords for the admin's nick, from eight connections,
        make guests of the impostor only: the admin, connecting next, gets in at once."""
        return ensureDeferred(self._lockout())  # type: ignore[return-value]

    async def _first_password(self) -> None:
        self.account("carol", "carol", None)
        mallory = await self.arrive()
        await self.ask(mallory, "carol", "belongs to the account carol, which has no password")
        await self.ask(mallory, "mallory", "Hi mallory!")
        await self.ask(mallory, "set password for carol mine", "")
        await self.ask(mallory, "who am I", "with no account")
        sessions = self.bot.databases["main"].session_factory
        assert sessions is not None
        with sessions() as session:
            carol = accounts.find_account(session, "carol")
            assert carol is not None
            self.assertEqual(accounts.credentials_of(session, carol.id, "password"), [])

    def test_first_password_of_passwordless_account(self) -> None:
        """Nobody can hold the nick of a password-less account's identity (so nobody gives
        it a first password by holding it): the nick is refused, with why."""
        return ensureDeferred(self._first_password())  # type: ignore[return-value]

    async def _lookalike(self) -> None:
        self.account("admin", "admin", SECRET, admin="auth")
        mallory = await self.arrive()
        # Latin with one Cyrillic letter; a dotless i; a dotted capital I; U+200B.
        await self.ask(mallory, "\u0430dmin", "a nick cannot mix scripts")
        await self.ask(mallory, "adm\u0131n", "looks too much like admin")
        await self.ask(mallory, "ADM\u0130N", "looks too much like admin")
        await self.ask(mallory, "admin\u200b", "a nick cannot contain")
        # Another case of the account's nick is that nick: it asks for the password.
        await self.ask(mallory, "ADMIN", "type its password")
        await self.ask(mallory, "", "you are guest-")
        cop = await self.connect("cop")
        other = await self.arrive()
        # All Cyrillic (es, o, er): one script, the look of the nick in use.
        await self.ask(other, "\u0441\u043e\u0440", "looks too much like cop")
        cop.transport.loseConnection()

    def test_lookalike_nicks_refused(self) -> None:
        """A nick that looks like an account's (a dotless i, a dotted capital I) or like a
        nick in use (in Cyrillic letters) is refused, and so is one with an invisible
        character or mixed scripts; another case of the account's nick is that nick, and
        asks for its password."""
        return ensureDeferred(self._lookalike())  # type: ignore[return-value]

    async def _piped(self) -> None:
        self.account("admin", "admin", SECRET, admin="auth")
        client = await self.arrive()
        start = len(client.lines)
        client.transport.write(f"admin\r\n{SECRET}\r\nwho am I\r\n".encode())
        await client.wait_for("admin (authenticated)", since=start)
        self.assertIn("You are authenticated as admin.", client.lines)

    def test_piped_login(self) -> None:
        """A nick, its password and a command sent at once are taken in order: the lines
        after the nick wait for its look-up."""
        return ensureDeferred(self._piped())  # type: ignore[return-value]

    async def _reload(self) -> None:
        self.account("admin", "admin", SECRET, admin="auth")
        admin = await self.connect("admin", SECRET)
        await self.ask(admin, "who am I", "admin (authenticated)")
        before = set(self.bot.auth.state.connections)
        await self.bot.reload_source("console")
        await self.nick_free("admin")
        mallory = await self.arrive()
        await self.ask(mallory, "admin", "type its password")
        await self.ask(mallory, "", "you are guest-")
        await self.ask(mallory, "who am I", "with no account")
        self.assertEqual(len(before), 1)

    def test_new_console_after_reload_is_nobody(self) -> None:
        """After the console source is reloaded, a newcomer with the admin's nick does not
        inherit the admin's authenticated connection (ids are never reused)."""
        return ensureDeferred(self._reload())  # type: ignore[return-value]
