"""End to end: ``twistd -n botcore`` as a real process, talked to over the telnet console
on a loopback port, then stopped with SIGTERM; and the ways it refuses to start.

Every wait is on an event (a log line, a connection, a reply) with a generous bound, so
only wrong behaviour fails these tests, not a slow machine."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
from pathlib import Path

from twisted.trial.unittest import SynchronousTestCase

from botcore.testing import free_port

#: Seconds any one step (start, a reply, the exit) may take before the test fails:
#: generous, so that only wrong behaviour fails, never a slow machine.
TIMEOUT = 120.0

TWISTD = "import sys; from twisted.scripts.twistd import run; sys.exit(run())"

#: Makes ``ping`` tell the test when it starts (a connection to the port in
#: BOTCORE_TEST_SIGNAL) and answer only once the bot is stopping, so a test can send
#: SIGTERM while an event is being processed, with no sleep on either side.
SLOW_PING = """\
import os, socket, sys, threading
import botcore.bot
import botcore.plugins.basic
stopping = threading.Event()
set_state = botcore.bot.Bot.set_state
def set_state_and_tell(self, state, **kw):
    set_state(self, state, **kw)
    if state == "stopping":
        stopping.set()
botcore.bot.Bot.set_state = set_state_and_tell
ping = botcore.plugins.basic.Ping.ping
def slow_ping(self, event):
    port = int(os.environ["BOTCORE_TEST_SIGNAL"])
    socket.create_connection(("127.0.0.1", port), timeout=60).close()
    stopping.wait(120)
    ping(self, event)
