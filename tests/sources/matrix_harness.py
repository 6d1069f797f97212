"""A real Synapse for the Matrix source's integration tests: one homeserver on a free
loopback port with SQLite in a temporary directory, rate limits raised, users made with
the shared-secret admin API; it can be stopped and started again on the same port and
data. Synapse lives in its own venv (``.ci/install-matrix.sh``)."""

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

    def __init__(self) -> None:
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


if __name__ == "__main__":  # a manual check: start, register, stop
    server = SynapseServer()
    began = time.monotonic()
    server.start()
    print("started in", round(time.monotonic() - began, 2), "s at", server.url)
    print(server.register("alice", "alicepass"))
    server.cleanup()
    sys.exit(0)
