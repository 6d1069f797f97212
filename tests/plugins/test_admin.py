"""Tests of the admin plugin: plugins, sources, configuration and shutdown from chat, each
command refused without its permission."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path
from typing import Any, ClassVar

from twisted.logger import formatEvent, globalLogPublisher
from twisted.trial.unittest import SynchronousTestCase
from zope.interface.verify import verifyObject

from botcore.db.models import forget_models
from botcore.interfaces import IBotControl
from botcore.plugins.admin import set_ini_value
from botcore.testing import PluginTestCase

PLUGIN = '''
"""A plugin for the admin tests."""

from botcore.options import Option
from botcore.processor import Processor, match

VERSION = @VERSION@


class Greeter(Processor):
    token = Option("A secret token.", "", secret=True)
    word = Option("What to say.", "hi")

    @match("greet")
    def greet(self, event):
        event.addresponse(f"{self.word} v{VERSION}")
'''

EVERYTHING = "+plugins +sources +config +admin"


class AdminCase(PluginTestCase):
    """A bot with the admin plugin and a plugin folder holding a test plugin."""

    load = ("admin",)
    grants: str | None = EVERYTHING
    #: More sections for the config.
    more_config: ClassVar[dict[str, dict[str, str]]] = {}

    def setUp(self) -> None:
        self.folder = Path(self.mktemp()).absolute()
        (self.folder / "extra").mkdir(parents=True)
        self.extra = f"admintest_{abs(hash(self.id())) % 10**8}"
        self.write_plugin(1)
        self.addCleanup(self._forget)
        config: dict[str, Any] = {
            "bot": {"plugin_dirs": str(self.folder / "extra"), "load": [self.extra]},
            f"plugin:{self.extra}": {"token": "s3cret", "word": "hello"},
        }
        if self.grants:
            config["auth"] = {"grants": {"test:user": self.grants}}
        config.update(self.more_config)
        self.plugin_config = config
        super().setUp()
        self.clock.running = True

    def _forget(self) -> None:
        module = f"botcore.plugins.{self.extra}"
        for name in list(sys.modules):
            if name == module or name.startswith(module + "."):
                forget_models(name)
                del sys.modules[name]
        parent = sys.modules["botcore.plugins"]
        if self.extra in vars(parent):
            delattr(parent, self.extra)

    def write_plugin(self, version: int | None, text: str | None = None) -> Path:
        path = self.folder / "extra" / f"{self.extra}.py"
        old = path.stat().st_mtime if path.exists() else 0
        if text is None:
            text = PLUGIN.replace("@VERSION@", str(version))
        path.write_text(textwrap.dedent(text), encoding="utf-8")
        import os

        os.utime(path, (old + 2, old + 2))
        return path

    @property
    def local(self) -> Path:
        return self.directory / "bot.local.ini"


class BotGivenTests(AdminCase):
    """Which bot each processor is given: the admin plugin's the administrative Bot,
    every other plugin's only the bot's context."""

    def assertContext(self, plugin: str) -> None:
        processors = self.bot.plugins.loaded[plugin]
        self.assertTrue(processors, plugin)
        for processor in processors:
            self.assertIs(processor.bot, self.bot.context, processor)
            for name in ("plugins", "reload_config", "load_source"):
                self.assertFalse(hasattr(processor.bot, name), (processor, name))

    def test_admin_gets_the_bot(self):
        """The admin plugin's Admin processor is given the Bot, as IBotControl."""
        admin = self.processor("Admin")
        self.assertIs(admin.bot, self.bot)
        self.assertTrue(verifyObject(IBotControl, admin.bot))

    def test_others_get_the_context(self):
        """The core plugin's processors and a plugin from the folder are given the
        context, which has no plugins, reload_config or load_source."""
        self.assertContext("core")
        self.assertContext(self.extra)

    def test_loaded_from_chat(self):
        """A plugin loaded or reloaded from chat is given the context too."""
        self.assertResponseMatches("load plugin basic", r"^Loaded plugin basic")
        self.assertContext("basic")
        self.write_plugin(2)
        self.assertEqual(self.responses(f"reload {self.extra}"), [f"Reloaded plugin {self.extra}"])
        self.assertContext(self.extra)


