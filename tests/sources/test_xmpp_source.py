"""The XMPP source's stanza handling on a memory transport and a Clock: private chat,
rooms (join, history, conflicts, kicks, occupants), invites, pings, subscriptions,
splitting, SASL SCRAM, and hostile input that must never break the stream."""

from __future__ import annotations

from typing import Any

import scramp  # type: ignore[import-untyped]
from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.interfaces import IStreamClientEndpoint
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.names import dns
from twisted.names.error import DNSNameError
from twisted.trial.unittest import SynchronousTestCase
from twisted.words.protocols.jabber import xmlstream
from twisted.words.protocols.jabber.jid import JID
from twisted.words.protocols.jabber.sasl import SASLAuthError, SASLNoAcceptableMechanism
from zope.interface import implementer
from zope.interface.verify import verifyObject

from botcore.event import Event, EventType, Response
from botcore.interfaces import IChannelSource
from botcore.sources.xmpp import NoService, XMPPSource, _Endpoint, srv_order
from botcore.sources.xmpp.sasl import PREFERENCE, Scram, channel_binding, choose
from botcore.testing import StubContext

ROOM = "room@conference.example.org"
HEADER = (
    b"<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' "
    b"from='example.org' id='s1' version='1.0'>"
)


class _Auth(xmlstream.Authenticator):
    def __init__(self) -> None:
        super().__init__()
        self.jid = JID("bot@example.org/botcore")


class SourceTestCase(SynchronousTestCase):
    options: dict[str, Any] = {}

    def setUp(self) -> None:
        self.clock = Clock()
        bot = StubContext(reactor=self.clock, name="testbot")
        config = {"jid": "bot@example.org", "rooms": [ROOM], "nick": "testbot", **self.options}
        self.source = XMPPSource("xmpp", bot, config, reactor=self.clock)
        self.source.setup()
        self.events: list[Event] = []
        self.source.emit = self.events.append  # type: ignore[method-assign]
        self.source._wanted = {ROOM: (None, None)}
        self.transport = StringTransport()
        self.xs = xmlstream.XmlStream(_Auth())
        self.xs.makeConnection(self.transport)
        self.xs.dataReceived(HEADER)
        self.source._authenticated(self.xs)
        self.connection = self.source.connection

    def tearDown(self) -> None:
        self.connection.close()
        self.assertEqual(
            [c for c in self.clock.getDelayedCalls() if c.active()],
            [],
        )

    def feed(self, xml: str) -> None:
        self.xs.dataReceived(xml.encode("utf-8"))

    def sent(self) -> str:
        value = self.transport.value().decode("utf-8")
        self.transport.clear()
        return value

    def join_room(self, occupants: str = "") -> None:
        self.sent()
        self.feed(occupants)
        self.feed(
            f"<presence from='{ROOM}/testbot'><x xmlns='http://jabber.org/protocol/muc#user'>"
            "<item affiliation='none' role='participant'/><status code='110'/></x></presence>"
        )

    def texts(self) -> list[Event]:
        return [e for e in self.events if e.type in EventType.TEXT]


class InterfaceTests(SourceTestCase):
    def test_provides_channel_source(self) -> None:
        """The source provides IChannelSource, as the admin commands need."""
        verifyObject(IChannelSource, self.source)

    def test_online_and_joins_on_login(self) -> None:
        """Login sends an available presence and a join asking for no history."""
        out = self.sent()
        self.assertTrue(out.startswith("<presence xmlns='jabber:client'/>"), out)
        self.assertIn(f"to='{ROOM}/testbot'><x xmlns='http://jabber.org/protocol/muc'>", out)
        self.assertIn("<history maxstanzas='0'/>", out)

    def test_channels_and_identity(self) -> None:
        """Configured rooms are channels (before connecting too), occupants' JIDs are not;
        the verified identity is the bare JID the event carries, if any."""
        source = XMPPSource("x2", self.source.bot, {"jid": "bot@example.org", "rooms": [ROOM]})
        source.setup()
        self.assertTrue(source.is_channel(ROOM))
        self.assertFalse(source.is_channel(ROOM + "/nick"))
        self.assertEqual(
            source.verified_identity(Event("x2", "message", data={"jid": "a@b"})), "a@b"
        )
        self.assertIsNone(source.verified_identity(Event("x2", "message", data={"jid": None})))


