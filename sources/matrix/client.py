"""Matrix over HTTP on the reactor: matrix-nio's transport-free ``nio.Client`` (state and
end-to-end encryption, on vodozemac) and ``nio.Api`` (requests), driven through one
`Requester` (treq in a running bot, recorded answers in unit tests). No asyncio loop:
every call is a coroutine run as a Deferred on the reactor thread."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlencode, urlparse, urlunparse
from uuid import uuid4

import nio  # type: ignore[import-untyped]
from nio.crypto import OlmDevice  # type: ignore[import-untyped]
from twisted.internet.defer import Deferred, DeferredLock
from twisted.internet.task import deferLater
from twisted.logger import Logger

if TYPE_CHECKING:
    from twisted.internet.interfaces import IReactorTime

#: ``request(method, url, headers, body)`` -> Deferred firing with (HTTP status, body).
Requester = Callable[[str, str, dict[str, str], bytes | None], "Deferred[tuple[int, bytes]]"]

#: The longest a 429's ``retry_after_ms`` is honoured for (a server asking for longer is
#: waited on this long, then asked again).
MAX_RETRY_AFTER = 60.0
#: How many 429s in a row one request takes before it gives up.
MAX_RATE_LIMITED = 20


class MatrixError(Exception):
    """A request the homeserver answered with an error (``errcode``, HTTP ``status``)."""

    def __init__(self, what: str, errcode: str, message: str, status: int) -> None:
        super().__init__(f"{what}: {errcode} {message} (HTTP {status})")
        self.errcode = errcode
        self.status = status


def treq_requester(reactor: Any) -> tuple[Requester, Callable[[], Deferred[None]]]:
    """A `Requester` on treq with its own connection pool, and what closes that pool."""
    from treq.client import HTTPClient
    from twisted.web.client import Agent, HTTPConnectionPool

    pool = HTTPConnectionPool(reactor, persistent=True)
    pool.maxPersistentPerHost = 4
    http = HTTPClient(Agent(reactor, pool=pool))

    async def fetch(
        method: str, url: str, headers: dict[str, str], body: bytes | None
    ) -> tuple[int, bytes]:
        sent: dict[bytes | str, bytes | str] = dict(headers.items())
        response = await http.request(method, url, headers=sent, data=body)
        content = await response.content()
        return int(response.code), bytes(content)

    def request(
        method: str, url: str, headers: dict[str, str], body: bytes | None
    ) -> Deferred[tuple[int, bytes]]:
        return Deferred.fromCoroutine(fetch(method, url, headers, body))

    def close() -> Deferred[None]:
        return pool.closeCachedConnections()

    return request, close


def without_token(path: str) -> str:
    """``path`` without an ``access_token`` query parameter: nio's Api puts the token in
    the query, and Synapse refuses a request that also has an Authorization header."""
    parts = list(urlparse(path))
    query = parse_qs(parts[4], keep_blank_values=True)
    query.pop("access_token", None)
    parts[4] = urlencode(query, doseq=True)
    return urlunparse(parts)


class MatrixClient:
    """One Matrix login: nio's client state, the requests that change it, and the
    encryption chores (keys uploaded, queried and claimed, group sessions shared, to-device
    messages sent). Reactor thread only; each coroutine method returns once the answer
    has been given to nio.

    ``trust`` is the device trust policy for sending keys: ``tofu`` verifies each device
    the first time its keys are seen (a changed key for a known device is not taken: nio
    keeps the first), ``verified`` shares room keys only with devices verified before
    (``trusted_devices``: ``@user:server DEVICEID`` pairs), the rest are left out."""

    log = Logger()

    def __init__(
        self,
        homeserver: str,
        user: str,
        *,
        clock: IReactorTime,
        request: Requester,
        store_path: str | None,
        device_id: str | None = None,
        pickle_key: str = "DEFAULT_KEY",
        encryption: bool = True,
        trust: str = "tofu",
        trusted_devices: Iterable[tuple[str, str]] = (),
        request_timeout: float = 60.0,
        device_name: str = "botcore",
    ) -> None:
        self.homeserver = homeserver.rstrip("/")
        self.clock = clock
        self.request = request
        self.request_timeout = request_timeout
        self.device_name = device_name
        self.trust = trust
        self.trusted_devices = set(trusted_devices)
        encryption = encryption and bool(store_path)
        config = nio.ClientConfig(
            store=nio.store.DefaultStore if encryption else None,
            encryption_enabled=encryption,
            pickle_key=pickle_key,
            store_sync_tokens=False,
        )
        self.nio = nio.Client(user, device_id, store_path, config)
        if not encryption:
            # nio loads its key store on every login whenever vodozemac is importable, and
            # refuses without a store class: without encryption there is nothing to load.
            self.nio.load_store = lambda: None
        self._keys = DeferredLock()
        self._sharing: dict[str, DeferredLock] = {}

    # -- state ----------------------------------------------------------------------------

    @property
    def user_id(self) -> str:
        return str(self.nio.user_id or self.nio.user)

    @property
    def device_id(self) -> str | None:
        return self.nio.device_id

    @property
    def access_token(self) -> str:
        return str(self.nio.access_token)

    @property
    def encrypted(self) -> bool:
        """Whether end-to-end encryption runs (its store is loaded)."""
        return self.nio.olm is not None

    def restore(self, user_id: str, device_id: str, access_token: str) -> None:
        """Take up a login kept from before (loads the key store for that device)."""
        self.nio.restore_login(user_id, device_id, access_token)

    # -- requests -------------------------------------------------------------------------

    async def call(
        self,
        response_class: Any,
        method: str,
        path: str,
        data: str | None = None,
        response_data: tuple[Any, ...] = (),
        timeout: float | None = None,
    ) -> Any:
        """Make one request and hand nio its answer; the nio response. A 429 (or
        M_LIMIT_EXCEEDED) waits ``retry_after_ms`` (at most `MAX_RETRY_AFTER` s) and asks
        again. Transport failures and timeouts raise."""
        headers = {"Content-Type": "application/json", "User-Agent": "botcore"}
        if self.nio.access_token:
            headers["Authorization"] = f"Bearer {self.nio.access_token}"
            path = without_token(path)
        body = data.encode("utf-8") if data is not None else None
        if body is None and method in ("POST", "PUT"):
            body = b"{}"
        limited = 0
        while True:
            d = self.request(method, self.homeserver + path, headers, body)
            d.addTimeout(timeout or self.request_timeout, self.clock)
            status, content = await d
            parsed = _parse(status, content)
            if status == 429 or parsed.get("errcode") == "M_LIMIT_EXCEEDED":
                limited += 1
                if limited > MAX_RATE_LIMITED:
                    break
                wait = parsed.get("retry_after_ms")
                delay = wait / 1000 if isinstance(wait, int | float) and wait >= 0 else 5.0
                self.log.info(
                    "rate-limited on {path}; waiting {delay}s",
                    path=path.split("?")[0],
                    delay=min(delay, MAX_RETRY_AFTER),
                )
                await deferLater(self.clock, min(delay, MAX_RETRY_AFTER), lambda: None)
                continue
            break
        response = response_class.from_dict(parsed, *response_data)
        response.http_status = status
        self.nio.receive_response(response)
        return response

    async def checked(self, what: str, response_class: Any, *request: Any, **kw: Any) -> Any:
        """`call`, raising `MatrixError` when the answer is an error."""
        response = await self.call(response_class, *request, **kw)
        if isinstance(response, nio.ErrorResponse):
            raise MatrixError(
                what,
                str(response.status_code),
                str(response.message),
                int(getattr(response, "http_status", 0)),
            )
        return response

    async def login(self, password: str) -> nio.LoginResponse:
        method, path, data = nio.Api.login(
            self.nio.user,
            password=password,
            device_name=self.device_name,
            device_id=self.nio.device_id,
        )
        return await self.checked("login", nio.LoginResponse, method, path, data)

    async def whoami(self) -> nio.WhoamiResponse:
        method, path = nio.Api.whoami(self.nio.access_token)
        return await self.checked("whoami", nio.WhoamiResponse, method, path)

    async def logout(self) -> None:
        method, path = nio.Api.logout(self.nio.access_token)
        await self.checked("logout", nio.LogoutResponse, method, path)

    async def sync(
        self, since: str | None, timeout_ms: int, full_state: bool = False
    ) -> nio.SyncResponse | nio.SyncError:
        """One /sync: waits up to ``timeout_ms`` on the server for news (the request's
        own timeout allows that plus ``request_timeout``)."""
        method, path = nio.Api.sync(
            self.nio.access_token,
            since=since or None,
            timeout=timeout_ms or None,
            full_state=full_state or None,
        )
        return await self.call(
            nio.SyncResponse,
            method,
            path,
            timeout=timeout_ms / 1000 + self.request_timeout,
        )

    async def join(self, room: str) -> str:
        """Join a room by id or alias; its room id."""
        method, path = nio.Api.join(self.nio.access_token, room)
        response = await self.checked(f"join {room}", nio.JoinResponse, method, path)
        return str(response.room_id)

    async def leave(self, room_id: str) -> None:
        method, path = nio.Api.room_leave(self.nio.access_token, room_id)
        await self.checked(
            f"leave {room_id}", nio.RoomLeaveResponse, method, path, response_data=(room_id,)
        )

    async def display_name(self, user_id: str) -> str | None:
        method, path = nio.Api.profile_get_displayname(user_id, self.nio.access_token)
        response = await self.call(nio.ProfileGetDisplayNameResponse, method, path)
        return getattr(response, "displayname", None)

    async def create_direct_room(self, user_id: str) -> str:
        """A new private room with ``user_id`` invited, marked direct (encrypted when this
        client encrypts); its room id."""
        initial = []
        if self.encrypted:
            initial.append(
                {
                    "type": "m.room.encryption",
                    "state_key": "",
                    "content": {"algorithm": "m.megolm.v1.aes-sha2"},
                }
            )
        method, path, data = nio.Api.room_create(
            self.nio.access_token,
            is_direct=True,
            invite=[user_id],
            preset=nio.RoomPreset.trusted_private_chat,
            initial_state=initial,
        )
        response = await self.checked("create a room", nio.RoomCreateResponse, method, path, data)
        return str(response.room_id)

    async def redact(self, room_id: str, event_id: str, reason: str | None = None) -> str:
        method, path, data = nio.Api.room_redact(
            self.nio.access_token, room_id, event_id, str(uuid4()), reason=reason
        )
        response = await self.checked(
            f"redact {event_id}", nio.RoomRedactResponse, method, path, data, (room_id,)
        )
        return str(response.event_id)

    async def room_send(self, room_id: str, event_type: str, content: dict[str, Any]) -> str:
        """Send one event to a room (encrypted where the room is, after sharing the room
        key with its members' devices); the new event's id."""
        room = self.nio.rooms.get(room_id)
        if room is None and room_id in self.nio.encrypted_rooms:
            raise MatrixError(f"send to {room_id}", "M_UNKNOWN", "the room is not synced yet", 0)
        if self.encrypted and room is not None and room.encrypted:
            await self.prepare_encrypted(room_id)
            event_type, content = self.nio.encrypt(room_id, event_type, content)
        method, path, data = nio.Api.room_send(
            self.nio.access_token, room_id, event_type, content, str(uuid4())
        )
        response = await self.checked(
            f"send to {room_id}", nio.RoomSendResponse, method, path, data, (room_id,)
        )
        return str(response.event_id)

    # -- encryption -----------------------------------------------------------------------

    async def prepare_encrypted(self, room_id: str) -> None:
        """Make sure the members' devices of an encrypted room have the outbound group
        session: members loaded, keys queried, one-time keys claimed, session shared."""
        lock = self._sharing.setdefault(room_id, DeferredLock())
        await lock.acquire()
        try:
            room = self.nio.rooms[room_id]
            # Syncs here load every member (no lazy loading), invited ones too; nio's own
            # way (/joined_members) would forget the invited, who then could not read.
            room.members_synced = True
            await self.key_chores()
            if not self.nio.olm.should_share_group_session(room_id):
                return
            missing = self.nio.get_missing_sessions(room_id)
            if missing:
                await self._claim(missing)
            self.apply_trust(room.users)
            for sharing_with, to_device in self.nio.olm.share_group_session_parallel(
                room_id, list(room.users), ignore_unverified_devices=True
            ):
                method, path, data = nio.Api.to_device(
                    self.nio.access_token, "m.room.encrypted", to_device, str(uuid4())
                )
                await self.call(
                    nio.ShareGroupSessionResponse,
                    method,
                    path,
                    data,
                    response_data=(room_id, sharing_with),
                )
            self.nio.olm.outbound_group_sessions[room_id].shared = True
        finally:
            lock.release()

    def apply_trust(self, users: Iterable[str]) -> None:
        """Apply the device trust policy to the known devices of ``users``: trust on
        first use verifies each device not yet verified or blacklisted; ``verified``
        verifies the ``trusted_devices`` and blacklists every other unverified one."""
        store = self.nio.device_store
        for user in users:
            for device in list(store.active_user_devices(user)):
                if user == self.user_id and device.id == self.device_id:
                    continue
                self._trust(device)

    def _trust(self, device: OlmDevice) -> None:
        olm = self.nio.olm
        if olm.is_device_verified(device) or olm.is_device_blacklisted(device):
            return
        if self.trust == "tofu" or (device.user_id, device.id) in self.trusted_devices:
            self.log.info(
                "trusting device {device} of {user}{how}",
                device=device.id,
                user=device.user_id,
                how=" on first use" if self.trust == "tofu" else "",
            )
            self.nio.verify_device(device)
        else:
            self.log.info(
                "not sending room keys to unverified device {device} of {user}",
                device=device.id,
                user=device.user_id,
            )
            self.nio.blacklist_device(device)

    async def key_chores(self) -> None:
        """What encryption needs after a sync or before a send: upload our keys, query
        the devices of users we share encrypted rooms with, claim one-time keys, and send
        the to-device messages nio queued (key shares, key requests). One at a time."""
        if not self.encrypted:
            return
        await self._keys.acquire()
        try:
            if self.nio.should_upload_keys:
                method, path, data = nio.Api.keys_upload(
                    self.nio.access_token, self.nio.olm.share_keys()
                )
                await self.checked("upload keys", nio.KeysUploadResponse, method, path, data)
            if self.nio.should_query_keys:
                users = self.nio.users_for_key_query
                method, path, data = nio.Api.keys_query(self.nio.access_token, users)
                await self.checked("query keys", nio.KeysQueryResponse, method, path, data)
                self.apply_trust(users)
            if self.nio.should_claim_keys:
                await self._claim(self.nio.get_users_for_key_claiming())
            for message in list(self.nio.outgoing_to_device_messages):
                method, path, data = nio.Api.to_device(
                    self.nio.access_token, message.type, message.as_dict(), str(uuid4())
                )
                await self.call(nio.ToDeviceResponse, method, path, data, (message,))
        finally:
            self._keys.release()

    async def _claim(self, devices: dict[str, list[str]]) -> None:
        method, path, data = nio.Api.keys_claim(self.nio.access_token, devices)
        await self.checked("claim keys", nio.KeysClaimResponse, method, path, data)

    async def request_key(self, event: nio.MegolmEvent) -> bool:
        """Ask the sender's devices (and ours) for the room key of an event we could not
        decrypt; False when one was already asked for that session."""
        if not self.encrypted or event.session_id in self.nio.outgoing_key_requests:
            return False
        message = event.as_key_request(self.user_id, self.device_id)
        method, path, data = nio.Api.to_device(
            self.nio.access_token, message.type, message.as_dict(), str(uuid4())
        )
        await self.call(
            nio.RoomKeyRequestResponse,
            method,
            path,
            data,
            (event.session_id, event.session_id, event.room_id, event.algorithm),
        )
        return True


def _parse(status: int, content: bytes) -> dict[str, Any]:
    """The JSON object of an answer; a made-up error for anything else (a proxy's HTML
    page, a truncated body), so nio turns it into its error response."""
    try:
        parsed = json.loads(content.decode("utf-8")) if content else {}
    except (UnicodeDecodeError, ValueError):
        parsed = None
    if not isinstance(parsed, dict):
        return {"errcode": "M_UNKNOWN", "error": f"not a JSON object (HTTP {status})"}
    if status >= 400 and "errcode" not in parsed:
        parsed = {**parsed, "errcode": "M_UNKNOWN", "error": f"HTTP {status}"}
    return parsed
