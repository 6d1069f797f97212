"""Tables of the karma plugin: karma (one score per subject, unique ignoring case) and
karma_votes (who voted, by how much, why and when).

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import botcore.db.types

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

_MYSQL = {"mysql_charset": "utf8mb4", "mysql_collate": "utf8mb4_bin", "mysql_engine": "InnoDB"}


def upgrade() -> None:
    op.create_table(
        "karma",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("subject", botcore.db.types.CIText(255), nullable=False),
        sa.Column("value", sa.Integer(), nullable=False),
        sa.Column("created", botcore.db.types.UTCDateTime(), nullable=False),
        sa.Column("updated", botcore.db.types.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_karma")),
        sa.UniqueConstraint("subject", name=op.f("uq_karma_subject")),
        **_MYSQL,
    )
    op.create_table(
        "karma_votes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("karma_id", sa.Integer(), nullable=False),
        sa.Column("voter", sa.String(255), nullable=False),
        sa.Column("change", sa.Integer(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("time", botcore.db.types.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["karma_id"],
            ["karma.id"],
            name=op.f("fk_karma_votes_karma_id_karma"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_karma_votes")),
        **_MYSQL,
    )
    op.create_index(op.f("ix_karma_votes_karma_id"), "karma_votes", ["karma_id"])


def downgrade() -> None:
    # The index goes with its table (MariaDB refuses to drop an index a foreign key uses).
    op.drop_table("karma_votes")
    op.drop_table("karma")
