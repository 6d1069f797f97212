"""The twistd dropin: makes ``twistd botcore`` available.

The ServiceMaker is lazy, so listing plugins never imports botcore.tap."""

from __future__ import annotations

from twisted.application.service import ServiceMaker

botcore = ServiceMaker(
    "botcore",
    "botcore.tap",
    "Run a botcore chat bot (see botcore.tap for options).",
    "botcore",
)
