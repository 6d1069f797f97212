"""The dashboard: plain HTML pages and a little JavaScript, served by the bot (nothing
fetched from elsewhere). Login with the account's password (argon2, with the same lockout
as chat's ``auth``) into an HttpOnly, SameSite=Strict session cookie (Secure on TLS);
every state-changing form and call carries a CSRF token. The page itself calls the JSON
API with the session, and follows the log over server-sent events. Reactor thread."""

from __future__ import annotations

import hmac
import html
import secrets
from importlib import resources
from typing import TYPE_CHECKING, Any

from twisted.internet.defer import ensureDeferred

from botcore.sources.web.http import ApiError, Reply, Router

if TYPE_CHECKING:
    from twisted.web.server import Request

    from botcore.sources.web import WebSource

BASE = "/dashboard"
LOGIN_COOKIE = b"botcore_login"
MAX_FIELD = 1024


def add_routes(router: Router, web: WebSource) -> None:
    router.add("GET", BASE, lambda request: _redirect(f"{BASE}/"))
    router.add("GET", BASE + "/", lambda request: ensureDeferred(page(web, request)))
    router.add("POST", BASE + "/login", lambda request: ensureDeferred(login(web, request)))
    router.add("POST", BASE + "/logout", lambda request: ensureDeferred(logout(web, request)))
    router.add("GET", BASE + "/{asset}", lambda request, asset: static(web, asset))


def _enabled(web: WebSource) -> None:
    if not web.dashboard:
        raise ApiError(404, "the dashboard is off ([source] dashboard = no)")


def _static_text(name: str) -> str:
    return resources.files("botcore.sources.web").joinpath("static", name).read_text("utf-8")


_ASSETS = {"app.js": "text/javascript; charset=utf-8", "app.css": "text/css; charset=utf-8"}


def static(web: WebSource, asset: str) -> Reply:
    _enabled(web)
    if asset not in _ASSETS:
        raise ApiError(404, f"there is nothing at {BASE}/{asset}")
    return Reply(_static_text(asset), content_type=_ASSETS[asset])


def _html(text: str, status: int = 200, headers: dict[str, str] | None = None) -> Reply:
    headers = dict(headers or {})
    # Only this origin's scripts and styles; no framing (clickjacking).
    headers.setdefault(
        "Content-Security-Policy",
        "default-src 'self'; script-src 'self'; style-src 'self'; frame-ancestors 'none'",
    )
    headers.setdefault("X-Frame-Options", "DENY")
    return Reply(text, status, "text/html; charset=utf-8", headers)


def _redirect(location: str, headers: dict[str, str] | None = None) -> Reply:
    return Reply(b"", 303, "text/plain", {"Location": location, **(headers or {})})


def _cookie(request: Request, name: bytes, value: str, max_age: int | None = None) -> str:
    parts = [f"{name.decode()}={value}", "Path=/", "HttpOnly", "SameSite=Strict"]
    if request.isSecure():
        parts.append("Secure")
    if max_age is not None:
        parts.append(f"Max-Age={max_age}")
    return "; ".join(parts)


async def page(web: WebSource, request: Request, message: str = "", status: int = 200) -> Reply:
    """The app for a logged-in user, else the login form."""
    from botcore.sources.web.api import web_session

    _enabled(web)
    session = None if message else await web_session(web, request)
    title = html.escape(f"{web.bot.name} dashboard")
    if session is None:
        # A fresh login CSRF token, in a cookie and in the form (double submit).
        token = secrets.token_urlsafe(24)
        text = _static_text("login.html").format(
            title=title,
            csrf=html.escape(token),
            message=f'<p class="error" id="message">{html.escape(message)}</p>' if message else "",
        )
        return _html(text, status, {"Set-Cookie": _cookie(request, LOGIN_COOKIE, token)})
    text = _static_text("index.html").format(
        title=title,
        csrf=html.escape(session.csrf),
        user=html.escape(session.principal.username),
    )
    return _html(text, status)


