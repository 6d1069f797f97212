"""The IRC protocol on a StringTransport and a Clock: registration (CAP, SASL, NickServ),
nicks, keepalive, channels and members, events, CTCP, and sending."""

from __future__ import annotations

import base64

from twisted.internet.task import Clock
from twisted.logger import LogLevel, globalLogPublisher
from twisted.trial.unittest import SynchronousTestCase

from botcore.event import EventType
from botcore.sources.irc import protocol as protocol_module
from tests.sources.irc_harness import Wire, make_source


class WireTestCase(SynchronousTestCase):
    """A recording source on a Clock and a wire to its protocol."""

    options: dict = {}

    def setUp(self) -> None:
        self.clock = Clock()
        self.logged: list[dict] = []
        globalLogPublisher.addObserver(self.logged.append)
        self.addCleanup(globalLogPublisher.removeObserver, self.logged.append)
        self.source = make_source(self.clock, **self.options)
        self.wire = Wire(self.source)
        self.protocol = self.wire.protocol

    def tearDown(self) -> None:
        self.wire.lose()
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def connect(self, **options: object) -> Wire:
        """Replace the wire by one to a source with different options."""
        self.wire.lose()
        self.source = make_source(self.clock, **options)
        self.wire = Wire(self.source)
        self.protocol = self.wire.protocol
        return self.wire

    def warnings(self) -> list[dict]:
        return [e for e in self.logged if e.get("log_level") in (LogLevel.warn, LogLevel.error)]

    def log_text(self) -> str:
        return "\n".join(
            str(e.get("log_format", "")) + " " + " ".join(map(str, e.values()))
            for e in self.logged
        )


class RegistrationTests(WireTestCase):
    def test_opening_lines(self) -> None:
        """On connect the bot asks for capabilities, then sends NICK and USER."""
        self.assertEqual(self.wire.sent(), ["CAP LS 302", "NICK bot", "USER botcore 0 * :botcore"])
        self.assertEqual(self.source.protocol, self.protocol)

    def test_server_password_first(self) -> None:
        """A server password is sent first, as PASS."""
        wire = self.connect(server_password="sekrit pass")
        self.assertEqual(wire.sent()[0], "PASS :sekrit pass")

    def test_no_wanted_caps_ends_negotiation(self) -> None:
        """When nothing useful is offered the bot ends CAP negotiation at once."""
        self.wire.sent()
        self.wire.receive(":irc.example.net CAP * LS :foo bar=baz")
        self.assertEqual(self.wire.sent(), ["CAP END"])

    def test_requests_offered_caps_across_ls_lines(self) -> None:
        """A multi-line LS is gathered, then only the wanted, offered caps are requested;
        their ACK ends negotiation."""
        self.wire.sent()
        self.wire.receive(
            ":irc.example.net CAP * LS * :multi-prefix foo",
            ":irc.example.net CAP * LS :account-notify extended-join sasl=PLAIN",
        )
        self.assertEqual(self.wire.sent(), ["CAP REQ :multi-prefix account-notify extended-join"])
        self.wire.receive(
            ":irc.example.net CAP bot ACK :multi-prefix account-notify extended-join"
        )
        self.assertEqual(self.wire.sent(), ["CAP END"])
        self.assertEqual(self.protocol.caps, {"multi-prefix", "account-notify", "extended-join"})

    def test_nak_ends_negotiation(self) -> None:
        """A refused request ends negotiation too."""
        self.wire.receive(":irc.example.net CAP * LS :multi-prefix")
        self.wire.sent()
        self.wire.receive(":irc.example.net CAP bot NAK :multi-prefix")
        self.assertEqual(self.wire.sent(), ["CAP END"])
        self.assertEqual(self.protocol.caps, set())

    def test_server_without_cap(self) -> None:
        """A server that does not know CAP registers the bot anyway."""
        self.wire.receive(":irc.example.net 421 bot CAP :Unknown command")
        self.wire.register()
        self.assertTrue(self.protocol.registered)
        self.assertEqual(self.source.state, "connected")

    def test_welcome(self) -> None:
        """The welcome sets the nick the server gave and the bot's own mask, and the source
        says it is connected."""
        self.wire.receive(":irc.example.net 001 bot :Welcome to the network bot!~bot@1.2.3.4")
        self.assertTrue(self.protocol.registered)
        self.assertEqual((self.protocol.own.user, self.protocol.own.host), ("~bot", "1.2.3.4"))
        [event] = self.source.take_events()
        self.assertEqual(event.type, EventType.SOURCE)
        self.assertEqual(event.data["state"], "connected")
        self.assertEqual(event.data["nick"], "bot")

    def test_own_host_learned_by_userhost(self) -> None:
        """When the welcome does not show the mask, USERHOST asks for it."""
        self.wire.sent()
        self.wire.receive(":irc.example.net 001 bot :Welcome to the Libera.Chat network bot")
        self.assertIn("USERHOST bot", self.wire.sent())
        self.wire.receive(":irc.example.net 302 bot :bot=+~bot@user/bot")
        self.assertEqual((self.protocol.own.user, self.protocol.own.host), ("~bot", "user/bot"))

    def test_visible_host(self) -> None:
        """RPL_VISIBLEHOST (a cloak) updates the bot's own host."""
        self.wire.register()
        self.wire.receive(":irc.example.net 396 bot user/bot/cloak :is now your hidden host")
        self.assertEqual(self.protocol.own.host, "user/bot/cloak")

    def test_registration_timeout(self) -> None:
        """A server that never welcomes the bot is dropped after connect_timeout."""
        self.clock.advance(59)
        self.assertFalse(self.wire.transport.disconnected)
        self.clock.advance(1)
        self.assertTrue(self.wire.transport.disconnected)
        self.assertEqual(self.protocol.lost_reason, "registration timed out")

    def test_password_refused(self) -> None:
        """A refused server password is logged as an error, not raised."""
        self.wire.receive(":irc.example.net 464 bot :Password incorrect")
        self.assertIn("refused the server password", self.log_text())


