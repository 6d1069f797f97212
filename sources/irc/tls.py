"""TLS for the IRC source: endpoints that verify the server's certificate (against the
system's roots or a configured CA file), present a client certificate (for SASL
EXTERNAL and CertFP), and name the server for SNI."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from twisted.internet import ssl
from twisted.internet.endpoints import HostnameEndpoint, clientFromString, wrapClientTLS

if TYPE_CHECKING:
    from twisted.internet.interfaces import IStreamClientEndpoint

#: Why ``ssl:`` endpoints are refused (Twisted's ssl: client checks no certificate).
SSL_REFUSED = (
    "ssl: endpoints do not check the server's certificate; write tls:HOST:PORT instead "
    "(with tls_ca_file for a private certificate authority and tls_certificate for a "
    "client certificate)"
)


@dataclass(frozen=True)
class Endpoint:
    """A server endpoint string taken apart: its kind (``tcp``, ``tls``, ...), host, port
    and the remaining ``key=value`` options."""

    kind: str
    host: str
    port: int
    options: tuple[tuple[str, str], ...] = ()


def _split(text: str) -> list[str]:
    """Split on ``:`` as Twisted's endpoint strings do (``\\:`` escapes one)."""
    parts, current, chars = [], [], iter(text)
    for char in chars:
        if char == "\\":
            current.append(next(chars, ""))
        elif char == ":":
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    parts.append("".join(current))
    return parts


def parse_endpoint(server: str) -> Endpoint | None:
    """``tcp:HOST:PORT[:k=v...]`` or ``tls:HOST:PORT[:k=v...]`` taken apart (``host=``
    and ``port=`` may be named), or None for another kind (a UNIX socket...)."""
    parts = _split(server)
    kind = parts[0].lower()
    if kind not in ("tcp", "tls") or len(parts) < 2:
        return None
    positional: list[str] = []
    options: list[tuple[str, str]] = []
    for part in parts[1:]:
        key, equals, value = part.partition("=")
        if equals and key in ("host", "port"):
            positional.insert(0 if key == "host" else 1, value)
        elif equals:
            options.append((key, value))
        else:
            positional.append(part)
    if len(positional) < 2:
        return None
    try:
        port = int(positional[1])
    except ValueError:
        return None
    return Endpoint(kind, positional[0], port, tuple(options))


def _certificates(path: str) -> list[ssl.Certificate]:
    with open(path, "rb") as handle:
        data = handle.read()
    marker = b"-----END CERTIFICATE-----"
    pems = [block + marker for block in data.split(marker) if b"-----BEGIN CERTIFICATE" in block]
    if not pems:
        raise ValueError(f"{path} holds no PEM certificate")
    return [ssl.Certificate.loadPEM(pem) for pem in pems]


@dataclass(frozen=True)
class TLSSettings:
    """The source's TLS options: ``ca_file`` (PEM certificates to trust instead of the
    system's; empty for the system's), ``verify`` (False turns verification off),
    ``certificate`` and ``key`` (the client certificate, PEM; the key may be in the
    certificate's file)."""

    ca_file: str = ""
    verify: bool = True
    certificate: str = ""
    key: str = ""

    def check(self) -> None:
        """Read the files now, so that a missing or bad one is a configuration error
        (ValueError) rather than a failed connection later."""
        if self.ca_file:
            _certificates(self.ca_file)
        if self.certificate:
            self.client_certificate()

    def client_certificate(self) -> ssl.PrivateCertificate | None:
        if not self.certificate:
            return None
        with open(self.certificate, "rb") as handle:
            certificate = handle.read()
        key = certificate
        if self.key:
            with open(self.key, "rb") as handle:
                key = handle.read()
        if b"PRIVATE KEY-----" not in key:
            raise ValueError(
                f"no private key for the client certificate {self.certificate} "
                "(put it in the same file or name it with tls_key)"
            )
        try:
            return ssl.PrivateCertificate.loadPEM(certificate + b"\n" + key)
        except Exception as e:
            raise ValueError(f"cannot load the client certificate {self.certificate}: {e}") from e

    def options(self, hostname: str) -> Any:
        """The client TLS options for a connection to ``hostname`` (SNI and the name the
        certificate must carry)."""
        client = self.client_certificate()
        if not self.verify:
            extra: dict[str, Any] = {}
            if client is not None:
                extra = {"privateKey": client.privateKey.original, "certificate": client.original}
            return ssl.CertificateOptions(verify=False, **extra)
        trust: Any = None
        if self.ca_file:
            trust = ssl.trustRootFromCertificates(_certificates(self.ca_file))
        return ssl.optionsForClientTLS(hostname, trustRoot=trust, clientCertificate=client)


def build_endpoint(
    reactor: Any, server: str, tls: TLSSettings, *, timeout: float = 30.0
) -> IStreamClientEndpoint:
    """The endpoint for ``server``: ``tls:HOST:PORT`` with the source's TLS settings
    (verification on by default), ``tcp:`` and other kinds as Twisted builds them. A
    ``tls:`` string with Twisted's own options (trustRoots=, certificate=...) and no
    TLS options on the source is left to Twisted, which verifies too."""
    parsed = parse_endpoint(server)
    if server.lower().startswith("ssl:"):
        raise ValueError(SSL_REFUSED)
    if parsed is None or parsed.kind != "tls":
        return clientFromString(reactor, server)
    own_settings = tls.ca_file or tls.certificate or not tls.verify
    extra = [key for key, _ in parsed.options if key != "timeout"]
    if extra and not own_settings:
        return clientFromString(reactor, server)
    return tls_endpoint(reactor, parsed.host, parsed.port, tls, timeout=timeout)


def tls_endpoint(
    reactor: Any, host: str, port: int, tls: TLSSettings, *, timeout: float = 30.0
) -> IStreamClientEndpoint:
    """A TLS connection to ``host``:``port`` checked against ``host``'s name."""
    return wrapClientTLS(tls.options(host), HostnameEndpoint(reactor, host, port, timeout=timeout))


def tls_failure(error: BaseException, server: str) -> str:
    """A clear line for a TLS handshake that failed (``error`` an OpenSSL error)."""
    text = str(error)
    if type(error).__name__ == "VerificationError":
        return (
            f"the TLS certificate of {server} is not for that name ({text}); connect by "
            "the name the certificate carries"
        )
    if "certificate verify failed" in text or "CERTIFICATE_VERIFY_FAILED" in text:
        return (
            f"the TLS certificate of {server} was not accepted (certificate verify failed: "
            "expired, self-signed, for another name, or from an unknown authority); for a "
            "private authority set tls_ca_file"
        )
    return f"the TLS handshake with {server} failed: {text or type(error).__name__}"
