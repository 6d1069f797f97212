"""The bridge plugin on three real networks at once (one ngircd, one Prosody, one Synapse
for the whole module, started in parallel: `tests.sources.bridge_harness`): a person on
each sees the others' messages in order; an edit and a deletion reach the copies where
the network can carry them (IRC degrades: an edit is said again, a deletion is not
carried); files travel as files where a network takes them and as links elsewhere; two
bridges sharing a room make no loop; and a server restart loses nothing."""

from __future__ import annotations

import itertools
import json
import shutil
import struct
import tempfile
import zlib
from pathlib import Path
from typing import Any

from twisted.internet.defer import Deferred
from twisted.trial.unittest import TestCase
from twisted.words.xish import domish

from botcore.bot import Bot
from botcore.settings import read_config
from tests.ircserver import LineClient
from tests.sources import bridge_harness
from tests.sources.bridge_harness import BOT, Networks, bot_in, muc
from tests.sources.ircv3_harness import SharedNetwork
from tests.sources.matrix_harness import WAIT, Peer, wait_until
from tests.sources.xmpp_harness import XMPPClient, child, room_id, sent_with_id, shown

#: Numbers for each test's own channels and rooms.
_TAGS = itertools.count(1)
OOB = "jabber:x:oob"


def png() -> bytes:
    """A real one-pixel PNG image."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0)
    pixels = zlib.compress(b"\x00\xff\x80\x00")
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", pixels)
        + chunk(b"IEND", b"")
    )


class BridgeIntegrationTests(SharedNetwork, TestCase):
    """alice is on IRC, bob on XMPP, carol on Matrix; each test has its own channel, MUC
    room and Matrix room, and its own bot on a fresh database."""

    skip = bridge_harness.skip_reason()
    timeout = 4 * WAIT
    network_type = Networks

    def setUp(self) -> None:
        self.networks: Networks = self.use_network()
        self.tag = f"b{next(_TAGS)}"
        self.directory = Path(tempfile.mkdtemp(prefix="botcore-bridge-"))
        self.addCleanup(shutil.rmtree, self.directory, True)
        self.bot: Bot | None = None
        self.irc_clients: list[LineClient] = []
        self.xmpp_clients: list[XMPPClient] = []
        self.peers: list[Peer] = []

    def tearDown(self) -> Deferred[None]:
        return Deferred.fromCoroutine(self._teardown())

    async def _teardown(self) -> None:
        for client in self.irc_clients:
            if client.transport is not None:
                client.transport.loseConnection()
        for xmpp in self.xmpp_clients:
            await xmpp.close()
        for peer in self.peers:
            await peer.stop()
        if self.bot is not None and self.bot.running:
            await self.bot.stopService()

    # -- set-up ------------------------------------------------------------------------------

    async def start(
        self,
        bridges: dict[str, list[str]],
        sections: dict[str, dict[str, str]] | None = None,
        **options: str,
    ) -> tuple[LineClient, XMPPClient, Peer]:
        """carol's Matrix room (``{matrix}`` in ``bridges``' conversations), the bot with
        the bridges (each ``[bridge:NAME]`` with ``options``) and any other ``sections``,
        then alice and bob in the conversations the bridges name."""
        carol = await self.peer("carol")
        self.matrix_room = await self.networks.matrix_room(carol)
        conversations = {
            name: [c.format(matrix=self.matrix_room) for c in listed]
            for name, listed in bridges.items()
        }
        every = sorted({c for listed in conversations.values() for c in listed})
        channels = [c.split(":", 1)[1] for c in every if c.startswith("irc:")]
        rooms = [c.split(":", 1)[1] for c in every if c.startswith("xmpp:")]
        sections = dict(sections or {})
        sections.update(
            self.networks.sources(
                self.directory,
                channels=", ".join(channels),
                rooms=", ".join(rooms),
            )
        )
        for name, listed in conversations.items():
            sections[f"bridge:{name}"] = {"conversations": " ".join(listed), **options}
        path = self.networks.write_config(self.directory, sections)
        self.bot = Bot(read_config(path, environ={}))
        await self.bot.startService()
        self.assertEqual(self.bot.plugins.failed, {})
        await bot_in(self.bot, channels, rooms, [self.matrix_room])
        alice = await self.networks.irc_client("alice", channels[0])
        self.irc_clients.append(alice)
        bob = await self.networks.xmpp_client("bob", rooms[0])
        self.xmpp_clients.append(bob)
        return alice, bob, carol

    async def peer(self, user: str) -> Peer:
        peer = await self.networks.matrix_peer(user, self.directory / f"{user}-{len(self.peers)}")
        self.peers.append(peer)
        return peer

    @property
    def channel(self) -> str:
        return f"#{self.tag}"

    @property
    def room(self) -> str:
        return muc(self.tag)

    # -- what each person sees from the bot --------------------------------------------------

    def irc_seen(self, client: LineClient, channel: str | None = None) -> list[str]:
        """The texts the bot said in ``channel`` (the test's), as ``client`` saw them."""
        prefix = f"PRIVMSG {channel or self.channel} :"
        return [
            line.split(prefix, 1)[1]
            for line in client.lines
            if line.startswith(f":{BOT}!") and prefix in line
        ]

    def xmpp_from_bot(self, stanza: domish.Element, room: str | None = None) -> bool:
        return (
            stanza.name == "message"
            and stanza.getAttribute("from") == f"{room or self.room}/{BOT}"
            and stanza.getAttribute("type") == "groupchat"
        )

    def xmpp_seen(self, client: XMPPClient, room: str | None = None) -> list[str]:
        """The texts the bot said in the MUC ``room`` (the test's), as ``client`` saw them
        (corrections and retractions left out)."""
        return [
            text
            for stanza in client.stanzas
            if self.xmpp_from_bot(stanza, room)
            and child(stanza, "replace", "urn:xmpp:message-correct:0") is None
            and (text := shown(stanza)) is not None
        ]

    def matrix_events(self, peer: Peer, kind: str = "m.room.message") -> list[dict[str, Any]]:
        bot = self.networks.matrix_ids[BOT]
        return [
            raw
            for room, raw in peer.events
            if room == self.matrix_room and raw.get("sender") == bot and raw.get("type") == kind
        ]

    def matrix_seen(self, peer: Peer) -> list[str]:
        """The texts the bot said in the test's Matrix room (edits left out)."""
        return [
            raw["content"].get("body", "")
            for raw in self.matrix_events(peer)
            if raw["content"].get("m.relates_to", {}).get("rel_type") != "m.replace"
        ]

    async def everyone_saw(
        self, alice: LineClient, bob: XMPPClient, carol: Peer, *, irc: int, xmpp: int, matrix: int
    ) -> None:
        """Wait until alice, bob and carol have seen at least that many of the bot's
        messages."""
        await wait_until(lambda: len(self.irc_seen(alice)) >= irc, f"{irc} relayed to IRC")
        await wait_until(lambda: len(self.xmpp_seen(bob)) >= xmpp, f"{xmpp} relayed to XMPP")
        await wait_until(
            lambda: len(self.matrix_seen(carol)) >= matrix, f"{matrix} relayed to Matrix"
        )

    # -- the tests ---------------------------------------------------------------------------

    async def test_each_sees_the_others_in_order(self) -> None:
        """Five messages from each network, sent at once, reach the two others in the
        order said, each once, with the sender's name; none comes back to its own. A
        command is relayed like any message and answered only where it was asked."""
        alice, bob, carol = await self.start(
            {"all": [f"irc:{self.channel}", f"xmpp:{self.room}", "matrix:{matrix}"]}
        )
        for i in range(5):
            alice.send(f"PRIVMSG {self.channel} :irc says {i}")
            bob.message(self.room, f"xmpp says {i}", kind="groupchat")
        for i in range(5):
            await carol.send(self.matrix_room, f"matrix says {i}")
        await self.everyone_saw(alice, bob, carol, irc=10, xmpp=10, matrix=10)

        def said(texts: list[str], network: str) -> list[str]:
            return [t for t in texts if f"{network} says" in t]

        irc, xmpp, matrix = self.irc_seen(alice), self.xmpp_seen(bob), self.matrix_seen(carol)
        expected = {
            network: [f"<{name}> {network} says {i}" for i in range(5)]
            for network, name in (("irc", "alice"), ("xmpp", "bob"), ("matrix", "carol"))
        }
        self.assertEqual(said(irc, "xmpp"), expected["xmpp"])
        self.assertEqual(said(irc, "matrix"), expected["matrix"])
        self.assertEqual(said(xmpp, "irc"), expected["irc"])
        self.assertEqual(said(xmpp, "matrix"), expected["matrix"])
        self.assertEqual(said(matrix, "irc"), expected["irc"])
        self.assertEqual(said(matrix, "xmpp"), expected["xmpp"])
        # Nothing came back to where it was said, and nothing else was said.
        self.assertEqual((len(irc), len(xmpp), len(matrix)), (10, 10, 10))
        # A command is relayed, and answered once, where it was asked (answer = here).
        alice.send(f"PRIVMSG {self.channel} :{BOT}: ping")
        await wait_until(lambda: "alice: pong" in self.irc_seen(alice), "the answer on IRC")
        bob.message(self.room, "the end", kind="groupchat")
        await self.everyone_saw(alice, bob, carol, irc=12, xmpp=11, matrix=12)
        self.assertEqual(self.xmpp_seen(bob)[10:], [f"<alice> {BOT}: ping"])
        self.assertEqual(self.matrix_seen(carol)[10:], [f"<alice> {BOT}: ping", "<bob> the end"])
        self.assertEqual(self.irc_seen(alice)[10:], ["alice: pong", "<bob> the end"])

    async def test_edit_and_deletion_carried(self) -> None:
        """bob's correction on XMPP edits the copy on Matrix and is said again on IRC;
        carol's redaction on Matrix retracts the copy on XMPP (IRC cannot delete: its
        copy stays)."""
        alice, bob, carol = await self.start(
            {"all": [f"irc:{self.channel}", f"xmpp:{self.room}", "matrix:{matrix}"]}
        )
        sent_with_id(bob, self.room, "helo everyone", "bob-1", "groupchat")
        await self.everyone_saw(alice, bob, carol, irc=1, xmpp=0, matrix=1)
        copy = self.matrix_events(carol)[0]
        self.assertEqual(copy["content"]["body"], "<bob> helo everyone")
        replace = domish.Element(("urn:xmpp:message-correct:0", "replace"))
        replace["id"] = "bob-1"
        sent_with_id(bob, self.room, "hello everyone", "bob-2", "groupchat", replace)
        edit = await carol.wait_event(
            self.matrix_room,
            lambda raw: (
                raw.get("content", {}).get("m.relates_to", {}).get("rel_type") == "m.replace"
            ),
            "the edit of the copy",
        )
        self.assertEqual(edit["content"]["m.relates_to"]["event_id"], copy["event_id"])
        self.assertIn("hello everyone", edit["content"]["m.new_content"]["body"])
        # IRC cannot edit: the new text is said again, marked by edit_suffix.
        await wait_until(lambda: len(self.irc_seen(alice)) >= 2, "the edit said again on IRC")

        doomed = await carol.send(self.matrix_room, "a regrettable remark")
        await self.everyone_saw(alice, bob, carol, irc=3, xmpp=1, matrix=0)
        copies = [
            s for s in bob.stanzas if self.xmpp_from_bot(s) and "regrettable" in str(shown(s))
        ]
        copy_id = room_id(copies[0], self.room)
        self.assertIsNotNone(copy_id)
        await carol.client.redact(self.matrix_room, doomed)
        retraction = await bob.wait_for(
            lambda s: (
                self.xmpp_from_bot(s)
                and child(s, "retract", "urn:xmpp:message-retract:1") is not None
            ),
            since=0,
        )
        self.assertEqual(child(retraction, "retract", "urn:xmpp:message-retract:1")["id"], copy_id)
        # A last message: after it, nothing more reached IRC for the deletion.
        await carol.send(self.matrix_room, "the end")
        await self.everyone_saw(alice, bob, carol, irc=4, xmpp=2, matrix=0)
        self.assertEqual(
            self.irc_seen(alice),
            [
                "<bob> helo everyone",
                "<bob> hello everyone (edited)",
                "<carol> a regrettable remark",
                "<carol> the end",
            ],
        )

    async def test_files_carried(self) -> None:
        """carol uploads a PNG to Synapse and posts it as an m.image: alice on IRC sees
        its name, type, size and a URL she can open without a Matrix account (and that
        gives the image), bob on XMPP gets it as a file (an OOB <x>, the URL in the
        body). bob shares a link with OOB: alice and carol see its name and URL. carol's
        HTML reaches the others as plain text with its link's URL."""
        alice, bob, carol = await self.start(
            {"all": [f"irc:{self.channel}", f"xmpp:{self.room}", "matrix:{matrix}"]}
        )
        image = png()
        status, body = await carol.request(
            "POST",
            f"{self.networks.matrix.url}/_matrix/media/v3/upload?filename=dot.png",
            {"Authorization": f"Bearer {carol.client.access_token}", "Content-Type": "image/png"},
            image,
        )
        self.assertEqual(status, 200, body)
        mxc = json.loads(body)["content_uri"]
        server, media_id = mxc.removeprefix("mxc://").split("/")
        url = f"{self.networks.matrix.url}/_matrix/media/v3/download/{server}/{media_id}"
        await carol.send(
            self.matrix_room,
            "dot.png",
            msgtype="m.image",
            url=mxc,
            info={"mimetype": "image/png", "size": len(image)},
        )
        await self.everyone_saw(alice, bob, carol, irc=1, xmpp=1, matrix=0)
        self.assertEqual(
            self.irc_seen(alice), [f"<carol> dot.png (image/png, {len(image)} bytes) {url}"]
        )
        (copy,) = [s for s in bob.stanzas if self.xmpp_from_bot(s)]
        self.assertEqual(shown(copy), f"<carol>\n{url}")
        x = child(copy, "x", OOB)
        assert x is not None
        self.assertEqual((str(child(x, "url", OOB)), str(child(x, "desc", OOB))), (url, "dot.png"))
        # Anyone can open it: no Matrix login.
        status, fetched = await carol.request("GET", url, {}, None)
        self.assertEqual((status, fetched), (200, image))

        link = "https://files.example.org/up/report%202.pdf"
        oob = domish.Element((OOB, "x"))
        oob.addElement("url", content=link)
        sent_with_id(bob, self.room, link, "bob-file", "groupchat", oob)
        await self.everyone_saw(alice, bob, carol, irc=2, xmpp=1, matrix=1)
        self.assertEqual(self.irc_seen(alice)[1], f"<bob> report 2.pdf {link}")
        self.assertEqual(self.matrix_seen(carol), [f"<bob> report 2.pdf {link}"])
        # HTML from Matrix reaches the others as plain text that keeps its links.
        await carol.send(
            self.matrix_room,
            "see the docs",
            format="org.matrix.custom.html",
            formatted_body='see <b>the</b> <a href="https://docs.example.org/x">docs</a>',
        )
        await self.everyone_saw(alice, bob, carol, irc=3, xmpp=2, matrix=1)
        said = "<carol> see the docs (https://docs.example.org/x)"
        self.assertEqual((self.irc_seen(alice)[2], self.xmpp_seen(bob)[1]), (said, said))
        # Only once each, and nothing came back to where it was said.
        bob.message(self.room, "the end", kind="groupchat")
        await self.everyone_saw(alice, bob, carol, irc=4, xmpp=2, matrix=2)
        self.assertEqual(len(self.xmpp_seen(bob)), 2)
        self.assertEqual(len(self.irc_seen(alice)), 4)

    async def test_overlapping_bridges_make_no_loop(self) -> None:
        """Bridge a joins IRC and the MUC room, bridge b the MUC room and Matrix, bridge
        c the same two as a: what bob says in the shared room reaches both others once;
        what alice and carol say reaches the room once (alice's not twice through a and
        c) and never comes back to them, nor goes on through the other bridge."""
        alice, bob, carol = await self.start(
            {
                "a": [f"irc:{self.channel}", f"xmpp:{self.room}"],
                "b": [f"xmpp:{self.room}", "matrix:{matrix}"],
                # The same two conversations as a: still one copy each way.
                "c": [f"xmpp:{self.room}", f"irc:{self.channel}"],
            }
        )
        alice.send(f"PRIVMSG {self.channel} :from irc")
        bob.message(self.room, "from xmpp", kind="groupchat")
        await carol.send(self.matrix_room, "from matrix")
        await self.everyone_saw(alice, bob, carol, irc=1, xmpp=2, matrix=1)
        # A last message through both bridges: once it is in, any echo would be too.
        bob.message(self.room, "the end", kind="groupchat")
        await wait_until(lambda: "<bob> the end" in self.irc_seen(alice), "the end on IRC")
        await wait_until(lambda: "<bob> the end" in self.matrix_seen(carol), "the end on Matrix")
        self.assertEqual(sorted(self.xmpp_seen(bob)), ["<alice> from irc", "<carol> from matrix"])
        irc, matrix = self.irc_seen(alice), self.matrix_seen(carol)
        # The bot's copy in the room is its own message: not relayed on by the other bridge.
        self.assertEqual(irc, ["<bob> from xmpp", "<bob> the end"])
        self.assertEqual(matrix, ["<bob> from xmpp", "<bob> the end"])

    async def test_server_restart_loses_nothing(self) -> None:
        """Prosody stops: IRC and Matrix still talk to each other; what they say while it
        is down waits (max_pending = 2: the oldest of three is dropped, and bridge status
        says so) and reaches the room late, once, in order, when it is back; then the
        room talks to them again."""
        carol_id = self.networks.matrix_ids["carol"]
        alice, bob, carol = await self.start(
            {"all": [f"irc:{self.channel}", f"xmpp:{self.room}", "matrix:{matrix}"]},
            {
                "plugin:bridge": {"max_pending": "2"},
                "auth": {"grants": f"matrix:{carol_id} = +admin"},
            },
        )
        bob.message(self.room, "before", kind="groupchat")
        await self.everyone_saw(alice, bob, carol, irc=1, xmpp=0, matrix=1)
        await bob.close()
        self.xmpp_clients.remove(bob)
        source: Any = self.bot.get_source("xmpp") if self.bot else None
        connections = source.connections
        self.networks.xmpp.stop()
        await wait_until(lambda: source.state != "connected", "the bot to notice")
        # Each one relayed live before the next is said: the bot holds them in that order
        # (messages from two networks at once have no order of their own).
        alice.send(f"PRIVMSG {self.channel} :while away 1")
        await wait_until(lambda: len(self.matrix_seen(carol)) >= 2, "IRC to Matrix meanwhile")
        await carol.send(self.matrix_room, "while away 2")
        await wait_until(lambda: len(self.irc_seen(alice)) >= 2, "Matrix to IRC meanwhile")
        alice.send(f"PRIVMSG {self.channel} :while away 3")
        await wait_until(lambda: len(self.matrix_seen(carol)) >= 3, "IRC to Matrix again")
        self.networks.xmpp.start()
        await wait_until(
            lambda: (
                source.connections > connections
                and bridge_harness.xmpp_joined(self.bot, self.room)
            ),
            "the bot back in the room",
        )
        bob = await self.networks.xmpp_client("bob", self.room, resource="again")
        self.xmpp_clients.append(bob)
        await wait_until(lambda: len(self.xmpp_seen(bob)) >= 2, "the late messages")
        bob.message(self.room, "after", kind="groupchat")
        await self.everyone_saw(alice, bob, carol, irc=3, xmpp=2, matrix=4)
        self.assertEqual(self.xmpp_seen(bob), ["<carol> while away 2", "<alice> while away 3"])
        self.assertEqual(
            self.irc_seen(alice), ["<bob> before", "<carol> while away 2", "<bob> after"]
        )
        self.assertEqual(
            self.matrix_seen(carol),
            ["<bob> before", "<alice> while away 1", "<alice> while away 3", "<bob> after"],
        )
        # The copy that could not wait is reported, not lost silently.
        await carol.send(self.matrix_room, f"{BOT}: bridge status")
        status = await carol.wait_text(self.matrix_room, self.networks.matrix_ids[BOT], "bridge")
        self.assertIn(f"xmpp:{self.room} (connected, 1 dropped)", status["content"]["body"])