class SASLTests(WireTestCase):
    options = {"account": "botacct", "account_password": "hunter2"}

    def negotiate(self) -> None:
        self.wire.sent()
        self.wire.receive(":irc.example.net CAP * LS :sasl=PLAIN,EXTERNAL")
        self.assertEqual(self.wire.sent(), ["CAP REQ :sasl"])
        self.wire.receive(":irc.example.net CAP bot ACK :sasl")
        self.assertEqual(self.wire.sent(), ["AUTHENTICATE PLAIN"])
        self.wire.receive("AUTHENTICATE +")

    def test_plain_success(self) -> None:
        """SASL PLAIN sends account and password, then ends CAP on success; no NickServ."""
        self.negotiate()
        [payload] = self.wire.sent()
        secret = base64.b64decode(payload.split()[1])
        self.assertEqual(secret, b"botacct\0botacct\0hunter2")
        self.wire.receive(
            ":irc.example.net 900 bot bot!~bot@host botacct :You are now logged in as botacct",
            ":irc.example.net 903 bot :SASL authentication successful",
        )
        self.assertEqual(self.wire.sent(), ["CAP END"])
        self.assertEqual(self.protocol.account, "botacct")
        self.wire.receive(":irc.example.net 001 bot :Welcome bot!~bot@host")
        self.assertFalse([line for line in self.wire.sent() if "NickServ" in line])

    def test_failure_falls_back_to_nickserv(self) -> None:
        """A failed SASL login ends CAP, is logged, and NickServ IDENTIFY follows the
        welcome; the password is never logged."""
        self.negotiate()
        self.wire.sent()
        self.wire.receive(":irc.example.net 904 bot :SASL authentication failed")
        self.assertEqual(self.wire.sent(), ["CAP END"])
        self.wire.receive(":irc.example.net 001 bot :Welcome bot!~bot@host")
        self.assertIn("PRIVMSG NickServ :IDENTIFY botacct hunter2", self.wire.sent())
        self.assertIn("SASL login failed", self.log_text())
        self.assertNotIn("hunter2", self.log_text())

    def authenticate(self, password: str) -> list[str]:
        wire = self.connect(account="a", account_password=password)
        wire.receive(":irc.example.net CAP * LS :sasl=PLAIN", ":irc.example.net CAP bot ACK :sasl")
        wire.sent()
        wire.receive("AUTHENTICATE +")
        return [line.split()[1] for line in wire.sent()]

    def test_long_payload_chunked(self) -> None:
        """Payloads over 400 bytes of base64 go in 400-byte chunks."""
        chunks = self.authenticate("p" * 500)
        self.assertEqual([len(chunk) for chunk in chunks], [400, 272])
        self.assertEqual(base64.b64decode("".join(chunks)), b"a\0a\0" + b"p" * 500)

    def test_exact_multiple_ends_with_plus(self) -> None:
        """A payload of exactly 400 bytes of base64 is followed by AUTHENTICATE +."""
        chunks = self.authenticate("p" * 296)
        self.assertEqual([len(chunk) for chunk in chunks], [400, 1])
        self.assertEqual(chunks[-1], "+")

    def test_other_mechanisms_only(self) -> None:
        """A server offering only EXTERNAL is not asked for SASL; NickServ is used."""
        self.wire.sent()
        self.wire.receive(":irc.example.net CAP * LS :sasl=EXTERNAL")
        self.assertEqual(self.wire.sent(), ["CAP END"])
        self.wire.receive(":irc.example.net 001 bot :Welcome bot!~bot@host")
        self.assertIn("PRIVMSG NickServ :IDENTIFY botacct hunter2", self.wire.sent())

    def test_sasl_switched_off(self) -> None:
        """sasl = no skips SASL even when offered."""
        wire = self.connect(account_password="pw", sasl=False)
        wire.sent()
        wire.receive(":irc.example.net CAP * LS :sasl")
        self.assertEqual(wire.sent(), ["CAP END"])

    def test_no_nickserv(self) -> None:
        """An empty nickserv option means no IDENTIFY."""
        wire = self.connect(account_password="pw", nickserv="")
        wire.register()
        wire.receive(":irc.example.net 421 bot CAP :Unknown command")
        self.assertFalse([line for line in wire.sent() if "IDENTIFY" in line])


