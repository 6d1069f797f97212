"""Factoids: teach the bot facts and it repeats them. ``python is a language`` teaches,
``python?`` or ``what is python`` recalls (``python #2`` a given one), ``python is also
fun`` adds, ``no, python is a snake`` replaces, ``forget python`` forgets, ``py is the
same as python`` makes an alias, ``python += and a snake`` appends, ``python ~= s/a/the/``
edits, ``search for snake`` finds and ``literal python`` shows the stored values.

Values starting with ``<reply>`` are said as they are, ``<action>`` ones acted out;
``$who``, ``$channel``, ``$source``, ``$date``, ``$time`` are filled in, and a name with
``$arg`` in it (``$arg is cool``) matches any words there, given as ``$1``, ``$2``... and
``$args``. Only a fact's author (or someone with ``factoidadmin``) may change or forget it.
Greetings and thanks are answered too, and ``botcore-factpack`` imports facts from JSON."""

from __future__ import annotations

import random
import re
from collections.abc import Sequence
from datetime import datetime
from functools import lru_cache
from typing import Any, ClassVar

import regex
from sqlalchemy import Boolean, ForeignKey, Integer, String, Text, delete, func, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, Session, mapped_column

from botcore.db.engine import rollback
from botcore.db.models import Base
from botcore.db.types import CIText, UTCDateTime, utcnow
from botcore.event import Event
from botcore.options import FloatOption, IntOption, LinesOption
from botcore.processor import Priority, Processor, handler, match

#: The longest factoid name, and the name of a factpack.
MAX_NAME = 255
MAX_FACTPACK = 64
#: Names that start questions: "what is x" is never teaching a fact called "what".
QUESTION_WORDS = frozenset({"what", "who", "where", "when", "why", "how", "which", "whose"})
ADMIN = "factoidadmin"


class Factoid(Base):
    """One fact: its names (aliases) and values hang off it."""

    __tablename__ = "factoids"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    created: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    factpack: Mapped[str | None] = mapped_column(String(MAX_FACTPACK), nullable=True)


class FactoidName(Base):
    """A name of a fact, unique ignoring case; ``wild`` when it holds ``$arg``."""

    __tablename__ = "factoid_names"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    factoid_id: Mapped[int] = mapped_column(
        ForeignKey("factoids.id", ondelete="CASCADE"), index=True
    )
    name: Mapped[str] = mapped_column(CIText(MAX_NAME), unique=True)
    wild: Mapped[bool] = mapped_column(Boolean, default=False)
    author: Mapped[str] = mapped_column(String(255))
    created: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    factpack: Mapped[str | None] = mapped_column(String(MAX_FACTPACK), nullable=True)


class FactoidValue(Base):
    """One value of a fact: ``verb`` (is/are) joins name and value when it is said, unless
    the value starts with ``<reply>`` or ``<action>``."""

    __tablename__ = "factoid_values"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    factoid_id: Mapped[int] = mapped_column(
        ForeignKey("factoids.id", ondelete="CASCADE"), index=True
    )
    verb: Mapped[str] = mapped_column(String(16), default="is")
    value: Mapped[str] = mapped_column(Text)
    author: Mapped[str] = mapped_column(String(255))
    created: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    factpack: Mapped[str | None] = mapped_column(String(MAX_FACTPACK), nullable=True)


# -- helpers ------------------------------------------------------------------------------

_WILDCARD = "$arg"
_SUBSTITUTION = re.compile(r"\$(who|channel|source|args|date|time|\d+)\b", re.IGNORECASE)


def normalise_name(name: str) -> str:
    """A name as stored: without surrounding quotes and with single spaces."""
    name = name.strip()
    if len(name) > 1 and name[0] == name[-1] and name[0] in "\"'":
        name = name[1:-1]
    return " ".join(name.split())


@lru_cache(maxsize=1024)
def wild_pattern(name: str) -> re.Pattern[str]:
    """The regex a wildcard name matches texts with: each ``$arg`` is one or more
    characters (a group), the rest literal and case-blind."""
    parts = [re.escape(part) for part in re.split(re.escape(_WILDCARD), name, flags=re.I)]
    return re.compile("(.+?)".join(parts), re.IGNORECASE | re.DOTALL)


