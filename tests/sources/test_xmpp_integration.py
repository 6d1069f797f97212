"""The XMPP source against a real Prosody started on a free loopback port: STARTTLS with
the test certificate, SASL SCRAM, echo in private and in a room, replies in order, long
replies split, occupants, kicks, invites, and reconnection after a server restart."""

from __future__ import annotations

import configparser
import itertools
import shutil
import tempfile
from pathlib import Path
from typing import Any, ClassVar

from twisted.internet import reactor, task
from twisted.internet.defer import Deferred, ensureDeferred
from twisted.trial.unittest import TestCase
from twisted.words.xish import domish

from botcore.bot import Bot
from botcore.event import Event, EventType
from botcore.processor import Processor, handler, match
from botcore.settings import read_config
from tests.sources import xmpp_harness
from tests.sources.xmpp_harness import (
    DOMAIN,
    MUC,
    SID,
    WAIT,
    XMPPClient,
    child,
    room_id,
    sent_with_id,
    shown,
)

NICK = "testbot"
LONG_TEXT = " ".join(f"wörd{i:03d}€" for i in range(300))[:3000]
USERS = {"bot": "botpass", "alice": "alicepass", "bob": "bobpass"}


class Testing(Processor):
    """Test commands: ``long`` answers LONG_TEXT; every state event is remembered."""

    @match("long")
    def long(self, event: Event) -> None:
        event.addresponse(LONG_TEXT, address=False)

    @match("whoami")
    def whoami(self, event: Event) -> None:
        event.addresponse(f"id={event.who.id} nick={event.who.nick}", address=False)


class Model(Processor):
    """Message-model commands: ``ping`` is answered (a reply to it); ``thumbs`` reacts;
    ``work`` answers, then corrects that answer; ``oops`` answers, then retracts it."""

    @match("ping")
    def ping(self, event: Event) -> None:
        event.addresponse("pong")

    @match("thumbs")
    def thumbs(self, event: Event) -> None:
        event.react("\N{THUMBS UP SIGN}")

    @match("work")
    def work(self, event: Event) -> None:
        first = event.addresponse("working...", address=False)
        # Later: its id in the room is learnt from the room's reflection of it.
        self.bot.call_later(
            0.3,
            lambda later: later.addresponse(
                "done", kind="edit", refers_to=first.id, address=False
            ),
            event,
        )

    @match("oops")
    def oops(self, event: Event) -> None:
        first = event.addresponse("a mistake", address=False)
        self.bot.call_later(0.3, lambda later: later.delete(first.id), event)


class ModelWatcher(Processor):
    """Remembers every edit, reaction and deletion that reaches the chain."""

    event_types = frozenset({EventType.EDIT, EventType.REACTION, EventType.DELETE})
    addressed = False
    seen: ClassVar[list[Event]] = []

    @handler
    def remember(self, event: Event) -> None:
        ModelWatcher.seen.append(event)


class Watcher(Processor):
    """Remembers every state, invite and source event (in the test's class list)."""

    event_types = frozenset({EventType.STATE, EventType.INVITE, EventType.SOURCE})
    addressed = False
    processed = True
    seen: ClassVar[list[Event]] = []

    @handler
    def remember(self, event: Event) -> None:
        Watcher.seen.append(event)


async def wait_until(predicate: Any, what: str, timeout: float = WAIT) -> None:
    deadline = reactor.seconds() + timeout
    while not predicate():
        if reactor.seconds() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await task.deferLater(reactor, 0.02, lambda: None)


#: Numbers for each test's rooms.
_TAGS = itertools.count(1)


