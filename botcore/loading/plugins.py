"""The plugins service: loads the configured plugins' processors, gives the dispatcher
its chain, and loads, unloads and reloads plugins while the bot runs."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from twisted.application.service import Service
from twisted.internet.defer import Deferred, DeferredList, DeferredLock, fail, maybeDeferred
from twisted.internet.threads import deferToThreadPool
from twisted.logger import Logger
from twisted.python.failure import Failure

from botcore.dispatch.chain import Chain
from botcore.errors import PluginLoadError, PluginNotFound, PluginNotLoaded
from botcore.loading.reloads import ReloadStats
from botcore.processor import Priority, Processor

if TYPE_CHECKING:
    from botcore.config import Config
    from botcore.dispatch.dispatcher import Dispatcher
    from botcore.interfaces import IBotContext, IBotControl
    from botcore.loading.reloader import ModuleSwap, Reloader


class Plugins(Service):
    """Loads the configured plugins' processors at start and gives the dispatcher its chain;
    loads, unloads and reloads plugins while the bot runs; at stop, calls each processor's
    ``shutdown()``.

    A reload imports the plugin's whole module tree afresh, instantiates the new processors
    and calls their ``setup()``, hands each the state of the old processor of the same class
    name (``export_state()`` -> ``import_state(state)``), and only then swaps the chain: an
    event already running finishes with the old processors, the next one sees only the new.
    The old processors then get ``shutdown()``. If anything fails before the swap, the old
    modules are put back and the old processors keep running; the caller gets a
    `PluginLoadError` (type, message, file and line). Reactor thread.

    While the bot runs, the import (reading and compiling the plugin's code, running its
    module) happens in ``import_pool`` (the reactor's thread pool), so a slow import
    stalls no connection; events meanwhile run with the old chain, in order. One import
    at a time (`load_plugin` and `reload_plugin` queue behind each other), because each
    swaps modules in ``sys.modules``; `unload_plugin` refuses a plugin being (re)loaded."""

    log = Logger()

    def __init__(
        self,
        context: IBotContext,
        reloader: Reloader,
        dispatcher: Dispatcher,
        config: Callable[[], Config],
        control: IBotControl | None = None,
        reactor: Any = None,
        import_pool: Any = None,
        reloads: ReloadStats | None = None,
    ) -> None:
        """``context`` is what the processors are given as their bot, ``control`` what
        those that ask for the administrative operations get; ``config`` returns the bot's
        current configuration (a reload replaces it). Imports at runtime run in
        ``import_pool`` with results delivered through ``reactor``; without them (tests
        on a `Clock`), in the calling thread."""
        self.setName("plugins")
        self.context = context
        self.control = control
        self.reloader = reloader
        self.dispatcher = dispatcher
        self._config = config
        self.loaded: dict[str, list[Processor]] = {}
        self.failed: dict[str, str] = {}
        #: Plugin -> when (``context.seconds()``) its current version was loaded, how often.
        self.versions: dict[str, tuple[float, int]] = {}
        #: Reloads counted and timed (the bot's, shared with its source reloads).
        self.reloads = reloads if reloads is not None else ReloadStats()
        #: Chains swapped out while events were still running with them.
        self._retired: list[Chain] = []
        self._reactor = reactor
        self._import_pool = import_pool
        #: One import at a time: each swaps module trees in ``sys.modules``.
        self._importing = DeferredLock()
        #: Plugins whose (re)load is queued or under way.
        self._busy: set[str] = set()

    def startService(self) -> None:
        super().startService()
        for name in self.reloader.wanted_plugins():
            self.load(name)
        self.dispatcher.set_chain(self.processors())

    def load(self, name: str) -> list[Processor]:
        """Instantiate and set up a plugin's processors; a failing plugin is logged and
        skipped, so one broken plugin does not stop the bot."""
        try:
            processors = self._build(name, None)
        except Exception as e:
            # One clear line; the traceback only for who asks for debug output.
            why = _one_line(e)
            self.log.error("plugin {name} failed to load: {why}", name=name, why=why)
            self.log.debug("plugin {name} load failure", name=name, log_failure=Failure(e))
            self.failed[name] = why
            return []
        self.loaded[name] = processors
        self.versions[name] = (self.context.seconds(), 1)
        self.failed.pop(name, None)
        return processors

    def _build(self, name: str, module: Any) -> list[Processor]:
        """The plugin's processors, instantiated and set up; on failure those set up
        already are shut down again. A priority outside the bands fails the plugin."""
        config = self._config().section(f"plugin:{name}")
        processors = self.reloader.processors(name, self.context, config, module, self.control)
        for processor in processors:
            Priority.check(processor)
        ready: list[Processor] = []
        try:
            for processor in processors:
                processor.setup()
                ready.append(processor)
        except BaseException:
            self._shutdown(name, ready)
            raise
        return processors

    def load_plugin(self, name: str) -> Deferred[list[Processor]]:
        """Load a plugin that is not loaded, its code imported afresh off the reactor
        thread; fires with its processors, or fails with `PluginLoadError` (nothing
        changes then). Reactor thread."""

        def loaded(swap: ModuleSwap) -> list[Processor]:
            try:
                processors = self._build(name, swap.module)
                if not processors:
                    raise ValueError(f"plugin {name} has no processor to load")
            except Exception as e:
                files = swap.files()
                swap.rollback()
                raise PluginLoadError(f"plugin {name}", e, files) from e
            self.loaded[name] = processors
            self.versions[name] = (self.context.seconds(), 1)
            self.failed.pop(name, None)
            self.set_chain()
            return processors

        def check() -> None:
            if name in self.loaded:
                raise PluginLoadError(
                    f"plugin {name}", ValueError(f"plugin {name} is loaded already")
                )

        return self._import(name, check, loaded)

    def reload_plugin(self, name: str) -> Deferred[list[Processor]]:
        """Reload a loaded plugin (see the class), its code imported off the reactor
        thread; fires with the new processors, or fails with `PluginLoadError` (the old
        version keeps running) or `PluginNotLoaded`. Reactor thread."""

        def check() -> None:
            if name not in self.loaded:
                raise PluginNotLoaded(f"plugin {name} is not loaded")

        def reloaded(swap: ModuleSwap) -> list[Processor]:
            old = self.loaded[name]
            try:
                new = self._build(name, swap.module)
                try:
                    _hand_over(old, new)
                except BaseException:
                    self._shutdown(name, new)
                    raise
            except Exception as e:
                files = swap.files()
                swap.rollback()
                raise PluginLoadError(f"plugin {name}", e, files) from e
            self.loaded[name] = new
            self.versions[name] = (
                self.context.seconds(),
                self.versions.get(name, (0, 0))[1] + 1,
            )
            self.set_chain()
            self._shutdown_later(name, old)
            self.log.info("plugin {name} reloaded", name=name)
            return new

        started = time.perf_counter()

        def timed(result: Any) -> Any:
            ok = not isinstance(result, Failure)
            if ok or not result.check(PluginNotLoaded):
                self.reloads.record("plugin", name, time.perf_counter() - started, ok)
            return result

        return self._import(name, check, reloaded).addBoth(timed)

    def _import(
        self,
        name: str,
        check: Callable[[], None],
        then: Callable[[ModuleSwap], list[Processor]],
    ) -> Deferred[list[Processor]]:
        """Import plugin NAME's tree afresh in the import pool, after the imports queued
        before it, and hand the result to ``then`` on the reactor thread. ``check`` runs
        before the import and again once it is this one's turn (the plugin may have been
        loaded or unloaded meanwhile)."""
        try:
            check()
        except Exception:
            return fail()

        def run() -> Deferred[Any]:
            d: Deferred[Any] = maybeDeferred(check)
            d.addCallback(lambda _: self._off_reactor(self.reloader.reimport_plugin, name))
            d.addCallback(stopping)
            d.addCallback(then)
            return d

        def stopping(swap: ModuleSwap) -> ModuleSwap:
            # The bot stopped while the import ran: nothing would shut the new ones down.
            if not self.running:
                swap.rollback()
                raise PluginLoadError(f"plugin {name}", RuntimeError("the bot is stopping"))
            return swap

        self._busy.add(name)
        done = self._importing.run(run)

        def idle(result: Any) -> Any:
            self._busy.discard(name)
            return result

        return done.addBoth(idle)

    def _off_reactor(self, function: Callable[..., Any], *args: Any) -> Deferred[Any]:
        """``function(*args)`` in the import pool (by default the reactor's own thread
        pool: not the dispatcher's workers, which an admin's ``reload`` command waits
        in); in this thread when there is none (a test's `Clock`)."""
        pool = self._import_pool
        if pool is None and hasattr(self._reactor, "getThreadPool"):
            pool = self._reactor.getThreadPool()
        if pool is None:
            return maybeDeferred(function, *args)
        return deferToThreadPool(self._reactor, pool, function, *args)

    def unload_plugin(self, name: str) -> None:
        """Take a plugin out of the chain, shut its processors down and forget its modules
        (and their models). Reactor thread."""
        if name in self._busy:
            raise PluginLoadError(
                f"plugin {name}", ValueError(f"plugin {name} is being loaded; try again")
            )
        old = self.loaded.pop(name, None)
        if old is None:
            raise PluginNotLoaded(f"plugin {name} is not loaded")
        self.versions.pop(name, None)
        self.set_chain()
        self._shutdown_later(name, old)
        with contextlib.suppress(PluginNotFound):
            self.reloader.forget_plugin(name)
        self.log.info("plugin {name} unloaded", name=name)

    def set_chain(self) -> None:
        """Give the dispatcher a new chain of every loaded processor, remembering the old
        one while events still run with it."""
        if not self.running:
            return
        old = self.dispatcher.chain
        self.dispatcher.set_chain(self.processors())
        self._retired = [chain for chain in self._retired if chain.users]
        if old.users:
            self._retired.append(old)

    def _shutdown_later(self, name: str, processors: list[Processor]) -> None:
        """Shut ``processors`` down once no event still running uses them (at once when
        none does): an event finishes with the chain it started with."""
        ours = set(map(id, processors))
        chains = [
            chain
            for chain in self._retired
            if chain.users and any(id(p) in ours for p in chain.processors)
        ]
        if not chains:
            self._shutdown(name, processors)
            return
        done = DeferredList([chain.released() for chain in chains])
        done.addCallback(lambda _: self._shutdown(name, processors))

    def _shutdown(self, name: str, processors: list[Processor]) -> None:
        for processor in processors:
            try:
                processor.shutdown()
            except Exception:
                self.log.failure("shutdown of {p} in plugin {name} failed", p=processor, name=name)

    def processors(self) -> list[Processor]:
        """Every loaded processor, in load order (the chain sorts them by priority)."""
        return [p for processors in self.loaded.values() for p in processors]

    def stopService(self) -> None:
        super().stopService()
        for name, processors in self.loaded.items():
            self._shutdown(name, processors)


def _hand_over(old: list[Processor], new: list[Processor]) -> None:
    """Give each new processor the state its predecessor (same class name) exports."""
    by_class = {type(processor).__name__: processor for processor in old}
    for processor in new:
        previous = by_class.get(type(processor).__name__)
        if previous is None:
            continue
        state = previous.export_state()
        if state is not None:
            processor.import_state(state)


def _one_line(error: BaseException) -> str:
    """``Type: first line of the message``: what a failed plugin is reported as."""
    lines = str(error).strip().splitlines()
    kind = type(error).__name__
    return f"{kind}: {lines[0]}" if lines else kind
