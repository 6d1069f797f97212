"""Accounts, identities, account attributes, credentials and permission rows.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import botcore.db.types

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

MYSQL = {"mysql_charset": "utf8mb4", "mysql_collate": "utf8mb4_bin", "mysql_engine": "InnoDB"}


def _account_fk(table: str, ondelete: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        ["account_id"],
        ["accounts.id"],
        name=op.f(f"fk_{table}_account_id_accounts"),
        ondelete=ondelete,
    )


def upgrade() -> None:
    op.create_table(
        "accounts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("username", botcore.db.types.CIText(64), nullable=False),
        sa.Column("created", botcore.db.types.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_accounts")),
        sa.UniqueConstraint("username", name=op.f("uq_accounts_username")),
        **MYSQL,
    )
    op.create_table(
        "account_attributes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("name", botcore.db.types.CIText(64), nullable=False),
        sa.Column("value", sa.String(length=1024), nullable=False),
        _account_fk("account_attributes", "CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_account_attributes")),
        sa.UniqueConstraint(
            "account_id", "name", name=op.f("uq_account_attributes_account_id_name")
        ),
        **MYSQL,
    )
    op.create_table(
        "credentials",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("source", botcore.db.types.CIText(64), nullable=True),
        sa.Column("method", sa.String(length=16), nullable=False),
        sa.Column("secret", sa.String(length=255), nullable=False),
        _account_fk("credentials", "CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_credentials")),
        **MYSQL,
    )
    op.create_index(op.f("ix_credentials_account_id"), "credentials", ["account_id"])
    op.create_table(
        "identities",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("source", botcore.db.types.CIText(64), nullable=False),
        sa.Column("identity", botcore.db.types.CIText(255), nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=True),
        sa.Column("created", botcore.db.types.UTCDateTime(), nullable=False),
        _account_fk("identities", "SET NULL"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_identities")),
        sa.UniqueConstraint("source", "identity", name=op.f("uq_identities_source_identity")),
        **MYSQL,
    )
    op.create_index(op.f("ix_identities_account_id"), "identities", ["account_id"])
    op.create_table(
        "permissions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("name", botcore.db.types.CIText(64), nullable=False),
        sa.Column("value", sa.String(length=4), nullable=False),
        _account_fk("permissions", "CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_permissions")),
        sa.UniqueConstraint("account_id", "name", name=op.f("uq_permissions_account_id_name")),
        **MYSQL,
    )


def downgrade() -> None:
    # Dropping a table drops its indexes; MariaDB refuses to drop an index on its own while
    # a foreign key needs it.
    op.drop_table("permissions")
    op.drop_table("identities")
    op.drop_table("credentials")
    op.drop_table("account_attributes")
    op.drop_table("accounts")
