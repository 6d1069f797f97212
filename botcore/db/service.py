"""The `Database` service, one per ``[database:NAME]`` section: its settings, the engine
and session factory it makes at start, the schema check, and its health (outages, retries)."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import event
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.orm import Session, sessionmaker
from twisted.application.service import Service
from twisted.logger import Logger

from botcore.config import config_path
from botcore.db import revisions
from botcore.db.engine import EngineSettings, describe_url, make_engine, make_session_factory
from botcore.db.faults import UNAVAILABLE, DatabaseDown, classify_error, first_line
from botcore.options import BoolOption, FloatOption, IntOption

if TYPE_CHECKING:
    from botcore.config import Config


def _writable(path: Path) -> bool:
    # Opening for writing, not os.access: it also sees read-only mounts and immutable files.
    try:
        os.close(os.open(path, os.O_RDWR))
    except OSError:
        return False
    return True


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
    create = BoolOption(
        "Create the SQLite file even though this bot had a database there before and it "
        "is missing now (deleted or moved; otherwise the bot refuses to start).",
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
    #: Seconds, doubling, during which an unavailable database is not tried (events fail
    #: at once) before one event is let through to try it; and the longest such wait.
    RETRY_OUTAGE_AFTER = 1.0
    MAX_OUTAGE_WAIT = 10.0
    #: An outage that starts within this many seconds of the last one's end continues
    #: its backoff (a database that works for some statements and not others).
    FLAP_WINDOW = 60.0

    log = Logger()

    def __init__(
        self,
        name: str,
        config: dict[str, Any],
        base_directory: str | None = None,
        config_path: str | None = None,
        *,
        sleep: Callable[[float], None] | None = None,
        clock: Callable[[], float] | None = None,
    ) -> None:
        self.setName(f"database:{name}")
        self.database_name = name
        self.config = config
        self.base_directory = base_directory
        self.config_path = config_path
        #: How a worker thread waits between retries (replaced in tests).
        self.sleep = sleep or time.sleep
        #: The health's clock, in seconds (replaced in tests).
        self.clock = clock or time.monotonic
        self.engine: Engine | None = None
        self.session_factory: sessionmaker[Session] | None = None
        self.unavailable = False
        #: Outages begun (the database found unavailable after it was not), for metrics.
        self.outages = 0
        self._health = threading.Lock()
        self._outage_wait = self.RETRY_OUTAGE_AFTER
        self._try_at = 0.0
        self._recovered_at: float | None = None

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
            statement_timeout=self.statement_timeout,
        )

    @property
    def command(self) -> str:
        """The botcore-db command line for this database, without the subcommand."""
        words = ["botcore-db", "-c", self.config_path or "bot.ini"]
        if self.database_name != "main":
            words += ["--database", self.database_name]
        return " ".join(words)

    #: The file, next to the config file, that lists the SQLite databases this bot
    #: created (one absolute path a line): how it knows that a missing one existed.
    CREATED_LIST = ".botcore-databases"

    def startService(self) -> None:
        super().startService()
        created = self.check_sqlite_file()
        self.engine = self.create_engine()
        event.listen(self.engine, "after_cursor_execute", self._statement_done)
        self.session_factory = make_session_factory(self.engine)
        self.prepare_schema()
        if created is not None:
            self._record_created(created)  # new or not: a missing one is noticed from now

    # -- the SQLite file ---------------------------------------------------------------

    def sqlite_path(self) -> Path | None:
        """The absolute path of this database's SQLite file, or None (not SQLite, or in
        memory)."""
        url = make_url(self.resolved_url())
        if url.get_backend_name() != "sqlite" or url.database in (None, "", ":memory:"):
            return None
        if url.database.startswith("file:"):
            return None  # a URI filename: SQLite's own business
        return Path(url.database)

    def check_sqlite_file(self) -> Path | None:
        """Refuse to start (`DatabaseUnavailable`, one line) on a SQLite file the bot
        could not use: one it cannot write, or whose ``-wal``/``-shm`` file it cannot
        write (SQLite maps ``-shm`` into memory: a read-only one can kill the process), a
        folder it cannot write (where those are made), a missing folder, or a missing
        file that this bot created before (listed in `CREATED_LIST`) unless ``create``
        is set. The path of the file (to be listed once started), or None for a database
        that is no SQLite file. Reactor thread."""
        path = self.sqlite_path()
        if path is None:
            return None
        try:
            return self._check_sqlite_file(path)
        except OSError as e:  # a folder on the way the bot may not enter, say
            raise DatabaseUnavailable(
                f"database {self.database_name} ({path}): {e.strerror or e}: {e.filename}"
            ) from e

    def _check_sqlite_file(self, path: Path) -> Path:
        where = f"database {self.database_name} ({path})"
        folder = path.parent
        if not folder.is_dir():
            raise DatabaseUnavailable(f"{where}: its folder {folder} does not exist")
        if not os.access(folder, os.W_OK | os.X_OK):
            raise DatabaseUnavailable(
                f"{where}: the bot cannot write its folder {folder} (SQLite makes the "
                "-wal and -shm files there)"
            )
        if not path.exists():
            if not self.create and str(path) in self._created():
                raise DatabaseUnavailable(
                    f"{where}: the file is missing, but this bot had a database there "
                    f"(listed in {self._created_list()}); restore it, or set create = yes "
                    f"in [database:{self.database_name}] to start an empty one"
                )
            return path
        for file in (path, Path(f"{path}-wal"), Path(f"{path}-shm")):
            if file.exists() and not _writable(file):
                raise DatabaseUnavailable(
                    f"{where}: the bot cannot write {file}; make it writable by the "
                    "user the bot runs as (the database file, its -wal and -shm files)"
                )
        return path

    def _created_list(self) -> Path | None:
        if not self.base_directory:
            return None
        return Path(self.base_directory) / self.CREATED_LIST

    def _created(self) -> set[str]:
        listing = self._created_list()
        if listing is None:
            return set()
        try:
            return set(listing.read_text(encoding="utf-8").splitlines())
        except FileNotFoundError:
            return set()
        except OSError as e:
            self.log.warn("cannot read {path}: {error}", path=str(listing), error=e)
            return set()

    def _record_created(self, path: Path) -> None:
        listing = self._created_list()
        if listing is None or str(path) in self._created():
            return
        try:
            with listing.open("a", encoding="utf-8") as out:
                out.write(f"{path}\n")
        except OSError as e:
            self.log.warn(
                "cannot record the new database in {path}: {error} (a missing database "
                "file will not be noticed at start)",
                path=str(listing),
                error=e,
            )

    def stopService(self) -> None:
        super().stopService()
        if self.engine is not None:
            self.engine.dispose()

    def prepare_schema(self) -> None:
        """Bring a new SQLite database (or, with ``auto_upgrade``, any database) to the
        current schema; raise `SchemaNotCurrent` or `DatabaseUnavailable` otherwise.
        Blocks (the reactor thread, at startup)."""
        engine = self.engine
        assert engine is not None, "prepare_schema runs after startService made the engine"
        try:
            # The usual case (a current schema) without importing alembic.
            if revisions.is_current(engine):
                return
        except sa_exc.DBAPIError as e:
            raise self._unreachable(e) from e
        except revisions.UnreadableRevision:
            pass  # a revision file only alembic can read: it decides
        from botcore.db import migrate

        try:
            state = migrate.schema_state(engine)
        except sa_exc.DBAPIError as e:
            raise self._unreachable(e) from e
        if state.current:
            return
        if state.unknown:
            raise SchemaNotCurrent(f"database {self.database_name} {state.describe()}")
        new_sqlite = state.empty and engine.dialect.name == "sqlite"
        if not (new_sqlite or self.auto_upgrade):
            raise SchemaNotCurrent(
                f"database {self.database_name} {state.describe()}; "
                f"run: {self.command} upgrade (or set auto_upgrade = true in "
                f"[database:{self.database_name}])"
            )
        migrate.upgrade(engine)
        self.log.info(
            "database {name}: schema upgraded from {old} to {new}",
            name=self.database_name,
            old=", ".join(sorted(state.revisions)) or "nothing",
            new=", ".join(sorted(state.heads)),
        )

    def _unreachable(self, error: sa_exc.DBAPIError) -> DatabaseUnavailable:
        return DatabaseUnavailable(
            f"database {self.database_name} ({describe_url(self.url)}) cannot be "
            f"reached: {first_line(error)}"
        )

    # -- faults (worker threads) ------------------------------------------------------

    def open_session(self) -> Session:
        """A new session; `DatabaseDown` at once while the database is known to be
        unavailable, except for one caller now and then (every `RETRY_OUTAGE_AFTER`
        seconds, doubling up to `MAX_OUTAGE_WAIT` while it stays down) who tries it: so
        that events do not each wait for a server that does not answer, and the outage
        is not declared over and begun again with every event. Any thread."""
        if self.unavailable:
            with self._health:
                now = self.clock()
                if self.unavailable:
                    if now < self._try_at:
                        raise DatabaseDown(
                            f"database {self.database_name} is unavailable (waiting "
                            "before trying it again)"
                        )
                    # This one tries; the next in a while, if it fails too.
                    self._try_at = now + self._outage_wait
        assert self.session_factory is not None, "sessions are opened once started"
        return self.session_factory()

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
        if isinstance(error, DatabaseDown):
            return  # not tried: the outage is known
        if kind == UNAVAILABLE:
            with self._health:
                now = self.clock()
                first, self.unavailable = not self.unavailable, True
                self.outages += first
                again = (
                    first
                    and self._recovered_at is not None
                    and now - self._recovered_at < self.FLAP_WINDOW
                )
                if first and not again:
                    self._outage_wait = self.RETRY_OUTAGE_AFTER
                else:  # tried again and failed again, or back and gone again at once
                    self._outage_wait = min(self._outage_wait * 2, self.MAX_OUTAGE_WAIT)
                self._try_at = now + self._outage_wait
                wait = self._outage_wait
            if first:
                self.log.error(
                    "database {name} unavailable{again}: {reason}; replying with a "
                    "complaint until it is back (trying it again in {wait:g}s)",
                    name=self.database_name,
                    again=" again" if again else "",
                    reason=first_line(error),
                    wait=wait,
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
                    self._recovered_at = self.clock()
            if back:
                self.log.info("database {name} is available again", name=self.database_name)
