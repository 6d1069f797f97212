"""Tests for the decide plugin: choose, roll, flip a coin and 8ball, in private and in
public, with the processors' random generators seeded."""

from __future__ import annotations

import random
import re

from botcore.plugins.decide import _EIGHTBALL
from botcore.testing import PluginTestCase


class PrivateTests(PluginTestCase):
    """The decide commands, said privately."""

    load = ["decide"]

    def seed(self, name: str, seed: int = 42) -> random.Random:
        """Seed the processor's generator; return a twin to predict it."""
        self.processor(name).random.seed(seed)
        return random.Random(seed)

    def test_choose(self):
        """choose picks one of the options separated by 'or' or commas."""
        twin = self.seed("Choose")
        expected = twin.choice(["tea", "coffee", "hot water"])
        self.assertEqual(
            self.responses("choose tea, coffee or hot water"), [f"I choose {expected}"]
        )

    def test_choose_every_option_possible(self):
        """Over many tries every option comes up, and nothing else does."""
        self.seed("Choose")
        seen = set()
        for _ in range(60):
            (reply,) = self.responses("choose a or b or c")
            seen.add(reply)
        self.assertEqual(seen, {"I choose a", "I choose b", "I choose c"})

    def test_choose_needs_two(self):
        """One option is not a choice."""
        self.assertResponseMatches("choose pizza", "at least two")

    def test_roll(self):
        """roll NdS throws N dice and adds them up, showing each die."""
        twin = self.seed("Roll")
        dice = [twin.randint(1, 6) for _ in range(2)]
        self.assertEqual(
            self.responses("roll 2d6"), [f"You rolled {sum(dice)} ({dice[0]} + {dice[1]})"]
        )

    def test_roll_modifier(self):
        """roll 3d6+2 adds the modifier; d20 throws one die."""
        twin = self.seed("Roll")
        dice = [twin.randint(1, 6) for _ in range(3)]
        shown = " + ".join(map(str, dice))
        self.assertEqual(
            self.responses("roll 3d6+2"), [f"You rolled {sum(dice) + 2} ({shown} + 2)"]
        )
        reply = self.responses("roll d20")[0]
        found = re.fullmatch(r"You rolled (\d+)", reply)
        self.assertTrue(found and 1 <= int(found.group(1)) <= 20, reply)
        self.assertResponseMatches("roll a die", r"^You rolled [1-6]$")

    def test_roll_bounds(self):
        """Too many dice, too many sides, huge numbers and nonsense get a clear message."""
        self.assertResponseMatches("roll 1000d6", "only have 100 dice of up to 1000 sides")
        self.assertResponseMatches("roll 2d100000", "only have 100 dice")
        self.assertResponseMatches("roll " + "9" * 5000 + "d6", "too big")
        self.assertResponseMatches("roll 0d6", "at least one die")
        self.assertResponseMatches("roll 2d1", "at least two sides")
        self.assertResponseMatches("roll the bones", "like 2d6")

    def test_flip(self):
        """flip a coin says Heads or Tails, and both come up."""
        self.seed("Coin")
        seen = {self.responses(text)[0] for text in ["flip a coin", "toss a coin"] * 20}
        self.assertEqual(seen, {"Heads", "Tails"})

    def test_eightball(self):
        """8ball answers a question with one of the 8 ball's answers."""
        twin = self.seed("EightBall")
        self.assertEqual(self.responses("8ball will it rain?"), [twin.choice(_EIGHTBALL)])
        self.assertIn(self.responses("magic 8-ball, am I right?")[0], _EIGHTBALL)
        self.assertResponseMatches("8ball", "question")


class ConfiguredTests(PluginTestCase):
    """Options of the decide plugin."""

    load = ["decide"]
    plugin_config = {"plugin:decide": {"max_dice": "3", "answers": "Maybe\nPerhaps"}}

    def test_options(self):
        """max_dice limits the dice; answers replaces the 8 ball's answers."""
        self.assertResponseMatches("roll 4d6", "only have 3 dice")
        self.assertIn(self.responses("8ball really?")[0], ["Maybe", "Perhaps"])


class PublicTests(PluginTestCase):
    """decide in a channel."""

    load = ["decide"]
    public = True

    def test_addressed(self):
        """Addressed, the bot answers the sender by name."""
        self.assertResponseMatches("botcore: flip a coin", r"^user: (Heads|Tails)$")
        self.assertResponseMatches("choose a or b, botcore", r"^user: I choose [ab]$")

    def test_not_addressed(self):
        """Not addressed, it stays quiet."""
        self.assertNoResponse("roll 2d6")
