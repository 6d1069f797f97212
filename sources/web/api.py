"""The JSON API under /api/v1/: status and lifecycle, sources, plugins, configuration,
sending a message, firing a message into the chain, and its own OpenAPI 3 document.
Every call is authenticated (a bearer token, or the dashboard's session cookie with its
CSRF header) and checked against the permission of the chat command that does the same:
``sources``, ``plugins``, ``config`` or ``admin``. Reactor thread."""

from __future__ import annotations

import dataclasses
import hmac
from typing import TYPE_CHECKING, Any

from twisted.internet.defer import ensureDeferred
from twisted.internet.error import TimeoutError as DeferredTimeout

from botcore.bus.catalogue import EventTypeSpec
from botcore.config import ConfigErrors
from botcore.errors import (
    DispatcherOverloaded,
    DispatcherStopped,
    PluginLoadError,
    PluginNotFound,
    PluginNotLoaded,
)
from botcore.event import Event, EventType, Message, Response
from botcore.sources.web.http import ApiError, Field, Router, json_body, json_reply
from botcore.web.webhook import WEBHOOK

if TYPE_CHECKING:
    from twisted.web.server import Request

    from botcore.sources.web import Principal, WebSource

PREFIX = "/api/v1"
SESSION_COOKIE = b"botcore_session"
CSRF_HEADER = "x-csrf-token"
SOURCE_ACTIONS = ("connect", "disconnect", "reload", "load", "unload")
PLUGIN_ACTIONS = ("load", "unload", "reload")
MAX_TEXT = 4096
#: The type of the events that carry a message the API sends.
SAY = "say"
SAY_TYPE = EventTypeSpec(
    SAY,
    "A message sent through the web API: its one reply is the message (data: where to).",
    {
        "type": "object",
        "properties": {"source": {"type": "string"}, "target": {"type": "string"}},
        "required": ["source", "target"],
    },
)


def add_routes(router: Router, web: WebSource) -> None:
    def route(method: str, path: str, function: Any) -> None:
        router.add(method, PREFIX + path, lambda request, **kw: function(web, request, **kw))

    route("GET", "/openapi.json", openapi)
    route("GET", "/status", status)
    route("GET", "/me", me)
    route("POST", "/stop", stop)
    route("GET", "/sources", list_sources)
    route("POST", "/sources/{name}/{action}", source_action)
    route("GET", "/plugins", list_plugins)
    route("POST", "/plugins/{name}/{action}", plugin_action)
    route("GET", "/config/{section}/{key}", get_config)
    route("PUT", "/config/{section}/{key}", set_config)
    route("POST", "/messages", send_message)
    route("POST", "/fire", fire)
    route("POST", "/events", fire_event)
    route("GET", "/event-types", event_types)
    route("GET", "/events/recent", recent_events)
    route("GET", "/log", log_stream)


# -- authentication --------------------------------------------------------------------


async def authenticate(web: WebSource, request: Request) -> Principal:
    """Who the request acts for: the account of its bearer token, or of its dashboard
    session (whose state-changing requests must carry the session's CSRF token in the
    X-CSRF-Token header). `ApiError` 401 (none, or unknown/revoked) or 403 (CSRF)."""
    header = request.getHeader("authorization")
    if header is not None:
        scheme, _, token = header.strip().partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise ApiError(401, "the Authorization header must be 'Bearer <token>'")
        principal = await web.in_thread(web.thd_principal_of_token, token.strip())
        if principal is None:
            raise ApiError(401, "the token is unknown or revoked")
        return principal
    session = await web_session(web, request)
    if session is not None:
        if request.method not in (b"GET", b"HEAD"):
            given = request.getHeader(CSRF_HEADER) or ""
            if not hmac.compare_digest(given.encode(), session.csrf.encode()):
                raise ApiError(403, "missing or wrong X-CSRF-Token header")
        return session.principal
    raise ApiError(401, "authentication required: send 'Authorization: Bearer <token>'")


async def web_session(web: WebSource, request: Request) -> Any:
    """The live dashboard session of the request's cookie (its expiry renewed), or None."""
    sid = request.getCookie(SESSION_COOKIE)
    if not sid:
        return None
    return await web.in_thread(web.thd_find_session, sid.decode("ascii", "replace"))


