"""The XMPP source: keeps the bot on one XMPP account (STARTTLS with a checked
certificate, SASL SCRAM, reconnecting with backoff), in private chats and group chats
(XEP-0045), and sends the replies back. Built on Twisted's own ``jabber`` package."""

from __future__ import annotations

import contextlib
import random
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from twisted.application.internet import ClientService, backoffPolicy
from twisted.internet import ssl
from twisted.internet.defer import Deferred, succeed
from twisted.internet.endpoints import clientFromString
from twisted.internet.interfaces import IStreamClientEndpoint
from twisted.names import dns
from twisted.python.failure import Failure
from twisted.words.protocols.jabber import client, xmlstream
from twisted.words.protocols.jabber.jid import JID
from zope.interface import implementer

from botcore.event import Event, Response
from botcore.interfaces import IChannelSource
from botcore.options import ChoiceOption, FloatOption, IntOption, ListOption, Option
from botcore.source import Source, unique_names
from botcore.sources.xmpp import model
from botcore.sources.xmpp import stanzas as st
from botcore.sources.xmpp.connection import XMPPConnection
from botcore.sources.xmpp.sasl import PREFERENCE, BestSASLInitializer
from botcore.text import split_text

if TYPE_CHECKING:
    from twisted.internet.interfaces import IReactorTime, IResolver

    from botcore.interfaces import IBotContext

__all__ = ["XMPPConnection", "XMPPSource"]


class _SyntaxOnlyReactor:
    """Stands in for the reactor when an endpoint string is only checked for syntax."""


class JIDOption(Option):
    """A JID (``user@domain``, optionally ``/resource``)."""

    kind = "JID"

    def parse(self, raw: str) -> str:
        found = st.parse_jid(raw.strip())
        if found is None or not found.host:
            raise ValueError(f"expected a JID such as bot@example.org, found {raw!r}")
        return found.full()


class EndpointOption(Option):
    """A Twisted client endpoint string, checked for syntax on load."""

    kind = "endpoint"

    def parse(self, raw: str) -> str:
        raw = raw.strip()
        try:
            clientFromString(_SyntaxOnlyReactor(), raw)
        except Exception as e:
            raise ValueError(
                "expected a client endpoint such as tcp:xmpp.example.org:5222, "
                f"found {raw!r} ({e})"
            ) from None
        return raw


class RoomListOption(ListOption):
    """Rooms, each ``room@conference.example.org`` or ``room@conference.example.org password``."""

    kind = "list of rooms"

    def parse(self, raw: str) -> list[str]:
        rooms = super().parse(raw)
        for entry in rooms:
            words = entry.split()
            found = st.parse_jid(words[0]) if words else None
            if len(words) > 2 or found is None or not found.user or found.resource:
                raise ValueError(
                    f"expected 'room@service' or 'room@service password', found {entry!r}"
                )
        return rooms


class MechanismListOption(ListOption):
    kind = "list of SASL mechanisms"

    def parse(self, raw: str) -> list[str]:
        names = [name.upper() for name in super().parse(raw)]
        for name in names:
            if name not in PREFERENCE:
                raise ValueError(f"expected some of {', '.join(PREFERENCE)}, found {name!r}")
        return names


class _Authenticator(client.XMPPAuthenticator):
    """Twisted's client authenticator with our SASL choice (SCRAM first)."""

    def __init__(self, jid: JID, password: str, tls: Any, mechanisms: list[str]) -> None:
        super().__init__(jid, password, configurationForTLS=tls)
        self.mechanisms = mechanisms

    def associateWithStream(self, xs: Any) -> None:
        super().associateWithStream(xs)
        xs.initializers = [
            client.CheckVersionInitializer(xs),
            # required: the password never travels without TLS, whatever the server says.
            xmlstream.TLSInitiatingInitializer(
                xs, required=True, configurationForTLS=self._configurationForTLS
            ),
            BestSASLInitializer(xs, self.mechanisms, required=True),
            client.BindInitializer(xs, required=True),
            client.SessionInitializer(xs, required=False),
        ]


