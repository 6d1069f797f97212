"""The IRC source's IRCv3 on a StringTransport and a Clock, capability by capability:
cap negotiation and cap-notify, message-tags (msgid, replies, reactions, CLIENTTAGDENY),
server-time, echo-message and labeled-response, batches (netsplit, netjoin, history,
multiline), standard replies, the state capabilities, NAMES with multi-prefix and
userhost-in-names, SASL mechanism choice, STS and the TLS options."""

from __future__ import annotations

import base64
from datetime import UTC, datetime
from typing import Any

from twisted.internet.defer import Deferred, succeed
from twisted.internet.interfaces import ISSLTransport
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase
from zope.interface import directlyProvides

from botcore.event import EventType, Response
from botcore.sources.irc import IRCSource, ServerListOption
from botcore.sources.irc.sts import StsPolicies
from botcore.testing import StubContext
from tests.sources.irc_harness import BASE, RecordingIRCSource, ScriptedEndpoint, Wire, make_source
from tests.sources.test_irc_protocol import WireTestCase

ALL_CAPS = (
    "account-notify account-tag away-notify batch cap-notify chghost echo-message "
    "extended-join invite-notify labeled-response message-tags multi-prefix server-time "
    "setname userhost-in-names standard-replies"
)


class V3TestCase(WireTestCase):
    """A wire whose server offered and acknowledged ``caps``, then registered the bot."""

    caps = ALL_CAPS

    def setUp(self) -> None:
        super().setUp()
        self.negotiate(self.wire, self.caps)

    def negotiate(self, wire: Wire, caps: str, *extra: str) -> None:
        wire.sent()
        wire.receive(f":irc.example.net CAP * LS :{caps}")
        wire.receive(f":irc.example.net CAP bot ACK :{caps}")
        wire.register("bot", "host.example", *extra)
        wire.join("#chan", "@bot alice!al@alice.example")
        self.source.take_events()
        wire.sent()

    def events(self) -> list[Any]:
        return self.source.take_events()


class CapabilityTests(WireTestCase):
    def test_requests_what_is_offered_in_several_ls_lines(self) -> None:
        """CAP LS 302 may take several lines: the request waits for the last, and asks
        only for what the bot uses (never sts, which is not requested)."""
        self.wire.sent()
        self.wire.receive(
            ":irc.example.net CAP * LS * :message-tags server-time foo",
            ":irc.example.net CAP * LS :echo-message batch labeled-response draft/multiline",
        )
        [request] = self.wire.sent()
        self.assertEqual(
            request.split(":", 1)[1].split(),
            [
                "message-tags",
                "server-time",
                "echo-message",
                "batch",
                "labeled-response",
                "draft/multiline",
            ],
        )

    def test_cap_notify_new_and_del(self) -> None:
        """CAP NEW is asked for at run time; CAP DEL takes a capability (and what it made
        possible) away."""
        self.wire.sent()
        self.wire.receive(":irc.example.net CAP * LS :cap-notify")
        self.wire.receive(":irc.example.net CAP bot ACK :cap-notify")
        self.wire.register()
        self.assertEqual(self.source.supports, IRCSource.BASE_SUPPORTS)
        self.wire.receive(":irc.example.net CAP bot NEW :message-tags")
        self.assertEqual(self.wire.sent(), ["CAP REQ :message-tags"])
        self.wire.receive(":irc.example.net CAP bot ACK :message-tags")
        self.assertTrue({"reply", "react"} <= self.source.supports)
        self.wire.receive(":irc.example.net CAP bot DEL :message-tags")
        self.assertNotIn("message-tags", self.protocol.caps)
        self.assertEqual(self.source.supports, IRCSource.BASE_SUPPORTS)

    def test_nak_asks_one_by_one(self) -> None:
        """A refused request (all or nothing) is asked again one capability at a time."""
        self.wire.sent()
        self.wire.receive(":irc.example.net CAP * LS :message-tags server-time")
        self.wire.sent()
        self.wire.receive(":irc.example.net CAP bot NAK :message-tags server-time")
        self.assertEqual(self.wire.sent(), ["CAP REQ :message-tags", "CAP REQ :server-time"])
        # CAP END waits until both are answered.
        self.wire.receive(":irc.example.net CAP bot ACK :message-tags")
        self.assertEqual(self.wire.sent(), [])
        self.wire.receive(":irc.example.net CAP bot NAK :server-time")
        self.assertEqual(self.wire.sent(), ["CAP END"])
        self.assertEqual(self.protocol.caps, {"message-tags"})

    def test_supports_after_disconnect(self) -> None:
        """A lost connection takes replies and reactions with it."""
        self.wire.receive(":irc.example.net CAP * LS :message-tags")
        self.wire.receive(":irc.example.net CAP bot ACK :message-tags")
        self.assertIn("reply", self.source.supports)
        self.wire.lose()
        self.assertEqual(self.source.supports, IRCSource.BASE_SUPPORTS)


