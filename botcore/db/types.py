"""Column types that behave the same on SQLite, PostgreSQL and MariaDB/MySQL.

`CIText` is case-insensitive text (unique names collide whatever their case); `UTCDateTime`
stores timestamps as UTC and always reads them back as aware UTC datetimes."""

from __future__ import annotations

import re
import unicodedata
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

from sqlalchemy import DateTime, Index, MetaData, String, Table, UniqueConstraint, text
from sqlalchemy.engine import Connection, Dialect
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql import operators
from sqlalchemy.sql.elements import BindParameter, ClauseElement, ColumnElement
from sqlalchemy.sql.visitors import InternalTraversal
from sqlalchemy.types import TypeDecorator

#: The name of the case-insensitive collation: an ICU collation created by the first
#: migration on PostgreSQL, and a Python function registered on every SQLite connection.
COLLATION = "botcore_ci"

#: The SQL function (SQLite only) giving a `CIText` value's key, `fold`: CIText
#: comparisons and indexes on SQLite go through it (see `CIText`).
FOLD_FUNCTION = "botcore_fold"

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


def sqlite_fold(value: Any) -> Any:
    """The SQLite function named `FOLD_FUNCTION`: `fold` of a string or of a number's
    text (as a text column would store the number), anything else as is."""
    if isinstance(value, str):
        return fold(value)
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    return value


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


class _Wrapped(ColumnElement[str]):
    """An SQL expression that compiles around another one (``expr``), per backend."""

    _traverse_internals = [("expr", InternalTraversal.dp_clauseelement)]  # noqa: RUF012
    inherit_cache = True

    def __init__(self, expr: ColumnElement[str], type_: Any) -> None:
        self.expr = expr
        self.type = type_

    @property
    def _from_objects(self) -> list[Any]:
        return self.expr._from_objects


class _PatternSubject(_Wrapped):
    """A CIText column as the left side of a LIKE: on PostgreSQL it is given an ICU
    deterministic collation, because LIKE refuses nondeterministic ones before PG 18."""

    __visit_name__ = "botcore_pattern_subject"
    inherit_cache = True

    def __init__(self, expr: ColumnElement[str]) -> None:
        super().__init__(expr, String())


@compiles(_PatternSubject)
def _compile_subject(element: _PatternSubject, compiler: Any, **kw: Any) -> str:
    return compiler.process(element.expr, **kw)


@compiles(_PatternSubject, "postgresql")
def _compile_subject_pg(element: _PatternSubject, compiler: Any, **kw: Any) -> str:
    return f'({compiler.process(element.expr, **kw)} COLLATE "und-x-icu")'


class FoldedKey(TypeDecorator[str]):
    """The type of a `ci_key`: on SQLite a value bound to it is folded in Python (so the
    comparison with an indexed ``botcore_fold(column)`` is a plain binary one)."""

    impl = String
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Dialect) -> Any:
        return sqlite_fold(value) if dialect.name == "sqlite" else value


class _Key(_Wrapped):
    __visit_name__ = "botcore_ci_key"
    inherit_cache = True

    def __init__(self, expr: ColumnElement[str]) -> None:
        super().__init__(expr, FoldedKey())

    def __repr__(self) -> str:
        return f"ci_key({self.expr})"


def ci_key(expr: ColumnElement[str]) -> ColumnElement[str]:
    """A `CIText` expression as its comparison key: ``botcore_fold(expr)`` on SQLite, the
    expression itself elsewhere (where the column's collation already ignores case).
    `CIText`'s ``=``, ``!=`` and ``IN`` compare keys; SQLite indexes CIText columns by key."""
    return _Key(expr)


@compiles(_Key)
def _compile_key(element: _Key, compiler: Any, **kw: Any) -> str:
    return compiler.process(element.expr, **kw)


@compiles(_Key, "mysql")
@compiles(_Key, "mariadb")
def _compile_key_mysql(element: _Key, compiler: Any, **kw: Any) -> str:
    # A CIText column's collation loses to another column's binary one on MariaDB/MySQL
    # (both are "implicit"), so what is not CIText is given the case-insensitive one.
    inner = compiler.process(element.expr, **kw)
    if isinstance(element.expr.type, CIText):
        return inner
    return f"({inner} COLLATE {mysql_collation(compiler.dialect)})"


@compiles(_Key, "sqlite")
def _compile_key_sqlite(element: _Key, compiler: Any, **kw: Any) -> str:
    return f"{FOLD_FUNCTION}({compiler.process(element.expr, **kw)})"


_FALL_BACK = object()


def _key_of(other: Any) -> Any:
    """What ``other`` is compared as when it meets a `ci_key`: a plain value or untyped
    bound parameter is bound as a `FoldedKey` (folded in Python); any other SQL
    expression is wrapped in `ci_key`, so is each in a list; a subquery or a typed list
    parameter falls back to the collation (``_FALL_BACK``): `ci_key` cannot fold their
    items one by one."""
    if hasattr(other, "__clause_element__"):  # a mapped attribute
        other = other.__clause_element__()
    if isinstance(other, BindParameter):
        if other.type._isnull:
            return other
        if other.expanding:
            return _FALL_BACK
    if isinstance(other, ColumnElement):
        return _Key(other)
    if isinstance(other, ClauseElement):
        return _FALL_BACK
    if isinstance(other, (list, tuple, set)):
        items = [_key_of(item) for item in other]
        return _FALL_BACK if any(item is _FALL_BACK for item in items) else items
    return other


