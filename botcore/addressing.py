"""How people talk to the bot: ``bot: x``, ``bot, x``, ``bot> x``, ``bot x``, ``x, bot``.

The one parser of addresses: the core's Addressed processor and secret scrubbing use it,
so a text is scrubbed exactly when it is taken as said to the bot. Any thread."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache

#: Words that, right after the bot's name, make a text a remark about the bot rather than
#: something said to it ("bot is cool").
VERBS = (
    "is",
    "has",
    "was",
    "might",
    "may",
    "would",
    "will",
    "isn't",
    "hasn't",
    "wasn't",
    "wouldn't",
    "won't",
    "can",
    "can't",
    "did",
    "didn't",
    "said",
    "says",
    "should",
    "shouldn't",
    "does",
    "doesn't",
)


@dataclass(frozen=True)
class Addressing:
    """How a text addresses the bot: the name used (as typed) and where, in the text, what
    was said to the bot (the body) starts and ends."""

    name: str
    text: str
    start: int
    end: int

    @property
    def body(self) -> str:
        """What was said to the bot, without its name and the separator."""
        return self.text[self.start : self.end]

    def replace_body(self, body: str) -> str:
        """The whole text with the body replaced (the address kept as it was)."""
        return self.text[: self.start] + body + self.text[self.end :]


class AddressParser:
    """The compiled addressing patterns for one set of names and verbs."""

    def __init__(self, names: Iterable[str], verbs: Iterable[str] = VERBS) -> None:
        # Longest first, so "botcore" is tried before "bot".
        ordered = sorted(dict.fromkeys(name for name in names if name), key=len, reverse=True)
        self.lowered = tuple(dict.fromkeys(name.lower() for name in ordered))
        alternatives = "|".join(re.escape(name) for name in ordered)
        flags = re.IGNORECASE | re.DOTALL
        self.patterns: tuple[re.Pattern[str], ...] = ()
        self.statement: re.Pattern[str] | None = None
        if not ordered:
            return
        self.patterns = (
            # "bot: x", "bot, x", "bot> x", "bot x", "bot:x"
            re.compile(
                rf"^\s*(?P<nick>{alternatives})"
                rf"(?:\s*[:;.?>!,-]+\s+|\s+|\s*[,:]\s*)(?P<body>.*)$",
                flags,
            ),
            # "x, bot" -- unless the text is addressed to somebody else ("alice: x, bot").
            re.compile(
                rf"^(?:\S+:.*|(?P<body>.*),\s*(?P<nick>{alternatives}))[\s?!.]*$",
                flags,
            ),
        )
        verb_words = "|".join(re.escape(verb) for verb in verbs)
        if verb_words:
            self.statement = re.compile(
                rf"^\s*(?:{alternatives})\s+(?:{verb_words})(?:\s|$)", flags
            )

    def mentioned(self, text: str) -> bool:
        """The cheap test before any regex: does any name occur in the text at all?"""
        lowered = text.lower()
        return any(name in lowered for name in self.lowered)

    def parse(self, text: str, statements: bool = True) -> Addressing | None:
        """How ``text`` addresses the bot, or None when it does not. With ``statements``
        a remark about the bot (its name, then one of the verbs) is not addressed."""
        if not self.patterns or not self.mentioned(text):
            return None
        if statements and self.statement is not None and self.statement.match(text):
            return None
        for pattern in self.patterns:
            found = pattern.match(text)
            if found is None or found.group("nick") is None:
                continue
            return Addressing(found.group("nick"), text, found.start("body"), found.end("body"))
        return None


@lru_cache(maxsize=64)
def _parser(names: tuple[str, ...], verbs: tuple[str, ...]) -> AddressParser:
    # Nicks come and go (a cache bounded, not a registry): compiled once per set of names.
    return AddressParser(names, verbs)


def address_parser(names: Iterable[str], verbs: Iterable[str] = VERBS) -> AddressParser:
    """The parser for these names and verbs (compiled once, then cached)."""
    return _parser(tuple(names), tuple(verbs))


def parse_address(
    text: str, names: Iterable[str], verbs: Iterable[str] = VERBS, statements: bool = True
) -> Addressing | None:
    """How ``text`` addresses the bot known by ``names``, or None (see
    `AddressParser.parse`)."""
    return address_parser(names, verbs).parse(text, statements)
