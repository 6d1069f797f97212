"""Tests for the calc plugin: arithmetic, functions and constants, and the limits that keep
hostile sums from hanging a worker thread, and the child processes that stop a sum which
takes too long."""

from __future__ import annotations

import subprocess
import sys
import threading
import time

from twisted.trial.unittest import SynchronousTestCase

from botcore.plugins.calc import CalcError, Calculator, Evaluator, format_number
from botcore.testing import PluginTestCase

#: A stand-in child speaking the evaluator's protocol: "spin" never answers (a sum that
#: slipped past every limit), "die" exits, anything else is answered at once.
STUCK_CHILD = r"""
import json, sys
sys.stdout.write('{"ready": true}\n')
sys.stdout.flush()
for line in sys.stdin:
    text = json.loads(line)["text"]
    if text == "spin":
        while True:
            pass
    if text == "die":
        sys.exit(3)
    sys.stdout.write(json.dumps({"answer": "ok " + text}) + "\n")
    sys.stdout.flush()
"""
LIMITS = (200, 30, 1000, 500)


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


class BoundedTests(SynchronousTestCase):
    """Sums whose work would be huge are refused at once. They are asked of a real child
    process with a deadline, so that a limit that regresses fails the test (as "took too
    long") instead of hanging it."""

    def setUp(self) -> None:
        self.evaluator = Evaluator(timeout=5.0, size=1)
        self.addCleanup(self.evaluator.close)
        self.assertEqual(self.evaluator.evaluate("1 + 1", LIMITS), "2")  # the child is up

    def refused(self, text: str) -> str:
        started = time.monotonic()
        reason = str(self.assertRaises(CalcError, self.evaluator.evaluate, text, LIMITS))
        self.assertLess(time.monotonic() - started, 1.0, f"{text}: {reason}")
        return reason

    def test_huge_powers_refused_quickly(self):
        """9**9**9, huge factorials and huge products are refused without being computed."""
        self.assertIn("digits", self.refused("9**9**9"))
        self.assertIn("digits", self.refused("10 ** 100000"))
        self.assertIn("digits", self.refused("(10 ** 999) ** 2"))
        self.assertIn("digits", self.refused("10 ** 600 * 10 ** 600"))
        self.assertIn("too big", self.refused("factorial(100000)"))
        self.assertIn("too big", self.refused("factorial(1e300)"))
        self.assertIn("too big", self.refused("2.0 ** 100000"))

    def test_round_to_huge_digits_refused(self):
        """round to millions of digits (10**n worked out) is refused like a huge power."""
        self.assertIn("digits", self.refused("round(1, -10**7)"))
        self.assertIn("digits", self.refused("round(10 ** 999, -10**8)"))
        self.assertIn("digits", self.refused("round(1.5, 10**9)"))
        self.assertIn("whole number", self.refused("round(1, 0.5)"))
        self.assertEqual(self.evaluator.evaluate("round(1234, -2)", LIMITS), "1200")
        self.assertEqual(self.evaluator.evaluate("round(2.675, 2.0)", LIMITS), "2.67")

    def test_everything_else_is_quick(self):
        """The other operators and functions, given the biggest numbers the limits allow,
        answer (or refuse) at once."""
        big = "10 ** 999"
        for text in (
            f"{big} // 7",
            f"{big} % 7",
            f"{big} / 3",
            f"{big} + {big}",
            f"-{big}",
            f"1 ** ({big})",
            f"(-1) ** ({big})",
            f"2 ** -({big})",
            f"(1 + 1j) ** ({big})",
            f"0.5 ** ({big})",
            f"log({big})",
            f"sqrt({big})",
            f"exp({big})",
            f"hypot({big}, 1)",
            f"ceil({big})",
            f"max({big}, 1)",
            f"abs(-{big})",
            f"round({big}, -999)",
            "factorial(500) * factorial(500)",
        ):
            started = time.monotonic()
            try:
                self.evaluator.evaluate(text, LIMITS)
            except CalcError as error:
                self.assertNotIn("too long", str(error), text)
            self.assertLess(time.monotonic() - started, 1.0, text)


