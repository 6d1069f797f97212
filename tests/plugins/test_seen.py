"""Tests for the seen plugin: sightings from messages, actions and state changes, answers
in public and private, across the identities of an account; on SQLite, PostgreSQL and
MariaDB."""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy import event as sa_event

from botcore.event import Event, EventType, Message, Sender
from botcore.testing import MemorySource, PluginTestCase, backend_variants


class SeenTests(PluginTestCase):
    """seen <who> [on <source>]."""

    load = ["seen"]
    public = True

    def state(self, nick: str, **data) -> None:
        """A state change of ``nick`` in the channel (join, part, quit, nick...)."""
        self.say(self.make_event(None, sender=nick, type=EventType.STATE, data=data))

    def test_message(self):
        """A message is remembered with its channel and text; the time is humanised."""
        self.assertNoResponse("hello world", sender="bob")
        self.advance(3 * 3600 + 60)
        self.assertEqual(
            self.responses("botcore: seen BOB?", sender="alice"),
            ["alice: BOB was last seen 3 hours ago on test in #test saying 'hello world'"],
        )

    def test_private_question(self):
        """seen works in private too."""
        self.say("hi", sender="bob")
        self.assertEqual(
            self.responses("seen bob", sender="alice", public=False),
            ["bob was last seen just now on test in #test saying 'hi'"],
        )

    def test_private_message_not_repeated(self):
        """What was said to the bot in private is not repeated, only when."""
        self.say("my password is hunter2", sender="bob", public=False)
        self.assertEqual(
            self.responses("botcore: seen bob", sender="alice"),
            ["alice: bob was last seen just now on test"],
        )

    def test_action(self):
        """An action is shown as one."""
        self.say(self.make_event("waves", sender="bob", type=EventType.ACTION))
        self.assertResponseMatches("botcore: seen bob", r"in #test doing '\* bob waves'$")

    def test_state_changes(self):
        """Joins, parts, quits and nick changes are sightings too; the latest wins."""
        self.state("bob", kind="join")
        self.assertResponseMatches("botcore: seen bob", r"just now on test joining #test$")
        self.state("bob", kind="part", message="bye")
        self.assertResponseMatches("botcore: seen bob", r"on test leaving #test \(bye\)$")
        self.state("bob", kind="quit", message="Ping timeout", channels=["#test"])
        self.assertResponseMatches("botcore: seen bob", r"on test quitting \(Ping timeout\)$")
        self.state("bob", kind="nick", old="bob", new="bobby", channels=["#test"])
        self.assertResponseMatches(
            "botcore: seen bob", r"bob \(as bobby\) was last seen just now on test changing nick"
        )
        self.assertResponseMatches(
            "botcore: seen bobby", "^alice: bobby was last seen", sender="alice"
        )

    def test_unknown(self):
        """Somebody never seen, or not on the source named, is not made up."""
        self.say("hi", sender="bob")
        self.assertResponseMatches("botcore: seen carol", "^user: I haven't seen carol$")
        self.assertResponseMatches("botcore: seen bob on irc", "^user: I haven't seen bob on irc$")
        self.assertResponseMatches("botcore: seen bob on test", "saying 'hi'")

    def test_bot_itself(self):
        """Asked about itself, the bot says it is here."""
        self.assertResponseMatches("botcore: seen botcore", "I'm right here")

    def test_bot_by_its_nick(self):
        """The bot's nick on the source asked about is the bot too."""
        self.source.nick = "robo"
        self.assertResponseMatches("robo: seen ROBO", "I'm right here")
        self.assertResponseMatches("robo: seen robo on elsewhere", "I haven't seen robo")

    def test_anonymous_sender(self):
        """A sender whose id is too long to identify leaves no sighting and no error."""
        long = "b" * 300
        self.assertNoResponse("hello", sender=Sender(long, long, long))
        self.assertResponseMatches(f"botcore: seen {long}", "I haven't seen")

    def test_not_addressed(self):
        """seen not addressed to the bot is not answered (but is a sighting)."""
        self.assertNoResponse("seen bob", sender="alice")
        self.assertResponseMatches("botcore: seen alice", "saying 'seen bob'", sender="carol")


