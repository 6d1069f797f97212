"""A real IRCv3 network for the IRC source's tests: InspIRCd 3 linked to Atheme services,
on free loopback ports in a temporary directory, with a test-made certificate authority,
a server certificate for ``localhost`` and a client certificate (for SASL EXTERNAL).

One network serves a whole test module (`IRCv3Network.shared`): InspIRCd starts in about
0.05 s and Atheme links in under a second, but accounts registered in one test stay for
the next, so tests use their own nicks."""

from __future__ import annotations

import atexit
import contextlib
import datetime
import os
import re
import resource
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time
from typing import Any, ClassVar

from botcore.testing import free_port, in_ci

#: The longest any one wait on the network may take (only a broken setup reaches it).
WAIT = 30.0
#: An operator's name and password (for CHGHOST and the like).
OPER = ("admin", "adminpass")
#: The services' server name and the link password between the two.
SERVICES = "services.localhost"
_LINK_PASSWORD = "botcore-link-pass"

_INSPIRCD = """\
<server name="irc.localhost" description="botcore IRCv3 test server" network="TestNet">
<admin name="test" nick="test" email="test@localhost">
<bind address="127.0.0.1" port="{port}" type="clients">
<bind address="127.0.0.1" port="{tls_port}" type="clients" sslprofile="main">
<bind address="127.0.0.1" port="{link_port}" type="servers">
<connect allow="*" resolvehostnames="no" timeout="60" threshold="100000" pingfreq="120"
         hardsendq="1048576" softsendq="65536" recvq="65536" localmax="1000" globalmax="1000"
         maxconnwarn="off" commandrate="100000" fakelag="off" limit="5000" useident="no"
         maxchans="100">
<pid file="{directory}/inspircd.pid">
<log method="file" type="* -USERINPUT -USEROUTPUT" level="default"
     target="{directory}/inspircd.log">
<options syntaxhints="no">
<security hidesplits="no" announceinvites="all" runasuser="" runasgroup="">
<performance quietbursts="yes" timeskipwarn="0" clonesonconnect="no">
<limits maxnick="30" maxchan="64" maxident="11" maxhost="64" maxquit="255" maxtopic="307"
        maxkick="255" maxreal="128" maxaway="200">
<dns timeout="1">
<module name="ssl_gnutls">
<module name="sslinfo">
<module name="spanningtree">
<module name="services_account">
<module name="sasl">
<module name="cap">
<module name="ircv3">
<module name="ircv3_accounttag">
<module name="ircv3_batch">
<module name="ircv3_capnotify">
<module name="ircv3_chghost">
<module name="ircv3_ctctags">
<module name="ircv3_echomessage">
<module name="ircv3_invitenotify">
<module name="ircv3_labeledresponse">
<module name="ircv3_msgid">
<module name="ircv3_servertime">
<module name="ircv3_sts">
<module name="namesx">
<module name="uhnames">
<module name="chghost">
<module name="setname">
<module name="chanhistory">
<chanhistory maxlines="50" notice="no" bots="yes">
<sslprofile name="main" provider="gnutls" certfile="{directory}/tls/server.pem"
            keyfile="{directory}/tls/server.key" requestclientcert="yes" hash="sha256"
            dhfile="">
<sts host="localhost" port="{tls_port}" duration="{sts_duration}">
<sasl target="{services}" requiressl="no">
<link name="{services}" ipaddr="127.0.0.1" port="{link_port}" allowmask="127.0.0.0/8"
      sendpass="{password}" recvpass="{password}">
<uline server="{services}" silent="yes">
<class name="everything" commands="*" privs="*" usermodes="*" chanmodes="*">
<type name="Admin" classes="everything">
<oper name="admin" password="adminpass" host="*@*" type="Admin">
"""

