"""Tests for ``twistd botcore``'s options, the service tree it builds, and the process
glue: log level, signals and exit status."""

from __future__ import annotations

import gc
import io
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from twisted.application.service import IServiceMaker
from twisted.internet.error import ReactorNotRunning
from twisted.internet.testing import MemoryReactor
from twisted.logger import Logger, LogLevel, LogPublisher, globalLogPublisher
from twisted.plugin import getPlugins
from twisted.trial.unittest import SynchronousTestCase

from botcore.accounts.permissions import Permissions
from botcore.bot import Bot
from botcore.bus.log import EventLog
from botcore.bus.reactors import ReactorSection
from botcore.bus.sections import EventSection, TopicSection
from botcore.db.service import Database
from botcore.dispatch.dispatcher import Dispatcher
from botcore.loading.reloader import Reloader
from botcore.options import Option, options_of
from botcore.settings import BotSection, LoggingSection, read_config
from botcore.source import SourceSection
from botcore.tap import Options, ProcessControl, makeService, resume_collector
from botcore.testing import InlineReactor, free_port

GOOD = """\
[bot]
name = tapbot
[logging]
level = {level}
[database:main]
url = sqlite:///bot.sqlite
[source:console]
type = telnet
endpoint = tcp:3999:interface=127.0.0.1
"""

BAD = """\
[bot]
threads = lots
[logging]
level = loud
[source:console]
type = telnet
endpoint = tcp:port
[nonsense]
"""


class ConfigFiles:
    """Writes configuration files into a test's temporary folder."""

    def __init__(self, testcase: SynchronousTestCase) -> None:
        self.folder = Path(testcase.mktemp()).absolute()
        self.folder.mkdir(parents=True)

    def write(self, name: str, text: str) -> str:
        path = self.folder / name
        path.write_text(text, encoding="utf-8")
        return str(path)


def parse(*args: str) -> tuple[Options, io.StringIO, io.StringIO]:
    """Parse ``args`` with captured output; returns the options and what was printed."""
    stdout, stderr = io.StringIO(), io.StringIO()
    options = Options(stdout=stdout, stderr=stderr, environ={})
    options.parseOptions(list(args))
    return options, stdout, stderr


