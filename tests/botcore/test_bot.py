"""Tests for botcore.bot: the root service's lifecycle, the order its children start and
stop in, failures at start, broken plugins, and configuration reload."""

from __future__ import annotations

import os
from pathlib import Path

from sqlalchemy import select
from twisted.logger import formatEvent, globalLogPublisher
from twisted.trial.unittest import SynchronousTestCase
from zope.interface.verify import verifyObject

from botcore.bot import Bot
from botcore.db.storage import PluginData, PluginStore
from botcore.event import Event, EventType, Lifecycle, Response, Sender
from botcore.interfaces import IBotContext, IBotControl
from botcore.loading.reloader import Reloader
from botcore.processor import Processor, match
from botcore.settings import read_config
from botcore.testing import InlineReactor, InlineThreadPool, ManualThreadPool

PLUGINS = "tests.botcore.fixtures_plugins"
SOURCES = "tests.botcore.fixtures_sources"


def message(text: str, source: str = "one") -> Event:
    return Event(
        source=source,
        type=EventType.MESSAGE,
        sender=Sender(source, "alice", "alice"),
        channel="#c",
        addressed=True,
        message=text,
    )


class BotTestCase(SynchronousTestCase):
    """Builds a bot on a clock and an inline pool from an INI text, with the fixture
    plugins and sources and a SQLite database in a temporary folder."""

    def setUp(self):
        self.folder = Path(os.path.abspath(self.mktemp()))
        self.folder.mkdir()
        self.logged = []
        globalLogPublisher.addObserver(self.logged.append)
        self.addCleanup(globalLogPublisher.removeObserver, self.logged.append)

    def write(self, text: str) -> Path:
        path = self.folder / "bot.ini"
        database = f"[database:main]\nurl = sqlite:///{self.folder}/bot.sqlite\n"
        path.write_text(database + text.lstrip(), encoding="utf-8")
        return path

    def bot(self, text: str = "", threadpool=None) -> Bot:
        reloader = Reloader(plugin_package=PLUGINS, source_package=SOURCES)
        config = read_config(self.write(text), environ={}, reloader=reloader)
        self.reactor = InlineReactor()
        bot = Bot(
            config,
            reactor=self.reactor,
            threadpool=threadpool or InlineThreadPool(),
            reloader=reloader,
        )
        self.addCleanup(self.stop, bot)
        return bot

    def stop(self, bot):
        if bot.running:
            self.successResultOf(bot.stopService())
        self.assertEqual(bot.reactor.getDelayedCalls(), [])

    def processor(self, bot, plugin):
        [processor] = bot.plugins.loaded[plugin]
        return processor

    def logged_texts(self):
        return [formatEvent(event) for event in self.logged]


class LifecycleTests(BotTestCase):
    """States and their publication."""

    def test_states_published_in_order(self):
        """Processors see starting, running, stopping and stopped, in that order."""
        bot = self.bot("[bot]\nnoload = broken\n[source:one]\ntype = fake\n")
        self.assertEqual(bot.state, Lifecycle.STOPPED)
        self.successResultOf(bot.startService())
        recorder = self.processor(bot, "lifecycle")
        self.assertEqual(bot.state, Lifecycle.RUNNING)
        self.assertEqual(recorder.states, ["starting", "running"])
        self.successResultOf(bot.stopService())
        self.assertEqual(bot.state, Lifecycle.STOPPED)
        self.assertEqual(recorder.states, ["starting", "running", "stopping", "stopped"])

    def test_starting_before_sources(self):
        """'starting' reaches the processors before any source has started."""
        bot = self.bot("[bot]\nnoload = broken\n[source:one]\ntype = fake\n")
        source = bot.get_source("one")
        states_at_source_start = []
        start = source.startService

        def recording_start():
            states_at_source_start.extend(self.processor(bot, "lifecycle").states)
            start()

        source.startService = recording_start
        self.successResultOf(bot.startService())
        self.assertEqual(states_at_source_start, ["starting"])

    def test_state_logged(self):
        """Each change of state is logged."""
        bot = self.bot("[bot]\nnoload = broken\n")
        self.successResultOf(bot.startService())
        texts = self.logged_texts()
        self.assertIn("botcore lifecycle: stopped -> starting", texts)
        self.assertIn("botcore lifecycle: starting -> running", texts)

    def test_started_at(self):
        """started_at is taken from the bot's clock when it is running."""
        bot = self.bot("[bot]\nnoload = broken\n")
        self.reactor.advance(1000)
        self.successResultOf(bot.startService())
        self.assertEqual(bot.started_at.timestamp(), 1000)

    def test_stop_when_not_running(self):
        """Stopping a bot that is not running does nothing."""
        bot = self.bot("[bot]\nnoload = broken\n")
        self.successResultOf(bot.stopService())
        self.assertEqual(bot.state, Lifecycle.STOPPED)


