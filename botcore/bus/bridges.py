"""The keys of a ``[bridge:NAME]`` section (the bridge plugin relays between the
conversations it names) and how its ``conversations`` are read.

Only the keys and their types are checked with the rest of the config; whether the
conversations make a working bridge (known sources, at least two of them) is the bridge
plugin's to say at run time, so that one bad bridge never stops the bot."""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping
from dataclasses import dataclass

from botcore.options import (
    BoolOption,
    ChoiceOption,
    ListOption,
    Option,
    TemplateOption,
    options_of,
)

#: The fields a relay template may use.
TEMPLATE_FIELDS = ("name", "nick", "text", "source", "channel", "bridge")
#: The fields of the template of joins, parts and kicks (``what``: "joined", "left"...).
JOIN_FIELDS = ("name", "nick", "what", "source", "channel", "bridge")
#: Keys of a per-source override: ``template.SOURCE`` and ``action_template.SOURCE``.
OVERRIDABLE = ("template", "action_template")

_SEPARATORS = re.compile(r"[\s,]+")


class BridgeSection:
    """Keys of a ``[bridge:NAME]`` section."""

    conversations = Option(
        "The conversations bridged, two or more, separated by spaces, commas or new "
        "lines: SOURCE:TARGET, where SOURCE is the NAME of a [source:NAME] section and "
        "TARGET a channel or room there (#dev, dev@conference.example.org, !id:example.org, "
        "#dev:example.org); split at the first colon.",
        required=True,
    )
    template = TemplateOption(
        "How a relayed message reads: {name} (the sender's display name, else their "
        "nick), {nick}, {text}, {source}, {channel}, {bridge}. template.SOURCE overrides "
        "it for the copies sent to that source.",
        "<{name}> {text}",
        fields=TEMPLATE_FIELDS,
    )
    action_template = TemplateOption(
        "How a relayed action (/me) reads; action_template.SOURCE overrides it for one source.",
        "* {name} {text}",
        fields=TEMPLATE_FIELDS,
    )
    join_template = TemplateOption(
        "How a relayed join, part, quit or kick reads ({what}: joined, left, quit, was kicked).",
        "* {name} {what} {channel} on {source}",
        fields=JOIN_FIELDS,
    )
    edit_suffix = Option(
        "Added (after a space) to an edit sent again as a new message where the network "
        "cannot edit (empty: nothing).",
        "(edited)",
    )
    relay_actions = BoolOption("Relay actions (/me).", True)
    relay_notices = BoolOption("Relay notices.", False)
    relay_joins = BoolOption(
        "Relay joins, parts, quits and kicks as lines of text (never as moderation).", False
    )
    relay_reactions = BoolOption(
        "Carry reactions to the copies (as a reaction where the network has them, else "
        "as a short line).",
        True,
    )
    ignore_nicks = ListOption(
        "Senders never relayed (other bots, other bridges): a nick or sender id, or "
        "SOURCE:nick for one source; compared case-blind.",
        [],
    )
    ignore_marker = Option(
        "Messages starting with this text are not relayed (empty: none are held back).", ""
    )
    answer = ChoiceOption(
        "Where the bot's own answers to commands said in a bridged conversation go: here "
        "(only where asked) or all (every conversation of the bridge).",
        "here",
        choices=("here", "all"),
    )


@dataclass(frozen=True)
class Conversation:
    """One end of a bridge: a source's name and a target on it."""

    source: str
    target: str

    def __str__(self) -> str:
        return f"{self.source}:{self.target}"


def bridge_options(values: Mapping[str, str]) -> dict[str, Option]:
    """The options of a ``[bridge:NAME]`` section with these raw ``values``: the fixed
    keys, and ``template.SOURCE`` / ``action_template.SOURCE`` for each such key given."""
    options = options_of(BridgeSection)
    for key in values:
        base, dot, source = key.partition(".")
        if dot and source and base in OVERRIDABLE:
            override = copy.copy(options[base])
            override.default = None
            options[key] = override
    return options


def parse_conversations(raw: str) -> tuple[list[Conversation], list[str]]:
    """The conversations of a ``conversations`` value, each once, and the problems
    found (a malformed entry: no colon, nothing before or after it)."""
    found: list[Conversation] = []
    problems: list[str] = []
    for entry in _SEPARATORS.split(raw or ""):
        if not entry:
            continue
        source, colon, target = entry.partition(":")
        if not colon or not source or not target:
            problems.append(
                f"{entry!r} is not SOURCE:TARGET (a source's name, a colon, a channel)"
            )
            continue
        conversation = Conversation(source, target)
        if conversation not in found:
            found.append(conversation)
    return found, problems