class OptionsTests(SynchronousTestCase):
    """Command-line options and configuration validation at parse time."""

    def setUp(self) -> None:
        self.files = ConfigFiles(self)

    def test_dropin(self) -> None:
        """``twistd botcore`` is available: the dropin names this module's options, and
        getting them pauses the garbage collector for the start."""
        makers = {maker.tapname: maker for maker in getPlugins(IServiceMaker)}
        self.assertIn("botcore", makers)
        self.addCleanup(gc.enable)
        self.assertIs(makers["botcore"].options, Options)
        self.assertFalse(gc.isenabled())

    def test_resume_collector(self) -> None:
        """Once started, a collector paused for the start runs again, with what the start
        made frozen; a running one is left alone."""
        self.addCleanup(gc.enable)
        self.addCleanup(gc.unfreeze)
        result = object()
        self.assertIs(resume_collector(result), result)
        self.assertEqual(gc.get_freeze_count(), 0)
        gc.disable()
        self.assertIs(resume_collector(result), result)
        self.assertTrue(gc.isenabled())
        self.assertGreater(gc.get_freeze_count(), 0)

    def test_usage_documents_options(self) -> None:
        """``--help`` lists --config (default bot.ini), --local and --check."""
        usage = str(Options())
        for text in ("--config=", "[default: bot.ini]", "--local=", "--check"):
            self.assertIn(text, usage)

    def test_config(self) -> None:
        """``-c`` names the file; parsing reads and validates it."""
        path = self.files.write("bot.ini", GOOD.format(level="info"))
        options, _, stderr = parse("-c", path)
        self.assertEqual(options["config"], path)
        self.assertEqual(str(options.config.path), path)
        self.assertEqual(options.config.section("bot")["name"], "tapbot")
        self.assertEqual(stderr.getvalue(), "")

    def test_local_beside_config(self) -> None:
        """Without ``--local``, NAME.local.ini beside the config is read when present."""
        path = self.files.write("bot.ini", GOOD.format(level="info"))
        local = self.files.write("bot.local.ini", "[bot]\nname = localbot\n")
        options, _, _ = parse("--config", path)
        self.assertEqual([str(p) for p in options.config.files], [path, local])
        self.assertEqual(options.config.section("bot")["name"], "localbot")

    def test_local_option(self) -> None:
        """``--local FILE`` names the override file."""
        path = self.files.write("bot.ini", GOOD.format(level="info"))
        local = self.files.write("override.ini", "[logging]\nlevel = debug\n")
        options, _, _ = parse("-c", path, "--local", local)
        self.assertEqual(options.config.section("logging")["level"], "debug")

    def test_errors_exit_1(self) -> None:
        """A bad configuration prints every error to stderr, without a traceback or the
        usage text, and exits with status 1."""
        path = self.files.write("bot.ini", BAD)
        stdout, stderr = io.StringIO(), io.StringIO()
        options = Options(stdout=stdout, stderr=stderr, environ={})
        with self.assertRaises(SystemExit) as raised:
            options.parseOptions(["-c", path])
        self.assertEqual(raised.exception.code, 1)
        errors = stderr.getvalue()
        self.assertIn("4 configuration errors:", errors)
        for text in ("threads", "level", "endpoint", "[nonsense]"):
            self.assertIn(text, errors)
        self.assertNotIn("Traceback", errors)
        self.assertNotIn("Usage", errors)
        self.assertEqual(stdout.getvalue(), "")

    def test_missing_file(self) -> None:
        """A missing configuration file is an error like any other."""
        stderr = io.StringIO()
        options = Options(stderr=stderr, environ={})
        with self.assertRaises(SystemExit) as raised:
            options.parseOptions(["-c", str(self.files.folder / "nope.ini")])
        self.assertEqual(raised.exception.code, 1)
        self.assertIn("nope.ini: file not found", stderr.getvalue())

    def test_check_valid(self) -> None:
        """``--check`` on a valid configuration says so and exits 0."""
        path = self.files.write("bot.ini", GOOD.format(level="info"))
        stdout = io.StringIO()
        options = Options(stdout=stdout, environ={})
        with self.assertRaises(SystemExit) as raised:
            options.parseOptions(["-c", path, "--check"])
        self.assertEqual(raised.exception.code, 0)
        self.assertIn(f"configuration is valid ({path})", stdout.getvalue())

    def test_check_invalid(self) -> None:
        """``--check`` on a bad configuration lists the errors and exits 1."""
        path = self.files.write("bot.ini", BAD)
        stderr = io.StringIO()
        options = Options(stderr=stderr, environ={})
        with self.assertRaises(SystemExit) as raised:
            options.parseOptions(["-c", path, "--check"])
        self.assertEqual(raised.exception.code, 1)
        self.assertIn("configuration errors", stderr.getvalue())

    def test_check_plugin_values(self) -> None:
        """``--check`` reports plugin values that used to pass it and then kill the plugin
        at start (issue 12, item 17): remind's time zone, log's mode and path template."""
        path = self.files.write(
            "bot.ini",
            GOOD.format(level="info")
            + "[plugin:remind]\ntimezone = Mars/Olympus\n"
            + "[plugin:log]\npublic_mode = 999\npath = logs/{nick}.log\n",
        )
        stderr = io.StringIO()
        options = Options(stderr=stderr, environ={})
        with self.assertRaises(SystemExit) as raised:
            options.parseOptions(["-c", path, "--check"])
        self.assertEqual(raised.exception.code, 1)
        errors = stderr.getvalue()
        self.assertIn("3 configuration errors", errors)
        self.assertIn("[plugin:remind] timezone: expected a time zone", errors)
        self.assertIn("[plugin:log] public_mode: expected an octal file mode", errors)
        self.assertIn("[plugin:log] path: expected only the fields", errors)