class ClientTagDenyTests(V3TestCase):
    def test_deny_all(self) -> None:
        """CLIENTTAGDENY=* refuses every client tag: no replies, no reactions."""
        self.wire.receive(":irc.example.net 005 bot CLIENTTAGDENY=* :are supported")
        self.assertEqual(self.source.supports, IRCSource.BASE_SUPPORTS)

    def test_deny_all_but_reply(self) -> None:
        """``*,-draft/reply`` lets replies through but not reactions."""
        self.wire.receive(":irc.example.net 005 bot CLIENTTAGDENY=*,-draft/reply :are supported")
        self.assertIn("reply", self.source.supports)
        self.assertNotIn("react", self.source.supports)

    def test_deny_react(self) -> None:
        self.wire.receive(":irc.example.net 005 bot CLIENTTAGDENY=draft/react :are supported")
        self.assertIn("reply", self.source.supports)
        self.assertNotIn("react", self.source.supports)


class MessageTagTests(V3TestCase):
    def test_msgid_reply_and_time(self) -> None:
        """msgid is the event's message id, +draft/reply what it replies to, and the
        time tag its time."""
        self.wire.receive(
            "@msgid=abc123;+draft/reply=xyz;time=2024-05-06T07:08:09.123Z "
            ":alice!al@alice.example PRIVMSG #chan :hello"
        )
        [event] = self.events()
        self.assertEqual((event.message_id, event.reply_to), ("abc123", "xyz"))
        self.assertEqual(event.time, datetime(2024, 5, 6, 7, 8, 9, 123000, tzinfo=UTC))

    def test_ratified_reply_tag(self) -> None:
        self.wire.receive("@msgid=m1;+reply=m0 :alice!al@alice.example PRIVMSG #chan :hi")
        [event] = self.events()
        self.assertEqual(event.reply_to, "m0")

    def test_bad_time_is_now(self) -> None:
        """A time tag that is not a timestamp leaves the event's time as now."""
        self.clock.advance(1000)
        self.wire.receive("@time=yesterday :alice!al@alice.example PRIVMSG #chan :hi")
        [event] = self.events()
        self.assertEqual(event.time, datetime.fromtimestamp(1000, UTC))

    def test_reaction_event(self) -> None:
        """A TAGMSG with +draft/react and +draft/reply is a reaction to that message."""
        self.wire.receive(
            "@msgid=r1;+draft/react=👍;+draft/reply=m5 :alice!al@alice.example TAGMSG #chan"
        )
        [event] = self.events()
        self.assertEqual(event.type, EventType.REACTION)
        self.assertEqual((event.reaction, event.refers_to, event.channel), ("👍", "m5", "#chan"))
        self.assertEqual(event.message_id, "r1")

    def test_typing_tagmsg_ignored(self) -> None:
        self.wire.receive("@+typing=active :alice!al@alice.example TAGMSG #chan")
        self.wire.receive("@+draft/react=x :alice!al@alice.example TAGMSG #chan")  # to what?
        self.assertEqual(self.events(), [])

    def test_reply_tag_on_first_line_only(self) -> None:
        """A reply is tagged as one on its first line; the rest of a split reply is not."""
        self.source.send(Response("a\nb", target="#chan", source="irc", reply_to="m7"))
        lines = self.wire.sent()
        self.assertEqual(len(lines), 2)
        self.assertTrue(lines[0].startswith("@+draft/reply=m7;+reply=m7;label="))
        self.assertTrue(lines[0].endswith(" PRIVMSG #chan :a"))
        self.assertEqual(lines[1], "PRIVMSG #chan :b")

    def test_reply_id_escaped(self) -> None:
        """An id with characters tags cannot hold bare is escaped, never breaks the line."""
        self.source.send(Response("x", target="#chan", source="irc", reply_to="a b;c\r\n"))
        [line] = self.wire.sent()
        self.assertTrue(line.startswith("@+draft/reply=a\\sb\\:c\\r\\n;"))
        self.assertTrue(line.endswith(" PRIVMSG #chan :x"))

    def test_outgoing_reaction(self) -> None:
        """A reaction goes out as TAGMSG with the key and the message reacted to."""
        self.source.send(
            Response("🎉", target="#chan", source="irc", kind="reaction", refers_to="m9")
        )
        self.assertEqual(
            self.wire.sent(), ["@+draft/react=🎉;+draft/reply=m9;+reply=m9 TAGMSG #chan"]
        )


