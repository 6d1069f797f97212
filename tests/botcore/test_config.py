"""Tests for botcore.config (and the bot's section rules in botcore.bot.read_config): one
test per kind of error, environment expansion, the local override file, and every error
reported at once."""

from __future__ import annotations

import os
from pathlib import Path

from twisted.trial.unittest import SynchronousTestCase

from botcore.config import (
    ConfigError,
    ConfigErrors,
    UnknownSection,
    default_local_path,
    escape_env,
    expand_env,
    load_config,
    split_option_path,
)
from botcore.loading.reloader import Reloader
from botcore.options import BoolOption, IntOption, Option, options_of
from botcore.settings import read_config

FIXTURE_PLUGINS = "tests.botcore.fixtures_plugins"
FIXTURE_SOURCES = "tests.botcore.fixtures_sources"


class BotOptions:
    name = Option("The name.", "bot")
    threads = IntOption("Threads.", 10, min=1)
    verbose = BoolOption("Chatty.", False)
    token = Option("A secret token.", secret=True)


def resolve(section, values):
    """A resolver knowing only [bot]."""
    if section == "bot":
        return options_of(BotOptions)
    raise UnknownSection("unknown section (expected [bot])")


class ConfigFiles(SynchronousTestCase):
    """Helpers writing INI files into a fresh folder."""

    def setUp(self):
        self.folder = Path(self.mktemp()).absolute()
        self.folder.mkdir()

    def write(self, text: str, name: str = "bot.ini") -> Path:
        path = self.folder / name
        path.write_text(text.lstrip(), encoding="utf-8")
        return path

    def errors(self, path, resolver=resolve, **kw) -> list[ConfigError]:
        with self.assertRaises(ConfigErrors) as raised:
            load_config(path, resolver, environ=kw.pop("environ", {}), **kw)
        return raised.exception.errors

    def bot_errors(self, path, **kw) -> list[ConfigError]:
        with self.assertRaises(ConfigErrors) as raised:
            read_config(path, environ={}, reloader=fixture_reloader(), **kw)
        return raised.exception.errors


def fixture_reloader() -> Reloader:
    return Reloader(plugin_package=FIXTURE_PLUGINS, source_package=FIXTURE_SOURCES)


