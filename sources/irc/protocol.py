"""One connection to an IRC server, on Twisted's IRCClient: registration (CAP LS 302 and
the IRCv3 capabilities, SASL PLAIN/EXTERNAL/SCRAM-SHA-256, NickServ, STS), keepalive, nick
regain, channel membership, message tags (ids, replies, reactions, server time), echoes
and labels of what the bot sent, batches, CTCP, and events for the source."""

from __future__ import annotations

import base64
import secrets
import sys
import typing
from collections import OrderedDict, deque
from contextlib import suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime
from itertools import count
from typing import TYPE_CHECKING, Any

from OpenSSL import SSL
from service_identity import VerificationError
from twisted.copyright import version as twisted_version
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import ISSLTransport, ITCPTransport
from twisted.internet.protocol import connectionDone
from twisted.internet.task import LoopingCall
from twisted.logger import Logger, LogLevel
from twisted.python.failure import Failure
from twisted.words.protocols import irc

from botcore.accounts.secrets import scrub
from botcore.event import Event, EventType, Message, Response, Sender
from botcore.sources.irc.flood import OutgoingQueue, TokenBucket
from botcore.sources.irc.sasl import (
    MECHANISMS,
    SASL_CHUNK,
    External,
    Mechanism,
    Plain,
    SaslError,
    ScramSha256,
    encode_response,
)
from botcore.sources.irc.sts import parse_sts
from botcore.sources.irc.tls import tls_failure
from botcore.sources.irc.wire import (
    Mask,
    clean_text,
    decode,
    encode_line,
    irc_lower,
    parse_line,
    split_prefix,
    text_budget,
)
from botcore.text import split_text

if TYPE_CHECKING:
    from twisted.internet.interfaces import IDelayedCall, IReactorTime

    from botcore.sources.irc import IRCSource

#: Capabilities asked for when the server offers them (sasl only with a password).
WANTED_CAPS = (
    "multi-prefix",
    "account-notify",
    "extended-join",
    "account-tag",
    "userhost-in-names",
    "away-notify",
    "cap-notify",
    "message-tags",
    "server-time",
    "echo-message",
    "batch",
    "labeled-response",
    "chghost",
    "setname",
    "invite-notify",
    "standard-replies",
    "inspircd.org/standard-replies",
    "draft/multiline",
)
#: Batch types whose lines are one event (netsplit, netjoin) or none (history replayed).
GROUPED_BATCHES = ("netsplit", "netjoin")
HISTORY_BATCHES = ("chathistory", "draft/chathistory", "znc.in/playback")
#: How many of the bot's sent messages wait for their echo at most (labels, texts), and
#: how many batches may be open at once.
ECHO_MEMORY = 256
#: The most events a netsplit/netjoin batch collects (the rest are counted only), and
#: the most lines a received multiline message may have (the rest are dropped).
BATCH_LIMIT = 5000
MULTILINE_LIMIT = 100
#: The most base64 one SASL challenge may take.
SASL_DATA_LIMIT = 65536
#: Received lines longer than this (bytes, tags included) are dropped.
MAX_LINE = 16384
#: The warning logged when a handler raised on a line from the server (tests look for it:
#: a handler must check what it reads, so this is a bug to fix, not input to shrug off).
MALFORMED = "{source}: ignored a malformed {command} from the server ({error})"
#: The WHOX query token the protocol uses to learn accounts when it joins a channel.
WHOX_TOKEN = "152"
#: CTCP queries the source answers.
CTCP_ANSWERED = ("ACTION", "CLIENTINFO", "PING", "SOURCE", "TIME", "VERSION")
_SASL_FAILURES = {
    "902": "the account is locked",
    "904": "authentication failed",
    "905": "the SASL message was too long",
    "906": "authentication was aborted",
}


@dataclass
class User:
    """Someone the bot can see: their current mask and services account (if known), and
    the session the bot follows them by while they share a channel with it (through nick
    changes, until they quit or leave its sight, or the bot reconnects)."""

    nick: str
    user: str = ""
    host: str = ""
    account: str | None = None
    session: str = field(default_factory=lambda: secrets.token_hex(8), compare=False)
    # What `mask` and `IRCProtocol.sender` made last, with what they made it of: worked
    # out again only when that changes (a nick change, CHGHOST, an account), not for
    # every message the user sends.
    _mask: tuple[str, str, str, str] | None = field(
        default=None, init=False, repr=False, compare=False
    )
    _sender: tuple[tuple[Any, ...], Sender] | None = field(
        default=None, init=False, repr=False, compare=False
    )

    @property
    def mask(self) -> str:
        nick, user, host = self.nick, self.user, self.host
        last = self._mask
        if last is None or last[0] != nick or last[1] != user or last[2] != host:
            text = f"{nick}!{user}@{host}" if user or host else nick
            last = self._mask = (nick, user, host, text)
        return last[3]


@dataclass
class Batch:
    """An open IRCv3 batch: its type and parameters, the label of the command it answers
    (labeled-response), and what was collected in it."""

    reference: str
    type: str
    params: list[str]
    label: str | None = None
    parent: Batch | None = None
    tags: dict[str, str] = field(default_factory=dict)
    prefix: str = ""
    events: list[Event] = field(default_factory=list)
    count: int = 0
    lines: list[tuple[dict[str, str], str]] = field(default_factory=list)

    def within(self, *types: str) -> bool:
        """Whether this batch or one it is nested in has one of ``types``."""
        batch: Batch | None = self
        while batch is not None:
            if batch.type in types:
                return True
            batch = batch.parent
        return False


@dataclass
class Channel:
    """A channel the bot is in: who is there (folded nick -> [nick, mode letters])."""

    name: str
    members: dict[str, list[str]] = field(default_factory=dict)
    topic: str = ""
    _names: dict[str, list[str]] | None = None


#: What channel names start with on a server that does not say (RFC 1459's ``#`` and ``&``).
DEFAULT_CHANTYPES = "#&"


@typing.runtime_checkable
class StreamTransport(typing.Protocol):
    """What the protocol uses of its connection's transport: `ITransport`'s ``write`` and
    ``abortConnection``, which every stream transport Twisted has (TCP, TLS, UNIX sockets,
    StringTransport) though only ITCPTransport declares it."""

    def write(self, data: bytes) -> None: ...

    def abortConnection(self) -> None: ...


def stream_of(transport: object) -> StreamTransport:
    """``transport`` as the `StreamTransport` it is; a TypeError for anything else."""
    if not isinstance(transport, StreamTransport):
        raise TypeError(f"an IRC connection needs a stream transport, not {transport!r}")
    return transport


