"""An IRC sender's connection is one person's session the bot follows (through nick changes,
until a quit, leaving its sight or a reconnect), so an authentication lasts for that person
only: a stranger's ``logout`` leaves the admin authenticated, and a newcomer with the
admin's old nick!user@host after a quit is not authenticated. Unit tests over a wire, and
the same against a real ngircd with several clients."""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from botcore.event import Event
from tests.sources.irc_harness import Wire, make_source
from tests.sources.test_irc_integration import (
    CHANNEL,
    NICK,
    IRCIntegrationTestCase,
    wait_until,
)


class SessionTests(SynchronousTestCase):
    """The sender's connection as the protocol gives it."""

    def setUp(self) -> None:
        self.source = make_source()
        self.wire = Wire(self.source)
        self.wire.register()
        self.wire.join("#chan", "@bot alice")
        self.source.take_events()

    def say(self, prefix: str, text: str = "hi") -> Event:
        self.wire.receive(f":{prefix} PRIVMSG bot :{text}")
        (event,) = [e for e in self.source.take_events() if e.type == "message"]
        return event

    def test_followed_through_nick_change_until_quit(self) -> None:
        """A member's connection stays the same across messages and their nick change;
        after a quit, the same nick!user@host is someone else."""
        first = self.say("alice!a@h")
        self.assertTrue(first.data["connection_followed"])
        self.assertEqual(self.say("alice!a@h").sender.connection, first.sender.connection)
        self.wire.receive(":alice!a@h NICK alicia")
        self.assertEqual(self.say("alicia!a@h").sender.connection, first.sender.connection)
        self.wire.receive(":alicia!a@h NICK alice", ":alice!a@h QUIT :bye")
        self.wire.receive(":alice!a@h JOIN #chan")
        again = self.say("alice!a@h")
        self.assertTrue(again.data["connection_followed"])
        self.assertNotEqual(again.sender.connection, first.sender.connection)

    def test_two_people_two_connections(self) -> None:
        """Two members have different connections; one who took the other's old nick
        does not get the other's."""
        self.wire.receive(":bob!b@h JOIN #chan")
        alice, bob = self.say("alice!a@h"), self.say("bob!b@h")
        self.assertNotEqual(alice.sender.connection, bob.sender.connection)
        self.wire.receive(":alice!a@h NICK alicia", ":bob!b@h NICK alice")
        self.assertEqual(self.say("alice!b@h").sender.connection, bob.sender.connection)

    def test_reconnect_starts_new_sessions(self) -> None:
        """After the bot reconnects nobody keeps a connection from before."""
        before = self.say("alice!a@h")
        self.wire.lose()
        wire = Wire(self.source)
        wire.register()
        wire.join("#chan", "@bot alice")
        wire.receive(":alice!a@h PRIVMSG bot :hi")
        (after,) = [e for e in self.source.take_events() if e.type == "message"]
        self.assertNotEqual(after.sender.connection, before.sender.connection)

    def test_unseen_sender_not_followed(self) -> None:
        """Someone who shares no channel with the bot is not followed (their quit would
        go unseen): their connection names their user@host, for counting failures."""
        event = self.say("zed!z@elsewhere")
        self.assertFalse(event.data["connection_followed"])
        self.assertEqual(event.sender.connection, "irc/z@elsewhere")


SECRET = "correct-horse-battery-staple"


class AuthenticationOverNgircdTests(IRCIntegrationTestCase):
    """The identity plugin behind a real IRC server, with several real clients."""

    async def start(self) -> None:
        await self.start_bot()
        await self.bot.plugins.load_plugin("identity")

    async def ask(self, client, text: str, expect: str) -> str:  # type: ignore[no-untyped-def]
        start = len(client.lines)
        client.send(f"PRIVMSG {NICK} :{text}")
        return await client.wait_for(expect, since=start)

    async def test_logout_and_quit_bound_to_one_connection(self) -> None:
        """The admin authenticates; a stranger's logout does not end it; after the admin
        quits, a new client with the same nick!user@host is not authenticated."""
        await self.start()
        admin = await self.client("admin")
        mallory = await self.client("mallory")
        await self.ask(admin, f"create account boss password {SECRET}", "Created account boss")
        await self.ask(admin, "logout", "PRIVMSG admin :")
        await self.ask(admin, "who am I", "boss (not authenticated)")
        await self.ask(admin, f"auth {SECRET}", "now authenticated")
        await self.ask(admin, "who am I", "boss (authenticated)")
        await self.ask(mallory, "logout", "PRIVMSG mallory :")
        await self.ask(admin, "who am I", "boss (authenticated)")
        admin.send("QUIT :bye")
        await admin.lost
        protocol = self.source.protocol
        await wait_until(lambda: "admin" not in protocol.users, "the bot to see admin quit")
        again = await self.client("admin")
        await self.ask(again, "who am I", "boss (not authenticated)")

    async def test_sender_outside_channels_authenticated_for_one_message(self) -> None:
        """Someone who shares no channel with the bot is told their authentication lasts
        for that message only, and the next one is not authenticated."""
        await self.start()
        carol = await self.client("carol", join=None)
        await self.ask(carol, f"create account carol password {SECRET}", "Created account")
        await self.ask(carol, f"auth {SECRET}", "only for this message")
        await self.ask(carol, "who am I", "carol (not authenticated)")
        self.assertNotIn(CHANNEL, [line for line in carol.lines if " JOIN " in line])
