"""Tests for the log plugin: what is written where, date rotation, file modes, the cap on
open files, and writes from many threads at once."""

from __future__ import annotations

import stat
import threading
from pathlib import Path

from twisted.internet.task import Clock
from twisted.logger import formatEvent, globalLogPublisher
from twisted.trial.unittest import SynchronousTestCase

from botcore.config import ConfigErrors
from botcore.event import EventType, Response, Sender
from botcore.plugins.log import MAX_PART, LogFiles, safe_part
from botcore.processor import Processor, handler, match
from botcore.settings import read_config
from botcore.testing import PluginTestCase, StubContext

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
        """The file of ``channel``'s day, with every line logged so far written to it."""
        self.flush()
        return self.directory / "logs" / source / channel / f"{day}.log"

    def flush(self) -> None:
        """Write what the log keeps in memory (as its periodic flush does)."""
        self.processor("Log").flush()

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
        self.flush()
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
            self.flush()
            self.assertLessEqual(len(log.files.open_paths()), 2)
        self.assertEqual(
            [p.name for p in log.files.open_paths()], ["#c.19700101.txt", "#a.19700101.txt"]
        )
        lines = (self.directory / "chat" / "#a.19700101.txt").read_text().splitlines()
        self.assertEqual(lines, ["[00:00] <user> in #a", "[00:00] <user> in #a"])


class BadOptionTests(SynchronousTestCase):
    """Bad modes and path templates are refused with a clear message: by the config's
    validation (so --check and SIGHUP report them), and by setup for values given by hand."""

    def test_bad_mode(self):
        """A mode that is not octal is a ValueError naming the option."""
        from botcore.plugins.log import Log

        log = Log("log", StubContext(reactor=Clock()), {"public_mode": "rw-r--r--"})
        error = self.assertRaises(ValueError, log.setup)
        self.assertIn("public_mode", str(error))

    def check(self, values: dict[str, str]) -> list[str]:
        folder = Path(self.mktemp())
        folder.mkdir()
        lines = [f"{key} = {value}" for key, value in values.items()]
        path = folder / "bot.ini"
        path.write_text("[plugin:log]\n" + "\n".join(lines) + "\n", encoding="utf-8")
        try:
            read_config(path, environ={})
        except ConfigErrors as e:
            return [str(error) for error in e.errors]
        return []

    def test_config_refuses_bad_values(self):
        """public_mode = 999, a mode that is no number, a path template with an unknown
        field, a positional field or a broken brace are config errors of their keys."""
        for key, value, expected in [
            ("public_mode", "999", "expected an octal file mode"),
            ("private_mode", "rw", "expected an octal file mode"),
            ("path", "logs/{nick}.log", "{nick}"),
            ("path", "logs/{}.log", "{}"),
            ("path", "logs/{channel.log", "expected a template"),
            ("path", "logs/{channel!r}.log", "{channel!r}"),
        ]:
            errors = self.check({key: value})
            self.assertEqual(len(errors), 1, (key, value, errors))
            self.assertIn(f"[plugin:log] {key}: ", errors[0])
            self.assertIn(expected, errors[0])
        self.assertEqual(self.check({"public_mode": "0640", "path": "l/{day}/{channel}"}), [])


