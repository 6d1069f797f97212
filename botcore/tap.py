"""What ``twistd botcore`` runs: its command-line options and the service tree it starts.

Also ties the twistd process to the bot: the ``[logging] level``, SIGHUP (reload the
configuration), SIGTERM/SIGINT (drain, then exit 0) and the bot's exit status."""

from __future__ import annotations

import atexit
import gc
import os
import signal
import sys
from collections.abc import Callable, Mapping
from typing import IO, Any, ClassVar, TypeVar

from twisted.application.service import Service
from twisted.internet.error import ReactorNotRunning
from twisted.logger import (
    FileLogObserver,
    FilteringLogObserver,
    Logger,
    LogLevel,
    LogLevelFilterPredicate,
    LogPublisher,
    globalLogPublisher,
    jsonFileLogObserver,
)
from twisted.python import usage
from twisted.python.failure import Failure

from botcore.bot import Bot
from botcore.config import Config, ConfigErrors
from botcore.settings import read_config


class Options(usage.Options):
    """``twistd botcore`` options. Parsing reads and validates the whole configuration, so
    a bad file stops twistd before it daemonises, with every error listed."""

    synopsis = "[-c FILE] [--local FILE] [--check]"
    longdesc = (
        "Run a botcore chat bot. The configuration is validated before anything starts; "
        "every error is reported and twistd exits with status 1. SIGHUP re-reads the "
        "configuration; SIGTERM and SIGINT let running events finish, leave the networks "
        "and exit with status 0."
    )
    optParameters: ClassVar[list[list[Any]]] = [
        ["config", "c", "bot.ini", "The configuration file."],
        [
            "local",
            None,
            None,
            "An override file read after the configuration "
            "(default: NAME.local.ini beside it, when that exists).",
        ],
    ]
    optFlags: ClassVar[list[list[Any]]] = [
        ["check", None, "Validate the configuration and exit: status 0 if valid, 1 if not."],
    ]
    compData = usage.Completions(
        optActions={"config": usage.CompleteFiles("*.ini"), "local": usage.CompleteFiles("*.ini")}
    )

    def __init__(
        self,
        *,
        stdout: IO[str] | None = None,
        stderr: IO[str] | None = None,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__()
        self._stdout = stdout
        self._stderr = stderr
        self._environ = environ
        self.config: Config | None = None

    def postOptions(self) -> None:
        """Read and validate the configuration; on errors print them all to stderr (no
        traceback, not twistd's usage text) and exit with status 1."""
        try:
            self.config = read_config(self["config"], local=self["local"], environ=self._environ)
        except ConfigErrors as e:
            print(str(e), file=self._stderr or sys.stderr)
            raise SystemExit(1) from None
        if self["check"]:
            files = ", ".join(str(path) for path in self.config.files)
            print(f"configuration is valid ({files})", file=self._stdout or sys.stdout)
            raise SystemExit(0)


class StartFailed(Exception):
    """The daemonised bot failed to start: twistd tells its launcher (which exits 1)."""


class TwistdBot(Bot):
    """The bot as twistd runs it. twistd starts the service tree before it runs the
    reactor and, when it daemonises, tells the launching process that all went well right
    after: so a start that failed then (a port in use, a database that cannot be reached:
    both are found while starting, before the reactor runs) is raised here, which twistd
    passes to the launcher as its error and exit status 1. In the foreground (``-n``) the
    failure is one log line and the exit status 1, as for any other failure."""

    #: Whether twistd daemonises (then a failed start is raised as `StartFailed`).
    daemon = False

    def __init__(self, config: Config, *, reactor: Any = None) -> None:
        super().__init__(config, reactor=reactor)
        self.start_failure: str | None = None

    def startService(self) -> Any:
        d = super().startService()
        d.addBoth(resume_collector)
        if self.daemon and self.start_failure is not None:
            raise StartFailed(self.start_failure)
        return d

    def _start_failed(self, failure: Failure) -> None:
        message = failure.getErrorMessage().strip().splitlines()
        self.start_failure = message[0] if message else str(failure.type)
        super()._start_failed(failure)


_T = TypeVar("_T")


def resume_collector(result: _T) -> _T:
    """Once the bot has started (or failed to), resume Python's cyclic garbage collector
    if it is paused (the twistd dropin pauses it for the start), after freezing what the
    start made (`gc.freeze`: it lives as long as the process, so no collection needs to
    look at it again, and the first one after the start is not a full one); returns
    ``result``. Does nothing when the collector runs (tests, other runners)."""
    if not gc.isenabled():
        gc.freeze()
        gc.enable()
    return result


def daemonises(options: usage.Options) -> bool:
    """Whether the twistd these are the options of will daemonise (no ``-n``, no
    ``--debug``); False when not run by twistd."""
    parent = options.parent
    if parent is None:
        return False
    return not (parent.get("nodaemon") or parent.get("debug"))


def makeService(options: Options, reactor: Any = None) -> Bot:
    """Build the bot's service tree from parsed options. Does no I/O: everything that
    touches the network, the database or the process happens when twistd starts it."""
    config = options.config
    if config is None:
        config = read_config(options["config"], local=options["local"])
    bot = TwistdBot(config, reactor=reactor)
    bot.daemon = daemonises(options)
    ProcessControl(bot, reactor=reactor).setServiceParent(bot)
    return bot


class ProcessControl(Service):
    """Binds the twistd process to the bot; a child of the root so twistd starts it.

    On ``privilegedStartService`` (twistd calls it once logging has begun and before any
    ``startService``) it applies the log level, arranges for the bot's ``exit_code`` to
    become the process's exit status, and, once the reactor runs, installs the signal
    handlers. Reactor thread (signal handlers only schedule work on it).
    """

    log = Logger()

    def __init__(
        self,
        bot: Bot,
        *,
        reactor: Any = None,
        publisher: LogPublisher | None = None,
        set_signal: Callable[[int, Any], Any] = signal.signal,
        get_signal: Callable[[int], Any] = signal.getsignal,
        at_exit: Callable[[Callable[[], None]], Any] = atexit.register,
        exit: Callable[[int], None] = os._exit,
    ) -> None:
        self.setName("process")
        self.bot = bot
        # The process-level hooks (callWhenRunning, stop, signals) of the reactor the bot
        # runs on: the global one under twistd.
        self.reactor: Any = reactor if reactor is not None else bot.reactor
        self.publisher = publisher if publisher is not None else globalLogPublisher
        self._set_signal = set_signal
        self._get_signal = get_signal
        self._at_exit = at_exit
        self._exit = exit
        self.level_filter = LogLevelFilterPredicate(LogLevel.info)
        self.filtered: list[FilteringLogObserver] = []
        self.installed = False

    def privilegedStartService(self) -> None:
        super().privilegedStartService()
        self.install()

    def startService(self) -> None:
        super().startService()
        # Runners that skip privilegedStartService (twistd on Windows, tests).
        self.install()

    def install(self) -> None:
        """Apply the log level, register the exit-status hook, and install the signal
        handlers once the reactor runs. Does its work once."""
        if self.installed:
            return
        self.installed = True
        self.filter_log_observers()
        self.apply_log_level()
        self._at_exit(self.exit_with_bot_status)
        self.reactor.callWhenRunning(self.install_signal_handlers)

    # -- logging --------------------------------------------------------------

    def filter_log_observers(self) -> None:
        """Put a level filter in front of every observer of the publisher.

        twistd has already picked the observer (stdout, --logfile, --syslog or --logger)
        and added it to the global publisher; it offers no hook to wrap it, and setting an
        ILogObserver component on the application would replace that choice instead of
        wrapping it. So the observers are swapped for filtered ones through the public
        add/removeObserver; finding them needs the publisher's (private) observer list.
        """
        observers = getattr(self.publisher, "_observers", None)
        if observers is None:
            self.log.warn("cannot apply [logging] level: unknown log publisher")
            return
        as_json = self.bot.config.section("logging").get("format", "text") == "json"
        for observer in list(observers):
            wrapped = FilteringLogObserver(
                self.json_observer(observer) if as_json else observer, [self.level_filter]
            )
            self.publisher.removeObserver(observer)
            self.publisher.addObserver(wrapped)
            self.filtered.append(wrapped)

    @staticmethod
    def json_observer(observer: Any) -> Any:
        """For ``[logging] format = json``: the file twistd's text observer writes to
        (stdout or --logfile), written as JSON lines instead; an observer of another kind
        (syslog, a --logger of one's own) is kept as it is."""
        out = getattr(observer, "_outFile", None)
        if not isinstance(observer, FileLogObserver) or out is None:
            return observer
        return jsonFileLogObserver(out)

    def apply_log_level(self) -> None:
        """Log events below ``[logging] level`` from now on (also after a reload)."""
        name = self.bot.config.section("logging").get("level", "info")
        # The root namespace (None, which Twisted's stubs do not admit) sets the default.
        self.level_filter.setLogLevelForNamespace(
            None,  # type: ignore[arg-type]
            LogLevel.levelWithName(name),
        )

    # -- signals --------------------------------------------------------------

    def install_signal_handlers(self) -> None:
        """SIGHUP reloads the configuration; SIGTERM and SIGINT stop the reactor.

        twistd's own SIGTERM/SIGINT handlers (the reactor's) stop the reactor too, but
        then twistd kills itself with the same signal once it has cleaned up, so the
        process never exits 0. Ours replace them only where the reactor's are installed
        (not a debugger's SIGINT, not when the reactor runs without signal handlers).
        """
        self._set_signal(signal.SIGHUP, self._on_signal)
        for name in ("SIGTERM", "SIGINT"):
            signum = getattr(signal, name)
            reactors = getattr(self.reactor, "sigTerm" if name == "SIGTERM" else "sigInt", None)
            if reactors is not None and self._get_signal(signum) == reactors:
                self._set_signal(signum, self._on_signal)

    def _on_signal(self, signum: int, frame: Any = None) -> None:
        # A signal handler interrupts whatever the main thread was doing: only hand the
        # work to the reactor (callFromThread is safe to call here; it wakes the reactor).
        self.reactor.callFromThread(self.handle_signal, signum)

    def handle_signal(self, signum: int) -> None:
        """Act on a signal. Reactor thread."""
        name = signal.Signals(signum).name
        if signum == signal.SIGHUP:
            self.log.info("received {signal}: reloading the configuration", signal=name)
            self.bot.reload_config()
            self.apply_log_level()
            return
        self.log.info("received {signal}: shutting down", signal=name)
        try:
            self.reactor.stop()
        except ReactorNotRunning:
            self.log.info("already shutting down")

    # -- exit status ----------------------------------------------------------

    def exit_with_bot_status(self) -> None:
        """At interpreter exit, make the bot's ``exit_code`` the process's exit status.

        twistd offers no way to choose its exit status: after the reactor stops it
        removes the pid file, stops logging and returns, and ``twistd`` exits 0. An
        ``atexit`` hook runs after all of that; ``os._exit`` is the only way to set the
        status from there (SystemExit raised in an atexit hook is ignored). It skips the
        remaining atexit hooks, so standard streams are flushed first. Status 0 leaves
        the normal exit alone.
        """
        code = self.bot.exit_code
        if not code:
            return
        for stream in (sys.stdout, sys.stderr, sys.__stdout__, sys.__stderr__):
            try:
                if stream is not None:
                    stream.flush()
            except Exception:
                pass
        self._exit(code)
