"""Factoids: teach the bot facts and it repeats them. ``python is a language`` teaches,
``python?`` or ``what is python`` recalls (``python #2`` a given one), ``python is also
fun`` adds, ``no, python is a snake`` replaces, ``forget python`` forgets, ``py is the
same as python`` makes an alias, ``python += and a snake`` appends, ``python ~= s/a/the/``
edits, ``search for snake`` finds and ``literal python`` shows the stored values.

Values starting with ``<reply>`` are said as they are, ``<action>`` ones acted out;
``$who``, ``$channel``, ``$source``, ``$date``, ``$time`` are filled in, and a name with
``$arg`` in it (``$arg is cool``) matches any words there, given as ``$1``, ``$2``... and
``$args`` (at most four ``$arg`` in a name). Only a fact's author (or someone with
``factoidadmin``) may change or forget it. Facts are public: one taught in private can be
asked by anyone, and the bot says so. Greetings and thanks are answered too, and
``botcore-factpack`` imports facts from JSON."""

from __future__ import annotations

import random
import re
import time
from collections.abc import Sequence
from datetime import datetime
from functools import lru_cache
from typing import Any, ClassVar

import regex
from sqlalchemy import (
    Boolean,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    bindparam,
    delete,
    func,
    or_,
    select,
    true,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, Session, mapped_column

from botcore.accounts.identify import proven_account
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
    """A name of a fact, unique ignoring case; ``wild`` when it holds ``$arg``, and then
    ``wild_key`` its `wild_key` (both worked out from the name when it is made), the index
    recall finds the wildcard names that might match a message by."""

    __tablename__ = "factoid_names"
    # Every lookup that finds no exact name reads the wildcard names (migration 0016).
    __table_args__ = (Index("ix_factoid_names_wild", "wild"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    factoid_id: Mapped[int] = mapped_column(
        ForeignKey("factoids.id", ondelete="CASCADE"), index=True
    )
    name: Mapped[str] = mapped_column(CIText(MAX_NAME), unique=True)
    wild: Mapped[bool] = mapped_column(Boolean, default=False)
    author: Mapped[str] = mapped_column(String(255))
    created: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    factpack: Mapped[str | None] = mapped_column(String(MAX_FACTPACK), nullable=True)
    wild_key: Mapped[str | None] = mapped_column(String(MAX_NAME), nullable=True, index=True)

    def __init__(self, **kw: Any) -> None:
        name = kw.get("name", "")
        kw.setdefault("wild", _WILDCARD in name.lower())
        if kw["wild"]:
            kw.setdefault("wild_key", wild_key(name))
        super().__init__(**kw)


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


#: The most ``$arg`` wildcards a name may hold. Each is one more search of a message.
MAX_WILDCARDS = 4
#: Seconds recall may spend, for one message, trying the wildcard names that might match.
WILD_BUDGET = 0.5


def wildcards_in(name: str) -> int:
    """How many ``$arg`` wildcards ``name`` holds."""
    return name.lower().count(_WILDCARD)


@lru_cache(maxsize=1024)
def _wild_parts(name: str) -> tuple[tuple[str, regex.Pattern[str]], ...]:
    """The literal texts between a wildcard name's ``$arg``s (the first and last may be
    empty), each with a case-blind search for exactly that text."""
    parts = re.split(re.escape(_WILDCARD), name, flags=re.IGNORECASE)
    return tuple((part, regex.compile(regex.escape(part), regex.IGNORECASE)) for part in parts)


def wild_match(name: str, text: str, timeout: float = WILD_BUDGET) -> list[str] | None:
    """The arguments when the wildcard name ``name`` matches all of ``text`` (each
    ``$arg`` one or more characters, the rest literal and case-blind), else None.

    No regular expression with wildcards is run, so nothing backtracks: the first literal
    must start the text and the last end it, and each one between is found by a search
    from left to right. The leftmost place of a literal is always right (the ``$arg``
    after it takes up the slack), and gives the arguments a lazy ``(.+?)`` would, so the
    work is at most (literals x text length). Each search gets ``timeout`` seconds
    (`TimeoutError`), a bound that never binds for literal searches."""
    (_, first), *middle, (last_text, last) = _wild_parts(name)
    found = first.match(text, timeout=timeout)
    if found is None:
        return None
    position, args = found.end(), []
    for _, literal in middle:
        found = literal.search(text, position + 1, timeout=timeout)
        if found is None:
            return None
        args.append(text[position : found.start()])
        position = found.end()
    # The last literal's case-blind match is as long as itself (simple case folding).
    start = len(text) - len(last_text)
    if start <= position or last.fullmatch(text, start, timeout=timeout) is None:
        return None
    args.append(text[position:start])
    return args


def author_of(event: Event) -> str:
    """Who an event's sender is as an author: their account once they are authenticated
    as it (a nick linked to an account is not the account), else the source and sender
    id."""
    account = proven_account(event)
    if account is not None:
        return f"account:{account}"
    return _identity_author(event)


def _identity_author(event: Event) -> str:
    sender_id = event.sender.id if event.sender is not None else "?"
    return f"{event.source}:{sender_id}"


def authors_of(event: Event) -> frozenset[str]:
    """Every author an event's sender may change the facts of: their identity's, and
    their account's once authenticated as it."""
    return frozenset({author_of(event), _identity_author(event)})


# The statements recall makes for every message it is asked, built once (building one
# over a CIText column, and its cache key, costs more than running it).
_BY_NAME = select(FactoidName.factoid_id).where(FactoidName.name == bindparam("p_name"))
#: The most key words looked up in one IN list.
_KEYS_AT_ONCE = 500
_WILD_CANDIDATES = select(FactoidName.name, FactoidName.factoid_id).where(
    FactoidName.wild == true(),
    or_(
        FactoidName.wild_key.is_(None),
        FactoidName.wild_key.in_(bindparam("p_keys", expanding=True)),
    ),
)


@lru_cache(maxsize=4096)
def wild_key(name: str) -> str | None:
    """The longest word of a wildcard name's literal text, case-folded, that every text
    the name matches holds as a whole word (between spaces or at an end); None when it
    has none (every word touches a ``$arg``). Recall tries a name only on a message that
    holds its key, so a message is not searched by every wildcard name."""
    words = [word.casefold() for word in name.split() if _WILDCARD not in word.lower()]
    return max((word for word in words if len(word) <= MAX_NAME), key=len, default=None)


def find_factoid(
    session: Session, text: str, budget: float = WILD_BUDGET
) -> tuple[int, list[str]] | None:
    """(factoid id, wildcard arguments) for the name ``text``: a name equal to it
    (ignoring case), else the first wildcard name (longest first) that matches it. The
    wildcard names tried are those whose key word ``text`` holds (or that have none), for
    at most ``budget`` seconds in all."""
    # Column reads go straight to the connection (Core): the ORM's handling of a
    # statement costs more than SQLite's answer.
    connection = session.connection()
    found = connection.execute(_BY_NAME, {"p_name": text}).scalar_one_or_none()
    if found is not None:
        return found, []
    deadline = time.monotonic() + budget
    words = sorted({word for word in text.casefold().split() if len(word) <= MAX_NAME})
    if len(words) <= _KEYS_AT_ONCE:
        candidates = connection.execute(_WILD_CANDIDATES, {"p_keys": words}).all()
    else:
        # In slices: a long message must not make one statement with thousands of
        # parameters.
        keyed = [FactoidName.wild_key.is_(None)]
        keyed += [
            FactoidName.wild_key.in_(words[i : i + _KEYS_AT_ONCE])
            for i in range(0, len(words), _KEYS_AT_ONCE)
        ]
        candidates = connection.execute(
            select(FactoidName.name, FactoidName.factoid_id).where(
                FactoidName.wild == true(), or_(*keyed)
            )
        ).all()
    for name, factoid_id in sorted(candidates, key=lambda row: -len(row[0])):
        if teaches_only(name):
            continue  # taught before such names were refused: it would take teaching over
        left = deadline - time.monotonic()
        try:
            if left <= 0:
                raise TimeoutError
            args = wild_match(name, text, left)
        except TimeoutError:
            return None  # as if nothing matched: the message was not worth more time
        if args is not None:
            return factoid_id, args
    return None


_VALUES = (
    select(FactoidValue)
    .where(FactoidValue.factoid_id == bindparam("p_factoid"))
    .order_by(FactoidValue.id)
)


#: What recall says of a fact's values, oldest first (columns: loading whole objects costs
#: more than the query).
_SAID = (
    select(FactoidValue.value, FactoidValue.verb)
    .where(FactoidValue.factoid_id == bindparam("p_factoid"))
    .order_by(FactoidValue.id)
)


def values_of(session: Session, factoid_id: int) -> list[FactoidValue]:
    """A fact's values, oldest first (their numbers count from 1 in that order)."""
    return list(session.scalars(_VALUES, {"p_factoid": factoid_id}))


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


def acknowledge(event: Event, name: str) -> None:
    """Say a fact was taught or changed; in private, also say plainly that it is public
    (facts are the bot's common knowledge, as in Ibid: whoever asks is told)."""
    event.addresponse(True)
    if not event.public:
        event.addresponse(
            "Note that facts are public: anyone can ask me about %s, here or in a channel",
            name,
            address=False,
        )


#: The words of teaching itself ("x is y", "x are also y", "no, x is y").
_TEACHING_WORDS = frozenset({"is", "are", "also", "no"})


@lru_cache(maxsize=4096)
def teaches_only(name: str) -> bool:
    """Whether the wildcard name ``name``'s own words are all words of teaching (``$arg
    is $arg``, ``no, $arg is also $arg``): it would match, and answer, everything anyone
    teaches, so nothing could be taught any more."""
    words = [
        word.casefold().strip(",:;.!?") for word in name.split() if _WILDCARD not in word.lower()
    ]
    return bool(words) and all(word in _TEACHING_WORDS for word in words if word)


def wild_trouble(name: str, limit: int) -> str | None:
    """Why ``name`` may not be taught as a wildcard name, or None: more ``$arg`` than
    ``limit``, wildcards and no word of its own (``$arg$arg`` would answer every message
    nothing else handles, for everyone), or none but the words of teaching (``$arg is
    $arg`` would answer everything taught, so that nothing could be taught)."""
    count = wildcards_in(name)
    if count > limit:
        return f"too many $arg wildcards (at most {limit})"
    if count and wild_key(name) is None:
        return "$arg wildcards but no word of its own (as in 'weather in $arg')"
    if count and teaches_only(name):
        return (
            "$arg wildcards and only the words of teaching (is, are, also, no): it would "
            "answer everything anyone teaches me"
        )
    return None


def too_wild(event: Event, name: str, limit: int) -> bool:
    """Whether ``name`` may not be taught as a wildcard name, after saying why."""
    trouble = wild_trouble(name, limit)
    if trouble is None:
        return False
    event.addresponse("That name has %s", trouble)
    return True


class Ownership:
    """The ownership check every changing processor shares."""

    other_permissions: ClassVar[tuple[str, ...]] = (ADMIN,)

    def may_change(self, event: Event, *authors: str) -> bool:
        mine = authors_of(event)
        if all(author in mine for author in authors):
            return True
        return self.authorised(event, ADMIN)  # type: ignore[attr-defined]


# -- recall -------------------------------------------------------------------------------


class Get(Processor):
    """Recalls a fact: ``<name>``, ``<name>?``, ``what is <name>``, ``<name> #<n>``."""

    usage = "<name> | what is <name> | <name> #<n>"
    features = ("factoid",)
    # After every plugin's commands: only a fact nobody else handled.
    priority = Priority.FALLBACK

    wildcard_time = FloatOption(
        "Seconds recall may spend, for one message, trying the wildcard names that might "
        "match it.",
        WILD_BUDGET,
        min=0.01,
        max=5,
    )

    @match(
        r"(?:what\s+(?:is|are)\s+|what's\s+|wtf\s+(?:is|are)\s+)?(?P<name>.+?)"
        r"(?:\s+#(?P<number>\d+))?\Z",
        simple=False,
    )
    def recall(self, event: Event, name: str, number: str | None) -> None:
        name = normalise_name(name)
        session = event.session
        found = find_factoid(session, name, self.wildcard_time)
        if found is None and number:
            # Perhaps the name itself ends with "#n".
            name, number = f"{name} #{number}", None
            found = find_factoid(session, name, self.wildcard_time)
        if found is None:
            return
        factoid_id, args = found
        values = session.connection().execute(_SAID, {"p_factoid": factoid_id}).all()
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

    max_wildcards = IntOption(
        "The most $arg wildcards a fact's name may hold.", MAX_WILDCARDS, min=1, max=8
    )

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
        if too_wild(event, alias, self.max_wildcards):
            return
        session.add(
            FactoidName(
                factoid_id=found[0],
                name=alias,
                author=author_of(event),
            )
        )
        if _flush_new_name(session, event, alias):
            acknowledge(event, alias)


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
    max_wildcards = IntOption(
        "The most $arg wildcards a fact's name may hold.", MAX_WILDCARDS, min=1, max=8
    )

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
        if too_wild(event, name, self.max_wildcards):
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
            session.add(FactoidName(factoid_id=factoid.id, name=name, author=me))
            session.add(FactoidValue(factoid_id=factoid.id, verb=verb, value=value, author=me))
            if _flush_new_name(session, event, name):
                acknowledge(event, name)
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
        acknowledge(event, name)


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
        acknowledge(event, normalise_name(name))


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
        acknowledge(event, normalise_name(name))


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


class PatternsOption(LinesOption):
    """Regular expressions, one per line, matched case-blind against a whole message;
    each is compiled when the configuration is read, so a bad one is a configuration
    error, not a plugin that fails to start."""

    kind = "regular expressions, one per line"

    def parse(self, raw: str) -> list[str]:
        patterns = super().parse(raw)
        for pattern in patterns:
            try:
                regex.compile(pattern, regex.IGNORECASE)
            except regex.error as e:
                raise ValueError(f"expected regular expressions, found {pattern!r}: {e}") from None
        try:
            regex.compile(_alternatives(patterns), regex.IGNORECASE)
        except regex.error as e:
            raise ValueError(f"expected regular expressions that go together: {e}") from None
        return patterns


def _alternatives(patterns: Sequence[str]) -> str:
    return "|".join(f"(?:{pattern})" for pattern in patterns)


#: Seconds a greeting or thanks pattern may take on one message (they are the
#: configuration's, not the users', but a slip must not hold the bot).
PATTERN_TIMEOUT = 0.1


class Static(Processor):
    """Answers greetings and thanks addressed to the bot, by configurable patterns."""

    usage = "hi | hello | thanks | ..."
    features = ("greetings",)
    priority = Priority.FALLBACK - 50  # a greeting, before a fact of the same name

    greetings = PatternsOption(
        "Regular expressions (one per line, matching the whole message, case-blind) that "
        "are greetings.",
        [r"(?:hi|hello|hey|hiya|howdy|good\s+(?:morning|afternoon|evening|day))(?:\s+there)?"],
    )
    greeting_replies = LinesOption(
        "Answers to a greeting, one chosen at random ($who is the sender's nick).",
        ["Hi $who", "Hello $who", "Hey $who"],
    )
    thanks = PatternsOption(
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
        self._answers: list[tuple[regex.Pattern[str], list[str]]] = []

    def setup(self) -> None:
        answers = []
        for patterns, replies in (
            (self.greetings, self.greeting_replies),
            (self.thanks, self.thanks_replies),
        ):
            answers.append(
                (regex.compile(_alternatives(patterns), regex.IGNORECASE), list(replies))
            )
        self._answers = answers

    @handler
    def answer(self, event: Event) -> None:
        if event.message is None:
            return
        text = event.message.clean.strip()
        for pattern, replies in self._answers:
            try:
                found = pattern.fullmatch(text, timeout=PATTERN_TIMEOUT)
            except TimeoutError:
                found = None
            if found:
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
        for name in names:
            trouble = wild_trouble(name, MAX_WILDCARDS)
            if trouble is not None:
                raise FactpackError(f"factoid {number}: the name {name!r} has {trouble}")
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
