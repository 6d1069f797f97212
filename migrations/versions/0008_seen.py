"""The seen plugin's table: the last sighting of each identity (sightings).

Revision ID: 0008
Revises: 0007
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import botcore.db.types

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "sightings",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("identity_id", sa.Integer(), nullable=False),
        sa.Column("source", botcore.db.types.CIText(64), nullable=False),
        sa.Column("nick", botcore.db.types.CIText(255), nullable=False),
        sa.Column("channel", botcore.db.types.CIText(255), nullable=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("text", sa.String(400), nullable=True),
        sa.Column("time", botcore.db.types.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["identity_id"],
            ["identities.id"],
            name=op.f("fk_sightings_identity_id_identities"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sightings")),
        sa.UniqueConstraint("identity_id", name=op.f("uq_sightings_identity_id")),
        mysql_charset="utf8mb4",
        mysql_collate="utf8mb4_bin",
        mysql_engine="InnoDB",
    )
    op.create_index("ix_sightings_source_nick", "sightings", ["source", "nick"])


def downgrade() -> None:
    op.drop_table("sightings")