def author_of(event: Event) -> str:
    """Who an event's sender is as an author: their account if they have one, else the
    source and sender id."""
    if event.account is not None:
        return f"account:{event.account}"
    sender_id = event.sender.id if event.sender is not None else "?"
    return f"{event.source}:{sender_id}"


def find_factoid(session: Session, text: str) -> tuple[int, list[str]] | None:
    """(factoid id, wildcard arguments) for the name ``text``: a name equal to it
    (ignoring case), else the first wildcard name (longest first) that matches it."""
    found = session.execute(
        select(FactoidName.factoid_id).where(FactoidName.name == text)
    ).scalar_one_or_none()
    if found is not None:
        return found, []
    wild = session.execute(
        select(FactoidName.name, FactoidName.factoid_id).where(FactoidName.wild.is_(True))
    ).all()
    for name, factoid_id in sorted(wild, key=lambda row: -len(row[0])):
        matched = wild_pattern(name).fullmatch(text)
        if matched is not None:
            return factoid_id, list(matched.groups())
    return None


def values_of(session: Session, factoid_id: int) -> list[FactoidValue]:
    """A fact's values, oldest first (their numbers count from 1 in that order)."""
    return list(
        session.scalars(
            select(FactoidValue)
            .where(FactoidValue.factoid_id == factoid_id)
            .order_by(FactoidValue.id)
        )
    )


def substitute(text: str, event: Event, args: Sequence[str]) -> str:
    """Fill in ``$who``, ``$channel``, ``$source``, ``$date``, ``$time``, ``$args`` and
    ``$1``... (wildcard arguments); unknown numbers are left as they are."""

    def replace(found: re.Match[str]) -> str:
        key = found.group(1).lower()
        if key == "who":
            return event.sender.nick if event.sender is not None else ""
        if key == "channel":
            return event.channel or ""
        if key == "source":
            return event.source
        if key == "date":
            return f"{event.time:%Y-%m-%d}"
        if key == "time":
            return f"{event.time:%H:%M} UTC"
        if key == "args":
            return " ".join(args)
        index = int(key)
        return args[index - 1] if 0 < index <= len(args) else found.group(0)

    return _SUBSTITUTION.sub(replace, text)


def display(value: FactoidValue) -> str:
    """A value as ``literal`` shows it: ``<reply>``/``<action>`` ones as stored, others
    with their verb."""
    if value.value.lower().startswith(("<reply>", "<action>")):
        return value.value
    return f"{value.verb} {value.value}"


class Ownership:
    """The ownership check every changing processor shares."""

    other_permissions: ClassVar[tuple[str, ...]] = (ADMIN,)

    def may_change(self, event: Event, *authors: str) -> bool:
        me = author_of(event)
        if all(author == me for author in authors):
            return True
        return self.authorised(event, ADMIN)  # type: ignore[attr-defined]


# -- recall -------------------------------------------------------------------------------


class Get(Processor):
    """Recalls a fact: ``<name>``, ``<name>?``, ``what is <name>``, ``<name> #<n>``."""

    usage = "<name> | what is <name> | <name> #<n>"
    features = ("factoid",)
    # After every plugin's commands: only a fact nobody else handled.
    priority = Priority.FALLBACK

    @match(
        r"(?:what\s+(?:is|are)\s+|what's\s+|wtf\s+(?:is|are)\s+)?(?P<name>.+?)"
        r"(?:\s+#(?P<number>\d+))?\Z",
        simple=False,
    )
    def recall(self, event: Event, name: str, number: str | None) -> None:
        name = normalise_name(name)
        session = event.session
        found = find_factoid(session, name)
        if found is None and number:
            # Perhaps the name itself ends with "#n".
            name, number = f"{name} #{number}", None
            found = find_factoid(session, name)
        if found is None:
            return
        factoid_id, args = found
        values = values_of(session, factoid_id)
        if not values:
            return
        if number:
            index = int(number)
            if not 0 < index <= len(values):
                event.addresponse("%s has only %d values", (name, len(values)))
                return
            value = values[index - 1]
        else:
            value = random.choice(values)
        text = substitute(value.value, event, args)
        lowered = text.lower()
        if lowered.startswith("<reply>"):
            event.addresponse(text[len("<reply>") :].strip(), address=False)
        elif lowered.startswith("<action>"):
            event.addresponse(text[len("<action>") :].strip(), action=True, address=False)
        else:
            event.addresponse("%s %s %s", (name, value.verb, text), address=False)


