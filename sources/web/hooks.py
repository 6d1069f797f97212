"""Inbound webhooks: ``POST /webhooks/<path>`` finds the loaded processor that declared
the route (`botcore.web.webhook`), checks the signature when the route has a secret, and
runs the request through the chain as a ``webhook`` event; the answer lists its replies.
Reactor thread."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from botcore.event import Event, Sender
from botcore.sources.web.http import ApiError, Router, json_reply
from botcore.web import webhook as hooks

if TYPE_CHECKING:
    from twisted.web.server import Request

    from botcore.sources.web import WebSource

#: Headers a webhook event does not carry (credentials of other kinds).
_HIDDEN = frozenset({b"authorization", b"cookie", b"proxy-authorization"})
_PATH = "/webhooks"


def add_routes(router: Router, web: WebSource) -> None:
    router.add("POST", _PATH + "/{hook*}", lambda request, hook: receive(web, request, hook))


async def receive(web: WebSource, request: Request, hook: str) -> Any:
    from botcore.sources.web.api import _dispatched, _response

    path = "/" + hook
    found = hooks.routes(web.bot.loaded()).get(path)
    if found is None:
        raise ApiError(404, f"no loaded plugin has a webhook at {_PATH}{path}")
    processor, spec = found
    assert request.content is not None
    body = request.content.read()
    verified = False
    if spec.secret is not None:
        secret = getattr(processor, spec.secret, None)
        if not secret:
            raise ApiError(
                503,
                f"the webhook {path} has no secret configured "
                f"([plugin:{processor.name}] {spec.secret})",
            )
        if not hooks.signature_ok(spec, str(secret), body, request.getHeader(spec.header)):
            raise ApiError(401, f"missing or wrong {spec.header} signature")
        verified = True
    text = body.decode("utf-8", "replace")
    parsed: Any = None
    content_type = (request.getHeader("content-type") or "").split(";")[0].strip().lower()
    if content_type == "application/json" or content_type.endswith("+json"):
        try:
            parsed = json.loads(text)
        except ValueError as e:
            raise ApiError(400, f"the body is not valid JSON: {e}") from None
    headers = {
        name.decode("latin-1").lower(): values[0].decode("latin-1")
        for name, values in request.requestHeaders.getAllRawHeaders()
        if name.lower() not in _HIDDEN and values
    }
    peer = getattr(request.getClientAddress(), "host", "unknown")
    event = Event(
        source=web.name,
        type=hooks.WEBHOOK,
        sender=Sender(connection=f"webhook:{peer}", id=f"webhook{path}", nick=f"webhook{path}"),
        channel=None,
        public=False,
        addressed=False,
        data={
            "route": path,
            "plugin": processor.name,
            "method": request.method.decode("ascii", "replace"),
            "headers": headers,
            "body": text,
            "json": parsed,
            "verified": verified,
        },
    )
    done = await _dispatched(web, event)
    return json_reply(
        {
            "event": done.id,
            "processed": done.processed,
            "responses": [_response(r) for r in done.responses],
        }
    )
