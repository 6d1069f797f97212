"""Tells people what the bot can do: ``help`` lists the plugins and their features, ``help
<feature>`` explains one, ``usage <command>`` shows how to use it, and ``what can you do
about <word>`` searches everything the bot knows how to do."""

from __future__ import annotations

import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from botcore.event import Event
from botcore.processor import Processor, example, match

_WORD = re.compile(r"[a-z0-9]+")
_STOP = frozenset(
    _WORD.findall(
        "a an and are as at be by for from how i in is it me of on or the to what with you your"
    )
)
# Longest first: "ational" before "al", "ies" before "s".
_SUFFIXES = (
    ("ational", "ate"),
    ("ization", "ize"),
    ("fulness", "ful"),
    ("iveness", "ive"),
    ("ations", "ate"),
    ("ation", "ate"),
    ("ators", "ate"),
    ("ator", "ate"),
    ("ments", ""),
    ("ment", ""),
    ("ness", ""),
    ("ings", ""),
    ("ing", ""),
    ("ies", "y"),
    ("ied", "y"),
    ("ers", ""),
    ("er", ""),
    ("ed", ""),
    ("es", ""),
    ("ly", ""),
    ("s", ""),
    ("e", ""),
)


def stem(word: str) -> str:
    """A small suffix-stripping stemmer: ``reminders``, ``reminding`` and ``remind`` all
    become ``remind``; ``calculations`` and ``calculate`` become ``calculat``. Words of up to
    three letters are left alone."""
    word = word.lower()
    for _ in range(2):  # "reminders" -> "reminder" -> "remind"
        for suffix, replacement in _SUFFIXES:
            if word.endswith(suffix) and len(word) - len(suffix) + len(replacement) >= 3:
                word = word[: -len(suffix)] + replacement
                break
        else:
            break
    if len(word) > 3 and word[-1] == word[-2] and word[-1] not in "lsz":
        word = word[:-1]  # "flipping" -> "flipp" -> "flip"
    if word.endswith("at") and len(word) > 5:
        word = word[:-2]  # "calculate" -> "calculat" -> "calcul", as "calculation"
    return word


def stems(text: str) -> set[str]:
    """The stems of the words of ``text``, without common little words."""
    return {stem(word) for word in _WORD.findall(text.lower()) if word not in _STOP}


@dataclass(frozen=True)
class Feature:
    """One feature of a loaded plugin: the usages and descriptions of its processors."""

    name: str
    plugin: str
    usages: tuple[str, ...]
    descriptions: tuple[str, ...]
    #: What to say to try it (its handlers' ``@example`` lines).
    examples: tuple[str, ...] = ()

    @property
    def automatic(self) -> bool:
        """Whether it is something the bot does by itself (no command)."""
        return all(usage.startswith("(automatic)") for usage in self.usages)


def _plain(text: str | None) -> str:
    """Docstring text as one line for chat: no ``literal`` markup, spaces collapsed."""
    return " ".join((text or "").replace("``", "'").replace("`", "'").split())


_ABBREVIATIONS = ("e.g", "i.e", "etc", "vs", "cf")
_OPEN, _CLOSE = "([{", ")]}"


@lru_cache(maxsize=1024)
def _first_sentence(text: str | None) -> str:
    """The first sentence of a docstring, for chat: it ends at a full stop (or ``!``,
    ``?``) followed by a space and a capital letter, or by nothing, outside brackets; an
    ellipsis (``...``), an abbreviation (``e.g.``) or a dot in a name
    (``botcore.accounts``) ends none."""
    words = _plain(text)
    depth = 0
    for index, char in enumerate(words):
        if char in _OPEN:
            depth += 1
        elif char in _CLOSE:
            depth = max(0, depth - 1)
        elif char in ".!?" and depth == 0 and _ends_sentence(words, index):
            return words[: index + 1]
    return words


def _ends_sentence(words: str, index: int) -> bool:
    rest = words[index + 1 :]
    if rest and not (rest[0] == " " and rest[1:2].isupper()):
        return False
    if words[index] != ".":
        return True
    if words[index - 1 : index] == "." or rest.startswith(" ."):
        return False  # an ellipsis
    head = words[:index].rsplit(" ", 1)[-1].lower().lstrip("('\"")
    return head not in _ABBREVIATIONS


