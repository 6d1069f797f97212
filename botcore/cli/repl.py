"""``botcore-plugin``: talk to a few plugins from the terminal, with no network and a
throwaway database — the quick loop for writing and trying a plugin.

Design: the real `Bot` (reloader, dispatcher, plugins, a SQLite database in a temporary
folder) runs under the real reactor in the main thread with one extra source, the console.
A daemon thread reads stdin a line at a time and hands each line to the reactor with
``blockingCallFromThread``, waiting until its event has been through the whole chain and
the replies are printed, so input and output stay in step even when piped. Processors run
in the dispatcher's real thread pool and delayed replies (``call_later``) print when they
fire, exactly as in a running bot (the end of input stops the bot at once, so delayed
calls still pending then are dropped). The reading thread is a daemon so Ctrl-C (which stops
the reactor, draining the bot) never waits for a blocked ``readline``. Tests pass an
`InlineReactor` and `InlineThreadPool`; then the same `Console` is driven inline, in the
calling thread, with no reactor run and no threads.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import sys
import tempfile
import threading
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any, cast

from twisted.internet.defer import Deferred, succeed
from twisted.logger import (
    FilteringLogObserver,
    LogLevel,
    LogLevelFilterPredicate,
    globalLogPublisher,
    textFileLogObserver,
)
from twisted.python.failure import Failure

from botcore.bot import Bot
from botcore.config import Config, ConfigErrors
from botcore.errors import PluginNotFound
from botcore.event import Event, EventType, Lifecycle, Message, Response, Sender
from botcore.loading.reloader import Reloader
from botcore.settings import read_config
from botcore.source import LocalSource

PROG = "botcore-plugin"
SOURCE_NAME = "console"
COMMANDS = "/public, /private, /nick NAME, /quit"

DESCRIPTION = """\
Load plugins into a bot with no network and a throwaway database, then type messages
to it. Each line is sent as a private message (or, with --public or /public, as a
message in a channel, where the bot must be addressed: "botcore: ping"). Replies are
printed as "> text", actions as "* bot text". Commands: /public, /private, /nick NAME,
/quit (or end of input). "botcore-plugin new NAME" writes a new plugin package instead.
"""


class UsageError(Exception):
    """Bad command line: the message is shown with the usage, exit status 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(message)


def parser() -> argparse.ArgumentParser:
    """The command line of ``botcore-plugin``."""
    p = _Parser(prog=PROG, description=DESCRIPTION)
    p.add_argument("-c", "--config", help="a bot configuration to take [plugin:*] and [bot] from")
    p.add_argument(
        "--public", action="store_true", help="start in public mode (messages in --channel)"
    )
    p.add_argument("--nick", default="user", help="your nick (default: user)")
    p.add_argument(
        "--channel", default="#botcore", help="the channel for public mode (default: #botcore)"
    )
    p.add_argument("--no-core", action="store_true", help="do not load the core plugin")
    p.add_argument("-v", "--verbose", action="store_true", help="also log info messages")
    p.add_argument(
        "plugins", nargs="+", metavar="PLUGIN", help="plugins to load (or PLUGIN.Class)"
    )
    return p


class ConsoleSource(LocalSource):
    """A source whose network is the terminal: replies are written to ``out``."""

    type = "console"
    supports = frozenset({"action", "notice", "multiline"})

    def __init__(self, name: str, bot: Bot, out: IO[str]) -> None:
        super().__init__(name, bot, {})
        self.out = out
        self.nick = bot.name
        #: The conversation the console is in: replies to it need no label.
        self.conversation: str | None = None

    def send(self, response: Response) -> None:
        """Print one reply: ``> text``, ``* bot text`` for actions. Reactor thread."""
        where = ""
        if response.target not in (None, self.conversation):
            where = f"[{response.target}] "
        # Text: the dispatcher words acknowledgements before a source sees them.
        for line in cast(str, response.text).splitlines() or [""]:
            if response.action:
                self.out.write(f"{where}* {self.nick} {line}\n")
            elif response.notice:
                self.out.write(f"{where}-{self.nick}- {line}\n")
            else:
                self.out.write(f"{where}> {line}\n")
        self.out.flush()


