"""Tables of the factoid plugin: factoids (one per fact, and the factpack it came from),
factoid_names (its names and aliases, unique ignoring case; wild when they hold $arg) and
factoid_values (what it says, with the verb that joins name and value), each with author.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import botcore.db.types

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

_MYSQL = {"mysql_charset": "utf8mb4", "mysql_collate": "utf8mb4_bin", "mysql_engine": "InnoDB"}


def upgrade() -> None:
    op.create_table(
        "factoids",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("created", botcore.db.types.UTCDateTime(), nullable=False),
        sa.Column("factpack", sa.String(64), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_factoids")),
        **_MYSQL,
    )
    op.create_table(
        "factoid_names",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("factoid_id", sa.Integer(), nullable=False),
        sa.Column("name", botcore.db.types.CIText(255), nullable=False),
        sa.Column("wild", sa.Boolean(), nullable=False),
        sa.Column("author", sa.String(255), nullable=False),
        sa.Column("created", botcore.db.types.UTCDateTime(), nullable=False),
        sa.Column("factpack", sa.String(64), nullable=True),
        sa.ForeignKeyConstraint(
            ["factoid_id"],
            ["factoids.id"],
            name=op.f("fk_factoid_names_factoid_id_factoids"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_factoid_names")),
        sa.UniqueConstraint("name", name=op.f("uq_factoid_names_name")),
        **_MYSQL,
    )
    op.create_index(op.f("ix_factoid_names_factoid_id"), "factoid_names", ["factoid_id"])
    op.create_table(
        "factoid_values",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("factoid_id", sa.Integer(), nullable=False),
        sa.Column("verb", sa.String(16), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        sa.Column("author", sa.String(255), nullable=False),
        sa.Column("created", botcore.db.types.UTCDateTime(), nullable=False),
        sa.Column("factpack", sa.String(64), nullable=True),
        sa.ForeignKeyConstraint(
            ["factoid_id"],
            ["factoids.id"],
            name=op.f("fk_factoid_values_factoid_id_factoids"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_factoid_values")),
        **_MYSQL,
    )
    op.create_index(op.f("ix_factoid_values_factoid_id"), "factoid_values", ["factoid_id"])


def downgrade() -> None:
    # Indexes go with their tables (MariaDB refuses to drop one a foreign key uses).
    op.drop_table("factoid_values")
    op.drop_table("factoid_names")
    op.drop_table("factoids")