class PrivateTests(SourceTestCase):
    def test_private_message_addressed_from_full_jid(self) -> None:
        """A chat message is a private addressed event whose channel is the full JID and
        whose verified id is the bare JID; the reply goes back to that full JID."""
        self.feed("<message from='alice@example.org/phone' type='chat'><body>hi</body></message>")
        (event,) = self.texts()
        self.assertEqual(event.channel, "alice@example.org/phone")
        self.assertTrue(event.addressed)
        self.assertFalse(event.public)
        self.assertEqual(event.who.id, "alice@example.org")
        self.assertEqual(self.source.verified_identity(event), "alice@example.org")
        self.sent()
        self.source.send(Response("hello", target=event.channel, source="xmpp"))
        out = self.sent()
        self.assertIn("to='alice@example.org/phone'", out)
        self.assertIn("type='chat'", out)
        self.assertIn("<body>hello</body>", out)

    def test_chat_states_receipts_and_errors_ignored(self) -> None:
        """Chat states, empty bodies and error messages make no event."""
        self.feed(
            "<message from='a@example.org/x' type='chat'>"
            "<composing xmlns='http://jabber.org/protocol/chatstates'/></message>"
            "<message from='a@example.org/x' type='chat'><body>  </body></message>"
            "<message from='a@example.org/x' type='error'><body>no</body></message>"
        )
        self.assertEqual(self.texts(), [])

    def test_me_is_an_action(self) -> None:
        """A body starting with /me is an action."""
        self.feed("<message from='a@example.org/x' type='chat'><body>/me waves</body></message>")
        (event,) = self.texts()
        self.assertEqual((event.type, event.message.raw), (EventType.ACTION, "waves"))


class HostileTests(SourceTestCase):
    def test_malformed_stanzas_never_break_the_stream(self) -> None:
        """Stanzas without or with broken from, odd types, bad JIDs and absurd nesting
        are ignored; a good message after them still becomes an event."""
        self.join_room()
        self.feed(
            "<message><body>no from</body></message>"
            "<message from='@@@/'><body>bad jid</body></message>"
            "<message from=''><body>empty</body></message>"
            f"<message from='{ROOM}' type='groupchat'><body>room itself</body></message>"
            f"<message from='{ROOM}' type='normal'><body>room notice</body></message>"
            f"<message from='{ROOM}/bob' type='chat'><body>/me  </body></message>"
            f"<presence from='{ROOM}/x' type='bogus'/>"
            f"<presence from='{ROOM}/x'><x xmlns='http://jabber.org/protocol/muc#user'>"
            "<item jid='@@bad'/></x></presence>"
            f"<presence from='{ROOM}/y' type='unavailable'/>"
            "<presence from='z@example.org' type='subscribe'/>"
            "<iq type='result' id='nothing-we-sent'/>"
            "<iq type='set' from='evil@example.org'><query xmlns='jabber:iq:roster'/></iq>"
            "<iq type='get'/>"
            "<message from='a@example.org/x'><x xmlns='jabber:x:conference' jid=''/></message>"
            "<message from='a@example.org/x'><x xmlns='http://jabber.org/protocol/muc#user'>"
            "<invite/></x></message>"
        )
        self.feed("<message from='a@example.org/x' type='chat'><body>still fine</body></message>")
        self.assertEqual([e.message.raw for e in self.texts()], ["still fine"])
        self.assertIsNotNone(self.source.connection)

    def test_control_characters_never_sent(self) -> None:
        """A reply with characters XML forbids is sent without them (a stanza with one
        would make the server close the stream)."""
        self.sent()
        self.source.send(Response("a\x00b\x1bc\x07", target="a@example.org/x", source="xmpp"))
        self.assertIn("<body>abc</body>", self.sent())

    def test_unknown_iq_answered_with_an_error(self) -> None:
        """An iq get the bot does not know is answered service-unavailable."""
        self.sent()
        self.feed("<iq type='get' id='q' from='a@example.org/x'><query xmlns='x:y'/></iq>")
        out = self.sent()
        self.assertIn("type='error'", out)
        self.assertIn("service-unavailable", out)


