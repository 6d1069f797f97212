"""Helps people make up their minds: ``choose pizza or pasta``, ``roll 2d6`` (or ``d20``,
``3d6+2``), ``flip a coin``, and ``8ball <question>`` for the Magic 8 Ball's advice."""

from __future__ import annotations

import random
import re

from botcore.event import Event
from botcore.options import IntOption, LinesOption
from botcore.processor import Processor, example, match

_DICE = re.compile(r"^(\d*)d(\d+)(?:\s*([+-])\s*(\d+))?$", re.IGNORECASE)


class Decider(Processor):
    """Shared by the decide processors: a ``random.Random`` tests can seed."""

    abstract = True

    def __init__(self, *args, **kw) -> None:
        super().__init__(*args, **kw)
        self.random = random.Random()


class Choose(Decider):
    """Picks one of the choices given."""

    usage = "choose <a> or <b> [or <c>...] (commas work too)"
    features = ("choose",)

    @example("choose tea or coffee", r"\b(tea|coffee)\b")
    @match(r"^\s*(?:choose|pick|decide)\s+(?:between\s+)?(.+?)\s*$", simple=False)
    def choose(self, event: Event, text: str) -> None:
        choices = [c.strip() for c in re.split(r"\s*,\s*(?:or\s+)?|\s+or\s+", text) if c.strip()]
        if len(choices) < 2:
            event.addresponse("Give me at least two things to choose from, like 'a or b'")
            return
        event.addresponse("I choose %s", self.random.choice(choices))


class Roll(Decider):
    """Rolls dice: ``roll 2d6``, ``roll d20``, ``roll 3d6+2``."""

    usage = "roll [N]d<sides>[+|-<modifier>], e.g. roll 2d6, roll d20, roll 3d6+2"
    features = ("roll", "dice")

    max_dice = IntOption("The most dice one roll may throw.", 100, min=1)
    max_sides = IntOption("The most sides a die may have.", 1000, min=2)

    @example("roll a die", r"^You rolled [1-6]$")
    @match(r"^\s*roll\s+(?:an?\s+|the\s+)?(.+?)\s*$", simple=False)
    def roll(self, event: Event, spec: str) -> None:
        if spec.lower() in ("die", "dice"):
            spec = "d6"
        found = _DICE.match(spec)
        if found is None:
            event.addresponse("I roll dice like 2d6, d20 or 3d6+2")
            return
        count_text, sides_text, sign, modifier_text = found.groups()
        # Lengths first, so that a thousand-digit count is refused without parsing it.
        if len(count_text) > 6 or len(sides_text) > 6 or len(modifier_text or "") > 9:
            event.addresponse("Those numbers are too big for my dice")
            return
        count = int(count_text) if count_text else 1
        sides = int(sides_text)
        if count < 1 or sides < 2:
            event.addresponse("I need at least one die with at least two sides")
            return
        if count > self.max_dice or sides > self.max_sides:
            event.addresponse(
                "I only have %d dice of up to %d sides", (self.max_dice, self.max_sides)
            )
            return
        rolls = [self.random.randint(1, sides) for _ in range(count)]
        modifier = int(modifier_text or 0) * (-1 if sign == "-" else 1)
        total = sum(rolls) + modifier
        if count == 1 and not modifier:
            event.addresponse("You rolled %d", total)
            return
        shown = " + ".join(str(r) for r in rolls)
        if modifier:
            shown += f" {sign} {abs(modifier)}"
        event.addresponse("You rolled %d (%s)", (total, shown))


class Coin(Decider):
    """Flips a coin."""

    usage = "flip a coin"
    features = ("coin",)

    @example("flip a coin", r"(?i)\b(heads|tails)\b")
    @match(r"^\s*(?:flip|toss)(?:\s+an?)?\s+coin\s*$", simple=False)
    def flip(self, event: Event) -> None:
        event.addresponse(self.random.choice(("Heads", "Tails")))


_EIGHTBALL = [
    "It is certain",
    "It is decidedly so",
    "Without a doubt",
    "Yes, definitely",
    "You may rely on it",
    "As I see it, yes",
    "Most likely",
    "Outlook good",
    "Yes",
    "Signs point to yes",
    "Reply hazy, try again",
    "Ask again later",
    "Better not tell you now",
    "Cannot predict now",
    "Concentrate and ask again",
    "Don't count on it",
    "My reply is no",
    "My sources say no",
    "Outlook not so good",
    "Very doubtful",
]


class EightBall(Decider):
    """Shakes the Magic 8 Ball."""

    usage = "8ball <question>"
    features = ("8ball",)

    answers = LinesOption("The Magic 8 Ball's answers.", list(_EIGHTBALL))

    @match(r"^\s*(?:magic\s+)?8[\s-]?ball\s*,?\s*(.*?)\s*$", simple=False)
    def eightball(self, event: Event, question: str) -> None:
        if not question:
            event.addresponse("Ask the 8 ball a question")
            return
        event.addresponse(self.random.choice(self.answers))