class EchoTests(V3TestCase):
    def test_labelled_echo_remembers_network_id(self) -> None:
        """With echo-message and labeled-response the bot's message carries a label; its
        echo (same label) gives the network's id, remembered for the Response; the
        echo is never an event."""
        response = Response("hi all", target="#chan", source="irc")
        self.source.send(response)
        [line] = self.wire.sent()
        label = line.split("label=", 1)[1].split(" ", 1)[0]
        self.wire.receive(
            f"@label={label};msgid=net42 :bot!~bot@host.example PRIVMSG #chan :hi all"
        )
        self.assertEqual(self.events(), [])
        [sent] = self.source.sent_messages("#chan")
        self.assertEqual((sent.local_id, sent.message_id), (response.id, "net42"))
        self.assertEqual(self.source.network_id(response.id), "net42")

    def test_ack_forgets_label(self) -> None:
        self.source.send(Response("x", target="#chan", source="irc"))
        [line] = self.wire.sent()
        label = line.split("label=", 1)[1].split(" ", 1)[0]
        self.wire.receive(f"@label={label} :irc.example.net ACK")
        self.assertEqual(self.protocol._labels, {})

    def test_label_forgotten_on_error(self) -> None:
        """A labelled error (no such nick) means no echo will come: the label goes."""
        self.source.send(Response("x", target="nobody", source="irc"))
        [line] = self.wire.sent()
        label = line.split("label=", 1)[1].split(" ", 1)[0]
        self.wire.receive(f"@label={label} :irc.example.net 401 bot nobody :No such nick")
        self.assertEqual(self.protocol._labels, {})

    def test_labelled_batch_echo(self) -> None:
        """An echo inside a labeled-response batch takes the batch's label."""
        response = Response("x", target="#chan", source="irc")
        self.source.send(response)
        [line] = self.wire.sent()
        label = line.split("label=", 1)[1].split(" ", 1)[0]
        self.wire.receive(
            f"@label={label} :irc.example.net BATCH +b1 labeled-response",
            "@batch=b1;msgid=n7 :bot!~bot@host.example PRIVMSG #chan :x",
            ":irc.example.net BATCH -b1",
        )
        self.assertEqual(self.source.network_id(response.id), "n7")


class UnlabelledEchoTests(V3TestCase):
    caps = "echo-message message-tags"

    def test_echo_matched_by_text(self) -> None:
        """Without labeled-response the echo is matched by its target and text."""
        first = Response("one", target="#chan", source="irc")
        second = Response("two", target="#chan", source="irc")
        self.source.send(first)
        self.source.send(second)
        self.assertFalse([line for line in self.wire.sent() if "label=" in line])
        self.wire.receive("@msgid=n2 :bot!~bot@host.example PRIVMSG #chan :two")
        self.wire.receive("@msgid=n1 :bot!~bot@host.example PRIVMSG #chan :one")
        self.assertEqual(self.source.network_id(first.id), "n1")
        self.assertEqual(self.source.network_id(second.id), "n2")
        self.assertEqual(self.events(), [])