async def require(web: WebSource, principal: Principal, permission: str) -> None:
    """`ApiError` 403 unless the principal holds ``permission``."""
    if not await web.in_thread(web.thd_authorised, principal, permission):
        raise ApiError(403, f"this needs the {permission!r} permission")


async def _allowed(web: WebSource, request: Request, permission: str | None) -> Principal:
    principal = await authenticate(web, request)
    if permission is not None:
        await require(web, principal, permission)
    return principal


# -- status and lifecycle ------------------------------------------------------------


def status_of(web: WebSource) -> dict[str, Any]:
    bot = web.bot
    started = bot.started_at
    return {
        "name": bot.name,
        "version": bot.version,
        "state": bot.state,
        "started_at": started.isoformat() if started else None,
        "uptime": (bot.now() - started).total_seconds() if started else None,
    }


async def status(web: WebSource, request: Request) -> Any:
    await _allowed(web, request, None)
    return json_reply(status_of(web))


#: The permissions of the chat commands the API and the dashboard offer.
CONTROL_PERMISSIONS = ("sources", "plugins", "config", "admin")


async def me(web: WebSource, request: Request) -> Any:
    """Who the caller is, and which of the control permissions they hold (what the
    dashboard shows buttons for; every call is checked again all the same)."""
    principal = await _allowed(web, request, None)

    def thd_held() -> dict[str, bool]:
        return {name: web.thd_authorised(principal, name) for name in CONTROL_PERMISSIONS}

    held = await web.in_thread(thd_held)
    return json_reply({"account": principal.username, "by": principal.kind, "permissions": held})


async def stop(web: WebSource, request: Request) -> Any:
    await _allowed(web, request, "admin")
    # Answered first: stopping closes this listener too.
    web.reactor.callLater(0, web.bot.stop)
    return json_reply({"stopping": True}, 202)


# -- sources ---------------------------------------------------------------------------


def sources_of(web: WebSource) -> list[dict[str, Any]]:
    found = []
    for name, state in sorted(web.bot.source_states().items()):
        source = web.bot.get_source(name)
        found.append(
            {
                "name": name,
                "state": state,
                "type": getattr(source, "type", None) if source is not None else None,
            }
        )
    return found


async def list_sources(web: WebSource, request: Request) -> Any:
    await _allowed(web, request, "sources")
    return json_reply({"sources": sources_of(web)})


async def source_action(web: WebSource, request: Request, name: str, action: str) -> Any:
    if action not in SOURCE_ACTIONS:
        raise ApiError(
            404, f"unknown source action {action!r} (known: {', '.join(SOURCE_ACTIONS)})"
        )
    await _allowed(web, request, "sources")
    states = web.bot.source_states()
    if name not in states:
        raise ApiError(404, f"there is no source called {name!r}", "name")
    bot = web.bot
    actions = {
        "load": bot.load_source,
        "unload": bot.unload_source,
        "reload": bot.reload_source,
        "connect": bot.connect_source,
        "disconnect": bot.disconnect_source,
    }
    if name == web.name and action in ("unload", "reload", "disconnect"):
        # This listener stops: answer before it does.
        web.reactor.callLater(
            0,
            lambda: ensureDeferred(actions[action](name)).addErrback(
                lambda f: web.log.error(
                    "{action} of {name} failed: {e}",
                    action=action,
                    name=name,
                    e=f.getErrorMessage(),
                )
            ),
        )
        return json_reply({"name": name, "accepted": action}, 202)
    try:
        await ensureDeferred(actions[action](name))
    except (PluginLoadError, PluginNotLoaded, PluginNotFound) as e:
        raise ApiError(409, f"cannot {action} source {name}: {_plain(e)}") from None
    except ConfigErrors as e:
        errors = "; ".join(str(error) for error in e.errors)
        raise ApiError(
            409, f"cannot {action} source {name}: the config has errors: {errors}"
        ) from None
    return json_reply({"name": name, "state": bot.source_states().get(name, "not loaded")})


# -- plugins ---------------------------------------------------------------------------


def plugins_of(web: WebSource) -> dict[str, Any]:
    plugins = web.bot.plugins
    loaded = []
    for name, processors in plugins.loaded.items():
        _, count = plugins.versions.get(name, (0, 1))
        loaded.append(
            {
                "name": name,
                "reloads": max(0, count - 1),
                "processors": [type(p).__name__ for p in processors],
            }
        )
    return {"loaded": loaded, "failed": dict(plugins.failed)}


