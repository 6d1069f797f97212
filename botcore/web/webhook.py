"""Inbound webhooks for plugins: ``@webhook("/github", secret="secret")`` on a processor
method declares a route of the web front door. A request to it arrives through the normal
chain as a ``webhook`` event, so the plugin can answer in chat; the route is found among
the loaded processors on every request, so it lives and dies with its plugin (reload
included). An optional HMAC signature of the body, with a secret the plugin's config holds,
is checked (constant-time) before the event exists."""

from __future__ import annotations

import functools
import hashlib
import hmac
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from twisted.logger import Logger

from botcore.bus.catalogue import EventTypeSpec
from botcore.event import Event
from botcore.processor import Processor

#: The type of the events webhook requests become.
WEBHOOK = "webhook"

#: Its declaration in the event catalogue.
WEBHOOK_TYPE = EventTypeSpec(
    WEBHOOK,
    "A request to a webhook route a plugin declared (botcore.web.webhook).",
    {
        "type": "object",
        "properties": {
            "route": {"type": "string"},
            "plugin": {"type": "string"},
            "method": {"type": "string"},
            "headers": {"type": "object", "additionalProperties": {"type": "string"}},
            "body": {"type": "string"},
            "verified": {"type": "boolean"},
        },
        "required": ["route", "plugin", "method", "headers", "body", "verified"],
    },
)

_PATH = re.compile(r"^/[A-Za-z0-9][A-Za-z0-9_.-]*(?:/[A-Za-z0-9][A-Za-z0-9_.-]*)*$")
_DIGESTS = ("sha1", "sha256", "sha512")

log = Logger()


@dataclass(frozen=True)
class WebhookSpec:
    """A declared route: its path (under ``/webhooks``), the processor option holding the
    shared secret (None: unsigned requests are taken), the header carrying the signature,
    the text before the hex digest in it, and the HMAC digest."""

    path: str
    secret: str | None = None
    header: str = "X-Hub-Signature-256"
    prefix: str = "sha256="
    digest: str = "sha256"


def webhook(
    path: str,
    *,
    secret: str | None = None,
    header: str = "X-Hub-Signature-256",
    prefix: str = "sha256=",
    digest: str = "sha256",
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Run the method for requests to ``/webhooks<path>`` (POST). ``secret`` names the
    processor option whose value signs them: the request's ``header`` must then be
    ``prefix`` + the hex HMAC-``digest`` of the body, or it is refused (401), and a route
    whose secret is not configured refuses every request (503). The defaults are GitHub's.
    The processor must take ``webhook`` events (`WebhookProcessor` does)."""
    if not _PATH.match(path) or ".." in path:
        raise ValueError(
            f"a webhook path is /name[/name...] of letters, digits, _.-, not {path!r}"
        )
    if digest not in _DIGESTS:
        raise ValueError(f"digest must be one of {', '.join(_DIGESTS)}, not {digest!r}")
    spec = WebhookSpec(path, secret, header, prefix, digest)

    def wrap(function: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(function)
        def run(self: Processor, event: Event) -> None:
            # A handler of every event the processor takes: only its own requests.
            if (
                event.type == WEBHOOK
                and event.data.get("route") == path
                and event.data.get("plugin") == self.name
            ):
                function(self, event)

        run._botcore_match = None  # type: ignore[attr-defined]  # a @handler
        run._botcore_webhook = spec  # type: ignore[attr-defined]
        return run

    return wrap


class WebhookProcessor(Processor):
    """A processor for ``@webhook`` methods: takes ``webhook`` events, addressed or not."""

    abstract = True
    event_types: Iterable[str] | None = (WEBHOOK,)
    addressed = False


def specs_of(processor: Processor) -> list[WebhookSpec]:
    """The routes a processor declares."""
    found = []
    for klass in type(processor).__mro__:
        for value in vars(klass).values():
            spec = getattr(value, "_botcore_webhook", None)
            if isinstance(spec, WebhookSpec) and spec not in found:
                found.append(spec)
    return found


def routes(loaded: Mapping[str, Iterable[Processor]]) -> dict[str, tuple[Processor, WebhookSpec]]:
    """Path -> (processor, spec) for every route the loaded processors declare; where
    two declare one path the first loaded keeps it (and the other is logged)."""
    table: dict[str, tuple[Processor, WebhookSpec]] = {}
    for processors in loaded.values():
        for processor in processors:
            for spec in specs_of(processor):
                if spec.path in table:
                    other = table[spec.path][0]
                    if other is not processor:
                        log.warn(
                            "webhook {path} of {name} is taken by {other}; ignored",
                            path=spec.path,
                            name=processor.name,
                            other=other.name,
                        )
                    continue
                table[spec.path] = (processor, spec)
    return table


def signature_ok(spec: WebhookSpec, secret: str, body: bytes, given: str | None) -> bool:
    """Whether ``given`` (the signature header) is the body's HMAC under ``secret``,
    compared in constant time."""
    if given is None:
        return False
    expected = spec.prefix + hmac.new(secret.encode("utf-8"), body, spec.digest).hexdigest()
    return hmac.compare_digest(expected.encode("ascii"), given.strip().encode("utf-8", "replace"))


def sign(spec: WebhookSpec, secret: str, body: bytes) -> str:
    """The header value a sender computes for ``body`` (for tests and clients)."""
    return (
        spec.prefix
        + hmac.new(secret.encode("utf-8"), body, getattr(hashlib, spec.digest)).hexdigest()
    )