class NickTests(WireTestCase):
    options = {"alt_nicks": ["botty"], "regain_interval": 30.0}

    def test_alternates_in_order(self) -> None:
        """A taken nick is replaced by the alternates, then nick_, nick__, nick1, ..."""
        self.wire.sent()
        for expected in ("botty", "bot_", "bot__", "bot1", "bot2"):
            self.wire.receive(":irc.example.net 433 * bot :Nickname is already in use")
            self.assertEqual(self.wire.sent(), [f"NICK {expected}"])

    def test_erroneous_and_unavailable(self) -> None:
        """432 and 437 during registration also move on to the next nick."""
        self.wire.sent()
        self.wire.receive(":irc.example.net 432 * bot :Erroneous nickname")
        self.wire.receive(":irc.example.net 437 * botty :Nick temporarily unavailable")
        self.assertEqual(self.wire.sent(), ["NICK botty", "NICK bot_"])

    def test_regain_by_polling(self) -> None:
        """With an alternate nick the bot polls ISON and takes its nick once it is free."""
        self.wire.receive(":irc.example.net 433 * bot :in use")
        self.wire.register("botty")
        self.assertEqual(self.source.nick, "botty")
        self.clock.advance(30)
        self.assertEqual(self.wire.sent(), ["ISON bot"])
        self.wire.receive(":irc.example.net 303 botty :bot")
        self.assertEqual(self.wire.sent(), [])
        self.clock.advance(30)
        self.wire.sent()
        self.wire.receive(":irc.example.net 303 botty :")
        self.assertEqual(self.wire.sent(), ["NICK bot"])
        self.wire.receive(":botty!~bot@host.example NICK :bot")
        self.assertEqual(self.source.nick, "bot")
        self.assertEqual(
            self.source.take_events()[-1].data, {"state": "nick", "old": "botty", "nick": "bot"}
        )
        self.clock.pump([30.0, 30.0])
        self.assertNotIn("ISON bot", self.wire.sent())

    def test_regain_when_holder_quits(self) -> None:
        """The bot asks for its nick as soon as it sees the holder quit."""
        self.wire.receive(":irc.example.net 433 * bot :in use")
        self.wire.register("botty")
        self.wire.join("#chan", "@botty bot")
        self.wire.sent()
        self.wire.receive(":bot!~x@elsewhere QUIT :bye")
        self.assertEqual(self.wire.sent(), ["NICK bot"])

    def test_regain_when_holder_changes_nick(self) -> None:
        """The bot asks for its nick as soon as it sees the holder change nick."""
        self.wire.receive(":irc.example.net 433 * bot :in use")
        self.wire.register("botty")
        self.wire.join("#chan", "@botty bot")
        self.wire.sent()
        self.wire.receive(":bot!~x@elsewhere NICK :other")
        self.assertEqual(self.wire.sent(), ["NICK bot"])

    def test_taken_after_registration(self) -> None:
        """A refused nick change after registration is logged and changes nothing."""
        self.wire.register()
        self.wire.receive(":irc.example.net 433 bot other :Nickname is already in use")
        self.assertEqual(self.wire.sent(), [])
        self.assertEqual(self.protocol.nickname, "bot")

    def test_set_nick(self) -> None:
        """set_nick sends NICK and makes that the nick to keep."""
        self.wire.register()
        self.source.set_nick("newbot")
        self.assertEqual(self.wire.sent(), ["NICK newbot"])
        self.assertEqual(self.source.wanted_nick, "newbot")
        self.assertRaises(ValueError, self.source.set_nick, "bad nick")

    def test_own_nick_folded_per_change(self) -> None:
        """The bot knows itself under the server's casemapping, following each change of
        nick or CASEMAPPING; its own nick is folded once per change, not for every line
        (counted: folds of its nick while a hundred lines arrive)."""
        self.wire.receive(":irc.example.net 433 * bot :in use")
        self.wire.register("bot[1]")
        self.assertTrue(self.protocol.is_me("BOT{1}"))  # rfc1459: [ is the capital of {
        self.wire.receive(":irc.example.net 005 bot[1] CASEMAPPING=ascii :are supported")
        self.assertTrue(self.protocol.is_me("BOT[1]"))
        self.assertFalse(self.protocol.is_me("bot{1}"))
        self.wire.receive(":bot[1]!~bot@host NICK :Bot~")
        self.assertTrue(self.protocol.is_me("bot~"))
        self.assertFalse(self.protocol.is_me("bot[1]"))
        folded: list[str] = []
        original = protocol_module.irc_lower

        def counting(text: str, casemapping: str = "rfc1459") -> str:
            folded.append(text)
            return original(text, casemapping)

        self.patch(protocol_module, "irc_lower", counting)
        self.wire.join("#chan", "@Bot~ alice")
        self.source.take_events()
        folded.clear()
        self.wire.receive(*[":alice!a@h PRIVMSG #chan :hello"] * 100)
        self.assertEqual(len(self.source.take_events()), 100)
        self.assertNotIn("Bot~", folded)
        self.wire.receive(":Bot~!~bot@host NICK :bot")
        self.assertIn("bot", folded)
        self.assertTrue(self.protocol.is_me("BOT"))


