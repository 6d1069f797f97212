"""The Matrix source against a real Synapse on a free loopback port (one per module): a
second client (matrix-nio's transport-free client on treq) talks to the bot in a plain
room, a direct chat and an encrypted room; replies, threads, edits, reactions and
redactions both ways; the bot restarted and still decrypting; Synapse restarted and the
bot recovering by itself."""

from __future__ import annotations

import atexit
import configparser
import shutil
import tempfile
from pathlib import Path
from typing import Any, ClassVar

from twisted.internet.defer import Deferred
from twisted.trial.unittest import TestCase

from botcore.bot import Bot
from botcore.event import Event, EventType
from botcore.processor import Processor, handler, match
from botcore.settings import read_config
from tests.sources import matrix_harness
from tests.sources.matrix_harness import WAIT, Peer, SynapseServer, wait_until

NAME = "testbot"
_server: SynapseServer | None = None
_users: dict[str, str] = {}
_count = 0


def server() -> SynapseServer:
    """The module's Synapse, started on first use (about 4 s) and stopped at exit."""
    global _server
    if _server is None:
        started = SynapseServer()
        atexit.register(started.cleanup)
        started.start()
        _server = started
    return _server


def user(prefix: str) -> tuple[str, str]:
    """A fresh account (user id, password): tests share the server, not their users."""
    global _count
    _count += 1
    name = f"{prefix}{_count}"
    password = f"{name}-password"
    user_id = server().register(name, password)
    _users[user_id] = password
    return user_id, password


class Seen(Processor):
    """Remembers every event the bot processes (in the class list); ``whoami`` tells
    the sender's id and verified identity."""

    addressed = False
    processed = True
    event_types = None
    seen: ClassVar[list[Event]] = []

    @handler
    def remember(self, event: Event) -> None:
        Seen.seen.append(event)


class Whoami(Processor):
    @match("whoami")
    def whoami(self, event: Event) -> None:
        event.addresponse(f"id={event.who.id} encrypted={event.data.get('encrypted')}")

    @match("react")
    def react(self, event: Event) -> None:
        event.react("👍")

    @match("thread")
    def thread(self, event: Event) -> None:
        event.addresponse("in the thread", address=False)


class MatrixIntegrationTestCase(TestCase):
    skip = matrix_harness.skip_reason()
    timeout = 6 * WAIT

    def setUp(self) -> None:
        server()
        self.peers: list[Peer] = []
        self.bots: list[Bot] = []
        self.directory = Path(tempfile.mkdtemp(prefix="botcore-matrix-"))
        self.addCleanup(shutil.rmtree, self.directory, True)
        Seen.seen = []
        self.bot_id, self.bot_password = user("bot")

    async def _teardown(self) -> None:
        for peer in self.peers:
            await peer.stop()
        for bot in self.bots:
            if bot.running:
                await bot.stopService()

    def tearDown(self) -> Deferred[None]:
        return Deferred.fromCoroutine(self._teardown())

    def config(self, load: str = "core, basic", **options: str) -> Path:
        source = {
            "type": "matrix",
            "homeserver": server().url,
            "user_id": self.bot_id,
            "password": "${ENV:MATRIX_PASSWORD}",
            "invites": "everyone",
            "reconnect_delay": "0.1",
            "reconnect_max_delay": "0.5",
            "sync_timeout": "5",
            "request_timeout": "20",
            **options,
        }
        parser = configparser.ConfigParser(interpolation=None)
        parser.optionxform = str  # type: ignore[assignment,method-assign]
        parser.read_dict(
            {
                "bot": {"name": NAME, "autoload": "no", "load": load},
                "database:main": {"url": f"sqlite:///{self.directory / 'bot.sqlite'}"},
                "plugin:core": {"limit_time": "0"},
                "source:matrix": source,
            }
        )
        path = self.directory / "bot.ini"
        with open(path, "w", encoding="utf-8") as handle:
            parser.write(handle)
        return path

    async def start_bot(self, load: str = "core, basic", **options: str) -> Bot:
        environ = {"MATRIX_PASSWORD": self.bot_password}
        bot = Bot(read_config(self.config(load, **options), environ=environ))
        bot.plugins.loaded["testing"] = [Seen("testing", bot, {}), Whoami("testing", bot, {})]
        self.bots.append(bot)
        await bot.startService()
        await wait_until(lambda: self.source(bot).state == "connected", "the bot to sync")
        return bot

    async def stop_bot(self, bot: Bot) -> None:
        await bot.stopService()

    def source(self, bot: Bot) -> Any:
        return bot.get_source("matrix")

    async def peer(self, prefix: str = "alice") -> Peer:
        user_id, password = user(prefix)
        directory = self.directory / user_id.strip("@").replace(":", "_")
        directory.mkdir()
        peer = Peer(server().url, user_id, password, directory)
        self.peers.append(peer)
        await peer.start()
        return peer

    async def room_with_bot(
        self, peer: Peer, bot: Bot, others: tuple[str, ...] = (), **kind: bool
    ) -> str:
        room_id = await peer.create_room([self.bot_id, *others], **kind)
        await peer.wait_event(
            room_id,
            lambda raw: (
                raw.get("type") == "m.room.member"
                and raw.get("state_key") == self.bot_id
                and raw["content"].get("membership") == "join"
            ),
            "the bot to join",
        )
        return room_id

    def seen(self, kind: str) -> list[Event]:
        return [e for e in Seen.seen if e.type == kind]


