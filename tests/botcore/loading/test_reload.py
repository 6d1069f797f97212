"""Tests of reloading plugins while the bot runs: whole module trees, failures that keep
the old version, state hand-over, tables, and 10,000 events through 50 reloads."""

from __future__ import annotations

import queue
import sys
import textwrap
import threading
import time
from pathlib import Path
from typing import Any

from twisted.internet.defer import Deferred, ensureDeferred
from twisted.internet.testing import MemoryReactorClock
from twisted.logger import LogLevel, globalLogPublisher
from twisted.python.filepath import FilePath
from twisted.python.threadpool import ThreadPool
from twisted.trial.unittest import SkipTest, SynchronousTestCase

from botcore.bot import Bot
from botcore.config import ConfigErrors
from botcore.db.models import forget_models
from botcore.errors import PluginLoadError, PluginNotLoaded
from botcore.event import Event, EventType, Message, Sender
from botcore.loading.reloader import Reloader
from botcore.loading.watch import PluginWatcher
from botcore.settings import read_config
from botcore.testing import (
    InlineReactor,
    InlineThreadPool,
    ManualThreadPool,
    MemorySource,
    use_entry_points,
)

PACKAGE = "tests.botcore.fixtures_plugins"

COUNTER = '''
"""A test plugin that answers 'count N' with its version and N."""

from botcore.processor import Processor, match

VERSION = @VERSION@


class Counter(Processor):
    """Answers 'count N'; remembers how many it answered across reloads."""

    def setup(self):
        self.answered = getattr(self, "answered", 0)
        self.closed = False

    @match("count {any}")
    def count(self, event, text):
        if self.closed:
            raise RuntimeError("used after shutdown()")
        self.answered += 1
        event.addresponse(f"v{VERSION} {text}")

    def export_state(self):
        return {"answered": self.answered}

    def import_state(self, state):
        self.answered = state["answered"]

    def shutdown(self):
        self.closed = True
'''


class ReloadCase(SynchronousTestCase):
    """A bot whose plugins live in a temporary folder named in ``[bot] plugin_dirs``."""

    prefix = "rl"

    def setUp(self) -> None:
        self.folder = Path(self.mktemp()).absolute()
        self.plugins = self.folder / "myplugins"
        self.plugins.mkdir(parents=True)
        self.names: list[str] = []
        self.addCleanup(self._forget_modules)
        self.errors: list[dict[str, Any]] = []

        def observe(event: dict[str, Any]) -> None:
            if event.get("log_level") in (LogLevel.error, LogLevel.critical) or (
                "log_failure" in event
            ):
                self.errors.append(event)

        globalLogPublisher.addObserver(observe)
        self.addCleanup(globalLogPublisher.removeObserver, observe)

    def _forget_modules(self) -> None:
        parent = sys.modules.get(PACKAGE)
        for name in list(sys.modules):
            for plugin in self.names:
                module = f"{PACKAGE}.{plugin}"
                if name == module or name.startswith(module + "."):
                    forget_models(name)
                    del sys.modules[name]
        for plugin in self.names:
            if parent is not None and plugin in vars(parent):
                delattr(parent, plugin)

    def plugin_name(self, base: str) -> str:
        """A module name no other test uses (modules are process-wide)."""
        name = f"{self.prefix}_{base}_{abs(hash(self.id())) % 10**8}"
        self.names.append(name)
        return name

    def write(self, relative: str, text: str) -> Path:
        """Write a file of the plugin folder, bumping its mtime past the last write's."""
        path = self.plugins / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        old = path.stat().st_mtime if path.exists() else 0
        path.write_text(textwrap.dedent(text).lstrip(), encoding="utf-8")
        # Same-second edits: make the change visible to anything that checks mtimes.
        import os

        os.utime(path, (old + 2, old + 2))
        return path

    def write_counter(self, name: str, version: int) -> None:
        self.write(f"{name}.py", COUNTER.replace("@VERSION@", str(version)))

    def make_bot(
        self,
        load: list[str],
        threadpool: Any = None,
        failing: bool = False,
        import_pool: Any = None,
    ) -> Bot:
        """A started bot loading ``load``; each must load unless ``failing``. Runtime
        imports run in ``import_pool`` (by default in the calling thread)."""
        ini = self.folder / "bot.ini"
        ini.write_text(
            "[bot]\nautoload = no\nload = " + ", ".join(load) + "\n"
            "plugin_dirs = myplugins\n\n"
            f"[database:main]\nurl = sqlite:///{self.folder / 'bot.sqlite'}\n",
            encoding="utf-8",
        )
        reloader = Reloader(
            plugin_package=PACKAGE, source_package="tests.botcore.fixtures_sources"
        )
        config = read_config(ini, reloader=reloader)
        self.clock = InlineReactor()
        self.pool = threadpool or InlineThreadPool()
        bot = Bot(
            config,
            reactor=self.clock,
            threadpool=self.pool,
            reloader=reloader,
            import_pool=import_pool,
        )
        self.source = MemorySource("test", bot.context)
        self.source.setServiceParent(bot.sources)
        self.successResultOf(bot.startService())
        self.addCleanup(self._stop, bot)
        if not failing:
            self.assertEqual(bot.plugins.failed, {})
        return bot

    def _stop(self, bot: Bot) -> None:
        if not bot.running:
            return
        d = bot.stopService()
        if isinstance(self.pool, ManualThreadPool):
            self.pool.run_all()
        self.successResultOf(d)

    def event(self, text: str, conversation: str = "alice") -> Event:
        return Event(
            source="test",
            type=EventType.MESSAGE,
            sender=Sender(f"test:{conversation}", conversation, conversation),
            channel=conversation,
            public=False,
            addressed=True,
            message=Message(text),
        )

    def ask(self, text: str) -> list[str]:
        start = len(self.source.sent)
        self.successResultOf(self.source.dispatch(self.event(text)))
        return [str(r.text) for r in self.source.sent[start:]]


