"""``[logging] format = json``: twistd's text observer (stdout or --logfile) writes one
JSON object per line instead, still behind the level filter; other observers are kept."""

from __future__ import annotations

import io
import json
from pathlib import Path

from twisted.logger import Logger, LogLevel, LogPublisher, textFileLogObserver
from twisted.trial.unittest import SynchronousTestCase

from botcore.bot import Bot
from botcore.settings import read_config
from botcore.tap import ProcessControl
from botcore.testing import InlineReactor


class JsonLogTests(SynchronousTestCase):
    def control(self, format: str, observer) -> tuple[ProcessControl, LogPublisher]:
        folder = Path(self.mktemp())
        folder.mkdir()
        (folder / "bot.ini").write_text(
            f"[bot]\nautoload = no\n[logging]\nlevel = info\nformat = {format}\n"
            f"[database:main]\nurl = sqlite:///{folder}/bot.sqlite\n",
            encoding="utf-8",
        )
        bot = Bot(read_config(folder / "bot.ini"), reactor=InlineReactor())
        publisher = LogPublisher(observer)
        control = ProcessControl(
            bot, reactor=object(), publisher=publisher, at_exit=lambda hook: None
        )
        control.filter_log_observers()
        control.apply_log_level()
        return control, publisher

    def test_json_lines(self) -> None:
        """Each event is one line of JSON with its format and fields; debug is filtered."""
        out = io.StringIO()
        _, publisher = self.control("json", textFileLogObserver(out))
        log = Logger(namespace="botcore.test", observer=publisher)
        log.info("source {source} connected", source="irc")
        log.debug("not shown")
        lines = out.getvalue().strip().splitlines()
        self.assertEqual(len(lines), 1)
        # jsonFileLogObserver starts each record with a record separator (RFC 7464).
        event = json.loads(lines[0].lstrip("\x1e"))
        self.assertEqual(event["log_format"], "source {source} connected")
        self.assertEqual(event["source"], "irc")
        self.assertEqual(event["log_namespace"], "botcore.test")
        self.assertEqual(event["log_level"]["name"], "info")

    def test_text_by_default_and_other_observers_kept(self) -> None:
        """format = text leaves twistd's observer alone; under json an observer that is
        not a file's (syslog, a function) is kept as it is."""
        out = io.StringIO()
        _, publisher = self.control("text", textFileLogObserver(out))
        Logger(observer=publisher).info("plain {x}", x=1)
        self.assertIn("plain 1", out.getvalue())
        self.assertNotIn("{", out.getvalue())
        seen = []
        _, publisher = self.control("json", seen.append)
        Logger(observer=publisher).emit(LogLevel.warn, "kept")
        self.assertEqual([event["log_format"] for event in seen], ["kept"])
