"""Secrets said in chat (``auth``, ``identify``, ``password`` commands): found and
replaced by a placeholder before any other processor, log line or table sees them."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    pass


#: What stands in for a secret in text that was scrubbed.
REDACTED = "[secret]"

# The commands that carry a secret, anywhere in a line (after an optional "bot: "): the
# secret is the rest of the line after the part these match.
_SECRET_COMMANDS = re.compile(
    r"(?P<command>(?:^|(?<=\s)|(?<=[:,]))(?:"
    r"auth"
    r"|authenticate\s+\S+(?:\s+on\s+\S+)?\s+using\s+\S+"
    r"|set\s+(?:my\s+)?password(?:\s+on\s+\S+)?(?:\s+to)?"
    r"|create\s+account\s+\S+\s+(?:with\s+)?password"
    r"|link\s+token"
    r"))\s+(?P<secret>\S.*?)\s*$",
    re.IGNORECASE | re.DOTALL,
)


def find_secret(text: str, anywhere: bool = True) -> tuple[str, str] | None:
    """``(scrubbed text, secret)`` when ``text`` holds a command that carries a secret,
    else None. The scrubbed text keeps the command with `REDACTED` for the secret. With
    ``anywhere`` (for logs: better too much removed than too little) the command may start
    after any space, colon or comma; otherwise only at the start of the text."""
    if anywhere:
        found = _SECRET_COMMANDS.search(text)
    else:
        found = _SECRET_COMMANDS.match(text, len(text) - len(text.lstrip()))
    if found is None:
        return None
    start, end = found.span("secret")
    return text[:start] + REDACTED + text[end:], found.group("secret")


def scrub(text: str) -> str:
    """``text`` with any secret a command carries replaced by `REDACTED` (for sources'
    logs of raw lines). Any thread."""
    found = find_secret(text)
    return text if found is None else found[0]
