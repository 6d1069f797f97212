"""The HTTP front door: a JSON API (bearer tokens of accounts), inbound webhooks for
plugins, a small dashboard (account password, session cookie), Prometheus metrics and
health checks, on twisted.web at a Twisted endpoint string. Reactor thread, except the
``thd_`` functions, which run in the source's own small thread pool."""

from __future__ import annotations

import dataclasses
import functools
import secrets
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TypeVar, cast

from twisted.internet.defer import Deferred, fail
from twisted.internet.endpoints import serverFromString
from twisted.internet.threads import deferToThreadPool
from twisted.logger import Logger, formatEvent, globalLogPublisher
from twisted.python.threadpool import ThreadPool

from botcore.accounts import models as accounts
from botcore.event import Event, EventType, Message, Response, Sender
from botcore.options import BoolOption, FloatOption, IntOption, ServerEndpointOption
from botcore.source import Source
from botcore.sources.web import api, dashboard, hooks
from botcore.sources.web.http import ApiError, Router, Site
from botcore.sources.web.metrics import Metrics
from botcore.web import sessions, tokens
from botcore.web.webhook import WEBHOOK_TYPE

if TYPE_CHECKING:
    from twisted.internet.interfaces import IListeningPort
    from twisted.logger import ILogObserver
    from twisted.python.failure import Failure
    from twisted.web.server import Request

    from botcore.interfaces import IBotControl

T = TypeVar("T")


class ListenFailed(Exception):
    """The front door could not listen on its endpoint."""


@dataclass(frozen=True)
class Principal:
    """Who a request acts for: an account, by one of its tokens or a dashboard session."""

    account_id: int
    username: str
    #: The account's identity on this source (what its events carry).
    identity_id: int
    #: "token" or "session", and that token's id or the session's number.
    kind: str
    key: str


@dataclass
class DashboardSession:
    """A live dashboard login (its row is in the database: `botcore.web.sessions`)."""

    principal: Principal
    csrf: str


@dataclass
class LogTail:
    """The last log lines, and the server-sent event streams that follow new ones. Lines
    arrive from any thread; streams are written on the reactor thread."""

    size: int = 200
    lines: deque[str] = field(default_factory=deque)
    lock: threading.Lock = field(default_factory=threading.Lock)
    streams: set[Request] = field(default_factory=set)

    def recent(self) -> list[str]:
        with self.lock:
            return list(self.lines)

    def add(self, line: str) -> None:
        with self.lock:
            self.lines.append(line)
            while len(self.lines) > self.size:
                self.lines.popleft()


