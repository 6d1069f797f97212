"""Tests for the log plugin: what is written where, date rotation, file modes, the cap on
open files, and writes from many threads at once."""

from __future__ import annotations

import stat
import threading
from pathlib import Path

from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from botcore.event import EventType, Sender
from botcore.processor import Processor, handler, match
from botcore.testing import PluginTestCase, StubContext
from plugins.log import LogFiles, safe_part

DAY = 86400


class Secret(Processor):
    """Stands in for the accounts plugin: scrubs a password from message.raw early on."""

    usage = "(automatic) test scrubber"
    features = ("scrub",)
    priority = -1200
    addressed = False

    @handler
    def scrub(self, event):
        if event.message is not None and "hunter2" in event.message.raw:
            event.message.raw = event.message.raw.replace("hunter2", "********")


class Relay(Processor):
    """'relay TARGET TEXT' makes the bot say TEXT to TARGET on the same source."""

    usage = "relay <target> <text>"
    features = ("relay",)

    @match(r"^relay\s+(\S+)\s+(.+)$", simple=False)
    def relay(self, event, target, text):
        event.addresponse(text, target=target, address=False)


class LogTestCase(PluginTestCase):
    load = ["log", "basic"]
    extra_processors = [Secret]

    def log_file(self, channel: str, day: str = "1970-01-01", source: str = "test") -> Path:
        return self.directory / "logs" / source / channel / f"{day}.log"

    def lines(self, channel: str, day: str = "1970-01-01") -> list[str]:
        return self.log_file(channel, day).read_text(encoding="utf-8").splitlines()


class PublicTests(LogTestCase):
    """Logs of a public channel."""

    public = True

    def test_messages_and_replies(self):
        """Messages, addressed or not, and the bot's replies go to the channel's file."""
        self.say("hello all")
        self.say("botcore: ping")
        self.assertEqual(
            self.lines("#test"),
            [
                "[00:00:00] <user> hello all",
                "[00:00:00] <user> botcore: ping",
                "[00:00:00] <botcore> user: pong",
            ],
        )

    def test_actions_notices(self):
        """Actions and notices have their own line formats."""
        self.say("waves", type=EventType.ACTION)
        self.say("psst", type=EventType.NOTICE)
        self.assertEqual(
            self.lines("#test"), ["[00:00:00] * user waves", "[00:00:00] -user- psst"]
        )

    def test_state_changes(self):
        """Joins, parts, kicks, quits and nick changes are logged to their channels."""
        self.say(None, type=EventType.STATE, data={"kind": "join"})
        self.say(None, type=EventType.STATE, data={"kind": "part", "message": "bye"})
        self.say(
            None, type=EventType.STATE, data={"kind": "kick", "kicked": "bob", "message": "x"}
        )
        # Quits and nick changes happen in no channel; the source lists the channels.
        for data in (
            {"kind": "quit", "message": "gone", "channels": ["#test", "#other"]},
            {"kind": "nick", "old": "user", "new": "user2", "channels": ["#test"]},
        ):
            event = self.make_event(None, type=EventType.STATE, data=data)
            event.channel = None
            self.say(event)
        self.assertEqual(
            self.lines("#test"),
            [
                "[00:00:00] *** user has joined #test",
                "[00:00:00] *** user has left #test (bye)",
                "[00:00:00] *** bob was kicked by user (x)",
                "[00:00:00] *** user has quit (gone)",
                "[00:00:00] *** user is now known as user2",
            ],
        )
        self.assertEqual(self.lines("#other"), ["[00:00:00] *** user has quit (gone)"])

    def test_rotation_by_date(self):
        """A new day starts a new file."""
        self.say("first")
        self.advance(DAY + 3661)
        self.say("second")
        self.assertEqual(self.lines("#test"), ["[00:00:00] <user> first"])
        self.assertEqual(self.lines("#test", "1970-01-02"), ["[01:01:01] <user> second"])

    def test_public_mode(self):
        """Public logs get public_mode (0644 by default), whatever the umask."""
        self.say("hi")
        self.assertEqual(stat.S_IMODE(self.log_file("#test").stat().st_mode), 0o644)

    def test_scrubbed(self):
        """A secret scrubbed from message.raw by an earlier processor never reaches the log."""
        self.say("botcore: identify hunter2")
        text = self.log_file("#test").read_text()
        self.assertNotIn("hunter2", text)
        self.assertIn("identify ********", text)

    def test_secret_commands_scrubbed_by_the_core(self):
        """Without the identity plugin, the core still takes a password out of 'auth' and
        'set password' before the log sees it, in public and in private."""
        self.assertNotIn("identity", self.bot.plugins.loaded)
        self.say("botcore: auth hunter2")
        self.say("botcore> set password hunter3")
        self.say("auth hunter4", public=False)
        text = self.log_file("#test").read_text() + self.log_file("user").read_text()
        for secret in ("hunter2", "hunter3", "hunter4"):
            self.assertNotIn(secret, text)
        self.assertIn("auth [secret]", text)

    def test_last_in_chain(self):
        """The log processor runs after every other one, Format included."""
        chain = list(self.bot.dispatcher.chain)
        self.assertEqual(type(chain[-1]).__name__, "Log")


