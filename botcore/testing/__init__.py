"""Test support for botcore and for plugin authors: one home for every fake.

* `PluginTestCase` (`botcore.testing.plugincase`): a real bot, run inline, to test plugins
  as a conversation.
* `StubContext` (`botcore.testing.context`): the bot a unit test gives one processor or
  source (every processor and source needs one), checked against `IBotContext`.
* `MemorySource` (`botcore.testing.sources`): a source with no network that keeps what
  it is asked to send.
* `InlineThreadPool`, `ManualThreadPool`, `InlineReactor`, `at_once`
  (`botcore.testing.threads`): work that crosses threads, run at once or when the test
  says, and threads that race.
* `fresh_database`, `fresh_engine`, `sqlite_database`, `backend_variants`, `backend_classes`
  (`botcore.testing.databases`): fresh databases on SQLite, PostgreSQL and MariaDB.
* `free_port` (`botcore.testing.network`): a loopback port for a real server.
* `only_entry_points`, `use_entry_points` (`botcore.testing.installed`): test against an
  explicit set of installed plugins and migration branches.
"""

from __future__ import annotations

from botcore.testing.context import StubContext
from botcore.testing.databases import (
    BACKENDS,
    ENVIRONMENT,
    MYSQL,
    POSTGRESQL,
    SQLITE,
    backend_classes,
    backend_variants,
    fresh_database,
    fresh_engine,
    in_ci,
    server_url,
    sqlite_database,
    unavailable,
)
from botcore.testing.installed import only_entry_points, use_entry_points
from botcore.testing.network import free_port
from botcore.testing.plugincase import PluginTestCase
from botcore.testing.sources import MemorySource
from botcore.testing.threads import InlineReactor, InlineThreadPool, Job, ManualThreadPool, at_once

__all__ = [
    "BACKENDS",
    "ENVIRONMENT",
    "MYSQL",
    "POSTGRESQL",
    "SQLITE",
    "InlineReactor",
    "InlineThreadPool",
    "Job",
    "ManualThreadPool",
    "MemorySource",
    "PluginTestCase",
    "StubContext",
    "at_once",
    "backend_classes",
    "backend_variants",
    "free_port",
    "fresh_database",
    "fresh_engine",
    "in_ci",
    "only_entry_points",
    "server_url",
    "sqlite_database",
    "unavailable",
    "use_entry_points",
]
