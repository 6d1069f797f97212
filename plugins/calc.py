"""A calculator: ``calc 2 * (3 + 4)``, ``calc sqrt(2) ** 2``, ``calc 10 // 3``. Knows
``+ - * / // % **``, parentheses, math functions (sqrt, sin, log, factorial...) and
constants (pi, e, tau); refuses sums too big to work out quickly, such as ``9**9**9``,
and works each sum out in a child process that is stopped when it takes too long."""

from __future__ import annotations

import ast
import json
import math
import operator
import os
import select
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

from botcore.event import Event
from botcore.options import FloatOption, IntOption
from botcore.processor import Processor, example, match

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


def _round_args(args: Sequence[Number], limit: int) -> list[Number]:
    """round's arguments, checked: rounding a whole number to ``-n`` digits works out
    ``10 ** n``, so the number of digits is bounded like a power's answer."""
    if len(args) != 2:
        return list(args)  # round(x) is quick; other counts fail as any call does
    digits = args[1]
    if isinstance(digits, float) and digits.is_integer():
        digits = int(digits)
    if not isinstance(digits, int):
        raise CalcError("round needs a whole number of digits")
    if abs(digits) > limit:
        raise CalcError(f"rounding to more than {limit} digits is too much for me")
    return [args[0], digits]


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
        if name == "round":
            args = _round_args(args, self.max_digits)
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
    try:
        return str(value)
    except ValueError:  # more digits than Python converts (sys.get_int_max_str_digits)
        raise CalcError("the answer has too many digits to show") from None


#: What a child process runs: it takes its parent's module search path, loads this file
#: (not the whole plugin package) and answers sums with `serve`.
_BOOT = (
    "import importlib.util, json, sys\n"
    "sys.path[:] = json.loads(sys.argv[1])\n"
    "spec = importlib.util.spec_from_file_location('botcore_calc_child', sys.argv[2])\n"
    "module = importlib.util.module_from_spec(spec)\n"
    "spec.loader.exec_module(module)\n"
    "module.serve(sys.stdin.buffer, sys.stdout.buffer, int(sys.argv[3]))\n"
)
#: The longest answer line a child may send (an answer has at most about 4,300 digits).
_MAX_ANSWER = 64 * 1024


def serve(requests: Any, answers: Any, max_memory: int) -> None:
    """The loop of a child process: after a ``{"ready": true}`` line, answers each request
    line ``{"text": ..., "limits": [...]}`` (`Calculator`'s arguments) with one line,
    ``{"answer": ...}`` (as shown) or ``{"error": ...}`` (for the user). Ends at the end of
    its input, which is when the parent closes the pipe or dies."""
    import signal

    # Ctrl-C at a terminal reaches the whole process group; the parent decides.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _limit_memory(max_memory)
    try:
        _answer_all(requests, answers)
    except BrokenPipeError:
        # The parent has gone or given this child up: nobody to answer, nothing to say
        # (exit at once, or flushing stdout at exit would complain of the pipe again).
        os._exit(0)


def _answer_all(requests: Any, answers: Any) -> None:
    answers.write(b'{"ready": true}\n')
    answers.flush()
    for line in requests:
        try:
            request = json.loads(line)
            calculator = Calculator(*request["limits"])
            answer = {"answer": format_number(calculator.evaluate(request["text"]))}
        except CalcError as error:
            answer = {"error": str(error)}
        except RecursionError:
            answer = {"error": "that's nested too deeply for me"}
        except MemoryError:
            answer = {"error": "that needs more memory than I have for sums"}
        answers.write(json.dumps(answer).encode() + b"\n")
        answers.flush()


def _limit_memory(mebibytes: int) -> None:
    """Bound the address space of this (child) process, where the system lets us."""
    try:
        import resource

        limit = mebibytes * 1024 * 1024
        _, hard = resource.getrlimit(resource.RLIMIT_AS)
        if hard != resource.RLIM_INFINITY:
            limit = min(limit, hard)
        resource.setrlimit(resource.RLIMIT_AS, (limit, hard))
    except (ImportError, ValueError, OSError):
        pass


class _Child:
    """One child process and whether it has said it is ready."""

    def __init__(self, command: Sequence[str]) -> None:
        self.process = subprocess.Popen(
            list(command), stdin=subprocess.PIPE, stdout=subprocess.PIPE, bufsize=0
        )
        self.ready = False

    def send(self, request: dict[str, Any]) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(json.dumps(request).encode() + b"\n")

    def receive(self, timeout: float) -> dict[str, Any]:
        """The next line the child sends, parsed; `TimeoutError` when it takes longer
        than ``timeout`` seconds, `EOFError` when the child has gone or talks nonsense."""
        assert self.process.stdout is not None
        fd = self.process.stdout.fileno()
        poller = select.poll()
        poller.register(fd, select.POLLIN)
        deadline = time.monotonic() + timeout
        received = b""
        while not received.endswith(b"\n"):
            left = deadline - time.monotonic()
            if left <= 0 or not poller.poll(left * 1000):
                raise TimeoutError
            chunk = os.read(fd, _MAX_ANSWER)
            if not chunk or len(received) + len(chunk) > _MAX_ANSWER:
                raise EOFError
            received += chunk
        try:
            answer = json.loads(received)
        except ValueError:
            raise EOFError from None
        if not isinstance(answer, dict):
            raise EOFError
        return answer

    def kill(self) -> None:
        self.process.kill()
        self.process.wait()
        for pipe in (self.process.stdin, self.process.stdout):
            if pipe is not None:
                pipe.close()


