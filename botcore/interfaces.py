"""The contracts between the core and its extensions: what a source and a processor provide.

Implementations declare them with ``@implementer`` and tests check them with
``zope.interface.verify.verifyObject``."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

from twisted.application.service import IService
from zope.interface import Attribute, Interface

if TYPE_CHECKING:
    from twisted.internet.interfaces import IDelayedCall


class Reactor(Protocol):
    """What the core uses of a reactor: its clock and the hand-off from worker threads.
    The global reactor fits, and in tests `botcore.testing.InlineReactor` (a `Clock` that
    runs ``callFromThread`` at once). Only the root service resolves the global one."""

    def seconds(self) -> float: ...

    def callLater(
        self, delay: float, callable: Callable[..., Any], /, *args: Any, **kw: Any
    ) -> IDelayedCall: ...

    def callFromThread(self, callable: Callable[..., Any], /, *args: Any, **kw: Any) -> None: ...


class ISource(IService):
    """A connection to one chat network (or front door), living on the reactor thread."""

    name = Attribute("The source's name: NAME of its [source:NAME] section.")
    type = Attribute("The source type, e.g. 'telnet' or 'irc'.")
    supports = Attribute(
        "A frozenset of what the network carries: 'action', 'notice', 'multiline', "
        "'topic', and of the message model 'message-ids' (its messages have ids), "
        "'reply', 'thread', 'react', 'edit', 'delete', 'attachments' (it sends a reply's "
        "attachments as files, not as lines of text). It may change while the source "
        "runs (an IRC server's capabilities): read it when it matters."
    )
    reply_to_trigger = Attribute("Whether replies are marked as replies to their trigger.")
    reaction_fallback = Attribute("What a reaction becomes where 'react' is not supported.")
    edit_fallback = Attribute("What an edit becomes where 'edit' is not supported.")
    nick = Attribute("The bot's current nick on this source, or None.")
    state = Attribute("'stopped', 'connecting', 'connected', 'failed' or 'reconnecting'.")
    config = Attribute("The parsed values of the source's config section.")
    stop_reason = Attribute(
        "Why the source is stopping while the bot runs on ('reloaded', 'unloaded', "
        "'disconnected'), set by the bot before it stops the source alone; else None."
    )

    can_pause = Attribute(
        "Whether the source can stop reading its network while its backlog in the "
        "dispatcher is full (pause_input / resume_input)."
    )

    def setup() -> None:
        """(Re)read options from ``config``; called at load and on config reload."""

    def pause_input() -> None:
        """The dispatcher holds ``[bot] max_queued`` of the source's events: stop reading
        the network until resume_input. Reactor thread; only when ``can_pause``."""

    def resume_input() -> None:
        """The source's backlog is down to half: read the network again. Reactor thread."""

    def send(response) -> None:
        """Deliver one `botcore.event.Response` to the network. Reactor thread only.
        Its ``kind`` and its ``reply_to``/``thread_id``/``refers_to`` (network ids, or
        None) are only what ``supports`` says: the core degraded the rest."""

    def remember_sent(response, message_id) -> None:
        """Record that ``response`` went out as the network's message ``message_id``.
        Reactor thread only."""

    def sent_messages(target) -> list:
        """The bot's recent messages to ``target`` with their network ids
        (`botcore.source.SentMessage`), oldest first. Any thread."""

    def network_id(message) -> str:
        """The network id of the bot's message given by its Response id (else
        ``message`` unchanged). Any thread."""

    def when_connected():
        """A Deferred that fires once the source is connected (``state`` 'connected'):
        at once when it is, else when it next becomes so. Cancel it to stop waiting.
        Reactor thread only."""

    def truncation_point(response=None) -> int | None:
        """The most UTF-8 bytes of text one message may carry, or None for no limit."""

    def names() -> tuple[str, ...]:
        """Every name the bot answers to here, each once (compared case-blind): its current
        nick on this source first, then the configured ``[bot] name`` and ``[bot] names``.
        Any thread."""

    def is_channel(target) -> bool:
        """Whether ``target`` is a channel on this source rather than a person (IRC: by the
        server's CHANTYPES). Any thread."""

    def fold(name) -> str:
        """``name`` (a channel or nick) as this network compares names: two names are the
        same here exactly when their folds are equal (IRC: by the server's CASEMAPPING).
        Any thread."""

    def verified_identity(event) -> str | None:
        """The identity of the event's sender that the network itself vouches for (an
        IRC services account, an XMPP bare JID, a trusted console's nick), or None. Must
        only read the event and the source's settings: any thread."""

    def is_present(target) -> bool | None:
        """Whether ``target`` (a person or channel) can be written to now: True; False
        when the source knows it is not there (a console nick nobody holds); None when
        it cannot tell (IRC, XMPP). Reactor thread."""


