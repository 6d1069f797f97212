"""Records the bot's lifecycle events (a test plugin)."""

from __future__ import annotations

from botcore.event import EventType
from botcore.processor import Processor, handler


class Recorder(Processor):
    """Keeps the state of every lifecycle event it sees."""

    event_types = (EventType.LIFECYCLE,)
    addressed = False
    processed = True

    def setup(self) -> None:
        self.states = getattr(self, "states", [])

    @handler
    def record(self, event):
        self.states.append(event.data["state"])
