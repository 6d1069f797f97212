"""Tests for botcore.testing: the PluginTestCase harness plugin authors write their tests
with, and the in-memory source it talks through."""

from __future__ import annotations

import re
from pathlib import Path

from twisted.internet.task import Clock
from twisted.trial.reporter import TestResult
from twisted.trial.unittest import SynchronousTestCase

from botcore.config import ConfigErrors
from botcore.event import Event, EventType, Lifecycle, Response, Sender
from botcore.processor import Processor, match
from botcore.testing import (
    InlineReactor,
    InlineThreadPool,
    MemorySource,
    PluginTestCase,
    StubContext,
    backend_variants,
)


class Later(Processor):
    """Replies after a delay; 'forget' schedules a call that is never due in the test."""

    @match("later")
    def later(self, event: Event) -> None:
        self.bot.call_later(10, lambda e: e.addresponse("finally"), event)
        event.processed = True

    @match("twice")
    def twice(self, event: Event) -> None:
        event.addresponse("once")
        event.addresponse("twice")

    @match("relay")
    def relay(self, event: Event) -> None:
        event.addresponse("here")
        event.addresponse("there", source="other", target="#x")

    @match("ack")
    def ack(self, event: Event) -> None:
        event.addresponse(True)


def run_case(case_class: type[PluginTestCase], method: str = "test_it") -> TestResult:
    """Run one test of a PluginTestCase subclass and return its result."""
    result = TestResult()
    case_class(method).run(result)
    return result


class Operator(Processor):
    """Asks for the administrative interface (as the admin plugin's processors do)."""

    control = True


class SetUpTests(PluginTestCase):
    """What setUp builds."""

    extra_processors = (Later, Operator)

    def test_running_bot(self):
        """A real bot is running with the core and the requested plugins loaded."""
        self.assertEqual(self.bot.state, Lifecycle.RUNNING)
        self.assertEqual(set(self.bot.plugins.loaded), {"core", "basic", "testing"})
        names = {type(p).__name__ for p in self.bot.dispatcher.chain}
        self.assertTrue({"Strip", "Addressed", "Complain", "Format", "Ping", "Later"} <= names)

    def test_clock_and_pool(self):
        """The bot runs on an InlineReactor clock and an InlineThreadPool."""
        self.assertIsInstance(self.clock, InlineReactor)
        self.assertIs(self.bot.reactor, self.clock)
        self.assertIsInstance(self.bot.dispatcher.threadpool, InlineThreadPool)

    def test_fresh_database(self):
        """Each test has its own SQLite database file in its temporary folder."""
        url = self.bot.databases["main"].resolved_url()
        self.assertTrue(url.startswith("sqlite:///"), url)
        path = Path(url.removeprefix("sqlite:///"))
        self.assertEqual(path.parent, self.directory.absolute())
        self.assertTrue(path.exists())

    def test_source(self):
        """The in-memory source is registered as 'test' and its nick is the bot's name."""
        self.assertIs(self.bot.get_source("test"), self.source)
        self.assertEqual(self.source.nick, self.bot.name)
        self.assertEqual(self.source.supports, frozenset({"action", "notice", "multiline"}))
        self.assertEqual(self.source.state, "connected")
        self.assertIs(self.source.bot, self.bot.context)

    def test_extra_processors_bot(self):
        """extra_processors get the bot a loaded plugin's would: the bot's context, or the
        bot itself for one that asks for control."""
        self.assertIs(self.processor(Later).bot, self.bot.context)
        self.assertIs(self.processor(Operator).bot, self.bot)

    def test_config_file(self):
        """The configuration was written to an INI file and read back the real way."""
        self.assertEqual(self.bot.config.path, (self.directory / "bot.ini").absolute())
        self.assertEqual(self.bot.config.section("bot")["autoload"], False)

    def test_processor_lookup(self):
        """processor() finds a loaded processor by class or class name."""
        self.assertEqual(type(self.processor("Ping")).__name__, "Ping")
        self.assertIsInstance(self.processor(Later), Later)
        self.assertRaises(LookupError, self.processor, "Nope")