class RoomTests(SourceTestCase):
    def test_join_complete_on_status_110_and_history_ignored(self) -> None:
        """Messages before the self-presence and delayed ones are not events; after it,
        an occupant's groupchat message is public and unaddressed."""
        self.feed(f"<message from='{ROOM}/bob' type='groupchat'><body>early</body></message>")
        self.join_room(
            f"<presence from='{ROOM}/bob'><x xmlns='http://jabber.org/protocol/muc#user'>"
            "<item affiliation='none' role='moderator'/></x></presence>"
        )
        self.feed(
            f"<message from='{ROOM}/bob' type='groupchat'><body>old</body>"
            "<delay xmlns='urn:xmpp:delay' stamp='2020-01-01T00:00:00Z'/></message>"
            f"<message from='{ROOM}/testbot' type='groupchat'><body>own echo</body></message>"
            f"<message from='{ROOM}/bob' type='groupchat'><body>now</body></message>"
        )
        (event,) = self.texts()
        self.assertEqual((event.message.raw, event.channel, event.public), ("now", ROOM, True))
        self.assertIsNone(self.source.verified_identity(event))
        self.assertEqual(event.who.id, f"{ROOM}/bob")
        self.assertEqual(self.source.members(ROOM), {"bob": "@", "testbot": ""})
        joined = [e for e in self.events if e.data.get("state") == "joined"]
        self.assertEqual(len(joined), 1)
        self.source.send(Response("hi", target=ROOM, source="xmpp"))
        self.assertIn("type='groupchat'", self.sent())

    def test_real_jid_is_verified(self) -> None:
        """Where the room shows real JIDs the bare JID is the sender's verified id."""
        self.join_room(
            f"<presence from='{ROOM}/bob'><x xmlns='http://jabber.org/protocol/muc#user'>"
            "<item jid='bob@example.org/pc' role='participant'/></x></presence>"
        )
        self.feed(f"<message from='{ROOM}/bob' type='groupchat'><body>x</body></message>")
        (event,) = self.texts()
        self.assertEqual(self.source.verified_identity(event), "bob@example.org")

    def test_occupant_changes_are_state_events(self) -> None:
        """Join, role change, nick change, kick and part of others are state events."""
        self.join_room()
        muc = "http://jabber.org/protocol/muc#user"
        self.feed(
            f"<presence from='{ROOM}/bob'><x xmlns='{muc}'><item role='participant'/></x>"
            "</presence>"
            f"<presence from='{ROOM}/bob'><x xmlns='{muc}'><item role='moderator'/></x>"
            "</presence>"
            f"<presence from='{ROOM}/bob' type='unavailable'><x xmlns='{muc}'>"
            "<item nick='robert' role='moderator'/><status code='303'/></x></presence>"
            f"<presence from='{ROOM}/robert'><x xmlns='{muc}'><item role='moderator'/></x>"
            "</presence>"
            f"<presence from='{ROOM}/robert' type='unavailable'><x xmlns='{muc}'>"
            "<item role='none'/><status code='307'/></x></presence>"
            f"<presence from='{ROOM}/carol'><x xmlns='{muc}'><item role='participant'/></x>"
            "</presence>"
            f"<presence from='{ROOM}/carol' type='unavailable'/>"
        )
        kinds = [e.data["kind"] for e in self.events if e.type == EventType.STATE]
        self.assertEqual(kinds, ["join", "role", "nick", "kick", "join", "part"])

    def test_nick_conflict_tries_alternates(self) -> None:
        """A conflict on join retries as nick_, nick__ ..."""
        self.sent()
        self.feed(
            f"<presence from='{ROOM}/testbot' type='error'><error type='cancel'>"
            "<conflict xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></presence>"
        )
        self.assertIn(f"to='{ROOM}/testbot_'", self.sent())

    def test_rejoin_after_kick_after_delay(self) -> None:
        """Kicked, the bot rejoins after rejoin_delay; banned, it does not."""
        self.join_room()
        self.feed(
            f"<presence from='{ROOM}/testbot' type='unavailable'>"
            "<x xmlns='http://jabber.org/protocol/muc#user'><item role='none'/>"
            "<status code='307'/><status code='110'/></x></presence>"
        )
        self.assertEqual(self.sent(), "")
        self.clock.advance(self.source.rejoin_delay)
        self.assertIn(f"to='{ROOM}/testbot'", self.sent())
        self.join_room()
        self.feed(
            f"<presence from='{ROOM}/testbot' type='unavailable'>"
            "<x xmlns='http://jabber.org/protocol/muc#user'><item role='none'/>"
            "<status code='301'/><status code='110'/></x></presence>"
        )
        self.clock.advance(self.source.rejoin_delay * 2)
        self.assertNotIn(f"to='{ROOM}/testbot'", self.sent())
        self.assertNotIn(ROOM, self.connection.rooms)