class EvaluatorTests(SynchronousTestCase):
    """A sum that takes too long is stopped, and other sums are answered meanwhile."""

    def evaluator(self, timeout: float, size: int = 2) -> Evaluator:
        evaluator = Evaluator(timeout, size, command=[sys.executable, "-I", "-c", STUCK_CHILD])
        self.addCleanup(evaluator.close)
        return evaluator

    def test_stuck_sum_stopped(self):
        """A child that does not answer within the timeout is killed, the sum refused, and
        the next sum gets a new child."""
        evaluator = self.evaluator(0.5)
        self.assertEqual(evaluator.evaluate("1", LIMITS), "ok 1")
        first = evaluator._idle[0].process
        started = time.monotonic()
        error = self.assertRaises(CalcError, evaluator.evaluate, "spin", LIMITS)
        self.assertLess(time.monotonic() - started, 5.0)
        self.assertEqual(str(error), "that took too long to work out (more than 0.5 seconds)")
        self.assertIsNotNone(first.poll())  # killed (and reaped), not left spinning
        self.assertEqual(evaluator.evaluate("2", LIMITS), "ok 2")

    def test_parent_gone_is_quiet(self):
        """A real child whose parent stops listening before it is ready exits 0 without
        a traceback (it would land in the bot's log at every stop)."""
        command = Evaluator(5.0).command
        child = subprocess.Popen(
            command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        assert child.stdout is not None and child.stdin is not None
        child.stdout.close()  # before the child has loaded: its "ready" line finds no one
        try:
            _, errors = child.communicate(timeout=60)
        finally:
            child.kill()
        self.assertEqual((child.returncode, errors), (0, b""))

    def test_others_answered_meanwhile(self):
        """While one sum is stuck, another is answered by another child."""
        evaluator = self.evaluator(5.0)
        stuck: list[BaseException] = []

        def spin() -> None:
            try:
                evaluator.evaluate("spin", LIMITS)
            except CalcError as error:
                stuck.append(error)

        thread = threading.Thread(target=spin)
        thread.start()
        self.addCleanup(thread.join, 10)
        self.assertEqual(evaluator.evaluate("3", LIMITS), "ok 3")
        self.assertTrue(thread.is_alive(), "the stuck sum ended before the other was answered")
        thread.join(10)
        self.assertIn("too long", str(stuck[0]))

    def test_too_many_at_once(self):
        """When every child is busy, a sum waits at most the timeout and is then refused."""
        evaluator = self.evaluator(0.2, size=1)
        evaluator._slots.acquire()  # the one child is busy with somebody's sum
        self.addCleanup(evaluator._slots.release)
        error = self.assertRaises(CalcError, evaluator.evaluate, "4", LIMITS)
        self.assertIn("too many sums", str(error))

    def test_child_died(self):
        """A child that dies gives a clear refusal; the next sum gets a new child."""
        evaluator = self.evaluator(5.0)
        error = self.assertRaises(CalcError, evaluator.evaluate, "die", LIMITS)
        self.assertEqual(str(error), "I couldn't work that out: my calculator stopped")
        self.assertEqual(evaluator.evaluate("5", LIMITS), "ok 5")

    def test_closed(self):
        """After close, the idle children are gone and sums are refused."""
        evaluator = self.evaluator(5.0)
        evaluator.evaluate("6", LIMITS)
        child = evaluator._idle[0].process
        evaluator.close()
        self.assertIsNotNone(child.poll())
        self.assertIn(
            "not doing sums", str(self.assertRaises(CalcError, evaluator.evaluate, "7", LIMITS))
        )

    def test_memory_bounded(self):
        """A child's memory is bounded: a huge allocation fails there with MemoryError."""
        code = (
            "from botcore.plugins.calc import _limit_memory\n"
            "_limit_memory(128)\n"
            "try:\n    bytearray(512 * 1024 * 1024)\nexcept MemoryError:\n    print('refused')\n"
        )
        done = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, timeout=60
        )
        self.assertEqual(done.stdout.strip(), "refused", done.stderr)


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