class IRCProtocol(irc.IRCClient):
    """The wire side of `botcore.sources.irc.IRCSource`, one instance per connection.

    Connection-scoped state (the nick the server gave, capabilities, channels and their
    members, the outgoing queue) lives here; what outlives a connection (channels to be
    in, the wanted nick, options) is read from the source. Reactor thread only.
    """

    log = Logger()
    # Keepalive is ours: clock-injected, with a PONG timeout (IRCClient's has neither).
    heartbeatInterval = None  # type: ignore[assignment]  # IRCClient documents None: "off"
    performLogin = 0
    #: The user name (ident) sent when registering.
    username: str

    #: The connection's transport as what the protocol uses of it, and the queue of what
    #: is sent through it: both from connectionMade on.
    stream: StreamTransport
    queue: OutgoingQueue

    # The bot's nick folded as the server compares nicks, worked out again only when the
    # nick or the casemapping changes (both are properties), not on every line: is_me
    # asks on each message. Also what IRCClient assigns goes through the setters.
    _nickname = ""
    _casemapping = "rfc1459"
    _folded_nick = ""

    @property
    def nickname(self) -> str:
        return self._nickname

    @nickname.setter
    def nickname(self, nick: str) -> None:
        self._nickname = nick
        self._folded_nick = irc_lower(nick, self._casemapping)

    @property
    def casemapping(self) -> str:
        """The server's CASEMAPPING (``rfc1459`` until it says)."""
        return self._casemapping

    @casemapping.setter
    def casemapping(self, mapping: str) -> None:
        self._casemapping = mapping
        self._folded_nick = irc_lower(self._nickname, mapping)

    def __init__(self, source: IRCSource, server: str) -> None:
        self.source = source
        self.server = server
        self.clock: IReactorTime = source.reactor
        self.nickname = source.wanted_nick
        self.username = source.username
        self.realname = source.realname
        self.password = source.server_password or None
        self.versionName = "botcore"  # type: ignore[assignment]  # IRCClient: "str, or None"
        self.registered = False
        self.connected_at: float | None = None
        self.casemapping = "rfc1459"
        self.own = User(self.nickname, "~" + self.username[:9], "")
        self.account: str | None = None
        self.users: dict[str, User] = {}
        self.channels: dict[str, Channel] = {}
        self.caps: set[str] = set()
        self._offered: dict[str, str] = {}
        self._cap_done = False
        # CAP REQs not yet answered (ACK or NAK): CAP END waits for them.
        self._requests = 0
        self._sasl: str | None = None
        self._mechanisms: list[str] | None = None
        self._mechanism: Mechanism | None = None
        self._sasl_data = ""
        #: The SASL mechanism that logged the bot in, if one did.
        self.sasl_mechanism: str | None = None
        #: Whether the connection is being dropped to reconnect with TLS (STS).
        self.sts_upgrade = False
        #: ISUPPORT CLIENTTAGDENY: the client tags the server does not relay.
        self.clienttagdeny: list[str] = []
        # The bot's messages waiting for their echo: by label, and (without labels) by
        # folded target, each with its first line's text.
        self._labels: OrderedDict[str, Response] = OrderedDict()
        self._label_ids = count(1)
        self._unlabelled: OrderedDict[str, deque[tuple[str, Response]]] = OrderedDict()
        # Open batches (reference -> Batch) and the one the current line belongs to.
        self._batches: dict[str, Batch] = {}
        self._batch: Batch | None = None
        self._multiline_ids = count(1)
        self._attempts = self._alternatives()
        self._tags: dict[str, str] = {}
        self._buffer = b""
        self._discarding = False
        self._last_received = self.clock.seconds()
        # While a read is handled: when it came (`_now`); and the last `_now` made.
        self._reading_at: float | None = None
        self._last_now: tuple[float, datetime] | None = None
        self._keepalive: LoopingCall | None = None
        self._pong_deadline: IDelayedCall | None = None
        self._register_deadline: IDelayedCall | None = None
        self._regain: LoopingCall | None = None
        self._rejoins: dict[str, IDelayedCall] = {}
        # WHOIS lookups of accounts in flight: folded nick -> (waiters, account, timer).
        self._whois: dict[str, tuple[list[Deferred[str | None]], list[str], IDelayedCall]] = {}
        # CTCP answers are few and far between, so a CTCP flood cannot fill the queue.
        self._ctcp = TokenBucket(self.clock, burst=3, rate=0.2)
        self.lost_reason: str | None = None
        #: Whether the connection was dropped for not answering a keepalive PING.
        self.timed_out = False

    # -- connection ---------------------------------------------------------------------

    def connectionMade(self) -> None:
        self.stream = stream_of(self.transport)
        self.supported = irc.ServerSupportedFeatures()
        self._queue = []
        self.queue = OutgoingQueue(
            self.stream.write,
            self.clock,
            burst=self.source.flood_burst,
            rate=self.source.flood_rate,
            limit=self.source.queue_limit,
        )
        if ITCPTransport.providedBy(self.transport):  # not every transport is a TCP socket
            with suppress(Exception):
                self.transport.setTcpNoDelay(True)
        self._register_deadline = self.clock.callLater(
            self.source.connect_timeout, self._registration_timed_out
        )
        self.source.connection_made(self)
        if self.password:
            self.send_raw("PASS", trailing=self.password)
        self.send_raw("CAP", "LS", "302")
        self.send_raw("NICK", self.nickname)
        self.send_raw("USER", self.username, "0", "*", trailing=self.realname)

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        for timer in (self._pong_deadline, self._register_deadline, *self._rejoins.values()):
            if timer is not None and timer.active():
                timer.cancel()
        self._pong_deadline = self._register_deadline = None
        self._rejoins.clear()
        for folded in list(self._whois):
            self._whois_done(folded)
        for loop in (self._keepalive, self._regain):
            if loop is not None and loop.running:
                loop.stop()
        self._keepalive = self._regain = None
        dropped = self.queue.clear()
        if dropped:
            self.log.info(
                "{source}: {count} queued line(s) not sent before the connection closed",
                source=self.source.name,
                count=dropped,
            )
        why = self.lost_reason or (reason.getErrorMessage() if reason else "closed")
        if (
            reason is not None
            and reason.check(SSL.Error, VerificationError)
            and not self.registered
        ):
            why = tls_failure(reason.value or SSL.Error(), self.server)
            self.log.error("{source}: {why}", source=self.source.name, why=why)
        self.source.connection_lost(self, why)

    def drop(self, why: str) -> None:
        """Close the connection at once (the source reconnects)."""
        self.lost_reason = why
        self.abort()

    def abort(self) -> None:
        """Close the connection at once, if it was made."""
        if self.transport is not None:
            self.stream.abortConnection()

    def _registration_timed_out(self) -> None:
        self._register_deadline = None
        self.log.warn(
            "{source}: {server} did not finish registration in {timeout}s; giving up on it",
            source=self.source.name,
            server=self.server,
            timeout=self.source.connect_timeout,
        )
        self.drop("registration timed out")

    # -- receiving ----------------------------------------------------------------------

    def dataReceived(self, data: bytes) -> None:
        self._last_received = self._reading_at = self.clock.seconds()
        try:
            self._read(data)
        finally:
            self._reading_at = None

    def _read(self, data: bytes) -> None:
        if self._pong_deadline is not None:
            if self._pong_deadline.active():
                self._pong_deadline.cancel()
            self._pong_deadline = None
        if self._discarding:
            # The rest of a line already dropped as too long: skip it up to its end.
            end = data.find(b"\n")
            if end < 0:
                return
            data = data[end + 1 :]
            self._discarding = False
        if self._buffer:
            data = self._buffer + data
        lines = data.split(b"\n")
        self._buffer = lines.pop()
        # Complete lines first: they come before the start of a line that turns out too long.
        for index, raw in enumerate(lines):
            if self.paused:
                # The dispatcher's backlog is full (pauseProducing): the rest waits for
                # resumeProducing, which reads it from the buffer first.
                self._buffer = b"\n".join([*lines[index:], self._buffer])
                return
            if len(raw) > MAX_LINE:
                self._overlong(len(raw))
                continue
            self.lineReceived(raw)
            if self.transport is None or getattr(self.transport, "disconnecting", False):
                return
        if len(self._buffer) > MAX_LINE:
            self._overlong(len(self._buffer))
            self._buffer = b""
            self._discarding = True

    def _overlong(self, size: int) -> None:
        self.log.warn(
            "{source}: dropped a line of {size} bytes from the server (limit {limit})",
            source=self.source.name,
            size=size,
            limit=MAX_LINE,
        )

    def lineReceived(self, line: bytes) -> None:
        parsed = parse_line(decode(line.rstrip(b"\r"), self.source.encoding))
        if parsed is None:
            return
        command = irc.numeric_to_symbolic.get(parsed.command, parsed.command)
        self._tags = parsed.tags
        reference = parsed.tags.get("batch")
        self._batch = self._batches.get(reference) if reference else None
        batch = self._batch
        if (
            batch is not None
            and batch.type == "draft/multiline"
            and command in ("PRIVMSG", "NOTICE")
        ):
            if len(batch.lines) < MULTILINE_LIMIT:
                batch.lines.append((parsed.tags, parsed.param(-1)))
            return
        self.handleCommand(command, parsed.prefix, parsed.params)
        label = parsed.tags.get("label")
        if label and command not in ("PRIVMSG", "NOTICE", "TAGMSG", "BATCH"):
            # A labelled reply that is not the echo (an error, say): none will come.
            self._labels.pop(label, None)

    def handleCommand(self, command: str, prefix: str, params: list[str]) -> None:
        """Run ``irc_COMMAND``; a line it cannot make sense of is logged in one line and
        skipped, never allowed to break the connection."""
        method = getattr(self, f"irc_{command}", None)
        try:
            if method is not None:
                method(prefix, params)
            else:
                self.irc_unknown(prefix, command, params)
        except Exception as e:
            self.log.warn(
                MALFORMED,
                source=self.source.name,
                command=command,
                # Scrubbed: the error may quote a message that carried a password.
                error=scrub(f"{type(e).__name__}: {e}"),
            )

    # -- sending ------------------------------------------------------------------------

    def sendLine(self, line: str) -> None:
        """A protocol line (IRCClient's helpers use this): cleaned of line breaks and sent
        ahead of queued messages."""
        line = line.replace("\r", " ").replace("\n", " ").replace("\0", "")
        self.queue.put(line.encode("utf-8") + b"\r\n")

    def send_raw(self, *words: str, trailing: str | None = None) -> None:
        """Send a protocol command ahead of queued messages (still flood-controlled)."""
        if trailing is not None:
            trailing = trailing.replace("\r", " ").replace("\n", " ").replace("\0", "")
        self.queue.put(encode_line(*words, trailing=trailing))

    def text_budget(self, command: str, target: str, action: bool = False) -> int:
        """The most UTF-8 bytes of text one ``command`` to ``target`` may carry so that the
        line the server relays, with the bot's mask in front, fits in 512 bytes."""
        return text_budget(self.nickname, self.own.user, self.own.host, command, target, action)

    def message(
        self,
        command: str,
        target: str,
        text: str,
        action: bool = False,
        *,
        reply_to: str | None = None,
        response: Response | None = None,
    ) -> int:
        """Send ``text`` to ``target`` as PRIVMSG or NOTICE (or an ACTION), one message per
        line of text, each split to fit, at most the source's ``max_lines`` in all (one
        draft/multiline batch instead, where the server offers it and the text fits its
        limits). ``reply_to`` (a message id) tags the first line as a reply to it;
        ``response``, when given, learns the network's id of what was sent from its echo.
        Returns the number of lines queued."""
        budget = self.text_budget(command, target, action)
        if budget < 16:
            self.log.warn(
                "{source}: target {target!r} is too long to send to",
                source=self.source.name,
                target=target,
            )
            return 0
        pieces: list[str] = []
        for line in text.replace("\r\n", "\n").split("\n"):
            pieces.extend(split_text(clean_text(line.expandtabs(4)), budget))
        limit = self.source.max_lines
        if len(pieces) > limit:
            self.log.info(
                "{source}: a reply to {target} of {count} lines was cut to {limit}",
                source=self.source.name,
                target=target,
                count=len(pieces),
                limit=limit,
            )
            last = pieces[limit - 1].encode("utf-8")[: budget - 3].decode("utf-8", "ignore")
            pieces = [*pieces[: limit - 1], last + "…"]
        key = self.fold(target)
        tags: dict[str, str | None] = {}
        if reply_to and self.tag_allowed("draft/reply"):
            tags["+draft/reply"] = reply_to
        if reply_to and self.tag_allowed("reply"):
            tags["+reply"] = reply_to
        first = f"\x01ACTION {pieces[0]}\x01" if action and pieces else (pieces or [""])[0]
        if response is not None and pieces:
            tags.update(self._expect_echo(response, target, first))
        if not action and len(pieces) > 1 and self._multiline(command, target, text, tags):
            return len(pieces)
        for index, piece in enumerate(pieces):
            if action:
                piece = f"\x01ACTION {piece}\x01"
            line_tags = tags if index == 0 else None
            self.queue.put(encode_line(command, target, trailing=piece, tags=line_tags), key)
        return len(pieces)

    def _multiline(
        self, command: str, target: str, text: str, tags: dict[str, str | None]
    ) -> bool:
        """Send ``text`` as one draft/multiline batch, if the server takes it (False: it
        does not, or the text is beyond its limits; nothing was sent)."""
        if "draft/multiline" not in self.caps or "batch" not in self.caps:
            return False
        limits = parse_sts(self._offered.get("draft/multiline", ""))
        try:
            max_bytes = int(limits.get("max-bytes", "0"))
            max_lines = int(limits.get("max-lines", "0") or 0) or None
        except ValueError:
            return False
        budget = self.text_budget(command, target)
        lines: list[tuple[str, bool]] = []
        for line in text.replace("\r\n", "\n").split("\n"):
            pieces = split_text(clean_text(line.expandtabs(4)), budget) or [""]
            lines.extend((piece, index > 0) for index, piece in enumerate(pieces))
        size = sum(len(piece.encode("utf-8")) for piece, _ in lines) + len(lines) - 1
        if not max_bytes or size > max_bytes or (max_lines and len(lines) > max_lines):
            return False
        if len(lines) > self.source.max_lines:
            return False
        key = self.fold(target)
        reference = f"ml{next(self._multiline_ids)}"
        self.queue.put(
            encode_line("BATCH", f"+{reference}", "draft/multiline", target, tags=tags), key
        )
        for piece, concat in lines:
            line_tags: dict[str, str | None] = {"batch": reference}
            if concat:
                line_tags["draft/multiline-concat"] = None
            self.queue.put(encode_line(command, target, trailing=piece, tags=line_tags), key)
        self.queue.put(encode_line("BATCH", f"-{reference}"), key)
        return True

    def react(self, target: str, message_id: str, key: str, response: Response | None) -> None:
        """React with ``key`` to the message ``message_id`` in ``target`` (a TAGMSG with
        ``+draft/react`` and ``+draft/reply``)."""
        tags: dict[str, str | None] = {"+draft/react": clean_text(key)[:64]}
        if self.tag_allowed("draft/reply"):
            tags["+draft/reply"] = message_id
        if self.tag_allowed("reply"):
            tags["+reply"] = message_id
        self.queue.put(encode_line("TAGMSG", target, tags=tags), self.fold(target))

    # -- registration -------------------------------------------------------------------

    def irc_CAP(self, prefix: str, params: list[str]) -> None:
        sub = params[1].upper() if len(params) > 1 else ""
        listed = params[-1].split() if len(params) > 2 else []
        if sub in ("LS", "NEW"):
            for token in listed:
                name, _, value = token.partition("=")
                self._offered[name] = value
            if sub == "LS" and len(params) > 3 and params[2] == "*":
                return  # more LS lines follow
            if "sts" in self._offered and self._sts(self._offered["sts"]):
                return  # reconnecting with TLS
            self._request_caps(sub == "NEW")
        elif sub == "ACK":
            self._requests = max(0, self._requests - 1)
            for token in listed:
                name = token.lstrip("=~").partition("=")[0]
                if name.startswith("-"):
                    self.caps.discard(name[1:])
                else:
                    self.caps.add(name)
            self.source.update_supports(self)
            if "sasl" in self.caps and self._sasl is None and self._sasl_wanted():
                self._sasl = "started"
                self._next_mechanism()
            else:
                self._end_caps()
        elif sub == "NAK":
            self._requests = max(0, self._requests - 1)
            if not self.registered and len(listed) > 1:
                # A request is all or nothing: ask for each capability on its own.
                for name in listed:
                    self._request(name)
                return
            self._end_caps()
        elif sub == "DEL":
            for name in listed:
                self.caps.discard(name)
                self._offered.pop(name, None)
            self.source.update_supports(self)

    # -- STS ------------------------------------------------------------------------------

    @property
    def secure(self) -> bool:
        """Whether the connection is encrypted (TLS)."""
        return ISSLTransport.providedBy(self.transport)

    def _sts(self, value: str) -> bool:
        """Follow an STS policy (``sts=...``): on a plain connection, reconnect with TLS to
        the port it names (True: this connection is being dropped); on a TLS one,
        remember it for its duration."""
        if not self.source.sts:
            return False
        policy = parse_sts(value)
        host = self.source.sts_host(self.server)
        if host is None:
            return False
        if not self.secure:
            try:
                port = int(policy.get("port", ""))
            except ValueError:
                self.log.warn(
                    "{source}: ignored an STS policy with no valid port ({value!r})",
                    source=self.source.name,
                    value=value,
                )
                return False
            if not 0 < port < 65536:
                return False
            self.log.info(
                "{source}: {server} asks for TLS (STS); reconnecting to {host}:{port} with TLS",
                source=self.source.name,
                server=self.server,
                host=host,
                port=port,
            )
            self.source.sts_policies.upgrade(host, port)
            self.sts_upgrade = True
            self.drop("STS upgrade to TLS")
            return True
        try:
            duration = float(policy.get("duration", ""))
        except ValueError:
            return False
        secure_port = self.source.sts_port(self.server)
        if secure_port is not None and duration >= 0:
            self.source.sts_policies.secure(host, secure_port, duration)
        return False

    # -- SASL -----------------------------------------------------------------------------

    def _usable_mechanisms(self) -> list[str]:
        """The configured mechanisms the bot has credentials for here, in order, that the
        server offers (all of them when it does not list any)."""
        source = self.source
        offered = {m.upper() for m in self._offered.get("sasl", "").split(",") if m}
        usable = []
        for mechanism in source.sasl_mechanisms:
            name = mechanism.upper()
            if offered and name not in offered:
                continue
            if name == "EXTERNAL" and not (source.tls_certificate and self.secure):
                continue
            if name in ("PLAIN", "SCRAM-SHA-256") and not source.account_password:
                continue
            if name in MECHANISMS and name not in usable:
                usable.append(name)
        return usable

    def _sasl_wanted(self) -> bool:
        return bool(self.source.sasl and self._usable_mechanisms())

    def _next_mechanism(self) -> None:
        """Try the next usable mechanism, or give up on SASL."""
        if self._mechanisms is None:
            self._mechanisms = self._usable_mechanisms()
        self._sasl_data = ""
        if not self._mechanisms:
            self._mechanism = None
            self._sasl_gave_up("no mechanism left to try")
            return
        name = self._mechanisms.pop(0)
        account = self.source.account or self.source.wanted_nick
        password = self.source.account_password
        mechanism: Mechanism
        if name == "EXTERNAL":
            mechanism = External()
        elif name == "SCRAM-SHA-256":
            mechanism = ScramSha256(account, password)
        else:
            mechanism = Plain(account, password)
        self._mechanism = mechanism
        self.send_raw("AUTHENTICATE", name)

    def irc_AUTHENTICATE(self, prefix: str, params: list[str]) -> None:
        if self._sasl != "started" or self._mechanism is None or not params:
            return
        chunk = params[0]
        if chunk != "+":
            self._sasl_data += chunk
            if len(self._sasl_data) > SASL_DATA_LIMIT:
                self.log.warn(
                    "{source}: SASL challenge longer than {limit} bytes; aborted",
                    source=self.source.name,
                    limit=SASL_DATA_LIMIT,
                )
                self._sasl_data = ""
                self.send_raw("AUTHENTICATE", "*")
                return
            if len(chunk) == SASL_CHUNK:
                return  # more of this challenge follows
        data, self._sasl_data = self._sasl_data, ""
        try:
            challenge = base64.b64decode(data, validate=True) if data else b""
            response = self._mechanism.respond(challenge)
        except (ValueError, SaslError) as e:
            self.log.warn(
                "{source}: SASL {mechanism} aborted: {why}",
                source=self.source.name,
                mechanism=self._mechanism.name,
                why=str(e) or "a challenge that is not base64",
            )
            self.send_raw("AUTHENTICATE", "*")
            return
        for piece in encode_response(response):
            self.send_raw("AUTHENTICATE", piece)

    def irc_900(self, prefix: str, params: list[str]) -> None:
        """RPL_LOGGEDIN: the services account the bot is logged in as."""
        self.account = params[2] if len(params) > 2 else self.account
        self.log.info(
            "{source}: logged in to services as {account}",
            source=self.source.name,
            account=self.account,
        )

    def irc_903(self, prefix: str, params: list[str]) -> None:
        """RPL_SASLSUCCESS."""
        if self._sasl != "started":
            return
        self._sasl = "done"
        self.sasl_mechanism = self._mechanism.name if self._mechanism else None
        self.log.info(
            "{source}: SASL {mechanism} login succeeded",
            source=self.source.name,
            mechanism=self.sasl_mechanism,
        )
        self._end_caps()

    def _sasl_failed(self, prefix: str, params: list[str], numeric: str = "904") -> None:
        if self._sasl != "started":
            return
        name = self._mechanism.name if self._mechanism is not None else "?"
        self.log.warn(
            "{source}: SASL {mechanism} login failed ({why})",
            source=self.source.name,
            mechanism=name,
            why=_SASL_FAILURES.get(numeric, "unknown reason"),
        )
        if numeric in ("904", "905", "908") and self._mechanisms:
            self._next_mechanism()
            return
        self._sasl_gave_up(_SASL_FAILURES.get(numeric, "unknown reason"))

    def _sasl_gave_up(self, why: str) -> None:
        self._sasl = "failed"
        if self.source.sasl_required:
            self.log.error(
                "{source}: SASL login failed ({why}) and sasl_required is set: not "
                "continuing without it; disconnecting",
                source=self.source.name,
                why=why,
            )
            self.drop("SASL failed (sasl_required)")
            return
        self.log.warn(
            "{source}: SASL login failed ({why}); continuing without it",
            source=self.source.name,
            why=why,
        )
        self._end_caps()

    def irc_902(self, prefix: str, params: list[str]) -> None:
        self._sasl_failed(prefix, params, "902")

    def irc_904(self, prefix: str, params: list[str]) -> None:
        self._sasl_failed(prefix, params, "904")

    def irc_905(self, prefix: str, params: list[str]) -> None:
        self._sasl_failed(prefix, params, "905")

    def irc_906(self, prefix: str, params: list[str]) -> None:
        self._sasl_failed(prefix, params, "906")

    def irc_908(self, prefix: str, params: list[str]) -> None:
        """RPL_SASLMECHS: the mechanisms the server has (others are not tried)."""
        if len(params) > 2:
            offered = {m.upper() for m in params[1].split(",") if m}
            if self._mechanisms is not None:
                self._mechanisms = [m for m in self._mechanisms if m in offered]

    def irc_907(self, prefix: str, params: list[str]) -> None:
        """ERR_SASLALREADY: already logged in."""
        self._sasl = "done"
        self._end_caps()

    def _request_caps(self, new: bool) -> None:
        wanted = [cap for cap in WANTED_CAPS if cap in self._offered and cap not in self.caps]
        if (
            "sasl" in self._offered
            and "sasl" not in self.caps
            and not self.registered
            and self._sasl is None
            and self._sasl_wanted()
        ):
            wanted.append("sasl")
        elif not self.registered and self.source.sasl_required and self._sasl is None:
            self._sasl_gave_up("the server offers no SASL mechanism the bot can use")
            return
        if wanted:
            self._request(" ".join(wanted))
        elif not new:
            self._end_caps()

    def _request(self, caps: str) -> None:
        self._requests += 1
        self.send_raw("CAP", "REQ", trailing=caps)

    def _end_caps(self) -> None:
        """End negotiation (CAP END) once no request is unanswered and SASL is done."""
        if self._requests > 0:
            return
        if not self._cap_done and not self.registered and self._sasl != "started":
            self._cap_done = True
            self.send_raw("CAP", "END")

    def irc_ERR_PASSWDMISMATCH(self, prefix: str, params: list[str]) -> None:
        self.log.error(
            "{source}: {server} refused the server password",
            source=self.source.name,
            server=self.server,
        )

    def _alternatives(self):
        wanted = self.source.wanted_nick
        yield from self.source.alt_nicks
        yield wanted + "_"
        yield wanted + "__"
        for n in count(1):
            yield f"{wanted[:12]}{n}"

    def _collided(self, prefix: str, params: list[str]) -> None:
        if self.registered:
            refused = params[1] if len(params) > 1 else "?"
            self.log.info(
                "{source}: cannot take the nick {nick}: {why}",
                source=self.source.name,
                nick=refused,
                why=params[-1] if params else "refused",
            )
            return
        self.nickname = next(self._attempts)
        self._attemptedNick = self.nickname
        self.send_raw("NICK", self.nickname)

    def irc_ERR_NICKNAMEINUSE(self, prefix: str, params: list[str]) -> None:
        self._collided(prefix, params)

    def irc_ERR_ERRONEUSNICKNAME(self, prefix: str, params: list[str]) -> None:
        self._collided(prefix, params)

    def irc_ERR_NICKCOLLISION(self, prefix: str, params: list[str]) -> None:
        self._collided(prefix, params)

    def irc_ERR_UNAVAILRESOURCE(self, prefix: str, params: list[str]) -> None:
        if len(params) > 1 and self.is_channel(params[1]):
            self._join_failed(prefix, params, "the channel is temporarily unavailable")
        else:
            self._collided(prefix, params)

    def irc_RPL_WELCOME(self, prefix: str, params: list[str]) -> None:
        if self.registered:
            return
        self.registered = self._registered = True
        self._cap_done = True
        self.hostname = prefix or self.server
        if params and params[0] != "*" and self._possible_nick(params[0]):
            self.nickname = params[0]
        self.own.nick = self.nickname
        words = params[-1].split() if params else []
        if words and "!" in words[-1] and "@" in words[-1]:
            self._learn_own(Mask.parse(words[-1]))
        if self._register_deadline is not None and self._register_deadline.active():
            self._register_deadline.cancel()
        self._register_deadline = None
        if self.source.sasl_required and self._sasl != "done":
            self.registered = False
            self.log.error(
                "{source}: registered without a SASL login and sasl_required is set; "
                "disconnecting",
                source=self.source.name,
            )
            self.send_raw("QUIT", trailing="SASL required")
            self.drop("no SASL login (sasl_required)")
            return
        self.connected_at = self.clock.seconds()
        self.signedOn()

    def signedOn(self) -> None:
        """Registered: identify to NickServ if SASL did not log in, learn the bot's own
        mask, join the channels, start the keepalive and (if needed) nick regain."""
        source = self.source
        if source.account_password and self._sasl != "done" and source.nickserv:
            account = source.account or source.wanted_nick
            self.message(
                "PRIVMSG", source.nickserv, f"IDENTIFY {account} {source.account_password}"
            )
        if not self.own.host:
            self.send_raw("USERHOST", self.nickname)
        for name, key in source.wanted_channels():
            self.send_join(name, key)
        self._keepalive = LoopingCall(self._check_alive)
        self._keepalive.clock = self.clock
        self._keepalive.start(source.ping_interval, now=False)
        self._update_regain()
        source.signed_on(self)

    def isupport(self, options: list[str]) -> None:
        mapping = self.supported.getFeature("CASEMAPPING")
        if mapping:
            self.casemapping = str(mapping[0]).lower()
            self.source.casemapping = self.casemapping
        for option in options:
            key, _, value = option.partition("=")
            if key == "CLIENTTAGDENY":
                self.clienttagdeny = [item for item in value.split(",") if item]
            elif key == "-CLIENTTAGDENY":
                self.clienttagdeny = []
        self.source.chantypes = self.chantypes()
        self.source.update_supports(self)

    def tag_allowed(self, name: str) -> bool:
        """Whether the server relays the client tag ``+name`` (message-tags negotiated,
        and not refused by CLIENTTAGDENY)."""
        if "message-tags" not in self.caps:
            return False
        deny = self.clienttagdeny
        if f"-{name}" in deny:
            return True
        return "*" not in deny and name not in deny

    def _learn_own(self, mask: Mask) -> None:
        if mask.user:
            self.own.user = mask.user
        if mask.host:
            self.own.host = mask.host

    def irc_RPL_USERHOST(self, prefix: str, params: list[str]) -> None:
        for entry in params[-1].split() if params else []:
            nick, _, address = entry.partition("=")
            if self.fold(nick.rstrip("*")) == self.fold(self.nickname):
                user, _, host = address[1:].partition("@")
                self._learn_own(Mask(self.nickname, user, host))

    def irc_396(self, prefix: str, params: list[str]) -> None:
        """RPL_VISIBLEHOST: the host the server now shows for the bot."""
        if len(params) > 1:
            user, _, host = params[1].rpartition("@")
            self._learn_own(Mask(self.nickname, user, host))

    def irc_CHGHOST(self, prefix: str, params: list[str]) -> None:
        """chghost: someone's user name or host changed (a state event ``chghost`` with
        the old mask; the bot's own is learnt for the length of its lines)."""
        mask = Mask.parse(prefix)
        if len(params) < 2 or not mask.nick:
            return
        if self.is_me(mask.nick):
            self._learn_own(Mask(mask.nick, params[0], params[1]))
            return
        user = self.users.get(self.fold(mask.nick))
        old = str(Mask(mask.nick, user.user, user.host)) if user is not None else str(mask)
        if user is not None:
            user.user, user.host = params[0], params[1]
        self._state(
            str(Mask(mask.nick, params[0], params[1])),
            "chghost",
            old=old,
            user=params[0],
            host=params[1],
        )

    # -- keepalive and nick regain --------------------------------------------------------

    def irc_PING(self, prefix: str, params: list[str]) -> None:
        self.send_raw("PONG", trailing=params[-1] if params else self.hostname or "")

    def irc_PONG(self, prefix: str, params: list[str]) -> None:
        """Any data counts as a reply to our keepalive (see dataReceived)."""

    def _check_alive(self) -> None:
        if self._pong_deadline is not None or self.paused:
            return  # paused: the bot is not reading, the server may well be talking
        idle = self.clock.seconds() - self._last_received
        if idle < self.source.ping_interval * 0.9:
            return
        self.send_raw("PING", trailing="botcore")
        self._pong_deadline = self.clock.callLater(self.source.ping_timeout, self._pong_timed_out)

    def _pong_timed_out(self) -> None:
        self._pong_deadline = None
        if self.paused:
            # The answer may be waiting unread: wait again once reading resumes.
            self._pong_deadline = self.clock.callLater(
                self.source.ping_timeout, self._pong_timed_out
            )
            return
        self.timed_out = True
        self.log.warn(
            "{source}: no reply from {server} for {timeout}s after a PING; reconnecting",
            source=self.source.name,
            server=self.server,
            timeout=self.source.ping_timeout,
        )
        self.drop("ping timeout")

    def _update_regain(self) -> None:
        """Watch for the wanted nick to come free while the bot goes by another."""
        has_wanted = self.is_me(self.source.wanted_nick)
        if has_wanted or not self.registered:
            if self._regain is not None and self._regain.running:
                self._regain.stop()
            self._regain = None
            return
        if self._regain is None and self.source.regain_interval > 0:
            self._regain = LoopingCall(self._try_regain)
            self._regain.clock = self.clock
            self._regain.start(self.source.regain_interval, now=False)

    def _try_regain(self) -> None:
        self.send_raw("ISON", self.source.wanted_nick)

    def irc_RPL_ISON(self, prefix: str, params: list[str]) -> None:
        wanted = self.fold(self.source.wanted_nick)
        online = {self.fold(nick) for nick in (params[-1].split() if len(params) > 1 else [])}
        if wanted not in online and not self.is_me(self.source.wanted_nick):
            self.regain_now()

    def regain_now(self) -> None:
        """Ask for the wanted nick (it seems to be free)."""
        if self.registered and not self.is_me(self.source.wanted_nick):
            self.send_raw("NICK", self.source.wanted_nick)

    # -- names ----------------------------------------------------------------------------

    def fold(self, name: str) -> str:
        """A nick or channel as the server compares them."""
        return irc_lower(name, self.casemapping)

    def is_me(self, nick: str) -> bool:
        return irc_lower(nick, self._casemapping) == self._folded_nick

    def chantypes(self) -> str:
        """The characters channel names start with on this server: ISUPPORT's CHANTYPES,
        or `DEFAULT_CHANTYPES` when the server did not say."""
        return "".join(self.supported.getFeature("CHANTYPES") or ()) or DEFAULT_CHANTYPES

    def is_channel(self, target: str) -> bool:
        return bool(target) and target[0] in self.chantypes()

    def _prefixes(self) -> dict[str, tuple[str, int]]:
        return self.supported.getFeature("PREFIX") or {}

    def _user(self, mask: Mask, folded: str | None = None) -> User:
        """The tracked user for ``mask`` (updated from it), or a fresh untracked one;
        ``folded`` is its nick folded, when the caller has it already."""
        return self._user_of(mask.nick, mask.user, mask.host, folded)

    def _user_of(self, nick: str, name: str, host: str, folded: str | None = None) -> User:
        user = self.users.get(self.fold(nick) if folded is None else folded)
        if user is None:
            user = User(nick, name, host)
        elif name or host:
            # Only when it changed: `User.mask` is remade when its parts are.
            if name and name != user.user:
                user.user = name
            if host and host != user.host:
                user.host = host
        account = self._tags.get("account")
        if account:
            user.account = account
        return user

    def sender(self, user: User, folded: str | None = None) -> tuple[Sender, dict[str, Any]]:
        """The event sender for ``user`` and the details for ``event.data``: the stable id
        is the services account when the server vouches for it, otherwise the full mask.
        The sender's connection is the session the bot follows a user in a shared channel
        by (an authentication lasts for it); for anyone else, whose quit the bot would not
        see, it is their user@host, for counting failed attempts only
        (``connection_followed`` False: nothing is remembered for it)."""
        account = self._tags.get("account") or (
            user.account if "account-notify" in self.caps else None
        )
        followed = self.users.get(self.fold(user.nick) if folded is None else folded) is user
        mask = user.mask
        last = user._sender
        if last is not None and last[0] == (followed, account, mask):
            sender = last[1]
        else:
            if followed:
                connection = f"{self.source.name}/{user.session}"
            else:
                connection = f"{self.source.name}/{user.user}@{user.host}"
            sender = Sender(connection, account or mask, user.nick)
            user._sender = ((followed, account, mask), sender)
        details = {"mask": mask, "account": account, "connection_followed": followed}
        return sender, details

    def _forget_if_unseen(self, nick: str) -> None:
        folded = self.fold(nick)
        if not any(folded in channel.members for channel in self.channels.values()):
            self.users.pop(folded, None)

    # -- events -----------------------------------------------------------------------------

    def _event(
        self,
        type: str,
        user: User | None,
        channel: str | None,
        folded: str | None = None,
        **kw: Any,
    ) -> Event:
        data = kw.pop("data", None)
        sender = None
        if user is not None:
            sender, details = self.sender(user, folded)
            data = {**details, **data} if data else details
        elif data is None:
            data = {}
        if "message_id" not in kw:
            kw["message_id"] = self._tags.get("msgid") or None
        return Event(
            source=self.source.name,
            type=type,
            sender=sender,
            channel=channel,
            time=self._time(),
            data=data,
            **kw,
        )

    def _time(self) -> datetime:
        """When the current line happened: its ``time`` tag (server-time), else now
        (made once for all the lines of one read, `_now`)."""
        stamp = self._tags.get("time")
        if stamp:
            with suppress(ValueError):
                parsed = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
                if parsed.tzinfo is not None:
                    return parsed.astimezone(UTC)
        return self._now()

    def _now(self) -> datetime:
        """Now, as the clock says; the same value for every line of one read (they
        arrived together), so that a burst makes one datetime, not one a line."""
        seconds = self._reading_at
        if seconds is None:
            seconds = self.clock.seconds()
        last = self._last_now
        if last is None or last[0] != seconds:
            last = self._last_now = (seconds, datetime.fromtimestamp(seconds, UTC))
        return last[1]

    def _reply_tag(self, tags: dict[str, str]) -> str | None:
        return tags.get("+draft/reply") or tags.get("+reply") or None

    def _emit(self, event: Event) -> None:
        """Hand ``event`` to the source, unless the current line is part of a batch: one
        event for a netsplit or netjoin, none for replayed history."""
        batch = self._batch
        if batch is not None:
            if batch.within(*GROUPED_BATCHES):
                while batch.parent is not None and batch.type not in GROUPED_BATCHES:
                    batch = batch.parent
                batch.count += 1
                if len(batch.events) < BATCH_LIMIT:
                    batch.events.append(event)
                return
            if batch.within(*HISTORY_BATCHES):
                return  # history is not news: never processed as new messages
        self.source.emit(event)

    def _source_event(self, state: str, **data: Any) -> None:
        event = Event(
            source=self.source.name,
            type=EventType.SOURCE,
            channel=data.get("channel"),
            time=self._now(),
            data={"state": state, **data},
        )
        self.source.emit(event)

    def _channel_name(self, name: str) -> str:
        channel = self.channels.get(self.fold(name))
        return channel.name if channel is not None else name

    def irc_PRIVMSG(self, prefix: str, params: list[str]) -> None:
        self._message(EventType.MESSAGE, prefix, params)

    def irc_NOTICE(self, prefix: str, params: list[str]) -> None:
        self._message(EventType.NOTICE, prefix, params)

    def _message(self, type: str, prefix: str, params: list[str]) -> None:
        # The hot path (every line said where the bot is): the prefix split once, the
        # sender's nick folded once, no Mask made.
        if len(params) < 2 or not prefix:
            return
        nick, name, host = split_prefix(prefix)
        if not nick or (not name and not host and "." in nick):
            return  # a server's notice (as Mask.is_server)
        folded = irc_lower(nick, self._casemapping)
        if folded == self._folded_nick:
            # echo-message: the bot's own message as the server relayed it.
            self._echoed(params[0], params[-1])
            return
        target, text = params[0], params[-1]
        statusmsg = self.supported.getFeature("STATUSMSG") or ""
        public_target = target.lstrip(statusmsg) if statusmsg else target
        public = self.is_channel(public_target)
        if not public and not self.is_me(target):
            return  # e.g. a server notice to "*" or "$$*"
        user = self._user_of(nick, name, host, folded)
        if text.startswith("\x01"):
            body = text[1:-1] if text.endswith("\x01") else text[1:]
            tag, _, data = body.partition(" ")
            tag = tag.upper()
            if tag != "ACTION":
                if type == EventType.MESSAGE:
                    self.ctcp_query(user, tag, data)
                return
            type, text = (EventType.ACTION if type == EventType.MESSAGE else type), data
        if not text:
            return
        channel = self._channel_name(public_target) if public else user.nick
        event = self._event(
            type,
            user,
            channel,
            folded,
            public=public,
            addressed=not public,
            message=Message(text),
            reply_to=self._reply_tag(self._tags),
        )
        self._emit(event)

    def irc_TAGMSG(self, prefix: str, params: list[str]) -> None:
        """A message of tags only: a reaction (``+draft/react`` with ``+draft/reply``)
        becomes a reaction event; typing notifications and the like are ignored."""
        if not params or not prefix:
            return
        mask = Mask.parse(prefix)
        if mask.is_server or not mask.nick or self.is_me(mask.nick):
            if mask.nick and self.is_me(mask.nick):
                self._echoed(params[0], None)
            return
        key = self._tags.get("+draft/react") or self._tags.get("+react")
        refers = self._reply_tag(self._tags)
        if not key or not refers:
            return
        target = params[0]
        public = self.is_channel(target)
        if not public and not self.is_me(target):
            return
        user = self._user(mask)
        channel = self._channel_name(target) if public else user.nick
        self._emit(
            self._event(
                EventType.REACTION,
                user,
                channel,
                public=public,
                refers_to=refers,
                reaction=clean_text(key)[:64],
            )
        )

    # -- what the bot sent: echoes and labels ----------------------------------------------

    def _expect_echo(self, response: Response, target: str, text: str) -> dict[str, str]:
        """Note that ``response`` went out (its first line ``text``) so that its echo
        gives the network's id of it; the tags to send with it (a label)."""
        if "echo-message" not in self.caps:
            return {}
        if "labeled-response" in self.caps:
            label = f"bc{next(self._label_ids)}"
            self._labels[label] = response
            while len(self._labels) > ECHO_MEMORY:
                self._labels.popitem(last=False)
            return {"label": label}
        key = self.fold(target)
        waiting = self._unlabelled.get(key)
        if waiting is None:
            waiting = self._unlabelled[key] = deque(maxlen=ECHO_MEMORY)
            while len(self._unlabelled) > ECHO_MEMORY:
                self._unlabelled.popitem(last=False)
        waiting.append((text, response))
        return {}

    def _echoed(self, target: str, text: str | None, tags: dict[str, str] | None = None) -> None:
        """The server relayed the bot's own message back (echo-message): it was sent, and
        its ``msgid`` is the network's id of it. Never processed as someone's message."""
        tags = self._tags if tags is None else tags
        label = tags.get("label") or (self._batch.label if self._batch is not None else None)
        response = self._labels.pop(label, None) if label else None
        if response is None and text is not None and not label:
            waiting = self._unlabelled.get(self.fold(target))
            if waiting:
                for index, (sent, candidate) in enumerate(waiting):
                    if sent == text:
                        response = candidate
                        del waiting[index]
                        break
        msgid = tags.get("msgid")
        if response is not None and msgid:
            self.source.remember_sent(response, msgid)

    def irc_ACK(self, prefix: str, params: list[str]) -> None:
        """labeled-response: the server processed a labelled command and has nothing to
        say (no echo will come for it)."""
        label = self._tags.get("label")
        if label:
            self._labels.pop(label, None)

    # -- batches ------------------------------------------------------------------------------

    def irc_BATCH(self, prefix: str, params: list[str]) -> None:
        if not params or len(params[0]) < 2:
            return
        sign, reference = params[0][0], params[0][1:]
        if sign == "+":
            if len(params) < 2:
                return
            parent = self._batch
            self._batches[reference] = Batch(
                reference,
                params[1].lower(),
                params[2:],
                label=self._tags.get("label") or (parent.label if parent else None),
                parent=parent,
                tags=dict(self._tags),
                prefix=prefix,
            )
            while len(self._batches) > ECHO_MEMORY:
                self._batches.pop(next(iter(self._batches)))
            return
        batch = self._batches.pop(reference, None)
        if sign != "-" or batch is None:
            return
        if batch.type in GROUPED_BATCHES:
            self._grouped(batch)
        elif batch.type == "draft/multiline":
            self._multiline_received(batch)
        elif batch.type == "labeled-response" and batch.label:
            self._labels.pop(batch.label, None)

    def _grouped(self, batch: Batch) -> None:
        """A netsplit or netjoin: one state event for everyone it concerns."""
        self._batch = batch.parent
        nicks = [e.sender.nick for e in batch.events if e.sender is not None]
        channels = sorted(
            {e.channel for e in batch.events if e.channel}
            | {c for e in batch.events for c in e.data.get("channels", ())}
        )
        self._emit(
            Event(
                source=self.source.name,
                type=EventType.STATE,
                time=self._time(),
                data={
                    "kind": batch.type,
                    "servers": list(batch.params),
                    "nicks": nicks,
                    "channels": channels,
                    "count": batch.count,
                },
            )
        )

    def _multiline_received(self, batch: Batch) -> None:
        """draft/multiline: the batch's lines are one message (lines tagged
        ``draft/multiline-concat`` continue the previous one)."""
        if not batch.params or not batch.prefix or not batch.lines:
            return
        text = ""
        for index, (tags, line) in enumerate(batch.lines):
            if index and "draft/multiline-concat" not in tags:
                text += "\n"
            text += line
        self._tags, self._batch = batch.tags, batch.parent
        mask = Mask.parse(batch.prefix)
        if self.is_me(mask.nick):
            self._echoed(batch.params[0], batch.lines[0][1], batch.tags)
            return
        self._message(EventType.MESSAGE, batch.prefix, [batch.params[0], text])

    # -- standard replies -----------------------------------------------------------------------

    def _standard_reply(self, kind: str, params: list[str]) -> None:
        if len(params) < 2:
            return
        command, code = params[0], params[1]
        context = params[2:-1]
        description = params[-1] if len(params) > 2 else ""
        level = LogLevel.info if kind == "NOTE" else LogLevel.warn
        self.log.emit(
            level,
            "{source}: {kind} {command} {code}{context}: {description}",
            source=self.source.name,
            kind=kind,
            command=command,
            code=code,
            context=" (" + " ".join(context) + ")" if context else "",
            description=clean_text(description),
        )

    def irc_FAIL(self, prefix: str, params: list[str]) -> None:
        self._standard_reply("FAIL", params)

    def irc_WARN(self, prefix: str, params: list[str]) -> None:
        self._standard_reply("WARN", params)

    def irc_NOTE(self, prefix: str, params: list[str]) -> None:
        self._standard_reply("NOTE", params)

    # -- others' state: away, real name, host ----------------------------------------------

    def _state(self, prefix: str, kind: str, **data: Any) -> User | None:
        """A state event of ``kind`` about the sender of the current line (None when it is
        the bot, a server, or no one)."""
        if not prefix:
            return None
        mask = Mask.parse(prefix)
        if mask.is_server or not mask.nick or self.is_me(mask.nick):
            return None
        user = self._user(mask)
        channels = [c.name for c in self.channels.values() if self.fold(mask.nick) in c.members]
        self._emit(
            self._event(
                EventType.STATE, user, None, data={"kind": kind, "channels": channels, **data}
            )
        )
        return user

    def irc_AWAY(self, prefix: str, params: list[str]) -> None:
        """away-notify: someone went away (with a message) or came back."""
        message = params[-1] if params else ""
        self._state(prefix, "away", away=bool(message), message=clean_text(message))

    def irc_SETNAME(self, prefix: str, params: list[str]) -> None:
        """setname: someone changed their real name."""
        if params:
            self._state(prefix, "setname", realname=clean_text(params[-1]))

    def ctcp_query(self, user: User, tag: str, data: str) -> None:
        """Answer CTCP VERSION, PING, TIME, SOURCE and CLIENTINFO (a few at a time, so a
        CTCP flood cannot fill the outgoing queue); ignore the others."""
        if tag not in CTCP_ANSWERED or not self._ctcp.take():
            return
        if tag == "VERSION":
            python = ".".join(map(str, sys.version_info[:3]))
            answer = f"botcore {self.source.version} (Twisted {twisted_version}, Python {python})"
        elif tag == "PING":
            answer = clean_text(data)[:64]
        elif tag == "TIME":
            now = datetime.fromtimestamp(self.clock.seconds(), UTC)
            answer = now.strftime("%a, %d %b %Y %H:%M:%S +0000")
        elif tag == "SOURCE":
            answer = self.source.source_url
        else:
            answer = " ".join(CTCP_ANSWERED)
        text = f"\x01{tag} {answer}\x01" if answer else f"\x01{tag}\x01"
        self.queue.put(encode_line("NOTICE", user.nick, trailing=text), self.fold(user.nick))

    def irc_INVITE(self, prefix: str, params: list[str]) -> None:
        if len(params) < 2 or not prefix:
            return
        mask = Mask.parse(prefix)
        channel = params[1]
        if not self.is_me(params[0]):
            # invite-notify: someone else was invited to a channel the bot is in.
            if self.fold(channel) in self.channels and not self.is_me(mask.nick):
                user = self._user(mask)
                self._emit(
                    self._event(
                        EventType.STATE,
                        user,
                        self._channel_name(channel),
                        public=True,
                        data={"kind": "invite", "invited": params[0]},
                    )
                )
            return
        user = self._user(mask)
        event = self._event(
            EventType.INVITE,
            user,
            user.nick,
            public=False,
            addressed=True,
            data={"channel": channel},
        )
        self._emit(event)
        self.source.invited(channel, user.nick)

    # -- channels and members -----------------------------------------------------------------

    def cancel_rejoin(self, name: str) -> None:
        """Forget a pending rejoin of channel ``name`` (joined again, or left on purpose)."""
        timer = self._rejoins.pop(self.fold(name), None)
        if timer is not None and timer.active():
            timer.cancel()

    def send_join(self, name: str, key: str | None = None) -> None:
        self.cancel_rejoin(name)
        if key:
            self.send_raw("JOIN", name, key)
        else:
            self.send_raw("JOIN", name)

    def irc_JOIN(self, prefix: str, params: list[str]) -> None:
        if not params or not prefix:
            return
        mask = Mask.parse(prefix)
        name = params[0]
        folded = self.fold(name)
        if self.is_me(mask.nick):
            self._learn_own(mask)
            self.channels[folded] = Channel(name)
            self.cancel_rejoin(name)
            if self.supported.hasFeature("WHOX") and "account-notify" in self.caps:
                self.send_raw("WHO", name, f"%tcuhnfa,{WHOX_TOKEN}")
            self._source_event("joined", channel=name)
            return
        channel = self.channels.get(folded)
        user = self._user(mask)
        if "extended-join" in self.caps and len(params) > 1:
            user.account = None if params[1] == "*" else params[1]
        self.users[self.fold(user.nick)] = user
        if channel is not None:
            channel.members[self.fold(user.nick)] = [user.nick, ""]
        self._emit(
            self._event(
                EventType.STATE,
                user,
                self._channel_name(name),
                public=True,
                data={"kind": "join"},
            )
        )

    def irc_PART(self, prefix: str, params: list[str]) -> None:
        if not params or not prefix:
            return
        mask = Mask.parse(prefix)
        name = self._channel_name(params[0])
        reason = params[1] if len(params) > 1 else ""
        if self.is_me(mask.nick):
            self._left(name)
            self._source_event("left", channel=name, reason="part", message=reason)
            return
        user = self._user(mask)
        channel = self.channels.get(self.fold(name))
        if channel is not None:
            channel.members.pop(self.fold(mask.nick), None)
        self._forget_if_unseen(mask.nick)
        self._emit(
            self._event(
                EventType.STATE, user, name, public=True, data={"kind": "part", "message": reason}
            )
        )

    def _left(self, name: str) -> None:
        channel = self.channels.pop(self.fold(name), None)
        if channel is None:
            return
        for folded in channel.members:
            self._forget_if_unseen(folded)

    def irc_KICK(self, prefix: str, params: list[str]) -> None:
        if len(params) < 2 or not prefix:
            return
        mask = Mask.parse(prefix)
        name = self._channel_name(params[0])
        kicked = params[1]
        reason = params[2] if len(params) > 2 else ""
        if self.is_me(kicked):
            self._left(name)
            self._source_event("left", channel=name, reason="kick", by=mask.nick, message=reason)
            self.log.info(
                "{source}: kicked from {channel} by {by} ({reason})",
                source=self.source.name,
                channel=name,
                by=mask.nick,
                reason=reason,
            )
            if self.source.wants_channel(name):
                self._schedule_rejoin(name)
            return
        user = self._user(mask)
        channel = self.channels.get(self.fold(name))
        if channel is not None:
            channel.members.pop(self.fold(kicked), None)
        self._forget_if_unseen(kicked)
        self._emit(
            self._event(
                EventType.STATE,
                user,
                name,
                public=True,
                data={"kind": "kick", "kicked": kicked, "message": reason},
            )
        )

    def _schedule_rejoin(self, name: str) -> None:
        folded = self.fold(name)
        self.cancel_rejoin(name)

        def rejoin() -> None:
            self._rejoins.pop(folded, None)
            key = self.source.channel_key(name)
            if self.source.wants_channel(name):
                self.send_join(name, key)

        self._rejoins[folded] = self.clock.callLater(self.source.rejoin_delay, rejoin)

    def irc_QUIT(self, prefix: str, params: list[str]) -> None:
        if not prefix:
            return
        mask = Mask.parse(prefix)
        if self.is_me(mask.nick):
            return
        folded = self.fold(mask.nick)
        user = self._user(mask)
        channels = []
        for channel in self.channels.values():
            if channel.members.pop(folded, None) is not None:
                channels.append(channel.name)
        self.users.pop(folded, None)
        self._emit(
            self._event(
                EventType.STATE,
                user,
                None,
                data={
                    "kind": "quit",
                    "message": params[-1] if params else "",
                    "channels": channels,
                },
            )
        )
        if folded == self.fold(self.source.wanted_nick):
            self.regain_now()

    def irc_NICK(self, prefix: str, params: list[str]) -> None:
        if not params or not prefix:
            return
        mask = Mask.parse(prefix)
        new = params[-1]
        if not self._possible_nick(new):
            # Taken as it is, an empty nick would make the bot deaf to its private
            # messages (nothing is addressed to ""), so the change is not believed.
            self.log.warn(
                "{source}: ignored a NICK change of {nick!r} to the impossible {new!r}",
                source=self.source.name,
                nick=mask.nick,
                new=new,
            )
            return
        old_folded, new_folded = self.fold(mask.nick), self.fold(new)
        if self.is_me(mask.nick):
            old = self.nickname
            self.nickname = self._attemptedNick = self.own.nick = new
            self._learn_own(mask)
            self.source.nick_changed(self, old, new)
            self._update_regain()
            return
        user = self._user(mask)
        self.users.pop(old_folded, None)
        user.nick = new
        channels = []
        for channel in self.channels.values():
            entry = channel.members.pop(old_folded, None)
            if entry is not None:
                entry[0] = new
                channel.members[new_folded] = entry
                channels.append(channel.name)
        if channels:
            self.users[new_folded] = user
        self._emit(
            self._event(
                EventType.STATE,
                User(mask.nick, user.user, user.host, user.account),
                None,
                data={"kind": "nick", "old": mask.nick, "new": new, "channels": channels},
            )
        )
        if old_folded == self.fold(self.source.wanted_nick):
            self.regain_now()

    def _possible_nick(self, nick: str) -> bool:
        """Whether ``nick`` could be someone's nick: not empty, not a channel, none of the
        characters that separate or end words or masks."""
        return (
            bool(nick)
            and not self.is_channel(nick)
            and nick[0] not in ":$"
            and not any(c in nick for c in " ,!@*?\0\r\n")
        )

    def irc_ACCOUNT(self, prefix: str, params: list[str]) -> None:
        """account-notify: someone logged in to (or out of) a services account."""
        if not params or not prefix:
            return
        mask = Mask.parse(prefix)
        user = self.users.get(self.fold(mask.nick))
        account = None if params[0] == "*" else params[0]
        if user is not None:
            user.account = account
            self._state(prefix, "account", account=account)

    def irc_RPL_NAMREPLY(self, prefix: str, params: list[str]) -> None:
        if len(params) < 3:
            return
        channel = self.channels.get(self.fold(params[-2]))
        if channel is None:
            return
        if channel._names is None:
            channel._names = {}
        symbols = {symbol: mode for mode, (symbol, _) in self._prefixes().items()}
        for entry in params[-1].split():
            modes = ""
            while entry and entry[0] in symbols:
                modes += symbols[entry[0]]
                entry = entry[1:]
            if not entry:
                continue
            mask = Mask.parse(entry)
            folded = self.fold(mask.nick)
            channel._names[folded] = [mask.nick, modes]
            user = self.users.get(folded)
            if user is None:
                self.users[folded] = User(mask.nick, mask.user, mask.host)
            elif mask.user:
                user.user, user.host = mask.user, mask.host

    def irc_RPL_ENDOFNAMES(self, prefix: str, params: list[str]) -> None:
        if len(params) < 2:
            return
        channel = self.channels.get(self.fold(params[1]))
        if channel is not None and channel._names is not None:
            channel.members, channel._names = channel._names, None

    def irc_354(self, prefix: str, params: list[str]) -> None:
        """RPL_WHOSPCRPL for our WHOX query: token, channel, user, host, nick, flags,
        account (``0`` when not logged in)."""
        if len(params) < 8 or params[1] != WHOX_TOKEN:
            return
        user = self.users.get(self.fold(params[5]))
        if user is not None:
            user.user, user.host = params[3], params[4]
            user.account = None if params[7] == "0" else params[7]

    def irc_330(self, prefix: str, params: list[str]) -> None:
        """RPL_WHOISACCOUNT: nick, account."""
        if len(params) < 3:
            return
        folded = self.fold(params[1])
        user = self.users.get(folded)
        if user is not None:
            user.account = params[2]
        pending = self._whois.get(folded)
        if pending is not None:
            pending[1].append(params[2])

    def lookup_account(self, nick: str, timeout: float = 10.0) -> Deferred[str | None]:
        """Ask the server (WHOIS) which services account ``nick`` is logged in to. Fires
        with the account, or None when not logged in, gone, or no answer in ``timeout``
        seconds."""
        folded = self.fold(nick)
        pending = self._whois.get(folded)
        d: Deferred[str | None] = Deferred()
        if pending is None:
            timer = self.clock.callLater(timeout, self._whois_done, folded)
            self._whois[folded] = ([d], [], timer)
            self.send_raw("WHOIS", nick)
        else:
            pending[0].append(d)
        return d

    def _whois_done(self, folded: str) -> None:
        pending = self._whois.pop(folded, None)
        if pending is None:
            return
        waiters, found, timer = pending
        if timer.active():
            timer.cancel()
        for d in waiters:
            d.callback(found[-1] if found else None)

    def irc_RPL_ENDOFWHOIS(self, prefix: str, params: list[str]) -> None:
        if len(params) > 1:
            self._whois_done(self.fold(params[1]))

    def irc_ERR_NOSUCHNICK(self, prefix: str, params: list[str]) -> None:
        if len(params) > 1:
            self._whois_done(self.fold(params[1]))

    def irc_MODE(self, prefix: str, params: list[str]) -> None:
        if len(params) < 2:
            return
        channel = self.channels.get(self.fold(params[0]))
        if channel is None:
            return  # user modes, or a channel the bot is not in
        prefixes = self._prefixes()
        takes_param = self.getChannelModeParams()
        arguments = list(params[2:])
        adding = True
        for char in params[1]:
            if char in "+-":
                adding = char == "+"
                continue
            argument = None
            if char in takes_param[0 if adding else 1]:
                if not arguments:
                    break
                argument = arguments.pop(0)
            if char in prefixes and argument is not None:
                entry = channel.members.get(self.fold(argument))
                if entry is None:
                    continue
                if adding and char not in entry[1]:
                    entry[1] += char
                elif not adding:
                    entry[1] = entry[1].replace(char, "")

    def members(self, name: str) -> dict[str, str]:
        """Who is in channel ``name``: nick -> prefix symbols (``@``, ``+``, ...), highest
        first."""
        channel = self.channels.get(self.fold(name))
        if channel is None:
            return {}
        prefixes = self._prefixes()
        result = {}
        for nick, modes in channel.members.values():
            ranked = sorted((prefixes[m][1], prefixes[m][0]) for m in modes if m in prefixes)
            result[nick] = "".join(symbol for _, symbol in ranked)
        return result

    def _join_failed(self, prefix: str, params: list[str], why: str) -> None:
        name = params[1] if len(params) > 1 else "?"
        self.log.warn(
            "{source}: cannot join {channel}: {why}",
            source=self.source.name,
            channel=name,
            why=why,
        )

    def irc_ERROR(self, prefix: str, params: list[str]) -> None:
        self.lost_reason = params[-1] if params else "ERROR from the server"
        self.log.info(
            "{source}: the server closes the link: {why}",
            source=self.source.name,
            why=self.lost_reason,
        )

    def irc_ERR_NOCHANMODES(self, prefix: str, params: list[str]) -> None:
        self._join_failed(prefix, params, "the channel needs a registered nick")

    def irc_ERR_NOSUCHCHANNEL(self, prefix: str, params: list[str]) -> None:
        self._join_failed(prefix, params, "no such channel")

    def irc_ERR_TOOMANYCHANNELS(self, prefix: str, params: list[str]) -> None:
        self._join_failed(prefix, params, "joined too many channels")

    def irc_ERR_CHANNELISFULL(self, prefix: str, params: list[str]) -> None:
        self._join_failed(prefix, params, "the channel is full")

    def irc_ERR_INVITEONLYCHAN(self, prefix: str, params: list[str]) -> None:
        self._join_failed(prefix, params, "the channel is invite-only")

    def irc_ERR_BANNEDFROMCHAN(self, prefix: str, params: list[str]) -> None:
        self._join_failed(prefix, params, "the bot is banned")

    def irc_ERR_BADCHANNELKEY(self, prefix: str, params: list[str]) -> None:
        self._join_failed(prefix, params, "wrong channel key")

    # IRCClient callbacks the source does not use (it works from the irc_* handlers).
    def irc_TOPIC(self, prefix: str, params: list[str]) -> None:
        channel = self.channels.get(self.fold(params[0])) if params else None
        if channel is not None and len(params) > 1:
            channel.topic = params[-1]

    def irc_RPL_TOPIC(self, prefix: str, params: list[str]) -> None:
        channel = self.channels.get(self.fold(params[1])) if len(params) > 2 else None
        if channel is not None:
            channel.topic = params[-1]

    # IRCClient's own handlers for these index their parameters without checking (a bare
    # "375" raised IndexError); the bot uses none of what they read.
    def irc_RPL_MOTDSTART(self, prefix: str, params: list[str]) -> None:
        """The message of the day is not used."""

    def irc_RPL_MOTD(self, prefix: str, params: list[str]) -> None:
        """The message of the day is not used."""

    def irc_RPL_ENDOFMOTD(self, prefix: str, params: list[str]) -> None:
        """The message of the day is not used."""

    def irc_RPL_YOURHOST(self, prefix: str, params: list[str]) -> None:
        """Server details are not used."""

    def irc_RPL_CREATED(self, prefix: str, params: list[str]) -> None:
        """Server details are not used."""

    def irc_RPL_MYINFO(self, prefix: str, params: list[str]) -> None:
        """Server details are not used."""

    def irc_RPL_BOUNCE(self, prefix: str, params: list[str]) -> None:
        """Redirections are not followed: the configured servers are."""

    def irc_RPL_LUSERCLIENT(self, prefix: str, params: list[str]) -> None:
        """Network statistics are not used."""

    def irc_RPL_LUSEROP(self, prefix: str, params: list[str]) -> None:
        """Network statistics are not used."""

    def irc_RPL_LUSERCHANNELS(self, prefix: str, params: list[str]) -> None:
        """Network statistics are not used."""

    def irc_RPL_LUSERME(self, prefix: str, params: list[str]) -> None:
        """Network statistics are not used."""

    def irc_RPL_NOTOPIC(self, prefix: str, params: list[str]) -> None:
        channel = self.channels.get(self.fold(params[1])) if len(params) > 1 else None
        if channel is not None:
            channel.topic = ""
