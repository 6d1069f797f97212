"""Events: what a source saw happen, and the responses the processors attach to it.

An `Event` travels from a source through the processor chain on one worker thread; its
database session is opened only if a processor asks for it."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from random import getrandbits
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    from sqlalchemy.orm import Session


def _new_id() -> str:
    """A random (version 4) UUID as 32 hex digits, like ``uuid.uuid4().hex``, but from the
    random module: uuid4 reads os.urandom, a system call that drops the GIL on every event
    and is slow under the dispatcher's thread contention. Ids need not be secret."""
    bits = getrandbits(128) & ~(0xF000 << 64) & ~(0xC000 << 48)
    return f"{bits | (0x4000 << 64) | (0x8000 << 48):032x}"


class EventType:
    """The event types the core and bundled sources produce (plugins may add their own)."""

    MESSAGE = "message"
    ACTION = "action"
    NOTICE = "notice"
    STATE = "state"
    INVITE = "invite"
    SOURCE = "source"
    LIFECYCLE = "lifecycle"
    DELAYED = "delayed"
    PERIODIC = "periodic"
    #: A message changed after it was sent: ``message`` is its new text, ``refers_to``
    #: the id of the message it replaces.
    EDIT = "edit"
    #: A message taken back: ``refers_to`` is its id.
    DELETE = "delete"
    #: A reaction to a message: ``reaction`` is its key ("👍"), ``refers_to`` the id of
    #: the message; ``data["removed"]`` is True when the network says it was taken back.
    REACTION = "reaction"

    #: Types whose ``message`` carries text typed by a person, processed as commands.
    TEXT: ClassVar[frozenset[str]] = frozenset({MESSAGE, ACTION, NOTICE})
    #: Those and edits: every type whose text must be cleaned (and its secrets taken out).
    WRITTEN: ClassVar[frozenset[str]] = frozenset({MESSAGE, ACTION, NOTICE, EDIT})


@dataclass(frozen=True)
class Sender:
    """Who caused an event: the connection it came over, a stable id, and a display nick."""

    connection: str
    id: str
    nick: str


#: Units of `Attachment.describe`'s sizes.
_SIZE_UNITS = ("bytes", "KB", "MB", "GB")


@dataclass(frozen=True)
class Attachment:
    """A file that came with a message or goes with a reply: where it can be fetched
    (``url``, one anyone can open), its ``name``, and its ``media_type`` and ``size``
    (bytes) when the network says them."""

    url: str
    name: str = ""
    media_type: str | None = None
    size: int | None = None

    def describe(self) -> str:
        """The attachment as one line of text, for a network that carries none: its name,
        its type and size when known, and its URL (``cat.png (image/png, 12 KB)
        https://...``)."""
        details = [self.media_type] if self.media_type else []
        if self.size is not None and self.size >= 0:
            size, unit = float(self.size), 0
            while size >= 1000 and unit < len(_SIZE_UNITS) - 1:
                size, unit = size / 1000, unit + 1
            shown = f"{size:.1f}" if size < 10 else f"{size:.0f}"
            details.append(f"{shown} {_SIZE_UNITS[unit]}" if unit else f"{self.size} bytes")
        name = " ".join(self.name.split())
        said = f"{name} ({', '.join(details)})" if details and name else name or ", ".join(details)
        return f"{said} {self.url}" if said else self.url


def describe_attachments(text: str, attachments: tuple[Attachment, ...]) -> str:
    """``text`` followed by one line per attachment (`Attachment.describe`): how a message
    with files reads where the network carries only text."""
    lines = [text.rstrip()] if text.strip() else []
    lines.extend(attachment.describe() for attachment in attachments)
    return "\n".join(lines)


@dataclass
class Message:
    """A message's text in its variants, filled in by the early core processors.

    ``raw`` is what arrived; ``deaddressed`` is raw without the bot's name; ``clean`` is
    deaddressed without surrounding space and trailing punctuation; ``stripped`` is raw
    with only that cleaning (still addressed). ``attachments`` are the files that came
    with it; then ``raw`` is only the text said with them (a caption; empty when there was
    none), not the network's repetition of their names or URLs.
    """

    raw: str
    deaddressed: str = ""
    clean: str = ""
    stripped: str = ""
    attachments: tuple[Attachment, ...] = ()

    def __post_init__(self) -> None:
        self.deaddressed = self.deaddressed or self.raw
        self.clean = self.clean or self.raw
        self.stripped = self.stripped or self.raw

    def get(self, version: str) -> str:
        """The named variant (``raw``, ``deaddressed``, ``clean`` or ``stripped``)."""
        return getattr(self, version)


