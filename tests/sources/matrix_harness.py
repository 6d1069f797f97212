"""A real Synapse for the Matrix source's integration tests and bench: one homeserver on
a free loopback port with SQLite in a temporary directory, rate limits raised, users made
with the shared-secret admin API, stopped and started again on the same port and data;
and `Peer`, a person's client (matrix-nio's state machine and encryption on treq).
Synapse lives in its own venv (``.ci/install-matrix.sh``)."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import yaml
from twisted.internet.defer import Deferred

from botcore.testing import free_port, in_ci

#: How long any one wait on the server or a client may take before the test fails.
WAIT = 60.0
SERVER_NAME = "localhost"
ROOT = Path(__file__).resolve().parents[2]

#: Rate limits no test reaches (Synapse's defaults throttle a test's burst of messages).
_UNLIMITED = {"per_second": 10000, "burst_count": 10000}
_RATE_LIMITS = (
    "rc_message",
    "rc_registration",
    "rc_joins",
    "rc_joins_per_room",
    "rc_invites",
    "rc_3pid_validation",
    "rc_admin_redaction",
    "rc_key_requests",
)


def synapse_python() -> Path | None:
    """The Python of Synapse's venv (``BOTCORE_SYNAPSE_VENV`` or ``.synapse-venv`` at the
    checkout's root), or None when Synapse is not installed there."""
    venv = Path(os.environ.get("BOTCORE_SYNAPSE_VENV", ROOT / ".synapse-venv"))
    if not venv.is_absolute():
        venv = ROOT / venv
    python = venv / "bin" / "python"
    if not python.exists():
        return None
    probe = subprocess.run(
        [str(python), "-c", "import synapse"],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        timeout=WAIT,
        check=False,
    )
    return python if probe.returncode == 0 else None


def skip_reason() -> str | None:
    """Why the Synapse tests cannot run here, or None. Under ``CI=true`` never a reason:
    the test then fails on the missing server."""
    if in_ci():
        return None
    try:
        import nio  # noqa: F401
        import treq  # noqa: F401
    except ImportError:
        return "matrix-nio and treq are not installed (pip install -e '.[matrix]')"
    if synapse_python() is None:
        return "Synapse is not installed (.ci/install-matrix.sh)"
    return None


