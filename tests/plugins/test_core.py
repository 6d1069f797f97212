"""Tests for the core processors: message variants, addressing, ignoring, rate limiting,
complaints, addressing replies and formatting them for the destination source."""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import func, select, table
from twisted.internet.task import Clock
from twisted.logger import Logger, globalLogPublisher
from twisted.trial.unittest import SynchronousTestCase

from botcore.accounts.models import Identity
from botcore.event import Event, EventType, Message, Response, Sender
from botcore.options import LinesOption
from botcore.plugins.core import (
    ELLIPSIS,
    Address,
    Addressed,
    Complain,
    Format,
    Ignore,
    RateLimit,
    Strip,
    split_to_fit,
    truncate,
)
from botcore.processor import Processor, authorise, match, periodic
from botcore.testing import MemorySource, PluginTestCase, StubContext

ACKNOWLEDGEMENTS = Address.acknowledgements.default
REFUSALS = Address.refusals.default


def phrases(options: list[str]) -> str:
    """A regex matching exactly one of ``options`` (after an optional ``nick: ``)."""
    return r"^(?:\w+: )?(?:" + "|".join(re.escape(o) for o in options) + r")$"


# -- processors used by the conversations below ----------------------------------------


class Boom(Processor):
    """Fails on 'boom'."""

    @match("boom")
    def boom(self, event: Event) -> None:
        raise ZeroDivisionError("boom")


class Secret(Processor):
    """Needs the 'admin' permission."""

    @match("secret")
    @authorise(permission="admin")
    def secret(self, event: Event) -> None:
        event.addresponse("the secret is 42")


class Fetch(Processor):
    """Complains about the network, or answers 'partly' and then fails."""

    @match("fetch")
    def fetch(self, event: Event) -> None:
        event.complain = "network"

    @match("answered")
    def answered(self, event: Event) -> None:
        event.addresponse("an answer")
        event.complain = "network"

    @match("partly")
    def partly(self, event: Event) -> None:
        event.addresponse("half an answer")
        raise ValueError("the other half")

    @match("odd")
    def odd(self, event: Event) -> None:
        event.complain = "nosuchkind"

    @match("quietly")
    def quietly(self, event: Event) -> None:
        event.processed = True


class Fuse(Processor):
    """Delayed work that fails ('fuse') or says nothing ('nap'); a passive listener that
    fails on 'kaboom' even when the bot is not addressed."""

    @match("fuse")
    def fuse(self, event: Event) -> None:
        self.bot.call_later(1, self.explode, event)
        event.processed = True

    def explode(self, event: Event) -> None:
        raise RuntimeError("bang")

    @match("nap")
    def nap(self, event: Event) -> None:
        self.bot.call_later(1, lambda delayed: None, event)
        event.processed = True


class Listener(Processor):
    """Listens to everything said in a channel, and fails on 'kaboom'."""

    addressed = False

    @match(".*kaboom.*", simple=False)
    def kaboom(self, event: Event) -> None:
        raise RuntimeError("kaboom")


class Replies(Processor):
    """Replies of every shape Address and Format handle."""

    @match("yes")
    def yes(self, event: Event) -> None:
        event.addresponse(True)

    @match("no")
    def no(self, event: Event) -> None:
        event.addresponse(False)

    @match("wave")
    def wave(self, event: Event) -> None:
        event.addresponse("waves", action=True)

    @match("whisper")
    def whisper(self, event: Event) -> None:
        event.addresponse("psst", notice=True)

    @match("plain")
    def plain(self, event: Event) -> None:
        event.addresponse("as is", address=False)

    @match("elsewhere")
    def elsewhere(self, event: Event) -> None:
        event.addresponse("over here", target="#other")

    @match("lines")
    def lines(self, event: Event) -> None:
        event.addresponse("one\ntwo\n\tthree")

    @match("split")
    def split(self, event: Event) -> None:
        event.addresponse("one\ntwo\n\nthree", conflate=False)

    @match("euros {digits}")
    def euros(self, event: Event, count: str) -> None:
        event.addresponse("\N{EURO SIGN}" * int(count))

    @match("later")
    def later(self, event: Event) -> None:
        self.bot.call_later(5, self.reply_later, event)
        event.processed = True

    def reply_later(self, event: Event) -> None:
        event.addresponse("done, later")

    @match("yes later")
    def yes_later(self, event: Event) -> None:
        self.bot.call_later(5, lambda delayed: delayed.addresponse(True), event)
        event.processed = True


class Ticker(Processor):
    """Every minute, an action in #test."""

    @periodic(interval=60)
    def tick(self, event: Event) -> None:
        event.addresponse("ticks", source="test", target="#test", action=True)


class Acker(Processor):
    """Every minute, an acknowledgement in #test."""

    @periodic(interval=60)
    def tick(self, event: Event) -> None:
        event.addresponse(True, source="test", target="#test")