class PluginReloadTests(ReloadCase):
    """load, unload and reload of one plugin."""

    def test_reload_picks_up_new_code(self):
        """After a reload the plugin answers with its new code."""
        name = self.plugin_name("counter")
        self.write_counter(name, 1)
        bot = self.make_bot([name])
        self.assertEqual(self.ask("count a"), ["v1 a"])
        self.write_counter(name, 2)
        self.successResultOf(bot.plugins.reload_plugin(name))
        self.assertEqual(self.ask("count b"), ["v2 b"])
        self.assertEqual(self.errors, [])

    def test_state_handed_over_and_old_shut_down(self):
        """The new version gets the old one's exported state; the old gets shutdown()."""
        name = self.plugin_name("counter")
        self.write_counter(name, 1)
        bot = self.make_bot([name])
        self.ask("count a")
        self.ask("count b")
        [old] = bot.plugins.loaded[name]
        self.write_counter(name, 2)
        [new] = self.successResultOf(bot.plugins.reload_plugin(name))
        self.assertTrue(old.closed)
        self.assertFalse(new.closed)
        self.assertEqual(new.answered, 2)
        self.assertEqual(bot.plugins.versions[name][1], 2)

    def test_import_error_keeps_old_version(self):
        """New code that raises on import leaves the old version answering, and the error
        names the type, the message, the file and the line."""
        name = self.plugin_name("counter")
        self.write_counter(name, 1)
        bot = self.make_bot([name])
        path = self.write(f"{name}.py", "import os\n\nraise RuntimeError('half-written')\n")
        error = self.failureResultOf(bot.plugins.reload_plugin(name), PluginLoadError).value
        self.assertEqual((error.type, error.message), ("RuntimeError", "half-written"))
        self.assertEqual((error.file, error.line), (str(path), 3))
        self.assertIn(f"{path}, line 3", str(error))
        self.assertEqual(self.ask("count a"), ["v1 a"])
        self.assertIs(sys.modules[f"{PACKAGE}.{name}"].VERSION, 1)

    def test_syntax_error_keeps_old_version(self):
        """A syntax error is reported with its line; the old version keeps answering."""
        name = self.plugin_name("counter")
        self.write_counter(name, 1)
        bot = self.make_bot([name])
        self.write(f"{name}.py", "x = 1\ndef broken(:\n")
        error = self.failureResultOf(bot.plugins.reload_plugin(name), PluginLoadError).value
        self.assertEqual((error.type, error.line), ("SyntaxError", 2))
        self.assertEqual(self.ask("count a"), ["v1 a"])

    def test_setup_error_keeps_old_version(self):
        """New code whose setup() raises leaves the old version (and modules) in place."""
        name = self.plugin_name("counter")
        self.write_counter(name, 1)
        bot = self.make_bot([name])
        broken = COUNTER.replace("@VERSION@", "2").replace(
            "        self.closed = False\n", "        raise ValueError('no token set')\n"
        )
        self.write(f"{name}.py", broken)
        error = self.failureResultOf(bot.plugins.reload_plugin(name), PluginLoadError).value
        self.assertEqual((error.type, error.message), ("ValueError", "no token set"))
        self.assertTrue(error.file.endswith(f"{name}.py"))
        self.assertEqual(self.ask("count a"), ["v1 a"])
        self.assertIs(sys.modules[f"{PACKAGE}.{name}"].VERSION, 1)
        self.assertFalse(bot.plugins.loaded[name][0].closed)
        # Fixed, it reloads.
        self.write_counter(name, 3)
        self.successResultOf(bot.plugins.reload_plugin(name))
        self.assertEqual(self.ask("count b"), ["v3 b"])

    def test_unload_and_load(self):
        """Unload takes the plugin out of the chain; load brings it back, with new code."""
        name = self.plugin_name("counter")
        self.write_counter(name, 1)
        bot = self.make_bot([name])
        [old] = bot.plugins.loaded[name]
        bot.plugins.unload_plugin(name)
        self.assertTrue(old.closed)
        self.assertEqual(self.ask("count a"), [])
        self.assertNotIn(f"{PACKAGE}.{name}", sys.modules)
        self.write_counter(name, 2)
        self.successResultOf(bot.plugins.load_plugin(name))
        self.assertEqual(self.ask("count b"), ["v2 b"])
        self.failureResultOf(bot.plugins.load_plugin(name), PluginLoadError)
        bot.plugins.unload_plugin(name)
        self.assertRaises(PluginNotLoaded, bot.plugins.unload_plugin, name)
        self.failureResultOf(bot.plugins.reload_plugin(name), PluginNotLoaded)

    def test_load_broken_plugin(self):
        """Loading a plugin that fails to import changes nothing and says why."""
        name = self.plugin_name("counter")
        self.write_counter(name, 1)
        other = self.plugin_name("other")
        bot = self.make_bot([name])
        self.write(f"{other}.py", "import no_such_module_anywhere\n")
        error = self.failureResultOf(bot.plugins.load_plugin(other), PluginLoadError).value
        self.assertEqual(error.type, "ModuleNotFoundError")
        self.assertNotIn(other, bot.plugins.loaded)
        self.assertNotIn(f"{PACKAGE}.{other}", sys.modules)
        self.assertEqual(self.ask("count a"), ["v1 a"])


