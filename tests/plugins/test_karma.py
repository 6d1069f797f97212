"""Tests for the karma plugin: votes with reasons and configurable tokens, case-blind
subjects, no self-karma, public-only votes, the ladders, forgetting with karmaadmin, and
votes that race for a new subject; on SQLite, PostgreSQL and MariaDB."""

from __future__ import annotations

import importlib
from typing import Any

from sqlalchemy import event as sa_event
from sqlalchemy import select, text
from twisted.trial.unittest import SynchronousTestCase
from zope.interface import implementer
from zope.interface.verify import verifyObject

from botcore.db.engine import make_engine, make_session_factory
from botcore.event import Event, EventType, Message, Sender
from botcore.interfaces import IChannelSource
from botcore.testing import (
    MemorySource,
    PluginTestCase,
    at_once,
    backend_variants,
    fresh_database,
)


def karma() -> Any:
    """The karma module loaded now: a test that reloads the plugin replaces its models
    (those imported before are no longer mapped)."""
    return importlib.import_module("botcore.plugins.karma")


class StoredMixin:
    """Reads what is written."""

    bot: Any

    def stored(self) -> dict[str, tuple[int, int]]:
        """The karma in the database: subject -> (score, votes)."""
        # In SQL: a reload of the plugin replaces its model classes.
        with self.bot.databases["main"].engine.connect() as connection:
            votes = dict(
                connection.execute(
                    text("SELECT karma_id, COUNT(*) FROM karma_votes GROUP BY karma_id")
                ).all()
            )
            return {
                subject: (value, votes.get(karma_id, 0))
                for karma_id, subject, value in connection.execute(
                    text("SELECT id, subject, value FROM karma")
                )
            }


class KarmaTests(StoredMixin, PluginTestCase):
    """Karma said in a channel."""

    load = ["karma"]
    public = True
    plugin_config = {"auth": {"grants": {"test:admin": "+karmaadmin"}}}

    def score(self, subject):
        return self.responses(f"botcore: karma for {subject}")

    def test_increase(self):
        """foo++ adds one, silently when not addressed to the bot."""
        self.assertNoResponse("foo++")
        self.assertSucceeds("foo++")
        self.assertEqual(self.score("foo"), ["user: foo has karma of 2"])

    def test_decrease_and_neutral(self):
        """foo-- takes one away; foo== records a vote without changing the score."""
        self.say("foo--")
        self.say("foo--")
        self.say("foo==")
        self.assertEqual(self.score("foo"), ["user: foo has karma of -2"])

    def test_addressed_vote_answers(self):
        """A vote addressed to the bot is answered with the new score."""
        self.assertEqual(self.responses("botcore: bar++"), ["user: bar now has karma of 1"])

    def test_reason(self):
        """A reason in brackets is stored with the vote."""
        self.say("python++ (for list comprehensions)")
        self.say("python-- [the GIL]")
        self.assertEqual(self.score("python"), ["user: python has karma of 0"])
        self.advance(self.processor("Set").flush_interval)  # written behind
        with self.bot.databases["main"].session_factory() as session:
            reasons = session.scalars(
                select(karma().KarmaVote.reason).order_by(karma().KarmaVote.id)
            ).all()
        self.assertEqual(reasons, ["for list comprehensions", "the GIL"])

    def test_case_insensitive(self):
        """Subjects differing only in case are one subject, keeping the first spelling."""
        self.say("Foo++")
        self.say("FOO++")
        self.say("foo++")
        self.assertEqual(self.score("fOo"), ["user: fOo has karma of 3"])
        self.assertEqual(self.responses("botcore: karmaladder"), ["user: Foo: 3"])

    def test_phrase(self):
        """A subject of several words goes in parentheses."""
        self.say("(free software)++")
        self.assertEqual(self.score("free software"), ["user: free software has karma of 1"])

    def test_token_inside_word(self):
        """c++++ votes on c++; text around a token is no vote."""
        self.say("c++++")
        self.assertEqual(self.score("c++"), ["user: c++ has karma of 1"])
        self.assertNoResponse("I love c++ very much")
        self.assertEqual(self.score("love c"), ["user: love c has no karma"])

    def test_no_self_karma(self):
        """Nobody may change their own karma, whatever the case of the nick."""
        self.assertEqual(self.responses("User++"), ["user: You can't change your own karma"])
        self.assertEqual(self.score("user"), ["user: user has no karma"])

    def test_unknown(self):
        """A subject nobody voted on has no karma."""
        self.assertEqual(self.score("nothing"), ["user: nothing has no karma"])

    def test_ladders(self):
        """karmaladder lists the highest first, reverse karmaladder the lowest first."""
        self.assertEqual(
            self.responses("botcore: karmaladder"), ["user: Nobody has any karma yet"]
        )
        for vote in ("a++", "a++", "a++", "b++", "c--", "c--"):
            self.say(vote)
        self.assertEqual(self.responses("botcore: karmaladder"), ["user: a: 3, b: 1, c: -2"])
        self.assertEqual(
            self.responses("botcore: reverse karmaladder"), ["user: c: -2, b: 1, a: 3"]
        )

    def test_forget_needs_permission(self):
        """forget karma for foo needs karmaadmin; without it nothing is forgotten."""
        self.say("foo++")
        self.assertResponseMatches("botcore: forget karma for foo", "^user: (?!Okay)")
        self.assertEqual(self.score("foo"), ["user: foo has karma of 1"])
        self.assertResponseMatches(
            "botcore: forget karma for FOO",
            r"^admin: (Okay|Sure|Done|Righto|Alrighty|Yessir)$",
            sender="admin",
        )
        self.assertEqual(self.score("foo"), ["user: foo has no karma"])
        self.assertEqual(
            self.responses("botcore: forget karma for foo", sender="admin"),
            ["admin: foo has no karma to forget"],
        )
        with self.bot.databases["main"].session_factory() as session:
            self.assertEqual(session.scalars(select(karma().KarmaVote)).all(), [])

    def test_too_long(self):
        """A subject over 255 characters is refused with a reason."""
        self.assertResponseMatches("x" * 300 + "++", "too long for karma")


