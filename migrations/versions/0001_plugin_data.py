"""Per-plugin key/value storage (plugin_data), and the case-insensitive collation.

Revision ID: 0001
Revises:
Create Date: 2026-11-21 09:20:47.129653
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import botcore.db.types

revision = "0001"
down_revision = None
branch_labels = ("botcore",)
depends_on = None


def upgrade() -> None:
    botcore.db.types.create_collation(op.get_bind())
    op.create_table(
        "plugin_data",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("plugin", botcore.db.types.CIText(64), nullable=False),
        sa.Column("key", botcore.db.types.CIText(255), nullable=False),
        sa.Column("value", sa.JSON(), nullable=True),
        sa.Column("created", botcore.db.types.UTCDateTime(), nullable=False),
        sa.Column("updated", botcore.db.types.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_plugin_data")),
        sa.UniqueConstraint("plugin", "key", name=op.f("uq_plugin_data_plugin_key")),
        mysql_charset="utf8mb4",
        mysql_collate="utf8mb4_bin",
        mysql_engine="InnoDB",
    )


def downgrade() -> None:
    op.drop_table("plugin_data")
    botcore.db.types.drop_collation(op.get_bind())
