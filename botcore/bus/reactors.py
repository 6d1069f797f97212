"""Reactors: what happens when an event of some types (or topics) is finished and a
condition holds — post it to a webhook, say something somewhere, publish another event —
declared in the config (``[reactor:NAME]``) or in code by a plugin (a condition function
and a reaction function). They run on the reactor thread after the event's replies have
been sent; a reaction that takes time (a webhook) runs asynchronously and never holds a
conversation. Every firing, condition false and failure is counted (`BusStats`) and every
failure logged."""

from __future__ import annotations

import copy
import hashlib
import hmac
import ipaddress
import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from twisted.internet.abstract import isIPAddress, isIPv6Address
from twisted.internet.defer import Deferred, succeed
from twisted.internet.endpoints import TCP4ClientEndpoint, TCP6ClientEndpoint, wrapClientTLS
from twisted.internet.interfaces import IResolutionReceiver, IStreamClientEndpoint
from twisted.internet.protocol import Protocol
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.iweb import IBodyProducer
from zope.interface import implementer

from botcore.bus.condition import ConditionError, compile_condition, compile_template, fields
from botcore.event import Event, Response
from botcore.options import (
    BoolOption,
    ChoiceOption,
    FloatOption,
    IntOption,
    ListOption,
    Option,
    options_of,
)

if TYPE_CHECKING:
    from botcore.bus.catalogue import Catalogue
    from botcore.bus.stats import BusStats
    from botcore.config import Config
    from botcore.interfaces import Reactor as TwistedReactor

#: Where an event published by a reactor records the reactors that led to it: a reactor
#: never fires on an event it led to, and a chain of reactors stops at `MAX_CHAIN`.
CHAIN_KEY = "botcore.reactors"
MAX_CHAIN = 8


@dataclass
class Reactor:
    """A reactor: ``reaction(event)`` runs (on the reactor thread) for each finished
    event of one of ``listens`` (types, with their subtypes, or topics) for which
    ``condition(event)`` is true (always, when None). ``reaction`` may return a Deferred;
    its failure counts as the reactor's."""

    name: str
    listens: frozenset[str]
    reaction: Callable[[Event], Any]
    condition: Callable[[Event], Any] | None = None
    #: Who declared it: ``config`` for ``[reactor:NAME]``, else the plugin's name.
    origin: str = "code"


class Reactors:
    """The bot's reactors, keyed by name. `observe` is a dispatcher observer. Reactor
    thread."""

    log = Logger()

    def __init__(self, catalogue: Catalogue, stats: BusStats) -> None:
        self.catalogue = catalogue
        self.stats = stats
        self._reactors: dict[str, Reactor] = {}

    def add(self, reactor: Reactor) -> None:
        """Add (or replace) a reactor."""
        self._reactors[reactor.name] = reactor

    def remove(self, name: str) -> None:
        """Take a reactor out (a plugin's shutdown); a name not there is no error."""
        self._reactors.pop(name, None)

    def replace_origin(self, origin: str, reactors: Iterable[Reactor]) -> None:
        """Every reactor of ``origin`` replaced by ``reactors`` (a config reload)."""
        for name in [n for n, r in self._reactors.items() if r.origin == origin]:
            del self._reactors[name]
        for reactor in reactors:
            self.add(reactor)

    def __iter__(self):
        return iter(list(self._reactors.values()))

    def __len__(self) -> int:
        return len(self._reactors)

    def observe(self, event: Event) -> None:
        """Fire the reactors that listen to ``event`` and whose condition holds."""
        if not self._reactors:
            return
        lineage = self.catalogue.ancestry(event.type)
        topics = self.catalogue.topics_of(event.type)
        chain = event.extra.get(CHAIN_KEY, ())
        for reactor in list(self._reactors.values()):
            if not any(name in lineage or name in topics for name in reactor.listens):
                continue
            if reactor.name in chain or len(chain) >= MAX_CHAIN:
                continue
            tally = self.stats.reactor(reactor.name)
            try:
                holds = reactor.condition is None or reactor.condition(event)
            except Exception:
                tally.failed += 1
                self.log.failure(
                    "reactor {name}: its condition failed on {type} event {id}",
                    name=reactor.name,
                    type=event.type,
                    id=event.id,
                )
                continue
            if not holds:
                tally.condition_false += 1
                continue
            tally.fired += 1
            try:
                result = reactor.reaction(event)
            except Exception:
                self._failed(Failure(), reactor.name, event)
                continue
            if isinstance(result, Deferred):
                result.addErrback(self._failed, reactor.name, event)

    def _failed(self, failure: Failure, name: str, event: Event) -> None:
        self.stats.reactor(name).failed += 1
        self.log.failure(
            "reactor {name} failed on {type} event {id}",
            failure,
            name=name,
            type=event.type,
            id=event.id,
        )