class ChildrenTests(BotTestCase):
    """The service tree."""

    def record(self, bot):
        calls = []
        for child in bot:
            for method in ("startService", "stopService"):
                original = getattr(child, method)

                def wrapper(*args, original=original, name=child.name, method=method, **kw):
                    calls.append((method, name))
                    return original(*args, **kw)

                setattr(child, method, wrapper)
        return calls

    def test_order(self):
        """Children start in order database, dispatcher, event log, plugins, sources and
        stop in reverse."""
        bot = self.bot("[bot]\nnoload = broken\n[source:one]\ntype = fake\n")
        calls = self.record(bot)
        self.successResultOf(bot.startService())
        order = ["database:main", "dispatcher", "event-log", "plugins", "sources"]
        self.assertEqual(calls, [("startService", name) for name in order])
        del calls[:]
        self.successResultOf(bot.stopService())
        self.assertEqual(calls, [("stopService", name) for name in reversed(order)])
        self.assertFalse(any(child.running for child in bot))

    def test_disabled_source(self):
        """A source with enabled = no is not added."""
        bot = self.bot("[source:one]\ntype = fake\n[source:two]\ntype = fake\nenabled = no\n")
        self.assertIsNotNone(bot.get_source("one"))
        self.assertIsNone(bot.get_source("two"))
        self.assertIsNone(bot.get_source(None))

    def test_config_reload_keeps_hand_added_source(self):
        """A config reload unloads a source whose section went, never one added by hand
        (not built from the config), which goes on being given its replies."""
        from tests.botcore.fixtures_sources.fake import FakeSource

        bot = self.bot("[bot]\nnoload = broken\n[source:one]\ntype = fake\n")
        hand = FakeSource("hand", bot.context)
        hand.setServiceParent(bot.sources)
        self.successResultOf(bot.startService())
        self.write("[bot]\nnoload = broken\n")
        self.assertEqual(bot.reload_config(), [])
        self.assertIsNone(bot.get_source("one"))
        self.assertIs(bot.get_source("hand"), hand)
        self.successResultOf(bot.dispatch(message("hello", source="hand")))
        self.assertEqual([r.text for r in hand.sent], ["hi"])

    def test_sources_set_up(self):
        """Sources are built from their section and set up when added; their bot is the
        bot's context, not the bot."""
        bot = self.bot("[source:one]\ntype = fake\nport = 7000\n")
        source = bot.get_source("one")
        self.assertEqual((source.port, source.setups), (7000, 1))
        self.assertIs(source.bot, bot.context)

    def test_source_start_fails(self):
        """A source whose start fails makes the bot 'failed' with exit code 1, logged in one
        line, and what had started is stopped again."""
        bot = self.bot("[bot]\nnoload = broken\n[source:bad]\ntype = failing\n")
        self.successResultOf(bot.startService())
        self.assertEqual(bot.state, Lifecycle.FAILED)
        self.assertEqual(bot.exit_code, 1)
        self.assertFalse(bot.dispatcher.running)
        self.assertFalse(bot.databases["main"].running)
        self.assertIn(
            "botcore failed to start: ConnectionRefusedError: nobody listens on the fake port",
            self.logged_texts(),
        )
        self.assertEqual(self.processor(bot, "lifecycle").states, ["starting", "failed"])
        self.flushLoggedErrors(ConnectionRefusedError)

    def test_failed_stop_keeps_failed(self):
        """Stopping a bot that failed to start leaves it 'failed'."""
        bot = self.bot("[bot]\nnoload = broken\n[source:bad]\ntype = failing\n")
        self.successResultOf(bot.startService())
        self.successResultOf(bot.stopService())
        self.assertEqual(bot.state, Lifecycle.FAILED)
        self.flushLoggedErrors(ConnectionRefusedError)


