"""The Matrix source: keeps the bot on one Matrix account (a password or an access
token), long-polls /sync on the reactor, and speaks in rooms, direct chats and encrypted
rooms (end-to-end, with matrix-nio's machinery on vodozemac), with Matrix's replies,
threads, edits, reactions and redactions. Needs the ``matrix`` extra (matrix-nio, treq).

What it keeps, in the ``store`` folder (beside the config file unless absolute):
``session.json`` (user id, device id, access token, the last sync token, direct rooms),
and nio's key store for that device (``USER_DEVICE.db``: the device's Olm account,
Olm and Megolm sessions, the devices seen and their trust). Both are private (mode 0600
in a 0700 folder); losing them means a new device whose keys others must learn again."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import random
from collections import OrderedDict
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import nio  # type: ignore[import-untyped]
from twisted.application.internet import backoffPolicy
from twisted.internet.defer import CancelledError, Deferred
from twisted.internet.task import deferLater
from zope.interface import implementer

from botcore.event import Attachment, Event, EventType, Message, Response, Sender
from botcore.interfaces import IChannelSource
from botcore.options import BoolOption, ChoiceOption, FloatOption, IntOption, ListOption, Option
from botcore.source import Source, unique_names
from botcore.sources.matrix import content as mc
from botcore.sources.matrix.client import MatrixClient, MatrixError, Requester, treq_requester

if TYPE_CHECKING:
    from botcore.interfaces import IBotContext

__all__ = ["MatrixClient", "MatrixSource"]

#: Errors that no retry mends until the configuration changes.
_FATAL = frozenset({"M_FORBIDDEN", "M_USER_DEACTIVATED", "M_INVALID_USERNAME"})
#: How many reactions' ids (to tell a reaction's redaction from a message's) are kept.
_REACTIONS_KEPT = 2000


class UserIdOption(Option):
    """A Matrix user id, ``@localpart:server``."""

    kind = "Matrix user id"

    def parse(self, raw: str) -> str:
        raw = raw.strip()
        if not raw.startswith("@") or ":" not in raw[2:]:
            raise ValueError(f"expected a user id such as @bot:example.org, found {raw!r}")
        return raw


class URLOption(Option):
    """An http(s) URL."""

    kind = "URL"

    def parse(self, raw: str) -> str:
        raw = raw.strip().rstrip("/")
        if not raw.startswith(("http://", "https://")) or len(raw.split("//", 1)[1]) == 0:
            raise ValueError(f"expected an http(s) URL such as https://matrix.org, found {raw!r}")
        return raw


class MediaURLOption(Option):
    """An http(s) URL template with ``{homeserver}``, ``{server}``, ``{media_id}`` and
    ``{name}`` (no other placeholders)."""

    kind = "URL template"

    def parse(self, raw: str) -> str:
        raw = raw.strip()
        try:
            filled = raw.format(homeserver="https://h", server="s", media_id="m", name="n")
        except (KeyError, IndexError, ValueError) as e:
            raise ValueError(
                f"expected a URL with {{homeserver}}, {{server}}, {{media_id}} or {{name}}: {e}"
            ) from None
        if not filled.startswith(("http://", "https://")):
            raise ValueError(f"expected an http(s) URL template, found {raw!r}")
        return raw


class RoomListOption(ListOption):
    """Rooms, each a room id (``!id:server``, or ``!id`` alone: rooms of version 12 on
    have ids without a server part) or an alias (``#name:server``)."""

    kind = "list of rooms"

    def parse(self, raw: str) -> list[str]:
        rooms = super().parse(raw)
        for room in rooms:
            sigil, rest = room[:1], room[1:]
            local, colon, server = rest.partition(":")
            if sigil == "#":
                valid = bool(local and server)
            else:
                valid = sigil == "!" and bool(local) and (not colon or bool(server))
            if not valid or any(c.isspace() for c in room):
                expected = "'!id:server', '!id' or '#alias:server'"
                raise ValueError(f"expected {expected}, found {room!r}")
        return rooms


class DeviceListOption(ListOption):
    """Devices, each ``@user:server DEVICEID``."""

    kind = "list of devices"

    def parse(self, raw: str) -> list[str]:
        devices = super().parse(raw)
        for entry in devices:
            words = entry.split()
            if len(words) != 2 or not words[0].startswith("@"):
                raise ValueError(f"expected '@user:server DEVICEID', found {entry!r}")
        return devices


@implementer(IChannelSource)
class MatrixSource(Source):
    """One Matrix account. Reactor thread only.

    Events: ``message``/``action``/``notice`` (in a room: public, its channel the room
    id; in a direct room: private and addressed), ``edit``, ``reaction`` and ``delete``
    (``refers_to`` the event concerned), ``state`` for members' join, leave, kick, ban
    and invite (``data["kind"]``), ``invite`` when the bot is invited, ``source`` for its
    own connected/disconnected/joined/left. ``message_id`` is the Matrix event id;
    ``data["user_id"]`` the sender's user id (also its id and verified identity);
    ``data["encrypted"]`` whether it came encrypted. A file (``m.image``, ``m.file``,
    ``m.video``, ``m.audio``) is a ``message`` whose ``Message.attachments`` link it
    (``media_url``). The bot sends no files: a reply's attachments reach a room as
    lines of text with their URLs (it does not say ``attachments``)."""

    type = "matrix"
    #: Waits before its next /sync while the dispatcher's backlog of it is full.
    can_pause = True
    supports = frozenset(
        {
            "action",
            "notice",
            "multiline",
            "topic",
            "message-ids",
            "reply",
            "thread",
            "react",
            "edit",
            "delete",
        }
    )

    homeserver = URLOption(
        "The homeserver's client API URL, such as https://matrix.example.org.", required=True
    )
    user_id = UserIdOption("The bot's account, such as @bot:example.org.", required=True)
    password = Option(
        "The account's password, to log in when there is no access token.", "", secret=True
    )
    access_token = Option(
        "An access token to use instead of logging in with the password.", "", secret=True
    )
    store = Option(
        "The folder for the login, the sync position and the encryption keys (default: "
        "matrix-NAME beside the config file).",
        None,
    )
    store_passphrase = Option(
        "The passphrase the encryption key store is sealed with (default: nio's fixed "
        "one; the folder's permissions protect it).",
        "",
        secret=True,
    )
    device_name = Option("The device's display name, shown to people in their clients.", "botcore")
    encryption = BoolOption(
        "Take part in end-to-end encrypted rooms (keys uploaded, shared and kept in the store).",
        True,
    )
    device_trust = ChoiceOption(
        "Whose devices get the room keys of the bot's encrypted messages: tofu (every "
        "device, trusted when first seen) or verified (only trusted_devices).",
        "tofu",
        choices=("tofu", "verified"),
    )
    trusted_devices = DeviceListOption(
        "Devices trusted with device_trust = verified, each '@user:server DEVICEID'.", []
    )
    undecryptable_notice = BoolOption(
        "Say in the room when a message could not be decrypted (it is always logged and "
        "its key asked for).",
        False,
    )
    rooms = RoomListOption(
        "Rooms to join after every connection, each a room id ('!id:server', or '!id' for "
        "rooms of version 12 on) or an alias '#name:server'.",
        [],
    )
    invites = ChoiceOption(
        "Whose invitations the bot accepts: everyone, the 'list' (invite_from) or nobody "
        "(refused).",
        "nobody",
        choices=("everyone", "list", "nobody"),
    )
    invite_from = ListOption(
        "With invites = list: user ids (@user:server) or servers (example.org) whose "
        "invitations are accepted.",
        [],
    )
    replies_as_notices = BoolOption(
        "Send the bot's replies as m.notice (clients show them dimmed; other bots ignore them).",
        False,
    )
    logout_on_stop = BoolOption(
        "Log out when the source stops (the device and its keys are then gone; the next "
        "start logs in anew with the password).",
        False,
    )
    sync_timeout = FloatOption(
        "Seconds the homeserver may hold one /sync long-poll open waiting for news.",
        30.0,
        min=0,
    )
    request_timeout = FloatOption(
        "Seconds one request may take (beyond sync_timeout for /sync) before it is dropped.",
        60.0,
        min=1,
    )
    reconnect_delay = FloatOption(
        "Seconds before the first retry after a failed request; doubled after each failure, "
        "with jitter.",
        1.0,
        min=0.01,
    )
    reconnect_max_delay = FloatOption(
        "The longest wait between retries, in seconds.", 120.0, min=0.01
    )
    media_url = MediaURLOption(
        "How a file sent in a room (its mxc:// URI) is linked for people elsewhere (bridged "
        "networks, plugins): a URL with {homeserver}, {server}, {media_id} and {name}. The "
        "default is the homeserver's unauthenticated download URL, which opens only where "
        "the homeserver serves media without a login (Synapse: enable_authenticated_media: "
        "false); else point it at a media proxy.",
        mc.MEDIA_URL,
    )
    message_length = IntOption(
        "Most UTF-8 bytes of text in one message (Matrix events hold at most 64 KiB).",
        16000,
        min=64,
        max=60000,
    )

    name: str

    def __init__(
        self,
        name: str,
        bot: IBotContext,
        config: dict[str, Any] | None = None,
        *,
        reactor: Any = None,
        requester: Requester | None = None,
        jitter: Callable[[], float] | None = None,
    ) -> None:
        super().__init__(name, bot, config)
        self.reactor: Any = reactor if reactor is not None else bot.reactor
        self._requester = requester
        self._close_http: Callable[[], Deferred[None]] | None = None
        self._jitter = jitter or random.Random().random
        self.client: MatrixClient | None = None
        self.failures = 0
        #: Successful (re)connections: the first sync after each start or failure.
        self.connections = 0
        self.next_batch: str | None = None
        self.direct_rooms: set[str] = set()
        self.display_name: str | None = None
        self._aliases: dict[str, str] = {}
        self._configured: list[str] = []
        self._loop: Deferred[None] | None = None
        #: What the sync loop waits on while the source's input is paused.
        self._resumed: Deferred[None] | None = None
        self._stopping = False
        self._outbox: dict[str, Deferred[None]] = {}
        self._reactions: OrderedDict[str, tuple[str, str, str]] = OrderedDict()
        self._asked_keys: set[str] = set()
        self._tasks: set[Deferred[Any]] = set()
        self._token_refused = False

    # -- configuration -------------------------------------------------------------------

    def setup(self) -> None:
        """Read the options; on a reload, join rooms newly added to ``rooms``."""
        previous = set(self._configured)
        self._configured = list(self.rooms)
        self.nick = self.display_name or self.localpart
        if self.running and self.state == "connected":
            for room in self._configured:
                if room not in previous:
                    self.join(room)

    @property
    def localpart(self) -> str:
        return str(self.config.get("user_id") or "@botcore:").split(":", 1)[0][1:]

    def store_dir(self) -> Path:
        """Where the login and the keys are kept."""
        configured = self.store or f"matrix-{self.name}"
        return self.bot.config.relative_path(configured)

    def names(self) -> tuple[str, ...]:
        """What the bot answers to here: its display name, its user id and localpart,
        then the configured names."""
        return unique_names((self.display_name, self.user_id, self.localpart, *super().names()))

    def is_channel(self, target: str) -> bool:
        """Whether ``target`` is a room that is not a direct chat. Any thread."""
        if not target or target[0] not in "!#":
            return False
        return self._aliases.get(target, target) not in self.direct_rooms

    def fold(self, name: str) -> str:
        """A room alias as the room id it names once the bot has joined it (so that
        ``#dev:example.org`` and ``!id:example.org`` are one conversation, as a bridge
        names them), case-blind like the base. Any thread."""
        return super().fold(self._aliases.get(name, name))

    def verified_identity(self, event: Event) -> str | None:
        """The sender's Matrix user id: the homeserver authenticated it (for encrypted
        messages too: the device that encrypted is not what vouches)."""
        if event.source != self.name:
            return None
        user = event.data.get("user_id")
        return user if isinstance(user, str) and user.startswith("@") else None

    def truncation_point(self, response: Response | None = None) -> int | None:
        return self.message_length

    # -- the session file ---------------------------------------------------------------

    def _session_path(self) -> Path:
        return self.store_dir() / "session.json"

    def _load_session(self) -> dict[str, Any]:
        path = self._session_path()
        try:
            with open(path, encoding="utf-8") as handle:
                found = json.load(handle)
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as e:
            self.log.warn("{source}: ignoring unreadable {path}: {why}",
                          source=self.name, path=str(path), why=str(e))  # fmt: skip
            return {}
        if not isinstance(found, dict) or found.get("user_id") != self.user_id:
            return {}
        if found.get("homeserver") != self.homeserver:
            return {}
        return found

    def save_session(self) -> None:
        """Write the login and the sync position (atomically, private)."""
        client = self.client
        if client is None or not client.access_token:
            return
        data = {
            "homeserver": self.homeserver,
            "user_id": client.user_id,
            "device_id": client.device_id,
            "access_token": client.access_token,
            "next_batch": self.next_batch,
            "direct_rooms": sorted(self.direct_rooms),
        }
        self._write_session(data)

    def _write_session(self, data: dict[str, Any]) -> None:
        path = self._session_path()
        temporary = path.with_suffix(".tmp")
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(data, handle)
        os.replace(temporary, path)

    def _drop_token(self) -> None:
        """Forget a refused access token, keeping the device id (the password login that
        follows asks for the same device, whose keys stay valid) and the sync position;
        the configured token is not tried again."""
        self._token_refused = True
        session = self._load_session()
        if not session:
            return
        session["access_token"] = None
        self._write_session(session)

    def _forget_session(self) -> None:
        self.next_batch = None
        with contextlib.suppress(FileNotFoundError):
            self._session_path().unlink()

    # -- the connection -----------------------------------------------------------------

    def _make_client(self, device_id: str | None) -> MatrixClient:
        if self._requester is None:
            self._requester, self._close_http = treq_requester(self.reactor)
        directory = self.store_dir()
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.chmod(directory, 0o700)
        trusted = [(entry.split()[0], entry.split()[1]) for entry in self.trusted_devices]
        return MatrixClient(
            self.homeserver,
            self.user_id,
            clock=self.reactor,
            request=self._requester,
            store_path=str(directory) if self.encryption else None,
            device_id=device_id,
            pickle_key=self.store_passphrase or "DEFAULT_KEY",
            encryption=self.encryption,
            trust=self.device_trust,
            trusted_devices=trusted,
            request_timeout=self.request_timeout,
            device_name=self.device_name,
        )

    def startService(self) -> None:
        super().startService()
        self._stopping = False
        self.failures = 0
        self.set_state("connecting")
        self._loop = Deferred.fromCoroutine(self._run())
        self._loop.addErrback(self._loop_failed)

    def _loop_failed(self, failure: Any) -> None:
        if not failure.check(CancelledError):
            self.log.failure("{source}: the sync loop stopped", failure, source=self.name)
            self.set_state("failed")

    async def _login(self) -> None:
        """Take up the kept login, else the configured access token, else log in with
        the password (on the kept device, so its keys stay valid)."""
        session = self._load_session()
        device = session.get("device_id")
        token = session.get("access_token") or (None if self._token_refused else self.access_token)
        client = self.client = self._make_client(device if isinstance(device, str) else None)
        if token:
            client.nio.access_token = token
            whoami = await client.whoami()
            if whoami.user_id != self.user_id:
                raise MatrixError("whoami", "M_FORBIDDEN", f"token is {whoami.user_id}'s", 0)
            client.restore(self.user_id, str(whoami.device_id or device), token)
            self.log.info("{source}: resumed as {user} on device {device}",
                          source=self.name, user=self.user_id,
                          device=client.device_id)  # fmt: skip
        elif self.password:
            await client.login(self.password)
            self.log.info("{source}: logged in as {user} on device {device}",
                          source=self.name, user=self.user_id,
                          device=client.device_id)  # fmt: skip
        else:
            raise MatrixError("login", "M_FORBIDDEN", "no password or access token set", 0)
        if session.get("device_id") == client.device_id:
            batch = session.get("next_batch")
            self.next_batch = batch if isinstance(batch, str) else None
            self.direct_rooms = {r for r in session.get("direct_rooms", []) if isinstance(r, str)}
        else:
            self.next_batch = None  # a new device: the old position is not its
        self.save_session()
        self.display_name = await client.display_name(self.user_id) or None
        self.nick = self.display_name or self.localpart

    async def _run(self) -> None:
        """Log in, then sync until stopped; a failure waits with backoff (a 429's
        ``retry_after_ms`` is honoured by the client) and tries again."""
        first = True
        while not self._stopping:
            try:
                if self.client is None or not self.client.access_token:
                    await self._login()
                    first = True
                if self.input_paused:
                    # The dispatcher's backlog is full: the next /sync waits for it.
                    self._resumed = Deferred()
                    await self._resumed
                await self._sync(first)
                first = False
                self.failures = 0
            except CancelledError:
                raise
            except Exception as error:
                if self._stopping:
                    return  # the long-poll cancelled by stopService (treq wraps the cancel)
                if not await self._recover(error):
                    return
                first = True

    def resume_reading(self) -> None:
        """Let the sync loop go on (pausing needs nothing: it looks before each /sync)."""
        waiter, self._resumed = self._resumed, None
        if waiter is not None:
            waiter.callback(None)

    async def _recover(self, error: BaseException | None) -> bool:
        """After a failed login or sync: log in again, give up (False), or wait and
        retry."""
        if isinstance(error, MatrixError) and error.errcode == "M_UNKNOWN_TOKEN":
            self.log.warn("{source}: the access token was refused; logging in again",
                          source=self.name)  # fmt: skip
            self._drop_token()
            self.client = None
            if not self.password:
                self.log.error("{source}: no password to log in with; giving up",
                               source=self.name)  # fmt: skip
                self.set_state("failed")
                return False
        elif isinstance(error, MatrixError) and error.errcode in _FATAL:
            self.log.error("{source}: {why}; giving up", source=self.name, why=str(error))
            self.set_state("failed")
            return False
        why = str(error) if isinstance(error, MatrixError) else f"{type(error).__name__}: {error}"
        await self._retry_later(why)
        return True

    async def _retry_later(self, why: str) -> None:
        self.failures += 1
        if self.state == "connected":
            self._source_event("disconnected", reason=why)
        if not self._stopping:
            self.set_state("reconnecting")
        delay = self.retry_delay(self.failures)
        self.log.info("{source}: {why}; retrying in {delay:.1f}s",
                      source=self.name, why=why, delay=delay)  # fmt: skip
        await deferLater(self.reactor, delay, lambda: None)

    def retry_delay(self, attempt: int) -> float:
        """Seconds before the next try: Twisted's `backoffPolicy` over the failures in a
        row, from ``reconnect_delay`` up to ``reconnect_max_delay``, jittered."""
        policy = backoffPolicy(
            initialDelay=self.reconnect_delay,
            maxDelay=self.reconnect_max_delay,
            factor=2.0,
            jitter=lambda: 0.0,
        )
        return policy(max(0, attempt - 1)) * (0.5 + 0.5 * self._jitter())

    async def _sync(self, first: bool) -> None:
        client = self.client
        assert client is not None
        # The first sync after a (re)start returns at once, with the rooms' full state
        # (nio keeps none across restarts: members and encryption must be relearnt).
        response = await client.sync(
            self.next_batch,
            0 if first else int(self.sync_timeout * 1000),
            full_state=first and self.next_batch is not None,
        )
        if not hasattr(response, "next_batch") or not response.next_batch:
            raise MatrixError(
                "sync",
                str(getattr(response, "status_code", "M_UNKNOWN")),
                str(getattr(response, "message", "")),
                int(getattr(response, "http_status", 0)),
            )
        history = self.next_batch is not None
        await client.key_chores()
        if first:
            self.connections += 1
            self.set_state("connected")
            self._source_event("connected", user_id=client.user_id, device_id=client.device_id)
            for room in self._configured:
                self.join(room)
        self._handle_sync(response, history)
        self.next_batch = response.next_batch
        self.save_session()

    def stopService(self) -> Deferred[None]:
        """Stop syncing (the long-poll is cancelled), log out if so configured, close the
        HTTP connections; fires when done."""
        super().stopService()
        self._stopping = True
        return Deferred.fromCoroutine(self._stop())

    async def _stop(self) -> None:
        loop, self._loop = self._loop, None
        if loop is not None:
            loop.cancel()
        for d in [*self._outbox.values(), *self._tasks]:
            d.cancel()
        client = self.client
        if client is not None and self.logout_on_stop and client.access_token:
            try:
                await client.logout()
            except Exception as e:
                self.log.warn("{source}: logout failed: {why}", source=self.name, why=str(e))
            self._forget_session()
        if self.state == "connected":
            self._source_event("disconnected", reason="stopped")
        self.client = None
        close, self._close_http, self._requester = self._close_http, None, None
        if close is not None:
            await close()
        self.set_state("stopped")

    # -- what a sync brings -------------------------------------------------------------

    def _handle_sync(self, response: nio.SyncResponse, history: bool) -> None:
        """Turn a sync's news into events. ``history`` is False for the first sync of a
        new login: what was said before the bot came is not answered."""
        for room_id, info in response.rooms.invite.items():
            try:
                self._invited(room_id, info)
            except Exception:
                self.log.failure("{source}: an invitation to {room} could not be handled",
                                 source=self.name, room=room_id)  # fmt: skip
        for room_id, info in response.rooms.join.items():
            for raw_event in info.timeline.events:
                try:
                    self._room_event(room_id, raw_event, history)
                except Exception:
                    self.log.failure("{source}: an event of {room} could not be handled",
                                     source=self.name, room=room_id)  # fmt: skip
        for room_id in response.rooms.leave:
            if history:
                self._source_event("left", room=room_id)

    def _sender(self, room_id: str, user_id: str) -> Sender:
        client = self.client
        room = client.nio.rooms.get(room_id) if client is not None else None
        nick = None
        if room is not None and user_id in room.users:
            nick = room.users[user_id].display_name
        return Sender(f"{self.name}/{user_id}", user_id, nick or user_id.split(":", 1)[0][1:])

    def _time(self, raw: dict[str, Any]) -> datetime:
        stamp = raw.get("origin_server_ts")
        if isinstance(stamp, int):
            return datetime.fromtimestamp(stamp / 1000, UTC)
        return datetime.fromtimestamp(self.reactor.seconds(), UTC)

    def _room_event(self, room_id: str, event: Any, history: bool) -> None:
        client = self.client
        assert client is not None
        raw = event.source if isinstance(getattr(event, "source", None), dict) else {}
        sender = raw.get("sender") or getattr(event, "sender", None)
        if not isinstance(sender, str):
            return
        event_id = raw.get("event_id")
        if raw.get("type") == "m.room.member":
            self._membership(room_id, raw, history)
            return
        if sender == client.user_id:
            return  # the bot's own (its ids are remembered when sent)
        if isinstance(event, nio.MegolmEvent):
            if history:
                self._undecryptable(room_id, event)
            return
        parsed = mc.parse_event(raw)
        if parsed.kind == "reaction" and isinstance(event_id, str):
            self._reactions[event_id] = (room_id, parsed.refers_to or "", parsed.key or "")
            while len(self._reactions) > _REACTIONS_KEPT:
                self._reactions.popitem(last=False)
        if parsed.kind is None or not history:
            return
        direct = room_id in self.direct_rooms
        data: dict[str, Any] = {
            "user_id": sender,
            "room_id": room_id,
            "encrypted": bool(getattr(event, "decrypted", False)),
        }
        kind = {
            "message": EventType.MESSAGE,
            "action": EventType.ACTION,
            "notice": EventType.NOTICE,
            "edit": EventType.EDIT,
            "reaction": EventType.REACTION,
            "delete": EventType.DELETE,
        }[parsed.kind]
        reaction = parsed.key
        refers = parsed.refers_to
        if parsed.kind == "delete" and refers is not None and refers in self._reactions:
            # Taking a reaction back is a redaction of the reaction's own event.
            _, refers, reaction = self._reactions.pop(refers)
            kind = EventType.REACTION
            data["removed"] = True
        if parsed.kind == "edit":
            data["edited_type"] = parsed.edited_kind
        if parsed.mentions:
            data["mentions"] = list(parsed.mentions)
        text = parsed.text
        attachments = tuple(self.linked(a) for a in parsed.attachments)
        addressed: bool | str = direct
        if not direct and client.user_id in parsed.mentions:
            addressed = True
        self.emit(
            Event(
                source=self.name,
                type=kind,
                sender=self._sender(room_id, sender),
                channel=room_id,
                public=not direct,
                addressed=addressed,
                message=Message(text, attachments=attachments)
                if kind in EventType.WRITTEN
                else None,
                time=self._time(raw),
                message_id=event_id if isinstance(event_id, str) else None,
                reply_to=parsed.reply_to,
                thread_id=parsed.thread_id,
                refers_to=refers,
                reaction=reaction,
                data=data,
            )
        )

    def linked(self, attachment: Attachment) -> Attachment:
        """``attachment`` with its ``mxc://`` URI made the HTTP URL ``media_url`` says."""
        url = mc.media_url(attachment.url, self.homeserver, self.media_url, attachment.name)
        return attachment if url is None else dataclasses.replace(attachment, url=url)

    def _undecryptable(self, room_id: str, event: Any) -> None:
        """A message we hold no key for: logged, its key asked for (once per session),
        and, if so configured, a short notice in the room."""
        self.log.warn(
            "{source}: cannot decrypt {event} from {sender} in {room} (session {session})",
            source=self.name,
            event=event.event_id,
            sender=event.sender,
            room=room_id,
            session=event.session_id,
        )
        client = self.client
        if client is None or event.session_id in self._asked_keys:
            return
        self._asked_keys.add(event.session_id)
        event.room_id = room_id
        self._later(client.request_key(event), "asking for a room key")
        if self.undecryptable_notice:
            self._enqueue(
                room_id,
                Response(
                    f"I could not decrypt a message from {event.sender}; I asked for its key.",
                    target=room_id,
                    source=self.name,
                    notice=True,
                ),
            )

    def _membership(self, room_id: str, raw: dict[str, Any], history: bool) -> None:
        client = self.client
        assert client is not None
        content: dict[str, Any] = raw["content"] if isinstance(raw.get("content"), dict) else {}
        target = raw.get("state_key")
        sender = raw.get("sender")
        membership = content.get("membership")
        if not isinstance(target, str) or not isinstance(sender, str):
            return
        unsigned: dict[str, Any] = raw["unsigned"] if isinstance(raw.get("unsigned"), dict) else {}
        before = (unsigned.get("prev_content") or {}).get("membership")
        if target == client.user_id:
            if membership == "join" and before != "join" and history:
                self._source_event("joined", room=room_id)
            return
        if not history:
            return
        if membership == "join":
            kind = "nick" if before == "join" else "join"
        elif membership == "leave":
            kind = "kick" if sender != target and before == "join" else "part"
            if before == "ban":
                kind = "unban"
        elif membership in ("ban", "invite"):
            kind = str(membership)
        else:
            return
        self.emit(
            Event(
                source=self.name,
                type=EventType.STATE,
                sender=self._sender(room_id, target),
                channel=room_id,
                public=room_id not in self.direct_rooms,
                time=self._time(raw),
                message_id=raw.get("event_id") if isinstance(raw.get("event_id"), str) else None,
                data={
                    "kind": kind,
                    "user_id": target,
                    "by": sender,
                    "room_id": room_id,
                    **({"reason": content["reason"]} if "reason" in content else {}),
                    **(
                        {"displayname": content["displayname"]} if "displayname" in content else {}
                    ),
                },
            )
        )

    def _invited(self, room_id: str, info: Any) -> None:
        client = self.client
        assert client is not None
        by = None
        direct = False
        for state in info.invite_state:
            # nio's invite member events keep their content apart from their source.
            if isinstance(state, nio.InviteMemberEvent) and state.state_key == client.user_id:
                by = state.sender
                content = state.content if isinstance(state.content, dict) else {}
                direct = bool(content.get("is_direct"))
        if not isinstance(by, str):
            return
        self.emit(
            Event(
                source=self.name,
                type=EventType.INVITE,
                sender=Sender(f"{self.name}/{by}", by, by.split(":", 1)[0][1:]),
                channel=by,
                public=False,
                # Not addressed: an invitation is no command, and no complaint answers it.
                addressed=False,
                time=datetime.fromtimestamp(self.reactor.seconds(), UTC),
                data={"channel": room_id, "user_id": by, "direct": direct},
            )
        )
        if self.accepts_invite(by):
            self.log.info("{source}: invited to {room} by {by}; joining",
                          source=self.name, room=room_id, by=by)  # fmt: skip
            if direct:
                self.direct_rooms.add(room_id)
            self.join(room_id)
        else:
            self.log.info("{source}: refused an invitation to {room} by {by}",
                          source=self.name, room=room_id, by=by)  # fmt: skip
            self._later(client.leave(room_id), f"refusing {room_id}")

    def accepts_invite(self, user_id: str) -> bool:
        """Whether an invitation from ``user_id`` is accepted (the ``invites`` policy)."""
        if self.invites == "everyone":
            return True
        if self.invites == "nobody":
            return False
        server = user_id.split(":", 1)[-1].lower()
        for entry in self.invite_from:
            entry = entry.strip()
            if entry.startswith("@") and entry == user_id:
                return True
            if not entry.startswith("@") and entry.lstrip(":").lower() == server:
                return True
        return False

    def _source_event(self, state: str, room: str | None = None, **data: Any) -> None:
        self.emit(
            Event(
                source=self.name,
                type=EventType.SOURCE,
                channel=room,
                time=datetime.fromtimestamp(self.reactor.seconds(), UTC),
                data={"state": state, **({"channel": room} if room else {}), **data},
            )
        )

    def emit(self, event: Event) -> None:
        """Hand an event to the dispatcher (its replies come back through `send`)."""
        if self.running:
            self.dispatch(event)

    def _later(self, coroutine: Any, what: str) -> Deferred[Any]:
        d: Deferred[Any] = Deferred.fromCoroutine(coroutine)

        def failed(failure: Any) -> None:
            if not failure.check(CancelledError):
                self.log.warn("{source}: {what} failed: {why}", source=self.name,
                              what=what, why=failure.getErrorMessage())  # fmt: skip

        d.addErrback(failed)
        # Kept until done, so that stopping cancels what is still under way.
        self._tasks.add(d)
        d.addBoth(lambda result: self._tasks.discard(d))
        return d

    # -- sending ------------------------------------------------------------------------

    def send(self, response: Response) -> None:
        """Send a reply (a message, an edit, a redaction or a reaction) to a room id or
        alias, or to a user id or a member's display name (in a direct room, made when
        there is none). Replies to one place leave in order."""
        target = response.target
        if not target or not target.strip():
            self.log.warn("{source}: dropped a reply with no valid target ({target!r})",
                          source=self.name, target=target)  # fmt: skip
            return
        self._enqueue(target, response)

    def _enqueue(self, target: str, response: Response) -> None:
        previous = self._outbox.get(target)
        if previous is None:
            d: Deferred[None] = Deferred.fromCoroutine(self._deliver(target, response))
        else:
            d = Deferred()
            previous.addBoth(
                lambda _: Deferred.fromCoroutine(self._deliver(target, response)).chainDeferred(d)
            )
        self._outbox[target] = d

        def done(result: Any) -> None:
            if self._outbox.get(target) is d:
                del self._outbox[target]

        d.addBoth(done)

    async def _room_of(self, target: str) -> str:
        client = self.client
        assert client is not None
        if target.startswith("!"):
            return target
        if target.startswith("#"):
            if target not in self._aliases:
                self._aliases[target] = await client.join(target)
            return self._aliases[target]
        if not target.startswith("@"):
            # A name (plugins that answer "privately" by nick): the member who has it.
            found = self.user_named(target)
            if found is None:
                raise ValueError(f"no room or member is called {target!r}")
            target = found
        for room_id in sorted(self.direct_rooms):
            room = client.nio.rooms.get(room_id)
            if room is not None and target in room.users:
                return room_id
        room_id = await client.create_direct_room(target)
        self.direct_rooms.add(room_id)
        self.save_session()
        # Its state (encryption, then the invitation) comes with the next syncs, perhaps
        # in pieces: nothing is sent before the invited person is seen as a member, or
        # it could leave unencrypted or without their keys.
        await self._wait_for_member(room_id, target)
        return room_id

    async def _wait_for_member(self, room_id: str, user_id: str) -> None:
        deadline = self.reactor.seconds() + self.sync_timeout + self.request_timeout

        def there() -> bool:
            room = self.client.nio.rooms.get(room_id) if self.client is not None else None
            return room is not None and user_id in room.users

        while not there():
            if self.reactor.seconds() > deadline:
                raise MatrixError("wait", "M_UNKNOWN", f"{room_id} never came in a sync", 0)
            await deferLater(self.reactor, 0.05, lambda: None)

    async def _deliver(self, target: str, response: Response) -> None:
        client = self.client
        if client is None or self.state != "connected":
            self.log.info("{source}: not connected; dropped a reply to {target}",
                          source=self.name, target=target)  # fmt: skip
            return
        try:
            room_id = await self._room_of(target)
            text = response.text if isinstance(response.text, str) else str(response.text)
            if response.kind == "delete" and response.refers_to:
                await client.redact(room_id, response.refers_to)
                return
            if response.kind == "reaction" and response.refers_to:
                await client.room_send(
                    room_id, "m.reaction", mc.reaction_content(response.refers_to, text)
                )
                return
            msgtype = "m.text"
            if response.action:
                msgtype = "m.emote"
            elif response.notice or self.replies_as_notices:
                msgtype = "m.notice"
            if response.kind == "edit" and response.refers_to:
                await client.room_send(
                    room_id, "m.room.message", mc.edit_content(text, response.refers_to, msgtype)
                )
                return
            content = mc.message_content(
                text,
                msgtype,
                reply_to=response.reply_to if isinstance(response.reply_to, str) else None,
                thread_id=response.thread_id,
                mention=self._mention(room_id, text),
            )
            event_id = await client.room_send(room_id, "m.room.message", content)
            self.remember_sent(response, event_id)
        except CancelledError:
            raise
        except Exception as e:
            self.log.warn("{source}: could not send to {target}: {why}",
                          source=self.name, target=target, why=str(e))  # fmt: skip

    def user_named(self, name: str) -> str | None:
        """The user id of a member of the bot's rooms whose display name is ``name``
        (compared case-blind), or None."""
        client = self.client
        if client is None:
            return None
        wanted = name.casefold()
        for room in client.nio.rooms.values():
            for user_id, user in room.users.items():
                if user_id != client.user_id and (user.display_name or "").casefold() == wanted:
                    return str(user_id)
        return None

    def _mention(self, room_id: str, text: str) -> tuple[str, str] | None:
        """The member whose display name (then ``: ``) the text starts with: the core's
        addressing, made a pill."""
        client = self.client
        room = client.nio.rooms.get(room_id) if client is not None else None
        if room is None or ": " not in text:
            return None
        name = text.split(": ", 1)[0]
        for user_id, user in room.users.items():
            if user_id != client.user_id and name in (user.display_name, user_id):  # type: ignore[union-attr]
                return (user_id, name)
        return None

    # -- IChannelSource -------------------------------------------------------------------

    def join(self, channel: str, key: str | None = None) -> None:
        """Join a room by id or alias now (if connected) and after every reconnect."""
        if channel not in self._configured:
            self._configured.append(channel)
        client = self.client
        if client is None or self.state != "connected":
            return

        async def join() -> None:
            room_id = await client.join(channel)
            if channel.startswith("#"):
                self._aliases[channel] = room_id

        self._later(join(), f"joining {channel}")

    def rooms_wanted(self) -> list[str]:
        """The rooms joined after every connection (configured, then joined since)."""
        return list(self._configured)

    def part(self, channel: str, message: str | None = None) -> None:
        """Leave a room and stop rejoining it."""
        if channel in self._configured:
            self._configured.remove(channel)
        client = self.client
        if client is None:
            return
        room_id = self._aliases.pop(channel, channel)
        self.direct_rooms.discard(room_id)
        self._later(client.leave(room_id), f"leaving {channel}")

    def set_nick(self, nick: str) -> None:
        """Change the bot's display name (everywhere: Matrix has one per account)."""
        nick = nick.strip()
        if not nick or "\n" in nick:
            raise ValueError(f"not a usable display name: {nick!r}")
        client = self.client
        if client is None:
            return
        method, path, data = nio.Api.profile_set_displayname(
            client.access_token, client.user_id, nick
        )

        async def rename() -> None:
            await client.checked("set the display name", nio.ProfileSetDisplayNameResponse,
                                 method, path, data)  # fmt: skip
            self.display_name = self.nick = nick

        self._later(rename(), "renaming")

    def say(self, target: str, text: str) -> None:
        self.send(Response(text, target=target, source=self.name))

    def do(self, target: str, text: str) -> None:
        self.send(Response(text, target=target, source=self.name, action=True))

    def topic(self, channel: str, text: str) -> None:
        client = self.client
        if client is None:
            return

        async def put() -> None:
            room_id = await self._room_of(channel)
            method, path, data = nio.Api.room_put_state(
                client.access_token, room_id, "m.room.topic", {"topic": text}
            )
            await client.checked("set the topic", nio.RoomPutStateResponse, method, path, data,
                                 (room_id,))  # fmt: skip

        self._later(put(), f"setting the topic of {channel}")

    def members(self, channel: str) -> dict[str, str]:
        """The room's members: display name (or user id) -> ``@`` for moderators."""
        client = self.client
        room = client.nio.rooms.get(self._aliases.get(channel, channel)) if client else None
        if room is None:
            return {}
        found = {}
        for user_id, user in room.users.items():
            level = room.power_levels.get_user_level(user_id)
            found[user.display_name or user_id] = "@" if level >= 50 else ""
        return found
