"""The sources service: a MultiService whose start waits for every source, and which
attaches and detaches sources while the bot runs."""

from __future__ import annotations

from typing import Any

from twisted.application.service import MultiService, Service
from twisted.internet.defer import Deferred, DeferredList, maybeDeferred, succeed
from twisted.logger import Logger
from twisted.python.failure import Failure

from botcore.interfaces import ISource


class StopFailed(Exception):
    """Some sources failed to stop (each logged); ``errors`` says which and why."""

    def __init__(self, errors: list[str]) -> None:
        super().__init__("; ".join(errors))
        self.errors = errors


class Sources(MultiService):
    """The sources. Unlike a plain MultiService, starting waits for every source's start
    and fails (with the first source's error) if any source fails to start; stopping
    stops every source and fails with `StopFailed` if any failed to stop."""

    log = Logger()

    def __init__(self) -> None:
        super().__init__()
        self.setName("sources")

    def startService(self) -> Deferred[None]:
        Service.startService(self)
        starts = [maybeDeferred(source.startService) for source in self]
        return DeferredList(starts, consumeErrors=True).addCallback(_first_failure)

    def stopService(self) -> Deferred[None]:
        # A source disconnected at runtime is stopped already.
        Service.stopService(self)
        stopping = [source for source in reversed(list(self)) if source.running]
        stops = [maybeDeferred(source.stopService) for source in stopping]
        return DeferredList(stops, consumeErrors=True).addCallback(self._stopped, stopping)

    def _stopped(self, results: list[tuple[bool, Any]], stopping: list[ISource]) -> None:
        errors = []
        for source, (ok, result) in zip(stopping, results, strict=True):
            if not ok:
                self.log.failure("source {name} failed to stop", result, name=source.name)
                errors.append(f"{source.name}: {result.type.__name__}: {result.getErrorMessage()}")
        if errors:
            raise StopFailed(errors)

    def attach(self, source: ISource) -> Deferred[None]:
        """Add a source to the running tree and start it; the Deferred is its start's
        (which `MultiService.addService` would drop)."""
        if source.name in self.namedServices:
            raise RuntimeError(f"cannot have two sources named {source.name}")
        source.parent = self
        self.services.append(source)
        self.namedServices[source.name] = source
        if not self.running:
            return succeed(None)
        return maybeDeferred(source.startService)

    def detach(self, source: ISource) -> Deferred[None]:
        """Stop a source (if running) and take it out of the tree."""
        self.services.remove(source)
        del self.namedServices[source.name]
        source.parent = None
        if not source.running:
            return succeed(None)
        return maybeDeferred(source.stopService)


def _first_failure(results: list[tuple[bool, Any]]) -> Failure | None:
    for ok, result in results:
        if not ok:
            return result
    return None