class PluginTests(BotTestCase):
    """Loading plugins at start."""

    def test_broken_plugin_skipped(self):
        """A plugin whose setup() raises is skipped and logged; the others load and work."""
        bot = self.bot("[source:one]\ntype = fake\n")
        self.successResultOf(bot.startService())
        self.assertEqual(sorted(bot.plugins.loaded), ["echo", "greet", "lifecycle"])
        self.assertEqual(bot.plugins.failed, {"broken": "RuntimeError: broken on purpose"})
        [failure] = self.flushLoggedErrors(RuntimeError)
        self.assertEqual(str(failure.value), "broken on purpose")
        source = bot.get_source("one")
        source.dispatch(message("hello"))
        self.assertEqual(source.sent, [Response("hi", target="#c", source="one")])

    def test_missing_plugin_skipped(self):
        """A plugin load names that does not exist is reported and skipped."""
        bot = self.bot("[bot]\nautoload = no\nload = echo, karma\n")
        self.successResultOf(bot.startService())
        self.assertEqual(list(bot.plugins.loaded), ["echo"])
        self.assertIn("no plugin 'karma'", bot.plugins.failed["karma"])
        self.flushLoggedErrors()

    def test_chain_from_plugins(self):
        """The dispatcher's chain is every loaded processor, sorted by priority."""
        bot = self.bot("[bot]\nnoload = broken\n[plugin:echo]\npriority = -5\n")
        self.successResultOf(bot.startService())
        names = [type(p).__name__ for p in bot.dispatcher.chain]
        self.assertEqual(names[:2], ["Echo", "Shout"])
        self.assertEqual(sorted(names), ["Echo", "Greet", "Recorder", "Shout"])

    def test_shutdown_called(self):
        """Stopping the bot calls every processor's shutdown()."""
        bot = self.bot("[bot]\nnoload = broken\n")
        self.successResultOf(bot.startService())
        calls = []
        for processor in bot.plugins.processors():
            processor.shutdown = lambda p=processor: calls.append(type(p).__name__)
        self.successResultOf(bot.stopService())
        self.assertEqual(sorted(calls), ["Echo", "Greet", "Recorder", "Shout"])

    def test_fatal_processor(self):
        """A processor raising SystemExit makes the bot exit with code 1, saying why."""
        bot = self.bot("[bot]\nnoload = broken\n[source:one]\ntype = fake\n")
        self.successResultOf(bot.startService())

        class Dies(Processor):
            @match("die")
            def die(self, event):
                raise SystemExit(0)

        bot.dispatcher.set_chain([*bot.plugins.processors(), Dies("dies", bot.context)])
        bot.get_source("one").dispatch(message("die"))
        self.assertEqual(bot.exit_code, 1)
        self.assertIn("a processor asked the bot to exit: SystemExit: 0", self.logged_texts())
        self.flushLoggedErrors(SystemExit)


class DrainTests(BotTestCase):
    """Stopping waits for events in flight."""

    def test_stop_waits_for_events(self):
        """The bot stops only after in-flight events finish; sources stop after that."""
        pool = ManualThreadPool()
        bot = self.bot("[bot]\nnoload = broken\n[source:one]\ntype = fake\n", pool)
        started = bot.startService()
        pool.run_all()
        self.successResultOf(started)
        source = bot.get_source("one")
        source.dispatch(message("hello"))
        stopped = bot.stopService()
        self.assertNoResult(stopped)
        self.assertTrue(source.running)
        pool.run_all()
        self.successResultOf(stopped)
        self.assertEqual([r.text for r in source.sent], ["hi"])
        self.assertFalse(source.running)


