"""The core processors every bot runs: they work out who sent an event and whether a message
is meant for the bot, drop what should be ignored, complain about what nobody understood,
and shape the replies.

Pre-processing: Strip (-1600), Identify (-1580), Ignore (-1550), Addressed (-1500),
RateLimit (-1000).
Post-processing: Complain (950), Address (1500); Format (1600) is an outgoing filter that
fits every reply, whatever produced it, to its source."""

from __future__ import annotations

import threading
from collections import deque
from random import choice
from typing import Any

from twisted.logger import Logger

from botcore.accounts.identify import FirstSightings, identify
from botcore.accounts.secrets import take_secret
from botcore.addressing import VERBS, address_parser
from botcore.event import Event, EventType, Message, Response, describe_attachments
from botcore.options import BoolOption, FloatOption, IntOption, LinesOption, ListOption, Option
from botcore.processor import Priority, Processor, handler, outgoing
from botcore.source import names_on

_NONSENSE_TYPES = frozenset({EventType.MESSAGE, EventType.ACTION, EventType.INVITE})
_NOT_WORDED = frozenset({"reaction", "delete"})
#: The events a reply may be marked as answering (by default).
_REPLIABLE = frozenset({EventType.MESSAGE, EventType.ACTION, EventType.EDIT, EventType.DELAYED})
ELLIPSIS = "\N{HORIZONTAL ELLIPSIS}"
_ELLIPSIS_BYTES = len(ELLIPSIS.encode("utf-8"))


def _strip(text: str) -> str:
    """Text without surrounding space and trailing ``?``, ``!`` and ``.`` (Ibid's Strip)."""
    return text.strip().rstrip("?!.").rstrip()


class Strip(Processor):
    """Fills in the message variants: ``stripped`` (and, until Addressed changes it,
    ``clean``) is the raw text without surrounding space and trailing punctuation;
    ``deaddressed`` starts as the raw text."""

    usage = "(automatic) cleans up incoming messages for the other processors"
    features = ("core",)
    priority = Priority.STRIP
    addressed = False
    event_types = EventType.WRITTEN

    @handler
    def handle_strip(self, event: Event) -> None:
        message = event.message
        if message is None:
            return
        message.deaddressed = message.raw
        message.stripped = message.clean = _strip(message.raw)


class Secrets(Processor):
    """Takes the secret out of every command that carries one (`botcore.accounts.secrets`
    declares them: ``auth <password>``, ``set password ...``, ``link token ...``), however
    the bot is addressed, before any other processor, log line or table sees it. In
    private the command is left for the processor that carries it out (the identity
    plugin's, or the admin plugin's for ``set config`` of a secret option) in
    ``event.extra[Secret.key]``; in public the secret is only removed, and
    the sender warned when they were talking to the bot."""

    usage = "(automatic) takes passwords and tokens out of what was said"
    features = ("core", "accounts")
    priority = Priority.SECRETS  # first: nothing earlier sees the text
    addressed = False
    processed = True
    event_types = EventType.WRITTEN  # an edit that adds a password is scrubbed too

    @handler
    def handle_secret(self, event: Event) -> None:
        message = event.message
        if message is None:
            return
        names = names_on(self.bot, event.source)
        found = take_secret(message.raw, names, self.bot.config.is_secret_option)
        if found is None:
            return
        message.raw = message.deaddressed = message.clean = message.stripped = found.scrubbed
        event.processed = True
        if not event.public:
            event.extra[found.key] = found
        elif found.addressed is not None:
            event.addresponse(
                "Don't tell me secrets in public! Say it to me privately, and "
                "change that password now: everyone here has seen it."
            )