class KeepaliveTests(WireTestCase):
    options = {"ping_interval": 60.0, "ping_timeout": 30.0}

    def test_server_ping_answered(self) -> None:
        """PING is answered with PONG and its token."""
        self.wire.receive("PING :irc.example.net")
        self.assertIn("PONG :irc.example.net", self.wire.sent())

    def test_ping_after_silence_then_timeout(self) -> None:
        """After ping_interval of silence the bot PINGs; with no answer within
        ping_timeout it drops the connection."""
        self.wire.register()
        self.clock.advance(60)
        self.assertEqual(self.wire.sent(), ["PING :botcore"])
        self.clock.advance(29)
        self.assertFalse(self.wire.transport.disconnected)
        self.clock.advance(1)
        self.assertTrue(self.wire.transport.disconnected)
        self.assertEqual(self.protocol.lost_reason, "ping timeout")

    def test_any_data_is_an_answer(self) -> None:
        """Any line from the server cancels the PONG deadline."""
        self.wire.register()
        self.clock.advance(60)
        self.wire.receive(":irc.example.net PONG irc.example.net :botcore")
        self.clock.advance(30)
        self.assertFalse(self.wire.transport.disconnected)

    def test_no_ping_while_busy(self) -> None:
        """A connection that keeps receiving is never PINGed."""
        self.wire.register()
        for _ in range(10):
            self.clock.advance(30)
            self.wire.receive(":a!b@c PRIVMSG #chan :chatter")
        self.assertEqual(self.wire.sent(), [])

    def test_pong_jumps_the_queue(self) -> None:
        """With flood control busy, PONG goes before queued messages."""
        wire = self.connect(flood_rate=1.0, flood_burst=1)
        self.clock.pump([1.0] * 10)
        wire.register()
        wire.sent()
        self.source.say("#chan", "one")
        self.source.say("#chan", "two")
        wire.receive("PING :token")
        self.clock.advance(1)
        self.assertEqual(wire.sent(), ["PRIVMSG #chan :one", "PONG :token"])
        self.clock.advance(1)
        self.assertEqual(wire.sent(), ["PRIVMSG #chan :two"])


