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
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from sqlalchemy import MetaData, create_engine, event
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import URL, Engine, make_url
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker
from sqlalchemy.pool import StaticPool
from twisted.application.service import Service
from twisted.logger import Logger

from botcore import types
from botcore.config import config_path
from botcore.options import BoolOption, FloatOption, IntOption, Option

if TYPE_CHECKING:
    from botcore.config import Config

_WRITES = "botcore.writes"

#: Constraint and index names that are the same on every backend, so migrations can
#: name what they alter or drop (SQLite's batch mode needs names too).
NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

#: Options every table gets on MariaDB/MySQL: InnoDB, utf8mb4, and a binary collation so
#: plain strings compare case-sensitively as they do on SQLite and PostgreSQL.
MYSQL_TABLE_OPTIONS = {
    "mysql_engine": "InnoDB",
    "mysql_charset": "utf8mb4",
    "mysql_collate": "utf8mb4_bin",
}


class Base(DeclarativeBase):
    """The declarative base of the core's and plugins' tables.

    A plugin declares its tables as subclasses of this base in its module. Defining a
    class again with the same module and name (``importlib.reload`` of the plugin) replaces
    the earlier mapping and table instead of failing with "table already defined";
    `forget_models` drops every mapping a module made (for unloading a plugin).
    """

    metadata = MetaData(naming_convention=NAMING_CONVENTION)

    def __init_subclass__(cls, **kw: Any) -> None:
        _forget_earlier_definition(cls)
        try:
            super().__init_subclass__(**kw)
        except Exception:
            # A broken model must not stay half-registered: fixing the module and
            # importing it again has to work.
            _forget_class(cls)
            raise
        table = cls.__dict__.get("__table__")
        if table is not None:
            for key, value in MYSQL_TABLE_OPTIONS.items():
                table.dialect_kwargs.setdefault(key, value)
            types.index_by_key(table)


@event.listens_for(Base.metadata, "before_create")
def _create_collation(target: MetaData, connection: Any, **kw: Any) -> None:
    # metadata.create_all (tests, tools) on PostgreSQL needs CIText's collation too.
    types.create_collation(connection)


def _managers() -> list[Any]:
    return list(Base.registry._managers)


def _forget_earlier_definition(cls: type) -> None:
    for manager in _managers():
        old = manager.class_
        if old is not cls and (old.__module__, old.__qualname__) == (
            cls.__module__,
            cls.__qualname__,
        ):
            _dispose(manager)


def _forget_class(cls: type) -> None:
    for manager in _managers():
        if manager.class_ is cls:
            _dispose(manager)
    table = cls.__dict__.get("__table__")
    if table is not None and Base.metadata.tables.get(table.key) is table:
        Base.metadata.remove(table)


def _dispose(manager: Any) -> None:
    # SQLAlchemy only disposes whole registries publicly; this is the per-class part of
    # registry.dispose(), so the other mappings (the core's) stay configured.
    registry = Base.registry
    tables = list(manager.mapper.tables) if manager.is_mapped else []
    registry._managers.pop(manager, None)
    registry._dispose_manager_and_mapper(manager)
    for table in tables:
        if Base.metadata.tables.get(table.key) is table:
            Base.metadata.remove(table)


def forget_models(module: str) -> list[str]:
    """Drop the mapped classes (and their tables) that ``module`` defined on `Base`, e.g.
    before unloading a plugin; returns the names of the tables dropped from the metadata
    (the database is not touched)."""
    dropped = []
    for manager in _managers():
        if manager.class_.__module__ == module:
            if manager.is_mapped:
                dropped.extend(table.name for table in manager.mapper.tables)
            _dispose(manager)
    return dropped


# -- engines ------------------------------------------------------------------------------