class NoCoreTests(PluginTestCase):
    """load_core = False leaves the core processors out."""

    load_core = False

    def test_without_core(self):
        """Only the requested plugin is loaded: unknown commands draw no complaint."""
        self.assertEqual(set(self.bot.plugins.loaded), {"basic"})
        self.assertResponseMatches("ping", "pong")
        self.assertFails("gibberish")
        self.assertNoResponse("gibberish")


class ConfigTests(PluginTestCase):
    """plugin_config sets any section, with values converted to INI text."""

    plugin_config = {
        "bot": {"name": "robbie", "names": ["rob", "bobby"]},
        "plugin:core": {"nonsense": ["Eh, what?"], "limit_messages": 7},
        "auth": {"permissions": "+sing"},
        "source:test": {"permissions": "+dance"},
    }

    def test_values(self):
        """Lists, numbers and strings reach the parsed configuration."""
        self.assertEqual(self.bot.name, "robbie")
        self.assertEqual(self.bot.names, ["robbie", "rob", "bobby"])
        self.assertEqual(self.source.nick, "robbie")
        self.assertEqual(self.processor("RateLimit").limit_messages, 7)
        self.assertEqual(self.responses("gibberish"), ["Eh, what?"])

    def test_permissions(self):
        """[auth] and the test source's permissions are what the bot checks."""
        event = self.make_event("x")
        self.assertTrue(self.bot.auth.authorise(event, "sing"))
        self.assertTrue(self.bot.auth.authorise(event, "dance"))
        self.assertFalse(self.bot.auth.authorise(event, "fly"))

    def test_public_name(self):
        """In public the configured names address the bot."""
        self.assertResponseMatches("bobby: ping", "^user: pong$", public=True)


class HarnessFailureTests(SynchronousTestCase):
    """Problems building the bot are reported clearly."""

    def test_bad_config(self):
        """Options are validated the real way: a bad value fails setUp with ConfigErrors."""

        class BadConfig(PluginTestCase):
            plugin_config = {"plugin:core": {"limit_messages": "lots"}}

            def test_it(self):
                pass

        case = BadConfig("test_it")
        error = self.assertRaises(ConfigErrors, case.setUp)
        self.assertIn("limit_messages", str(error))
        self.assertIn("expected an integer", str(error))

    def test_unknown_plugin(self):
        """A plugin that cannot be loaded fails the test, naming the plugin."""

        class UnknownPlugin(PluginTestCase):
            load = ["nosuchplugin"]

            def test_it(self):
                pass

        result = run_case(UnknownPlugin)
        self.assertEqual(len(result.failures), 1)
        self.assertIn("nosuchplugin", str(result.failures[0][1].value))


