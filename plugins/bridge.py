"""Bridges channels across networks: what is said in one conversation of a
``[bridge:NAME]`` section is said in all the others, under the sender's one name, with
its files (as files where a network takes them, else as their names and URLs), and with
edits, deletions, replies and reactions carried to the copies where the networks allow.
``bridge status`` shows the bridges; admins say ``bridge ignore <who>``, ``bridge add``
and ``bridge remove``."""

from __future__ import annotations

import re
import threading
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import (
    BigInteger,
    ForeignKey,
    Index,
    Integer,
    String,
    UniqueConstraint,
    and_,
    delete,
    select,
)
from sqlalchemy.orm import Mapped, Session, mapped_column
from twisted.logger import Logger

from botcore.accounts import models as accounts
from botcore.accounts.identify import proven_account
from botcore.accounts.models import Account
from botcore.accounts.names import skeleton
from botcore.bus.bridges import Conversation, bridge_options, parse_conversations
from botcore.db.engine import mark_written
from botcore.db.models import Base
from botcore.db.types import UTCDateTime, utcnow
from botcore.event import Event, EventType, Response, describe_attachments
from botcore.options import FloatOption, IntOption
from botcore.processor import Priority, Processor, authorise, example, handler, match, periodic

if TYPE_CHECKING:
    from botcore.interfaces import IBotContext, ISource

log = Logger()

#: The longest ids and channel names a receipt keeps (longer ones get no receipt).
MAX_ID = 128
MAX_CHANNEL = 191
#: IRC's formatting codes (bold, colours, italics...), left out on other networks.
_IRC_FORMATTING = re.compile(r"\x03(?:\d{1,2}(?:,\d{1,2})?)?|[\x02\x0f\x11\x16\x1d\x1e\x1f]")
#: Characters that would break a relayed line (a name is one line).
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
#: The state events relayed with relay_joins, and how each reads.
_JOIN_KINDS = {"join": "joined", "part": "left", "quit": "quit", "kick": "was kicked from"}
#: The key of the bridge plugin's shared values in the bot's namespace.
_SHARED = "bridge"


class Receipt(Base):
    """One relayed copy: the original message (its source, conversation as that source
    folds it, and network id) and the copy's place, its Response id and, once the
    network has told it, its network id."""

    __tablename__ = "bridge_receipts"
    __table_args__ = (
        UniqueConstraint(
            "origin_source",
            "origin_channel",
            "origin_id",
            "copy_source",
            "copy_channel",
            name="uq_bridge_receipts_origin_copy",
        ),
        Index("ix_bridge_receipts_copy", "copy_source", "copy_channel", "copy_id"),
        Index("ix_bridge_receipts_copy_local", "copy_local"),
        Index("ix_bridge_receipts_time", "time"),
    )

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    bridge: Mapped[str] = mapped_column(String(64))
    origin_source: Mapped[str] = mapped_column(String(64))
    origin_channel: Mapped[str] = mapped_column(String(MAX_CHANNEL))
    origin_id: Mapped[str] = mapped_column(String(MAX_ID))
    copy_source: Mapped[str] = mapped_column(String(64))
    copy_channel: Mapped[str] = mapped_column(String(MAX_CHANNEL))
    copy_local: Mapped[str] = mapped_column(String(32))
    copy_id: Mapped[str | None] = mapped_column(String(MAX_ID), nullable=True)
    time: Mapped[datetime] = mapped_column(UTCDateTime())


class BridgeIgnore(Base):
    """Someone whose messages no bridge relays: an account (on every network), or a nick
    on one source for someone without one."""

    __tablename__ = "bridge_ignores"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    account_id: Mapped[int | None] = mapped_column(
        ForeignKey("accounts.id", ondelete="CASCADE"), nullable=True, index=True
    )
    source: Mapped[str | None] = mapped_column(String(64), nullable=True)
    nick: Mapped[str | None] = mapped_column(String(255), nullable=True)
    created: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


# -- the bridges -------------------------------------------------------------------------


@dataclass(frozen=True)
class Bridge:
    """One working bridge: its conversations and its section's parsed values."""

    name: str
    conversations: tuple[Conversation, ...]
    settings: dict[str, Any]
    #: "config" (a [bridge:NAME] section) or "command" (bridge add).
    origin: str = "config"

    def template(self, source: str, action: bool) -> str:
        """The template of a copy sent to ``source``."""
        key = "action_template" if action else "template"
        return self.settings.get(f"{key}.{source}") or self.settings[key]

    def ignores_nick(self, source: str, sender: Any) -> bool:
        """Whether ``ignore_nicks`` names the sender (nick or id, alone or SOURCE:)."""
        entries = self.settings.get("_ignore_nicks")
        if not entries:
            return False
        for who in (sender.nick, sender.id):
            if who and (who.casefold() in entries or f"{source}:{who}".casefold() in entries):
                return True
        return False


@dataclass
class Bridges:
    """The bridges in force (built from the config and the run-time changes), and the
    ones that could not be made, name -> why."""

    working: dict[str, Bridge] = field(default_factory=dict)
    broken: dict[str, str] = field(default_factory=dict)
    #: source name -> (bridge, conversation) for each end on that source.
    by_source: dict[str, list[tuple[Bridge, Conversation]]] = field(default_factory=dict)


