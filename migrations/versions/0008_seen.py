"""Tables: last sightings (issue 7, seen plugin).

PLACEHOLDER: reserved in the sequence so concurrent work keeps a linear history; its
owner replaces this file's body (keeping revision and down_revision).

Revision ID: 0008
Revises: 0007
"""

from __future__ import annotations

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
