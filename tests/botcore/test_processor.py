"""Tests for botcore.processor: @match selectors, @handler, @authorise, @periodic, config
overrides, the cheap accepts() checks and the priority bands."""

from __future__ import annotations

from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from botcore.accounts.permissions import Permissions
from botcore.event import Event, EventType, Message, Sender
from botcore.options import FloatOption, Option
from botcore.processor import (
    Priority,
    Processor,
    ProcessorOverrides,
    authorise,
    compile_selector,
    handler,
    match,
    periodic,
)
from botcore.testing import StubContext


def message(text: str, **kw) -> Event:
    kw.setdefault("addressed", True)
    kw.setdefault("sender", Sender("irc", "alice", "alice"))
    kw.setdefault("channel", "#c")
    return Event(source="irc", type=EventType.MESSAGE, message=text, **kw)


def stub_bot(**auth_config) -> StubContext:
    """A bot for one processor: a stub context on a clock whose Permissions are built
    from ``auth_config`` (an ``[auth]`` section)."""
    return StubContext(reactor=Clock(), auth=Permissions(auth_config))


def groups(selector: str, text: str, simple: bool = True):
    """The groups a selector captures from text, or None when it does not match."""
    found = compile_selector(selector, simple).match(text)
    if found is None:
        return None
    return found.groupdict() if found.re.groupindex else found.groups()


class SelectorTests(SynchronousTestCase):
    """compile_selector: the Ibid-style selectors."""

    def test_any(self):
        """{any} takes one or more of any character, spaces included."""
        self.assertEqual(groups("say {any}", "say a b  c"), ("a b  c",))
        self.assertIsNone(groups("say {any}", "say "))

    def test_chunk(self):
        """{chunk} takes a run of non-space characters."""
        self.assertEqual(groups("give {chunk}", "give x-1!"), ("x-1!",))
        self.assertIsNone(groups("give {chunk}", "give a b"))

    def test_digits(self):
        """{digits} takes digits only."""
        self.assertEqual(groups("roll {digits}", "roll 42"), ("42",))
        self.assertIsNone(groups("roll {digits}", "roll 4.2"))
        self.assertIsNone(groups("roll {digits}", "roll -4"))

    def test_number(self):
        """{number} takes integers and decimals."""
        for text in ("3", "3.14", ".5"):
            self.assertEqual(groups("pi {number}", "pi " + text), (text,))
        self.assertIsNone(groups("pi {number}", "pi 1.2.3"))
        self.assertIsNone(groups("pi {number}", "pi three"))

    def test_word(self):
        """{word} takes word characters (letters, digits, underscore)."""
        self.assertEqual(groups("hi {word}", "hi bob_2"), ("bob_2",))
        self.assertIsNone(groups("hi {word}", "hi bob-2"))

    def test_alpha(self):
        """{alpha} takes letters only."""
        self.assertEqual(groups("hi {alpha}", "hi Bob"), ("Bob",))
        self.assertIsNone(groups("hi {alpha}", "hi bob2"))

    def test_url(self):
        """{url} takes scheme:// and www. addresses."""
        for url in ("http://example.org/a?b=c", "HTTPS://x.y", "www.example.com/p"):
            self.assertEqual(groups("see {url}", "see " + url), (url,))
        self.assertIsNone(groups("see {url}", "see example.com"))

    def test_named(self):
        """{name:kind} becomes a named group."""
        self.assertEqual(
            groups("{who:chunk} owes {amount:number}", "bob owes 2.5"),
            {"who": "bob", "amount": "2.5"},
        )

    def test_anchored(self):
        """A selector matches the whole text, not a part of it."""
        self.assertIsNotNone(groups("hello", "hello"))
        self.assertIsNone(groups("hello", "say hello"))
        self.assertIsNone(groups("hello", "hello there"))
        self.assertIsNone(groups("hello", "hello\n"))

    def test_alternation_anchored(self):
        """Each alternative of a selector must match the whole text."""
        self.assertIsNotNone(groups("yes|no", "no"))
        self.assertIsNone(groups("yes|no", "yes please"))
        self.assertIsNone(groups("yes|no", "oh no"))

    def test_case_insensitive(self):
        """Matching ignores case."""
        self.assertEqual(groups("Hello {word}", "hELLO World"), ("World",))

    def test_spaces(self):
        """A space (or run of spaces) in a selector matches any run of whitespace."""
        self.assertEqual(groups("give  {chunk} to {chunk}", "give \t x  to\ny"), ("x", "y"))
        self.assertIsNone(groups("give {chunk}", "givex"))

    def test_surrounding_space_ignored(self):
        """Space around the selector is not required in the text."""
        self.assertIsNotNone(groups("  ping  ", "ping"))

    def test_raw_regex(self):
        """With simple=False the selector is a regex used as written (from the start)."""
        self.assertEqual(groups(r"(\d+) apples?", "3 apples and more", simple=False), ("3",))
        self.assertIsNone(groups(r"{any}", "anything", simple=False))
        self.assertIsNone(groups(r"\d+", "a1", simple=False))