# -- [reactor:NAME] ---------------------------------------------------------------------


class ConditionOption(Option):
    """A condition in the reactors' expression language (`botcore.bus.condition`)."""

    kind = "condition"

    def parse(self, raw: str) -> str:
        try:
            compile_condition(raw)
        except ConditionError as error:
            raise ValueError(f"expected a condition such as data.env == 'prod': {error}") from None
        return raw.strip()


class MessageTemplateOption(Option):
    """Text with ``{expression}`` fields (`botcore.bus.condition.compile_template`)."""

    kind = "template"

    def parse(self, raw: str) -> str:
        try:
            compile_template(raw)
        except ConditionError as error:
            raise ValueError(f"expected text with fields such as {{data.env}}: {error}") from None
        return raw


class UrlOption(Option):
    """An http:// or https:// URL (or nothing)."""

    kind = "URL"

    def parse(self, raw: str) -> str:
        url = raw.strip()
        if url and not url.lower().startswith(("http://", "https://")):
            raise ValueError(f"expected an http:// or https:// URL, not {url!r}")
        return url


class ReactorSection:
    """Keys of a ``[reactor:NAME]`` section."""

    listens = ListOption(
        "Event types (with their subtypes) or topics the reactor listens to.", required=True
    )
    condition = ConditionOption(
        "When it fires: an expression over the event (type, source, channel, sender, "
        "public, text, data), e.g. data.env == 'prod'; empty: always.",
        "",
    )
    action = ChoiceOption(
        "What it does: webhook (post the event as JSON to url), say (message on "
        "source/target) or publish (an event of publish_type with the same payload).",
        required=True,
        choices=("webhook", "say", "publish"),
    )
    url = UrlOption("webhook: the http(s) URL the event is posted to.", "")
    secret = Option(
        "webhook: key of the HMAC-SHA256 signature sent in X-Botcore-Signature "
        "(sha256=HEX of the body); empty: not signed.",
        "",
        secret=True,
    )
    timeout = FloatOption("webhook: seconds one attempt may take.", 10.0, min=0.1)
    retries = IntOption("webhook: attempts after the first when one fails.", 3, min=0, max=20)
    retry_delay = FloatOption(
        "webhook: seconds before the first retry; each further one waits twice as long.",
        1.0,
        min=0,
    )
    allow_private = BoolOption(
        "webhook: also post to private, loopback and link-local addresses (a receiver on "
        "this machine or network); by default only public addresses.",
        False,
    )
    source = Option("say: the source to speak on (empty: the event's own).", "")
    target = Option("say: the channel or nick to speak to (empty: the event's channel).", "")
    message = MessageTemplateOption(
        "say: what to say, with {expression} fields, e.g. {sender} deployed {data.version}.",
        "",
    )
    publish_type = Option("publish: the type of the event published.", "")


#: The keys each action needs.
NEEDS = {"webhook": ("url",), "say": ("message",), "publish": ("publish_type",)}


def reactor_options(values: Mapping[str, str]) -> dict[str, Option]:
    """The options of a ``[reactor:NAME]`` section with these raw ``values``: the keys
    its action needs are required (so a missing one is reported with the config's other
    errors)."""
    options = options_of(ReactorSection)
    for key in NEEDS.get(values.get("action", "").strip(), ()):
        needed = copy.copy(options[key])
        needed.required = True
        options[key] = needed
    return options


def from_config(
    config: Config,
    *,
    reactor: TwistedReactor,
    publish: Callable[[Event], Deferred[Any]],
    route: Callable[[Event], None],
    agent: Any = None,
) -> list[Reactor]:
    """The reactors of ``config``'s ``[reactor:NAME]`` sections (checked already, with
    `reactor_options`, with the rest of the config)."""
    made = []
    for name in config.names("reactor"):
        section = config.section(f"reactor:{name}")
        action = section["action"]
        reaction: Callable[[Event], Any]
        if action == "webhook":
            reaction = Webhook(
                name,
                section["url"],
                secret=section.get("secret") or "",
                timeout=section["timeout"],
                retries=section["retries"],
                retry_delay=section["retry_delay"],
                allow_private=section["allow_private"],
                reactor=reactor,
                agent=agent,
            )
        elif action == "say":
            reaction = Say(
                name, section["message"], section.get("source"), section.get("target"), route
            )
        else:
            reaction = Publish(name, section["publish_type"], publish)
        condition = section.get("condition") or ""
        made.append(
            Reactor(
                name,
                frozenset(section["listens"]),
                reaction,
                _condition(condition) if condition else None,
                origin="config",
            )
        )
    return made


def _condition(text: str) -> Callable[[Event], Any]:
    compiled = compile_condition(text)
    return lambda event: compiled(fields(event))


