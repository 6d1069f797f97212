"""Tests for the dispatch fast path: the first characters a ``@match`` regex can start with,
the chain's runs of match-only processors (against running every processor), the worker pool."""

from __future__ import annotations

import re
import string
import threading
import time
from queue import Empty, SimpleQueue
from typing import TYPE_CHECKING, Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from twisted.internet.task import Clock
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase

from botcore.dispatch.chain import Chain, MatchRun
from botcore.dispatch.dispatcher import Dispatcher
from botcore.dispatch.workers import WorkerPool
from botcore.event import Event, EventType, Message, Sender
from botcore.processor import (
    Processor,
    authorise,
    compile_selector,
    first_characters,
    handler,
    match,
)
from botcore.testing import InlineReactor, InlineThreadPool, ManualThreadPool, StubContext

if TYPE_CHECKING:
    from botcore.interfaces import IBotContext

# Characters that match each other case-blind in Python's re (IGNORECASE | UNICODE) beyond
# plain upper/lower: the dotted and dotless i, the Kelvin sign, the long s, the micro sign.
FOLDS = ("iIİ\u0131", "kK\u212a", "sS\u017f", "éÉ", "ßẞ", "µμΜ")
SPECIALS = "éÉßẞ\u017f\u212aİ\u0131µ"
ALPHABET = string.ascii_letters + string.digits + " _-.:/\t\n\x00" + SPECIALS

# Generous bounds on waits for real threads; they only matter when something is broken.
WAIT = 10.0


def variants(char: str) -> str:
    """Every character ``char`` may match case-blind (a superset is fine)."""
    for group in FOLDS:
        if char in group:
            return group
    swapped = char.swapcase()
    return char + swapped if len(swapped) == 1 and swapped != char else char


def allowed(first: frozenset[str] | None, text: str) -> bool:
    """Whether ``first`` lets ``text`` through: None lets everything through, and a text
    that starts beyond ASCII is always tried (first_characters speaks only for ASCII)."""
    if first is None:
        return True
    if not text:
        return False
    return not text[0].isascii() or text[0].lower() in first


def selector(text: str, simple: bool = True) -> frozenset[str] | None:
    return first_characters(compile_selector(text, simple))


def run_of(first: frozenset[str] | None, version: str = "clean") -> MatchRun:
    """A match run of one processor whose one handler can start with ``first``."""
    return MatchRun([(object(), ((version, first),))])


# -- random regexes ------------------------------------------------------------------------
#
# A regex is drawn as a tree; each node renders to regex source and draws texts that
# are likely to match it (case variants included), so the property check is not vacuous.

CLASSES = (
    ("[a-f]", "abcdefABCDEFg"),
    ("[A-Z0-9]", "aZ09kK\u212a\u017fİ!"),
    ("[^a]", "aAbé "),
    ("[sk]", "sS\u017fkK\u212ax"),
    ("[\u017f]", "sS\u017f"),
    ("[é-ë]", "éÉëËe"),
    ("[\\w]", "a_9é\u017f "),
    ("[i-k]", "iIİ\u0131jkK\u212al"),
    ("[\\x00-\\x7f]", "\x00a\u017f~"),
    ("[Z-a]", "zZaA[`_b"),
    ("\\s", " \t\n\u00a0a"),
    ("\\w", "aZ_9é\u017f\u212a!"),
    ("\\d", "05\u0663a"),
    (".", "a\n\u017f "),
)
LITERALS = string.ascii_letters[:6] + "ikszIKSZ09_-. " + SPECIALS
ANCHORS = ("^", "\\b", "\\A", "\\B")

leaves = st.one_of(
    st.sampled_from(LITERALS).map(lambda c: ("lit", c)),
    st.sampled_from(CLASSES).map(lambda c: ("cls", *c)),
    st.sampled_from(ANCHORS).map(lambda a: ("anchor", a)),
    st.just(("empty",)),
)


def _extend(children: st.SearchStrategy) -> st.SearchStrategy:
    pairs = st.tuples(children, children)
    ones = ("opt", "star", "plus", "rep", "lazy", "group", "backref", "atomic", "possess", "cs")
    twos = ("seq", "seq", "alt", "ahead", "notahead")
    return st.one_of(
        st.tuples(st.sampled_from(ones), children),
        st.tuples(st.sampled_from(twos), children, children),
        pairs.map(lambda p: ("seq", *p)),
    )


regex_trees = st.recursive(leaves, _extend, max_leaves=8)


def render(node: tuple, groups: list[int]) -> str:
    """Regex source of a tree; ``groups`` numbers the capturing groups as Python does."""
    kind = node[0]
    if kind == "lit":
        return re.escape(node[1])
    if kind == "cls":
        return node[1]
    if kind == "anchor":
        return node[1]
    if kind == "empty":
        return ""
    if kind in ("group", "backref"):
        groups.append(len(groups) + 1)
        number = len(groups)
        inner = render(node[1], groups)
        return f"({inner})" + (f"(?:\\{number})" if kind == "backref" else "")
    if kind in ("seq", "alt", "ahead", "notahead"):
        a, b = render(node[1], groups), render(node[2], groups)
        return {
            "seq": f"{a}{b}",
            "alt": f"(?:{a}|{b})",
            "ahead": f"(?={a}){b}",
            "notahead": f"(?!{a}){b}",
        }[kind]
    inner = render(node[1], groups)
    return {
        "opt": f"(?:{inner})?",
        "star": f"(?:{inner})*",
        "plus": f"(?:{inner})+",
        "rep": f"(?:{inner}){{0,2}}",
        "lazy": f"(?:{inner})+?",
        "atomic": f"(?>{inner})",
        "possess": f"(?:{inner})*+",
        "cs": f"(?-i:{inner})",
    }[kind]