class Noter(Processor):
    """Stores 'note X' and answers 'noted X' (writes to the database)."""

    @match("note {any}")
    def note(self, event, text):
        PluginStore(event.session, "noter").set(text, 1)
        event.addresponse(f"noted {text}")


class ShutdownTests(BotTestCase):
    """Stopping within shutdown_timeout, and no committed change without its reply
    (issue 12, item 12), on the clock and a hand-run pool."""

    def start(self, timeout=10):
        self.pool = ManualThreadPool()
        bot = self.bot(
            f"[bot]\nnoload = broken\nshutdown_timeout = {timeout}\n[source:one]\ntype = fake\n",
            self.pool,
        )
        started = bot.startService()
        self.pool.run_all()
        self.successResultOf(started)
        bot.dispatcher.set_chain([*bot.dispatcher.chain, Noter("noter", bot.context)])
        return bot, bot.get_source("one")

    def notes(self, bot):
        with bot.databases["main"].session_factory() as session:
            return set(session.scalars(select(PluginData.key).where(PluginData.plugin == "noter")))

    def test_stops_within_the_timeout(self):
        """Events that never finish: the bot has stopped shutdown_timeout (plus the
        processors' short grace for the final state) after it was asked, not three
        times that."""
        bot, source = self.start(timeout=10)
        for n in range(3):
            source.dispatch(message(f"note {n}", "one"))
        stopped = bot.stopService()
        self.reactor.advance(10)
        self.assertFalse(source.running)
        self.reactor.advance(Bot.FINAL_GRACE)
        self.successResultOf(stopped)
        self.assertEqual(bot.state, Lifecycle.STOPPED)

    def test_no_commit_without_reply(self):
        """An event that finished before the sources closed got its reply; one still
        running when they closed commits nothing (its reply could not be sent); those
        still waiting for a worker are not run at all."""
        bot, source = self.start(timeout=10)
        channels = []
        for n in range(3):
            event = message(f"note {n}", "one")
            event.channel = f"#c{n}"
            channels.append(source.dispatch(event))
        stopped = bot.stopService()
        self.pool.run(0)  # note 0 finishes in time
        self.reactor.advance(10)  # time is up: the sources close
        self.assertFalse(source.running)
        self.pool.run_all()  # note 1 and 2 finish too late
        self.reactor.advance(Bot.FINAL_GRACE)
        self.successResultOf(stopped)
        self.assertEqual([r.text for r in source.sent], ["noted 0"])
        self.assertEqual(self.notes(bot), {"0"})