class MakeServiceTests(SynchronousTestCase):
    """The service tree ``makeService`` builds."""

    def setUp(self) -> None:
        self.files = ConfigFiles(self)
        self.options, _, _ = parse("-c", self.files.write("bot.ini", GOOD.format(level="info")))

    def test_builds_bot(self) -> None:
        """The root is a `Bot` with the parsed configuration, its sources and the process
        control service."""
        bot = makeService(self.options, reactor=MemoryReactor())
        self.assertIsInstance(bot, Bot)
        self.assertIs(bot.config, self.options.config)
        self.assertEqual(bot.get_source("console").type, "telnet")
        self.assertIsInstance(bot.getServiceNamed("process"), ProcessControl)

    def test_no_io(self) -> None:
        """Building does no I/O: nothing listens, no database is opened, nothing waits for
        the reactor, and nothing is running."""
        reactor = MemoryReactor()
        bot = makeService(self.options, reactor=reactor)
        self.assertEqual(reactor.tcpServers, [])
        self.assertEqual(reactor.whenRunningHooks, [])
        self.assertIsNone(bot.databases["main"].engine)
        self.assertFalse(bot.running)
        self.assertFalse((self.files.folder / "bot.sqlite").exists())


class FakeSignals:
    """Stands in for ``signal.signal``/``signal.getsignal``."""

    def __init__(self, handlers: dict[int, Any]) -> None:
        self.handlers = dict(handlers)

    def set(self, signum: int, handler: Any) -> Any:
        previous, self.handlers[signum] = self.handlers.get(signum), handler
        return previous

    def get(self, signum: int) -> Any:
        return self.handlers.get(signum, signal.SIG_DFL)


class FakeReactor(MemoryReactor):
    """A reactor with twistd's signal handlers, whose calls from threads wait in a list."""

    def __init__(self) -> None:
        super().__init__()
        self.from_thread: list[tuple[Any, tuple[Any, ...]]] = []
        self.stops = 0

    def sigTerm(self, *args: Any) -> None:
        pass

    def sigInt(self, *args: Any) -> None:
        pass

    def callFromThread(self, function: Any, *args: Any) -> None:
        self.from_thread.append((function, args))

    def run_from_thread(self) -> None:
        calls, self.from_thread = self.from_thread, []
        for function, args in calls:
            function(*args)

    def stop(self) -> None:
        self.stops += 1
        if self.stops > 1:
            raise ReactorNotRunning("Can't stop reactor that isn't running.")


