"""Per-message work of the bundled plugins: an index for the factoids' wildcard names
(read on every fact lookup that finds no exact name: a full scan of factoid_names until
now), one for the memos a sender has waiting (counted against memo's per-sender cap on
every ``tell``), and a 64-bit sightings.id (seen's upsert takes a number from the id sequence on
every write, even an update, on PostgreSQL and MariaDB; SQLite's integer key is 64-bit
already).

Revision ID: 0016
Revises: 0015
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_factoid_names_wild", "factoid_names", ["wild"])
    op.create_index(
        "ix_memos_from_identity_id_delivered", "memos", ["from_identity_id", "delivered"]
    )
    _sightings_id(sa.BigInteger())


def downgrade() -> None:
    _sightings_id(sa.Integer())
    bind = op.get_bind()
    if bind.dialect.name in ("mysql", "mariadb"):
        # MariaDB let the new index serve the foreign key in place of the one it made for
        # it, and refuses to drop the only index a foreign key has: give it back first.
        for key in sa.inspect(bind).get_foreign_keys("memos"):
            if key["constrained_columns"] == ["from_identity_id"] and key["name"]:
                op.create_index(key["name"], "memos", ["from_identity_id"])
    op.drop_index("ix_memos_from_identity_id_delivered", table_name="memos")
    op.drop_index("ix_factoid_names_wild", table_name="factoid_names")


def _sightings_id(type_: sa.types.TypeEngine) -> None:
    dialect = op.get_bind().dialect.name
    if dialect == "sqlite":
        return
    if dialect == "postgresql":
        name = "BIGINT" if isinstance(type_, sa.BigInteger) else "INTEGER"
        op.execute(f"ALTER TABLE sightings ALTER COLUMN id TYPE {name}")
        # The sequence behind the serial column has a type of its own (and its maximum).
        op.execute(f"ALTER SEQUENCE sightings_id_seq AS {name}")
        return
    op.alter_column(
        "sightings",
        "id",
        type_=type_,
        existing_nullable=False,
        autoincrement=True,
        existing_autoincrement=True,
    )
