"""SASL for the XMPP source: the strongest mechanism both sides have (SCRAM-SHA-256,
SCRAM-SHA-1, then PLAIN, which is only ever sent inside TLS), on Twisted's initializer.

Twisted's SASL knows PLAIN, DIGEST-MD5 and ANONYMOUS; SCRAM comes from ``scramp`` (the
SCRAM implementation pg8000 and asyncpg's users rely on), which also checks the server's
final signature, so a server that does not know the password cannot pretend it does."""

from __future__ import annotations

from base64 import b64decode
from binascii import Error as Base64Error
from typing import Any

import scramp  # type: ignore[import-untyped]
from twisted.words.protocols.jabber import sasl, sasl_mechanisms
from twisted.words.protocols.jabber.sasl import SASLAuthError, SASLNoAcceptableMechanism
from zope.interface import implementer

#: Mechanisms in the order of preference (strongest first).
PREFERENCE = ("SCRAM-SHA-256", "SCRAM-SHA-1", "PLAIN")


@implementer(sasl_mechanisms.ISASLMechanism)
class Scram:
    """A SCRAM mechanism (``SCRAM-SHA-1`` or ``SCRAM-SHA-256``) by scramp."""

    def __init__(self, name: str, username: str, password: str) -> None:
        self.name = name
        self._client = scramp.ScramClient([name], username, password)
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


def choose(offered: list[str], username: str, password: str, allowed: list[str]) -> Any:
    """The mechanism object for the best of ``allowed`` (in `PREFERENCE` order) that the
    server ``offered``; `SASLNoAcceptableMechanism` when there is none."""
    for name in PREFERENCE:
        if name in offered and name in allowed:
            if name == "PLAIN":
                return sasl_mechanisms.Plain(None, username, password)
            return Scram(name, username, password)
    raise SASLNoAcceptableMechanism()


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
            offered, authenticator.jid.user or "", authenticator.password, self.allowed
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
