"""mallory's account take-overs, replayed over the real telnet console (a running bot with
the identity plugin, clients over loopback TCP): a link token said from an offline admin's
nick does not move the admin's identity, a password-less account gets no first password
from whoever holds its nick, and a newcomer on a reused connection id is nobody."""

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

    async def connect(self, nick: str) -> ConsoleClient:
        client = ConsoleClient()
        endpoint = TCP4ClientEndpoint(reactor, "127.0.0.1", self.port, timeout=WAIT)
        await endpoint.connect(protocol.Factory.forProtocol(lambda: client))
        await client.wait_for("What is your nick?")
        client.sendLine(nick.encode())
        await client.wait_for(f"Hi {nick}!")
        self.clients.append(client)
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
        # The admin is offline: mallory takes the nick on a second connection.
        as_admin = await self.connect("admin")
        start = len(as_admin.lines)
        await self.ask(mallory, "I am admin on console", "sent a token")
        token = (await as_admin.wait_for("link token", since=start)).rsplit(" ", 1)[1]
        await self.ask(as_admin, f"link token {token}", "belongs to admin")
        await self.ask(as_admin, "who am I", "You are admin (not authenticated)")
        as_admin.transport.loseConnection()
        await self.nick_free("admin")
        real = await self.connect("admin")
        await self.ask(real, f"auth {SECRET}", "now authenticated")
        await self.ask(real, "who am I", "admin (authenticated); identities: admin on console")

    def test_link_token_from_offline_admins_nick(self) -> None:
        """mallory's 'I am admin on console' with the token said back from the nick admin
        leaves the admin's identity where it was; the real admin authenticates after."""
        return ensureDeferred(self._token_attack())  # type: ignore[return-value]

    async def _lockout(self) -> None:
        self.account("admin", "admin", SECRET, admin="auth")
        impostor = await self.connect("admin")
        for _ in range(8):
            await self.ask(impostor, "auth guess", "")
        await self.ask(impostor, f"auth {SECRET}", "try again in")
        impostor.transport.loseConnection()
        await self.nick_free("admin")
        real = await self.connect("admin")
        await self.ask(real, f"auth {SECRET}", "now authenticated")

    def test_impostor_cannot_lock_out_admin(self) -> None:
        """An impostor's failed attempts under the admin's nick slow the impostor's
        connection only: the admin, connecting next, authenticates at once."""
        return ensureDeferred(self._lockout())  # type: ignore[return-value]

    async def _first_password(self) -> None:
        self.account("carol", "carol", None)
        mallory = await self.connect("carol")
        await self.ask(mallory, "set password mine", "authenticate first")
        await self.ask(mallory, "auth mine", "didn't work")
        await self.ask(mallory, "who am I", "carol (not authenticated)")
        await self.ask(mallory, "set my email to mallory@example.org", "authenticate first")

    def test_first_password_of_passwordless_account(self) -> None:
        """Holding the nick of a password-less account's identity gives no first password
        and no attribute changes."""
        return ensureDeferred(self._first_password())  # type: ignore[return-value]

    async def _reload(self) -> None:
        self.account("admin", "admin", SECRET, admin="auth")
        admin = await self.connect("admin")
        await self.ask(admin, f"auth {SECRET}", "now authenticated")
        before = set(self.bot.auth.state.connections)
        await self.bot.reload_source("console")
        await self.nick_free("admin")
        mallory = await self.connect("admin")
        await self.ask(mallory, "who am I", "admin (not authenticated)")
        self.assertEqual(len(before), 1)

    def test_new_console_after_reload_is_nobody(self) -> None:
        """After the console source is reloaded, a newcomer with the admin's nick does not
        inherit the admin's authenticated connection (ids are never reused)."""
        return ensureDeferred(self._reload())  # type: ignore[return-value]