class Greeter(Processor):
    priority = 10
    usage = "hello NAME"

    def __init__(self, *args, **kw):
        super().__init__(*args, **kw)
        self.calls = []

    @match("hello {chunk}")
    def hello(self, event, who):
        self.calls.append(("hello", who))
        event.addresponse("hi %s", who)

    @match("{a:digits} plus {b:digits}")
    def plus(self, event, a, b):
        self.calls.append(("plus", a, b))

    @match("set {key:word} to {any}")
    def set(self, event, value, key):
        self.calls.append(("set", key, value))

    @match("raw only", version="raw")
    def raw(self, event):
        self.calls.append(("raw",))


class HandlerTests(SynchronousTestCase):
    """@match and @handler dispatch in Processor.process."""

    def test_positional_groups(self):
        """Unnamed groups become positional arguments."""
        greeter = Greeter("greet", stub_bot())
        event = message("hello bob")
        greeter.process(event)
        self.assertEqual(greeter.calls, [("hello", "bob")])
        self.assertEqual([r.text for r in event.responses], ["hi bob"])

    def test_named_groups(self):
        """Named groups become keyword arguments."""
        greeter = Greeter("greet", stub_bot())
        greeter.process(message("1 plus 2"))
        self.assertEqual(greeter.calls, [("plus", "1", "2")])

    def test_mixed_groups(self):
        """Named and unnamed groups together: keywords and positionals, none lost."""
        greeter = Greeter("greet", stub_bot())
        greeter.process(message("set colour to dark red"))
        self.assertEqual(greeter.calls, [("set", "colour", "dark red")])

    def test_no_match(self):
        """A message matching no selector calls nothing."""
        greeter = Greeter("greet", stub_bot())
        greeter.process(message("goodbye"))
        self.assertEqual(greeter.calls, [])

    def test_version(self):
        """version= selects the message variant the selector is matched against."""
        greeter = Greeter("greet", stub_bot())
        event = message("x")
        event.message = Message("bot: RAW ONLY", clean="hello clean", deaddressed="raw only")
        greeter.process(event)
        self.assertEqual(greeter.calls, [("hello", "clean")])
        event.message = Message("raw only", clean="something else")
        greeter.process(event)
        self.assertEqual(greeter.calls, [("hello", "clean"), ("raw",)])

    def test_bad_version(self):
        """An unknown message variant is refused when the plugin is defined."""
        self.assertRaises(ValueError, match, "x", version="cleaned")

    def test_no_message(self):
        """@match handlers are skipped for events without a message."""
        greeter = Greeter("greet", stub_bot())
        greeter.process(Event(source="irc", type=EventType.MESSAGE))
        self.assertEqual(greeter.calls, [])

    def test_handler_sees_every_event(self):
        """@handler methods run for every event, message or not, in definition order."""

        class Both(Processor):
            event_types = None

            def __init__(self, *a, **kw):
                super().__init__(*a, **kw)
                self.seen = []

            @handler
            def first(self, event):
                self.seen.append(("first", event.type))

            @match("ping")
            def ping(self, event):
                self.seen.append(("ping", event.type))

            @handler
            def last(self, event):
                self.seen.append(("last", event.type))

        both = Both("both", stub_bot())
        both.process(Event(source="s", type=EventType.STATE))
        both.process(message("ping"))
        self.assertEqual(
            both.seen,
            [
                ("first", "state"),
                ("last", "state"),
                ("first", "message"),
                ("ping", "message"),
                ("last", "message"),
            ],
        )

    def test_override_without_decorator(self):
        """A subclass method overriding a handler without the decorator is not a handler."""

        class Quiet(Greeter):
            def hello(self, event, who):
                raise AssertionError("not a handler any more")

        quiet = Quiet("quiet", stub_bot())
        quiet.process(message("hello bob"))
        quiet.process(message("1 plus 1"))
        self.assertEqual(quiet.calls, [("plus", "1", "1")])

    def test_inherited_handlers(self):
        """Handlers are inherited; a re-decorated override replaces the base's selector."""

        class Loud(Greeter):
            @match("HELLO! {chunk}")
            def hello(self, event, who):
                self.calls.append(("loud", who))

        loud = Loud("loud", stub_bot())
        loud.process(message("hello bob"))
        loud.process(message("hello! bob"))
        loud.process(message("2 plus 2"))
        self.assertEqual(loud.calls, [("loud", "bob"), ("plus", "2", "2")])


