"""Channel and nick administration on sources that have channels (such as IRC): join and
part channels, change the bot's nick, say or do something in a channel, set a topic."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from botcore.event import Event, Response
from botcore.interfaces import IChannelSource
from botcore.processor import Processor, authorise, match

#: What no channel name may hold, whatever the source: spaces, commas, control characters.
_BAD_CHANNEL = re.compile(r"[\s,\x00-\x1f]")
_ON_SOURCE = re.compile(r"^on\s+(?P<source>\S+)(?:\s+(?P<rest>.*))?$", re.DOTALL)


class ChannelAdmin(Processor):
    """Tells the bot to join or leave channels, change nick, speak in a channel, or set a
    topic. Each command may end with (or, for say/do/topic, put after the channel)
    ``on <source>``; by default it acts on the source the command came from. Needs the
    ``sources`` permission."""

    usage = (
        "join <channel> [<key>] [on <source>]\n"
        "part [<channel>] [on <source>]\n"
        "change nick to <nick> [on <source>]\n"
        "say in <channel> [on <source>] <text>\n"
        "do in <channel> [on <source>] <text>\n"
        "topic in <channel> [on <source>] <text>"
    )
    features = ("sources",)
    permission = "sources"

    @match(
        r"^join\s+(?P<channel>\S+)(?:\s+(?!on\s)(?P<key>\S+))?(?:\s+on\s+(?P<source>\S+))?$",
        version="deaddressed",
        simple=False,
    )
    @authorise(fallthrough=False)
    def join(self, event: Event, channel: str, key: str | None, source: str | None) -> None:
        self._on(event, source, lambda target: target.join(channel, key), channel)

    @match(
        r"^(?:part|leave)(?:\s+(?!on(?:\s|$))(?P<channel>\S+))?(?:\s+on\s+(?P<source>\S+))?$",
        version="deaddressed",
        simple=False,
    )
    @authorise(fallthrough=False)
    def part(self, event: Event, channel: str | None, source: str | None) -> None:
        if channel is None:
            if not event.public or source not in (None, event.source):
                event.addresponse("Which channel shall I leave?")
                return
            channel = event.channel
        self._on(event, source, lambda target: target.part(channel), channel)

    @match(
        r"^change\s+(?:your\s+)?nick\s+to\s+(?P<nick>\S+)(?:\s+on\s+(?P<source>\S+))?$",
        version="deaddressed",
        simple=False,
    )
    @authorise(fallthrough=False)
    def nick(self, event: Event, nick: str, source: str | None) -> None:
        if not re.match(r"^[^\s,*?!@#:&\d-][^\s,*?!@:]*$", nick):
            event.addresponse("%s is not a nick I can take", nick)
            return
        self._on(event, source, lambda target: target.set_nick(nick))

    @match(
        r"^(?P<verb>say|do|topic)\s+in\s+(?P<channel>\S+)\s+(?P<rest>.+)$",
        version="deaddressed",
        simple=False,
    )
    @authorise(fallthrough=False)
    def speak(self, event: Event, verb: str, channel: str, rest: str) -> None:
        source, text = self._split_source(rest)
        text = text.strip()
        method = verb.lower()  # say, do or topic: the IChannelSource method of that name
        if not text:
            event.addresponse("What shall I do?" if method == "do" else "What shall I say?")
            return
        if method == "topic":
            self._on(event, source, lambda target: target.topic(channel, text), channel)
            return
        # Said by the one reply path, so that the outgoing filters (Format) see it.
        reply = Response(text, target=channel, action=method == "do", address=False)
        self._on(
            event,
            source,
            lambda target: self.bot.send(reply.replace(source=target.name)),
        )

    # -- helpers ------------------------------------------------------------------------

    def _split_source(self, rest: str) -> tuple[str | None, str]:
        """``on NAME text`` names a source when NAME is one; otherwise it is all text."""
        found = _ON_SOURCE.match(rest.strip())
        if found and self.bot.get_source(found.group("source")):
            return found.group("source"), found.group("rest") or ""
        return None, rest

    def _on(
        self,
        event: Event,
        name: str | None,
        action: Callable[[Any], None],
        channel: str | None = None,
    ) -> None:
        """Run ``action(source)`` on the reactor thread for the named (or event's) source,
        and acknowledge; explain instead when that source cannot do it, or when
        ``channel`` is given and is no channel there (as the source says)."""
        name = name or event.source
        source = self.bot.get_source(name)
        if source is None:
            event.addresponse("I have no source called %s", name)
            return
        if not IChannelSource.providedBy(source):
            event.addresponse("%s has no channels for me to manage", name)
            return
        if channel is not None and (
            _BAD_CHANNEL.search(channel) or not source.is_channel(channel)
        ):
            event.addresponse("%s is not a channel name", channel)
            return
        if source.state != "connected":
            event.addresponse("I'm not connected to %s right now", name)
            return
        self.bot.call_from_thread(action, source)
        event.addresponse(True)