class RefusedTests(AdminCase):
    """Without a permission every command is refused and changes nothing."""

    grants = None

    def assertRefused(self, text: str) -> None:
        event = self.say(text)
        self.assertEqual(event.complain, "notauthed", text)
        self.assertNotIn("Loaded", " ".join(str(r.text) for r in self.replies))

    def test_plugin_commands(self):
        """list/load/unload/reload of plugins need 'plugins'."""
        for command in ("list plugins", f"reload {self.extra}", f"unload plugin {self.extra}",
                        "load plugin basic"):  # fmt: skip
            self.assertRefused(command)
        self.assertIn(self.extra, self.bot.plugins.loaded)
        self.assertNotIn("basic", self.bot.plugins.loaded)

    def test_source_commands(self):
        """list/load/unload/reload/connect/disconnect of sources need 'sources'."""
        for command in ("list sources", "disconnect test", "unload source test",
                        "reload source test", "connect test", "load source other"):  # fmt: skip
            self.assertRefused(command)
        self.assertEqual(self.source.state, "connected")
        self.assertIs(self.bot.get_source("test"), self.source)

    def test_config_commands(self):
        """reread/get/set config need 'config'."""
        self.assertRefused("reread config")
        self.assertRefused("get config bot.name")
        self.assertRefused("set config bot.name to evil")
        self.assertFalse(self.local.exists())
        self.assertEqual(self.bot.name, "botcore")

    def test_die(self):
        """die needs 'admin'."""
        self.assertRefused("die")
        self.assertRefused("shutdown")
        self.assertTrue(self.clock.running)


class PluginCommandTests(AdminCase):
    """Plugins from chat."""

    def test_list(self):
        """list plugins names the loaded ones, with how often they were reloaded."""
        self.assertResponseMatches("list plugins", rf"^Loaded plugins: .*\badmin\b.*{self.extra}")
        self.say(f"reload {self.extra}")
        self.assertResponseMatches("list plugins", rf"{self.extra} \(reloaded 1x\)")

    def test_reload(self):
        """reload picks up new code."""
        self.assertEqual(self.responses("greet"), ["hello v1"])
        self.write_plugin(2)
        self.assertEqual(self.responses(f"reload {self.extra}"), [f"Reloaded plugin {self.extra}"])
        self.assertEqual(self.responses("greet"), ["hello v2"])

    def test_reload_broken(self):
        """A broken new version is refused with where it broke; the old keeps answering."""
        path = self.write_plugin(None, "x = 1\nraise KeyError('oops')\n")
        self.assertResponseMatches(
            f"reload plugin {self.extra}",
            rf"^I couldn't reload {self.extra}: plugin {self.extra}: KeyError: 'oops' "
            rf"\({path}, line 2\)$",
        )
        self.assertEqual(self.responses("greet"), ["hello v1"])

    def test_unload_load(self):
        """unload takes a plugin away, load brings it back."""
        self.assertEqual(self.responses(f"unload {self.extra}"), [f"Unloaded plugin {self.extra}"])
        self.assertNotIn("hello", " ".join(self.responses("greet")))
        self.assertResponseMatches(f"load {self.extra}", rf"^Loaded plugin {self.extra} \(1 ")
        self.assertEqual(self.responses("greet"), ["hello v1"])

    def test_unknown(self):
        """An unknown plugin is a plain answer listing what there is."""
        self.assertResponseMatches(
            "load nosuchplugin", r"^I couldn't load nosuchplugin: no plugin"
        )
        self.assertResponseMatches(
            "reload basic", r"^I couldn't reload basic: plugin basic is not"
        )

    def test_no_unloading_admin(self):
        """The admin plugin does not unload itself."""
        self.assertResponseMatches("unload admin", "I won't unload admin")
        self.assertIn("admin", self.bot.plugins.loaded)


