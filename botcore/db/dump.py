"""Moving a bot's data between databases: every row of every table to a JSON file (gzip
when the name ends in .gz) and back into any backend, keeping ids and foreign keys.

A dump records the schema revisions it was taken at; a load needs a target at the same
revisions (an empty target is migrated to them first) with empty tables, inserts in
foreign-key order, and resets PostgreSQL's sequences afterwards. Blocking; run it from
botcore-db with the bot stopped."""

from __future__ import annotations

import base64
import gzip
import json
import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, cast

from sqlalchemy import (
    Date,
    DateTime,
    Interval,
    LargeBinary,
    MetaData,
    Numeric,
    Table,
    Time,
    Uuid,
    bindparam,
    func,
    inspect,
    select,
    text,
)
from sqlalchemy.types import TypeDecorator

from botcore.db import migrate
from botcore.db.types import unreflected_key_indexes

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection, Engine

FORMAT = "botcore-dump"
VERSION = 1
BATCH = 1000


class DumpError(Exception):
    """The dump cannot be written or loaded (the message says why, in one line)."""


def _open(path: Path, mode: str) -> IO[str]:
    if path.suffix == ".gz":
        return cast(IO[str], gzip.open(path, mode + "t", encoding="utf-8"))
    return open(path, mode, encoding="utf-8")


def _encode(value: Any) -> Any:
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, bytes | bytearray | memoryview):
        return base64.b64encode(bytes(value)).decode("ascii")
    if isinstance(value, Decimal | uuid.UUID):
        return str(value)
    return value


def _decoder(column: Any) -> Any:
    kind = column.type
    if isinstance(kind, TypeDecorator):
        kind = kind.impl_instance
    if isinstance(kind, DateTime):
        return datetime.fromisoformat
    if isinstance(kind, Date):
        return date.fromisoformat
    if isinstance(kind, Time):
        return time.fromisoformat
    if isinstance(kind, Interval):
        return lambda seconds: timedelta(seconds=seconds)
    if isinstance(kind, LargeBinary):
        return base64.b64decode
    if isinstance(kind, Uuid):
        return uuid.UUID
    if isinstance(kind, Numeric) and kind.asdecimal:
        return Decimal
    return None


def _tables(connection: Connection, models: MetaData) -> list[Table]:
    """The database's tables in foreign-key order, each as the model's table when there
    is one (for its types: JSON, UTC timestamps) or as reflected."""
    reflected = MetaData()
    names = [n for n in inspect(connection).get_table_names() if n != "alembic_version"]
    with unreflected_key_indexes():
        reflected.reflect(connection, only=names)
    tables = []
    for table in reflected.sorted_tables:
        model = models.tables.get(table.name)
        if model is not None and set(model.columns.keys()) == set(table.columns.keys()):
            tables.append(model)
        else:
            tables.append(table)
    return tables


def _order(table: Table) -> list[Any]:
    return list(table.primary_key.columns) or list(table.columns)


