"""A real ngircd for the IRC source's integration tests and benchmark, on a free loopback
port in a temporary directory, plus a small line client that tests talk to it with."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable
from typing import Any

from twisted.internet import defer, protocol
from twisted.protocols.basic import LineOnlyReceiver

from botcore.testing import free_port, in_ci

#: How long any one wait on the server or a client may take before the test fails:
#: generous, so that only wrong behaviour fails, never a loaded machine.
WAIT = 60.0

_CONFIG = """\
[Global]
    Name = {name}
    Info = botcore test server
    Listen = 127.0.0.1
    Ports = {port}
{uid}    PidFile = {directory}/ngircd.pid
    MotdPhrase = botcore test server
[Limits]
{penalty}    MaxConnectionsIP = 0
    MaxJoins = 0
    MaxNickLength = 30
    PingTimeout = 120
    PongTimeout = 20
[Options]
    DNS = no
    Ident = no
    PAM = no
{usermodes}    IncludeDir = {directory}/conf.d
[Operator]
    Name = admin
    Password = adminpass
{tls}"""

_TLS = """\
[SSL]
    CertFile = {directory}/tls/cert.pem
    KeyFile = {directory}/tls/key.pem
    Ports = {port}
"""


def ngircd_path() -> str | None:
    """Where the ngircd binary is, or None when it is not installed."""
    return shutil.which("ngircd") or next(
        (p for p in ("/usr/sbin/ngircd", "/usr/local/sbin/ngircd") if os.path.exists(p)), None
    )


def skip_reason() -> str | None:
    """Why the IRC integration tests cannot run here, or None when they can.

    Under ``CI=true`` a missing server is not a reason to skip: the caller must fail."""
    if ngircd_path() is None and not in_ci():
        return "ngircd is not installed (apt-get install ngircd)"
    return None


class IRCServer:
    """One ngircd process. ``penalties=False`` turns its flood penalties off (fast,
    deterministic tests); ``penalties=True`` keeps ngircd's defaults (about one command a
    second once a client has used up its allowance).

    `start` and `stop` block, each for at most `WAIT` seconds."""

    host = "127.0.0.1"

    def __init__(
        self, *, penalties: bool = False, tls: bool = False, name: str = "irc.test.local"
    ) -> None:
        self.penalties = penalties
        self.name = name
        self.port = free_port()
        self.tls_port = free_port() if tls else None
        self.directory = tempfile.mkdtemp(prefix="botcore-ngircd-")
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def endpoint(self) -> str:
        """The Twisted client endpoint string for this server."""
        return f"tcp:{self.host}:{self.port}"

    @property
    def tls_endpoint(self) -> str:
        """The endpoint string for its TLS port, trusting its self-signed certificate."""
        return f"tls:localhost:{self.tls_port}:trustRoots={self.directory}/ca"

    def write_certificate(self) -> None:
        """A self-signed certificate for localhost (the server's key and certificate in
        tls/, the certificate alone in ca/ for clients to trust)."""
        import datetime

        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import NameOID

        key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
        now = datetime.datetime.now(datetime.UTC)
        certificate = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(hours=1))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
            .sign(key, hashes.SHA256())
        )
        pem = certificate.public_bytes(serialization.Encoding.PEM)
        for folder in ("tls", "ca"):
            os.makedirs(os.path.join(self.directory, folder), exist_ok=True)
            os.chmod(os.path.join(self.directory, folder), 0o755)
        with open(os.path.join(self.directory, "tls", "cert.pem"), "wb") as handle:
            handle.write(pem)
        with open(os.path.join(self.directory, "ca", "cert.pem"), "wb") as handle:
            handle.write(pem)
        key_path = os.path.join(self.directory, "tls", "key.pem")
        with open(key_path, "wb") as handle:
            handle.write(
                key.private_bytes(
                    serialization.Encoding.PEM,
                    serialization.PrivateFormat.PKCS8,
                    serialization.NoEncryption(),
                )
            )
        # ngircd reads it after dropping to nobody; it is a throwaway test key.
        os.chmod(key_path, 0o644)

    def write_config(self) -> str:
        os.makedirs(os.path.join(self.directory, "conf.d"), exist_ok=True)
        # ngircd drops to nobody when started as root; its pid file must stay writable.
        os.chmod(self.directory, 0o777)
        root = os.geteuid() == 0
        text = _CONFIG.format(
            name=self.name,
            port=self.port,
            directory=self.directory,
            uid="    ServerUID = nobody\n    ServerGID = nogroup\n" if root else "",
            penalty="" if self.penalties else "    MaxPenaltyTime = 0\n",
            usermodes="" if self.penalties else "    DefaultUserModes = F\n",
            tls=_TLS.format(directory=self.directory, port=self.tls_port) if self.tls_port else "",
        )
        if self.tls_port and not os.path.exists(os.path.join(self.directory, "tls")):
            self.write_certificate()
        path = os.path.join(self.directory, "ngircd.conf")
        with open(path, "w", encoding="utf-8") as handle:
            handle.write(text)
        return path

    def start(self) -> None:
        """Start ngircd and wait until it accepts connections."""
        binary = ngircd_path()
        if binary is None:
            raise RuntimeError("ngircd is not installed (apt-get install ngircd)")
        config = self.write_config()
        self.process = subprocess.Popen(
            [binary, "-n", "-p", "-f", config],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + WAIT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"ngircd exited at start with status {self.process.returncode}")
            try:
                for port in (self.port, self.tls_port):
                    if port is not None:
                        with socket.create_connection((self.host, port), timeout=0.5):
                            pass
                return
            except OSError:
                time.sleep(0.02)
        self.stop()
        raise RuntimeError(f"ngircd did not listen on port {self.port} within {WAIT}s")

    def stop(self) -> None:
        """Stop ngircd (SIGTERM, then SIGKILL after a bounded wait); a no-op if stopped."""
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(WAIT)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(WAIT)

    def kill(self) -> None:
        """Kill ngircd at once (SIGKILL), as a crash would."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(WAIT)
        self.process = None

    def cleanup(self) -> None:
        """Stop the server and remove its directory."""
        self.stop()
        shutil.rmtree(self.directory, ignore_errors=True)