# -- Strip ----------------------------------------------------------------------------


class StripTests(SynchronousTestCase):
    """Strip fills in the message variants."""

    def stripped_message(self, text: str) -> Message:
        event = Event(source="s", type=EventType.MESSAGE, message=text)
        processor = Strip("core", StubContext(reactor=Clock()))
        self.assertTrue(processor.accepts(event))
        processor.process(event)
        return event.message

    def test_surrounding_space_and_punctuation(self):
        """stripped and clean lose surrounding space and trailing ?, ! and . ; raw and
        deaddressed keep the text as it arrived."""
        message = self.stripped_message("  what time is it ?!. ")
        self.assertEqual(message.stripped, "what time is it")
        self.assertEqual(message.clean, "what time is it")
        self.assertEqual(message.raw, "  what time is it ?!. ")
        self.assertEqual(message.deaddressed, "  what time is it ?!. ")

    def test_inner_punctuation_kept(self):
        """Only trailing punctuation goes: 'e.g. this?!' keeps its inner dots."""
        self.assertEqual(self.stripped_message("e.g. this?!").stripped, "e.g. this")

    def test_only_punctuation(self):
        """A message of punctuation alone strips to nothing."""
        self.assertEqual(self.stripped_message(" ?!? ").clean, "")

    def test_text_types_only(self):
        """Strip handles messages, actions and notices, not other event types."""
        processor = Strip("core", StubContext(reactor=Clock()))
        for kind in (EventType.MESSAGE, EventType.ACTION, EventType.NOTICE):
            self.assertTrue(processor.accepts(Event(source="s", type=kind, message="x")))
        for kind in (EventType.STATE, EventType.DELAYED, EventType.PERIODIC):
            self.assertFalse(processor.accepts(Event(source="s", type=kind, message="x")))

    def test_usage_and_features(self):
        """Every core processor documents its usage, features and options."""
        for cls in (Strip, Addressed, Ignore, RateLimit, Complain, Address, Format):
            self.assertTrue(cls.usage, cls)
            self.assertIn("core", cls.features)
            for option in cls.options().values():
                self.assertTrue(option.help, option)


# -- Addressed ------------------------------------------------------------------------


class AddressedTests(PluginTestCase):
    """Addressed recognises the ways people talk to the bot."""

    public = True
    plugin_config = {"bot": {"name": "test_ibid", "names": "bot, ant"}}

    def addressed(self, text: str, **kw) -> Event:
        event = self.make_event(text, **kw)
        for name in ("Strip", "Addressed"):
            processor = self.processor(name)
            if processor.accepts(event):
                processor.process(event)
        return event

    def assertAddressed(self, text: str, name: str, clean: str) -> None:
        event = self.addressed(text)
        self.assertEqual((event.addressed, event.message.clean), (name, clean), text)
        self.assertEqual(event.message.deaddressed.strip(), clean, text)

    def assertNotAddressed(self, text: str) -> None:
        event = self.addressed(text)
        self.assertFalse(event.addressed, text)
        self.assertEqual(event.message.deaddressed, text)

    def test_prefix_forms(self):
        """'bot: x', 'bot, x', 'bot x', 'bot:x' and 'bot -- x' address the bot."""
        self.assertAddressed("bot:  foo", "bot", "foo")
        self.assertAddressed("ant, foo", "ant", "foo")
        self.assertAddressed("test_ibid foo", "test_ibid", "foo")
        self.assertAddressed("bot:foo", "bot", "foo")
        self.assertAddressed("bot -- foo", "bot", "foo")

    def test_punctuation_forms(self):
        """'bot> x', 'bot! x', 'bot; x', 'bot -> x' address the bot too."""
        for separator in (">", "!", ";", " ->", "?", "."):
            self.assertAddressed(f"bot{separator} foo", "bot", "foo")

    def test_suffix_forms(self):
        """'x, bot' addresses the bot, whatever the space around the comma."""
        self.assertAddressed("foo, bot", "bot", "foo")
        self.assertAddressed("foo, \t ant", "ant", "foo")
        self.assertAddressed("foo ,\ttest_ibid", "test_ibid", "foo")
        self.assertAddressed("foo, bot?", "bot", "foo")

    def test_other_names_not_addressed(self):
        """Names that merely start like the bot's, or other people's, do not address it."""
        for text in ("botty: foo", "spinach, foo", "test-ibid foo", "bots foo"):
            self.assertNotAddressed(text)

    def test_sad_suffixes(self):
        """The name must follow a comma and end the message."""
        for text in ("foo. bot", "foo ant", "foo, notbot", "foo, please bot", "foo, bot now"):
            self.assertNotAddressed(text)

    def test_somebody_else_addressed(self):
        """'alice: x, bot' is for alice, not the bot."""
        self.assertNotAddressed("alice: have you met my friend, bot")

    def test_case_insensitive(self):
        """Names match whatever their case; event.addressed is the name as typed."""
        self.assertAddressed("BOT: foo", "BOT", "foo")

    def test_verbs_are_remarks(self):
        """'bot is cool' talks about the bot, not to it; with punctuation it is a command."""
        for text in ("bot is cool", "ant can't dance", "test_ibid was here", "bot is"):
            self.assertNotAddressed(text)
        self.assertAddressed("bot: is cool", "bot", "is cool")
        self.assertAddressed("bot island", "bot", "island")

    def test_deaddressed_keeps_punctuation(self):
        """deaddressed is the raw text without the name; clean is also stripped."""
        event = self.addressed("bot: what's up?")
        self.assertEqual(event.message.clean, "what's up")
        self.assertEqual(event.message.deaddressed, "what's up?")

    def test_source_nick(self):
        """The bot's current nick on the source is one of its names."""
        self.assertNotAddressed("robbie: foo")
        self.source.nick = "robbie"
        self.assertAddressed("robbie: foo", "robbie", "foo")
        self.assertAddressed("bot: foo", "bot", "foo")

    def test_private_always_addressed(self):
        """Private messages are addressed, and a leading name is still removed."""
        event = self.addressed("foo", public=False, addressed=False)
        self.assertIs(event.addressed, True)
        self.assertEqual(event.message.clean, "foo")
        event = self.addressed("bot: foo", public=False)
        self.assertEqual(event.message.clean, "foo")

    def test_only_text_events(self):
        """Other event types are left alone."""
        processor = self.processor("Addressed")
        for kind in (EventType.STATE, EventType.DELAYED, EventType.LIFECYCLE):
            self.assertFalse(processor.accepts(self.make_event("bot: foo", type=kind)))

    def test_conversation(self):
        """In a channel the bot answers what is addressed to it and nothing else."""
        self.assertResponseMatches("bot: ping", "^user: pong$")
        self.assertResponseMatches("ping, ant", "^user: pong$")
        self.assertResponseMatches("test_ibid ping", "^user: pong$")
        self.assertNoResponse("ping")
        self.assertNoResponse("bot is very quiet today")


