"""The IRC source's pause and resume (issue 14) on a StringTransport and a Clock: told to
pause, it stops reading its connection at once, even in the middle of a read (the rest
waits in the protocol), and reads what it held back first when resumed; the keepalive
does not take a paused connection for a dead one."""

from __future__ import annotations

from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from tests.sources.irc_harness import Wire, make_source


class PauseTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        self.source = make_source(self.clock, ping_interval=60.0, ping_timeout=30.0)
        self.wire = Wire(self.source)
        self.wire.register()
        self.wire.join()
        self.source.take_events()
        #: Pause the source when it has emitted this many events (as the dispatcher would).
        self.pause_at: int | None = None
        emit = self.source.emit

        def emitting(event):
            emit(event)
            if self.pause_at is not None and len(self.source.events) == self.pause_at:
                self.source.pause_input()

        self.source.emit = emitting  # type: ignore[method-assign]

    def tearDown(self) -> None:
        self.wire.lose()
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def lines(self, count: int, start: int = 0) -> list[str]:
        return [f":alice!a@host PRIVMSG bot :line {n}" for n in range(start, start + count)]

    def texts(self) -> list[str]:
        return [event.message.raw for event in self.source.take_events()]

    def test_pause_in_the_middle_of_a_read(self) -> None:
        """Paused after the third of ten lines read at once: the transport stops producing
        and no fourth event is made; resumed, the other seven come, in order."""
        self.pause_at = 3
        self.wire.receive(*self.lines(10))
        self.assertEqual(self.wire.transport.producerState, "paused")
        self.assertEqual(self.texts(), [f"line {n}" for n in range(3)])
        self.pause_at = None
        self.source.resume_input()
        self.assertEqual(self.wire.transport.producerState, "producing")
        self.assertEqual(self.texts(), [f"line {n}" for n in range(3, 10)])

    def test_data_while_paused_is_held(self) -> None:
        """What still arrives while paused (a TLS layer delivering what it had
        decrypted) is held behind the lines already held, a split line included."""
        self.pause_at = 1
        self.wire.receive(*self.lines(2))
        self.wire.protocol.dataReceived(b":alice!a@host PRIVMSG bot :li")
        self.wire.protocol.dataReceived(b"ne 2\r\n" + "\r\n".join(self.lines(2, 3)).encode())
        self.assertEqual(self.texts(), ["line 0"])
        self.pause_at = None
        self.source.resume_input()
        self.assertEqual(self.texts(), ["line 1", "line 2", "line 3"])
        self.wire.protocol.dataReceived(b"\r\n")
        self.assertEqual(self.texts(), ["line 4"])

    def test_paused_again_while_reading_what_was_held(self) -> None:
        """A pause while the held lines are being read stops there again."""
        self.pause_at = 2
        self.wire.receive(*self.lines(6))
        self.assertEqual(len(self.texts()), 2)
        self.source.resume_input()
        self.assertEqual(self.texts(), ["line 2", "line 3"])
        self.assertEqual(self.wire.transport.producerState, "paused")
        self.pause_at = None
        self.source.resume_input()
        self.assertEqual(self.texts(), ["line 4", "line 5"])

    def test_keepalive_waits_while_paused(self) -> None:
        """A paused connection is not PINGed, and a PING already out does not time out
        while reading is paused; once resumed (what was held counts as heard from the
        server) the keepalive starts over."""
        self.clock.advance(60)
        self.assertEqual(self.wire.sent(), ["PING :botcore"])
        self.source.pause_input()
        self.clock.advance(300)
        self.assertFalse(self.wire.transport.disconnected)
        self.assertEqual(self.wire.sent(), [])
        self.source.resume_input()
        self.clock.advance(60)
        self.assertEqual(self.wire.sent(), ["PING :botcore"])
        self.clock.advance(29)
        self.assertFalse(self.wire.transport.disconnected)
        self.clock.advance(1)
        self.assertTrue(self.wire.transport.disconnected)
        self.assertEqual(self.wire.protocol.lost_reason, "ping timeout")

    def test_new_connection_starts_paused(self) -> None:
        """A connection made while the source's input is paused is paused from the start,
        and resumed with the source."""
        self.source.pause_input()
        self.wire.lose()
        wire = self.wire = Wire(self.source)
        self.assertEqual(wire.transport.producerState, "paused")
        self.source.resume_input()
        self.assertEqual(wire.transport.producerState, "producing")

    def test_pause_without_connection(self) -> None:
        """Told to pause or resume with no connection, the source only remembers it."""
        self.wire.lose()
        self.source.pause_input()
        self.assertTrue(self.source.input_paused)
        self.source.resume_input()
        self.assertFalse(self.source.input_paused)