class SynapseServer:
    """One Synapse process on a free loopback port. `start`, `stop` and `register` block,
    each for at most `WAIT` seconds; a stopped server starts again with its data."""

    host = "127.0.0.1"

    def __init__(self, settings: dict[str, Any] | None = None) -> None:
        #: homeserver.yaml settings beyond the harness's own.
        self.settings = dict(settings or {})
        self.port = free_port()
        self.directory = Path(tempfile.mkdtemp(prefix="botcore-synapse-"))
        self.config = self.directory / "homeserver.yaml"
        self.process: subprocess.Popen[bytes] | None = None
        self.python: Path | None = None
        self._log: Any = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def _python(self) -> Path:
        if self.python is None:
            self.python = synapse_python()
            if self.python is None:
                raise RuntimeError("Synapse is not installed: run .ci/install-matrix.sh")
        return self.python

    def _write(self) -> None:
        subprocess.run(
            [
                str(self._python()),
                "-m",
                "synapse.app.homeserver",
                "--server-name",
                SERVER_NAME,
                "--config-path",
                str(self.config),
                "--generate-config",
                "--report-stats=no",
            ],
            cwd=self.directory,
            check=True,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            timeout=WAIT,
        )
        with open(self.config, encoding="utf-8") as handle:
            config = yaml.safe_load(handle)
        config["listeners"] = [
            {
                "port": self.port,
                "bind_addresses": [self.host],
                "type": "http",
                "tls": False,
                "x_forwarded": False,
                "resources": [{"names": ["client"], "compress": False}],
            }
        ]
        config["trusted_key_servers"] = []
        config["federation_domain_whitelist"] = []
        config["suppress_key_server_warning"] = True
        config["enable_registration"] = False
        config["presence"] = {"enabled": False}
        config["url_preview_enabled"] = False
        config["log_config"] = str(self._log_config())
        for name in _RATE_LIMITS:
            config[name] = dict(_UNLIMITED)
        config["rc_login"] = {
            "address": dict(_UNLIMITED),
            "account": dict(_UNLIMITED),
            "failed_attempts": dict(_UNLIMITED),
        }
        config.update(self.settings)
        with open(self.config, "w", encoding="utf-8") as handle:
            yaml.safe_dump(config, handle)

    def _log_config(self) -> Path:
        path = self.directory / "log.yaml"
        level = os.environ.get("BOTCORE_SYNAPSE_LOG", "WARNING")
        log = {
            "version": 1,
            "formatters": {"plain": {"format": "%(asctime)s %(name)s %(levelname)s %(message)s"}},
            "handlers": {
                "file": {
                    "class": "logging.FileHandler",
                    "formatter": "plain",
                    "filename": str(self.directory / "homeserver.log"),
                }
            },
            "root": {"level": level, "handlers": ["file"]},
            "disable_existing_loggers": False,
        }
        with open(path, "w", encoding="utf-8") as handle:
            yaml.safe_dump(log, handle)
        return path

    def start(self) -> None:
        """Start Synapse and wait until its client API answers."""
        if not self.config.exists():
            self._write()
        self._log = open(self.directory / "stderr.log", "ab")  # noqa: SIM115
        self.process = subprocess.Popen(
            [str(self._python()), "-m", "synapse.app.homeserver", "-c", str(self.config)],
            cwd=self.directory,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=self._log,
        )
        deadline = time.monotonic() + WAIT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"Synapse exited at start with status {self.process.returncode}: "
                    + self.log_tail()
                )
            try:
                with urllib.request.urlopen(
                    f"{self.url}/_matrix/client/versions", timeout=1
                ) as answer:
                    if answer.status == 200:
                        return
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"Synapse did not answer on port {self.port} within {WAIT}s")

    def log_tail(self, lines: int = 30) -> str:
        found = []
        for name in ("stderr.log", "homeserver.log"):
            try:
                with open(self.directory / name, encoding="utf-8", errors="replace") as handle:
                    found.extend(handle.readlines()[-lines:])
            except OSError:
                pass
        return "".join(found) or "(no log)"

    def stop(self) -> None:
        """Stop Synapse (SIGTERM, then SIGKILL after a bounded wait); a no-op if stopped."""
        process, self.process = self.process, None
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(WAIT)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(WAIT)
        if self._log is not None:
            self._log.close()
            self._log = None

    def cleanup(self) -> None:
        """Stop the server and remove its directory."""
        self.stop()
        shutil.rmtree(self.directory, ignore_errors=True)

    def _request(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(
            self.url + path, data=data, method=method, headers={"Content-Type": "application/json"}
        )
        try:
            with urllib.request.urlopen(request, timeout=WAIT) as answer:
                return json.loads(answer.read())
        except urllib.error.HTTPError as e:
            raise RuntimeError(f"{method} {path}: {e.code} {e.read()!r}") from None

    def register(self, user: str, password: str, admin: bool = False) -> str:
        """Make an account with the shared-secret admin API; its user id."""
        with open(self.config, encoding="utf-8") as handle:
            secret = yaml.safe_load(handle)["registration_shared_secret"]
        nonce = self._request("GET", "/_synapse/admin/v1/register")["nonce"]
        signed = "\x00".join((nonce, user, password, "admin" if admin else "notadmin"))
        mac = hmac.new(secret.encode(), signed.encode(), digestmod=hashlib.sha1)
        answer = self._request(
            "POST",
            "/_synapse/admin/v1/register",
            {
                "nonce": nonce,
                "username": user,
                "password": password,
                "admin": admin,
                "mac": mac.hexdigest(),
            },
        )
        return str(answer["user_id"])


async def wait_until(predicate: Any, what: str, timeout: float = WAIT) -> None:
    """Poll ``predicate`` on the reactor until true; an AssertionError after ``timeout``."""
    from twisted.internet import reactor, task

    deadline = reactor.seconds() + timeout
    while not predicate():
        if reactor.seconds() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await task.deferLater(reactor, 0.02, lambda: None)


class Peer:
    """A person's Matrix client for the tests: matrix-nio's state machine and encryption
    (`botcore.sources.matrix.client.MatrixClient`, treq underneath), syncing in a loop and keeping
    every room event it sees, decrypted where it can."""

    def __init__(self, url: str, user_id: str, password: str, directory: Path) -> None:
        from twisted.internet import reactor

        from botcore.sources.matrix.client import MatrixClient, treq_requester

        self.request, self._close = treq_requester(reactor)
        self.client = MatrixClient(
            url,
            user_id,
            clock=reactor,
            request=self.request,
            store_path=str(directory),
            request_timeout=WAIT,
        )
        self.password = password
        self.events: list[tuple[str, dict[str, Any]]] = []
        self.undecrypted: list[Any] = []
        self.key_requests: list[Any] = []
        self._loop: Deferred[None] | None = None
        self.next_batch: str | None = None

    async def start(self) -> None:
        await self.client.login(self.password)
        await self.sync_once(0)
        self._loop = Deferred.fromCoroutine(self._run())
        self._loop.addErrback(lambda f: None)

    async def sync_once(self, timeout_ms: int = 500) -> None:
        import nio

        response = await self.client.sync(self.next_batch, timeout_ms)
        assert isinstance(response, nio.SyncResponse), response
        self.next_batch = response.next_batch
        self.key_requests.extend(
            e for e in response.to_device_events if isinstance(e, nio.RoomKeyRequest)
        )
        for room_id, info in response.rooms.join.items():
            for event in info.timeline.events:
                if isinstance(event, nio.MegolmEvent):
                    event.room_id = room_id
                    self.undecrypted.append(event)
                elif isinstance(getattr(event, "source", None), dict):
                    self.events.append((room_id, event.source))
        await self.client.key_chores()
        # As clients do, try again those whose key came later (in a later sync).
        for event in list(self.undecrypted):
            try:
                decrypted = self.client.nio.decrypt_event(event)
            except Exception:
                continue
            self.undecrypted.remove(event)
            self.events.append((event.room_id, decrypted.source))

    async def _run(self) -> None:
        while True:
            await self.sync_once()

    async def stop(self) -> None:
        if self._loop is not None:
            self._loop.cancel()
        await self._close()

    def texts(self, room_id: str, sender: str) -> list[str]:
        return [
            raw["content"].get("body", "")
            for room, raw in self.events
            if room == room_id
            and raw.get("sender") == sender
            and raw.get("type") == "m.room.message"
        ]

    async def wait_event(self, room_id: str, predicate: Any, what: str) -> dict[str, Any]:
        found: list[dict[str, Any]] = []

        def check() -> bool:
            found[:] = [raw for room, raw in self.events if room == room_id and predicate(raw)]
            return bool(found)

        await wait_until(check, what)
        return found[0]

    async def wait_text(self, room_id: str, sender: str, text: str) -> dict[str, Any]:
        """The first message from ``sender`` in the room that contains ``text``; the
        failure says what they did say."""
        try:
            return await self.wait_event(
                room_id,
                lambda raw: (
                    raw.get("sender") == sender
                    and text in str(raw.get("content", {}).get("body", ""))
                ),
                f"{text!r} from {sender} in {room_id}",
            )
        except AssertionError as e:
            raise AssertionError(f"{e}; they said {self.texts(room_id, sender)}") from None

    async def join(self, room_id: str) -> None:
        await self.client.join(room_id)
        await wait_until(lambda: room_id in self.client.nio.rooms, f"{room_id} joined")

    async def create_room(
        self, invite: str | list[str], encrypted: bool = False, direct: bool = False
    ) -> str:
        import nio

        initial = []
        if encrypted:
            initial.append(
                {
                    "type": "m.room.encryption",
                    "state_key": "",
                    "content": {"algorithm": "m.megolm.v1.aes-sha2"},
                }
            )
        method, path, data = nio.Api.room_create(
            self.client.access_token,
            is_direct=direct,
            invite=[invite] if isinstance(invite, str) else invite,
            preset=nio.RoomPreset.private_chat,
            initial_state=initial,
        )
        response = await self.client.checked("create", nio.RoomCreateResponse, method, path, data)
        return str(response.room_id)

    async def send(self, room_id: str, text: str, **extra: Any) -> str:
        await wait_until(lambda: room_id in self.client.nio.rooms, f"{room_id} synced")
        content = {"msgtype": "m.text", "body": text, **extra}
        return await self.client.room_send(room_id, "m.room.message", content)

    async def send_event(self, room_id: str, event_type: str, content: dict[str, Any]) -> str:
        return await self.client.room_send(room_id, event_type, content)


if __name__ == "__main__":  # a manual check: start, register, stop
    server = SynapseServer()
    began = time.monotonic()
    server.start()
    print("started in", round(time.monotonic() - began, 2), "s at", server.url)
    print(server.register("alice", "alicepass"))
    server.cleanup()
    sys.exit(0)
