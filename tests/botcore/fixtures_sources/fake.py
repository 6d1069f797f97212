"""A source that talks to nobody and keeps what it is asked to send (a test source)."""

from __future__ import annotations

from botcore.options import IntOption, Option
from botcore.source import Source


class FakeSource(Source):
    """Records replies and setup calls."""

    type = "fake"
    supports = frozenset({"action"})

    port = IntOption("A port it would listen on.", 6667, min=1, max=65535)
    password = Option("A secret.", secret=True)

    def __init__(self, name, bot, config=None):
        super().__init__(name, bot, config)
        self.sent = []
        self.setups = 0

    def setup(self) -> None:
        self.setups += 1

    def startService(self) -> None:
        super().startService()
        self.set_state("connected")

    def stopService(self) -> None:
        super().stopService()
        self.set_state("stopped")

    def send(self, response) -> None:
        self.sent.append(response)