class InviteTests(SourceTestCase):
    options = {"follow_invites": "always"}

    def test_invite_event_then_followed(self) -> None:
        """A mediated invite is an invite event, and (follow_invites) joined."""
        self.sent()
        self.feed(
            "<message from='other@conference.example.org'>"
            "<x xmlns='http://jabber.org/protocol/muc#user'>"
            "<invite from='alice@example.org/x'/><password>pw</password></x></message>"
        )
        (invite,) = [e for e in self.events if e.type == EventType.INVITE]
        self.assertEqual(invite.data["channel"], "other@conference.example.org")
        out = self.sent()
        self.assertIn("to='other@conference.example.org/testbot'", out)
        self.assertIn("<password>pw</password>", out)


class SubscriptionTests(SourceTestCase):
    options = {"subscriptions": "list", "subscribers": ["friend@example.org"]}

    def test_policy_list(self) -> None:
        """Subscriptions from the list are accepted, others refused."""
        self.sent()
        self.feed("<presence from='friend@example.org' type='subscribe'/>")
        self.assertIn("type='subscribed'", self.sent())
        self.feed("<presence from='stranger@example.org' type='subscribe'/>")
        out = self.sent()
        self.assertIn("type='unsubscribed'", out)
        self.assertNotIn("type='subscribed'", out)


class PingTests(SourceTestCase):
    def test_ping_timeout_drops_the_connection(self) -> None:
        """An answered ping schedules the next; an unanswered one aborts the stream."""
        self.sent()
        self.clock.advance(self.source.ping_interval)
        self.assertIn("urn:xmpp:ping", self.sent())
        self.feed("<iq type='result' id='botcore-ping-1'/>")
        self.clock.advance(self.source.ping_interval)
        self.assertIn("botcore-ping-2", self.sent())
        self.clock.advance(self.source.ping_timeout)
        self.assertTrue(self.connection.timed_out)
        self.assertTrue(self.transport.disconnecting)

    def test_server_ping_answered(self) -> None:
        """A ping from the server is answered with a result."""
        self.sent()
        self.feed("<iq type='get' id='p' from='example.org'><ping xmlns='urn:xmpp:ping'/></iq>")
        out = self.sent()
        self.assertIn("type='result'", out)
        self.assertIn("id='p'", out)


