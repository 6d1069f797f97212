"""The bot's lifecycle on the bus: every state a typed event, and the error states (failed
to start, failed to stop) saying why, to processors and reactors alike."""

from __future__ import annotations

from pathlib import Path

from twisted.trial.unittest import SynchronousTestCase

from botcore.bot import Bot
from botcore.bus.reactors import Reactor
from botcore.event import EventType, Lifecycle
from botcore.loading.reloader import Reloader
from botcore.processor import Processor, handler
from botcore.settings import read_config
from botcore.testing import InlineReactor, InlineThreadPool, MemorySource


class Listener(Processor):
    """Records every lifecycle event's payload."""

    event_types = (EventType.LIFECYCLE,)
    addressed = False
    processed = True

    def __init__(self, *args, **kw):
        super().__init__(*args, **kw)
        self.seen = []

    @handler
    def record(self, event):
        self.seen.append(dict(event.data))


class Unstoppable(MemorySource):
    """Fails to stop."""

    def stopService(self):
        super().stopService()
        raise OSError("the socket would not close")


class LifecycleTests(SynchronousTestCase):
    def bot(self, sources=""):
        folder = Path(self.mktemp()).absolute()
        folder.mkdir(parents=True)
        path = folder / "bot.ini"
        path.write_text(
            "[bot]\nautoload = no\n\n"
            f"[database:main]\nurl = sqlite:///{folder / 'bot.sqlite'}\n{sources}"
        )
        reloader = Reloader(
            plugin_package="tests.botcore.fixtures_plugins",
            source_package="tests.botcore.fixtures_sources",
        )
        config = read_config(path, reloader=reloader)
        bot = Bot(
            config, reactor=InlineReactor(), threadpool=InlineThreadPool(), reloader=reloader
        )
        self.listener = Listener("testing", bot.context)
        bot.plugins.loaded["testing"] = [self.listener]
        self.fired = []
        bot.reactors.add(
            Reactor(
                "on-failure",
                frozenset({EventType.LIFECYCLE}),
                self.fired.append,
                lambda event: event.data["state"] == Lifecycle.FAILED,
            )
        )
        return bot

    def test_states(self):
        """A clean start and stop: every state, in order, nothing failed."""
        bot = self.bot()
        self.successResultOf(bot.startService())
        self.successResultOf(bot.stopService())
        states = [seen["state"] for seen in self.listener.seen]
        self.assertEqual(states, ["starting", "running", "stopping", "stopped"])
        self.assertEqual(self.fired, [])

    def test_failed_to_start(self):
        """A source that cannot start: a failed event saying why, which a reactor sees."""
        bot = self.bot("\n[source:broken]\ntype = failing\n")
        self.successResultOf(bot.startService())
        self.flushLoggedErrors()
        failed = self.listener.seen[-1]
        self.assertEqual(failed["state"], "failed")
        self.assertIn("failed to start: ", failed["reason"])
        self.assertIn("nobody listens on the fake port", failed["reason"])
        self.assertEqual(len(self.fired), 1)

    def test_failed_to_stop(self):
        """A source that fails to stop makes the final state failed, with the reason and
        each error; the bot still stops."""
        bot = self.bot()
        Unstoppable("stuck", bot.context).setServiceParent(bot.sources)
        self.successResultOf(bot.startService())
        self.successResultOf(bot.stopService())
        self.assertEqual(len(self.flushLoggedErrors(OSError)), 1)
        final = self.listener.seen[-1]
        self.assertEqual(final["state"], "failed")
        self.assertEqual(
            final["reason"], "failed to stop: stuck: OSError: the socket would not close"
        )
        self.assertEqual(final["errors"], ["stuck: OSError: the socket would not close"])
        self.assertEqual(bot.state, Lifecycle.FAILED)
        self.assertEqual([e.data["state"] for e in self.fired], ["failed"])
        self.assertFalse(any(child.running for child in bot))