async def list_plugins(web: WebSource, request: Request) -> Any:
    await _allowed(web, request, "plugins")
    return json_reply(plugins_of(web))


async def plugin_action(web: WebSource, request: Request, name: str, action: str) -> Any:
    if action not in PLUGIN_ACTIONS:
        raise ApiError(
            404, f"unknown plugin action {action!r} (known: {', '.join(PLUGIN_ACTIONS)})"
        )
    await _allowed(web, request, "plugins")
    plugins = web.bot.plugins
    try:
        if action == "load":
            await plugins.load_plugin(name)
        elif action == "reload":
            await plugins.reload_plugin(name)
        else:
            plugins.unload_plugin(name)
    except PluginNotFound as e:
        raise ApiError(404, f"cannot {action} plugin {name}: {_plain(e)}", "name") from None
    except (PluginLoadError, PluginNotLoaded) as e:
        raise ApiError(409, f"cannot {action} plugin {name}: {_plain(e)}") from None
    return json_reply({"name": name, "loaded": name in plugins.loaded})


# -- configuration: through the chain, as the admin plugin's commands ----------------------


#: Where the admin plugin's config commands leave their result as data (event.extra).
CONFIG_RESULT = "config"
CONFIG_ERROR = "config_error"


async def _config_command(web: WebSource, principal: Principal, text: str) -> Any:
    """Run ``text`` (``get config``/``set config``) as a chat command of the principal's,
    in private here, so that it is checked, rate-limited and logged as in chat; the
    option as data the command left on the event (`ApiError` with the status the
    command gave when it refused)."""
    event = web.principal_event(principal, text)
    done = await _dispatched(web, event)
    result, error = done.extra.get(CONFIG_RESULT), done.extra.get(CONFIG_ERROR)
    replies = [r for r in done.responses if r.kind == "message"]
    if error is not None:
        raise ApiError(error["status"], error["message"], error.get("field"))
    if result is not None:
        return json_reply({**result, "replies": [_response(r) for r in replies]})
    if done.complain == "notauthed":
        raise ApiError(403, "this needs the 'config' permission")
    if done.complain is not None:
        raise ApiError(503, "nothing handled the command (is the admin plugin loaded?)")
    if replies:
        # Answered, but not by the config command: chat's rate limit warning (once per
        # window).
        raise ApiError(429, "too many commands from you just now: " + str(replies[0].text))
    if done.processed:
        # Taken but not answered: chat's rate limit dropped it.
        raise ApiError(429, "no answer: too many commands from you just now; try again shortly")
    raise ApiError(503, "nothing handled the command (is the admin plugin loaded?)")


async def get_config(web: WebSource, request: Request, section: str, key: str) -> Any:
    """One option as data: section, option, value (null for a secret), type, default
    and help; ``config``, as ``get config``."""
    principal = await _allowed(web, request, "config")
    _check_name(section, "section")
    _check_name(key, "key")
    return await _config_command(web, principal, f"get config {section}.{key}")


async def set_config(web: WebSource, request: Request, section: str, key: str) -> Any:
    """Set one option as ``set config`` does (local override file, reload, put back if
    the config would not load); the option as data afterwards, with the file's name."""
    principal = await _allowed(web, request, "config")
    body = json_body(request, {"value": Field((str,), required=True, max_length=MAX_TEXT)})
    _check_name(section, "section")
    _check_name(key, "key")
    value = body["value"]
    if "\n" in value or "\r" in value:
        raise ApiError(400, "a value cannot hold line breaks", "value")
    text = f"set config {section}.{key} to {value if value else chr(34) * 2}"
    return await _config_command(web, principal, text)


def _check_name(name: str, what: str) -> None:
    if not name or len(name) > 100 or any(c.isspace() or c in "[]=" for c in name):
        raise ApiError(400, f"{what} {name!r} is not a config {what} name", what)


# -- messages --------------------------------------------------------------------------


