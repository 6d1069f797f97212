"""@example on a handler: shown by help and usage, and run by PluginTestCase's
test_examples for every loaded plugin (a wrong one fails it, naming the plugin)."""

from __future__ import annotations

import re

from twisted.trial.reporter import TestResult
from twisted.trial.unittest import SynchronousTestCase

from botcore.event import Event
from botcore.processor import Processor, example, match
from botcore.testing import PluginTestCase


class Karma(Processor):
    """Keeps karma."""

    usage = "karma for <subject>"
    features = ("karma",)

    @example("karma for foo", r"foo has karma of -?\d+")
    @example("karma for bar", r"bar has karma of -?\d+")
    @match("karma for {subject:chunk}")
    def karma(self, event: Event, subject: str) -> None:
        event.addresponse("%s has karma of 0", subject)


class Wrong(Processor):
    """Documents itself wrongly."""

    @example("wrong", r"^right$")
    @match("wrong")
    def wrong(self, event: Event) -> None:
        event.addresponse("wrong")


class ExampleDecoratorTests(SynchronousTestCase):
    def test_listed_in_order(self) -> None:
        """Stacked examples are the processor's, top to bottom, with compiled patterns;
        a bad pattern fails at the decorator."""
        self.assertEqual([e.said for e in Karma.examples()], ["karma for foo", "karma for bar"])
        self.assertTrue(Karma.examples()[0].reply.search("foo has karma of -3"))
        self.assertRaises(re.error, example, "x", "(")


class HelpShowsExamplesTests(PluginTestCase):
    load = ("help",)
    extra_processors = (Karma,)

    def test_help_and_usage(self) -> None:
        """help <feature> and usage <command> end with the examples."""
        self.assertResponseMatches(
            "help karma",
            r'Usage: karma for <subject>\. For example: "karma for foo", "karma for bar"$',
        )
        self.assertResponseMatches("usage karma", r'For example: "karma for foo"')


class HarnessRunsExamplesTests(SynchronousTestCase):
    def test_wrong_example_fails(self) -> None:
        """test_examples, given to every PluginTestCase, fails on an example whose reply
        does not match, naming the plugin, the processor and what was said."""

        class WrongTests(PluginTestCase):
            load = ()
            extra_processors = (Wrong,)

        class RightTests(PluginTestCase):
            load = ("basic",)
            extra_processors = (Karma,)

        result = WrongTests("test_examples").run
        outcome = TestResult()
        result(outcome)
        self.assertEqual(len(outcome.failures), 1)
        text = str(outcome.failures[0][1].value)
        self.assertIn(
            "plugin testing (Wrong): 'wrong' got ['wrong'], none matching '^right$'", text
        )
        outcome = TestResult()
        RightTests("test_examples").run(outcome)
        self.assertTrue(outcome.wasSuccessful(), outcome.failures + outcome.errors)
        self.assertEqual(outcome.testsRun, 1)
