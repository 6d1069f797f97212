"""Database engines and sessions: one `Database` per ``[database:NAME]`` section.

SQLite is the embedded default; sessions are handed to events lazily and committed by the
dispatcher after each processor that changed something."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sqlalchemy import create_engine, event
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker
from twisted.application.service import Service
from twisted.logger import Logger

from botcore.options import BoolOption, Option

if TYPE_CHECKING:
    from botcore.config import Config

_WRITES = "botcore.writes"


class Base(DeclarativeBase):
    """The declarative base of the core's and plugins' tables."""


class Database(Service):
    """An engine and session factory for one configured database.

    The engine is created in `startService`; building the object does no I/O.
    """

    url = Option(
        "SQLAlchemy URL; a relative SQLite path is relative to the config file.",
        "sqlite:///botcore.sqlite",
    )
    echo = BoolOption("Log every SQL statement (debugging).", False)

    log = Logger()

    def __init__(self, name: str, config: dict[str, Any], base_directory: str | None = None):
        self.setName(f"database:{name}")
        self.database_name = name
        self.config = config
        self.base_directory = base_directory
        self.engine: Engine | None = None
        self.session_factory: sessionmaker[Session] | None = None

    @classmethod
    def from_config(cls, name: str, config: Config) -> Database:
        return cls(name, config.section(f"database:{name}"), str(config.directory))

    def resolved_url(self) -> str:
        """The URL with a relative SQLite path made absolute against the config folder."""
        url = make_url(self.url)
        if url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:"):
            from pathlib import Path

            path = Path(url.database).expanduser()
            if not path.is_absolute() and self.base_directory:
                path = Path(self.base_directory) / path
            url = url.set(database=str(path))
        return url.render_as_string(hide_password=False)

    def startService(self) -> None:
        super().startService()
        self.engine = create_engine(self.resolved_url(), echo=self.echo)
        if self.engine.dialect.name == "sqlite":
            event.listen(self.engine, "connect", _sqlite_on_connect)
        self.session_factory = make_session_factory(self.engine)
        Base.metadata.create_all(self.engine)

    def stopService(self) -> None:
        super().stopService()
        if self.engine is not None:
            self.engine.dispose()


def _sqlite_on_connect(connection: Any, record: Any) -> None:
    cursor = connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=5000")
    cursor.close()


def make_session_factory(engine: Engine) -> sessionmaker[Session]:
    """A session factory whose sessions remember whether they wrote anything."""
    factory = sessionmaker(bind=engine, expire_on_commit=False)
    event.listen(factory, "after_flush", _mark_written)
    event.listen(factory, "do_orm_execute", _mark_dml)
    return factory


def _mark_written(session: Session, flush_context: Any) -> None:
    session.info[_WRITES] = True


def _mark_dml(state: Any) -> None:
    if state.is_insert or state.is_update or state.is_delete:
        state.session.info[_WRITES] = True


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