class Console:
    """A bot with one console source, and the state of the conversation typed into it:
    who is talking, and whether in private or in a channel."""

    def __init__(
        self,
        config: Config,
        out: IO[str],
        *,
        nick: str = "user",
        channel: str = "#botcore",
        public: bool = False,
        reactor: Any = None,
        threadpool: Any = None,
        reloader: Reloader | None = None,
    ) -> None:
        self.bot = Bot(config, reactor=reactor, threadpool=threadpool, reloader=reloader)
        self.out = out
        self.nick = nick
        self.channel = channel
        self.public = public
        self.source = ConsoleSource(SOURCE_NAME, self.bot, out)
        self.source.setServiceParent(self.bot.sources)
        self._stopping: Deferred[None] | None = None
        self._update_channel()

    def start(self) -> Deferred[None]:
        """Start the bot; fires once it runs (check `failures` for plugins that did not
        load). Reactor thread."""
        return self.bot.startService()

    def failures(self) -> list[str]:
        """One line per plugin that failed to load, or for a bot that failed to start."""
        lines = [
            f"plugin {name} failed to load: {why}" for name, why in self.bot.plugins.failed.items()
        ]
        if self.bot.state == Lifecycle.FAILED and not lines:
            lines.append("the bot failed to start")
        return lines

    def stop(self) -> Deferred[None]:
        """Stop the bot (after the events in flight); safe to call more than once."""
        if self._stopping is None:
            self._stopping = self.bot.stopService()
        return self._stopping

    def prompt(self) -> str:
        """The prompt shown on a terminal: where the console is and who is talking."""
        where = self.channel if self.public else "private"
        return f"[{where}] {self.nick}> "

    def handle_line(self, line: str) -> Deferred[bool]:
        """Run a console command or dispatch the line as a message; fires with False when
        the console should quit, after the replies have been printed. Reactor thread."""
        line = line.rstrip("\r\n")
        if not line.strip():
            return succeed(True)
        if line.startswith("/"):
            return succeed(self.command(line))
        d = self.source.dispatch(self.event(line))
        return d.addCallback(lambda _: True)

    def event(self, text: str) -> Event:
        """The message event for a line typed by the current nick, where the console is."""
        return Event(
            source=SOURCE_NAME,
            type=EventType.MESSAGE,
            sender=Sender(SOURCE_NAME, self.nick, self.nick),
            channel=self.channel if self.public else self.nick,
            public=self.public,
            # As the core's Addressed would: a private message is meant for the bot (this
            # way plugins answer in private with --no-core too).
            addressed=not self.public,
            message=Message(text),
        )

    def command(self, line: str) -> bool:
        """Handle a ``/command``; False for ``/quit``."""
        name, _, argument = line[1:].strip().partition(" ")
        argument = argument.strip()
        if name == "quit":
            return False
        if name == "public":
            if argument:
                self.channel = argument
            self.public = True
            self.say(f"public: messages go to {self.channel}; address the bot as {self.bot.name}:")
        elif name == "private":
            self.public = False
            self.say(f"private: messages go to {self.bot.name} directly")
        elif name == "nick":
            if not argument or len(argument.split()) != 1:
                self.say("usage: /nick NAME")
            else:
                self.nick = argument
                self.say(f"you are now {self.nick}")
        else:
            self.say(f"unknown command /{name} (commands: {COMMANDS})")
        self._update_channel()
        return True

    def say(self, text: str) -> None:
        """Print a note from the console itself (not from the bot)."""
        self.out.write(f"-- {text}\n")
        self.out.flush()

    def _update_channel(self) -> None:
        self.source.conversation = self.channel if self.public else self.nick


# -- configuration ---------------------------------------------------------------------


