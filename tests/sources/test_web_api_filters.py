"""Outgoing filters see what the web front door's API sends and fires, over a real loopback
listener: a message sent with POST /api/v1/messages and the replies of a fired message
reach their sources changed by a plugin's filter, and the API answers with what was sent."""

from __future__ import annotations

from twisted.internet.defer import ensureDeferred
from twisted.trial.unittest import TestCase

from tests.sources.web_harness import WebBot

FILTER_PLUGIN = '''
"""Marks every reply; drops those that say 'forbidden'."""

from botcore.processor import Processor, outgoing


class Stamp(Processor):
    def setup(self):
        self.seen = []

    @outgoing(priority=10)
    def stamp(self, response, event):
        self.seen.append((event.type, response.source, response.target, response.text))
        if "forbidden" in response.text:
            return None
        return response.replace(text=f"{response.text} [stamped]")
'''


class ApiFilterTests(TestCase):
    timeout = 120

    def setUp(self):
        self.web = WebBot(load=", stamp", files={"plugins/stamp.py": FILTER_PLUGIN})
        d = ensureDeferred(self.web.start())
        d.addCallback(lambda _: self.addCleanup(lambda: ensureDeferred(self.web.stop())))
        return d

    def call(self, *args, **kw):
        return ensureDeferred(self.web.call(*args, **kw))

    def stamp(self):
        (processor,) = self.web.bot.loaded()["stamp"]
        return processor

    async def test_sent_message_filtered(self):
        """A message the API sends passes the filter on its way to its source; the API
        answers with what was sent, and a dropped one is sent nowhere."""
        code, body = await self.call(
            "POST", "/api/v1/messages", {"source": "mem", "target": "#chan", "text": "hello"}
        )
        self.assertEqual(code, 200, body)
        self.assertEqual(
            [(r.target, r.text) for r in self.web.mem.sent], [("#chan", "hello [stamped]")]
        )
        self.assertEqual([r["text"] for r in body["sent"]], ["hello [stamped]"])
        self.assertEqual(self.stamp().seen, [("say", "mem", "#chan", "hello")])
        code, body = await self.call(
            "POST", "/api/v1/messages", {"source": "mem", "target": "#chan", "text": "forbidden"}
        )
        self.assertEqual((code, body["sent"]), (200, []))
        self.assertEqual(len(self.web.mem.sent), 1)
        tally = self.web.bot.dispatcher.stats.filters["stamp.Stamp.stamp"]
        self.assertEqual((tally.seen, tally.changed, tally.dropped), (2, 1, 1))

    async def test_fired_message_replies_filtered(self):
        """The replies of a message fired into the chain pass the filter too."""
        code, body = await self.call("POST", "/api/v1/fire", {"text": "ping"})
        self.assertEqual(code, 200, body)
        self.assertEqual([r["text"] for r in body["responses"]], ["pong [stamped]"])
        self.assertEqual([t for *_, t in self.stamp().seen], ["pong"])