_ATHEME = """\
loadmodule "modules/protocol/inspircd";
loadmodule "modules/backend/opensex";
loadmodule "modules/crypto/pbkdf2v2";
loadmodule "modules/nickserv/main";
loadmodule "modules/nickserv/register";
loadmodule "modules/nickserv/identify";
loadmodule "modules/nickserv/cert";
loadmodule "modules/nickserv/info";
loadmodule "modules/nickserv/set_core";
loadmodule "modules/saslserv/main";
loadmodule "modules/saslserv/plain";
loadmodule "modules/saslserv/external";
serverinfo {{
    name = "{services}";
    desc = "botcore test services";
    numeric = "00A";
    recontime = 1;
    netname = "TestNet";
    hidehostsuffix = "users.test";
    adminname = "test";
    adminemail = "test@localhost";
    registeremail = "noreply@localhost";
    auth = none;
    casemapping = rfc1459;
    maxlogins = 5;
    maxusers = 50;
    mdlimit = 30;
    emaillimit = 10;
    emailtime = 300;
    loglevel = {{ error; info; }};
}};
uplink "irc.localhost" {{
    host = "127.0.0.1";
    send_password = "{password}";
    receive_password = "{password}";
    port = {link_port};
}};
nickserv {{
    nick = "NickServ";
    user = "NickServ";
    host = "{services}";
    real = "Nickname Services";
    maxnicks = 5;
    expire = 30;
}};
saslserv {{
    nick = "SaslServ";
    user = "SaslServ";
    host = "{services}";
    real = "SASL Authentication Agent";
}};
general {{
    flood_msgs = 0;
    flood_time = 10;
    ratelimit_uses = 0;
    ratelimit_period = 60;
    kline_time = 7;
    commit_interval = 5;
    language = "en";
    uplink_sendq_limit = 1048576;
}};
logfile "{directory}/atheme/atheme.log" {{ error; info; }};
"""


def skip_reason() -> str | None:
    """Why these tests cannot run here (None: they can). Under ``CI=true`` a missing
    package is no reason to skip: the test must fail."""
    missing = [name for name in ("inspircd", "atheme-services") if shutil.which(name) is None]
    if missing and not in_ci():
        return f"{' and '.join(missing)} not installed (apt-get install inspircd atheme-services)"
    return None


def _no_core_dumps() -> None:
    # InspIRCd 3 segfaults on its way out after SIGTERM: no core file for that.
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


class ModuleShared:
    """Servers that one test module shares (trial has no setUpClass): `shared(module)`
    starts them on first use (``start``; ``cleanup`` after a failed start), `release`
    stops them (``cleanup``) when the module's last test is done, `release_all` at exit.
    Each subclass keeps its own."""

    _shared: ClassVar[dict[str, Any]]

    def __init_subclass__(cls, **kw: Any) -> None:
        super().__init_subclass__(**kw)
        cls._shared = {}

    def start(self) -> None:
        raise NotImplementedError

    def cleanup(self) -> None:
        raise NotImplementedError

    @classmethod
    def shared(cls, module: str) -> Any:
        """The servers of test module ``module``, started on first use."""
        network = cls._shared.get(module)
        if network is None:
            network = cls._shared[module] = cls()
            try:
                network.start()
            except BaseException:
                del cls._shared[module]
                network.cleanup()
                raise
        return network

    @classmethod
    def release(cls, module: str) -> None:
        """Stop and remove the servers of ``module`` (its last test is done)."""
        network = cls._shared.pop(module, None)
        if network is not None:
            network.cleanup()

    @classmethod
    def release_all(cls) -> None:
        """Stop every module's servers (at exit, for a run that stopped part-way)."""
        for module in list(cls._shared):
            cls.release(module)