class XMPPIntegrationTestCase(TestCase):
    skip = xmpp_harness.skip_reason()
    timeout = 4 * WAIT

    #: Whether the server speaks only TLS 1.2 (where SCRAM-SHA-1-PLUS is offered).
    tls12 = False

    def setUp(self) -> None:
        # One server for the whole run (writing and starting one takes about 0.7 s; it
        # is stopped at exit); every test has rooms of its own, so nothing one test
        # leaves behind reaches the next.
        self.server = xmpp_harness.shared_server(USERS, tls12=self.tls12)
        self.tag = f"t{next(_TAGS)}"
        #: The test's room, and the log as it was when the test began.
        self.room = f"{self.tag}@{MUC}"
        self.log_start = self.server.log_size()
        self.clients: list[XMPPClient] = []
        self.bot: Bot | None = None
        Watcher.seen = []
        ModelWatcher.seen = []

    def tearDown(self) -> Deferred[None]:
        return ensureDeferred(self._teardown())

    async def _teardown(self) -> None:
        if self.bot is not None and self.bot.running:
            await self.bot.stopService()
        # Gone from the server before the next test logs in with the same JIDs.
        for c in self.clients:
            await c.close()

    def other(self, name: str) -> str:
        """Another room of this test's own."""
        return f"{self.tag}-{name}@{MUC}"

    def server_log(self) -> str:
        """What the server logged since the test began."""
        return self.server.log_since(self.log_start)

    async def start_bot_unready(self, **options: str) -> Bot:
        """Start the bot without waiting for it to log in."""
        return await self.start_bot(wait=False, rooms="", **options)

    async def start_bot(self, load: str = "core, basic", wait: bool = True, **options: str) -> Bot:
        directory = Path(tempfile.mkdtemp(prefix="botcore-xmpp-"))
        self.addCleanup(shutil.rmtree, directory, True)
        source = {
            "type": "xmpp",
            "jid": f"bot@{DOMAIN}",
            "password": USERS["bot"],
            "server": f"tcp:127.0.0.1:{self.server.port}",
            "ca_file": self.server.ca_file,
            "nick": NICK,
            "rooms": self.room,
            "reconnect_delay": "0.1",
            "reconnect_max_delay": "0.5",
            "rejoin_delay": "0.2",
            **options,
        }
        parser = configparser.ConfigParser(interpolation=None)
        parser.optionxform = str  # type: ignore[assignment,method-assign]
        parser.read_dict(
            {
                "bot": {"name": NICK, "autoload": "no", "load": load},
                "database:main": {"url": f"sqlite:///{directory / 'bot.sqlite'}"},
                "plugin:core": {"limit_time": "0"},
                "source:xmpp": source,
            }
        )
        path = directory / "bot.ini"
        with open(path, "w", encoding="utf-8") as handle:
            parser.write(handle)
        bot = Bot(read_config(path, environ={}))
        bot.plugins.loaded["testing"] = [
            Testing("testing", bot, {}),
            Model("testing", bot, {}),
            Watcher("testing", bot, {}),
            ModelWatcher("testing", bot, {}),
        ]
        self.bot = bot
        await bot.startService()
        first = options.get("rooms", self.room)
        if not wait:
            return bot
        if first:
            await wait_until(lambda: self.joined(first), "the bot to join " + first)
        else:
            await wait_until(lambda: self.source.state == "connected", "the bot to log in")
        return bot

    @property
    def source(self) -> Any:
        assert self.bot is not None
        return self.bot.get_source("xmpp")

    def joined(self, room: str) -> bool:
        connection = self.source.connection
        return (
            connection is not None and room in connection.rooms and connection.rooms[room].joined
        )

    async def client(self, user: str, resource: str = "test", room: str | None = "") -> XMPPClient:
        c = XMPPClient(self.server, user, USERS[user], resource)
        self.clients.append(c)
        await c.connect(reactor)
        if room == "":
            room = self.room
        if room:
            await c.join(room, user)
        return c


class PrivateTests(XMPPIntegrationTestCase):
    async def test_echo_in_private_back_to_the_full_jid(self) -> None:
        """A private echo is answered to the full JID (resource) that wrote, over SCRAM."""
        await self.start_bot(rooms="")
        alice = await self.client("alice", room=None)
        other = await self.client("alice", resource="phone", room=None)
        alice.message(f"bot@{DOMAIN}", "echo just for you")
        reply = await alice.wait_body("just for you")
        self.assertEqual(reply["to"], f"alice@{DOMAIN}/test")
        self.assertEqual(reply["type"], "chat")
        self.assertEqual(other.bodies(), [])
        alice.message(f"bot@{DOMAIN}", "whoami")
        reply = await alice.wait_body("id=")
        self.assertEqual(str(child(reply, "body")), f"id=alice@{DOMAIN} nick=alice")
        self.assertIn("Authenticated as bot@localhost", self.server_log())
        self.assertEqual(self.source.sasl_mechanism, "SCRAM-SHA-1")

    async def test_chat_states_and_garbage_ignored(self) -> None:
        """Chat states, bodiless and malformed stanzas get no answer and break nothing."""
        await self.start_bot(rooms="")
        alice = await self.client("alice", room=None)
        composing = domish.Element((None, "message"))
        composing["to"] = f"bot@{DOMAIN}"
        composing["type"] = "chat"
        composing.addElement(("http://jabber.org/protocol/chatstates", "composing"))
        alice.send(composing)
        alice.send(
            f"<message to='bot@{DOMAIN}' type='chat'><x xmlns='jabber:x:conference'/></message>"
        )
        alice.send(f"<iq to='bot@{DOMAIN}/botcore' type='get' id='q1'><query xmlns='x:y'/></iq>")
        await alice.wait_for(lambda s: s.name == "iq" and s.getAttribute("id") == "q1")
        alice.message(f"bot@{DOMAIN}", "echo still here")
        await alice.wait_body("still here")
        self.assertEqual(alice.bodies(), ["still here"])