class PrivateTests(LogTestCase):
    """Logs of private conversations."""

    def test_private_file(self):
        """A private conversation is logged under the other person's nick, mode 0600."""
        self.say("ping")
        self.assertEqual(
            self.lines("user"), ["[00:00:00] <user> ping", "[00:00:00] <botcore> pong"]
        )
        self.assertEqual(stat.S_IMODE(self.log_file("user").stat().st_mode), 0o600)

    def test_unsafe_names(self):
        """Channel and sender names cannot escape the log folder."""
        sender = Sender("test:../../x", "../../x", "../../x")
        self.say("hi", sender=sender)
        self.assertTrue(self.log_file(".._.._x").exists())
        self.assertEqual(safe_part(".."), "_")
        self.assertEqual(safe_part("a/b"), "a_b")


class ElsewhereTests(LogTestCase):
    """Replies to other conversations than the event's, and the bot's nick in its lines."""

    extra_processors = [Secret, Relay]

    def test_channel_as_the_source_says(self):
        """A reply to another target is public when the source says it is a channel
        there, and private otherwise (whatever it looks like)."""
        self.source.chantypes = "+"
        self.say("relay +modeless hi all")
        self.say("relay #looks-like-one psst")
        self.assertEqual(self.lines("+modeless"), ["[00:00:00] <botcore> hi all"])
        self.assertEqual(stat.S_IMODE(self.log_file("+modeless").stat().st_mode), 0o644)
        self.assertEqual(stat.S_IMODE(self.log_file("#looks-like-one").stat().st_mode), 0o600)

    def test_bot_nick_on_the_source(self):
        """The bot's own lines carry its nick on the source."""
        self.source.nick = "robo"
        self.say("ping")
        self.assertEqual(self.lines("user")[-1], "[00:00:00] <robo> pong")


class OptionsTests(LogTestCase):
    """The log plugin's options."""

    plugin_config = {
        "plugin:log": {
            "path": "chat/{channel}.{year}{month}{day}.txt",
            "public_mode": "0640",
            "private": "no",
            "max_open": "2",
            "timestamp": "%H:%M",
        }
    }

    def test_options(self):
        """path, public_mode, timestamp are used; private conversations are not logged."""
        self.say("hello", public=True)
        path = self.directory / "chat" / "#test.19700101.txt"
        self.assertEqual(path.read_text().splitlines(), ["[00:00] <user> hello"])
        self.assertEqual(stat.S_IMODE(path.stat().st_mode), 0o640)
        self.say("ping")
        self.assertFalse((self.directory / "chat" / "user.19700101.txt").exists())

    def test_open_file_cap(self):
        """No more than max_open files stay open; a closed one is reopened and appended to."""
        log = self.processor("Log")
        for channel in ("#a", "#b", "#c", "#a"):
            self.say(f"in {channel}", public=True, channel=channel)
            self.assertLessEqual(len(log.files.open_paths()), 2)
        self.assertEqual(
            [p.name for p in log.files.open_paths()], ["#c.19700101.txt", "#a.19700101.txt"]
        )
        lines = (self.directory / "chat" / "#a.19700101.txt").read_text().splitlines()
        self.assertEqual(lines, ["[00:00] <user> in #a", "[00:00] <user> in #a"])


class BadOptionTests(SynchronousTestCase):
    """Bad modes are refused with a clear message."""

    def test_bad_mode(self):
        """A mode that is not octal is a ValueError naming the option."""
        from plugins.log import Log

        log = Log("log", StubContext(reactor=Clock()), {"public_mode": "rw-r--r--"})
        error = self.assertRaises(ValueError, log.setup)
        self.assertIn("public_mode", str(error))


class ThreadTests(SynchronousTestCase):
    """LogFiles used from several threads."""

    def test_concurrent_writes(self):
        """Lines written from many threads at once are whole and none is lost."""
        folder = Path(self.mktemp())
        files = LogFiles(max_open=2)
        paths = [folder / f"{n}.log" for n in range(3)]

        def work(n: int) -> None:
            for i in range(200):
                files.write(paths[i % 3], [f"thread {n} line {i} " + "x" * 200], 0o600)

        threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        files.close()
        lines = [line for path in paths for line in path.read_text().splitlines()]
        self.assertEqual(len(lines), 8 * 200)
        self.assertTrue(
            all(line.endswith("x" * 200) and line.startswith("thread") for line in lines)
        )


class DelayedReplyTests(LogTestCase):
    """Replies made later (delayed calls) are logged too."""

    load = ["log", "remind"]
    public = True

    def test_reminder_logged(self):
        """A reminder said by the bot an hour later is in the channel's log."""
        self.say("botcore: remind me in 1 hour to stretch")
        self.advance(3600)
        self.assertEqual(self.lines("#test")[-1], "[01:00:00] <botcore> user: reminder: stretch")