class LineClient(LineOnlyReceiver):
    """A bare IRC client for tests: registers, answers PING, records every line and lets
    a test wait (bounded) for a line that satisfies a condition."""

    delimiter = b"\r\n"
    MAX_LENGTH = 65536

    def __init__(self, nick: str) -> None:
        self.nick = nick
        self.lines: list[str] = []
        self.registered: defer.Deferred[None] = defer.Deferred()
        self.lost: defer.Deferred[None] = defer.Deferred()
        self._waiters: list[tuple[Callable[[str], bool], defer.Deferred[str], int]] = []
        #: The size in bytes (CR LF included) of each line in ``lines``, as received.
        self.sizes: list[int] = []

    def connectionMade(self) -> None:
        self.transport.setTcpNoDelay(True)
        self.send(f"NICK {self.nick}")
        self.send(f"USER {self.nick} 0 * :botcore test client")

    def send(self, line: str) -> None:
        self.sendLine(line.encode("utf-8"))

    def lineReceived(self, line: bytes) -> None:
        text = line.decode("utf-8", "replace")
        if text.startswith("PING "):
            self.send("PONG " + text[5:])
            return
        self.lines.append(text)
        self.sizes.append(len(line) + 2)
        if " 001 " in text and not self.registered.called:
            self.registered.callback(None)
        index = len(self.lines) - 1
        for waiter in list(self._waiters):
            condition, d, start = waiter
            if index >= start and condition(text):
                self._waiters.remove(waiter)
                d.callback(text)

    def connectionLost(self, reason: Any = None) -> None:
        if not self.lost.called:
            self.lost.callback(None)

    def wait_for(
        self, condition: Callable[[str], bool] | str, *, since: int = 0, timeout: float = WAIT
    ) -> defer.Deferred[str]:
        """Fire with the first line (recorded from index ``since`` on) that satisfies
        ``condition`` (a predicate, or a substring); fail with TimeoutError after
        ``timeout`` seconds."""
        from twisted.internet import reactor

        if isinstance(condition, str):
            needle = condition
            condition = lambda line: needle in line  # noqa: E731
        for line in self.lines[since:]:
            if condition(line):
                return defer.succeed(line)
        d: defer.Deferred[str] = defer.Deferred()
        self._waiters.append((condition, d, since))
        d.addTimeout(timeout, reactor)
        d.addErrback(self._timed_out, condition, d)
        return d

    def _timed_out(self, failure: Any, condition: Any, d: defer.Deferred[str]) -> Any:
        self._waiters[:] = [w for w in self._waiters if w[1] is not d]
        if failure.check(defer.TimeoutError):
            tail = "\n  ".join(self.lines[-15:])
            raise AssertionError(f"{self.nick}: no matching line; last lines:\n  {tail}")
        return failure


async def connect_client(server: IRCServer, nick: str) -> LineClient:
    """Connect and register a `LineClient` (bounded by `WAIT`)."""
    from twisted.internet import reactor
    from twisted.internet.endpoints import TCP4ClientEndpoint

    endpoint = TCP4ClientEndpoint(reactor, server.host, server.port, timeout=WAIT)
    client = LineClient(nick)
    await endpoint.connect(protocol.Factory.forProtocol(lambda: client))
    await client.registered.addTimeout(WAIT, reactor)
    return client
