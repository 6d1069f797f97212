"""Tables: memos (issue 7, memo plugin).

PLACEHOLDER: reserved in the sequence so concurrent work keeps a linear history; its
owner replaces this file's body (keeping revision and down_revision).

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