#: The comparisons CIText makes between keys (see `ci_key`).
_KEY_OPERATORS = frozenset({operators.eq, operators.ne, operators.in_op, operators.not_in_op})


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
            if op in _KEY_OPERATORS and len(other) == 1 and other[0] is not None:
                key = _key_of(other[0])
                if key is not _FALL_BACK:
                    return op(_Key(self.expr), key, **kw)
            return super().operate(op, *other, **kw)

    def __init__(self, length: int | None = None) -> None:
        super().__init__(length)
        self.length = length

    def load_dialect_impl(self, dialect: Dialect) -> Any:
        if _is_mysql(dialect):
            from sqlalchemy.dialects import mysql  # loaded already: it is the dialect's

            return dialect.type_descriptor(
                mysql.VARCHAR(self.length, charset="utf8mb4", collation=mysql_collation(dialect))
                if self.length
                else mysql.TEXT(charset="utf8mb4", collation=mysql_collation(dialect))
            )
        return dialect.type_descriptor(String(self.length, collation=COLLATION))

    def __repr__(self) -> str:
        return f"CIText({self.length})" if self.length else "CIText()"


def _not_sqlite(
    ddl: Any,
    target: Any,
    bind: Any,
    tables: Any = None,
    state: Any = None,
    *,
    dialect: Dialect,
    **kw: Any,
) -> bool:
    return dialect.name != "sqlite"


def index_by_key(table: Table) -> None:
    """Make ``table``'s unique constraints and indexes over `CIText` columns index their
    keys on SQLite: each gets an SQLite-only twin named ``<its name>_key`` over `ci_key` of
    those columns, and is itself kept off SQLite. (SQLite would otherwise order them with
    the Python collation: a callback into Python per comparison, dozens per lookup.)
    Models on `botcore.db.models.Base` get this by themselves; `CIText`'s ``=``, ``!=``
    and ``IN`` then use the twins. Calling it again changes nothing."""
    items: list[Index | UniqueConstraint] = [
        item for item in table.constraints if isinstance(item, UniqueConstraint)
    ]
    items += [index for index in table.indexes if not is_key_index(index)]
    names = {index.name for index in table.indexes}
    for item in items:
        columns = list(item.columns)
        name = item.name if isinstance(item.name, str) and item.name else None
        if name is None:  # unnamed, and no naming convention: name it as Base's would
            kind = "uq" if isinstance(item, UniqueConstraint) or item.unique else "ix"
            name = f"{kind}_{table.name}_{'_'.join(c.name for c in columns)}"
        if not _over_citext(item) or f"{name}_key" in names:
            continue
        item.ddl_if(callable_=_not_sqlite)
        twin = Index(  # attaches itself to the table of its columns
            f"{name}_key",
            *(_Key(c) if isinstance(c.type, CIText) else c for c in columns),
            unique=isinstance(item, UniqueConstraint) or bool(getattr(item, "unique", False)),
        )
        twin.ddl_if(dialect="sqlite")


def _over_citext(item: Any) -> bool:
    return any(isinstance(column.type, CIText) for column in getattr(item, "columns", ()))


@contextmanager
def unreflected_key_indexes() -> Iterator[None]:
    """Quiet SQLAlchemy's and alembic's warning, once per index, that SQLite's key indexes
    (expression indexes) cannot be reflected, where that is expected: `botcore.db.migrate`'s
    comparison (which checks them by their SQL) and the dump. Not in migrations: there
    the warning says that a batch rebuild of the table drops the index."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "Skipped unsupported reflection of expression-based")
        warnings.filterwarnings("ignore", "autogenerate skipping metadata-specified expression")
        yield


def is_key_index(item: Any) -> bool:
    """Whether ``item`` is an index over `ci_key` expressions (SQLite's, see
    `index_by_key`)."""
    return isinstance(item, Index) and any(isinstance(e, _Key) for e in item.expressions)


def made_for(item: Any, dialect: str) -> bool:
    """Whether `index_by_key` meant ``item`` (an index or constraint) to exist on
    ``dialect``: key indexes on SQLite only, what they stand for everywhere else."""
    if is_key_index(item):
        return dialect == "sqlite"
    if isinstance(item, (Index, UniqueConstraint)) and _over_citext(item):
        return dialect != "sqlite"
    return True


class UTCDateTime(TypeDecorator[datetime]):
    """A timestamp stored as UTC: ``timestamptz`` on PostgreSQL, ``DATETIME(6)`` (UTC) on
    MariaDB/MySQL, ISO text (UTC) on SQLite. Writes need an aware datetime (a naive one is
    refused, it could be in any zone); reads are aware datetimes in UTC, microseconds kept."""

    impl = DateTime
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> Any:
        # The dialects' modules are imported here, where they are already loaded (it is
        # the engine's dialect): a bot on SQLite never imports PostgreSQL's or MariaDB's.
        if dialect.name == "postgresql":
            from sqlalchemy.dialects import postgresql

            return dialect.type_descriptor(postgresql.TIMESTAMP(timezone=True))
        if _is_mysql(dialect):
            from sqlalchemy.dialects import mysql

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


def compare_key_indexes(connection: Connection, metadata: MetaData) -> list[Any]:
    """alembic-style differences for SQLite's key indexes: ``add_index`` for one missing
    or different (compared by its SQL, quotes and spaces aside)."""
    from sqlalchemy.schema import CreateIndex

    stored = {
        name: _normal_sql(sql)
        for name, sql in connection.exec_driver_sql(
            "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL"
        )
    }
    differences: list[Any] = []
    for table in metadata.tables.values():
        for index in sorted(table.indexes, key=lambda i: str(i.name)):
            if is_key_index(index):
                wanted = _normal_sql(str(CreateIndex(index).compile(dialect=connection.dialect)))
                if stored.get(str(index.name)) != wanted:
                    differences.append(("add_index", index))
    return differences


def _normal_sql(sql: str) -> str:
    return re.sub(r"[\s\"`\[\]]", "", sql).lower()
