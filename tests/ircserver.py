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

#: How long any one wait on the server or a client may take before the test fails.
WAIT = 15.0

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
"""


def ngircd_path() -> str | None:
    """Where the ngircd binary is, or None when it is not installed."""
    return shutil.which("ngircd") or next(
        (p for p in ("/usr/sbin/ngircd", "/usr/local/sbin/ngircd") if os.path.exists(p)), None
    )


def skip_reason() -> str | None:
    """Why the IRC integration tests cannot run here, or None when they can.

    Under ``CI=true`` a missing server is not a reason to skip: the caller must fail."""
    if ngircd_path() is None and os.environ.get("CI") != "true":
        return "ngircd is not installed (apt-get install ngircd)"
    return None


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class IRCServer:
    """One ngircd process. ``penalties=False`` turns its flood penalties off (fast,
    deterministic tests); ``penalties=True`` keeps ngircd's defaults (about one command a
    second once a client has used up its allowance).

    `start` and `stop` block, each for at most `WAIT` seconds."""

    host = "127.0.0.1"

    def __init__(self, *, penalties: bool = False, name: str = "irc.test.local") -> None:
        self.penalties = penalties
        self.name = name
        self.port = free_port()
        self.directory = tempfile.mkdtemp(prefix="botcore-ngircd-")
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def endpoint(self) -> str:
        """The Twisted client endpoint string for this server."""
        return f"tcp:{self.host}:{self.port}"

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
        )
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
                with socket.create_connection((self.host, self.port), timeout=0.5):
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
