"""An index on memos.delivered: the memo plugin reads who has memos waiting (the
undelivered ones) every refresh_interval, so that ordinary messages need no query; without
it that read scans every memo ever left.

Revision ID: 0023
Revises: 0021
"""

from __future__ import annotations

from alembic import op

revision = "0023"
down_revision = "0021"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_memos_delivered", "memos", ["delivered"])


def downgrade() -> None:
    op.drop_index("ix_memos_delivered", table_name="memos")
