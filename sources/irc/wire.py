"""The IRC wire format: parsing received lines (tags, prefix, parameters) defensively, and
building lines to send that can neither inject commands nor exceed the 512-byte limit."""

from __future__ import annotations

from dataclasses import dataclass, field

#: The most bytes an IRC line may have, counting the CR LF (RFC 1459 / 2812).
LINE_LIMIT = 512
#: The longest host name a server may show for the bot, when it has not told us its own.
HOST_GUESS = 63
#: The overhead CTCP ACTION adds to a message's text: ``\x01ACTION `` and ``\x01``.
ACTION_OVERHEAD = len("\x01ACTION \x01")

_TAG_ESCAPES = {":": ";", "s": " ", "\\": "\\", "r": "\r", "n": "\n"}
_TAG_ESCAPING = str.maketrans({";": "\\:", " ": "\\s", "\\": "\\\\", "\r": "\\r", "\n": "\\n"})
#: The most bytes the tags a client sends may take (IRCv3 message-tags: 4094 plus ``@``
#: and the space).
CLIENT_TAGS_LIMIT = 4096


@dataclass
class Line:
    """One received line, split up. ``command`` is upper-case; a numeric stays a string."""

    command: str
    params: list[str] = field(default_factory=list)
    prefix: str = ""
    tags: dict[str, str] = field(default_factory=dict)

    def param(self, index: int, default: str = "") -> str:
        """Parameter ``index``, or ``default`` when the server left it out."""
        return self.params[index] if -len(self.params) <= index < len(self.params) else default


def decode(data: bytes, fallback: str = "cp1252") -> str:
    """Bytes from the wire as text: UTF-8 when valid, else the fallback encoding (with
    replacement characters for bytes it cannot map). Never raises."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        try:
            return data.decode(fallback, "replace")
        except LookupError:
            return data.decode("latin-1")


def _unescape_tag(value: str) -> str:
    out = []
    chars = iter(value)
    for char in chars:
        if char == "\\":
            following = next(chars, "")
            out.append(_TAG_ESCAPES.get(following, following))
        else:
            out.append(char)
    return "".join(out)


def parse_line(text: str) -> Line | None:
    """Split a received line into tags, prefix, command and parameters; None for a line
    with no command. Tolerates extra spaces, a missing trailing parameter and junk tags."""
    rest = text.strip("\r\n\0 ")
    tags: dict[str, str] = {}
    if rest.startswith("@"):
        raw_tags, _, rest = rest[1:].partition(" ")
        for item in raw_tags.split(";"):
            if item:
                key, _, value = item.partition("=")
                tags[key] = _unescape_tag(value)
        rest = rest.lstrip(" ")
    prefix = ""
    if rest.startswith(":"):
        prefix, _, rest = rest[1:].partition(" ")
        rest = rest.lstrip(" ")
    trailing = None
    if " :" in rest:
        rest, trailing = rest.split(" :", 1)
    elif rest.startswith(":"):
        rest, trailing = "", rest[1:]
    params = rest.split()
    if not params:
        return None
    command = params.pop(0).upper()
    if trailing is not None:
        params.append(trailing)
    return Line(command, params, prefix, tags)


def split_prefix(prefix: str) -> tuple[str, str, str]:
    """A ``nick!user@host`` prefix as (nick, user, host); parts not sent are empty."""
    nick, _, address = prefix.partition("!")
    user, _, host = address.partition("@")
    if not address and "@" in nick:
        nick, _, host = nick.partition("@")
    return nick, user, host


@dataclass
class Mask:
    """A ``nick!user@host`` prefix; parts a server did not send are empty."""

    nick: str
    user: str = ""
    host: str = ""

    @classmethod
    def parse(cls, prefix: str) -> Mask:
        return cls(*split_prefix(prefix))

    @property
    def is_server(self) -> bool:
        """A prefix with no user and a dot in it is a server name, not a person."""
        return not self.user and not self.host and "." in self.nick

    def __str__(self) -> str:
        if not self.user and not self.host:
            return self.nick
        return f"{self.nick}!{self.user}@{self.host}"


_ASCII = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")
_RFC1459 = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ[]\\~", "abcdefghijklmnopqrstuvwxyz{}|^")
_RFC1459_STRICT = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ[]\\", "abcdefghijklmnopqrstuvwxyz{}|")
_CASEMAPPINGS = {"ascii": _ASCII, "rfc1459": _RFC1459, "rfc1459-strict": _RFC1459_STRICT}


def irc_lower(text: str, casemapping: str = "rfc1459") -> str:
    """``text`` folded the way the server compares nicks and channels (CASEMAPPING)."""
    return text.translate(_CASEMAPPINGS.get(casemapping, _RFC1459))


def clean_text(text: str) -> str:
    """Text made safe for one message: no line breaks, NULs or CTCP delimiters that could
    end the line early or smuggle in a command or a CTCP request."""
    if "\r" in text or "\n" in text or "\0" in text or "\x01" in text:
        text = text.replace("\r\n", " ").replace("\r", " ").replace("\n", " ")
        text = text.replace("\0", "").replace("\x01", "")
    return text


def valid_target(target: str) -> bool:
    """Whether ``target`` can be a nick or channel in a command we send."""
    return bool(target) and not target.startswith(":") and not any(c in target for c in " \r\n\0,")


def text_budget(
    nick: str, user: str, host: str, command: str, target: str, action: bool = False
) -> int:
    """The most UTF-8 bytes of text one ``command`` to ``target`` may carry so that the
    line the server relays, ``:nick!user@host COMMAND target :text`` plus CR LF, fits in
    512 bytes. An unknown ``host`` counts as the longest a server may show."""
    host_bytes = len(host.encode("utf-8")) if host else HOST_GUESS
    prefix = len(f":{nick}!{user}@".encode()) + host_bytes + 1
    overhead = prefix + len(command) + 1 + len(target.encode("utf-8")) + len(" :\r\n")
    if action:
        overhead += ACTION_OVERHEAD
    return LINE_LIMIT - overhead


def encode_tags(tags: dict[str, str | None]) -> str:
    """Message tags as sent: ``@key=value;key2`` (values escaped), or "" for none. Keys
    that could break the line (spaces, ``;``, ``=``, line breaks) are left out."""
    items = []
    for key, value in tags.items():
        if not key or any(c in key for c in " ;=\r\n\0@"):
            continue
        if value:
            items.append(f"{key}={value.replace(chr(0), '').translate(_TAG_ESCAPING)}")
        else:
            items.append(key)
    return "@" + ";".join(items) if items else ""


def encode_line(
    *words: str, trailing: str | None = None, tags: dict[str, str | None] | None = None
) -> bytes:
    """One line to send: ``tags`` (if any), ``words`` then ``:trailing``, encoded, ending
    in CR LF. Tags do not count towards the 512 bytes of the rest (their own limit is
    `CLIENT_TAGS_LIMIT`; tags beyond it are dropped whole)."""
    line = " ".join(words)
    if trailing is not None:
        line += " :" + trailing
    if tags:
        prefix = encode_tags(tags)
        if prefix and len(prefix.encode("utf-8")) < CLIENT_TAGS_LIMIT:
            line = prefix + " " + line
    return line.encode("utf-8") + b"\r\n"
