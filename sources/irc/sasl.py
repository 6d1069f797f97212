"""SASL mechanisms for IRC (IRCv3 ``sasl`` 3.1/3.2): PLAIN, EXTERNAL (the TLS client
certificate) and SCRAM-SHA-256 (through ``scramp``). Each mechanism turns the server's
challenges (decoded bytes) into responses; the protocol does the base64 and chunking."""

from __future__ import annotations

import base64
from collections.abc import Iterator

import scramp  # type: ignore[import-untyped]  # no stubs

#: Largest AUTHENTICATE chunk (IRCv3 SASL).
SASL_CHUNK = 400
#: Mechanisms the source can use, in the default order of preference.
MECHANISMS = ("EXTERNAL", "SCRAM-SHA-256", "PLAIN")


class SaslError(Exception):
    """The exchange cannot go on (a server that fails SCRAM's checks, say)."""


class Mechanism:
    """One exchange: `respond` is given each challenge and returns the response."""

    name = ""

    def respond(self, challenge: bytes) -> bytes:
        raise NotImplementedError


class Plain(Mechanism):
    name = "PLAIN"

    def __init__(self, account: str, password: str) -> None:
        self._secret = f"{account}\0{account}\0{password}".encode()

    def respond(self, challenge: bytes) -> bytes:
        return self._secret


class External(Mechanism):
    """The identity is the certificate the TLS connection presented: an empty response
    (the server takes the account the certificate's fingerprint is registered to)."""

    name = "EXTERNAL"

    def respond(self, challenge: bytes) -> bytes:
        return b""


class ScramSha256(Mechanism):
    """SCRAM-SHA-256 (RFC 7677) by scramp's client: proves the password without sending
    it, and checks the server's signature, so a server that does not know the password
    cannot pretend to have accepted it."""

    name = "SCRAM-SHA-256"

    def __init__(self, account: str, password: str) -> None:
        self._client = scramp.ScramClient(["SCRAM-SHA-256"], account, password)
        self._step = 0

    def respond(self, challenge: bytes) -> bytes:
        self._step += 1
        try:
            if self._step == 1:
                return self._client.get_client_first().encode("utf-8")
            if self._step == 2:
                self._client.set_server_first(challenge.decode("utf-8"))
                return self._client.get_client_final().encode("utf-8")
            if self._step == 3:
                self._client.set_server_final(challenge.decode("utf-8"))
                return b""
        except (scramp.ScramException, UnicodeDecodeError) as e:
            raise SaslError(f"SCRAM-SHA-256: {e}") from None
        raise SaslError("SCRAM-SHA-256: the server sent more challenges than SCRAM has")


def encode_response(response: bytes) -> Iterator[str]:
    """The AUTHENTICATE arguments that carry ``response``: base64 in chunks of 400, a
    ``+`` after a last full chunk (and for an empty response)."""
    payload = base64.b64encode(response).decode("ascii")
    chunks = [payload[i : i + SASL_CHUNK] for i in range(0, len(payload), SASL_CHUNK)]
    yield from chunks
    if not chunks or len(chunks[-1]) == SASL_CHUNK:
        yield "+"
