"""Database engines and sessions: one `Database` service per ``[database:NAME]`` section,
with per-backend connection settings, the schema check at startup, and fault handling.

SQLite is the embedded default; PostgreSQL (psycopg 3) and MariaDB/MySQL (PyMySQL or
mysqlclient) are first-class. Sessions are handed to events lazily and committed by the
dispatcher after each processor that changed something; a dropped connection, a
restarted server or a deadlock is retried there with the backoff configured here."""

from __future__ import annotations

import re
import sqlite3
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from sqlalchemy import create_engine, event
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import URL, Engine, make_url
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import StaticPool

from botcore.db import types
from botcore.options import BoolOption, FloatOption, IntOption, Option

if TYPE_CHECKING:
    pass


_WRITES = "botcore.writes"

#: Appended to the session's sql_mode on MariaDB/MySQL; SQLAlchemy sees it when it
#: inspects the first connection and quotes identifiers to match.
_MYSQL_INIT = (
    "SET SESSION sql_mode = CONCAT_WS(',', NULLIF(@@SESSION.sql_mode, ''), 'ANSI_QUOTES'), "
    "time_zone = '+00:00', default_storage_engine = 'InnoDB'"
)


class DatabaseUrlOption(Option):
    """A database URL: a secret (its password is never shown or logged), shown with the
    password masked."""

    kind = "database URL"

    def parse(self, raw: str) -> str:
        try:
            make_url(raw.strip())
        except Exception:
            # Not quoted: the text may hold a password.
            raise ValueError(
                "expected a SQLAlchemy URL such as sqlite:///bot.sqlite or "
                "postgresql+psycopg://user@host/db"
            ) from None
        return raw.strip()

    def display(self, value: Any) -> str | None:
        try:
            return describe_url(str(value))
        except Exception:
            return None


class EngineSettings:
    """The keys of a ``[database:NAME]`` section that shape the engine and its pool."""

    url = DatabaseUrlOption(
        "SQLAlchemy URL (sqlite:///bot.sqlite, postgresql+psycopg://user@host/db, "
        "mysql+pymysql://user@host/db); a relative SQLite path is relative to the config file.",
        "sqlite:///botcore.sqlite",
        secret=True,
    )
    echo = BoolOption("Log every SQL statement (debugging).", False)
    echo_pool = BoolOption("Log connection pool checkouts and returns (debugging).", False)
    pool_size = IntOption("Connections kept open (PostgreSQL, MariaDB, SQLite file).", 10, min=1)
    max_overflow = IntOption("Extra connections opened when the pool is busy.", 10, min=0)
    pool_recycle = FloatOption(
        "Seconds after which a connection is replaced (MariaDB drops idle ones).", 3600.0, min=1
    )
    connect_timeout = FloatOption(
        "Seconds to wait for a PostgreSQL or MariaDB server to accept a connection.", 10.0, min=1
    )
    busy_timeout = FloatOption(
        "Seconds an SQLite writer waits for another writer before giving up.", 5.0, min=0
    )
    statement_timeout = FloatOption(
        "Seconds one statement may take before it fails (PostgreSQL: the server's "
        "statement_timeout; PostgreSQL and MariaDB: the bot stops waiting for a server that "
        "does not answer a few seconds after that, and drops the connection).",
        30.0,
        min=1,
    )


