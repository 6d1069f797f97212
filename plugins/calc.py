"""A calculator: ``calc 2 * (3 + 4)``, ``calc sqrt(2) ** 2``, ``calc 10 // 3``. Knows
``+ - * / // % **``, parentheses, math functions (sqrt, sin, log, factorial...) and
constants (pi, e, tau); refuses sums too big to work out quickly, such as ``9**9**9``."""

from __future__ import annotations

import ast
import math
import operator
from collections.abc import Callable
from typing import Any

from botcore.event import Event
from botcore.options import IntOption
from botcore.processor import Processor, match

Number = int | float | complex


class CalcError(Exception):
    """A sum the calculator refuses or cannot work out; the message is for the user."""


CONSTANTS: dict[str, float] = {
    "pi": math.pi,
    "e": math.e,
    "tau": math.tau,
    "inf": math.inf,
}

_UNARY: dict[type, Callable[[Any], Any]] = {
    ast.UAdd: operator.pos,
    ast.USub: operator.neg,
}


def _fact(value: Number, limit: int) -> int:
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if not isinstance(value, int) or value < 0:
        raise CalcError("factorial needs a whole number that is not negative")
    if value > limit:
        raise CalcError(f"factorial of more than {limit} is too big for me")
    return math.factorial(value)


def _real(function: Callable[..., float]) -> Callable[..., float]:
    def call(*args: Number) -> float:
        if any(isinstance(arg, complex) for arg in args):
            raise CalcError(f"{function.__name__} needs real numbers")
        return function(*args)

    call.__name__ = function.__name__
    return call


FUNCTIONS: dict[str, Callable[..., Any]] = {
    name: _real(getattr(math, name))
    for name in (
        "sqrt",
        "sin",
        "cos",
        "tan",
        "asin",
        "acos",
        "atan",
        "atan2",
        "sinh",
        "cosh",
        "tanh",
        "exp",
        "log",
        "log2",
        "log10",
        "ceil",
        "floor",
        "degrees",
        "radians",
        "hypot",
        "trunc",
    )
}
FUNCTIONS.update({"abs": abs, "round": round, "min": min, "max": max})
FUNCTIONS["ln"] = FUNCTIONS["log"]