class ProcessControlTests(SynchronousTestCase):
    """Log level, signals and exit status of the twistd process."""

    log = Logger()

    def setUp(self) -> None:
        self.files = ConfigFiles(self)
        self.path = self.files.write("bot.ini", GOOD.format(level="warn"))
        options, _, _ = parse("-c", self.path)
        self.bot = Bot(options.config, reactor=InlineReactor())
        self.reactor = FakeReactor()
        self.signals = FakeSignals(
            {
                signal.SIGTERM: self.reactor.sigTerm,
                signal.SIGINT: self.reactor.sigInt,
            }
        )
        self.seen: list[dict[str, Any]] = []
        self.publisher = LogPublisher(self.seen.append)
        self.exit_hooks: list[Any] = []
        self.exits: list[int] = []
        self.control = ProcessControl(
            self.bot,
            reactor=self.reactor,
            publisher=self.publisher,
            set_signal=self.signals.set,
            get_signal=self.signals.get,
            at_exit=self.exit_hooks.append,
            exit=self.exits.append,
        )

    def emit(self, level: LogLevel) -> None:
        Logger(observer=self.publisher).emit(level, "a {name} event", name=level.name)

    def levels(self) -> list[str]:
        return [event["log_level"].name for event in self.seen]

    def test_log_level(self) -> None:
        """Once started, events below ``[logging] level`` no longer reach the observers
        twistd installed; the others do."""
        self.control.privilegedStartService()
        for level in (LogLevel.debug, LogLevel.info, LogLevel.warn, LogLevel.error):
            self.emit(level)
        self.assertEqual(self.levels(), ["warn", "error"])

    def test_exit_hook_and_signals_wait_for_reactor(self) -> None:
        """Starting registers the exit-status hook at once but installs signal handlers
        only when the reactor runs (after twistd's own), and only once."""
        self.control.privilegedStartService()
        self.control.startService()
        self.assertEqual(self.exit_hooks, [self.control.exit_with_bot_status])
        self.assertEqual(self.signals.get(signal.SIGHUP), signal.SIG_DFL)
        self.assertEqual(len(self.reactor.whenRunningHooks), 1)
        self.reactor.run()
        for signum in (signal.SIGHUP, signal.SIGTERM, signal.SIGINT):
            self.assertEqual(self.signals.get(signum), self.control._on_signal)

    def test_foreign_handlers_kept(self) -> None:
        """A SIGINT handler that is not the reactor's (a debugger's) is left alone."""

        def debugger(*args: Any) -> None:
            pass

        self.signals.handlers[signal.SIGINT] = debugger
        self.control.install_signal_handlers()
        self.assertIs(self.signals.get(signal.SIGINT), debugger)
        self.assertEqual(self.signals.get(signal.SIGTERM), self.control._on_signal)

    def test_signal_handler_defers_to_reactor(self) -> None:
        """A signal handler only schedules the work on the reactor thread."""
        self.control._on_signal(signal.SIGTERM, None)
        self.assertEqual(self.reactor.stops, 0)
        self.reactor.run_from_thread()
        self.assertEqual(self.reactor.stops, 1)

    def test_sigterm_twice(self) -> None:
        """A second SIGTERM while stopping is harmless."""
        self.control._on_signal(signal.SIGTERM, None)
        self.control._on_signal(signal.SIGINT, None)
        self.reactor.run_from_thread()
        self.assertEqual(self.reactor.stops, 2)
        self.assertEqual(self.flushLoggedErrors(), [])

    def test_sighup_reloads(self) -> None:
        """SIGHUP re-reads the configuration and applies its new log level."""
        self.control.privilegedStartService()
        Path(self.path).write_text(GOOD.format(level="debug"), encoding="utf-8")
        self.control._on_signal(signal.SIGHUP, None)
        self.assertEqual(self.bot.config.section("logging")["level"], "warn")
        self.reactor.run_from_thread()
        self.assertEqual(self.bot.config.section("logging")["level"], "debug")
        del self.seen[:]
        self.emit(LogLevel.debug)
        self.assertEqual(self.levels(), ["debug"])

    def test_sighup_bad_config(self) -> None:
        """A reload of a broken file keeps the running configuration and log level."""
        self.control.privilegedStartService()
        Path(self.path).write_text(BAD, encoding="utf-8")
        self.control.handle_signal(signal.SIGHUP)
        self.assertEqual(self.bot.config.section("logging")["level"], "warn")
        del self.seen[:]
        self.emit(LogLevel.info)
        self.assertEqual(self.levels(), [])

    def test_sighup_bad_config_logged_once(self) -> None:
        """Each error of a refused reload is logged once, by the bot, at error level
        (issue 13, item 12): through the real signal path, handler to reactor."""
        self.control.privilegedStartService()
        Path(self.path).write_text(BAD, encoding="utf-8")
        errors: list[str] = []

        def observe(event: dict[str, Any]) -> None:
            if event.get("log_level") == LogLevel.error:
                errors.append(str(event.get("error", event.get("log_format"))))

        globalLogPublisher.addObserver(observe)
        self.addCleanup(globalLogPublisher.removeObserver, observe)
        self.control._on_signal(signal.SIGHUP, None)
        self.reactor.run_from_thread()
        self.assertGreater(len(errors), 1, "BAD holds several errors")
        self.assertEqual(len(errors), len(set(errors)), errors)
        self.assertIn("[bot] threads", " ".join(errors))

    def test_exit_status_zero(self) -> None:
        """With exit code 0 the process exits normally."""
        self.control.exit_with_bot_status()
        self.assertEqual(self.exits, [])

    def test_exit_status_failed(self) -> None:
        """When the bot failed (exit_code 1), the process exits with status 1."""
        self.bot.exit_code = 1
        self.control.exit_with_bot_status()
        self.assertEqual(self.exits, [1])


EXAMPLE = Path(__file__).resolve().parents[2] / "conf.example.ini"
_KEY = re.compile(r"^(#\s*)?([A-Za-z_]\w*)\s*=")


