"""The twistd dropin: makes ``twistd botcore`` available.

The ServiceMaker is lazy, so listing plugins never imports botcore.tap."""

from __future__ import annotations

import gc
from typing import Any

from twisted.application.service import ServiceMaker


class BotServiceMaker(ServiceMaker):
    """twistd asks for the options only to run ``twistd botcore``: from then until the
    bot has started (`botcore.tap.resume_collector`), Python's cyclic garbage collector
    is paused. The start makes some 300,000 objects that live as long as the process,
    and collecting among them as they were made was a tenth of the start (~50 ms)."""

    @property
    def options(self) -> Any:
        gc.disable()
        return super().options


botcore = BotServiceMaker(
    "botcore",
    "botcore.tap",
    "Run a botcore chat bot (see botcore.tap for options).",
    "botcore",
)
