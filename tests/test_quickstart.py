"""README's quick start, as a newcomer follows it: its commands are what the code supports,
its setup line never overwrites a config, its factpack example is the real format, and on
the example configuration every bundled plugin can be tried over ``botcore-console``."""

from __future__ import annotations

import json
import os
import re
import selectors
import socket
import subprocess
import sys
import time
from importlib.metadata import distribution
from pathlib import Path

from twisted.trial.unittest import SynchronousTestCase

from botcore.loading.reloader import Reloader
from botcore.testing import free_port
from tests.test_end_to_end import EXAMPLE, EXAMPLE_ENDPOINT, TIMEOUT, Twistd

CHECKOUT = Path(__file__).resolve().parents[1]
README = CHECKOUT / "README.rst"


def literal_blocks(text: str) -> list[str]:
    """The literal blocks (after ``::``) of an RST text, dedented."""
    blocks = []
    lines = text.splitlines()
    for number, line in enumerate(lines):
        if not line.rstrip().endswith("::"):
            continue
        body: list[str] = []
        for following in lines[number + 1 :]:
            if following.strip() and not following.startswith(" "):
                break
            body.append(following)
        indented = [b for b in body if b.strip()]
        if indented:
            margin = min(len(b) - len(b.lstrip()) for b in indented)
            blocks.append("\n".join(b[margin:] for b in body).strip("\n"))
    return blocks


def section(text: str, title: str) -> str:
    """The body of the README section called ``title`` (up to the next title)."""
    found = re.search(
        rf"^{re.escape(title)}\n[=-]+\n(.*?)(?=^\S[^\n]*\n[=-]{{3,}}\n)", text, re.M | re.S
    )
    assert found is not None, title
    return found.group(1)


class ReadmeTests(SynchronousTestCase):
    """What README tells a newcomer to run exists and does what it says."""

    def setUp(self) -> None:
        self.text = README.read_text(encoding="utf-8")
        self.quick = literal_blocks(section(self.text, "Run the bot"))

    def test_commands_exist(self):
        """Every ``.venv/bin/NAME`` README names is a console script of the installed
        botcore (or twistd), including ``botcore-console`` of the quick start."""
        scripts = {
            ep.name for ep in distribution("botcore").entry_points if ep.group == "console_scripts"
        }
        named = set(re.findall(r"\.venv/bin/([\w-]+)", self.text))
        self.assertIn("botcore-console", named)
        self.assertEqual(named - scripts, {"twistd", "python", "pip"} & named)
        self.assertEqual(self.quick[1], ".venv/bin/botcore-console -c bot.ini")
        self.assertNotIn("telnet 127.0.0.1", "\n".join(self.quick))

    def test_setup_line_keeps_a_config(self):
        """The quick start's copy line writes bot.ini once and never overwrites it."""
        [copy] = [line for line in self.quick[0].splitlines() if "conf.example.ini" in line]
        folder = Path(self.mktemp())
        folder.mkdir()
        (folder / "conf.example.ini").write_text("example\n", encoding="utf-8")
        for _ in range(2):
            subprocess.run(["sh", "-ec", copy], cwd=folder, check=True, timeout=TIMEOUT)
        self.assertEqual((folder / "bot.ini").read_text(encoding="utf-8"), "example\n")
        (folder / "bot.ini").write_text("mine\n", encoding="utf-8")
        subprocess.run(["sh", "-ec", copy], cwd=folder, check=True, timeout=TIMEOUT)
        self.assertEqual((folder / "bot.ini").read_text(encoding="utf-8"), "mine\n")

    def test_factpack_example(self):
        """README's factpack example is the format the factoid plugin imports."""
        factoid = Reloader().plugin_module("factoid")
        [block] = literal_blocks(section(self.text, "Factpacks"))
        facts = factoid.parse_factpack(json.loads(block))
        self.assertEqual(
            facts,
            [
                (["python", "python3"], ["a programming language"]),
                (["hello"], ["<reply>Hello, $who!", "<action>waves"]),
                (["bees"], ["<are>insects that make honey"]),
            ],
        )

    def test_no_pointer_outside(self):
        """README points at nothing outside the repository (no DESIGN.md)."""
        self.assertNotIn("DESIGN.md", self.text)


