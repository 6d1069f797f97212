"""Tables: URLs seen (issue 7, urlgrab plugin).

PLACEHOLDER: reserved in the sequence so concurrent work keeps a linear history; its
owner replaces this file's body (keeping revision and down_revision).

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