class BatchTests(V3TestCase):
    def test_netsplit_is_one_event(self) -> None:
        """The quits of a netsplit batch are one state event, not a flood of quits."""
        self.wire.join("#chan", "@bot alice!al@alice.example bob!b@bob.example")
        self.events()
        self.wire.receive(
            ":irc.example.net BATCH +ns netsplit hub.example leaf.example",
            "@batch=ns :alice!al@alice.example QUIT :hub.example leaf.example",
            "@batch=ns :bob!b@bob.example QUIT :hub.example leaf.example",
            ":irc.example.net BATCH -ns",
        )
        [event] = self.events()
        self.assertEqual(event.type, EventType.STATE)
        self.assertEqual(event.data["kind"], "netsplit")
        self.assertEqual(event.data["nicks"], ["alice", "bob"])
        self.assertEqual(event.data["servers"], ["hub.example", "leaf.example"])
        self.assertEqual(event.data["channels"], ["#chan"])
        self.assertEqual(self.protocol.members("#chan"), {"bot": "@"})

    def test_huge_netsplit_bounded(self) -> None:
        """A netsplit of more people than the batch keeps is still one event, counted."""
        from botcore.sources.irc import protocol

        self.patch(protocol, "BATCH_LIMIT", 3)
        quits = [f"@batch=ns :u{i}!u@h.example QUIT :a.example b.example" for i in range(10)]
        self.wire.receive(":irc.example.net BATCH +ns netsplit a.example b.example", *quits)
        self.wire.receive(":irc.example.net BATCH -ns")
        [event] = self.events()
        self.assertEqual((event.data["count"], len(event.data["nicks"])), (10, 3))

    def test_netjoin(self) -> None:
        self.wire.receive(
            ":irc.example.net BATCH +nj netjoin hub.example leaf.example",
            "@batch=nj :carol!c@carol.example JOIN #chan",
            ":irc.example.net BATCH -nj",
        )
        [event] = self.events()
        self.assertEqual((event.data["kind"], event.data["nicks"]), ("netjoin", ["carol"]))
        self.assertIn("carol", self.protocol.members("#chan"))

    def test_history_not_replayed(self) -> None:
        """Messages in a chathistory batch are not processed as new messages."""
        self.wire.receive(
            ":irc.example.net BATCH +h chathistory #chan",
            "@batch=h;msgid=old :alice!al@alice.example PRIVMSG #chan :bot: echo old",
            ":irc.example.net BATCH -h",
            ":alice!al@alice.example PRIVMSG #chan :new",
        )
        [event] = self.events()
        self.assertEqual(event.message.raw, "new")


class MultilineTests(V3TestCase):
    caps = ALL_CAPS + " draft/multiline=max-bytes=4096,max-lines=24"

    def test_long_reply_as_one_batch(self) -> None:
        """A reply of several lines is one draft/multiline batch; a line too long for
        one message continues with draft/multiline-concat."""
        long = "x" * 600
        self.source.send(Response(f"first\n{long}", target="#chan", source="irc", reply_to="m1"))
        lines = self.wire.sent()
        self.assertRegex(
            lines[0],
            r"^@\+draft/reply=m1;\+reply=m1;label=\S+ BATCH \+ml1 "
            r"draft/multiline #chan$",
        )
        self.assertEqual(lines[1], "@batch=ml1 PRIVMSG #chan :first")
        self.assertTrue(lines[2].startswith("@batch=ml1 PRIVMSG #chan :xxx"))
        self.assertTrue(lines[3].startswith("@batch=ml1;draft/multiline-concat PRIVMSG #chan :x"))
        self.assertEqual(lines[-1], "BATCH -ml1")
        text = "".join(line.split(" :", 1)[1] for line in lines[2:-1])
        self.assertEqual(text, long)

    def test_beyond_limits_split_as_before(self) -> None:
        """More lines than the server's max-lines: split into messages as without it."""
        self.source.send(Response("\n".join("abc" * 30), target="#chan", source="irc"))
        lines = self.wire.sent()
        self.assertFalse([line for line in lines if "BATCH" in line])
        self.assertEqual(len(lines), self.source.max_lines)

    def test_own_multiline_echo_gives_id(self) -> None:
        """The echo of the bot's own multiline batch carries the label and the msgid on
        its BATCH line: that is the network's id of the whole reply."""
        response = Response("one\ntwo", target="#chan", source="irc")
        self.source.send(response)
        lines = self.wire.sent()
        label = lines[0].split("label=", 1)[1].split(" ", 1)[0]
        self.wire.receive(
            f"@label={label};msgid=mlid :bot!~bot@host.example BATCH +e draft/multiline #chan",
            "@batch=e :bot!~bot@host.example PRIVMSG #chan :one",
            "@batch=e :bot!~bot@host.example PRIVMSG #chan :two",
            ":irc.example.net BATCH -e",
        )
        self.assertEqual(self.source.network_id(response.id), "mlid")
        self.assertEqual(self.events(), [])

    def test_received_multiline_is_one_message(self) -> None:
        self.wire.receive(
            "@msgid=ml :alice!al@alice.example BATCH +m draft/multiline #chan",
            "@batch=m :alice!al@alice.example PRIVMSG #chan :line one",
            "@batch=m :alice!al@alice.example PRIVMSG #chan :line two",
            "@batch=m;draft/multiline-concat :alice!al@alice.example PRIVMSG #chan : continued",
            ":alice!al@alice.example BATCH -m",
        )
        [event] = self.events()
        self.assertEqual(event.message.raw, "line one\nline two continued")
        self.assertEqual(event.message_id, "ml")