class Literal(Processor):
    """Shows a fact's values as stored, numbered: ``literal <name>``."""

    usage = "literal <name> [#<n>]"
    features = ("factoid",)

    @match(r"literal\s+(?P<name>.+?)(?:\s+#(?P<number>\d+))?\Z", simple=False)
    def literal(self, event: Event, name: str, number: str | None) -> None:
        name = normalise_name(name)
        found = find_factoid(event.session, name)
        if found is None:
            event.addresponse("I don't know about %s", name)
            return
        values = values_of(event.session, found[0])
        numbered = list(enumerate(values, 1))
        if number:
            numbered = [(i, value) for i, value in numbered if i == int(number)]
            if not numbered:
                event.addresponse("%s has only %d values", (name, len(values)))
                return
        event.addresponse(", ".join(f"{i}: {display(value)}" for i, value in numbered))


class Search(Processor):
    """Finds facts whose name or a value contains some text: ``search for <text>``."""

    usage = "search for <text>"
    features = ("factoid",)

    limit = IntOption("Names listed at most by 'search for'.", 10, min=1)

    @match(r"search\s+(?:factoids\s+)?for\s+(.+)\Z", simple=False)
    def search(self, event: Event, text: str) -> None:
        text = text.strip().strip("/")
        pattern = "%" + re.sub(r"([\\%_])", r"\\\1", text.lower()) + "%"
        in_values = select(FactoidValue.factoid_id).where(
            func.lower(FactoidValue.value).like(pattern, escape="\\")
        )
        rows = event.session.execute(
            select(FactoidName.name)
            .where(
                or_(
                    FactoidName.name.like(pattern, escape="\\"),
                    FactoidName.factoid_id.in_(in_values),
                )
            )
            .order_by(FactoidName.name)
            .limit(self.limit)
        ).scalars()
        names = list(rows)
        if names:
            event.addresponse("I know about: %s", ", ".join(names))
        else:
            event.addresponse("I couldn't find anything about %s", text)


# -- teaching -----------------------------------------------------------------------------


class Alias(Ownership, Processor):
    """Gives a fact another name: ``<alias> is the same as <name>``."""

    usage = "<alias> is the same as <name>"
    features = ("factoid",)
    priority = Priority.LEARN - 10  # before Set: "a is the same as b" is no new fact

    @match(r"(?P<alias>.+?)\s+(?:is|are)\s+the\s+same\s+as\s+(?P<name>.+)\Z", simple=False)
    def alias(self, event: Event, alias: str, name: str) -> None:
        alias, name = normalise_name(alias), normalise_name(name)
        session = event.session
        if alias.casefold() == name.casefold():
            event.addresponse("That's just silly")
            return
        found = find_factoid(session, name)
        if found is None:
            event.addresponse("I don't know about %s", name)
            return
        if _name_taken(session, alias):
            event.addresponse("I already know stuff about %s", alias)
            return
        if len(alias) > MAX_NAME:
            event.addresponse("That name is too long (at most %d characters)", MAX_NAME)
            return
        session.add(
            FactoidName(
                factoid_id=found[0],
                name=alias,
                wild=_WILDCARD in alias.lower(),
                author=author_of(event),
            )
        )
        if _flush_new_name(session, event, alias):
            event.addresponse(True)


def _flush_new_name(session: Session, event: Event, name: str) -> bool:
    """Write a new name; when somebody taught the same name meanwhile (the unique key
    refuses it), undo this processor's changes and say so. Whether it was written."""
    try:
        session.flush()
    except IntegrityError:
        rollback(session)
        event.addresponse("I already know stuff about %s", name)
        return False
    return True