class Say:
    """Says a templated message on a source and target (the event's, by default)."""

    def __init__(
        self,
        name: str,
        template: str,
        source: str | None,
        target: str | None,
        route: Callable[[Event], None],
    ) -> None:
        self.name = name
        self.render = compile_template(template)
        self.source = source or None
        self.target = target or None
        self.route = route

    def __call__(self, event: Event) -> None:
        source = self.source or event.source
        target = self.target or event.channel
        if target is None:
            raise ValueError(f"reactor {self.name}: the {event.type} event has no channel")
        carrier = Event(source=source, type="reactor", channel=target)
        carrier.responses.append(
            Response(self.render(fields(event)), target=target, source=source, address=False)
        )
        self.route(carrier)


class Publish:
    """Publishes an event of another type with the same payload (validated like any)."""

    def __init__(self, name: str, event_type: str, publish: Callable[[Event], Deferred[Any]]):
        self.name = name
        self.event_type = event_type
        self.publish = publish

    def __call__(self, event: Event) -> Deferred[Any]:
        new = Event(
            source=event.source,
            type=self.event_type,
            sender=event.sender,
            channel=event.channel,
            public=event.public,
            data=dict(event.data),
        )
        new.extra[CHAIN_KEY] = (*event.extra.get(CHAIN_KEY, ()), self.name)
        return self.publish(new)


# -- webhooks ---------------------------------------------------------------------------


class Refused(Exception):
    """A webhook address the bot will not post to."""


class WebhookTimeout(Exception):
    """A webhook did not answer in time."""


class WebhookFailed(Exception):
    """A webhook answered with a status that is not 2xx."""

    def __init__(self, status: int) -> None:
        super().__init__(f"the webhook answered {status}")
        self.status = status


def event_json(event: Event) -> dict[str, Any]:
    """What a webhook is sent of an event; the text only of a public one."""
    return {
        "id": event.id,
        "type": event.type,
        "source": event.source,
        "channel": event.channel,
        "public": event.public,
        "sender": event.sender.nick if event.sender is not None else None,
        "time": event.time.isoformat(),
        "data": json.loads(json.dumps(event.data, default=str)),
        "text": event.message.raw if event.message is not None and event.public else None,
    }


def signature(secret: str, body: bytes) -> str:
    """The ``X-Botcore-Signature`` header of ``body``: ``sha256=`` and the hex HMAC."""
    return "sha256=" + hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()


def public_address(address: str) -> bool:
    """Whether IP ``address`` is a public unicast address."""
    ip: Any = ipaddress.ip_address(address.split("%", 1)[0])
    if ip.version == 6 and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_global and not (ip.is_multicast or ip.is_reserved or ip.is_unspecified)


@implementer(IResolutionReceiver)
class _Resolved:
    def __init__(self) -> None:
        self.addresses: list[str] = []
        self.done: Deferred[list[str]] = Deferred()

    def resolutionBegan(self, resolution: Any) -> None:
        pass

    def addressResolved(self, address: Any) -> None:
        self.addresses.append(address.host)

    def resolutionComplete(self) -> None:
        self.done.callback(self.addresses)


@implementer(IStreamClientEndpoint)
class _GuardedEndpoint:
    """Connects to the host only when every address it resolves to may be posted to,
    and then to the address checked (not to a second lookup's answer)."""

    def __init__(self, reactor: Any, host: str, port: int, allow_private: bool) -> None:
        self.reactor, self.host, self.port = reactor, host, port
        self.allow_private = allow_private

    def connect(self, factory: Any) -> Deferred[Any]:
        if isIPAddress(self.host) or isIPv6Address(self.host):
            found: Deferred[list[str]] = succeed([self.host])
        else:
            receiver = _Resolved()
            self.reactor.nameResolver.resolveHostName(receiver, self.host, self.port)
            found = receiver.done

        def check(addresses: list[str]) -> Deferred[Any]:
            if not addresses:
                raise Refused(f"{self.host} has no address")
            if not self.allow_private:
                for address in addresses:
                    if not public_address(address):
                        raise Refused(
                            f"{self.host} is at {address}, not a public address "
                            "(allow_private = yes posts there)"
                        )
            address = addresses[0]
            kind = TCP6ClientEndpoint if ":" in address else TCP4ClientEndpoint
            return kind(self.reactor, address, self.port).connect(factory)

        return found.addCallback(check)


