"""Insert-or-update of one row in one statement, the same on every backend: ``INSERT ... ON
CONFLICT (key) DO UPDATE`` on SQLite and PostgreSQL, ``INSERT ... ON DUPLICATE KEY UPDATE``
on MariaDB/MySQL.

One statement, not a select and then an insert or an update: two writers of the same new
key at once cannot both insert (the database serialises them on the unique key), and it
is one round trip to the server."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from sqlalchemy import Table, UniqueConstraint, bindparam
from sqlalchemy.orm import Session
from sqlalchemy.sql import FromClause

from botcore.db.engine import mark_written
from botcore.db.types import CIText, ci_key

#: What a conflict changes (column name -> SQL expression), given the columns of the row
#: that was to be inserted: ``lambda new: {"value": table.c.value + new.value}``.
Update = Callable[[Any], Mapping[str, Any]]


class Upsert:
    """Inserts one row into ``table``, or, when a row with the same ``key`` (the columns of
    one of the table's unique constraints) is there already, updates that row instead.

    ``columns`` are the columns the insert sets, each from the value of its name given to
    `execute`. ``update(new)`` says what a conflict changes: ``new`` holds the columns of
    the row that was to be inserted (``new.value``), ``table.c`` the stored row's. By
    default every one of ``columns`` but the key takes its new value; the key columns keep
    the spelling they were first stored with.

    On PostgreSQL and MariaDB an upsert takes a new number from the table's id sequence
    (auto-increment) even when it updates: a table written this way many times a second
    wants a wide id (or its key as the primary key).

    The statement is built once per dialect, on first use (building it costs more than
    running it on SQLite). Any thread."""

    def __init__(
        self,
        table: FromClause,
        key: Sequence[str],
        columns: Iterable[str],
        update: Update | None = None,
    ) -> None:
        if not isinstance(table, Table):  # a model's __table__ is typed as any FromClause
            raise TypeError(f"an upsert writes into a table, not {table!r}")
        self.table = table
        self.key = tuple(key)
        self.columns = tuple(columns)
        unknown = [name for name in (*self.key, *self.columns) if name not in table.c]
        if unknown:
            raise ValueError(f"{table.name} has no column {', '.join(unknown)}")
        if not set(self.key) <= set(self.columns):
            raise ValueError(f"the key {self.key} of {table.name} must be among the columns")
        _check_key(table, self.key, self.columns)
        self.update = update or self._replace
        self._statements: dict[str, Any] = {}

    def _replace(self, new: Any) -> dict[str, Any]:
        return {name: new[name] for name in self.columns if name not in self.key}

    def statement(self, dialect: str) -> Any:
        """The statement for ``dialect`` (a SQLAlchemy dialect name); its parameters are
        the column names prefixed with ``p_`` (an insert reserves the column names)."""
        found = self._statements.get(dialect)
        if found is None:
            found = self._statements[dialect] = self._build(dialect)
        return found

    def _build(self, dialect: str) -> Any:
        table = self.table
        values = {name: bindparam(f"p_{name}", type_=table.c[name].type) for name in self.columns}
        # Each dialect's module is imported here, for its own dialect (already loaded: it is
        # the engine's): a bot on SQLite never imports PostgreSQL's or MariaDB's.
        if dialect in ("mysql", "mariadb"):
            from sqlalchemy.dialects import mysql

            upsert = mysql.insert(table).values(values)
            # A list keeps the order: MariaDB assigns left to right, each assignment
            # seeing the ones before it.
            return upsert.on_duplicate_key_update(list(self.update(upsert.inserted).items()))
        if dialect not in ("postgresql", "sqlite"):
            raise ValueError(f"no upsert for the {dialect} dialect")
        insert: postgresql.Insert | sqlite.Insert
        if dialect == "postgresql":
            from sqlalchemy.dialects import postgresql

            insert = postgresql.insert(table).values(values)
        else:
            from sqlalchemy.dialects import sqlite

            insert = sqlite.insert(table).values(values)
        # The conflict target must be the unique index itself: on SQLite a CIText key's is
        # over its ci_key expression (see botcore.db.types.index_by_key).
        target = [
            ci_key(table.c[name]) if isinstance(table.c[name].type, CIText) else table.c[name]
            for name in self.key
        ]
        return insert.on_conflict_do_update(
            index_elements=target, set_=dict(self.update(insert.excluded))
        )

    def execute(self, session: Session, row: Mapping[str, Any]) -> None:
        """Insert or update ``row`` (a value for each of ``columns``) in the session's
        transaction, and mark the session written so that the dispatcher commits it.
        Worker thread."""
        connection = session.connection()
        connection.execute(
            self.statement(connection.dialect.name),
            {f"p_{name}": value for name, value in row.items()},
        )
        mark_written(session)


def _check_key(table: Table, key: tuple[str, ...], columns: tuple[str, ...]) -> None:
    """ValueError unless ``key`` is the columns of one of ``table``'s unique constraints
    (or unique indexes, or its primary key), and the only one the insert sets: MariaDB's
    ``ON DUPLICATE KEY UPDATE`` has no target and updates on a collision with any unique
    key, where SQLite and PostgreSQL would raise."""
    keys = {frozenset(c.name for c in table.primary_key.columns)}
    keys.update(
        frozenset(c.name for c in item.columns)
        for item in table.constraints
        if isinstance(item, UniqueConstraint)
    )
    keys.update(frozenset(c.name for c in i.columns) for i in table.indexes if i.unique)
    keys.discard(frozenset())
    if frozenset(key) not in keys:
        raise ValueError(f"{', '.join(key)} is not a unique key of {table.name}")
    others = [sorted(k) for k in keys if k != frozenset(key) and k <= set(columns)]
    if others:
        raise ValueError(
            f"an upsert into {table.name} on {', '.join(key)} also sets the unique key "
            f"{', '.join(others[0])}: MariaDB would update on a collision there too"
        )
