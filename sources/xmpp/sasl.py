"""SASL for the XMPP source: the strongest mechanism both sides have (SCRAM-SHA-256-PLUS,
SCRAM-SHA-1-PLUS, SCRAM-SHA-256, SCRAM-SHA-1, then PLAIN, which is only ever sent inside
TLS), on Twisted's initializer.

Twisted's SASL knows PLAIN, DIGEST-MD5 and ANONYMOUS; SCRAM comes from ``scramp`` (the
SCRAM implementation pg8000 and asyncpg's users rely on), which also checks the server's
final signature, so a server that does not know the password cannot pretend it does.

The -PLUS variants bind the login to the TLS channel (RFC 5929 ``tls-unique``, read from
pyOpenSSL's ``get_finished``), so a man in the middle holding another certificate cannot
relay it. ``tls-unique`` is undefined under TLS 1.3, and its replacement ``tls-exporter``
(RFC 9266) is refused by scramp 1.5, so over TLS 1.3 the plain SCRAM is used, its GS2
header saying whether the bot could have bound (``y``: a server that offered -PLUS and
sees this knows its offer was stripped)."""

from __future__ import annotations

from base64 import b64decode
from binascii import Error as Base64Error
from typing import Any

import scramp  # type: ignore[import-untyped]
from twisted.words.protocols.jabber import sasl, sasl_mechanisms
from twisted.words.protocols.jabber.sasl import SASLAuthError, SASLNoAcceptableMechanism
from zope.interface import implementer

#: Mechanisms in the order of preference (strongest first).
PREFERENCE = ("SCRAM-SHA-256-PLUS", "SCRAM-SHA-1-PLUS", "SCRAM-SHA-256", "SCRAM-SHA-1", "PLAIN")

#: A channel binding: its type and data.
Binding = tuple[str, bytes]


@implementer(sasl_mechanisms.ISASLMechanism)
class Scram:
    """A SCRAM mechanism (``SCRAM-SHA-1``, ``SCRAM-SHA-256`` or their -PLUS) by scramp;
    ``binding`` is the channel binding (required for -PLUS; for the others, that the bot
    could have bound)."""

    def __init__(
        self, name: str, username: str, password: str, binding: Binding | None = None
    ) -> None:
        self.name = name
        self.binding = binding
        self._client = scramp.ScramClient([name], username, password, channel_binding=binding)
        self._final_sent = False
        self.verified = False

    def getInitialResponse(self) -> bytes:
        return self._client.get_client_first().encode("utf-8")

    def getResponse(self, challenge: bytes) -> bytes:
        """The answer to the server's first message (its final one comes with success)."""
        if self._final_sent:
            # Some servers send server-final as a challenge instead of in <success>.
            self.verify(challenge)
            return b""
        self._client.set_server_first(challenge.decode("utf-8"))
        self._final_sent = True
        return self._client.get_client_final().encode("utf-8")

    def verify(self, data: bytes) -> None:
        """Check the server's final message (its signature); `SASLAuthError` if wrong."""
        try:
            self._client.set_server_final(data.decode("utf-8"))
            self.verified = True
        except (scramp.ScramException, UnicodeDecodeError, ValueError) as e:
            raise SASLAuthError(f"the server's SCRAM signature is wrong ({e})") from None


def choose(
    offered: list[str],
    username: str,
    password: str,
    allowed: list[str],
    binding: Binding | None = None,
) -> Any:
    """The mechanism object for the best of ``allowed`` (in `PREFERENCE` order) that the
    server ``offered`` (-PLUS only with a channel ``binding``); `SASLNoAcceptableMechanism`
    when there is none."""
    offers_plus = any(name.endswith("-PLUS") for name in offered)
    for name in PREFERENCE:
        if name in offered and name in allowed:
            if name == "PLAIN":
                return sasl_mechanisms.Plain(None, username, password)
            if name.endswith("-PLUS"):
                if binding is not None:
                    return Scram(name, username, password, binding)
                continue
            # Said to bind ("y") only when the server offered no -PLUS: if it did, the bot
            # is not using it by choice (or cannot bind), which must not look like an attack.
            return Scram(name, username, password, None if offers_plus else binding)
    raise SASLNoAcceptableMechanism()


def channel_binding(transport: Any) -> Binding | None:
    """The ``tls-unique`` binding of a TLS transport (Twisted's, over pyOpenSSL): the first
    Finished message the client sent. None without TLS, under TLS 1.3 (where it is not
    defined), or when the TLS library does not say."""
    get_handle = getattr(transport, "getHandle", None)
    connection = get_handle() if get_handle is not None else None
    if connection is None or not hasattr(connection, "get_finished"):
        return None
    try:
        version = connection.get_protocol_version_name()
        finished = connection.get_finished()
    except Exception:
        return None
    if version not in ("TLSv1", "TLSv1.1", "TLSv1.2") or not finished:
        return None
    return ("tls-unique", bytes(finished))


class BestSASLInitializer(sasl.SASLInitiatingInitializer):
    """Twisted's SASL initializer choosing SCRAM when the server offers it, and checking
    the server's SCRAM signature on success."""

    def __init__(self, xs: Any, allowed: list[str], required: bool = True) -> None:
        super().__init__(xs, required=required)
        self.allowed = allowed

    def setMechanism(self) -> None:
        authenticator = self.xmlstream.authenticator
        offered = sasl.get_mechanisms(self.xmlstream)
        self.mechanism = choose(
            offered,
            authenticator.jid.user or "",
            authenticator.password,
            self.allowed,
            channel_binding(self.xmlstream.transport),
        )
        authenticator.sasl_mechanism = self.mechanism.name

    def onSuccess(self, success: Any) -> None:
        if isinstance(self.mechanism, Scram) and not self.mechanism.verified:
            text = str(success).strip()
            try:
                data = b64decode(text, validate=True) if text and text != "=" else b""
                self.mechanism.verify(data)
            except (Base64Error, SASLAuthError) as e:
                self.xmlstream.removeObserver("/challenge", self.onChallenge)
                self.xmlstream.removeObserver("/failure", self.onFailure)
                if self._deferred is not None:
                    self._deferred.errback(SASLAuthError(str(e)))
                return
        super().onSuccess(success)
