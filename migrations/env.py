"""The alembic environment for botcore: migrates the connection botcore hands it.

`botcore.db.migrate` builds alembic's Config in code and puts a connection from a botcore
engine (with the backend settings: SQLite collation, MariaDB sql_mode...) in
``config.attributes``; autogenerate also gets the models' metadata there."""

from __future__ import annotations

from alembic import context

from botcore.db import migrate
from botcore.db.engine import make_engine

config = context.config


def run_migrations(connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=config.attributes.get("target_metadata"),
        **migrate.comparison_options(
            connection.dialect.name, tables=config.attributes.get("tables")
        ),
    )
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    raise SystemExit("botcore migrations run against a database; use botcore-db, not --sql")

_connection = config.attributes.get("connection")
if _connection is not None:
    run_migrations(_connection)
else:
    # Plain `alembic` with sqlalchemy.url set: still use botcore's engine settings.
    _url = config.get_main_option("sqlalchemy.url")
    if not _url:
        raise SystemExit("no database connection: run migrations with botcore-db")
    _engine = make_engine(_url)
    try:
        with _engine.begin() as _conn:
            run_migrations(_conn)
    finally:
        _engine.dispose()