botcore.plugins.basic.Ping.ping = slow_ping
from twisted.scripts.twistd import run
sys.exit(run())
"""

#: The bot runs on the example configuration, as shipped but for the console's port.
EXAMPLE = Path(__file__).resolve().parents[1] / "conf.example.ini"
EXAMPLE_ENDPOINT = "endpoint = tcp:3000:interface=127.0.0.1"


class Twistd:
    """One ``twistd -n botcore`` process, its output kept in files in ``folder``. Its
    log is copied there line by line by a thread, which sets ``listening`` when the
    console says it listens (or the log ends), so a test waits for that, not polls."""

    def __init__(
        self, folder: Path, config: str, code: str = TWISTD, env: dict[str, str] | None = None
    ) -> None:
        self.folder = folder
        self.stdout_path = folder / "stdout.log"
        self.stderr_path = folder / "stderr.log"
        self.listening = threading.Event()
        with open(self.stderr_path, "wb") as err:
            self.process = subprocess.Popen(
                [sys.executable, "-c", code, "-n", "--pidfile=", "botcore", "-c", config],
                cwd=folder,
                stdout=subprocess.PIPE,
                stderr=err,
                stdin=subprocess.DEVNULL,
                env=dict(os.environ, **(env or {})),
            )
        self._copier = threading.Thread(target=self._copy_log, daemon=True)
        self._copier.start()

    def _copy_log(self) -> None:
        # A thread of its own: the pipe is read to its end, so the bot never blocks on it.
        assert self.process.stdout is not None
        with self.process.stdout as pipe, open(self.stdout_path, "wb") as out:
            for line in pipe:
                out.write(line)
                out.flush()
                self.saw(line)
        self.log_ended()

    def saw(self, line: bytes) -> None:
        """A line of the log (copier thread)."""
        if b"telnet console listening on" in line:
            self.listening.set()

    def log_ended(self) -> None:
        """The log ended: the process has exited (copier thread)."""
        self.listening.set()

    def wait(self, timeout: float = TIMEOUT) -> int:
        """The exit status; the process is killed (and the test fails) after ``timeout``."""
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise AssertionError(
                f"twistd did not exit within {timeout}s; output:\n{self.stdout()}"
            ) from None

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        self._copier.join(TIMEOUT)

    def stdout(self) -> str:
        if self.process.poll() is not None:
            self._copier.join(TIMEOUT)  # all of it
        return self.stdout_path.read_text("utf-8", "replace")

    def stderr(self) -> str:
        return self.stderr_path.read_text("utf-8", "replace")


class Telnet:
    """A line-based TCP client for the console."""

    def __init__(self, port: int, twistd: Twistd) -> None:
        if not twistd.listening.wait(TIMEOUT):
            raise AssertionError(f"the console never listened:\n{twistd.stdout()}")
        if twistd.process.poll() is not None:
            raise AssertionError(f"twistd exited early:\n{twistd.stdout()}{twistd.stderr()}")
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
        self.sock.settimeout(TIMEOUT)
        self.buffer = b""

    def read_line(self) -> str | None:
        """The next line (without its CRLF), or None when the server closed."""
        while b"\r\n" not in self.buffer:
            data = self.sock.recv(4096)
            if not data:
                return None
            self.buffer += data
        line, self.buffer = self.buffer.split(b"\r\n", 1)
        return line.decode("utf-8")

    def read_until(self, text: str) -> list[str]:
        """Lines up to and including the first that contains ``text``."""
        lines = []
        while True:
            line = self.read_line()
            if line is None:
                raise AssertionError(f"connection closed before {text!r}; got {lines}")
            lines.append(line)
            if text in line:
                return lines

    def send(self, text: str) -> None:
        self.sock.sendall(text.encode("utf-8") + b"\r\n")

    def rest(self) -> list[str]:
        """Every line until the server closes the connection."""
        lines = []
        while (line := self.read_line()) is not None:
            lines.append(line)
        return lines

    def close(self) -> None:
        self.sock.close()


class EndToEndTests(SynchronousTestCase):
    """A real twistd process with the bundled plugins and the telnet console."""

    def setUp(self) -> None:
        self.folder = Path(self.mktemp()).absolute()
        self.folder.mkdir(parents=True)

    def start(self, port: int, code: str = TWISTD, env: dict[str, str] | None = None) -> Twistd:
        text = EXAMPLE.read_text(encoding="utf-8")
        self.assertEqual(text.count(EXAMPLE_ENDPOINT), 1)
        config = self.folder / "bot.ini"
        config.write_text(
            text.replace(EXAMPLE_ENDPOINT, f"endpoint = tcp:{port}:interface=127.0.0.1"),
            encoding="utf-8",
        )
        twistd = Twistd(self.folder, str(config), code, env)
        self.addCleanup(twistd.kill)
        return twistd

    def connect(self, port: int, twistd: Twistd, nick: str = "alice") -> Telnet:
        client = Telnet(port, twistd)
        self.addCleanup(client.close)
        client.read_until("What is your nick?")
        client.send(nick)
        client.read_until(f"Hi {nick}!")
        return client

    def test_talk_then_sigterm(self) -> None:
        """Run on conf.example.ini, the bot answers ``ping`` and ``echo`` over telnet, and
        on SIGTERM says goodbye, stops cleanly and exits 0."""
        port = free_port()
        twistd = self.start(port)
        client = self.connect(port, twistd)
        client.send("ping")
        self.assertEqual(client.read_line(), "pong")
        client.send("echo hi")
        self.assertEqual(client.read_line(), "hi")
        twistd.process.send_signal(signal.SIGTERM)
        self.assertEqual(client.rest(), ["the bot is shutting down; bye."])
        self.assertEqual(twistd.wait(), 0)
        log = twistd.stdout()
        self.assertIn("received SIGTERM: shutting down", log)
        self.assertIn("botcore lifecycle: stopping -> stopped", log)
        self.assertNotIn("Traceback", log + twistd.stderr())
        self.assertTrue((self.folder / "botcore.sqlite").exists())

    def test_sigterm_drains(self) -> None:
        """SIGTERM while an event is being processed: its reply still arrives before the
        goodbye, and the process exits 0."""
        with socket.socket() as signal_socket:
            signal_socket.bind(("127.0.0.1", 0))
            signal_socket.listen()
            signal_socket.settimeout(TIMEOUT)
            port = free_port()
            signal_port = str(signal_socket.getsockname()[1])
            twistd = self.start(port, SLOW_PING, {"BOTCORE_TEST_SIGNAL": signal_port})
            client = self.connect(port, twistd)
            client.send("ping")
            started, _ = signal_socket.accept()  # the ping is being processed
            started.close()
        twistd.process.send_signal(signal.SIGTERM)
        self.assertEqual(client.rest(), ["pong", "the bot is shutting down; bye."])
        self.assertEqual(twistd.wait(), 0)

    def test_sigint(self) -> None:
        """SIGINT (Ctrl-C) stops the bot the same way, with exit status 0."""
        port = free_port()
        twistd = self.start(port)
        self.connect(port, twistd)
        twistd.process.send_signal(signal.SIGINT)
        self.assertEqual(twistd.wait(), 0)
        self.assertIn("received SIGINT: shutting down", twistd.stdout())

    def test_port_in_use(self) -> None:
        """When the console's port is taken, twistd logs one clear line and exits 1,
        without a traceback."""
        with socket.socket() as taken:
            taken.bind(("127.0.0.1", 0))
            taken.listen()
            port = taken.getsockname()[1]
            twistd = self.start(port)
            self.assertEqual(twistd.wait(), 1)
        output = twistd.stdout() + twistd.stderr()
        failures = [line for line in output.splitlines() if "failed to start" in line]
        self.assertEqual(len(failures), 1, output)
        self.assertIn(f"cannot listen on tcp:{port}:interface=127.0.0.1", failures[0])
        self.assertIn("Address already in use", failures[0])
        self.assertNotIn("Traceback", output)

    def test_bad_config(self) -> None:
        """A bad configuration exits 1 with every error on stderr, no traceback and no
        usage text."""
        config = self.folder / "bad.ini"
        config.write_text(
            "[bot]\nthreads = many\n[logging]\nlevel = loud\n"
            "[source:console]\ntype = telnet\nendpoint = tcp:nope\n[mystery]\n",
            encoding="utf-8",
        )
        twistd = Twistd(self.folder, str(config))
        self.addCleanup(twistd.kill)
        self.assertEqual(twistd.wait(), 1)
        errors = twistd.stderr()
        self.assertIn("4 configuration errors:", errors)
        for text in ("[bot] threads", "[logging] level", "[source:console] endpoint", "[mystery]"):
            self.assertIn(text, errors)
        self.assertNotIn("Traceback", errors)
        self.assertNotIn("Usage", errors + twistd.stdout())

    def test_help(self) -> None:
        """``twistd botcore --help`` documents the options and exits 0."""
        result = subprocess.run(
            [sys.executable, "-c", TWISTD, "botcore", "--help"],
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
            cwd=self.folder,
        )
        self.assertEqual(result.returncode, 0, result.stderr)
        for text in ("--config=", "[default: bot.ini]", "--local=", "--check"):
            self.assertIn(text, result.stdout)
