"""Tests for botcore.db.upsert, the one insert-or-update statement, on SQLite, PostgreSQL
and MariaDB: keys compared as the unique index compares them, what a conflict changes,
concurrent writers of one new key, and the keys it refuses."""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import Column, Integer, MetaData, String, Table, UniqueConstraint, select
from twisted.trial.unittest import SynchronousTestCase

from botcore.db import migrate
from botcore.db.engine import has_changes, make_engine, make_session_factory
from botcore.db.types import CIText, index_by_key
from botcore.db.upsert import Upsert
from botcore.testing import at_once, backend_classes, fresh_database

metadata = MetaData()
counters = Table(
    "upsert_counters",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("name", CIText(64), nullable=False),
    Column("value", Integer, nullable=False),
    Column("note", String(64), nullable=True),
    UniqueConstraint("name", name="uq_upsert_counters_name"),
)
index_by_key(counters)

#: Adds to the stored value; the note is replaced.
ADD = Upsert(
    counters,
    key=("name",),
    columns=("name", "value", "note"),
    update=lambda new: {"value": counters.c.value + new.value, "note": new.note},
)
#: Replaces every column but the key.
REPLACE = Upsert(counters, key=("name",), columns=("name", "value", "note"))


class UpsertMixin:
    """Upsert on one backend."""

    backend: str

    def setUp(self) -> None:
        self.engine = make_engine(fresh_database(self, self.backend), pool_size=20)
        self.addCleanup(self.engine.dispose)
        migrate.upgrade(self.engine)  # the CIText collation on PostgreSQL
        metadata.create_all(self.engine)
        self.sessions = make_session_factory(self.engine)

    def rows(self) -> list[tuple[str, int, str | None]]:
        with self.sessions() as session:
            query = select(counters.c.name, counters.c.value, counters.c.note)
            return [tuple(row) for row in session.execute(query.order_by(counters.c.id))]

    def test_insert_then_update(self) -> None:
        """The first write inserts; one with the same key in another case updates that
        row as ``update`` says, and the key keeps its first spelling."""
        with self.sessions() as session:
            ADD.execute(session, {"name": "Foo", "value": 2, "note": "first"})
            session.commit()
            ADD.execute(session, {"name": "FOO", "value": 3, "note": "second"})
            ADD.execute(session, {"name": "bar", "value": 1, "note": None})
            session.commit()
        self.assertEqual(self.rows(), [("Foo", 5, "second"), ("bar", 1, None)])

    def test_replace_by_default(self) -> None:
        """Without ``update``, a conflict gives every column but the key its new value."""
        with self.sessions() as session:
            REPLACE.execute(session, {"name": "foo", "value": 2, "note": "first"})
            REPLACE.execute(session, {"name": "Foo", "value": 7, "note": None})
            session.commit()
        self.assertEqual(self.rows(), [("foo", 7, None)])

    def test_marks_session_written(self) -> None:
        """An upsert marks its session changed, so the dispatcher commits it."""
        with self.sessions() as session:
            self.assertFalse(has_changes(session))
            ADD.execute(session, {"name": "foo", "value": 1, "note": None})
            self.assertTrue(has_changes(session))

    def test_concurrent_writers(self) -> None:
        """Twenty threads adding to the same new key at once leave one row holding the
        sum: none inserts twice, none is lost."""

        def add(number: int, start: Callable[[], None]) -> None:
            with self.sessions() as session:
                session.connection()  # connected before the race starts
                start()
                ADD.execute(session, {"name": "Race", "value": 1, "note": f"n{number}"})
                session.commit()

        self.assertEqual(at_once(20, add), [])
        [(name, value, _)] = self.rows()
        self.assertEqual((name, value), ("Race", 20))


backend_classes(UpsertMixin, globals(), "UpsertTests")


class UpsertKeyTests(SynchronousTestCase):
    """What an Upsert refuses when it is made, before any database sees it."""

    def test_key_must_be_unique(self) -> None:
        """A key that is no unique constraint, index or primary key of the table is
        refused: SQLite and PostgreSQL would reject the statement, MariaDB would insert."""
        with self.assertRaises(ValueError) as caught:
            Upsert(counters, key=("value",), columns=("name", "value"))
        self.assertIn("value is not a unique key of upsert_counters", str(caught.exception))

    def test_one_unique_key_only(self) -> None:
        """An insert that also sets another unique key is refused: MariaDB would update
        on a collision there too."""
        with self.assertRaises(ValueError) as caught:
            Upsert(counters, key=("name",), columns=("id", "name", "value"))
        self.assertIn("also sets the unique key id", str(caught.exception))

    def test_columns(self) -> None:
        """Unknown columns, a key the insert does not set, and what is not a table are
        refused."""
        self.assertRaises(TypeError, Upsert, counters.select().subquery(), ("name",), ("name",))
        self.assertRaises(ValueError, Upsert, counters, ("name",), ("name", "nope"))
        self.assertRaises(ValueError, Upsert, counters, ("name",), ("value", "note"))

    def test_built_once(self) -> None:
        """The statement is built once per dialect; an unknown dialect is refused."""
        self.assertIs(ADD.statement("sqlite"), ADD.statement("sqlite"))
        self.assertIsNot(ADD.statement("sqlite"), ADD.statement("postgresql"))
        self.assertRaises(ValueError, ADD.statement, "oracle")