class SplitTests(SourceTestCase):
    options = {"message_length": 100, "max_messages": 3}

    def test_long_text_split_at_spaces_within_budget(self) -> None:
        """Long text becomes messages of at most message_length bytes, at most
        max_messages of them, cut at spaces and never inside a character."""
        text = " ".join(["wörd€"] * 100)
        pieces = self.source.pieces(text)
        self.assertEqual(len(pieces), 3)
        self.assertTrue(all(len(p.encode()) <= 100 for p in pieces))
        self.assertTrue(all(set(p.split()) == {"wörd€"} for p in pieces))

    def test_lines_kept_together(self) -> None:
        """Short lines share a message; the line breaks stay."""
        self.assertEqual(self.source.pieces("a\nb\nc"), ["a\nb\nc"])

    def test_backoff(self) -> None:
        """Reconnection waits double per failure, capped, with jitter of 50-100%."""
        self.source._jitter = lambda: 1.0
        delays = []
        for failures in (1, 2, 3, 20):
            self.source.failures = failures
            delays.append(self.source.retry_delay(0))
        self.assertEqual(delays, [2.0, 4.0, 8.0, 300.0])


class SASLTests(SynchronousTestCase):
    def test_best_mechanism(self) -> None:
        """SCRAM-SHA-256 beats SCRAM-SHA-1 beats PLAIN; none acceptable is an error."""
        every = ["SCRAM-SHA-256", "SCRAM-SHA-1", "PLAIN"]
        self.assertEqual(
            choose(["PLAIN", "SCRAM-SHA-1", "SCRAM-SHA-256"], "u", "p", every).name,
            "SCRAM-SHA-256",
        )
        self.assertEqual(choose(["PLAIN", "SCRAM-SHA-1"], "u", "p", every).name, "SCRAM-SHA-1")
        self.assertEqual(choose(["PLAIN", "DIGEST-MD5"], "u", "p", every).name, "PLAIN")
        self.assertRaises(SASLNoAcceptableMechanism, choose, ["PLAIN"], "u", "p", ["SCRAM-SHA-1"])

    def test_scram_against_scramp_server(self) -> None:
        """A SCRAM exchange with a real SCRAM server succeeds and checks its signature; a
        server that does not know the password is refused."""
        for password, good in (("secret", True), ("wrong", False)):
            server_side = scramp.ScramMechanism("SCRAM-SHA-256")
            auth = server_side.make_auth_info(password)
            server = server_side.make_server(lambda _user, auth=auth: auth)
            client = Scram("SCRAM-SHA-256", "user", "secret")
            server.set_client_first(client.getInitialResponse().decode())
            final = client.getResponse(server.get_server_first().encode())
            if good:
                server.set_client_final(final.decode())
                client.verify(server.get_server_final().encode())
                self.assertTrue(client.verified)
            else:
                self.assertRaises(scramp.ScramException, server.set_client_final, final.decode())
                # A forged server-final is refused by the client.
                self.assertRaises(SASLAuthError, client.verify, b"v=AAAA")


class _TLSConnection:
    """What pyOpenSSL's Connection says of a TLS session, for channel bindings."""

    def __init__(self, version: str, finished: bytes | None) -> None:
        self.version, self.finished = version, finished

    def get_protocol_version_name(self) -> str:
        return self.version

    def get_finished(self) -> bytes | None:
        return self.finished


class _TLSTransport:
    def __init__(self, connection: Any) -> None:
        self.connection = connection

    def getHandle(self) -> Any:
        return self.connection


