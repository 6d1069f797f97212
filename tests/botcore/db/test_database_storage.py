"""Tests for botcore.db.storage.PluginStore, the plugins' key/value storage, on SQLite,
PostgreSQL and MariaDB."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from botcore.db.engine import make_session_factory
from botcore.db.storage import MAX_KEY, PluginData, PluginStore
from botcore.testing import backend_classes, fresh_engine


class PluginStoreMixin:
    """PluginStore on one backend."""

    backend: str

    def setUp(self) -> None:
        self.engine = fresh_engine(self, self.backend, migrated=True)
        self.sessions = make_session_factory(self.engine)

    def session(self) -> Session:
        session = self.sessions()
        self.addCleanup(session.close)
        return session

    def test_set_get(self) -> None:
        """What is set is read back, in the same session and after a commit; anything
        JSON holds can be stored."""
        session = self.session()
        store = PluginStore(session, "karma")
        values = {"n": 3, "s": "text", "l": [1, "two", None], "d": {"a": {"b": 1.5}}, "t": True}
        for key, value in values.items():
            store.set(key, value)
        self.assertEqual(store.get("d"), {"a": {"b": 1.5}})
        session.commit()
        store = PluginStore(self.session(), "karma")
        self.assertEqual({key: store.get(key) for key in values}, values)

    def test_missing_key(self) -> None:
        """A missing key reads as the default; a stored None is not missing."""
        store = PluginStore(self.session(), "karma")
        self.assertIsNone(store.get("nope"))
        self.assertEqual(store.get("nope", 7), 7)
        self.assertNotIn("nope", store)
        store.set("none", None)
        self.assertIn("none", store)
        self.assertIsNone(store.get("none", 7))

    def test_set_replaces(self) -> None:
        """Setting a key again replaces its value, keeps one row and its first spelling,
        and moves its updated time on."""
        session = self.session()
        store = PluginStore(session, "karma")
        store.set("Foo", 1)
        session.commit()
        first = session.scalars(select(PluginData)).one()
        created = first.created
        session.expunge_all()
        store.set("foo", 2)
        store.set("FOO", 3)
        session.commit()
        row = session.scalars(select(PluginData)).one()
        self.assertEqual((row.key, row.value), ("Foo", 3))
        self.assertEqual(row.created, created)
        self.assertGreaterEqual(row.updated, created)
        self.assertEqual(row.updated.tzinfo, UTC)
        self.assertLess(abs((datetime.now(UTC) - row.updated).total_seconds()), 60)

    def test_keys_ignore_case(self) -> None:
        """Keys and plugin names are compared without regard to case."""
        session = self.session()
        PluginStore(session, "Karma").set("Ärger", 1)
        store = PluginStore(session, "karma")
        self.assertEqual(store.get("äRGER"), 1)
        self.assertIn("ÄRGER", store)

    def test_plugins_apart(self) -> None:
        """Each plugin sees only its own keys."""
        session = self.session()
        PluginStore(session, "karma").set("x", 1)
        PluginStore(session, "factoids").set("x", 2)
        self.assertEqual(PluginStore(session, "karma").get("x"), 1)
        self.assertEqual(PluginStore(session, "factoids").keys(), ["x"])

    def test_keys_and_delete(self) -> None:
        """keys() lists the plugin's keys sorted without regard to case; delete removes
        one and says whether it was there."""
        session = self.session()
        store = PluginStore(session, "karma")
        for key in ("b", "A", "c"):
            store.set(key, 0)
        self.assertEqual(store.keys(), ["A", "b", "c"])
        self.assertTrue(store.delete("B"))
        self.assertFalse(store.delete("b"))
        self.assertEqual(store.keys(), ["A", "c"])

    def test_bad_input(self) -> None:
        """Values JSON cannot hold, empty or overlong keys are refused with a ValueError
        before anything is written."""
        store = PluginStore(self.session(), "karma")
        self.assertRaises(ValueError, store.set, "x", {1, 2})
        self.assertRaises(ValueError, store.set, "x", object())
        self.assertRaises(ValueError, store.set, "", 1)
        self.assertRaises(ValueError, store.set, "k" * (MAX_KEY + 1), 1)
        self.assertRaises(ValueError, PluginStore, self.session(), "")
        store.set("k" * MAX_KEY, 1)
        self.assertEqual(store.keys(), ["k" * MAX_KEY])


backend_classes(PluginStoreMixin, globals(), "PluginStoreTests")