class _Endpoints:
    """The webhook agent's endpoints: http and https only, each one guarded."""

    def __init__(self, reactor: Any, allow_private: bool) -> None:
        from twisted.web.client import BrowserLikePolicyForHTTPS

        self.reactor, self.allow_private = reactor, allow_private
        self.tls = BrowserLikePolicyForHTTPS()

    def endpointForURI(self, uri: Any) -> Any:
        scheme = uri.scheme.decode("ascii").lower()
        if scheme not in ("http", "https"):
            raise Refused(f"{scheme} URLs are not posted to")
        host = uri.host.decode("ascii") if isinstance(uri.host, bytes) else uri.host
        endpoint = _GuardedEndpoint(self.reactor, host.strip("[]"), uri.port, self.allow_private)
        if scheme == "https":
            return wrapClientTLS(self.tls.creatorForNetloc(uri.host, uri.port), endpoint)
        return endpoint


@implementer(IBodyProducer)
class _Body:
    """A request body that is already all in memory (a JSON document): written at once."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.length = len(data)

    def startProducing(self, consumer: Any) -> Deferred[None]:
        consumer.write(self.data)
        return succeed(None)

    def pauseProducing(self) -> None:
        pass

    def resumeProducing(self) -> None:
        pass

    def stopProducing(self) -> None:
        pass


class _Discard(Protocol):
    """Reads a response's body into nothing (only the status matters)."""

    def __init__(self, done: Deferred[None]) -> None:
        self.done = done

    def dataReceived(self, data: bytes) -> None:
        pass

    def connectionLost(self, reason: Any = None) -> None:
        self.done.callback(None)


class Webhook:
    """Posts each event as JSON to a URL: ``{"reactor": NAME, "event": {...}}``, signed
    with HMAC-SHA256 when there is a secret; an attempt that fails (no connection, a
    timeout, a 5xx answer) is retried after ``retry_delay`` seconds, doubling, up to
    ``retries`` times; a 4xx answer or a refused address is not retried. The returned
    Deferred fires once the post succeeded, or fails after the last attempt. Reactor
    thread."""

    log = Logger()

    def __init__(
        self,
        name: str,
        url: str,
        *,
        secret: str,
        timeout: float,
        retries: int,
        retry_delay: float,
        allow_private: bool,
        reactor: Any,
        agent: Any = None,
    ) -> None:
        from twisted.web.client import Agent, HTTPConnectionPool

        self.name = name
        self.url = url
        self.secret = secret
        self.timeout = timeout
        self.retries = retries
        self.retry_delay = retry_delay
        self.reactor = reactor
        if agent is None:
            pool = HTTPConnectionPool(reactor, persistent=False)
            agent = Agent.usingEndpointFactory(
                reactor, _Endpoints(reactor, allow_private), pool=pool
            )
        self.agent = agent

    def body(self, event: Event) -> bytes:
        return json.dumps({"reactor": self.name, "event": event_json(event)}).encode("utf-8")

    def headers(self, event: Event, body: bytes) -> Any:
        from twisted.web.http_headers import Headers

        headers = Headers(
            {
                b"Content-Type": [b"application/json"],
                b"User-Agent": [b"botcore-reactor"],
                b"X-Botcore-Event": [event.type.encode("utf-8")],
            }
        )
        if self.secret:
            headers.addRawHeader(b"X-Botcore-Signature", signature(self.secret, body).encode())
        return headers

    def __call__(self, event: Event) -> Deferred[None]:
        body = self.body(event)
        headers = self.headers(event, body)
        done: Deferred[None] = Deferred()
        self._attempt(body, headers, 0, done)
        return done

    def _attempt(self, body: bytes, headers: Any, attempt: int, done: Deferred[None]) -> None:
        d = self.agent.request(b"POST", self.url.encode("utf-8"), headers, _Body(body))
        d.addCallback(self._answered)
        timer = self.reactor.callLater(self.timeout, d.cancel)

        def succeeded(_: Any) -> None:
            if timer.active():
                timer.cancel()
            done.callback(None)

        def failed(failure: Failure) -> None:
            if timer.active():
                timer.cancel()
            else:
                failure = Failure(WebhookTimeout(f"no answer in {self.timeout}s"))
            error = failure.value
            permanent = isinstance(error, Refused) or (
                isinstance(error, WebhookFailed) and error.status < 500
            )
            if permanent or attempt >= self.retries:
                done.errback(failure)
                return
            delay = self.retry_delay * 2**attempt
            self.log.info(
                "reactor {name}: post to {url} failed ({why}); retrying in {delay}s",
                name=self.name,
                url=self.url,
                why=failure.getErrorMessage(),
                delay=delay,
            )
            self.reactor.callLater(delay, self._attempt, body, headers, attempt + 1, done)

        d.addCallbacks(succeeded, failed)

    def _answered(self, response: Any) -> Deferred[None]:
        read: Deferred[None] = Deferred()
        response.deliverBody(_Discard(read))
        if not 200 <= response.code < 300:
            return read.addCallback(lambda _: _raise(WebhookFailed(response.code)))
        return read


def _raise(error: Exception) -> None:
    raise error