class Identify(Processor):
    """Works out who sent each event (`botcore.accounts.identify`): its identity, created on
    first sight, its account, and whether the sender is authenticated. Here, in the core
    plugin, before Ignore, Addressed and everything else, so every later processor can
    read ``event.identity``, ``event.account`` and ``event.authenticated``. New
    identities are created within a budget per source (``new_identities``), so a flood
    of strangers writes a bounded number of rows."""

    usage = "(automatic) works out who sent each event"
    features = ("core", "accounts")
    priority = Priority.IDENTIFY  # after Strip, before Ignore, Addressed and RateLimit
    addressed = False
    processed = True
    event_types = None

    new_identities = IntOption(
        "New identities (senders never seen before) one source may create within "
        "new_identities_time seconds; past it, further strangers stay anonymous for that "
        "event (answered, nothing kept about them), counted and logged (0: no limit).",
        200,
        min=0,
    )
    new_identities_time = FloatOption("The window of new_identities, in seconds.", 60.0, min=1)

    def __init__(self, *args: Any, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self.first_sightings = FirstSightings()

    @handler
    def handle_identify(self, event: Event) -> None:
        identify(
            self.bot,
            event,
            self.first_sightings,
            self.new_identities,
            self.new_identities_time,
        )


class Ignore(Processor):
    """Marks events from ignored senders processed, so no plugin answers them."""

    usage = "(automatic) ignores the senders listed in the 'ignore' option"
    features = ("core", "ignore")
    priority = Priority.IGNORE
    addressed = False
    event_types = (
        *EventType.WRITTEN,
        EventType.INVITE,
        EventType.REACTION,
        EventType.DELETE,
    )

    ignore = ListOption(
        "Senders to ignore: a nick or sender id, or SOURCE:nick / SOURCE:id for one source.",
        [],
    )

    log = Logger()

    def __init__(self, *args: Any, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self._ignored: frozenset[str] = frozenset()

    def setup(self) -> None:
        self._ignored = frozenset(entry.casefold() for entry in self.ignore)

    def ignored(self, event: Event) -> bool:
        """Whether the event's sender is on the ignore list (nicks compared case-blind)."""
        sender = event.sender
        if not self._ignored or sender is None:
            return False
        source = event.source
        for who in (sender.nick, sender.id):
            if who is None:
                continue
            if who.casefold() in self._ignored or f"{source}:{who}".casefold() in self._ignored:
                return True
        return False

    @handler
    def handle_ignore(self, event: Event) -> None:
        if self.ignored(event):
            event.processed = True
            self.log.debug("ignoring {nick} on {source}", nick=event.who.nick, source=event.source)


class Addressed(Processor):
    """Works out whether a message is meant for the bot: ``bot: x``, ``bot, x``, ``bot> x``,
    ``bot x`` and ``x, bot`` are (every form `botcore.addressing` knows), unless a verb
    follows the name (``bot is cool`` is a remark about the bot). Names are the source's
    `names()`: the bot's nick there, its ``[bot] name`` and ``names``. Sets
    ``event.addressed`` to the name used and removes it from ``clean`` and
    ``deaddressed``. Private messages are always addressed."""

    usage = "(automatic) notices when people talk to the bot: 'bot: ...', '..., bot'"
    features = ("core", "addressed")
    priority = Priority.ADDRESSED
    addressed = False
    event_types = EventType.TEXT

    verbs = ListOption(
        "Words that, right after the bot's name, make a message a remark about the bot "
        'rather than a command ("bot is cool").',
        list(VERBS),
    )

    def __init__(self, *args: Any, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self._verbs: tuple[str, ...] = VERBS

    def setup(self) -> None:
        self._verbs = tuple(self.verbs)

    @handler
    def handle_addressed(self, event: Event) -> None:
        message = event.message
        if message is None:
            return
        if not event.public and not event.addressed:
            event.addressed = True
        names = names_on(self.bot, event.source)
        if not names:
            return
        parser = address_parser(names, self._verbs)
        found = parser.parse(message.stripped)
        if found is None:
            return
        event.addressed = found.name
        message.clean = found.body.strip()
        raw = parser.parse(message.raw, statements=False)
        message.deaddressed = raw.body if raw is not None else message.clean


class RateLimit(Processor):
    """Stops one sender from flooding the bot: past ``limit_messages`` addressed messages
    in ``limit_time`` seconds, further ones are dropped unanswered. The sender is told so
    once per window (``limit_warn``; never in answer to a notice), and it is logged once
    per window. The clock is the bot's."""

    usage = "(automatic) ignores senders who talk to the bot too fast"
    features = ("core", "ratelimit")
    priority = Priority.RATELIMIT
    event_types = EventType.TEXT

    limit_messages = IntOption(
        "Messages one sender may address to the bot within limit_time seconds.", 5, min=1
    )
    limit_time = FloatOption(
        "The rate limit's window in seconds (0 turns rate limiting off).", 10.0, min=0
    )
    limit_warn = BoolOption(
        "Tell a sender once per window that they are over the limit (privately).", True
    )
    limit_message = Option(
        "What a sender over the limit is told ({messages} and {seconds} are the limit).",
        "You're talking to me too fast (more than {messages} messages in {seconds} seconds):"
        " I'll answer again in a moment",
    )

    log = Logger()

    def __init__(self, *args: Any, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self._lock = threading.Lock()
        self._recent: dict[tuple[str, str], deque[float]] = {}
        self._warned: dict[tuple[str, str], float] = {}
        self._next_sweep = 0.0

    def setup(self) -> None:
        with self._lock:
            self._recent = {}
            self._warned = {}
            self._next_sweep = 0.0

    def over_limit(self, event: Event) -> tuple[bool, bool]:
        """Count the event; return (over the limit, first time in this window)."""
        window = self.limit_time
        if event.sender is None or not window or window <= 0:
            return False, False
        limit = self.limit_messages
        now = self.bot.seconds()
        key = (event.source, event.sender.id)
        with self._lock:
            recent = self._recent.get(key)
            if recent is None or recent.maxlen != limit + 1:
                recent = self._recent[key] = deque(recent or (), maxlen=limit + 1)
            recent.append(now)
            while now - recent[0] >= window:
                recent.popleft()
            over = len(recent) > limit
            first = False
            if over:
                last = self._warned.get(key)
                if last is None or now - last >= window:
                    self._warned[key] = now
                    first = True
            if now >= self._next_sweep:
                self._sweep(now, window)
        return over, first

    def _sweep(self, now: float, window: float) -> None:
        # Forget senders who have been quiet for a whole window (called with the lock held).
        self._recent = {k: v for k, v in self._recent.items() if now - v[-1] < window}
        self._warned = {k: t for k, t in self._warned.items() if now - t < window}
        self._next_sweep = now + window

    @handler
    def ratelimit(self, event: Event) -> None:
        over, first = self.over_limit(event)
        if not over:
            return
        event.processed = True
        if not first:
            return
        self.log.info(
            "rate limit: ignoring {nick} on {source} for now "
            "(more than {count} messages in {seconds}s)",
            nick=event.who.nick,
            source=event.source,
            count=self.limit_messages,
            seconds=self.limit_time,
        )
        if self.limit_warn and event.type != EventType.NOTICE and event.sender is not None:
            event.addresponse(self.warning(), target=event.sender.nick, address=False)

    def warning(self) -> str:
        """The configured ``limit_message`` with the limit filled in (plain replacement:
        the text is the operator's, not a format string)."""
        seconds = self.limit_time
        text = self.limit_message.replace("{messages}", str(self.limit_messages))
        return text.replace("{seconds}", f"{seconds:g}")


class Complain(Processor):
    """Answers an addressed message nobody handled with a puzzled phrase, and one a
    processor complained about (``event.complain``) with a phrase of that kind:
    ``nonsense``, ``notauthed``, ``exception``, ``network`` or ``database``. Only
    addressed events are answered, only when they have no reply yet, and never notices
    (bots must not answer them); "not understood" is only said of messages, actions and
    invitations, and not of files sent without text."""

    usage = "(automatic) tells people when the bot did not understand or could not help"
    features = ("core", "complain")
    priority = Priority.COMPLAIN  # after every work processor, before Address
    addressed = False  # checked in complain(), for every type of event
    processed = True
    event_types = None

    nonsense = LinesOption(
        "Replies to an addressed message nothing understood.",
        ["Huh?", "Sorry...", "Excuse me?", "*blink*", "What?"],
    )
    notauthed = LinesOption(
        "Replies when the sender lacks the permission a command needs.",
        [
            "You're not the boss of me",
            "I'm not going to listen to you",
            "Just do it yourself",
            "Go away or I'll replace you with a very small shell-script",
        ],
    )
    exception = LinesOption(
        "Replies when a processor failed with an error.",
        [
            "I'm not feeling too well",
            "That didn't go down very well. Burp.",
            "That didn't seem to agree with me",
        ],
    )
    network = LinesOption(
        "Replies when a site or service the bot needed could not be reached.",
        [
            "The tubes are clogged!",
            "I can't reach that site",
            "That site seems to be down",
        ],
    )
    database = LinesOption(
        "Replies when the database stayed unavailable (the dispatcher sets this).",
        [
            "My database is unavailable right now; try again in a bit",
            "Database unavailable: I can't remember anything at the moment",
            "I've lost my memory (database unavailable); please try again later",
        ],
    )

    KINDS = ("nonsense", "notauthed", "exception", "network", "database")

    def phrases(self, kind: str) -> list[str]:
        """The configured phrases for a kind of complaint (unknown kinds: nonsense)."""
        if kind not in self.KINDS:
            kind = "nonsense"
        return getattr(self, kind)

    @handler
    def complain(self, event: Event) -> None:
        if not event.addressed or event.responses or event.type == EventType.NOTICE:
            return
        if event.complain is not None:
            event.addresponse(choice(self.phrases(event.complain)))
        elif (
            not event.processed
            and event.type in _NONSENSE_TYPES
            and not _only_files(event.message)
        ):
            event.complain = "nonsense"
            event.addresponse(choice(self.nonsense))


def _only_files(message: Message | None) -> bool:
    """Whether a message is files without a word: no command the bot failed to
    understand."""
    return message is not None and bool(message.attachments) and not message.raw.strip()


class Address(Processor):
    """Turns True/False replies into an acknowledgement or a refusal, and prefixes public
    replies to the sender's conversation with ``nick: `` (not actions or notices, not
    replies made with ``address=False``).

    This is the one place acknowledgements are worded: it runs for every event that can
    carry replies (delayed and periodic ones too), before Format, so that sources are
    only given text. (Should one reach the dispatcher unworded, it is sent as a plain
    word, with a warning.)"""

    usage = "(automatic) says who a reply in a channel is for"
    features = ("core", "address")
    priority = Priority.ADDRESS
    addressed = False
    processed = True
    event_types = None

    acknowledgements = LinesOption(
        "Replies standing for 'yes, done'.",
        ["Okay", "Sure", "Done", "Righto", "Alrighty", "Yessir"],
    )
    refusals = LinesOption(
        "Replies standing for 'no'.",
        ["No", "I won't", "Shan't", "I'm sorry, but I can't do that"],
    )

    @handler
    def address(self, event: Event) -> None:
        if not event.responses:
            return
        sender = event.sender
        prefix = f"{sender.nick}: " if event.public and sender is not None else None
        changed = []
        for response in event.responses:
            text = response.text
            if response.kind in _NOT_WORDED:
                changed.append(response)  # a key or nothing: no acknowledgement, no nick
                continue
            if text is True:
                text = choice(self.acknowledgements)
            elif text is False:
                text = choice(self.refusals)
            if (
                prefix is not None
                and response.address
                and not response.action
                and not response.notice
                and response.source == event.source
                and response.target == event.channel
            ):
                text = prefix + str(text)
            changed.append(response if text is response.text else response.replace(text=text))
        event.responses = changed


def truncate(text: str, limit: int | None) -> str:
    """``text`` cut so that its UTF-8 encoding fits ``limit`` bytes, on a character
    boundary, ending with an ellipsis when something was cut."""
    if limit is None or len(text) * 4 <= limit:
        return text
    encoded = text.encode("utf-8", "replace")
    if len(encoded) <= limit:
        return text
    if limit < _ELLIPSIS_BYTES:
        return encoded[: max(limit, 0)].decode("utf-8", "ignore")
    return encoded[: limit - _ELLIPSIS_BYTES].decode("utf-8", "ignore") + ELLIPSIS


def split_to_fit(text: str, limit: int) -> list[str]:
    """Split multi-line ``text`` into chunks of at most ``limit`` UTF-8 bytes, preferring
    to break at a line end, then after ``.``, ``;``, ``:``, ``,``, then at a space."""
    chunks = []
    while len(text.encode("utf-8", "replace")) > limit:
        fits = len(text.encode("utf-8", "replace")[:limit].decode("utf-8", "ignore"))
        fits = max(fits, 1)
        head, rest = text[:fits], text[fits:]
        for separator in "\n.;:, ":
            # A line end or space just past the limit is a perfect place to break.
            search = text[: fits + 1] if separator in "\n " else head
            at = search.rfind(separator)
            if at > 0:
                head, rest = text[: at + 1], text[at + 1 :]
                break
        head = head.rstrip()
        if head:
            chunks.append(head)
        text = rest.lstrip(" ")
    if text.strip():
        chunks.append(text)
    return chunks


def degrade(response: Response, source: Any, event: Event | None = None) -> Response | None:
    """``response`` as the source ``source`` can carry it (see `Format`), or None when
    it becomes nothing. Its reply_to, thread_id and refers_to come out as network ids
    or None; its attachments stay only on a message to a source that ``supports``
    ``attachments``, and elsewhere become lines of its text (`describe_attachments`)."""
    supports = source.supports
    own = (
        event is not None and response.source == event.source and response.target == event.channel
    )
    reply: str | bool | None = response.reply_to
    if reply is None or reply is True:
        trigger = event.message_id if event is not None and event.type in _REPLIABLE else None
        wanted = reply is True or (own and source.reply_to_trigger)
        reply = trigger if wanted else None
    elif reply is False:
        reply = None
    # Only an id the source can mark as answered: else a plain line, addressed as ever.
    reply = source.network_id(reply) if reply is not None and "reply" in supports else None
    thread = response.thread_id
    if thread is None and own and event is not None:
        thread = event.thread_id
    if "thread" not in supports:
        thread = None
    kind = response.kind
    refers = source.network_id(response.refers_to) if response.refers_to else None
    if kind == "delete" and "delete" not in supports:
        return None
    if kind == "edit" and "edit" not in supports:
        if source.edit_fallback == "none":
            return None
        kind, refers = "message", None
    if kind == "reaction" and ("react" not in supports or refers is None):
        if source.reaction_fallback == "none":
            return None
        kind, refers = "message", None
    text, attachments = response.text, response.attachments
    if attachments and (kind != "message" or "attachments" not in supports):
        # Never dropped unseen: where files cannot go, their names and URLs are said.
        if kind in ("message", "edit") and isinstance(text, str):
            text = describe_attachments(text, attachments)
        attachments = ()
    if (
        kind == response.kind
        and refers == response.refers_to
        and reply == response.reply_to
        and thread == response.thread_id
        and attachments is response.attachments
    ):
        return response
    return response.replace(
        kind=kind,
        refers_to=refers,
        reply_to=reply,
        thread_id=thread,
        text=text,
        attachments=attachments,
    )


class Format(Processor):
    """Shapes each reply for the source it goes to: actions become ``*text*`` where the
    source has none; multi-line text is joined with spaces (or, with ``conflate=False``,
    sent as one reply per line) where the source has no multi-line messages; and text is
    cut on a UTF-8 character boundary, with an ellipsis, to the source's
    ``truncation_point()``.

    It is also where the message model meets what the source can carry
    (`degrade`): a reply answers its trigger where the source marks replies, stays in
    the trigger's thread where it has threads, and otherwise is a plain line; a
    reaction, an edit or a deletion the source cannot make becomes what the source's
    ``reaction_fallback`` and ``edit_fallback`` say (a deletion: nothing); attachments
    the source cannot send become a line each (name, type, size, URL); the bot's own
    messages named by their local Response id are given the network's id."""

    usage = "(automatic) fits replies to what each network can carry"
    features = ("core", "format")
    priority = Priority.FORMAT
    addressed = False
    processed = True
    event_types = None

    log = Logger()

    @outgoing(priority=Priority.FORMAT)
    def fit(self, response: Response, event: Event) -> list[Response]:
        """An outgoing filter (every reply, whatever produced it, on the reactor thread):
        `format_response`."""
        return self.format_response(response, event)

    def format(self, event: Event) -> None:
        """Fit all of ``event``'s replies at once, as the filter does one by one."""
        formatted: list[Response] = []
        for response in event.responses:
            formatted.extend(self.format_response(response, event))
        event.responses = formatted

    def format_response(self, response: Response, event: Event | None = None) -> list[Response]:
        """The replies one response becomes on its destination source (``event``: the
        one it answers, for the reply and thread it defaults to)."""
        source = self.bot.get_source(response.source)
        if source is None:
            return [response]  # the dispatcher logs and drops replies to unknown sources
        if isinstance(response.text, bool):
            # Address (before us) words acknowledgements; without it, never "True": the
            # dispatcher words it plainly and warns.
            return [response]
        degraded = degrade(response, source, event)
        if degraded is None:
            self.log.debug(
                "dropped a {kind} reply that source {source} cannot make",
                kind=response.kind,
                source=source.name,
            )
            return []
        response = degraded
        if response.kind != "message" and response.kind != "edit":
            return [response]  # a reaction's key or a deletion: nothing to fit
        if response.kind == "edit":
            response = response.replace(conflate=True)  # one message replaces one
        supports = source.supports
        limit = source.truncation_point(response)
        text = response.text if isinstance(response.text, str) else str(response.text)
        action = response.action
        if action and "action" not in supports:
            text = f"*{text}*"
            action = False
        multiline = "multiline" in supports
        if not response.conflate and not multiline:
            lines = [line.expandtabs(1) for line in text.splitlines() if line.strip()]
            return [
                response.replace(text=truncate(line, limit), action=action)
                for line in lines or [""]
            ]
        if not response.conflate and limit is not None:
            return [
                response.replace(text=chunk, action=action)
                for chunk in split_to_fit(text, limit) or [""]
            ]
        if not multiline:
            text = " ".join(text.expandtabs(1).splitlines())
        text = truncate(text, limit)
        if text is response.text and action == response.action:
            return [response]
        return [response.replace(text=text, action=action)]
