"""Tables: identities, accounts, attributes, credentials, permissions (issue 5).

PLACEHOLDER: reserved in the sequence so concurrent work keeps a linear history; its
owner replaces this file's body (keeping revision and down_revision).

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