class AccountSeenTests(PluginTestCase):
    """seen answers for the person: the latest sighting of any identity of the account."""

    load = ["seen"]
    public = True

    def setUp(self):
        super().setUp()
        self.irc = MemorySource("irc", self.bot.context, {})
        self.irc.setServiceParent(self.bot.sources)

    def say_on_irc(self, text: str, nick: str) -> None:
        event = Event(
            source="irc",
            type=EventType.MESSAGE,
            sender=Sender(f"irc:{nick}", nick, nick),
            channel="#python",
            public=True,
            message=Message(text),
            time=datetime.fromtimestamp(self.clock.seconds(), UTC),
        )
        self.successResultOf(self.irc.dispatch(event))

    def test_across_identities(self):
        """The newest sighting of any of the account's identities answers, by nick or by
        account name; 'on <source>' looks the nick up there."""
        self.link_account("robert", ("test", "bob"), ("irc", "rob"))
        self.say("here", sender="bob")
        self.advance(60)
        self.say_on_irc("over there", "rob")
        self.advance(3 * 3600)
        self.assertEqual(
            self.responses("botcore: seen bob"),
            ["user: bob (as rob) was last seen 3 hours ago on irc in #python saying 'over there'"],
        )
        self.assertResponseMatches(
            "botcore: seen robert", r"robert \(as rob\) .* on irc in #python"
        )
        self.assertResponseMatches(
            "botcore: seen rob on irc", r"^user: rob was last seen 3 hours ago on irc"
        )

    def test_unlinked(self):
        """Unlinked identities with the same nick on two sources stay apart."""
        self.say("here", sender="bob")
        self.say_on_irc("there", "bob")
        self.assertResponseMatches("botcore: seen bob", "on test in #test saying 'here'")
        self.assertResponseMatches("botcore: seen bob on irc", "on irc in #python saying 'there'")


for _case in (SeenTests, AccountSeenTests):
    backend_variants(_case, globals())


class IdentifySeenTests(AccountSeenTests):
    """With the identity plugin's Identify setting event.identity and event.account."""

    load = ["seen", "identity"]


class StopTests(PluginTestCase):
    """Sightings outlive a clean stop, an unload and a reload of the plugin."""

    load = ["seen"]
    public = True

    def setUp(self):
        super().setUp()
        self.statements: list[tuple[str, int]] = []
        self.watch(self.bot.databases["main"].engine)

    def watch(self, engine) -> None:
        """Note each statement on the sightings table: (its first word, its rows)."""

        def executed(connection, cursor, statement, parameters, context, executemany):
            if "sightings" in statement and not statement.startswith("SELECT"):
                rows = len(parameters) if executemany else 1
                self.statements.append((statement.split()[0], rows))

        sa_event.listen(engine, "before_cursor_execute", executed)
        self.addCleanup(sa_event.remove, engine, "before_cursor_execute", executed)

    def stored(self) -> dict[str, tuple[str, str | None]]:
        """The sightings in the database: nick -> (kind, text)."""
        engine = self.bot.databases["main"].engine
        with engine.connect() as connection:
            rows = connection.execute(sa.text("SELECT nick, kind, text FROM sightings")).all()
        return {nick: (kind, text) for nick, kind, text in rows}

    def interval(self) -> float:
        return self.processor("Record").flush_interval

    def test_clean_stop_loses_nothing(self):
        """Sightings not yet written when the bot stops are written before it stops: the
        next start answers from them."""
        self.say("hello", sender="bob")
        self.say(self.make_event("waves", sender="carol", type=EventType.ACTION))
        self.restart()
        self.assertResponseMatches("botcore: seen bob", "saying 'hello'")
        self.assertResponseMatches("botcore: seen carol", r"doing '\* carol waves'")

    def test_reload_flushes(self):
        """Reloading the plugin writes what the old version had not written, and the new
        version goes on from there."""
        self.say("hello", sender="bob")
        self.bot.plugins.reload_plugin("seen")
        self.advance(0)
        self.assertEqual(self.stored(), {"bob": ("message", "hello")})
        self.say("back", sender="bob")
        self.assertResponseMatches("botcore: seen bob", "saying 'back'")
        self.restart()
        self.assertResponseMatches("botcore: seen bob", "saying 'back'")

    def identity_of(self, nick: str) -> int:
        from botcore.accounts import models as accounts

        session = self.bot.databases["main"].session_factory()
        try:
            identity = accounts.identify(session, "test", nick).id
            session.commit()
            return identity
        finally:
            session.close()

    def test_unload_flushes(self):
        """Unloading the plugin writes what it had not written."""
        self.say("hello", sender="bob")
        self.bot.plugins.unload_plugin("seen")
        self.advance(0)
        self.assertEqual(self.stored(), {"bob": ("message", "hello")})