#: Appended to the session's sql_mode on MariaDB/MySQL; SQLAlchemy sees it when it
#: inspects the first connection and quotes identifiers to match.
_MYSQL_INIT = (
    "SET SESSION sql_mode = CONCAT_WS(',', NULLIF(@@SESSION.sql_mode, ''), 'ANSI_QUOTES'), "
    "time_zone = '+00:00', default_storage_engine = 'InnoDB'"
)


class EngineSettings:
    """The keys of a ``[database:NAME]`` section that shape the engine and its pool."""

    url = Option(
        "SQLAlchemy URL (sqlite:///bot.sqlite, postgresql+psycopg://user@host/db, "
        "mysql+pymysql://user@host/db); a relative SQLite path is relative to the config file.",
        "sqlite:///botcore.sqlite",
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
) -> Engine:
    """An engine with botcore's settings for its backend (no connection is made yet).

    SQLite: WAL journal, ``synchronous=NORMAL``, foreign keys on, a busy timeout, a
    ``REGEXP`` function, a Unicode-aware ``LIKE`` and the `botcore.types.CIText` collation;
    ``:memory:`` uses one shared connection (tests). PostgreSQL: sessions in UTC,
    connections checked before use. MariaDB/MySQL: InnoDB, utf8mb4, ``ANSI_QUOTES``, time
    zone ``+00:00``, connections checked before use and recycled.
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
        if backend == "postgresql":
            connect_args["options"] = "-c timezone=UTC"
            connect_args["connect_timeout"] = max(1, round(connect_timeout))
            connect_args.setdefault("application_name", "botcore")
        elif backend in ("mysql", "mariadb"):
            connect_args["init_command"] = _MYSQL_INIT
            connect_args["connect_timeout"] = max(1, round(connect_timeout))
            if "charset" not in url.query:
                connect_args["charset"] = "utf8mb4"
    engine = create_engine(url, connect_args=connect_args, **kw)
    if backend == "sqlite":
        event.listen(engine, "connect", _sqlite_connection_setup(busy_timeout))
        if writer is not None:
            writer.install(engine)
    return engine


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
        engine.sqlite_writer = self  # type: ignore[attr-defined]  (for tests and debugging)

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

#: A failure kind: the server cannot be reached or dropped the connection.
UNAVAILABLE = "unavailable"
#: A failure kind: a deadlock, serialization failure, lock timeout or busy SQLite file.
CONFLICT = "conflict"

_PG_UNAVAILABLE_STATES = {"57P01", "57P02", "57P03", "53300", "53400"}
_PG_CONFLICT_STATES = {"40001", "40P01", "55P03"}
# 1040 too many connections, 1053 shutdown in progress, 1927 connection killed, 2002/2003
# cannot connect, 2006 gone away, 2013 lost during query, 2055 lost (system error), 4031
# disconnected for inactivity.
_MYSQL_UNAVAILABLE_CODES = {1040, 1053, 1927, 2002, 2003, 2006, 2013, 2055, 4031}
_MYSQL_CONFLICT_CODES = {1205, 1213}
_SQLITE_BUSY_CODES = {5, 6}  # SQLITE_BUSY, SQLITE_LOCKED
_SQLITE_UNAVAILABLE_CODES = {10, 13, 14}  # SQLITE_IOERR, SQLITE_FULL, SQLITE_CANTOPEN


def classify_error(error: BaseException) -> str | None:
    """`UNAVAILABLE`, `CONFLICT`, or None for an error that retrying will not cure
    (a bug, a constraint violation, a missing table)."""
    if isinstance(error, sa_exc.TimeoutError):
        return CONFLICT  # the pool stayed exhausted
    if not isinstance(error, sa_exc.DBAPIError):
        return None
    if error.connection_invalidated:
        return UNAVAILABLE
    orig = error.orig
    state = getattr(orig, "sqlstate", None)
    module = type(orig).__module__.partition(".")[0]
    if module == "psycopg":
        if state in _PG_CONFLICT_STATES:
            return CONFLICT
        if state is None:
            # No SQLSTATE: the driver itself failed to connect or lost the connection.
            lost = isinstance(error, (sa_exc.OperationalError, sa_exc.InterfaceError))
            return UNAVAILABLE if lost else None
        if state.startswith("08") or state in _PG_UNAVAILABLE_STATES:
            return UNAVAILABLE
        return None
    if module in ("pymysql", "MySQLdb"):
        code = orig.args[0] if orig.args and isinstance(orig.args[0], int) else None
        if code in _MYSQL_CONFLICT_CODES:
            return CONFLICT
        if code in _MYSQL_UNAVAILABLE_CODES or isinstance(error, sa_exc.InterfaceError):
            return UNAVAILABLE
        return None
    if module == "sqlite3":
        code = getattr(orig, "sqlite_errorcode", None)
        if code is not None:
            code &= 0xFF  # extended codes carry the primary code in the low byte
        if code in _SQLITE_BUSY_CODES or "locked" in str(orig):
            return CONFLICT
        if code in _SQLITE_UNAVAILABLE_CODES:
            return UNAVAILABLE
        return None
    return UNAVAILABLE if isinstance(error, sa_exc.InterfaceError) else None


# -- the service --------------------------------------------------------------------------


class SchemaNotCurrent(Exception):
    """The database's schema is not the one this version of botcore needs."""


