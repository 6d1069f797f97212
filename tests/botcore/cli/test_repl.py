"""Tests for botcore.cli.repl, the ``botcore-plugin`` console: the real bot driven inline from a
StringIO, with the core and basic plugins (or the test fixture plugins) and SQLite."""

from __future__ import annotations

import io
import os
from pathlib import Path

from twisted.trial.unittest import SynchronousTestCase

from botcore.cli.repl import Console, build_config, main
from botcore.event import Response
from botcore.settings import read_config
from botcore.testing import InlineReactor, InlineThreadPool

FIXTURES = "tests.botcore.fixtures_plugins"


class ConsoleTestCase(SynchronousTestCase):
    """Runs ``main()`` on given input lines with an inline reactor and thread pool."""

    def run_console(
        self, argv: list[str], lines: str = "", **kw: object
    ) -> tuple[int, list[str], str]:
        """(exit status, output lines, error output) of a whole session."""
        stdout, stderr = io.StringIO(), io.StringIO()
        self.reactor = InlineReactor()
        code = main(
            argv,
            stdin=io.StringIO(lines),
            stdout=stdout,
            stderr=stderr,
            reactor=self.reactor,
            threadpool=InlineThreadPool(),
            **kw,
        )
        self.assertEqual(self.reactor.getDelayedCalls(), [])
        return code, stdout.getvalue().splitlines(), stderr.getvalue()


class PrivateTests(ConsoleTestCase):
    """Lines are private messages to the bot by default."""

    def test_ping(self):
        """``ping`` is answered with ``> pong``."""
        code, out, err = self.run_console(["basic"], "ping\n")
        self.assertEqual((code, out, err), (0, ["> pong"], ""))

    def test_echo(self):
        """``echo hi`` is answered with ``> hi``."""
        code, out, _ = self.run_console(["basic"], "echo hi\n")
        self.assertEqual((code, out), (0, ["> hi"]))

    def test_lines_in_order(self):
        """Each line is answered before the next is read, in order."""
        _, out, _ = self.run_console(["basic"], "ping\necho one\necho two\n")
        self.assertEqual(out, ["> pong", "> one", "> two"])

    def test_not_understood(self):
        """An addressed message nobody handles gets the core's puzzled reply."""
        _, out, _ = self.run_console(["basic"], "frobnicate the widgets\n")
        self.assertEqual(len(out), 1)
        self.assertTrue(out[0].startswith("> "), out)

    def test_blank_lines_ignored(self):
        """Blank lines dispatch nothing."""
        _, out, _ = self.run_console(["basic"], "\n   \nping\n")
        self.assertEqual(out, ["> pong"])

    def test_acknowledgement(self):
        """A plugin's True reply prints as one of the core's acknowledgements."""
        from botcore.plugins.core import Address

        _, out, err = self.run_console(["factoid"], "coffee is hot\n")
        # The factoid plugin then says, in private, that facts are public.
        self.assertEqual(len(out), 2, out)
        self.assertIn(out[0].removeprefix("> "), Address.acknowledgements.default)
        self.assertEqual(err, "")

    def test_acknowledgement_without_core(self):
        """With --no-core a True reply still prints as a word, and a warning on stderr
        says the core Address processor is missing."""
        _, out, err = self.run_console(["--no-core", "factoid"], "coffee is hot\n")
        self.assertEqual(out[0], "> Okay")
        self.assertIn("Address", err)

    def test_without_core(self):
        """With --no-core a private message still reaches the plugin, which answers."""
        code, out, _ = self.run_console(["--no-core", "basic"], "ping\n")
        self.assertEqual((code, out), (0, ["> pong"]))


