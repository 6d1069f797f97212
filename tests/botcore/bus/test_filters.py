"""Outgoing filters (botcore/dispatch/outgoing.py): every reply on its way to a source,
whatever produced it (the chain, call_later, periodic and background work, a reactor's
say, bot.send), in filter priority order; changing, splitting and dropping; failures
logged and counted; Format as one of them; and reloads."""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from botcore.bus.catalogue import Catalogue, EventTypeSpec
from botcore.bus.reactors import Reactor, Say
from botcore.dispatch.dispatcher import OUTGOING, Dispatcher
from botcore.dispatch.outgoing import Outgoing, OutgoingFilter
from botcore.event import Event, EventType, Message, Response, Sender
from botcore.plugins.core import Format
from botcore.processor import Priority, Processor, handler, match, outgoing, periodic
from botcore.testing import InlineReactor, InlineThreadPool, MemorySource, StubContext
from tests.botcore.loading.test_reload import ReloadCase

#: What each filter saw, in order: (filter, text, event type).
SEEN: list[tuple[str, str, str]] = []


class Answers(Processor):
    """Answers ``hi`` (and, for ``later``, after a delay; for ``twice``, two lines)."""

    addressed = False

    @match("hi")
    def hi(self, event):
        event.addresponse("hello")

    @match("twice")
    def twice(self, event):
        event.addresponse("one")
        event.addresponse("two")

    @match("later")
    def later(self, event):
        self.bot.call_later(5, lambda delayed: delayed.addresponse("late hello"), event)

    @match("secret")
    def secret(self, event):
        event.addresponse("the password is hunter2")


class Shout(Processor):
    """A filter-only processor early in the chain whose filter runs late."""

    priority = -900

    @outgoing(priority=20)
    def shout(self, response, event):
        SEEN.append(("shout", response.text, event.type))
        return response.replace(text=response.text.upper())


class Tag(Processor):
    """Late in the chain, but its filter runs first; splits 'one'; drops secrets."""

    priority = 900

    @outgoing(priority=-20)
    def tag(self, response, event):
        SEEN.append(("tag", response.text, event.type))
        if "hunter2" in response.text:
            return None
        if response.text == "one":
            return [response.replace(text="one-a"), response.replace(text="one-b")]
        return response.replace(text=f"[{response.text}]")


class Broken(Processor):
    """A filter that always raises, passing the reply on."""

    @outgoing(priority=0)
    def broken(self, response, event):
        raise RuntimeError("filter broke")


class Guard(Processor):
    """A guarding filter that raises on replies with digits: they are dropped."""

    @outgoing(priority=0, on_error="drop")
    def guard(self, response, event):
        if any(c.isdigit() for c in response.text):
            raise ValueError("cannot check digits")
        return response


class Junk(Processor):
    """A filter returning something that is not a reply."""

    @outgoing()
    def junk(self, response, event):
        return response.text


class Tick(Processor):
    """Says something on a periodic tick."""

    event_types = ()

    @periodic(interval=60)
    def tick(self, event):
        event.addresponse("tick", source="test", target="#ops")


class Later(Processor):
    """A background processor's reply."""

    background = True
    addressed = False
    processed = True

    @match("hi")
    def afterwards(self, event):
        event.addresponse("background hello")


def message(text, **kw):
    fields = {
        "source": "test",
        "type": EventType.MESSAGE,
        "sender": Sender("test:alice", "alice", "alice"),
        "channel": "alice",
        "public": False,
        "addressed": True,
        "message": Message(text),
    }
    fields.update(kw)
    return Event(**fields)