class WriteThroughTests(KarmaTests):
    """The same with flush_interval = 0: each vote written at once."""

    plugin_config = {
        "auth": {"grants": {"test:admin": "+karmaadmin"}},
        "plugin:karma": {"flush_interval": "0"},
    }

    def test_written_at_once(self):
        """A vote is in the database when its event is done."""
        self.say("foo++")
        self.assertEqual(self.stored(), {"foo": (1, 1)})


class WriteBehindTests(StoredMixin, PluginTestCase):
    """Votes are written behind, summed per subject in one batch per interval; a clean
    stop, an unload and a reload lose none, and every read counts the unwritten ones."""

    load = ["karma"]
    public = True
    plugin_config = {"auth": {"grants": {"test:admin": "+karmaadmin"}}}

    def setUp(self):
        super().setUp()
        self.statements: list[tuple[str, int]] = []
        engine = self.bot.databases["main"].engine

        def executed(connection, cursor, statement, parameters, context, executemany):
            if "karma" in statement and not statement.lstrip().startswith("SELECT"):
                rows = len(parameters) if executemany else 1
                self.statements.append((statement.split()[0], rows))

        sa_event.listen(engine, "before_cursor_execute", executed)
        self.addCleanup(sa_event.remove, engine, "before_cursor_execute", executed)

    def interval(self) -> float:
        return self.processor("Set").flush_interval

    def test_written_behind(self):
        """Votes are not written at once, but are counted; after the interval every
        subject's sum is written in one statement and every vote in another."""
        for vote in ("foo++", "foo++", "bar--", "Foo++ (again)"):
            self.say(vote)
        self.assertEqual((self.statements, self.stored()), ([], {}))
        self.assertEqual(self.responses("botcore: karma for FOO"), ["user: FOO has karma of 3"])
        self.assertEqual(self.responses("botcore: baz++"), ["user: baz now has karma of 1"])
        self.assertEqual(self.responses("botcore: karmaladder"), ["user: foo: 3, baz: 1, bar: -1"])
        self.advance(self.interval())
        self.assertEqual(self.statements, [("INSERT", 3), ("INSERT", 5)])
        self.assertEqual(self.stored(), {"foo": (3, 3), "bar": (-1, 1), "baz": (1, 1)})
        self.assertEqual(self.responses("botcore: karma for foo"), ["user: foo has karma of 3"])
        self.advance(self.interval())
        self.assertEqual(len(self.statements), 2, "nothing new, nothing written")

    def test_read_adds_unwritten_to_written(self):
        """A score is the written one plus the unwritten votes; the ladder ranks by that,
        the written subjects the unwritten votes push down included."""
        for vote in ("a++", "a++", "b++", "c++", "c++", "c++"):
            self.say(vote)
        self.advance(self.interval())
        for vote in ("c--", "c--", "c--", "d++", "d++"):
            self.say(vote)
        self.assertEqual(self.responses("botcore: karma for c"), ["user: c has karma of 0"])
        self.assertEqual(self.responses("botcore: karmaladder"), ["user: a: 2, d: 2, b: 1, c: 0"])
        self.assertEqual(
            self.responses("botcore: reverse karmaladder"), ["user: c: 0, b: 1, a: 2, d: 2"]
        )

    def test_forget_unwritten(self):
        """Forgetting a subject forgets its unwritten votes too: none comes back."""
        self.say("foo++")
        self.assertSucceeds("botcore: forget karma for foo", sender="admin")
        self.advance(self.interval())
        self.assertEqual(self.stored(), {})
        self.assertEqual(self.responses("botcore: karma for foo"), ["user: foo has no karma"])

    def test_clean_stop_loses_nothing(self):
        """Votes not yet written when the bot stops are written before it stops."""
        self.say("foo++")
        self.say("bar++ (nice)")
        self.restart()
        self.assertEqual(self.stored(), {"foo": (1, 1), "bar": (1, 1)})
        self.assertEqual(self.responses("botcore: karma for foo"), ["user: foo has karma of 1"])

    def test_reload_hands_over(self):
        """A reload hands the unwritten votes to the new version, which writes them and
        what the old one still records after the hand-over (an event still running)."""
        self.say("foo++")
        old = self.processor("Set")
        self.successResultOf(self.bot.plugins.reload_plugin("karma"))
        self.advance(0)
        self.assertIsNot(self.processor("Set"), old)
        old.vote(self.make_event("foo++", sender="late"))
        self.assertEqual(self.responses("botcore: karma for foo"), ["user: foo has karma of 2"])
        self.advance(self.interval())
        self.assertEqual(self.stored(), {"foo": (2, 2)})
        self.say("foo++")
        self.restart()
        self.assertEqual(self.stored(), {"foo": (3, 3)})

    def test_unload_flushes(self):
        """Unloading the plugin writes the votes it had not written."""
        self.say("foo++")
        self.bot.plugins.unload_plugin("karma")
        self.advance(0)
        self.assertEqual(self.stored(), {"foo": (1, 1)})