class RoomTests(MatrixIntegrationTestCase):
    async def test_room_echo_reply_thread_edit_reaction_redaction(self) -> None:
        """In a plain room: the bot answers when addressed (as a reply to the trigger, with
        a mention pill); a thread message is answered in its thread; the peer's edit,
        reply, reaction and redaction reach plugins as such; the bot reacts too."""
        bot = await self.start_bot()
        alice = await self.peer()
        room = await self.room_with_bot(alice, bot)
        trigger = await alice.send(room, f"{NAME}: echo hello room")
        reply = await alice.wait_text(room, self.bot_id, "hello room")
        relates = reply["content"].get("m.relates_to", {})
        self.assertEqual(relates.get("m.in_reply_to", {}).get("event_id"), trigger)
        # An addressed answer names its person with a pill.
        await alice.send(room, f"{NAME}: ping")
        pong = await alice.wait_text(room, self.bot_id, "pong")
        self.assertEqual(pong["content"]["m.mentions"]["user_ids"], [alice.client.user_id])
        self.assertIn("https://matrix.to/#/", pong["content"]["formatted_body"])
        # Not addressed: no answer; addressed by a pill alone: answered.
        await alice.send(
            room,
            "testbot2 echo not for you",
        )
        await alice.send(
            room,
            "Testbot: echo pill",
            format="org.matrix.custom.html",
            formatted_body=f'<a href="https://matrix.to/#/{self.bot_id}">Testbot</a>: echo pill',
        )
        await alice.wait_text(room, self.bot_id, "pill")
        self.assertFalse(any("not for you" in t for t in alice.texts(room, self.bot_id)))
        # A thread.
        root = await alice.send(room, "a thread root")
        await alice.send(
            room,
            f"{NAME}: thread",
            **{"m.relates_to": {"rel_type": "m.thread", "event_id": root, "is_falling_back": True,
                                "m.in_reply_to": {"event_id": root}}},
        )  # fmt: skip
        answer = await alice.wait_text(room, self.bot_id, "in the thread")
        self.assertEqual(answer["content"]["m.relates_to"]["rel_type"], "m.thread")
        self.assertEqual(answer["content"]["m.relates_to"]["event_id"], root)
        # Edit, reply, reaction and redaction from the peer.
        await alice.send(
            room,
            "* fixed text",
            **{"m.new_content": {"msgtype": "m.text", "body": "fixed text"},
               "m.relates_to": {"rel_type": "m.replace", "event_id": root}},
        )  # fmt: skip
        await alice.send(
            room, "an answer", **{"m.relates_to": {"m.in_reply_to": {"event_id": root}}}
        )
        reaction = await alice.send_event(
            room,
            "m.reaction",
            {"m.relates_to": {"rel_type": "m.annotation", "event_id": root, "key": "🎉"}},
        )
        await alice.client.redact(room, reaction)
        await alice.client.redact(room, root)
        await wait_until(lambda: len(self.seen(EventType.DELETE)) == 1, "the redaction")
        edit = self.seen(EventType.EDIT)[0]
        self.assertEqual(
            (edit.refers_to, edit.message.raw if edit.message else None), (root, "fixed text")
        )
        replied = [e for e in self.seen(EventType.MESSAGE) if e.reply_to == root]
        self.assertEqual([e.message.raw for e in replied if e.message], ["an answer"])
        reactions = self.seen(EventType.REACTION)
        self.assertEqual(
            [(r.refers_to, r.reaction, r.data.get("removed", False)) for r in reactions],
            [(root, "🎉", False), (root, "🎉", True)],
        )
        self.assertEqual(self.seen(EventType.DELETE)[0].refers_to, root)
        # The bot reacts.
        mine = await alice.send(room, f"{NAME}: react")
        got = await alice.wait_event(
            room,
            lambda raw: raw.get("type") == "m.reaction" and raw.get("sender") == self.bot_id,
            "the bot's reaction",
        )
        self.assertEqual(
            got["content"]["m.relates_to"],
            {"rel_type": "m.annotation", "event_id": mine, "key": "👍"},
        )
        # Identity: the user id, vouched for by the homeserver.
        await alice.send(room, f"{NAME}: whoami")
        await alice.wait_text(room, self.bot_id, f"id={alice.client.user_id} encrypted=False")
        message = next(
            e for e in self.seen(EventType.MESSAGE) if e.message and "whoami" in e.message.raw
        )
        self.assertEqual(self.source(bot).verified_identity(message), alice.client.user_id)

    async def test_direct_chat_is_private(self) -> None:
        """A direct room is a private conversation: answered without addressing."""
        bot = await self.start_bot()
        alice = await self.peer()
        room = await self.room_with_bot(alice, bot, direct=True)
        await alice.send(room, "echo just us")
        await alice.wait_text(room, self.bot_id, "just us")
        message = next(
            e for e in self.seen(EventType.MESSAGE) if e.message and "just us" in e.message.raw
        )
        self.assertFalse(message.public)
        self.assertFalse(self.source(bot).is_channel(room))

    async def test_invites_refused_by_policy(self) -> None:
        """With invites = list, an invitation from someone not listed is refused."""
        bot = await self.start_bot(invites="list", invite_from="@nobody:localhost")
        alice = await self.peer()
        room = await alice.create_room(self.bot_id)
        await alice.wait_event(
            room,
            lambda raw: (
                raw.get("type") == "m.room.member"
                and raw.get("state_key") == self.bot_id
                and raw["content"].get("membership") == "leave"
            ),
            "the bot to refuse",
        )
        self.assertEqual(len(self.seen(EventType.INVITE)), 1)
        self.assertNotIn(room, self.source(bot).client.nio.rooms)


