"""The IRC source: keeps the bot on one IRC network (servers tried in turn, reconnecting
with backoff), turns what happens there into events and sends the replies back."""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar, cast

from twisted.application.internet import ClientService
from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.endpoints import clientFromString
from twisted.internet.interfaces import IStreamClientEndpoint
from twisted.internet.protocol import Factory
from twisted.python.failure import Failure
from zope.interface import implementer

from botcore.event import Event, Response
from botcore.interfaces import IChannelSource
from botcore.options import BoolOption, FloatOption, IntOption, ListOption, Option
from botcore.source import Source
from botcore.sources.irc.protocol import DEFAULT_CHANTYPES, IRCProtocol
from botcore.sources.irc.sasl import MECHANISMS
from botcore.sources.irc.sts import DatabaseStore, StsPolicies
from botcore.sources.irc.tls import SSL_REFUSED, TLSSettings, build_endpoint, parse_endpoint
from botcore.sources.irc.wire import encode_line, irc_lower, text_budget, valid_target

if TYPE_CHECKING:
    from twisted.internet.interfaces import IAddress, IProtocol, IReactorTime

    from botcore.interfaces import IBotContext

__all__ = ["IRCProtocol", "IRCSource"]

_T = TypeVar("_T")

#: A reply's target when truncation_point() is asked without one (a long channel name).
_TYPICAL_TARGET = "#" + "x" * 30


class _SyntaxOnlyReactor:
    """Stands in for the reactor when an endpoint string is only checked for syntax:
    building a client endpoint does no I/O."""


class ServerListOption(ListOption):
    """IRC servers as Twisted client endpoint strings, checked for syntax on load."""

    kind = "list of endpoints"

    def parse(self, raw: str) -> list[str]:
        servers = super().parse(raw)
        if not servers:
            raise ValueError("expected at least one server, such as tls:irc.libera.chat:6697")
        for server in servers:
            if server.lower().startswith("ssl:"):
                raise ValueError(f"{server!r}: {SSL_REFUSED}")
            try:
                clientFromString(_SyntaxOnlyReactor(), server)
            except Exception as e:
                raise ValueError(
                    "expected Twisted client endpoints such as tls:irc.libera.chat:6697 or "
                    f"tcp:127.0.0.1:6667, found {server!r} ({e})"
                ) from None
        return servers


def _check_nick(nick: str) -> str:
    if not nick or nick[0].isdigit() or nick[0] in "-#&:" or any(c in nick for c in " ,*?!@\0"):
        raise ValueError(f"expected an IRC nick, found {nick!r}")
    return nick


class NickOption(Option):
    """An IRC nick (no spaces, no leading digit, none of ``,*?!@#:``)."""

    kind = "nick"

    def parse(self, raw: str) -> str:
        return _check_nick(raw.strip())


class PEMFileOption(Option):
    """A PEM file (certificates, and for a client certificate maybe its key), read and
    checked when the configuration is; empty for none."""

    kind = "PEM file"

    def __init__(self, help: str, default: str = "", *, certificates: bool = True) -> None:
        super().__init__(help, default)
        self.certificates = certificates

    def parse(self, raw: str) -> str:
        path = raw.strip()
        if not path:
            return ""
        try:
            with open(path, "rb") as handle:
                data = handle.read()
        except OSError as e:
            raise ValueError(f"cannot read {path}: {e.strerror or e}") from None
        wanted = b"-----BEGIN CERTIFICATE" if self.certificates else b"PRIVATE KEY-----"
        if wanted not in data:
            what = "PEM certificate" if self.certificates else "PEM private key"
            raise ValueError(f"{path} holds no {what}")
        return path