class StandardReplyTests(V3TestCase):
    def test_logged_with_codes(self) -> None:
        self.wire.receive(
            ":irc.example.net FAIL CHATHISTORY INVALID_TARGET #nope :No such target",
            ":irc.example.net WARN REHASH CERTS_EXPIRED :Certificate expired",
            ":irc.example.net NOTE * OPER_MESSAGE :Hello",
        )
        text = "\n".join(
            str(e.get("log_format", "")).format(**e) for e in self.logged if "kind" in e
        )
        self.assertIn("FAIL CHATHISTORY INVALID_TARGET (#nope): No such target", text)
        self.assertIn("WARN REHASH CERTS_EXPIRED: Certificate expired", text)
        self.assertIn("NOTE * OPER_MESSAGE: Hello", text)


class StateCapabilityTests(V3TestCase):
    def test_chghost(self) -> None:
        self.wire.receive(":alice!al@alice.example CHGHOST al2 cloak.example")
        [event] = self.events()
        self.assertEqual(event.data["kind"], "chghost")
        self.assertEqual(event.data["old"], "alice!al@alice.example")
        self.assertEqual(event.data["mask"], "alice!al2@cloak.example")
        self.assertEqual(event.data["channels"], ["#chan"])

    def test_own_chghost_is_learnt(self) -> None:
        self.wire.receive(":bot!~bot@host.example CHGHOST ~bot a.very.long.cloak.example")
        self.assertEqual(self.protocol.own.host, "a.very.long.cloak.example")
        self.assertEqual(self.events(), [])

    def test_away_and_back(self) -> None:
        self.wire.receive(":alice!al@alice.example AWAY :lunch", ":alice!al@alice.example AWAY")
        away, back = self.events()
        self.assertEqual(
            (away.data["kind"], away.data["away"], away.data["message"]), ("away", True, "lunch")
        )
        self.assertFalse(back.data["away"])

    def test_setname(self) -> None:
        self.wire.receive(":alice!al@alice.example SETNAME :Alice Liddell")
        [event] = self.events()
        self.assertEqual(
            (event.data["kind"], event.data["realname"]), ("setname", "Alice Liddell")
        )

    def test_invite_notify(self) -> None:
        self.wire.receive(":alice!al@alice.example INVITE carol #chan")
        [event] = self.events()
        self.assertEqual(
            (event.type, event.data["kind"], event.data["invited"]),
            (EventType.STATE, "invite", "carol"),
        )

    def test_account_notify_and_tag(self) -> None:
        """account-notify says who logged in; account-tag vouches for each message."""
        self.wire.receive(":alice!al@alice.example ACCOUNT alice_acct")
        [event] = self.events()
        self.assertEqual((event.data["kind"], event.data["account"]), ("account", "alice_acct"))
        self.wire.receive("@account=alice_acct :alice!al@alice.example PRIVMSG #chan :hi")
        [message] = self.events()
        self.assertEqual(message.who.id, "alice_acct")
        self.assertEqual(self.source.verified_identity(message), "alice_acct")

    def test_extended_join_account(self) -> None:
        self.wire.receive(":dave!d@dave.example JOIN #chan dave_acct :Dave")
        self.wire.receive(":dave!d@dave.example PRIVMSG #chan :hi")
        _, message = self.events()
        self.assertEqual(message.who.id, "dave_acct")

    def test_multi_prefix_and_userhost_in_names(self) -> None:
        self.wire.join("#two", "@+bot +@erin!e@erin.example frank!f@frank.example")
        self.assertEqual(self.protocol.members("#two"), {"bot": "@+", "erin": "@+", "frank": ""})
        erin = self.protocol.users["erin"]
        self.assertEqual((erin.user, erin.host), ("e", "erin.example"))


