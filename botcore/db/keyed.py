"""What revision files call to create a unique constraint or index over `CIText` columns
that comes out right on every backend: an expression index over the folded key on SQLite,
the constraint or index itself (ordered by the native case-insensitive collation) elsewhere.

``botcore-db revision`` writes these calls for you (see `botcore.db.autogen`); they are
the migration-time twin of `botcore.db.types.index_by_key`, and name the SQLite index
``<name>_key`` as it does. Each runs inside a migration (it uses ``alembic.op``)."""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from botcore.db import types


def _on_sqlite() -> bool:
    return bool(op.get_bind().dialect.name == "sqlite")


def _key_elements(columns: Sequence[str], keyed: Sequence[str]) -> list[sa.TextClause | str]:
    return [sa.text(f'{types.FOLD_FUNCTION}("{c}")') if c in keyed else c for c in columns]


def create_unique(name: str, table: str, columns: Sequence[str], *, keyed: Sequence[str]) -> None:
    """A unique constraint ``name`` over ``columns`` of ``table``; the ``keyed`` ones are
    `CIText` columns (on SQLite a unique index ``<name>_key`` over their keys)."""
    if _on_sqlite():
        op.create_index(f"{name}_key", table, _key_elements(columns, keyed), unique=True)
    else:
        op.create_unique_constraint(name, table, list(columns))


def drop_unique(name: str, table: str) -> None:
    """Undo `create_unique`."""
    if _on_sqlite():
        op.drop_index(f"{name}_key", table_name=table)
    else:
        op.drop_constraint(name, table, type_="unique")


def create_index(
    name: str,
    table: str,
    columns: Sequence[str],
    *,
    keyed: Sequence[str],
    unique: bool = False,
) -> None:
    """An index ``name`` over ``columns`` of ``table``; the ``keyed`` ones are `CIText`
    columns (on SQLite an index ``<name>_key`` over their keys)."""
    if _on_sqlite():
        op.create_index(f"{name}_key", table, _key_elements(columns, keyed), unique=unique)
    else:
        op.create_index(name, table, list(columns), unique=unique)


def drop_index(name: str, table: str) -> None:
    """Undo `create_index`."""
    op.drop_index(f"{name}_key" if _on_sqlite() else name, table_name=table)


def restore(table: str, items: Sequence[tuple[str, Sequence[str], Sequence[str], bool]]) -> None:
    """After a batch rebuild of ``table`` on SQLite (which drops expression indexes, as
    reflection cannot see them), make its key indexes again: ``items`` are (name,
    columns, keyed, unique) of its `CIText` constraints and indexes. Elsewhere nothing
    was lost, and nothing is done."""
    if not _on_sqlite():
        return
    for name, columns, keyed, unique in items:
        op.create_index(
            f"{name}_key", table, _key_elements(columns, keyed), unique=unique, if_not_exists=True
        )