class AddressedVerbsTests(PluginTestCase):
    """The verbs list is configurable."""

    public = True
    plugin_config = {"plugin:core": {"verbs": "likes"}}

    def test_configured_verbs(self):
        """Only the configured verbs make a remark."""
        self.assertNoResponse("botcore likes ping")
        self.assertResponseMatches("botcore is", phrases(Complain.nonsense.default))


# -- Identify -------------------------------------------------------------------------


class IdentifyTests(PluginTestCase):
    """The core identifies every sender, without the identity plugin."""

    load = ("basic",)

    def test_identity_created_and_account_found(self):
        """A new sender gets an identity row; a linked one also their account."""
        event = self.say("ping")
        self.assertIsNotNone(event.identity)
        self.assertIsNone(event.account)
        account = self.link_account("bob", ("test", "bob"))
        event = self.say("ping", sender="bob")
        self.assertEqual(event.account, account)
        self.assertFalse(event.authenticated)

    def test_vouched_for(self):
        """A sender the source vouches for is authenticated."""
        self.link_account("bob", ("test", "bob"))
        self.source.verified_identity = lambda event: event.sender.id
        self.assertTrue(self.say("ping", sender="bob").authenticated)

    def test_every_event_type(self):
        """State changes are identified too, not only messages."""
        event = self.say(self.make_event(None, type=EventType.STATE, data={"kind": "join"}))
        self.assertIsNotNone(event.identity)

    def test_id_too_long(self):
        """A sender whose id is too long to store stays anonymous, without an error."""
        long = "x" * 300
        event = self.say("ping", sender=Sender(long, long, long))
        self.assertIsNone(event.identity)
        self.assertEqual([str(reply.text) for reply in self.replies], ["pong"])

    def test_before_the_other_pre_processors(self):
        """Identify runs after Strip and before Ignore, Addressed and RateLimit."""
        order = [type(p).__name__ for p in self.bot.dispatcher.chain]
        core = [n for n in order if n in ("Strip", "Identify", "Ignore", "Addressed", "RateLimit")]
        self.assertEqual(core, ["Strip", "Identify", "Ignore", "Addressed", "RateLimit"])