def texts_of(node: tuple) -> st.SearchStrategy[str]:
    """Texts likely to match the tree's regex, with every case variant of each letter."""
    kind = node[0]
    if kind == "lit":
        return st.sampled_from(variants(node[1]))
    if kind == "cls":
        return st.sampled_from(node[2])
    if kind in ("anchor", "empty"):
        return st.just("")
    if kind in ("seq", "ahead", "notahead"):
        a, b = texts_of(node[1]), texts_of(node[2])
        both = st.tuples(a, b).map("".join)
        return st.one_of(both, b) if kind != "seq" else both
    if kind == "alt":
        return st.one_of(texts_of(node[1]), texts_of(node[2]))
    inner = texts_of(node[1])
    if kind == "backref":
        return st.tuples(inner, st.booleans()).map(
            lambda p: p[0] + (p[0].swapcase() if p[1] else p[0])
        )
    if kind in ("opt", "rep", "star", "possess"):
        return st.lists(inner, max_size=2).map("".join)
    if kind in ("plus", "lazy"):
        return st.lists(inner, min_size=1, max_size=2).map("".join)
    return inner


@st.composite
def regex_and_texts(draw: st.DrawFn) -> tuple[re.Pattern[str], list[str]]:
    tree = draw(regex_trees)
    try:
        pattern = compile_selector(render(tree, []), simple=False)
    except re.error:
        pattern = compile_selector("x", simple=False)
    samples = draw(st.lists(texts_of(tree), min_size=1, max_size=4))
    samples += draw(st.lists(st.text(ALPHABET, max_size=5), max_size=2))
    return pattern, with_first_variants(samples)


def with_first_variants(samples: list[str]) -> list[str]:
    """The texts, and each again with its first character swapped for every case variant."""
    out = []
    for text in samples:
        out.append(text)
        if text:
            out.extend(v + text[1:] for v in variants(text[0]) if v != text[0])
    return out


# Ibid-style selectors from realistic pieces, and texts built from the same pieces.
PIECES = {
    "start": None,
    "Stop": None,
    "kick": None,
    "info": None,
    "what is": None,
    "\u017ftart": None,
    "Éclair": None,
    "ßig": None,
    "\u212aelvin": None,
    "{any}": st.text(ALPHABET, min_size=1, max_size=4),
    "{word}": st.sampled_from(["ab", "é", "_9", "\u017fx"]),
    "{chunk}": st.sampled_from(["a.b", "\u017f", "!?"]),
    "{digits}": st.sampled_from(["12", "\u0663"]),
    "{number}": st.sampled_from(["1.5", ".5", "7"]),
    "{alpha}": st.sampled_from(["abc", "KX", "\u017f", "\u212a"]),
    "{url}": st.sampled_from(["http://a.b", "www.x.y", "\u017fftp://q"]),
    "{who:word}": st.sampled_from(["bob", "İnes"]),
    "(?:what is )?": st.sampled_from(["", "what is ", "WHAT IS ", "whaT i\u017f "]),
}


def _piece_text(piece: str) -> st.SearchStrategy[str]:
    strategy = PIECES[piece]
    if strategy is not None:
        return strategy
    return st.tuples(*(st.sampled_from(variants(c)) for c in piece)).map("".join)


@st.composite
def selector_and_texts(draw: st.DrawFn) -> tuple[re.Pattern[str], list[str]]:
    names = sorted(PIECES)
    branches = draw(
        st.lists(st.lists(st.sampled_from(names), min_size=1, max_size=3), min_size=1, max_size=2)
    )
    # A group name may appear once in a regex.
    seen = 0
    for branch in branches:
        for i, piece in enumerate(branch):
            if piece == "{who:word}":
                if seen:
                    branch[i] = "{word}"
                seen += 1
    source = "|".join(
        "".join(p if p.startswith("(?:") else p + " " for p in branch).strip()
        for branch in branches
    )
    pattern = compile_selector(source)
    samples = []
    for branch in branches:
        parts = [draw(_piece_text(p)) for p in branch]
        samples.append(" ".join(parts).replace("  ", " ").strip())
        samples.append("".join(parts))
    samples.append(draw(st.text(ALPHABET, max_size=6)))
    return pattern, with_first_variants(samples)