class PriorityBandTests(ReloadCase):
    """A processor's priority must be in the bands (pre, work, post) for it to load."""

    BANDS = "(pre -2000..-1000, work -999..999, post 1000..2000)"

    def write_priority(self, name: str, priority: int) -> None:
        """Plugin ``name``: the counter at ``priority`` (which is its version too)."""
        head = "class Counter(Processor):\n"
        text = COUNTER.replace("@VERSION@", str(priority))
        self.write(f"{name}.py", text.replace(head, f"{head}    priority = {priority}\n"))

    def test_refused_at_startup(self):
        """At startup a plugin whose processor is outside the bands is not loaded, and
        says which processor and why; the bot runs its other plugins."""
        bad, good = self.plugin_name("bad"), self.plugin_name("good")
        self.write_priority(bad, 5000)
        self.write_counter(good, 1)
        bot = self.make_bot([bad, good], failing=True)
        why = f"processor {bad}.Counter has priority 5000, outside the bands {self.BANDS}"
        self.assertEqual(bot.plugins.failed, {bad: f"ValueError: {why}"})
        self.assertNotIn(bad, bot.plugins.loaded)
        self.assertEqual(self.ask("count a"), ["v1 a"])
        self.flushLoggedErrors(ValueError)

    def test_refused_at_reload(self):
        """A reload to a priority outside the bands fails with a PluginLoadError naming
        the processor; the old version keeps answering."""
        name = self.plugin_name("counter")
        self.write_priority(name, 1999)
        bot = self.make_bot([name])
        self.write_priority(name, -2001)
        error = self.failureResultOf(bot.plugins.reload_plugin(name), PluginLoadError).value
        self.assertEqual(
            (error.type, error.message),
            (
                "ValueError",
                f"processor {name}.Counter has priority -2001, outside the bands {self.BANDS}",
            ),
        )
        self.assertEqual(self.ask("count a"), ["v1999 a"])


class PackagePluginTests(ReloadCase):
    """A plugin that is a package with helper modules."""

    def write_package(self, name: str, word: str, extra: str = "") -> None:
        self.write(
            f"{name}/__init__.py",
            '''
            """A package plugin."""
            from botcore.processor import Processor, match

            from .helpers import text
            from .deep.words import WORD


            class Hello(Processor):
                @match("hello")
                def hello(self, event):
                    event.addresponse(text() + " " + WORD)
            ''',
        )
        self.write(f"{name}/helpers.py", f"def text():\n    return {word!r}\n{extra}")
        self.write(f"{name}/deep/__init__.py", "")
        self.write(f"{name}/deep/words.py", "WORD = 'there'\n")

    def test_helper_change_picked_up(self):
        """A change in a helper module (and a sub-package's module) is seen by reload."""
        name = self.plugin_name("pkg")
        self.write_package(name, "hi")
        bot = self.make_bot([name])
        self.assertEqual(self.ask("hello"), ["hi there"])
        self.write_package(name, "hello")
        self.write(f"{name}/deep/words.py", "WORD = 'world'\n")
        self.successResultOf(bot.plugins.reload_plugin(name))
        self.assertEqual(self.ask("hello"), ["hello world"])

    def test_broken_helper_restores_whole_tree(self):
        """A helper that fails to import leaves every old module of the tree in place."""
        name = self.plugin_name("pkg")
        self.write_package(name, "hi")
        bot = self.make_bot([name])
        before = {n: m for n, m in sys.modules.items() if n.startswith(f"{PACKAGE}.{name}")}
        self.write_package(name, "hello", extra="1 / 0\n")
        error = self.failureResultOf(bot.plugins.reload_plugin(name), PluginLoadError).value
        self.assertEqual(error.type, "ZeroDivisionError")
        self.assertTrue(error.file.endswith("helpers.py"))
        after = {n: m for n, m in sys.modules.items() if n.startswith(f"{PACKAGE}.{name}")}
        self.assertEqual(after, before)
        self.assertEqual(self.ask("hello"), ["hi there"])


