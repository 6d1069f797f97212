"""The root service: builds the tree (databases, dispatcher, plugins, sources), runs its
lifecycle, and is the context processors and sources reach the rest of the bot through."""

from __future__ import annotations

import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, cast

from twisted.application.service import MultiService, Service
from twisted.internet.defer import Deferred, ensureDeferred, maybeDeferred, succeed
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

import botcore
from botcore.accounts.permissions import Permissions
from botcore.bus.catalogue import Catalogue, EventTypeSpec
from botcore.bus.log import EventLog
from botcore.bus.reactors import Reactors
from botcore.bus.reactors import from_config as reactors_from_config
from botcore.bus.sections import declare_from_config
from botcore.bus.stats import BusStats
from botcore.config import Config, ConfigErrors
from botcore.db.service import Database
from botcore.dispatch.dispatcher import Dispatcher, ScheduledCall
from botcore.errors import DispatcherStopped, PluginLoadError, PluginNotFound, PluginNotLoaded
from botcore.event import Event, EventType, Lifecycle, Response
from botcore.interfaces import IBotContext, IBotControl, ISource, Reactor
from botcore.loading.plugins import Plugins
from botcore.loading.reloader import Reloader
from botcore.loading.reloads import ReloadStats
from botcore.loading.sources import Sources, StopFailed
from botcore.loading.watch import PluginWatcher
from botcore.options import Option
from botcore.processor import Processor
from botcore.settings import read_config, section_resolver


@implementer(IBotContext)
class BotContext:
    """What plugins' processors and sources get of the bot (`IBotContext`): a view of the
    root that offers only that, so that the administrative operations stay with the admin
    plugins (which get the `Bot` itself, as `IBotControl`). Reads through to the bot, so a
    config reload's new settings and permissions are seen at once."""

    __slots__ = ("_bot",)

    def __init__(self, bot: Bot) -> None:
        self._bot = bot

    @property
    def name(self) -> str:
        return self._bot.name

    @property
    def names(self) -> list[str]:
        return self._bot.names

    @property
    def version(self) -> str:
        return self._bot.version

    @property
    def reactor(self) -> Reactor:
        return self._bot.reactor

    @property
    def config(self) -> Config:
        return self._bot.config

    @property
    def database(self) -> Database | None:
        return self._bot.databases.get("main")

    @property
    def auth(self) -> Permissions:
        return self._bot.auth

    @property
    def state(self) -> str:
        return self._bot.state

    @property
    def started_at(self) -> datetime | None:
        return self._bot.started_at

    def get_source(self, name: str | None) -> ISource | None:
        return self._bot.get_source(name)

    def dispatch(self, event: Event) -> Deferred[Event]:
        return self._bot.dispatch(event)

    def wants(self, event: Event) -> bool:
        return self._bot.wants(event)

    def skipped(self, event: Event) -> None:
        self._bot.skipped(event)

    def send(self, response: Response) -> None:
        self._bot.send(response)

    def call_later(
        self, delay: float, function: Any, event: Event, *args: Any, **kw: Any
    ) -> ScheduledCall:
        return self._bot.call_later(delay, function, event, *args, **kw)

    @property
    def catalogue(self) -> Catalogue:
        return self._bot.catalogue

    @property
    def event_stats(self) -> BusStats:
        return self._bot.dispatcher.stats

    @property
    def reactors(self) -> Reactors:
        return self._bot.reactors

    @property
    def namespace(self) -> dict[str, Any]:
        return self._bot.namespace

    def declare_event_type(self, spec: EventTypeSpec) -> None:
        """Add a typed event (name, description, JSON Schema, parent) to the catalogue."""
        self._bot.catalogue.declare(spec)

    def call_from_thread(self, function: Any, *args: Any, **kw: Any) -> None:
        self._bot.call_from_thread(function, *args, **kw)

    def loaded(self) -> dict[str, list[Processor]]:
        return self._bot.loaded()

    def seconds(self) -> float:
        return self._bot.seconds()

    def now(self) -> datetime:
        return self._bot.now()


