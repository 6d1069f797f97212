"""Tests for the remind plugin: setting reminders in, at and every, delivery to the same
conversation by the bot's clock, listing and cancelling, and surviving a restart."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select
from twisted.trial.unittest import SynchronousTestCase

from botcore.event import Response, Sender
from botcore.plugins.remind import (
    Reminder,
    ReminderError,
    next_at,
    next_repeat,
    parse_duration,
    parse_time,
)
from botcore.source import Source
from botcore.testing import MemorySource, PluginTestCase

HOUR = 3600
DAY = 86400


class ParsingTests(SynchronousTestCase):
    """Durations and times."""

    def test_durations(self):
        """Durations add up their parts, in words or letters."""
        self.assertEqual(parse_duration("10 minutes"), 600)
        self.assertEqual(parse_duration("1 hour and 30 minutes"), 5400)
        self.assertEqual(parse_duration("1h30m"), 5400)
        self.assertEqual(parse_duration("an hour"), 3600)
        self.assertEqual(parse_duration("2 days"), 2 * DAY)
        self.assertEqual(parse_duration("hour"), 3600)

    def test_times(self):
        """Times are 24-hour, or 12-hour with am/pm; impossible ones are refused."""
        self.assertEqual(parse_time("15:30"), (15, 30))
        self.assertEqual(parse_time("9"), (9, 0))
        self.assertEqual(parse_time("3:15pm"), (15, 15))
        self.assertEqual(parse_time("12am"), (0, 0))
        self.assertRaises(ReminderError, parse_time, "25:00")
        self.assertRaises(ReminderError, parse_time, "13pm")

    def test_next_at(self):
        """The next occurrence is today when still ahead, else tomorrow, in the zone."""
        now = datetime(2026, 11, 21, 10, 0, tzinfo=UTC)
        utc = ZoneInfo("UTC")
        self.assertEqual(next_at(now, 15, 30, utc), datetime(2026, 11, 21, 15, 30, tzinfo=UTC))
        self.assertEqual(next_at(now, 9, 0, utc), datetime(2026, 11, 22, 9, 0, tzinfo=UTC))
        paris = ZoneInfo("Europe/Paris")  # UTC+1 in November
        self.assertEqual(next_at(now, 15, 30, paris), datetime(2026, 11, 21, 14, 30, tzinfo=UTC))

    def test_daily_repeat_keeps_wall_time(self):
        """A daily reminder stays at 9:00 local time across a DST change."""
        paris = ZoneInfo("Europe/Paris")
        before = datetime(2026, 3, 28, 8, 0, tzinfo=UTC)  # 9:00 CET
        after = next_repeat(before, DAY, paris)
        self.assertEqual(after.astimezone(paris).hour, 9)
        self.assertEqual(after, datetime(2026, 3, 29, 7, 0, tzinfo=UTC))  # 9:00 CEST


class PrivateTests(PluginTestCase):
    """Reminders set and delivered in a private conversation."""

    load = ["remind"]

    def test_in(self):
        """remind me in 10 minutes to X: confirmed, and said back after 10 minutes."""
        self.assertResponseMatches(
            "remind me in 10 minutes to stretch",
            r"^Okay, I'll remind you at 1970-01-01 00:10 UTC \(in 10 minutes\) \[#1\]$",
        )
        self.assertEqual(self.advance(599), [])
        self.assertEqual(self.advance(1), ["user: reminder: stretch"])
        self.assertEqual(self.replies[0].target, "user")
        self.assertEqual(self.advance(DAY), [])
        self.assertEqual(self.responses("my reminders"), ["You have no reminders waiting"])

    def test_trailing_in(self):
        """remind me to X in 5 minutes works too."""
        self.assertSucceeds("remind me to check the oven in 5 minutes")
        self.assertEqual(self.advance(300), ["user: reminder: check the oven"])

    def test_at(self):
        """remind <who> at HH:MM: the next time the clock shows it (UTC by default)."""
        self.advance(10 * HOUR)
        self.assertResponseMatches(
            "remind alice at 15:30 the meeting starts",
            r"remind alice at 1970-01-01 15:30 UTC \(in 5 hours and 30 minutes\)",
        )
        self.assertEqual(
            self.advance(5.5 * HOUR), ["alice: reminder from user: the meeting starts"]
        )
        # Set in private: said privately to alice, not in the setter's conversation
        # (found by the second adversarial pass: the setter had gone, and so had it).
        self.assertEqual(self.replies[0].target, "alice")

    def test_every_day(self):
        """remind me every day at 9:00: delivered each day until cancelled."""
        self.assertResponseMatches(
            "remind me every day at 9:00 to drink water",
            r"at 1970-01-01 09:00 UTC .* then every 1 day \[#1\]",
        )
        self.assertEqual(self.advance(9 * HOUR), ["user: reminder: drink water"])
        self.assertEqual(self.advance(DAY), ["user: reminder: drink water"])
        self.assertResponseMatches("my reminders", r"^#1 at 1970-01-03 09:00 UTC \(every 1 day\)")
        self.assertResponseMatches("cancel reminder 1", "cancelled")
        self.assertEqual(self.advance(2 * DAY), [])

    def test_every_interval(self):
        """remind me every 2 hours; intervals below min_interval are refused."""
        self.assertSucceeds("remind me every 2 hours to look up")
        self.assertEqual(self.advance(2 * HOUR), ["user: reminder: look up"])
        self.assertEqual(self.advance(2 * HOUR), ["user: reminder: look up"])
        self.assertResponseMatches("remind me every 10 seconds to blink", "more often than")

    def test_list_and_cancel(self):
        """my reminders lists the sender's reminders by due time; cancel drops one."""
        self.say("remind me in 2 hours to b")
        self.say("remind bob in 1 hour to a")
        self.assertResponseMatches(
            "my reminders",
            r"^#2 for bob at 1970-01-01 01:00 UTC: a; #1 at 1970-01-01 02:00 UTC: b$",
        )
        self.assertEqual(self.responses("cancel reminder #2"), ["Okay, reminder #2 is cancelled"])
        self.assertEqual(self.advance(2 * HOUR), ["user: reminder: b"])

    def test_cancel_others_refused(self):
        """Nobody can cancel or see someone else's reminder."""
        self.say("remind me in 1 hour to x")
        self.assertResponseMatches("cancel reminder 1", "no reminder #1", sender="mallory")
        self.assertResponseMatches("my reminders", "no reminders", sender="mallory")
        self.assertResponseMatches("cancel reminder 99", "no reminder #99")
        self.assertEqual(self.advance(HOUR), ["user: reminder: x"])

    def test_bad_input(self):
        """Unparseable or out-of-range requests get a clear message, no traceback."""
        self.assertResponseMatches("remind me sometime to relax", "^When\\?")
        self.assertResponseMatches("remind me at 25:00 to sleep", "not a time")
        self.assertResponseMatches("remind me in 0 minutes to x", "now")
        self.assertResponseMatches("remind me in 99999 weeks to x", "days ahead")

    def test_limit(self):
        """max_reminders caps the reminders one person has waiting."""
        for n in range(20):
            self.assertSucceeds(f"remind me in {n + 1} minutes to {n}")
        self.assertResponseMatches("remind me in 1 hour to more", "already have 20")

    def test_stored(self):
        """Reminders are rows in the database's reminders table."""
        from sqlalchemy import select

        from botcore.plugins.remind import Reminder

        self.say("remind me in 1 hour to x")
        with self.bot.databases["main"].session_factory() as session:
            (row,) = session.scalars(select(Reminder)).all()
        self.assertEqual(
            (row.target, row.text, row.channel, row.public), ("user", "x", "user", False)
        )
        self.assertEqual(row.due, datetime(1970, 1, 1, 1, 0, tzinfo=UTC))