class ChannelTests(WireTestCase):
    options = {"channels": ["#chan", "#keyed sekrit"], "rejoin_delay": 10.0}

    def test_joins_configured_channels(self) -> None:
        """After the welcome the bot joins its channels, with keys."""
        self.wire.sent()
        self.wire.receive(":irc.example.net 001 bot :Welcome bot!~bot@host")
        self.assertEqual(self.wire.sent(), ["JOIN #chan", "JOIN #keyed sekrit"])

    def test_own_join_and_names(self) -> None:
        """The bot's JOIN is a 'joined' source event; NAMES fills the member list with
        the server's PREFIX symbols (several with multi-prefix, masks with
        userhost-in-names)."""
        self.wire.register()
        self.source.take_events()
        self.wire.join("#Chan", "@bot ~@owner +voiced alice!a@x.org")
        [event] = self.source.take_events()
        self.assertEqual(
            (event.type, event.data), ("source", {"state": "joined", "channel": "#Chan"})
        )
        self.assertEqual(
            self.source.members("#chan"),
            {"bot": "@", "owner": "~@", "voiced": "+", "alice": ""},
        )
        self.assertEqual(self.protocol.users["alice"].host, "x.org")

    def test_membership_follows_events(self) -> None:
        """JOIN, PART, KICK, QUIT, NICK and MODE keep the member list right."""
        self.wire.register()
        self.wire.join("#chan", "@bot alice bob")
        self.wire.receive(
            ":carol!c@h JOIN #chan",
            ":alice!a@h PART #chan :later",
            ":bob!b@h NICK robert",
            ":bot!~bot@host.example MODE #chan +ovk-v robert carol key robert",
            ":bot!~bot@host.example MODE #chan +lb 10 *!*@spam",
        )
        self.assertEqual(self.source.members("#chan"), {"bot": "@", "carol": "+", "robert": "@"})
        self.wire.receive(":bot!~bot@host.example KICK #chan carol :out", ":robert!b@h QUIT :gone")
        self.assertEqual(self.source.members("#chan"), {"bot": "@"})
        self.assertEqual(set(self.protocol.users), {"bot"})

    def test_state_events(self) -> None:
        """Other people's JOIN, PART, KICK, QUIT and NICK become state events with the
        full sender."""
        self.wire.register()
        self.wire.join("#chan", "@bot alice")
        self.source.take_events()
        self.wire.receive(
            ":bob!b@host JOIN #chan",
            ":alice!a@h NICK alicia",
            ":bob!b@host KICK #chan alicia :behave",
            ":bob!b@host PART #chan :bye",
            ":zed!z@h QUIT :Quit: zzz",
        )
        events = self.source.take_events()
        self.assertEqual([e.type for e in events], [EventType.STATE] * 5)
        self.assertEqual(
            [e.data["kind"] for e in events], ["join", "nick", "kick", "part", "quit"]
        )
        join, nick, kick, part, quit = events
        self.assertEqual((join.sender.id, join.sender.nick), ("bob!b@host", "bob"))
        self.assertEqual((join.channel, join.public), ("#chan", True))
        self.assertEqual(
            (nick.data["old"], nick.data["new"], nick.sender.nick), ("alice", "alicia", "alice")
        )
        self.assertEqual(nick.data["channels"], ["#chan"])
        self.assertEqual((kick.data["kicked"], kick.data["message"]), ("alicia", "behave"))
        self.assertEqual(part.data["message"], "bye")
        self.assertEqual((quit.channel, quit.data["message"]), (None, "Quit: zzz"))

    def test_rejoin_after_kick(self) -> None:
        """Kicked, the bot leaves, says so, and rejoins (with the key) after rejoin_delay."""
        self.wire.register()
        self.wire.join("#keyed")
        self.source.take_events()
        self.wire.receive(":op!o@h KICK #keyed bot :go away")
        [event] = self.source.take_events()
        self.assertEqual(event.data["state"], "left")
        self.assertEqual((event.data["reason"], event.data["by"]), ("kick", "op"))
        self.assertEqual(self.source.members("#keyed"), {})
        self.clock.advance(9.9)
        self.assertEqual(self.wire.sent(), [])
        self.clock.advance(0.1)
        self.assertEqual(self.wire.sent(), ["JOIN #keyed sekrit"])

    def test_no_rejoin_after_part(self) -> None:
        """A channel left on command is not rejoined, even after a kick in between."""
        self.wire.register()
        self.wire.join("#chan")
        self.wire.receive(":op!o@h KICK #chan bot :out")
        self.source.part("#chan", "bye now")
        self.assertEqual(self.wire.sent(), ["PART #chan :bye now"])
        self.clock.advance(30)
        self.assertEqual(self.wire.sent(), [])
        self.assertFalse(self.source.wants_channel("#chan"))

    def test_join_on_command(self) -> None:
        """join() joins now and remembers the channel for reconnects."""
        self.wire.register()
        self.source.join("#new", "k")
        self.assertEqual(self.wire.sent(), ["JOIN #new k"])
        self.assertIn(("#new", "k"), self.source.wanted_channels())

    def test_own_part_is_a_source_event(self) -> None:
        """The bot's own PART is a 'left' source event."""
        self.wire.register()
        self.wire.join("#chan")
        self.source.take_events()
        self.wire.receive(":bot!~bot@host.example PART #chan :bye")
        [event] = self.source.take_events()
        self.assertEqual(
            event.data, {"state": "left", "channel": "#chan", "reason": "part", "message": "bye"}
        )

    def test_invite_ignored_by_default(self) -> None:
        """An invite is an invite event; without follow_invites the bot stays out."""
        self.wire.register()
        self.source.take_events()
        self.wire.receive(":alice!a@h INVITE bot :#party")
        [event] = self.source.take_events()
        self.assertEqual(event.type, EventType.INVITE)
        self.assertEqual((event.data["channel"], event.sender.nick), ("#party", "alice"))
        self.assertTrue(event.addressed)
        self.assertEqual(self.wire.sent(), [])

    def test_invite_followed(self) -> None:
        """With follow_invites the bot joins and keeps the channel."""
        wire = self.connect(follow_invites=True)
        wire.register()
        wire.receive(":alice!a@h INVITE bot :#party")
        self.assertEqual(wire.sent(), ["JOIN #party"])
        self.assertTrue(self.source.wants_channel("#party"))

    def test_join_refused(self) -> None:
        """A refused JOIN is logged as a warning."""
        self.wire.register()
        self.wire.receive(":irc.example.net 474 bot #chan :Cannot join channel (+b)")
        self.assertIn("the bot is banned", self.log_text())