@implementer(IBotControl)
class Bot(MultiService):
    """The root of the service tree and the context plugins and sources talk to.

    Children start in order (databases, dispatcher, plugins, sources), each waited for;
    stopping drains in-flight events first, then stops sources, plugins, the dispatcher
    and the databases.
    """

    log = Logger()

    def __init__(
        self,
        config: Config,
        *,
        reactor: Reactor | None = None,
        threadpool: Any = None,
        reloader: Reloader | None = None,
        import_pool: Any = None,
    ) -> None:
        super().__init__()
        if reactor is None:
            # The root is the one place the global reactor is resolved; everything else
            # is handed this one.
            from twisted.internet import reactor as global_reactor

            reactor = cast(Reactor, global_reactor)
        self.reactor: Reactor = reactor
        self.config = config
        self.version = botcore.__version__
        self.reloader = reloader or Reloader()
        # The load rules are part of [bot], for a given reloader too (as after a reload).
        self.reloader.config = dict(config.section("bot"))
        if self.reloader.base_dir is None:
            self.reloader.base_dir = config.directory
        self.state = Lifecycle.STOPPED
        # The state 'starting' replaced, kept until the processors exist to be told.
        self._unpublished_start: str | None = None
        self.started_at: datetime | None = None
        self.exit_code = 0
        #: What failed to stop in the stop under way ("name: error").
        self._stop_errors: list[str] = []
        self.auth = Permissions(config.section("auth"), self._source_permissions)

        self.databases: dict[str, Database] = {}
        for name in config.names("database") or ["main"]:
            self.databases[name] = Database.from_config(name, config)
            self.databases[name].setServiceParent(self)
        #: Values hooks and processors share across events by name (the global namespace
        #: of the bus's hooks; each event's own is its ``extra``); kept across reloads.
        self.namespace: dict[str, Any] = {}
        #: The event types (built-in and plugins'), validated on every publish path.
        self.catalogue = Catalogue()
        self._declare_event_types(config)
        self.dispatcher = Dispatcher(
            config.section("bot"),
            reactor=reactor,
            threadpool=threadpool,
            database=self.databases.get("main"),
            sources=self.get_source,
            on_fatal=self._fatal,
            catalogue=self.catalogue,
            # A test's pool (inline, or run by hand) for background processors too.
            background_pool=threadpool,
        )
        self.dispatcher.setServiceParent(self)
        #: The event log ([events]): idle unless ``log = yes``; stops after the plugins,
        #: so it records the final lifecycle event.
        self.event_log = EventLog(
            config.section("events"),
            database=self.databases.get("main"),
            reactor=reactor,
            catalogue=self.catalogue,
            threadpool=threadpool,
        )
        self.event_log.setServiceParent(self)
        self.dispatcher.observers.append(self.event_log.record)
        #: Reactors ([reactor:NAME], and plugins'): they see each event after the log.
        self.reactors = Reactors(self.catalogue, self.dispatcher.stats)
        self._configure_reactors(config)
        self.dispatcher.observers.append(self.reactors.observe)
        self.context = BotContext(self)
        #: Plugin and source reloads, counted and timed (the web front door's metrics).
        self.reloads = ReloadStats()
        self.plugins = Plugins(
            self.context,
            self.reloader,
            self.dispatcher,
            lambda: self.config,
            control=self,
            reactor=reactor,
            import_pool=import_pool,
            reloads=self.reloads,
        )
        self.plugins.setServiceParent(self)
        self.sources = Sources()
        self.sources.setServiceParent(self)
        #: Names of the sources built from [source:NAME] sections: a config reload may
        #: unload those, never one added by hand (botcore-plugin's console, a test's
        #: source), which the dispatcher must go on finding to give it its replies.
        self._configured_sources: set[str] = set()
        self.watcher: PluginWatcher | None = None
        if config.section("bot").get("autoreload", False):
            # Development: reload plugins whose files change (botcore.loading.watch).
            self.watcher = PluginWatcher(self.plugins, reactor=self.reactor)
            self.watcher.setServiceParent(self)
        for name in config.names("source"):
            section = config.section(f"source:{name}")
            if section.get("enabled", True):
                self.add_source(name, section)

    # -- context for plugins and sources ----------------------------------------

    @property
    def name(self) -> str:
        return self.config.section("bot").get("name", "botcore")

    @name.setter
    def name(self, value: str) -> None:
        # Service.setName/MultiService assign .name; the root's name comes from config.
        pass

    @property
    def names(self) -> list[str]:
        """Every name the bot answers to."""
        return [self.name, *self.config.section("bot").get("names", [])]

    @property
    def event_stats(self) -> BusStats:
        """The bus's counters (the dispatcher's)."""
        return self.dispatcher.stats

    def loaded(self) -> dict[str, list[Processor]]:
        """Every loaded plugin's processors, by plugin name (a copy)."""
        return {name: list(processors) for name, processors in self.plugins.loaded.items()}

    def dispatch(self, event: Event) -> Deferred[Event]:
        """Publish ``event``: run it through the chain and send its replies, wherever
        they go. Reactor thread; fires with the processed event once they are sent."""
        return self.dispatcher.dispatch(event)

    def wants(self, event: Event) -> bool:
        """Whether any processor would do something with ``event`` (`Dispatcher.wants`).
        Reactor thread."""
        return self.dispatcher.wants(event)

    def skipped(self, event: Event) -> None:
        """A source left ``event`` out (`wants` said no): `Dispatcher.skipped`."""
        self.dispatcher.skipped(event)

    def call_from_thread(self, function: Any, *args: Any, **kw: Any) -> None:
        """Run ``function(*args, **kw)`` on the reactor thread. Any thread."""
        self.reactor.callFromThread(function, *args, **kw)

    def section_options(self, section: str, values: Mapping[str, str]) -> dict[str, Option]:
        """The options ``[section]`` may hold (`UnknownSection` for one it may not)."""
        return dict(section_resolver(self.reloader)(section, values))

    def stop(self) -> None:
        """Stop the reactor, and so the bot (its services stop first). Any thread."""
        # The running reactor's own stop (a test's reactor may have one too).
        reactor: Any = self.reactor
        reactor.callFromThread(reactor.stop)

    def get_source(self, name: str | None) -> ISource | None:
        """The running source called ``name``, or None."""
        if name is None:
            return None
        try:
            return self.sources.getServiceNamed(name)
        except KeyError:
            return None

    def add_source(self, name: str, section: dict[str, Any]) -> ISource:
        """Instantiate a source from its config section and add it to the tree."""
        cls = self.reloader.source_class(section["type"])
        source = cls(name, self._context_for(cls), section)
        source.setup()
        source.setServiceParent(self.sources)
        self._configured_sources.add(name)
        return source

    def _context_for(self, cls: type) -> Any:
        # A source that declares ``control`` (a front door) drives the bot as the admin
        # plugins do; every other source gets only the context.
        return self if getattr(cls, "control", False) else self.context

    @property
    def database(self) -> Database | None:
        """The main database service, or None (`IBotContext.database`)."""
        return self.databases.get("main")

    # -- sources at runtime (reactor thread) ------------------------------------

    def source_states(self) -> dict[str, str]:
        """Every source of the config and every running one: name -> its state
        (stopped, connecting, connected, failed, reconnecting), or 'not loaded'."""
        states = {name: "not loaded" for name in self.config.names("source")}
        for source in self.sources:
            states[source.name] = source.state
        return states

    def _fresh_source_section(self, name: str) -> dict[str, Any]:
        # New settings of one source (e.g. another port) without applying the rest of
        # a changed config; `ConfigErrors` when the files are not valid.
        new = read_config(self.config.path, local=_local_of(self.config), reloader=self.reloader)
        if f"source:{name}" not in new.sections:
            raise PluginNotLoaded(f"there is no [source:{name}] section in the config")
        section = dict(new.section(f"source:{name}"))
        self.config.sections[f"source:{name}"] = section
        return section

    def _build_source(self, name: str, section: dict[str, Any]) -> tuple[ISource, Any]:
        swap = self.reloader.reimport_source(section["type"])
        try:
            cls = self.reloader.source_class(section["type"], swap.module)
            source = cls(name, self._context_for(cls), section)
            source.setup()
        except Exception as e:
            files = swap.files()
            swap.rollback()
            raise PluginLoadError(f"source {name}", e, files) from e
        self._configured_sources.add(name)
        return source, swap

    async def load_source(self, name: str) -> ISource:
        """Build a source from its (re-read) config section, its code imported afresh,
        and start it. Errors: `PluginLoadError`, `ConfigErrors`, `PluginNotLoaded`."""
        if self.get_source(name) is not None:
            raise PluginLoadError(f"source {name}", ValueError(f"source {name} is loaded already"))
        source, swap = self._build_source(name, self._fresh_source_section(name))
        try:
            await self.sources.attach(source)
        except Exception as e:
            await self.sources.detach(source)
            swap.rollback()
            raise PluginLoadError(f"source {name}", e) from e
        return source

    async def unload_source(self, name: str) -> None:
        """Stop a source and take it out of the bot; the others are not touched."""
        source = self.get_source(name)
        if source is None:
            raise PluginNotLoaded(f"source {name} is not loaded")
        source.stop_reason = "unloaded"
        await self.sources.detach(source)
        self.log.info("source {name} unloaded", name=name)

    async def reload_source(self, name: str) -> ISource:
        """Replace a source by one of its new code and its re-read settings (another
        server or port): the new one is built first, then the old one stops and the new
        one starts. If the new one fails to start, the old one is started again and the
        error raised. The other sources are not touched."""
        old = self.get_source(name)
        if old is None:
            raise PluginNotLoaded(f"source {name} is not loaded")
        started = time.perf_counter()
        ok = False
        try:
            source = await self._replace_source(name, old)
            ok = True
        finally:
            self.reloads.record("source", name, time.perf_counter() - started, ok)
        return source

    async def _replace_source(self, name: str, old: ISource) -> ISource:
        previous = self.config.section(f"source:{name}")
        source, swap = self._build_source(name, self._fresh_source_section(name))
        old.stop_reason = "reloaded"
        await self.sources.detach(old)
        try:
            await self.sources.attach(source)
        except Exception as e:
            await self.sources.detach(source)
            swap.rollback()
            self.config.sections[f"source:{name}"] = previous
            self.log.error("source {name}: new version failed; restarting the old", name=name)
            await self.sources.attach(old)
            raise PluginLoadError(f"source {name}", e) from e
        self.log.info("source {name} reloaded", name=name)
        return source

    async def connect_source(self, name: str) -> None:
        """Start (connect) a loaded source that is stopped."""
        source = self.get_source(name)
        if source is None:
            raise PluginNotLoaded(f"source {name} is not loaded")
        if not source.running:
            await maybeDeferred(source.startService)

    async def disconnect_source(self, name: str) -> None:
        """Stop (disconnect) a source, leaving it loaded."""
        source = self.get_source(name)
        if source is None:
            raise PluginNotLoaded(f"source {name} is not loaded")
        if source.running:
            source.stop_reason = "disconnected"
            await maybeDeferred(source.stopService)

    def send(self, response: Response) -> None:
        """Send a reply outside any event's run (`Dispatcher.send`): through the outgoing
        filters, like every reply. Any thread."""
        self.dispatcher.send(response)

    def call_later(
        self, delay: float, function: Any, event: Event, *args: Any, **kw: Any
    ) -> ScheduledCall:
        """See `Dispatcher.call_later`. Any thread."""
        return self.dispatcher.call_later(delay, function, event, *args, **kw)

    def seconds(self) -> float:
        """The reactor clock's time (a Clock in tests)."""
        return self.reactor.seconds()

    def now(self) -> datetime:
        """The reactor clock's time as an aware UTC datetime."""
        return datetime.fromtimestamp(self.seconds(), UTC)

    def _configure_reactors(self, config: Config) -> None:
        made = reactors_from_config(
            config,
            reactor=self.reactor,
            publish=self.dispatcher.publish,
            route=self.dispatcher.route,
        )
        self.reactors.replace_origin("config", made)

    def _declare_event_types(self, config: Config) -> None:
        # [event:NAME] and [topic:NAME]; read_config has refused a config where this
        # fails, so a problem here is of a Config made some other way (a test's).
        for section, key, problem in declare_from_config(self.catalogue, config):
            self.log.error(
                "[{section}] {key}: {problem}", section=section, key=key or "", problem=problem
            )

    def _source_permissions(self, name: str) -> list[str]:
        return self.config.section(f"source:{name}").get("permissions", [])

    # -- lifecycle ----------------------------------------------------------------

    def set_state(self, state: str, *, publish: bool = True, **details: Any) -> None:
        """Record, log and publish (as a ``lifecycle`` event) a change of state.

        Processors can only be told while the chain is up: ``starting`` is published once
        the plugins have loaded, before any source starts, and `stopService` publishes the
        final state before the plugins stop. ``details`` go into the event's payload (a
        failure's ``reason``, the ``errors`` of a stop)."""
        old, self.state = self.state, state
        if state == Lifecycle.FAILED:
            self.log.critical("botcore lifecycle: {old} -> {new}", old=old, new=state)
        else:
            self.log.info("botcore lifecycle: {old} -> {new}", old=old, new=state)
        if not publish:
            return
        if self.dispatcher.running and self.plugins.running:
            self._publish(state, old, **details)
        elif state == Lifecycle.STARTING:
            self._unpublished_start = old

    def _publish(self, state: str, previous: str, **details: Any) -> Deferred[Any]:
        # Lifecycle events share one conversation, so processors see them in order.
        event = Event(
            source="botcore",
            type=EventType.LIFECYCLE,
            data={"state": state, "previous": previous, **details},
        )
        d = self.dispatcher.dispatch(event)
        d.addErrback(self._publish_failed, state)
        return d

    def _publish_failed(self, failure: Failure, state: str) -> None:
        if failure.check(DispatcherStopped):
            # Stopping, with every worker still busy past the timeout.
            self.log.warn("lifecycle event {state} not processed: the bot stopped", state=state)
        else:
            self.log.failure("lifecycle event failed", failure)

    def startService(self) -> Deferred[None]:
        """Start the children one after another; on failure log one line, mark the bot
        failed, and stop what had started. Fires when running (or failed)."""
        Service.startService(self)
        self.set_state(Lifecycle.STARTING)
        d = ensureDeferred(self._start_children())
        d.addCallbacks(self._started, self._start_failed)
        return d

    async def _start_children(self) -> None:
        for child in list(self):
            await maybeDeferred(child.startService)
            if child is self.plugins and self._unpublished_start is not None:
                previous, self._unpublished_start = self._unpublished_start, None
                self._publish(Lifecycle.STARTING, previous)

    def _started(self, _: Any) -> None:
        # From the injected clock, so uptime is measurable against bot.seconds() in tests.
        self.started_at = self.now()
        self.set_state(Lifecycle.RUNNING)

    def _start_failed(self, failure: Failure) -> None:
        self.log.critical("botcore failed to start: {reason}", reason=_one_line(failure))
        self.log.debug("start failure details", log_failure=failure)
        self.exit_code = 1
        self.set_state(Lifecycle.FAILED, reason=f"failed to start: {_one_line(failure)}")
        ensureDeferred(self._stop_children()).addBoth(lambda _: self._stop_reactor())

    def _stop_reactor(self) -> None:
        # The global reactor, or a test's: whatever of running/stop/callWhenRunning it has.
        reactor: Any = self.reactor
        if getattr(reactor, "running", False):
            reactor.stop()
        elif hasattr(reactor, "callWhenRunning"):
            # twistd starts the services before it runs the reactor, so a start that
            # fails at once (a port in use) must stop the reactor once it runs.
            reactor.callWhenRunning(reactor.stop)

    def stopService(self) -> Deferred[None]:
        """Drain in-flight events (bounded), then stop sources, plugins, dispatcher and
        databases in that order. Fires when everything has stopped."""
        if not self.running:
            return succeed(None)
        Service.stopService(self)
        final = Lifecycle.FAILED if self.state == Lifecycle.FAILED else Lifecycle.STOPPED
        self._stop_errors = []
        self.set_state(Lifecycle.STOPPING)
        d = ensureDeferred(self._stop_children(final))
        # Published already, before the plugins stopped.
        d.addBoth(lambda _: self.set_state(self._final_state(final), publish=False))
        return d

    #: Seconds past ``shutdown_timeout`` the processors get to hear of the final state.
    FINAL_GRACE = 2.0

    async def _stop_children(self, final: str | None = None) -> None:
        """Stop within ``shutdown_timeout`` (plus `FINAL_GRACE`) in all: the events in
        flight get the time that is left at each step, not the whole timeout again.
        Before the sources close, the dispatcher stops taking their commits, so that no
        event's change is committed after its reply can no longer be sent."""
        dispatcher = self.dispatcher
        deadline = self.reactor.seconds() + dispatcher.shutdown_timeout

        def left(grace: float = 0.0) -> float:
            return max(0.0, deadline + grace - self.reactor.seconds())

        if dispatcher.running:
            await dispatcher.drain(left())
        for child in reversed(list(self)):
            if not child.running:
                continue
            if child is self.sources and dispatcher.running:
                dispatcher.close_commits()
            if child is self.plugins and final is not None and dispatcher.running:
                # The last moment the processors can hear of it (bounded like the drain):
                # with what failed to stop so far (the sources), as a failure.
                details: dict[str, Any] = {}
                errors = self._stop_errors
                if errors:
                    details = {"reason": "failed to stop: " + "; ".join(errors)}
                    details["errors"] = list(errors)
                self._publish(self._final_state(final), self.state, **details)
                await dispatcher.drain(left(self.FINAL_GRACE))
            try:
                if child is dispatcher:
                    await dispatcher.stopService(timeout=left(self.FINAL_GRACE))
                else:
                    await maybeDeferred(child.stopService)
            except StopFailed as error:
                # Each source's failure is logged already.
                self._stop_errors.extend(error.errors)
            except Exception:
                self.log.failure("stopping {child} failed", child=child.name)
                self._stop_errors.append(f"{child.name}: {_one_line(Failure())}")

    def _final_state(self, final: str) -> str:
        # Something that failed to stop makes the end a failure, as a failed start does.
        return Lifecycle.FAILED if self._stop_errors else final

    def _fatal(self, failure: Failure) -> None:
        self.log.critical("a processor asked the bot to exit: {reason}", reason=_one_line(failure))
        self.exit_code = self.exit_code or 1
        self._stop_reactor()

    # -- configuration reload -----------------------------------------------------

    def reload_config(self) -> list[str]:
        """Re-read the config files; on any error keep the running config and return the
        errors. On success, give the processors and sources whose sections changed their
        new sections and call their ``setup()`` again; load and unload plugins and sources
        as the new file wants. Reactor thread."""
        try:
            new = read_config(
                self.config.path, local=_local_of(self.config), reloader=self.reloader
            )
        except ConfigErrors as e:
            for error in e.errors:
                self.log.error("config reload refused: {error}", error=str(error))
            return [str(error) for error in e.errors]
        old, self.config = self.config, new
        # Who is authenticated, and the caches, outlive the old settings.
        self.auth = Permissions(new.section("auth"), self._source_permissions, self.auth)
        self.reloader.config = dict(new.section("bot"))
        self.dispatcher.config = dict(new.section("bot"))
        self.event_log.reconfigure(new.section("events"))
        self._configure_reactors(new)
        # New or changed [event:NAME] and [topic:NAME] (one removed from the file stays
        # declared until the bot restarts: events of its type may be in flight).
        self._declare_event_types(new)
        for name, processors in self.plugins.loaded.items():
            if new.section(f"plugin:{name}") == old.section(f"plugin:{name}"):
                continue
            for processor in processors:
                processor.config = dict(new.section(f"plugin:{name}"))
                processor.apply_overrides()
                try:
                    processor.setup()
                except Exception:
                    self.log.failure("setup of {p} failed after config reload", p=processor)
        problems = self._load_rules_changed() if self.plugins.running else []
        # Priorities may have changed; a new chain also restarts periodic handlers with
        # their new intervals.
        self.plugins.set_chain()
        for source in list(self.sources):
            section = new.sections.get(f"source:{source.name}")
            if section is None or not section.get("enabled", True):
                if self.sources.running and source.name in self._configured_sources:
                    self._in_background(self.unload_source(source.name), "unload", source.name)
                continue
            if section == old.sections.get(f"source:{source.name}"):
                continue
            source.config = dict(section)
            try:
                source.setup()
            except Exception:
                self.log.failure("setup of source {s} failed after config reload", s=source.name)
        if self.sources.running:
            for name in new.names("source"):
                if self.get_source(name) is None and new.section(f"source:{name}").get(
                    "enabled", True
                ):
                    self._in_background(self.load_source(name), "load", name)
        for problem in problems:
            self.log.error("config reload: {problem}", problem=problem)
        self.log.info("configuration reloaded from {path}", path=str(new.path))
        return problems

    def _load_rules_changed(self) -> list[str]:
        """Load the plugins the (new) load rules want and are not loaded, unload those
        loaded that they no longer want; what failed, in words."""
        problems = []
        wanted = self.reloader.wanted_plugins()
        for name in list(self.plugins.loaded):
            if name in wanted:
                continue
            try:
                self.reloader.plugin_location(name)
            except PluginNotFound:
                continue  # not a plugin the rules speak of (processors added by hand)
            try:
                self.plugins.unload_plugin(name)
            except PluginLoadError as e:
                problems.append(f"plugin {name} not unloaded: {e}")
        # Loads import off the reactor thread: a failure known before this returns is
        # one of its problems, a later one is logged.
        returned = False

        def failed(failure: Failure, name: str) -> None:
            problem = f"plugin {name} not loaded: {failure.value}"
            if returned:
                self.log.error("config reload: {problem}", problem=problem)
            else:
                problems.append(problem)

        for name in wanted:
            if name not in self.plugins.loaded:
                self.plugins.load_plugin(name).addErrback(failed, name)
        returned = True
        return problems

    def _in_background(self, coroutine: Any, what: str, name: str) -> None:
        d = ensureDeferred(coroutine)
        d.addErrback(
            lambda f: self.log.error(
                "config reload: {what} of source {name} failed: {reason}",
                what=what,
                name=name,
                reason=_one_line(f),
            )
        )


def _local_of(config: Config) -> str | None:
    # Only an explicit override file is passed again; NAME.local.ini is looked for anew,
    # so one added (or removed) since the start is seen by the reload.
    return str(config.local) if config.local is not None else None


def _one_line(failure: Failure) -> str:
    message = failure.getErrorMessage().strip().splitlines()
    text = message[0] if message else ""
    kind = failure.type.__name__ if failure.type is not None else "error"
    return f"{kind}: {text}" if text else kind
