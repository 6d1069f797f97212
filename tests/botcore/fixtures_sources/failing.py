"""A source that cannot start (a test source)."""

from __future__ import annotations

from botcore.source import Source


class FailingSource(Source):
    """Raises when started."""

    type = "failing"

    def startService(self) -> None:
        super().startService()
        raise ConnectionRefusedError("nobody listens on the fake port")

    def send(self, response) -> None:
        raise AssertionError("never started")