def build_config(
    directory: Path,
    plugins: list[str],
    config_path: str | None = None,
    reloader: Reloader | None = None,
) -> Config:
    """The bot's configuration: ``config_path``'s [bot], [auth] and [plugin:*] sections
    (or the defaults), loading exactly ``plugins``, with no sources and one SQLite database
    in ``directory``. Raises `ConfigErrors`."""
    database = f"sqlite:///{directory / 'botcore-plugin.sqlite'}"
    if config_path is None:
        path = directory / "botcore-plugin.ini"
        path.write_text("[bot]\n", encoding="utf-8")
        config = read_config(path, reloader=reloader)
    else:
        config = read_config(config_path, reloader=reloader)
    sections = {
        name: dict(values)
        for name, values in config.sections.items()
        if not name.startswith(("source:", "database:"))
    }
    sections["bot"] = {**sections.get("bot", {}), "autoload": False, "load": list(plugins)}
    sections["database:main"] = {"url": database, "echo": False}
    return dataclasses.replace(config, sections=sections)


def check_plugins(plugins: list[str], reloader: Reloader) -> str | None:
    """Import each named plugin; the one-line error for the first that does not exist."""
    for entry in plugins:
        name, _, processor = entry.partition(".")
        try:
            module = reloader.plugin_module(name)
        except PluginNotFound as e:
            return str(e)
        if processor and not any(
            cls.__name__ == processor for cls in reloader.processor_classes(module)
        ):
            return f"plugin {name!r} has no processor {processor!r}"
    return None


# -- running -----------------------------------------------------------------------------


def read_lines(stdin: IO[str], stdout: IO[str], prompt: Callable[[], str]) -> Iterator[str]:
    """The lines typed, without their line ends; prompts (with line editing when it is the
    terminal) only when stdin is interactive."""
    interactive = bool(getattr(stdin, "isatty", lambda: False)())
    if interactive and stdin is sys.stdin and stdout is sys.stdout:
        with contextlib.suppress(ImportError):
            import readline  # noqa: F401  (line editing and history for input())
        while True:
            try:
                yield input(prompt())
            except EOFError:
                stdout.write("\n")
                return
    while True:
        if interactive:
            stdout.write(prompt())
            stdout.flush()
        line = stdin.readline()
        if not line:
            return
        yield line.rstrip("\r\n")


def _log_observer(stderr: IO[str], verbose: bool) -> Any:
    level = LogLevel.info if verbose else LogLevel.warn
    predicate = LogLevelFilterPredicate(defaultLogLevel=level)
    return FilteringLogObserver(textFileLogObserver(stderr), [predicate])


def _run_inline(console: Console, lines: Iterator[str]) -> int:
    """Drive the console in this thread (an inline reactor and thread pool)."""
    console.start()
    code = 1 if console.failures() else 0
    if not code:
        for line in lines:
            done: list[Any] = []
            console.handle_line(line).addBoth(done.append)
            if not done:
                raise RuntimeError(f"the event for {line!r} did not finish inline")
            if isinstance(done[0], Failure):
                done[0].raiseException()
            if not done[0]:
                break
    console.stop()
    return code


def _run_reactor(console: Console, lines: Iterator[str], reactor: Any, stdin: IO[str]) -> int:
    """Run the reactor in this thread and read input on a daemon thread."""
    from twisted.internet.error import ReactorNotRunning
    from twisted.internet.threads import blockingCallFromThread

    code = [0]
    readers: list[threading.Thread] = []
    done_reading = threading.Event()

    def read() -> None:
        try:
            for line in lines:
                # mypy cannot solve Twisted's "f returns _R or Deferred[_R]" for a Deferred.
                go_on: bool = blockingCallFromThread(
                    reactor,
                    console.handle_line,  # type: ignore[arg-type]
                    line,
                )
                if not go_on:
                    break
        except Exception:
            traceback.print_exc()
            code[0] = 1
        finally:
            done_reading.set()
            reactor.callFromThread(finish)

    def started(_: Any) -> None:
        if console.failures():
            code[0] = 1
            finish()
            return
        reader = threading.Thread(target=read, name=f"{PROG} stdin", daemon=True)
        readers.append(reader)
        reader.start()

    def stop_reactor(_: Any) -> None:
        with contextlib.suppress(ReactorNotRunning):
            reactor.stop()

    def finish() -> None:
        console.stop().addBoth(stop_reactor)

    terminal = _terminal_state(stdin)
    reactor.callWhenRunning(lambda: console.start().addCallback(started))
    reactor.addSystemEventTrigger("before", "shutdown", console.stop)
    try:
        reactor.run()
    finally:
        if readers and not done_reading.is_set():
            # Interrupted (Ctrl-C) while the reader waits for a line: leave the terminal
            # as we found it, and the shell prompt on a line of its own.
            _restore_terminal(stdin, terminal)
            console.out.write("\n")
            console.out.flush()
    return code[0]