class FilterTestCase(SynchronousTestCase):
    def setUp(self):
        del SEEN[:]
        self.reactor = InlineReactor()
        self.catalogue = Catalogue()
        self.catalogue.declare(EventTypeSpec("deploy", "d"))
        self.dispatcher = Dispatcher(
            reactor=self.reactor,
            threadpool=InlineThreadPool(),
            background_pool=InlineThreadPool(),
            catalogue=self.catalogue,
            sources=lambda name: self.context.get_source(name),
        )
        self.context = StubContext(reactor=self.reactor, dispatcher=self.dispatcher)
        self.source = MemorySource("test", self.context)
        self.context.add_source(self.source)
        self.dispatcher.startService()
        self.addCleanup(self.dispatcher.stopService)

    def chain(self, *classes):
        self.dispatcher.set_chain([cls("testing", self.context) for cls in classes])

    def say(self, text, **kw):
        return self.successResultOf(self.dispatcher.dispatch(message(text, **kw)))

    def sent(self):
        return [r.text for r in self.source.sent]


class PipelineTests(FilterTestCase):
    def test_priority_order_not_chain_order(self):
        """Filters run in ascending filter priority, whatever their processors' places
        in the chain; each sees what the one before it made."""
        self.chain(Answers, Shout, Tag)
        event = self.say("hi")
        self.assertEqual(self.sent(), ["[HELLO]"])
        self.assertEqual(SEEN, [("tag", "hello", "message"), ("shout", "[hello]", "message")])
        # The event holds what was sent.
        self.assertEqual([r.text for r in event.responses], ["[HELLO]"])

    def test_ties_in_chain_order(self):
        """Filters of equal priority run in chain order."""

        class A(Processor):
            priority = 1

            @outgoing()
            def a(self, response, event):
                return response.replace(text=response.text + "a")

        class B(Processor):
            priority = 2

            @outgoing()
            def b(self, response, event):
                return response.replace(text=response.text + "b")

        self.chain(Answers, B, A)
        self.say("hi")
        self.assertEqual(self.sent(), ["helloab"])

    def test_split_and_drop(self):
        """A filter may split a reply (the next filters see each part) or drop it."""
        self.chain(Answers, Shout, Tag)
        self.say("twice")
        self.assertEqual(self.sent(), ["ONE-A", "ONE-B", "[TWO]"])
        self.say("secret")
        self.assertEqual(self.sent(), ["ONE-A", "ONE-B", "[TWO]"])
        tally = self.dispatcher.stats.filters["testing.Tag.tag"]
        self.assertEqual((tally.seen, tally.changed, tally.dropped, tally.failed), (3, 2, 1, 0))
        self.assertEqual(self.dispatcher.stats.filters["testing.Shout.shout"].seen, 3)

    def test_failing_filter_sends(self):
        """A filter that raises is logged with its traceback and counted; by default the
        reply goes on, as the filter got it, to the next filters and the source."""
        self.chain(Answers, Broken, Shout)
        self.say("hi")
        self.assertEqual(self.sent(), ["HELLO"])
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)
        tally = self.dispatcher.stats.filters["testing.Broken.broken"]
        self.assertEqual((tally.seen, tally.failed, tally.dropped), (1, 1, 0))

    def test_failing_guard_drops(self):
        """A filter declared on_error='drop' that raises drops the reply (counted); the
        replies it passes go on."""

        class Digits(Processor):
            addressed = False

            @match("digits")
            def digits(self, event):
                event.addresponse("code 42")

        self.chain(Answers, Digits, Guard)
        self.say("hi")
        self.say("digits")
        self.assertEqual(self.sent(), ["hello"])
        self.assertEqual(len(self.flushLoggedErrors(ValueError)), 1)
        tally = self.dispatcher.stats.filters["testing.Guard.guard"]
        self.assertEqual((tally.seen, tally.failed, tally.dropped), (2, 1, 1))

    def test_junk_is_a_failure(self):
        """A filter returning what is not a reply with text fails (the reply goes on)."""
        self.chain(Answers, Junk)
        self.say("hi")
        self.assertEqual(self.sent(), ["hello"])
        self.assertEqual(len(self.flushLoggedErrors(TypeError)), 1)
        self.assertEqual(self.dispatcher.stats.filters["testing.Junk.junk"].failed, 1)

    def test_acknowledgements_worded_first(self):
        """Filters only see text: a True left unworded is worded before them."""

        class Ack(Processor):
            addressed = False

            @handler
            def ack(self, event):
                event.addresponse(True)

        self.chain(Ack, Shout)
        self.say("anything")
        self.assertEqual(self.sent(), ["OKAY"])
        self.flushWarnings()

    def test_notices_still_unanswered(self):
        """A reply to a notice is dropped before any filter sees it."""
        self.chain(Answers, Shout)
        self.say("hi", type=EventType.NOTICE)
        self.assertEqual((self.sent(), SEEN), ([], []))

    def test_filter_only_processor_not_a_step(self):
        """A processor with only a filter is no step of the chain and makes no event
        wanted (sources may still leave chatter out)."""
        self.chain(Shout)
        chain = self.dispatcher.chain
        self.assertEqual(chain.steps("message"), ())
        self.assertFalse(chain.wants(message("chatter", public=True, addressed=False), False))
        self.assertEqual([f.name for f in chain.filters()], ["testing.Shout.shout"])

    def test_bad_declarations(self):
        """A filter's priority is an integer and on_error is send or drop."""
        self.assertRaises(TypeError, outgoing, priority="1")
        self.assertRaises(TypeError, outgoing, priority=True)
        self.assertRaises(ValueError, outgoing, on_error="ignore")