def dump(engine: Engine, path: str | Path, models: MetaData) -> dict[str, int]:
    """Write every row of every table (alembic's bookkeeping aside) to ``path``; returns
    rows per table. Read in one transaction, so the dump is consistent."""
    path = Path(path)
    counts: dict[str, int] = {}
    with engine.connect() as connection:
        if connection.dialect.name == "sqlite":
            connection.exec_driver_sql("BEGIN")  # pysqlite would read outside a transaction
        elif connection.dialect.name == "postgresql":
            connection.exec_driver_sql("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        revisions = sorted(migrate.current_of(connection))
        tables = _tables(connection, models)
        with _open(path, "w") as out:
            header = {
                "format": FORMAT,
                "version": VERSION,
                "dialect": connection.dialect.name,
                "created": datetime.now(UTC).isoformat(),
                "revisions": revisions,
            }
            out.write(json.dumps(header)[:-1] + ', "tables": [')
            for index, table in enumerate(tables):
                columns = list(table.columns.keys())
                out.write("," if index else "")
                out.write(f'\n{{"name": {json.dumps(table.name)}, "columns": ')
                out.write(json.dumps(columns) + ', "rows": [')
                count = 0
                result = connection.execution_options(yield_per=BATCH).execute(
                    select(table).order_by(*_order(table))
                )
                for row in result:
                    out.write("," if count else "")
                    out.write("\n" + json.dumps([_encode(v) for v in row], ensure_ascii=False))
                    count += 1
                out.write("]}")
                counts[table.name] = count
            out.write("\n]}\n")
        connection.rollback()
    return counts


def read(path: str | Path) -> dict[str, Any]:
    """A dump file's contents, checked for format."""
    path = Path(path)
    try:
        with _open(path, "r") as handle:
            data = json.load(handle)
    except FileNotFoundError:
        raise DumpError(f"{path}: no such file") from None
    except (OSError, ValueError, EOFError) as e:
        raise DumpError(f"{path}: not a readable dump ({e})") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise DumpError(f"{path}: not a botcore dump")
    if data.get("version") != VERSION:
        raise DumpError(f"{path}: dump format version {data.get('version')} is not supported")
    return data


def load(engine: Engine, path: str | Path, models: MetaData, **kw: Any) -> dict[str, int]:
    """Insert a dump's rows into ``engine``'s database; returns rows per table.

    An empty database is first migrated to the dump's revisions; otherwise it must be at
    exactly those revisions (`DumpError` names the command that fixes it) and every table
    in the dump must exist there and be empty. All rows go in one transaction.
    """
    data = read(path)
    revisions = set(data["revisions"])
    state = migrate.schema_state(engine, **kw)
    if state.empty:
        for revision in sorted(revisions):
            migrate.upgrade(engine, revision, **kw)
    elif set(state.revisions) != revisions:
        raise DumpError(
            f"the dump is at revision {', '.join(sorted(revisions)) or 'none'} but the "
            f"database is at {', '.join(sorted(state.revisions)) or 'none'}: load into an "
            "empty database, or bring both to the same revision with botcore-db upgrade"
        )
    counts: dict[str, int] = {}
    with engine.begin() as connection:
        dialect = connection.dialect.name
        tables = {t.name: t for t in _tables(connection, models)}
        plan = []
        for entry in data["tables"]:
            table = tables.get(entry["name"])
            if table is None:
                raise DumpError(f"table {entry['name']} is not in the target database")
            missing = [c for c in entry["columns"] if c not in table.columns]
            if missing:
                raise DumpError(f"table {table.name} has no column {', '.join(missing)}")
            if connection.scalar(select(func.count()).select_from(table)):
                raise DumpError(f"table {table.name} is not empty; load into an empty database")
            plan.append((table, entry))
        if dialect in ("mysql", "mariadb"):
            # Rows referring to later rows of their own table (parent ids) load in any order.
            connection.exec_driver_sql("SET FOREIGN_KEY_CHECKS = 0")
        elif dialect == "sqlite":
            connection.exec_driver_sql("PRAGMA defer_foreign_keys = ON")
        try:
            for table, entry in plan:
                counts[table.name] = _insert(connection, table, entry)
        finally:
            if dialect in ("mysql", "mariadb"):
                connection.exec_driver_sql("SET FOREIGN_KEY_CHECKS = 1")
        if dialect == "postgresql":
            for table, _ in plan:
                _reset_sequences(connection, table)
    return counts


def _insert(connection: Connection, table: Table, entry: dict[str, Any]) -> int:
    columns = entry["columns"]
    decoders = [_decoder(table.columns[name]) for name in columns]
    # A row may point at a later row of its own table (a parent id): such columns are
    # inserted empty and filled in once every row is there, since PostgreSQL checks
    # foreign keys row by row.
    key = list(table.primary_key.columns)
    later = [
        name
        for name in columns
        if len(key) == 1
        and table.columns[name].nullable
        and any(fk.column.table is table for fk in table.columns[name].foreign_keys)
    ]
    links: list[tuple[Any, dict[str, Any]]] = []
    count = 0
    for batch in _batches(entry["rows"]):
        rows = []
        for row in batch:
            values = {
                name: (value if value is None or decode is None else decode(value))
                for name, decode, value in zip(columns, decoders, row, strict=True)
            }
            link = {name: values[name] for name in later if values[name] is not None}
            if link:
                links.append((values[key[0].name], link))
                values.update(dict.fromkeys(link))
            rows.append(values)
        connection.execute(table.insert(), rows)
        count += len(rows)
    for name in later:
        fill = [{"_key": k, "_value": link[name]} for k, link in links if name in link]
        if fill:
            connection.execute(
                table.update()
                .where(key[0] == bindparam("_key"))
                .values({name: bindparam("_value")}),
                fill,
            )
    return count


def _batches(rows: list[Any]) -> Iterator[list[Any]]:
    for start in range(0, len(rows), BATCH):
        yield rows[start : start + BATCH]


def _reset_sequences(connection: Connection, table: Table) -> None:
    """Point each serial/identity column's sequence past the highest id loaded."""
    quote = connection.dialect.identifier_preparer
    for column in table.primary_key.columns:
        sequence = connection.scalar(
            text("SELECT pg_get_serial_sequence(:table, :column)"),
            {"table": quote.format_table(table), "column": column.name},
        )
        if sequence is None:
            continue
        highest = connection.scalar(select(func.max(column)))
        connection.execute(
            text("SELECT setval(:sequence, :value, :called)"),
            {"sequence": sequence, "value": highest or 1, "called": highest is not None},
        )
