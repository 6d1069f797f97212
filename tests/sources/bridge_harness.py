"""Three real networks at once for the bridge's integration test and benchmark: one ngircd
(`tests.ircserver`), one Prosody (`xmpp_harness`) and one Synapse (`matrix_harness`),
started in parallel, with the bot's accounts and people's accounts on each; the config of
a bot on all three; and a client per network for a person (the harnesses' own clients)."""

from __future__ import annotations

import atexit
import configparser
import os
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from tests.ircserver import IRCServer, LineClient, connect_client
from tests.ircserver import skip_reason as irc_skip_reason
from tests.sources.ircv3_harness import ModuleShared
from tests.sources.matrix_harness import Peer, SynapseServer, wait_until
from tests.sources.matrix_harness import skip_reason as matrix_skip_reason
from tests.sources.xmpp_harness import MUC, ProsodyServer, XMPPClient
from tests.sources.xmpp_harness import skip_reason as xmpp_skip_reason

#: The bot's nick (IRC, the XMPP room nick) and name.
BOT = "bridgebot"
#: Each person's account on every network (XMPP and Matrix passwords).
PEOPLE = ("alice", "bob", "carol")


def password(user: str) -> str:
    return f"{user}-password"


def skip_reason() -> str | None:
    """Why the three servers cannot all run here (None: they can; never under CI=true)."""
    for reason in (irc_skip_reason(), xmpp_skip_reason(), matrix_skip_reason()):
        if reason:
            return reason
    return None