def _shared(bot: IBotContext) -> dict[str, Any]:
    """The plugin's values every processor (and a reloaded version) shares: the bridges
    added and removed at run time, the version of those changes and of the ignores, and
    the copies waiting for a source to come back."""
    namespace = bot.namespace
    shared = namespace.get(_SHARED)
    if shared is None:
        shared = namespace.setdefault(
            _SHARED,
            {
                "lock": threading.Lock(),
                "added": {},
                "removed": set(),
                "version": 0,
                "ignores": 0,
                "pending": {},
                "dropped": {},
            },
        )
    return shared


def _section_values(raw: dict[str, str]) -> dict[str, Any]:
    """A bridge section's values parsed as the config would (for ``bridge add``);
    ValueError with the key for a bad one."""
    options = bridge_options(raw)
    values: dict[str, Any] = {name: option.default for name, option in options.items()}
    for key, text in raw.items():
        option = options.get(key)
        if option is None:
            raise ValueError(f"{key}: unknown key")
        try:
            values[key] = option.parse(text)
        except ValueError as e:
            raise ValueError(f"{key}: {e}") from None
    return values


def build_bridges(bot: IBotContext) -> Bridges:
    """The bridges of the config's ``[bridge:NAME]`` sections and of ``bridge add``, less
    those of ``bridge remove``; each one that cannot work is in ``broken`` with why
    (and logged). Any thread."""
    shared = _shared(bot)
    config = bot.config
    with shared["lock"]:
        if shared.get("config") is not config:
            # A reloaded config: a new or changed section wins over bridge add and
            # bridge remove of its name.
            before = shared.get("sections", {})
            now = {name: config.section(f"bridge:{name}") for name in config.names("bridge")}
            for name, section in now.items():
                if before.get(name) != section:
                    shared["added"].pop(name, None)
                    shared["removed"].discard(name)
            shared["config"], shared["sections"] = config, now
        added = dict(shared["added"])
        removed = set(shared["removed"])
    sections: dict[str, tuple[dict[str, Any], str]] = {}
    for name in config.names("bridge"):
        if name not in removed:
            sections[name] = (dict(config.section(f"bridge:{name}")), "config")
    for name, values in added.items():
        sections[name] = (dict(values), "command")
    known_sources = set(config.names("source"))
    result = Bridges()
    for name, (values, origin) in sorted(sections.items()):
        conversations, problems = parse_conversations(values.get("conversations") or "")
        for conversation in conversations:
            if (
                conversation.source not in known_sources
                and bot.get_source(conversation.source) is None
            ):
                problems.append(f"there is no source called {conversation.source!r}")
        if not problems and len(conversations) < 2:
            problems.append(
                f"a bridge needs two or more conversations; it has {len(conversations)}"
            )
        if problems:
            result.broken[name] = "; ".join(problems)
            continue
        values["_ignore_nicks"] = frozenset(n.casefold() for n in values.get("ignore_nicks") or ())
        bridge = Bridge(name, tuple(conversations), values, origin)
        result.working[name] = bridge
        for conversation in conversations:
            result.by_source.setdefault(conversation.source, []).append((bridge, conversation))
    return result


def report_broken(bot: IBotContext, bridges: Bridges) -> None:
    """Log each bridge that cannot work, once for each reason. Any thread."""
    shared = _shared(bot)
    with shared["lock"]:
        reported: dict[str, str] = shared.setdefault("reported", {})
        new = {n: why for n, why in bridges.broken.items() if reported.get(n) != why}
        reported.clear()
        reported.update(bridges.broken)
    for name, why in new.items():
        log.error("bridge {name} is not running: {why}", name=name, why=why)


def _fold(bot: IBotContext, source: str, name: str) -> str:
    found = bot.get_source(source)
    return found.fold(name) if found is not None else name.casefold()


class BridgeView:
    """What a processor of the plugin knows of the bridges: built again when the config
    is reloaded or a bridge is added or removed. Any thread."""

    def __init__(self, bot: IBotContext, report: bool = False) -> None:
        self.bot = bot
        #: Whether this view logs the bridges that cannot work (one view does).
        self.report = report
        self._key: tuple[Any, int] | None = None
        self._bridges = Bridges()
        self._lock = threading.Lock()

    def current(self) -> Bridges:
        """The bridges in force now."""
        shared = _shared(self.bot)
        key = (self.bot.config, shared["version"])
        if self._key is None or key[0] is not self._key[0] or key[1] != self._key[1]:
            with self._lock:
                if self._key is None or key[0] is not self._key[0] or key[1] != self._key[1]:
                    bridges = build_bridges(self.bot)
                    if self.report:
                        report_broken(self.bot, bridges)
                    self._bridges, self._key = bridges, key
        return self._bridges

    def ends(self, source: str, channel: str | None) -> list[tuple[Bridge, Conversation]]:
        """The (bridge, conversation) pairs that ``channel`` on ``source`` is an end of."""
        if channel is None:
            return []
        candidates = self.current().by_source.get(source)
        if not candidates:
            return []
        folded = _fold(self.bot, source, channel)
        return [
            (bridge, conversation)
            for bridge, conversation in candidates
            if _fold(self.bot, source, conversation.target) == folded
        ]


# -- receipts ----------------------------------------------------------------------------