class PathTests(FilterTestCase):
    """Every path a reply reaches a source by goes through the filters."""

    def test_call_later_reply(self):
        """A call_later's reply is filtered when it is sent."""
        self.chain(Answers, Shout)
        self.say("later")
        self.assertEqual(self.sent(), [])
        self.reactor.advance(5)
        self.assertEqual(self.sent(), ["LATE HELLO"])
        self.assertEqual(SEEN, [("shout", "late hello", "delayed")])

    def test_periodic_reply(self):
        """A periodic task's reply is filtered."""
        self.chain(Tick, Shout)
        self.reactor.advance(60)
        self.assertEqual(self.sent(), ["TICK"])
        self.assertEqual(SEEN, [("shout", "tick", "periodic")])

    def test_background_reply(self):
        """A background processor's reply (sent after the chain's) is filtered."""
        self.chain(Answers, Later, Shout)
        self.say("hi")
        self.assertEqual(self.sent(), ["HELLO", "BACKGROUND HELLO"])

    def test_reactor_say(self):
        """A reactor's say action is filtered, Format included (here: truncated to the
        source's limit, which the chain's Format never did for it)."""
        self.source.truncation = 10
        self.chain(Format, Shout)
        say = Say(
            "announce",
            "deployed {data.version} to {data.env}",
            "test",
            "#ops",
            self.dispatcher.route,
        )
        reactors = self.context.reactors
        reactors.add(Reactor("announce", frozenset({"deploy"}), say))
        event = Event(source="ci", type="deploy", data={"env": "prod", "version": "1.2"})
        self.successResultOf(self.dispatcher.publish(event))
        (sent,) = self.sent()
        self.assertTrue(sent.startswith("DEPLOY") and sent.endswith("…"), sent)
        self.assertLessEqual(len(sent.encode()), 10)
        self.assertEqual(SEEN, [("shout", "deployed 1.2 to prod", "reactor")])

    def test_bot_send(self):
        """bot.send (plugin code, a bridge) goes through the filters, with a carrier
        event of type 'outgoing' on the reply's source and target."""
        self.chain(Shout)
        self.context.send(Response("hello", source="test", target="#ops"))
        self.assertEqual([(r.target, r.text) for r in self.source.sent], [("#ops", "HELLO")])
        self.assertEqual(SEEN, [("shout", "hello", OUTGOING)])

    def test_send_from_a_worker_thread(self):
        """bot.send from a worker thread sends on the reactor thread."""
        import threading

        self.chain(Shout)
        done = threading.Event()
        calls = []
        self.reactor.callFromThread = lambda f, *a, **kw: calls.append((f, a, kw))  # type: ignore[method-assign]
        thread = threading.Thread(
            target=lambda: (
                self.context.send(Response("x", source="test", target="#o")),
                done.set(),
            )
        )
        thread.start()
        thread.join(10)
        self.assertTrue(done.is_set())
        self.assertEqual(self.sent(), [])
        for f, a, kw in calls:
            f(*a, **kw)
        self.assertEqual(self.sent(), ["X"])

    def test_rerouted_by_a_filter(self):
        """A filter may send a reply to another source (a bridge's copy)."""
        other = MemorySource("other", self.context)
        self.context.add_source(other)

        class Copy(Processor):
            @outgoing()
            def copy(self, response, event):
                if response.source != "test":
                    return response
                return [response, response.replace(source="other", target="#mirror")]

        self.chain(Answers, Copy)
        self.say("hi")
        self.assertEqual(self.sent(), ["hello"])
        self.assertEqual([(r.target, r.text) for r in other.sent], [("#mirror", "hello")])