class SASLMechanismTests(WireTestCase):
    options = {"account": "acct", "account_password": "pw"}

    def start_sasl(self, offered: str) -> list[str]:
        self.wire.sent()
        self.wire.receive(f":irc.example.net CAP * LS :sasl={offered}")
        self.wire.receive(":irc.example.net CAP bot ACK :sasl")
        return self.wire.sent()

    def test_scram_preferred_then_plain(self) -> None:
        """SCRAM-SHA-256 first (EXTERNAL needs a certificate); a failure falls back to
        the next mechanism the server offers."""
        self.assertEqual(
            self.start_sasl("PLAIN,SCRAM-SHA-256,EXTERNAL"),
            ["CAP REQ :sasl", "AUTHENTICATE SCRAM-SHA-256"],
        )
        self.wire.receive("AUTHENTICATE +")
        [first] = self.wire.sent()
        self.assertTrue(base64.b64decode(first.split()[1]).startswith(b"n,,n=acct,r="))
        self.wire.receive(":irc.example.net 904 bot :SASL authentication failed")
        self.assertEqual(self.wire.sent(), ["AUTHENTICATE PLAIN"])

    def test_endless_challenge_aborted(self) -> None:
        """A server that never ends its challenge (full 400-byte chunks for ever) gets the
        exchange aborted once it passes the limit."""
        self.start_sasl("SCRAM-SHA-256")
        self.wire.receive("AUTHENTICATE +")
        self.wire.sent()
        for _ in range(200):
            self.wire.receive("AUTHENTICATE " + "A" * 400)
        self.assertEqual(self.wire.sent(), ["AUTHENTICATE *"])
        self.assertIn("SASL challenge longer than", self.log_text())

    def test_configured_order(self) -> None:
        self.connect(account="acct", account_password="pw", sasl_mechanisms=["PLAIN"])
        self.assertEqual(
            self.start_sasl("PLAIN,SCRAM-SHA-256"), ["CAP REQ :sasl", "AUTHENTICATE PLAIN"]
        )

    def test_mechanism_list_from_908(self) -> None:
        """ERR 908 lists the server's mechanisms: others are not tried."""
        self.start_sasl("")
        self.wire.receive(
            ":irc.example.net 908 bot EXTERNAL :are available SASL mechanisms",
            ":irc.example.net 904 bot :SASL authentication failed",
        )
        self.assertEqual(self.wire.sent(), ["CAP END"])

    def test_external_only_over_tls_with_certificate(self) -> None:
        """EXTERNAL is used on a TLS connection with a client certificate, not without."""
        source = make_source(self.clock, tls_certificate="", sasl_mechanisms=["EXTERNAL"])
        source.tls_certificate = "/some/cert.pem"  # not read: the connection is not TLS
        wire = Wire(source)
        wire.sent()
        wire.receive(":irc.example.net CAP * LS :sasl=EXTERNAL")
        self.assertEqual(wire.sent(), ["CAP END"])
        wire.lose()
        wire = Wire(source)
        directlyProvides(wire.transport, ISSLTransport)
        wire.sent()
        wire.receive(
            ":irc.example.net CAP * LS :sasl=EXTERNAL", ":irc.example.net CAP bot ACK :sasl"
        )
        self.assertEqual(wire.sent(), ["CAP REQ :sasl", "AUTHENTICATE EXTERNAL"])
        wire.receive("AUTHENTICATE +")
        self.assertEqual(wire.sent(), ["AUTHENTICATE +"])
        wire.lose()

    def test_required_but_not_offered(self) -> None:
        """sasl_required with a server that has no SASL: the bot leaves, logging why."""
        self.connect(account="acct", account_password="pw", sasl_required=True)
        self.wire.sent()
        self.wire.receive(":irc.example.net CAP * LS :message-tags")
        self.assertTrue(self.wire.transport.disconnecting or self.protocol.lost_reason)
        self.assertIn("sasl_required is set", self.log_text())

    def test_required_without_cap_support(self) -> None:
        """A server that knows no CAP welcomes the bot at once: with sasl_required it
        does not stay."""
        self.connect(account="acct", account_password="pw", sasl_required=True)
        self.wire.sent()
        self.wire.receive(":irc.example.net 001 bot :Welcome bot!~bot@host")
        self.assertFalse(self.protocol.registered)
        self.assertIn("QUIT :SASL required", self.wire.sent())