def _name_taken(session: Session, name: str) -> bool:
    return (
        session.execute(select(FactoidName.id).where(FactoidName.name == name)).first() is not None
    )


class Set(Ownership, Processor):
    """Teaches a fact: ``<name> is <value>``, ``<name> is also <value>``, ``no, <name> is
    <value>`` (replaces what the fact said); ``is`` or ``are``. Quote a name that holds
    a verb (``"$arg is cool" is <reply>yes``), or start the value with ``<reply>``."""

    usage = "<name> is|are [also] <value> | no, <name> is <value>"
    features = ("factoid",)
    priority = Priority.LEARN  # after the commands and after recall

    max_value = IntOption("The longest value a fact may have, in characters.", 1000, min=1)

    _PATTERNS = (
        re.compile(
            r"^(?P<no>no\s*[,:;.]?\s+)?(?P<name>.+?)\s+(?P<verb>is|are)\s+(?P<also>also\s+)?"
            r"(?P<value><(?:reply|action)>.*)$",
            re.IGNORECASE | re.DOTALL,
        ),
        re.compile(
            r"^(?P<no>no\s*[,:;.]?\s+)?(?P<name>\"[^\"]+\"|'[^']+'|.+?)\s+(?P<verb>is|are)\s+"
            r"(?P<also>also\s+)?(?P<value>.+)$",
            re.IGNORECASE | re.DOTALL,
        ),
    )

    @handler
    def teach(self, event: Event) -> None:
        if event.message is None:
            return
        text = event.message.deaddressed.strip()
        if text.endswith("?"):
            return
        for pattern in self._PATTERNS:
            found = pattern.match(text)
            if found is not None:
                break
        else:
            return
        name = normalise_name(found.group("name"))
        value = found.group("value").strip()
        if value.lower().startswith("the same as "):
            return
        if not name or name.split()[0].lower() in QUESTION_WORDS:
            return
        if len(name) > MAX_NAME:
            event.addresponse("That name is too long (at most %d characters)", MAX_NAME)
            return
        if len(value) > self.max_value:
            event.addresponse("That's too long (at most %d characters)", self.max_value)
            return
        verb = found.group("verb").lower()
        session = event.session
        me = author_of(event)
        existing = find_factoid(session, name)
        if existing is not None and existing[1]:
            existing = None  # only a wildcard matched: this is a new, more specific name
        if existing is None:
            if _name_taken(session, name):
                event.addresponse("I already know stuff about %s", name)
                return
            factoid = Factoid()
            session.add(factoid)
            session.flush()
            session.add(
                FactoidName(
                    factoid_id=factoid.id, name=name, wild=_WILDCARD in name.lower(), author=me
                )
            )
            session.add(FactoidValue(factoid_id=factoid.id, verb=verb, value=value, author=me))
            if _flush_new_name(session, event, name):
                event.addresponse(True)
            return
        factoid_id = existing[0]
        if found.group("no"):
            values = values_of(session, factoid_id)
            if not self.may_change(event, *(v.author for v in values)):
                event.addresponse("You can only replace facts you taught me")
                return
            for old in values:
                session.delete(old)
        elif not found.group("also"):
            event.addresponse("I already know stuff about %s", name)
            return
        session.add(FactoidValue(factoid_id=factoid_id, verb=verb, value=value, author=me))
        event.addresponse(True)