class Admin(Processor):
    permission = "admin"

    def __init__(self, *a, **kw):
        super().__init__(*a, **kw)
        self.ran = []

    @authorise()
    @match("restart")
    def restart(self, event):
        self.ran.append("restart")

    @match("shutdown")
    @authorise(fallthrough=False)
    def shutdown_bot(self, event):
        self.ran.append("shutdown")

    @authorise(permission="ops")
    @match("kick {chunk}")
    def kick(self, event, who):
        self.ran.append("kick " + who)

    @authorise()
    @handler
    def audit(self, event):
        self.ran.append("audit")


class AuthoriseTests(SynchronousTestCase):
    """@authorise guarding handlers."""

    def test_allowed(self):
        """A sender with the permission runs the handler, and no complaint is made."""
        admin = Admin("admin", stub_bot(permissions=["+admin"]))
        event = message("restart")
        admin.process(event)
        self.assertEqual(admin.ran, ["restart", "audit"])
        self.assertIsNone(event.complain)

    def test_refused_fallthrough(self):
        """A refusal complains 'notauthed' but leaves the event to later processors."""
        admin = Admin("admin", stub_bot())
        event = message("restart")
        admin.process(event)
        self.assertEqual(admin.ran, [])
        self.assertEqual(event.complain, "notauthed")
        self.assertFalse(event.processed)

    def test_refused_no_fallthrough(self):
        """With fallthrough=False a refusal also marks the event processed."""
        admin = Admin("admin", stub_bot())
        event = message("shutdown")
        admin.process(event)
        self.assertEqual(admin.ran, [])
        self.assertEqual(event.complain, "notauthed")
        self.assertTrue(event.processed)

    def test_own_permission(self):
        """permission= on the decorator is checked instead of the processor's."""
        admin = Admin("admin", stub_bot(permissions=["+admin"]))
        event = message("kick bob")
        admin.process(event)
        self.assertEqual((admin.ran, event.complain), (["audit"], "notauthed"))
        admin = Admin("admin", stub_bot(permissions=["+ops"]))
        admin.process(message("kick bob"))
        self.assertEqual(admin.ran, ["kick bob"])

    def test_needs_authentication(self):
        """A plain 'perm' grant needs an authenticated sender."""
        admin = Admin("admin", stub_bot(permissions=["admin"]))
        admin.process(message("restart"))
        self.assertEqual(admin.ran, [])
        admin.process(message("restart", authenticated=True))
        self.assertEqual(admin.ran, ["restart", "audit"])

    def test_no_permission_set(self):
        """A processor without a permission refuses its @authorise handlers."""

        class Careless(Processor):
            @authorise()
            @match("go")
            def go(self, event):
                raise AssertionError("must not run")

        event = message("go")
        Careless("c", stub_bot(permissions=["+admin"])).process(event)
        self.assertEqual(event.complain, "notauthed")

    def test_authorised(self):
        """authorised() checks a permission directly."""
        admin = Admin("admin", stub_bot(permissions=["+admin", "-ops"]))
        self.assertTrue(admin.authorised(message("x"), "admin"))
        self.assertFalse(admin.authorised(message("x"), "ops"))
        self.assertFalse(admin.authorised(message("x"), None))