class PublicTests(ConsoleTestCase):
    """In public mode lines are said in a channel, where the bot must be addressed."""

    def test_unaddressed_ignored(self):
        """An unaddressed ``ping`` in public gets no answer."""
        _, out, _ = self.run_console(["--public", "basic"], "ping\n")
        self.assertEqual(out, [])

    def test_addressed_answered(self):
        """``botcore: ping`` in public is answered, addressed to the sender."""
        _, out, _ = self.run_console(["--public", "--nick", "alice", "basic"], "botcore: ping\n")
        self.assertEqual(out, ["> alice: pong"])

    def test_switch_modes(self):
        """``/public`` and ``/private`` switch between the two modes."""
        _, out, _ = self.run_console(["basic"], "/public\nping\nbotcore, ping\n/private\nping\n")
        self.assertEqual(
            [line for line in out if not line.startswith("-- ")], ["> user: pong", "> pong"]
        )

    def test_public_with_channel(self):
        """``/public #room`` moves to that channel."""
        _, out, _ = self.run_console(["basic"], "/public #room\n")
        self.assertIn("#room", out[0])

    def test_name_from_config(self):
        """With -c, the bot answers to the [bot] name of that file."""
        folder = Path(os.path.abspath(self.mktemp()))
        folder.mkdir()
        path = folder / "bot.ini"
        path.write_text("[bot]\nname = robo\n", encoding="utf-8")
        _, out, _ = self.run_console(
            ["-c", str(path), "--public", "basic"], "botcore: ping\nrobo: ping\n"
        )
        self.assertEqual(out, ["> user: pong"])

    def test_plugin_dirs_and_options_from_config(self):
        """With -c, a plugin found only in that file's [bot] plugin_dirs (relative to the
        file) is loaded, with the options of its [plugin:NAME] section."""
        folder = Path(os.path.abspath(self.mktemp()))
        (folder / "mine").mkdir(parents=True)
        (folder / "mine" / "tally.py").write_text(
            "from botcore.options import IntOption\n"
            "from botcore.processor import Processor, match\n\n\n"
            "class Tally(Processor):\n"
            '    """Counts."""\n\n'
            '    start = IntOption("Where counting starts.", 0)\n\n'
            '    @match("tally")\n'
            "    def tally(self, event):\n"
            '        event.addresponse(f"tally is {self.start}")\n',
            encoding="utf-8",
        )
        path = folder / "bot.ini"
        path.write_text(
            "[bot]\nplugin_dirs = mine\n\n[plugin:tally]\nstart = 41\n", encoding="utf-8"
        )
        code, out, err = self.run_console(["-c", str(path), "--no-core", "tally"], "tally\n")
        self.assertEqual((code, out, err), (0, ["> tally is 41"], ""))

    def test_unknown_plugin_with_config(self):
        """A plugin in neither the config's plugin_dirs nor the bundled plugins is named,
        with status 2."""
        folder = Path(os.path.abspath(self.mktemp()))
        folder.mkdir()
        path = folder / "bot.ini"
        path.write_text("[bot]\nplugin_dirs = nowhere\n", encoding="utf-8")
        code, out, err = self.run_console(["-c", str(path), "--no-core", "nosuch"], "ping\n")
        self.assertEqual((code, out), (2, []))
        self.assertIn("nosuch", err)
        self.assertNotIn("Traceback", err)


class CommandTests(ConsoleTestCase):
    """The console's own slash commands and the end of input."""

    def test_nick(self):
        """``/nick NAME`` changes who is talking."""
        _, out, _ = self.run_console(["--public", "basic"], "/nick bob\nbotcore: ping\n")
        self.assertEqual(out, ["-- you are now bob", "> bob: pong"])

    def test_nick_needs_a_name(self):
        """``/nick`` without a name explains itself and changes nothing."""
        _, out, _ = self.run_console(["--public", "basic"], "/nick\nbotcore: ping\n")
        self.assertEqual(out, ["-- usage: /nick NAME", "> user: pong"])

    def test_quit(self):
        """``/quit`` ends the session: later lines are not read."""
        code, out, _ = self.run_console(["basic"], "ping\n/quit\nping\n")
        self.assertEqual((code, out), (0, ["> pong"]))

    def test_unknown_command(self):
        """An unknown ``/command`` lists the known ones."""
        _, out, _ = self.run_console(["basic"], "/frob\n")
        self.assertEqual(len(out), 1)
        self.assertIn("unknown command /frob", out[0])
        self.assertIn("/quit", out[0])

    def test_eof(self):
        """End of input ends the session cleanly, even with nothing typed."""
        code, out, err = self.run_console(["basic"], "")
        self.assertEqual((code, out, err), (0, [], ""))