class ErrorKindTests(ConfigFiles):
    """One test per kind of configuration error; each names where it is and what is wrong."""

    def test_missing_file(self):
        """A missing main file is one error naming the file."""
        path = self.folder / "absent.ini"
        self.assertEqual(self.errors(path), [ConfigError(str(path), None, None, "file not found")])

    def test_syntax_error(self):
        """An INI syntax error names the file and the line."""
        path = self.write("[bot]\nname = x\nthis is not a key\n")
        [error] = self.errors(path)
        self.assertEqual(error.file, str(path))
        self.assertEqual(
            error.message,
            "line 3: expected 'key = value' or a [section], found 'this is not a key'",
        )

    def test_key_before_section(self):
        """A key before any section header is an error naming its line."""
        [error] = self.errors(self.write("name = x\n[bot]\n"))
        self.assertEqual(error.message, "line 1: expected a [section] header, found 'name = x'")

    def test_duplicate_key(self):
        """A key given twice in one section is an error naming section, key and line."""
        [error] = self.errors(self.write("[bot]\nname = a\nname = b\n"))
        self.assertEqual(
            (error.section, error.key, error.message),
            ("bot", "name", "line 3: the key appears twice in this section"),
        )

    def test_unknown_section(self):
        """A section the resolver does not know is an error naming the section."""
        path = self.write("[bot]\n[botz]\nname = x\n")
        self.assertEqual(
            self.errors(path),
            [ConfigError(str(path), "botz", None, "unknown section (expected [bot])")],
        )

    def test_unknown_key(self):
        """An unknown key is an error naming it and listing the known keys."""
        path = self.write("[bot]\ncolour = red\n")
        self.assertEqual(
            self.errors(path),
            [
                ConfigError(
                    str(path),
                    "bot",
                    "colour",
                    "unknown key (known keys: name, threads, token, verbose)",
                )
            ],
        )

    def test_wrong_type(self):
        """A value of the wrong type says what was expected and what was found."""
        path = self.write("[bot]\nthreads = lots\n")
        self.assertEqual(
            self.errors(path),
            [ConfigError(str(path), "bot", "threads", "expected an integer, found 'lots'")],
        )

    def test_out_of_bounds(self):
        """A value outside an option's bounds is an error."""
        [error] = self.errors(self.write("[bot]\nthreads = 0\n"))
        self.assertEqual(error.message, "expected a number >= 1, found '0'")

    def test_missing_required(self):
        """A source without a type is one missing required value (its other keys cannot be
        checked without a type, so they are not reported as unknown)."""
        path = self.write("[source:irc]\nport = 1\n")
        [error] = self.bot_errors(path)
        self.assertEqual((error.file, error.section, error.key), (str(path), "source:irc", "type"))
        self.assertTrue(error.message.startswith("missing required string ("), error)

    def test_missing_required_option(self):
        """A required option without a value is an error naming the key and its help."""

        def resolver(section, values):
            return {"token": Option("The API token.", required=True)}

        path = self.write("[bot]\n")
        self.assertEqual(
            self.errors(path, resolver),
            [ConfigError(str(path), "bot", "token", "missing required string (The API token.)")],
        )

    def test_unknown_source_type(self):
        """An unknown source type is an error listing the available types."""
        path = self.write("[source:irc]\ntype = irc\n")
        self.assertEqual(
            self.bot_errors(path),
            [
                ConfigError(
                    str(path),
                    "source:irc",
                    "type",
                    "no source type 'irc' (available: failing, fake)",
                )
            ],
        )

    def test_unknown_plugin_section(self):
        """A section for a plugin that does not exist lists the available plugins."""
        path = self.write("[plugin:karma]\n")
        self.assertEqual(
            self.bot_errors(path),
            [
                ConfigError(
                    str(path),
                    "plugin:karma",
                    None,
                    "no plugin 'karma' (available: broken, echo, greet, lifecycle)",
                )
            ],
        )

    def test_unknown_bot_section(self):
        """The bot refuses sections of an unknown kind, listing the kinds it knows."""
        [error] = self.bot_errors(self.write("[server]\n"))
        self.assertEqual(error.section, "server")
        self.assertIn("[source:NAME]", error.message)

    def test_missing_environment_variable(self):
        """${ENV:X} with X unset is an error naming the variable."""
        path = self.write("[bot]\nname = ${ENV:BOT_NAME}\n")
        self.assertEqual(
            self.errors(path),
            [ConfigError(str(path), "bot", "name", "environment variable BOT_NAME is not set")],
        )

    def test_default_section(self):
        """A [DEFAULT] section is refused, and its keys do not leak into other sections."""
        path = self.write("[DEFAULT]\ncolour = red\n[bot]\n")
        self.assertEqual(
            self.errors(path),
            [ConfigError(str(path), "DEFAULT", None, "a [DEFAULT] section is not supported")],
        )

    def test_empty_default_section(self):
        """Even an empty [DEFAULT] section is refused."""
        [error] = self.errors(self.write("[DEFAULT]\n[bot]\n"))
        self.assertEqual(error.section, "DEFAULT")

    def test_bad_logging_level(self):
        """An unknown logging level is an error like any other."""
        [error] = self.bot_errors(self.write("[logging]\nlevel = loud\n"))
        self.assertEqual(
            (error.section, error.key, error.message),
            (
                "logging",
                "level",
                "expected one of debug, info, warn, error, critical, found 'loud'",
            ),
        )

    def test_unimportable_plugin(self):
        """A plugin module that fails to import is reported as an error of its section."""
        reloader = fixture_reloader()

        def broken(name):
            raise ImportError("No module named 'feedparser'")

        reloader.plugin_options = broken
        with self.assertRaises(ConfigErrors) as raised:
            read_config(self.write("[plugin:greet]\n"), environ={}, reloader=reloader)
        [error] = raised.exception.errors
        self.assertEqual(
            (error.section, error.message),
            (
                "plugin:greet",
                "cannot load plugin 'greet': ImportError: No module named 'feedparser'",
            ),
        )


