"""Pre/post hooks: their order by explicit priority, the event's and the bot's
namespaces, which types they run for, failures, and reloads."""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from botcore.bus.catalogue import Catalogue, EventTypeSpec
from botcore.dispatch.dispatcher import Dispatcher
from botcore.event import Event
from botcore.processor import Processor, handler, post_hook, pre_hook
from botcore.testing import InlineReactor, InlineThreadPool, StubContext
from tests.botcore.loading.test_reload import ReloadCase

ORDER: list[str] = []


class First(Processor):
    """Early in the chain; its hooks are late by priority."""

    event_types = ("deploy",)
    addressed = False
    priority = -500

    @pre_hook(priority=50)
    def late_pre(self, event):
        ORDER.append("pre 50")

    @handler
    def work(self, event):
        ORDER.append(f"first sees build {event.extra.get('build')}")
        event.addresponse("deployed", target="#ops")

    @post_hook(priority=10)
    def late_post(self, event):
        ORDER.append("post 10")


class Second(Processor):
    """Late in the chain; its hooks are early by priority."""

    event_types = ("deploy",)
    addressed = False
    processed = True
    priority = 500

    @pre_hook(priority=-10)
    def early_pre(self, event):
        ORDER.append("pre -10")
        event.extra["build"] = 42
        self.bot.namespace["deploys"] = self.bot.namespace.get("deploys", 0) + 1

    @handler
    def work(self, event):
        ORDER.append("second")

    @post_hook(priority=-5)
    def early_post(self, event):
        ORDER.append(f"post -5 sees {[r.text for r in event.responses]} {event.extra}")


class Watcher(Processor):
    """Addressed-only, message-only: its hook names other types, with their subtypes."""

    @pre_hook("deploy")
    def any_deploy(self, event):
        ORDER.append(f"watcher {event.type} processed={event.processed}")


class Failing(Processor):
    event_types = ("deploy",)

    @pre_hook(priority=-100)
    def broken(self, event):
        raise RuntimeError("hook broke")


class HookTests(SynchronousTestCase):
    def setUp(self):
        del ORDER[:]
        self.reactor = InlineReactor()
        self.catalogue = Catalogue()
        self.catalogue.declare(EventTypeSpec("deploy", "d"))
        self.catalogue.declare(EventTypeSpec("rollback", "r", parent="deploy"))
        self.dispatcher = Dispatcher(
            reactor=self.reactor, threadpool=InlineThreadPool(), catalogue=self.catalogue
        )
        self.context = StubContext(reactor=self.reactor, dispatcher=self.dispatcher)
        self.dispatcher.startService()
        self.addCleanup(self.dispatcher.stopService)

    def chain(self, *classes):
        self.dispatcher.set_chain([cls("ops", self.context) for cls in classes])

    def publish(self, type="deploy", **kw):
        return self.successResultOf(self.dispatcher.publish(Event(source="ci", type=type, **kw)))

    def test_order_and_namespaces(self):
        """Pre-hooks run first in ascending priority (whatever their processors' place),
        then the processors, then post-hooks by priority; a pre-hook's value in the
        event's namespace is read by a processor and the post-hooks."""
        self.chain(First, Second)
        self.publish()
        self.assertEqual(
            ORDER,
            [
                "pre -10",
                "pre 50",
                "first sees build 42",
                "second",
                "post -5 sees ['deployed'] {'build': 42}",
                "post 10",
            ],
        )

    def test_namespaces_lifetimes(self):
        """The event's namespace goes with it; the bot's is kept."""
        self.chain(Second)
        self.publish()
        event = self.publish()
        self.assertEqual(event.extra, {"build": 42})
        self.assertEqual(self.context.namespace, {"deploys": 2})
        fresh = Event(source="ci", type="deploy")
        self.assertEqual(fresh.extra, {})

    def test_types(self):
        """A hook naming types runs for them and their subtypes, addressed or not, even
        when its processor would not see the event; not for other types."""
        self.chain(Watcher)
        self.publish("rollback", processed=True)
        self.publish("message")
        self.assertEqual(ORDER, ["watcher rollback processed=True"])

    def test_failure(self):
        """A failing hook is logged and counted; the others and the processors run."""
        self.chain(Failing, First)
        event = self.publish()
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)
        self.assertIn("first sees build None", ORDER)
        self.assertEqual(event.complain, "exception")
        tally = self.dispatcher.stats.processors["ops.Failing.broken"]
        self.assertEqual((tally.seen, tally.failed), (1, 1))

    def test_bad_priority(self):
        """A hook's priority is an integer."""
        with self.assertRaises(TypeError):
            pre_hook(priority="high")


HOOKED = """
from botcore.processor import Processor, handler, pre_hook


class Hooked(Processor):
    addressed = False
    event_types = ("message",)

    @pre_hook()
    def mark(self, event):
        event.extra["version"] = @VERSION@
        self.bot.namespace["seen"] = self.bot.namespace.get("seen", 0) + 1

    @handler
    def answer(self, event):
        event.addresponse(f"hook v{event.extra['version']}, seen {self.bot.namespace['seen']}")
"""


class HookReloadTests(ReloadCase):
    prefix = "hk"

    def test_hooks_follow_reloads(self):
        """A reload replaces a plugin's hooks with its new code, atomically with its
        processors; the bot's namespace is kept."""
        name = self.plugin_name("hooked")
        self.write(f"{name}.py", HOOKED.replace("@VERSION@", "1"))
        bot = self.make_bot([name])
        self.assertEqual(self.ask("hi"), ["hook v1, seen 1"])
        self.write(f"{name}.py", HOOKED.replace("@VERSION@", "2"))
        self.successResultOf(bot.plugins.reload_plugin(name))
        self.assertEqual(self.ask("hi"), ["hook v2, seen 2"])
        self.assertEqual(self.errors, [])