class FirstCharactersTests(SynchronousTestCase):
    """first_characters on hand-picked selectors."""

    def test_plain_word(self):
        """A word can only start with its first letter, case-blind."""
        self.assertEqual(selector("start"), {"s"})
        self.assertEqual(selector("Start"), {"s"})
        self.assertEqual(selector("START now {any}"), {"s"})

    def test_alternation(self):
        """Each branch of an alternation adds its own first letter."""
        self.assertEqual(selector("hello|Bye"), {"h", "b"})
        self.assertEqual(selector("(?:a|B|c)d", simple=False), {"a", "b", "c"})

    def test_optional_leading_group(self):
        """An optional leading group adds its letter to what follows it."""
        self.assertEqual(selector("(?:what is )?karma"), {"w", "k"})
        self.assertEqual(selector("(?:a|b)*c", simple=False), {"a", "b", "c"})
        self.assertEqual(selector("a?b", simple=False), {"a", "b"})

    def test_any_means_anything(self):
        """{any}, alone or behind an optional group, tells nothing (None)."""
        self.assertIsNone(selector("{any}"))
        self.assertIsNone(selector("(?:what is )?{any}"))
        for kind in ("word", "chunk", "digits", "number"):
            self.assertIsNone(selector(f"{{{kind}}} is great"))
        self.assertEqual(selector("what is {any}"), {"w"})

    def test_alpha_and_url(self):
        """{alpha} and {url} start with an ASCII letter (either case)."""
        self.assertEqual(selector("{alpha} x"), set(string.ascii_lowercase))
        self.assertEqual(selector("{url}"), set(string.ascii_lowercase))

    def test_non_ascii_letters(self):
        """A selector starting beyond ASCII tells nothing, whatever its case."""
        for text in (
            "Éclair",
            "éclair",
            "ßig",
            "\u017ftart",
            "\u212aelvin",
            "İnfo",
            "\u0131nfo",
            "µs",
        ):
            self.assertIsNone(selector(text), text)

    def test_kelvin_sign_and_k(self):
        """An ASCII k (either case) is {'k'}; the Kelvin sign is not ASCII: None."""
        self.assertEqual(selector("kelvin"), {"k"})
        self.assertEqual(selector("Kelvin"), {"k"})
        self.assertIsNone(selector("\u212aelvin"))

    def test_character_classes(self):
        """ASCII classes give their members in lower case; any other class tells nothing."""
        self.assertEqual(selector("[a-c]x", simple=False), {"a", "b", "c"})
        self.assertEqual(selector("[A-C]x", simple=False), {"a", "b", "c"})
        self.assertEqual(
            selector("[Z-a]", simple=False), {"z", "[", "\\", "]", "^", "_", "`", "a"}
        )
        for raw in ("[^a]x", "[\\w]x", "[a-é]", "[s\u017f]", "\\wx", "\\dx", ".x"):
            self.assertIsNone(selector(raw, simple=False), raw)

    def test_leading_whitespace(self):
        r"""A leading \s (or \s*) tells nothing."""
        self.assertIsNone(selector("\\s*hi", simple=False))
        self.assertIsNone(selector("\\shi", simple=False))
        self.assertIsNone(selector("\\s+hi", simple=False))

    def test_lookarounds(self):
        """Look-aheads and look-behinds tell nothing."""
        for raw in ("(?=a)\\w+", "(?!a)b", "(?<=x)a", "(?<!x)a"):
            self.assertIsNone(selector(raw, simple=False), raw)

    def test_backreferences(self):
        """A group's letter counts; a back reference first, or a conditional, tells nothing."""
        self.assertEqual(selector("(a)\\1", simple=False), {"a"})
        self.assertIsNone(selector("(a)?\\1b", simple=False))
        self.assertIsNone(selector("(?P<x>a)?(?P=x)b", simple=False))
        self.assertIsNone(selector("(a)?(?(1)b|c)", simple=False))

    def test_empty_matchable(self):
        """A regex that can match an empty text tells nothing."""
        for raw in ("a*", "(?:a|)", "a?", "", "(?:)", "\\b", "^", "(?:a|b)*"):
            self.assertIsNone(selector(raw, simple=False), raw)
        self.assertIsNone(selector(""))

    def test_anchors(self):
        r"""^, \A and \b take no character."""
        self.assertEqual(selector("^hi", simple=False), {"h"})
        self.assertEqual(selector("\\Ahi", simple=False), {"h"})
        self.assertEqual(selector("\\bhi", simple=False), {"h"})
        self.assertEqual(selector("^^\\b(?:hi)", simple=False), {"h"})

    def test_atomic_possessive_and_local_flags(self):
        """Atomic groups, possessive repeats and scoped flags are looked into."""
        self.assertEqual(selector("(?>ab)c", simple=False), {"a"})
        self.assertEqual(selector("a*+b", simple=False), {"a", "b"})
        self.assertEqual(selector("(?-i:Hi)", simple=False), {"h"})
        self.assertEqual(selector("(?x) h i", simple=False), {"h"})

    def test_nul_and_escapes(self):
        """Escaped ASCII counts by its value; NUL tells nothing."""
        self.assertEqual(selector("\\x41b", simple=False), {"a"})
        self.assertIsNone(selector("\\x00a", simple=False))

    def test_every_case_variant_of_every_letter(self):
        """Every BMP character matching an ASCII letter case-blind is let through."""
        bmp = "".join(map(chr, range(1, 0x10000)))
        for letter in string.ascii_letters:
            pattern = compile_selector(letter + "x", simple=False)
            first = first_characters(pattern)
            self.assertEqual(first, {letter.lower()})
            found = {c for c in bmp if pattern.match(c + "x")}
            self.assertTrue(all(allowed(first, c) for c in found), letter)
            self.assertLessEqual(
                {c for c in found if c.isascii()}, {letter.lower(), letter.upper()}
            )
        # The folds this relies on, so that a change in re is noticed.
        self.assertTrue(compile_selector("start").match("\u017ftart"))
        self.assertTrue(compile_selector("kick").match("\u212aICK"))
        self.assertTrue(compile_selector("info").match("İnfo"))
        self.assertTrue(compile_selector("info").match("\u0131nfo"))