class IntegrityTests(LogTestCase):
    """Nothing said can forge a line, write raw control bytes or break the file names."""

    public = True
    extra_processors = [Secret, Relay]

    def test_line_breaks_escaped(self):
        """Every Unicode line break and control character is escaped: one message is one
        line, whatever it holds."""
        self.say("hi\u2028<admin> I give all my rights to mallory")
        self.say("a\x00b\x1b[31mred\rc\nd\x85e\u2029f\u202eg\x0bh\x0ci\x1cj\ttab")
        self.say("emoji \U0001f468\u200d\U0001f469 ok")
        text = self.log_file("#test").read_text(encoding="utf-8")
        self.assertEqual(
            text.split("\n"),
            [
                "[00:00:00] <user> hi\\u2028<admin> I give all my rights to mallory",
                "[00:00:00] <user> a\\x00b\\x1b[31mred\\rc\\nd\\x85e\\u2029f\\u202eg"
                "\\x0bh\\x0ci\\x1cj\\ttab",
                "[00:00:00] <user> emoji \U0001f468\u200d\U0001f469 ok",
                "",
            ],
        )

    def test_nick_and_reply_escaped(self):
        """Nicks, channel names in state lines and the bot's replies are escaped too; a
        reply of several lines gives each its own line with the bot's nick."""
        sender = Sender("test:x", "x", "x\u2028<admin>")
        self.say("hello", sender=sender)
        self.say("botcore: relay #test one\u2028two")
        lines = self.lines("#test")
        self.assertEqual(lines[0], "[00:00:00] <x\\u2028<admin>> hello")
        self.assertEqual(lines[-1], "[00:00:00] <botcore> one\\u2028two")
        log = self.processor("Log")
        response = Response("first\nsecond", target="#test")
        log.log_response(self.make_event("x"), response, self.bot.now())
        self.assertEqual(
            self.lines("#test")[-2:],
            ["[00:00:00] <botcore> first", "[00:00:00] <botcore> second"],
        )

    def test_long_channel_name(self):
        """An over-long channel name is logged to a bounded file name (the hash of the
        whole keeps distinct names apart), message after message."""
        for channel in ("#" + "x" * 5000, "#" + "x" * 4999 + "y", "#" + "\u00e9" * 300):
            for n in range(2):
                self.say(f"line {n}", channel=channel)
        self.flush()
        folders = sorted(p.name for p in (self.directory / "logs" / "test").iterdir())
        self.assertEqual(len(folders), 3)
        for name in folders:
            self.assertLessEqual(len(name.encode("utf-8")), MAX_PART)
            files = list((self.directory / "logs" / "test" / name).iterdir())
            self.assertEqual(len(files[0].read_text().splitlines()), 2)
        self.assertEqual(len(safe_part("#" + "x" * 5000).encode()), MAX_PART)
        self.assertNotEqual(safe_part("#" + "x" * 5000), safe_part("#" + "x" * 4999 + "y"))
        self.assertEqual(safe_part("#short"), "#short")

    def test_unwritable_logged_once(self):
        """A log that cannot be written is one error line, not one per message, and the
        messages are still handled."""
        (self.directory / "logs").write_text("not a folder")
        logged: list[str] = []

        def observe(event):
            logged.append(formatEvent(event))

        globalLogPublisher.addObserver(observe)
        self.addCleanup(globalLogPublisher.removeObserver, observe)
        replies = []
        for _ in range(3):
            replies.append(self.responses("botcore: ping"))
            self.flush()
        self.assertEqual(replies, [["user: pong"]] * 3)
        errors = [line for line in logged if "cannot write the log" in line]
        self.assertEqual(len(errors), 1, logged)


class ConversationCapTests(LogTestCase):
    """A flood of strangers (or made-up channels) on one source makes at most
    max_conversations files a day; the rest go to one overflow file naming each."""

    extra_processors = [Secret, Relay]
    plugin_config = {"plugin:log": {"max_conversations": "3"}}

    def test_cap_and_overflow(self):
        for n in range(50):
            self.say(f"hello {n}", sender=f"stranger{n}")
        self.say("hello again", sender="stranger1")
        self.say("in public", public=True)
        self.flush()
        folders = sorted(p.name for p in (self.directory / "logs" / "test").iterdir())
        self.assertEqual(folders, [",overflow", "stranger0", "stranger1", "stranger2"])
        said = [line for line in self.lines("stranger1") if "<stranger1>" in line]
        self.assertEqual(
            said, ["[00:00:00] <stranger1> hello 1", "[00:00:00] <stranger1> hello again"]
        )
        overflow = self.lines(",overflow")
        self.assertIn("[00:00:00] (stranger3) <stranger3> hello 3", overflow)
        self.assertIn("[00:00:00] (#test) <user> in public", overflow)
        strangers = [line for line in overflow if "> hello " in line]
        self.assertEqual(len(strangers), 47)
        # The next day counts afresh.
        self.advance(DAY)
        self.say("next day", sender="stranger9")
        self.assertEqual(
            self.lines("stranger9", "1970-01-02")[0], "[00:00:00] <stranger9> next day"
        )


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