@dataclass
class Group:
    """An original message and its copies, as the receipts know them."""

    origin: tuple[str, str, str]
    copies: list[Receipt]

    def id_in(self, bot: IBotContext, source: str, channel: str) -> str | None:
        """The network id of the message in ``channel`` (folded) on ``source``: the
        original's there, else its copy's (learnt from the source when the receipt does
        not have it yet); None when not known."""
        if (source, channel) == self.origin[:2]:
            return self.origin[2]
        for copy in self.copies:
            if (copy.copy_source, copy.copy_channel) == (source, channel):
                return _copy_id(bot, copy)
        return None


def _copy_id(bot: IBotContext, copy: Receipt) -> str | None:
    """A copy's network id: the receipt's, or the one its source has learnt since (then
    written into the receipt)."""
    if copy.copy_id is not None:
        return copy.copy_id
    found = bot.get_source(copy.copy_source)
    if found is None:
        return None
    network = found.network_id(copy.copy_local)
    if network == copy.copy_local or len(network) > MAX_ID:
        return None
    copy.copy_id = network
    return network


def thd_group(
    bot: IBotContext,
    session: Session,
    source: str,
    channels: Iterable[str],
    channel_folded: str,
    message_id: str,
) -> Group | None:
    """The original and copies of the message ``message_id`` seen in the conversation
    ``channel_folded`` on ``source`` (``channels``: the names the bot may have sent to
    it under), whether it is the original or one of the copies. Worker thread."""
    rows = list(
        session.scalars(
            select(Receipt).where(
                Receipt.origin_source == source,
                Receipt.origin_channel == channel_folded,
                Receipt.origin_id == message_id,
            )
        )
    )
    if rows:
        return Group((source, channel_folded, message_id), rows)
    copy = session.scalars(
        select(Receipt).where(
            Receipt.copy_source == source,
            Receipt.copy_channel == channel_folded,
            Receipt.copy_id == message_id,
        )
    ).first()
    if copy is None:
        # Its network id may not be in the receipt yet: the source remembers its own.
        found = bot.get_source(source)
        local = None
        if found is not None:
            for channel in channels:
                for sent in found.sent_messages(channel):
                    if sent.message_id == message_id:
                        local = sent.local_id
                        break
                if local is not None:
                    break
        if local is None:
            return None
        copy = session.scalars(select(Receipt).where(Receipt.copy_local == local)).first()
        if copy is None:
            return None
        copy.copy_id = message_id if len(message_id) <= MAX_ID else None
        mark_written(session)
    origin = (copy.origin_source, copy.origin_channel, copy.origin_id)
    rows = list(
        session.scalars(
            select(Receipt).where(
                Receipt.origin_source == origin[0],
                Receipt.origin_channel == origin[1],
                Receipt.origin_id == origin[2],
            )
        )
    )
    return Group(origin, rows)


# -- relaying ----------------------------------------------------------------------------


def _clean_name(name: str) -> str:
    return _CONTROL.sub("", name).strip() or "?"