class IChannelSource(ISource):
    """A source with channels the bot joins and leaves and a nick it can change (IRC, for
    example): what admin commands drive. Reactor thread only: from a worker thread, call
    these through ``bot.reactor.callFromThread``."""

    def join(channel, key=None) -> None:
        """Join ``channel`` (with ``key``) now and again after every reconnect."""

    def part(channel, message=None) -> None:
        """Leave ``channel`` and stop rejoining it."""

    def set_nick(nick) -> None:
        """Change the bot's nick on this source (and regain this one from now on)."""

    def say(target, text) -> None:
        """Send ``text`` to a channel or a person, straight to the network: the outgoing
        filters do not see it (plugins send with `IBotContext.send`)."""

    def do(target, text) -> None:
        """Send ``text`` as an action (``/me``) to a channel or a person (as ``say``:
        past the outgoing filters)."""

    def topic(channel, text) -> None:
        """Set ``channel``'s topic."""

    def members(channel) -> dict:
        """Who is in ``channel``: nick -> privilege prefix (``@``, ``+``, ``""``)."""


class IProcessor(Interface):
    """A step of the event chain, supplied by a plugin. Runs on a worker thread."""

    name = Attribute("The plugin (module) name this processor belongs to.")
    priority = Attribute(
        "Lower runs first: pre -2000..-1000, work -999..999, post 1000..2000 (the bands and "
        "slots `botcore.processor.Priority` names)."
    )
    event_types = Attribute("Event types handled (a frozenset), or None for every type.")
    addressed = Attribute("Only run for events addressed to the bot.")
    processed = Attribute("Also run for events already processed.")
    autoload = Attribute("Loaded by default when its plugin is loaded.")
    permission = Attribute("The permission @authorise handlers check, or None.")
    control = Attribute("Whether its bot is the administrative IBotControl (admin plugins).")
    usage = Attribute("How to use it, one line per command.")
    features = Attribute("Feature names (for help).")
    config = Attribute("The parsed values of the plugin's config section.")

    def setup() -> None:
        """(Re)read options; called at load and on every config reload."""

    def shutdown() -> None:
        """Release resources; called at unload."""

    def process(event) -> None:
        """Handle one event: inspect it, change it, add responses."""


class IScheduledCall(Interface):
    """A cancellable `IBotContext.call_later`; safe to cancel from any thread."""

    def active() -> bool:
        """Whether the call is still due to run."""

    def cancel() -> None:
        """Stop the call from running (a no-op when it already ran)."""