for _case in (KarmaTests, WriteThroughTests, WriteBehindTests):
    backend_variants(_case, globals())
del _case  # trial would collect it as a test class a second time


class WithFactoidTests(PluginTestCase):
    """Karma beside the factoid plugin, whose processors run after karma's votes."""

    load = ["karma", "factoid"]
    public = True
    plugin_config = {"auth": {"grants": {"test:admin": "+karmaadmin"}}}

    def test_vote_is_no_fact(self):
        """foo++ is a vote, even addressed to the bot and with a fact named foo++."""
        self.assertSucceeds("botcore: foo++ is a fact")
        self.assertEqual(self.responses("botcore: foo++"), ["user: foo now has karma of 1"])
        self.assertEqual(self.responses("botcore: karma for foo"), ["user: foo has karma of 1"])

    def test_forget_karma(self):
        """forget karma for foo forgets the karma, not a fact."""
        self.say("foo++")
        self.assertResponseMatches(
            "botcore: forget karma for foo",
            r"^admin: (Okay|Sure|Done|Righto|Alrighty|Yessir)$",
            sender="admin",
        )
        self.assertEqual(self.responses("botcore: karma for foo"), ["user: foo has no karma"])


@implementer(IChannelSource)
class ChannelSource(MemorySource):
    """A memory source with channels the bot joins, as IRC is (karma asks only that)."""

    type = "channels"

    def join(self, channel: str, key: str | None = None) -> None: ...

    def part(self, channel: str, message: str | None = None) -> None: ...

    def set_nick(self, nick: str) -> None: ...

    def say(self, target: str, text: str) -> None: ...

    def do(self, target: str, text: str) -> None: ...

    def topic(self, channel: str, text: str) -> None: ...

    def members(self, channel: str) -> dict[str, str]:
        return {}


class _ChannelsCase(PluginTestCase):
    """The test's memory source (no channels, as the console) and ``libera``, a source
    with channels."""

    load = ["karma"]

    def setUp(self):
        super().setUp()
        self.irc = ChannelSource("libera", self.bot.context)
        self.irc.setServiceParent(self.bot.sources)

    def on_irc(self, text: str) -> list[str]:
        """``alice`` says ``text`` privately to the bot on the source with channels."""
        event = Event(
            source="libera",
            type=EventType.MESSAGE,
            sender=Sender("libera", "alice!a@host", "alice"),
            channel="alice",
            public=False,
            addressed=True,
            message=Message(text),
        )
        start = len(self.irc.sent)
        self.successResultOf(self.irc.dispatch(event))
        return [str(r.text) for r in self.irc.sent[start:]]