async def send_message(web: WebSource, request: Request) -> Any:
    """Say ``text`` to ``target`` on ``source`` (irc_admin's ``say``: the ``sources``
    permission), by the dispatcher's one reply path."""
    principal = await _allowed(web, request, "sources")
    body = json_body(
        request,
        {
            "source": Field((str,), required=True, max_length=100),
            "target": Field((str,), required=True, max_length=255),
            "text": Field((str,), required=True, max_length=MAX_TEXT),
            "action": Field((bool,), default=False),
            "notice": Field((bool,), default=False),
        },
    )
    source = web.bot.get_source(body["source"])
    if source is None:
        raise ApiError(404, f"there is no running source called {body['source']!r}", "source")
    if not body["text"].strip():
        raise ApiError(400, "the field 'text' is empty", "text")
    if not body["target"].strip():
        raise ApiError(400, "the field 'target' is empty", "target")
    if source.state != "connected":
        raise ApiError(409, f"source {body['source']} is {source.state}, not connected")
    response = Response(
        body["text"],
        target=body["target"],
        source=body["source"],
        action=body["action"],
        notice=body["notice"],
        address=False,
    )
    # Carried by an event of its own through the chain, so that the post processors
    # shape it for its source (Format: splitting, truncation) and log it, as any reply.
    carrier = web.principal_event(principal, "")
    carrier.type = SAY
    carrier.message = None
    carrier.addressed = False
    carrier.data = {"source": body["source"], "target": body["target"]}
    carrier.responses.append(response)
    done = await _dispatched(web, carrier)
    return json_reply({"sent": [_response(r) for r in done.responses]})


async def fire(web: WebSource, request: Request) -> Any:
    """A message into the chain as if it arrived, from the principal: here (in their
    private conversation, or in ``target``, a #channel of this source), or in ``target``,
    a channel of another ``source`` (an IRC channel), where its replies are sent too;
    answers with the replies once every processor has run. Here it needs no permission,
    as talking to the bot in chat; on another source it needs ``sources``, as making the
    bot speak there with ``say`` does."""
    principal = await authenticate(web, request)
    body = json_body(
        request,
        {
            "text": Field((str,), required=True, max_length=MAX_TEXT),
            "source": Field((str, type(None)), max_length=100),
            "target": Field((str, type(None)), max_length=255),
            "addressed": Field((bool,), default=None),
        },
    )
    text, target = body["text"], body["target"]
    name = body["source"] if body["source"] is not None else web.name
    if not text.strip():
        raise ApiError(400, "the field 'text' is empty", "text")
    if name == web.name:
        if target is not None and not web.is_channel(target):
            raise ApiError(
                400, "the field 'target' must be a #channel (or null: private)", "target"
            )
        event = web.principal_event(principal, text, target)
    else:
        await require(web, principal, "sources")
        source = web.bot.get_source(name)
        if source is None:
            raise ApiError(404, f"there is no running source called {name!r}", "source")
        if target is None or not target.strip() or not source.is_channel(target):
            raise ApiError(400, f"the field 'target' must be a channel of source {name}", "target")
        if source.state != "connected":
            raise ApiError(409, f"source {name} is {source.state}, not connected")
        event = web.principal_event(principal, text, target)
        event.source = name
        # Not any sender of that network: its grants and ignores are not the principal's.
        assert event.sender is not None
        event.sender = dataclasses.replace(event.sender, id=f"{web.name}/{principal.username}")
    event.message = Message(text)
    if body["addressed"] is not None:
        event.addressed = body["addressed"]
    done = await _dispatched(web, event)
    return json_reply(
        {
            "event": done.id,
            "processed": done.processed,
            "complaint": done.complain,
            "responses": [_response(r) for r in done.responses],
        }
    )


async def event_types(web: WebSource, request: Request) -> Any:
    """The event catalogue: every type with its description, schema and parent."""
    await _allowed(web, request, None)
    return json_reply(
        {
            "types": [
                {
                    "name": spec.name,
                    "description": spec.description,
                    "schema": dict(spec.schema),
                    "parent": spec.parent,
                }
                for spec in web.bot.catalogue.types()
            ]
        }
    )


async def recent_events(web: WebSource, request: Request) -> Any:
    """The latest events the bot accepted, newest last: id, time, source, type, channel,
    sender's nick (never their text); ``admin``, as the log."""
    await _allowed(web, request, "admin")
    return json_reply({"events": list(web.metrics.recent)})