class Calculator:
    """Evaluates arithmetic parsed by `ast`, refusing before computing anything whose size
    would make it slow: a limit on input length, nesting depth, the digits of a power's
    result, and factorials."""

    def __init__(
        self,
        max_length: int = 200,
        max_depth: int = 30,
        max_digits: int = 1000,
        max_factorial: int = 500,
    ) -> None:
        self.max_length = max_length
        self.max_depth = max_depth
        self.max_digits = max_digits
        self.max_factorial = max_factorial

    def evaluate(self, text: str) -> Number:
        """The value of ``text``; `CalcError` with a message for anything refused."""
        text = text.strip()
        if len(text) > self.max_length:
            raise CalcError(f"that's too long for me (more than {self.max_length} characters)")
        # Python's own power is **; ^ is what people usually mean by it.
        text = text.replace("^", "**")
        try:
            tree = ast.parse(text, mode="eval")
        except (SyntaxError, ValueError):
            raise CalcError("I can't make sense of that sum") from None
        except RecursionError:
            raise CalcError("that's nested too deeply for me") from None
        return self._eval(tree.body, 0)

    def _eval(self, node: ast.AST, depth: int) -> Number:
        if depth > self.max_depth:
            raise CalcError("that's nested too deeply for me")
        depth += 1
        if isinstance(node, ast.Constant):
            if isinstance(node.value, bool) or not isinstance(node.value, int | float | complex):
                raise CalcError(f"I only do numbers, not {node.value!r}")
            return node.value
        if isinstance(node, ast.Name):
            if node.id in CONSTANTS:
                return CONSTANTS[node.id]
            raise CalcError(f"I don't know {node.id!r}")
        if isinstance(node, ast.UnaryOp) and type(node.op) in _UNARY:
            return _UNARY[type(node.op)](self._eval(node.operand, depth))
        if isinstance(node, ast.BinOp):
            left = self._eval(node.left, depth)
            right = self._eval(node.right, depth)
            return self._binary(node.op, left, right)
        if isinstance(node, ast.Call):
            return self._call(node, depth)
        raise CalcError("I can only do arithmetic")

    def _binary(self, op: ast.operator, left: Number, right: Number) -> Number:
        try:
            if isinstance(op, ast.Add):
                return left + right
            if isinstance(op, ast.Sub):
                return left - right
            if isinstance(op, ast.Mult):
                self._check_size(left, right, "*")
                return left * right
            if isinstance(op, ast.Div):
                return left / right
            # A complex operand raises TypeError here, answered below like any other.
            if isinstance(op, ast.FloorDiv):
                return left // right  # type: ignore[operator]
            if isinstance(op, ast.Mod):
                return left % right  # type: ignore[operator]
            if isinstance(op, ast.Pow):
                self._check_power(left, right)
                return left**right
        except ZeroDivisionError:
            raise CalcError("I can't divide by zero") from None
        except OverflowError:
            raise CalcError("that number is too big for me") from None
        except TypeError:
            raise CalcError("that operation doesn't work on those numbers") from None
        raise CalcError("I can only do + - * / // % and **")

    def _digits(self, value: Number) -> float:
        """About how many decimal digits an integer has (0 for floats: they overflow)."""
        if isinstance(value, int) and value:
            return value.bit_length() * 0.30103
        return 0.0

    def _check_size(self, left: Number, right: Number, _: str) -> None:
        if self._digits(left) + self._digits(right) > self.max_digits:
            raise CalcError(f"the answer would have more than {self.max_digits} digits")

    def _check_power(self, base: Number, exponent: Number) -> None:
        if isinstance(base, int) and isinstance(exponent, int) and exponent > 0 and abs(base) > 1:
            digits = exponent * math.log10(abs(base))
            if digits > self.max_digits:
                raise CalcError(f"the answer would have more than {self.max_digits} digits")
        # Float and complex powers take constant time (or overflow, which is caught).

    def _call(self, node: ast.Call, depth: int) -> Number:
        if not isinstance(node.func, ast.Name) or node.keywords:
            raise CalcError("I can only call functions by name, like sqrt(2)")
        name = node.func.id
        if name not in FUNCTIONS and name not in ("factorial", "fact"):
            raise CalcError(f"I don't know the function {name!r}")
        args = [self._eval(arg, depth) for arg in node.args]
        if name in ("factorial", "fact"):
            if len(args) != 1:
                raise CalcError("factorial takes one number")
            return _fact(args[0], self.max_factorial)
        function = FUNCTIONS[name]
        try:
            return function(*args)
        except CalcError:
            raise
        except (ValueError, TypeError):
            raise CalcError(
                f"{name} can't take {', '.join(format_number(a) for a in args)}"
            ) from None
        except ZeroDivisionError:
            raise CalcError("I can't divide by zero") from None
        except OverflowError:
            raise CalcError("that number is too big for me") from None


def format_number(value: Number) -> str:
    """A result as people write it: ``4`` not ``4.0``, 12 significant digits for floats."""
    if isinstance(value, float):
        if value.is_integer() and abs(value) < 1e15:
            return str(int(value))
        return f"{value:.12g}"
    if isinstance(value, complex):
        return f"{value.real:.12g}{value.imag:+.12g}j"
    return str(value)


class Calc(Processor):
    """A calculator: works out arithmetic, ``calc <sum>``."""

    usage = "calc <sum>, e.g. calc 2 * (3 + 4), calc sqrt(2), calc 10 // 3, calc 2 ** 10"
    features = ("calc",)

    max_length = IntOption("The longest sum (in characters) the calculator accepts.", 200, min=1)
    max_depth = IntOption("How deeply parentheses and operators may nest.", 30, min=1)
    max_digits = IntOption(
        "The most decimal digits a whole-number answer may have.", 1000, min=1, max=4000
    )
    max_factorial = IntOption(
        "The largest number whose factorial is worked out.", 500, min=0, max=1000
    )

    @match(
        r"^\s*(?:calc|calculate|compute)\s+(.+?)\s*[?=]?\s*$", version="deaddressed", simple=False
    )
    def calc(self, event: Event, text: str) -> None:
        calculator = Calculator(
            self.max_length, self.max_depth, self.max_digits, self.max_factorial
        )
        try:
            value = calculator.evaluate(text)
        except CalcError as error:
            event.addresponse(str(error))
            return
        except RecursionError:
            event.addresponse("that's nested too deeply for me")
            return
        event.addresponse(f"{text.strip()} = {format_number(value)}")