def make_engine(
    url: str | URL,
    *,
    echo: bool = False,
    echo_pool: bool = False,
    pool_size: int = 10,
    max_overflow: int = 10,
    pool_recycle: float = 3600.0,
    connect_timeout: float = 10.0,
    busy_timeout: float = 5.0,
    statement_timeout: float = 30.0,
) -> Engine:
    """An engine with botcore's settings for its backend (no connection is made yet).

    SQLite: WAL journal, ``synchronous=NORMAL``, foreign keys on, a busy timeout, a
    ``REGEXP`` function, a Unicode-aware ``LIKE`` and the `botcore.db.types.CIText` collation;
    ``:memory:`` uses one shared connection (tests). PostgreSQL: sessions in UTC,
    connections checked before use. MariaDB/MySQL: InnoDB, utf8mb4, ``ANSI_QUOTES``, time
    zone ``+00:00``, connections checked before use and recycled.

    No wait is unbounded: connecting takes at most ``connect_timeout``; a statement at
    most ``statement_timeout`` on the server (PostgreSQL, MariaDB), and the client gives
    up `CLIENT_GRACE` seconds later on a server that stopped answering altogether (a
    stopped process or a network partition, where no server-side limit can fire): the
    connection is dropped and the error is an outage (`botcore.db.faults`).
    """
    url = make_url(url)
    backend = url.get_backend_name()
    kw: dict[str, Any] = {"echo": echo, "echo_pool": echo_pool}
    connect_args: dict[str, Any] = {}
    writer = None
    if backend == "sqlite":
        connect_args["timeout"] = busy_timeout
        if url.database in (None, "", ":memory:"):
            connect_args["check_same_thread"] = False
            kw["poolclass"] = StaticPool
        else:
            kw.update(pool_size=pool_size, max_overflow=max_overflow)
            writer = _SQLiteWriter(busy_timeout)
            connect_args["factory"] = writer.connection_class
    else:
        kw.update(
            pool_size=pool_size,
            max_overflow=max_overflow,
            pool_pre_ping=True,
            pool_recycle=pool_recycle,
        )
        client_timeout = statement_timeout + CLIENT_GRACE
        if backend == "postgresql":
            milliseconds = int(statement_timeout * 1000)
            connect_args["options"] = f"-c timezone=UTC -c statement_timeout={milliseconds}"
            connect_args["connect_timeout"] = max(1, round(connect_timeout))
            connect_args.setdefault("application_name", "botcore")
        elif backend in ("mysql", "mariadb"):
            connect_args["init_command"] = _MYSQL_INIT
            connect_args["connect_timeout"] = max(1, round(connect_timeout))
            # Socket timeouts: the client's bound on a silent server (both drivers).
            connect_args["read_timeout"] = max(1, round(client_timeout))
            connect_args["write_timeout"] = max(1, round(client_timeout))
            if "charset" not in url.query:
                connect_args["charset"] = "utf8mb4"
    engine = create_engine(url, connect_args=connect_args, **kw)
    if backend == "postgresql" and url.get_driver_name() == "psycopg":
        _bound_psycopg_waits(engine, statement_timeout + CLIENT_GRACE)
    if backend == "sqlite":
        event.listen(engine, "connect", _sqlite_connection_setup(busy_timeout))
        if writer is not None:
            writer.install(engine)
    return engine


#: Seconds past ``statement_timeout`` the client waits for a server's answer before it
#: drops the connection (the server's own timeout should have fired by then).
CLIENT_GRACE = 5.0


def _bound_psycopg_waits(engine: Engine, timeout: float) -> None:
    """Make every wait of psycopg's connections for the server end after ``timeout``
    seconds. psycopg waits for a query's answer without limit; its `wait` takes a
    timeout (as used for cancellation), which is given here to every wait that has none.
    The connection is closed when it runs out: its state is unknown."""
    import psycopg

    class BoundedConnection(psycopg.Connection):
        def wait(self, gen: Any, interval: Any = 0.1, timeout: float | None = None) -> Any:
            try:
                return super().wait(gen, interval, timeout if timeout is not None else limit)
            except psycopg.errors._WaitTimeout:
                self.pgconn.finish()
                raise psycopg.OperationalError(
                    f"the server did not answer within {limit:g} seconds; connection dropped"
                ) from None

    limit = timeout

    def connect(dialect: Any, record: Any, cargs: Any, cparams: dict[str, Any]) -> Any:
        return BoundedConnection.connect(*cargs, **cparams)

    event.listen(engine, "do_connect", connect)


