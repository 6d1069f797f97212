"""Tables: reminders (issue 7, remind plugin).

PLACEHOLDER: reserved in the sequence so concurrent work keeps a linear history; its
owner replaces this file's body (keeping revision and down_revision).

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
