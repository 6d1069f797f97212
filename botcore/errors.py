"""The exceptions the layers raise to one another and to plugins and sources: what went
wrong, in words a user or an admin can read."""

from __future__ import annotations

import traceback
from collections.abc import Iterable


class DispatcherStopped(Exception):
    """Raised (through the Deferred) for an event dispatched while the bot is stopping."""


class DispatcherOverloaded(Exception):
    """Raised (through the Deferred) for an event dropped because its source has too many
    events waiting (the dispatcher logs it; nothing is said to the sender)."""


class PluginNotLoaded(LookupError):
    """Unload or reload of a plugin (or source) that is not loaded."""


class PluginNotFound(LookupError):
    """No plugin or source module of that name."""


class PluginLoadError(Exception):
    """New code of a plugin or source failed (to import, to instantiate, in ``setup()``);
    the old version, if any, is still running. Says the exception's type, its message and
    the file and line it came from."""

    def __init__(self, what: str, error: BaseException, files: Iterable[str] = ()) -> None:
        self.what = what
        self.error = error
        self.type = type(error).__name__
        self.message = str(error).strip().splitlines()[0] if str(error).strip() else ""
        self.file, self.line = _where(error, set(files))
        super().__init__(str(self))

    def __str__(self) -> str:
        text = f"{self.what}: {self.type}"
        if self.message:
            text += f": {self.message}"
        if self.file is not None:
            text += f" ({self.file}, line {self.line})"
        return text


def _where(error: BaseException, files: set[str]) -> tuple[str | None, int | None]:
    """The file and line of ``error``: where a SyntaxError is, else the deepest frame in
    one of ``files`` (the plugin's own), else the deepest frame."""
    if isinstance(error, SyntaxError) and error.filename:
        return error.filename, error.lineno
    frames = [
        f
        for f in traceback.extract_tb(error.__traceback__)
        if "importlib._bootstrap" not in f.filename
    ]
    if not frames:
        return None, None
    own = [f for f in frames if f.filename in files]
    frame = (own or frames)[-1]
    return frame.filename, frame.lineno
