"""Says hello back (a test plugin with options, and one processor that is not autoloaded)."""

from __future__ import annotations

from botcore.options import IntOption, Option
from botcore.processor import Processor, match


class Greet(Processor):
    """Answers 'hello'."""

    usage = "hello"
    greeting = Option("What to answer.", "hi")
    times = IntOption("How many times to answer.", 1, min=1)

    def setup(self) -> None:
        self.setups = getattr(self, "setups", 0) + 1

    @match("hello")
    def hello(self, event):
        for _ in range(self.times):
            event.addresponse(self.greeting)


class Wave(Processor):
    """Waves at 'wave' (loaded only when asked for by name)."""

    autoload = False
    addressed = False

    @match("wave")
    def wave(self, event):
        event.addresponse("waves", action=True)