class RoomTests(XMPPIntegrationTestCase):
    async def test_echo_in_room_and_in_order(self) -> None:
        """In a room the bot answers when addressed; a second occupant sees twenty replies
        in order; the room's history replay at join is not answered."""
        alice = await self.client("alice")
        alice.message(self.room, f"{NICK}: echo from the past", kind="groupchat")
        await alice.wait_for(lambda s: "from the past" in str(child(s, "body") or ""))
        await self.start_bot()
        bob = await self.client("bob")
        for i in range(20):
            alice.message(self.room, f"{NICK}: echo number {i:02d}", kind="groupchat")
        await bob.wait_for(
            lambda s: s.getAttribute("from") == f"{self.room}/{NICK}" and shown(s) == "number 19"
        )
        seen = [b for b in bob.bodies(sender=f"{self.room}/{NICK}") if b.startswith("number")]
        self.assertEqual(seen, [f"number {i:02d}" for i in range(20)])
        self.assertNotIn("from the past", alice.bodies(sender=f"{self.room}/{NICK}"))

    async def test_factoid_taught_in_room_answered_in_private(self) -> None:
        """A factoid taught in the room is answered there and in private."""
        await self.start_bot(load="core, basic, factoid")
        alice = await self.client("alice")
        alice.message(self.room, f"{NICK}: prosody is an XMPP server", kind="groupchat")
        await alice.wait_for(
            lambda s: (
                s.getAttribute("from") == f"{self.room}/{NICK}" and child(s, "body") is not None
            )
        )
        alice.message(self.room, f"{NICK}: prosody?", kind="groupchat")
        await alice.wait_body("an XMPP server")
        alice.message(f"bot@{DOMAIN}", "prosody?")
        reply = await alice.wait_for(
            lambda s: s.getAttribute("type") == "chat" and "XMPP server" in str(child(s, "body"))
        )
        self.assertEqual(reply["to"], f"alice@{DOMAIN}/test")

    async def test_admin_join_and_say(self) -> None:
        """irc_admin's join and say work on XMPP rooms."""
        await self.start_bot(load="core, basic, irc_admin", permissions="+sources")
        alice = await self.client("alice", room=self.other("admin"))
        alice.message(f"bot@{DOMAIN}", "join " + self.other("admin"))
        await wait_until(lambda: self.joined(self.other("admin")), "the bot to join")
        alice.message(f"bot@{DOMAIN}", f"say in {self.other('admin')} hello room")
        await alice.wait_for(
            lambda s: (
                s.getAttribute("from") == f"{self.other('admin')}/{NICK}"
                and str(child(s, "body")) == "hello room"
            )
        )

    async def test_long_reply_split_cleanly(self) -> None:
        """A 3,000-character reply arrives whole, in messages within message_length."""
        await self.start_bot(message_length="500", max_messages="10")
        alice = await self.client("alice")
        start = len(alice.stanzas)
        alice.message(self.room, f"{NICK}: long", kind="groupchat")
        await alice.wait_for(
            lambda s: (
                s.name == "message"
                and child(s, "body") is not None
                and str(child(s, "body")).endswith(LONG_TEXT[-20:])
            ),
            since=start,
        )
        pieces = alice.bodies(start, sender=f"{self.room}/{NICK}")
        self.assertGreater(len(pieces), 5)
        self.assertEqual(" ".join(pieces), LONG_TEXT)
        self.assertLessEqual(max(len(p.encode()) for p in pieces), 500)

    async def test_occupants_tracked_and_identity(self) -> None:
        """Joins and parts of others are state events; in a non-anonymous room the bare
        JID is the sender's id."""
        await self.start_bot()
        bob = await self.client("bob")
        await wait_until(lambda: "bob" in self.source.members(self.room), "bob in members")
        await wait_until(
            lambda: any(e.data.get("kind") == "join" for e in Watcher.seen), "a join event"
        )
        join = next(e for e in Watcher.seen if e.data.get("kind") == "join")
        self.assertEqual(join.channel, self.room)
        self.assertEqual(join.who.nick, "bob")
        bob.message(self.room, f"{NICK}: whoami", kind="groupchat")
        reply = await bob.wait_body("id=")
        # Prosody's default rooms are semi-anonymous to non-moderators, but the bot
        # joins an existing room as a participant: the nick alone is what it knows,
        # unless it created the room (then it is owner and sees real JIDs).
        self.assertIn(shown(reply), (f"id={self.room}/bob nick=bob", f"id=bob@{DOMAIN} nick=bob"))
        await bob.close()
        await wait_until(
            lambda: any(e.data.get("kind") == "part" for e in Watcher.seen), "a part event"
        )

    async def test_nick_conflict_gets_alternate(self) -> None:
        """With its nick taken in the room the bot joins as nick_, which is then its
        nick: it answers to it, and its own messages under it are not taken for others'."""
        squatter = await self.client("alice", room=None)
        await squatter.join(self.room, NICK)
        await self.start_bot(nick="helper")
        self.assertEqual(self.source.connection.rooms[self.room].nick, "helper")
        other = self.other("taken")
        await squatter.join(other, "helper")
        self.source.join(other)
        await wait_until(lambda: self.joined(other), "the bot to join " + other)
        self.assertEqual(self.source.connection.rooms[other].nick, "helper_")
        self.assertEqual(self.source.nick, "helper_")
        start = len(squatter.stanzas)
        squatter.message(other, "helper_: echo under my new name", kind="groupchat")
        await squatter.wait_for(
            lambda s: s.getAttribute("from") == f"{other}/helper_" and shown(s) is not None,
            since=start,
        )
        answers = squatter.bodies(start, sender=f"{other}/helper_")
        self.assertEqual(answers, ["under my new name"])

    async def test_rejoin_after_kick(self) -> None:
        """Kicked by a moderator, the bot rejoins after rejoin_delay."""
        owner = await self.client("alice", room=None)
        await owner.join(self.other("kick"), "alice")
        await self.start_bot(rooms=self.other("kick"))
        await wait_until(lambda: self.joined(self.other("kick")), "join")
        iq = domish.Element((None, "iq"))
        iq["to"] = self.other("kick")
        iq["type"] = "set"
        iq["id"] = "kick1"
        item = iq.addElement(("http://jabber.org/protocol/muc#admin", "query")).addElement("item")
        item["nick"] = NICK
        item["role"] = "none"
        owner.send(iq)
        await wait_until(
            lambda: any(
                e.data.get("state") == "left" and e.data.get("kicked") for e in Watcher.seen
            ),
            "the kick",
        )
        await wait_until(lambda: self.joined(self.other("kick")), "the rejoin")

    async def test_invite_followed(self) -> None:
        """A mediated invite is an invite event and, with follow_invites, joined."""
        await self.start_bot(follow_invites="always")
        alice = await self.client("alice", room=self.other("other"))
        invite = domish.Element((None, "message"))
        invite["to"] = self.other("other")
        x = invite.addElement(("http://jabber.org/protocol/muc#user", "x"))
        x.addElement("invite")["to"] = f"bot@{DOMAIN}"
        alice.send(invite)
        await wait_until(lambda: self.joined(self.other("other")), "the bot to follow the invite")
        # The join is the source's; the event reaches the chain's Watcher on a worker.
        invites = lambda: [e for e in Watcher.seen if e.type == EventType.INVITE]  # noqa: E731
        await wait_until(lambda: bool(invites()), "the invite event to be processed")
        (event,) = invites()
        self.assertEqual(event.data["channel"], self.other("other"))