class FirstSightingsTests(PluginTestCase):
    """A flood of strangers on one source creates a bounded number of identity rows
    (issue 12, item 10), through the real dispatcher, and is still answered."""

    load = ("basic", "seen")

    def count(self, model: Any) -> int:
        """Rows of ``model`` in the bot's database."""
        sessions = self.bot.databases["main"].session_factory
        assert sessions is not None
        with sessions() as session:
            return int(session.scalar(select(func.count()).select_from(model)) or 0)

    def flood(self, count: int, prefix: str = "stranger") -> list[Event]:
        """``count`` messages, each from a different new nick, all answered."""
        events = []
        for n in range(count):
            event = self.say("ping", sender=f"{prefix}{n}")
            self.assertEqual([str(reply.text) for reply in self.replies], ["pong"])
            events.append(event)
        return events

    def test_many_strangers_bounded_rows(self):
        """400 messages from 400 new nicks create at most 200 identities (and sightings);
        the rest are answered anonymously and counted."""
        warnings: list[str] = []

        def observe(event: dict) -> None:
            if "new senders" in str(event.get("log_format", "")):
                warnings.append(event["log_format"])

        globalLogPublisher.addObserver(observe)
        self.addCleanup(globalLogPublisher.removeObserver, observe)
        events = self.flood(400)
        self.assertEqual(self.count(Identity), 200)
        # By its table's name: another test module may have reloaded the seen plugin,
        # which leaves plugins.seen.Sighting as imported here no longer mapped.
        self.assertLessEqual(self.count(table("sightings")), 200)
        self.assertEqual(sum(e.identity is None for e in events), 200)
        identify = self.processor("Identify")
        self.assertEqual(identify.first_sightings.refused, {"test": 200})
        self.assertEqual(len(warnings), 1)  # logged once per window, not per stranger

    def test_known_senders_keep_identity(self):
        """During a flood a sender seen before is still identified; after the window a
        stranger gets an identity again."""
        known = self.say("ping", sender="alice").identity
        self.assertIsNotNone(known)
        self.flood(250)
        self.assertEqual(self.say("ping", sender="alice").identity, known)
        self.assertIsNone(self.say("ping", sender="late").identity)
        self.clock.advance(60)
        self.assertIsNotNone(self.say("ping", sender="late").identity)

    def test_other_source_unaffected(self):
        """The budget is per source: one flooded source leaves another's strangers alone."""
        self.flood(210)
        other = MemorySource("other", self.bot.context, {})
        other.setServiceParent(self.bot.sources)
        event = Event(
            source="other",
            type=EventType.MESSAGE,
            sender=Sender("other:bob", "bob", "bob"),
            channel="bob",
            addressed=True,
            message=Message("ping"),
        )
        self.assertIsNotNone(self.successResultOf(other.dispatch(event)).identity)


class FirstSightingsOffTests(PluginTestCase):
    """``new_identities = 0`` keeps an identity for every new sender."""

    load = ("basic",)
    plugin_config = {"plugin:core": {"new_identities": "0"}}

    def test_unbounded(self):
        """With no budget every stranger gets an identity."""
        for n in range(210):
            self.assertIsNotNone(self.say("ping", sender=f"s{n}").identity)


# -- Ignore ---------------------------------------------------------------------------


class IgnoreTests(PluginTestCase):
    """Ignore silences configured senders."""

    plugin_config = {"plugin:core": {"ignore": ["troll", "test:Spammer", "other:alice", "u-42"]}}

    def test_ignored_nick(self):
        """An ignored nick gets no answer, not even a complaint."""
        self.assertNoResponse("ping", sender="troll")
        event = self.assertNoResponse("gibberish", sender="troll")
        self.assertTrue(event.processed)
        self.assertIsNone(event.complain)

    def test_everyone_else_answered(self):
        """Other senders are answered as usual."""
        self.assertResponseMatches("ping", "^pong$", sender="alice")

    def test_nick_case_blind(self):
        """Nicks compare without regard to case."""
        self.assertNoResponse("ping", sender="TROLL")

    def test_per_source(self):
        """SOURCE:nick ignores the nick on that source only."""
        self.assertNoResponse("ping", sender="spammer")
        processor = self.processor("Ignore")
        event = self.make_event("ping", sender="alice")
        self.assertFalse(processor.ignored(event))
        event = Event(source="other", type=EventType.MESSAGE, sender=Sender("o", "a", "alice"))
        self.assertTrue(processor.ignored(event))

    def test_by_id(self):
        """A sender id works as well as a nick."""
        self.assertNoResponse("ping", sender=Sender("test:x", "u-42", "innocent"))

    def test_public(self):
        """Ignored senders are ignored in channels too."""
        self.assertNoResponse("botcore: ping", sender="troll", public=True)
        self.assertResponseMatches("botcore: ping", "^bob: pong$", sender="bob", public=True)


# -- RateLimit ------------------------------------------------------------------------