class WriteBehindTests(LogTestCase):
    """Lines are kept in memory and written every flush_interval, when max_buffered are
    waiting, and when the plugin stops: a clean stop, an unload or a reload loses none."""

    public = True
    plugin_config = {"plugin:log": {"flush_interval": "5", "max_buffered": "10"}}

    def path(self, channel: str = "#test") -> Path:
        # Not log_file: that one flushes first.
        return self.directory / "logs" / "test" / channel / "1970-01-01.log"

    def written(self, channel: str = "#test") -> list[str]:
        path = self.path(channel)
        return path.read_text(encoding="utf-8").splitlines() if path.exists() else []

    def test_written_each_interval(self):
        """Nothing is written before the interval has passed; then every line, in order."""
        self.say("one")
        self.say("two")
        self.assertEqual(self.written(), [])
        self.advance(4)
        self.assertEqual(self.written(), [])
        self.advance(1)
        self.assertEqual(self.written(), ["[00:00:00] <user> one", "[00:00:00] <user> two"])
        self.say("three")
        self.advance(5)
        self.assertEqual(self.written()[-1], "[00:00:05] <user> three")

    def test_written_when_max_buffered_wait(self):
        """The line that makes max_buffered waiting writes them all at once."""
        for n in range(9):
            self.say(f"line {n}")
        self.assertEqual(self.written(), [])
        self.say("line 9")
        self.assertEqual(len(self.written()), 10)
        self.assertEqual(self.written()[-1], "[00:00:00] <user> line 9")

    def test_clean_stop_loses_nothing(self):
        """What is waiting when the bot stops is written before it has stopped."""
        self.say("hello")
        self.say("botcore: ping")
        self.assertEqual(self.written(), [])
        self.successResultOf(self.bot.stopService())
        self.assertEqual(
            self.written(),
            [
                "[00:00:00] <user> hello",
                "[00:00:00] <user> botcore: ping",
                "[00:00:00] <botcore> user: pong",
            ],
        )

    def test_reload_and_unload_flush(self):
        """Reloading writes what the old version kept; the new one goes on after it;
        unloading writes what is left."""
        self.say("before")
        self.successResultOf(self.bot.plugins.reload_plugin("log"))
        self.advance(0)
        self.assertEqual(self.written(), ["[00:00:00] <user> before"])
        self.say("after")
        self.bot.plugins.unload_plugin("log")
        self.advance(0)
        self.assertEqual(self.written(), ["[00:00:00] <user> before", "[00:00:00] <user> after"])

    def test_order_across_threads(self):
        """Lines logged from many threads while others flush reach each file whole, once
        each, in the order each thread logged them."""
        log = self.processor("Log")
        when = self.bot.now()

        def work(n: int) -> None:
            for i in range(300):
                log.write("test", f"#c{n % 3}", True, f"t{n} {i}", when)
                if i % 50 == 0:
                    log.flush()

        threads = [threading.Thread(target=work, args=(n,)) for n in range(6)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        log.flush()
        for channel in range(3):
            lines = self.written(f"#c{channel}")
            self.assertEqual(len(lines), 2 * 300)
            for n in (channel, channel + 3):
                mine = [int(line.split()[-1]) for line in lines if f" t{n} " in line]
                self.assertEqual(mine, list(range(300)))


class WriteThroughTests(LogTestCase):
    """flush_interval = 0 writes every line at once."""

    public = True
    plugin_config = {"plugin:log": {"flush_interval": "0"}}

    def test_at_once(self):
        """The line is in the file when the event is done, with no flush."""
        self.say("now")
        path = self.directory / "logs" / "test" / "#test" / "1970-01-01.log"
        self.assertEqual(path.read_text().splitlines(), ["[00:00:00] <user> now"])


class FoldedNamesTests(LogTestCase):
    """Folders are named by the channel as the network compares names, and no name, folded
    or not, leads out of the log folder."""

    public = True

    def folders(self) -> list[str]:
        self.flush()
        return sorted(p.name for p in (self.directory / "logs" / "test").iterdir())

    def test_case_shares_one_folder(self):
        """'#Chan' and '#chan' are one channel: one folder, one file."""
        self.say("upper", channel="#Chan")
        self.say("lower", channel="#chan")
        self.assertEqual(self.folders(), ["#chan"])
        self.assertEqual(
            self.lines("#chan"), ["[00:00:00] <user> upper", "[00:00:00] <user> lower"]
        )

    def test_network_casemapping(self):
        """A source that folds by its own casemapping (IRC's rfc1459: '[' is '{') decides."""
        table = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ[]\\~", "abcdefghijklmnopqrstuvwxyz{}|^")
        self.source.fold = lambda name: name.translate(table)  # type: ignore[method-assign]
        self.say("a", channel="#Bot[dev]")
        self.say("b", channel="#bot{dev}")
        self.assertEqual(self.folders(), ["#bot{dev}"])

    def test_hostile_names_stay_inside(self):
        """Names with separators or dot-dot (also fullwidth ones, which NFKC would fold
        into them) are one path component inside the source's folder."""
        for channel in (
            "#a/../../x",
            "\uff0e\uff0e",
            "..",
            "#\uff0f..\uff0fetc",
            "#a\\b",
            "#\x00",
        ):
            self.say("hostile", channel=channel)
        root = (self.directory / "logs" / "test").resolve()
        for name in self.folders():
            folder = (root / name).resolve()
            self.assertEqual(folder.parent, root, name)
        self.assertEqual([p.resolve() for p in (self.directory / "logs").iterdir()], [root])