async def fire_event(web: WebSource, request: Request) -> Any:
    """A typed event of the catalogue from the principal into the chain, its ``data``
    validated against the type's schema (and its ancestors') before any processor sees
    it; answers with its replies. Publishing events is the bot's own business: ``admin``."""
    principal = await _allowed(web, request, "admin")
    body = json_body(
        request,
        {
            "type": Field((str,), required=True, max_length=100),
            "data": Field((dict,), default=None),
            "target": Field((str, type(None)), max_length=255),
        },
    )
    kind = body["type"]
    if kind not in web.bot.catalogue:
        raise ApiError(400, f"{kind!r} is not a declared event type (see /event-types)", "type")
    if kind in EventType.WRITTEN or kind in (EventType.LIFECYCLE, WEBHOOK, SAY):
        raise ApiError(400, f"{kind} events come from elsewhere (use /fire for messages)", "type")
    target = body["target"]
    if target is not None and not web.is_channel(target):
        raise ApiError(400, "the field 'target' must be a #channel (or null: private)", "target")
    event = web.principal_event(principal, "", target)
    event.type = kind
    event.message = None
    event.data = dict(body["data"] or {})
    done = await _dispatched(web, event)
    return json_reply(
        {
            "event": done.id,
            "processed": done.processed,
            "responses": [_response(r) for r in done.responses],
        }
    )


#: Seconds a client is told to wait (Retry-After) while the bot's backlog is full.
BUSY_RETRY_AFTER = 1


async def _dispatched(web: WebSource, event: Event) -> Event:
    if web.input_paused:
        # The dispatcher holds max_queued of this front door's events: refuse, not queue.
        raise _busy()
    d = web.bot.dispatch(event)
    d.addTimeout(web.reply_timeout, web.reactor)
    try:
        return await d
    except DeferredTimeout:
        raise ApiError(504, f"no answer within {web.reply_timeout:g} seconds") from None
    except DispatcherOverloaded:
        raise _busy() from None
    except DispatcherStopped:
        raise ApiError(503, "the bot is shutting down") from None
    except ValueError as e:  # InvalidEvent
        raise ApiError(400, str(e)) from None


def _busy() -> ApiError:
    return ApiError(
        503,
        "too many events are waiting; try again later",
        headers={"Retry-After": str(BUSY_RETRY_AFTER)},
    )


def _response(response: Response) -> dict[str, Any]:
    from botcore.sources.web import response_json

    return response_json(response)


# -- the log ---------------------------------------------------------------------------


async def log_stream(web: WebSource, request: Request) -> Any:
    """Server-sent events: the recent log lines, then each new one (``admin``)."""
    await _allowed(web, request, "admin")
    from botcore.sources.web.dashboard import start_sse

    start_sse(web, request)
    return None


def _plain(error: Exception) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


# -- the OpenAPI document ----------------------------------------------------------------


def _error_responses(*codes: int) -> dict[str, Any]:
    meaning = {
        400: "Bad input (the message names the field)",
        401: "Not authenticated",
        403: "Not permitted (or bad CSRF token)",
        404: "No such thing",
        409: "Cannot be done now",
        413: "Body too large",
        415: "Not JSON",
        429: "Too busy",
        503: "Unavailable",
        504: "The chain did not answer in time",
    }
    return {
        str(code): {
            "description": meaning[code],
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
        }
        for code in codes
    }


def _op(
    summary: str,
    permission: str | None,
    ok: dict[str, Any],
    *errors: int,
    body: dict[str, Any] | None = None,
    parameters: list[str] | None = None,
    status: str = "200",
) -> dict[str, Any]:
    operation: dict[str, Any] = {
        "summary": summary + (f" (permission: {permission})" if permission else ""),
        "responses": {
            status: {"description": "OK", "content": {"application/json": {"schema": ok}}},
            **_error_responses(401, *errors),
        },
    }
    if parameters:
        operation["parameters"] = [
            {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
            for name in parameters
        ]
    if body is not None:
        operation["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": body}},
        }
        operation["responses"].update(_error_responses(400, 413, 415))
    return operation


def _object(properties: dict[str, Any], required: tuple[str, ...] = ()) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": properties,
        "required": list(required),
        "additionalProperties": False,
    }