class Relay(Processor):
    """Relays what is said in a bridged conversation to the bridge's other
    conversations, with receipts, so that edits, deletions, replies and reactions follow.
    Never relays the bot's own messages, those of ignored people and nicks, or one
    message twice to one conversation."""

    usage = "(automatic) relays messages between the conversations of each [bridge:NAME]"
    features = ("bridge",)
    # After Complain: the copies are no answer, so a command nobody understood is still
    # told so; before Address and Format, which fit the copies to their networks.
    priority = Priority.COMPLAIN + 10
    addressed = False
    processed = True
    #: Every event of a bridged conversation matters, said to the bot or not.
    observes = True
    event_types = (
        EventType.MESSAGE,
        EventType.ACTION,
        EventType.NOTICE,
        EventType.EDIT,
        EventType.DELETE,
        EventType.REACTION,
        EventType.STATE,
    )

    keep_receipts = FloatOption(
        "Seconds the receipts of relayed messages are kept (edits, deletions, replies and "
        "reactions reach copies this young).",
        7 * 24 * 3600.0,
        min=60,
    )
    prune_interval = FloatOption(
        "Seconds between two prunings of old receipts (and fillings-in of the copies' "
        "network ids).",
        600.0,
        min=1,
    )
    max_pending = IntOption(
        "Copies kept for each conversation whose source is not connected, sent once it "
        "is; past that the oldest are dropped (and counted in bridge status).",
        100,
        min=0,
    )

    log = Logger()

    def __init__(self, *args: Any, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self.view = BridgeView(self.bot, report=True)
        self._names: tuple[float, dict[str, int]] | None = None
        self._ignores: tuple[int, float, frozenset[int], frozenset[tuple[str, str]]] | None = None

    def setup(self) -> None:
        # Say at once which bridges cannot work (sources loaded later are taken into
        # account when the bridges are next needed).
        report_broken(self.bot, build_bridges(self.bot))

    # -- who is not relayed ----------------------------------------------------------

    def from_the_bot(self, event: Event, bridges: Bridges) -> bool:
        """Whether the event's sender is the bot itself on any source of a bridge (its
        own echoes, or a copy it relayed coming back through another connection to the
        same network)."""
        sender = event.sender
        if sender is None:
            return True
        here = self.bot.get_source(event.source)
        names = {event.source, *bridges.by_source}
        for name in names:
            found = self.bot.get_source(name)
            if found is None or not found.nick:
                continue
            if here is not None and found.type != here.type:
                continue
            if (here or found).fold(sender.nick) == (here or found).fold(found.nick):
                return True
        return False

    def ignored(self, event: Event) -> bool:
        """Whether ``bridge ignore`` named the sender (their account, or their nick
        here). Worker thread."""
        shared = _shared(self.bot)
        version = shared["ignores"]
        now = self.bot.seconds()
        cached = self._ignores
        if cached is None or cached[0] != version or now - cached[1] > 60:
            rows = list(
                event.session.execute(
                    select(BridgeIgnore.account_id, BridgeIgnore.source, BridgeIgnore.nick)
                )
            )
            accounts_ = frozenset(row[0] for row in rows if row[0] is not None)
            nicks = frozenset((row[1], row[2]) for row in rows if row[1] and row[2])
            cached = self._ignores = (version, now, accounts_, nicks)
        _, _, ignored_accounts, ignored_nicks = cached
        if event.account is not None and event.account in ignored_accounts:
            return True
        sender = event.sender
        if sender is None or not ignored_nicks:
            return False
        fold = _fold(self.bot, event.source, sender.nick)
        return (event.source, fold) in ignored_nicks or (
            event.source,
            sender.id.casefold(),
        ) in ignored_nicks

    def shown_name(self, event: Event) -> str:
        """The sender's name on the other networks: their account's display name (or
        username) once they are authenticated, else their nick here."""
        account_id = proven_account(event)
        if account_id is not None:
            account = event.session.get(Account, account_id)
            if account is not None:
                return _clean_name(accounts.shown_name(account))
        nick = _clean_name(event.who.nick)
        owner = self.names_taken(event.session).get(skeleton(nick))
        if owner is not None and owner != event.account:
            # Someone else's name on a nick that is not theirs: not shown as them.
            return f"{nick}?"
        return nick

    def names_taken(self, session: Session) -> dict[str, int]:
        """What every account's username and display name look like (their skeletons)
        -> the account, read again every minute. Worker thread."""
        now = self.bot.seconds()
        cached = self._names
        if cached is None or now - cached[0] > 60:
            taken: dict[str, int] = {}
            rows = session.execute(select(Account.id, Account.username, Account.display_name))
            for account_id, username, display in rows:
                for name in (username, display):
                    if name:
                        taken.setdefault(skeleton(name.replace(" ", "")), account_id)
            cached = self._names = (now, taken)
        return cached[1]

    # -- the relay -------------------------------------------------------------------

    @handler
    def relay(self, event: Event) -> None:
        if event.type == EventType.STATE:
            self.relay_state(event)
            return
        ends = self.view.ends(event.source, event.channel)
        if not ends:
            return
        bridges = self.view.current()
        if self.from_the_bot(event, bridges):
            return
        ends = [(b, c) for b, c in ends if not b.ignores_nick(event.source, event.who)]
        if not ends or self.ignored(event):
            return
        if event.type == EventType.EDIT:
            self.relay_change(event, ends, "edit")
        elif event.type == EventType.DELETE:
            self.relay_change(event, ends, "delete")
        elif event.type == EventType.REACTION:
            self.relay_reaction(event, ends)
        elif event.type == EventType.NOTICE:
            ends = [(b, c) for b, c in ends if b.settings["relay_notices"]]
            if ends:
                # Replies to a notice are dropped (bots answering notices answer each
                # other forever): the copies leave from a delayed event of it instead.
                self.bot.call_later(0, self._relay_later, event, ends, event.message_id)
        else:
            if event.type == EventType.ACTION:
                ends = [(b, c) for b, c in ends if b.settings["relay_actions"]]
            self.relay_text(event, ends, event)

    def _relay_later(
        self, delayed: Event, ends: list[tuple[Bridge, Conversation]], message_id: str | None
    ) -> None:
        delayed.message_id = message_id
        self.relay_text(delayed, ends, delayed, notice=True)

    def targets(
        self, event: Event, ends: Iterable[tuple[Bridge, Conversation]]
    ) -> list[tuple[Bridge, Conversation]]:
        """The other conversations of the bridges ``ends`` belong to, each once (through
        the first bridge that reaches it)."""
        own = (event.source, _fold(self.bot, event.source, event.channel or ""))
        found: dict[tuple[str, str], tuple[Bridge, Conversation]] = {}
        for bridge, _ in ends:
            for conversation in bridge.conversations:
                key = (
                    conversation.source,
                    _fold(self.bot, conversation.source, conversation.target),
                )
                if key != own and key not in found:
                    found[key] = (bridge, conversation)
        return list(found.values())

    def line(
        self, bridge: Bridge, to: Conversation, event: Event, name: str, text: str, action: bool
    ) -> str:
        """The copy of ``text`` (said by ``name`` in ``event``'s conversation) sent to
        ``to``: its source's template, IRC's formatting codes left out elsewhere."""
        target = self.bot.get_source(to.source)
        if target is None or target.type != "irc":
            text = _IRC_FORMATTING.sub("", text)
        return bridge.template(to.source, action).format(
            name=name,
            nick=_clean_name(event.who.nick),
            text=text,
            source=event.source,
            channel=event.channel,
            bridge=bridge.name,
        )

    def group_of(
        self, event: Event, ends: list[tuple[Bridge, Conversation]], message_id: str | None
    ) -> Group | None:
        """The original and copies of the message ``message_id`` of the event's
        conversation (the original or a copy), or None. Worker thread."""
        if not message_id:
            return None
        # The copies went to the conversation as the bridge names it.
        channels = {event.channel or "", *(conversation.target for _, conversation in ends)}
        folded = self._folded(event)
        return thd_group(self.bot, event.session, event.source, channels, folded, message_id)

    def copies_of(
        self, event: Event, ends: list[tuple[Bridge, Conversation]], group: Group
    ) -> Iterable[tuple[Bridge, Conversation, ISource, str | None]]:
        """For each other conversation of the bridges whose source runs: the bridge, the
        conversation, its source and the id of ``group``'s message there (or None)."""
        for bridge, conversation in self.targets(event, ends):
            target = self.bot.get_source(conversation.source)
            if target is None:
                continue
            folded = _fold(self.bot, conversation.source, conversation.target)
            yield bridge, conversation, target, group.id_in(self.bot, conversation.source, folded)

    @staticmethod
    def say(event: Event, to: Conversation, text: str, **fields: Any) -> None:
        """Add a copy (or an edit, deletion or reaction of one) for ``to`` to ``event``."""
        fields.setdefault("reply_to", False)
        event.addresponse(
            text, source=to.source, target=to.target, address=False, processed=False, **fields
        )

    def relay_text(
        self,
        event: Event,
        ends: list[tuple[Bridge, Conversation]],
        into: Event,
        notice: bool = False,
    ) -> None:
        """Relay a message, action or notice of ``event`` (its copies added to ``into``),
        skipping the conversations it already reached (a replay after a reconnect)."""
        message = event.message
        if message is None or not ends:
            return
        text = message.raw
        files = message.attachments
        if not text.strip() and not files:
            return
        for bridge, _ in ends:
            marker = bridge.settings.get("ignore_marker")
            if marker and text.startswith(marker):
                return
        name = self.shown_name(event)
        action = event.type == EventType.ACTION
        origin = self._origin(event)
        done: set[tuple[str, str]] = set()
        if origin is not None:
            rows = event.session.execute(
                select(Receipt.copy_source, Receipt.copy_channel).where(
                    Receipt.origin_source == origin[0],
                    Receipt.origin_channel == origin[1],
                    Receipt.origin_id == origin[2],
                )
            )
            done = {(row[0], row[1]) for row in rows}
        group = self.group_of(event, ends, event.reply_to)
        # A thread's root is a message too: its copy roots the thread elsewhere.
        thread = self.group_of(event, ends, event.thread_id)
        for bridge, conversation in self.targets(event, ends):
            folded = _fold(self.bot, conversation.source, conversation.target)
            if (conversation.source, folded) in done:
                self.log.debug(
                    "bridge {bridge}: {origin} already relayed to {to}",
                    bridge=bridge.name,
                    origin=origin,
                    to=str(conversation),
                )
                continue
            reply: str | bool = False
            if group is not None:
                reply = group.id_in(self.bot, conversation.source, folded) or False
            root = thread.id_in(self.bot, conversation.source, folded) if thread else None
            said, sent = text, files
            target = self.bot.get_source(conversation.source)
            if files and (target is None or "attachments" not in target.supports):
                # Said as their names and URLs in the copy's text, so that a file said
                # alone follows the sender's name on its line.
                said, sent = describe_attachments(text, files), ()
            response = Response(
                self.line(bridge, conversation, event, name, said, action),
                source=conversation.source,
                target=conversation.target,
                address=False,
                conflate=False,
                notice=notice,
                reply_to=reply,
                thread_id=root,
                attachments=sent,
            )
            self.send(into, response, bridge, origin, folded)

    def send(
        self,
        into: Event,
        response: Response,
        bridge: Bridge,
        origin: tuple[str, str, str] | None,
        folded: str,
    ) -> None:
        """Add ``response`` to ``into`` (or keep it for later when its source is not
        connected), with its receipt when the original has an id. A copy for a source
        that is not loaded (disabled, unloaded) is left out."""
        target = self.bot.get_source(response.source)
        if target is None:
            self.log.debug(
                "bridge {bridge}: source {source} is not loaded; copy left out",
                bridge=bridge.name,
                source=response.source,
            )
            return
        if origin is not None and len(folded) <= MAX_CHANNEL:
            into.session.add(
                Receipt(
                    bridge=bridge.name,
                    origin_source=origin[0],
                    origin_channel=origin[1],
                    origin_id=origin[2],
                    copy_source=response.source,
                    copy_channel=folded,
                    copy_local=response.id,
                    time=self.bot.now(),
                )
            )
            mark_written(into.session)
        if target.state != "connected" and self.max_pending > 0:
            self.bot.call_from_thread(self._hold, response)
            return
        into.addresponse(response, processed=False)

    def _origin(self, event: Event) -> tuple[str, str, str] | None:
        message_id = event.message_id
        channel = self._folded(event)
        if not message_id or len(message_id) > MAX_ID or len(channel) > MAX_CHANNEL:
            return None
        return (event.source, channel, message_id)

    def _folded(self, event: Event) -> str:
        return _fold(self.bot, event.source, event.channel or "")

    def relay_change(
        self, event: Event, ends: list[tuple[Bridge, Conversation]], kind: str
    ) -> None:
        """Carry an edit or a deletion of a relayed message (or of a copy) to the other
        copies: as an edit or deletion where the network can, else as its source's
        ``edit_fallback`` says (a deletion: nothing)."""
        group = self.group_of(event, ends, event.refers_to)
        if group is None:
            return
        name = self.shown_name(event)
        text = event.message.raw if event.message is not None else ""
        for bridge, conversation, target, refers in self.copies_of(event, ends, group):
            if kind == "delete":
                if refers is not None:
                    self.say(event, conversation, "", kind="delete", refers_to=refers)
                continue
            if refers is not None and "edit" in target.supports:
                line = self.line(bridge, conversation, event, name, text, False)
                self.say(event, conversation, line, kind="edit", refers_to=refers)
            elif target.edit_fallback != "none":
                # Said again as a new message: say that it replaces an earlier one.
                suffix = bridge.settings.get("edit_suffix")
                again = f"{text} {suffix}" if suffix else text
                self.say(
                    event, conversation, self.line(bridge, conversation, event, name, again, False)
                )

    def relay_reaction(self, event: Event, ends: list[tuple[Bridge, Conversation]]) -> None:
        """Carry a reaction to the other copies: the bot reacts with the same key where
        the network has reactions, else says who reacted in a short line."""
        if not event.reaction or event.data.get("removed"):
            return
        ends = [(b, c) for b, c in ends if b.settings["relay_reactions"]]
        group = self.group_of(event, ends, event.refers_to) if ends else None
        if group is None:
            return
        name = self.shown_name(event)
        key = event.reaction
        for bridge, conversation, target, refers in self.copies_of(event, ends, group):
            if refers is not None and "react" in target.supports:
                self.say(event, conversation, key, kind="reaction", refers_to=refers)
            else:
                line = self.line(bridge, conversation, event, name, f"reacted {key}", True)
                self.say(event, conversation, line, reply_to=refers or False)

    def relay_state(self, event: Event) -> None:
        """Relay a join, part, quit or kick as a line, where relay_joins says so (a kick
        is never carried out elsewhere)."""
        kind = event.data.get("kind")
        what = _JOIN_KINDS.get(kind) if isinstance(kind, str) else None
        if what is None or event.sender is None:
            return
        channels = [event.channel] if event.channel else list(event.data.get("channels") or ())
        bridges = self.view.current()
        if self.from_the_bot(event, bridges):
            return
        if not any(self.view.ends(event.source, channel) for channel in channels):
            return
        if self.ignored(event):
            return
        seen: set[tuple[str, str]] = set()
        for channel in channels:
            ends = [
                (b, c)
                for b, c in self.view.ends(event.source, channel)
                if b.settings["relay_joins"]
            ]
            if not ends:
                continue
            name = self.shown_name(event)
            who = (
                _clean_name(str(event.data.get("kicked") or event.who.nick))
                if kind == "kick"
                else name
            )
            for bridge, conversation in self.targets(
                event.derive(event.type, channel=channel), ends
            ):
                key = (conversation.source, conversation.target)
                if key in seen:
                    continue
                seen.add(key)
                line = bridge.settings["join_template"].format(
                    name=who,
                    nick=_clean_name(event.who.nick),
                    what=what,
                    source=event.source,
                    channel=channel,
                    bridge=bridge.name,
                )
                self.say(event, conversation, line)

    # -- copies for a source that is away --------------------------------------------

    def _hold(self, response: Response) -> None:
        """Keep a copy for a source that is not connected; send it once it is (reactor
        thread)."""
        shared = _shared(self.bot)
        pending: dict[tuple[str, str | None], deque[Response]] = shared["pending"]
        key = (response.source or "", response.target)
        queue = pending.get(key)
        if queue is None:
            queue = pending[key] = deque()
        queue.append(response)
        while len(queue) > self.max_pending:
            queue.popleft()
            shared["dropped"][key] = shared["dropped"].get(key, 0) + 1
            self.log.warn(
                "bridge: dropped a copy waiting for {source} to connect (too many waiting)",
                source=response.source,
            )
        source = self.bot.get_source(response.source)
        watched: dict[tuple[str, str | None], Any] = shared.setdefault("watched", {})
        if source is not None and watched.get(key) is not source:
            # Once per source object: a reloaded source is a new one to wait for.
            watched[key] = source
            source.when_connected().addCallback(lambda _: self._flush(key))

    def _flush(self, key: tuple[str, str | None]) -> None:
        shared = _shared(self.bot)
        shared.setdefault("watched", {}).pop(key, None)
        queue = shared["pending"].pop(key, None)
        if not queue:
            return
        held = list(queue)
        trigger = Event(source=key[0], type=EventType.DELAYED, channel=key[1])
        self.bot.call_later(0, self._release, trigger, held)

    def _release(self, delayed: Event, held: list[Response]) -> None:
        for response in held:
            delayed.addresponse(response, processed=False)

    # -- housekeeping ----------------------------------------------------------------

    @periodic(config_key="prune_interval")
    def prune(self, event: Event) -> None:
        """Forget receipts older than keep_receipts, and write the network ids the sources
        have learnt since into the younger ones. Worker thread."""
        session = event.session
        cutoff = self.bot.now() - timedelta(seconds=self.keep_receipts)
        result = session.execute(delete(Receipt).where(Receipt.time < cutoff))
        if getattr(result, "rowcount", 0):
            mark_written(session)
        recent = self.bot.now() - timedelta(seconds=max(self.prune_interval * 2, 3600))
        for row in session.scalars(
            select(Receipt).where(Receipt.copy_id.is_(None), Receipt.time >= recent)
        ):
            if _copy_id(self.bot, row) is not None:
                mark_written(session)


class Chatter(Processor):
    """In a private conversation that is an end of a bridge (a console), what nothing
    answered is chatter for the bridge, not a command the bot failed to understand."""

    usage = "(automatic) keeps the bot from complaining about chatter in a bridged console"
    features = ("bridge",)
    priority = Priority.LATE + 50  # after every command, before Complain
    addressed = False
    event_types = EventType.TEXT

    def __init__(self, *args: Any, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self.view = BridgeView(self.bot)

    @handler
    def chatter(self, event: Event) -> None:
        if not event.public and self.view.ends(event.source, event.channel):
            event.processed = True


class Answers(Processor):
    """In a bridge with ``answer = all``, the bot's answers to a command said in one of
    its conversations are said in all of them."""

    usage = "(automatic) repeats the bot's answers across a bridge with answer = all"
    features = ("bridge",)
    priority = Priority.ADDRESS + 50  # worded and addressed, not yet formatted
    addressed = False
    processed = True
    event_types = EventType.TEXT

    def __init__(self, *args: Any, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self.view = BridgeView(self.bot)

    @handler
    def answer_everywhere(self, event: Event) -> None:
        if not event.responses:
            return
        ends = [
            (b, c)
            for b, c in self.view.ends(event.source, event.channel)
            if b.settings["answer"] == "all"
        ]
        if not ends:
            return
        own = [
            r
            for r in event.responses
            if r.kind == "message"
            and r.source == event.source
            and r.target == event.channel
            and isinstance(r.text, str)
        ]
        if not own:
            return
        folded = _fold(self.bot, event.source, event.channel or "")
        reached: set[tuple[str, str]] = {(event.source, folded)}
        for bridge, _ in ends:
            for conversation in bridge.conversations:
                key = (
                    conversation.source,
                    _fold(self.bot, conversation.source, conversation.target),
                )
                if key in reached:
                    continue
                reached.add(key)
                for response in own:
                    event.addresponse(
                        Response(
                            response.text,
                            source=conversation.source,
                            target=conversation.target,
                            action=response.action,
                            notice=response.notice,
                            address=False,
                            conflate=response.conflate,
                            reply_to=False,
                            attachments=response.attachments,
                        ),
                        processed=False,
                    )


# -- commands ----------------------------------------------------------------------------


_ACCOUNT = re.compile(r"account\s+(\S+)", re.IGNORECASE)
_ON = re.compile(r"(\S+)\s+on\s+(\S+)", re.IGNORECASE)


class BridgeCommands(Processor):
    """``bridge status``; for admins ``bridge ignore <who>`` / ``bridge unignore <who>``
    (an account is ignored on every network), ``bridge ignores``, ``bridge add <name>
    <source>:<target> <source>:<target> ...`` and ``bridge remove <name>`` (until the
    bot restarts, or a config reload brings a new or changed section of that name)."""

    usage = (
        "bridge status\n"
        "bridge ignore <who> | bridge unignore <who> | bridge ignores\n"
        "bridge add <name> <source>:<target> <source>:<target> ...\n"
        "bridge remove <name>"
    )
    features = ("bridge",)
    permission = "admin"

    def __init__(self, *args: Any, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self.view = BridgeView(self.bot)

    @example("bridge status", r"bridge")
    @match(r"^(?:bridge\s+status|bridges)$", simple=False)
    def status(self, event: Event) -> None:
        bridges = self.view.current()
        shared = _shared(self.bot)
        if not bridges.working and not bridges.broken:
            event.addresponse("There are no bridges")
            return
        lines = []
        for name, bridge in bridges.working.items():
            ends = []
            for conversation in bridge.conversations:
                source = self.bot.get_source(conversation.source)
                state = source.state if source is not None else "not loaded"
                key = (conversation.source, conversation.target)
                extra = ""
                waiting = len(shared["pending"].get(key, ()))
                dropped = shared["dropped"].get(key, 0)
                if waiting:
                    extra += f", {waiting} waiting"
                if dropped:
                    extra += f", {dropped} dropped"
                ends.append(f"{conversation} ({state}{extra})")
            added = " (added by command)" if bridge.origin == "command" else ""
            lines.append(f"bridge {name}{added}: " + ", ".join(ends))
        for name, why in bridges.broken.items():
            lines.append(f"bridge {name} is not running: {why}")
        event.addresponse("\n".join(lines), conflate=False)

    # -- ignores ---------------------------------------------------------------------

    def _who(self, event: Event, who: str) -> tuple[int | None, str | None, str | None, str]:
        """(account id, source, folded nick, how to say it) for a <who>: ``account
        NAME``, ``NICK on SOURCE`` or a bare name (an account, else a nick here)."""
        session = event.session
        found = _ACCOUNT.fullmatch(who)
        if found is not None:
            account = accounts.find_account(session, found.group(1))
            if account is None:
                raise accounts.AccountError(f"There is no account called {found.group(1)}")
            return account.id, None, None, f"account {account.username}"
        found = _ON.fullmatch(who)
        source, nick = (found.group(2), found.group(1)) if found else (event.source, who)
        if found is None:
            account = accounts.find_account(session, who)
            if account is not None:
                return account.id, None, None, f"account {account.username}"
        identity = accounts.find_identity(session, source, nick)
        if identity is not None and identity.account_id is not None:
            account = session.get(Account, identity.account_id)
            if account is not None:
                return account.id, None, None, f"account {account.username}"
        return None, source, _fold(self.bot, source, nick), f"{nick} on {source}"

    def _changed(self, event: Event) -> None:
        """The ignores changed: every Relay reads them again, now and once more after
        this event (its change committed), lest one read them before the commit."""
        self._bump()
        self.bot.call_later(0, lambda later: self._bump(), event)

    def _bump(self) -> None:
        shared = _shared(self.bot)
        with shared["lock"]:
            shared["ignores"] += 1

    def _rows_of(self, event: Event, who: str) -> tuple[Any, BridgeIgnore, str] | None:
        """The condition on ``bridge_ignores`` naming <who>, the row that would, and how
        to say who it is; None (with a reply) when <who> names no one."""
        try:
            account_id, source, nick, said = self._who(event, who.strip())
        except accounts.AccountError as e:
            event.addresponse(str(e))
            return None
        row = BridgeIgnore(account_id=account_id, source=source, nick=nick)
        if account_id is not None:
            return BridgeIgnore.account_id == account_id, row, said
        return and_(BridgeIgnore.source == source, BridgeIgnore.nick == nick), row, said

    @authorise(fallthrough=False)
    @match(r"^bridge\s+ignore\s+(.+)$", simple=False)
    def ignore(self, event: Event, who: str) -> None:
        found = self._rows_of(event, who)
        if found is None:
            return
        condition, row, said = found
        session = event.session
        if session.scalars(select(BridgeIgnore).where(condition)).first() is not None:
            event.addresponse(f"I already don't relay {said}")
            return
        session.add(row)
        session.flush()
        mark_written(session)
        self._changed(event)
        event.addresponse(f"I won't relay {said} on any bridge")

    @authorise(fallthrough=False)
    @match(r"^bridge\s+unignore\s+(.+)$", simple=False)
    def unignore(self, event: Event, who: str) -> None:
        found = self._rows_of(event, who)
        if found is None:
            return
        condition, _, said = found
        result = event.session.execute(delete(BridgeIgnore).where(condition))
        if not getattr(result, "rowcount", 0):
            event.addresponse(f"I wasn't ignoring {said}")
            return
        mark_written(event.session)
        self._changed(event)
        event.addresponse(f"I'll relay {said} again")

    @authorise(fallthrough=False)
    @match(r"^bridge\s+ignores$", simple=False)
    def ignores(self, event: Event) -> None:
        rows = list(event.session.scalars(select(BridgeIgnore).order_by(BridgeIgnore.id)))
        if not rows:
            event.addresponse("I relay everyone")
            return
        said = []
        for row in rows:
            if row.account_id is not None:
                account = event.session.get(Account, row.account_id)
                said.append(
                    f"account {account.username}" if account else f"account #{row.account_id}"
                )
            else:
                said.append(f"{row.nick} on {row.source}")
        event.addresponse("Not relayed: " + ", ".join(said))

    # -- bridges at run time ---------------------------------------------------------

    @authorise(fallthrough=False)
    @match(r"^bridge\s+add\s+(\S+)\s+(.+)$", simple=False)
    def add(self, event: Event, name: str, conversations: str) -> None:
        if not re.fullmatch(r"[\w.-]{1,64}", name):
            event.addresponse("A bridge's name is letters, digits, '.', '-' and '_' (at most 64)")
            return
        values = _section_values({"conversations": conversations})
        found, problems = parse_conversations(conversations)
        for conversation in found:
            if (
                conversation.source not in self.bot.config.names("source")
                and self.bot.get_source(conversation.source) is None
            ):
                problems.append(f"there is no source called {conversation.source!r}")
        if not problems and len(found) < 2:
            problems.append(f"a bridge needs two or more conversations; it has {len(found)}")
        if problems:
            event.addresponse(f"I can't bridge that: {'; '.join(problems)}")
            return
        shared = _shared(self.bot)
        with shared["lock"]:
            shared["added"][name] = values
            shared["removed"].discard(name)
            shared["version"] += 1
        event.addresponse(f"Bridge {name} relays between {', '.join(str(c) for c in found)}")

    @authorise(fallthrough=False)
    @match(r"^bridge\s+remove\s+(\S+)$", simple=False)
    def remove(self, event: Event, name: str) -> None:
        bridges = self.view.current()
        if name not in bridges.working and name not in bridges.broken:
            event.addresponse(f"There is no bridge called {name}")
            return
        shared = _shared(self.bot)
        with shared["lock"]:
            shared["added"].pop(name, None)
            if name in self.bot.config.names("bridge"):
                shared["removed"].add(name)
            shared["version"] += 1
        event.addresponse(f"Bridge {name} removed")
