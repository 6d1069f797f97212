"""Keeps logs of the conversations the bot sees: messages, actions, notices, joins, parts,
quits, nick changes and the bot's own replies, one file per source, channel and day.

What is written cannot forge a line or a file: every line break and control character in
logged text is escaped (``\\u2028``, ``\\x00``), names are bounded path components, and
each source gets at most ``max_conversations`` files a day (the rest share one overflow
file), however many channels and strangers a network makes up. A channel's folder is named
by its name as the network compares names (its casemapping), so ``#Chan`` and ``#chan``
share one.

Lines are written behind: kept in memory per file and written every ``flush_interval``
seconds, as soon as ``max_buffered`` lines are waiting, and when the plugin stops (the bot
stops, or the plugin is unloaded or reloaded), so a clean stop loses nothing and a crash at
most the last interval's lines. ``flush_interval = 0`` writes every line at once."""

from __future__ import annotations

import hashlib
import os
import re
import threading
import unicodedata
from collections import OrderedDict
from datetime import date, datetime
from pathlib import Path
from typing import IO, Any

from twisted.logger import Logger

from botcore.db.behind import Behind, WritesBehind
from botcore.event import Event, EventType, Response
from botcore.options import BoolOption, FloatOption, IntOption, ModeOption, Option, TemplateOption
from botcore.processor import Priority, handler
from botcore.source import fold_on, is_channel_on, names_on

_UNSAFE = re.compile(r"[/\\\x00-\x1f\x7f]")
#: The longest path component made of a name, in UTF-8 bytes (file systems allow 255).
MAX_PART = 100
#: The most channel names of one source remembered a day as having their file (more are
#: looked at afresh each time, which is only slower).
_ADMITTED_KEPT = 4096

#: Where a source's conversations beyond ``max_conversations`` a day are logged: a name
#: no IRC nick or channel can have (they cannot hold a comma).
OVERFLOW = ",overflow"

# What is escaped in logged text: control characters (NUL, ESC, CR, LF...), format
# characters (bidirectional overrides, zero-width spaces...), line and paragraph separators
# and lone surrogates. Zero-width (non-)joiners stay: words and emoji are made with them.
_ESCAPED = frozenset({"Cc", "Cf", "Zl", "Zp", "Cs"})
_KEPT = frozenset({"\u200c", "\u200d"})


def printable(text: str) -> str:
    """``text`` with every character that could break, forge or hide a log line written as
    a Python-style escape (``\\n``, ``\\x1b``, ``\\u2028``)."""
    if text.isprintable():
        return text
    out = []
    for char in text:
        if char in _KEPT or unicodedata.category(char) not in _ESCAPED:
            out.append(char)
        else:
            out.append(repr(char)[1:-1] if char in "\t\n\r" else _escape(ord(char)))
    return "".join(out)


def _escape(code: int) -> str:
    if code < 0x100:
        return f"\\x{code:02x}"
    if code < 0x10000:
        return f"\\u{code:04x}"
    return f"\\U{code:08x}"


def safe_part(text: str) -> str:
    """A name usable as one path component: no separators or control characters, not
    ``.`` or ``..``, not empty, at most `MAX_PART` bytes (a longer name is cut and ends
    with a hash of the whole, so distinct names stay distinct)."""
    text = _UNSAFE.sub("_", text)
    if text in ("", ".", ".."):
        return "_"
    encoded = text.encode("utf-8", "surrogatepass")
    if len(encoded) > MAX_PART:
        digest = hashlib.sha256(encoded).hexdigest()[:16]
        head = encoded[: MAX_PART - len(digest) - 1].decode("utf-8", "ignore")
        text = f"{head}~{digest}"
    return text.encode("utf-8", "replace").decode("utf-8")


