"""Bridges: the receipts of relayed messages (bridge_receipts: an original's id in its
conversation and each copy's in another, so edits, deletions, replies and reactions reach
the copies, and no message is relayed twice to one conversation), the people whose
messages are not relayed (bridge_ignores), and the name an account is shown under
(accounts.display_name).

Revision ID: 0025
Revises: 0024
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import botcore.db.types

revision = "0025"
down_revision = "0024"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("accounts", sa.Column("display_name", sa.String(64), nullable=True))
    op.create_table(
        "bridge_receipts",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("bridge", sa.String(64), nullable=False),
        sa.Column("origin_source", sa.String(64), nullable=False),
        sa.Column("origin_channel", sa.String(191), nullable=False),
        sa.Column("origin_id", sa.String(128), nullable=False),
        sa.Column("copy_source", sa.String(64), nullable=False),
        sa.Column("copy_channel", sa.String(191), nullable=False),
        sa.Column("copy_local", sa.String(32), nullable=False),
        sa.Column("copy_id", sa.String(128), nullable=True),
        sa.Column("time", botcore.db.types.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_bridge_receipts")),
        sa.UniqueConstraint(
            "origin_source",
            "origin_channel",
            "origin_id",
            "copy_source",
            "copy_channel",
            name="uq_bridge_receipts_origin_copy",
        ),
        mysql_charset="utf8mb4",
        mysql_collate="utf8mb4_bin",
        mysql_engine="InnoDB",
    )
    op.create_index(
        "ix_bridge_receipts_copy", "bridge_receipts", ["copy_source", "copy_channel", "copy_id"]
    )
    op.create_index("ix_bridge_receipts_copy_local", "bridge_receipts", ["copy_local"])
    op.create_index("ix_bridge_receipts_time", "bridge_receipts", ["time"])
    op.create_table(
        "bridge_ignores",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=True),
        sa.Column("source", sa.String(64), nullable=True),
        sa.Column("nick", sa.String(255), nullable=True),
        sa.Column("created", botcore.db.types.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["accounts.id"],
            name=op.f("fk_bridge_ignores_account_id_accounts"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_bridge_ignores")),
        mysql_charset="utf8mb4",
        mysql_collate="utf8mb4_bin",
        mysql_engine="InnoDB",
    )
    op.create_index(op.f("ix_bridge_ignores_account_id"), "bridge_ignores", ["account_id"])


def downgrade() -> None:
    op.drop_table("bridge_ignores")
    op.drop_table("bridge_receipts")
    # A plain DROP COLUMN (SQLite has it since 3.35): a batch rebuild of the table would
    # drop SQLite's key index on accounts.username (see 0009).
    op.drop_column("accounts", "display_name")