class LoginTests(XMPPIntegrationTestCase):
    async def test_untrusted_certificate_refused(self) -> None:
        """Without the test CA the server's self-signed certificate is refused: the bot
        never logs in (no password sent) and keeps retrying."""
        bot = await self.start_bot_unready(ca_file="")
        await wait_until(lambda: self.source.failures >= 2, "failed attempts")
        self.assertEqual(self.source.connection, None)
        self.assertNotIn("Authenticated as bot", self.server_log())
        self.assertTrue(bot.running)

    async def test_wrong_password_backs_off(self) -> None:
        """A wrong password fails the login, and the bot retries with backoff."""
        await self.start_bot_unready(password="not the password")
        await wait_until(lambda: self.source.failures >= 2, "failed attempts")
        self.assertIsNone(self.source.connection)
        self.assertGreater(self.source.retry_delay(0), 0.05)

    async def test_plain_only_inside_tls(self) -> None:
        """Restricted to PLAIN, the bot still logs in (inside TLS)."""
        await self.start_bot(rooms="", mechanisms="PLAIN")
        self.assertEqual(self.source.sasl_mechanism, "PLAIN")


class ChannelBindingTests(XMPPIntegrationTestCase):
    tls12 = True

    async def test_scram_plus_over_tls12(self) -> None:
        """Where the server offers SCRAM-SHA-1-PLUS (Prosody, over TLS 1.2), the bot binds
        its login to the TLS channel (tls-unique) and Prosody accepts it."""
        await self.start_bot(rooms="")
        self.assertEqual(self.source.sasl_mechanism, "SCRAM-SHA-1-PLUS")
        alice = await self.client("alice", room=None)
        alice.message(f"bot@{DOMAIN}", "echo bound")
        await alice.wait_body("bound")


