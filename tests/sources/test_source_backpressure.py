"""Each source's pause and resume (issue 14), on memory transports and a Clock: the XMPP
stream and the telnet consoles stop reading their transports (and the XMPP keepalive does
not take a paused stream for a dead one), the Matrix sync loop waits before its next
/sync, and the web front door answers 503 with Retry-After; the telnet console driven by
a real dispatcher pauses at max_queued and loses nothing. (IRC: test_irc_backpressure.)"""

from __future__ import annotations

import treq
from twisted.internet import reactor
from twisted.internet.defer import ensureDeferred
from twisted.internet.testing import StringTransport
from twisted.trial.unittest import TestCase
from twisted.words.protocols.jabber import xmlstream

from botcore.testing import ManualThreadPool
from tests.sources.test_matrix_source import ROOM as MATRIX_ROOM
from tests.sources.test_matrix_source import MatrixSourceTestCase, sync
from tests.sources.test_matrix_source import message as matrix_message
from tests.sources.test_telnet import TelnetTestCase
from tests.sources.test_xmpp_source import HEADER, SourceTestCase, _Auth
from tests.sources.web_harness import WebBot


class XMPPPauseTests(SourceTestCase):
    def chat(self, n: int) -> str:
        return (
            f"<message from='alice@example.org/x' to='bot@example.org/botcore' type='chat' "
            f"id='m{n}'><body>hello {n}</body></message>"
        )

    def test_pause_and_resume_the_stream(self) -> None:
        """Paused, the stream's transport stops producing; resumed, it produces again."""
        self.source.pause_input()
        self.assertEqual(self.transport.producerState, "paused")
        self.source.resume_input()
        self.assertEqual(self.transport.producerState, "producing")

    def test_what_was_read_is_dispatched(self) -> None:
        """The stanzas of the read that brought the pause still become events."""
        emit = self.source.emit

        def emitting(event):
            emit(event)
            if len(self.texts()) == 2:
                self.source.pause_input()

        self.source.emit = emitting  # type: ignore[method-assign]
        self.feed("".join(self.chat(n) for n in range(4)))
        self.assertEqual([e.message.raw for e in self.texts()], [f"hello {n}" for n in range(4)])
        self.assertEqual(self.transport.producerState, "paused")
        self.source.resume_input()

    def test_no_ping_timeout_while_paused(self) -> None:
        """A paused stream is not pinged, and a ping already out does not time out while
        paused; resumed, an unanswered ping drops the stream as before."""
        self.sent()
        self.clock.advance(self.source.ping_interval)
        self.assertIn("botcore-ping-1", self.sent())
        self.source.pause_input()
        self.clock.advance(self.source.ping_timeout * 5 + self.source.ping_interval * 3)
        self.assertFalse(self.transport.disconnecting)
        self.assertNotIn("botcore-ping", self.sent())
        self.source.resume_input()
        self.clock.advance(self.source.ping_timeout)
        self.assertTrue(self.transport.disconnecting)

    def test_new_stream_starts_paused(self) -> None:
        """A stream logged in while the input is paused is paused from the start."""
        self.source.pause_input()
        self.connection.close()
        transport = StringTransport()
        xs = xmlstream.XmlStream(_Auth())
        xs.makeConnection(transport)
        xs.dataReceived(HEADER)
        self.source._authenticated(xs)
        self.connection = self.source.connection
        self.assertEqual(transport.producerState, "paused")
        self.source.resume_input()
        self.assertEqual(transport.producerState, "producing")


