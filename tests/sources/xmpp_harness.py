"""A real Prosody for the XMPP source's integration tests, on free loopback ports in a
temporary directory with a test-made certificate and accounts, plus a small XMPP client
(Twisted's own jabber client) that tests talk to the bot with."""

from __future__ import annotations

import atexit
import datetime
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable
from typing import Any

from twisted.internet import defer, ssl
from twisted.internet.endpoints import HostnameEndpoint
from twisted.words.protocols.jabber import client, jid, xmlstream
from twisted.words.xish import domish

from botcore.testing import free_port, in_ci

#: How long any one wait on the server or a client may take before the test fails.
WAIT = 60.0
DOMAIN = "localhost"
MUC = "conference.localhost"

_CONFIG = """\
pidfile = "{directory}/prosody.pid"
data_path = "{directory}/data"
interfaces = {{ "127.0.0.1" }}
c2s_ports = {{ {port} }}
c2s_require_encryption = true
http_ports = {{ }}
https_ports = {{ }}
c2s_direct_tls_ports = {{ }}
s2s_ports = {{ }}
authentication = "internal_hashed"
allow_registration = false
log = {{ {{ levels = {{ min = "{level}" }}, to = "file", filename = "{directory}/prosody.log" }} }}
modules_enabled = {{ "roster"; "saslauth"; "tls"; "disco"; "ping"; "presence"; "posix" }}
modules_disabled = {{ "s2s"; "offline"; "c2s_direct_tls" }}
daemonize = false
certificates = "{directory}/certs"
ssl = {{ certificate = "{directory}/certs/localhost.crt";
        key = "{directory}/certs/localhost.key";{protocol} }}
limits = {{ c2s = {{ rate = "1000mb/s" }} }}

VirtualHost "{domain}"

Component "{muc}" "muc"
    -- mod_muc_mam gives every room message the room's XEP-0359 stanza-id, the id that
    -- replies, reactions and retractions in a room refer to.
    modules_enabled = {{ "muc_mam" }}
    muc_log_by_default = true
    muc_room_locking = false
    muc_room_default_public = true
    muc_room_default_history_length = 20
    muc_tombstones = false
"""


def prosody_path() -> str | None:
    """Where the prosody binary is, or None when it is not installed."""
    return shutil.which("prosody") or next(
        (p for p in ("/usr/bin/prosody", "/usr/local/bin/prosody") if os.path.exists(p)), None
    )


def skip_reason() -> str | None:
    """Why the Prosody tests cannot run here, or None. Under ``CI=true`` never a reason:
    the test then fails on the missing server."""
    if in_ci():
        return None
    if prosody_path() is None:
        return "prosody is not installed (apt-get install prosody, or .ci/install-xmpp.sh)"
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("prosody")
        except KeyError:
            return "no prosody user to run the server as"
    return None