class FirstCharactersPropertyTests(SynchronousTestCase):
    """No false negatives: whatever a pattern matches is let through."""

    def check(self, pattern: re.Pattern[str], samples: list[str]) -> None:
        first = first_characters(pattern)
        run = run_of(first)
        for text in samples:
            if pattern.match(text) is None:
                continue
            self.assertTrue(
                allowed(first, text), f"{pattern.pattern!r} matches {text!r} but first={first}"
            )
            self.assertEqual(run.candidates(Message(text)), (0,), (pattern.pattern, text))

    @settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(regex_and_texts())
    def test_random_regexes(self, case):
        """Random raw regexes: a text one matches always passes its first characters."""
        self.check(*case)

    @settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(selector_and_texts())
    def test_random_selectors(self, case):
        """Random Ibid-style selectors: a text one matches always passes."""
        self.check(*case)

    @settings(max_examples=200, deadline=None)
    @given(st.sampled_from(sorted(PIECES)), st.text(ALPHABET, min_size=1, max_size=6))
    def test_random_text_after_piece(self, piece, text):
        """A selector piece followed by anything: random texts that match pass."""
        pattern = compile_selector(piece + "{any}" if piece.startswith("(?:") else piece)
        self.check(pattern, with_first_variants([text, piece + text]))


# -- processors and chains -----------------------------------------------------------------


class ContextCase(SynchronousTestCase):
    """The processors' bot is ``self.context``, a stub (these tests never use it)."""

    def setUp(self) -> None:
        self.context = StubContext(reactor=InlineReactor())


class Hello(Processor):
    @match("hello {any}")
    def hello(self, event, rest):
        event.addresponse("hi " + rest)


class Raw(Processor):
    @match("[k-m]\\w*", version="raw", simple=False)
    def raw(self, event):
        event.addresponse("raw")


class Anything(Processor):
    @match("(?:what is )?{any}")
    def anything(self, event, what):
        event.addresponse("any")


class Always(Processor):
    @handler
    def always(self, event):
        event.addresponse("always")


class Mixed(Hello):
    @handler
    def also(self, event):
        pass


class OwnProcess(Hello):
    def process(self, event):
        super().process(event)


class OwnAccepts(Hello):
    def accepts(self, event):
        return super().accepts(event)


class Nothing(Processor):
    pass


class MatchStartsTests(ContextCase):
    """HandlerSpec.first and Processor.match_starts."""

    def test_handler_spec_first(self):
        """A @match handler's spec carries its first characters; @handler ones None."""
        self.assertEqual(Hello._handler_specs[0].first, {"h"})
        self.assertIsNone(Anything._handler_specs[0].first)
        self.assertIsNone(Always._handler_specs[0].first)

    def test_match_only(self):
        """A match-only processor gives (version, first) per handler."""
        self.assertEqual(Hello("h", self.context).match_starts(), (("clean", frozenset("h")),))
        self.assertEqual(Raw("r", self.context).match_starts(), (("raw", frozenset("klm")),))
        self.assertEqual(Anything("a", self.context).match_starts(), (("clean", None),))
        self.assertEqual(Nothing("n", self.context).match_starts(), ())

    def test_not_match_only(self):
        """@handler, an own process or accepts (class or instance) rule a processor out."""
        for cls in (Always, Mixed, OwnProcess, OwnAccepts):
            self.assertIsNone(cls(cls.__name__, self.context).match_starts(), cls)
        instance = Hello("h", self.context)
        instance.process = lambda event: None
        self.assertIsNone(instance.match_starts())
        instance = Hello("h", self.context)
        instance.accepts = lambda event: True
        self.assertIsNone(instance.match_starts())


class ChainStepsTests(ContextCase):
    """Chain.steps groups match-only processors and MatchRun skips those that cannot match."""

    def test_grouping(self):
        """Runs of match-only processors become MatchRuns; others stay as they are."""
        a, b, c, d = (
            Hello("a", self.context),
            Raw("b", self.context),
            Always("c", self.context),
            Anything("d", self.context),
        )
        steps = Chain([a, b, c, d]).steps(EventType.MESSAGE)
        self.assertEqual([type(s) for s in steps], [MatchRun, Always, MatchRun])
        self.assertEqual(steps[0].processors, (a, b))
        self.assertEqual(steps[2].processors, (d,))
        chain = Chain([a, c])
        self.assertIs(chain.steps(EventType.MESSAGE), chain.steps(EventType.MESSAGE))

    def test_candidates(self):
        """Only processors whose handlers could match the first character are candidates."""
        run = Chain(
            [Hello("a", self.context), Raw("b", self.context), Anything("c", self.context)]
        ).steps(EventType.MESSAGE)[0]
        self.assertEqual(run.candidates(Message("hello you")), (0, 2))
        self.assertEqual(run.candidates(Message("HELLO you")), (0, 2))
        self.assertEqual(run.candidates(Message("look", clean="hello")), (0, 1, 2))
        self.assertEqual(run.candidates(Message("zzz")), (2,))
        self.assertEqual(run.candidates(None), ())

    def test_non_ascii_tries_everyone(self):
        """A message starting beyond ASCII meets every processor of the run."""
        run = Chain([Hello("a", self.context), Raw("b", self.context)]).steps(EventType.MESSAGE)[0]
        for text in ("\u017ftart", "\u212aick", "İnfo", "éclair", "ßig"):
            self.assertEqual(run.candidates(Message(text)), (0, 1), text)

    def test_empty_message(self):
        """An empty message meets only processors that tell nothing."""
        run = Chain([Hello("a", self.context), Anything("b", self.context)]).steps(
            EventType.MESSAGE
        )[0]
        self.assertEqual(run.candidates(Message("")), (1,))

    def test_folded_commands_still_answer(self):
        """Commands matched only through case folding (long s, Kelvin sign, dotless i) answer."""

        class Commands(Processor):
            addressed = False

            @match("start")
            def start(self, event):
                event.addresponse("started")

            @match("kick {word}")
            def kick(self, event, who):
                event.addresponse("kicked " + who)

            @match("info")
            def info(self, event):
                event.addresponse("info")

        dispatcher = Dispatcher(reactor=InlineReactor(), threadpool=InlineThreadPool())
        dispatcher.set_chain(
            [Hello("h", self.context), Commands("c", self.context), Raw("r", self.context)]
        )
        dispatcher.startService()
        self.addCleanup(dispatcher.stopService)
        for text, reply in (
            ("\u017ftart", "started"),
            ("\u212aICK bob", "kicked bob"),
            ("İnfo", "info"),
            ("\u0131nfo", "info"),
            ("START", "started"),
        ):
            event = self.successResultOf(dispatcher.dispatch(message_event(text)))
            self.assertEqual([r.text for r in event.responses], [reply], text)