class CapTests(PluginTestCase):
    """Reminders are capped per conversation and per source, whoever sets them: many
    nicks cannot fill the database."""

    load = ["remind"]
    plugin_config = {
        "plugin:remind": {
            "max_reminders": "3",
            "max_per_conversation": "5",
            "max_per_source": "12",
        }
    }

    def test_per_conversation(self) -> None:
        """Past max_per_conversation reminders for one person (in private) or one
        channel, from any number of senders, more are refused with why; another
        conversation still takes some."""
        for n in range(5):
            self.assertSucceeds(f"remind alice in 1 hour to x{n}", sender=f"nick{n}")
        self.assertResponseMatches(
            "remind alice in 1 hour to more",
            r"^There are already 5 reminders waiting for alice; try again once some "
            r"have been said$",
            sender="other",
        )
        for n in range(5):
            self.assertSucceeds(
                f"botcore: remind me in 1 hour to y{n}",
                sender=f"nick{n}",
                channel="#c",
                public=True,
            )
        self.assertResponseMatches(
            "botcore: remind me in 1 hour to more",
            "5 reminders waiting here",
            channel="#c",
            public=True,
        )
        with self.bot.databases["main"].session_factory() as session:
            self.assertEqual(len(session.scalars(select(Reminder)).all()), 10)

    def test_per_source(self) -> None:
        """Past max_per_source reminders on one source, whoever set them and wherever,
        more are refused with why; they are taken again once one has been said."""
        for n in range(12):
            self.assertSucceeds(f"remind p{n} in {n + 1} minutes to x", sender=f"nick{n}")
        self.assertResponseMatches(
            "remind someone in 1 hour to more",
            "already keeping 12 reminders for this network",
            sender="late",
        )
        self.advance(60)
        self.assertSucceeds("remind someone in 1 hour to more", sender="late")


