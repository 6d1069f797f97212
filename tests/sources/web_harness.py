"""A real bot with a web front door on a loopback port, for the web source's tests: its
accounts and tokens, and a treq client for it. Runs on the global reactor under trial."""

from __future__ import annotations

import json
import tempfile
import textwrap
from pathlib import Path
from typing import Any

import treq
from twisted.internet import reactor

from botcore.accounts import models as accounts
from botcore.bot import Bot
from botcore.settings import read_config
from botcore.testing import MemorySource, free_port
from botcore.web import tokens

#: Seconds one request may take before the test fails.
REQUEST_TIMEOUT = 30


class WebBot:
    """A started `Bot` with ``[source:web]`` on a free port, a telnet ``console`` and a
    `MemorySource` ``mem``; ``alice`` holds every admin permission, ``bob`` none."""

    def __init__(
        self,
        folder: Path | None = None,
        extra: str = "",
        web: str = "",
        load: str = "",
        files: dict[str, str] | None = None,
        endpoint: str = "tcp:{port}:interface=127.0.0.1",
    ) -> None:
        self.folder = folder or Path(tempfile.mkdtemp(prefix="botcore-web-"))
        for name, text in (files or {}).items():
            path = self.folder / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(textwrap.dedent(text), encoding="utf-8")
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        (self.folder / "bot.ini").write_text(
            textwrap.dedent(
                f"""\
                [bot]
                name = webbot
                autoload = no
                load = core, basic, admin, identity, webtokens{load}
                plugin_dirs = plugins
                threads = 4
                [database:main]
                url = sqlite:///{self.folder}/bot.sqlite
                [source:web]
                type = web
                endpoint = {endpoint.format(port=self.port, folder=self.folder)}
                """
            )
            + textwrap.dedent(web)
            + textwrap.dedent(
                f"""\
                [source:console]
                type = telnet
                endpoint = tcp:{free_port()}:interface=127.0.0.1
                """
            )
            + textwrap.dedent(extra),
            encoding="utf-8",
        )
        self.bot = Bot(read_config(self.folder / "bot.ini"))
        self.mem = MemorySource("mem", self.bot.context)
        self.tokens: dict[str, str] = {}
        self.token_ids: dict[str, int] = {}

    async def start(self) -> None:
        await self.bot.startService()
        await self.bot.sources.attach(self.mem)
        self.add_account("alice", "alice-password", ("sources", "plugins", "config", "admin"))
        self.add_account("bob", "bob-password", ())

    async def stop(self) -> None:
        await self.bot.stopService()

    def session(self) -> Any:
        return self.bot.databases["main"].open_session()

    def add_account(self, name: str, password: str, permissions: tuple[str, ...]) -> None:
        with self.session() as session:
            account = accounts.create_account(session, name)
            accounts.add_credential(session, account.id, "password", password)
            for permission in permissions:
                accounts.set_permission(session, account.id, permission, "auth")
            row, secret = tokens.create_token(session, account.id, "tests")
            session.commit()
            self.tokens[name] = secret
            self.token_ids[name] = row.id

    async def call(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        user: str | None = "alice",
        token: str | None = None,
        headers: dict[str, str] | None = None,
        data: bytes | None = None,
    ) -> tuple[int, Any]:
        """(status, the JSON answer, or its text when it is not JSON)."""
        sent = dict(headers or {})
        if token is None and user is not None:
            token = self.tokens[user]
        if token is not None:
            sent.setdefault("Authorization", f"Bearer {token}")
        if body is not None:
            data = json.dumps(body).encode()
            sent.setdefault("Content-Type", "application/json")
        response = await treq.request(
            method,
            self.base + path,
            data=data,
            headers=sent,
            timeout=REQUEST_TIMEOUT,
            reactor=reactor,
            persistent=False,
        )
        text = await response.text("utf-8")
        try:
            return response.code, json.loads(text)
        except ValueError:
            return response.code, text
