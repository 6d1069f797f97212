"""Tests for botcore.loading.reloader: the load/noload/autoload rules, plugin.Processor entries,
processors that are not autoloaded, and what an unknown plugin or source says."""

from __future__ import annotations

from types import ModuleType

from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from botcore.errors import PluginNotFound
from botcore.loading.reloader import Reloader
from botcore.processor import Processor
from botcore.testing import StubContext
from tests.botcore.fixtures_plugins import echo, greet
from tests.botcore.fixtures_sources.fake import FakeSource

PLUGINS = "tests.botcore.fixtures_plugins"
SOURCES = "tests.botcore.fixtures_sources"
ALL = ["broken", "echo", "greet", "lifecycle"]


def reloader(**config) -> Reloader:
    return Reloader(config, plugin_package=PLUGINS, source_package=SOURCES)


def context() -> StubContext:
    """A bot for the processors the reloader builds."""
    return StubContext(reactor=Clock())


def loaded(reloader: Reloader) -> dict[str, list[str]]:
    """Plugin -> names of the processors the rules load."""
    return {
        name: [type(p).__name__ for p in reloader.processors(name, context(), {})]
        for name in reloader.wanted_plugins()
    }


def operator_plugin() -> ModuleType:
    """A plugin module with a processor that asks for the administrative interface (as
    the admin plugin's do) and one that does not."""
    module = ModuleType("tests.botcore.loading.operator")

    class Operate(Processor):
        __module__ = module.__name__
        control = True

    class Chat(Processor):
        __module__ = module.__name__

    module.Operate, module.Chat = Operate, Chat
    return module


class LoadRuleTests(SynchronousTestCase):
    """Which plugins and processors are loaded."""

    def test_plugin_names(self):
        """Every module of the plugin package is a plugin, sorted."""
        self.assertEqual(reloader().plugin_names(), ALL)

    def test_autoload(self):
        """By default every plugin loads, with its autoloaded processors only."""
        self.assertEqual(
            loaded(reloader()),
            {
                "broken": ["Broken"],
                "echo": ["Echo", "Shout"],
                "greet": ["Greet"],
                "lifecycle": ["Recorder"],
            },
        )

    def test_noload_plugin(self):
        """noload names plugins not to load."""
        self.assertEqual(
            reloader(noload=["broken", "echo"]).wanted_plugins(), ["greet", "lifecycle"]
        )

    def test_noload_processor(self):
        """noload may name one processor as plugin.Processor; the rest of the plugin loads."""
        self.assertEqual(loaded(reloader(noload=["echo.Shout"]))["echo"], ["Echo"])

    def test_load_processor_not_autoloaded(self):
        """A processor with autoload = False loads when load names it."""
        self.assertEqual(loaded(reloader(load=["greet.Wave"]))["greet"], ["Greet", "Wave"])

    def test_no_autoload(self):
        """With autoload off only the plugins load names are loaded."""
        self.assertEqual(
            loaded(reloader(autoload=False, load=["echo"])), {"echo": ["Echo", "Shout"]}
        )
        self.assertEqual(reloader(autoload=False).wanted_plugins(), [])

    def test_no_autoload_processor_entry(self):
        """With autoload off, a plugin.Processor entry loads just that processor."""
        self.assertEqual(
            loaded(reloader(autoload=False, load=["greet.Wave", "echo.Shout"])),
            {"greet": ["Wave"], "echo": ["Shout"]},
        )

    def test_noload_plugin_but_load_processor(self):
        """A processor named in load is loaded even when noload names its plugin."""
        self.assertEqual(
            loaded(reloader(noload=["greet"], load=["greet.Wave"]))["greet"], ["Wave"]
        )

    def test_noload_wins_over_load(self):
        """A plugin in both noload and load is not loaded."""
        self.assertNotIn("echo", reloader(noload=["echo"], load=["echo"]).wanted_plugins())

    def test_load_unknown_plugin(self):
        """A plugin load names that does not exist is wanted, and fails when loaded."""
        rules = reloader(autoload=False, load=["karma"])
        self.assertEqual(rules.wanted_plugins(), ["karma"])
        self.assertRaises(PluginNotFound, rules.processors, "karma", context(), {})

    def test_processors_get_config(self):
        """Processors are built with their plugin name, bot and section."""
        bot = context()
        [processor] = reloader().processors("greet", bot, {"greeting": "yo"})
        self.assertEqual((processor.name, processor.greeting), ("greet", "yo"))
        self.assertIs(processor.bot, bot)

    def test_control_given_to_those_that_ask(self):
        """A processor with control = True is given the control object as its bot; the
        plugin's others get the context."""
        bot, control = context(), object()
        operate, chat = reloader().processors("ops", bot, {}, operator_plugin(), control)
        self.assertEqual((type(operate).__name__, type(chat).__name__), ("Operate", "Chat"))
        self.assertIs(operate.bot, control)
        self.assertIs(chat.bot, bot)

    def test_control_refused_without_control(self):
        """Without a control object, a processor with control = True is refused with a
        ValueError that names it."""
        with self.assertRaises(ValueError) as raised:
            reloader().processors("ops", context(), {}, operator_plugin())
        self.assertIn("ops.Operate", str(raised.exception))

    def test_processor_classes(self):
        """A plugin's processors are the classes it defines, in definition order."""
        self.assertEqual(reloader().processor_classes(echo), [echo.Echo, echo.Shout])

    def test_plugin_options(self):
        """A plugin section may set the overrides and its processors' options."""
        self.assertEqual(
            sorted(reloader().plugin_options("greet")),
            ["addressed", "greeting", "priority", "processed", "times"],
        )
        self.assertIs(reloader().plugin_module("greet"), greet)