class MemoryStore:
    """An STS store for tests: what was saved, and what load returns."""

    def __init__(self, value: Any = None) -> None:
        self.value = value
        self.saved: list[Any] = []

    def load(self) -> Deferred[Any]:
        return succeed(self.value)

    def save(self, value: Any) -> Deferred[None]:
        self.saved.append(value)
        return succeed(None)


class STSTests(WireTestCase):
    def test_plain_connection_upgrades(self) -> None:
        """sts=port=6697 on a plain connection: the bot drops it and the next attempt is
        TLS on that port, without registering in plain text."""
        self.wire.sent()
        self.wire.receive(":irc.example.net CAP * LS :sts=port=6697 message-tags")
        self.assertTrue(self.protocol.sts_upgrade)
        self.assertEqual(self.wire.sent(), [])
        self.assertEqual(
            self.source.sts_server("tcp:irc.example.net:6667"), "tls:irc.example.net:6697"
        )
        # Other hosts are not concerned.
        self.assertEqual(
            self.source.sts_server("tcp:other.example:6667"), "tcp:other.example:6667"
        )

    def test_secure_connection_stores_policy(self) -> None:
        """On TLS, sts=duration=D is stored for D seconds; 0 removes it."""
        store = MemoryStore()
        self.source.sts_policies = StsPolicies(self.clock, store)
        self.wire.lose()
        self.wire = Wire(self.source, "tls:irc.example.net:6697")
        directlyProvides(self.wire.transport, ISSLTransport)
        self.protocol = self.wire.protocol
        self.wire.receive(":irc.example.net CAP * LS :sts=duration=300,port=6697")
        self.assertEqual(store.saved, [{"irc.example.net": {"port": 6697, "expires": 300.0}}])
        self.assertEqual(
            self.source.sts_server("tcp:irc.example.net:6667"), "tls:irc.example.net:6697"
        )
        self.clock.advance(301)
        self.assertEqual(
            self.source.sts_server("tcp:irc.example.net:6667"), "tcp:irc.example.net:6667"
        )
        self.wire.receive(":irc.example.net CAP * LS :sts=duration=0")
        self.assertEqual(store.saved[-1], {})

    def test_loaded_policy_applies(self) -> None:
        """A stored policy (from an earlier run) holds until it expires."""
        policies = StsPolicies(
            self.clock, MemoryStore({"irc.example.net": {"port": 7000, "expires": 50.0}})
        )
        policies.load()
        self.source.sts_policies = policies
        self.assertEqual(
            self.source.sts_server("tcp:irc.example.net:6667"), "tls:irc.example.net:7000"
        )

    def test_sts_off(self) -> None:
        wire = self.connect(sts=False)
        wire.sent()
        wire.receive(":irc.example.net CAP * LS :sts=port=6697")
        self.assertFalse(self.protocol.sts_upgrade)
        self.assertEqual(
            self.source.sts_server("tcp:irc.example.net:6667"), "tcp:irc.example.net:6667"
        )

    def test_bad_port_ignored(self) -> None:
        self.wire.sent()
        self.wire.receive(":irc.example.net CAP * LS :sts=port=none")
        self.assertFalse(self.protocol.sts_upgrade)
        self.assertIn("no valid port", self.log_text())