class IRCv3Network(ModuleShared):
    """InspIRCd 3 (plain ``port``, TLS ``tls_port``) with Atheme linked to it. `start` and
    `stop` block, each bounded by `WAIT`."""

    host = "127.0.0.1"
    #: The name the certificate is for (and the STS host): connect to this for TLS.
    hostname = "localhost"

    def __init__(self, *, sts_duration: int = 300) -> None:
        self.directory = tempfile.mkdtemp(prefix="botcore-ircv3-")
        self.port = free_port()
        self.tls_port = free_port()
        self.link_port = free_port()
        self.sts_duration = sts_duration
        self.processes: list[subprocess.Popen[bytes]] = []

    # -- files -------------------------------------------------------------------------------

    @property
    def ca_file(self) -> str:
        """The certificate authority that signed the server's certificate."""
        return os.path.join(self.directory, "tls", "ca.pem")

    @property
    def client_cert(self) -> str:
        """A client certificate and its key in one PEM file (for SASL EXTERNAL)."""
        return os.path.join(self.directory, "tls", "client.pem")

    @property
    def client_fingerprint(self) -> str:
        """The SHA-256 fingerprint of the client certificate, as InspIRCd reports it."""
        return self._client_fingerprint

    def write_certificates(self) -> None:
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import NameOID

        folder = os.path.join(self.directory, "tls")
        os.makedirs(folder, exist_ok=True)
        now = datetime.datetime.now(datetime.UTC)

        def name(common: str) -> x509.Name:
            return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common)])

        def key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
            return key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )

        def build(
            subject: str, key: ec.EllipticCurvePrivateKey, issuer: str, signer: object
        ) -> x509.CertificateBuilder:
            return (
                x509.CertificateBuilder()
                .subject_name(name(subject))
                .issuer_name(name(issuer))
                .public_key(key.public_key())
                .serial_number(x509.random_serial_number())
                .not_valid_before(now - datetime.timedelta(hours=1))
                .not_valid_after(now + datetime.timedelta(days=2))
            )

        ca_key = ec.generate_private_key(ec.SECP256R1())
        ca = (
            build("botcore test CA", ca_key, "botcore test CA", ca_key)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), True)
            .add_extension(
                x509.KeyUsage(False, False, False, False, False, True, True, False, False), True
            )
            .sign(ca_key, hashes.SHA256())
        )
        server_key = ec.generate_private_key(ec.SECP256R1())
        server = (
            build("localhost", server_key, "botcore test CA", ca_key)
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), True)
            .sign(ca_key, hashes.SHA256())
        )
        client_key = ec.generate_private_key(ec.SECP256R1())
        client = (
            build("botcore test client", client_key, "botcore test client", client_key)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), True)
            .sign(client_key, hashes.SHA256())
        )
        pem = serialization.Encoding.PEM
        files = {
            "ca.pem": ca.public_bytes(pem),
            "server.pem": server.public_bytes(pem) + ca.public_bytes(pem),
            "server.key": key_pem(server_key),
            "client.pem": client.public_bytes(pem) + key_pem(client_key),
        }
        for filename, data in files.items():
            with open(os.path.join(folder, filename), "wb") as handle:
                handle.write(data)
        self._client_fingerprint = client.fingerprint(hashes.SHA256()).hex()

    def write_configs(self) -> tuple[str, str]:
        values = {
            "directory": self.directory,
            "port": self.port,
            "tls_port": self.tls_port,
            "link_port": self.link_port,
            "services": SERVICES,
            "password": _LINK_PASSWORD,
            "sts_duration": self.sts_duration,
        }
        os.makedirs(os.path.join(self.directory, "atheme"), exist_ok=True)
        inspircd = os.path.join(self.directory, "inspircd.conf")
        atheme = os.path.join(self.directory, "atheme.conf")
        with open(inspircd, "w", encoding="utf-8") as handle:
            handle.write(_INSPIRCD.format(**values))
        with open(atheme, "w", encoding="utf-8") as handle:
            handle.write(_ATHEME.format(**values))
        return inspircd, atheme

    # -- processes --------------------------------------------------------------------------

    def start(self) -> None:
        """Start InspIRCd, then Atheme, and wait until the services are linked (the server
        then offers ``sasl``)."""
        self.write_certificates()
        inspircd, atheme = self.write_configs()
        self._spawn(["inspircd", "--runasroot", "--nofork", "--config", inspircd], "inspircd")
        self._wait_for_port(self.port)
        self._wait_for_port(self.tls_port)
        self._spawn(
            [
                "atheme-services",
                "-n",
                "-c",
                atheme,
                "-D",
                os.path.join(self.directory, "atheme"),
                "-p",
                os.path.join(self.directory, "atheme", "atheme.pid"),
                "-l",
                os.path.join(self.directory, "atheme", "atheme.log"),
            ],
            "atheme",
        )
        deadline = time.monotonic() + WAIT
        while "sasl" not in self.offered_caps():
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"Atheme did not link within {WAIT}s (see {self.directory})")
            self._check_running()
            time.sleep(0.05)

    def _spawn(self, command: list[str], name: str) -> None:
        log = open(os.path.join(self.directory, f"{name}.out"), "wb")  # noqa: SIM115
        try:
            process = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                preexec_fn=_no_core_dumps,  # no threads yet in a child
                cwd=self.directory,
            )
        finally:
            log.close()
        self.processes.append(process)

    def _check_running(self) -> None:
        for process in self.processes:
            if process.poll() is not None:
                self.stop()
                raise RuntimeError(
                    f"{process.args[0]} exited with status {process.returncode} "
                    f"(see {self.directory})"
                )

    def _wait_for_port(self, port: int) -> None:
        deadline = time.monotonic() + WAIT
        while True:
            self._check_running()
            try:
                with socket.create_connection((self.host, port), timeout=1):
                    return
            except OSError:
                if time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(f"nothing listens on {port} within {WAIT}s") from None
                time.sleep(0.02)

    def stop(self) -> None:
        """Stop Atheme and InspIRCd (SIGTERM, then SIGKILL after a bounded wait)."""
        processes, self.processes = self.processes, []
        for process in reversed(processes):
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
            try:
                process.wait(WAIT)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(WAIT)

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.directory, ignore_errors=True)

    # -- blocking clients, for setting up accounts -----------------------------------------------

    def offered_caps(self) -> str:
        """The capabilities the server lists right now (``CAP LS 302``), as one string."""
        try:
            with RawClient(self, "capprobe" + str(os.getpid() % 1000)) as client:
                client.send("CAP LS 302")
                return client.expect(re.compile(r" CAP \* LS :(.*)")).group(1)
        except (OSError, TimeoutError):
            return ""

    def register_account(self, nick: str, password: str, *, add_cert: bool = False) -> None:
        """Register ``nick`` with NickServ (and, with ``add_cert``, the client certificate's
        fingerprint with CERT ADD, the connection made with that certificate)."""
        with RawClient(self, nick, tls=add_cert) as client:
            client.register()
            client.send(f"PRIVMSG NickServ :REGISTER {password} {nick}@example.org")
            client.expect(re.compile(r"NOTICE \S+ :.*(registered|REGISTERED)"))
            if add_cert:
                client.send("PRIVMSG NickServ :CERT ADD")
                client.expect(re.compile(r"NOTICE \S+ :.*(added|fingerprint)", re.IGNORECASE))


