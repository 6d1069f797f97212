"""Account names people can tell apart: normalised (NFKC) and refused when they hold
invisible or control characters, mix scripts, or look like another name (Unicode's
confusables, UTS #39, from the ``confusable_homoglyphs`` data). Any thread."""

from __future__ import annotations

import json
import unicodedata
from functools import cache
from importlib import resources

#: Characters besides letters, marks and digits a name may hold (ASCII only: every other
#: punctuation or symbol is refused, many of them look like ASCII ones).
_PUNCTUATION = frozenset("-_.'[]{}|^`\\")

#: General categories of letters, combining marks and digits.
_WORD_CATEGORIES = frozenset({"Lu", "Ll", "Lt", "Lm", "Lo", "Mn", "Mc", "Nd"})


class UnclearName(ValueError):
    """Why a name is refused, in words fit for the user."""


def normalise(name: str) -> str:
    """``name`` in NFKC (fullwidth letters are ASCII ones), checked: `UnclearName` when it holds a
    character other than letters, combining marks, digits and a little ASCII
    punctuation (spaces, invisible and format characters such as U+200B are refused),
    a combining mark not after a letter, or letters of more than one script."""
    name = unicodedata.normalize("NFKC", name)
    if not name:
        raise UnclearName("a name cannot be empty")
    previous = ""
    for char in name:
        category = unicodedata.category(char)
        if char in _PUNCTUATION:
            pass
        elif char.isspace():
            raise UnclearName("a name cannot contain spaces")
        elif category not in _WORD_CATEGORIES:
            raise UnclearName(f"a name cannot contain {_describe(char)}")
        elif category.startswith("M") and not previous.isalpha():
            raise UnclearName(f"a name cannot contain {_describe(char)} there")
        previous = char
    scripts = {_script(char) for char in name} - {"COMMON", "INHERITED"}
    if len(scripts) > 1:
        raise UnclearName(
            "a name cannot mix scripts (" + ", ".join(sorted(s.lower() for s in scripts)) + ")"
        )
    return name


def skeleton(name: str) -> str:
    """What ``name`` looks like (UTS #39's skeleton, ignoring case and combining marks):
    two names that look alike (``admin``, and ``admin`` with a dotless i, a Cyrillic a or
    a dotted capital I) have the same skeleton."""
    prototypes = _prototypes()
    text = unicodedata.normalize("NFD", unicodedata.normalize("NFKC", name).casefold())
    # Marks go too: ``ADMİN`` (a dotted capital I) looks like ``ADMIN``.
    mapped = "".join(
        prototypes.get(char, char) for char in text if unicodedata.category(char) != "Mn"
    )
    return "".join(
        prototypes.get(char, char)
        for char in unicodedata.normalize("NFD", mapped.casefold())
        if unicodedata.category(char) != "Mn"
    )


def _describe(char: str) -> str:
    label = unicodedata.name(char, "").lower() or "an unnamed character"
    return f"U+{ord(char):04X} ({label})"


@cache
def _script(char: str) -> str:
    from confusable_homoglyphs import categories  # type: ignore[import-untyped]  # no stubs

    return str(categories.alias(char))


@cache
def _prototypes() -> dict[str, str]:
    """Each single character that looks like others -> what every member of its look-alike
    group maps to: the group's longest ASCII member (``m`` and ``rn`` are both ``rn``),
    else its longest, lowest member, spelled in mapped characters."""
    data = json.loads(
        resources.files("confusable_homoglyphs").joinpath("confusables.json").read_text("utf-8")
    )
    # The data lists, for each character, those it can be confused with; the groups are
    # its connected parts (a union-find over the pairs).
    parent: dict[str, str] = {}

    def find(item: str) -> str:
        root = item
        while parent.get(root, root) != root:
            root = parent[root]
        while parent.get(item, item) != root:
            parent[item], item = root, parent[item]
        return root

    for char, homoglyphs in data.items():
        for entry in homoglyphs:
            a, b = find(char), find(entry["c"])
            if a != b:
                parent[b] = a
    groups: dict[str, list[str]] = {}
    for item in set(parent) | set(data):
        groups.setdefault(find(item), []).append(item)
    chosen = {}
    for members in groups.values():
        best = min(members, key=lambda m: (not m.isascii(), -len(m), m))
        for member in members:
            chosen[member] = best
    single = {c: rep for c, rep in chosen.items() if len(c) == 1 and len(rep) == 1}
    prototypes = dict(single)
    for char, rep in chosen.items():
        if len(char) == 1 and len(rep) > 1:
            prototypes[char] = "".join(single.get(c, c) for c in rep)
    return prototypes