def message_event(text: str | None, addressed: bool = True, type: str = EventType.MESSAGE):
    return Event(
        source="irc",
        type=type,
        sender=Sender("irc", "alice", "alice"),
        channel="#a",
        addressed=addressed,
        message=text,
    )


# -- the chain against the naive loop ------------------------------------------------------

MESSAGES = (
    "start",
    "Start",
    "\u017ftart",
    "stop now",
    "kick bob",
    "\u212aICK bob",
    "info",
    "İnfo",
    "what is x",
    "x",
    " x",
    "",
    "9",
    "lemon",
)
SELECTORS = (
    ("start", True),
    ("stop {any}", True),
    ("kick {word}", True),
    ("info", True),
    ("{any}", True),
    ("(?:what is )?{any}", True),
    ("what is {word}", True),
    ("s{any}", True),
    ("x", True),
    ("[a-j]\\w*", False),
    ("\\s*x", False),
    ("(?=k)\\w+( \\w+)?", False),
    ("\u017f.*", False),
    ("\u212a.*", False),
    ("l(?:emon|ime)", False),
)
REWRITE = st.tuples(st.just("rewrite"), st.sampled_from(MESSAGES))
OPS = st.one_of(
    st.tuples(st.just("reply"), st.booleans()),
    REWRITE,
    REWRITE,
    st.tuples(st.just("replace"), st.sampled_from(MESSAGES)),
    st.tuples(st.just("processed"), st.booleans()),
    st.tuples(st.just("complain"), st.sampled_from(["a", "b"])),
    st.just(("raise",)),
    st.just(("drop",)),
)
HANDLER = st.fixed_dictionaries(
    {
        "selector": st.sampled_from(SELECTORS),
        "version": st.sampled_from(["clean", "clean", "raw"]),
        "ops": st.lists(OPS, min_size=1, max_size=3),
        "auth": st.sampled_from([None, None, True, False]),
    }
)
PROCESSOR = st.fixed_dictionaries(
    {
        "kind": st.sampled_from(["match", "match", "match", "handler", "mixed", "accepts"]),
        "priority": st.integers(0, 3),
        "addressed": st.booleans(),
        "processed": st.booleans(),
        "types": st.sampled_from([None, (EventType.MESSAGE,), (EventType.ACTION,)]),
        "handlers": st.lists(HANDLER, min_size=1, max_size=2),
        "ops": st.lists(OPS, max_size=2),
    }
)


def perform(event: Event, label: str, ops: list[tuple]) -> None:
    """Do what a generated handler does; the reply records what the handler saw."""
    seen = event.message.clean if event.message is not None else None
    for op in ops:
        if op[0] == "reply":
            event.addresponse(f"{label} saw {seen!r}", processed=op[1])
        elif op[0] == "rewrite" and event.message is not None:
            event.message.clean = op[1]
        elif op[0] == "replace":
            event.message = Message(op[1])
        elif op[0] == "processed":
            event.processed = op[1]
        elif op[0] == "complain":
            event.complain = op[1]
        elif op[0] == "raise":
            raise ZeroDivisionError(label)
        elif op[0] == "drop":
            event.message = None


def _method(label: str, ops: list[tuple]):
    def method(self, event, *args, **kw):
        perform(event, label, ops)

    return method


def build(index: int, spec: dict, bot: IBotContext) -> Processor:
    namespace: dict[str, Any] = {
        "priority": spec["priority"],
        "addressed": spec["addressed"],
        "processed": spec["processed"],
        "event_types": spec["types"],
    }
    for number, one in enumerate(spec["handlers"]):
        method = _method(f"p{index}.{number}", one["ops"])
        text, simple = one["selector"]
        method = match(text, version=one["version"], simple=simple)(method)
        if one["auth"] is not None:
            method = authorise(fallthrough=one["auth"])(method)
        namespace[f"m{number}"] = method
    if spec["kind"] in ("handler", "mixed"):
        namespace["h"] = handler(_method(f"p{index}.h", spec["ops"]))
    if spec["kind"] == "handler":
        namespace = {k: v for k, v in namespace.items() if not k.startswith("m")}
    if spec["kind"] == "accepts":
        namespace["accepts"] = lambda self, event: Processor.accepts(self, event)
    return type(f"Generated{index}", (Processor,), namespace)(f"p{index}", bot)


