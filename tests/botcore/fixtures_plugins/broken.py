"""A plugin whose setup fails (a test plugin)."""

from __future__ import annotations

from botcore.processor import Processor


class Broken(Processor):
    """Cannot be set up."""

    def setup(self) -> None:
        raise RuntimeError("broken on purpose")