def documented_sections(path: Path) -> dict[str, dict[str, str]]:
    """Each section of the example file: its keys, set or commented out (``# key =``),
    with the comment right above each (the help)."""
    sections: dict[str, dict[str, str]] = {}
    current: dict[str, str] | None = None
    comment: list[str] = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("[") and line.rstrip().endswith("]"):
            current = sections.setdefault(line.strip()[1:-1], {})
            comment = []
            continue
        found = _KEY.match(line)
        if found and current is not None:
            current[found.group(2)] = " ".join(comment)
            comment = []
        elif line.startswith("#"):
            comment.append(line.lstrip("#").strip())
        elif not line.startswith((" ", "\t")):
            comment = []
    return sections


#: The keys of the example reactor that are an example, not defaults.
EXAMPLE_REACTOR = ("listens", "condition", "action", "url", "secret")


class ExampleConfigTests(SynchronousTestCase):
    """conf.example.ini documents every option and runs as is."""

    def setUp(self) -> None:
        self.config = read_config(EXAMPLE)
        self.documented = documented_sections(EXAMPLE)

    def expected_sections(self) -> dict[str, dict[str, Option]]:
        """Every section the example must have, with the options each must document:
        the core sections, one source section per bundled source type, and one
        section per bundled plugin."""
        reloader = Reloader()
        expected = {
            "bot": options_of(BotSection, Dispatcher, Reloader),
            "auth": options_of(Permissions),
            "logging": options_of(LoggingSection),
            "database:main": options_of(Database),
        }
        for type_name in reloader.source_types():
            names = [
                name
                for name in self.config.names("source")
                if self.config.section(f"source:{name}")["type"] == type_name
            ]
            self.assertTrue(names, f"no [source:NAME] section with type = {type_name}")
            options = options_of(SourceSection, reloader.source_class(type_name))
            expected[f"source:{names[0]}"] = options
        for plugin in reloader.plugin_names():
            expected[f"plugin:{plugin}"] = reloader.plugin_options(plugin)
        # One example of each of the bus's sections (their values are examples).
        expected["events"] = options_of(EventLog)
        expected["event:deploy"] = options_of(EventSection)
        expected["topic:ops"] = options_of(TopicSection)
        expected["reactor:deploy-hook"] = options_of(ReactorSection)
        return expected

    def test_every_option_documented(self) -> None:
        """Every declared option of the core, the bundled sources and the bundled plugins
        appears in its section (set, or commented out when it has no default), right
        under its help."""
        missing = []
        for section, options in self.expected_sections().items():
            keys = self.documented.get(section, {})
            for name, option in options.items():
                if name not in keys:
                    missing.append(f"[{section}] {name}")
                elif " ".join(option.help.split()) not in keys[name]:
                    missing.append(f"[{section}] {name}: help text")
        self.assertEqual(missing, [])

    def test_defaults(self) -> None:
        """The values shown are the defaults (except what makes the example a bot: the
        source types, and sources other than the console left disabled)."""
        different = []
        for section, options in self.expected_sections().items():
            values = self.config.section(section)
            for name, option in options.items():
                if option.required or (name == "enabled" and section != "source:console"):
                    continue
                if section.startswith(("event:", "topic:")) and name != "parent":
                    continue  # an example type and topic, not defaults
                if section.startswith("reactor:") and name in EXAMPLE_REACTOR:
                    continue
                if values.get(name) != option.default:
                    different.append(f"[{section}] {name} = {values.get(name)!r}")
        self.assertEqual(different, [])

    def test_runs_without_a_server(self) -> None:
        """The example uses SQLite and a telnet console on loopback port 3000; every
        other source is disabled."""
        self.assertTrue(self.config.section("database:main")["url"].startswith("sqlite:"))
        console = self.config.section("source:console")
        self.assertEqual(console["type"], "telnet")
        self.assertEqual(console["endpoint"], "tcp:3000:interface=127.0.0.1")
        for name in self.config.names("source"):
            if name != "console":
                self.assertFalse(self.config.section(f"source:{name}")["enabled"], name)


TWISTD = "import sys; from twisted.scripts.twistd import run; sys.exit(run())"
#: Bound on a twistd launch (its start included) on a loaded machine.
LAUNCH_TIMEOUT = 120.0