class RateLimitTests(PluginTestCase):
    """RateLimit drops what one sender says past the limit, on the bot's clock."""

    plugin_config = {"plugin:core": {"limit_messages": "3", "limit_time": "10"}}

    def setUp(self):
        super().setUp()
        self.logged: list[dict] = []
        self.processor("RateLimit").log = Logger(observer=self.logged.append)

    def test_limit(self):
        """Three messages in ten seconds are answered; the fourth is not, and its sender
        is told why, once: the fifth gets nothing at all."""
        for _ in range(3):
            self.assertResponseMatches("ping", "^pong$")
        self.assertEqual(
            self.responses("ping"),
            [
                "You're talking to me too fast (more than 3 messages in 10 seconds): "
                "I'll answer again in a moment"
            ],
        )
        self.assertTrue(self.say("ping").processed)
        event = self.assertNoResponse("ping")
        self.assertTrue(event.processed)
        self.assertIsNone(event.complain)

    def test_told_once_per_window(self):
        """The sender is told once per window, privately even when flooding a channel,
        and again only in a later window."""
        for _ in range(3):
            self.say("botcore: ping", public=True)
        told = []
        for _ in range(5):
            self.say("botcore: ping", public=True)
            told.append([(r.target, str(r.text)[:19]) for r in self.replies])
        self.assertEqual(told, [[("user", "You're talking to m")], [], [], [], []])
        self.advance(10)
        for _ in range(3):
            self.say("botcore: ping", public=True)
        self.say("botcore: ping", public=True)
        [warning] = self.replies
        self.assertEqual((warning.target, warning.source), ("user", "test"))
        self.assertIn("too fast", str(warning.text))

    def test_never_answers_a_notice(self):
        """Going over the limit with a notice is not answered (no reply loops)."""
        for _ in range(3):
            self.say("ping")
        self.assertNoResponse("ping", type=EventType.NOTICE)
        self.assertNoResponse("ping")

    def test_window_passes(self):
        """Once the window has passed the sender is answered again."""
        for _ in range(4):
            self.say("ping")
        self.advance(9.9)
        self.assertNoResponse("ping")
        self.advance(10)
        self.assertResponseMatches("ping", "^pong$")

    def test_per_sender(self):
        """One sender's flood does not silence another."""
        for _ in range(5):
            self.say("ping", sender="flooder")
        self.assertResponseMatches("ping", "^pong$", sender="calm")

    def test_spaced_out(self):
        """Messages spread over more than the window are all answered."""
        for _ in range(10):
            self.assertResponseMatches("ping", "^pong$")
            self.advance(4)

    def test_logged_once_per_window(self):
        """Going over the limit is logged once per window, not per message."""
        for _ in range(8):
            self.say("ping")
        self.assertEqual(len(self.logged), 1)
        self.assertIn("rate limit", self.logged[0]["log_format"])
        self.advance(10)
        for _ in range(5):
            self.say("ping")
        self.assertEqual(len(self.logged), 2)

    def test_unaddressed_not_counted(self):
        """Chatter in a channel that is not addressed to the bot does not count."""
        for _ in range(10):
            self.say("just chatting", public=True)
        self.assertResponseMatches("botcore: ping", "pong", public=True)

    def test_quiet_senders_forgotten(self):
        """Senders quiet for a whole window are forgotten, so memory does not grow."""
        for n in range(20):
            self.say("ping", sender=f"user{n}")
        self.advance(11)
        self.say("ping", sender="late")
        self.assertEqual(list(self.processor("RateLimit")._recent), [("test", "late")])


class RateLimitOffTests(PluginTestCase):
    """limit_time = 0 turns rate limiting off."""

    plugin_config = {"plugin:core": {"limit_messages": "1", "limit_time": "0"}}

    def test_off(self):
        """Any number of messages are answered."""
        for _ in range(10):
            self.assertResponseMatches("ping", "^pong$")


class RateLimitWordingTests(PluginTestCase):
    """limit_message words the warning; limit_warn = no keeps the limit silent."""

    plugin_config = {
        "plugin:core": {
            "limit_messages": "2",
            "limit_time": "7.5",
            "limit_message": "Slow down: {messages} per {seconds}s ({other} stays)",
        }
    }

    def test_wording(self):
        """The configured text is said with the limit filled in; other braces stay."""
        self.say("ping")
        self.say("ping")
        self.assertEqual(self.responses("ping"), ["Slow down: 2 per 7.5s ({other} stays)"])


class RateLimitSilentTests(PluginTestCase):
    """limit_warn = no: the limit drops messages without a word."""

    plugin_config = {
        "plugin:core": {"limit_messages": "2", "limit_time": "10", "limit_warn": "no"}
    }

    def test_silent(self):
        """Over the limit nothing is said."""
        self.say("ping")
        self.say("ping")
        self.assertTrue(self.assertNoResponse("ping").processed)


# -- Complain -------------------------------------------------------------------------


