"""What a database error means for the event that met it: an outage to wait out, a
conflict to retry, or neither (a bug, reported at once). Any thread."""

from __future__ import annotations

from typing import TYPE_CHECKING

from sqlalchemy import exc as sa_exc

if TYPE_CHECKING:
    pass


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
# SQLITE_READONLY, SQLITE_IOERR, SQLITE_FULL, SQLITE_CANTOPEN: the file or its folder,
# not the bot, is at fault (a read-only file, a full or vanished disk).
_SQLITE_UNAVAILABLE_CODES = {8, 10, 13, 14}


class DatabaseDown(Exception):
    """Raised instead of opening a session while the database is known to be unavailable
    and not yet due to be tried again (`botcore.db.service.Database.open_session`)."""


def classify_error(error: BaseException) -> str | None:
    """`UNAVAILABLE`, `CONFLICT`, or None for an error that retrying will not cure
    (a bug, a constraint violation, a missing table)."""
    if isinstance(error, DatabaseDown):
        return UNAVAILABLE
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
        args = getattr(orig, "args", ())
        code = args[0] if args and isinstance(args[0], int) else None
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


def first_line(error: BaseException | None) -> str:
    """The first line of an error's message (driver messages run over several lines); for
    a SQLAlchemy error, the driver's own error it wraps (``.orig``)."""
    error = getattr(error, "orig", None) or error
    text = str(error or "").strip().splitlines()
    return text[0].strip() if text else type(error).__name__
