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

from sqlalchemy import JSON, Integer, UniqueConstraint, and_, bindparam, delete, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from botcore.db.engine import mark_written
from botcore.db.models import Base
from botcore.db.types import CIText, UTCDateTime, utcnow
from botcore.db.upsert import Upsert

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


# The statements PluginStore runs, built once: building a statement costs more than
# running it on SQLite. Parameters are named p_* (INSERT reserves the column names).
_table = PluginData.__table__
_match = and_(_table.c.plugin == bindparam("p_plugin"), _table.c.key == bindparam("p_key"))
_GET = select(_table.c.value).where(_match)
_HAS = select(_table.c.id).where(_match)
_DELETE = delete(PluginData).where(_match)
_KEYS = select(_table.c.key).where(_table.c.plugin == bindparam("p_plugin"))


_SET = Upsert(
    _table,
    key=("plugin", "key"),
    columns=("plugin", "key", "value", "created", "updated"),
    update=lambda new: {"value": new.value, "updated": new.updated},
)


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
        found = self._run(_GET, key).one_or_none()
        return default if found is None else found[0]

    def set(self, key: str, value: Any) -> None:
        """Store ``value`` under ``key``, replacing what was there (one statement, safe
        against a concurrent set of the same key); a key keeps the spelling it was first
        stored with. ValueError when the value is not JSON-serialisable or the key is
        empty or too long."""
        _check_length("key", key, MAX_KEY)
        try:
            json.dumps(value)
        except (TypeError, ValueError) as e:
            raise ValueError(f"cannot store {key!r}: {e}") from None
        now = utcnow()
        _SET.execute(
            self.session,
            {"plugin": self.plugin, "key": key, "value": value, "created": now, "updated": now},
        )

    def delete(self, key: str) -> bool:
        """Remove ``key``; whether it was there."""
        result = self._run(_DELETE, key)
        mark_written(self.session)
        return bool(result.rowcount)

    def keys(self) -> list[str]:
        """Every key of the plugin, sorted without regard to case."""
        rows = self.session.connection().execute(_KEYS, {"p_plugin": self.plugin}).scalars()
        return sorted(rows, key=str.casefold)

    def __contains__(self, key: str) -> bool:
        return self._run(_HAS, key).first() is not None

    def _run(self, statement: Any, key: str) -> Any:
        return self.session.connection().execute(
            statement, {"p_plugin": self.plugin, "p_key": key}
        )


def _check_length(what: str, text: str, limit: int) -> None:
    if not isinstance(text, str) or not text:
        raise ValueError(f"the {what} must be a non-empty string")
    if len(text) > limit:
        raise ValueError(f"the {what} is longer than {limit} characters: {text[:20]!r}...")
