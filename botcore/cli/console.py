"""``botcore-console``: talk to a running bot's telnet console from a terminal, with
nothing but Python (no telnet or nc needed). Lines typed go to the bot; its lines come back."""

from __future__ import annotations

import argparse
import codecs
import os
import selectors
import socket
import sys
from collections.abc import Sequence
from typing import IO

from botcore.config import ConfigErrors
from botcore.settings import read_config

#: Where the example configuration's console listens.
DEFAULT_ADDRESS = ("127.0.0.1", 3000)


class AddressError(ValueError):
    """An address or endpoint the client cannot connect to."""


def address_of(text: str) -> tuple[str, int] | str:
    """Where to connect for ``text``: ``PORT``, ``HOST:PORT``, ``[V6]:PORT``, or the
    console's own server endpoint string (``tcp:3000:interface=127.0.0.1``,
    ``tcp6:...``, ``unix:/path``). A (host, port) pair, or a UNIX socket's path."""
    text = text.strip()
    kind, _, rest = text.partition(":")
    if kind in ("tcp", "tcp6", "unix") and rest:
        return _endpoint_address(kind, rest)
    if kind in ("ssl", "tls", "systemd", "onion"):
        raise AddressError(f"{kind}: endpoints are not plain TCP; give HOST:PORT instead")
    host, _, port = text.rpartition(":")
    host = host.strip("[]") or DEFAULT_ADDRESS[0]
    try:
        number = int(port)
    except ValueError:
        raise AddressError(f"expected PORT, HOST:PORT or an endpoint, found {text!r}") from None
    if not 0 < number < 65536:
        raise AddressError(f"{number} is not a port")
    return host, number


def _endpoint_address(kind: str, rest: str) -> tuple[str, int] | str:
    # A server endpoint string's arguments: positional first, then key=value (with \: for
    # a literal colon, as Twisted writes them).
    parts = [p.replace("\0", ":") for p in rest.replace("\\:", "\0").split(":")]
    positional = [p for p in parts if "=" not in p]
    named = dict(p.split("=", 1) for p in parts if "=" in p)
    if kind == "unix":
        path = named.get("address") or (positional[0] if positional else "")
        if not path:
            raise AddressError(f"no socket path in unix:{rest}")
        return path
    port = named.get("port") or (positional[0] if positional else "")
    wildcard = "::1" if kind == "tcp6" else "127.0.0.1"
    host = named.get("interface") or wildcard
    if host in ("0.0.0.0", "::", ""):
        host = wildcard
    return address_of(f"[{host}]:{port}")


def configured_address(config_path: str, source: str | None) -> tuple[str, int] | str:
    """The address of the telnet console ``source`` (or the only one) of a config file."""
    config = read_config(config_path)
    consoles = [
        name
        for name in config.names("source")
        if config.section(f"source:{name}").get("type") == "telnet"
    ]
    if source is not None:
        if source not in consoles:
            found = ", ".join(consoles) or "none"
            raise AddressError(f"{config_path} has no telnet source {source!r} (it has: {found})")
        consoles = [source]
    if not consoles:
        raise AddressError(f"{config_path} has no telnet console source")
    if len(consoles) > 1:
        raise AddressError(f"{config_path} has several consoles; pick one with --source")
    endpoint = config.section(f"source:{consoles[0]}").get("endpoint")
    if not endpoint:
        return DEFAULT_ADDRESS
    return address_of(str(endpoint))


def connect(address: tuple[str, int] | str, timeout: float = 10.0) -> socket.socket:
    """A connected socket (TCP or UNIX); OSError when nothing answers."""
    if isinstance(address, str):
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(timeout)
        sock.connect(address)
    else:
        sock = socket.create_connection(address, timeout=timeout)
    sock.settimeout(None)
    return sock


def talk(
    sock: socket.socket, stdin: IO[bytes], stdout: IO[str], stderr: IO[str], linger: float
) -> None:
    """Copy lines from ``stdin`` to the bot (CRLF-terminated UTF-8) and the bot's lines to
    ``stdout`` until either side closes. After the end of ``stdin`` the bot's answers are
    still shown until it has been quiet for ``linger`` seconds (so piped commands get
    their replies)."""
    decoder = codecs.getincrementaldecoder("utf-8")("replace")
    pending = b""
    selector = selectors.DefaultSelector()
    selector.register(sock, selectors.EVENT_READ)
    in_fd = stdin.fileno()
    selector.register(in_fd, selectors.EVENT_READ)
    reading_stdin = True
    try:
        while True:
            ready = selector.select(None if reading_stdin else linger)
            if not ready:
                return  # quiet for `linger` after the end of input
            for key, _ in ready:
                if key.fileobj is sock:
                    data = sock.recv(65536)
                    if not data:
                        stdout.write(decoder.decode(b"", final=True))
                        stdout.flush()
                        if reading_stdin:
                            stderr.write("botcore-console: the bot closed the connection\n")
                        return
                    stdout.write(decoder.decode(data).replace("\r\n", "\n"))
                    stdout.flush()
                else:
                    data = os.read(in_fd, 65536)
                    if not data:
                        if pending:
                            sock.sendall(pending.rstrip(b"\r") + b"\r\n")
                        selector.unregister(in_fd)
                        reading_stdin = False
                        continue
                    pending += data
                    *lines, pending = pending.split(b"\n")
                    for line in lines:
                        sock.sendall(line.rstrip(b"\r") + b"\r\n")
    finally:
        selector.close()


def main(
    argv: Sequence[str] | None = None,
    *,
    stdin: IO[bytes] | None = None,
    stdout: IO[str] | None = None,
    stderr: IO[str] | None = None,
) -> int:
    """botcore-console: returns the exit status (0 done, 1 could not connect, 2 usage)."""
    stdin = stdin or sys.stdin.buffer
    stdout = stdout or sys.stdout
    stderr = stderr or sys.stderr
    parser = argparse.ArgumentParser(
        prog="botcore-console",
        description="Talk to a running bot's telnet console (type lines; Ctrl-D or Ctrl-C "
        "to leave). Without ADDRESS or -c, connects to 127.0.0.1:3000.",
    )
    parser.add_argument(
        "address",
        nargs="?",
        help="PORT, HOST:PORT or the console's endpoint (tcp:3000:interface=127.0.0.1)",
    )
    parser.add_argument("-c", "--config", help="take the console's address from this config")
    parser.add_argument("--source", help="which [source:NAME] console of the config")
    parser.add_argument(
        "--linger",
        type=float,
        default=2.0,
        help="seconds to wait for replies after the end of input (default 2)",
    )
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:
        return 2 if e.code else 0
    try:
        if args.address is not None:
            address = address_of(args.address)
        elif args.config is not None:
            address = configured_address(args.config, args.source)
        else:
            address = DEFAULT_ADDRESS
    except (AddressError, ConfigErrors, OSError) as e:
        stderr.write(f"botcore-console: {e}\n")
        return 2
    where = address if isinstance(address, str) else f"{address[0]}:{address[1]}"
    try:
        sock = connect(address)
    except OSError as e:
        stderr.write(f"botcore-console: cannot connect to {where}: {e.strerror or e}\n")
        stderr.write("botcore-console: is the bot running (twistd -n botcore -c bot.ini)?\n")
        return 1
    try:
        talk(sock, stdin, stdout, stderr, max(args.linger, 0.0))
    except KeyboardInterrupt:
        pass
    except OSError as e:
        stderr.write(f"botcore-console: connection to {where} lost: {e.strerror or e}\n")
        return 1
    finally:
        sock.close()
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