class PublicTests(PluginTestCase):
    """Reminders in a channel are delivered to that channel."""

    load = ["remind"]
    public = True

    def test_channel_delivery(self):
        """A reminder set in #test is said in #test, naming the person."""
        self.assertResponseMatches("botcore: remind me in 1 minute to vote", r"^user: Okay")
        self.assertEqual(self.advance(60), ["user: reminder: vote"])
        self.assertEqual(self.replies[0].target, "#test")

    def test_not_addressed(self):
        """Not addressed, remind stays quiet."""
        self.assertNoResponse("remind me in 1 minute to vote")
        self.assertEqual(self.advance(60), [])


class TimezoneTests(PluginTestCase):
    """The timezone option."""

    load = ["remind"]
    plugin_config = {"plugin:remind": {"timezone": "Europe/Paris"}}

    def test_local_time(self):
        """Times are read and shown in the configured zone."""
        self.assertResponseMatches("remind me at 9:00 to wake", r"at 1970-01-01 09:00 CET")
        self.assertEqual(self.advance(8 * HOUR), ["user: reminder: wake"])


class RestartTests(PluginTestCase):
    """Reminders survive a restart of the bot."""

    load = ["remind"]

    def test_restart(self):
        """A reminder set before a restart is delivered by the new bot, on time."""
        self.say("remind me in 10 minutes to stretch")
        self.say("remind me every day at 9:00 to drink water")
        self.advance(5 * 60)
        self.restart()
        self.assertEqual(self.advance(5 * 60), ["user: reminder: stretch"])
        self.assertEqual(self.advance(9 * HOUR - 10 * 60), ["user: reminder: drink water"])
        self.assertResponseMatches("my reminders", r"^#2 at 1970-01-02 09:00 UTC")

    def test_overdue_after_restart(self):
        """A reminder that fell due while the bot was down is delivered at start, late."""
        self.say("remind me in 10 minutes to stretch")
        self.successResultOf(self.bot.stopService())
        self.clock.advance(HOUR)
        self.restart()
        self.assertEqual(
            self.advance(0), ["user: reminder: stretch (late: it was due 1970-01-01 00:10 UTC)"]
        )
        self.assertEqual(self.advance(DAY), [])


class ReloadTests(PluginTestCase):
    """A remind processor loaded into a running bot (a plugin reload) picks up the
    reminders already stored."""

    load = ["remind"]

    def test_reload(self):
        """The old processor's calls are cancelled at shutdown; the new one reschedules."""
        from botcore.plugins.remind import Remind

        self.say("remind me in 10 minutes to stretch")
        old = self.processor("Remind")
        old.shutdown()
        new = Remind("remind", self.bot.context, {})
        new.setup()
        self.bot.plugins.loaded["remind"] = [new]
        self.bot.dispatcher.set_chain(self.bot.plugins.processors())
        self.assertEqual(self.advance(600), ["user: reminder: stretch"])
        self.assertEqual(self.responses("my reminders"), ["You have no reminders waiting"])