class ConversationTests(PluginTestCase):
    """make_event, say and the assertions."""

    extra_processors = (Later,)

    def test_private_event(self):
        """Private events come from 'user', in their own conversation, addressed."""
        event = self.make_event("hello")
        self.assertEqual(event.source, "test")
        self.assertEqual(event.type, EventType.MESSAGE)
        self.assertEqual(event.sender, Sender("test:user", "user", "user"))
        self.assertEqual(event.channel, "user")
        self.assertFalse(event.public)
        self.assertIs(event.addressed, True)
        self.assertEqual(event.message.raw, "hello")

    def test_public_event(self):
        """Public events are in #test and left for the Addressed processor."""
        event = self.make_event("hello", public=True, sender="alice")
        self.assertEqual((event.channel, event.public, event.addressed), ("#test", True, False))
        self.assertEqual(event.sender.nick, "alice")

    def test_event_fields(self):
        """Other keywords set event fields; the time is the clock's."""
        self.clock.advance(100)
        event = self.make_event("hi", type=EventType.ACTION, authenticated=True, channel="#x")
        self.assertEqual((event.type, event.authenticated, event.channel), ("action", True, "#x"))
        self.assertEqual(event.time.timestamp(), 100)

    def test_public_needs_name(self):
        """In public only messages naming the bot are addressed and answered."""
        self.assertNoResponse("ping", public=True)
        self.assertResponseMatches("botcore: ping", "^user: pong$", public=True)
        self.assertResponseMatches("ping", "^user: pong$", public=True, addressed=True)

    def test_say(self):
        """say() returns the processed event and keeps the replies it drew."""
        event = self.say("ping")
        self.assertTrue(event.processed)
        self.assertEqual([r.text for r in self.replies], ["pong"])
        self.assertIsInstance(self.replies[0], Response)

    def test_responses(self):
        """responses() lists the reply texts in order."""
        self.assertEqual(self.responses("twice"), ["once", "twice"])
        self.assertEqual(self.responses("echo a"), ["a"])

    def test_say_event(self):
        """A ready-made event can be said too."""
        self.assertEqual(self.responses(self.make_event("ping", sender="bob")), ["pong"])

    def test_response_matches(self):
        """assertResponseMatches searches each reply and all of them joined."""
        found = self.assertResponseMatches("ping", "on")
        self.assertEqual(found.group(0), "on")
        self.assertResponseMatches("twice", "^twice$")
        self.assertResponseMatches("twice", "once\ntwice")
        self.assertResponseMatches("ping", "PONG", flags=re.I)
        self.assertResponseMatches("ping", re.compile("^p"))

    def test_response_matches_fails(self):
        """assertResponseMatches fails when nothing matches, saying what was replied."""
        error = self.assertRaises(
            self.failureException, self.assertResponseMatches, "ping", "PONG"
        )
        self.assertIn("'pong'", str(error))
        self.assertRaises(
            self.failureException, self.assertResponseMatches, "ping", "x", public=True
        )

    def test_no_response(self):
        """assertNoResponse passes on silence and fails on a reply."""
        self.assertNoResponse("chatter", public=True)
        self.assertRaises(self.failureException, self.assertNoResponse, "ping")

    def test_succeeds(self):
        """assertSucceeds needs a handled event without complaint."""
        self.assertSucceeds("ping")
        self.assertRaises(self.failureException, self.assertSucceeds, "gibberish")
        self.assertRaises(self.failureException, self.assertSucceeds, "ping", public=True)

    def test_fails(self):
        """assertFails needs a complaint or an unhandled event."""
        event = self.assertFails("gibberish")
        self.assertEqual(event.complain, "nonsense")
        self.assertFails("ping", public=True)
        self.assertRaises(self.failureException, self.assertFails, "ping")

    def test_replies_routed_by_the_dispatcher(self):
        """Replies reach the test source through the dispatcher like any other source's:
        one for a second source of the bot goes there, once; ``replies`` holds only the
        test source's."""
        other = MemorySource("other", self.bot.context)
        other.setServiceParent(self.bot.sources)
        self.assertEqual(self.responses("relay"), ["here"])
        self.assertEqual([r.text for r in other.sent], ["there"])

    def test_acknowledgement_worded(self):
        """A True reply reaches the test source as one of the core's words."""
        from botcore.plugins.core import Address

        (reply,) = self.responses("ack")
        self.assertIn(reply, Address.acknowledgements.default)
        self.assertIsInstance(self.replies[0].text, str)

    def test_advance(self):
        """advance() moves the clock and returns the delayed replies it delivered."""
        self.assertNoResponse("later")
        self.assertEqual(self.advance(9), [])
        self.assertEqual(self.advance(1), ["finally"])
        self.assertEqual(self.clock.seconds(), 10)

    def test_delayed_public(self):
        """Delayed replies in public go through the post-processors."""
        self.assertNoResponse("botcore: later", public=True)
        self.assertEqual(self.advance(10), ["user: finally"])


class RateLimitDefaultTests(PluginTestCase):
    """Rate limiting is off in the harness unless asked for."""

    def test_off(self):
        """Many quick messages are all answered."""
        for _ in range(20):
            self.assertResponseMatches("ping", "pong")


class RateLimitOnTests(PluginTestCase):
    """rate_limit = True keeps the core's default limit (5 in 10 seconds)."""

    rate_limit = True

    def test_on(self):
        """The sixth quick message is not answered (its sender is told of the limit,
        once); the seventh gets nothing."""
        for _ in range(5):
            self.assertResponseMatches("ping", "pong")
        self.assertResponseMatches("ping", "^You're talking to me too fast")
        self.assertNoResponse("ping")