class EncryptedTests(MatrixIntegrationTestCase):
    async def test_encrypted_room_both_ways_and_after_a_restart(self) -> None:
        """In an encrypted room the bot decrypts and answers encrypted; restarted (same
        device and keys from its store), it still decrypts and answers; nothing said
        before the restart is processed twice."""
        bot = await self.start_bot()
        alice = await self.peer()
        room = await self.room_with_bot(alice, bot, encrypted=True)
        await alice.send(room, f"{NAME}: whoami")
        reply = await alice.wait_text(room, self.bot_id, "encrypted=True")
        self.assertTrue(
            reply["content"]["body"].endswith(f"id={alice.client.user_id} encrypted=True")
        )
        self.assertEqual(alice.undecrypted, [])
        device = self.source(bot).client.device_id
        await self.stop_bot(bot)
        count = len(self.seen(EventType.MESSAGE))
        await alice.send(room, f"{NAME}: echo said while you were away")
        bot = await self.start_bot()
        self.assertEqual(self.source(bot).client.device_id, device)
        await alice.wait_text(room, self.bot_id, "while you were away")
        await alice.send(room, f"{NAME}: echo after the restart")
        await alice.wait_text(room, self.bot_id, "after the restart")
        texts = [e.message.raw for e in self.seen(EventType.MESSAGE)[count:] if e.message]
        self.assertEqual(
            texts, [f"{NAME}: echo said while you were away", f"{NAME}: echo after the restart"]
        )
        self.assertEqual(alice.undecrypted, [])

    async def test_synapse_restart_recovered(self) -> None:
        """Synapse stops and starts again: the bot reconnects by itself and answers."""
        bot = await self.start_bot()
        alice = await self.peer()
        room = await self.room_with_bot(alice, bot)
        await alice.send(room, f"{NAME}: echo before")
        await alice.wait_text(room, self.bot_id, "before")
        connections = self.source(bot).connections
        await alice.stop()
        self.peers.remove(alice)
        server().stop()
        await wait_until(lambda: self.source(bot).state == "reconnecting", "the bot to notice")
        server().start()
        await wait_until(
            lambda: self.source(bot).connections > connections, "the bot to reconnect"
        )
        alice = Peer(server().url, alice.client.user_id, alice.password, self.directory / "again")
        (self.directory / "again").mkdir()
        self.peers.append(alice)
        await alice.start()
        await alice.send(room, f"{NAME}: echo after")
        await alice.wait_text(room, self.bot_id, "after")


