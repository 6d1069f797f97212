"""SQLite: index case-insensitive columns by their folded key, not by the collation.

Until now SQLite ordered every unique constraint and index over a `CIText` column with
botcore's Python collation: one callback into Python per comparison, dozens per lookup,
each re-taking the GIL. From here on those are expression indexes over
``botcore_fold(column)`` (named like what they replace, plus ``_key``), which SQLite
compares as plain strings; `CIText`'s ``=``, ``!=``
and ``IN`` compare the same keys. Tables whose unique constraint was part of the table are
rebuilt (alembic's batch mode; `botcore.db.migrate` runs SQLite migrations with foreign keys
off, so rebuilding a parent table does not cascade into its children). PostgreSQL and
MariaDB/MySQL are unchanged: their collations are native.

Revision ID: 0009
Revises: 0008
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import botcore.db.types

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

# Unique constraints as 0001-0008 made them: table -> (name, columns), and the CIText
# columns of those tables with their lengths (batch mode's reflection would lose their
# collation).
_UNIQUE = {
    "plugin_data": ("uq_plugin_data_plugin_key", ("plugin", "key")),
    "accounts": ("uq_accounts_username", ("username",)),
    "account_attributes": ("uq_account_attributes_account_id_name", ("account_id", "name")),
    "identities": ("uq_identities_source_identity", ("source", "identity")),
    "permissions": ("uq_permissions_account_id_name", ("account_id", "name")),
    "factoid_names": ("uq_factoid_names_name", ("name",)),
    "karma": ("uq_karma_subject", ("subject",)),
}
_CITEXT = {
    "plugin_data": {"plugin": 64, "key": 255},
    "accounts": {"username": 64},
    "account_attributes": {"name": 64},
    "identities": {"source": 64, "identity": 255},
    "permissions": {"name": 64},
    "factoid_names": {"name": 255},
    "karma": {"subject": 255},
}
# Plain indexes: name -> (table, columns).
_INDEXES = {
    "ix_urls_source_channel_time": ("urls", ("source", "channel", "time")),
    "ix_urls_source_nick": ("urls", ("source", "nick")),
    "ix_memos_to_source_to_nick_delivered": ("memos", ("to_source", "to_nick", "delivered")),
    "ix_sightings_source_nick": ("sightings", ("source", "nick")),
}
_KEYED = {
    "urls": {"source", "channel", "nick"},
    "memos": {"to_source", "to_nick"},
    "sightings": {"source", "nick"},
}


def _elements(table: str, columns: tuple[str, ...]) -> list[sa.TextClause | str]:
    keyed = _KEYED.get(table) or set(_CITEXT.get(table, {}))
    return [
        sa.text(f'{botcore.db.types.FOLD_FUNCTION}("{c}")') if c in keyed else c for c in columns
    ]


def _citext_columns(table: str) -> list[sa.Column]:
    return [
        sa.Column(name, botcore.db.types.CIText(length), nullable=False)
        for name, length in _CITEXT[table].items()
    ]


def upgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    # Rebuilding a table reflects the tables its foreign keys refer to, which may already
    # have key indexes (SQLAlchemy warns it cannot reflect them; they are not rebuilt).
    with botcore.db.types.unreflected_key_indexes():
        _upgrade()


def _upgrade() -> None:
    for table, (name, columns) in _UNIQUE.items():
        with op.batch_alter_table(
            table, recreate="always", reflect_args=_citext_columns(table)
        ) as batch:
            batch.drop_constraint(name, type_="unique")
        op.create_index(f"{name}_key", table, _elements(table, columns), unique=True)
    for name, (table, columns) in _INDEXES.items():
        op.drop_index(name, table_name=table)
        op.create_index(f"{name}_key", table, _elements(table, columns))


def downgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    with botcore.db.types.unreflected_key_indexes():
        _downgrade()


def _downgrade() -> None:
    for name, (table, columns) in _INDEXES.items():
        op.drop_index(f"{name}_key", table_name=table)
        op.create_index(name, table, list(columns))
    for table, (name, columns) in _UNIQUE.items():
        op.drop_index(f"{name}_key", table_name=table)
        with op.batch_alter_table(
            table, recreate="always", reflect_args=_citext_columns(table)
        ) as batch:
            batch.create_unique_constraint(name, list(columns))