@implementer(IChannelSource)
class XMPPSource(Source):
    """One XMPP account. Reactor thread only.

    Events: ``message``/``action`` (private ones addressed, their channel the full JID
    that wrote; in a room the room's bare JID), ``state`` for occupants' join, part,
    nick, kick, ban and role changes (``data["kind"]``), ``source`` for the bot's own
    connected/disconnected/joined/left, and ``invite``. ``data["jid"]`` is the sender's
    bare JID when the network shows it (then also the sender's id and verified identity).
    Files linked with XEP-0066 (``jabber:x:oob``) are the ``Message.attachments`` of a
    message (its text without the body's repetition of their URLs); a reply's
    attachments are sent the same way, their URLs also in the body.
    """

    type = "xmpp"
    #: Stops reading the stream while the dispatcher's backlog of it is full (the events
    #: of what one read had already brought are held by `Source.dispatch`).
    can_pause = True
    supports = frozenset(
        {
            "action",
            "multiline",
            "topic",
            "message-ids",
            "reply",
            "thread",
            "react",
            "edit",
            "delete",
            "attachments",
        }
    )

    jid = JIDOption(
        "The bot's account, such as bot@example.org (a /resource is optional).", required=True
    )
    password = Option("The account's password.", "", secret=True)
    server = EndpointOption(
        "Where to connect, as a Twisted client endpoint (default: the servers the DNS SRV "
        "records _xmpp-client._tcp.DOMAIN name, else tcp:DOMAIN:5222).",
        None,
    )
    srv_timeout = FloatOption(
        "Seconds the DNS SRV lookup may take (when no server is set) before the bot "
        "connects to DOMAIN:5222 instead.",
        5.0,
        min=0.1,
    )
    resource = Option("The resource to ask for when the JID has none.", "botcore")
    ca_file = Option(
        "A PEM file of the certificate authorities to trust for the server's certificate "
        "(default: the system's).",
        None,
    )
    tls_hostname = Option(
        "The name the server's certificate must carry (default: the JID's domain).", None
    )
    mechanisms = MechanismListOption(
        "SASL mechanisms the bot may use, the strongest the server offers first.",
        list(PREFERENCE),
    )
    rooms = RoomListOption(
        "Rooms to join after every connection, each 'room@service' or 'room@service password'.",
        [],
    )
    room_services = ListOption(
        "Domains whose bare JIDs are rooms (default: those of the configured rooms and "
        "conference.DOMAIN).",
        [],
    )
    configured_nick = Option(
        "The bot's nick in rooms (default: the bot's name).", None, name="nick"
    )
    rejoin_delay = FloatOption("Seconds before rejoining a room after a kick.", 10.0, min=0)
    follow_invites = ChoiceOption(
        "Join rooms the bot is invited to: always, never, or only by 'subscribers'.",
        "never",
        choices=("always", "never", "subscribers"),
    )
    subscriptions = ChoiceOption(
        "Whose presence subscription requests are accepted: everyone, nobody or the 'list'.",
        "nobody",
        choices=("everyone", "nobody", "list"),
    )
    subscribers = ListOption(
        "Bare JIDs whose subscriptions are accepted (subscriptions = list).", []
    )
    ping_interval = FloatOption("Seconds between XEP-0199 pings to the server.", 60.0, min=1)
    ping_timeout = FloatOption(
        "Seconds to wait for a ping's answer before reconnecting.", 30.0, min=1
    )
    connect_timeout = FloatOption(
        "Seconds the connection may take to log in before it is dropped.", 60.0, min=1
    )
    reconnect_delay = FloatOption(
        "Seconds before the first reconnection; doubled after each failure, with jitter.",
        2.0,
        min=0.01,
    )
    reconnect_max_delay = FloatOption(
        "The longest wait between reconnection attempts, in seconds.", 300.0, min=0.01
    )
    message_length = IntOption(
        "Most UTF-8 bytes of text in one message; longer replies are split.", 3000, min=64
    )
    max_messages = IntOption("Most messages one reply becomes; the rest is cut off.", 5, min=1)

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
        resolver: IResolver | None = None,
    ) -> None:
        super().__init__(name, bot, config)
        self.reactor: Any = reactor if reactor is not None else bot.reactor
        self._make_endpoint = endpoint_factory or (lambda s: clientFromString(self.reactor, s))
        self._jitter = jitter or random.Random().random
        self._resolver = resolver
        self.connection: XMPPConnection | None = None
        self.failures = 0
        self.connections = 0
        self._service: ClientService | None = None
        self._wanted: dict[str, tuple[str | None, str | None]] = {}
        self._configured: list[tuple[str, str | None]] = []
        self._nick_override: str | None = None
        self._room_nicks: tuple[tuple[str, str], ...] = ()
        self._all_names: tuple[tuple[str | None, ...], tuple[str, ...]] | None = None
        self._stopping = False
        self._login_xs: Any = None
        self._login_timer: Any = None
        #: The SASL mechanism the last login used.
        self.sasl_mechanism: str | None = None
        #: Recent messages' ids, authors and the bot's own (kept across reconnections).
        self.ledger = model.Ledger()

    # -- configuration -------------------------------------------------------------------

    def setup(self) -> None:
        """Read the options; on a reload, join rooms newly added to ``rooms``."""
        configured = []
        for entry in self.rooms:
            words = entry.split()
            configured.append((JID(words[0]).userhost(), words[1] if len(words) > 1 else None))
        previous = {name for name, _ in self._configured}
        self._configured = configured
        for name, password in configured:
            if name not in previous and self.running:
                self.join(name, password)
        self.nick = self.room_nick()

    def room_nick_changed(self, room: str, nick: str | None) -> None:
        """The bot is ``nick`` in ``room`` now (None: not there any more): the nick it is
        addressed by there, and `Source.nick` the latest one the bot was given."""
        nicks = dict(self._room_nicks)
        if nick is None:
            nicks.pop(room, None)
        else:
            nicks[room] = nick
            self.nick = nick
        # Replaced whole: `names` reads it from any thread.
        self._room_nicks = tuple(nicks.items())

    def names(self) -> tuple[str, ...]:
        """Every name the bot answers to: its nick, its nicks in the rooms it is in (one
        may be nick_ after a conflict), the nick it wants, and the bot's names. Any
        thread."""
        given = (
            self.nick,
            *(nick for _room, nick in self._room_nicks),
            self.room_nick(),
            *self.bot.names,
        )
        last = self._all_names
        if last is None or last[0] != given:
            last = self._all_names = (given, unique_names(given))
        return last[1]

    def room_nick(self) -> str:
        """The nick the bot wants in rooms."""
        return self._nick_override or self.configured_nick or self.bot.name or "botcore"

    def account(self) -> JID:
        account = JID(self.jid)
        if not account.resource:
            account = JID(tuple=(account.user, account.host, self.resource or "botcore"))
        return account

    def tls_options(self) -> Any:
        """The TLS settings: the server's certificate checked against ``ca_file`` (or the
        system's authorities) for ``tls_hostname`` (or the JID's domain)."""
        hostname = self.tls_hostname or JID(self.jid).host
        if self.ca_file:
            with open(self.ca_file, "rb") as handle:
                data = handle.read()
            roots = [ssl.Certificate.loadPEM(block) for block in _pem_blocks(data)]
            trust: Any = roots[0] if len(roots) == 1 else ssl.trustRootFromCertificates(roots)
        else:
            trust = ssl.platformTrust()
        return ssl.optionsForClientTLS(hostname, trustRoot=trust)

    def muc_domains(self) -> set[str]:
        """The domains rooms are on: ``room_services``, else the configured rooms' and
        conference.DOMAIN. Any thread."""
        if self.room_services:
            return {domain.strip().lower() for domain in self.room_services}
        found = {room.split("@", 1)[-1] for room, _ in self._configured}
        found.add("conference." + JID(self.jid).host)
        return found

    def wants_room(self, room: str) -> bool:
        return room in self._wanted

    def wanted_room(self, room: str) -> tuple[str, str | None] | None:
        found = self._wanted.get(room)
        if found is None:
            return None
        return (found[0] or self.room_nick(), found[1])

    def accepts_subscription(self, bare: str) -> bool:
        if self.subscriptions == "everyone":
            return True
        if self.subscriptions == "list":
            return bare.lower() in {j.strip().lower() for j in self.subscribers}
        return False

    # -- the connection -----------------------------------------------------------------

    def startService(self) -> None:
        super().startService()
        self._stopping = False
        for name, password in self._configured:
            self._wanted.setdefault(name, (None, password))
        self.set_state("connecting")
        server = self.server
        self._service = ClientService(
            _Endpoint(self, server),
            self._factory(),
            retryPolicy=self.retry_delay,
            clock=self.reactor,
        )
        self._service.startService()

    def servers(self) -> Deferred[list[str]]:
        """Where to try to connect, in order (endpoint strings): ``server`` when set;
        else the targets of the DNS SRV records ``_xmpp-client._tcp.DOMAIN`` (RFC 6120
        3.2.1: by priority, then weighted at random), then ``tcp:DOMAIN:5222``. A lookup
        that fails or takes over ``srv_timeout`` seconds leaves only the last; a record
        saying there is no service (target ".") fails with `NoService`."""
        if self.server:
            return succeed([self.server])
        domain = JID(self.jid).host
        fallback = f"tcp:{_escape(domain)}:5222"
        if self._resolver is None:
            from twisted.names.client import createResolver

            self._resolver = createResolver()
        name = f"_xmpp-client._tcp.{domain}"
        # Bounded twice: the resolver's own retries, and the whole lookup here.
        d: Deferred[Any] = self._resolver.lookupService(name, (self.srv_timeout,))
        d.addTimeout(self.srv_timeout, self.reactor)

        def found(result: Any) -> list[str]:
            answers = result[0] if isinstance(result, tuple) else []
            records = [
                a.payload
                for a in answers
                if getattr(a, "type", None) == dns.SRV and isinstance(a.payload, dns.Record_SRV)
            ]
            if len(records) == 1 and records[0].target.name in (b"", b"."):
                # RFC 2782/6120: "decidedly not available"; no fallback to the domain.
                raise NoService(
                    f"{name} says {domain} has no XMPP service (SRV target '.'); set "
                    "'server' to connect anyway"
                )
            targets = [
                f"tcp:{_escape(r.target.name.decode('ascii', 'replace'))}:{r.port}"
                for r in srv_order(records, self._jitter)
                if r.target.name not in (b"", b".") and 0 < r.port < 65536
            ]
            return [*dict.fromkeys([*targets, fallback])]

        def failed(failure: Failure) -> list[str]:
            self.log.info("{source}: no SRV record for {name} ({why}); connecting to {domain}",
                          source=self.name, name=name, why=failure.getErrorMessage() or
                          repr(failure.value), domain=domain)  # fmt: skip
            return [fallback]

        d.addCallback(found)
        # A failed lookup, a timeout, or answers that make no sense: the domain.
        d.addErrback(lambda f: f if f.check(NoService) else failed(f))
        return d

    def _factory(self) -> Any:
        authenticator = _Authenticator(
            self.account(), self.password, self.tls_options(), list(self.mechanisms)
        )
        factory = xmlstream.XmlStreamFactory(authenticator)
        factory.addBootstrap(xmlstream.STREAM_CONNECTED_EVENT, self._connected)
        factory.addBootstrap(xmlstream.STREAM_AUTHD_EVENT, self._authenticated)
        factory.addBootstrap(xmlstream.INIT_FAILED_EVENT, self._init_failed)
        factory.addBootstrap(xmlstream.STREAM_END_EVENT, self._stream_ended)
        return factory

    def retry_delay(self, attempt: int) -> float:
        """Seconds before the next attempt: Twisted's `backoffPolicy` over the failures
        in a row (a connection that never logged in, or that stopped answering pings,
        is one), from ``reconnect_delay`` up to ``reconnect_max_delay``, jittered."""
        policy = backoffPolicy(
            initialDelay=self.reconnect_delay,
            maxDelay=self.reconnect_max_delay,
            factor=2.0,
            jitter=lambda: 0.0,
        )
        return policy(max(0, self.failures - 1)) * (0.5 + 0.5 * self._jitter())

    def _connected(self, xs: Any) -> None:
        self.connections += 1
        self._cancel_login_timer()
        self._login_xs = xs
        self._login_timer = self.reactor.callLater(self.connect_timeout, self._login_timeout, xs)

    def _cancel_login_timer(self) -> None:
        timer, self._login_timer = self._login_timer, None
        if timer is not None and timer.active():
            timer.cancel()

    def _login_timeout(self, xs: Any) -> None:
        self._login_timer = None
        self.log.warn("{source}: login took too long; reconnecting", source=self.name)
        if xs.transport is not None:
            xs.transport.abortConnection()

    def _authenticated(self, xs: Any) -> None:
        self._cancel_login_timer()
        self._login_xs = None
        self.failures = 0
        self.sasl_mechanism = getattr(xs.authenticator, "sasl_mechanism", None)
        connection = self.connection = XMPPConnection(self, xs, self.reactor)
        connection.start()
        if self.input_paused:  # the dispatcher's backlog is still full
            self.pause_reading()
        self.log.info(
            "{source}: logged in as {jid} ({mechanism})",
            source=self.name,
            jid=connection.jid.full(),
            mechanism=self.sasl_mechanism,
        )
        self.set_state("connected")
        connection._source_event("connected", jid=connection.jid.full())
        for room, (nick, password) in list(self._wanted.items()):
            connection.join(room, nick or self.room_nick(), password)

    def pause_reading(self) -> None:
        """Stop reading the stream (its transport's ``pauseProducing``)."""
        transport = self.connection.xs.transport if self.connection is not None else None
        if transport is not None:
            transport.pauseProducing()

    def resume_reading(self) -> None:
        """Read the stream again."""
        transport = self.connection.xs.transport if self.connection is not None else None
        if transport is not None:
            transport.resumeProducing()

    def _init_failed(self, failure: Failure) -> None:
        """TLS, SASL or binding failed (a bad certificate, a wrong password): close the
        stream; the next attempt waits for the backoff."""
        self._cancel_login_timer()
        self.log.warn(
            "{source}: login failed: {why}",
            source=self.name,
            why=failure.getErrorMessage() or repr(failure.value),
        )
        xs, self._login_xs = self._login_xs, None
        if xs is not None and xs.transport is not None:
            xs.transport.loseConnection()

    def _stream_ended(self, reason: Any) -> None:
        self._cancel_login_timer()
        self._login_xs = None
        connection, self.connection = self.connection, None
        if connection is None:
            if not self._stopping:
                self.failures += 1
                self.set_state("reconnecting")
            return
        connection.close()
        if connection.timed_out:
            self.failures += 1
        why = reason.getErrorMessage() if isinstance(reason, Failure) else str(reason)
        self.log.info("{source}: disconnected: {why}", source=self.name, why=why)
        connection._source_event("disconnected", reason=why)
        if not self._stopping:
            self.set_state("reconnecting")

    def connect_failed(self, failure: Failure) -> None:
        self.failures += 1
        self.log.warn(
            "{source}: cannot connect: {why}", source=self.name, why=failure.getErrorMessage()
        )
        self.set_state("reconnecting")

    def stopService(self) -> Deferred[None]:
        """Leave the rooms, end the stream and stop reconnecting; fires when it is gone."""
        super().stopService()
        self._stopping = True
        connection = self.connection
        if connection is not None:
            connection.send(st.presence(kind="unavailable"))
            # A stream already half gone cannot be closed politely; it is dropped below.
            with contextlib.suppress(Exception):
                connection.xs.sendFooter()
        service, self._service = self._service, None
        if service is None:
            self.set_state("stopped")
            return succeed(None)
        d = service.stopService()
        d.addCallback(lambda _: self.set_state("stopped"))
        return d

    def emit(self, event: Event) -> None:
        """Hand an event to the dispatcher (its replies come back through `send`)."""
        if self.running:
            self.dispatch(event)

    def invited(self, room: str, by: str, password: str | None) -> None:
        follow = self.follow_invites
        if follow == "always" or (follow == "subscribers" and self.accepts_subscription(by)):
            self.log.info(
                "{source}: invited to {room} by {by}; joining", source=self.name, room=room, by=by
            )
            self.join(room, password)

    # -- sending ------------------------------------------------------------------------

    def truncation_point(self, response: Response | None = None) -> int | None:
        return self.message_length * self.max_messages

    def send(self, response: Response) -> None:
        """Deliver one reply: a message (``groupchat`` to a room, ``chat`` to a person,
        split at line ends and spaces to fit ``message_length``; the first piece marked as
        a reply, every piece in its thread), a reaction, a correction of the bot's own
        message or its retraction."""
        target = response.target
        if not target or st.parse_jid(target) is None:
            self.log.warn("{source}: dropped a reply with no valid target ({target!r})",
                          source=self.name, target=target)  # fmt: skip
            return
        if "@" not in target and "/" not in target:
            # A bare nick (a plugin answering "privately" by nick): the occupant of that
            # nick in a room the bot is in; never a server named like the nick.
            found = self.occupant_jid(target)
            if found is None:
                self.log.info("{source}: no occupant {nick!r} in the bot's rooms; dropped a "
                              "message to them", source=self.name, nick=target)  # fmt: skip
                return
            target = found
        text = response.text if isinstance(response.text, str) else str(response.text)
        if response.kind == "reaction" and response.refers_to:
            self._react(target, response.refers_to, text)
        elif response.kind == "delete" and response.refers_to:
            self._retract(target, response.refers_to)
        elif response.kind == "edit" and response.refers_to:
            self._correct(response, target, response.refers_to, text)
        else:
            self._message(target, text, action=response.action, response=response)

    def occupant_jid(self, nick: str) -> str | None:
        """The room JID (``room@service/nick``) of the occupant called ``nick`` in the
        first room the bot is in that has one, or None."""
        connection = self.connection
        if connection is None:
            return None
        for room in connection.rooms.values():
            if room.joined and nick in room.occupants and nick != room.nick:
                return f"{room.jid}/{nick}"
        return None

    def _message(
        self, target: str, text: str, action: bool = False, response: Response | None = None
    ) -> None:
        connection = self.connection
        if connection is None:
            self.log.info("{source}: not connected; dropped a message to {target}",
                          source=self.name, target=target)  # fmt: skip
            return
        room = self.is_channel(target)
        kind = "groupchat" if room else "chat"
        if action:
            text = "/me " + text
        files = response.attachments if response is not None else ()
        if files:
            # The URLs in the body too, as XEP-0363 clients send them: a client that
            # knows no <x> still shows a link, and one alone is shown inline.
            text = "\n".join([*([text.rstrip()] if text.strip() else []), *(a.url for a in files)])
        reply = response.reply_to if response is not None else None
        thread = response.thread_id if response is not None else None
        pieces = self.pieces(st.xml_safe(text))
        for index, piece in enumerate(pieces):
            stanza = st.message(target, piece, kind)
            if files and index == len(pieces) - 1:
                for attachment in files:
                    model.add_oob(stanza, attachment)
            own = model.new_id()
            model.set_id(stanza, own)
            if isinstance(reply, str) and reply:
                seen = self.ledger.seen.get((target, reply))
                to = seen.author if seen is not None else None
                model.add_reply(stanza, reply, to, seen.text if seen is not None else None)
                reply = None  # the first piece answers; the rest follow it
            if thread:
                model.add_thread(stanza, thread)
            if room:
                # Its id in the room is the room's: learnt from the reflection.
                if response is not None:
                    self.ledger.pending[own] = (target, response, piece)
            else:
                self.ledger.own[(target, own)] = own
                self.ledger.saw(target, own, own, "", connection.jid.full(), piece)
                if response is not None:
                    self.remember_sent(response, own)
            connection.send(stanza)

    def _react(self, target: str, reacted: str, key: str) -> None:
        """React with ``key`` to ``reacted``: XEP-0444 sends the bot's whole set."""
        connection = self.connection
        key = key.strip()
        if connection is None or not key or len(key) > model.MAX_KEY:
            self.log.info("{source}: dropped a reaction {key!r} to {target}",
                          source=self.name, key=key, target=target)  # fmt: skip
            return
        mine = list(self.ledger.my_reactions.get((target, reacted)) or ())
        if key not in mine:
            mine = [*mine, key][-model.MAX_REACTIONS :]
        self.ledger.my_reactions[(target, reacted)] = tuple(mine)
        kind = "groupchat" if self.is_channel(target) else "chat"
        connection.send(model.reactions(target, kind, reacted, mine))

    def _correct(self, response: Response, target: str, message: str, text: str) -> None:
        """Replace the bot's message ``message`` by ``text`` (XEP-0308, which names the
        message by the bot's own id of it; one message, cut to ``message_length``)."""
        connection = self.connection
        own = self.ledger.own.get((target, message))
        if connection is None or own is None:
            if connection is not None and self.edit_fallback == "resend":
                self._message(target, text, response=response.replace(kind="message"))
            else:
                self.log.info("{source}: cannot correct {message} in {target}: not a message "
                              "the bot remembers sending", source=self.name, message=message,
                              target=target)  # fmt: skip
            return
        pieces = self.pieces(st.xml_safe(text)) or [""]
        kind = "groupchat" if self.is_channel(target) else "chat"
        stanza = st.message(target, pieces[0], kind)
        model.set_id(stanza, model.new_id())
        model.add_replace(stanza, own)
        connection.send(stanza)
        seen = self.ledger.seen.get((target, message))
        if seen is not None:
            self.ledger.seen[(target, message)] = model.Seen(seen.author, seen.sender, pieces[0])

    def _retract(self, target: str, message: str) -> None:
        """Take back the bot's message ``message`` (XEP-0424: in a room by the room's id
        of it, in a chat by the bot's own)."""
        connection = self.connection
        own = self.ledger.own.get((target, message))
        if connection is None or own is None:
            self.log.info("{source}: cannot retract {message} in {target}: not a message the "
                          "bot remembers sending", source=self.name, message=message,
                          target=target)  # fmt: skip
            return
        room = self.is_channel(target)
        retracted = message if room else own
        connection.send(model.retraction(target, "groupchat" if room else "chat", retracted, own))

    def pieces(self, text: str) -> list[str]:
        """``text`` in messages of at most ``message_length`` bytes (lines kept together
        while they fit), at most ``max_messages`` of them."""
        budget = self.message_length
        found: list[str] = []
        current = ""
        for line in text.split("\n"):
            for part in split_text(line, budget) or [""]:
                joined = f"{current}\n{part}" if current else part
                if len(joined.encode("utf-8")) <= budget:
                    current = joined
                else:
                    if current.strip():
                        found.append(current)
                    current = part
        if current.strip():
            found.append(current)
        return found[: self.max_messages]

    # -- IChannelSource -------------------------------------------------------------------

    def join(self, channel: str, key: str | None = None) -> None:
        """Join a room now (if connected) and after every reconnect."""
        found = st.parse_jid(channel)
        if found is None or not found.user:
            self.log.warn("{source}: not a room: {room!r}", source=self.name, room=channel)
            return
        room = found.userhost()
        self._wanted[room] = (None, key)
        if self.connection is not None:
            self.connection.join(room, self.room_nick(), key)

    def part(self, channel: str, message: str | None = None) -> None:
        """Leave a room and stop rejoining it."""
        found = st.parse_jid(channel)
        if found is None:
            return
        self._wanted.pop(found.userhost(), None)
        if self.connection is not None:
            self.connection.part(found.userhost(), message)

    def set_nick(self, nick: str) -> None:
        """Change the bot's nick in every room it is in (and use it from now on)."""
        nick = nick.strip()
        if not nick or st.parse_jid(f"room@example.org/{nick}") is None:
            raise ValueError(f"not a usable nick: {nick!r}")
        self._nick_override = self.nick = nick
        if self.connection is not None:
            for room in self.connection.rooms.values():
                if room.joined:
                    self.connection.send(st.presence(f"{room.jid}/{nick}"))

    def say(self, target: str, text: str) -> None:
        self._message(target, text)

    def do(self, target: str, text: str) -> None:
        self._message(target, text, action=True)

    def topic(self, channel: str, text: str) -> None:
        if self.connection is None:
            return
        stanza = st.message(channel, "", "groupchat")
        stanza.children = []
        stanza.addElement("subject", content=st.xml_safe(text))
        self.connection.send(stanza)

    def members(self, channel: str) -> dict[str, str]:
        return self.connection.members(channel) if self.connection is not None else {}

    def is_channel(self, target: str) -> bool:
        """Whether ``target`` is a room's bare JID (one the bot is in or wants). Any thread."""
        if not target or "/" in target:
            return False
        if target in self._wanted or any(target == room for room, _ in self._configured):
            return True
        found = st.parse_jid(target)
        if found is not None and found.user and found.host in self.muc_domains():
            return True
        connection = self.connection
        return connection is not None and target in connection.rooms

    def verified_identity(self, event: Event) -> str | None:
        """The sender's bare JID, when the server showed it (every private message; in a
        room only where real JIDs are visible); None for an occupant known by nick."""
        if event.source != self.name:
            return None
        jid = event.data.get("jid")
        return jid if isinstance(jid, str) and jid else None


