"""End to end through the web front door: ``botcore-setup --api-token`` makes the config
and a token, ``twistd -n botcore -c bot.ini`` runs as a real process with the web source
enabled, and the test drives it over HTTP only: status, a fired message answered, a plugin
reloaded, /metrics parsed, then the bot stopped through the API, exiting 0.

Every wait is on an event (a log line, an HTTP answer, the exit) with a bound."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families
from twisted.trial.unittest import SynchronousTestCase

from botcore.testing import free_port
from tests.test_end_to_end import TIMEOUT, Twistd

SETUP = Path(sys.executable).with_name("botcore-setup")
README = Path(__file__).resolve().parents[2] / "README.rst"


def readme_curls() -> list[str]:
    """The curl commands of README's web front door section, continuation lines joined."""
    text = README.read_text(encoding="utf-8")
    start = text.index("\nThe web front door\n")
    end = text.index("\nHow botcore is built\n", start)
    joined = re.sub(r"\\\n\s*", "", text[start:end])
    return [line.strip() for line in joined.splitlines() if line.strip().startswith("curl ")]


class WebTwistd(Twistd):
    """`Twistd` that also sets ``web_listening`` once the web source listens (or the log
    ends)."""

    def __init__(self, *args, **kw) -> None:
        self.web_listening = threading.Event()
        super().__init__(*args, **kw)

    def saw(self, line: bytes) -> None:
        super().saw(line)
        if b"source web: listening on" in line:
            self.web_listening.set()

    def log_ended(self) -> None:
        super().log_ended()
        self.web_listening.set()


def enable_web(text: str, port: int) -> str:
    """``text`` (a config made from conf.example.ini) with [source:web] enabled on
    ``port``."""
    start = text.index("[source:web]")
    end = text.find("\n[", start + 1)
    end = len(text) if end < 0 else end
    section = text[start:end]
    for pattern, line in (
        (r"(?m)^enabled = no$", "enabled = yes"),
        (r"(?m)^endpoint = .*$", f"endpoint = tcp:{port}:interface=127.0.0.1"),
    ):
        section, found = re.subn(pattern, line, section, count=1)
        assert found == 1, (pattern, section)
    return text[:start] + section + text[end:]


class WebEndToEndTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.folder = Path(self.mktemp()).absolute()
        self.folder.mkdir(parents=True)

    def setup_bot(self, console: int, web: int) -> str:
        """Run botcore-setup as a user would; the token it prints."""
        result = subprocess.run(
            [
                str(SETUP),
                "-c",
                "bot.ini",
                "--name",
                "e2ebot",
                "--source",
                "telnet",
                "--admin",
                "alice",
                "--admin-identity",
                "alice",
                "--password-env",
                "BOTCORE_E2E_PASSWORD",
                "--api-token",
                "e2e test",
                "-y",
            ],
            cwd=self.folder,
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
            env=dict(os.environ, BOTCORE_E2E_PASSWORD="a long enough password"),
        )
        self.assertEqual(result.returncode, 0, result.stdout + result.stderr)
        token = re.search(r"shown only now: (bct_\S+)", result.stdout)
        self.assertIsNotNone(token, result.stdout)
        assert token is not None
        config = self.folder / "bot.ini"
        text = config.read_text(encoding="utf-8")
        text = re.sub(
            r"(?m)^endpoint = tcp:3000:interface=127.0.0.1$",
            f"endpoint = tcp:{console}:interface=127.0.0.1",
            text,
            count=1,
        )
        config.write_text(enable_web(text, web), encoding="utf-8")
        return token.group(1)

    def call(self, method: str, path: str, body=None, token: str | None = None):
        """(status, the answer's text) of one request, bounded by TIMEOUT."""
        request = urllib.request.Request(
            self.base + path,
            method=method,
            data=None if body is None else json.dumps(body).encode(),
            headers={
                **({"Authorization": f"Bearer {token}"} if token else {}),
                **({"Content-Type": "application/json"} if body is not None else {}),
            },
        )
        try:
            with urllib.request.urlopen(request, timeout=TIMEOUT) as response:
                return response.status, response.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode()

    def test_driven_over_http(self) -> None:
        """Status, a fired message answered, a plugin reloaded, metrics read and the bot
        stopped, all over HTTP with the token botcore-setup printed."""
        console, web = free_port(), free_port()
        token = self.setup_bot(console, web)
        self.base = f"http://127.0.0.1:{web}"
        twistd = WebTwistd(self.folder, "bot.ini")
        self.addCleanup(twistd.kill)
        if not twistd.web_listening.wait(TIMEOUT) or twistd.process.poll() is not None:
            self.fail(f"the web source never listened:\n{twistd.stdout()}{twistd.stderr()}")

        self.assertEqual(self.call("GET", "/api/v1/status")[0], 401)
        code, text = self.call("GET", "/api/v1/status", token=token)
        self.assertEqual(code, 200, text)
        status = json.loads(text)
        self.assertEqual((status["name"], status["state"]), ("e2ebot", "running"))

        code, text = self.call("POST", "/api/v1/fire", {"text": "ping"}, token)
        self.assertEqual(code, 200, text)
        self.assertEqual([r["text"] for r in json.loads(text)["responses"]], ["pong"])

        code, text = self.call("POST", "/api/v1/plugins/basic/reload", token=token)
        self.assertEqual((code, json.loads(text)), (200, {"name": "basic", "loaded": True}))
        code, text = self.call("POST", "/api/v1/fire", {"text": "ping"}, token)
        self.assertEqual([r["text"] for r in json.loads(text)["responses"]], ["pong"])

        code, text = self.call("GET", "/metrics")
        self.assertEqual(code, 200, text)
        samples = {
            (s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text)
            for s in family.samples
        }
        self.assertEqual(samples[("botcore_plugin_reloads_total", (("plugin", "basic"),))], 1.0)
        self.assertGreaterEqual(
            samples[("botcore_events_total", (("source", "web"), ("type", "message")))], 2.0
        )
        self.assertEqual(samples[("botcore_up", ())], 1.0)

        # README's curl examples, as written but for the token and the port.
        curls = readme_curls()
        self.assertGreaterEqual(len(curls), 4, curls)
        for line in curls:
            line = line.replace("bct_...", token).replace("127.0.0.1:8080", f"127.0.0.1:{web}")
            result = subprocess.run(
                ["sh", "-c", line.replace("curl ", "curl -sS --fail-with-body ", 1)],
                capture_output=True,
                text=True,
                timeout=TIMEOUT,
            )
            self.assertEqual(result.returncode, 0, f"{line}\n{result.stdout}{result.stderr}")
            if "/fire" in line:
                answer = json.loads(result.stdout)
                self.assertEqual(
                    [(r["text"], r["source"], r["target"]) for r in answer["responses"]],
                    [("pong", "web", "alice")],
                )

        code, text = self.call("POST", "/api/v1/stop", token=token)
        self.assertEqual(code, 202, text)
        self.assertEqual(twistd.wait(), 0, twistd.stdout() + twistd.stderr())
        self.assertNotIn("Traceback", twistd.stdout() + twistd.stderr())