def naive(processors: list[Processor], event: Event) -> Event:
    """Every processor of the event's type, by priority, that accepts the event."""
    for processor in sorted(processors, key=lambda p: p.priority):
        if processor.event_types is not None and event.type not in processor.event_types:
            continue
        if processor.accepts(event):
            replies = len(event.responses)
            try:
                processor.process(event)
            except Exception:
                del event.responses[replies:]  # a failed processor's replies go with it
                event.complain = "exception"
    return event


def outcome(event: Event) -> tuple:
    message = event.message
    return (
        [(r.text, r.target, r.source) for r in event.responses],
        event.processed,
        event.complain,
        None if message is None else (message.raw, message.clean),
    )


class ChainEquivalenceTests(ContextCase):
    """The dispatcher's steps give exactly what running every processor would."""

    @settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(
        st.lists(PROCESSOR, min_size=1, max_size=8),
        st.sampled_from(MESSAGES),
        st.sampled_from(MESSAGES),
        st.booleans(),
        st.sampled_from([EventType.MESSAGE, EventType.MESSAGE, EventType.ACTION]),
    )
    def test_same_as_naive(self, specs, raw, clean, addressed, type):
        """Random chains and messages: same replies, order, processed, complain as naive."""
        processors = [build(index, spec, self.context) for index, spec in enumerate(specs)]

        def fresh() -> Event:
            event = message_event(None, addressed, type)
            event.message = Message(raw, clean=clean)
            return event

        dispatcher = Dispatcher(reactor=InlineReactor(), threadpool=InlineThreadPool())
        chain = Chain(processors)
        got = outcome(dispatcher.thd_process(fresh(), chain))
        again = outcome(dispatcher.thd_process(fresh(), chain))  # with the caches warm
        expected = outcome(naive(processors, fresh()))
        self.flushLoggedErrors(ZeroDivisionError)
        self.assertEqual(got, expected)
        self.assertEqual(again, expected)

    @settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(
        st.lists(
            st.tuples(
                st.sampled_from(SELECTORS),
                st.lists(st.sampled_from(MESSAGES), max_size=2),
                st.booleans(),
            ),
            min_size=2,
            max_size=10,
        ),
        st.sampled_from(MESSAGES),
    )
    def test_match_runs_rewriting(self, handlers, text):
        """A long match run whose handlers rewrite the message: same as the naive loop."""
        processors = []
        for index, (selector_, rewrites, done) in enumerate(handlers):
            ops = [("reply", done)] + [("rewrite", m) for m in rewrites]
            spec = {"selector": selector_, "version": "clean", "ops": ops, "auth": None}
            processors.append(
                build(
                    index,
                    {
                        "kind": "match",
                        "priority": 0,
                        "addressed": False,
                        "processed": index % 2 == 0,
                        "types": None,
                        "handlers": [spec],
                        "ops": [],
                    },
                    self.context,
                )
            )
        dispatcher = Dispatcher(reactor=InlineReactor(), threadpool=InlineThreadPool())
        chain = Chain(processors)
        self.assertEqual([type(s) for s in chain.steps(EventType.MESSAGE)], [MatchRun])
        got = outcome(dispatcher.thd_process(message_event(text), chain))
        self.assertEqual(got, outcome(naive(processors, message_event(text))))

    def test_rewrite_reaches_earlier_skipped_letter(self):
        """A rewrite lets a later, first-skipped processor run; earlier ones are not rerun."""

        class Rewrite(Processor):
            priority = 1

            @match("alpha")
            def rewrite(self, event):
                event.message.clean = "beta"
                event.addresponse("rewrote", processed=False)

        class Beta(Processor):
            @match("beta")
            def beta(self, event):
                event.addresponse("beta", processed=False)

        early, late = Beta("early", self.context), Beta("late", self.context)
        late.priority = 2
        processors = [early, Rewrite("r", self.context), late]
        dispatcher = Dispatcher(reactor=InlineReactor(), threadpool=InlineThreadPool())
        event = dispatcher.thd_process(message_event("alpha"), Chain(processors))
        self.assertEqual([r.text for r in event.responses], ["rewrote", "beta"])
        self.assertEqual(outcome(event), outcome(naive(processors, message_event("alpha"))))


# -- the worker pool -----------------------------------------------------------------------


class Results:
    """Collects ``onResult`` calls from worker threads, with the thread each came from."""

    def __init__(self) -> None:
        self.queue: SimpleQueue[tuple[bool, Any, str]] = SimpleQueue()

    def __call__(self, ok: bool, result: Any) -> None:
        self.queue.put((ok, result, threading.current_thread().name))

    def get(self) -> tuple[bool, Any, str]:
        return self.queue.get(timeout=WAIT)


def settle(pool: WorkerPool) -> None:
    """Wait (bounded) until every worker of ``pool`` is idle, waiting for work."""
    deadline = time.monotonic() + WAIT
    while pool._idle != len(pool._threads):
        if time.monotonic() > deadline:
            raise AssertionError("workers never became idle")
        time.sleep(0.001)