class Evaluator:
    """Works sums out in child processes, so that a sum that slips past `Calculator`'s
    limits cannot hold the bot: a child that has not answered within ``timeout`` seconds
    is killed (and the next sum gets a new one). At most ``size`` sums are worked out at
    once, each by its own child; children are kept for the next sums. A child's memory
    is bounded to ``max_memory`` MiB. Called from worker threads; ``command`` (for tests)
    replaces the child's command line."""

    #: Seconds a new child may take to load before it is given up as broken.
    boot_timeout = 30.0

    def __init__(
        self,
        timeout: float,
        size: int = 2,
        max_memory: int = 256,
        command: Sequence[str] | None = None,
    ) -> None:
        self.timeout = timeout
        self.size = size
        if command is None:
            here = os.path.abspath(__file__)
            command = [sys.executable, "-I", "-c", _BOOT, json.dumps(sys.path), here]
            command.append(str(max_memory))
        self.command = list(command)
        self._slots = threading.BoundedSemaphore(size)
        self._lock = threading.Lock()
        self._idle: list[_Child] = []
        self._closed = False

    def start(self) -> None:
        """Start a child ahead of the first sum (loading takes it a moment)."""
        with self._lock:
            if not self._idle and not self._closed:
                self._idle.append(_Child(self.command))

    def close(self) -> None:
        """Kill the idle children; a busy one is killed when its sum is done."""
        with self._lock:
            self._closed, idle, self._idle = True, self._idle, []
        for child in idle:
            child.kill()

    def evaluate(self, text: str, limits: Sequence[int]) -> str:
        """The answer to ``text`` as it is shown, worked out by a `Calculator` with
        ``limits``; `CalcError` for a refused sum, one that took too long, or a child that
        failed. Worker thread; blocks for at most about ``timeout`` seconds (more only
        while a new child loads, bounded by ``boot_timeout``)."""
        if not self._slots.acquire(timeout=self.timeout):
            raise CalcError("I'm working out too many sums at once; try again in a moment")
        try:
            answer = self._ask({"text": text, "limits": list(limits)})
        finally:
            self._slots.release()
        if isinstance(answer.get("answer"), str):
            return answer["answer"]
        if isinstance(answer.get("error"), str):
            raise CalcError(answer["error"])
        raise CalcError("I couldn't work that out: my calculator said something strange")

    def _ask(self, request: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            if self._closed:
                raise CalcError("I'm not doing sums just now")
            child = self._idle.pop() if self._idle else None
        try:
            if child is None:
                child = _Child(self.command)
            if not child.ready:
                child.receive(self.boot_timeout)
                child.ready = True
            child.send(request)
            answer = child.receive(self.timeout)
        except TimeoutError:
            if child is not None:
                child.kill()
            raise CalcError(
                f"that took too long to work out (more than {self.timeout:g} seconds)"
            ) from None
        except (EOFError, OSError):
            if child is not None:
                child.kill()
            raise CalcError("I couldn't work that out: my calculator stopped") from None
        with self._lock:
            keep = not self._closed
            if keep:
                self._idle.append(child)
        if not keep:
            child.kill()
        return answer


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
    timeout = FloatOption(
        "Seconds a sum may take to work out before it is given up (each sum is worked "
        "out in a child process, which is stopped then).",
        2.0,
        min=0.1,
        max=60,
    )
    processes = IntOption(
        "The most sums worked out at once, each by its own child process.", 2, min=1, max=16
    )
    max_memory = IntOption(
        "The memory (in MiB) a child process working out sums may use.", 256, min=64
    )

    def setup(self) -> None:
        self.evaluator = Evaluator(self.timeout, self.processes, self.max_memory)
        self.evaluator.start()

    def shutdown(self) -> None:
        self.evaluator.close()

    @example("calc 2 * (3 + 4)", r"= 14$")
    @example("calc 10 // 3", r"= 3$")
    @match(
        r"^\s*(?:calc|calculate|compute)\s+(.+?)\s*[?=]?\s*$", version="deaddressed", simple=False
    )
    def calc(self, event: Event, text: str) -> None:
        limits = (self.max_length, self.max_depth, self.max_digits, self.max_factorial)
        try:
            answer = self.evaluator.evaluate(text, limits)
        except CalcError as error:
            event.addresponse(str(error))
            return
        event.addresponse(f"{text.strip()} = {answer}")
