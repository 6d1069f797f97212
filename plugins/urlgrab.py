"""Remembers every web address the bot sees (who said it, where and when) and, if turned
on, fetches each page's title in the background and says ``title: ...``.

Ask ``last url``, ``urls from <who>`` or ``search urls for <text>``: about the channel you
ask in, or, in private, about your private conversation with the bot (name a channel to ask
about it instead: ``last url in #channel``). Addresses said in private are recorded too,
but only ever shown in that private conversation, and only to the person who said them
(to their account, authenticated, when they said them authenticated; else to the same
identity on the same connection), never to the next holder of the nick.
Titles come only from successful (2xx) HTML pages at public addresses."""

from __future__ import annotations

import codecs
import ipaddress
import re
import threading
from collections.abc import Sequence
from datetime import datetime
from html.parser import HTMLParser
from typing import TYPE_CHECKING, Any, TypeVar

from sqlalchemy import Index, Integer, String, and_, delete, false, func, or_, select
from sqlalchemy.orm import Mapped, mapped_column
from twisted.internet import defer
from twisted.internet.abstract import isIPAddress, isIPv6Address
from twisted.internet.endpoints import TCP4ClientEndpoint, TCP6ClientEndpoint, wrapClientTLS
from twisted.internet.interfaces import IPushProducer, IResolutionReceiver, IStreamClientEndpoint
from twisted.internet.protocol import Protocol
from twisted.logger import Logger
from zope.interface import implementer

from botcore.accounts.identify import proven_account
from botcore.db.engine import mark_written
from botcore.db.models import Base
from botcore.db.types import CIText, UTCDateTime
from botcore.event import Event, EventType
from botcore.humanize import ago
from botcore.options import BoolOption, FloatOption, IntOption, ListOption, Option
from botcore.processor import Priority, Processor, handler, match
from botcore.source import is_channel_on

if TYPE_CHECKING:
    from sqlalchemy import ColumnElement
    from twisted.python.failure import Failure

_T = TypeVar("_T")

#: A URL in running text: a scheme and ``://``, or a bare ``www.`` host.
URL_PATTERN = re.compile(r"(?:\b[a-z][a-z0-9+.-]*://|\bwww\.)[^\s<>\"']+", re.IGNORECASE)
_TRAILING = ".,;:!?'\""
#: At most this many URLs of one message are recorded and looked up.
MAX_URLS_PER_MESSAGE = 5
#: At most this many title fetches run at once; URLs beyond get no title.
MAX_FETCHES = 8
#: A source's URLs are first counted against ``max_per_source`` after this many messages
#: with URLs there (counting a source reads all its rows, too much for a message), and
#: from then on in memory.
SOURCE_CHECK_EVERY = 50
#: The most conversations (and sources) whose URLs are counted in memory; past that the
#: counts are forgotten and counted again from the database as they come.
MAX_COUNTED = 10000
_CONTROL = re.compile(r"[\x00-\x1f\x7f]+")