class WorkerPoolTests(SynchronousTestCase):
    """WorkerPool with real threads."""

    def pool(self, size: int) -> WorkerPool:
        pool = WorkerPool(size, name="fastpath")
        pool.start()
        self.addCleanup(self.stop, pool)
        return pool

    def stop(self, pool: WorkerPool) -> None:
        stopper = threading.Thread(target=pool.stop, daemon=True)
        stopper.start()
        stopper.join(WAIT)
        self.assertFalse(stopper.is_alive(), "stop() did not return")

    def test_start_stop(self):
        """start and stop flip ``started``; stopping a pool that never ran returns."""
        pool = WorkerPool(2, name="fastpath")
        self.assertFalse(pool.started)
        pool.start()
        self.assertTrue(pool.started)
        self.stop(pool)
        self.assertFalse(pool.started)

    def test_result(self):
        """The function's result reaches onResult(True, result), in a worker thread."""
        results = Results()
        pool = self.pool(2)
        pool.callInThreadWithCallback(results, lambda a, b=0: a + b, 40, b=2)
        ok, result, thread = results.get()
        self.assertEqual((ok, result), (True, 42))
        self.assertTrue(thread.startswith("fastpath-"))
        self.assertNotEqual(thread, threading.current_thread().name)

    def test_exception(self):
        """An exception reaches onResult(False, Failure)."""
        results = Results()
        pool = self.pool(1)

        def fail():
            raise ValueError("no")

        pool.callInThreadWithCallback(results, fail)
        ok, result, _ = results.get()
        self.assertFalse(ok)
        self.assertIsInstance(result, Failure)
        self.assertTrue(result.check(ValueError))

    def test_base_exception(self):
        """SystemExit reaches onResult as a Failure, and the worker keeps working."""
        results = Results()
        pool = self.pool(1)

        def leave():
            raise SystemExit(3)

        pool.callInThreadWithCallback(results, leave)
        ok, result, _ = results.get()
        self.assertFalse(ok)
        self.assertTrue(result.check(SystemExit))
        pool.callInThreadWithCallback(results, lambda: "still here")
        self.assertEqual(results.get()[:2], (True, "still here"))
        self.assertEqual(len(pool._threads), 1)

    def test_failing_on_result(self):
        """An onResult that raises is logged and its worker lives on to run later calls."""
        results = Results()
        pool = self.pool(1)

        def broken(ok, result):
            raise RuntimeError("onResult broke")

        pool.callInThreadWithCallback(broken, lambda: 1)
        pool.callInThreadWithCallback(results, lambda: 2)
        self.assertEqual(results.get()[:2], (True, 2))
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)

    def test_stop_idle_promptly(self):
        """stop() with idle workers ends and joins them at once."""
        results = Results()
        pool = self.pool(3)
        gate = threading.Barrier(3, timeout=WAIT)
        for _ in range(3):
            pool.callInThreadWithCallback(results, gate.wait)
        for _ in range(3):
            self.assertTrue(results.get()[0])
        threads = list(pool._threads)
        self.assertEqual(len(threads), 3)
        began = time.monotonic()
        self.stop(pool)
        self.assertLess(time.monotonic() - began, WAIT / 2)
        self.assertFalse(any(thread.is_alive() for thread in threads))

    def test_stop_finishes_queued(self):
        """stop() lets calls already queued run before the workers end."""
        results = Results()
        pool = self.pool(1)
        release = threading.Event()
        pool.callInThreadWithCallback(results, release.wait, WAIT)
        for n in range(3):
            pool.callInThreadWithCallback(results, lambda n=n: n)
        stopper = threading.Thread(target=pool.stop, daemon=True)
        stopper.start()
        release.set()
        stopper.join(WAIT)
        self.assertFalse(stopper.is_alive())
        got = [results.get()[:2] for _ in range(4)]
        self.assertEqual(got, [(True, True), (True, 0), (True, 1), (True, 2)])

    def test_restart(self):
        """A pool started again after stop runs calls again (as ThreadPool does)."""
        results = Results()
        pool = self.pool(1)
        pool.callInThreadWithCallback(results, lambda: 1)
        self.assertEqual(results.get()[:2], (True, 1))
        self.stop(pool)
        pool.start()
        pool.callInThreadWithCallback(results, lambda: 2)
        self.assertEqual(results.get()[:2], (True, 2))

    def test_concurrent(self):
        """Up to ``size`` calls run at the same time (they meet at a barrier)."""
        results = Results()
        pool = self.pool(4)
        gate = threading.Barrier(4, timeout=WAIT)
        for _ in range(4):
            pool.callInThreadWithCallback(results, gate.wait)
        self.assertEqual(sorted(results.get()[1] for _ in range(4)), [0, 1, 2, 3])

    def test_size_bound(self):
        """No more than ``size`` threads, however many calls are queued."""
        results = Results()
        pool = self.pool(2)
        release = threading.Event()
        for _ in range(6):
            pool.callInThreadWithCallback(results, release.wait, WAIT)
        self.assertLessEqual(len(pool._threads), 2)
        release.set()
        for _ in range(6):
            self.assertEqual(results.get()[:2], (True, True))
        self.assertLessEqual(len(pool._threads), 2)

    def test_idle_worker_not_counted_twice(self):
        """Two calls queued with one worker idle get two workers, not one after the other."""
        results = Results()
        pool = self.pool(2)
        pool.callInThreadWithCallback(results, lambda: None)
        results.get()
        settle(pool)
        second_ran = threading.Event()
        pool.callInThreadWithCallback(results, second_ran.wait, WAIT / 2)
        pool.callInThreadWithCallback(results, second_ran.set)
        got = [results.get()[:2] for _ in range(2)]
        self.assertIn((True, True), got, "the first call waited in vain for the second")


