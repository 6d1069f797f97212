"""factoid_names.wild_key: the word of a wildcard name's literal text that every message
it matches holds, indexed, so recall asks the database for the wildcard names a message
might match instead of trying every one. Existing wildcard names get their key here.

Revision ID: 0013
Revises: 0009
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0009"
branch_labels = None
depends_on = None

_NAMES = sa.table(
    "factoid_names",
    sa.column("id", sa.Integer()),
    sa.column("name", sa.String()),
    sa.column("wild", sa.Boolean()),
    sa.column("wild_key", sa.String()),
)


def _key(name: str) -> str | None:
    """botcore.plugins.factoid.wild_key as of this revision (a migration keeps its own copy): the
    longest case-folded word of the name that touches no $arg."""
    words = [word.casefold() for word in name.split() if "$arg" not in word.lower()]
    return max((word for word in words if len(word) <= 255), key=len, default=None)


def upgrade() -> None:
    op.add_column("factoid_names", sa.Column("wild_key", sa.String(255), nullable=True))
    op.create_index(op.f("ix_factoid_names_wild_key"), "factoid_names", ["wild_key"])
    bind = op.get_bind()
    rows = bind.execute(
        sa.select(_NAMES.c.id, _NAMES.c.name).where(_NAMES.c.wild == sa.true())
    ).all()
    for row_id, name in rows:
        key = _key(name)
        if key is not None:
            bind.execute(_NAMES.update().where(_NAMES.c.id == row_id).values(wild_key=key))


def downgrade() -> None:
    op.drop_index(op.f("ix_factoid_names_wild_key"), table_name="factoid_names")
    op.drop_column("factoid_names", "wild_key")