class MessageEventTests(WireTestCase):
    def setUp(self) -> None:
        super().setUp()
        self.wire.register()
        self.wire.join("#Chan", "@bot alice")
        self.source.take_events()

    def test_channel_message(self) -> None:
        """A channel PRIVMSG is a public, not yet addressed, message event in the channel
        (named as the bot knows it), from a sender with the full mask."""
        self.wire.receive(":alice!~al@example.org PRIVMSG #chan :hello bot")
        [event] = self.source.take_events()
        self.assertEqual(event.type, EventType.MESSAGE)
        self.assertEqual((event.channel, event.public, event.addressed), ("#Chan", True, False))
        self.assertEqual(event.message.raw, "hello bot")
        self.assertEqual((event.sender.id, event.sender.nick), ("alice!~al@example.org", "alice"))
        self.assertEqual(
            event.data,
            {"mask": "alice!~al@example.org", "account": None, "connection_followed": True},
        )
        self.assertEqual(event.source, "irc")

    def test_private_message(self) -> None:
        """A private PRIVMSG is addressed and its channel is the sender's nick."""
        self.wire.receive(":alice!~al@example.org PRIVMSG bot :echo hi")
        [event] = self.source.take_events()
        self.assertEqual((event.channel, event.public, event.addressed), ("alice", False, True))

    def test_notice_and_action(self) -> None:
        """NOTICE becomes a notice event and CTCP ACTION an action event."""
        self.wire.receive(
            ":alice!a@h NOTICE #chan :heads up",
            ":alice!a@h PRIVMSG #chan :\x01ACTION waves\x01",
            ":alice!a@h PRIVMSG bot :\x01ACTION whispers",
        )
        events = self.source.take_events()
        self.assertEqual([e.type for e in events], ["notice", "action", "action"])
        self.assertEqual([e.message.raw for e in events], ["heads up", "waves", "whispers"])

    def test_statusmsg(self) -> None:
        """A message to the channel's ops (@#chan) is a message in the channel."""
        self.wire.receive(":alice!a@h PRIVMSG @#chan :ops only")
        [event] = self.source.take_events()
        self.assertEqual(event.channel, "#Chan")

    def test_ignored_lines(self) -> None:
        """Server notices, messages to others, the bot's own echo and empty text make
        no event."""
        self.wire.receive(
            ":irc.example.net NOTICE * :*** Looking up your hostname",
            ":irc.example.net NOTICE bot :server says hi",
            ":alice!a@h PRIVMSG someoneelse :misrouted",
            ":bot!~bot@host.example PRIVMSG #chan :my own echo",
            ":alice!a@h PRIVMSG #chan :",
            ":alice!a@h PRIVMSG #chan",
        )
        self.assertEqual(self.source.take_events(), [])

    def test_account_tag(self) -> None:
        """With account-tag, the sender's id is the account the server vouches for."""
        self.wire.receive("@account=alice_acct :alice!a@h PRIVMSG #chan :hi")
        [event] = self.source.take_events()
        self.assertEqual(event.sender.id, "alice_acct")
        self.assertEqual(event.data["account"], "alice_acct")

    def test_account_from_extended_join_and_notify(self) -> None:
        """With account-notify, accounts from extended-join and ACCOUNT are used (and a
        logout goes back to the mask)."""
        self.protocol.caps |= {"account-notify", "extended-join"}
        self.wire.receive(
            ":carol!c@h JOIN #chan carolacct :Carol",
            ":carol!c@h PRIVMSG #chan :one",
            ":carol!c@h ACCOUNT *",
            ":carol!c@h PRIVMSG #chan :two",
            ":carol!c@h ACCOUNT carol2",
            ":carol!c@h PRIVMSG #chan :three",
        )
        ids = [e.sender.id for e in self.source.take_events() if e.type == "message"]
        self.assertEqual(ids, ["carolacct", "carol!c@h", "carol2"])

    def test_cached_account_needs_account_notify(self) -> None:
        """Without account-notify a remembered account could be stale, so it is not used."""
        self.protocol.caps |= {"extended-join"}
        self.wire.receive(":carol!c@h JOIN #chan carolacct :Carol", ":carol!c@h PRIVMSG #chan :x")
        self.assertEqual(self.source.take_events()[-1].sender.id, "carol!c@h")

    def test_whox_accounts(self) -> None:
        """With WHOX and account-notify the bot asks WHO on join and records accounts."""
        self.protocol.caps |= {"account-notify"}
        self.wire.receive(":irc.example.net 005 bot WHOX :are supported")
        self.wire.sent()
        self.wire.join("#other", "@bot dave")
        self.assertIn("WHO #other %tcuhnfa,152", self.wire.sent())
        self.wire.receive(
            ":irc.example.net 354 bot 152 #other ~d dhost dave H daveacct",
            ":irc.example.net 354 bot 999 #other ~x xhost bot H ignored",
            ":dave!~d@dhost PRIVMSG #other :hi",
        )
        self.assertEqual(self.source.take_events()[-1].sender.id, "daveacct")

    def test_event_time_from_clock(self) -> None:
        """Events are stamped with the source's clock."""
        self.clock.advance(1000)
        self.wire.receive(":alice!a@h PRIVMSG #chan :x")
        self.assertEqual(self.source.take_events()[0].time.timestamp(), 1000)

    def test_one_time_per_read(self) -> None:
        """The lines of one read share one time (the read's); the next read has its own."""
        self.clock.advance(1000)
        self.wire.receive(":alice!a@h PRIVMSG #chan :x", ":alice!a@h PRIVMSG #chan :y")
        self.clock.advance(5)
        self.wire.receive(":alice!a@h PRIVMSG #chan :z")
        events = self.source.take_events()
        self.assertEqual([e.time.timestamp() for e in events], [1000, 1000, 1005])
        self.assertIs(events[0].time, events[1].time)

    def test_sender_follows_mask_changes(self) -> None:
        """The sender (made once per user, not per message) and the mask in the event's
        data follow a nick change, a new user@host and CHGHOST."""
        self.wire.receive(
            ":alice!~al@example.org PRIVMSG #chan :one",
            ":alice!~al@example.org PRIVMSG #chan :two",
            ":alice!~al@example.org NICK alicia",
            ":alicia!~al@example.org PRIVMSG #chan :three",
            ":alicia!~al@other.example PRIVMSG #chan :four",
            ":alicia!~al@other.example CHGHOST ~a moved.example",
            ":alicia!~a@moved.example PRIVMSG #chan :five",
        )
        events = [e for e in self.source.take_events() if e.type == EventType.MESSAGE]
        self.assertEqual(
            [(e.sender.id, e.sender.nick, e.data["mask"]) for e in events],
            [
                ("alice!~al@example.org", "alice", "alice!~al@example.org"),
                ("alice!~al@example.org", "alice", "alice!~al@example.org"),
                ("alicia!~al@example.org", "alicia", "alicia!~al@example.org"),
                ("alicia!~al@other.example", "alicia", "alicia!~al@other.example"),
                ("alicia!~a@moved.example", "alicia", "alicia!~a@moved.example"),
            ],
        )
        self.assertIs(events[0].sender, events[1].sender)
        self.assertEqual(len({e.sender.connection for e in events}), 1)
        # Each event has its own data, which processors may change.
        self.assertIsNot(events[0].data, events[1].data)