class ReconnectTests(XMPPIntegrationTestCase):
    async def test_reconnects_and_rejoins_after_server_restart(self) -> None:
        """Prosody is killed and restarted; the bot logs in again and rejoins the room."""
        await self.start_bot()
        source = self.source
        self.assertEqual(source.connections, 1)
        self.server.kill()
        await wait_until(lambda: source.state == "reconnecting", "the bot to notice")
        self.server.start()
        await wait_until(lambda: source.connections >= 2 and self.joined(self.room), "rejoin")
        alice = await self.client("alice")
        alice.message(self.room, f"{NICK}: echo back again", kind="groupchat")
        await alice.wait_body("back again")


class MemoTests(XMPPIntegrationTestCase):
    async def test_memo_delivered_when_they_speak(self) -> None:
        """A memo left in the room for bob is said to him there when he next speaks; a
        private one goes to him as a private message from the room."""
        await self.start_bot(load="core, basic, memo")
        alice = await self.client("alice")
        alice.message(self.room, f"{NICK}: tell bob the cake is ready", kind="groupchat")
        alice.message(self.room, f"{NICK}: pm bob the secret ingredient", kind="groupchat")
        await alice.wait_for(self.from_bot(lambda s: "bob" in (shown(s) or "")))
        await alice.wait_for(
            self.from_bot(lambda s: "bob" in (shown(s) or "")), since=len(alice.stanzas)
        )
        bob = await self.client("bob")
        bob.message(self.room, "hello everyone", kind="groupchat")
        public = await bob.wait_for(self.from_bot(lambda s: "cake" in (shown(s) or "")))
        self.assertRegex(shown(public), r"^bob: alice said .*: the cake is ready$")
        private = await bob.wait_for(
            lambda s: s.getAttribute("type") == "chat" and "secret" in (shown(s) or "")
        )
        self.assertEqual(private["from"], f"{self.room}/{NICK}")
        # The private memo was never said in the room.
        self.assertNotIn("secret", " ".join(alice.bodies(sender=f"{self.room}/{NICK}")))

    def from_bot(self, condition: Any) -> Any:
        return lambda s: (
            s.name == "message"
            and s.getAttribute("from") == f"{self.room}/{NICK}"
            and s.getAttribute("type") == "groupchat"
            and condition(s)
        )