class ErrorTests(ConsoleTestCase):
    """Bad command lines, unknown plugins and plugins that fail."""

    def test_unknown_plugin(self):
        """An unknown plugin is one line on stderr and exit status 2."""
        code, out, err = self.run_console(["nosuchplugin"], "ping\n")
        self.assertEqual(code, 2)
        self.assertEqual(out, [])
        self.assertEqual(len(err.splitlines()), 1, err)
        self.assertIn("no plugin 'nosuchplugin'", err)

    def test_unknown_processor(self):
        """``PLUGIN.Class`` naming no processor of the plugin is exit status 2."""
        code, _, err = self.run_console(["basic.Nope"])
        self.assertEqual(code, 2)
        self.assertIn("no processor 'Nope'", err)

    def test_no_plugin_given(self):
        """Without a plugin the usage is shown and the exit status is 2."""
        code, _, err = self.run_console([])
        self.assertEqual(code, 2)
        self.assertIn("usage: botcore-plugin", err)

    def test_missing_config(self):
        """A -c file that does not exist is reported without a traceback, status 2."""
        code, _, err = self.run_console(["-c", os.path.abspath("nonexistent.ini"), "basic"])
        self.assertEqual(code, 2)
        self.assertIn("file not found", err)
        self.assertNotIn("Traceback", err)

    def test_plugin_fails_to_load(self):
        """A plugin whose setup raises is named on stderr and the exit status is 1."""
        code, out, err = self.run_console(
            ["--no-core", "broken"], "ping\n", plugin_package=FIXTURES
        )
        self.assertEqual((code, out), (1, []))
        self.assertIn("plugin broken failed to load: RuntimeError: broken on purpose", err)
        self.flushLoggedErrors(RuntimeError)

    def test_other_package(self):
        """Plugins can come from another package (with --no-core)."""
        code, out, _ = self.run_console(
            ["--no-core", "echo"], "shout hey\n", plugin_package=FIXTURES
        )
        self.assertEqual((code, out), (0, ["> HEY"]))


class OutputTests(SynchronousTestCase):
    """How the console source prints the kinds of replies."""

    def setUp(self):
        folder = Path(os.path.abspath(self.mktemp()))
        folder.mkdir()
        self.out = io.StringIO()
        self.console = Console(build_config(folder, []), self.out, nick="alice")

    def test_action(self):
        """An action prints as ``* bot text``."""
        self.console.source.send(Response("waves", target="alice", action=True))
        self.assertEqual(self.out.getvalue(), "* botcore waves\n")

    def test_notice(self):
        """A notice prints as ``-bot- text``."""
        self.console.source.send(Response("psst", target="alice", notice=True))
        self.assertEqual(self.out.getvalue(), "-botcore- psst\n")

    def test_multiline(self):
        """Each line of a multi-line reply gets its own ``>``."""
        self.console.source.send(Response("one\ntwo", target="alice"))
        self.assertEqual(self.out.getvalue(), "> one\n> two\n")

    def test_elsewhere(self):
        """A reply for another conversation is labelled with its target."""
        self.console.source.send(Response("hello", target="#other"))
        self.assertEqual(self.out.getvalue(), "[#other] > hello\n")


class BuildConfigTests(SynchronousTestCase):
    """The throwaway configuration the console runs on."""

    def test_no_sources_and_temporary_database(self):
        """Sources of a -c file are dropped and the database is a SQLite file in the
        temporary folder; [plugin:*] sections are kept."""
        folder = Path(os.path.abspath(self.mktemp()))
        folder.mkdir()
        path = folder / "bot.ini"
        path.write_text(
            "[plugin:core]\nlimit_messages = 7\n[database:main]\nurl = sqlite:///elsewhere.db\n",
            encoding="utf-8",
        )
        read_config(path)  # the file itself is valid
        work = folder / "work"
        work.mkdir()
        config = build_config(work, ["core", "basic"], str(path))
        self.assertEqual(config.names("source"), [])
        self.assertEqual(config.names("database"), ["main"])
        self.assertIn(str(work), config.section("database:main")["url"])
        self.assertEqual(config.section("plugin:core")["limit_messages"], 7)
        self.assertEqual(config.section("bot")["load"], ["core", "basic"])
        self.assertFalse(config.section("bot")["autoload"])
