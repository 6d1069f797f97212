"""Test support for botcore and for plugin authors: an inline thread pool, a clock that
also runs ``callFromThread``, and (see `PluginTestCase`) a conversation-style harness."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from twisted.internet.task import Clock
from twisted.python.failure import Failure


class InlineThreadPool:
    """A thread pool that runs work at once, in the calling thread: deterministic tests of
    code that normally runs in the dispatcher's pool."""

    def __init__(self) -> None:
        self.started = False

    def start(self) -> None:
        self.started = True

    def stop(self) -> None:
        self.started = False

    def callInThreadWithCallback(
        self,
        onResult: Callable[[bool, Any], None],
        function: Callable[..., Any],
        *args: Any,
        **kw: Any,
    ) -> None:
        try:
            result = function(*args, **kw)
        except BaseException:
            onResult(False, Failure())
        else:
            onResult(True, result)


class InlineReactor(Clock):
    """A `Clock` whose ``callFromThread`` runs the call at once."""

    running = False

    def callFromThread(self, function: Callable[..., Any], *args: Any, **kw: Any) -> None:
        function(*args, **kw)

    def stop(self) -> None:
        self.running = False
