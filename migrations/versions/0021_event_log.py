"""The event log (botcore.bus.log): an opt-in record of the bot's events, read with
``botcore-db events`` and pruned by age (time) and count (id).

Revision ID: 0021
Revises: 0016
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import botcore.db.types

revision = "0021"
down_revision = "0016"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "event_log",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("event_id", sa.String(32), nullable=False),
        sa.Column("time", botcore.db.types.UTCDateTime(), nullable=False),
        sa.Column("type", sa.String(100), nullable=False),
        sa.Column("source", sa.String(100), nullable=False),
        sa.Column("channel", sa.String(255), nullable=True),
        sa.Column("public", sa.Boolean(), nullable=False),
        sa.Column("sender", sa.String(255), nullable=True),
        sa.Column("summary", sa.String(255), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=True),
        sa.Column("text", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_event_log")),
        mysql_charset="utf8mb4",
        mysql_collate="utf8mb4_bin",
        mysql_engine="InnoDB",
    )
    op.create_index("ix_event_log_time", "event_log", ["time"])
    op.create_index("ix_event_log_type", "event_log", ["type"])
    op.create_index("ix_event_log_source", "event_log", ["source"])


def downgrade() -> None:
    op.drop_table("event_log")