def _for_example(examples: Sequence[str], usages: Sequence[str]) -> str:
    """'. For example: "a", "b"' for the first few examples that are not a usage word
    for word ("ping" is no example of "ping"), or nothing."""
    said = {alt.strip().lower() for usage in usages for alt in usage.split("|")}
    shown = [e for e in examples if e.lower() not in said][:3]
    if not shown:
        return ""
    return ". For example: " + ", ".join(f'"{e}"' for e in shown)


class Help(Processor):
    """Lists and explains what the loaded plugins can do, as they are loaded right now."""

    usage = "help | help <feature or plugin> | usage <command> | what can you do about <word>"
    features = ("help",)

    def __init__(self, *args: Any, **kw: Any) -> None:
        super().__init__(*args, **kw)
        #: (what was loaded, its features): `features_by_plugin`'s last answer.
        self._features: (
            tuple[Any, dict[str, dict[str, Feature]], dict[str, list[Feature]]] | None
        ) = None

    # -- what is loaded (read on every request: plugins come and go with reloads) ------

    def plugins(self) -> dict[str, list[Processor]]:
        """The loaded plugins' processors, by plugin name."""
        return {name: list(processors) for name, processors in self.bot.loaded().items()}

    def description(self, plugin: str) -> str:
        """A plugin's description: its module docstring."""
        processors = self.plugins().get(plugin) or []
        for processor in processors:
            module = sys.modules.get(type(processor).__module__)
            if module is not None and module.__doc__:
                return _plain(module.__doc__)
        return ""

    def features_by_plugin(self) -> dict[str, dict[str, Feature]]:
        """Every feature of every loaded plugin. Callers must not change what it gives."""
        return self._catalogue()[0]

    def all_features(self) -> dict[str, list[Feature]]:
        """Features by name (several plugins may share a feature name). Callers must not
        change what it gives."""
        return self._catalogue()[1]

    def _catalogue(self) -> tuple[dict[str, dict[str, Feature]], dict[str, list[Feature]]]:
        """The features by plugin and by name: worked out again once the loaded processors
        change (a load, unload or reload), else the last answer."""
        plugins = self.plugins()
        key = tuple((name, tuple(processors)) for name, processors in plugins.items())
        cached = self._features
        if cached is not None and cached[0] == key:
            return cached[1], cached[2]
        by_plugin = self._features_of(plugins)
        merged: dict[str, list[Feature]] = {}
        for features in by_plugin.values():
            for name, feature in features.items():
                merged.setdefault(name, []).append(feature)
        # One assignment: worker threads see the old answer or the new one.
        self._features = (key, by_plugin, merged)
        return by_plugin, merged

    def _features_of(self, plugins: dict[str, list[Processor]]) -> dict[str, dict[str, Feature]]:
        found: dict[str, dict[str, Feature]] = {}
        for plugin, processors in plugins.items():
            features: dict[str, tuple[list[str], list[str], list[str]]] = {}
            for processor in processors:
                names = processor.features or (type(processor).__name__.lower(),)
                for name in names:
                    usages, descriptions, examples = features.setdefault(
                        name.lower(), ([], [], [])
                    )
                    if processor.usage and processor.usage not in usages:
                        usages.append(processor.usage)
                    text = _first_sentence(type(processor).__doc__)
                    if text and text not in descriptions:
                        descriptions.append(text)
                    examples += [
                        e.said for e in type(processor).examples() if e.said not in examples
                    ]
            found[plugin] = {
                name: Feature(name, plugin, tuple(usages), tuple(descriptions), tuple(examples))
                for name, (usages, descriptions, examples) in features.items()
            }
        return found

    # -- commands -----------------------------------------------------------------------

    @example("help", r"^I can help you with: .*\bhelp\b")
    @match(r"^\s*(?:help|commands|what\s+can\s+you\s+do)\s*$", simple=False)
    def list_categories(self, event: Event) -> None:
        parts, automatic = [], []
        for plugin, features in sorted(self.features_by_plugin().items()):
            names = sorted(name for name, feature in features.items() if not feature.automatic)
            if names:
                parts.append(f"{plugin} ({', '.join(names)})")
            elif features:
                # A plugin without commands (the conversation log) works all the same.
                automatic.append(plugin)
        if not parts and not automatic:
            event.addresponse("I can't do anything yet: no plugins are loaded")
            return
        text = f"I can help you with: {'; '.join(parts)}." if parts else "I have no commands."
        if automatic:
            text += f" Working by themselves: {', '.join(automatic)}."
        event.addresponse(text + " Ask me 'help <feature or plugin>' for more")

    @match(r"^\s*help\s+(?:(?:me\s+)?(?:with|on|about)\s+)?(.+?)\s*$", simple=False)
    def help_on(self, event: Event, topic: str) -> None:
        topic = topic.lower()
        by_plugin = self.features_by_plugin()
        # A plugin named like its only feature (calc) is best explained by that feature.
        if topic in by_plugin and set(by_plugin[topic]) != {topic}:
            names = ", ".join(sorted(by_plugin[topic]))
            description = self.description(topic)
            event.addresponse(f"{description} Features: {names}".strip())
            return
        features = self.all_features().get(topic)
        if features:
            lines = []
            for feature in features:
                description = " ".join(feature.descriptions)
                usage = "; ".join(feature.usages) or "no commands"
                examples = _for_example(feature.examples, feature.usages)
                lines.append(f"{description} Usage: {usage}{examples}".strip())
            event.addresponse(" ".join(lines))
            return
        if topic in by_plugin:
            names = ", ".join(sorted(by_plugin[topic]))
            description = self.description(topic)
            event.addresponse(f"{description} Features: {names}".strip())
            return
        suggestions = self.search(topic)
        if suggestions:
            event.addresponse(
                "I don't know about %s, but try: %s", (topic, ", ".join(suggestions))
            )
            return
        event.addresponse("I don't know about %s; say 'help' to see what I can do", topic)

    @example("usage help", r"^Usage: help \|")
    @match(r"^\s*usage\s+(?:of\s+|for\s+)?(.+?)\s*$", simple=False)
    def usage_of(self, event: Event, command: str) -> None:
        command = command.lower()
        words = command.split()
        usages: list[str] = []
        examples: list[str] = []
        for features in self.all_features().values():
            for feature in features:
                for usage in feature.usages:
                    if usage in usages or usage.startswith("(automatic)"):
                        continue
                    # Each alternative of a usage ("a | b") begins with its command words.
                    alternatives = [alt.strip().lower() for alt in usage.split("|")]
                    begins = any(alt.split()[: len(words)] == words for alt in alternatives)
                    if begins or feature.name == command:
                        usages.append(usage)
                        examples += [e for e in feature.examples if e not in examples]
        if usages:
            event.addresponse("Usage: %s", "; ".join(usages) + _for_example(examples, usages))
            return
        event.addresponse("I don't know the command %s; say 'help' to see what I can do", command)

    @match(
        r"^\s*what\s+(?:can|do)\s+you\s+(?:do|know)\s+(?:about|with|for|regarding)\s+(.+?)\s*$",
        simple=False,
    )
    def search_features(self, event: Event, words: str) -> None:
        found = self.search(words)
        if found:
            event.addresponse(
                "For %s I have: %s. Ask me 'help <feature>' for more", (words, ", ".join(found))
            )
        else:
            event.addresponse("I can't do anything about %s, sorry", words)

    def search(self, words: str) -> list[str]:
        """Features whose name, usage or description shares a stem with ``words``, best
        matches first."""
        wanted = stems(words)
        if not wanted:
            return []
        scored: list[tuple[int, str]] = []
        for name, features in self.all_features().items():
            name_stems = stems(name)
            text_stems: set[str] = set()
            for feature in features:
                text_stems |= stems(" ".join(feature.usages + feature.descriptions))
                text_stems |= stems(feature.plugin)
            score = 3 * len(wanted & name_stems) + len(wanted & text_stems)
            if score:
                scored.append((-score, name))
        return [name for _, name in sorted(scored)]
