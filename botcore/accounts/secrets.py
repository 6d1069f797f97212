"""Secrets said in chat (``auth``, ``authenticate``, ``set password`` commands...): the one
declaration of the commands that carry a secret, used both to replace the secret by a
placeholder before any other processor, log line or table sees it and to carry the
command out. Any thread."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from botcore.addressing import parse_address
from botcore.options import REDACTED

#: The key of ``event.extra`` under which the core's Secrets processor leaves the `Secret`
#: taken out of a private message, for the processor that carries the command out.
TAKEN_SECRET = "botcore.secret"
#: Where it leaves a ``set config`` of a secret option, for the admin plugin.
TAKEN_CONFIG_SECRET = "botcore.secret.config"

_FLAGS = re.IGNORECASE | re.DOTALL


@dataclass(frozen=True)
class SecretCommand:
    """A command that carries a secret: its name, and a regex of the words before the
    secret (the secret is the rest of the line), whose named groups are the command's
    arguments; the ``event.extra`` key it is left under for the processor that carries it
    out. With ``option``, the secret is the value of the option its ``option`` argument
    names (``section.key``), and the command carries a secret only when that option is a
    secret one."""

    name: str
    words: str
    key: str = TAKEN_SECRET
    option: bool = False
    pattern: re.Pattern[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "pattern", re.compile(self.words, _FLAGS))


#: Every command that carries a secret, in the order they are tried.
SECRET_COMMANDS = (
    SecretCommand("auth", r"auth"),
    SecretCommand(
        "authenticate",
        r"authenticate\s+(?P<user>\S+)(?:\s+on\s+(?P<source>\S+))?\s+using\s+(?P<method>\S+)",
    ),
    SecretCommand(
        "set password",
        r"set\s+(?:my\s+)?password(?:\s+for\s+(?P<user>\S+))?"
        r"(?:\s+on\s+(?P<source>\S+))?(?:\s+to)?",
    ),
    SecretCommand("create account", r"create\s+account\s+(?P<user>\S+)\s+(?:with\s+)?password"),
    SecretCommand("link token", r"link\s+token"),
    SecretCommand(
        "set config", r"set\s+config\s+(?P<option>\S+)\s+to", TAKEN_CONFIG_SECRET, option=True
    ),
)


def _unnamed(regex: str) -> str:
    # One regex finds any of the commands; Python's re refuses a group name used twice
    # (several commands take a source), so there their groups are left unnamed.
    return re.sub(r"\(\?P<\w+>", "(?:", regex)


# A command anywhere in a line (with ``anywhere``) or at its start: group cN tells which.
_FIND = re.compile(
    r"(?P<command>(?:^|(?<=\s)|(?<=[:,]))(?:"
    + "|".join(f"(?P<c{i}>{_unnamed(c.words)})" for i, c in enumerate(SECRET_COMMANDS))
    + r"))\s+(?P<secret>\S.*?)\s*$",
    _FLAGS,
)


# Every command above has one of these words, matched with the same flags: a text
# without any cannot hold a secret command, and most texts are told so by this alone.
_MAYBE = re.compile(r"auth|password|token|config", _FLAGS)


@dataclass(frozen=True)
class Secret:
    """A secret-carrying command found in a text: the text with the secret replaced by
    `REDACTED`, the command (a `SecretCommand` name) and its arguments, the bot's name the
    text was addressed with (or None), and the secret itself (never in the repr)."""

    scrubbed: str
    command: str
    arguments: dict[str, str | None]
    addressed: str | None
    secret: str = field(repr=False)
    #: The ``event.extra`` key the command is left under (its `SecretCommand`'s).
    key: str = TAKEN_SECRET


def _find(text: str, anywhere: bool) -> re.Match[str] | None:
    if _MAYBE.search(text) is None:
        return None
    if anywhere:
        return _FIND.search(text)
    return _FIND.match(text, len(text) - len(text.lstrip()))


def find_secret(text: str, anywhere: bool = True) -> tuple[str, str] | None:
    """``(scrubbed text, secret)`` when ``text`` holds a command that carries a secret,
    else None. The scrubbed text keeps the command with `REDACTED` for the secret. With
    ``anywhere`` (for logs: better too much removed than too little) the command may start
    after any space, colon or comma; otherwise only at the start of the text. Any
    ``set config`` value counts as a secret here (which options are secret is the
    config's to say, and logs lose little by it)."""
    found = _find(text, anywhere)
    if found is None:
        return None
    start, end = found.span("secret")
    return text[:start] + REDACTED + text[end:], found.group("secret")


def take_secret(
    text: str, names: Iterable[str], secret_option: Callable[[str], bool] | None = None
) -> Secret | None:
    """The secret-carrying command ``text`` says to the bot known by ``names``: at the
    start of the text, or of what follows (or precedes) the bot's name in any form of
    address `botcore.addressing` knows (``bot> auth x`` as much as ``auth x, bot``). None
    when the text is no such command. ``secret_option(path)`` tells whether the option a
    ``set config <section.key> to <value>`` names is a secret one (its value is then
    taken); without it every ``set config`` value is taken."""
    if _MAYBE.search(text) is None:
        return None
    address = parse_address(text, names, verbs=())
    body = address.body if address is not None else text
    found = _find(body, anywhere=False)
    if found is None and address is not None:
        # A bot called "auth" is addressed by "auth hunter2": the whole text is the command.
        address, body = None, text
        found = _find(body, anywhere=False)
    if found is None:
        return None
    start, end = found.span("secret")
    scrubbed = body[:start] + REDACTED + body[end:]
    index = next(i for i in range(len(SECRET_COMMANDS)) if found.group(f"c{i}") is not None)
    command = SECRET_COMMANDS[index]
    words = command.pattern.fullmatch(found.group("command"))
    arguments = words.groupdict() if words is not None else {}
    option = str(arguments.get("option") or "")
    if command.option and secret_option is not None and not secret_option(option):
        return None
    return Secret(
        scrubbed=address.replace_body(scrubbed) if address is not None else scrubbed,
        command=command.name,
        arguments=arguments,
        addressed=address.name if address is not None else None,
        secret=found.group("secret"),
        key=command.key,
    )


def scrub(text: str) -> str:
    """``text`` with any secret a command carries replaced by `REDACTED` (for sources'
    logs of raw lines). Any thread."""
    found = find_secret(text)
    return text if found is None else found[0]