class _SQLiteWriter:
    """One writer at a time per engine, queued in Python.

    SQLite lets one connection write at a time; the others poll with growing sleeps
    (the busy timeout), which with a pool of threads costs more than the writes. So a
    connection takes this lock before its first write and lets go of it when it commits
    or rolls back; readers are not held up (WAL)."""

    _WRITES = ("INSERT", "UPDATE", "DELETE", "REPLAC", "CREATE", "DROP", "ALTER")

    def __init__(self, timeout: float) -> None:
        self.lock = threading.Lock()
        self.timeout = timeout
        writer = self

        class Connection(sqlite3.Connection):
            holds_writer = False

            def commit(self) -> None:
                try:
                    super().commit()
                finally:
                    writer.let_go(self)

            def rollback(self) -> None:
                try:
                    super().rollback()
                finally:
                    writer.let_go(self)

            def close(self) -> None:
                try:
                    super().close()
                finally:
                    writer.let_go(self)

        self.connection_class = Connection

    def install(self, engine: Engine) -> None:
        event.listen(engine, "before_cursor_execute", self._before_execute)
        # For tests and debugging.
        engine.sqlite_writer = self  # type: ignore[attr-defined]

    def let_go(self, connection: Any) -> None:
        if connection.holds_writer:
            connection.holds_writer = False
            self.lock.release()

    def _before_execute(
        self, connection: Any, cursor: Any, statement: str, parameters: Any, *args: Any
    ) -> None:
        raw = connection.connection.dbapi_connection
        if raw.holds_writer or statement.lstrip()[:6].upper() not in self._WRITES:
            return
        if not self.lock.acquire(timeout=self.timeout):
            # What SQLite itself says when the busy timeout runs out (retried as a conflict).
            raise sa_exc.OperationalError(
                statement, parameters, sqlite3.OperationalError("database is locked")
            )
        raw.holds_writer = True


def _sqlite_connection_setup(busy_timeout: float) -> Callable[[Any, Any], None]:
    milliseconds = int(busy_timeout * 1000)

    def on_connect(connection: Any, record: Any) -> None:
        connection.create_function("regexp", 2, _regexp, deterministic=True)
        connection.create_function("like", 2, types.sqlite_like, deterministic=True)
        connection.create_function("like", 3, types.sqlite_like, deterministic=True)
        connection.create_collation(types.COLLATION, types.sqlite_collate)
        connection.create_function(types.FOLD_FUNCTION, 1, types.sqlite_fold, deterministic=True)
        cursor = connection.cursor()
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute(f"PRAGMA busy_timeout={milliseconds}")
        finally:
            cursor.close()

    return on_connect


def _regexp(pattern: str | None, value: str | None) -> bool | None:
    # SQLite calls regexp(pattern, value) for "value REGEXP pattern".
    if pattern is None or value is None:
        return None
    return re.search(pattern, value) is not None


def describe_url(url: str | URL) -> str:
    """The URL without its password, for messages."""
    return make_url(url).render_as_string(hide_password=True)


# -- sessions -----------------------------------------------------------------------------


def make_session_factory(engine: Engine) -> sessionmaker[Session]:
    """A session factory whose sessions remember whether they wrote anything."""
    factory = sessionmaker(bind=engine, expire_on_commit=False)
    event.listen(factory, "after_flush", _mark_written)
    event.listen(factory, "do_orm_execute", _mark_dml)
    return factory


def _mark_written(session: Session, flush_context: Any) -> None:
    session.info[_WRITES] = True


def _mark_dml(state: Any) -> None:
    # Anything but a SELECT may write: a textual statement (text("INSERT ...")) says neither
    # is_insert nor is_update, and an extra commit is cheaper than a lost write.
    if state.is_insert or state.is_update or state.is_delete or not state.is_select:
        state.session.info[_WRITES] = True


def mark_written(session: Session) -> None:
    """Record that the session wrote rows through its connection (``session.execute``
    notices by itself), so the dispatcher commits it."""
    session.info[_WRITES] = True


def has_changes(session: Session) -> bool:
    """Whether the session holds new, dirty or deleted objects or has written rows."""
    return bool(session.new or session.dirty or session.deleted or session.info.get(_WRITES))


def commit_if_changed(session: Session) -> bool:
    """Commit when the session holds changes; end a read-only transaction otherwise."""
    if has_changes(session):
        session.commit()
        session.info.pop(_WRITES, None)
        return True
    if session.in_transaction():
        session.rollback()
    return False


def rollback(session: Session) -> None:
    """Throw away what the session did since its last commit."""
    session.rollback()
    session.info.pop(_WRITES, None)


# -- faults -------------------------------------------------------------------------------
