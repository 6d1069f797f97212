"""Hostile and broken input never crashes or stalls the IRC protocol: invalid UTF-8,
over-long lines, missing parameters, malformed prefixes, unexpected numerics, and a
property-based test feeding it random lines."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from twisted.internet.task import Clock
from twisted.logger import LogLevel, globalLogPublisher
from twisted.trial.unittest import SynchronousTestCase

from botcore.event import EventType
from sources.irc.protocol import MAX_LINE
from tests.sources.irc_harness import Wire, make_source

COMMANDS = [
    "PRIVMSG", "NOTICE", "JOIN", "PART", "KICK", "QUIT", "NICK", "MODE", "TOPIC", "INVITE",
    "PING", "PONG", "ERROR", "CAP", "AUTHENTICATE", "ACCOUNT", "CHGHOST", "AWAY", "WALLOPS",
    "001", "002", "004", "005", "302", "303", "324", "329", "330", "332", "333", "353",
    "354", "366", "372", "375", "376", "396", "401", "403", "421", "432", "433", "437",
    "464", "471", "473", "474", "475", "477", "900", "903", "904", "907", "999", "000",
]  # fmt: skip
WORDS = ["bot", "#chan", "alice", "*", "=", "@", "+", "", ":", "\x01", "\x01ACTION", "-",
         "+o", "-v+b", "bot!u@h", "!@", "#", "@#chan", "PREFIX=(ov)@+", "CHANTYPES=",
         "PREFIX=garbage", "CASEMAPPING=ascii", "sasl", "LS", "ACK", "NAK", "multi-prefix",
         "\x01VERSION\x01", "\x01PING x\x01", "é", "\udcff", "0", "152",
         "account-notify"]  # fmt: skip

word = st.one_of(st.sampled_from(WORDS), st.text(max_size=12))
prefix = st.one_of(
    st.just(""),
    st.sampled_from(["irc.example.net", "alice!a@h", "bot!~bot@host", "!", "@", "a!", "x@"]),
    st.text(max_size=15),
)
structured = st.builds(
    lambda tags, pre, command, params, trailing: (
        (f"@{tags} " if tags else "")
        + (f":{pre} " if pre else "")
        + command
        + "".join(" " + p for p in params)
        + (f" :{trailing}" if trailing is not None else "")
    ),
    st.one_of(st.just(""), st.sampled_from(["account=alice", "a=b;c", "=;;", "x\\"])),
    prefix,
    st.one_of(st.sampled_from(COMMANDS), st.text(min_size=1, max_size=6)),
    st.lists(word, max_size=6),
    st.one_of(st.none(), word, st.text(max_size=40)),
).map(lambda line: line.encode("utf-8", "surrogateescape"))
raw = st.binary(max_size=120)
lines = st.lists(st.one_of(structured, structured, raw), min_size=1, max_size=30)


def check_alive(testcase: SynchronousTestCase, wire: Wire) -> None:
    """The protocol still answers PING and still turns a message into an event."""
    wire.sent()
    wire.source.take_events()
    wire.receive("PING :sanity", ":zed!z@h PRIVMSG #sanity :still there?")
    testcase.assertIn("PONG :sanity", wire.sent())
    testcase.assertFalse(wire.transport.disconnected)
    messages = [e for e in wire.source.take_events() if e.type == EventType.MESSAGE]
    testcase.assertEqual([e.message.raw for e in messages], ["still there?"])


class RandomLinesTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.logged: list[dict] = []
        globalLogPublisher.addObserver(self.logged.append)
        self.addCleanup(globalLogPublisher.removeObserver, self.logged.append)

    def wire(self, registered: bool) -> Wire:
        wire = Wire(make_source(Clock(), channels=["#chan"], regain_interval=5.0))
        if registered:
            wire.register()
            wire.join("#chan", "@bot alice +bob")
        return wire

    @settings(
        max_examples=300,
        deadline=None,
        derandomize=True,
        suppress_health_check=[HealthCheck.too_slow],
    )
    @given(lines=lines, registered=st.booleans(), chunk=st.integers(min_value=1, max_value=64))
    def test_random_lines(self, lines: list[bytes], registered: bool, chunk: int) -> None:
        """Random lines, cut into random chunks, never raise, never close the connection,
        never log a traceback, and leave the protocol working."""
        wire = self.wire(registered)
        data = b"\r\n".join(lines) + b"\r\n"
        for start in range(0, len(data), chunk):
            wire.protocol.dataReceived(data[start : start + chunk])
        for event in wire.source.take_events():
            if event.type in EventType.TEXT:
                self.assertIsNotNone(event.sender)
                self.assertIsInstance(event.message.raw, str)
                self.assertTrue(event.channel)
        wire.clock.advance(1)
        if not registered:
            wire.register()
        check_alive(self, wire)
        self.assertFalse([e for e in self.logged if e.get("log_failure") is not None])
        wire.lose()
        self.logged.clear()


class HostileInputTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.logged: list[dict] = []
        globalLogPublisher.addObserver(self.logged.append)
        self.addCleanup(globalLogPublisher.removeObserver, self.logged.append)
        self.source = make_source(Clock(), channels=["#chan"])
        self.wire = Wire(self.source)
        self.wire.register()
        self.wire.join("#chan", "@bot alice")
        self.source.take_events()

    def tearDown(self) -> None:
        check_alive(self, self.wire)
        self.wire.lose()

    def warnings(self) -> list[str]:
        return [e["log_format"] for e in self.logged if e.get("log_level") == LogLevel.warn]

    def test_invalid_utf8(self) -> None:
        """Text that is not UTF-8 is decoded with the fallback encoding."""
        self.wire.receive(b":alice!a@h PRIVMSG #chan :caf\xe9 \x81")
        [event] = self.source.take_events()
        self.assertEqual(event.message.raw, "café \ufffd")

    def test_overlong_line_dropped(self) -> None:
        """A line over the limit is dropped with a warning; the next lines still count."""
        self.wire.receive(
            b":alice!a@h PRIVMSG #chan :" + b"x" * MAX_LINE, ":alice!a@h PRIVMSG #chan :ok"
        )
        [event] = self.source.take_events()
        self.assertEqual(event.message.raw, "ok")
        self.assertEqual(len(self.warnings()), 1)

    def test_overlong_line_across_chunks(self) -> None:
        """An endless line arriving in pieces is dropped without holding it all in memory."""
        self.wire.protocol.dataReceived(b":alice!a@h PRIVMSG #chan :")
        for _ in range(5):
            self.wire.protocol.dataReceived(b"y" * MAX_LINE)
            self.assertLessEqual(len(self.wire.protocol._buffer), MAX_LINE)
        self.wire.protocol.dataReceived(b"tail\r\n:alice!a@h PRIVMSG #chan :after\r\n")
        self.assertEqual([e.message.raw for e in self.source.take_events()], ["after"])

    def test_missing_parameters(self) -> None:
        """Commands without their parameters are ignored quietly."""
        for command in ("PRIVMSG", "NOTICE", "JOIN", "PART", "KICK", "NICK", "MODE", "INVITE",
                        "TOPIC", "CAP", "AUTHENTICATE", "ACCOUNT", "CHGHOST", "PING"):  # fmt: skip
            self.wire.receive(f":alice!a@h {command}")
        for numeric in ("001", "005", "302", "303", "330", "332", "353", "354", "366", "372",
                        "375", "376", "396", "433", "474", "900", "904"):  # fmt: skip
            self.wire.receive(f":irc.example.net {numeric}")
        self.assertEqual([e for e in self.source.take_events() if e.type != "source"], [])
        self.assertFalse([e for e in self.logged if e.get("log_failure") is not None])

    def test_malformed_prefixes(self) -> None:
        """Prefixes without a nick, user or host make no event and no error."""
        for pre in ("", "!", "@", "!@", "nick!", "!user@host", ":"):
            self.wire.receive(f":{pre} PRIVMSG #chan :x", f":{pre} JOIN #chan", f":{pre} QUIT :x")
        self.assertFalse([e for e in self.logged if e.get("log_failure") is not None])

    def test_unexpected_numerics(self) -> None:
        """Numerics nobody expects are ignored."""
        self.wire.receive(":irc.example.net 999 bot a b :c", ":irc.example.net 000", "123")
        self.assertEqual(self.source.take_events(), [])

    def test_crazy_modes(self) -> None:
        """Nonsense MODE lines leave the member list consistent."""
        self.wire.receive(
            ":op!o@h MODE #chan +oooo alice",
            ":op!o@h MODE #chan -+-+",
            ":op!o@h MODE #chan +v nobody",
            ":op!o@h MODE #chan",
            ":op!o@h MODE #chan +b",
        )
        self.assertEqual(self.source.members("#chan"), {"bot": "@", "alice": "@"})

    def test_blank_and_control_lines(self) -> None:
        """Blank lines, lone CRs and NULs are skipped."""
        self.wire.protocol.dataReceived(b"\r\n\n\r\r\n\0\r\n   \r\n")
        self.assertEqual(self.source.take_events(), [])