class EncryptionPolicyTests(MatrixIntegrationTestCase):
    async def test_undecryptable_logged_key_asked_and_told(self) -> None:
        """A message whose room key the bot never got is not processed: its key is asked
        for (a room key request reaches the sender) and the room is told."""
        bot = await self.start_bot(undecryptable_notice="yes")
        alice = await self.peer()
        room = await self.room_with_bot(alice, bot, encrypted=True)
        await alice.send(room, f"{NAME}: echo first")
        await alice.wait_text(room, self.bot_id, "first")
        # Alice stops trusting the bot's device and starts a new session without it.
        device = alice.client.nio.device_store[self.bot_id][self.source(bot).client.device_id]
        alice.client.nio.blacklist_device(device)
        alice.client.nio.invalidate_outbound_session(room)
        count = len(self.seen(EventType.MESSAGE))
        await alice.send(room, f"{NAME}: echo secret")
        notice = await alice.wait_text(room, self.bot_id, "could not decrypt")
        self.assertEqual(notice["content"]["msgtype"], "m.notice")
        await wait_until(
            lambda: any(request.session_id for request in alice.key_requests),
            "the bot's key request",
        )
        self.assertEqual(len(self.seen(EventType.MESSAGE)), count)
        self.assertFalse(any("secret" in t for t in alice.texts(room, self.bot_id)))

    async def test_verified_only_keeps_keys_from_unknown_devices(self) -> None:
        """With device_trust = verified and no trusted devices, the bot's encrypted
        answers cannot be read by the peer's unverified device."""
        bot = await self.start_bot(device_trust="verified")
        alice = await self.peer()
        room = await self.room_with_bot(alice, bot, encrypted=True)
        await alice.send(room, f"{NAME}: echo can you hear me")
        await wait_until(lambda: bool(alice.undecrypted), "the bot's unreadable answer")
        self.assertEqual(alice.undecrypted[0].sender, self.bot_id)
        self.assertEqual(alice.texts(room, self.bot_id), [])


class PluginTests(MatrixIntegrationTestCase):
    async def test_factoids_and_memos_in_an_encrypted_room_and_a_dm(self) -> None:
        """Factoids and memos work in an encrypted room and a direct chat; a private
        memo reaches its person in a direct room the bot makes."""
        bot = await self.start_bot(load="core, basic, factoid, memo")
        alice = await self.peer()
        bob = await self.peer("bob")
        bob_name = bob.client.user_id.split(":")[0][1:]
        room = await self.room_with_bot(alice, bot, (bob.client.user_id,), encrypted=True)
        await alice.send(room, f"{NAME}: matrix is an open protocol")
        await alice.wait_text(room, self.bot_id, "")
        await alice.send(room, f"{NAME}: matrix")
        await alice.wait_text(room, self.bot_id, "an open protocol")
        await alice.send(room, f"{NAME}: tell {bob_name} the keys work")
        await alice.wait_text(room, self.bot_id, f"I'll tell {bob_name}")
        await alice.send(room, f"{NAME}: pm {bob_name} a private word")
        await bob.join(room)
        await bob.send(room, "hello all")
        await bob.wait_text(room, self.bot_id, "the keys work")
        # The private memo goes to a direct room the bot makes with bob.
        await wait_until(lambda: bool(bob.client.nio.invited_rooms), "the bot's direct room")
        direct = next(iter(bob.client.nio.invited_rooms))
        await bob.join(direct)
        await bob.wait_text(direct, self.bot_id, "a private word")
        # In the direct room, factoids without addressing.
        await bob.send(direct, "matrix")
        await bob.wait_text(direct, self.bot_id, "an open protocol")
        self.assertEqual(alice.undecrypted + bob.undecrypted, [])
