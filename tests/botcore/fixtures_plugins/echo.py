"""Repeats what it is told (a test plugin with two autoloaded processors)."""

from __future__ import annotations

from botcore.processor import Processor, match


class Echo(Processor):
    """Answers 'echo TEXT' with TEXT."""

    @match("echo {any}")
    def echo(self, event, text):
        event.addresponse(text)


class Shout(Processor):
    """Answers 'shout TEXT' with TEXT in capitals."""

    @match("shout {any}")
    def shout(self, event, text):
        event.addresponse(text.upper())