class Configured(Processor):
    priority = 100
    addressed = True
    processed = False
    greeting = Option("What to say.", "hi")
    interval = FloatOption("Seconds between ticks.", 60.0)


class OverrideTests(SynchronousTestCase):
    """Plugin-section overrides and options."""

    def test_overrides(self):
        """addressed, priority and processed from the plugin section replace the class's."""
        processor = Configured(
            "p", stub_bot(), {"addressed": False, "priority": -5, "processed": True}
        )
        self.assertEqual(
            (processor.addressed, processor.priority, processor.processed), (False, -5, True)
        )
        self.assertEqual(
            (Configured.addressed, Configured.priority, Configured.processed), (True, 100, False)
        )

    def test_absent_overrides(self):
        """Without overrides (or with None values) the class's settings stay."""
        processor = Configured("p", stub_bot(), {"priority": None})
        self.assertEqual(
            (processor.addressed, processor.priority, processor.processed), (True, 100, False)
        )

    def test_reapplied(self):
        """apply_overrides follows a new config, restoring the class's value for a removed
        override."""
        processor = Configured("p", stub_bot(), {"priority": -5, "addressed": False})
        processor.config = {"priority": 7}
        processor.apply_overrides()
        self.assertEqual((processor.priority, processor.addressed), (7, True))

    def test_options_read_config(self):
        """A processor's options read its plugin section."""
        self.assertEqual(Configured("p", stub_bot(), {"greeting": "yo"}).greeting, "yo")
        self.assertEqual(Configured("p", stub_bot()).greeting, "hi")

    def test_options(self):
        """options() lists the processor's own options."""
        self.assertEqual(sorted(Configured.options()), ["greeting", "interval"])

    def test_config_is_copied(self):
        """The processor keeps its own copy of the section."""
        section = {"greeting": "yo"}
        processor = Configured("p", stub_bot(), section)
        section["greeting"] = "changed"
        self.assertEqual(processor.greeting, "yo")


class AcceptsTests(SynchronousTestCase):
    """accepts(): type, addressed and processed checks."""

    def test_type(self):
        """Only the processor's event types are accepted; None means every type."""
        self.assertTrue(Processor("p", stub_bot()).accepts(message("x")))
        self.assertFalse(
            Processor("p", stub_bot()).accepts(Event(source="s", type=EventType.STATE))
        )

        class Everything(Processor):
            event_types = None
            addressed = False

        self.assertTrue(
            Everything("p", stub_bot()).accepts(Event(source="s", type=EventType.STATE))
        )

    def test_event_types_frozen(self):
        """An instance's event_types is a frozenset."""
        self.assertEqual(Processor("p", stub_bot()).event_types, frozenset({EventType.MESSAGE}))

    def test_addressed(self):
        """An addressed processor ignores unaddressed events; an unaddressed one takes both."""
        self.assertFalse(Processor("p", stub_bot()).accepts(message("x", addressed=False)))
        loose = Processor("p", stub_bot(), {"addressed": False})
        self.assertTrue(loose.accepts(message("x", addressed=False)))
        self.assertTrue(loose.accepts(message("x")))

    def test_processed(self):
        """Processed events are skipped unless the processor asks for them."""
        event = message("x")
        event.processed = True
        self.assertFalse(Processor("p", stub_bot()).accepts(event))
        self.assertTrue(Processor("p", stub_bot(), {"processed": True}).accepts(event))