TABLES = '''
"""A plugin with a table."""

from sqlalchemy import Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from botcore.db.models import Base
from botcore.processor import Processor, match

PREFIX = @PREFIX@


class @MODEL@(Base):
    __tablename__ = "@TABLE@"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    text: Mapped[str] = mapped_column(String(50))


class Remember(Processor):
    @match("remember {any}")
    def remember(self, event, text):
        event.session.add(@MODEL@(text=PREFIX + text))
        event.addresponse("ok")

    @match("recall")
    def recall(self, event):
        rows = event.session.query(@MODEL@).order_by(@MODEL@.id).all()
        event.addresponse(", ".join(row.text for row in rows))
@TAIL@'''


class TablePluginTests(ReloadCase):
    """A plugin with database tables reloads cleanly."""

    def write_tables(self, name: str, prefix: str, tail: str = "") -> None:
        text = (
            TABLES.replace("@PREFIX@", repr(prefix))
            .replace("@MODEL@", "Memo" + name.title().replace("_", ""))
            .replace("@TABLE@", f"test_{name}")
            .replace("@TAIL@", tail)
        )
        self.write(f"{name}.py", text)

    def create_table(self, bot: Bot, name: str) -> None:
        """Create the plugin's table in the bot's database, as its migration would."""
        from botcore.db.models import Base

        Base.metadata.tables[f"test_{name}"].create(bot.databases["main"].engine)

    def test_reload_with_tables(self):
        """After reloads, the new model reads and writes the same table."""
        name = self.plugin_name("memo")
        self.write_tables(name, "a:")
        bot = self.make_bot([name])
        self.create_table(bot, name)
        self.assertEqual(self.ask("remember x"), ["ok"])
        self.write_tables(name, "b:")
        self.successResultOf(bot.plugins.reload_plugin(name))
        self.assertEqual(self.ask("remember y"), ["ok"])
        self.assertEqual(self.ask("recall"), ["a:x, b:y"])
        self.assertEqual(self.errors, [])

    def test_failed_reload_keeps_models(self):
        """New code that defines its model then fails leaves the old model mapped."""
        name = self.plugin_name("memo")
        self.write_tables(name, "a:")
        bot = self.make_bot([name])
        self.create_table(bot, name)
        self.ask("remember x")
        self.write_tables(name, "b:", tail="raise ImportError('later failure')\n")
        self.failureResultOf(bot.plugins.reload_plugin(name), PluginLoadError)
        self.assertEqual(self.ask("remember y"), ["ok"])
        self.assertEqual(self.ask("recall"), ["a:x, a:y"])

    def test_unload_forgets_models(self):
        """Unloading a plugin drops its tables from the metadata (not the database)."""
        from botcore.db.models import Base

        name = self.plugin_name("memo")
        self.write_tables(name, "a:")
        bot = self.make_bot([name])
        self.assertIn(f"test_{name}", Base.metadata.tables)
        bot.plugins.unload_plugin(name)
        self.assertNotIn(f"test_{name}", Base.metadata.tables)