class AllErrorsTests(ConfigFiles):
    """Every error of a configuration is reported together."""

    def test_several_errors_in_one_file(self):
        """One ConfigErrors carries every problem of the file, in file order."""
        path = self.write(
            """
[bot]
name = ${ENV:NAME}
threads = many
colour = red
[logging]
level = loud
[source:one]
type = nope
[source:two]
port = 1
[plugin:greet]
times = 0
[plugin:karma]
[nonsense]
"""
        )
        errors = self.bot_errors(path)
        self.assertEqual(
            [(e.section, e.key) for e in errors],
            [
                ("bot", "name"),
                ("bot", "threads"),
                ("bot", "colour"),
                ("logging", "level"),
                ("source:one", "type"),
                ("source:two", "type"),
                ("plugin:greet", "times"),
                ("plugin:karma", None),
                ("nonsense", None),
            ],
        )
        self.assertEqual({e.file for e in errors}, {str(path)})

    def test_str_lists_everything(self):
        """The exception's text counts the errors and gives file, section, key and message."""
        path = self.write("[bot]\nthreads = many\nverbose = perhaps\n")
        with self.assertRaises(ConfigErrors) as raised:
            load_config(path, resolve, environ={})
        self.assertEqual(
            str(raised.exception).splitlines(),
            [
                "2 configuration errors:",
                f"  {path}: [bot] threads: expected an integer, found 'many'",
                f"  {path}: [bot] verbose: expected yes or no, found 'perhaps'",
            ],
        )

    def test_file_errors_with_value_errors(self):
        """An error in the local file is reported along with those of the main file."""
        main = self.write("[bot]\nthreads = x\n")
        local = self.write("[bot]\nverbose = maybe\nbroken line\n", "bot.local.ini")
        errors = self.errors(main)
        self.assertEqual(
            [(e.file, e.key) for e in errors],
            [(str(local), None), (str(main), "threads")],
        )


class ValuesTests(ConfigFiles):
    """What a valid configuration gives back."""

    def test_parsed_with_defaults(self):
        """Values are parsed by their options; absent keys take their defaults."""
        config = load_config(self.write("[bot]\nthreads = 3\n"), resolve, environ={})
        self.assertEqual(
            config.section("bot"), {"threads": 3, "name": "bot", "verbose": False, "token": None}
        )

    def test_implicit_sections(self):
        """Implicit sections are present with defaults even when the file lacks them."""
        config = load_config(self.write(""), resolve, environ={}, implicit_sections=("bot",))
        self.assertEqual(config.section("bot")["threads"], 10)
        self.assertEqual(config.section("absent"), {})

    def test_environment(self):
        """${ENV:X} takes the variable's value, ${ENV:X:-default} falls back to the default."""
        path = self.write(
            "[bot]\nname = ${ENV:PREFIX}-${ENV:SUFFIX:-bot}\nthreads = ${ENV:N:-4}\n"
        )
        config = load_config(path, resolve, environ={"PREFIX": "my"})
        self.assertEqual(
            (config.section("bot")["name"], config.section("bot")["threads"]), ("my-bot", 4)
        )
        config = load_config(path, resolve, environ={"PREFIX": "my", "SUFFIX": "x", "N": "2"})
        self.assertEqual(
            (config.section("bot")["name"], config.section("bot")["threads"]), ("my-x", 2)
        )

    def test_environment_defaults_to_os_environ(self):
        """Without environ= the process environment is used."""
        self.patch(os, "environ", {**os.environ, "BOTCORE_TEST_NAME": "fromenv"})
        config = load_config(self.write("[bot]\nname = ${ENV:BOTCORE_TEST_NAME}\n"), resolve)
        self.assertEqual(config.section("bot")["name"], "fromenv")

    def test_expand_env_empty_default(self):
        """An empty default is allowed and other text is left alone."""
        self.assertEqual(expand_env("a${ENV:X:-}b $HOME", {}), "ab $HOME")

    def test_secrets(self):
        """Keys of secret options that are set are remembered (to hide them when shown)."""
        config = load_config(self.write("[bot]\ntoken = s3cret\n"), resolve, environ={})
        self.assertEqual(config.secrets, frozenset({("bot", "token")}))

    def test_escaped_never_expanded(self):
        """``$${`` is a literal ``${``: escape_env makes any text come back unexpanded
        (values set from chat), however many dollars and braces it holds."""
        environ = {"HOME": "/root", "X": "x"}
        self.assertEqual(expand_env("$${ENV:HOME} ${ENV:X}", environ), "${ENV:HOME} x")
        for text in ("${ENV:HOME}", "$${ENV:HOME}", "$$${ENV:X:-d}", "a$b${c", "${", "$", ""):
            self.assertEqual(expand_env(escape_env(text), environ), text)

    def test_secret_keys(self):
        """is_secret_option: the secret options of every section checked, set or not; any
        option of a section the config has not seen (or no option) counts as secret."""
        config = load_config(self.write("[bot]\nname = b\n"), resolve, environ={})
        self.assertFalse(config.is_secret_option("bot.name"))
        self.assertTrue(config.is_secret_option("bot.token"))
        self.assertTrue(config.is_secret_option("source:irc.account_password"))
        self.assertTrue(config.is_secret_option("nonsense"))
        self.assertEqual(
            split_option_path("plugin:core.limit_time"), ("plugin:core", "limit_time")
        )
        self.assertIsNone(split_option_path("bot"))

    def test_secret_value_not_in_errors(self):
        """A secret option's bad value is not quoted in its error (errors are logged)."""

        class WithPin(BotOptions):
            pin = IntOption("A secret number.", 0, secret=True)

        def resolver(section, values):
            return options_of(WithPin)

        errors = self.errors(self.write("[bot]\npin = hunter2\nthreads = x\n"), resolver)
        self.assertEqual(
            [str(e.message) for e in errors],
            ["expected an integer, found '[secret]'", "expected an integer, found 'x'"],
        )

    def test_names_and_paths(self):
        """names(kind) lists [kind:NAME] sections in order; paths are relative to the file."""
        path = self.write("[source:b]\ntype = fake\n[source:a]\ntype = fake\n[plugin:echo]\n")
        config = read_config(path, environ={}, reloader=fixture_reloader())
        self.assertEqual(config.names("source"), ["b", "a"])
        self.assertEqual(config.names("plugin"), ["echo"])
        self.assertEqual(config.relative_path("data/x.db"), self.folder / "data" / "x.db")
        self.assertEqual(config.relative_path("/abs"), Path("/abs"))

    def test_source_options_by_type(self):
        """A source section is checked against the options of its type."""
        path = self.write("[source:f]\ntype = fake\nport = 7000\n")
        config = read_config(path, environ={}, reloader=fixture_reloader())
        self.assertEqual(config.section("source:f")["port"], 7000)
        self.assertEqual(config.section("source:f")["type"], "fake")

    def test_plugin_override_keys(self):
        """Every plugin section accepts addressed, priority and processed."""
        path = self.write("[plugin:echo]\naddressed = no\npriority = 5\nprocessed = yes\n")
        config = read_config(path, environ={}, reloader=fixture_reloader())
        self.assertEqual(
            config.section("plugin:echo"), {"addressed": False, "priority": 5, "processed": True}
        )

    def test_priority_override_in_bands(self):
        """A plugin section's priority outside the bands (-2000..2000) is a config error."""
        [error] = self.bot_errors(self.write("[plugin:echo]\npriority = 5000\n"))
        self.assertEqual(
            (error.section, error.key, error.message),
            ("plugin:echo", "priority", "expected a number <= 2000, found '5000'"),
        )