class IBotContext(Interface):
    """What a plugin's processors and a source may use of the bot: the root service
    provides it, and `botcore.testing` hands over the real bot. Every method may be
    called from any thread unless it says otherwise."""

    name = Attribute("The bot's name: people address it by this.")
    names = Attribute(
        "The configured names: ``[bot] name`` first, then ``[bot] names``. What the bot "
        "answers to on one source (its nick there too) is that source's `ISource.names`."
    )
    version = Attribute("botcore's version.")
    reactor = Attribute(
        "The reactor (a `Reactor`; the global one in a running bot) sources connect and "
        "time with. Reactor thread only, but for ``callFromThread``."
    )
    config = Attribute("The bot's whole validated configuration (`botcore.config.Config`).")
    database = Attribute(
        "The bot's main database service (`botcore.db.service.Database`, for a source's "
        "own records such as the IRC source's STS policies), or None without one."
    )
    state = Attribute("The lifecycle state (`botcore.event.Lifecycle`).")
    started_at = Attribute("When the bot finished starting (aware UTC datetime), or None.")
    auth = Attribute(
        "The permissions facade (`botcore.accounts.permissions.Permissions`): who is "
        "authenticated, and what an event's sender may do."
    )
    catalogue = Attribute(
        "The event types and topics (`botcore.bus.catalogue.Catalogue`): what each "
        "publish path validates against, and who subscribes to a subtype or a topic."
    )
    event_stats = Attribute(
        "The bus's counters (`botcore.bus.stats.BusStats`): per event type, topic, "
        "processor and reactor, since the start."
    )
    namespace = Attribute(
        "A dict of values hooks and processors share by name across events (the hooks' "
        "global namespace; an event's own is its ``extra``), kept across plugin reloads. "
        "Any thread: one read or write at a time is safe, a read-modify-write is not."
    )
    reactors = Attribute(
        "The reactors (`botcore.bus.reactors.Reactors`): a plugin adds its own "
        "(``add(Reactor(...))``) in ``setup()`` and removes them in ``shutdown()``."
    )

    def get_source(name) -> ISource | None:
        """The running source called ``name``, or None."""

    def dispatch(event):
        """Publish an event: run it through the chain. Reactor thread; the Deferred fires
        with the processed event, whose replies have been sent."""

    def wants(event) -> bool:
        """Whether any processor of the chain would do something with ``event``
        (`Dispatcher.wants`): a source may leave out one for which this is False
        instead of dispatching it. Reactor thread; cheap."""

    def skipped(event) -> None:
        """Say that the source left ``event`` out before dispatching it (`wants` said
        no), so that the dispatcher's monitors count it. Reactor thread."""

    def send(response) -> None:
        """Send one `botcore.event.Response` that no event's run produced (a plugin's own
        timer, a bridge) to ``response.source``/``response.target`` by the one reply
        path: through the outgoing filters (Format among them), like every reply. Use
        it, never a source's ``send`` or ``say``, so that the filters see it."""

    def call_later(delay, function, event, *args, **kw):
        """Run ``function(delayed_event, *args, **kw)`` after ``delay`` seconds, then the
        chain on that event; returns a cancellable handle."""

    def call_from_thread(function, *args, **kw) -> None:
        """Run ``function`` on the reactor thread (from a worker thread)."""

    def loaded() -> dict:
        """Every loaded plugin's processors: plugin name -> its processors, in load
        order (a copy: reloads do not change it under the caller)."""

    def seconds() -> float:
        """The reactor clock's time (a `Clock` in tests)."""

    def now():
        """The reactor clock's time as an aware UTC datetime."""


class IBotControl(IBotContext):
    """The administrative operations, for the admin plugins only: plugins and sources
    loaded, unloaded and reloaded, the config reloaded, the bot stopped. Reactor thread
    only, unless a method says otherwise."""

    plugins = Attribute("The plugins service: ``loaded``, ``failed``, ``versions``, and "
                        "``load_plugin``/``unload_plugin``/``reload_plugin`` (load and "
                        "reload return Deferreds).")  # fmt: skip
    dispatcher = Attribute("The dispatcher: its ``load()`` and ``monitors`` (metrics).")
    databases = Attribute("The databases: name -> `botcore.db.service.Database`.")
    catalogue = Attribute("The event types (`botcore.bus.catalogue.Catalogue`).")
    reloads = Attribute("Plugin and source reloads counted and timed "
                        "(`botcore.loading.reloads.ReloadStats`).")  # fmt: skip

    def section_options(section, values) -> dict:
        """The options ``[section]`` may hold, given its raw ``values``; raises
        `botcore.config.UnknownSection` for a section the config may not have."""

    def reload_config() -> list:
        """Re-read the config files; the problems found, in words (none: applied)."""

    def source_states() -> dict:
        """Every configured or running source: name -> its state, or 'not loaded'."""

    def load_source(name):
        """Build and start a source from its re-read section (a coroutine)."""

    def unload_source(name):
        """Stop a source and take it out of the bot (a coroutine)."""

    def reload_source(name):
        """Replace a source by its new code and settings (a coroutine)."""

    def connect_source(name):
        """Start a loaded, stopped source (a coroutine)."""

    def disconnect_source(name):
        """Stop a source, leaving it loaded (a coroutine)."""

    def stop() -> None:
        """Stop the bot (drain, leave the networks, exit). Any thread."""