class LateSource(MemorySource):
    """A memory source with a connection to make: 'connecting' once started, connected
    when the test says; replies it is given while not connected are dropped, as IRC's
    are. ``lose_on_send`` makes the next send find the connection gone."""

    type = "late"

    def __init__(self, *args: Any, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self.dropped: list[Response] = []
        self.lose_on_send = False

    def startService(self) -> None:
        Source.startService(self)  # not LocalSource's, which is connected at once
        self.set_state("connecting")

    def send(self, response: Response) -> None:
        if self.lose_on_send:
            self.lose_on_send = False
            self.set_state("reconnecting")
        if self.state != "connected":
            self.dropped.append(response)
            return
        super().send(response)


class ConsoleAbsentTests(PluginTestCase):
    """A reminder for someone who is not on the console (the source knows) waits for them
    to come back, for absent_keep at most, instead of being 'said' to nobody and
    forgotten."""

    load = ["remind"]
    plugin_config = {"plugin:remind": {"absent_check": "60", "absent_keep": "86400"}}

    def setUp(self) -> None:
        super().setUp()
        from twisted.internet.testing import MemoryReactorClock

        from botcore.sources.telnet import TelnetSource

        # The console listens on a memory reactor; the bot's clock drives the reminders.
        self.console = TelnetSource(
            "console", self.bot.context, {"endpoint": "tcp:0"}, reactor=MemoryReactorClock()
        )
        self.console.setServiceParent(self.bot.sources)
        self.addCleanup(lambda: self.console.parent and self.console.disownServiceParent())
        self.assertEqual(self.console.state, "connected")
        self.port = 50000

    def connect(self, nick: str) -> tuple[Any, Any]:
        from twisted.internet.address import IPv4Address
        from twisted.internet.testing import StringTransport

        from botcore.sources.telnet import ConsoleFactory

        self.port += 1
        peer = IPv4Address("TCP", "127.0.0.1", self.port)
        person = ConsoleFactory(self.console).buildProtocol(peer)
        transport = StringTransport(peerAddress=peer)
        person.makeConnection(transport)
        person.dataReceived(nick.encode() + b"\r\n")
        self.clock.advance(0)  # the nick is looked up (whose is it?) in the pool
        self.assertIn(f"Hi {nick}!", transport.value().decode())
        transport.clear()
        return person, transport

    def say(self, person: Any, transport: Any, text: str) -> str:
        person.dataReceived(text.encode() + b"\r\n")
        self.clock.advance(0)
        said = transport.value().decode()
        transport.clear()
        return said

    def rows(self) -> list[str]:
        self.clock.advance(0)
        with self.bot.databases["main"].session_factory() as session:
            return [row.text for row in session.scalars(select(Reminder))]

    def test_is_present(self) -> None:
        """The console says who is there; IRC-like sources cannot tell (None)."""
        self.assertFalse(self.console.is_present("bob"))
        person, _ = self.connect("bob")
        self.assertTrue(self.console.is_present("BOB"))
        person.connectionLost(None)
        self.assertFalse(self.console.is_present("bob"))
        self.assertIsNone(self.source.is_present("bob"))

    def test_waits_for_the_person(self) -> None:
        """Due while bob is not connected: kept, and said once he is back (late)."""
        alice, alice_wire = self.connect("alice")
        self.assertIn("Okay", self.say(alice, alice_wire, "remind bob in 10 minutes to eat"))
        self.clock.advance(600)
        self.clock.advance(3 * 60)
        self.assertEqual(self.rows(), ["eat"])
        _, bob_wire = self.connect("bob")
        self.clock.advance(60)
        self.assertIn("bob: reminder from alice: eat (late", bob_wire.value().decode())
        self.assertEqual(self.rows(), [])

    def test_said_when_there(self) -> None:
        """Said while bob is there: delivered once and forgotten."""
        alice, alice_wire = self.connect("alice")
        _, bob_wire = self.connect("bob")
        self.say(alice, alice_wire, "remind bob in 10 minutes to eat")
        self.clock.advance(600)
        self.assertIn("bob: reminder from alice: eat", bob_wire.value().decode())
        self.assertEqual(self.rows(), [])

    def test_dropped_after_absent_keep(self) -> None:
        """Nobody comes back for absent_keep seconds after it was due: the reminder (a
        repeating one too) is dropped, not kept for ever."""
        alice, alice_wire = self.connect("alice")
        self.say(alice, alice_wire, "remind bob in 10 minutes to eat")
        self.say(alice, alice_wire, "remind carol every day at 9:00 to drink")
        self.clock.advance(600)
        for _ in range(25):
            self.clock.advance(3600)
        self.assertEqual(self.rows(), ["drink"])
        for _ in range(24):
            self.clock.advance(3600)
        self.assertEqual(self.rows(), [])
        self.assertEqual(self.clock.getDelayedCalls(), [])


class DisconnectedSourceTests(PluginTestCase):
    """A reminder that falls due while its source is not connected waits for it, and is
    forgotten only once it has been sent."""

    load = ["remind"]
    plugin_config = {"plugin:remind": {"source_wait": "300"}}

    def setUp(self) -> None:
        super().setUp()
        self.late = LateSource("late", self.bot.context, {})
        self.late.setServiceParent(self.bot.sources)
        self.addCleanup(lambda: self.late.parent and self.late.disownServiceParent())

    def on_late(self, text: str) -> None:
        """``user`` says ``text`` on the late source."""
        event = replace(
            self.make_event(text), source="late", sender=Sender("late", "user", "user")
        )
        self.successResultOf(self.late.dispatch(event))

    def set_reminder(self, text: str) -> None:
        self.late.set_state("connected")
        self.on_late(text)
        self.assertIn("Okay, I'll remind you", str(self.late.sent[-1].text))

    def rows(self) -> list[str]:
        self.clock.advance(0)  # what was sent is forgotten in a call_later(0)
        with self.bot.databases["main"].session_factory() as session:
            return [row.text for row in session.scalars(select(Reminder))]

    def said(self) -> list[str]:
        return [str(r.text) for r in self.late.sent if "reminder:" in str(r.text)]

    def test_waits_for_the_source(self) -> None:
        """Due while the source reconnects: nothing is sent (nor dropped), the row stays,
        through several source_wait periods; once connected it is said, late, once,
        and only then forgotten."""
        self.set_reminder("remind me in 10 minutes to stretch")
        self.late.set_state("reconnecting")
        self.clock.advance(600)
        self.clock.advance(3 * 300)
        self.assertEqual((self.said(), self.late.dropped), ([], []))
        self.assertEqual(self.rows(), ["stretch"])
        self.late.set_state("connected")
        self.assertEqual(
            self.said(), ["user: reminder: stretch (late: it was due 1970-01-01 00:10 UTC)"]
        )
        self.assertEqual(self.rows(), [])
        self.clock.advance(86400)
        self.assertEqual(len(self.said()), 1)

    def test_kept_when_the_send_is_lost(self) -> None:
        """A reminder whose send finds the connection gone (dropped by the source) is
        kept and said again, once, when the source is back."""
        self.set_reminder("remind me in 10 minutes to stretch")
        self.late.lose_on_send = True
        self.clock.advance(600)
        self.assertEqual(len(self.late.dropped), 1)
        self.assertEqual(self.rows(), ["stretch"])
        self.late.set_state("connected")
        self.assertEqual(self.said(), ["user: reminder: stretch"])
        self.assertEqual(self.rows(), [])

    def test_repeating_reminder_waits_too(self) -> None:
        """A repeating reminder due while disconnected is said on reconnection and then
        moved to its next time."""
        self.set_reminder("remind me every 2 hours to look up")
        self.late.set_state("reconnecting")
        self.clock.advance(2 * HOUR + 60)
        self.assertEqual(self.said(), [])
        self.late.set_state("connected")
        self.assertEqual(len(self.said()), 1)
        self.assertEqual(self.rows(), ["look up"])
        self.clock.advance(2 * HOUR - 60)
        self.assertEqual(len(self.said()), 2)

    def test_cancelled_while_waiting(self) -> None:
        """A reminder cancelled while it waits for its source is never said."""
        self.set_reminder("remind me in 10 minutes to stretch")
        self.late.set_state("reconnecting")
        self.clock.advance(600)
        self.on_late("cancel reminder 1")
        self.assertEqual(self.rows(), [])
        self.late.set_state("connected")
        self.clock.advance(600)
        self.assertEqual(self.said(), [])

    def test_source_not_running(self) -> None:
        """Due while its source is not running at all: kept, and said once a source of
        that name runs and is connected (found again after ``source_wait``)."""
        self.set_reminder("remind me in 10 minutes to stretch")
        self.late.disownServiceParent()  # stops it
        self.clock.advance(600)
        self.assertEqual(self.rows(), ["stretch"])
        self.late = LateSource("late", self.bot.context, {})
        self.late.setServiceParent(self.bot.sources)
        self.late.set_state("connected")
        self.assertEqual(self.said(), [])
        self.clock.advance(300)
        self.assertEqual(len(self.said()), 1)
        self.assertEqual(self.rows(), [])