class LocalOverrideTests(ConfigFiles):
    """The optional NAME.local.ini override file."""

    def test_default_local_path(self):
        """bot.ini's override is bot.local.ini beside it."""
        self.assertEqual(default_local_path(Path("/etc/bot.ini")), Path("/etc/bot.local.ini"))

    def test_picked_up(self):
        """NAME.local.ini beside the main file is read, overriding key by key."""
        main = self.write("[bot]\nname = main\nthreads = 2\n")
        local = self.write("[bot]\nname = local\n", "bot.local.ini")
        config = load_config(main, resolve, environ={})
        self.assertEqual(config.files, [main, local])
        self.assertEqual(
            (config.section("bot")["name"], config.section("bot")["threads"]), ("local", 2)
        )

    def test_absent(self):
        """Without an override file only the main file is read."""
        config = load_config(self.write("[bot]\n"), resolve, environ={})
        self.assertEqual(len(config.files), 1)

    def test_explicit_local(self):
        """local= names another override file, which may add sections."""
        main = self.write("[bot]\nname = main\n")
        other = self.write("[bot]\nthreads = 7\n[plugin:echo]\npriority = 3\n", "other.ini")
        self.write("[bot]\nname = ignored\n", "bot.local.ini")
        config = read_config(main, local=other, environ={}, reloader=fixture_reloader())
        self.assertEqual(
            (config.section("bot")["name"], config.section("bot")["threads"]), ("main", 7)
        )
        self.assertEqual(config.section("plugin:echo")["priority"], 3)

    def test_errors_name_the_local_file(self):
        """A bad value from the override file is reported against that file."""
        main = self.write("[bot]\nthreads = 2\n")
        local = self.write("[bot]\nthreads = x\n", "bot.local.ini")
        self.assertEqual(
            self.errors(main),
            [ConfigError(str(local), "bot", "threads", "expected an integer, found 'x'")],
        )

    def test_missing_explicit_local(self):
        """An explicitly named override file that does not exist is an error."""
        main = self.write("[bot]\n")
        absent = self.folder / "absent.ini"
        self.assertEqual(
            self.errors(main, local=absent),
            [ConfigError(str(absent), None, None, "file not found")],
        )
