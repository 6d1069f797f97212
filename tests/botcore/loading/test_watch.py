"""Tests of the autoreload watcher with the real inotify: a real file changed on disk is
noticed by the kernel, handed over by Twisted's inotify (bytes paths) and reloaded."""

from __future__ import annotations

import sys
from typing import Any

from twisted.internet import defer, reactor
from twisted.trial.unittest import SkipTest, TestCase

from botcore.loading.watch import PluginWatcher
from tests.botcore.loading.test_reload import ReloadCase


class _Reloads(list[tuple[str, str | None]]):
    """The watcher's record of reloads, firing a Deferred at the first one."""

    def __init__(self) -> None:
        super().__init__()
        self.first: defer.Deferred[None] = defer.Deferred()

    def append(self, item: tuple[str, str | None]) -> None:
        super().append(item)
        if not self.first.called:
            self.first.callback(None)


class RealInotifyTests(ReloadCase, TestCase):
    """The watcher on the real reactor with the kernel's inotify."""

    # Bounded: a watcher that never notices the change fails the test, not CI.
    timeout = 30

    def setUp(self) -> None:
        if not sys.platform.startswith("linux"):
            raise SkipTest("inotify is Linux only")
        super().setUp()

    @defer.inlineCallbacks
    def test_real_change_reloads(self) -> Any:
        """Writing a plugin's file on disk reloads it through inotify: the notification's
        bytes path is matched to the plugin's file, nothing is logged as an error."""
        name = self.plugin_name("counter")
        self.write_counter(name, 1)
        bot = self.make_bot([name])
        watcher = PluginWatcher(bot.plugins, reactor=reactor, delay=0.05)
        reloads = watcher.reloads = _Reloads()
        watcher.startService()
        self.addCleanup(watcher.stopService)
        self.assertIsNotNone(watcher._notifier)
        self.assertIsNone(watcher._loop)
        self.write_counter(name, 2)
        # Bounded wait: the reload, or a failure after 10 s of the real clock.
        timer = reactor.callLater(10, reloads.first.cancel)
        try:
            yield reloads.first
        finally:
            if timer.active():
                timer.cancel()
        self.assertEqual(list(reloads), [(name, None)])
        self.assertEqual(self.ask("count a"), ["v2 a"])
        self.assertEqual(self.errors, [])