class LogFiles:
    """Open log files, at most ``max_open`` at once (the least recently written is closed
    first). One lock serialises opening, writing and closing, so worker threads never
    interleave inside a line. Any thread."""

    def __init__(self, max_open: int) -> None:
        self.max_open = max_open
        self._lock = threading.Lock()
        self._files: OrderedDict[Path, IO[str]] = OrderedDict()

    def write(self, path: Path, lines: list[str], mode: int) -> None:
        """Append ``lines`` to ``path``, creating it (and its folders) with ``mode``."""
        with self._lock:
            self._write(path, lines, mode)

    def _write(self, path: Path, lines: list[str], mode: int) -> None:
        handle = self._files.get(path)
        if handle is None:
            handle = self._open(path, mode)
        else:
            self._files.move_to_end(path)
        handle.write("".join(line + "\n" for line in lines))
        handle.flush()

    def write_many(self, batch: dict[Path, tuple[int, list[str]]]) -> list[tuple[Path, OSError]]:
        """Append each file's lines (``path -> (mode, lines)``), in one hold of the lock;
        the files that could not be written, with why (the others are written)."""
        failed = []
        with self._lock:
            for path, (mode, lines) in batch.items():
                try:
                    self._write(path, lines, mode)
                except OSError as e:
                    failed.append((path, e))
        return failed

    def _open(self, path: Path, mode: int) -> IO[str]:
        while len(self._files) >= self.max_open:
            _, oldest = self._files.popitem(last=False)
            oldest.close()
        # Folders readable by whoever may read the files.
        folder_mode = mode | ((mode & 0o444) >> 2) | 0o700
        path.parent.mkdir(parents=True, exist_ok=True, mode=folder_mode)
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, mode)
        os.fchmod(fd, mode)  # the umask (or an older setting) must not decide who reads it
        handle = os.fdopen(fd, "a", encoding="utf-8", errors="replace")
        self._files[path] = handle
        return handle

    def open_paths(self) -> list[Path]:
        """The files open now, least recently written first."""
        with self._lock:
            return list(self._files)

    def close(self) -> None:
        """Close every file."""
        with self._lock:
            files, self._files = self._files, OrderedDict()
        for handle in files.values():
            handle.close()


def _more_lines(old: tuple[int, list[str]], new: tuple[int, list[str]]) -> tuple[int, list[str]]:
    """A file's waiting lines and more: appended in place (a flush takes the lines it
    writes out of the buffer first, see `Behind`)."""
    old[1].extend(new[1])
    return old