class Ticking(Processor):
    every = FloatOption("Seconds between checks.", 30.0)

    @periodic(interval=10)
    def fixed(self, event):
        pass

    @periodic(config_key="every", initial_delay=0)
    def configured(self, event):
        pass


class PeriodicTests(SynchronousTestCase):
    """@periodic declarations."""

    def test_needs_interval(self):
        """@periodic without an interval or config_key is a TypeError."""
        self.assertRaises(TypeError, periodic)

    def test_tasks(self):
        """periodic_tasks gives method, interval and first delay (default: one interval)."""
        ticking = Ticking("t", stub_bot())
        self.assertEqual(
            ticking.periodic_tasks(),
            [(ticking.fixed, 10.0, 10.0), (ticking.configured, 30.0, 0.0)],
        )

    def test_config_key(self):
        """A config_key interval is read from the plugin section; 0 disables the task."""
        self.assertEqual(Ticking("t", stub_bot(), {"every": 5.0}).periodic_tasks()[1][1], 5.0)
        ticking = Ticking("t", stub_bot(), {"every": 0.0})
        self.assertEqual(ticking.periodic_tasks(), [(ticking.fixed, 10.0, 10.0)])


class PriorityTests(SynchronousTestCase):
    """The priority bands and the named slots in them."""

    def test_bands(self):
        """pre, work and post follow each other without a gap, from -2000 to 2000."""
        pre, work, post = Priority.BANDS
        self.assertEqual((pre.low, pre.high), (-2000, -1000))
        self.assertEqual((work.low, work.high), (-999, 999))
        self.assertEqual((post.low, post.high), (1000, 2000))
        self.assertEqual((Priority.LOWEST, Priority.HIGHEST), (-2000, 2000))
        self.assertEqual(str(work), "work -999..999")

    def test_band_of(self):
        """band_of names the band of a priority, None outside them (and for what is not
        an integer)."""
        self.assertIs(Priority.band_of(-2000), Priority.PRE)
        self.assertIs(Priority.band_of(-1000), Priority.PRE)
        self.assertIs(Priority.band_of(-999), Priority.WORK)
        self.assertIs(Priority.band_of(999), Priority.WORK)
        self.assertIs(Priority.band_of(1000), Priority.POST)
        self.assertIs(Priority.band_of(2000), Priority.POST)
        for outside in (-2001, 2001, 10000, 1.5, None, "0", True):
            self.assertIsNone(Priority.band_of(outside), outside)

    def test_slots(self):
        """The named slots are in their bands and in the order the chain needs."""
        pre = ["SECRETS", "STRIP", "IDENTIFY", "IGNORE", "ADDRESSED", "RATELIMIT"]
        work = ["WATCH", "EARLY", "COMMANDS", "FALLBACK", "LEARN", "LATE"]
        post = ["COMPLAIN", "RECORD", "ADDRESS", "FORMAT", "LAST"]
        for band, names in ((Priority.PRE, pre), (Priority.WORK, work), (Priority.POST, post)):
            for name in names:
                self.assertIs(Priority.band_of(getattr(Priority, name)), band, name)
        values = [getattr(Priority, name) for name in pre + work + post]
        self.assertEqual(values, sorted(set(values)))
        self.assertEqual(Processor.priority, Priority.COMMANDS)

    def test_check(self):
        """check() accepts a priority in a band and refuses any other with an error that
        names the processor, its priority and the bands."""
        Priority.check(Configured("p", stub_bot(), {"priority": Priority.LAST}))
        with self.assertRaises(ValueError) as caught:
            Priority.check(Configured("myplugin", stub_bot(), {"priority": 2001}))
        self.assertEqual(
            str(caught.exception),
            "processor myplugin.Configured has priority 2001, outside the bands "
            "(pre -2000..-1000, work -999..999, post 1000..2000)",
        )

    def test_override_bounded(self):
        """The plugin section's priority override is bounded by the bands."""
        option = ProcessorOverrides.priority
        self.assertEqual(option.parse("-2000"), -2000)
        self.assertRaises(ValueError, option.parse, "2001")
        self.assertRaises(ValueError, option.parse, "-2001")