def _field(request: Request, name: str) -> str:
    values = (request.args or {}).get(name.encode(), [])
    value = values[0] if values else b""
    if len(value) > MAX_FIELD:
        raise ApiError(400, f"the field {name!r} is too long", name)
    return value.decode("utf-8", "replace")


async def login(web: WebSource, request: Request) -> Reply:
    """Check the form's CSRF token, then the password (off the reactor thread), with the
    same limits as chat's ``auth``: a connection (here, an address) past ``max_failures``
    waits, and at most ``max_checks`` argon2 checks run at once."""
    _enabled(web)
    cookie = (request.getCookie(LOGIN_COOKIE) or b"").decode("ascii", "replace")
    given = _field(request, "csrf")
    if not cookie or not hmac.compare_digest(cookie.encode(), given.encode()):
        return await page(web, request, "The form expired; please try again.", 403)
    username, password = _field(request, "username").strip(), _field(request, "password")
    if not username or not password:
        return await page(web, request, "Give your account name and password.", 400)
    auth = web.bot.auth
    peer = getattr(request.getClientAddress(), "host", "unknown")
    key = (web.name, f"address:{peer}")
    now = web.reactor.seconds()
    wait = auth.wait_before_attempt(key, now)
    if wait > 0:
        return await page(web, request, f"Too many failed attempts; wait {wait:.0f} seconds.", 429)
    if not auth.start_check(key):
        return await page(web, request, "Busy checking other logins; try again in a moment.", 429)
    try:
        principal = await web.in_thread(web.thd_check_password, username, password)
    finally:
        auth.end_check(key)
    if principal is None:
        auth.failed(key, web.reactor.seconds())
        web.log.info(
            "source {source}: failed dashboard login for {user!r} from {peer}",
            source=web.name,
            user=username,
            peer=peer,
        )
        return await page(web, request, "Wrong account name or password.", 401)
    sid, _ = await web.in_thread(web.thd_open_session, principal)
    web.log.info(
        "source {source}: {user} logged in to the dashboard from {peer}",
        source=web.name,
        user=principal.username,
        peer=peer,
    )
    return _redirect(f"{BASE}/", {"Set-Cookie": _cookie(request, b"botcore_session", sid)})


async def logout(web: WebSource, request: Request) -> Reply:
    """End the session (its row deleted) and clear the cookie; needs its CSRF token."""
    from botcore.sources.web.api import web_session

    _enabled(web)
    session = await web_session(web, request)
    if session is None:
        return _redirect(f"{BASE}/")
    if not hmac.compare_digest(_field(request, "csrf").encode(), session.csrf.encode()):
        raise ApiError(403, "missing or wrong CSRF token")
    sid = (request.getCookie(b"botcore_session") or b"").decode("ascii", "replace")
    await web.in_thread(web.thd_end_session, sid)
    return _redirect(f"{BASE}/", {"Set-Cookie": _cookie(request, b"botcore_session", "", 0)})


# -- server-sent events ------------------------------------------------------------------


def start_sse(web: WebSource, request: Request) -> None:
    """Answer ``request`` as an event stream: the recent log lines, then each new one
    until the client goes or the source stops."""
    request.setHeader(b"Content-Type", b"text/event-stream; charset=utf-8")
    request.setHeader(b"Cache-Control", b"no-store")
    request.setHeader(b"X-Content-Type-Options", b"nosniff")
    request.write(b": botcore log\n\n")
    for line in web.tail.recent()[-50:]:
        write_sse(request, line)
    web.tail.streams.add(request)

    def gone(_: Any) -> None:
        web.tail.streams.discard(request)

    request.notifyFinish().addBoth(gone)


def write_sse(request: Request, line: str) -> None:
    if request.finished or getattr(request, "_disconnected", False):
        return
    data = "".join(f"data: {part}\n" for part in line.splitlines() or [""])
    request.write((data + "\n").encode("utf-8"))