class CTCPTests(WireTestCase):
    def setUp(self) -> None:
        super().setUp()
        self.source.config["source_url"] = "https://example.org/botcore"
        self.wire.register()

    def ctcp(self, query: str) -> list[str]:
        self.wire.receive(f":alice!a@h PRIVMSG bot :\x01{query}\x01")
        return self.wire.sent()

    def test_version(self) -> None:
        """VERSION is answered with botcore's version, by NOTICE."""
        [reply] = self.ctcp("VERSION")
        self.assertRegex(reply, r"^NOTICE alice :\x01VERSION botcore \S+ \(Twisted .*\)\x01$")

    def test_ping(self) -> None:
        """PING echoes its argument."""
        self.assertEqual(self.ctcp("PING 12345"), ["NOTICE alice :\x01PING 12345\x01"])

    def test_time(self) -> None:
        """TIME gives the clock's time."""
        self.clock.advance(86400)
        self.wire.sent()
        self.assertEqual(
            self.ctcp("TIME"), ["NOTICE alice :\x01TIME Fri, 02 Jan 1970 00:00:00 +0000\x01"]
        )

    def test_source_and_clientinfo(self) -> None:
        """SOURCE gives the configured URL; CLIENTINFO lists what is answered."""
        self.assertEqual(
            self.ctcp("SOURCE"), ["NOTICE alice :\x01SOURCE https://example.org/botcore\x01"]
        )
        [info] = self.ctcp("CLIENTINFO")
        self.assertIn("VERSION", info)

    def test_others_ignored(self) -> None:
        """Other queries (DCC, FINGER, ...) get no answer and make no event."""
        for query in ("DCC SEND x 1 2 3", "FINGER", "USERINFO", "ERRMSG x"):
            self.assertEqual(self.ctcp(query), [])
        self.assertEqual([e for e in self.source.take_events() if e.type != "source"], [])

    def test_ctcp_flood_limited(self) -> None:
        """A CTCP flood gets a few answers, then more only as time passes."""
        answers = sum(len(self.ctcp("PING x")) for _ in range(20))
        self.assertEqual(answers, 3)
        self.clock.advance(5)
        self.assertEqual(len(self.ctcp("PING y")), 1)

    def test_ping_reply_sanitised(self) -> None:
        """A PING argument cannot smuggle in line breaks or a second CTCP."""
        [reply] = self.ctcp("PING a\x01b")
        self.assertEqual(reply, "NOTICE alice :\x01PING ab\x01")