class MechanismListOption(ListOption):
    """SASL mechanisms, in order of preference."""

    kind = "list of SASL mechanisms"

    def parse(self, raw: str) -> list[str]:
        mechanisms = [m.upper() for m in super().parse(raw)]
        for mechanism in mechanisms:
            if mechanism not in MECHANISMS:
                raise ValueError(
                    f"unknown SASL mechanism {mechanism!r} (expected some of "
                    f"{', '.join(MECHANISMS)})"
                )
        return mechanisms


class NickListOption(ListOption):
    """A list of IRC nicks."""

    kind = "list of nicks"

    def parse(self, raw: str) -> list[str]:
        return [_check_nick(nick) for nick in super().parse(raw)]


class ChannelListOption(ListOption):
    """Channels, one per line or comma-separated, each ``#channel`` or ``#channel key``."""

    kind = "list of channels"

    def parse(self, raw: str) -> list[str]:
        channels = super().parse(raw)
        for entry in channels:
            words = entry.split()
            if len(words) > 2 or not valid_target(words[0]) or words[0][0].isalnum():
                raise ValueError(f"expected '#channel' or '#channel key', found {entry!r}")
        return channels


@implementer(IStreamClientEndpoint)
class ServerRotation:
    """One endpoint that connects to each of several servers in turn: the next one after
    a failure, the same one again after a good connection ends."""

    def __init__(
        self,
        servers: list[str],
        make_endpoint: Callable[[str], IStreamClientEndpoint],
        on_failure: Callable[[str, Failure], None],
    ) -> None:
        self.servers = list(servers)
        self.index = 0
        self._make_endpoint = make_endpoint
        self._on_failure = on_failure

    @property
    def current(self) -> str:
        return self.servers[self.index % len(self.servers)]

    def advance(self) -> None:
        """Try the next server on the next attempt."""
        self.index = (self.index + 1) % len(self.servers)

    def connect(self, factory: Any) -> Deferred[IProtocol]:
        server = self.current
        try:
            endpoint = self._make_endpoint(server)
        except Exception:
            d: Deferred[IProtocol] = fail()
        else:
            d = endpoint.connect(factory)

        def failed(failure: Failure) -> Failure:
            self._on_failure(server, failure)
            return failure

        d.addErrback(failed)
        return d


class _ProtocolFactory(Factory):
    def __init__(self, source: IRCSource) -> None:
        self.source = source

    def buildProtocol(self, addr: IAddress | None) -> IRCProtocol:
        protocol = IRCProtocol(self.source, self.source.connected_to)
        protocol.factory = self
        return protocol