class PrivateTests(_ChannelsCase):
    """Karma said privately: where the source has channels (IRC), votes are refused by
    default and questions answered; where it has none (the console), votes count."""

    def test_private_vote_refused_where_channels_exist(self):
        """On a source with channels a private vote is refused and counts nothing."""
        self.assertTrue(verifyObject(IChannelSource, self.irc))
        self.assertEqual(self.on_irc("foo++"), ["Karma can only be changed in public"])
        self.assertEqual(self.on_irc("karma for foo"), ["foo has no karma"])

    def test_private_vote_counts_without_channels(self):
        """On a source without channels (the console, this test's memory source) every
        conversation is private, and a vote there counts."""
        self.assertFalse(IChannelSource.providedBy(self.source))
        self.assertEqual(self.responses("foo++"), ["foo now has karma of 1"])
        self.assertEqual(self.on_irc("karma for foo"), ["foo has karma of 1"])

    def test_console_has_no_channels(self):
        """The telnet console is a source without channels: karma counts there."""
        from botcore.sources.telnet import TelnetSource

        self.assertFalse(IChannelSource.implementedBy(TelnetSource))

    def test_irc_has_channels(self):
        """The IRC source is one with channels: karma refuses private votes there."""
        from botcore.sources.irc import IRCSource

        self.assertTrue(IChannelSource.implementedBy(IRCSource))

    def test_ladder(self):
        """Questions work in private."""
        self.assertEqual(self.responses("karmaladder"), ["Nobody has any karma yet"])
        self.assertEqual(self.on_irc("karmaladder"), ["Nobody has any karma yet"])


class PrivateAllowedTests(_ChannelsCase):
    """With public_only off, private votes count even where channels exist."""

    plugin_config = {"plugin:karma": {"public_only": "no"}}

    def test_private_vote(self):
        """A private vote on the source with channels counts and is answered."""
        self.assertEqual(self.on_irc("foo++"), ["foo now has karma of 1"])


class TokenTests(PluginTestCase):
    """Configured tokens, replies and ignored subjects."""

    load = ["karma"]
    public = True
    plugin_config = {
        "plugin:karma": {
            "increase": "++, +1",
            "decrease": "--, -1",
            "neutral": "",
            "reply": "yes",
            "ignore": "everything",
        }
    }

    def test_tokens(self):
        """Each configured token counts; a token not configured is no vote."""
        self.assertEqual(self.responses("foo +1"), ["user: foo now has karma of 1"])
        self.assertEqual(self.responses("foo++"), ["user: foo now has karma of 2"])
        self.assertEqual(self.responses("foo-1"), ["user: foo now has karma of 1"])
        self.assertNoResponse("foo==")

    def test_ignored(self):
        """An ignored subject's karma cannot change."""
        self.assertNoResponse("everything++")
        self.assertEqual(
            self.responses("botcore: karma for everything"), ["user: everything has no karma"]
        )


class RaceTestsMixin:
    """Votes for one new subject from many threads at once: none is lost."""

    backend: str

    def test_concurrent_votes(self):
        """Twenty threads voting on the same new subject leave a score of twenty."""
        engine = make_engine(fresh_database(self, self.backend))
        self.addCleanup(engine.dispose)
        from botcore.db import migrate

        migrate.upgrade(engine)
        factory = make_session_factory(engine)

        def vote(number, start):
            with factory() as session:
                start()
                karma().change_karma(session, "Race", 1, f"test:voter{number}")
                session.commit()

        self.assertEqual(at_once(20, vote), [])
        with factory() as session:
            self.assertEqual(session.scalars(select(karma().Karma.value)).all(), [20])
            self.assertEqual(len(session.scalars(select(karma().KarmaVote.id)).all()), 20)


for _prefix, _backend in (
    ("SQLite", "sqlite"),
    ("PostgreSQL", "postgresql"),
    ("MariaDB", "mysql"),
):
    globals()[f"{_prefix}RaceTests"] = type(
        f"{_prefix}RaceTests",
        (RaceTestsMixin, SynchronousTestCase),
        {"backend": _backend, "__doc__": RaceTestsMixin.__doc__},
    )