class FormatFilterTests(FilterTestCase):
    def test_format_is_a_filter(self):
        """Format is an outgoing filter, not a step of the chain; filters before it see
        the reply as made, those after it what the source gets."""
        self.assertEqual(Format("core", self.context).match_starts(), ())
        self.source.supports = frozenset()  # no multi-line, no actions

        class Before(Processor):
            @outgoing(priority=Priority.FORMAT - 1)
            def before(self, response, event):
                SEEN.append(("before", response.text, event.type))
                return response

        class After(Processor):
            @outgoing(priority=Priority.FORMAT + 1)
            def after(self, response, event):
                SEEN.append(("after", response.text, event.type))
                return response

        class Lines(Processor):
            addressed = False

            @handler
            def lines(self, event):
                event.addresponse("a\nb", action=True)

        self.chain(Lines, After, Format, Before)
        self.say("go")
        self.assertEqual(self.sent(), ["*a b*"])
        self.assertEqual(SEEN, [("before", "a\nb", "message"), ("after", "*a b*", "message")])
        self.assertEqual(self.dispatcher.stats.filters["testing.Format.fit"].changed, 1)


class OutgoingUnitTests(SynchronousTestCase):
    def test_stops_when_all_dropped(self):
        """Once every reply is dropped, the later filters are not called."""
        from botcore.bus.stats import BusStats

        calls = []
        pipeline = Outgoing(BusStats(), clock=lambda: 0.0)
        filters = (
            OutgoingFilter("drop", 0, lambda r, e: None),
            OutgoingFilter("later", 1, lambda r, e: calls.append(r) or r),
        )
        self.assertEqual(pipeline.run(Response("x"), Event(source="s", type="t"), filters), [])
        self.assertEqual(calls, [])
        self.assertNotIn("later", pipeline.stats.filters)


FILTERED = """
from botcore.processor import Processor, match, outgoing


class Filtered(Processor):
    addressed = False

    @match("hi")
    def hi(self, event):
        event.addresponse("hello")

    @outgoing()
    def mark(self, response, event):
        return response.replace(text=response.text + " (filter v@VERSION@)")
"""


class FilterReloadTests(ReloadCase):
    prefix = "fl"

    def test_filters_follow_reloads(self):
        """A reload replaces a plugin's filters with its new code, with its processors;
        an unload takes them away."""
        name = self.plugin_name("filtered")
        self.write(f"{name}.py", FILTERED.replace("@VERSION@", "1"))
        bot = self.make_bot([name])
        self.assertEqual(self.ask("hi"), ["hello (filter v1)"])
        self.write(f"{name}.py", FILTERED.replace("@VERSION@", "2"))
        self.successResultOf(bot.plugins.reload_plugin(name))
        self.assertEqual(self.ask("hi"), ["hello (filter v2)"])
        bot.send(Response("plain", source="test", target="#x"))
        self.assertEqual(self.source.sent[-1].text, "plain (filter v2)")
        bot.plugins.unload_plugin(name)
        bot.send(Response("plain", source="test", target="#x"))
        self.assertEqual(self.source.sent[-1].text, "plain")
        self.assertEqual(self.errors, [])
        stats = bot.dispatcher.stats.filters
        self.assertEqual(stats[f"{name}.Filtered.mark"].seen, 3)
