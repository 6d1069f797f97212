"""Fresh databases for tests on every backend: a SQLite file in the test's folder always,
and a database of its own on the PostgreSQL or MariaDB server named by
``BOTCORE_TEST_POSTGRES_URL`` / ``BOTCORE_TEST_MYSQL_URL``, dropped after the test.

A server that is not configured or not reachable skips the test, except under
``CI=true``, where it fails."""

from __future__ import annotations

import os
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from sqlalchemy import create_engine, text
from sqlalchemy.engine import URL, make_url
from twisted.trial.unittest import SkipTest, SynchronousTestCase

from botcore.db import migrate
from botcore.db.engine import make_engine
from botcore.db.faults import first_line
from botcore.db.service import Database

if TYPE_CHECKING:
    from sqlalchemy import MetaData
    from sqlalchemy.engine import Engine

SQLITE = "sqlite"
POSTGRESQL = "postgresql"
MYSQL = "mysql"
BACKENDS = (SQLITE, POSTGRESQL, MYSQL)

#: The environment variables naming an admin URL of each server backend.
ENVIRONMENT = {
    POSTGRESQL: "BOTCORE_TEST_POSTGRES_URL",
    MYSQL: "BOTCORE_TEST_MYSQL_URL",
}

#: How the test classes made for each backend are named: ``<prefix><Name>``.
PREFIXES = {SQLITE: "SQLite", POSTGRESQL: "PostgreSQL", MYSQL: "MariaDB"}


def in_ci() -> bool:
    """Whether the tests run under CI (``CI=true``), where a missing server fails."""
    return os.environ.get("CI") == "true"


def unavailable(reason: str) -> NoReturn:
    """Skip the test for a missing server, or fail it under CI."""
    if in_ci():
        raise AssertionError(f"{reason} (CI=true: a missing server is a failure)")
    raise SkipTest(reason)


def server_url(backend: str) -> URL:
    """The configured admin URL of a server backend (skips or fails when unset)."""
    variable = ENVIRONMENT[backend]
    value = os.environ.get(variable)
    if not value:
        unavailable(f"{variable} is not set")
    return make_url(value)


def fresh_database(testcase: SynchronousTestCase, backend: str) -> str:
    """The URL of an empty database for this test only: a SQLite file in the test's
    folder, or a database of its own on the server named by ``BOTCORE_TEST_POSTGRES_URL``
    / ``BOTCORE_TEST_MYSQL_URL``, dropped by a cleanup at the end of the test. A server
    that is not configured or not reachable skips the test (fails it under CI=true)."""
    if backend == SQLITE:
        folder = Path(testcase.mktemp()).absolute()
        folder.mkdir(parents=True)
        return f"sqlite:///{folder / 'test.sqlite'}"
    if backend not in ENVIRONMENT:
        raise ValueError(f"unknown backend {backend!r} (one of {', '.join(BACKENDS)})")
    admin = server_url(backend)
    name = f"botcore_test_{uuid.uuid4().hex[:12]}"
    engine = create_engine(admin, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as connection:
            if backend == POSTGRESQL:
                connection.execute(text(f'CREATE DATABASE "{name}"'))
            else:
                connection.execute(text(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4"))
    except Exception as e:
        engine.dispose()
        message = first_line(e)
        unavailable(f"{backend} server at {admin.render_as_string()} unreachable: {message}")

    def drop() -> None:
        with engine.connect() as connection:
            if backend == POSTGRESQL:
                connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            else:
                connection.execute(text(f"DROP DATABASE IF EXISTS `{name}`"))
        engine.dispose()

    testcase.addCleanup(drop)
    return admin.set(database=name).render_as_string(hide_password=False)


def fresh_engine(testcase: SynchronousTestCase, backend: str, *, migrated: bool = False) -> Engine:
    """A botcore engine on a fresh database of ``backend`` (`fresh_database`), disposed of
    at the end of the test; with ``migrated``, brought to the core's head first."""
    engine = make_engine(fresh_database(testcase, backend))
    testcase.addCleanup(engine.dispose)
    if migrated:
        migrate.upgrade(engine)
    return engine


def sqlite_database(
    testcase: SynchronousTestCase, name: str = "main", metadata: MetaData | None = None
) -> Database:
    """A started `Database` called ``name`` on a fresh SQLite file (migrated to the core's
    head at startup, as a new SQLite database is), with ``metadata``'s tables created
    too; stopped at the end of the test."""
    database = Database(name, {"url": fresh_database(testcase, SQLITE)})
    database.startService()
    testcase.addCleanup(database.stopService)
    if metadata is not None:
        assert database.engine is not None  # made by startService
        metadata.create_all(database.engine)
    return database


def _define(namespace: dict[str, Any], name: str, bases: tuple[type, ...], backend: str) -> None:
    namespace[name] = type(
        name,
        bases,
        {"backend": backend, "__module__": namespace["__name__"], "__doc__": bases[0].__doc__},
    )


def backend_variants(cls: type, namespace: dict[str, Any]) -> None:
    """Define ``PostgreSQL<Name>`` and ``MariaDB<Name>`` in ``namespace``: subclasses of
    the `PluginTestCase` ``cls`` (which runs on SQLite) that run its tests on a fresh
    database of that server (skipped when unconfigured, failing under CI=true)."""
    for backend in (POSTGRESQL, MYSQL):
        _define(namespace, f"{PREFIXES[backend]}{cls.__name__}", (cls,), backend)


def backend_classes(mixin: type, namespace: dict[str, Any], stem: str) -> None:
    """Define ``SQLite<stem>``, ``PostgreSQL<stem>`` and ``MariaDB<stem>`` test classes in
    ``namespace``, each running ``mixin``'s tests (which read ``self.backend``, e.g. for
    `fresh_database`) on that backend."""
    for backend in BACKENDS:
        _define(namespace, f"{PREFIXES[backend]}{stem}", (mixin, SynchronousTestCase), backend)