class Networks(ModuleShared):
    """ngircd, Prosody and Synapse, each on free loopback ports. `start` starts the three
    at once (each start bounded by its harness's wait) and makes the accounts: on XMPP
    and Matrix, the bot and every one of `PEOPLE`. `cleanup` stops them all. A test
    module shares one with `ircv3_harness.SharedNetwork` (``network_type = Networks``)."""

    def __init__(self) -> None:
        self.irc = IRCServer()
        users = {user: password(user) for user in (BOT, *PEOPLE)}
        self.xmpp = ProsodyServer(users)
        # Media anyone can open by URL, as people on IRC and XMPP must to see a file
        # said on Matrix (Synapse serves new media only to logged-in users otherwise).
        self.matrix = SynapseServer({"enable_authenticated_media": False})
        #: Matrix user ids by account name.
        self.matrix_ids: dict[str, str] = {}

    def start(self) -> None:
        """Start the three servers in parallel; if one fails, stop them all and raise."""
        with ThreadPoolExecutor(3) as pool:
            started = [pool.submit(self.irc.start), pool.submit(self.xmpp.start)]
            started.append(pool.submit(self._start_matrix))
            errors = [future.exception() for future in started]
        failed = [error for error in errors if error is not None]
        if failed:
            self.cleanup()
            raise failed[0]

    def _start_matrix(self) -> None:
        self.matrix.start()
        for user in (BOT, *PEOPLE):
            self.matrix_ids[user] = self.matrix.register(user, password(user))

    def cleanup(self) -> None:
        for server in (self.irc, self.xmpp, self.matrix):
            server.cleanup()

    # -- the bot ------------------------------------------------------------------------------

    def sources(self, directory: Path, *, channels: str, rooms: str) -> dict[str, dict[str, str]]:
        """The three ``[source:...]`` sections (named irc, xmpp and matrix) of a bot that
        joins ``channels``, the MUC ``rooms`` and every Matrix room it is invited to,
        reconnecting quickly after a server goes away. (Invited rather than listed in
        ``rooms``: that option takes only ``!id:server``, and Synapse's room version 12
        ids have no server part.)"""
        return {
            "source:irc": {
                "type": "irc",
                "servers": self.irc.endpoint,
                "nick": BOT,
                "channels": channels,
                "reconnect_delay": "0.1",
                "reconnect_max_delay": "0.5",
                "flood_rate": "0",
            },
            "source:xmpp": {
                "type": "xmpp",
                "jid": f"{BOT}@localhost",
                "password": password(BOT),
                "server": f"tcp:127.0.0.1:{self.xmpp.port}",
                "ca_file": self.xmpp.ca_file,
                "nick": BOT,
                "rooms": rooms,
                "reconnect_delay": "0.1",
                "reconnect_max_delay": "0.5",
                "rejoin_delay": "0.2",
            },
            "source:matrix": {
                "type": "matrix",
                "homeserver": self.matrix.url,
                "user_id": self.matrix_ids[BOT],
                "password": password(BOT),
                "store": str(directory / "matrix-store"),
                "encryption": "no",
                "invites": "everyone",
                "reconnect_delay": "0.1",
                "reconnect_max_delay": "0.5",
                "sync_timeout": "5",
                "request_timeout": "20",
            },
        }

    def write_config(
        self,
        directory: Path,
        sections: Mapping[str, Mapping[str, str]],
        load: str = "core, basic, bridge",
    ) -> Path:
        """Write ``bot.ini`` in ``directory``: the bot named `BOT` with the plugins ``load``,
        SQLite in the folder, and ``sections`` (sources, bridges...)."""
        parser = configparser.ConfigParser(interpolation=None)
        parser.optionxform = str  # type: ignore[assignment,method-assign]
        parser.read_dict(
            {
                "bot": {"name": BOT, "autoload": "no", "load": load},
                "database:main": {"url": f"sqlite:///{directory / 'bot.sqlite'}"},
                "plugin:core": {"limit_time": "0"},
                **sections,
            }
        )
        path = directory / "bot.ini"
        with open(path, "w", encoding="utf-8") as handle:
            parser.write(handle)
        return path

    # -- people ------------------------------------------------------------------------------

    async def irc_client(self, nick: str, channel: str) -> LineClient:
        """A person on IRC, in ``channel``."""
        client = await connect_client(self.irc, nick)
        start = len(client.lines)
        client.send(f"JOIN {channel}")
        await client.wait_for(" 366 ", since=start)
        return client

    async def xmpp_client(self, user: str, room: str, resource: str = "test") -> XMPPClient:
        """A person on XMPP, in the MUC ``room`` under their account name."""
        from twisted.internet import reactor

        client = XMPPClient(self.xmpp, user, password(user), resource)
        await client.connect(reactor)
        await client.join(room, user)
        return client

    async def matrix_peer(self, user: str, directory: Path, cls: type[Peer] = Peer) -> Peer:
        """A person on Matrix, logged in and syncing (a new device, its store in
        ``directory``)."""
        os.makedirs(directory, exist_ok=True)
        peer = cls(self.matrix.url, self.matrix_ids[user], password(user), directory)
        await peer.start()
        return peer

    async def matrix_room(self, peer: Peer) -> str:
        """A new (unencrypted) room of ``peer``'s that the bot is invited to; its id."""
        return await peer.create_room(self.matrix_ids[BOT])


atexit.register(Networks.release_all)


# -- waiting for the bot -------------------------------------------------------------------


def irc_joined(bot: Any, channel: str) -> bool:
    protocol = bot.get_source("irc").protocol
    return (
        protocol is not None
        and protocol.registered
        and any(c.name.lower() == channel.lower() for c in protocol.channels.values())
    )


def xmpp_joined(bot: Any, room: str) -> bool:
    connection = bot.get_source("xmpp").connection
    return connection is not None and room in connection.rooms and connection.rooms[room].joined


def matrix_joined(bot: Any, room: str) -> bool:
    source = bot.get_source("matrix")
    client = getattr(source, "client", None)
    return source.state == "connected" and client is not None and room in client.nio.rooms


async def bot_in(bot: Any, channels: list[str], rooms: list[str], matrix_rooms: list[str]) -> None:
    """Wait (bounded) until the bot is in every one of the conversations."""
    checks: list[tuple[Callable[[], bool], str]] = [
        *((lambda c=c: irc_joined(bot, c), f"the bot in {c}") for c in channels),
        *((lambda r=r: xmpp_joined(bot, r), f"the bot in {r}") for r in rooms),
        *((lambda r=r: matrix_joined(bot, r), f"the bot in {r}") for r in matrix_rooms),
    ]
    for check, what in checks:
        await wait_until(check, what)


def muc(name: str) -> str:
    """The JID of the MUC room ``name`` on the test server."""
    return f"{name}@{MUC}"