class Forget(Ownership, Processor):
    """Forgets: ``forget <name>`` (the whole fact, or only that name when it has others),
    ``forget <name> #<n>`` (one value), ``forget <name> /<text>/`` (values containing
    the text)."""

    usage = "forget <name> [#<n> | /<text>/]"
    features = ("factoid",)

    @match(
        r"forget\s+(?P<name>.+?)(?:\s+#(?P<number>\d+)|\s+/(?P<text>.+)/)?\Z",
        version="deaddressed",
        simple=False,
    )
    def forget(self, event: Event, name: str, number: str | None, text: str | None) -> None:
        name = normalise_name(name.rstrip(".!"))
        if name.lower().startswith("karma "):
            return  # the karma plugin's "forget karma for x"
        session = event.session
        row = session.scalars(select(FactoidName).where(FactoidName.name == name)).first()
        if row is None:
            event.addresponse("I didn't know about %s anyway", name)
            return
        values = values_of(session, row.factoid_id)
        if number is not None or text is not None:
            if number is not None:
                index = int(number)
                if not 0 < index <= len(values):
                    event.addresponse("%s has only %d values", (name, len(values)))
                    return
                doomed = [values[index - 1]]
            else:
                assert text is not None  # the pattern gives a number or a text
                needle = text.casefold()
                doomed = [v for v in values if needle in display(v).casefold()]
                if not doomed:
                    event.addresponse("None of %s's values contain %s", (name, text))
                    return
            if not self.may_change(event, *(v.author for v in doomed)):
                event.addresponse("You can only forget what you taught me")
                return
            for value in doomed:
                session.delete(value)
            if len(doomed) == len(values):
                session.execute(delete(Factoid).where(Factoid.id == row.factoid_id))
            event.addresponse(True)
            return
        names = session.scalars(
            select(FactoidName.id).where(FactoidName.factoid_id == row.factoid_id)
        ).all()
        if len(names) > 1:
            if not self.may_change(event, row.author):
                event.addresponse("You can only forget what you taught me")
                return
            session.delete(row)
            event.addresponse(True)
            return
        if not self.may_change(event, row.author, *(v.author for v in values)):
            event.addresponse("You can only forget what you taught me")
            return
        # Children first: SQLite only cascades with foreign keys on, and it is not the
        # only database.
        session.execute(delete(FactoidValue).where(FactoidValue.factoid_id == row.factoid_id))
        session.execute(delete(FactoidName).where(FactoidName.factoid_id == row.factoid_id))
        session.execute(delete(Factoid).where(Factoid.id == row.factoid_id))
        event.addresponse(True)


def _one_value(
    processor: Processor, event: Event, name: str, number: str | None
) -> FactoidValue | None:
    """The value ``<name> [#n]`` means, or None after saying why there is none."""
    found = find_factoid(event.session, normalise_name(name))
    if found is None:
        event.addresponse("I don't know about %s", normalise_name(name))
        return None
    values = values_of(event.session, found[0])
    if number is not None:
        index = int(number)
        if not 0 < index <= len(values):
            event.addresponse("%s has only %d values", (normalise_name(name), len(values)))
            return None
        return values[index - 1]
    if len(values) != 1:
        event.addresponse("%s has %d values: say which with #<n>", (name, len(values)))
        return None
    return values[0]


class Append(Ownership, Processor):
    """Adds text to the end of a fact's value: ``<name> += <text>`` (``<name> #<n> +=``
    when it has several)."""

    usage = "<name> [#<n>] += <text>"
    features = ("factoid",)
    priority = Priority.LEARN - 100  # before Set: "a += b is c" is no new fact

    max_value = IntOption("The longest value a fact may have, in characters.", 1000, min=1)

    @match(
        r"(?P<name>.+?)(?:\s+#(?P<number>\d+))?\s*\+=\s*(?P<text>.+?)\s*\Z",
        version="deaddressed",
        simple=False,
    )
    def append(self, event: Event, name: str, number: str | None, text: str) -> None:
        value = _one_value(self, event, name, number)
        if value is None:
            return
        if not self.may_change(event, value.author):
            event.addresponse("You can only change what you taught me")
            return
        new = f"{value.value.rstrip()} {text}"
        if len(new) > self.max_value:
            event.addresponse("That would be too long (at most %d characters)", self.max_value)
            return
        value.value = new
        event.addresponse(True)