class GrabbedURL(Base):
    """One URL said in a channel: where, by whom, when, and its page title once fetched."""

    __tablename__ = "urls"
    __table_args__ = (
        Index("ix_urls_source_channel_time", "source", "channel", "time"),
        Index("ix_urls_source_nick", "source", "nick"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    source: Mapped[str] = mapped_column(CIText(64))
    channel: Mapped[str] = mapped_column(CIText(255))
    sender_id: Mapped[str] = mapped_column(String(255))
    nick: Mapped[str] = mapped_column(CIText(255))
    #: The sender's identity (accounts); None for an anonymous sender (an id too long).
    identity_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    #: Who may see a URL said in private: the account it was said by when the sender was
    #: authenticated; otherwise (None) its identity on its ``connection`` only.
    account_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    connection: Mapped[str | None] = mapped_column(String(255), nullable=True)
    url: Mapped[str] = mapped_column(CIText(2048))
    title: Mapped[str | None] = mapped_column(CIText(512), nullable=True)
    time: Mapped[datetime] = mapped_column(UTCDateTime())


#: One URL recorded (built once: building costs more than running it).
_INSERT = Base.metadata.tables[GrabbedURL.__tablename__].insert()


def find_urls(text: str) -> list[str]:
    """The URLs in ``text``, in order, without trailing punctuation or an unbalanced
    closing parenthesis; ``www.`` hosts get ``http://``."""
    found = []
    for match_ in URL_PATTERN.finditer(text):
        url = match_.group(0)
        while url and (
            url[-1] in _TRAILING or (url[-1] == ")" and url.count("(") < url.count(")"))
        ):
            url = url[:-1]
        if "://" not in url:
            url = "http://" + url
        if url.partition("://")[2]:
            found.append(url)
    return found


def _scope(source: str, channel: str | None) -> tuple[ColumnElement[bool], ...]:
    """The conditions of a source's rows, or of one conversation's (``channel``)."""
    if channel is None:
        return (GrabbedURL.source == source,)
    return (GrabbedURL.source == source, GrabbedURL.channel == channel)


class UrlGrab(Processor):
    """Records the URLs said in channels and (with ``fetch_titles``) posts page titles."""

    usage = "(automatic) remembers URLs said in channels; says their titles if configured"
    features = ("urlgrab", "url")
    addressed = False
    priority = Priority.WATCH  # before commands mark the event processed; after Ignore
    event_types = (EventType.MESSAGE, EventType.ACTION)

    fetch_titles = BoolOption(
        "Fetch the title of each http/https page said in a channel and say it.", False
    )
    title_timeout = FloatOption(
        "Seconds a title fetch may take in all (connect, redirects, body).", 10.0, min=0.1
    )
    title_max_bytes = IntOption(
        "Bytes of a page read at most when looking for its title.", 65536, min=1024
    )
    title_max_length = IntOption("Characters of a title said at most.", 200, min=10)
    title_redirects = IntOption("Redirects followed when fetching a title.", 5, min=0)
    title_private = BoolOption("Also say titles of URLs said to the bot in private.", False)
    allowed_networks = ListOption(
        "Networks (CIDR, e.g. 10.0.0.0/8) titles may be fetched from although they are "
        "private, loopback or link-local; by default only public addresses are fetched.",
        [],
    )
    user_agent = Option("User-Agent sent when fetching titles.", "botcore-urlgrab")
    max_per_conversation = IntOption(
        "The most URLs kept for one conversation (a channel, or one private "
        "correspondent); past that the oldest are forgotten.",
        1000,
        min=1,
    )
    max_per_source = IntOption(
        "The most URLs kept for one source (network) in all; past that its oldest are "
        "forgotten, so strangers cannot fill the database however many nicks they use "
        "(first counted after 50 messages with URLs there).",
        50000,
        min=1,
    )

    log = Logger()

    def __init__(self, *args: Any, **kw: Any) -> None:
        super().__init__(*args, **kw)
        #: The reactor titles are fetched on (the bot's unless a test gives another).
        self.http_reactor: Any = None
        #: Title fetches under way (reactor thread): cancelled at shutdown.
        self.fetches: set[defer.Deferred[str | None]] = set()
        self._networks: tuple[Any, ...] = ()
        self._lock = threading.Lock()
        #: How many URLs each conversation ((source, folded channel) -> count) and each
        #: source (source -> count) keeps, at most: counted in the database once, then
        #: kept up to date here (see `prune`).
        self._counts: dict[Any, int] = {}
        #: source -> messages with URLs there before its first count.
        self._uncounted: dict[str, int] = {}

    def setup(self) -> None:
        networks = []
        for text in self.allowed_networks:
            try:
                networks.append(ipaddress.ip_network(text, strict=False))
            except ValueError as e:
                raise ValueError(f"allowed_networks: {text!r} is not a network: {e}") from None
        self._networks = tuple(networks)

    def shutdown(self) -> None:
        for d in list(self.fetches):
            d.cancel()

    @handler
    def record(self, event: Event) -> None:
        """Store the message's URLs; start title fetches. Worker thread."""
        if event.message is None or event.sender is None:
            return
        urls = find_urls(event.message.raw)[:MAX_URLS_PER_MESSAGE]
        if not urls:
            return
        # A private conversation's key (the correspondent) never looks like a channel
        # name, so what is said in private can only be asked about in private.
        sender = event.sender
        common = {
            "source": event.source,
            "channel": event.channel or "",
            "sender_id": sender.id[:255],
            "nick": sender.nick[:255],
            "identity_id": event.identity,
            "account_id": proven_account(event),
            "connection": (sender.connection or "")[:255],
            "title": None,
            "time": event.time,
        }
        rows = [{**common, "url": url[:2048]} for url in urls]
        connection = event.session.connection()
        fetch = self.fetch_titles and (event.public or self.title_private)
        ids: list[int | None] = []
        if fetch:
            # Their ids, for the titles: one statement each (few URLs to a message).
            for row in rows:
                inserted = connection.execute(_INSERT, row).inserted_primary_key
                ids.append(None if inserted is None else inserted[0])
        else:
            connection.execute(_INSERT, rows)
        mark_written(event.session)
        self.prune(event, len(rows))
        if not fetch:
            return
        for url, row_id in zip(urls, ids, strict=True):
            if url.lower().startswith(("http://", "https://")):
                self.bot.call_from_thread(self.start_fetch, event, url, row_id)

    def prune(self, event: Event, added: int = 0) -> None:
        """Forget the oldest URLs of the event's conversation past
        ``max_per_conversation`` and of its source past ``max_per_source``, ``added`` URLs
        having just been recorded there. A conversation is counted in the database the
        first time (which reads its index), a source after `SOURCE_CHECK_EVERY` messages
        with URLs there (which reads all its rows: it may be passed by that many messages'
        URLs meanwhile); from then on both are counted here: nothing is read until a count
        passes its cap, and then only the excess oldest. (Rows deleted meanwhile by
        anything else make the count here too high, never too low: a few more of the
        oldest may be forgotten.) Worker thread."""
        source, channel = event.source, event.channel or ""
        # Keyed case-blind, as the channel column compares (near enough: a name spelled
        # two ways NFKC folds alike would be counted twice, each too low). The conditions
        # are built only for a statement: building them costs more than the counting.
        checks: tuple[tuple[Any, bool, int], ...] = (
            ((source, channel.casefold()), True, self.max_per_conversation),
            (source, False, self.max_per_source),
        )
        session = event.session
        for key, by_channel, cap in checks:
            with self._lock:
                kept = self._counts.get(key)
                if kept is not None:
                    kept = self._counts[key] = kept + added
                elif key == source:
                    since = self._uncounted.get(source, 0) + 1
                    self._uncounted[source] = since
                    if since < SOURCE_CHECK_EVERY:
                        continue
                    del self._uncounted[source]
            where: tuple[ColumnElement[bool], ...] = ()
            if kept is None:
                where = _scope(source, channel if by_channel else None)
                kept = int(
                    session.scalar(select(func.count()).select_from(GrabbedURL).where(*where)) or 0
                )
            excess = kept - cap
            if excess > 0:
                where = where or _scope(source, channel if by_channel else None)
                # The ids first: MySQL takes no LIMIT in a DELETE's subquery.
                oldest = session.scalars(
                    select(GrabbedURL.id)
                    .where(*where)
                    .order_by(GrabbedURL.time, GrabbedURL.id)
                    .limit(excess)
                ).all()
                session.execute(delete(GrabbedURL).where(GrabbedURL.id.in_(oldest)))
                kept -= len(oldest)
                self.log.debug(
                    "source {source}: forgot the {count} oldest URLs (past {cap})",
                    source=source,
                    count=len(oldest),
                    cap=cap,
                )
            with self._lock:
                if key not in self._counts and len(self._counts) >= MAX_COUNTED:
                    self._counts.clear()
                self._counts[key] = kept

    def start_fetch(self, event: Event, url: str, row_id: int | None) -> defer.Deferred:
        """Fetch ``url``'s title; once found, say it in the event's conversation through the
        dispatcher (a delayed event). Reactor thread. Fires with the title or None; never
        fails (refusals and network errors are logged)."""
        reactor = self.http_reactor or self.bot.reactor
        if len(self.fetches) >= MAX_FETCHES:
            self.log.info("not fetching {url}: {n} fetches under way", url=url, n=MAX_FETCHES)
            return defer.succeed(None)
        d = defer.Deferred.fromCoroutine(
            fetch_title(
                reactor,
                url,
                allowed=self._networks,
                max_bytes=self.title_max_bytes,
                redirects=self.title_redirects,
                user_agent=self.user_agent,
                timeout=self.title_timeout,
            )
        )
        # On the bot's clock (the same reactor outside tests).
        d.addTimeout(self.title_timeout, self.bot.reactor)
        self.fetches.add(d)

        def done(title: str | None) -> str | None:
            if title:
                title = shorten(title, self.title_max_length)
                self.bot.call_later(0, self.say_title, event, row_id, title)
            return title

        def failed(failure: Failure) -> None:
            if failure.check(Refused):
                self.log.info("not fetching {url}: {why}", url=url, why=failure.value)
            elif failure.check(defer.CancelledError, defer.TimeoutError):
                self.log.info("title fetch of {url} cancelled or timed out", url=url)
            else:
                self.log.info(
                    "title fetch of {url} failed: {why}", url=url, why=failure.getErrorMessage()
                )
            return None

        def untrack(result: _T) -> _T:
            self.fetches.discard(d)
            return result

        d.addCallbacks(done, failed)
        d.addBoth(untrack)
        return d

    def say_title(self, event: Event, row_id: int | None, title: str) -> None:
        """Store the title and say it (a delayed event of the URL's conversation). Worker
        thread."""
        if row_id is not None:
            row = event.session.get(GrabbedURL, row_id)
            if row is not None:
                row.title = title[:512]
        event.addresponse("title: %s", (title,), address=False)


def shorten(text: str, limit: int) -> str:
    """``text`` without control characters and runs of space, cut to ``limit``."""
    text = " ".join(_CONTROL.sub(" ", text).split())
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "\N{HORIZONTAL ELLIPSIS}"


class UrlQuery(Processor):
    """Answers questions about the URLs recorded."""

    usage = "last url [in <channel>] | urls from <who> [in <channel>] | search urls for <text>"
    features = ("urlgrab", "url")

    list_limit = IntOption("URLs listed at most by 'urls from' and 'search urls'.", 5, min=1)

    def _channel(self, event: Event, channel: str | None) -> str | None:
        """The conversation asked about: a named channel, else the one asked in; None when
        the name is no channel on the event's source. (A private conversation is keyed
        by the correspondent, never a channel: what is said in private can only be asked
        about in private.)"""
        if channel is None:
            return event.channel
        return channel if is_channel_on(self.bot, event.source, channel) else None

    def _owned(self, event: Event, channel: str) -> list[Any]:
        """The conditions that keep a private conversation's URLs to the person who said
        them. A private conversation is keyed by the correspondent's nick, which the next
        holder of the nick inherits (and on the console the nick is the identity): a URL
        said authenticated is shown only to that account, authenticated; one said
        unauthenticated only to the same identity on the same connection. A channel's
        URLs are everyone's there (no condition)."""
        if is_channel_on(self.bot, event.source, channel):
            return []
        sender = event.sender
        conditions = []
        if event.identity is not None and sender is not None:
            conditions.append(
                and_(
                    GrabbedURL.account_id.is_(None),
                    GrabbedURL.identity_id == event.identity,
                    # Rows recorded before connections were: their identity alone.
                    or_(
                        GrabbedURL.connection.is_(None),
                        GrabbedURL.connection == (sender.connection or "")[:255],
                    ),
                )
            )
        account = proven_account(event)
        if account is not None:
            conditions.append(GrabbedURL.account_id == account)
        return [or_(*conditions)] if conditions else [false()]

    def _describe(self, row: GrabbedURL) -> str:
        now = self.bot.now()
        said = ago((now - row.time).total_seconds())
        title = f" ({row.title})" if row.title else ""
        return f"{row.url}{title} from {row.nick} {said}"

    @match(r"^last\s+url(?:\s+in\s+(\S+))?$", simple=False)
    def last(self, event: Event, channel: str | None) -> None:
        channel = self._channel(event, channel)
        if channel is None:
            return
        row = event.session.scalars(
            select(GrabbedURL)
            .where(
                GrabbedURL.source == event.source,
                GrabbedURL.channel == channel,
                *self._owned(event, channel),
            )
            .order_by(GrabbedURL.time.desc(), GrabbedURL.id.desc())
            .limit(1)
        ).first()
        if row is None:
            where = f"in {channel}" if event.public or channel != event.channel else "here"
            event.addresponse(f"I haven't seen any URL {where}")
            return
        event.addresponse(self._describe(row))

    @match(r"^urls\s+(?:from|by)\s+(\S+?)(?:\s+in\s+(\S+))?$", simple=False)
    def urls_from(self, event: Event, who: str, channel: str | None) -> None:
        channel = self._channel(event, channel)
        if channel is None:
            return
        self._list(
            event,
            [GrabbedURL.nick == who],
            channel,
            f"I haven't seen any URL from {who} in {channel}",
        )

    @match(
        r"^search\s+urls?\s+for\s+(?P<whole>(?P<text>.+?)(?:\s+in\s+(?P<channel>\S+))?)$",
        simple=False,
    )
    def search(self, event: Event, whole: str, text: str, channel: str | None) -> None:
        if channel is not None and not is_channel_on(self.bot, event.source, channel):
            text, channel = whole, None  # "in <no channel>" is part of what is looked for
        channel = self._channel(event, channel)
        if channel is None:
            return
        pattern = "%" + re.sub(r"([\\%_])", r"\\\1", text.strip()) + "%"
        condition = or_(
            GrabbedURL.url.like(pattern, escape="\\"), GrabbedURL.title.like(pattern, escape="\\")
        )
        self._list(event, [condition], channel, f"No URL in {channel} matches {text!r}")

    def _list(self, event: Event, conditions: Sequence[Any], channel: str, none: str) -> None:
        rows = event.session.scalars(
            select(GrabbedURL)
            .where(
                GrabbedURL.source == event.source,
                GrabbedURL.channel == channel,
                *self._owned(event, channel),
                *conditions,
            )
            .order_by(GrabbedURL.time.desc(), GrabbedURL.id.desc())
            .limit(self.list_limit)
        ).all()
        if not rows:
            event.addresponse(none)
            return
        event.addresponse("; ".join(self._describe(row) for row in rows))


# -- fetching titles safely (reactor thread) ------------------------------------------------


class Refused(Exception):
    """A URL the bot will not fetch (scheme, or an address that is not public)."""


def address_allowed(address: str, allowed: Sequence[Any] = ()) -> bool:
    """Whether the bot may connect to IP ``address``: a public unicast address, or one in
    an ``allowed`` network."""
    ip: Any = ipaddress.ip_address(address.split("%", 1)[0])
    if ip.version == 6 and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    if any(ip.version == net.version and ip in net for net in allowed):
        return True
    return ip.is_global and not (ip.is_multicast or ip.is_reserved or ip.is_unspecified)


@implementer(IResolutionReceiver)
class _Addresses:
    def __init__(self) -> None:
        self.addresses: list[str] = []
        self.done: defer.Deferred[list[str]] = defer.Deferred()

    def resolutionBegan(self, resolutionInProgress: Any) -> None:
        pass

    def addressResolved(self, address: Any) -> None:
        self.addresses.append(address.host)

    def resolutionComplete(self) -> None:
        self.done.callback(self.addresses)


def resolve(reactor: Any, host: str, port: int) -> defer.Deferred[list[str]]:
    """Every address ``host`` resolves to (itself if it is an IP address)."""
    if isIPAddress(host) or isIPv6Address(host):
        return defer.succeed([host])
    receiver = _Addresses()
    reactor.nameResolver.resolveHostName(receiver, host, port)
    return receiver.done


@implementer(IStreamClientEndpoint)
class CheckedEndpoint:
    """Connects to ``host`` only when every address it resolves to is allowed (so DNS
    cannot point one name at both a public and a private address), and then to the
    address checked, not to a second lookup's answer."""

    def __init__(
        self, reactor: Any, host: str, port: int, allowed: Sequence[Any], timeout: float
    ) -> None:
        self.reactor, self.host, self.port = reactor, host, port
        self.allowed, self.timeout = allowed, timeout

    def connect(self, protocolFactory: Any) -> defer.Deferred[Any]:
        def check(addresses: list[str]) -> defer.Deferred[Any]:
            if not addresses:
                raise Refused(f"{self.host} has no address")
            for address in addresses:
                if not address_allowed(address, self.allowed):
                    raise Refused(f"{self.host} is at {address}, which is not a public address")
            address = addresses[0]
            endpoint_class = TCP6ClientEndpoint if ":" in address else TCP4ClientEndpoint
            endpoint = endpoint_class(self.reactor, address, self.port, timeout=self.timeout)
            return endpoint.connect(protocolFactory)

        return resolve(self.reactor, self.host, self.port).addCallback(check)


class CheckedEndpoints:
    """An ``IAgentEndpointFactory``: http and https only, every connection (redirects
    included) through a `CheckedEndpoint`."""

    def __init__(self, reactor: Any, allowed: Sequence[Any], timeout: float) -> None:
        from twisted.web.client import BrowserLikePolicyForHTTPS

        self.reactor, self.allowed, self.timeout = reactor, allowed, timeout
        self.tls = BrowserLikePolicyForHTTPS()

    def endpointForURI(self, uri: Any) -> Any:
        scheme = uri.scheme.decode("ascii").lower()
        if scheme not in ("http", "https"):
            raise Refused(f"{scheme} URLs are not fetched")
        host = uri.host.decode("ascii") if isinstance(uri.host, bytes) else uri.host
        endpoint = CheckedEndpoint(
            self.reactor, host.strip("[]"), uri.port, self.allowed, self.timeout
        )
        if scheme == "https":
            return wrapClientTLS(self.tls.creatorForNetloc(uri.host, uri.port), endpoint)
        return endpoint


class _TitleParser(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.title: str | None = None
        self._parts: list[str] | None = None
        self._depth_svg = 0

    def handle_starttag(self, tag: str, attrs: Any) -> None:
        if tag == "svg":
            self._depth_svg += 1
        elif tag == "title" and self.title is None and not self._depth_svg:
            self._parts = []

    def handle_endtag(self, tag: str) -> None:
        if tag == "svg":
            self._depth_svg = max(self._depth_svg - 1, 0)
        elif tag == "title" and self._parts is not None:
            self.title = "".join(self._parts)
            self._parts = None

    def handle_data(self, data: str) -> None:
        if self._parts is not None:
            self._parts.append(data)


_META_CHARSET = re.compile(rb"""<meta[^>]+charset\s*=\s*["']?([A-Za-z0-9_.:-]+)""", re.I)
_HEADER_CHARSET = re.compile(r"charset\s*=\s*[\"']?([A-Za-z0-9_.:-]+)", re.I)


def page_title(body: bytes, content_type: str = "") -> str | None:
    """The ``<title>`` of an HTML page (possibly cut short), decoded by the charset of the
    Content-Type header, else of a ``<meta>`` tag, else UTF-8."""
    encoding = "utf-8"
    for found in (_HEADER_CHARSET.search(content_type), _META_CHARSET.search(body[:4096])):
        if found is None:
            continue
        name = found.group(1)
        name = name.decode("ascii", "replace") if isinstance(name, bytes) else name
        try:
            encoding = codecs.lookup(name).name
        except LookupError:
            continue
        break
    parser = _TitleParser()
    parser.feed(body.decode(encoding, "replace"))
    title = parser.title
    if title is None and parser._parts:  # cut short inside the title
        title = "".join(parser._parts)
    title = " ".join((title or "").split())
    return title or None


async def fetch_title(
    reactor: Any,
    url: str,
    *,
    allowed: Sequence[Any] = (),
    max_bytes: int = 65536,
    redirects: int = 5,
    user_agent: str = "botcore-urlgrab",
    timeout: float = 10.0,
) -> str | None:
    """The title of the HTML page at ``url``, or None (not a successful HTML page, no
    title). Fails with `Refused` for a scheme other than http/https or a host that is not
    public (unless in ``allowed``), at the first request and at every redirect. Reads at
    most ``max_bytes`` of the body. Reactor thread; the caller bounds the time
    (``Deferred.addTimeout``)."""
    from twisted.web.client import Agent, HTTPConnectionPool, RedirectAgent
    from twisted.web.http_headers import Headers

    if not url.lower().startswith(("http://", "https://")):
        raise Refused("only http and https URLs are fetched")
    pool = HTTPConnectionPool(reactor, persistent=False)
    agent = Agent.usingEndpointFactory(
        reactor, CheckedEndpoints(reactor, allowed, timeout), pool=pool
    )
    headers = Headers(
        {
            b"User-Agent": [user_agent.encode("utf-8")],
            b"Accept": [b"text/html,application/xhtml+xml"],
        }
    )
    response = await RedirectAgent(agent, redirectLimit=redirects).request(
        b"GET", request_uri(url), headers
    )
    content_type = (response.headers.getRawHeaders(b"content-type") or [b""])[0]
    content_type = content_type.decode("latin-1")
    is_html = content_type.split(";")[0].strip().lower() in ("text/html", "application/xhtml+xml")
    # An error page's title ("404 Not Found") says nothing about what was linked.
    if not (200 <= response.code < 300 and is_html):
        response.deliverBody(BodyReader(0))  # drops the connection
        return None
    reader = BodyReader(max_bytes)
    response.deliverBody(reader)
    body = await reader.done
    return page_title(body[:max_bytes], content_type)


def request_uri(url: str) -> bytes:
    """``url`` as the ASCII URI sent: the host in IDNA, the path and query percent-encoded,
    no fragment. An IP literal host (``http://[::1]:8080/``) is kept as it is: IDNA has no
    spelling for it. Raises `Refused` for a URL that cannot be sent."""
    from hyperlink import EncodedURL  # with the HTTP client: when a title is first fetched

    try:
        parsed = EncodedURL.from_text(url).replace(fragment="")
        host = parsed.host
        if isIPAddress(host) or isIPv6Address(host):
            uri = parsed.replace(host="").to_uri().replace(host=host)
        else:
            uri = parsed.to_uri()
        return uri.to_text().encode("ascii")
    except (ValueError, UnicodeError) as e:
        raise Refused(f"not a URL that can be fetched: {e}") from None


class BodyReader(Protocol):
    """Reads a response body until ``limit`` bytes or the end of a ``<title>``, then drops
    the connection; ``done`` fires with what was read. Cancelling ``done`` (a timeout)
    drops the connection too, so a server trickling its body holds nothing open."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.chunks: list[bytes] = []
        self.size = 0
        self.done: defer.Deferred[bytes] = defer.Deferred(self._stop)

    def _stop(self, _: Any = None) -> None:
        if self.transport is not None:
            # deliverBody connects the reader to the response's IPushProducer, not to an
            # ITransport: stopping it drops the connection.
            IPushProducer(self.transport).stopProducing()

    def dataReceived(self, data: bytes) -> None:
        if self.done.called:
            return
        self.chunks.append(data)
        self.size += len(data)
        if self.size >= self.limit or b"</title" in data.lower():
            self._stop()
            self._finish()

    def connectionLost(self, reason: Any = None) -> None:
        self._finish()

    def _finish(self) -> None:
        if not self.done.called:
            self.done.callback(b"".join(self.chunks))
