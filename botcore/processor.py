"""Processors, the steps of the event chain, and the decorators plugins write them with.

``@match`` binds a method to messages matching an Ibid-style selector, ``@handler`` to
every event, ``@authorise`` guards a handler with a permission, ``@periodic`` runs a
method on the reactor clock, and ``@outgoing`` makes one an outgoing filter."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

from zope.interface import implementer

from botcore.event import Event, EventType
from botcore.interfaces import IProcessor
from botcore.options import BoolOption, IntOption, Option, options_of

if TYPE_CHECKING:
    from botcore.interfaces import IBotContext

_URL = r"(?:[a-z][a-z0-9+.-]*://|www\.)[^\s<>\"']+"

SELECTORS: dict[str, str] = {
    "any": r".+",
    "chunk": r"\S+",
    "digits": r"\d+",
    "number": r"\d*\.?\d+",
    "word": r"\w+",
    "alpha": r"[a-zA-Z]+",
    "url": _URL,
}

MESSAGE_VERSIONS = ("raw", "deaddressed", "clean", "stripped")

_SELECTOR = re.compile(r"\{(?:(?P<name>[A-Za-z_]\w*):)?(?P<kind>" + "|".join(SELECTORS) + r")\}")
_SPACES = re.compile(r"(?:\\ |\s)+")


def compile_selector(selector: str, simple: bool = True) -> re.Pattern[str]:
    """Compile a ``@match`` selector into an anchored, case-insensitive regex.

    With ``simple`` (the default) ``{any}``, ``{chunk}``, ``{digits}``, ``{number}``,
    ``{word}``, ``{alpha}`` and ``{url}`` become capture groups, ``{name:kind}`` a named
    group, and each run of spaces matches any run of whitespace; the rest is a regex.
    """
    pattern = selector
    if simple:
        pattern = _SPACES.sub(r"\\s+", pattern.strip())

        def group(match: re.Match[str]) -> str:
            body = SELECTORS[match.group("kind")]
            if match.group("name"):
                return f"(?P<{match.group('name')}>{body})"
            return f"({body})"

        pattern = _SELECTOR.sub(group, pattern)
        # Grouped so that "a|b" means "exactly a or exactly b"; \Z so that a trailing
        # new line does not slip through as $ would let it.
        pattern = f"^(?:{pattern})\\Z"
    return re.compile(pattern, re.IGNORECASE | re.UNICODE | re.DOTALL)


def first_characters(pattern: re.Pattern[str]) -> frozenset[str] | None:
    r"""The characters (ASCII, lower case) a text must start with for ``pattern.match`` to
    accept it, compared case-blind; None when the regex does not tell (it can match an
    empty text, or starts with a class such as ``\w``). Lets the chain skip a processor
    for a message that cannot match it without running the regex.

    Only for texts that start with an ASCII character: case-blind matching lets others
    match ASCII letters (the long s U+017F matches ``s``, the Kelvin sign ``k``, the dotted
    and dotless I ``i``), so a caller must always try a text that starts beyond ASCII."""
    try:
        # The stdlib's own regex parser (private: hence the except, and no stubs).
        from re import _parser  # type: ignore[attr-defined]

        first, can_be_empty = _first_of(_parser.parse(pattern.pattern, pattern.flags))
    except Exception:
        return None
    return None if first is None or can_be_empty else frozenset(first)


def _first_of(sequence: Iterable[tuple[Any, Any]]) -> tuple[set[str] | None, bool]:
    """(the first characters, or None when unknown; whether it can match an empty text)
    of a parsed regex."""
    from re import _constants as c  # type: ignore[attr-defined]

    found: set[str] = set()
    for op, value in sequence:
        if op == c.AT:  # ^, \b, \Z: no character
            continue
        if op == c.LITERAL:
            if not 0 < value < 128:  # beyond ASCII, case-blind matching is not simple
                return None, False
            return found | {chr(value).lower()}, False
        if op == c.IN:
            chars = _first_of_class(value)
            return (None if chars is None else found | chars), False
        if op == c.SUBPATTERN:
            first, empty = _first_of(value[-1])
        elif op == c.BRANCH:
            first, empty = set(), False
            for branch in value[1]:
                one, one_empty = _first_of(branch)
                if one is None:
                    return None, False
                first |= one
                empty = empty or one_empty
        elif op in (c.MAX_REPEAT, c.MIN_REPEAT, c.POSSESSIVE_REPEAT):
            first, empty = _first_of(value[2])
            empty = empty or value[0] == 0
        elif op == c.ATOMIC_GROUP:
            first, empty = _first_of(value)
        else:  # any character, categories, look-arounds, back references...
            return None, False
        if first is None:
            return None, False
        found |= first
        if not empty:
            return found, False
    return found, True


def _first_of_class(items: Iterable[tuple[Any, Any]]) -> set[str] | None:
    from re import _constants as c  # type: ignore[attr-defined]

    chars: set[str] = set()
    for op, value in items:
        if op == c.LITERAL and 0 < value < 128:
            chars.add(chr(value).lower())
        elif op == c.RANGE and 0 < value[0] <= value[1] < 128:
            chars.update(chr(code).lower() for code in range(value[0], value[1] + 1))
        else:  # negation, categories, characters beyond ASCII
            return None
    return chars


@dataclass(frozen=True)
class HandlerSpec:
    """How a processor method is bound to events (set by the decorators)."""

    attribute: str
    pattern: re.Pattern[str] | None = None
    version: str = "clean"
    permission: str | None = None
    auth_required: bool = False
    fallthrough: bool = True
    #: What a matching text can start with (see `first_characters`).
    first: frozenset[str] | None = None
    #: Group numbers of the pattern's named groups (passed as keyword arguments).
    named: frozenset[int] = frozenset()


@dataclass(frozen=True)
class PeriodicSpec:
    """A method the dispatcher runs every ``interval`` seconds on the reactor clock."""

    attribute: str
    interval: float | None
    config_key: str | None
    initial_delay: float | None


@dataclass(frozen=True)
class HookSpec:
    """A method run before (``pre``) or after (``post``) the processing of an event of
    some types: ``types`` (with their subtypes), or the processor's own subscription when
    None; ``priority``, lower first."""

    attribute: str
    kind: str
    types: frozenset[str] | None
    priority: int


def pre_hook(*types: str, priority: int = 0) -> Callable:
    """Run the method before any processor sees an event of ``types`` (default: the
    processor's ``event_types`` and ``topics``), whether addressed or processed; hooks
    run in ascending ``priority`` (then load order). What it leaves in ``event.extra``
    (the event's namespace) later processors and hooks read by name; ``bot.namespace``
    is the bot's, kept across events and reloads."""
    return _hook("pre", types, priority)


def post_hook(*types: str, priority: int = 0) -> Callable:
    """Run the method after every processor has seen an event of ``types`` (default: the
    processor's subscription): it sees the replies and ``event.extra`` they left; in
    ascending ``priority``."""
    return _hook("post", types, priority)


def _hook(kind: str, types: tuple[str, ...], priority: int) -> Callable:
    if not isinstance(priority, int) or isinstance(priority, bool):
        raise TypeError(f"a hook's priority is an integer, not {priority!r}")

    def wrap(function: Callable) -> Callable:
        function._botcore_hook = (kind, frozenset(types) or None, priority)  # type: ignore[attr-defined]
        return function

    return wrap


#: What an outgoing filter that raises does with the response (`outgoing`).
ON_ERROR = ("send", "drop")


@dataclass(frozen=True)
class FilterSpec:
    """A method that sees every reply on its way to a source (`outgoing`): ``priority``,
    lower first; ``on_error``, what becomes of a reply the filter raised on."""

    attribute: str
    priority: int
    on_error: str


def outgoing(priority: int = 0, on_error: str = "send") -> Callable:
    """Make the method an outgoing filter: ``filter(response, event)`` sees every reply on
    its way to a source, whatever produced it (the chain, ``call_later``, a reactor, the
    HTTP API, ``bot.send``), and returns it (changed or not: `Response.replace`), a list
    of replies (none: dropped; several: split), or None (dropped). Filters run in
    ascending ``priority``, then chain order, on the reactor thread, after True/False
    replies have been worded: they must be quick and must not block. The core's Format
    is one, at `Priority.FORMAT`: a filter before it sees the reply as the plugin made
    it, one after it what the source will be given. ``event`` is the one the reply
    answers (for a reply sent outside any event, a carrier event of type ``outgoing``).
    A filter that raises is logged and counted and, with ``on_error="send"`` (the
    default), the reply goes on as the filter got it; with ``"drop"`` (a filter that
    guards, such as one that takes secrets out) it is dropped."""
    if not isinstance(priority, int) or isinstance(priority, bool):
        raise TypeError(f"a filter's priority is an integer, not {priority!r}")
    if on_error not in ON_ERROR:
        raise ValueError(f"on_error must be one of {', '.join(ON_ERROR)}, not {on_error!r}")

    def wrap(function: Callable) -> Callable:
        function._botcore_filter = (priority, on_error)  # type: ignore[attr-defined]
        return function

    return wrap


def match(selector: str, version: str = "clean", simple: bool = True) -> Callable:
    """Run the method for messages matching ``selector``; groups become arguments
    (named groups as keyword arguments). ``version`` names the message variant matched."""
    if version not in MESSAGE_VERSIONS:
        raise ValueError(f"version must be one of {', '.join(MESSAGE_VERSIONS)}, not {version!r}")
    pattern = compile_selector(selector, simple)

    def wrap(function: Callable) -> Callable:
        function._botcore_match = (pattern, version)  # type: ignore[attr-defined]
        return function

    return wrap


@dataclass(frozen=True)
class Example:
    """One exchange documenting a handler: ``said`` to the bot in private (so addressed)
    draws a reply that ``reply`` matches (`re.search`)."""

    said: str
    reply: re.Pattern[str]

    def __str__(self) -> str:
        return self.said


def example(said: str, reply: str) -> Callable:
    """Document a handler (with `match` or `handler`) by an exchange:
    ``@example("karma for foo", r"foo has karma of -?\\d+")``. Help shows ``said``;
    `botcore.testing` says it to a bot with the plugin loaded and fails unless a reply
    matches ``reply``. Several may be stacked (listed top to bottom)."""
    pattern = re.compile(reply)

    def wrap(function: Callable) -> Callable:
        earlier = getattr(function, "_botcore_examples", ())
        function._botcore_examples = (Example(said, pattern), *earlier)  # type: ignore[attr-defined]
        return function

    return wrap


def handler(function: Callable) -> Callable:
    """Run the method for every event that reaches the processor."""
    function._botcore_match = None  # type: ignore[attr-defined]
    return function


def authorise(fallthrough: bool = True, permission: str | None = None) -> Callable:
    """Only run the handler when the sender has the processor's ``permission`` (or the one
    given here). A refusal sets ``event.complain = 'notauthed'``; with
    ``fallthrough=False`` the event is also marked processed so later processors skip it."""

    def wrap(function: Callable) -> Callable:
        function._botcore_auth = (permission, fallthrough)  # type: ignore[attr-defined]
        return function

    return wrap


def periodic(
    interval: float | None = None,
    config_key: str | None = None,
    initial_delay: float | None = None,
) -> Callable:
    """Run the method every ``interval`` seconds (or the value of the processor option
    named ``config_key``) on the reactor clock, in the thread pool, with a fresh
    ``periodic`` event whose responses must name their source and target. The first run
    is after ``initial_delay`` (default: one interval). A run still going is not
    overlapped by the next."""
    if interval is None and config_key is None:
        raise TypeError("periodic needs an interval or a config_key")

    def wrap(function: Callable) -> Callable:
        function._botcore_periodic = (interval, config_key, initial_delay)  # type: ignore[attr-defined]
        return function

    return wrap


@dataclass(frozen=True)
class Band:
    """A run of priorities with one purpose (see `Priority`), both ends included."""

    name: str
    low: int
    high: int

    def __contains__(self, priority: object) -> bool:
        return (
            isinstance(priority, int)
            and not isinstance(priority, bool)
            and self.low <= priority <= self.high
        )

    def __str__(self) -> str:
        return f"{self.name} {self.low}..{self.high}"


class Priority:
    """Where a processor runs in the chain: its ``priority``, lower first, is in one of
    three bands,

    * ``PRE`` (-2000..-1000): readying the event for everyone else: secrets out of the
      text, the text cleaned, the sender identified, ignored senders dropped, whether the
      bot was addressed, rate limits;
    * ``WORK`` (-999..999): what plugins do with it: commands, fallbacks, watchers;
    * ``POST`` (1000..2000): after the work: complaints, taking note of what happened,
      the replies addressed and formatted, logs;

    and, by name, the slots of the processors others run before or after. Plugins never
    import each other: a processor that must run before or after another plugin's says
    so by the slot, e.g. karma's votes (``EARLY``) come before the factoids
    (``FALLBACK``), which would read ``foo++`` as a fact's name. Within one plugin, a
    processor placed relative to another of its own may add a small offset to its slot
    (``Priority.LEARN - 10``). A ``[plugin:NAME]`` section's ``priority`` overrides the
    processor's own, within the bands."""

    PRE = Band("pre", -2000, -1000)
    WORK = Band("work", -999, 999)
    POST = Band("post", 1000, 2000)
    BANDS = (PRE, WORK, POST)
    LOWEST = PRE.low
    HIGHEST = POST.high

    # -- pre -------------------------------------------------------------------------
    #: Takes secrets (passwords, tokens) out of the text before anything else sees it.
    SECRETS = -1700
    #: Cleans up the text for the others (core's Strip).
    STRIP = -1600
    #: Sets who sent the event, before everything that asks (the identity plugin).
    IDENTIFY = -1580
    #: Drops the events of ignored senders (core's Ignore).
    IGNORE = -1550
    #: Works out whether the bot was addressed (core's Addressed).
    ADDRESSED = -1500
    #: Stops senders who talk to the bot too fast, last of the band (core's RateLimit).
    RATELIMIT = PRE.high

    # -- work ------------------------------------------------------------------------
    #: Sees every message before any command can mark it processed.
    WATCH = -900
    #: Commands that have the first go at texts the ordinary ones could take too.
    EARLY = -100
    #: Ordinary commands (a processor's default).
    COMMANDS = 0
    #: Answers for what no command handled (the factoids).
    FALLBACK = 200
    #: Statements the bot learns from (``x is y``): after every command and fallback.
    LEARN = 800
    #: After all of the above: acts on what they left (memo's delivery).
    LATE = 900

    # -- post ------------------------------------------------------------------------
    #: Answers an addressed event nothing handled, first of the band (core's Complain).
    COMPLAIN = POST.low
    #: Takes note of what happened, once every command has read the state as it was
    #: (seen's sightings, after a "seen" command answered from the previous one).
    RECORD = 1400
    #: Words acknowledgements and says whom a reply is for (core's Address).
    ADDRESS = 1500
    #: Fits the replies to what the network carries (core's Format).
    FORMAT = 1600
    #: After every other processor: the replies are final (the log).
    LAST = POST.high

    @classmethod
    def band_of(cls, priority: object) -> Band | None:
        """The band ``priority`` is in, or None when it is in none."""
        for band in cls.BANDS:
            if priority in band:
                return band
        return None

    @classmethod
    def check(cls, processor: IProcessor) -> None:
        """ValueError, naming the processor, unless its priority is in one of the bands
        (checked when a plugin is loaded). Any thread."""
        if cls.band_of(processor.priority) is None:
            bands = ", ".join(str(band) for band in cls.BANDS)
            raise ValueError(
                f"processor {processor.name}.{type(processor).__name__} has priority "
                f"{processor.priority!r}, outside the bands ({bands})"
            )


class ProcessorOverrides:
    """Keys every ``[plugin:NAME]`` section may set for all of the plugin's processors."""

    addressed = BoolOption("Only respond when addressed (overrides the processor's own).")
    priority = IntOption(
        "Position in the chain, lower first (overrides the processor's own).",
        min=Priority.LOWEST,
        max=Priority.HIGHEST,
    )
    processed = BoolOption("Also see events already handled (overrides the processor's own).")


_OVERRIDES = tuple(options_of(ProcessorOverrides))


class TypeLineage(Protocol):
    """What a processor asks of the bot's event catalogue (`botcore.bus.catalogue`) to
    know whether it subscribes to an event type."""

    def ancestry(self, name: str) -> tuple[str, ...]: ...

    def topics_of(self, name: str) -> frozenset[str]: ...


@implementer(IProcessor)
class Processor:
    """Base class of every processor. Subclasses set the class attributes below, declare
    options as `botcore.options.Option` attributes, and write decorated methods."""

    #: The event types the processor subscribes to (and so their subtypes), or None for
    #: every type.
    event_types: Iterable[str] | None = (EventType.MESSAGE,)
    #: Topics (named sets of types, `botcore.bus.catalogue.TopicSpec`) it subscribes to
    #: as well: their types and subtypes.
    topics: Iterable[str] = ()
    addressed: bool = True
    processed: bool = False
    priority: int = Priority.COMMANDS
    #: Run on the dispatcher's background pool once the event's replies have been sent
    #: (so it never delays the conversation), on a copy of the event as the chain left
    #: it; its own replies are sent when it is done.
    background: ClassVar[bool] = False
    autoload: bool = True
    #: Whether the processor's ``bot`` is the administrative `IBotControl` (load, unload
    #: and reload plugins and sources, reload the config, stop) rather than only the
    #: `IBotContext` every processor gets: the admin plugins' processors set this.
    control: ClassVar[bool] = False
    permission: str | None = None
    #: Permissions the processor's code checks itself (``self.authorised(event, name)``)
    #: besides ``permission`` and its handlers': declared so they can be granted.
    other_permissions: ClassVar[tuple[str, ...]] = ()
    usage: str = ""
    features: tuple[str, ...] = ()

    _handler_specs: ClassVar[tuple[HandlerSpec, ...]] = ()
    _periodic_specs: ClassVar[tuple[PeriodicSpec, ...]] = ()
    _hook_specs: ClassVar[tuple[HookSpec, ...]] = ()
    _filter_specs: ClassVar[tuple[FilterSpec, ...]] = ()

    @classmethod
    def examples(cls) -> list[Example]:
        """The `example` exchanges of the processor's handlers, in handler order."""
        found: list[Example] = []
        for spec in cls._handler_specs:
            found += getattr(getattr(cls, spec.attribute, None), "_botcore_examples", ())
        return found

    @classmethod
    def declared_permissions(cls) -> set[str]:
        """Every permission the processor checks (lower case): its ``permission``, its
        handlers', and its ``other_permissions``."""
        names = {name.lower() for name in cls.other_permissions}
        if cls.permission:
            names.add(cls.permission.lower())
        names.update(spec.permission.lower() for spec in cls._handler_specs if spec.permission)
        return names

    def __init_subclass__(cls, **kw: Any) -> None:
        super().__init_subclass__(**kw)
        handlers: dict[str, HandlerSpec] = {}
        periodics: dict[str, PeriodicSpec] = {}
        hooks: dict[str, HookSpec] = {}
        filters: dict[str, FilterSpec] = {}
        for klass in reversed(cls.__mro__):
            for attribute, value in vars(klass).items():
                # An override without the decorator is no longer a handler (as in Ibid).
                if callable(value) and hasattr(value, "_botcore_match"):
                    bound = value._botcore_match
                    permission, fallthrough = getattr(value, "_botcore_auth", (None, True))
                    handlers[attribute] = HandlerSpec(
                        attribute,
                        pattern=bound[0] if bound else None,
                        version=bound[1] if bound else "clean",
                        permission=permission,
                        auth_required=hasattr(value, "_botcore_auth"),
                        fallthrough=fallthrough,
                        first=first_characters(bound[0]) if bound else None,
                        named=frozenset(bound[0].groupindex.values()) if bound else frozenset(),
                    )
                else:
                    handlers.pop(attribute, None)
                if callable(value) and hasattr(value, "_botcore_periodic"):
                    periodics[attribute] = PeriodicSpec(attribute, *value._botcore_periodic)
                else:
                    periodics.pop(attribute, None)
                if callable(value) and hasattr(value, "_botcore_hook"):
                    hooks[attribute] = HookSpec(attribute, *value._botcore_hook)
                else:
                    hooks.pop(attribute, None)
                if callable(value) and hasattr(value, "_botcore_filter"):
                    filters[attribute] = FilterSpec(attribute, *value._botcore_filter)
                else:
                    filters.pop(attribute, None)
        cls._handler_specs = tuple(handlers.values())
        cls._filter_specs = tuple(filters.values())
        cls._periodic_specs = tuple(periodics.values())
        cls._hook_specs = tuple(hooks.values())

    def __init__(self, name: str, bot: IBotContext, config: dict[str, Any] | None = None) -> None:
        self.name = name
        self.bot = bot
        self.config = dict(config or {})
        self.apply_overrides()
        types = type(self).event_types
        self.event_types = None if types is None else frozenset(types)
        self.topics = frozenset(type(self).topics)
        self._handlers = tuple(
            (spec, getattr(self, spec.attribute)) for spec in self._handler_specs
        )

    def apply_overrides(self) -> None:
        """Take addressed, priority and processed from ``config`` where it sets them, and
        the class's own values where it does not (called again after a config reload)."""
        for key in _OVERRIDES:
            if self.config.get(key) is not None:
                setattr(self, key, self.config[key])
            else:
                self.__dict__.pop(key, None)

    @classmethod
    def options(cls) -> dict[str, Option]:
        """The options this processor reads from its plugin's section."""
        return options_of(cls)

    def setup(self) -> None:
        """(Re)read options; called at load and on every config reload."""

    def shutdown(self) -> None:
        """Release resources; called at unload (and for the old version after a reload)."""

    def export_state(self) -> Any:
        """What to hand to the next version of this processor when its plugin is reloaded
        (None: nothing). Called on the reactor thread while the old version may still be
        handling events, after the new one's ``setup()`` and before the swap."""
        return None

    def import_state(self, state: Any) -> None:
        """Take over ``state`` from the previous version (its `export_state`, when that
        was not None), after ``setup()`` and before the new version sees any event."""

    def subscribes(self, event_type: str, catalogue: TypeLineage | None = None) -> bool:
        """Whether events of ``event_type`` are for this processor: it takes every type,
        or names the type, or (as ``catalogue`` says) one of its ancestors, or a topic
        that takes it. Any thread."""
        types = self.event_types
        if types is None or event_type in types:
            return True
        if catalogue is None:
            return False
        if any(name in types for name in catalogue.ancestry(event_type)):
            return True
        topics = self.topics
        return bool(topics) and any(name in topics for name in catalogue.topics_of(event_type))

    def accepts(self, event: Event) -> bool:
        """The cheap checks, before any handler or regex runs: type (`subscribes`, with
        the bot's catalogue), addressed, processed."""
        types = self.event_types
        if (
            types is not None
            and event.type not in types
            and not self.subscribes(event.type, getattr(self.bot, "catalogue", None))
        ):
            return False
        if self.addressed and not event.addressed:
            return False
        return self.processed or not event.processed

    def match_starts(self) -> tuple[tuple[str, frozenset[str] | None], ...] | None:
        """When all this processor does is run ``@match`` handlers (no ``@handler``, no
        ``process`` or ``accepts`` of its own), the message version each matches and the
        characters it can start with (`first_characters`): the chain skips the processor
        for a message none of them could match. Otherwise None."""
        cls = type(self)
        if (
            cls.process is not Processor.process
            or cls.accepts is not Processor.accepts
            or "process" in vars(self)
            or "accepts" in vars(self)
            or any(spec.pattern is None for spec, _ in self._handlers)
        ):
            return None
        return tuple((spec.version, spec.first) for spec, _ in self._handlers)

    def process(self, event: Event) -> None:
        """Run each handler that applies: ``@handler`` ones always, ``@match`` ones when
        the message matches. Worker thread."""
        for spec, method in self._handlers:
            if spec.pattern is None:
                if self._allowed(spec, event):
                    method(event)
                continue
            if event.message is None:
                continue
            found = spec.pattern.match(event.message.get(spec.version))
            if found is None or not self._allowed(spec, event):
                continue
            # Named groups are keyword arguments, the others positional ones, in order.
            args = [g for i, g in enumerate(found.groups(), 1) if i not in spec.named]
            method(event, *args, **found.groupdict())

    def _allowed(self, spec: HandlerSpec, event: Event) -> bool:
        if not spec.auth_required:
            return True
        if self.authorised(event, spec.permission or self.permission):
            return True
        event.complain = "notauthed"
        if not spec.fallthrough:
            event.processed = True
        return False

    def authorised(self, event: Event, permission: str | None) -> bool:
        """Whether the event's sender holds ``permission`` (a direct check for plugins)."""
        if permission is None:
            return False
        return self.bot.auth.authorise(event, permission)

    def hooks(self) -> list[tuple[HookSpec, Callable[[Event], None]]]:
        """Each ``@pre_hook`` and ``@post_hook`` method, bound."""
        return [(spec, getattr(self, spec.attribute)) for spec in self._hook_specs]

    def filters(self) -> list[tuple[FilterSpec, Callable[..., Any]]]:
        """Each ``@outgoing`` method, bound."""
        return [(spec, getattr(self, spec.attribute)) for spec in self._filter_specs]

    def hooked(self, spec: HookSpec, event_type: str, catalogue: TypeLineage | None) -> bool:
        """Whether hook ``spec`` runs for events of ``event_type``."""
        if spec.types is None:
            return self.subscribes(event_type, catalogue)
        lineage = catalogue.ancestry(event_type) if catalogue is not None else (event_type,)
        return any(name in spec.types for name in lineage)

    def periodic_tasks(self) -> list[tuple[Callable[[Event], None], float, float]]:
        """``(method, interval, initial_delay)`` for each ``@periodic`` method, with
        intervals read from options where a ``config_key`` is given."""
        tasks = []
        for spec in self._periodic_specs:
            interval = getattr(self, spec.config_key) if spec.config_key else spec.interval
            if not interval or interval <= 0:
                continue
            delay = interval if spec.initial_delay is None else spec.initial_delay
            tasks.append((getattr(self, spec.attribute), float(interval), float(delay)))
        return tasks

    def __repr__(self) -> str:
        return f"<{type(self).__name__} of {self.name} priority={self.priority}>"