@implementer(IChannelSource)
class IRCSource(Source):
    """One IRC network. Reactor thread only.

    Events: ``message``/``notice``/``action`` (private ones addressed, their channel the
    sender's nick; with message-tags their ``message_id`` and ``reply_to``, with
    server-time the server's ``time``), ``reaction`` (a TAGMSG with ``+draft/react``),
    ``state`` for others' join/part/quit/kick/nick and, with the IRCv3 capabilities,
    account/away/setname/chghost/invite and netsplit/netjoin (``data["kind"]``),
    ``source`` for the bot's own connected/disconnected/joined/left/nick
    (``data["state"]``), and ``invite``. The sender's id is their services account when
    the server vouches for it, else ``nick!user@host``; ``data["mask"]`` and
    ``data["account"]`` carry both.
    """

    type = "irc"
    #: Stops reading while the dispatcher's backlog of it is full (`pause_reading`).
    can_pause = True
    #: What every IRC server carries; with message-tags the source also marks replies and
    #: reacts (`update_supports`).
    BASE_SUPPORTS = frozenset({"action", "notice", "multiline", "topic"})
    supports = BASE_SUPPORTS

    servers = ServerListOption(
        "Servers to connect to, tried in turn: Twisted client endpoints such as "
        "tls:irc.libera.chat:6697 or tcp:127.0.0.1:6667.",
        [],
        required=True,
    )
    configured_nick = NickOption("The bot's nick here (default: the bot's name).", name="nick")
    alt_nicks = NickListOption(
        "Nicks to try, in order, when the nick is taken (then nick_, nick__, nick1, ...).", []
    )
    username = Option("The user name (ident) sent when registering.", "botcore")
    realname = Option("The real name sent when registering.", "botcore")
    server_password = Option("The server's password (PASS), if it has one.", "", secret=True)
    account = Option("The services account to log in to (default: the nick).")
    account_password = Option(
        "The services password: SASL (SCRAM-SHA-256 or PLAIN) when the server offers it, "
        "else NickServ IDENTIFY.",
        "",
        secret=True,
    )
    sasl = BoolOption("Log in with SASL when the server offers it.", True)
    sasl_mechanisms = MechanismListOption(
        "SASL mechanisms to try, in order, among those the server offers: EXTERNAL (the "
        "TLS client certificate, tls_certificate), SCRAM-SHA-256 and PLAIN (the "
        "account_password).",
        list(MECHANISMS),
    )
    sasl_required = BoolOption(
        "Refuse to stay on the network without a SASL login: disconnect (and retry later) "
        "when SASL is not offered or fails.",
        False,
    )
    tls_ca_file = PEMFileOption(
        "PEM file of the certificate authorities to trust for tls: servers, instead of "
        "the system's (for a private network); empty for the system's.",
        "",
    )
    tls_verify = BoolOption(
        "Check the server's TLS certificate (its authority and its name). Turn off only "
        "for a test network: anyone on the path could read and change the traffic.",
        True,
    )
    tls_certificate = PEMFileOption(
        "PEM file of the client certificate to present on TLS connections (CertFP, SASL "
        "EXTERNAL); its key may be in the same file.",
        "",
    )
    tls_key = PEMFileOption(
        "PEM file of the client certificate's key, if not in that file.", certificates=False
    )
    sts = BoolOption(
        "Follow the servers' STS policies: switch to TLS on the port a server names, and "
        "never use plain text with it while the policy lasts.",
        True,
    )
    nickserv = Option(
        "Services nick to IDENTIFY to when SASL is not used; empty for none.", "NickServ"
    )
    channels = ChannelListOption(
        "Channels to join after every connection, each '#channel' or '#channel key'.", []
    )
    rejoin_delay = FloatOption("Seconds before rejoining a channel after a kick.", 10.0, min=0)
    follow_invites = BoolOption("Join channels the bot is invited to.", False)
    encoding = Option("Encoding tried for received text that is not valid UTF-8.", "cp1252")
    ping_interval = FloatOption(
        "Seconds of silence from the server after which the bot sends a PING.", 60.0, min=1
    )
    ping_timeout = FloatOption(
        "Seconds to wait for an answer to that PING before reconnecting.", 30.0, min=1
    )
    connect_timeout = FloatOption(
        "Seconds a connection may take to finish registering before it is dropped.", 60.0, min=1
    )
    reconnect_delay = FloatOption(
        "Seconds before the first reconnection; doubled after each failure, with jitter.",
        2.0,
        min=0.01,
    )
    reconnect_max_delay = FloatOption(
        "The longest wait between reconnection attempts, in seconds.", 300.0, min=0.01
    )
    regain_interval = FloatOption(
        "Seconds between checks whether the bot's nick is free again while it uses another "
        "(0: only when its holder is seen leaving).",
        30.0,
        min=0,
    )
    flood_burst = IntOption(
        "Lines the bot may send at once before flood control paces it.", 5, min=1
    )
    flood_rate = FloatOption(
        "Lines per second the bot sends after a burst (0 turns flood control off).", 1.0, min=0
    )
    queue_limit = IntOption(
        "Most lines waiting to be sent; further lines are dropped (and logged).", 500, min=1
    )
    max_lines = IntOption(
        "Most IRC lines one reply becomes; the rest is cut off with an ellipsis.", 10, min=1
    )
    quit_message = Option("Sent with QUIT when the bot leaves the network.", "botcore")
    source_url = Option("The answer to CTCP SOURCE: where the bot's code can be found.", "")

    #: The source's name (Service's may be None; Source's never is).
    name: str

    def __init__(
        self,
        name: str,
        bot: IBotContext,
        config: dict[str, Any] | None = None,
        *,
        reactor: IReactorTime | None = None,
        endpoint_factory: Callable[[str], IStreamClientEndpoint] | None = None,
        jitter: Callable[[], float] | None = None,
    ) -> None:
        super().__init__(name, bot, config)
        #: The reactor the source connects and times with: the bot's unless a test gives
        #: another.
        self.reactor: IReactorTime = reactor if reactor is not None else bot.reactor
        self._make_endpoint = endpoint_factory or self.build_endpoint
        self._jitter = jitter or random.Random().random
        self.protocol: IRCProtocol | None = None
        self.rotation = ServerRotation([], self._endpoint_for, self._connect_failed)
        #: The servers' STS policies (stored when the bot has a database).
        self.sts_policies = StsPolicies(self.reactor)
        #: The endpoint string of the connection being made (after STS).
        self.connected_to = ""
        self._upgrade_now = False
        self.failures = 0
        self._failures_before = 0
        self.connections = 0
        self._service: ClientService | None = None
        self._wanted: dict[str, tuple[str, str | None]] = {}
        self._configured: list[tuple[str, str | None]] = []
        self._nick_override: str | None = None
        self._stopping = False
        #: What channel names start with on the network, as its server last said
        #: (ISUPPORT CHANTYPES); replaced whole on the reactor thread, read from any.
        self.chantypes = DEFAULT_CHANTYPES
        #: How the network compares nicks and channel names, as its server last said
        #: (ISUPPORT CASEMAPPING; rfc1459, IRC's default, until one has). Kept across
        #: reconnections (a network's servers share one) so that what is filed under a
        #: folded name (log folders) does not move while the bot reconnects.
        self.casemapping = "rfc1459"
        #: Events left out because no processor wanted them (never one said to the bot).
        self.skipped = 0
        self._folded: tuple[tuple[str, ...], str, tuple[tuple[str, str], ...]] | None = None

    # -- configuration -------------------------------------------------------------------

    def setup(self) -> None:
        """Read the options; on a reload, join channels newly added to ``channels``."""
        try:
            self.tls_settings().check()
        except (OSError, ValueError) as e:
            # Each connection attempt will fail with this too, and be logged.
            self.log.error("{source}: TLS settings: {why}", source=self.name, why=str(e))
        if not self.tls_verify:
            self.log.warn(
                "{source}: tls_verify is off: TLS certificates are not checked, so anyone on "
                "the path can read and change this connection",
                source=self.name,
            )
        self.rotation.servers = list(self.servers) or self.rotation.servers
        configured = []
        for entry in self.channels:
            words = entry.split()
            configured.append((words[0], words[1] if len(words) > 1 else None))
        previous = {self._key(name) for name, _ in self._configured}
        self._configured = configured
        for name, key in configured:
            if self._key(name) not in previous:
                self.join(name, key)
        if self.protocol is not None:
            bucket = self.protocol.queue.bucket
            bucket.burst, bucket.rate = float(self.flood_burst), self.flood_rate
            self.protocol.queue.limit = self.queue_limit
        if self.protocol is None:
            self.nick = self.wanted_nick
        elif self.protocol.registered:
            # A reload may have changed the nick: take it (or start watching for it).
            self.protocol.regain_now()
            self.protocol._update_regain()

    @property
    def wanted_nick(self) -> str:
        """The nick the bot wants here: set by command, configured, or the bot's name."""
        return self._nick_override or self.configured_nick or self.bot.name or "botcore"

    @property
    def version(self) -> str:
        return self.bot.version or "unknown"

    @staticmethod
    def _key(channel: str) -> str:
        return irc_lower(channel, "rfc1459")

    def wanted_channels(self) -> list[tuple[str, str | None]]:
        """The channels to be in, with their keys."""
        return list(self._wanted.values())

    def wants_channel(self, channel: str) -> bool:
        return self._key(channel) in self._wanted

    def channel_key(self, channel: str) -> str | None:
        found = self._wanted.get(self._key(channel))
        return found[1] if found else None

    # -- TLS and STS -----------------------------------------------------------------------

    def tls_settings(self) -> TLSSettings:
        return TLSSettings(self.tls_ca_file, self.tls_verify, self.tls_certificate, self.tls_key)

    def build_endpoint(self, server: str) -> IStreamClientEndpoint:
        """The endpoint for one server string, with the source's TLS settings."""
        return build_endpoint(
            self.reactor, server, self.tls_settings(), timeout=self.connect_timeout
        )

    def sts_server(self, server: str) -> str:
        """``server`` as STS has it: ``tls:HOST:PORT`` while a policy holds for a plain
        ``tcp:`` server's host, else unchanged."""
        parsed = parse_endpoint(server)
        if not self.sts or parsed is None or parsed.kind != "tcp":
            return server
        policy = self.sts_policies.get(parsed.host)
        if policy is None:
            return server
        return f"tls:{parsed.host.replace(':', chr(92) + ':')}:{policy.port}"

    def sts_host(self, server: str) -> str | None:
        """The host name STS policies of ``server`` are kept under (None: not a host)."""
        parsed = parse_endpoint(server)
        return parsed.host if parsed is not None else None

    def sts_port(self, server: str) -> int | None:
        """The TLS port a connection to ``server`` (an STS-rewritten string) is on."""
        parsed = parse_endpoint(server)
        return parsed.port if parsed is not None and parsed.kind == "tls" else None

    def _endpoint_for(self, server: str) -> IStreamClientEndpoint:
        actual = self.sts_server(server)
        if actual != server:
            self.log.info(
                "{source}: STS policy: connecting to {server} as {actual}",
                source=self.name,
                server=server,
                actual=actual,
            )
        self.connected_to = actual
        return self._make_endpoint(actual)

    def update_supports(self, protocol: IRCProtocol) -> None:
        """What replies can carry here, from what ``protocol`` negotiated: replies and
        reactions with message-tags (unless CLIENTTAGDENY refuses their tags)."""
        if protocol is not self.protocol:
            return
        extra = set()
        if protocol.tag_allowed("draft/reply") or protocol.tag_allowed("reply"):
            extra.add("reply")
            if protocol.tag_allowed("draft/react"):
                extra.add("react")
        self.supports = self.BASE_SUPPORTS | extra

    # -- the connection -----------------------------------------------------------------

    def startService(self) -> None:
        super().startService()
        self._stopping = False
        for name, key in self._configured:
            self._wanted.setdefault(self._key(name), (name, key))
        self.set_state("connecting")
        if self.sts_policies.store is None:
            database = getattr(self.bot, "database", None)
            if database is not None:
                self.sts_policies.store = DatabaseStore(self.reactor, database)
        self.sts_policies.load().addBoth(lambda _: self._connect())

    def _connect(self) -> None:
        if self._stopping or not self.running or self._service is not None:
            return
        self._service = ClientService(
            self.rotation,
            _ProtocolFactory(self),
            retryPolicy=self.retry_delay,
            clock=self.reactor,
        )
        self._service.startService()

    def stopService(self) -> Deferred[None]:
        """Say QUIT, close the connection (aborting it if it has not closed within five
        seconds) and stop reconnecting. Fires when the connection is gone."""
        super().stopService()
        self._stopping = True
        protocol = self.protocol
        if protocol is not None and protocol.transport is not None and protocol.registered:
            protocol.transport.write(encode_line("QUIT", trailing=self.quit_message))
        service, self._service = self._service, None
        if service is None:
            self.set_state("stopped")
            return succeed(None)
        d = service.stopService()
        timer = self.reactor.callLater(5.0, self._abort, protocol)

        def cancel_abort(result: _T) -> _T:
            if timer.active():
                timer.cancel()
            return result

        d.addBoth(cancel_abort)
        d.addCallback(lambda _: self.set_state("stopped"))
        return d

    def _abort(self, protocol: IRCProtocol | None) -> None:
        if protocol is not None:
            protocol.abort()

    def retry_delay(self, attempt: int) -> float:
        """Seconds to wait before the next connection attempt: ``reconnect_delay`` doubled
        for each failure in a row (a connection that never registered, or that was
        dropped for a ping timeout, is a failure and moves on to the next server),
        capped at ``reconnect_max_delay``, then scaled by a random 50-100% (jitter); none
        after an STS upgrade (the same server at once, with TLS)."""
        if self._upgrade_now:
            self._upgrade_now = False
            return 0.0
        failures = max(1, self.failures)
        try:
            delay = self.reconnect_delay * 2 ** min(failures - 1, 64)
        except OverflowError:
            delay = self.reconnect_max_delay
        delay = min(delay, self.reconnect_max_delay)
        return delay * (0.5 + 0.5 * self._jitter())

    def _connect_failed(self, server: str, failure: Failure) -> None:
        self.failures += 1
        self.rotation.advance()
        self.log.warn(
            "{source}: cannot connect to {server}: {why}",
            source=self.name,
            server=server,
            why=failure.getErrorMessage(),
        )
        self.set_state("reconnecting")

    def connection_made(self, protocol: IRCProtocol) -> None:
        """A TCP (or TLS) connection is up and registration starts."""
        self.protocol = protocol
        if self.input_paused:  # the dispatcher's backlog is still full
            protocol.pauseProducing()
        # Another server of the network may say otherwise: until it does, the defaults.
        self.chantypes = protocol.chantypes()
        self.connections += 1
        self.log.info("{source}: connected to {server}", source=self.name, server=protocol.server)

    def pause_reading(self) -> None:
        """Stop reading the connection (its lines already read wait in the protocol)."""
        if self.protocol is not None and self.protocol.transport is not None:
            self.protocol.pauseProducing()

    def resume_reading(self) -> None:
        """Read the connection again, the lines held back first."""
        if self.protocol is not None and self.protocol.transport is not None:
            self.protocol.resumeProducing()

    def signed_on(self, protocol: IRCProtocol) -> None:
        """Registration finished: the bot is on the network."""
        # Kept in case the connection turns out dead (a ping timeout): then it was one
        # more failure in a row, not a good connection.
        self._failures_before = self.failures
        self.failures = 0
        self.nick = protocol.nickname
        self.set_state("connected")
        self._emit_source(protocol, "connected", server=protocol.server, nick=protocol.nickname)

    def connection_lost(self, protocol: IRCProtocol, why: str) -> None:
        """The connection ended; ClientService reconnects unless the source is stopping."""
        if self.protocol is protocol:
            self.protocol = None
            self.supports = self.BASE_SUPPORTS
        if protocol.sts_upgrade:
            # The same server again at once, now with TLS: not a failure.
            self._upgrade_now = True
        elif not protocol.registered:
            self.failures += 1
            self.rotation.advance()
        elif protocol.timed_out:
            # A server that registers the bot and then goes silent must not be
            # reconnected to at full speed: the backoff goes on from where it was.
            self.failures = self._failures_before + 1
            self.rotation.advance()
        self.log.info(
            "{source}: disconnected from {server}: {why}",
            source=self.name,
            server=protocol.server,
            why=why,
        )
        if protocol.registered:
            self._emit_source(protocol, "disconnected", server=protocol.server, reason=why)
        if not self._stopping:
            self.set_state("reconnecting")

    def nick_changed(self, protocol: IRCProtocol, old: str, new: str) -> None:
        self.nick = new
        self.log.info("{source}: nick {old} -> {new}", source=self.name, old=old, new=new)
        self._emit_source(protocol, "nick", old=old, nick=new)

    def invited(self, channel: str, by: str) -> None:
        if self.follow_invites and valid_target(channel):
            self.log.info(
                "{source}: invited to {channel} by {by}; joining",
                source=self.name,
                channel=channel,
                by=by,
            )
            self.join(channel)

    def _emit_source(self, protocol: IRCProtocol, state: str, **data: Any) -> None:
        protocol._source_event(state, **data)

    def emit(self, event: Event) -> None:
        """Hand an event to the dispatcher (its replies come back through `send`)."""
        if not self.running:
            return
        if not self._may_be_addressed(event) and not self.bot.wants(event):
            # Channel chatter no processor would see (issue 14): no worker hand-off.
            self.skipped += 1
            self.bot.skipped(event)
            return
        self.dispatch(event)

    def _may_be_addressed(self, event: Event) -> bool:
        """Whether ``event`` may be said to the bot, so that it is never left out: a
        private one, or one whose text holds one of the bot's names anywhere, in any case
        (case folded, and as the server folds nicks, so ``bot{1}`` names ``bot[1]``)."""
        if not event.public:
            return True
        message = event.message
        if message is None:
            return False
        text = message.raw
        casefolded, folded = text.casefold(), self.fold(text)
        return any(
            name in casefolded or irc_name in folded for name, irc_name in self._folded_names()
        )

    def _folded_names(self) -> tuple[tuple[str, str], ...]:
        """`names`, each case folded and as the server folds it: worked out again only
        when the names or the casemapping change (not for every line)."""
        names, casemapping = self.names(), self.casemapping
        last = self._folded
        if last is None or last[0] is not names or last[1] != casemapping:
            folded = tuple((name.casefold(), irc_lower(name, casemapping)) for name in names)
            last = self._folded = (names, casemapping, folded)
        return last[2]

    # -- sending --------------------------------------------------------------------------

    def truncation_point(self, response: Response | None = None) -> int | None:
        """The most UTF-8 bytes one reply may carry: ``max_lines`` IRC lines' worth for its
        target, each line as long as the server will relay with the bot's mask."""
        target = (response.target if response is not None else None) or _TYPICAL_TARGET
        command = "NOTICE" if response is not None and response.notice else "PRIVMSG"
        action = bool(response is not None and response.action)
        protocol = self.protocol
        if protocol is not None:
            budget = protocol.text_budget(command, target, action)
        else:
            budget = text_budget(
                self.wanted_nick, "~" + self.username[:9], "", command, target, action
            )
        return max(1, budget) * self.max_lines

    def send(self, response: Response) -> None:
        """Send a reply: PRIVMSG, NOTICE or ACTION, split to fit, through flood control."""
        target = response.target
        if target is None or not valid_target(target):
            self.log.warn(
                "{source}: dropped a reply with no valid target ({target!r})",
                source=self.name,
                target=target,
            )
            return
        if response.kind == "reaction":
            protocol = self.protocol
            if protocol is None or not protocol.registered or not response.refers_to:
                self.log.info("{source}: not connected; reaction dropped", source=self.name)
                return
            protocol.react(target, response.refers_to, cast(str, response.text), response)
            return
        if response.kind != "message":
            # The core degrades what a source does not support (see botcore.plugins.core.degrade).
            self.log.warn(
                "{source}: cannot {kind} a message here; dropped",
                source=self.name,
                kind=response.kind,
            )
            return
        command = "NOTICE" if response.notice else "PRIVMSG"
        reply_to = response.reply_to if isinstance(response.reply_to, str) else None
        # Text: the dispatcher words acknowledgements before a source sees them.
        self._message(
            command,
            target,
            cast(str, response.text),
            action=response.action,
            reply_to=reply_to,
            response=response,
        )

    def _message(
        self,
        command: str,
        target: str,
        text: str,
        action: bool = False,
        *,
        reply_to: str | None = None,
        response: Response | None = None,
    ) -> None:
        protocol = self.protocol
        if protocol is None or not protocol.registered:
            self.log.info(
                "{source}: not connected; dropped a message to {target}",
                source=self.name,
                target=target,
            )
            return
        protocol.message(
            command, target, text, action=action, reply_to=reply_to, response=response
        )

    # -- IChannelSource ----------------------------------------------------------------------

    def join(self, channel: str, key: str | None = None) -> None:
        """Join ``channel`` now (if connected) and after every reconnect."""
        if not valid_target(channel):
            self.log.warn(
                "{source}: not a channel: {channel!r}", source=self.name, channel=channel
            )
            return
        self._wanted[self._key(channel)] = (channel, key)
        if self.protocol is not None and self.protocol.registered:
            self.protocol.send_join(channel, key)

    def part(self, channel: str, message: str | None = None) -> None:
        """Leave ``channel`` and stop rejoining it."""
        self._wanted.pop(self._key(channel), None)
        protocol = self.protocol
        if protocol is not None and protocol.registered and valid_target(channel):
            protocol.cancel_rejoin(channel)
            protocol.send_raw("PART", channel, trailing=message or None)

    def set_nick(self, nick: str) -> None:
        """Change nick now, and keep (or regain) this one from now on."""
        self._nick_override = _check_nick(nick)
        if self.protocol is not None and self.protocol.registered:
            self.protocol.send_raw("NICK", nick)
        else:
            self.nick = nick

    def say(self, target: str, text: str) -> None:
        """Send ``text`` to a channel or a nick."""
        if valid_target(target):
            self._message("PRIVMSG", target, text)

    def do(self, target: str, text: str) -> None:
        """Send ``text`` as an action (``/me``)."""
        if valid_target(target):
            self._message("PRIVMSG", target, text, action=True)

    def topic(self, channel: str, text: str) -> None:
        """Set ``channel``'s topic."""
        protocol = self.protocol
        if protocol is None or not protocol.registered or not valid_target(channel):
            self.log.info("{source}: not connected; topic not set", source=self.name)
            return
        protocol.send_raw("TOPIC", channel, trailing=text.replace("\n", " "))

    def fold(self, name: str) -> str:
        """``name`` as this network compares nicks and channels: its CASEMAPPING (`irc_lower`),
        so ``#Foo[1]`` and ``#foo{1}`` are one channel under rfc1459 and two under ascii, and
        letters outside ASCII are left as they are (as the servers do). Any thread: reads a
        value the reactor thread replaces whole."""
        return irc_lower(name, self.casemapping)

    def is_channel(self, target: str) -> bool:
        """Whether ``target`` starts like a channel name on this network: with one of the
        server's CHANTYPES (``#`` or ``&`` until a server has said). Any thread."""
        return bool(target) and target[0] in self.chantypes

    def verified_identity(self, event: Event) -> str | None:
        """The services account the server vouched for (account-tag or account-notify),
        which is then also the sender's id; None for a sender known only by mask."""
        if event.source != self.name:
            return None
        account = event.data.get("account")
        return account if isinstance(account, str) and account else None

    def lookup_account(self, nick: str) -> Deferred[str | None]:
        """The services account ``nick`` is logged in to, as the server says (WHOIS), or
        None (also when not connected). For authentication hooks; reactor thread."""
        if self.protocol is None or not self.protocol.registered:
            return succeed(None)
        return self.protocol.lookup_account(nick)

    def members(self, channel: str) -> dict[str, str]:
        """Who is in ``channel`` (nick -> prefix symbols such as ``@``), or {} when the bot
        is not there."""
        return self.protocol.members(channel) if self.protocol is not None else {}
