"""Firing a message through the web API into a real IRC channel (ngircd on loopback): it
runs as if said there, its reply is said in the channel, where an IRC client sees it, and
comes back in the HTTP answer. Under CI=true a missing ngircd is a failure, not a skip."""

from __future__ import annotations

from twisted.internet.defer import ensureDeferred
from twisted.trial.unittest import TestCase

from tests import ircserver
from tests.ircserver import WAIT, IRCServer, connect_client
from tests.sources.test_irc_integration import wait_until
from tests.sources.web_harness import WebBot

CHANNEL = "#webfire"


class FireIntoIRCTests(TestCase):
    skip = ircserver.skip_reason()
    timeout = 4 * WAIT

    def setUp(self):
        self.server = IRCServer()
        self.addCleanup(self.server.cleanup)
        self.server.start()
        self.web = WebBot(
            extra=f"""\
                [source:irc]
                type = irc
                servers = {self.server.endpoint}
                nick = webbot
                channels = {CHANNEL}
                flood_rate = 0
                """
        )
        d = ensureDeferred(self.web.start())
        d.addCallback(lambda _: self.addCleanup(lambda: ensureDeferred(self.web.stop())))
        return d

    def joined(self) -> bool:
        protocol = self.web.bot.get_source("irc").protocol
        if protocol is None or not protocol.registered:
            return False
        return any(channel.name == CHANNEL for channel in protocol.channels.values())

    async def test_fire_into_channel(self):
        """A fired ``webbot: echo ...`` is answered in the IRC channel and over HTTP."""
        await wait_until(self.joined, "the bot to join " + CHANNEL)
        carol = await connect_client(self.server, "carol")
        self.addCleanup(lambda: carol.transport.loseConnection())
        start = len(carol.lines)
        carol.send(f"JOIN {CHANNEL}")
        await carol.wait_for(f"366 carol {CHANNEL}", since=start)  # joined: end of NAMES
        code, body = await self.web.call(
            "POST",
            "/api/v1/fire",
            {"text": "webbot: echo hello from the web", "source": "irc", "target": CHANNEL},
        )
        self.assertEqual(code, 200, body)
        self.assertEqual(
            [(r["source"], r["target"], r["text"]) for r in body["responses"]],
            [("irc", CHANNEL, "hello from the web")],
        )
        line = await carol.wait_for(f"PRIVMSG {CHANNEL} :hello from the web")
        self.assertTrue(line.startswith(":webbot!"), line)