class TLSOptionTests(WireTestCase):
    def test_ssl_endpoint_refused(self) -> None:
        with self.assertRaises(ValueError) as caught:
            ServerListOption("servers").parse("ssl:irc.example.net:6697")
        self.assertIn("tls:HOST:PORT", str(caught.exception))
        self.assertIn("tls_ca_file", str(caught.exception))

    def test_missing_ca_file_is_a_config_error(self) -> None:
        with self.assertRaises(ValueError) as caught:
            IRCSource.tls_ca_file.parse("/nonexistent/ca.pem")
        self.assertIn("cannot read /nonexistent/ca.pem", str(caught.exception))

    def test_certificate_without_key(self) -> None:
        """A client certificate without its key is named in the log (every connection
        attempt fails the same way), never a crash."""
        import os

        from tests.sources.ircv3_harness import IRCv3Network

        network = IRCv3Network()
        self.addCleanup(network.cleanup)
        network.write_certificates()
        only_cert = os.path.join(network.directory, "only-cert.pem")
        with open(network.client_cert, "rb") as full, open(only_cert, "wb") as out:
            out.write(full.read().split(b"-----BEGIN PRIVATE KEY")[0])
        self.assertEqual(IRCSource.tls_certificate.parse(only_cert), only_cert)
        with self.assertRaises(ValueError):
            IRCSource.tls_key.parse(only_cert)
        source = make_source(self.clock, tls_certificate=only_cert)
        self.assertIn("tls_key", self.log_text())
        with self.assertRaises(ValueError):
            source.build_endpoint("tls:irc.example.net:6697")
        source = make_source(self.clock, tls_certificate=network.client_cert)
        source.build_endpoint("tls:irc.example.net:6697")  # cert and key in one file: fine


class STSRotationTests(SynchronousTestCase):
    """STS through the source's reconnection: the upgrade happens at once, and while a
    policy holds a refused TLS connection is retried as TLS, never in plain text."""

    def test_upgrade_then_no_plaintext_fallback(self) -> None:
        clock = Clock()
        plan: dict[str, list[bool]] = {"tls:a.example:6697": [False, False, True]}
        connected: list[tuple[str, Any, Any]] = []
        store = MemoryStore()
        source = RecordingIRCSource(
            "irc",
            StubContext(reactor=clock),
            {**BASE, "servers": ["tcp:a.example:6667"]},
            reactor=clock,
            endpoint_factory=lambda server: ScriptedEndpoint(server, plan, connected),
            jitter=lambda: 1.0,
        )
        source.setup()
        source.sts_policies = StsPolicies(clock, store)
        source.startService()
        [(server, protocol, _)] = connected
        self.assertEqual(server, "tcp:a.example:6667")
        protocol.dataReceived(b":a.example CAP * LS :sts=port=6697\r\n")
        # Reconnected at once (no backoff) to the TLS port, which refuses twice: each
        # retry is TLS again, with the usual backoff.
        clock.advance(0)
        self.assertEqual(source.failures, 1)  # the first TLS attempt, made at once
        for _ in range(2):
            clock.advance(source.reconnect_max_delay)
        self.assertEqual([c[0] for c in connected], ["tcp:a.example:6667", "tls:a.example:6697"])
        self.assertEqual(source.failures, 2)
        _, secure, secure_transport = connected[-1]
        directlyProvides(secure_transport, ISSLTransport)
        secure.dataReceived(b":a.example CAP * LS :sts=duration=86400\r\n")
        self.assertEqual(store.saved[-1]["a.example"]["port"], 6697)
        secure.dataReceived(b":a.example 001 bot :Welcome bot!~bot@host\r\n")
        self.assertEqual(source.state, "connected")
        self.successResultOf(source.stopService())