class Modify(Ownership, Processor):
    """Edits a fact's value: ``<name> ~= s/<old>/<new>/[gir]`` replaces the first ``old``
    (every one with ``g``, ignoring case with ``i``; ``old`` is a regular expression only
    with ``r``, and one that takes too long is given up)."""

    usage = "<name> [#<n>] ~= s/<old>/<new>/[g][i][r]"
    features = ("factoid",)
    priority = Priority.LEARN - 100  # before Set: "a ~= s/b is/c is/" is no new fact

    max_value = IntOption("The longest value a fact may have, in characters.", 1000, min=1)
    regex_timeout = FloatOption(
        "Seconds a regular expression substitution (~= s/.../.../r) may take.", 0.5, min=0.01
    )
    max_pattern = IntOption("The longest regular expression ~= accepts.", 200, min=1)

    @match(
        r"(?P<name>.+?)(?:\s+#(?P<number>\d+))?\s*~=\s*(?P<operation>s(?P<sep>[^\w\s]).*)\Z",
        version="deaddressed",
        simple=False,
    )
    def modify(
        self, event: Event, name: str, number: str | None, operation: str, sep: str
    ) -> None:
        parts = _split_unescaped(operation[2:].rstrip(), sep)
        if len(parts) != 3 or not set(parts[2]) <= set("gir") or not parts[0]:
            event.addresponse("That's not a substitution I understand: s/old/new/[gir]")
            return
        old, new, flags = parts
        if len(old) > self.max_pattern:
            event.addresponse("That pattern is too long (at most %d characters)", self.max_pattern)
            return
        value = _one_value(self, event, name, number)
        if value is None:
            return
        if not self.may_change(event, value.author):
            event.addresponse("You can only change what you taught me")
            return
        options = regex.IGNORECASE if "i" in flags else 0
        try:
            compiled = regex.compile(old if "r" in flags else regex.escape(old), options)
        except regex.error as e:
            event.addresponse("That's not a valid regular expression: %s", str(e))
            return
        count = 0 if "g" in flags else 1
        try:
            if "r" in flags:
                result = compiled.sub(new, value.value, count=count, timeout=self.regex_timeout)
            else:
                result = compiled.sub(
                    lambda m: new, value.value, count=count, timeout=self.regex_timeout
                )
        except TimeoutError:
            event.addresponse("That regular expression took too long; I gave up")
            return
        except (regex.error, IndexError) as e:
            event.addresponse("That substitution failed: %s", str(e))
            return
        if result == value.value:
            event.addresponse("That didn't change anything")
            return
        if len(result) > self.max_value:
            event.addresponse("That would be too long (at most %d characters)", self.max_value)
            return
        value.value = result
        event.addresponse(True)


def _split_unescaped(text: str, sep: str) -> list[str]:
    """``a/b\\/c/g`` split on unescaped ``/``: ``["a", "b/c", "g"]``."""
    parts, current, chars = [], [], iter(text)
    for char in chars:
        if char == "\\":
            following = next(chars, "")
            current.append(following if following == sep else char + following)
        elif char == sep:
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    parts.append("".join(current))
    return parts


# -- greetings and thanks -----------------------------------------------------------------