class SourceCommandTests(AdminCase):
    """Sources from chat."""

    def test_list(self):
        """list sources gives each source's state."""
        self.assertEqual(self.responses("list sources"), ["Sources: test (connected)"])

    def test_disconnect_connect(self):
        """disconnect stops a source (still loaded), connect starts it again."""
        self.say("disconnect test")
        self.assertEqual(self.source.state, "stopped")
        self.assertIs(self.bot.get_source("test"), self.source)
        self.assertEqual(self.responses("connect test"), ["Connected source test (now connected)"])
        self.assertEqual(self.source.state, "connected")

    def test_unknown(self):
        """A source that is not loaded is a plain answer."""
        self.assertResponseMatches("disconnect nosuch", "^I couldn't disconnect nosuch: source")


class ConfigCommandTests(AdminCase):
    """The configuration from chat."""

    def test_get(self):
        """get config shows a value."""
        self.assertEqual(self.responses("get config bot.name"), ["bot.name = botcore"])
        self.assertEqual(
            self.responses(f"get config plugin:{self.extra}.word"),
            [f"plugin:{self.extra}.word = hello"],
        )

    def test_get_secret(self):
        """Secrets are never shown."""
        replies = self.responses(f"get config plugin:{self.extra}.token")
        self.assertEqual(replies, [f"plugin:{self.extra}.token is set (secret: not shown)"])

    def test_get_unknown(self):
        """An unknown key says which keys there are."""
        self.assertResponseMatches("get config bot.nosuch", r"has no option nosuch .*\bname\b")
        self.assertResponseMatches("get config nosection", "section.key")

    def test_set_writes_local_file(self):
        """set config writes the local override file, keeps its comments, and applies."""
        self.local.write_text("# my overrides\n[bot]\n# the name\nnames = b\n", encoding="utf-8")
        main = (self.directory / "bot.ini").read_text(encoding="utf-8")
        replies = self.responses(f"set config plugin:{self.extra}.word to howdy")
        self.assertEqual(replies, [f"Set plugin:{self.extra}.word to howdy in bot.local.ini"])
        self.assertEqual(self.responses("greet"), ["howdy v1"])
        self.assertEqual(
            self.local.read_text(encoding="utf-8"),
            "# my overrides\n[bot]\n# the name\nnames = b\n\n"
            f"[plugin:{self.extra}]\nword = howdy\n",
        )
        self.say("set config bot.names to c")
        self.assertIn("# the name\nnames = c\n", self.local.read_text(encoding="utf-8"))
        self.assertEqual(self.bot.names, ["botcore", "c"])
        self.assertEqual((self.directory / "bot.ini").read_text(encoding="utf-8"), main)

    def test_set_invalid(self):
        """A value the option refuses is not written."""
        self.assertResponseMatches(
            "set config plugin:core.limit_time to soon", r"^I can't set plugin:core.limit_time: "
        )
        self.assertFalse(self.local.exists())

    def test_set_secret_hidden(self):
        """Setting a secret does not repeat it."""
        replies = self.responses(f"set config plugin:{self.extra}.token to hush")
        self.assertEqual(replies, [f"Set plugin:{self.extra}.token to (secret) in bot.local.ini"])

    def test_reread(self):
        """reread config applies a changed file; a broken one is refused with every error."""
        self.local.write_text(f"[plugin:{self.extra}]\nword = yo\n", encoding="utf-8")
        self.assertEqual(self.responses("reread config"), ["Configuration reloaded"])
        self.assertEqual(self.responses("greet"), ["yo v1"])
        self.local.write_text("[bot]\nthreads = many\nnosuch = 1\n", encoding="utf-8")
        self.assertResponseMatches(
            "reread config", r"^Configuration not \(fully\) applied, 2 problems: .*threads.*nosuch"
        )
        self.assertEqual(self.responses("greet"), ["yo v1"])
        self.flushLoggedErrors()

    def test_die(self):
        """die answers, then stops the reactor."""
        self.assertEqual(self.responses("die"), ["Shutting down"])
        self.assertFalse(self.clock.running)