class ReloadTests(BotTestCase):
    """reload_config."""

    def test_invalid_keeps_old(self):
        """An invalid file is refused with every error; the running config stays."""
        bot = self.bot("[bot]\nnoload = broken\n[plugin:greet]\ngreeting = hey\n")
        self.successResultOf(bot.startService())
        old = bot.config
        greet = self.processor(bot, "greet")
        self.write("[plugin:greet]\ngreeting = yo\ntimes = none\n[plugin:karma]\n")
        errors = bot.reload_config()
        self.assertEqual(len(errors), 2)
        self.assertIn("[plugin:greet] times: expected an integer, found 'none'", errors[0])
        self.assertIn("[plugin:karma]", errors[1])
        self.assertIs(bot.config, old)
        self.assertEqual((greet.greeting, greet.setups), ("hey", 1))

    def test_valid_applied(self):
        """A valid file is applied: processors and sources get their new sections and are
        set up again."""
        bot = self.bot("[bot]\nnoload = broken\n[source:one]\ntype = fake\n")
        self.successResultOf(bot.startService())
        greet = self.processor(bot, "greet")
        source = bot.get_source("one")
        self.write(
            "[bot]\nnoload = broken\n[source:one]\ntype = fake\nport = 9\n"
            "[plugin:greet]\ngreeting = yo\ntimes = 2\n"
        )
        self.assertEqual(bot.reload_config(), [])
        self.assertEqual((greet.greeting, greet.times, greet.setups), ("yo", 2, 2))
        self.assertEqual((source.port, source.setups), (9, 2))
        source.dispatch(message("hello"))
        self.assertEqual([r.text for r in source.sent], ["yo", "yo"])

    def test_unchanged_sections_left_alone(self):
        """Only processors and sources whose sections changed are set up again."""
        bot = self.bot(
            "[bot]\nnoload = broken\n[source:one]\ntype = fake\n[plugin:greet]\ngreeting = hey\n"
        )
        self.successResultOf(bot.startService())
        greet = self.processor(bot, "greet")
        source = bot.get_source("one")
        self.write(
            "[bot]\nnoload = broken\n[source:one]\ntype = fake\nport = 9\n"
            "[plugin:greet]\ngreeting = hey\n"
        )
        self.assertEqual(bot.reload_config(), [])
        self.assertEqual((greet.setups, source.setups), (1, 2))
        self.write(
            "[bot]\nnoload = broken\n[source:one]\ntype = fake\nport = 9\n"
            "[plugin:greet]\ngreeting = yo\n"
        )
        self.assertEqual(bot.reload_config(), [])
        self.assertEqual((greet.greeting, greet.setups, source.setups), ("yo", 2, 2))

    def test_overrides_reapplied(self):
        """addressed/priority/processed changes apply on reload (and the chain is re-sorted);
        removing an override restores the processor's own setting."""
        bot = self.bot("[bot]\nnoload = broken\n[plugin:echo]\naddressed = no\n")
        self.successResultOf(bot.startService())
        echo = bot.plugins.loaded["echo"][0]
        self.assertFalse(echo.addressed)
        self.write("[bot]\nnoload = broken\n[plugin:greet]\npriority = -50\n")
        self.assertEqual(bot.reload_config(), [])
        self.assertTrue(echo.addressed)
        self.assertEqual(type(bot.dispatcher.chain.processors[0]).__name__, "Greet")

    def test_local_file_looked_for_again(self):
        """A bot.local.ini added after the start is read by the reload; one removed since
        is no longer required."""
        bot = self.bot("[bot]\nnoload = broken\n")
        self.successResultOf(bot.startService())
        local = self.folder / "bot.local.ini"
        local.write_text("[plugin:greet]\ngreeting = local\n")
        self.assertEqual(bot.reload_config(), [])
        self.assertEqual(self.processor(bot, "greet").greeting, "local")
        local.unlink()
        self.assertEqual(bot.reload_config(), [])
        self.assertEqual(self.processor(bot, "greet").greeting, "hi")

    def test_explicit_local_kept(self):
        """An override file named at start (local=) is read again by the reload."""
        other = self.folder / "override.ini"
        other.write_text("[plugin:greet]\ngreeting = other\n")
        reloader = Reloader(plugin_package=PLUGINS, source_package=SOURCES)
        config = read_config(
            self.write("[bot]\nnoload = broken\n"), local=other, environ={}, reloader=reloader
        )
        bot = Bot(
            config, reactor=InlineReactor(), threadpool=InlineThreadPool(), reloader=reloader
        )
        self.addCleanup(self.stop, bot)
        self.successResultOf(bot.startService())
        other.write_text("[plugin:greet]\ngreeting = changed\n")
        self.assertEqual(bot.reload_config(), [])
        self.assertEqual(self.processor(bot, "greet").greeting, "changed")

    def test_auth_reloaded(self):
        """Permissions come from the new [auth] section."""
        bot = self.bot("[bot]\nnoload = broken\n")
        self.successResultOf(bot.startService())
        self.assertFalse(bot.auth.authorise(message("x"), "admin"))
        self.write("[bot]\nnoload = broken\n[auth]\npermissions = +admin\n")
        self.assertEqual(bot.reload_config(), [])
        self.assertTrue(bot.auth.authorise(message("x"), "admin"))


