"""The web front door's HTTP plumbing on twisted.web: a request that refuses bodies over
a size, a small routing table, and JSON answers (errors included). Reactor thread."""

from __future__ import annotations

import inspect
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from twisted.internet.defer import ensureDeferred, maybeDeferred
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web import http, server
from twisted.web.resource import Resource

log = Logger()


class ApiError(Exception):
    """A request refused: the HTTP status and a message saying what is wrong (and, for
    an input error, which field)."""

    def __init__(
        self,
        status: int,
        message: str,
        field: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.field = field
        #: Extra headers of the answer (a 503's Retry-After).
        self.headers = headers

    def body(self) -> dict[str, Any]:
        error: dict[str, Any] = {"status": self.status, "message": self.message}
        if self.field is not None:
            error["field"] = self.field
        return {"error": error}


class LimitedRequest(server.Request):
    """A request whose body is kept only up to its site's ``max_body`` bytes: beyond
    that the rest is thrown away as it arrives and the request is answered 413."""

    too_large = False
    _received = 0

    def gotLength(self, length: int | None) -> None:
        limit = getattr(getattr(self.channel, "site", None), "max_body", None)
        if limit is not None and length is not None and length > limit:
            self.too_large = True
        super().gotLength(length)

    def handleContentChunk(self, data: bytes) -> None:
        limit = getattr(getattr(self.channel, "site", None), "max_body", None)
        self._received += len(data)
        if self.too_large or (limit is not None and self._received > limit):
            self.too_large = True
            return
        super().handleContentChunk(data)


class Site(server.Site):
    """A Site with `LimitedRequest` and the body limit it reads."""

    requestFactory = LimitedRequest

    def __init__(
        self, resource: Resource, max_body: int, access_log: bool = False, **kw: Any
    ) -> None:
        super().__init__(resource, **kw)
        self.max_body = max_body
        self.access_log = access_log

    def log(self, request: http.Request) -> None:
        # One line per request would drown the bot's own log (and the dashboard's tail,
        # which polls): only when asked for.
        if self.access_log:
            super().log(request)


@dataclass(frozen=True)
class Route:
    """One method and path pattern (named groups are the handler's keyword arguments)."""

    method: str
    pattern: re.Pattern[str]
    handler: Callable[..., Any]


class Router(Resource):
    """Every path of the site, answered by the first route whose pattern matches it. A
    handler returns a `Reply` (or a Deferred of one) or raises `ApiError`; anything else
    it raises is logged and answered 500 without details."""

    isLeaf = True

    def __init__(self) -> None:
        super().__init__()
        self.routes: list[Route] = []

    def add(self, method: str, path: str, handler: Callable[..., Any]) -> None:
        """Route ``method`` on ``path`` (``{name}`` is one path segment, ``{name*}`` one or
        more) to ``handler``."""
        regex = re.sub(r"\{(\w+)\*\}", r"(?P<\1>[^/]+(?:/[^/]+)*)", path)
        regex = re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", regex)
        self.routes.append(Route(method, re.compile(f"^{regex}$"), handler))

    def render(self, request: server.Request) -> Any:
        path = request.path.decode("utf-8", "replace")
        method = request.method.decode("ascii", "replace")
        allowed = []
        found: tuple[Route, dict[str, str]] | None = None
        for route in self.routes:
            matched = route.pattern.match(path)
            if matched is None:
                continue
            if route.method == method or (method == "HEAD" and route.method == "GET"):
                found = (route, matched.groupdict())
                break
            allowed.append(route.method)
        if found is None:
            if allowed:
                request.setHeader(b"Allow", ", ".join(sorted(set(allowed))).encode())
                error = ApiError(405, f"{method} is not allowed on {path}")
            else:
                error = ApiError(404, f"there is nothing at {path}")
            return error_reply(error).write(request)
        route, arguments = found
        if getattr(request, "too_large", False):
            limit = getattr(getattr(request.channel, "site", None), "max_body", 0)
            return error_reply(ApiError(413, f"the body is over {limit} bytes")).write(request)
        d = maybeDeferred(_call, route.handler, request, arguments)
        d.addErrback(_failed, request)
        d.addCallback(_finish, request)
        return server.NOT_DONE_YET


def _call(handler: Callable[..., Any], request: server.Request, arguments: dict[str, str]) -> Any:
    result = handler(request, **arguments)
    if inspect.iscoroutine(result):
        return ensureDeferred(result)
    return result


class Reply:
    """An answer: status, body bytes, content type and extra headers."""

    def __init__(
        self,
        body: bytes | str,
        status: int = 200,
        content_type: str = "application/json",
        headers: dict[str, str] | None = None,
    ) -> None:
        self.body = body.encode("utf-8") if isinstance(body, str) else body
        self.status = status
        self.content_type = content_type
        self.headers = dict(headers or {})

    def write(self, request: server.Request) -> bytes:
        """Set the status and headers on ``request``; the body to write."""
        request.setResponseCode(self.status)
        request.setHeader(b"Content-Type", self.content_type.encode("ascii"))
        request.setHeader(b"X-Content-Type-Options", b"nosniff")
        request.setHeader(b"Cache-Control", b"no-store")
        for name, value in self.headers.items():
            request.setHeader(name.encode("ascii"), value.encode("utf-8"))
        return b"" if request.method == b"HEAD" else self.body


def json_reply(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> Reply:
    """``data`` as a JSON answer."""
    return Reply(json.dumps(data, ensure_ascii=False, sort_keys=True), status, headers=headers)


def error_reply(error: ApiError) -> Reply:
    return json_reply(error.body(), error.status, headers=error.headers)


def _failed(failure: Failure, request: server.Request) -> Reply:
    if isinstance(failure.value, ApiError):
        return error_reply(failure.value)
    log.failure(
        "web request {method} {path} failed", failure, method=request.method, path=request.path
    )
    return error_reply(ApiError(500, "internal error (logged)"))


def _finish(reply: Any, request: server.Request) -> None:
    if reply is None:  # the handler answers by itself (server-sent events)
        return
    if request.finished or getattr(request, "_disconnected", False):
        return
    body = reply.write(request)
    if body:
        request.write(body)
    request.finish()


# -- input ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Field:
    """One key of a JSON body: its type(s), whether it is required, and its default."""

    types: tuple[type, ...]
    required: bool = False
    default: Any = None
    #: Longest string (for str fields).
    max_length: int | None = None


_TYPE_NAMES = {
    str: "a string",
    bool: "a boolean",
    int: "an integer",
    type(None): "null",
    dict: "an object",
    list: "an array",
}


def json_body(request: server.Request, fields: dict[str, Field]) -> dict[str, Any]:
    """The request's JSON object body, checked against ``fields``: `ApiError` 415 for
    another content type, 400 for invalid JSON, a body that is not an object, an unknown
    key, a missing required key or a value of the wrong type (each naming the key)."""
    content_type = (request.getHeader("content-type") or "").split(";")[0].strip().lower()
    if content_type != "application/json":
        raise ApiError(415, "the body must be JSON (Content-Type: application/json)")
    assert request.content is not None
    raw = request.content.read()
    try:
        data = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as e:
        raise ApiError(400, f"the body is not valid JSON: {e}") from None
    if not isinstance(data, dict):
        raise ApiError(400, "the body must be a JSON object")
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ApiError(
            400, f"unknown field {unknown[0]!r} (known: {', '.join(fields)})", unknown[0]
        )
    checked: dict[str, Any] = {}
    for name, spec in fields.items():
        if name not in data:
            if spec.required:
                raise ApiError(400, f"the field {name!r} is required", name)
            checked[name] = spec.default
            continue
        value = data[name]
        # bool is an int in Python; JSON's true is not an integer.
        ok = any(
            isinstance(value, kind) and not (kind is int and isinstance(value, bool))
            for kind in spec.types
        )
        if not ok:
            expected = " or ".join(_TYPE_NAMES.get(kind, kind.__name__) for kind in spec.types)
            raise ApiError(400, f"the field {name!r} must be {expected}", name)
        if isinstance(value, str) and spec.max_length is not None and len(value) > spec.max_length:
            raise ApiError(400, f"the field {name!r} is longer than {spec.max_length}", name)
        checked[name] = value
    return checked
