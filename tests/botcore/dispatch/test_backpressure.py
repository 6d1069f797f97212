"""Tests for the dispatcher's backpressure (issue 14): a source whose backlog reaches
``max_queued`` is told to pause its input and to resume once half is done, so a flood is
slowed down rather than dropped, while the backlog (and memory) stays bounded; a source
that cannot pause keeps the drop (see FairnessTests.test_backlog_bounded)."""

from __future__ import annotations

from botcore.errors import DispatcherOverloaded
from botcore.testing import ManualThreadPool, MemorySource
from tests.botcore.dispatch.test_dispatcher import DispatcherTestCase, message


class ReadingSource(MemorySource):
    """A source that reads lines from a pretend network: each line fed becomes a message
    event, dispatched at once unless its input is paused; then the lines wait, unread,
    and `resume_reading` reads them (until told to pause again), as a transport does."""

    can_pause = True

    def __init__(self, name, bot, **kw):
        super().__init__(name, bot, **kw)
        self.unread: list[str] = []
        self.calls: list[str] = []
        self.results = []
        self.reading = True

    def feed(self, *texts, channel="#a"):
        for text in texts:
            self.unread.append((text, channel))
        self._read()

    def _read(self):
        while self.reading and self.unread:
            text, channel = self.unread.pop(0)
            self.results.append(self.dispatch(message(text, channel, self.name)))

    def pause_reading(self):
        self.calls.append("pause")
        self.reading = False

    def resume_reading(self):
        self.calls.append("resume")
        self.reading = True
        self._read()


class DeafSource(MemorySource):
    """A source that says it can pause but goes on dispatching."""

    can_pause = True

    def __init__(self, name, bot, **kw):
        super().__init__(name, bot, **kw)
        self.calls = []

    def pause_reading(self):
        self.calls.append("pause")

    def resume_reading(self):
        self.calls.append("resume")


class PausingTestCase(DispatcherTestCase):
    """A hand-run pool, an echo processor and a source of ``source_class`` named
    ``source_name`` (``self.reader``)."""

    source_class: type = MemorySource
    source_name = "tcp"

    def setUp(self):
        super().setUp()
        self.pool = ManualThreadPool()
        self.seen = []
        self.reader = self.source_class(self.source_name, self.context)
        self.context.add_source(self.reader)

    def make(self, **config):
        return self.dispatcher(
            [self.step("echo", self.seen, 0, lambda e: e.addresponse(e.message.raw))],
            self.pool,
            **config,
        )


class BackpressureTests(PausingTestCase):
    """The pause and resume signal."""

    source_class = ReadingSource

    def test_paused_at_bound_resumed_at_half(self):
        """With one worker and max_queued 4: the fifth event (four waiting, one running)
        pauses the source; it is resumed once the backlog is down to two, not before."""
        dispatcher = self.make(threads=1, max_queued=4)
        self.reader.feed(*(f"m{n}" for n in range(20)))
        self.assertEqual(self.reader.calls, ["pause"])
        self.assertEqual(len(self.reader.unread), 15)
        self.assertEqual(dispatcher.load()["waiting"], {"tcp": 4})
        self.assertEqual(dispatcher.load()["paused"], ["tcp"])
        self.pool.run()  # m0 done, m1 starts: three waiting
        self.assertEqual(self.reader.calls, ["pause"])
        self.pool.run()  # two waiting: the low-water mark
        self.assertEqual(self.reader.calls, ["pause", "resume", "pause"])
        self.assertEqual(dispatcher.load()["waiting"], {"tcp": 4})
        self.assertEqual(dispatcher.pauses, 2)
        self.pool.run_all()
        self.assertEqual(len(self.reader.sent), 20)

    def test_flood_loses_nothing(self):
        """10,000 events read as fast as the source is let: every one is answered, in
        order, none dropped, and no more than max_queued ever wait."""
        dispatcher = self.make(threads=2, max_queued=50)
        self.reader.feed(*(f"m{n}" for n in range(10_000)))
        most = 0
        while self.pool.jobs:
            most = max(most, sum(dispatcher.load()["waiting"].values()))
            self.pool.run()
        self.assertEqual(dispatcher.dropped, 0)
        self.assertLessEqual(most, 50)
        self.assertEqual([r.text for r in self.reader.sent], [f"m{n}" for n in range(10_000)])
        for result in self.reader.results:
            self.successResultOf(result)
        self.assertEqual(self.reader.unread, [])
        self.assertEqual(dispatcher.load()["paused"], [])
        self.assertGreater(dispatcher.pauses, 100)

    def test_what_was_read_is_taken(self):
        """Events already read when the source was told to pause are still taken, up to
        twice max_queued; past that they are dropped, counted and logged once."""
        deaf = DeafSource("deaf", self.context)
        self.context.add_source(deaf)
        dispatcher = self.make(threads=1, max_queued=3)
        results = [dispatcher.dispatch(message(f"d{n}", "#a", "deaf")) for n in range(10)]
        self.assertEqual(deaf.calls, ["pause"])
        self.assertEqual(dispatcher.dropped, 3)  # 1 running, 6 waiting, 3 dropped
        for result in results[7:]:
            self.failureResultOf(result, DispatcherOverloaded)
        warned = [t for t in self.logged_texts() if "dropping its new events" in t]
        self.assertEqual(len(warned), 1)
        self.assertIn("it was told to pause but goes on", warned[0])
        self.pool.run_all()
        self.assertEqual(len(self.seen), 7)
        self.assertEqual(deaf.calls, ["pause", "resume"])

    def test_other_sources_unaffected(self):
        """A paused source's backlog neither pauses nor delays another source."""
        dispatcher = self.make(threads=4, max_queued=5)
        self.reader.feed(*(f"m{n}" for n in range(30)), channel=None)
        other = ReadingSource("other", self.context)
        self.context.add_source(other)
        other.feed("hello", channel="#b")
        self.assertEqual(other.calls, [])
        self.assertEqual(dispatcher.load()["paused"], ["tcp"])
        self.pool.run_all()
        self.assertEqual([r.text for r in other.sent], ["hello"])
        self.assertEqual(len(self.reader.sent), 30)

    def test_resume_reads_within_the_pump(self):
        """A source that dispatches what it reads as soon as it is resumed (inside the
        dispatcher's hand-off to the pool) never gets more workers than there are."""
        dispatcher = self.make(threads=3, max_queued=4)
        for n in range(40):
            self.reader.feed(f"m{n}", channel=f"#c{n}")
        while self.pool.jobs:
            self.assertLessEqual(len(self.pool.jobs), 3)
            self.assertLessEqual(dispatcher.load()["active"], 3)
            self.pool.run()
        self.assertEqual(len(self.reader.sent), 40)
        self.assertEqual(dispatcher.dropped, 0)

    def test_stopping_resumes(self):
        """Events abandoned when the bot stops (close_commits) end the pause."""
        dispatcher = self.make(threads=1, max_queued=2)
        self.reader.feed(*(f"m{n}" for n in range(5)))
        self.assertEqual(self.reader.calls, ["pause"])
        dispatcher.close_commits()
        self.assertEqual(self.reader.calls[:2], ["pause", "resume"])
        self.assertLessEqual(dispatcher.load()["waiting"].get("tcp", 0), 2)
        self.pool.run_all()