class ChannelBindingTests(SynchronousTestCase):
    BINDING = ("tls-unique", b"finished-message")

    def test_plus_chosen_only_with_a_binding(self) -> None:
        """SCRAM-SHA-256-PLUS beats SCRAM-SHA-256 when the bot can bind; without a
        binding it is skipped (GS2 'n'); with one and no -PLUS offered the bot says it
        could have bound (GS2 'y')."""
        offered = ["SCRAM-SHA-256-PLUS", "SCRAM-SHA-256", "PLAIN"]
        every = list(PREFERENCE)
        bound = choose(offered, "u", "p", every, self.BINDING)
        self.assertEqual(bound.name, "SCRAM-SHA-256-PLUS")
        self.assertTrue(bound.getInitialResponse().startswith(b"p=tls-unique,,"))
        unbound = choose(offered, "u", "p", every, None)
        self.assertEqual(unbound.name, "SCRAM-SHA-256")
        self.assertTrue(unbound.getInitialResponse().startswith(b"n,,"))
        could = choose(["SCRAM-SHA-256"], "u", "p", every, self.BINDING)
        self.assertTrue(could.getInitialResponse().startswith(b"y,,"))
        # -PLUS offered but not allowed by the configuration: not a downgrade to report.
        declined = choose(offered, "u", "p", ["SCRAM-SHA-256"], self.BINDING)
        self.assertTrue(declined.getInitialResponse().startswith(b"n,,"))

    def test_plus_against_scramp_server(self) -> None:
        """A -PLUS exchange succeeds when both ends see the same channel, and fails when
        the server's channel differs (a relay by a man in the middle)."""
        for server_binding, good in ((self.BINDING, True), (("tls-unique", b"other"), False)):
            server_side = scramp.ScramMechanism("SCRAM-SHA-256-PLUS")
            auth = server_side.make_auth_info("secret")
            server = server_side.make_server(
                lambda _user, auth=auth: auth, channel_binding=server_binding
            )
            client = Scram("SCRAM-SHA-256-PLUS", "user", "secret", self.BINDING)
            server.set_client_first(client.getInitialResponse().decode())
            final = client.getResponse(server.get_server_first().encode())
            if good:
                server.set_client_final(final.decode())
                client.verify(server.get_server_final().encode())
                self.assertTrue(client.verified)
            else:
                self.assertRaises(scramp.ScramException, server.set_client_final, final.decode())

    def test_tls_unique_only_before_tls13(self) -> None:
        """tls-unique is read from TLS 1.2 sessions; TLS 1.3 (where it is undefined), no
        TLS, or no Finished message give no binding."""
        self.assertEqual(
            channel_binding(_TLSTransport(_TLSConnection("TLSv1.2", b"fin"))),
            ("tls-unique", b"fin"),
        )
        self.assertIsNone(channel_binding(_TLSTransport(_TLSConnection("TLSv1.3", b"fin"))))
        self.assertIsNone(channel_binding(_TLSTransport(_TLSConnection("TLSv1.2", None))))
        self.assertIsNone(channel_binding(StringTransport()))
        self.assertIsNone(channel_binding(None))


class _Resolver:
    """A DNS resolver answering SRV look-ups from a table (a Deferred that never fires
    for a name given as None: a lookup that hangs)."""

    def __init__(self, answers: dict[str, Any]) -> None:
        self.answers = answers
        self.asked: list[str] = []

    def lookupService(self, name: str, timeout: Any = None) -> Deferred[Any]:
        self.asked.append(name)
        found = self.answers.get(name, DNSNameError(name))
        if found is None:
            return Deferred()
        if isinstance(found, Exception):
            return fail(found)
        records = [
            dns.RRHeader(name, dns.SRV, payload=dns.Record_SRV(p, w, port, target))
            for p, w, port, target in found
        ]
        return succeed((records, [], []))


@implementer(IStreamClientEndpoint)
class _Refusing:
    """An endpoint that records the attempt and refuses it (or never answers)."""

    def __init__(self, tried: list[str], server: str, answer: bool) -> None:
        self.tried, self.server, self.answer = tried, server, answer

    def connect(self, factory: Any) -> Deferred[Any]:
        self.tried.append(self.server)
        return fail(ConnectionRefusedError(self.server)) if not self.answer else Deferred()