class _Console:
    """``botcore-console -c bot.ini`` as a real process; its output read with a deadline."""

    def __init__(self, folder: Path) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "botcore.cli.console", "-c", "bot.ini", "--linger", "0.5"],
            cwd=folder,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        self.output = ""
        self.selector = selectors.DefaultSelector()
        assert self.process.stdout is not None
        self.selector.register(self.process.stdout, selectors.EVENT_READ)

    def wait_for(self, pattern: str) -> str:
        """The output from now up to a match of ``pattern``; fails after TIMEOUT."""
        compiled = re.compile(pattern, re.M)
        while (found := compiled.search(self.output)) is None:
            self._read(pattern)
        said, self.output = self.output[: found.end()], self.output[found.end() :]
        return said

    def next_line(self) -> str:
        """The next whole line the console prints; fails after TIMEOUT."""
        while "\n" not in self.output:
            self._read("a line")
        line, self.output = self.output.split("\n", 1)
        return line

    def _read(self, waiting_for: str) -> None:
        assert self.process.stdout is not None
        if not self.selector.select(TIMEOUT):
            raise AssertionError(f"no {waiting_for!r} in the console's output:\n{self.output}")
        data = os.read(self.process.stdout.fileno(), 65536)
        if not data:
            raise AssertionError(f"the console ended before {waiting_for!r}:\n{self.output}")
        self.output += data.decode("utf-8", "replace")

    def say(self, line: str) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(line.encode("utf-8") + b"\n")
        self.process.stdin.flush()

    def close(self) -> int:
        assert self.process.stdin is not None
        self.process.stdin.close()
        try:
            return self.process.wait(TIMEOUT)
        finally:
            self.selector.close()
            for stream in (self.process.stdout, self.process.stderr):
                if stream is not None:
                    stream.close()

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()


ACK = r"^(Okay|Sure|Done|Righto|Alrighty|Yessir)$"
NONSENSE = r"^(Huh\?|Sorry\.\.\.|Excuse me\?|\*blink\*|What\?)$"

#: What a newcomer can try of each bundled plugin on the console, and the line (or the
#: lines, in order) the bot answers with.
TOUR: list[tuple[str, str | tuple[str, ...]]] = [
    ("ping", r"^pong$"),
    ("echo hello there", r"^hello there$"),
    ("version", r"^botcore \d"),
    ("help", r"^I can help you with: .*karma \(karma\); memo"),
    ("help karma", r"karma"),
    # Taught in a private conversation: the bot says that facts are public.
    ("python is a language", (ACK, r"^Note that facts are public: anyone can ask me")),
    ("python?", r"^python is a language$"),
    ("foo++", r"^foo now has karma of 1$"),
    ("foo++ (because)", r"^foo now has karma of 2$"),
    ("karma for foo", r"^foo has karma of 2$"),
    ("karmaladder", r"^foo: 2$"),
    ("tell bob the build is green", r"^Okay, I'll tell bob$"),
    ("my messages", r"^You have no memos$"),
    ("seen bob", r"^I haven't seen bob$"),
    (
        "remind me in 10 minutes to stretch",
        r"^Okay, I'll remind you at .*\(in 10 minutes\) \[#1\]$",
    ),
    ("my reminders", r"^#1 at .*: stretch$"),
    # Recorded (nothing else understood it, hence the complaint), then asked about.
    ("see http://example.invalid/page please", NONSENSE),
    ("last url", r"^http://example\.invalid/page from alice just now$"),
    ("calc 2 * (3 + 4)", r"^2 \* \(3 \+ 4\) = 14$"),
    ("choose tea or coffee", r"^I choose (tea|coffee)$"),
    ("roll 2d6", r"\d"),
    ("who am I", r"alice"),
]


class QuickStartTests(SynchronousTestCase):
    """On conf.example.ini as shipped (but its port), over the real console client."""

    def test_every_plugin_on_the_console(self):
        """Each bundled plugin answers over botcore-console: karma votes count on the
        console, memos, reminders, URLs and the rest work in its private conversation."""
        folder = Path(self.mktemp()).absolute()
        folder.mkdir(parents=True)
        port = free_port()
        text = EXAMPLE.read_text(encoding="utf-8")
        self.assertEqual(text.count(EXAMPLE_ENDPOINT), 1)
        (folder / "bot.ini").write_text(
            text.replace(EXAMPLE_ENDPOINT, f"endpoint = tcp:{port}:interface=127.0.0.1"),
            encoding="utf-8",
        )
        # The tour says more than a person types in ten seconds: the rate limit (tested
        # on its own) is turned off in the local override file, as README describes.
        (folder / "bot.local.ini").write_text("[plugin:core]\nlimit_time = 0\n", "utf-8")
        twistd = Twistd(folder, str(folder / "bot.ini"))
        self.addCleanup(twistd.kill)
        self.wait_listening(port, twistd)
        console = _Console(folder)
        self.addCleanup(console.kill)
        console.wait_for("What is your nick?")
        console.say("alice")
        console.wait_for(r"Hi alice!.*\n")
        for line, answers in TOUR:
            console.say(line)
            for answer in (answers,) if isinstance(answers, str) else answers:
                said = console.next_line()
                self.assertRegex(said, answer, f"said {line!r}")
        self.assertEqual(console.close(), 0)
        log = twistd.stdout() + twistd.stderr()
        self.assertNotIn("Traceback", log)

    def wait_listening(self, port: int, twistd: Twistd) -> None:
        deadline = time.monotonic() + TIMEOUT
        while True:
            if twistd.process.poll() is not None:
                raise AssertionError(f"twistd exited early:\n{twistd.stdout()}{twistd.stderr()}")
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                return
            except OSError:
                if time.monotonic() > deadline:
                    raise AssertionError(f"port {port} never opened:\n{twistd.stdout()}") from None
                time.sleep(0.1)
