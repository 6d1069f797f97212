"""Keeps logs of the conversations the bot sees: messages, actions, notices, joins, parts,
quits, nick changes and the bot's own replies, one file per source, channel and day."""

from __future__ import annotations

import os
import re
import threading
from collections import OrderedDict
from datetime import datetime
from pathlib import Path
from typing import IO, Any

from botcore.event import Event, EventType, Response
from botcore.options import BoolOption, IntOption, Option
from botcore.processor import Priority, Processor, handler
from botcore.source import is_channel_on, names_on

_UNSAFE = re.compile(r"[/\\\x00-\x1f]")


def safe_part(text: str) -> str:
    """A name usable as one path component: no separators or control characters, not
    ``.`` or ``..``, not empty."""
    text = _UNSAFE.sub("_", text)
    if text in ("", ".", ".."):
        return "_"
    return text


def _mode(raw: str, name: str) -> int:
    try:
        mode = int(str(raw), 8)
    except ValueError:
        raise ValueError(f"{name} must be an octal file mode such as 0640, not {raw!r}") from None
    if not 0 <= mode <= 0o777:
        raise ValueError(f"{name} must be an octal file mode such as 0640, not {raw!r}")
    return mode


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
            handle = self._files.get(path)
            if handle is None:
                handle = self._open(path, mode)
            else:
                self._files.move_to_end(path)
            handle.write("".join(line + "\n" for line in lines))
            handle.flush()

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


class Log(Processor):
    """Writes every message, action, notice, join, part, kick, quit and nick change, and the
    bot's replies, to log files."""

    usage = "(automatic) logs conversations to files"
    features = ("log",)
    # After every other processor: replies are final (after Format) and secrets have been
    # scrubbed from message.raw by the processors that do that.
    priority = Priority.LAST
    addressed = False
    processed = True
    event_types = None

    path = Option(
        "Log file path template, relative to the config file's folder; fields: {source}, "
        "{channel}, {year}, {month}, {day}.",
        "logs/{source}/{channel}/{year}-{month}-{day}.log",
    )
    public_mode = Option("File mode (octal) of logs of public channels.", "0644")
    private_mode = Option("File mode (octal) of logs of private conversations.", "0600")
    private = BoolOption("Also log private conversations.", True)
    max_open = IntOption("The most log files kept open at once.", 64, min=1)
    timestamp = Option("strftime format of each line's time (UTC).", "%H:%M:%S")

    def __init__(self, *args: Any, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self.files = LogFiles(64)
        self._public_mode = 0o644
        self._private_mode = 0o600

    def setup(self) -> None:
        self._public_mode = _mode(self.public_mode, "public_mode")
        self._private_mode = _mode(self.private_mode, "private_mode")
        try:
            self.path.format(source="s", channel="c", year="y", month="m", day="d")
        except (KeyError, IndexError, ValueError) as error:
            raise ValueError(f"bad path template {self.path!r}: {error}") from None
        # New settings (path, modes) apply to files opened from now on.
        self.files.close()
        self.files = LogFiles(self.max_open)

    def shutdown(self) -> None:
        self.files.close()

    # -- where and how ------------------------------------------------------------------

    def now(self) -> datetime:
        return self.bot.now()

    def file_for(self, source: str, channel: str, when: datetime) -> Path:
        """The log file of ``channel`` on ``source`` for the day of ``when``."""
        relative = self.path.format(
            source=safe_part(source),
            channel=safe_part(channel),
            year=f"{when:%Y}",
            month=f"{when:%m}",
            day=f"{when:%d}",
        )
        return self.bot.config.relative_path(relative)

    def bot_nick(self, source: str) -> str:
        """What the bot is called on ``source`` (its nick there), for its own lines."""
        names = names_on(self.bot, source)
        return names[0] if names else "bot"

    def write(self, source: str, channel: str, public: bool, text: str, when: datetime) -> None:
        if not public and not self.private:
            return
        stamp = when.strftime(self.timestamp)
        lines = [f"[{stamp}] {line}" for line in text.splitlines() or [""]]
        mode = self._public_mode if public else self._private_mode
        self.files.write(self.file_for(source, channel, when), lines, mode)

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
        if response.action:
            line = f"* {nick} {response.text}"
        elif response.notice:
            line = f"-{nick}- {response.text}"
        else:
            line = f"<{nick}> {response.text}"
        # A reply is public when it goes to the event's public channel; one to anywhere
        # else is public when its source says the target is a channel there.
        if source == event.source and response.target == event.channel:
            public = event.public
        else:
            public = is_channel_on(self.bot, source, response.target)
        self.write(source, response.target, public, line, now)
