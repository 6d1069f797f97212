"""Tests for the help plugin: categories, help on a feature or plugin, usage, and the
stemmed search, all generated from the plugins loaded at the time of asking."""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from botcore.event import Event
from botcore.plugins.help import _first_sentence, stem, stems
from botcore.processor import Processor, match
from botcore.testing import PluginTestCase


class Juggle(Processor):
    """Juggles things for the audience."""

    usage = "juggle <things>"
    features = ("juggling",)

    @match("juggle {any}")
    def juggle(self, event: Event, things: str) -> None:
        event.addresponse("juggling %s", things)


class StemTests(SynchronousTestCase):
    """The suffix-stripping stemmer."""

    def test_forms_share_a_stem(self):
        """Inflected forms of a word reduce to one stem."""
        self.assertEqual(
            {stem(w) for w in ("remind", "reminders", "reminding", "reminded")}, {"remind"}
        )
        self.assertEqual(
            {stem(w) for w in ("calculate", "calculations", "calculator")}, {"calcul"}
        )
        self.assertEqual({stem(w) for w in ("flip", "flipping", "flips")}, {"flip"})
        self.assertEqual({stem(w) for w in ("log", "logs", "logging")}, {"log"})

    def test_short_words_kept(self):
        """Short words are not cut down to nothing."""
        self.assertEqual(stem("dies"), "die")
        self.assertEqual(stem("is"), "is")

    def test_stop_words(self):
        """Little words do not count in a search."""
        self.assertEqual(stems("what is the time"), {stem("time")})


class PrivateTests(PluginTestCase):
    """help, said privately, with basic, calc and decide loaded."""

    load = ["help", "basic", "calc", "decide"]

    def test_categories(self):
        """help lists each plugin with its commands' features; the plugins without
        commands (core) apart."""
        (reply,) = self.responses("help")
        self.assertIn("basic (echo, ping, uptime, version)", reply)
        self.assertIn("calc (calc)", reply)
        self.assertIn("decide (8ball, choose, coin, dice, roll)", reply)
        self.assertIn("help (help)", reply)
        commands, _, automatic = reply.partition("Working by themselves: ")
        self.assertNotIn("core", commands)
        self.assertTrue(automatic.startswith("core."), reply)
        self.assertEqual(self.responses("what can you do?"), [reply])

    def test_help_feature(self):
        """help <feature> gives its description and usage."""
        self.assertResponseMatches("help roll", r"^Rolls dice.*Usage: roll \[N\]d<sides>")
        self.assertResponseMatches("help calc", r"Usage: calc <sum>")
        self.assertResponseMatches("help with ping", r"Usage: ping$")

    def test_help_plugin(self):
        """help <plugin> gives the plugin's description and its features."""
        self.assertResponseMatches(
            "help decide", r"^Helps people make up their minds.*Features: 8ball, choose"
        )
        self.assertResponseMatches("help core", r"Features: .*ratelimit")
        self.assertResponseMatches("help basic", r"^Basic commands .* 'echo <text>' says")

    def test_help_unknown(self):
        """help on something unknown says so, suggesting features when the words match."""
        self.assertResponseMatches("help quantum", r"don't know about quantum; say 'help'")
        self.assertResponseMatches("help dices", r"don't know about dices, but try: .*dice")

    def test_usage(self):
        """usage <command> gives the usage of the commands starting with those words,
        and their examples (not those that are the usage word for word)."""
        self.assertEqual(self.responses("usage flip"), ["Usage: flip a coin"])
        self.assertResponseMatches(
            "usage of echo", r'^Usage: echo <text>\. For example: "echo hello world"$'
        )
        self.assertResponseMatches("usage what", r"what can you do about <word>")
        self.assertResponseMatches("usage frobnicate", r"don't know the command frobnicate")

    def test_search(self):
        """what can you do about <word> finds features by stem in names and descriptions."""
        self.assertResponseMatches("what can you do about dice", r"^For dice I have: dice, roll")
        self.assertResponseMatches("what can you do about calculations", r"I have: calc")
        self.assertResponseMatches("what do you know about coins?", r"I have: coin")
        self.assertResponseMatches(
            "what can you do about knitting", r"can't do anything about knitting"
        )

    def test_follows_loaded_plugins(self):
        """The answers come from the plugins loaded now: a plugin loaded (or unloaded) later
        shows up (or disappears) without any reload of help itself."""
        self.assertNotIn("juggling", self.responses("help")[0])
        self.bot.plugins.loaded["juggler"] = [Juggle("juggler", self.bot.context, {})]
        self.assertIn("juggler (juggling)", self.responses("help")[0])
        self.assertResponseMatches("help juggling", r"Juggles things.*Usage: juggle <things>")
        self.assertResponseMatches("what can you do about juggle", r"I have: juggling")
        del self.bot.plugins.loaded["calc"]
        self.assertNotIn("calc", self.responses("help")[0])


class AutomaticAndSentenceTests(PluginTestCase):
    """Plugins without commands are listed too, and descriptions are whole sentences
    (issue 13, item 10)."""

    load = ["help", "basic", "log", "identity"]

    def test_log_listed(self):
        """help names the log plugin (it has no commands, but it runs)."""
        (reply,) = self.responses("help")
        self.assertIn("Working by themselves: core, log.", reply)
        self.assertIn("identity (accounts, auth, permissions)", reply)
        self.assertResponseMatches("help log", r"^Writes every message.*Usage: \(automatic\)")

    def test_help_auth_whole_sentence(self):
        """help auth gives the whole first sentence, not up to the '...' inside it."""
        (reply,) = self.responses("help auth")
        self.assertTrue(
            reply.startswith(
                "Carries out the commands that carry a secret ('auth <password>', "
                "'authenticate ... using password <password>',"
            ),
            reply,
        )
        self.assertIn("'link token <token>': 'botcore.accounts.secrets' declares them). Usage:",
                      reply)  # fmt: skip

    def test_first_sentence(self):
        """Sentence ends are full stops before a capital or the end, outside brackets;
        ellipses, abbreviations and dotted names end none."""
        for text, first in [
            ("One. Two.", "One."),
            ("Says hi (e.g. to bob). More.", "Says hi (e.g. to bob)."),
            ("Uses e.g. this. More.", "Uses e.g. this."),
            ("Waits... then acts. More.", "Waits... then acts."),
            ("Reads botcore.accounts. More.", "Reads botcore.accounts."),
            ("Says 'a. b' too. More", "Says 'a. b' too."),
            ("Really? Yes.", "Really?"),
            ("No end", "No end"),
            ("", ""),
            (None, ""),
        ]:
            self.assertEqual(_first_sentence(text), first, text)


class PublicTests(PluginTestCase):
    """help in a channel."""

    load = ["help", "calc"]
    public = True

    def test_addressed(self):
        """Addressed, help answers the sender by name."""
        self.assertResponseMatches("botcore: help calc", r"^user: .*Usage: calc <sum>")

    def test_not_addressed(self):
        """Not addressed, help stays quiet."""
        self.assertNoResponse("help")