@dataclass
class Response:
    """One reply: its text (or True/False for an acknowledgement) and where it goes.

    ``kind`` says what it does: a ``message`` (the default) says ``text``; an ``edit``
    replaces the bot's earlier message ``refers_to`` by ``text``; a ``delete`` takes the
    bot's message ``refers_to`` back (``text`` is ignored); a ``reaction`` reacts to the
    message ``refers_to`` with the key ``text``. ``refers_to`` may be the network's id of
    the message or the local ``id`` of the bot's own earlier Response.

    ``reply_to`` is the message a reply answers: None for the default (the message that
    triggered it, when the destination source's ``reply_to_trigger`` is on and the reply
    goes back to the event's own conversation), False for none, or a message id.
    ``thread_id`` is the thread it is posted in (by default the event's, in its own
    conversation). ``attachments`` are files sent with a message (by their URLs).
    Where a source cannot carry these, the core's Format step degrades the reply
    (`botcore.source.Source` options ``reaction_fallback``, ``edit_fallback``;
    attachments become lines of the text, `describe_attachments`), so a source's
    ``send`` only gets what it ``supports``."""

    text: str | bool
    target: str | None = None
    source: str | None = None
    action: bool = False
    notice: bool = False
    address: bool = True
    conflate: bool = True
    kind: str = "message"
    refers_to: str | None = None
    reply_to: str | bool | None = None
    thread_id: str | None = None
    attachments: tuple[Attachment, ...] = ()
    #: A local id, so that a plugin can later edit or delete the reply it made (not part
    #: of equality: two replies saying the same are equal).
    id: str = field(default_factory=_new_id, compare=False, repr=False)

    FIELDS: ClassVar[frozenset[str]] = frozenset(
        {
            "text",
            "target",
            "source",
            "action",
            "notice",
            "address",
            "conflate",
            "kind",
            "refers_to",
            "reply_to",
            "thread_id",
            "attachments",
        }
    )
    #: The kinds of response.
    KINDS: ClassVar[frozenset[str]] = frozenset({"message", "edit", "delete", "reaction"})

    def __post_init__(self) -> None:
        if self.kind not in self.KINDS:
            raise ValueError(f"unknown response kind {self.kind!r}")
        if self.kind in ("edit", "delete") and not self.refers_to:
            raise ValueError(f"a {self.kind} response needs refers_to (the message's id)")
        if not isinstance(self.attachments, tuple):
            self.attachments = tuple(self.attachments)

    def replace(self, **changes: Any) -> Response:
        """A copy with some fields changed."""
        return dataclasses.replace(self, **changes)