class ReadAllSource(MemorySource):
    """A source that cannot stop in the middle of a read (an XML parser): every event of
    a read goes to `Source.dispatch`, which holds those made while paused."""

    can_pause = True

    def __init__(self, name, bot, **kw):
        super().__init__(name, bot, **kw)
        self.results = []
        self.refused = []

    def read(self, *texts):
        for text in texts:
            self.results.append(self.dispatch(message(text, "#a", self.name)))

    def rejected(self, event, reason):
        self.refused.append((event.message.raw, reason))


class HeldEventsTests(PausingTestCase):
    """What a paused source had already read is held by the source (`Source.dispatch`),
    not dropped, and dispatched in order once it is resumed."""

    source_class = ReadAllSource
    source_name = "xml"

    def test_rest_of_the_read_held_then_dispatched(self):
        """A read of 30 events with max_queued 4: the dispatcher never holds more than 4
        waiting, the source holds the rest, and all 30 are answered in order."""
        dispatcher = self.make(threads=1, max_queued=4)
        self.reader.read(*(f"m{n}" for n in range(30)))
        self.assertTrue(self.reader.input_paused)
        self.assertEqual(dispatcher.load()["waiting"], {"xml": 4})
        self.assertEqual(len(self.reader._held), 25)
        while self.pool.jobs:
            self.assertLessEqual(dispatcher.load()["waiting"]["xml"], 4)
            self.pool.run()
        self.assertEqual(dispatcher.dropped, 0)
        self.assertEqual([r.text for r in self.reader.sent], [f"m{n}" for n in range(30)])
        for result in self.reader.results:
            event = self.successResultOf(result)
            self.assertEqual(event.responses[0].text, event.message.raw)
        self.assertFalse(self.reader.input_paused)

    def test_held_limit(self):
        """A source that goes on reading while paused has events beyond HELD_LIMIT
        dropped: counted and logged; the held ones are still answered."""
        from botcore import source as source_module

        self.patch(source_module, "HELD_LIMIT", 5)
        dispatcher = self.make(threads=1, max_queued=2)
        self.reader.read(*(f"m{n}" for n in range(12)))
        self.assertEqual(self.reader.held_dropped, 4)  # 1 running, 2 waiting, 5 held
        self.assertTrue(any("goes on reading while paused" in t for t in self.logged_texts()))
        self.pool.run_all()
        self.assertEqual(len(self.reader.sent), 8)
        for result in self.reader.results:
            self.successResultOf(result)
        self.assertEqual(dispatcher.dropped, 0)

    def test_stopping_source_refuses_what_it_holds(self):
        """Events still held when the source stops are refused (the sender is told, and
        their Deferreds fire): none is left waiting forever."""
        self.make(threads=1, max_queued=2)
        self.reader.startService()
        self.reader.read(*(f"m{n}" for n in range(6)))
        self.reader.stopService()
        self.assertEqual(
            self.reader.refused, [(f"m{n}", "the bot is shutting down") for n in range(3, 6)]
        )
        for result in self.reader.results[3:]:
            self.successResultOf(result)
        self.pool.run_all()