class NotFoundTests(SynchronousTestCase):
    """Unknown plugins and sources."""

    def test_unknown_plugin(self):
        """An unknown plugin is PluginNotFound listing the available ones."""
        with self.assertRaises(PluginNotFound) as raised:
            reloader().plugin_module("karma")
        self.assertEqual(
            str(raised.exception),
            "no plugin 'karma' (available: broken, echo, greet, lifecycle)",
        )

    def test_invalid_name(self):
        """A name that cannot be a module is PluginNotFound, not an import of something else."""
        for name in ("echo.Echo", "../etc", ""):
            self.assertRaises(PluginNotFound, reloader().plugin_module, name)

    def test_source_class(self):
        """A source type is the class its module defines that implements ISource."""
        self.assertIs(reloader().source_class("fake"), FakeSource)
        self.assertEqual(reloader().source_types(), ["failing", "fake"])

    def test_unknown_source(self):
        """An unknown source type is PluginNotFound listing the available types."""
        with self.assertRaises(PluginNotFound) as raised:
            reloader().source_class("irc")
        self.assertEqual(str(raised.exception), "no source type 'irc' (available: failing, fake)")

    def test_module_without_source(self):
        """A module that defines no source is PluginNotFound."""
        reloader_ = Reloader(source_package=PLUGINS)
        with self.assertRaises(PluginNotFound) as raised:
            reloader_.source_class("echo")
        self.assertIn("defines no source", str(raised.exception))

    def test_broken_plugin_propagates(self):
        """A plugin whose own import fails raises that error: it is not 'not found'."""
        import sys
        import uuid
        from pathlib import Path

        folder = Path(self.mktemp())
        package = folder / f"botcore_test_plugins_{uuid.uuid4().hex}"
        package.mkdir(parents=True)
        (package / "__init__.py").write_text("")
        (package / "needy.py").write_text("import botcore_no_such_dependency\n")
        (package / "typo.py").write_text("def broken(:\n")
        self.patch(sys, "path", [str(folder), *sys.path])
        self.addCleanup(
            lambda: [sys.modules.pop(m) for m in list(sys.modules) if m.startswith(package.name)]
        )
        rules = Reloader(plugin_package=package.name)
        with self.assertRaises(ModuleNotFoundError) as raised:
            rules.plugin_module("needy")
        self.assertEqual(raised.exception.name, "botcore_no_such_dependency")
        self.assertRaises(SyntaxError, rules.plugin_module, "typo")
        self.assertEqual(rules.plugin_names(), ["needy", "typo"])