@dataclass(eq=False)
class Event:
    """Something that happened on a source, on its way through the processors."""

    source: str
    type: str
    sender: Sender | None = None
    channel: str | None = None
    public: bool = False
    addressed: bool | str = False
    message: Message | None = None
    time: datetime = field(default_factory=lambda: datetime.now(UTC))
    id: str = field(default_factory=_new_id, compare=False, repr=False)
    responses: list[Response] = field(default_factory=list)
    processed: bool = False
    complain: str | None = None
    identity: int | None = None
    account: int | None = None
    authenticated: bool = False
    #: The network's id of this message (IRC ``msgid``, XMPP stanza-id, Matrix event id).
    message_id: str | None = None
    #: The id of the message this one replies to.
    reply_to: str | None = None
    #: The thread it was posted in (the thread root's id), where the network has threads.
    thread_id: str | None = None
    #: For edits, deletions and reactions: the id of the message concerned.
    refers_to: str | None = None
    #: For a reaction: its key.
    reaction: str | None = None
    #: Type-specific details (``{"state": "joined"}``, ``{"kind": "part"}``, ...).
    data: dict[str, Any] = field(default_factory=dict)
    #: Scratch space processors use to pass findings down the chain.
    extra: dict[str, Any] = field(default_factory=dict)
    _session_factory: Callable[[], Session] | None = field(default=None, repr=False)
    _session: Session | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if isinstance(self.message, str):
            self.message = Message(self.message)

    @property
    def who(self) -> Sender:
        """The sender, for a handler of events that always have one (messages, actions,
        joins...); a `ValueError` for an event without one (lifecycle, periodic)."""
        if self.sender is None:
            raise ValueError(f"a {self.type} event has no sender")
        return self.sender

    @property
    def conversation(self) -> tuple[str, str | None]:
        """The key whose events are processed in arrival order: (source, channel)."""
        return (self.source, self.channel)

    @property
    def session(self) -> Session:
        """The event's database session, opened on first use (worker thread only)."""
        if self._session is None:
            if self._session_factory is None:
                raise RuntimeError("this event has no database")
            self._session = self._session_factory()
        return self._session

    @property
    def has_session(self) -> bool:
        """Whether a processor has opened the session."""
        return self._session is not None

    def close_session(self) -> None:
        """Close the session if one was opened (the dispatcher does this)."""
        if self._session is not None:
            session, self._session = self._session, None
            session.close()

    def addresponse(
        self,
        response: str | bool | Response,
        params: Any = None,
        *,
        processed: bool = True,
        **fields: Any,
    ) -> Response:
        """Attach a reply; ``params`` fill ``%`` placeholders in it; ``fields`` set where it
        goes and what it is (target, source, action, notice, address, conflate, kind,
        refers_to, reply_to, thread_id, attachments: see `Response`).

        Replies go to the conversation the event came from unless told otherwise. Marks
        the event processed unless ``processed=False``. An unknown field is a TypeError.
        """
        if fields and not Response.FIELDS.issuperset(fields):
            unknown = set(fields) - Response.FIELDS
            raise TypeError(f"unknown response field(s): {', '.join(sorted(unknown))}")
        reply: Response
        if isinstance(response, Response):
            reply = response.replace(**fields) if fields else response
            if reply.source is None:
                reply = reply.replace(source=self.source)
            if reply.target is None and reply.source == self.source:
                reply = reply.replace(target=self.channel)
        else:
            text = (
                response % params if params is not None and isinstance(response, str) else response
            )
            # Where it goes is filled in before the reply is built: one object, not three.
            source = fields.get("source")
            if source is None:
                source = fields["source"] = self.source
            if fields.get("target") is None and source == self.source:
                fields["target"] = self.channel
            reply = Response(text, **fields)
        self.responses.append(reply)
        if processed:
            self.processed = True
        return reply

    def react(self, key: str, message_id: str | None = None) -> Response:
        """React with ``key`` to ``message_id`` (default: this event's message). Where
        the source has no reactions, or the message no id, the source's
        ``reaction_fallback`` says what happens (nothing, or a short line)."""
        refers = message_id if message_id is not None else self.message_id
        return self.addresponse(key, kind="reaction", refers_to=refers, address=False)

    def edit(self, message: str, text: str) -> Response:
        """Replace the bot's earlier message (a Response's ``id`` or a network id) by
        ``text``; where the source cannot edit, ``edit_fallback`` says what happens."""
        return self.addresponse(text, kind="edit", refers_to=message)

    def delete(self, message: str) -> Response:
        """Take back the bot's earlier message (a Response's ``id`` or a network id);
        nothing happens where the source cannot."""
        return self.addresponse("", kind="delete", refers_to=message, address=False)

    def derive(self, type: str, **changes: Any) -> Event:
        """A new event in the same conversation (for delayed calls): same sender and place
        (and message and thread ids, so a later reply still answers the trigger), a fresh
        id, no responses, not processed."""
        copied: dict[str, Any] = {
            "source": self.source,
            "sender": self.sender,
            "channel": self.channel,
            "public": self.public,
            "addressed": self.addressed,
            "message": dataclasses.replace(self.message) if self.message else None,
            "identity": self.identity,
            "account": self.account,
            "authenticated": self.authenticated,
            "message_id": self.message_id,
            "thread_id": self.thread_id,
            "data": dict(self.data),
        }
        copied.update(changes)
        return Event(type=type, **copied)


class Lifecycle:
    """The root service's states, published as ``lifecycle`` events."""

    STARTING = "starting"
    RUNNING = "running"
    STOPPING = "stopping"
    STOPPED = "stopped"
    FAILED = "failed"
