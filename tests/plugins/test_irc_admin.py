"""The channel admin commands (plugins/irc_admin.py), against a recording source with
channels: join, part, change nick, say, do, topic, and the permission they need."""

from __future__ import annotations

from typing import Any, ClassVar

from zope.interface import implementer

from botcore.event import Event, EventType, Message, Sender
from botcore.interfaces import IChannelSource
from botcore.testing import MemorySource, PluginTestCase


@implementer(IChannelSource)
class ChannelSource(MemorySource):
    """A memory source with channels: records what it was asked to do, as (method, args)."""

    type = "channels"

    def __init__(self, *args: Any, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self.calls: list[tuple[str, tuple[Any, ...]]] = []

    def join(self, channel: str, key: str | None = None) -> None:
        self.calls.append(("join", (channel, key)))

    def part(self, channel: str, message: str | None = None) -> None:
        self.calls.append(("part", (channel,)))

    def set_nick(self, nick: str) -> None:
        self.calls.append(("set_nick", (nick,)))

    def say(self, target: str, text: str) -> None:
        self.calls.append(("say", (target, text)))

    def do(self, target: str, text: str) -> None:
        self.calls.append(("do", (target, text)))

    def topic(self, channel: str, text: str) -> None:
        self.calls.append(("topic", (channel, text)))

    def members(self, channel: str) -> dict[str, str]:
        return {}


class AdminTestCase(PluginTestCase):
    load: ClassVar = ["irc_admin"]
    plugin_config: ClassVar = {"auth": {"permissions": "+sources"}}

    def setUp(self) -> None:
        super().setUp()
        self.irc = ChannelSource("libera", self.bot.context)
        self.irc.setServiceParent(self.bot.sources)

    def ok(self, text: str, **kw: Any) -> None:
        """The command is acknowledged."""
        self.assertResponseMatches(text, r"^(Okay|Sure|Done|Righto|Alrighty|Yessir)$", **kw)


class CommandTests(AdminTestCase):
    def test_join(self) -> None:
        """join takes a channel, an optional key and an optional source."""
        self.ok("join #botcore on libera")
        self.ok("join #secret sekrit on libera")
        self.assertEqual(
            self.irc.calls, [("join", ("#botcore", None)), ("join", ("#secret", "sekrit"))]
        )

    def test_part(self) -> None:
        """part (or leave) takes a channel and an optional source."""
        self.ok("part #botcore on libera")
        self.ok("leave #other on libera")
        self.assertEqual(self.irc.calls, [("part", ("#botcore",)), ("part", ("#other",))])

    def test_change_nick(self) -> None:
        """change (your) nick to <nick> changes the nick."""
        self.ok("change nick to newbot on libera")
        self.ok("change your nick to botty on libera")
        self.assertEqual(self.irc.calls, [("set_nick", ("newbot",)), ("set_nick", ("botty",))])

    def said(self) -> list[tuple[str | None, str | bool, bool]]:
        """What the bot said on the channel source: (target, text, action)."""
        return [(r.target, r.text, r.action) for r in self.irc.sent if r.target == "#botcore"]

    def test_say_do_topic(self) -> None:
        """say and do send text to a channel by the one reply path (the outgoing filters
        see it), topic sets the topic, on the source named after it."""
        self.ok("say in #botcore on libera Hello, everyone!")
        self.ok("do in #botcore on libera waves")
        self.ok("topic in #botcore on libera Meeting at 10")
        self.assertEqual(
            self.said(),
            [("#botcore", "Hello, everyone!", False), ("#botcore", "waves", True)],
        )
        self.assertEqual(self.irc.calls, [("topic", ("#botcore", "Meeting at 10"))])
        # Three acknowledgements and the two lines said.
        self.assertEqual(self.bot.event_stats.filters["core.Format.fit"].seen, 5)

    def test_say_is_formatted(self) -> None:
        """What say sends is fitted to the source like any reply: no actions there, so
        do's text is starred (Format, an outgoing filter)."""
        self.irc.supports = frozenset({"notice", "multiline"})
        self.ok("do in #botcore on libera waves")
        self.assertEqual(self.said(), [("#botcore", "*waves*", False)])

    def test_on_that_is_not_a_source(self) -> None:
        """'on' followed by a word that is no source is part of the text."""
        self.say(self.event("say in #botcore on the table", source="libera"))
        self.assertEqual(self.said(), [("#botcore", "on the table", False)])

    def test_default_source_is_the_events(self) -> None:
        """Without 'on', the command acts on the source it came from."""
        self.say(self.event("join #here", source="libera"))
        self.assertEqual(self.irc.calls, [("join", ("#here", None))])
        [reply] = self.irc.sent
        self.assertIn(reply.text, ("Okay", "Sure", "Done", "Righto", "Alrighty", "Yessir"))

    def test_part_current_channel(self) -> None:
        """part without a channel, said in a channel, leaves that channel."""
        self.say(self.event("part", source="libera", channel="#current", public=True))
        self.assertEqual(self.irc.calls, [("part", ("#current",))])

    def test_part_without_channel_in_private(self) -> None:
        """part without a channel in private asks which channel."""
        self.assertResponseMatches("part on libera", "Which channel")
        self.assertEqual(self.irc.calls, [])

    def test_unknown_source(self) -> None:
        """A source that does not exist is named in the reply."""
        self.assertResponseMatches("join #x on nowhere", "no source called nowhere")

    def test_source_without_channels(self) -> None:
        """A source without channels (the test console) says so."""
        self.assertResponseMatches("join #x", "test has no channels")

    def test_disconnected_source(self) -> None:
        """A source that is not connected says so, and nothing is called."""
        self.irc.set_state("reconnecting")
        self.assertResponseMatches("join #x on libera", "not connected to libera")
        self.assertEqual(self.irc.calls, [])

    def test_bad_names(self) -> None:
        """Channel names and nicks are checked before anything is sent."""
        self.assertResponseMatches("join nochannel on libera", "not a channel name")
        self.assertResponseMatches("change nick to #bad on libera", "not a nick")
        self.assertResponseMatches("topic in alice on libera hi", "not a channel name")
        self.assertResponseMatches("TOPIC in alice on libera hi", "not a channel name")
        self.assertEqual(self.irc.calls, [])

    def test_channels_as_the_source_says(self) -> None:
        """What a channel is, is the target source's word (IRC: its server's CHANTYPES)."""
        self.irc.chantypes = "#!"
        self.ok("join !safe on libera")
        self.ok("part !safe on libera")
        self.assertResponseMatches("join &local on libera", "&local is not a channel name")
        self.assertResponseMatches("part &local on libera", "&local is not a channel name")
        self.assertResponseMatches("topic in &local on libera hi", "not a channel name")
        self.assertEqual(self.irc.calls, [("join", ("!safe", None)), ("part", ("!safe",))])

    def test_calls_on_reactor_thread(self) -> None:
        """The source is called from inside reactor.callFromThread, never directly."""
        depth = []
        original = self.clock.callFromThread

        def spy(function: Any, *args: Any, **kw: Any) -> None:
            depth.append(function)
            try:
                original(function, *args, **kw)
            finally:
                depth.pop()

        called_inside = []
        self.irc.join = lambda channel, key=None: called_inside.append(bool(depth))
        self.clock.callFromThread = spy
        self.ok("join #x on libera")
        self.assertEqual(called_inside, [True])

    # -- helpers --------------------------------------------------------------------------

    def event(
        self, text: str, *, source: str, channel: str | None = None, public: bool = False
    ) -> Event:
        sender = Sender(source, "admin!a@h", "admin")
        return Event(
            source=source,
            type=EventType.MESSAGE,
            sender=sender,
            channel=channel or "admin",
            public=public,
            addressed=True,
            message=Message(text),
        )

    def say(self, text: Any, **kw: Any) -> Event:
        if isinstance(text, Event) and text.source == "libera":
            # Events from the channel source: replies go back to it, not the test source.
            return self.successResultOf(self.irc.dispatch(text))
        return super().say(text, **kw)


class PermissionTests(AdminTestCase):
    plugin_config: ClassVar = {}

    def test_needs_sources_permission(self) -> None:
        """Without the sources permission nothing happens and the user is told no."""
        self.assertResponseMatches("join #x on libera", ".")
        self.assertEqual(self.irc.calls, [])
        event = self.say("change nick to evil on libera")
        self.assertEqual(event.complain, "notauthed")
        self.assertEqual(self.irc.calls, [])
