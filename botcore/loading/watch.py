"""Development auto-reload: reload a plugin when one of its files changes.

Opt-in (``[bot] autoreload = yes``). Uses inotify on Linux (through Twisted), so an idle
bot does nothing at all; elsewhere it polls the files' modification times on the clock."""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING, Any

from twisted.application.service import Service
from twisted.internet.task import LoopingCall
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.python.filepath import FilePath

from botcore.errors import PluginLoadError, PluginNotFound, PluginNotLoaded

if TYPE_CHECKING:
    from twisted.internet.defer import Deferred

    from botcore.interfaces import Reactor
    from botcore.loading.plugins import Plugins


class PluginWatcher(Service):
    """Watches the files of every loaded plugin (its module tree) and reloads the plugin
    when one changes, ``delay`` seconds after the last change (editors write in several
    steps). A reload that fails is logged and the previous version keeps running; the
    next change tries again. Reactor thread."""

    log = Logger()

    def __init__(
        self,
        plugins: Plugins,
        *,
        reactor: Reactor,
        interval: float = 1.0,
        delay: float = 0.3,
        inotify: bool | None = None,
    ) -> None:
        self.setName("watcher")
        self.plugins = plugins
        self.reloader = plugins.reloader
        self.reactor = reactor
        self.interval = interval
        self.delay = delay
        self.use_inotify = sys.platform.startswith("linux") if inotify is None else inotify
        #: File -> the plugin it belongs to.
        self.files: dict[str, str] = {}
        self._stamps: dict[str, tuple[int, int] | None] = {}
        self._pending: dict[str, Any] = {}
        self._notifier: Any = None
        self._watched: set[str] = set()
        self._loop: LoopingCall | None = None
        #: What happened, for tests and the log: (plugin, None or the error).
        self.reloads: list[tuple[str, str | None]] = []

    # -- service ------------------------------------------------------------------------

    def startService(self) -> None:
        super().startService()
        self.refresh()
        if self.use_inotify:
            try:
                from twisted.internet import inotify

                self._notifier = inotify.INotify(reactor=self.reactor)
                self._notifier.startReading()
            except Exception as e:
                self.log.info("autoreload: inotify unavailable ({e}); polling", e=e)
                self._notifier = None
        if self._notifier is not None:
            self._watch_directories()
        else:
            self._loop = LoopingCall(self.poll)
            self._loop.clock = self.reactor  # type: ignore[assignment]  # it has callLater
            self._loop.start(self.interval, now=False)
        self.log.info(
            "autoreload: watching {count} file(s) by {how}",
            count=len(self.files),
            how="inotify" if self._notifier is not None else f"polling every {self.interval}s",
        )

    def stopService(self) -> None:
        super().stopService()
        if self._loop is not None and self._loop.running:
            self._loop.stop()
        self._loop = None
        if self._notifier is not None:
            self._notifier.loseConnection()
            self._notifier = None
            self._watched.clear()
        for call in self._pending.values():
            if call.active():
                call.cancel()
        self._pending.clear()

    # -- what to watch --------------------------------------------------------------------

    def refresh(self) -> None:
        """Recompute the files of the loaded plugins (after a load, unload or reload)."""
        reloader = self.reloader
        files: dict[str, str] = {}
        for name in list(self.plugins.loaded):
            try:
                module_name, _ = reloader.plugin_location(name)
            except PluginNotFound:
                continue
            for module in reloader.module_tree(module_name):
                file = getattr(sys.modules.get(module), "__file__", None)
                if file:
                    files[os.path.abspath(file)] = name
        self.files = files
        self._stamps = {file: _stamp(file) for file in files}
        if self._notifier is not None:
            self._watch_directories()

    def _watch_directories(self) -> None:
        from twisted.internet import inotify

        mask = inotify.IN_CLOSE_WRITE | inotify.IN_MOVED_TO | inotify.IN_CREATE
        for directory in sorted({os.path.dirname(file) for file in self.files}):
            if directory in self._watched:
                continue
            try:
                self._notifier.watch(FilePath(directory), mask, callbacks=[self._notified])
            except Exception as e:
                self.log.warn("autoreload: cannot watch {d}: {e}", d=directory, e=e)
                continue
            self._watched.add(directory)

    # -- noticing changes -------------------------------------------------------------------

    def _notified(self, _watch: Any, path: FilePath[Any], _mask: int) -> None:
        # Twisted's inotify hands over bytes paths (FilePath in bytes mode) whatever mode
        # the watched directory was given in; the files watched are str.
        file = os.path.abspath(os.fsdecode(path.path))
        name = self.files.get(file)
        if name is None and file.endswith(".py"):
            # A new file in a plugin's package folder.
            folder = os.path.dirname(file)
            name = next((p for f, p in self.files.items() if os.path.dirname(f) == folder), None)
        if name is not None:
            self._schedule(name)

    def poll(self) -> None:
        """Look at every watched file's modification time and size (the polling path)."""
        changed = set()
        for file, name in self.files.items():
            stamp = _stamp(file)
            if stamp != self._stamps.get(file):
                self._stamps[file] = stamp
                changed.add(name)
        for name in sorted(changed):
            self._schedule(name)

    def _schedule(self, name: str) -> None:
        call = self._pending.get(name)
        if call is not None and call.active():
            call.reset(self.delay)
            return
        self._pending[name] = self.reactor.callLater(self.delay, self._reload, name)

    def _reload(self, name: str) -> Deferred[Any] | None:
        """Reload plugin NAME (its import runs off the reactor thread); the Deferred fires
        once it is done, failed or not, and the files are watched again."""
        self._pending.pop(name, None)
        if name not in self.plugins.loaded:
            return None

        def reloaded(_: object) -> None:
            self.log.info("autoreload: plugin {name} reloaded", name=name)
            self.reloads.append((name, None))

        def failed(failure: Failure) -> None:
            if not failure.check(PluginLoadError, PluginNotLoaded):
                self.log.failure("autoreload of plugin {name} failed", failure, name=name)
                self.reloads.append((name, str(failure.value)))
                return
            self.log.error(
                "autoreload of plugin {name} failed, the previous version keeps running: {error}",
                name=name,
                error=str(failure.value),
            )
            self.reloads.append((name, str(failure.value)))

        d = self.plugins.reload_plugin(name)
        d.addCallbacks(reloaded, failed)
        d.addBoth(lambda _: self.refresh())
        return d


def _stamp(file: str) -> tuple[int, int] | None:
    try:
        stat = os.stat(file)
    except OSError:
        return None
    return stat.st_mtime_ns, stat.st_size
