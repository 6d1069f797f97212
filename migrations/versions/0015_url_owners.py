"""urlgrab: who may see a URL said in private (urls.account_id and urls.connection).

A URL said to the bot in private is shown, in that private conversation, only to the
account it was said by (when said authenticated), or else to the same identity on the
same connection, never to whoever holds the nick next. Rows from before keep their
identity as the only owner.

Revision ID: 0015
Revises: 0013
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("urls", sa.Column("account_id", sa.Integer(), nullable=True))
    op.add_column("urls", sa.Column("connection", sa.String(255), nullable=True))


def downgrade() -> None:
    # A plain DROP COLUMN (SQLite has it since 3.35): a batch rebuild of the table would
    # drop SQLite's key indexes on it (see 0009).
    op.drop_column("urls", "connection")
    op.drop_column("urls", "account_id")