class SecretConfigTests(AdminCase):
    """Secrets set from chat (issue 12, item 15), through the bot with the log and urlgrab
    plugins writing their real file and table: a secret option's value (a password, a
    database URL) is in no log line, no reply, no table; a URL's password is masked; a
    value set from chat is never expanded (``${ENV:...}``)."""

    load = ("admin", "log", "urlgrab")
    # A source the config has (not started): its secret options are known as such.
    more_config: ClassVar[dict[str, dict[str, str]]] = {
        "source:irc": {"type": "irc", "enabled": "no", "servers": "tcp:127.0.0.1:1"}
    }

    def setUp(self) -> None:
        self.logged: list[str] = []

        def observe(event: dict[str, Any]) -> None:
            self.logged.append(formatEvent(event) or "")

        globalLogPublisher.addObserver(observe)
        self.addCleanup(globalLogPublisher.removeObserver, observe)
        super().setUp()

    def logs(self) -> str:
        """Every conversation log file and every line the bot logged."""
        self.processor("Log").flush()  # what the log keeps in memory, written
        folder = self.directory / "logs"
        files = sorted(folder.rglob("*.log")) if folder.exists() else []
        self.assertTrue(files)
        texts = [p.read_text(encoding="utf-8") for p in files]
        return "\n".join(texts + self.logged)

    def grabbed(self) -> list[str]:
        from botcore.plugins.urlgrab import GrabbedURL

        session = self.bot.databases["main"].session_factory()
        try:
            return [row.url for row in session.query(GrabbedURL)]
        finally:
            session.close()

    def test_source_password(self):
        """``set config source:NAME.account_password to X`` in private: set, X in no
        reply, log line or table (for a source not in the config too)."""
        for path in ("source:irc.account_password", "source:other.server_password"):
            replies = self.responses(f"set config {path} to hunter2")
            self.assertEqual(len(replies), 1)
            self.assertNotIn("hunter2", replies[0])
        self.assertIn("account_password = hunter2", self.local.read_text(encoding="utf-8"))
        self.assertEqual(
            self.responses("get config source:irc.account_password"),
            ["source:irc.account_password is set (secret: not shown)"],
        )
        logs = self.logs()
        self.assertNotIn("hunter2", logs)
        self.assertIn("set config source:irc.account_password to [secret]", logs)

    def test_secret_refused_value_not_quoted(self):
        """A secret value the option refuses is not quoted back or logged."""
        replies = self.responses("set config database:main.retries to hunter2")
        self.assertIn("hunter2", replies[0])  # not a secret option: said as usual
        replies = self.responses("set config database:main.url to pa55word is no url")
        self.assertEqual(
            replies,
            [
                "I can't set database:main.url: expected a SQLAlchemy URL such as "
                "sqlite:///bot.sqlite or postgresql+psycopg://user@host/db"
            ],
        )
        self.assertNotIn("pa55word", self.logs())

    def test_in_public(self):
        """In public the secret is taken out, not set, and the sender warned."""
        replies = self.responses(
            "botcore: set config source:irc.account_password to hunter2", public=True
        )
        self.assertEqual(len(replies), 1)
        self.assertIn("Don't tell me secrets in public", replies[0])
        self.assertFalse(self.local.exists())
        self.assertNotIn("hunter2", self.logs())

    def test_database_url(self):
        """database:NAME.url is a secret: set from chat, its password is in no log or
        table; get config shows it masked."""
        url = "postgresql+psycopg://bot:pa55word@127.0.0.1:5999/botcore"
        replies = self.responses(f"set config database:spare.url to {url}")
        self.assertEqual(
            replies,
            [
                "Set database:spare.url to postgresql+psycopg://bot:***@127.0.0.1:5999/botcore "
                "in bot.local.ini"
            ],
        )
        self.assertEqual(
            self.responses("get config database:spare.url"),
            ["database:spare.url = postgresql+psycopg://bot:***@127.0.0.1:5999/botcore"],
        )
        self.assertNotIn("pa55word", self.logs())
        self.assertEqual(self.grabbed(), [])
        # Other URLs are still grabbed (the scrubbing is of the option's value only).
        self.say("see https://example.org/page", public=True)
        self.assertEqual(self.grabbed(), ["https://example.org/page"])

    def test_environment_never_expanded(self):
        """A value set from chat stays as written: ${ENV:HOME} is not the home folder."""
        replies = self.responses("set config bot.names to ${ENV:HOME}, $${x}")
        self.assertEqual(replies, ["Set bot.names to ${ENV:HOME}, $${x} in bot.local.ini"])
        self.assertEqual(
            self.responses("get config bot.names"), ["bot.names = ${ENV:HOME}, $${x}"]
        )
        self.assertEqual(self.bot.names, ["botcore", "${ENV:HOME}", "$${x}"])
        self.responses("set config source:irc.account_password to ${ENV:HOME}")
        section = self.bot.config.section("source:irc")
        self.assertEqual(section["account_password"], "${ENV:HOME}")

    def test_empty_value(self):
        """``to ""`` sets an empty value (issue 13, item 10)."""
        replies = self.responses(f'set config plugin:{self.extra}.word to ""')
        self.assertEqual(replies, [f'Set plugin:{self.extra}.word to "" (empty) in bot.local.ini'])
        self.assertEqual(self.responses(f"get config plugin:{self.extra}.word"),
                         [f"plugin:{self.extra}.word = (empty)"])  # fmt: skip
        self.assertEqual(self.responses("greet"), [" v1"])
        self.responses("set config source:irc.account_password to ''")
        self.assertEqual(self.bot.config.section("source:irc")["account_password"], "")

    def test_control_characters_refused(self):
        """A value that would break its INI line (or hide in a log) is refused."""
        for value in ("a\rb", "a\x00b", "a\u2028b", "a\x85[auth]"):
            replies = self.responses(f"set config bot.names to {value}")
            self.assertEqual(
                replies,
                ["I can't set bot.names: a value cannot hold line breaks or control characters"],
            )
        self.assertFalse(self.local.exists())