def _terminal_state(stream: IO[str]) -> Any:
    """The terminal settings of ``stream`` when it is a terminal (readline changes them
    while it waits for a line), else None."""
    try:
        import termios

        return termios.tcgetattr(stream.fileno()) if stream.isatty() else None
    except (ImportError, AttributeError, OSError, ValueError):
        return None


def _restore_terminal(stream: IO[str], state: Any) -> None:
    if state is None:
        return
    with contextlib.suppress(ImportError, OSError, ValueError):
        import termios

        termios.tcsetattr(stream.fileno(), termios.TCSADRAIN, state)


def main(
    argv: list[str] | None = None,
    *,
    stdin: IO[str] | None = None,
    stdout: IO[str] | None = None,
    stderr: IO[str] | None = None,
    reactor: Any = None,
    threadpool: Any = None,
    plugin_package: str = "botcore.plugins",
) -> int:
    """Run ``botcore-plugin``; returns the exit status (0, 1 when a plugin failed to load,
    2 for a bad command line, unknown plugin or bad configuration). With an injected
    ``reactor`` (an `InlineReactor`) everything runs in the calling thread; the plugins
    are looked for in ``plugin_package``."""
    stdin = sys.stdin if stdin is None else stdin
    stdout = sys.stdout if stdout is None else stdout
    stderr = sys.stderr if stderr is None else stderr
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["new"]:  # botcore-plugin new NAME: a plugin package to start from
        from botcore.cli import skeleton

        return skeleton.main(argv[1:], stdout, stderr)
    try:
        args = parser().parse_args(argv)
    except UsageError as e:
        stderr.write(parser().format_usage())
        stderr.write(f"{PROG}: error: {e}\n")
        return 2
    except SystemExit as e:  # --help
        return int(e.code or 0)

    plugins = list(dict.fromkeys(([] if args.no_core else ["core"]) + args.plugins))
    reloader = Reloader(plugin_package=plugin_package)
    observer = _log_observer(stderr, args.verbose)
    globalLogPublisher.addObserver(observer)
    try:
        with tempfile.TemporaryDirectory(prefix=f"{PROG}-") as directory:
            # The config first: its [bot] plugin_dirs tell the reloader where the named
            # plugins may be, and its [plugin:NAME] sections are checked against them.
            try:
                config = build_config(Path(directory), plugins, args.config, reloader)
            except ConfigErrors as e:
                stderr.write(f"{PROG}: {e}\n")
                return 2
            try:
                problem = check_plugins(plugins, reloader)
            except Exception:
                stderr.write(f"{PROG}: a plugin failed to import:\n")
                traceback.print_exc(file=stderr)
                return 1
            if problem is not None:
                stderr.write(f"{PROG}: {problem}\n")
                return 2
            console = Console(
                config,
                stdout,
                nick=args.nick,
                channel=args.channel,
                public=args.public,
                reactor=reactor,
                threadpool=threadpool,
                reloader=reloader,
            )
            lines = read_lines(stdin, stdout, console.prompt)
            if reactor is None:
                from twisted.internet import reactor as global_reactor

                code = _run_reactor(console, lines, global_reactor, stdin)
            else:
                code = _run_inline(console, lines)
            for failure in console.failures():
                stderr.write(f"{PROG}: {failure}\n")
            return code
    finally:
        globalLogPublisher.removeObserver(observer)