class RecordTests(StopTests):
    """How sightings are written: behind, each person's newest in one batch per
    interval."""

    def test_written_behind(self):
        """A sighting is not written at once, but seen answers from it; after the flush
        interval each person's newest is written, everyone's in one statement."""
        self.say("hello", sender="bob")
        self.say("again", sender="bob")
        self.say("hi", sender="carol")
        self.assertEqual((self.statements, self.stored()), ([], {}))
        self.assertResponseMatches("botcore: seen bob", "saying 'again'", sender="alice")
        self.advance(self.interval())
        self.assertEqual(self.statements, [("INSERT", 3)])  # bob, carol and alice
        self.assertEqual(self.stored()["bob"], ("message", "again"))
        self.assertEqual(self.stored()["carol"], ("message", "hi"))
        self.advance(self.interval())
        self.assertEqual(len(self.statements), 1, "nothing new, nothing written")

    def test_reload_hands_over(self):
        """What the old version records after handing over (an event still running with
        it) is written too, by the new one."""
        old = self.processor("Record")
        self.bot.plugins.reload_plugin("seen")
        self.advance(0)
        old.record(self.make_event("late", sender="bob", identity=self.identity_of("bob")))
        self.assertResponseMatches("botcore: seen bob", "saying 'late'")
        self.advance(self.interval())
        self.assertEqual(
            self.stored(), {"bob": ("message", "late"), "user": ("message", "botcore: seen bob")}
        )

    def test_failed_write_kept(self):
        """A write that fails keeps the sightings for the next one."""
        self.say("hello", sender="bob")
        engine = self.bot.databases["main"].engine
        fail = [True]

        def refuse(connection, cursor, statement, *args):
            if fail and "INSERT INTO sightings" in statement:
                fail.clear()
                raise RuntimeError("disk full")

        sa_event.listen(engine, "before_cursor_execute", refuse)
        self.addCleanup(sa_event.remove, engine, "before_cursor_execute", refuse)
        self.advance(self.interval())
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)
        self.assertEqual(self.stored(), {})
        self.assertResponseMatches("botcore: seen bob", "saying 'hello'")
        self.advance(self.interval())
        self.assertEqual(self.stored()["bob"], ("message", "hello"))


class WriteThroughTests(StopTests):
    """With flush_interval = 0 each sighting is written at once, in one statement."""

    plugin_config = {"plugin:seen": {"flush_interval": "0"}}

    def interval(self) -> float:
        return 0.0

    def test_one_statement(self):
        """Each sighting, the first of an identity or a later one, is one statement on
        the sightings table: an upsert, not a select followed by an insert or update."""
        self.say("hello", sender="bob")
        self.say("again", sender="bob")
        self.assertEqual(self.statements, [("INSERT", 1), ("INSERT", 1)])
        self.assertResponseMatches("botcore: seen bob", "saying 'again'")


for _case in (RecordTests, WriteThroughTests):
    backend_variants(_case, globals())
del _case  # trial would collect it as a test class a second time