class ModelTests(XMPPIntegrationTestCase):
    """The message model over Prosody (XEP-0359 ids by mod_muc_mam, XEP-0461, XEP-0444,
    XEP-0308, XEP-0424), seen by a second client."""

    async def own_reflection(self, c: XMPPClient, own: str) -> domish.Element:
        return await c.wait_for(
            lambda s: (
                s.name == "message"
                and s.getAttribute("from") == f"{self.room}/{c.jid.user}"
                and s.getAttribute("id") == own
            ),
            since=0,
        )

    def from_bot(self, condition: Any) -> Any:
        return lambda s: (
            s.name == "message"
            and s.getAttribute("from") == f"{self.room}/{NICK}"
            and condition(s)
        )

    async def test_reply_reaction_correction_retraction_in_room(self) -> None:
        """Alice sees the bot's answer as an XEP-0461 reply to her message (by the room's
        stanza-id, with her as author), its reaction to her message, a correction of its
        own message, and its retraction."""
        await self.start_bot()
        alice = await self.client("alice")
        sent_with_id(alice, self.room, f"{NICK}: ping", "a-1", "groupchat")
        mine = room_id(await self.own_reflection(alice, "a-1"), self.room)
        self.assertIsNotNone(mine, "Prosody gave no stanza-id: is mod_muc_mam loaded?")
        pong = await alice.wait_for(self.from_bot(lambda s: "pong" in str(child(s, "body"))))
        reply = child(pong, "reply", "urn:xmpp:reply:0")
        self.assertIsNotNone(reply, pong.toXml())
        self.assertEqual((reply["id"], reply["to"]), (mine, f"{self.room}/alice"))
        self.assertEqual(shown(pong), "alice: pong")
        self.assertEqual(str(child(pong, "body")), f"> {NICK}: ping\nalice: pong")
        self.assertIsNotNone(child(pong, "origin-id", SID))

        sent_with_id(alice, self.room, f"{NICK}: thumbs", "a-2", "groupchat")
        thumbs = room_id(await self.own_reflection(alice, "a-2"), self.room)
        reaction = await alice.wait_for(
            self.from_bot(lambda s: child(s, "reactions", "urn:xmpp:reactions:0") is not None)
        )
        found = child(reaction, "reactions", "urn:xmpp:reactions:0")
        self.assertEqual(
            (found["id"], str(child(found, "reaction"))), (thumbs, "\N{THUMBS UP SIGN}")
        )

        alice.message(self.room, f"{NICK}: work", kind="groupchat")
        working = await alice.wait_for(self.from_bot(lambda s: shown(s) == "working..."))
        correction = await alice.wait_for(
            self.from_bot(lambda s: child(s, "replace", "urn:xmpp:message-correct:0") is not None)
        )
        replaced = child(correction, "replace", "urn:xmpp:message-correct:0")
        self.assertEqual(replaced["id"], child(working, "origin-id", SID)["id"])
        self.assertEqual(str(child(correction, "body")), "done")

        alice.message(self.room, f"{NICK}: oops", kind="groupchat")
        mistake = await alice.wait_for(self.from_bot(lambda s: shown(s) == "a mistake"))
        retraction = await alice.wait_for(
            self.from_bot(lambda s: child(s, "retract", "urn:xmpp:message-retract:1") is not None)
        )
        self.assertEqual(
            child(retraction, "retract", "urn:xmpp:message-retract:1")["id"],
            room_id(mistake, self.room),
        )
        # The bot took none of its own messages (reflected by the room) for someone else's.
        self.assertEqual(ModelWatcher.seen, [])

    async def test_incoming_correction_and_reaction_are_events(self) -> None:
        """Alice's correction of her room message is an EDIT event of its room id, her
        reaction a REACTION event, her retraction a DELETE event; in private, a reply
        names her message's own id."""
        await self.start_bot()
        alice = await self.client("alice")
        sent_with_id(alice, self.room, "helo everyone", "a-1", "groupchat")
        original = room_id(await self.own_reflection(alice, "a-1"), self.room)
        replace = domish.Element(("urn:xmpp:message-correct:0", "replace"))
        replace["id"] = "a-1"
        sent_with_id(alice, self.room, "hello everyone", "a-2", "groupchat", replace)
        reactions = domish.Element(("urn:xmpp:reactions:0", "reactions"))
        reactions["id"] = str(original)
        reactions.addElement("reaction", content="\N{HEAVY BLACK HEART}")
        reacting = domish.Element((None, "message"))
        reacting["to"] = self.room
        reacting["type"] = "groupchat"
        reacting.addChild(reactions)
        alice.send(reacting)
        retracting = domish.Element((None, "message"))
        retracting["to"] = self.room
        retracting["type"] = "groupchat"
        retracting.addElement(("urn:xmpp:message-retract:1", "retract"))["id"] = str(original)
        alice.send(retracting)
        await wait_until(lambda: len(ModelWatcher.seen) >= 3, "the edit, reaction and delete")
        edit, reaction, delete = ModelWatcher.seen
        self.assertEqual((delete.type, delete.refers_to), (EventType.DELETE, original))
        self.assertEqual(
            (edit.type, edit.message.raw, edit.refers_to, edit.who.nick),
            (EventType.EDIT, "hello everyone", original, "alice"),
        )
        self.assertEqual(
            (reaction.type, reaction.reaction, reaction.refers_to),
            (EventType.REACTION, "\N{HEAVY BLACK HEART}", original),
        )
        sent_with_id(alice, f"bot@{DOMAIN}", "ping", "p-1", "chat")
        pong = await alice.wait_body("pong")
        self.assertEqual(child(pong, "reply", "urn:xmpp:reply:0")["id"], "p-1")