class WebSource(Source):
    """The front door, one per ``[source:NAME]`` of type ``web``. It is a source too:
    messages fired through the API and webhook requests are its events, and their replies
    come back here (and in the HTTP answer). It drives the bot like the admin plugin (its
    ``bot`` is `IBotControl`), every call checked against the permission of the chat
    command that does the same."""

    type = "web"
    #: While the dispatcher's backlog of it is full, fired messages, events and webhooks
    #: are answered 503 with Retry-After (`sources.web.api`) rather than queued.
    can_pause = True
    control = True
    supports = frozenset({"action", "notice", "multiline"})

    endpoint = ServerEndpointOption(
        "Where the front door listens: a Twisted server endpoint string (loopback by "
        "default; ssl:PORT:privateKey=KEY:certKey=CERT for TLS).",
        "tcp:8080:interface=127.0.0.1",
    )
    max_body = IntOption("Largest request body accepted, in bytes (413 beyond).", 65536, min=64)
    open_metrics = BoolOption(
        "Serve /metrics without a token (for a Prometheus scraper); off: it needs a token "
        "of an account with the 'admin' permission.",
        True,
    )
    dashboard = BoolOption("Serve the dashboard at /dashboard/.", True)
    session_timeout = FloatOption(
        "Seconds a dashboard login lasts without being used.", 3600.0, min=60
    )
    reply_timeout = FloatOption(
        "Seconds a fired message or webhook may take in the chain before the request is "
        "answered 504.",
        30.0,
        min=0.1,
    )
    threads = IntOption("Threads for token checks, logins and permission checks.", 4, min=1)
    access_log = BoolOption("Log one line per HTTP request.", False)

    #: Replies to this source's conversations kept for the dashboard.
    outbox_size = 200

    log = Logger()
    name: str
    bot: IBotControl

    def __init__(
        self,
        name: str,
        bot: IBotControl,
        config: dict[str, Any] | None = None,
        *,
        reactor: Any = None,
        threadpool: Any = None,
        log_publisher: Any = None,
    ) -> None:
        super().__init__(name, bot, config)
        self.reactor: Any = reactor if reactor is not None else bot.reactor
        self._given_pool = threadpool
        self.pool: Any = threadpool
        self.port: IListeningPort | None = None
        self.listening_on: str | None = None
        self.metrics = Metrics(bot)
        self.outbox: deque[dict[str, Any]] = deque(maxlen=self.outbox_size)
        self.tail = LogTail()
        self.log_publisher = log_publisher if log_publisher is not None else globalLogPublisher
        self.router = self.build_router()

    def build_router(self) -> Router:
        router = Router()
        router.add("GET", "/healthz", self.healthz)
        router.add("GET", "/readyz", self.readyz)
        router.add("GET", "/metrics", self.metrics_page)
        api.add_routes(router, self)
        hooks.add_routes(router, self)
        dashboard.add_routes(router, self)
        return router

    def setup(self) -> None:
        self.nick = self.bot.name
        if self.port is not None and self.endpoint != self.listening_on:
            self.log.warn(
                "source {source}: the new endpoint {endpoint} takes effect when the source "
                "is reloaded (still listening on {old})",
                source=self.name,
                endpoint=self.endpoint,
                old=self.listening_on,
            )

    # -- service ------------------------------------------------------------------

    def startService(self) -> Deferred[None]:
        """Start the thread pool, watch the dispatcher and the log, and listen; fails
        with `ListenFailed` (port in use, bad certificate) and then stops it all."""
        super().startService()
        self.set_state("connecting")
        if self._given_pool is None:
            self.pool = ThreadPool(minthreads=0, maxthreads=self.threads, name=f"web-{self.name}")
        self.pool.start()
        for spec in (WEBHOOK_TYPE, api.SAY_TYPE):
            if spec.name not in self.bot.catalogue:
                self.bot.catalogue.declare(spec)
        dispatcher = self.bot.dispatcher
        dispatcher.monitors = (*dispatcher.monitors, self.metrics)
        self.log_publisher.addObserver(cast("ILogObserver", self._log_observer))
        try:
            endpoint = serverFromString(self.reactor, self.endpoint)
            d = endpoint.listen(Site(self.router, self.max_body, self.access_log))
        except Exception as e:
            d = fail(e)
        return d.addCallbacks(self._listening, self._listen_failed)

    def _listening(self, port: IListeningPort) -> None:
        self.port = port
        self.listening_on = self.endpoint
        self.set_state("connected")
        self.log.info(
            "source {source}: listening on {endpoint}", source=self.name, endpoint=self.endpoint
        )

    def _listen_failed(self, failure: Failure) -> None:
        self._unwatch()
        self.set_state("failed")
        reason = failure.getErrorMessage().strip() or type(failure.value).__name__
        raise ListenFailed(f"source {self.name}: cannot listen on {self.endpoint}: {reason}")

    def _unwatch(self) -> None:
        dispatcher = self.bot.dispatcher
        dispatcher.monitors = tuple(m for m in dispatcher.monitors if m is not self.metrics)
        self.log_publisher.removeObserver(cast("ILogObserver", self._log_observer))
        if self.pool is not None and self._given_pool is None:
            pool, self.pool = self.pool, None
            # Joining the threads could block on a login's argon2 check: not here.
            threading.Thread(target=pool.stop, daemon=True).start()

    def stopService(self) -> Deferred[None]:
        """Stop listening, end the log streams and the watching. Fires once the port
        is closed."""
        super().stopService()
        for request in list(self.tail.streams):
            if not request.finished:
                request.finish()
        self.tail.streams.clear()
        self._unwatch()
        port, self.port = self.port, None
        d: Deferred[Any] = Deferred()
        d.callback(None)
        if port is not None:
            d.addCallback(lambda _: port.stopListening())
        return d.addBoth(lambda _: self.set_state("stopped"))

    # -- the log tail -------------------------------------------------------------

    def _log_observer(self, event: dict[str, Any]) -> None:
        # Any thread. Formatting here: the event's objects may change later.
        text = formatEvent(event)
        if not text:
            return
        level = getattr(event.get("log_level"), "name", "info")
        stamp = time.strftime("%H:%M:%S", time.gmtime(event.get("log_time", time.time())))
        line = f"{stamp} [{level}] {text}"
        self.tail.add(line)
        if self.tail.streams:
            self.reactor.callFromThread(self._push_line, line)

    def _push_line(self, line: str) -> None:
        for request in list(self.tail.streams):
            dashboard.write_sse(request, line)

    # -- work off the reactor -----------------------------------------------------

    def in_thread(self, function: Callable[..., T], *args: Any) -> Deferred[T]:
        """Run ``function`` in the source's pool; its result, on the reactor thread."""
        if self.pool is None:
            return fail(ApiError(503, "the front door is stopping"))
        return deferToThreadPool(self.reactor, self.pool, function, *args)

    def _open_session(self) -> Any:
        database = self.bot.databases.get("main")
        if database is None:
            raise ApiError(503, "the bot has no database, so it knows no accounts")
        return database.open_session()

    def thd_principal_of_token(self, token: str) -> Principal | None:
        """The account the bearer ``token`` belongs to, or None. Worker thread."""
        with self._open_session() as session:
            found = tokens.account_of_token(session, token)
            if found is None:
                return None
            row, account = found
            identity = self._thd_identity(session, account)
            session.commit()
            return Principal(account.id, account.username, identity, "token", str(row.id))

    def thd_check_password(self, username: str, password: str) -> Principal | None:
        """The account ``username`` if ``password`` is its password here (argon2),
        else None. Worker thread."""
        with self._open_session() as session:
            account = accounts.find_account(session, username)
            if account is None:
                # As slow as a wrong password, so that names cannot be told by timing.
                accounts.verify_password(_dummy_hash(), password)
                return None
            if not accounts.check_credentials(
                session, account.id, self.name, "password", password
            ):
                return None
            identity = self._thd_identity(session, account)
            session.commit()
            return Principal(
                account.id, account.username, identity, "session", secrets.token_hex(4)
            )

    def _now(self) -> datetime:
        return datetime.fromtimestamp(self.reactor.seconds(), UTC)

    def thd_open_session(self, principal: Principal) -> tuple[str, DashboardSession]:
        """A new dashboard session of ``principal`` on this source, stored (hashed):
        (the session id for the cookie, the session). Worker thread."""
        with self._open_session() as session:
            row, sid = sessions.create_session(
                session, principal.account_id, self.name, self._now(), self.session_timeout
            )
            session.commit()
            return sid, DashboardSession(dataclasses.replace(principal, key=str(row.id)), row.csrf)

    def thd_find_session(self, sid: str) -> DashboardSession | None:
        """The live dashboard session ``sid`` of this source (its expiry pushed on), or
        None. Worker thread."""
        with self._open_session() as session:
            found = sessions.find_session(
                session, sid, self.name, self._now(), self.session_timeout
            )
            if found is None:
                session.commit()  # an expired row deleted
                return None
            row, account = found
            identity = self._thd_identity(session, account)
            session.commit()
            principal = Principal(account.id, account.username, identity, "session", str(row.id))
            return DashboardSession(principal, row.csrf)

    def thd_end_session(self, sid: str) -> None:
        """Delete the dashboard session ``sid`` (logout). Worker thread."""
        with self._open_session() as session:
            sessions.end_session(session, sid)
            session.commit()

    def _thd_identity(self, session: Any, account: accounts.Account) -> int:
        # The account's identity on this source, made and linked on first use: only a
        # proven owner (token, password) ever acts as it here.
        row = accounts.identify(session, self.name, account.username)
        if row.account_id != account.id:
            accounts.link(session, row, account)
        return row.id

    def principal_event(
        self, principal: Principal, text: str = "", channel: str | None = None
    ) -> Event:
        """An event from ``principal`` (authenticated: the token or password proved it)
        in its private conversation here, or in ``channel``."""
        return Event(
            source=self.name,
            type=EventType.MESSAGE,
            sender=Sender(
                connection=f"web:{principal.kind}:{principal.key}",
                id=principal.username,
                nick=principal.username,
            ),
            channel=channel if channel is not None else principal.username,
            public=channel is not None,
            addressed=channel is None,
            message=Message(text),
            identity=principal.identity_id,
            account=principal.account_id,
            authenticated=True,
        )

    def thd_authorised(self, principal: Principal, permission: str) -> bool:
        """Whether ``principal`` holds ``permission``, resolved as for a chat command
        of theirs on this source. Worker thread."""
        event = self.principal_event(principal)
        event._session_factory = self._open_session
        try:
            return self.bot.auth.authorise(event, permission)
        finally:
            event.close_session()

    # -- health and metrics -------------------------------------------------------

    def healthz(self, request: Request) -> Any:
        from botcore.sources.web.http import json_reply

        return json_reply({"alive": True, "state": self.bot.state})

    def readyz(self, request: Request) -> Deferred[Any]:
        """Ready: the bot is running, its database answers, and every enabled source is
        connected."""
        from botcore.sources.web.http import json_reply

        def thd_database() -> str | None:
            try:
                with self._open_session() as session:
                    session.connection().exec_driver_sql("SELECT 1")
            except Exception as e:
                return f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
            return None

        def answer(problem: str | None) -> Any:
            states = self.bot.source_states()
            config = self.bot.config
            waiting = {
                name: state
                for name, state in states.items()
                if state != "connected"
                # A source the config leaves disabled is not waited for.
                and (
                    self.bot.get_source(name) is not None
                    or config.section(f"source:{name}").get("enabled", True)
                )
            }
            checks = {
                "running": self.bot.state == "running",
                "database": problem is None,
                "sources": not waiting,
            }
            body: dict[str, Any] = {
                "ready": all(checks.values()),
                "checks": checks,
                "sources": states,
            }
            if problem is not None:
                body["database_error"] = problem
            return json_reply(body, 200 if body["ready"] else 503)

        return self.in_thread(thd_database).addCallback(answer)

    async def metrics_page(self, request: Request) -> Any:
        from botcore.sources.web.http import Reply

        if not self.open_metrics:
            principal = await api.authenticate(self, request)
            await api.require(self, principal, "admin")
        return Reply(self.metrics.text(), content_type="text/plain; version=0.0.4; charset=utf-8")

    # -- the source ---------------------------------------------------------------

    def is_channel(self, target: str) -> bool:
        return bool(target) and target[0] == "#"

    def verified_identity(self, event: Event) -> str | None:
        # Events made here carry their account already (`principal_event`); a webhook's
        # sender is nobody's.
        return None

    def send(self, response: Response) -> None:
        """Keep a reply to one of this source's conversations for the dashboard (a
        fired message's replies also go back in its HTTP answer)."""
        self.outbox.append(response_json(response))


def response_json(response: Response) -> dict[str, Any]:
    """A reply as the API shows it."""
    return {
        "text": response.text if isinstance(response.text, str) else bool(response.text),
        "source": response.source,
        "target": response.target,
        "action": response.action,
        "notice": response.notice,
        "kind": response.kind,
    }


@functools.cache
def _dummy_hash() -> str:
    return accounts.hash_password(secrets.token_hex(16))