class ComplainTests(PluginTestCase):
    """Complain tells people what went wrong, in a phrase of the right kind."""

    extra_processors = (Boom, Secret, Fetch, Fuse, Listener)

    def test_nonsense(self):
        """An addressed message nothing understood draws a 'nonsense' phrase."""
        self.assertResponseMatches("frobnicate the widgets", phrases(Complain.nonsense.default))
        event = self.assertFails("frobnicate the widgets")
        self.assertEqual(event.complain, "nonsense")

    def test_not_addressed_no_complaint(self):
        """What is not addressed to the bot draws nothing."""
        self.assertNoResponse("frobnicate the widgets", public=True)

    def test_notauthed(self):
        """A refused permission draws a 'notauthed' phrase."""
        self.assertResponseMatches("secret", phrases(Complain.notauthed.default))
        event = self.assertFails("secret")
        self.assertEqual(event.complain, "notauthed")

    def test_exception(self):
        """A processor's exception draws an 'exception' phrase, and the bot keeps
        answering."""
        self.assertResponseMatches("boom", phrases(Complain.exception.default))
        self.assertEqual(len(self.flushLoggedErrors(ZeroDivisionError)), 1)
        self.assertResponseMatches("ping", "^pong$")
        self.assertResponseMatches(
            "botcore: boom", phrases(Complain.exception.default), public=True
        )
        self.assertEqual(len(self.flushLoggedErrors(ZeroDivisionError)), 1)
        self.assertResponseMatches("botcore: ping", "^user: pong$", public=True)

    def test_network(self):
        """A 'network' complaint draws a 'network' phrase."""
        self.assertResponseMatches("fetch", phrases(Complain.network.default))

    def test_unknown_kind(self):
        """A complaint of a kind with no phrases draws a 'nonsense' phrase."""
        self.assertResponseMatches("odd", phrases(Complain.nonsense.default))

    def test_not_when_answered(self):
        """No complaint is added to an event that already has a reply."""
        self.assertEqual(self.responses("answered"), ["an answer"])

    def test_failed_reply_becomes_a_complaint(self):
        """A reply added by a processor that then raised is not sent: the complaint is."""
        self.assertResponseMatches("partly", phrases(Complain.exception.default))
        self.flushLoggedErrors(ValueError)

    def test_processed_without_reply(self):
        """A handled event with no reply draws no complaint."""
        event = self.assertNoResponse("quietly")
        self.assertIsNone(event.complain)

    def test_delayed_exception(self):
        """A delayed call that fails draws an 'exception' phrase when it was due."""
        self.assertNoResponse("fuse")
        (reply,) = self.advance(1)
        self.assertRegex(reply, phrases(Complain.exception.default))
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)

    def test_delayed_silence(self):
        """A delayed call that says nothing draws no 'nonsense'."""
        self.assertNoResponse("nap")
        self.assertEqual(self.advance(1), [])

    def test_unaddressed_failure_quiet(self):
        """A failure on chatter not addressed to the bot is logged, not told to everyone."""
        self.assertNoResponse("what a kaboom that was", public=True)
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)

    def test_other_types_not_nonsense(self):
        """Unhandled events that are not messages, actions or invitations draw nothing."""
        for kind in (EventType.STATE, EventType.LIFECYCLE, EventType.DELAYED):
            # A lifecycle event's payload names its state (its schema says so).
            data = {"state": "running"} if kind == EventType.LIFECYCLE else {}
            self.assertNoResponse(self.make_event(None, type=kind, addressed=True, data=data))

    def test_notices_not_answered(self):
        """Notices never draw complaints (bots must not answer notices)."""
        self.assertNoResponse("frobnicate", type=EventType.NOTICE)


class ComplainPhrasesTests(PluginTestCase):
    """The phrases are configurable, one per line."""

    extra_processors = (Boom,)
    plugin_config = {
        "plugin:core": {
            "nonsense": "Come again, please?",
            "exception": "Ouch, that hurt\nOw",
        }
    }

    def test_configured(self):
        """Configured phrases replace the defaults; commas stay inside a phrase."""
        self.assertEqual(self.responses("frobnicate"), ["Come again, please?"])
        self.assertResponseMatches("boom", "^(Ouch, that hurt|Ow)$")
        self.flushLoggedErrors(ZeroDivisionError)

    def test_option_parsing(self):
        """A phrases option splits on lines only and needs at least one phrase."""
        option = LinesOption("help", [])
        self.assertEqual(option.parse("a, b\n  c \n\n"), ["a, b", "c"])
        self.assertRaises(ValueError, option.parse, " \n ")


# -- Address --------------------------------------------------------------------------


