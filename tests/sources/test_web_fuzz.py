"""The web API fuzzed from its own OpenAPI document with schemathesis (its command line,
in a subprocess, against a real bot on a loopback port): no request it makes, valid or
not, gets a 5xx or an answer the document does not declare. Seeded, so a run is
repeatable. Under CI=true a missing schemathesis is a failure, not a skip."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from twisted.internet.defer import ensureDeferred
from twisted.internet.threads import deferToThread
from twisted.trial.unittest import SkipTest, TestCase

from botcore.testing import in_ci
from tests.sources.web_harness import WebBot

ST = Path(sys.executable).with_name("st")
#: Seconds the whole run may take.
RUN_TIMEOUT = 600


class FuzzTests(TestCase):
    timeout = RUN_TIMEOUT + 60

    def setUp(self):
        if not ST.exists() and shutil.which("st") is None:
            problem = "schemathesis is not installed (pip install -e '.[test]')"
            if in_ci():
                self.fail(problem)
            raise SkipTest(problem)
        self.web = WebBot()
        d = ensureDeferred(self.web.start())
        d.addCallback(lambda _: self.addCleanup(lambda: ensureDeferred(self.web.stop())))
        return d

    async def test_no_server_errors(self):
        """Every operation of the document, fuzzed with valid and invalid input, is
        answered without a 5xx, with a status, content type and body the document
        declares."""
        stopped = []
        self.web.bot.stop = lambda: stopped.append(True)  # POST /stop is fuzzed too
        command = [
            str(ST if ST.exists() else shutil.which("st")),
            "run",
            f"{self.web.base}/api/v1/openapi.json",
            "--checks",
            # No 5xx; and every answer is one the document declares, of its declared
            # content type and schema (the fired message's, the config option's, ...).
            "not_a_server_error,status_code_conformance,content_type_conformance,"
            "response_schema_conformance",
            "--header",
            f"Authorization: Bearer {self.web.tokens['alice']}",
            "--max-examples",
            "25",
            "--seed",
            "18",
            "--workers",
            "1",
            "--request-timeout",
            "30",
            "--phases",
            "examples,coverage,fuzzing",
            # A stream that never ends (server-sent events) is not a request to fuzz.
            "--exclude-path",
            "/log",
        ]
        result = await deferToThread(
            subprocess.run, command, capture_output=True, text=True, timeout=RUN_TIMEOUT
        )
        self.assertEqual(result.returncode, 0, result.stdout[-6000:] + result.stderr[-2000:])
        self.assertIn("Tested:", result.stdout)