class Static(Processor):
    """Answers greetings and thanks addressed to the bot, by configurable patterns."""

    usage = "hi | hello | thanks | ..."
    features = ("greetings",)
    priority = Priority.FALLBACK - 50  # a greeting, before a fact of the same name

    greetings = LinesOption(
        "Regular expressions (one per line, matching the whole message, case-blind) that "
        "are greetings.",
        [r"(?:hi|hello|hey|hiya|howdy|good\s+(?:morning|afternoon|evening|day))(?:\s+there)?"],
    )
    greeting_replies = LinesOption(
        "Answers to a greeting, one chosen at random ($who is the sender's nick).",
        ["Hi $who", "Hello $who", "Hey $who"],
    )
    thanks = LinesOption(
        "Regular expressions (one per line, matching the whole message, case-blind) that "
        "are thanks.",
        [r"(?:thanks|thank\s+you|thanks\s+a\s+lot|thx|ta|cheers)"],
    )
    thanks_replies = LinesOption(
        "Answers to thanks, one chosen at random ($who is the sender's nick).",
        ["No problem", "You're welcome", "My pleasure", "Any time, $who"],
    )

    def __init__(self, *args: Any, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self._answers: list[tuple[re.Pattern[str], list[str]]] = []

    def setup(self) -> None:
        answers = []
        for patterns, replies in (
            (self.greetings, self.greeting_replies),
            (self.thanks, self.thanks_replies),
        ):
            alternatives = "|".join(f"(?:{pattern})" for pattern in patterns)
            answers.append((re.compile(alternatives, re.IGNORECASE), list(replies)))
        self._answers = answers

    @handler
    def answer(self, event: Event) -> None:
        if event.message is None:
            return
        text = event.message.clean.strip()
        for pattern, replies in self._answers:
            if pattern.fullmatch(text):
                event.addresponse(substitute(random.choice(replies), event, []))
                return


# -- factpacks ----------------------------------------------------------------------------


class FactpackError(Exception):
    """A factpack file cannot be imported; the message says why."""


def parse_factpack(data: Any) -> list[tuple[list[str], list[str]]]:
    """The (names, values) pairs of a factpack: ``{"factoids": [{"names": [...],
    "values": [...]}, ...]}`` or a list of ``[names, values]`` pairs. A value that does
    not start with ``<reply>``, ``<action>``, ``<is>`` or ``<are>`` is said with "is"."""
    entries = data.get("factoids") if isinstance(data, dict) else data
    if not isinstance(entries, list):
        raise FactpackError("expected a list of factoids, or an object with 'factoids'")
    facts = []
    for number, entry in enumerate(entries, 1):
        if isinstance(entry, dict):
            names, values = entry.get("names"), entry.get("values")
        elif isinstance(entry, list) and len(entry) == 2:
            names, values = entry
        else:
            raise FactpackError(f"factoid {number}: expected [names, values] or an object")
        if isinstance(names, str):
            names = [names]
        if isinstance(values, str):
            values = [values]
        if (
            not isinstance(names, list)
            or not isinstance(values, list)
            or not names
            or not values
            or not all(isinstance(item, str) and item.strip() for item in names + values)
        ):
            raise FactpackError(f"factoid {number}: names and values must be non-empty text")
        names = [normalise_name(name) for name in names]
        too_long = [name for name in names if len(name) > MAX_NAME]
        if too_long:
            raise FactpackError(f"factoid {number}: name longer than {MAX_NAME} characters")
        facts.append((names, [value.strip() for value in values]))
    return facts


def import_factpack(session: Session, name: str, facts: list[tuple[list[str], list[str]]]) -> int:
    """Add a factpack's facts (author ``factpack:<name>``), skipping names already
    known; returns how many facts were added. The caller commits."""
    author = f"factpack:{name}"
    added = 0
    for names, values in facts:
        fresh = [n for n in dict.fromkeys(names) if not _name_taken(session, n)]
        if not fresh:
            continue
        factoid = Factoid(factpack=name)
        session.add(factoid)
        session.flush()
        for alias in fresh:
            session.add(
                FactoidName(
                    factoid_id=factoid.id,
                    name=alias,
                    wild=_WILDCARD in alias.lower(),
                    author=author,
                    factpack=name,
                )
            )
        for value in values:
            verb = "is"
            found = re.match(r"<(is|are)>\s*(.*)$", value, re.IGNORECASE | re.DOTALL)
            if found:
                verb, value = found.group(1).lower(), found.group(2)
            session.add(
                FactoidValue(
                    factoid_id=factoid.id, verb=verb, value=value, author=author, factpack=name
                )
            )
        session.flush()
        added += 1
    return added


def remove_factpack(session: Session, name: str) -> int:
    """Delete the facts a factpack brought; returns how many there were."""
    ids = session.scalars(select(Factoid.id).where(Factoid.factpack == name)).all()
    if ids:
        session.execute(delete(FactoidValue).where(FactoidValue.factoid_id.in_(ids)))
        session.execute(delete(FactoidName).where(FactoidName.factoid_id.in_(ids)))
        session.execute(delete(Factoid).where(Factoid.id.in_(ids)))
    return len(ids)


def factpack_imported(session: Session, name: str) -> bool:
    """Whether a factpack called ``name`` has been imported."""
    return session.execute(select(Factoid.id).where(Factoid.factpack == name)).first() is not None
