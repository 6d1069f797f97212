"""The memo plugin's table: memos left for people, until and after delivery (memos).

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import botcore.db.types

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "memos",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("from_source", botcore.db.types.CIText(64), nullable=False),
        sa.Column("from_nick", botcore.db.types.CIText(255), nullable=False),
        sa.Column("from_identity_id", sa.Integer(), nullable=True),
        sa.Column("to_source", botcore.db.types.CIText(64), nullable=True),
        sa.Column("to_nick", botcore.db.types.CIText(255), nullable=True),
        sa.Column("to_account_id", sa.Integer(), nullable=True),
        sa.Column("memo", sa.Text(), nullable=False),
        sa.Column("private", sa.Boolean(), nullable=False),
        sa.Column("time", botcore.db.types.UTCDateTime(), nullable=False),
        sa.Column("delivered", sa.Boolean(), nullable=False),
        sa.Column("notified", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(
            ["from_identity_id"],
            ["identities.id"],
            name=op.f("fk_memos_from_identity_id_identities"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["to_account_id"],
            ["accounts.id"],
            name=op.f("fk_memos_to_account_id_accounts"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_memos")),
        mysql_charset="utf8mb4",
        mysql_collate="utf8mb4_bin",
        mysql_engine="InnoDB",
    )
    op.create_index(
        "ix_memos_to_source_to_nick_delivered", "memos", ["to_source", "to_nick", "delivered"]
    )
    op.create_index("ix_memos_to_account_id_delivered", "memos", ["to_account_id", "delivered"])


def downgrade() -> None:
    op.drop_table("memos")
