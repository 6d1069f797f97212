"""A source that talks to nobody and keeps what it is asked to send (a test source)."""

from __future__ import annotations

from botcore.options import IntOption, Option
from botcore.testing import MemorySource


class FakeSource(MemorySource):
    """Records replies (in ``sent``) and setup calls; has options to configure."""

    type = "fake"
    supports = frozenset({"action"})

    port = IntOption("A port it would listen on.", 6667, min=1, max=65535)
    password = Option("A secret.", secret=True)

    def __init__(self, name, bot, config=None):
        super().__init__(name, bot, config)
        self.setups = 0

    def setup(self) -> None:
        self.setups += 1
