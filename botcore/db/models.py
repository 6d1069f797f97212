"""The declarative base every core and plugin table is declared on, and the only code
that touches SQLAlchemy's mapper registry (replacing and forgetting a reloaded plugin's models)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from sqlalchemy import MetaData, Table, event
from sqlalchemy.orm import DeclarativeBase

from botcore.db import types

if TYPE_CHECKING:
    pass


#: Constraint and index names that are the same on every backend, so migrations can
#: name what they alter or drop (SQLite's batch mode needs names too).
NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

#: Options every model's table gets on MariaDB/MySQL: InnoDB, utf8mb4, and a binary
#: collation so plain strings compare case-sensitively as they do on SQLite and PostgreSQL.
#: Given only where they matter (`mysql_options`): SQLAlchemy checks ``mysql_*`` options
#: against its MySQL dialect, importing it, which a bot on SQLite should not pay for.
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
            event.listen(table, "before_create", _before_create_table)
            types.index_by_key(table)


def mysql_options(table: Table) -> None:
    """Give ``table`` the `MYSQL_TABLE_OPTIONS` it does not have yet (this imports
    SQLAlchemy's MySQL dialect)."""
    for key, value in MYSQL_TABLE_OPTIONS.items():
        table.dialect_kwargs.setdefault(key, value)


def is_model_table(table: Table) -> bool:
    """Whether ``table`` is a model's on `Base`, which gets `MYSQL_TABLE_OPTIONS` when it
    is created on MariaDB/MySQL (and in a revision botcore-db writes, `botcore.db.autogen`)."""
    return event.contains(table, "before_create", _before_create_table)


def _before_create_table(table: Table, connection: Any, **kw: Any) -> None:
    # Before CREATE TABLE (metadata.create_all, table.create) on MariaDB/MySQL, where the
    # dialect is loaded anyway; migrations spell the options out themselves.
    if connection.dialect.name in ("mysql", "mariadb"):
        mysql_options(table)


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
    table: Table | None = cls.__dict__.get("__table__")
    if table is not None and Base.metadata.tables.get(table.key) is table:
        Base.metadata.remove(table)


def _dispose(manager: Any) -> None:
    # SQLAlchemy only disposes whole registries publicly; this is the per-class part of
    # registry.dispose(), so the other mappings (the core's) stay configured.
    registry = Base.registry
    tables: list[Table] = list(manager.mapper.tables) if manager.is_mapped else []
    registry._managers.pop(manager, None)
    registry._dispose_manager_and_mapper(manager)
    for table in tables:
        if Base.metadata.tables.get(table.key) is table:
            Base.metadata.remove(table)


def forget_models(module: str) -> list[str]:
    """Drop the mapped classes (and their tables) that ``module`` defined on `Base`, e.g.
    before unloading a plugin; returns the names of the tables dropped from the metadata
    (the database is not touched)."""
    dropped: list[str] = []
    for manager in _managers():
        if manager.class_.__module__ == module:
            if manager.is_mapped:
                dropped.extend(table.name for table in manager.mapper.tables)
            _dispose(manager)
    return dropped


# -- engines ------------------------------------------------------------------------------


def snapshot_models(modules: Iterable[str]) -> list[tuple[type, Any]]:
    """(class, table) of every model the modules named map on `Base`: what
    `restore_models` puts back if a reload of those modules fails."""
    wanted = set(modules)
    return [
        (mapper.class_, mapper.local_table)
        for mapper in list(Base.registry.mappers)
        if mapper.class_.__module__ in wanted
    ]


def restore_models(models: list[tuple[type, Any]], modules: Iterable[str]) -> None:
    """Map ``models`` (a `snapshot_models`) again, after new code of ``modules`` failed: the
    new code may have redefined (and so unmapped) the old models, so whatever is mapped
    for these modules now is dropped and the old classes are mapped on their old tables."""
    modules = set(modules)
    if not models and not snapshot_models(modules):
        return
    for name in modules:
        forget_models(name)
    for cls, table in models:
        if Base.metadata.tables.get(table.key) is None:
            Base.metadata._add_table(table.name, table.schema, table)
        Base.registry.map_imperatively(cls, table)
        cls.__table__ = table  # type: ignore[attr-defined]
