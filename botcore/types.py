"""Column types that behave the same on SQLite, PostgreSQL and MariaDB/MySQL.

`CIText` is case-insensitive text (unique names collide whatever their case); `UTCDateTime`
stores timestamps as UTC and always reads them back as aware UTC datetimes."""

from __future__ import annotations

import re
import unicodedata
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

from sqlalchemy import DateTime, String, text
from sqlalchemy.dialects import mysql, postgresql
from sqlalchemy.engine import Connection, Dialect
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql import operators
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.types import TypeDecorator

#: The name of the case-insensitive collation: an ICU collation created by the first
#: migration on PostgreSQL, and a Python function registered on every SQLite connection.
COLLATION = "botcore_ci"

#: Case-insensitive, accent-sensitive and without trailing-space padding, like ICU's
#: ``und-u-ks-level2``; older servers fall back to the closest collation they have
#: (accent-insensitive there).
MARIADB_COLLATION = "utf8mb4_uca1400_nopad_as_ci"
MYSQL8_COLLATION = "utf8mb4_0900_as_ci"
OLD_MYSQL_COLLATION = "utf8mb4_unicode_520_nopad_ci"

_CREATE_PG_COLLATION = (
    f'CREATE COLLATION IF NOT EXISTS "{COLLATION}" '
    "(provider = icu, locale = 'und-u-ks-level2', deterministic = false)"
)


def _is_mysql(dialect: Dialect) -> bool:
    return dialect.name in ("mysql", "mariadb")


def mysql_collation(dialect: Dialect) -> str:
    """The case-insensitive collation to use on this MariaDB/MySQL server."""
    version = dialect.server_version_info or ()
    if getattr(dialect, "is_mariadb", False):
        return MARIADB_COLLATION if version >= (10, 10) else OLD_MYSQL_COLLATION
    return MYSQL8_COLLATION if version >= (8, 0) else OLD_MYSQL_COLLATION


@lru_cache(maxsize=4096)
def fold(value: str) -> str:
    """The key SQLite compares `CIText` values by: NFKC, then case folded, keeping ß
    (as ICU's secondary strength and MariaDB's ``as_ci`` collations do)."""
    value = unicodedata.normalize("NFKC", value).replace("\u1e9e", "\u00df")
    if "\u00df" in value:
        return "\u00df".join(part.casefold() for part in value.split("\u00df"))
    return value.casefold()


@lru_cache(maxsize=4096)
def _sort_key(value: str) -> tuple[str, str]:
    # Letters first without their accents, so Ä sorts with A as ICU and MariaDB have it;
    # then the folded text, so names that differ in accents stay different.
    folded = fold(value)
    bare = "".join(c for c in unicodedata.normalize("NFD", folded) if not unicodedata.combining(c))
    return bare, folded


def sqlite_collate(left: str, right: str) -> int:
    """The SQLite collation function named `COLLATION`: equal when `fold` is; ordered
    roughly as the Unicode collation algorithm orders, accents after base letters."""
    a, b = _sort_key(left), _sort_key(right)
    return (a > b) - (a < b)


@lru_cache(maxsize=256)
def _like_pattern(pattern: str, escape: str | None) -> re.Pattern[str]:
    parts = []
    chars = iter(pattern)
    for char in chars:
        if escape is not None and char == escape:
            parts.append(re.escape(next(chars, "")))
        elif char == "%":
            parts.append(".*")
        elif char == "_":
            parts.append(".")
        else:
            parts.append(re.escape(char))
    return re.compile("".join(parts), re.DOTALL)


def sqlite_like(pattern: str | None, value: str | None, escape: str | None = None) -> bool | None:
    """SQLite's ``LIKE`` made Unicode case-insensitive (SQLite's own folds ASCII only);
    registered as the ``like`` function on every SQLite connection."""
    if pattern is None or value is None:
        return None
    return _like_pattern(fold(pattern), escape).fullmatch(fold(value)) is not None


def create_collation(connection: Connection) -> None:
    """Create the PostgreSQL collation `CIText` needs (no-op elsewhere, or if it exists).
    The first core migration calls this; so does ``metadata.create_all``."""
    if connection.dialect.name == "postgresql":
        connection.execute(text(_CREATE_PG_COLLATION))


def drop_collation(connection: Connection) -> None:
    """Drop the PostgreSQL collation again (the first migration's downgrade)."""
    if connection.dialect.name == "postgresql":
        connection.execute(text(f'DROP COLLATION IF EXISTS "{COLLATION}"'))