class ProsodyServer:
    """One Prosody process on a free loopback port. `start` and `stop` block, each for at
    most `WAIT` seconds. Prosody refuses to run as root: as root it is started as the
    ``prosody`` user, which then owns the directory."""

    host = "127.0.0.1"

    def __init__(self, users: dict[str, str], tls12: bool = False) -> None:
        #: TLS 1.2 only: the one version where Prosody 0.12 offers SCRAM-SHA-1-PLUS
        #: (its only channel binding, tls-unique, is undefined under TLS 1.3).
        self.tls12 = tls12
        self.port = free_port()
        self.users = dict(users)
        self.directory = tempfile.mkdtemp(prefix="botcore-prosody-")
        self.process: subprocess.Popen[bytes] | None = None
        self.config = os.path.join(self.directory, "prosody.cfg.lua")
        self._written = False

    @property
    def ca_file(self) -> str:
        """The certificate clients must trust (self-signed)."""
        return os.path.join(self.directory, "ca.pem")

    def _write(self) -> None:
        os.makedirs(os.path.join(self.directory, "data"), exist_ok=True)
        os.makedirs(os.path.join(self.directory, "certs"), exist_ok=True)
        self._write_certificate()
        with open(self.config, "w", encoding="utf-8") as handle:
            handle.write(
                _CONFIG.format(
                    directory=self.directory,
                    port=self.port,
                    domain=DOMAIN,
                    muc=MUC,
                    level=os.environ.get("BOTCORE_PROSODY_LOG", "info"),
                    protocol=' protocol = "tlsv1_2";' if self.tls12 else "",
                )
            )
        self._own()
        for user, password in self.users.items():
            self.register(user, password)
        self._written = True

    def _own(self) -> None:
        if os.geteuid() != 0:
            return
        entry = pwd.getpwnam("prosody")
        for folder, _dirs, files in os.walk(self.directory):
            os.chown(folder, entry.pw_uid, entry.pw_gid)
            for name in files:
                os.chown(os.path.join(folder, name), entry.pw_uid, entry.pw_gid)

    def _as_prosody(self, command: list[str]) -> list[str]:
        if os.geteuid() != 0:
            return command
        return ["setpriv", "--reuid=prosody", "--regid=prosody", "--init-groups", *command]

    def register(self, user: str, password: str) -> None:
        """Make an account (works with the server stopped or running)."""
        subprocess.run(
            self._as_prosody(
                ["prosodyctl", "--config", self.config, "register", user, DOMAIN, password]
            ),
            check=True,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            timeout=WAIT,
        )

    def _write_certificate(self) -> None:
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import NameOID

        key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, DOMAIN)])
        now = datetime.datetime.now(datetime.UTC)
        certificate = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(hours=1))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(
                x509.SubjectAlternativeName([x509.DNSName(DOMAIN), x509.DNSName(MUC)]), False
            )
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
            .sign(key, hashes.SHA256())
        )
        pem = certificate.public_bytes(serialization.Encoding.PEM)
        certs = os.path.join(self.directory, "certs")
        with open(os.path.join(certs, "localhost.crt"), "wb") as handle:
            handle.write(pem)
        with open(self.ca_file, "wb") as handle:
            handle.write(pem)
        key_path = os.path.join(certs, "localhost.key")
        with open(key_path, "wb") as handle:
            handle.write(
                key.private_bytes(
                    serialization.Encoding.PEM,
                    serialization.PrivateFormat.TraditionalOpenSSL,
                    serialization.NoEncryption(),
                )
            )
        os.chmod(key_path, 0o600)

    def start(self) -> None:
        """Start Prosody and wait until it accepts connections."""
        binary = prosody_path()
        if binary is None:
            raise RuntimeError("prosody is not installed (apt-get install prosody)")
        if not self._written:
            self._write()
        self.process = subprocess.Popen(
            self._as_prosody([binary, "--config", self.config, "-F"]),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + WAIT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"prosody exited at start with status {self.process.returncode}: "
                    + self.log_tail()
                )
            try:
                with socket.create_connection((self.host, self.port), timeout=0.5):
                    return
            except OSError:
                time.sleep(0.02)
        self.stop()
        raise RuntimeError(f"prosody did not listen on port {self.port} within {WAIT}s")

    @property
    def log_path(self) -> str:
        return os.path.join(self.directory, "prosody.log")

    def log_size(self) -> int:
        """How long the log is now (for `log_since`)."""
        try:
            return os.path.getsize(self.log_path)
        except OSError:
            return 0

    def log_since(self, offset: int) -> str:
        """What the server logged after the log was ``offset`` bytes long."""
        try:
            with open(self.log_path, "rb") as handle:
                handle.seek(offset)
                return handle.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def log_tail(self, lines: int = 20) -> str:
        try:
            with open(os.path.join(self.directory, "prosody.log"), encoding="utf-8") as handle:
                return "".join(handle.readlines()[-lines:])
        except OSError:
            return "(no log)"

    def stop(self) -> None:
        """Stop Prosody (SIGTERM, then SIGKILL after a bounded wait); a no-op if stopped."""
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
        """Kill Prosody at once (SIGKILL), as a crash would."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(WAIT)
        self.process = None

    def cleanup(self) -> None:
        """Stop the server and remove its directory."""
        self.stop()
        shutil.rmtree(self.directory, ignore_errors=True)


_shared: dict[bool, ProsodyServer] = {}


def shared_server(users: dict[str, str], tls12: bool = False) -> ProsodyServer:
    """The test run's one Prosody (one more for ``tls12``), started on first use and
    again if a test stopped it; stopped and removed when the process exits."""
    server = _shared.get(tls12)
    if server is None:
        server = _shared[tls12] = ProsodyServer(users, tls12=tls12)
        atexit.register(server.cleanup)
    if server.process is None or server.process.poll() is not None:
        server.process = None
        server.start()
    return server


class XMPPClient:
    """A plain XMPP client for tests on Twisted's jabber client: logs in over STARTTLS
    (trusting the server's test certificate), records every stanza, and lets a test wait
    (bounded) for one that satisfies a condition."""

    def __init__(self, server: ProsodyServer, user: str, password: str, resource: str) -> None:
        self.jid = jid.JID(f"{user}@{DOMAIN}/{resource}")
        with open(server.ca_file, "rb") as handle:
            trust = ssl.Certificate.loadPEM(handle.read())
        self.factory = client.XMPPClientFactory(
            self.jid, password, configurationForTLS=ssl.optionsForClientTLS(DOMAIN, trust)
        )
        self.factory.addBootstrap(xmlstream.STREAM_AUTHD_EVENT, self._authenticated)
        self.factory.addBootstrap(xmlstream.INIT_FAILED_EVENT, self._failed)
        self.factory.addBootstrap(xmlstream.STREAM_END_EVENT, self._ended)
        self._gone: defer.Deferred[None] = defer.Deferred()
        self.server = server
        self.stream: xmlstream.XmlStream | None = None
        self.ready: defer.Deferred[XMPPClient] = defer.Deferred()
        self.stanzas: list[domish.Element] = []
        self._waiters: list[tuple[Callable[[domish.Element], bool], defer.Deferred[Any], int]] = []

    def connect(self, reactor: Any) -> defer.Deferred[XMPPClient]:
        endpoint = HostnameEndpoint(reactor, server_host(self.server), self.server.port)
        d = endpoint.connect(self.factory)
        d.addErrback(self.ready.errback)
        return self.ready

    def _authenticated(self, stream: xmlstream.XmlStream) -> None:
        self.stream = stream
        self.jid = stream.authenticator.jid
        stream.addObserver("/message", self._received)
        stream.addObserver("/presence", self._received)
        stream.addObserver("/iq", self._iq)
        presence = domish.Element((None, "presence"))
        stream.send(presence)
        self.ready.callback(self)

    def _failed(self, failure: Any) -> None:
        if not self.ready.called:
            self.ready.errback(failure)

    def _iq(self, iq: domish.Element) -> None:
        # Answer pings and anything else with an empty result/error so the server is happy.
        if iq.getAttribute("type") == "get" and iq.firstChildElement() is not None:
            child = iq.firstChildElement()
            reply = domish.Element((None, "iq"))
            reply["to"] = iq.getAttribute("from", DOMAIN)
            reply["id"] = iq.getAttribute("id", "")
            if child.uri == "urn:xmpp:ping":
                reply["type"] = "result"
            else:
                reply["type"] = "error"
                error = reply.addElement("error")
                error["type"] = "cancel"
                error.addElement(("urn:ietf:params:xml:ns:xmpp-stanzas", "service-unavailable"))
            self.send(reply)
        self._received(iq)

    def _received(self, stanza: domish.Element) -> None:
        self.stanzas.append(stanza)
        index = len(self.stanzas) - 1
        for waiter in list(self._waiters):
            condition, d, start = waiter
            if index >= start and condition(stanza):
                self._waiters.remove(waiter)
                d.callback(stanza)

    def send(self, stanza: domish.Element | str) -> None:
        assert self.stream is not None
        self.stream.send(stanza)

    def message(
        self, to: str, body: str, kind: str = "chat", **children: domish.Element
    ) -> domish.Element:
        stanza = domish.Element((None, "message"))
        stanza["to"] = to
        stanza["type"] = kind
        stanza.addElement("body", content=body)
        for child in children.values():
            stanza.addChild(child)
        self.send(stanza)
        return stanza

    def join(self, room: str, nick: str) -> defer.Deferred[Any]:
        """Join ``room`` as ``nick``; fires on the self-presence (status 110)."""
        start = len(self.stanzas)
        presence = domish.Element((None, "presence"))
        presence["to"] = f"{room}/{nick}"
        presence.addElement(("http://jabber.org/protocol/muc", "x"))
        self.send(presence)
        return self.wait_for(lambda s: s.name == "presence" and is_self_presence(s), since=start)

    def bodies(self, since: int = 0, sender: str | None = None) -> list[str]:
        found = []
        for stanza in self.stanzas[since:]:
            if stanza.name == "message" and (
                sender is None or stanza.getAttribute("from") == sender
            ):
                text = shown(stanza)
                if text is not None:
                    found.append(text)
        return found

    def wait_for(
        self,
        condition: Callable[[domish.Element], bool],
        since: int | None = None,
        timeout: float = WAIT,
    ) -> defer.Deferred[Any]:
        """A Deferred that fires with the first stanza (from index ``since``, default:
        from now) that satisfies ``condition``; fails after ``timeout`` seconds."""
        from twisted.internet import reactor

        start = len(self.stanzas) if since is None else since
        for stanza in self.stanzas[start:]:
            if condition(stanza):
                return defer.succeed(stanza)
        d: defer.Deferred[Any] = defer.Deferred()
        self._waiters.append((condition, d, start))
        d.addTimeout(timeout, reactor)
        return d

    def wait_body(self, text: str, since: int | None = None, timeout: float = WAIT) -> Any:
        """Wait for a message whose body contains ``text``."""

        def has(stanza: domish.Element) -> bool:
            body = shown(stanza) if stanza.name == "message" else None
            return (
                body is not None and text in body and not body.startswith(("testbot: ", "echo "))
            )

        return self.wait_for(has, since, timeout)

    def _ended(self, reason: Any) -> None:
        if not self._gone.called:
            self._gone.callback(None)

    def close(self) -> defer.Deferred[None]:
        """Log out; fires once the connection is gone (at most `WAIT` seconds)."""
        from twisted.internet import reactor

        if self.stream is None or self.stream.transport is None or self._gone.called:
            return defer.succeed(None)
        self.stream.transport.loseConnection()
        return self._gone.addTimeout(WAIT, reactor)


def server_host(server: ProsodyServer) -> str:
    return server.host


def child(element: domish.Element, name: str, uri: str | None = None) -> domish.Element | None:
    for found in element.elements():
        if found.name == name and (uri is None or found.uri == uri):
            return found
    return None


def shown(stanza: domish.Element) -> str | None:
    """A message's body as a client with XEP-0461 replies shows it: without the quote of
    the message replied to (the XEP-0428 fallback range); None without a body."""
    body = child(stanza, "body")
    if body is None:
        return None
    text = str(body)
    for fallback in stanza.elements("urn:xmpp:fallback:0", "fallback"):
        if fallback.getAttribute("for") == "urn:xmpp:reply:0":
            for marked in fallback.elements("urn:xmpp:fallback:0", "body"):
                start, end = int(marked["start"]), int(marked["end"])
                text = text[:start] + text[end:]
    return text


def is_self_presence(presence: domish.Element) -> bool:
    for x in presence.elements("http://jabber.org/protocol/muc#user", "x"):
        for status in x.elements("http://jabber.org/protocol/muc#user", "status"):
            if status.getAttribute("code") == "110":
                return True
    return False


#: XEP-0359's namespace (stanza-id, origin-id).
SID = "urn:xmpp:sid:0"


def room_id(stanza: domish.Element, room: str) -> str | None:
    """The room's stanza-id of a room message (mod_muc_mam's)."""
    for found in stanza.elements(SID, "stanza-id"):
        if found.getAttribute("by") == room:
            return str(found["id"])
    return None


def sent_with_id(c: XMPPClient, to: str, body: str, own: str, kind: str, *extra: Any) -> None:
    """Send a message of type ``kind`` with the id (and XEP-0359 origin-id) ``own`` and
    the ``extra`` children (a correction's replace, ...)."""
    stanza = domish.Element((None, "message"))
    stanza["to"] = to
    stanza["type"] = kind
    stanza["id"] = own
    stanza.addElement("body", content=body)
    stanza.addElement((SID, "origin-id"))["id"] = own
    for element in extra:
        stanza.addChild(element)
    c.send(stanza)
