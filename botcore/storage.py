"""Persistent key/value storage for plugins, like Errbot's plugin storage: each plugin
reads and writes JSON values by key in the core's ``plugin_data`` table.

Use it from a processor (worker thread) with the event's session; the dispatcher commits
what the processor wrote::

    store = PluginStore(event.session, self.name)
    seen = store.get("seen", 0)
    store.set("seen", seen + 1)
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Integer, UniqueConstraint, delete, select
from sqlalchemy.dialects import mysql, postgresql, sqlite
from sqlalchemy.orm import Mapped, Session, mapped_column

from botcore.database import Base
from botcore.types import CIText, UTCDateTime, utcnow

#: The longest plugin name and key `PluginStore` accepts.
MAX_PLUGIN = 64
MAX_KEY = 255


class PluginData(Base):
    """One stored value: (plugin, key) is unique, ignoring case."""

    __tablename__ = "plugin_data"
    __table_args__ = (UniqueConstraint("plugin", "key"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    plugin: Mapped[str] = mapped_column(CIText(MAX_PLUGIN))
    key: Mapped[str] = mapped_column(CIText(MAX_KEY))
    value: Mapped[Any] = mapped_column(JSON, nullable=True)
    created: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)


class PluginStore:
    """A plugin's keys and values. Keys are strings compared without regard to case;
    values are anything JSON can hold (tuples come back as lists). Writes join the
    session's transaction: the dispatcher commits them after the processor returns."""

    def __init__(self, session: Session, plugin: str) -> None:
        _check_length("plugin name", plugin, MAX_PLUGIN)
        self.session = session
        self.plugin = plugin

    def get(self, key: str, default: Any = None) -> Any:
        """The value stored under ``key``, or ``default``."""
        found = self.session.execute(
            select(PluginData.value).where(*self._where(key))
        ).one_or_none()
        return default if found is None else found[0]

    def set(self, key: str, value: Any) -> None:
        """Store ``value`` under ``key``, replacing what was there (one statement, safe
        against a concurrent set of the same key). ValueError when the value is not
        JSON-serialisable or the key is too long."""
        _check_length("key", key, MAX_KEY)
        try:
            json.dumps(value)
        except (TypeError, ValueError) as e:
            raise ValueError(f"cannot store {key!r}: {e}") from None
        now = utcnow()
        values = {
            "plugin": self.plugin,
            "key": key,
            "value": value,
            "created": now,
            "updated": now,
        }
        dialect = self.session.get_bind().dialect.name
        if dialect in ("mysql", "mariadb"):
            insert = mysql.insert(PluginData).values(values)
            statement = insert.on_duplicate_key_update(
                value=insert.inserted.value, updated=insert.inserted.updated
            )
        else:
            module = postgresql if dialect == "postgresql" else sqlite
            insert = module.insert(PluginData).values(values)
            statement = insert.on_conflict_do_update(
                index_elements=[PluginData.plugin, PluginData.key],
                set_={"value": insert.excluded.value, "updated": insert.excluded.updated},
            )
        self.session.execute(statement)

    def delete(self, key: str) -> bool:
        """Remove ``key``; whether it was there."""
        result = self.session.execute(delete(PluginData).where(*self._where(key)))
        return bool(result.rowcount)

    def keys(self) -> list[str]:
        """Every key of the plugin, sorted without regard to case."""
        rows = self.session.scalars(select(PluginData.key).where(PluginData.plugin == self.plugin))
        return sorted(rows, key=str.casefold)

    def __contains__(self, key: str) -> bool:
        found = self.session.scalar(select(PluginData.id).where(*self._where(key)))
        return found is not None

    def _where(self, key: str) -> tuple[Any, ...]:
        return (PluginData.plugin == self.plugin, PluginData.key == key)


def _check_length(what: str, text: str, limit: int) -> None:
    if not isinstance(text, str) or not text:
        raise ValueError(f"the {what} must be a non-empty string")
    if len(text) > limit:
        raise ValueError(f"the {what} is longer than {limit} characters: {text[:20]!r}...")