atexit.register(IRCv3Network.release_all)


class SharedNetwork:
    """A mixin for a trial TestCase (trial has no setUpClass): ``self.network`` is the
    module's network, started by the first test and stopped after the class's last test
    (or at exit, when only some of them run). The network is an `IRCv3Network` unless
    ``network_type`` names another `ModuleShared` (`tests.sources.bridge_harness.Networks`)."""

    network: Any
    network_type: ClassVar[type[ModuleShared]] = IRCv3Network
    _done: ClassVar[dict[str, int]] = {}

    def use_network(self) -> Any:
        cls = type(self)
        key = cls.__module__
        kind = cls.network_type
        self.network = kind.shared(key)
        tests = len([name for name in dir(cls) if name.startswith("test_")])

        def done() -> None:
            SharedNetwork._done[key] = SharedNetwork._done.get(key, 0) + 1
            if SharedNetwork._done[key] >= tests:
                SharedNetwork._done.pop(key)
                kind.release(key)

        self.addCleanup(done)  # type: ignore[attr-defined]  # the TestCase's
        return self.network


class RawClient:
    """A blocking line client for setup steps (bounded by `WAIT` per expectation)."""

    def __init__(self, network: IRCv3Network, nick: str, *, tls: bool = False) -> None:
        self.nick = nick
        raw = socket.create_connection(
            (network.host, network.tls_port if tls else network.port), timeout=WAIT
        )
        if tls:
            context = ssl.create_default_context(cafile=network.ca_file)
            context.load_cert_chain(network.client_cert)
            raw = context.wrap_socket(raw, server_hostname=network.hostname)
        self.socket = raw
        self.buffer = b""
        self.lines: list[str] = []

    def __enter__(self) -> RawClient:
        return self

    def __exit__(self, *exc: object) -> None:
        with contextlib.suppress(OSError):
            self.send("QUIT")
        self.socket.close()

    def send(self, line: str) -> None:
        self.socket.sendall(line.encode("utf-8") + b"\r\n")

    def register(self) -> None:
        self.send(f"NICK {self.nick}")
        self.send(f"USER {self.nick} 0 * :botcore setup client")
        self.expect(re.compile(r" 001 "))

    def expect(self, pattern: re.Pattern[str]) -> re.Match[str]:
        deadline = time.monotonic() + WAIT
        while True:
            for index, line in enumerate(self.lines):
                found = pattern.search(line)
                if found:
                    del self.lines[: index + 1]
                    return found
            self.lines.clear()
            if time.monotonic() > deadline:
                raise TimeoutError(f"no line matching {pattern.pattern!r}")
            data = self.socket.recv(65536)
            if not data:
                raise TimeoutError(f"closed before a line matching {pattern.pattern!r}")
            self.buffer += data
            *complete, self.buffer = self.buffer.split(b"\r\n")
            for raw in complete:
                text = raw.decode("utf-8", "replace")
                if text.startswith("PING "):
                    self.send("PONG " + text[5:])
                self.lines.append(text)
