"""Tests of where the bundled plugins' processors sit in the chain: every one in a band,
and the orders between plugins that the named slots (botcore.processor.Priority) stand
for."""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from botcore.loading.reloader import Reloader
from botcore.processor import Priority, Processor


def bundled() -> dict[str, type[Processor]]:
    """Every processor class of the bundled plugins, as ``plugin.Class``."""
    reloader = Reloader()
    return {
        f"{name}.{cls.__name__}": cls
        for name in reloader.plugin_names()
        for cls in reloader.processor_classes(reloader.plugin_module(name))
    }


class BundledPriorityTests(SynchronousTestCase):
    """The bundled plugins' priorities."""

    def setUp(self) -> None:
        self.processors = bundled()
        self.priority = {name: cls.priority for name, cls in self.processors.items()}

    def assertBefore(self, first: str, *others: str) -> None:
        """Each of ``others`` runs after ``first``."""
        for other in others:
            self.assertLess(self.priority[first], self.priority[other], f"{first} {other}")

    def test_in_bands(self):
        """Every bundled processor's priority is in one of the bands."""
        outside = [name for name, p in self.priority.items() if Priority.band_of(p) is None]
        self.assertEqual(outside, [])

    def test_bands_of_core(self):
        """Core's text and sender checks are in the pre band, Complain, Address and Format
        in the post band: Complain after every processor of the work band."""
        for name in ("core.Strip", "core.Ignore", "core.Addressed", "core.RateLimit"):
            self.assertIs(Priority.band_of(self.priority[name]), Priority.PRE, name)
        for name in ("core.Complain", "core.Address", "core.Format"):
            self.assertIs(Priority.band_of(self.priority[name]), Priority.POST, name)
        work = [name for name, p in self.priority.items() if p in Priority.WORK]
        self.assertIn("factoid.Get", work)
        self.assertBefore("memo.Deliver", "core.Complain")
        self.assertBefore("core.Complain", "seen.Record", "core.Address", "core.Format")

    def test_pre_band_order(self):
        """Secrets go first; the sender is identified after Strip and before Ignore,
        Addressed and RateLimit."""
        pre = [name for name, p in self.priority.items() if p in Priority.PRE]
        self.assertEqual(min(pre, key=self.priority.__getitem__), "core.Secrets")
        self.assertBefore("core.Strip", "core.Identify")
        self.assertBefore("core.Identify", "identity.SecretCommands", "core.Ignore")
        self.assertBefore("core.Identify", "core.Ignore", "core.Addressed", "core.RateLimit")

    def test_between_plugins(self):
        """urlgrab sees messages before any command; karma's votes and the admin commands
        come before the factoids; memo delivers after them; the log is last of all."""
        commands = [name for name, p in self.priority.items() if p in Priority.WORK]
        commands.remove("urlgrab.UrlGrab")
        self.assertBefore("urlgrab.UrlGrab", *commands)
        factoids = [name for name in self.priority if name.startswith("factoid.")]
        self.assertBefore("karma.Set", *factoids)
        self.assertBefore("admin.Admin", *factoids)
        for name in factoids:
            self.assertBefore(name, "memo.Deliver")
        others = [name for name in self.priority if name != "log.Log"]
        self.assertEqual(max(self.priority.values()), self.priority["log.Log"])
        for name in others:
            self.assertBefore(name, "log.Log")
