"""The urlgrab plugin's table: every URL said in a channel (urls).

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import botcore.db.types

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "urls",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("source", botcore.db.types.CIText(64), nullable=False),
        sa.Column("channel", botcore.db.types.CIText(255), nullable=False),
        sa.Column("sender_id", sa.String(255), nullable=False),
        sa.Column("nick", botcore.db.types.CIText(255), nullable=False),
        sa.Column("identity_id", sa.Integer(), nullable=True),
        sa.Column("url", botcore.db.types.CIText(2048), nullable=False),
        sa.Column("title", botcore.db.types.CIText(512), nullable=True),
        sa.Column("time", botcore.db.types.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_urls")),
        mysql_charset="utf8mb4",
        mysql_collate="utf8mb4_bin",
        mysql_engine="InnoDB",
    )
    op.create_index("ix_urls_source_channel_time", "urls", ["source", "channel", "time"])
    op.create_index("ix_urls_source_nick", "urls", ["source", "nick"])


def downgrade() -> None:
    op.drop_index("ix_urls_source_nick", table_name="urls")
    op.drop_index("ix_urls_source_channel_time", table_name="urls")
    op.drop_table("urls")