class IniEditorTests(SynchronousTestCase):
    """set_ini_value: a line-based editor that keeps everything else."""

    TEXT = "; head\n[a]\n# comment\nx = 1\n  more\ny = 2\n\n[b]\nz = 3\n"

    def test_replace_with_continuation(self):
        """A key with continuation lines is replaced whole; the rest is untouched."""
        self.assertEqual(
            set_ini_value(self.TEXT, "a", "x", "9"),
            "; head\n[a]\n# comment\nx = 9\ny = 2\n\n[b]\nz = 3\n",
        )

    def test_new_key(self):
        """A new key goes after the section's last setting."""
        self.assertEqual(
            set_ini_value(self.TEXT, "a", "w", "5"),
            "; head\n[a]\n# comment\nx = 1\n  more\ny = 2\nw = 5\n\n[b]\nz = 3\n",
        )

    def test_new_section(self):
        """A new section goes at the end."""
        self.assertEqual(set_ini_value("[a]\nx = 1", "c", "k", "v"), "[a]\nx = 1\n\n[c]\nk = v\n")
        self.assertEqual(set_ini_value("", "c", "k", "v"), "[c]\nk = v\n")

    def test_multiline(self):
        """A value of several lines is indented after the first."""
        self.assertEqual(set_ini_value("[b]\n", "b", "k", "1\n2"), "[b]\nk = 1\n    2\n")