class LimitedSourceTests(PluginTestCase):
    """source_supports and source_truncation shape the test source."""

    source_supports = ()
    source_truncation = 10

    def test_source(self):
        """The source has what the class says, and replies are formatted for it."""
        self.assertEqual(self.source.supports, frozenset())
        self.assertEqual(self.source.truncation_point(), 10)
        self.assertEqual(self.responses("echo 0123456789abc"), ["0123456\N{HORIZONTAL ELLIPSIS}"])


class Tally(Processor):
    """Counts 'count' messages in the database (state that outlives the bot)."""

    @match("count")
    def count(self, event):
        from botcore.db.storage import PluginStore

        store = PluginStore(event.session, "testing")
        store.set("count", store.get("count", 0) + 1)
        event.addresponse(str(store.get("count")))


class RestartTests(PluginTestCase):
    """restart(): a new bot on the same configuration, database and clock."""

    extra_processors = (Tally,)

    def test_restart(self):
        """The new bot and test source replace the old ones, running on the same clock;
        what was stored is still there."""
        self.assertEqual(self.responses("count"), ["1"])
        old_bot, old_source = self.bot, self.source
        self.clock.advance(60)
        self.restart()
        self.assertEqual(old_bot.state, Lifecycle.STOPPED)
        self.assertIsNot(self.bot, old_bot)
        self.assertIsNot(self.source, old_source)
        self.assertIs(self.bot.reactor, self.clock)
        self.assertEqual(self.bot.state, Lifecycle.RUNNING)
        self.assertEqual(self.responses("count"), ["2"])


class TearDownTests(SynchronousTestCase):
    """tearDown stops the bot cleanly."""

    def test_stopped_and_clean(self):
        """After a test the bot is stopped and nothing is left on the clock, neither the
        bot's pending calls nor the test's own."""
        seen = {}

        class Leaky(PluginTestCase):
            extra_processors = (Later,)

            def test_it(self):
                self.say("later")
                self.clock.callLater(100, lambda: None)
                seen.update(bot=self.bot, clock=self.clock)
                assert len(self.clock.getDelayedCalls()) == 2

        result = run_case(Leaky)
        self.assertTrue(result.wasSuccessful(), result.errors + result.failures)
        self.assertEqual(seen["bot"].state, Lifecycle.STOPPED)
        self.assertFalse(seen["bot"].running)
        self.assertEqual(seen["clock"].getDelayedCalls(), [])


class MemorySourceTests(SynchronousTestCase):
    """The in-memory source."""

    def setUp(self):
        self.context = StubContext(reactor=Clock(), name="robbie")

    def test_records(self):
        """send() records replies instead of sending them."""
        source = MemorySource("mem", self.context)
        source.send(Response("hi"))
        self.assertEqual(source.sent, [Response("hi")])

    def test_defaults(self):
        """Its nick is its bot's name; by default it has no truncation point."""
        source = MemorySource("mem", self.context)
        self.assertEqual((source.name, source.nick, source.bot), ("mem", "robbie", self.context))
        self.assertIsNone(source.truncation_point(Response("x")))

    def test_options(self):
        """supports and truncation can be given."""
        source = MemorySource("mem", self.context, supports=["action"], truncation=400)
        self.assertEqual(source.supports, frozenset({"action"}))
        self.assertEqual(source.truncation_point(), 400)


class StoreOnce(Processor):
    """Stores and reads back a value (a processor that needs the database)."""

    @match(r"store {word}")
    def store(self, event, value):
        from botcore.db.storage import PluginStore

        store = PluginStore(event.session, "testing")
        store.set("value", value)
        event.addresponse(f"stored {store.get('value')} on {event.session.bind.dialect.name}")


class BackendTests(PluginTestCase):
    """PluginTestCase's ``backend``: the test bot's database on SQLite, PostgreSQL or
    MariaDB (variants below), fresh and migrated for each test."""

    load = []
    extra_processors = [StoreOnce]

    def test_database(self):
        """The bot reads and writes a database of the class's backend."""
        dialect = {"sqlite": "sqlite", "postgresql": "postgresql", "mysql": "mysql"}
        self.assertResponseMatches("store x", rf"^stored x on {dialect[self.backend]}$")


backend_variants(BackendTests, globals())