class AddressTests(PluginTestCase):
    """Address names the person a public reply is for, and words True and False."""

    public = True
    extra_processors = (Replies,)

    def test_public_prefix(self):
        """A public reply to the sender's channel starts with their nick."""
        self.assertResponseMatches("botcore: ping", "^user: pong$")
        self.assertResponseMatches("botcore: ping", "^alice: pong$", sender="alice")

    def test_private_no_prefix(self):
        """Private replies are not prefixed."""
        self.assertResponseMatches("ping", "^pong$", public=False)

    def test_not_prefixed(self):
        """Actions, notices, address=False replies and replies elsewhere are not
        prefixed."""
        self.assertEqual(self.responses("botcore: wave"), ["waves"])
        self.assertEqual(self.responses("botcore: whisper"), ["psst"])
        self.assertEqual(self.responses("botcore: plain"), ["as is"])
        self.assertEqual(self.responses("botcore: elsewhere"), ["over here"])

    def test_true_is_acknowledgement(self):
        """A True reply becomes an acknowledgement, in public and in private."""
        self.assertResponseMatches("botcore: yes", phrases(ACKNOWLEDGEMENTS))
        self.assertResponseMatches("yes", phrases(ACKNOWLEDGEMENTS), public=False)

    def test_false_is_refusal(self):
        """A False reply becomes a refusal (never an acknowledgement), in public and in
        private."""
        for _ in range(10):
            self.assertResponseMatches("botcore: no", phrases(REFUSALS))
            self.assertResponseMatches("no", phrases(REFUSALS), public=False)

    def test_delayed_replies(self):
        """A delayed reply in a channel is addressed like an immediate one."""
        self.assertNoResponse("botcore: later")
        self.assertEqual(self.advance(5), ["user: done, later"])

    def test_delayed_acknowledgement(self):
        """A True reply of a delayed call is worded too (and addressed)."""
        self.assertNoResponse("botcore: yes later")
        self.advance(5)
        self.assertEqual(len(self.replies), 1)
        self.assertRegex(self.replies[0].text, phrases(ACKNOWLEDGEMENTS))
        self.assertTrue(self.replies[0].text.startswith("user: "))

    def test_periodic_acknowledgement(self):
        """A True reply of a periodic task is worded too."""
        self.bot.dispatcher.set_chain(
            [*self.bot.dispatcher.chain, Acker("testing", self.bot.context)]
        )
        self.advance(60)
        self.assertEqual(len(self.replies), 1)
        self.assertIn(self.replies[0].text, ACKNOWLEDGEMENTS)

    def test_source_only_gets_text(self):
        """Every reply the source is given is a str, whatever the processor added."""
        for text in ("botcore: yes", "botcore: no", "botcore: wave", "botcore: ping"):
            self.say(text)
            self.assertEqual([type(r.text) for r in self.replies], [str], text)

    def test_before_format(self):
        """Address runs before Format, so Format only meets worded replies."""
        self.assertLess(Address.priority, Format.priority)


class AddressPhrasesTests(PluginTestCase):
    """Acknowledgements and refusals are configurable."""

    extra_processors = (Replies,)
    plugin_config = {"plugin:core": {"acknowledgements": "Aye", "refusals": "Nay, sorry"}}

    def test_configured(self):
        """True and False replies use the configured phrases."""
        self.assertEqual(self.responses("yes"), ["Aye"])
        self.assertEqual(self.responses("no"), ["Nay, sorry"])
        self.assertEqual(self.responses("botcore: no", public=True), ["user: Nay, sorry"])


# -- Format ---------------------------------------------------------------------------


class FormatTests(PluginTestCase):
    """Format fits replies to a source with no actions, no multi-line messages and a
    20-byte limit."""

    extra_processors = (Replies, Ticker)
    source_supports = frozenset({"notice"})
    source_truncation = 20

    def test_action_fallback(self):
        """An action becomes *text* where the source has no actions."""
        self.say("wave")
        self.assertEqual([(r.text, r.action) for r in self.replies], [("*waves*", False)])

    def test_lines_joined(self):
        """Lines of a reply are joined with spaces (tabs become spaces) by default."""
        self.assertEqual(self.responses("lines"), ["one two  three"])

    def test_lines_split(self):
        """With conflate=False each non-empty line is a reply of its own."""
        self.assertEqual(self.responses("split"), ["one", "two", "three"])

    def test_truncated_on_character_boundary(self):
        """Long text is cut to the byte limit on a UTF-8 boundary and ends with '…'."""
        (reply,) = self.responses("euros 10")  # 30 bytes
        self.assertEqual(reply, "\N{EURO SIGN}" * 5 + ELLIPSIS)
        self.assertLessEqual(len(reply.encode("utf-8")), 20)

    def test_fits_untouched(self):
        """Text that fits the limit exactly is not cut."""
        self.assertEqual(self.responses("euros 6"), ["\N{EURO SIGN}" * 6])

    def test_public_prefix_counted(self):
        """The nick prefix counts against the limit."""
        (reply,) = self.responses("botcore: euros 6", public=True)
        self.assertEqual(reply, "user: \N{EURO SIGN}\N{EURO SIGN}\N{EURO SIGN}" + ELLIPSIS)

    def test_periodic_replies_formatted(self):
        """Replies of periodic tasks are formatted for their source too."""
        self.assertEqual(self.advance(60), ["*ticks*"])
        self.assertEqual(self.replies[0].target, "#test")

    def test_unknown_source_left_alone(self):
        """A reply for a source the bot does not have is passed on unchanged."""
        event = self.make_event("x")
        event.addresponse("hello\nthere", source="nowhere", action=True)
        self.processor("Format").process(event)
        self.assertEqual(event.responses, [Response("hello\nthere", None, "nowhere", True)])