class _PatternSubject(ColumnElement[str]):
    """A CIText column as the left side of a LIKE: on PostgreSQL it is given an ICU
    deterministic collation, because LIKE refuses nondeterministic ones before PG 18."""

    inherit_cache = True

    def __init__(self, subject: ColumnElement[str]) -> None:
        self.subject = subject
        self.type = String()

    @property
    def _from_objects(self) -> list[Any]:
        return self.subject._from_objects


@compiles(_PatternSubject)
def _compile_subject(element: _PatternSubject, compiler: Any, **kw: Any) -> str:
    return compiler.process(element.subject, **kw)


@compiles(_PatternSubject, "postgresql")
def _compile_subject_pg(element: _PatternSubject, compiler: Any, **kw: Any) -> str:
    return f'({compiler.process(element.subject, **kw)} COLLATE "und-x-icu")'


# Every LIKE-style operator on a CIText column becomes its case-insensitive form.
_CASE_INSENSITIVE = {
    operators.like_op: operators.ilike_op,
    operators.not_like_op: operators.not_ilike_op,
    operators.ilike_op: operators.ilike_op,
    operators.not_ilike_op: operators.not_ilike_op,
    operators.startswith_op: operators.istartswith_op,
    operators.not_startswith_op: operators.not_istartswith_op,
    operators.istartswith_op: operators.istartswith_op,
    operators.not_istartswith_op: operators.not_istartswith_op,
    operators.endswith_op: operators.iendswith_op,
    operators.not_endswith_op: operators.not_iendswith_op,
    operators.iendswith_op: operators.iendswith_op,
    operators.not_iendswith_op: operators.not_iendswith_op,
    operators.contains_op: operators.icontains_op,
    operators.not_contains_op: operators.not_icontains_op,
    operators.icontains_op: operators.icontains_op,
    operators.not_icontains_op: operators.not_icontains_op,
}


class CIText(TypeDecorator[str]):
    """Case-insensitive text: ``=``, ``IN``, unique constraints, ``ORDER BY`` and the
    LIKE family (``like``, ``startswith``, ``contains``...) ignore case on every backend,
    while the value keeps the case it was written with. Accents and trailing spaces count.

    SQLite: a ``botcore_ci`` collation registered by botcore on each connection (so
    other SQLite tools cannot write these columns). PostgreSQL: an ICU nondeterministic
    collation. MariaDB/MySQL: an ``utf8mb4`` case-insensitive, accent-sensitive collation.
    """

    impl = String
    cache_ok = True

    class comparator_factory(TypeDecorator.Comparator[str]):  # noqa: N801 (SQLAlchemy's name)
        def operate(self, op: Any, *other: Any, **kw: Any) -> Any:
            folded = _CASE_INSENSITIVE.get(op)
            if folded is not None:
                return folded(_PatternSubject(self.expr), *other, **kw)
            return super().operate(op, *other, **kw)

    def __init__(self, length: int | None = None) -> None:
        super().__init__(length)
        self.length = length

    def load_dialect_impl(self, dialect: Dialect) -> Any:
        if _is_mysql(dialect):
            return dialect.type_descriptor(
                mysql.VARCHAR(self.length, charset="utf8mb4", collation=mysql_collation(dialect))
                if self.length
                else mysql.TEXT(charset="utf8mb4", collation=mysql_collation(dialect))
            )
        return dialect.type_descriptor(String(self.length, collation=COLLATION))

    def __repr__(self) -> str:
        return f"CIText({self.length})" if self.length else "CIText()"


class UTCDateTime(TypeDecorator[datetime]):
    """A timestamp stored as UTC: ``timestamptz`` on PostgreSQL, ``DATETIME(6)`` (UTC) on
    MariaDB/MySQL, ISO text (UTC) on SQLite. Writes need an aware datetime (a naive one is
    refused, it could be in any zone); reads are aware datetimes in UTC, microseconds kept."""

    impl = DateTime
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> Any:
        if dialect.name == "postgresql":
            return dialect.type_descriptor(postgresql.TIMESTAMP(timezone=True))
        if _is_mysql(dialect):
            return dialect.type_descriptor(mysql.DATETIME(fsp=6))
        return dialect.type_descriptor(DateTime())

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if not isinstance(value, datetime):
            raise TypeError(f"expected a datetime, found {type(value).__name__}")
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(f"naive datetime {value.isoformat()}: give it a time zone (UTC)")
        value = value.astimezone(UTC)
        return value if dialect.name == "postgresql" else value.replace(tzinfo=None)

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if isinstance(value, str):
            value = datetime.fromisoformat(value)
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)

    def __repr__(self) -> str:
        return "UTCDateTime()"


def utcnow() -> datetime:
    """The current time as an aware UTC datetime (a column default)."""
    return datetime.now(UTC)