BROKEN_PLUGIN = """\
from botcore.processor import Processor


class Broken(Processor):
    usage = "(automatic) cannot start"

    def setup(self):
        raise RuntimeError("broken on purpose")
"""


class DaemonTests(SynchronousTestCase):
    """The real ``twistd botcore`` without ``-n``: the launcher's exit status tells whether
    the daemon started (a port in use or an unreachable database: status 1 and the reason;
    a good config: status 0 and a running daemon)."""

    def setUp(self) -> None:
        self.files = ConfigFiles(self)
        self.folder = self.files.folder
        (self.folder / "plugins").mkdir()
        (self.folder / "plugins" / "broken.py").write_text(BROKEN_PLUGIN, encoding="utf-8")

    def config(self, port: int, url: str = "sqlite:///bot.sqlite") -> str:
        return self.files.write(
            "bot.ini",
            "[bot]\nname = tapbot\nplugin_dirs = plugins\n"
            f"[database:main]\nurl = {url}\nconnect_timeout = 5\n"
            "[source:console]\ntype = telnet\n"
            f"endpoint = tcp:{port}:interface=127.0.0.1\n",
        )

    def launch(self, config: str) -> subprocess.CompletedProcess[str]:
        twistd = [sys.executable, "-c", TWISTD, "--pidfile", "bot.pid", "--logfile", "bot.log"]
        return subprocess.run(
            [*twistd, "botcore", "-c", config],
            cwd=self.folder,
            capture_output=True,
            text=True,
            stdin=subprocess.DEVNULL,
            timeout=LAUNCH_TIMEOUT,
        )

    def logfile(self) -> str:
        path = self.folder / "bot.log"
        return path.read_text("utf-8", "replace") if path.exists() else ""

    def test_port_in_use(self) -> None:
        """The console's port is taken: the launcher exits 1 and says why; the log has
        the one line; no pid file is left."""
        with socket.socket() as taken:
            taken.bind(("127.0.0.1", 0))
            taken.listen()
            port = taken.getsockname()[1]
            result = self.launch(self.config(port))
        self.assertEqual(result.returncode, 1, (result.stdout, result.stderr, self.logfile()))
        self.assertIn("An error has occurred", result.stderr)
        self.assertIn(f"cannot listen on tcp:{port}", result.stderr)
        self.assertIn("Address already in use", self.logfile())
        self.assertFalse((self.folder / "bot.pid").exists())

    def test_database_unreachable(self) -> None:
        """A database nobody listens for: the launcher exits 1 and names it."""
        url = f"postgresql+psycopg://botcore:pw@127.0.0.1:{free_port()}/botcore"
        result = self.launch(self.config(free_port(), url))
        self.assertEqual(result.returncode, 1, (result.stdout, result.stderr, self.logfile()))
        self.assertIn("An error has occurred", result.stderr)
        self.assertIn("database main", result.stderr)
        self.assertNotIn("pw@", result.stderr + self.logfile())

    def test_good_config_daemonises(self) -> None:
        """A good config: the launcher exits 0, the daemon listens and writes its pid;
        the plugin that fails at start is one error line, not a traceback; SIGTERM stops
        the daemon."""
        port = free_port()
        result = self.launch(self.config(port))
        log = self.logfile()
        self.assertEqual(result.returncode, 0, (result.stdout, result.stderr, log))
        pid = int((self.folder / "bot.pid").read_text().strip())
        self.addCleanup(_kill, pid, signal.SIGKILL)
        with socket.create_connection(("127.0.0.1", port), timeout=30) as console:
            console.settimeout(30)
            self.assertIn(b"nick", console.recv(1024))
        log = self.logfile()
        failed = [line for line in log.splitlines() if "failed to load" in line]
        self.assertEqual(len(failed), 1, log)
        self.assertIn("plugin broken failed to load: RuntimeError: broken on purpose", failed[0])
        self.assertNotIn("Traceback", log)
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + LAUNCH_TIMEOUT
        while _alive(pid):
            self.assertLess(time.monotonic(), deadline, "the daemon did not stop")
            time.sleep(0.1)
        self.assertFalse((self.folder / "bot.pid").exists())


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _kill(pid: int, signum: int) -> None:
    if _alive(pid):
        os.kill(pid, signum)