class SRVTests(SynchronousTestCase):
    """Without a configured server, the SRV records of _xmpp-client._tcp say where to
    connect; DOMAIN:5222 is tried last, and alone when the lookup fails or hangs."""

    NAME = "_xmpp-client._tcp.example.org"

    def attempt(self, answers: dict[str, Any], reachable: str = "") -> tuple[list[str], Any]:
        self.clock = Clock()
        tried: list[str] = []
        self.resolver = _Resolver(answers)
        source = XMPPSource(
            "xmpp",
            StubContext(reactor=self.clock),
            {"jid": "bot@example.org"},
            reactor=self.clock,
            resolver=self.resolver,
            jitter=lambda: 0.0,
            endpoint_factory=lambda s: _Refusing(tried, s, s == reachable),
        )
        source.setup()
        d = _Endpoint(source, None).connect(object())
        return tried, d

    def test_srv_targets_by_priority_then_domain(self) -> None:
        """Targets are tried by priority (lowest first), then DOMAIN:5222."""
        srv = [(20, 0, 5223, b"backup.example.org"), (10, 0, 5222, b"xmpp.example.org")]
        tried, d = self.attempt({self.NAME: srv})
        self.failureResultOf(d, ConnectionRefusedError)
        self.assertEqual(
            tried,
            [
                "tcp:xmpp.example.org:5222",
                "tcp:backup.example.org:5223",
                "tcp:example.org:5222",
            ],
        )
        self.assertEqual(self.resolver.asked, [self.NAME])

    def test_first_reachable_target_wins(self) -> None:
        """The first target that answers is used; later ones are not tried."""
        srv = [(10, 0, 5222, b"a.example.org"), (10, 0, 5222, b"b.example.org")]
        tried, d = self.attempt({self.NAME: srv}, reachable="tcp:a.example.org:5222")
        self.assertNoResult(d)
        self.assertEqual(tried, ["tcp:a.example.org:5222"])

    def test_weights_pick_within_a_priority(self) -> None:
        """Within one priority the weighted pick decides the order (RFC 2782)."""
        records = [dns.Record_SRV(1, 1, 1, b"light"), dns.Record_SRV(1, 99, 1, b"heavy")]
        self.assertEqual(
            [r.target.name for r in srv_order(records, lambda: 0.5)], [b"heavy", b"light"]
        )
        self.assertEqual(
            [r.target.name for r in srv_order(records, lambda: 0.0)], [b"light", b"heavy"]
        )

    def test_no_record_falls_back_to_domain(self) -> None:
        """No SRV record (NXDOMAIN): DOMAIN:5222."""
        tried, d = self.attempt({})
        self.failureResultOf(d, ConnectionRefusedError)
        self.assertEqual(tried, ["tcp:example.org:5222"])

    def test_no_service_record_is_not_ignored(self) -> None:
        """The 'no service here' record (target '.') means no attempt at all, with an
        error that says what to do (RFC 2782: decidedly not available)."""
        tried, d = self.attempt({self.NAME: [(0, 0, 0, b".")]})
        failure = self.failureResultOf(d, NoService)
        self.assertIn("set 'server'", failure.getErrorMessage())
        self.assertEqual(tried, [])

    def test_hanging_lookup_is_bounded(self) -> None:
        """A lookup that never answers gives up after srv_timeout; then DOMAIN:5222."""
        tried, d = self.attempt({self.NAME: None})
        self.assertEqual(tried, [])
        self.clock.advance(4.9)
        self.assertEqual(tried, [])
        self.clock.advance(0.2)
        self.failureResultOf(d, ConnectionRefusedError)
        self.assertEqual(tried, ["tcp:example.org:5222"])

    def test_configured_server_needs_no_lookup(self) -> None:
        """A configured server is used as it is, with no DNS lookup."""
        self.clock = Clock()
        resolver = _Resolver({})
        source = XMPPSource(
            "xmpp",
            StubContext(reactor=self.clock),
            {"jid": "bot@example.org", "server": "tcp:127.0.0.1:5999"},
            reactor=self.clock,
            resolver=resolver,
        )
        source.setup()
        self.assertEqual(self.successResultOf(source.servers()), ["tcp:127.0.0.1:5999"])
        self.assertEqual(resolver.asked, [])