class NoService(Exception):
    """The domain's SRV record says it offers no XMPP service."""


@implementer(IStreamClientEndpoint)
class _Endpoint:
    """The configured endpoint (or those the SRV records name, tried in turn), made
    fresh for each attempt, reporting a failure once none could be reached."""

    def __init__(self, source: XMPPSource, server: str | None) -> None:
        self.source = source
        self.server = server

    def connect(self, factory: Any) -> Deferred[Any]:
        d = self.source.servers()
        d.addCallback(self._try, factory)

        def failed(failure: Failure) -> Failure:
            self.source.connect_failed(failure)
            return failure

        d.addErrback(failed)
        return d

    def _try(self, servers: list[str], factory: Any) -> Deferred[Any]:
        first, rest = servers[0], servers[1:]
        d: Deferred[Any] = self.source._make_endpoint(first).connect(factory)
        if rest:

            def next_one(failure: Failure) -> Deferred[Any]:
                self.source.log.info("{source}: cannot connect to {server}: {why}",
                                     source=self.source.name, server=first,
                                     why=failure.getErrorMessage())  # fmt: skip
                return self._try(rest, factory)

            d.addErrback(next_one)
        return d


def srv_order(records: list[dns.Record_SRV], random: Callable[[], float]) -> list[dns.Record_SRV]:
    """SRV records in the order to try them (RFC 2782): lowest priority first; within a
    priority, picked at random in proportion to their weights."""
    ordered: list[dns.Record_SRV] = []
    for priority in sorted({r.priority for r in records}):
        group = sorted((r for r in records if r.priority == priority), key=lambda r: r.weight)
        while group:
            total = sum(r.weight for r in group)
            pick = random() * total
            chosen = group[0]
            running = 0
            for record in group:
                running += record.weight
                if running > pick:
                    chosen = record
                    break
            ordered.append(chosen)
            group.remove(chosen)
    return ordered


def _escape(host: str) -> str:
    """A host name as an endpoint string may carry it (colons and backslashes escaped)."""
    return host.replace("\\", "\\\\").replace(":", "\\:")


def _pem_blocks(data: bytes) -> list[bytes]:
    marker = b"-----END CERTIFICATE-----"
    return [block + marker for block in data.split(marker) if b"-----BEGIN" in block]