class TelnetPauseTests(TelnetTestCase):
    pool_class = ManualThreadPool

    def setUp(self) -> None:
        super().setUp()
        self.dispatcher.max_queued = 4
        self.dispatcher.threads = 1

    def test_backlog_pauses_every_console(self) -> None:
        """A console typing faster than the bot answers: at max_queued events waiting
        every console stops reading; at half it reads again; every line is answered."""
        console, transport = self.connect("alice")
        _, other = self.connect("bob")
        console.dataReceived(b"ping\r\n" * 12)
        self.assertEqual((transport.producerState, other.producerState), ("paused", "paused"))
        self.assertEqual(self.dispatcher.dropped, 0)
        while self.pool.jobs:
            self.pool.run()
        self.assertEqual((transport.producerState, other.producerState), ("producing",) * 2)
        self.assertEqual(self.lines(transport), ["pong"] * 12)

    def test_hold_and_full_output_together(self) -> None:
        """Reading resumes only once the source's input is resumed and the client has
        read its output (both reasons to pause are kept)."""
        console, transport = self.connect("alice")
        self.source.pause_input()
        console.pauseProducing()  # the client stopped reading too
        self.source.resume_input()
        self.assertEqual(transport.producerState, "paused")
        console.resumeProducing()
        self.assertEqual(transport.producerState, "producing")
        console.pauseProducing()
        self.source.pause_input()
        console.resumeProducing()
        self.assertEqual(transport.producerState, "paused")
        self.source.resume_input()
        self.assertEqual(transport.producerState, "producing")

    def test_new_console_starts_held(self) -> None:
        """A console connecting while the input is paused is not read until resumed."""
        self.source.pause_input()
        _, transport = self.connect()
        self.assertEqual(transport.producerState, "paused")
        self.source.resume_input()
        self.assertEqual(transport.producerState, "producing")


class MatrixPauseTests(MatrixSourceTestCase):
    def test_sync_waits_while_paused(self) -> None:
        """Paused by what a sync brought, the loop asks for no next /sync until resumed;
        then it syncs from where it was."""
        emit = self.events.append

        def emitting(event):
            emit(event)
            if event.message is not None:
                self.source.pause_input()

        self.source.emit = emitting  # type: ignore[method-assign]
        self.log_in()
        self.hs.answer("/sync", sync("b2", {MATRIX_ROOM: [matrix_message("$1", "hello")]}))
        self.assertEqual([e.message.raw for e in self.texts()], ["hello"])
        self.assertEqual([r for r in self.hs.pending if "/sync" in r.path], [])
        self.clock.advance(self.source.sync_timeout * 3)
        self.assertEqual([r for r in self.hs.pending if "/sync" in r.path], [])
        self.source.resume_input()
        request = self.hs.answer("/sync", sync("b3"))
        self.assertIn("since=b2", request.path)
        self.assertEqual(self.source.state, "connected")

    def test_stop_while_paused(self) -> None:
        """A source stopped while its loop waits stops cleanly."""
        self.log_in()
        self.source.pause_input()
        self.hs.answer("/sync", sync("b2"))
        self.successResultOf(self.source.stopService())


class WebPauseTests(TestCase):
    timeout = 120

    async def test_busy_answers_503(self) -> None:
        """While the web front door's input is paused, /fire is answered 503 with
        Retry-After instead of being queued; resumed, it is answered again."""
        web = WebBot()
        await web.start()
        self.addCleanup(lambda: ensureDeferred(web.stop()))
        source = web.bot.get_source("web")
        assert source is not None
        self.assertTrue(source.can_pause)
        source.pause_input()
        response = await treq.post(
            web.base + "/api/v1/fire",
            json={"text": "ping"},
            headers={"Authorization": f"Bearer {web.tokens['alice']}"},
            reactor=reactor,
            persistent=False,
        )
        body = await response.json()
        self.assertEqual(response.code, 503)
        self.assertEqual(response.headers.getRawHeaders("Retry-After"), ["1"])
        self.assertIn("too many events are waiting", body["error"]["message"])
        source.resume_input()
        code, body = await web.call("POST", "/api/v1/fire", {"text": "ping"})
        self.assertEqual(code, 200, body)
        code, text = await web.call("GET", "/metrics", user=None)
        self.assertIn("botcore_dispatcher_pauses_total 0.0", text)