class ContextTests(BotTestCase):
    """What plugins reach through the bot."""

    def test_context_provides_interface(self):
        """The context plugins and sources are given provides IBotContext, and only that:
        none of the administrative operations."""
        bot = self.bot("[source:one]\ntype = fake\n")
        self.assertTrue(verifyObject(IBotContext, bot.context))
        self.assertFalse(IBotControl.providedBy(bot.context))
        for name in ("plugins", "reload_config", "load_source", "stop"):
            self.assertFalse(hasattr(bot.context, name), name)

    def test_bot_provides_control(self):
        """The bot itself provides IBotControl (for the admin plugins)."""
        bot = self.bot("[source:one]\ntype = fake\n")
        self.assertTrue(verifyObject(IBotControl, bot))

    def test_processors_get_context(self):
        """The fixture plugins' processors (none asks for control) are given the bot's
        context, whatever the plugin."""
        bot = self.bot("[bot]\nnoload = broken\n")
        self.successResultOf(bot.startService())
        processors = bot.plugins.processors()
        self.assertEqual(len(processors), 4)
        for processor in processors:
            self.assertIs(processor.bot, bot.context, processor)

    def test_context_reads_through(self):
        """The context reads through to the bot: a reloaded config's names are seen."""
        bot = self.bot("[bot]\nname = robo\nnoload = broken\n")
        self.successResultOf(bot.startService())
        self.write("[bot]\nname = robbie\nnoload = broken\n")
        self.assertEqual(bot.reload_config(), [])
        self.assertEqual((bot.context.name, bot.context.config), ("robbie", bot.config))

    def test_names(self):
        """The bot's name and other names come from [bot]."""
        bot = self.bot("[bot]\nname = robo\nnames = rob, r2\n")
        self.assertEqual((bot.name, bot.names), ("robo", ["robo", "rob", "r2"]))

    def test_source_permissions(self):
        """A source's permissions come from its section."""
        bot = self.bot("[source:one]\ntype = fake\npermissions = +op\n")
        self.assertTrue(bot.auth.authorise(message("x"), "op"))
        self.assertFalse(bot.auth.authorise(message("x", source="two"), "op"))

    def test_dispatch_sends_each_reply_once(self):
        """bot.dispatch (publishing an event) sends every reply, to the event's own
        source and to others, once each and in order."""

        class Relay(Processor):
            @match("relay")
            def relay(self, event):
                event.addresponse("here")
                event.addresponse("there", source="two", target="#d")

        bot = self.bot(
            "[bot]\nnoload = broken\n[source:one]\ntype = fake\n[source:two]\ntype = fake\n"
        )
        self.successResultOf(bot.startService())
        bot.dispatcher.set_chain([*bot.dispatcher.chain, Relay("relay", bot.context)])
        event = self.successResultOf(bot.dispatch(message("relay")))
        self.assertEqual([r.text for r in event.responses], ["here", "there"])
        self.assertEqual([r.text for r in bot.get_source("one").sent], ["here"])
        self.assertEqual([r.text for r in bot.get_source("two").sent], ["there"])

    def test_lifecycle_replies_sent_once(self):
        """A reply to a lifecycle event is sent once."""

        class Announce(Processor):
            event_types = (EventType.LIFECYCLE,)
            addressed = False

            def process(self, event):
                event.addresponse(event.data["state"], source="one", target="#log")

        bot = self.bot("[bot]\nnoload = broken\n[source:one]\ntype = fake\n")
        self.successResultOf(bot.startService())
        bot.dispatcher.set_chain([*bot.dispatcher.chain, Announce("announce", bot.context)])
        self.successResultOf(bot.stopService())
        self.assertEqual([r.text for r in bot.get_source("one").sent], ["stopping", "stopped"])

    def test_call_later(self):
        """bot.call_later runs through the dispatcher on the bot's clock."""
        bot = self.bot("[bot]\nnoload = broken\n[source:one]\ntype = fake\n")
        self.successResultOf(bot.startService())
        bot.call_later(3, lambda event: event.addresponse("later"), message("x"))
        self.reactor.advance(3)
        self.assertEqual([r.text for r in bot.get_source("one").sent], ["later"])
        self.assertEqual(bot.seconds(), 3)