class StreamTests(ReloadCase):
    """Reloads in the middle of a stream of events."""

    def test_10000_events_50_reloads(self):
        """10,000 events from 8 conversations, interleaved with 50 reloads: each event is
        answered exactly once, in order per conversation, and nothing is logged as an
        error; events after the last reload get the last version."""
        name = self.plugin_name("counter")
        self.write_counter(name, 0)
        pool = ManualThreadPool()
        bot = self.make_bot([name], threadpool=pool)
        # The stream is fed faster than it is run: thousands wait at once.
        bot.dispatcher.max_queued = 10_000
        conversations = [f"person{i}" for i in range(8)]
        total, reloads = 10_000, 50
        version = 0
        for n in range(total):
            conversation = conversations[(n * 7 + n // 3) % len(conversations)]
            self.source.dispatch(self.event(f"count {conversation} {n}", conversation))
            # Run some of the queued work, not all: several conversations are in flight
            # (and some events queued behind others) when a reload happens.
            if n % 3 == 0:
                while len(pool.jobs) > 4:
                    pool.run(len(pool.jobs) // 2)
            if n % (total // reloads) == total // reloads - 1:
                version += 1
                self.write_counter(name, version)
                self.successResultOf(bot.plugins.reload_plugin(name))
        pool.run_all()
        answers: dict[str, list[int]] = {c: [] for c in conversations}
        versions: dict[int, int] = {}
        for response in self.source.sent:
            tag, conversation, number = str(response.text).split()
            self.assertEqual(response.target, conversation)
            answers[conversation].append(int(number))
            versions[int(number)] = int(tag[1:])
        everything = sorted(n for numbers in answers.values() for n in numbers)
        self.assertEqual(everything, list(range(total)))
        for numbers in answers.values():
            self.assertEqual(numbers, sorted(numbers))
        self.assertEqual(version, reloads)
        self.assertEqual(versions[total - 1], reloads)
        self.assertEqual(sorted(set(versions.values())), list(range(reloads + 1)))
        self.assertEqual(self.errors, [])


#: Plugin name -> (the gate its import waits for, set once its import is past it).
GATES: dict[str, tuple[threading.Event, threading.Event]] = {}

SLOW = '''
"""A test plugin whose import waits for the test's gate (when the test set one)."""

from botcore.options import Option
from botcore.processor import Processor, match
from tests.botcore.loading.test_reload import GATES

VERSION = @VERSION@

_gates = GATES.get(__name__.rpartition(".")[2])
if _gates is not None:
    _gates[0].wait(5)
    _gates[1].set()


class Slow(Processor):
    greeting = Option("A word.", "hi")

    @match("slow")
    def slow(self, event):
        event.addresponse(f"slow v{VERSION}")
'''


class _QueueReactor(InlineReactor):
    """A clock whose ``callFromThread`` queues, as a real reactor's does: the test runs
    the queued calls on its own thread (the reactor thread) with `run_until`."""

    def __init__(self) -> None:
        super().__init__()
        self.from_threads: queue.Queue[tuple[Any, tuple[Any, ...], dict[str, Any]]] = queue.Queue()

    def callFromThread(self, function: Any, *args: Any, **kw: Any) -> None:
        self.from_threads.put((function, args, kw))

    def run_until(self, d: Deferred[Any], timeout: float = 10.0) -> None:
        """Run queued calls until ``d`` has fired; `queue.Empty` past ``timeout``."""
        deadline = time.monotonic() + timeout
        fired: list[bool] = []

        def mark(result: Any) -> Any:
            fired.append(True)
            return result

        d.addBoth(mark)
        while not fired:
            function, args, kw = self.from_threads.get(
                timeout=max(0.0, deadline - time.monotonic())
            )
            function(*args, **kw)


class OffReactorImportTests(ReloadCase):
    """A plugin's import at reload runs off the reactor thread (issue 12, item 19)."""

    def test_slow_import_leaves_reactor_serving(self):
        """While a reloaded plugin's import is blocked, the reactor goes on answering
        events (with the old version); once it finishes, the new version answers."""
        slow, counter = self.plugin_name("slow"), self.plugin_name("counter")
        self.write(f"{slow}.py", SLOW.replace("@VERSION@", "1"))
        self.write_counter(counter, 1)
        ini = self.folder / "bot.ini"
        ini.write_text(
            f"[bot]\nautoload = no\nload = {slow}, {counter}\nplugin_dirs = myplugins\n\n"
            f"[database:main]\nurl = sqlite:///{self.folder / 'bot.sqlite'}\n\n"
            f"[plugin:{slow}]\ngreeting = hello\n",
            encoding="utf-8",
        )
        reloader = Reloader(plugin_package=PACKAGE)
        reactor = _QueueReactor()
        pool = ThreadPool(1, 1, "imports")
        pool.start()
        self.addCleanup(pool.stop)
        bot = Bot(
            read_config(ini, reloader=reloader),
            reactor=reactor,
            threadpool=InlineThreadPool(),
            reloader=reloader,
            import_pool=pool,
        )
        self.source = MemorySource("test", bot.context)
        self.source.setServiceParent(bot.sources)
        started = bot.startService()
        reactor.run_until(started)
        self.assertEqual(bot.plugins.failed, {})

        def stop() -> None:
            stopped = bot.stopService()
            reactor.run_until(stopped)

        self.addCleanup(stop)

        def ask(text: str) -> list[str]:
            start = len(self.source.sent)
            reactor.run_until(self.source.dispatch(self.event(text)))
            return [str(r.text) for r in self.source.sent[start:]]

        gate, imported = threading.Event(), threading.Event()
        GATES[slow] = (gate, imported)
        self.addCleanup(GATES.pop, slow, None)
        self.addCleanup(gate.set)
        self.write(f"{slow}.py", SLOW.replace("@VERSION@", "2"))
        reloaded = bot.plugins.reload_plugin(slow)
        self.assertFalse(imported.is_set(), "the import ran on the reactor thread")
        self.assertEqual(ask("count 1"), ["v1 1"])
        self.assertEqual(ask("slow"), ["slow v1"])
        # A config reload meanwhile checks [plugin:slow] against the running version
        # (not the half-run new module, not an import on this thread).
        self.assertEqual(bot.reload_config(), [])
        self.assertFalse(imported.is_set())
        self.assertNoResult(reloaded)
        gate.set()
        reactor.run_until(reloaded)
        self.assertEqual(len(self.successResultOf(reloaded)), 1)
        self.assertEqual(ask("slow"), ["slow v2"])
        self.assertEqual(ask("count 2"), ["v1 2"])


class ImportQueueTests(ReloadCase):
    """Runtime imports run one at a time, in the import pool (issue 12, item 19)."""

    def test_one_import_at_a_time(self):
        """A second reload waits for the first's import; a plugin being reloaded cannot be
        unloaded meanwhile; both then answer with their new code."""
        first, second = self.plugin_name("first"), self.plugin_name("second")
        self.write_counter(first, 1)
        self.write_counter(second, 1)
        imports = ManualThreadPool()
        bot = self.make_bot([first, second], import_pool=imports)
        self.write_counter(first, 2)
        self.write_counter(second, 2)
        one = bot.plugins.reload_plugin(first)
        two = bot.plugins.reload_plugin(second)
        self.assertEqual(len(imports.jobs), 1)  # each swaps modules in sys.modules
        self.assertRaises(PluginLoadError, bot.plugins.unload_plugin, second)
        self.assertEqual(self.ask("count a"), ["v1 a"])  # the old ones serve meanwhile
        imports.run_all()
        self.successResultOf(one)
        self.successResultOf(two)
        self.assertEqual(self.ask("count b"), ["v2 b"])
        self.assertEqual([sys.modules[f"{PACKAGE}.{n}"].VERSION for n in (first, second)], [2, 2])
        bot.plugins.unload_plugin(second)

    def test_stopped_while_importing(self):
        """A reload whose import finishes after the bot stopped fails, and changes
        nothing."""
        name = self.plugin_name("counter")
        self.write_counter(name, 1)
        imports = ManualThreadPool()
        bot = self.make_bot([name], import_pool=imports)
        [old] = bot.plugins.loaded[name]
        self.write_counter(name, 2)
        reloaded = bot.plugins.reload_plugin(name)
        self.successResultOf(bot.stopService())
        imports.run_all()
        self.assertIn("stopping", str(self.failureResultOf(reloaded, PluginLoadError).value))
        self.assertEqual(bot.plugins.loaded[name], [old])


class _Reactor(MemoryReactorClock):
    """Listens in memory (``tcpServers``), with a clock, running ``callFromThread`` inline."""

    def callFromThread(self, function: Any, *args: Any, **kw: Any) -> None:
        function(*args, **kw)


class RuntimeBotCase(ReloadCase):
    """A bot with two telnet sources listening in memory; its config file can change."""

    def write_ini(self, extra: str = "", one: int = 3001, load: str = "") -> None:
        self.ini.write_text(
            f"[bot]\nautoload = no\nload = {load}\nplugin_dirs = myplugins\n\n"
            f"[database:main]\nurl = sqlite:///{self.folder / 'bot.sqlite'}\n\n"
            f"[source:one]\ntype = telnet\nendpoint = tcp:{one}:interface=127.0.0.1\n\n"
            "[source:two]\ntype = telnet\nendpoint = tcp:3002:interface=127.0.0.1\n" + extra,
            encoding="utf-8",
        )

    def start(self, load: str = "") -> Bot:
        self.ini = self.folder / "bot.ini"
        self.write_ini(load=load)
        reloader = Reloader(plugin_package=PACKAGE)
        config = read_config(self.ini, reloader=reloader)
        self.reactor = _Reactor()
        bot = Bot(config, reactor=self.reactor, threadpool=InlineThreadPool(), reloader=reloader)
        self.successResultOf(bot.startService())
        self.addCleanup(lambda: bot.running and self.successResultOf(bot.stopService()))
        return bot

    def listening(self) -> list[int]:
        return [port for port, *_ in self.reactor.tcpServers]


class SourceRuntimeTests(RuntimeBotCase):
    """Sources loaded, unloaded, reloaded, connected and disconnected at runtime."""

    def test_reload_to_new_port(self):
        """A reload with a new port moves the source there; the other stays connected."""
        bot = self.start()
        one, two = bot.get_source("one"), bot.get_source("two")
        self.assertEqual(bot.source_states(), {"one": "connected", "two": "connected"})
        self.write_ini(one=3003)
        new = self.successResultOf(ensureDeferred(bot.reload_source("one")))
        self.assertIsNot(new, one)
        self.assertEqual(one.state, "stopped")
        self.assertEqual(
            (new.state, new.listening_on), ("connected", "tcp:3003:interface=127.0.0.1")
        )
        self.assertIs(bot.get_source("one"), new)
        self.assertIs(bot.get_source("two"), two)
        self.assertEqual(two.state, "connected")
        self.assertEqual(self.listening(), [3001, 3002, 3003])

    def test_reload_with_bad_config_keeps_source(self):
        """A reload refused by the config leaves the source as it was."""
        bot = self.start()
        one = bot.get_source("one")
        self.write_ini(one=0, extra="[source:three]\ntype = nosuchtype\n")
        failure = self.failureResultOf(ensureDeferred(bot.reload_source("one")), ConfigErrors)
        self.assertEqual(len(failure.value.errors), 1)
        self.assertIs(bot.get_source("one"), one)
        self.assertEqual(one.state, "connected")

    def test_disconnect_connect_unload_load(self):
        """disconnect stops one source, connect starts it, unload removes it, load brings
        it back; the other source is never touched."""
        bot = self.start()
        two = bot.get_source("two")
        self.successResultOf(ensureDeferred(bot.disconnect_source("one")))
        self.assertEqual(bot.source_states(), {"one": "stopped", "two": "connected"})
        self.successResultOf(ensureDeferred(bot.connect_source("one")))
        self.assertEqual(bot.source_states(), {"one": "connected", "two": "connected"})
        self.successResultOf(ensureDeferred(bot.unload_source("one")))
        self.assertEqual(bot.source_states(), {"one": "not loaded", "two": "connected"})
        self.successResultOf(ensureDeferred(bot.load_source("one")))
        self.assertEqual(bot.source_states(), {"one": "connected", "two": "connected"})
        self.assertIs(bot.get_source("two"), two)
        self.failureResultOf(ensureDeferred(bot.unload_source("nosuch")), PluginNotLoaded)
        # A disconnected source does not trouble the bot's stop.
        self.successResultOf(ensureDeferred(bot.disconnect_source("one")))
        self.successResultOf(bot.stopService())
        self.assertEqual(bot.source_states(), {"one": "stopped", "two": "stopped"})


class ConfigReloadTests(RuntimeBotCase):
    """reload_config at runtime."""

    def test_invalid_file_keeps_config(self):
        """An invalid file keeps the running config and reports every error."""
        bot = self.start()
        config = bot.config
        self.ini.write_text("[bot]\nthreads = many\nnope = 1\n", encoding="utf-8")
        errors = bot.reload_config()
        self.assertEqual(len(errors), 2)
        self.assertIn("threads", errors[0])
        self.assertIn("nope", errors[1])
        self.assertIs(bot.config, config)
        self.flushLoggedErrors()

    def test_plugins_and_sources_follow_config(self):
        """A reload loads newly wanted plugins and sources and unloads removed ones."""
        name = self.plugin_name("counter")
        self.write_counter(name, 1)
        bot = self.start(load="echo")
        self.assertEqual(list(bot.plugins.loaded), ["echo"])
        self.ini.write_text(
            f"[bot]\nautoload = no\nload = {name}\nplugin_dirs = myplugins\n\n"
            f"[database:main]\nurl = sqlite:///{self.folder / 'bot.sqlite'}\n\n"
            "[source:two]\ntype = telnet\nendpoint = tcp:3002:interface=127.0.0.1\n\n"
            "[source:three]\ntype = telnet\nendpoint = tcp:3004:interface=127.0.0.1\n",
            encoding="utf-8",
        )
        self.assertEqual(bot.reload_config(), [])
        self.assertEqual(list(bot.plugins.loaded), [name])
        self.assertEqual(bot.source_states(), {"two": "connected", "three": "connected"})
        self.assertEqual([type(p).__name__ for p in bot.dispatcher.chain], ["Counter"])


class AutoreloadTests(ReloadCase):
    """botcore.loading.watch: plugins reloaded when their files change."""

    def watcher(self, bot: Bot) -> PluginWatcher:
        watcher = PluginWatcher(
            bot.plugins, reactor=self.clock, inotify=False, interval=1.0, delay=0.3
        )
        watcher.startService()
        self.addCleanup(watcher.stopService)
        return watcher

    def test_change_reloads(self):
        """A changed file is reloaded once, after the delay; an idle tree does nothing."""
        name = self.plugin_name("counter")
        self.write_counter(name, 1)
        bot = self.make_bot([name])
        watcher = self.watcher(bot)
        self.clock.advance(10)
        self.assertEqual(watcher.reloads, [])
        self.write_counter(name, 2)
        self.clock.advance(1)
        self.assertEqual(watcher.reloads, [])
        self.clock.advance(0.3)
        self.assertEqual(watcher.reloads, [(name, None)])
        self.assertEqual(self.ask("count a"), ["v2 a"])
        self.clock.advance(10)
        self.assertEqual(len(watcher.reloads), 1)

    def test_broken_edit_keeps_previous(self):
        """A broken edit is logged and the previous version keeps answering; fixing it
        reloads."""
        name = self.plugin_name("counter")
        self.write_counter(name, 1)
        bot = self.make_bot([name])
        watcher = self.watcher(bot)
        self.write(f"{name}.py", "def oops(:\n")
        self.clock.pump([1, 0.3])
        [(_, error)] = watcher.reloads
        self.assertIn("SyntaxError", error)
        self.assertEqual(self.ask("count a"), ["v1 a"])
        self.assertEqual(len(self.errors), 1)
        self.errors.clear()
        self.write_counter(name, 3)
        self.clock.pump([1, 0.3])
        self.assertEqual(watcher.reloads[-1], (name, None))
        self.assertEqual(self.ask("count b"), ["v3 b"])

    def test_package_helper_watched(self):
        """Every file of a package plugin's tree is watched."""
        name = self.plugin_name("pkg")
        self.write(f"{name}/__init__.py", "from botcore.processor import Processor\n"
                   "from .helper import X\n\nclass P(Processor):\n    pass\n")  # fmt: skip
        self.write(f"{name}/helper.py", "X = 1\n")
        bot = self.make_bot([name])
        watcher = self.watcher(bot)
        helper = str(self.plugins / name / "helper.py")
        self.assertEqual(watcher.files[helper], name)
        self.write(f"{name}/helper.py", "X = 22\n")
        self.clock.pump([1, 0.3])
        self.assertEqual(watcher.reloads, [(name, None)])
        self.assertEqual(sys.modules[f"{PACKAGE}.{name}"].X, 22)

    def test_notification_reloads(self):
        """An inotify notification for a plugin's file schedules its reload."""
        name = self.plugin_name("counter")
        self.write_counter(name, 1)
        bot = self.make_bot([name])
        watcher = PluginWatcher(bot.plugins, reactor=self.clock, inotify=False, delay=0.3)
        watcher.refresh()
        self.write_counter(name, 2)
        watcher._notified(None, FilePath(str(self.plugins / f"{name}.py")), 0)
        self.clock.advance(0.3)
        self.assertEqual(watcher.reloads, [(name, None)])

    def test_uses_inotify_on_linux(self):
        """On Linux with a real reactor the watcher uses inotify, not a timer."""
        if not sys.platform.startswith("linux"):
            raise SkipTest("inotify is Linux only")
        from twisted.internet import reactor

        name = self.plugin_name("counter")
        self.write_counter(name, 1)
        bot = self.make_bot([name])
        watcher = PluginWatcher(bot.plugins, reactor=reactor)
        watcher.startService()
        try:
            self.assertIsNotNone(watcher._notifier)
            self.assertIsNone(watcher._loop)
            self.assertIn(str(self.plugins), watcher._watched)
        finally:
            watcher.stopService()

    def test_opt_in(self):
        """Only [bot] autoreload = yes gives the bot a watcher."""
        bot = self.make_bot([])
        self.assertIsNone(bot.watcher)


class ChainReleaseTests(SynchronousTestCase):
    """Chain.released: when the events running with a swapped-out chain are done."""

    def test_released_after_inflight_events(self):
        """released() fires once the events started with the chain have finished, not
        before; a chain nobody uses is released at once."""
        from botcore.dispatch.dispatcher import Dispatcher

        pool = ManualThreadPool()
        dispatcher = Dispatcher({}, reactor=InlineReactor(), threadpool=pool)
        dispatcher.startService()
        old = dispatcher.chain
        dispatcher.dispatch(Event(source="s", type=EventType.MESSAGE, channel="a"))
        dispatcher.dispatch(Event(source="s", type=EventType.MESSAGE, channel="b"))
        new = dispatcher.set_chain([])
        released = old.released()
        self.assertNoResult(released)
        self.assertEqual(old.users, 2)
        pool.run(0)
        self.assertNoResult(released)
        pool.run(0)
        self.successResultOf(released)
        self.successResultOf(new.released())
        self.successResultOf(dispatcher.stopService())


class EntryPointTests(ReloadCase):
    """Plugins and sources advertised by installed distributions."""

    def setUp(self) -> None:
        super().setUp()
        use_entry_points(self, "fromdist", "fakesource")
        site = self.folder / "site"
        self.module = f"epplugin_{abs(hash(self.id())) % 10**8}"
        info = site / "botcore_fake_dist-1.0.dist-info"
        info.mkdir(parents=True)
        (info / "METADATA").write_text(
            "Metadata-Version: 2.1\nName: botcore-fake-dist\nVersion: 1.0\n", encoding="utf-8"
        )
        (info / "entry_points.txt").write_text(
            f"[botcore.plugins]\nfromdist = {self.module}\n\n"
            "[botcore.sources]\nfakesource = tests.botcore.fixtures_sources.fake\n",
            encoding="utf-8",
        )
        (site / f"{self.module}.py").write_text(
            "from botcore.processor import Processor, match\n\n"
            "class Dist(Processor):\n"
            "    @match('dist')\n"
            "    def dist(self, event):\n"
            "        event.addresponse('from a distribution')\n",
            encoding="utf-8",
        )
        sys.path.insert(0, str(site))
        self.addCleanup(sys.path.remove, str(site))
        self.addCleanup(sys.modules.pop, self.module, None)

    def test_plugin_entry_point(self):
        """A botcore.plugins entry point is a plugin: found, loaded and reloaded."""
        reloader = Reloader(plugin_package=PACKAGE)
        self.assertIn("fromdist", reloader.plugin_names())
        self.assertEqual(reloader.plugin_location("fromdist"), (self.module, None))
        bot = self.make_bot(["fromdist"])
        self.assertEqual(self.ask("dist"), ["from a distribution"])
        self.successResultOf(bot.plugins.reload_plugin("fromdist"))
        self.assertEqual(self.ask("dist"), ["from a distribution"])

    def test_source_entry_point(self):
        """A botcore.sources entry point is a source type."""
        reloader = Reloader(source_package="tests.botcore.fixtures_sources")
        self.assertIn("fakesource", reloader.source_types())
        self.assertEqual(reloader.source_class("fakesource").__name__, "FakeSource")
