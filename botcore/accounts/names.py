"""Account names people can tell apart: normalised (NFKC) and refused when they hold
invisible or control characters, mix scripts, or look like another name (Unicode's
confusables, UTS #39, from the ``confusable_homoglyphs`` data). Any thread."""

from __future__ import annotations

import hashlib
import json
import unicodedata
from functools import cache
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from importlib.resources.abc import Traversable

#: Characters besides letters, marks and digits a name may hold (ASCII only: every other
#: punctuation or symbol is refused, many of them look like ASCII ones).
_PUNCTUATION = frozenset("-_.'[]{}|^`\\")

#: The look-alike table built from confusable_homoglyphs' data (`write_prototypes`).
PROTOTYPES = "prototypes.json"

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
    return load_prototypes(Path(__file__).with_name(PROTOTYPES))


def load_prototypes(path: Path) -> dict[str, str]:
    """The look-alike table (`build_prototypes`) of the installed ``confusables.json``:
    read from ``path`` (`write_prototypes`) when that was built from this very data (the
    SHA-256 it holds says so), which takes a fifth of the time of building it and leaves
    none of the data's 900 kB of JSON objects behind; built from the data when ``path``
    is missing, unreadable or of other data (confusable_homoglyphs was upgraded)."""
    data = _confusables().read_bytes()
    try:
        shipped = json.loads(path.read_bytes())
    except (OSError, ValueError):
        shipped = {}
    if isinstance(shipped, dict) and shipped.get("source") == hashlib.sha256(data).hexdigest():
        prototypes: dict[str, str] = shipped["prototypes"]
        return prototypes
    return build_prototypes(json.loads(data))


def _confusables() -> Traversable:
    return resources.files("confusable_homoglyphs").joinpath("confusables.json")


def write_prototypes(path: Path | None = None) -> Path:
    """Build the table from the installed ``confusables.json`` and write it, with that
    data's SHA-256, to ``path`` (``prototypes.json`` beside this module by default);
    returns the path. Run it after upgrading confusable_homoglyphs:
    ``python -c 'from botcore.accounts import names; names.write_prototypes()'``."""
    data = _confusables().read_bytes()
    table = {
        "source": hashlib.sha256(data).hexdigest(),
        "prototypes": dict(sorted(build_prototypes(json.loads(data)).items())),
    }
    path = path or Path(__file__).with_name(PROTOTYPES)
    path.write_text(json.dumps(table, indent=0, ensure_ascii=True) + "\n", encoding="utf-8")
    return path


def build_prototypes(data: dict[str, list[dict[str, str]]]) -> dict[str, str]:
    """The look-alike table of ``data`` (``confusables.json``: for each character, those
    it can be confused with): each single character that looks like others -> what every
    member of its look-alike group maps to: the group's longest ASCII member (``m`` and
    ``rn`` are both ``rn``), else its longest, lowest member, spelled in mapped characters;
    a character that is its own prototype is left out."""
    # The groups are the connected parts of the pairs (a union-find).
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
    # A character that is its group's prototype maps to itself: `skeleton` keeps it anyway.
    return {char: rep for char, rep in prototypes.items() if char != rep}
