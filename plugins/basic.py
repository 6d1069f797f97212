"""Basic commands to check that the bot is alive and listening: ``echo <text>`` says the
text back, ``ping`` answers ``pong``, ``version`` tells the botcore version, ``uptime`` how
long the bot has been running."""

from __future__ import annotations

from botcore.event import Event
from botcore.humanize import duration
from botcore.processor import Processor, example, match


class Echo(Processor):
    """Says the text back."""

    usage = "echo <text>"
    features = ("echo",)

    @example("echo hello world", r"^hello world$")
    @match(r"^\s*echo\s+(.*?)\s*$", version="deaddressed", simple=False)
    def echo(self, event: Event, text: str) -> None:
        if not text:
            return
        event.addresponse(text, address=False)


class Ping(Processor):
    """Answers ``ping`` with ``pong``."""

    usage = "ping"
    features = ("ping",)

    @example("ping", r"^pong$")
    @match("ping")
    def ping(self, event: Event) -> None:
        event.addresponse("pong")


class Version(Processor):
    """Tells which botcore the bot runs."""

    usage = "version"
    features = ("version",)

    @example("version", r"^botcore \S+$")
    @match("version")
    def version(self, event: Event) -> None:
        event.addresponse(f"botcore {self.bot.version}")


class Uptime(Processor):
    """Tells how long the bot has been running."""

    usage = "uptime"
    features = ("uptime",)

    @example("uptime", r"^I've been up for ")
    @match("uptime")
    def uptime(self, event: Event) -> None:
        started = self.bot.started_at
        if started is None:
            event.addresponse("I'm still starting up")
            return
        now = self.bot.now()
        event.addresponse(
            "I've been up for %s (since %s)",
            (duration((now - started).total_seconds()), f"{started:%Y-%m-%d %H:%M:%S} UTC"),
        )