# -- batched wake-ups ----------------------------------------------------------------------


class QueueingReactor(Clock):
    """A clock whose ``callFromThread`` queues the call (thread-safe) until pumped."""

    def __init__(self) -> None:
        super().__init__()
        # Not ``calls``: the Clock's own list of delayed calls has that name.
        self.from_threads: SimpleQueue[tuple[Any, tuple, dict]] = SimpleQueue()

    def callFromThread(self, function, *args, **kw) -> None:
        self.from_threads.put((function, args, kw))

    def pump(self, until=lambda: False) -> int:
        """Run queued calls, waiting (bounded) for more until ``until()``; how many ran."""
        ran = 0
        while True:
            try:
                function, args, kw = self.from_threads.get(timeout=0 if until() else WAIT)
            except Empty:
                if until():
                    return ran
                raise AssertionError("nothing came back from the workers") from None
            function(*args, **kw)
            ran += 1


class Echo(Processor):
    addressed = False

    def __init__(self, name, bot, seen, gates=None):
        super().__init__(name, bot)
        self.seen = seen
        self.gates = gates or {}

    @match("say {any}")
    def say(self, event, text):
        gate = self.gates.get(text)
        if gate is not None:
            gate()
        self.seen.append((event.channel, text))
        event.addresponse(text)


class BatchedWakeupTests(ContextCase):
    """Finished events wake the reactor once per batch and fire in finishing order."""

    def test_one_wakeup_per_batch(self):
        """Events finished before the reactor runs: one wake-up, fired in finishing order."""
        reactor, pool, seen = QueueingReactor(), ManualThreadPool(), []
        dispatcher = Dispatcher(reactor=reactor, threadpool=pool)
        dispatcher.set_chain([Echo("e", self.context, seen)])
        dispatcher.startService()
        fired = []
        for channel in ("#1", "#2", "#3"):
            event = message_event("say " + channel)
            event.channel = channel
            dispatcher.dispatch(event).addCallback(lambda e: fired.append(e.channel))
        pool.run(2)
        pool.run(0)
        pool.run(0)
        self.assertEqual(reactor.pump(until=lambda: True), 1)
        self.assertEqual(fired, ["#3", "#1", "#2"])
        dispatcher.dispatch(message_event("say again")).addCallback(
            lambda e: fired.append("again")
        )
        pool.run_all()
        self.assertEqual(reactor.pump(until=lambda: True), 1)
        self.assertEqual(fired[-1], "again")
        self.successResultOf(dispatcher.stopService())

    def test_real_pool(self):
        """With the real pool, every event finishes, each conversation in arrival order."""
        reactor, seen = QueueingReactor(), []
        dispatcher = Dispatcher({"threads": 3}, reactor=reactor)
        dispatcher.set_chain([Echo("e", self.context, seen)])
        dispatcher.startService()
        fired = []
        for n in range(30):
            event = message_event(f"say {n}")
            event.channel = f"#{n % 4}"
            dispatcher.dispatch(event).addCallback(
                lambda e: fired.append((e.channel, [r.text for r in e.responses]))
            )
        reactor.pump(until=lambda: len(fired) == 30)
        for channel in ("#0", "#1", "#2", "#3"):
            mine = [text for where, text in seen if where == channel]
            self.assertEqual(mine, [str(n) for n in range(30) if f"#{n % 4}" == channel])
        self.assertEqual(sorted(int(texts[0]) for _, texts in fired), list(range(30)))
        self.assertIsInstance(dispatcher.threadpool, WorkerPool)
        stopped = dispatcher.stopService()
        reactor.pump(until=lambda: stopped.called)
        self.successResultOf(stopped)

    def test_slow_conversation_does_not_hold_up_another(self):
        """A slow event does not hold up another conversation arriving in the same tick."""
        reactor, seen = QueueingReactor(), []
        other_done = threading.Event()
        gates = {"slow": lambda: other_done.wait(WAIT / 2)}
        dispatcher = Dispatcher({"threads": 2}, reactor=reactor)
        dispatcher.set_chain([Echo("e", self.context, seen, gates)])
        dispatcher.startService()
        warm = dispatcher.dispatch(message_event("say warm"))
        reactor.pump(until=lambda: warm.called)
        settle(dispatcher.threadpool)
        slow, fast = message_event("say slow"), message_event("say fast")
        fast.channel = "#b"
        done = []
        dispatcher.dispatch(slow).addCallback(done.append)
        dispatcher.dispatch(fast).addCallback(lambda e: (other_done.set(), done.append(e)))
        reactor.pump(until=lambda: len(done) == 2)
        self.assertTrue(other_done.is_set())
        self.assertEqual([text for _, text in seen], ["warm", "fast", "slow"])
        stopped = dispatcher.stopService()
        reactor.pump(until=lambda: stopped.called)
