"""Tests for the basic plugin: echo, ping, version and uptime, in private and in public."""

from __future__ import annotations

import re

import botcore
from botcore.testing import PluginTestCase


class PrivateTests(PluginTestCase):
    """The basic commands, said privately."""

    load = ["basic"]

    def test_ping(self):
        """ping answers pong, whatever the case and trailing punctuation."""
        self.assertResponseMatches("ping", "^pong$")
        self.assertResponseMatches("PING?", "^pong$")
        self.assertSucceeds("ping")

    def test_ping_only(self):
        """ping followed by more words is not the ping command."""
        self.assertFails("ping pong")

    def test_echo(self):
        """echo says the text back as typed, punctuation and inner spaces included."""
        self.assertEqual(self.responses("echo Hello,  world!"), ["Hello,  world!"])
        self.assertEqual(self.responses("  echo 100%  "), ["100%"])

    def test_echo_nothing(self):
        """echo with nothing to say is not understood."""
        self.assertFails("echo")
        self.assertFails("echo   ")

    def test_version(self):
        """version answers 'botcore <version>'."""
        self.assertResponseMatches("version", f"^botcore {re.escape(botcore.__version__)}$")
        self.bot.version = "9.8.7"
        self.assertEqual(self.responses("version"), ["botcore 9.8.7"])

    def test_uptime(self):
        """uptime tells how long the bot has been running, by the bot's clock."""
        self.assertResponseMatches("uptime", r"^I've been up for 0 seconds \(since .* UTC\)$")
        self.advance(90061)
        self.assertResponseMatches(
            "uptime", r"^I've been up for 1 day, 1 hour, 1 minute and 1 second \(since"
        )

    def test_uptime_before_start(self):
        """Before the bot has finished starting, uptime says so."""
        self.bot.started_at = None
        self.assertEqual(self.responses("uptime"), ["I'm still starting up"])


class PublicTests(PluginTestCase):
    """The basic commands, said in a channel."""

    load = ["basic"]
    public = True

    def test_addressed(self):
        """Addressed commands are answered to the sender."""
        self.assertResponseMatches("botcore: ping", "^user: pong$")
        self.assertResponseMatches("ping, botcore", "^user: pong$")
        self.assertResponseMatches("botcore version", "^user: botcore ")
        self.assertResponseMatches("botcore: uptime", "^user: I've been up for ")

    def test_echo_not_addressed_back(self):
        """echo says exactly the text, without naming the sender."""
        self.assertEqual(self.responses("botcore: echo hi there!"), ["hi there!"])

    def test_not_addressed(self):
        """Commands not addressed to the bot are not answered."""
        self.assertNoResponse("ping")
        self.assertNoResponse("echo hello")
        self.assertNoResponse("uptime")
