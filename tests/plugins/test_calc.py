"""Tests for the calc plugin: arithmetic, functions and constants, and the limits that keep
hostile sums from hanging a worker thread."""

from __future__ import annotations

import time

from twisted.trial.unittest import SynchronousTestCase

from botcore.testing import PluginTestCase
from plugins.calc import CalcError, Calculator, format_number


class CalculatorTests(SynchronousTestCase):
    """The evaluator on its own."""

    def setUp(self) -> None:
        self.calc = Calculator()

    def value(self, text: str):
        return self.calc.evaluate(text)

    def refused(self, text: str) -> str:
        return str(self.assertRaises(CalcError, self.calc.evaluate, text))

    def test_operators(self):
        """+ - * / // % ** and parentheses follow Python's precedence."""
        self.assertEqual(self.value("1 + 2 * 3"), 7)
        self.assertEqual(self.value("(1 + 2) * 3"), 9)
        self.assertEqual(self.value("7 / 2"), 3.5)
        self.assertEqual(self.value("7 // 2"), 3)
        self.assertEqual(self.value("7 % 3"), 1)
        self.assertEqual(self.value("2 ** 10"), 1024)
        self.assertEqual(self.value("-2 ** 2"), -4)
        self.assertEqual(self.value("--3"), 3)
        self.assertEqual(self.value("2 ^ 3"), 8)

    def test_functions_and_constants(self):
        """Math functions and pi, e, tau are known."""
        self.assertAlmostEqual(self.value("sqrt(2) ** 2"), 2)
        self.assertAlmostEqual(self.value("sin(pi / 2)"), 1)
        self.assertAlmostEqual(self.value("log(e)"), 1)
        self.assertEqual(self.value("factorial(5)"), 120)
        self.assertEqual(self.value("max(1, 5, 3)"), 5)
        self.assertEqual(self.value("abs(-4)"), 4)

    def test_no_eval(self):
        """Names, attributes, strings and calls other than the known functions are refused."""
        self.assertIn("don't know", self.refused("__import__('os')"))
        self.assertIn("arithmetic", self.refused("(1).__class__"))
        self.assertIn("numbers", self.refused("'a' * 3"))
        self.assertIn("don't know", self.refused("x + 1"))
        self.assertIn("arithmetic", self.refused("[1, 2]"))
        self.assertIn("by name", self.refused("sqrt(x=2)"))

    def test_division_by_zero(self):
        """Division and modulo by zero give a clear message."""
        for text in ("1 / 0", "1 // 0", "1 % 0", "0 ** -1"):
            self.assertIn("divide by zero", self.refused(text))

    def test_domain_errors(self):
        """A function given a value outside its domain says so."""
        self.assertIn("sqrt can't take -1", self.refused("sqrt(-1)"))
        self.assertIn("factorial", self.refused("factorial(-1)"))
        self.assertIn("factorial", self.refused("factorial(2.5)"))

    def test_huge_powers_refused_quickly(self):
        """9**9**9, huge factorials and huge products are refused without being computed."""
        started = time.perf_counter()
        self.assertIn("digits", self.refused("9**9**9"))
        self.assertIn("digits", self.refused("10 ** 100000"))
        self.assertIn("digits", self.refused("(10 ** 999) ** 2"))
        self.assertIn("digits", self.refused("10 ** 600 * 10 ** 600"))
        self.assertIn("too big", self.refused("factorial(100000)"))
        self.assertIn("too big", self.refused("factorial(1e300)"))
        self.assertIn("too big", self.refused("2.0 ** 100000"))
        self.assertLess(time.perf_counter() - started, 1.0)

    def test_small_powers_allowed(self):
        """Powers within the digit limit, and negative or fractional ones, are worked out."""
        self.assertEqual(self.value("2 ** 100"), 2**100)
        self.assertEqual(self.value("2 ** -1"), 0.5)
        self.assertAlmostEqual(self.value("4 ** 0.5"), 2)

    def test_length_and_depth(self):
        """Too-long input and deep nesting are refused with a message, not a crash."""
        self.assertIn("too long", self.refused("1+" * 150 + "1"))
        self.assertIn("nested", self.refused("-" * 100 + "1"))
        self.assertIn("nested", self.refused("(" * 40 + "1" + "+1)" * 40))
        self.assertEqual(self.value("(" * 90 + "1" + ")" * 90), 1)
        self.assertIn("sense", self.refused("1 +"))

    def test_format(self):
        """Whole floats print as integers; others with 12 significant digits."""
        self.assertEqual(format_number(4.0), "4")
        self.assertEqual(format_number(1 / 3), "0.333333333333")
        self.assertEqual(format_number(10**20), str(10**20))


class PrivateTests(PluginTestCase):
    """calc said privately."""

    load = ["calc"]

    def test_calc(self):
        """calc answers with the sum and its value."""
        self.assertEqual(self.responses("calc 1 + 2 * 3"), ["1 + 2 * 3 = 7"])
        self.assertEqual(self.responses("calc sqrt(16)?"), ["sqrt(16) = 4"])
        self.assertEqual(self.responses("calculate 7 // 2"), ["7 // 2 = 3"])

    def test_errors_reply(self):
        """A refused sum gets its reason as the reply and the bot keeps working."""
        self.assertEqual(self.responses("calc 1/0"), ["I can't divide by zero"])
        self.assertResponseMatches("calc 9**9**9", "more than 1000 digits")
        self.assertResponseMatches("calc import os", "sense")
        self.assertEqual(self.responses("calc 2+2"), ["2+2 = 4"])

    def test_not_calc(self):
        """Other words are not the calc command."""
        self.assertFails("calculator")


class LimitTests(PluginTestCase):
    """The limits are options."""

    load = ["calc"]
    plugin_config = {"plugin:calc": {"max_digits": "10", "max_factorial": "5"}}

    def test_configured_limits(self):
        """max_digits and max_factorial come from the plugin's section."""
        self.assertResponseMatches("calc 10 ** 11", "more than 10 digits")
        self.assertResponseMatches("calc factorial(6)", "more than 5")
        self.assertEqual(self.responses("calc factorial(5)"), ["factorial(5) = 120"])


class PublicTests(PluginTestCase):
    """calc in a channel."""

    load = ["calc"]
    public = True

    def test_addressed(self):
        """Addressed in public, calc answers the sender by name."""
        self.assertEqual(self.responses("botcore: calc 6 * 7"), ["user: 6 * 7 = 42"])

    def test_not_addressed(self):
        """Not addressed in public, calc stays quiet."""
        self.assertNoResponse("calc 6 * 7")