class DatabaseUnavailable(Exception):
    """The database could not be reached at startup."""


class Database(EngineSettings, Service):
    """The engine, session factory and health of one configured database.

    Building the object does no I/O. `startService` connects, checks the schema and
    creates the session factory, synchronously: the bot starts its database first and
    serves nothing until it is ready, so blocking there (bounded by ``connect_timeout``)
    costs nothing. A brand-new SQLite database is migrated to the current schema there;
    any other database that is not current makes startup fail with `SchemaNotCurrent`,
    whose message names the ``botcore-db`` command to run, unless ``auto_upgrade`` is on.
    """

    auto_upgrade = BoolOption(
        "Upgrade the schema at startup when it is behind (otherwise the bot refuses to "
        "start and names the botcore-db command to run; a new SQLite file is always set up).",
        False,
    )
    retries = IntOption(
        "Times an event's step is retried after a dropped connection or a deadlock.", 3, min=0
    )
    retry_delay = FloatOption(
        "Seconds before the first retry; each further retry waits twice as long.", 0.2, min=0
    )

    #: The longest single wait between retries, whatever retry_delay and retries say.
    MAX_RETRY_DELAY = 5.0

    log = Logger()

    def __init__(
        self,
        name: str,
        config: dict[str, Any],
        base_directory: str | None = None,
        config_path: str | None = None,
        *,
        sleep: Callable[[float], None] | None = None,
    ) -> None:
        self.setName(f"database:{name}")
        self.database_name = name
        self.config = config
        self.base_directory = base_directory
        self.config_path = config_path
        #: How a worker thread waits between retries (replaced in tests).
        self.sleep = sleep or time.sleep
        self.engine: Engine | None = None
        self.session_factory: sessionmaker[Session] | None = None
        self.unavailable = False
        self._health = threading.Lock()

    @classmethod
    def from_config(cls, name: str, config: Config) -> Database:
        return cls(
            name,
            config.section(f"database:{name}"),
            str(config.directory),
            str(config.path),
        )

    def resolved_url(self) -> str:
        """The URL with a relative SQLite path made absolute against the config folder."""
        url = make_url(self.url)
        if url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:"):
            path = config_path(url.database, self.base_directory or None)
            url = url.set(database=str(path))
        return url.render_as_string(hide_password=False)

    def create_engine(self) -> Engine:
        """A new engine for this database's settings (see `make_engine`)."""
        return make_engine(
            self.resolved_url(),
            echo=self.echo,
            echo_pool=self.echo_pool,
            pool_size=self.pool_size,
            max_overflow=self.max_overflow,
            pool_recycle=self.pool_recycle,
            connect_timeout=self.connect_timeout,
            busy_timeout=self.busy_timeout,
        )

    @property
    def command(self) -> str:
        """The botcore-db command line for this database, without the subcommand."""
        words = ["botcore-db", "-c", self.config_path or "bot.ini"]
        if self.database_name != "main":
            words += ["--database", self.database_name]
        return " ".join(words)

    def startService(self) -> None:
        super().startService()
        self.engine = self.create_engine()
        event.listen(self.engine, "after_cursor_execute", self._statement_done)
        self.session_factory = make_session_factory(self.engine)
        self.prepare_schema()

    def stopService(self) -> None:
        super().stopService()
        if self.engine is not None:
            self.engine.dispose()

    def prepare_schema(self) -> None:
        """Bring a new SQLite database (or, with ``auto_upgrade``, any database) to the
        current schema; raise `SchemaNotCurrent` or `DatabaseUnavailable` otherwise.
        Blocks (the reactor thread, at startup)."""
        from botcore import migrate

        try:
            state = migrate.schema_state(self.engine)
        except sa_exc.DBAPIError as e:
            raise DatabaseUnavailable(
                f"database {self.database_name} ({describe_url(self.url)}) cannot be "
                f"reached: {first_line(e)}"
            ) from e
        if state.current:
            return
        if state.unknown:
            raise SchemaNotCurrent(f"database {self.database_name} {state.describe()}")
        new_sqlite = state.empty and self.engine.dialect.name == "sqlite"
        if not (new_sqlite or self.auto_upgrade):
            raise SchemaNotCurrent(
                f"database {self.database_name} {state.describe()}; "
                f"run: {self.command} upgrade (or set auto_upgrade = true in "
                f"[database:{self.database_name}])"
            )
        migrate.upgrade(self.engine)
        self.log.info(
            "database {name}: schema upgraded from {old} to {new}",
            name=self.database_name,
            old=", ".join(sorted(state.revisions)) or "nothing",
            new=", ".join(sorted(state.heads)),
        )

    # -- faults (worker threads) ------------------------------------------------------

    def classify(self, error: BaseException) -> str | None:
        """See `classify_error`. Any thread."""
        return classify_error(error)

    def retry_delay_for(self, kind: str, attempt: int) -> float | None:
        """Seconds to wait before retrying after failed attempt number ``attempt`` (0 is
        the first) with a failure of ``kind``, or None to give up. While the database is
        known to be unavailable, events do not wait for it: they try once. Any thread."""
        if attempt >= self.retries or (kind == UNAVAILABLE and self.unavailable):
            return None
        return min(self.retry_delay * 2**attempt, self.MAX_RETRY_DELAY)

    def gave_up(self, kind: str, error: BaseException, what: str) -> None:
        """Record that ``what`` (a step of an event) failed for good. An outage is logged
        once, when it starts; a conflict is logged each time. Worker thread."""
        if kind == UNAVAILABLE:
            with self._health:
                first, self.unavailable = not self.unavailable, True
            if first:
                self.log.error(
                    "database {name} unavailable: {reason}; replying with a complaint "
                    "until it is back",
                    name=self.database_name,
                    reason=first_line(error),
                )
        else:
            self.log.warn(
                "database {name}: {what} gave up after {tries} tries: {reason}",
                name=self.database_name,
                what=what,
                tries=self.retries + 1,
                reason=first_line(error),
            )

    def _statement_done(self, *args: Any) -> None:
        # Runs after every statement; only does work on the first success after an outage.
        if self.unavailable:
            with self._health:
                back, self.unavailable = self.unavailable, False
            if back:
                self.log.info("database {name} is available again", name=self.database_name)


def first_line(error: BaseException | None) -> str:
    """The first line of an error's message (driver messages run over several lines); for
    a SQLAlchemy error, the driver's own error it wraps (``.orig``)."""
    error = getattr(error, "orig", None) or error
    text = str(error or "").strip().splitlines()
    return text[0].strip() if text else type(error).__name__