class FormatWithoutAddressTests(PluginTestCase):
    """Format with no Address before it (the core plugin not loaded)."""

    load = ()
    load_core = False
    extra_processors = (Replies, Format)

    def test_never_true(self):
        """A True or False reply is not printed as "True"/"False" by Format: it is left
        for the dispatcher, which words it plainly (and warns)."""
        self.assertEqual(self.responses("yes"), ["Okay"])
        self.assertEqual(self.responses("no"), ["No"])

    def test_left_as_is(self):
        """Format passes an unworded acknowledgement on untouched."""
        event = self.make_event("x")
        event.addresponse(True)
        self.processor("Format").process(event)
        self.assertIs(event.responses[0].text, True)


class FormatMultilineTests(PluginTestCase):
    """On a multi-line source with a limit, conflate=False splits long text into chunks."""

    extra_processors = (Replies,)
    source_truncation = 8

    def test_chunks(self):
        """Each chunk fits the limit and breaks at a line end where it can."""
        self.assertEqual(self.responses("split"), ["one\ntwo", "three"])

    def test_conflated_truncated(self):
        """Conflated text keeps its lines but is cut to the limit."""
        self.assertEqual(self.responses("lines"), ["one\nt" + ELLIPSIS])


class TruncateTests(SynchronousTestCase):
    """truncate() and split_to_fit() in detail."""

    def test_no_limit(self):
        """Without a limit text is unchanged."""
        self.assertEqual(truncate("x" * 1000, None), "x" * 1000)

    def test_exact_boundary(self):
        """The cut lands on a character boundary, never inside a character."""
        text = "a\N{LATIN SMALL LETTER E WITH ACUTE}" * 10  # 3 bytes a pair
        for limit in range(3, 31):
            cut = truncate(text, limit)
            encoded = cut.encode("utf-8")
            self.assertLessEqual(len(encoded), limit)
            self.assertTrue(cut.endswith(ELLIPSIS) or cut == text)
            self.assertTrue(text.startswith(cut.removesuffix(ELLIPSIS)))
            self.assertGreaterEqual(len(encoded), limit - 4)

    def test_four_byte_characters(self):
        """Four-byte characters are kept whole or left out."""
        self.assertEqual(truncate("\N{GRINNING FACE}" * 3, 10), "\N{GRINNING FACE}" + ELLIPSIS)

    def test_tiny_limit(self):
        """Below the ellipsis' size the text is cut without one."""
        self.assertEqual(truncate("abcdef", 2), "ab")
        self.assertEqual(truncate("\N{EURO SIGN}bc", 2), "")

    def test_split_prefers_line_ends(self):
        """split_to_fit breaks at line ends, then punctuation, then spaces."""
        self.assertEqual(split_to_fit("aaa bbb\nccc", 9), ["aaa bbb", "ccc"])
        self.assertEqual(split_to_fit("aaa, bbb ccc", 9), ["aaa,", "bbb ccc"])
        self.assertEqual(split_to_fit("aaaa bbbb cccc", 9), ["aaaa bbbb", "cccc"])

    def test_split_without_separators(self):
        """A word longer than the limit is cut where it must be, on a character boundary."""
        chunks = split_to_fit("\N{EURO SIGN}" * 5, 7)
        self.assertEqual(chunks, ["\N{EURO SIGN}" * 2, "\N{EURO SIGN}" * 2, "\N{EURO SIGN}"])
        for chunk in chunks:
            self.assertLessEqual(len(chunk.encode("utf-8")), 7)


# -- post-processors see every kind of event ----------------------------------------------


class PostProcessorTypesTests(SynchronousTestCase):
    """Complain, Address and Format run for every event type that can carry replies."""

    def test_every_type(self):
        """They accept processed, unaddressed events of any type."""
        for cls in (Complain, Address, Format):
            processor = cls("core", StubContext(reactor=Clock()))
            for kind in (
                EventType.MESSAGE,
                EventType.ACTION,
                EventType.NOTICE,
                EventType.DELAYED,
                EventType.PERIODIC,
                EventType.STATE,
                EventType.INVITE,
                EventType.LIFECYCLE,
            ):
                event = Event(source="s", type=kind, processed=True)
                self.assertTrue(processor.accepts(event), (cls, kind))