def openapi_document(web: WebSource) -> dict[str, Any]:
    """The API as OpenAPI 3.0."""
    string, boolean = {"type": "string"}, {"type": "boolean"}
    any_object = {"type": "object"}
    reply = {
        "type": "object",
        "properties": {
            "text": {"oneOf": [string, boolean]},
            "source": {"type": "string", "nullable": True},
            "target": {"type": "string", "nullable": True},
            "action": boolean,
            "notice": boolean,
            "kind": string,
        },
    }
    replies = {"type": "array", "items": reply}
    anything: dict[str, Any] = {"nullable": True}
    option = {
        "type": "object",
        "properties": {
            "section": string,
            "option": string,
            "value": anything,
            "shown": {"type": "string", "nullable": True},
            "secret": boolean,
            "type": string,
            "default": anything,
            "help": string,
            "file": string,
            "replies": replies,
        },
        "required": ["section", "option", "value", "secret", "type", "default"],
    }
    fired = {
        "type": "object",
        "properties": {
            "event": string,
            "processed": boolean,
            "complaint": {"type": "string", "nullable": True},
            "responses": replies,
        },
        "required": ["event", "processed", "responses"],
    }
    return {
        "openapi": "3.0.3",
        "info": {"title": f"botcore {web.bot.name} API", "version": "1"},
        "servers": [{"url": PREFIX}],
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": {
                "Error": {
                    "type": "object",
                    "properties": {
                        "error": _object(
                            {"status": {"type": "integer"}, "message": string, "field": string},
                            ("status", "message"),
                        )
                    },
                }
            },
        },
        "security": [{"bearer": []}],
        "paths": {
            "/status": {"get": _op("Name, version, lifecycle state and uptime", None, any_object)},
            "/me": {"get": _op("The caller's account and control permissions", None, any_object)},
            "/stop": {"post": _op("Stop the bot", "admin", any_object, 403, status="202")},
            "/sources": {"get": _op("Sources and their states", "sources", any_object, 403)},
            "/sources/{name}/{action}": {
                "post": _op(
                    "connect, disconnect, reload, load or unload a source",
                    "sources",
                    any_object,
                    403,
                    404,
                    409,
                    parameters=["name", "action"],
                )
            },
            "/plugins": {"get": _op("Loaded and failed plugins", "plugins", any_object, 403)},
            "/plugins/{name}/{action}": {
                "post": _op(
                    "load, unload or reload a plugin",
                    "plugins",
                    any_object,
                    403,
                    404,
                    409,
                    parameters=["name", "action"],
                )
            },
            "/config/{section}/{key}": {
                "get": _op(
                    "An option as data (value, type, default), as get config SECTION.KEY",
                    "config",
                    option,
                    400,
                    403,
                    404,
                    429,
                    503,
                    parameters=["section", "key"],
                ),
                "put": _op(
                    "Set an option as set config SECTION.KEY to VALUE; the option after",
                    "config",
                    option,
                    403,
                    404,
                    409,
                    429,
                    503,
                    parameters=["section", "key"],
                    body=_object({"value": string}, ("value",)),
                ),
            },
            "/messages": {
                "post": _op(
                    "Send a message to a target on a source",
                    "sources",
                    any_object,
                    403,
                    404,
                    409,
                    body=_object(
                        {
                            "source": string,
                            "target": string,
                            "text": string,
                            "action": boolean,
                            "notice": boolean,
                        },
                        ("source", "target", "text"),
                    ),
                )
            },
            "/fire": {
                "post": _op(
                    "Fire a message into a conversation of this source (no permission) or "
                    "of another (permission: sources) as if it arrived there; the replies",
                    None,
                    fired,
                    403,
                    404,
                    409,
                    429,
                    503,
                    504,
                    body=_object(
                        {
                            "text": string,
                            "source": {"type": "string", "nullable": True},
                            "target": {"type": "string", "nullable": True},
                            "addressed": boolean,
                        },
                        ("text",),
                    ),
                )
            },
            "/event-types": {
                "get": _op("The event catalogue: types and their schemas", None, any_object)
            },
            "/events": {
                "post": _op(
                    "Fire a typed event, its data validated against its type's schema",
                    "admin",
                    any_object,
                    403,
                    429,
                    503,
                    504,
                    body=_object(
                        {
                            "type": string,
                            "data": any_object,
                            "target": {"type": "string", "nullable": True},
                        },
                        ("type",),
                    ),
                )
            },
            "/events/recent": {
                "get": _op("The latest events (no text)", "admin", any_object, 403)
            },
            "/log": {
                "get": {
                    "summary": "Log lines as server-sent events (permission: admin)",
                    "responses": {
                        "200": {"description": "text/event-stream"},
                        **_error_responses(401, 403),
                    },
                }
            },
        },
    }


async def openapi(web: WebSource, request: Request) -> Any:
    return json_reply(openapi_document(web))