class SendingTests(WireTestCase):
    def setUp(self) -> None:
        super().setUp()
        self.wire.register("bot", "host.example")

    def test_long_text_split_to_fit(self) -> None:
        """A long reply is split into lines which, relayed with the bot's mask, are at
        most 512 bytes, cut on characters and at spaces, and rejoin to the text."""
        text = " ".join(f"wörd{i}€" for i in range(250))
        count = self.protocol.message("PRIVMSG", "#chan", text)
        lines = self.wire.sent_bytes()
        self.assertEqual(len(lines), count)
        self.assertGreater(count, 5)
        mask = b":bot!~bot@host.example "
        for line in lines:
            self.assertLessEqual(len(mask + line), 512)
            line.decode("utf-8")
        # Pieces are cut near the limit (at the last space that fits), not early.
        for line in lines[:-1]:
            self.assertGreater(len(mask + line), 500)
        pieces = [line.decode().split(" :", 1)[1][:-2] for line in lines]
        self.assertEqual(" ".join(pieces), text)

    def test_actions(self) -> None:
        """Actions are wrapped in CTCP ACTION and still fit."""
        self.source.do("#chan", "x" * 1000)
        lines = self.wire.sent_bytes()
        self.assertEqual(len(lines), 3)
        for line in lines:
            self.assertTrue(line.startswith(b"PRIVMSG #chan :\x01ACTION "))
            self.assertTrue(line.endswith(b"\x01\r\n"))
            self.assertLessEqual(len(b":bot!~bot@host.example " + line), 512)

    def test_no_injection(self) -> None:
        """Line breaks, NULs and CTCP delimiters in a reply never reach the wire as such."""
        self.source.say("#chan", "hi\r\nQUIT :pwned\0\x01DCC")
        self.assertEqual(self.wire.sent(), ["PRIVMSG #chan :hi", "PRIVMSG #chan :QUIT :pwnedDCC"])
        self.source.say("#chan", "a\rb")
        self.assertEqual(self.wire.sent(), ["PRIVMSG #chan :a b"])

    def test_multiline(self) -> None:
        """Each line of a multi-line reply is its own message; blank lines are skipped."""
        self.source.say("alice", "one\n\ntwo\n")
        self.assertEqual(self.wire.sent(), ["PRIVMSG alice :one", "PRIVMSG alice :two"])

    def test_max_lines(self) -> None:
        """A reply longer than max_lines lines is cut, the last line ending in …."""
        self.source.config["max_lines"] = 3
        self.source.say("#chan", "\n".join(f"line {i}" for i in range(10)))
        self.assertEqual(
            self.wire.sent(),
            ["PRIVMSG #chan :line 0", "PRIVMSG #chan :line 1", "PRIVMSG #chan :line 2…"],
        )

    def test_budget_follows_learned_host(self) -> None:
        """A longer cloak learned later shrinks the room for text."""
        before = self.protocol.text_budget("PRIVMSG", "#chan")
        self.wire.receive(":irc.example.net 396 bot " + "h" * 40 + " :is now your hidden host")
        self.assertEqual(self.protocol.text_budget("PRIVMSG", "#chan"), before - 28)

    def test_topic(self) -> None:
        """topic() sends TOPIC."""
        self.source.topic("#chan", "new topic\nhere")
        self.assertEqual(self.wire.sent(), ["TOPIC #chan :new topic here"])

    def test_notice_reply(self) -> None:
        """A notice reply goes out as NOTICE."""
        from botcore.event import Response

        self.source.send(Response("psst", target="alice", source="irc", notice=True))
        self.assertEqual(self.wire.sent(), ["NOTICE alice :psst"])


class AccountLookupTests(WireTestCase):
    def setUp(self) -> None:
        super().setUp()
        self.wire.register()

    def test_logged_in(self) -> None:
        """lookup_account asks WHOIS once and fires with the account from RPL_WHOISACCOUNT."""
        first = self.source.lookup_account("Alice")
        second = self.source.lookup_account("alice")
        self.assertEqual(self.wire.sent(), ["WHOIS Alice"])
        self.assertNoResult(first)
        self.wire.receive(
            ":irc.example.net 311 bot alice a h * :Alice",
            ":irc.example.net 330 bot alice aliceacct :is logged in as",
            ":irc.example.net 318 bot alice :End of /WHOIS list.",
        )
        self.assertEqual(self.successResultOf(first), "aliceacct")
        self.assertEqual(self.successResultOf(second), "aliceacct")

    def test_not_logged_in_or_gone(self) -> None:
        """No account line, or no such nick, gives None."""
        plain = self.source.lookup_account("bob")
        gone = self.source.lookup_account("ghost")
        self.wire.receive(
            ":irc.example.net 318 bot bob :End of /WHOIS list.",
            ":irc.example.net 401 bot ghost :No such nick",
        )
        self.assertIsNone(self.successResultOf(plain))
        self.assertIsNone(self.successResultOf(gone))

    def test_timeout_and_disconnect(self) -> None:
        """No answer in time gives None; so does losing the connection."""
        slow = self.source.lookup_account("slow")
        self.clock.advance(10)
        self.assertIsNone(self.successResultOf(slow))
        cut = self.source.lookup_account("cut")
        self.wire.lose()
        self.assertIsNone(self.successResultOf(cut))
        self.assertIsNone(self.successResultOf(self.source.lookup_account("anyone")))