class Log(WritesBehind):
    """Writes every message, action, notice, join, part, kick, quit and nick change, and the
    bot's replies, to log files."""

    usage = "(automatic) logs conversations to files"
    features = ("log",)
    # After every other processor: replies are final (after Format) and secrets have been
    # scrubbed from message.raw by the processors that do that.
    priority = Priority.LAST
    #: Every event is logged, even one no other processor wants (see Chain.wants).
    observes = True
    addressed = False
    processed = True
    event_types = None

    path = TemplateOption(
        "Log file path template, relative to the config file's folder; fields: {source}, "
        "{channel}, {year}, {month}, {day}.",
        "logs/{source}/{channel}/{year}-{month}-{day}.log",
        fields=("source", "channel", "year", "month", "day"),
    )
    public_mode = ModeOption("File mode (octal) of logs of public channels.", 0o644)
    private_mode = ModeOption("File mode (octal) of logs of private conversations.", 0o600)
    private = BoolOption("Also log private conversations.", True)
    max_open = IntOption("The most log files kept open at once.", 64, min=1)
    max_conversations = IntOption(
        "The most channels and private conversations of one source logged to files of "
        "their own each day (so a flood of strangers cannot make a folder each); the lines "
        "of the others go to that day's file of the conversation ',overflow', each naming "
        "its channel or nick.",
        500,
        min=1,
    )
    timestamp = Option("strftime format of each line's time (UTC).", "%H:%M:%S")
    flush_interval = FloatOption(
        "Seconds between writes of the logged lines, kept in memory until then (also "
        "written when max_buffered are waiting and when the plugin stops; a crash loses at "
        "most this many seconds of lines). 0 writes every line at once.",
        1.0,
        min=0,
    )
    max_buffered = IntOption(
        "Lines kept in memory at most: as many waiting are written at once.", 1000, min=1
    )

    log = Logger()

    def __init__(self, *args: Any, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self.files = LogFiles(64)
        self._lock = threading.Lock()
        #: The day the counts are of.
        self._day: date | None = None
        # Per source, that day: the file names (`safe_part`) given out, and the channels
        # known to have one (so that a channel's every line needs no `safe_part`).
        self._conversations: dict[str, set[str]] = {}
        self._admitted: dict[str, set[str]] = {}
        self._unwritable: set[Path] = set()
        self._public_mode, self._private_mode = 0o644, 0o600
        #: The lines not yet written: per file, its mode and lines in the order logged.
        self.behind: Behind[Path, tuple[int, list[str]]] = Behind(_more_lines, keep=False)
        #: (source, conversation, day) -> its file (`file_for`).
        self._paths: dict[tuple[str, str, Any], Path] = {}
        #: (timestamp second, its text in the ``timestamp`` format).
        self._stamp: tuple[datetime | None, str] = (None, "")
        #: After shutdown nothing is kept: a line logged then is written at once.
        self._stopped = False

    def setup(self) -> None:
        # The options are validated with the config; values given by hand are here.
        parsed = {}
        for option in (type(self).public_mode, type(self).private_mode, type(self).path):
            value = getattr(self, option.name)
            try:
                parsed[option.name] = option.parse(value) if isinstance(value, str) else value
            except ValueError as e:
                raise ValueError(f"{option.name}: {e}") from None
        self._public_mode, self._private_mode = parsed["public_mode"], parsed["private_mode"]
        # New settings (path, modes) apply to files opened from now on.
        self.flush()
        self.files.close()
        self.files = LogFiles(self.max_open)
        self._paths = {}

    #: Lines are written to files: no database session needed.
    behind_session = False

    def shutdown(self) -> None:
        # The bot stops, or the plugin is unloaded or reloaded: write what is waiting (a
        # next version shares what this one has not written, and writes it too).
        self._stopped = True
        self.flush()
        self.files.close()

    def flush(self) -> None:
        """Write every waiting line to its file; a file that cannot be written is logged
        (once a day) and its lines dropped. Any thread."""
        self.flush_behind(None)

    def write_behind(self, event: Event | None, batch: dict[Path, tuple[int, list[str]]]) -> None:
        for path, error in self.files.write_many(batch):
            self._unwritable_now(path, error)

    def _unwritable_now(self, path: Path, error: OSError) -> None:
        with self._lock:
            told = path in self._unwritable
            self._unwritable.add(path)
        if not told:
            self.log.error("cannot write the log {path}: {error}", path=str(path), error=error)

    # -- where and how ------------------------------------------------------------------

    def now(self) -> datetime:
        return self.bot.now()

    def file_for(self, source: str, channel: str, when: datetime) -> Path:
        """The log file of ``channel`` (folded as its source compares names) on
        ``source`` for the day of ``when`` (worked out once a day for each)."""
        key = (source, channel, when.date())
        found = self._paths.get(key)
        if found is None:
            found = self._file_for(source, channel, when)
            with self._lock:
                if len(self._paths) >= 4096:
                    self._paths.clear()
                self._paths[key] = found
        return found

    def _file_for(self, source: str, channel: str, when: datetime) -> Path:
        relative = self.path.format(
            source=safe_part(source),
            channel=safe_part(channel),
            year=f"{when:%Y}",
            month=f"{when:%m}",
            day=f"{when:%d}",
        )
        return self.bot.config.relative_path(relative)

    def conversation_for(self, source: str, channel: str, when: datetime) -> str:
        """The conversation ``channel``'s lines are logged as: itself, or `OVERFLOW` when
        ``source`` has had its ``max_conversations`` others that day. Any thread."""
        day = when.date()
        with self._lock:
            if day != self._day:
                self._day, self._conversations, self._admitted = day, {}, {}
                self._unwritable.clear()
            admitted = self._admitted.setdefault(source, set())
            if channel in admitted:
                return channel
            seen = self._conversations.setdefault(source, set())
            part = safe_part(channel)
            if part not in seen:
                if len(seen) >= self.max_conversations:
                    return OVERFLOW
                seen.add(part)
            if len(admitted) < _ADMITTED_KEPT:
                admitted.add(channel)
            return channel

    def stamp(self, when: datetime) -> str:
        """``when`` in the ``timestamp`` format, made printable (worked out once for all
        the lines of one second). Any thread."""
        if "%f" in self.timestamp:
            return printable(when.strftime(self.timestamp))
        second = when.replace(microsecond=0)
        last = self._stamp
        if last[0] != second:
            last = self._stamp = (second, printable(when.strftime(self.timestamp)))
        return last[1]

    def bot_nick(self, source: str) -> str:
        """What the bot is called on ``source`` (its nick there), for its own lines."""
        names = names_on(self.bot, source)
        return names[0] if names else "bot"

    def write(
        self, source: str, channel: str, public: bool, lines: str | list[str], when: datetime
    ) -> None:
        """Log ``lines`` (each one line, however many line breaks it holds) to the file of
        ``channel`` on ``source``: kept for the next flush (written at once with
        ``flush_interval = 0`` or once the plugin has stopped)."""
        if not public and not self.private:
            return
        if isinstance(lines, str):
            lines = [lines]
        stamp = self.stamp(when)
        # One folder per channel as the network tells names apart ("#Chan" is "#chan").
        folded = fold_on(self.bot, source, channel)
        conversation = self.conversation_for(source, folded, when)
        prefix = f"[{stamp}] " if conversation == folded else f"[{stamp}] ({channel}) "
        texts = [printable(prefix + line) for line in lines]
        mode = self._public_mode if public else self._private_mode
        path = self.file_for(source, conversation, when)
        if self.flush_interval > 0 and not self._stopped:
            if self.behind.add(path, (mode, texts), len(texts)) >= self.max_buffered:
                self.flush()
            return
        try:
            self.files.write(path, texts, mode)
        except OSError as e:
            self._unwritable_now(path, e)

    # -- what ---------------------------------------------------------------------------

    @handler
    def log_event(self, event: Event) -> None:
        now = self.now()
        if event.type in EventType.TEXT and event.message is not None and event.channel:
            nick = event.sender.nick if event.sender is not None else "?"
            text = event.message.raw
            if event.type == EventType.ACTION:
                line = f"* {nick} {text}"
            elif event.type == EventType.NOTICE:
                line = f"-{nick}- {text}"
            else:
                line = f"<{nick}> {text}"
            self.write(event.source, event.channel, event.public, line, now)
        elif event.type == EventType.STATE:
            self.log_state(event, now)
        for response in event.responses:
            self.log_response(event, response, now)

    def log_state(self, event: Event, now: datetime) -> None:
        data = event.data
        kind = data.get("kind")
        nick = event.sender.nick if event.sender is not None else "?"
        message = data.get("message") or ""
        reason = f" ({message})" if message else ""
        if kind == "join":
            line = f"*** {nick} has joined {event.channel}"
        elif kind == "part":
            line = f"*** {nick} has left {event.channel}{reason}"
        elif kind == "kick":
            line = f"*** {data.get('kicked')} was kicked by {nick}{reason}"
        elif kind == "quit":
            line = f"*** {nick} has quit{reason}"
        elif kind == "nick":
            line = f"*** {data.get('old') or nick} is now known as {data.get('new')}"
        else:
            return
        channels = [event.channel] if event.channel else list(data.get("channels") or ())
        for channel in channels:
            self.write(event.source, channel, True, line, now)

    def log_response(self, event: Event, response: Response, now: datetime) -> None:
        if not response.target or not isinstance(response.text, str):
            return
        source = response.source or event.source
        nick = self.bot_nick(source)
        # The bot's own line breaks are lines of their own, each with the bot's nick.
        if response.action:
            lines = [f"* {nick} {text}" for text in response.text.split("\n")]
        elif response.notice:
            lines = [f"-{nick}- {text}" for text in response.text.split("\n")]
        else:
            lines = [f"<{nick}> {text}" for text in response.text.split("\n")]
        # A reply is public when it goes to the event's public channel; one to anywhere
        # else is public when its source says the target is a channel there.
        if source == event.source and response.target == event.channel:
            public = event.public
        else:
            public = is_channel_on(self.bot, source, response.target)
        self.write(source, response.target, public, lines, now)
