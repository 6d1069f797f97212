"""README's worked example of the event bus, exactly as README shows it: its deploy plugin
and its ``[reactor:deploy-hook]`` section, taken from README.rst, on a real bot on the real
reactor, posting to a webhook receiver on loopback, which checks the signature. Only
``url`` is changed (to the receiver) and ``allow_private = yes`` added (loopback is
refused otherwise)."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
import tempfile
import textwrap
from pathlib import Path

from twisted.internet import defer, reactor
from twisted.trial.unittest import TestCase
from twisted.web import resource, server

from botcore.bot import Bot
from botcore.event import Event, EventType, Message, Sender
from botcore.settings import read_config
from botcore.testing import MemorySource
from tests.test_quickstart import README, literal_blocks, section

SECRET = "readme-s3cret"


def worked_example() -> tuple[str, str]:
    """(the plugin's code, the config section) of README's worked example."""
    blocks = literal_blocks(section(README.read_text(encoding="utf-8"), "A worked example"))
    plugin, config = blocks[0], blocks[1]
    assert "class Deployed(Processor)" in plugin, plugin
    assert config.startswith("[reactor:deploy-hook]"), config
    return plugin, config


class Receiver(resource.Resource):
    """A webhook receiver: records each request, fires ``next`` on each."""

    isLeaf = True

    def __init__(self) -> None:
        super().__init__()
        self.requests: list[tuple[bytes, object]] = []
        self.waiting: list[defer.Deferred[None]] = []

    def render_POST(self, request):
        self.requests.append((request.content.read(), request.requestHeaders))
        waiting, self.waiting = self.waiting, []
        for d in waiting:
            reactor.callLater(0, d.callback, None)
        return b"ok"

    def next(self) -> defer.Deferred[None]:
        d: defer.Deferred[None] = defer.Deferred()
        self.waiting.append(d)
        return d.addTimeout(20, reactor)


class WorkedExampleTests(TestCase):
    timeout = 60

    @defer.inlineCallbacks
    def setUp(self):
        self.receiver = Receiver()
        site = server.Site(self.receiver)
        site.noisy = False
        port = reactor.listenTCP(0, site, interface="127.0.0.1")
        self.addCleanup(port.stopListening)
        url = f"http://127.0.0.1:{port.getHost().port}/deploy"
        plugin, config = worked_example()
        config, count = re.subn(r"(?m)^url = .*$", f"url = {url}\nallow_private = yes", config)
        self.assertEqual(count, 1)
        folder = Path(tempfile.mkdtemp(prefix="botcore-readme-"))
        (folder / "plugins").mkdir()
        (folder / "plugins" / "deploy.py").write_text(plugin + "\n", encoding="utf-8")
        (folder / "bot.ini").write_text(
            textwrap.dedent(
                f"""\
                [bot]
                name = readmebot
                autoload = no
                load = core, deploy
                plugin_dirs = plugins
                threads = 2
                [database:main]
                url = sqlite:///{folder}/bot.sqlite
                """
            )
            + config
            + "\n",
            encoding="utf-8",
        )
        old = os.environ.get("BOTCORE_HOOK_SECRET")
        os.environ["BOTCORE_HOOK_SECRET"] = SECRET
        self.addCleanup(
            lambda: (
                os.environ.pop("BOTCORE_HOOK_SECRET", None)
                if old is None
                else os.environ.__setitem__("BOTCORE_HOOK_SECRET", old)
            )
        )
        self.bot = Bot(read_config(folder / "bot.ini"))
        yield self.bot.startService()
        self.addCleanup(self.bot.stopService)
        self.assertEqual(self.bot.plugins.failed, {})
        self.source = MemorySource("chat", self.bot.context)
        yield self.bot.sources.attach(self.source)

    def say(self, text: str) -> defer.Deferred[Event]:
        return self.bot.dispatch(
            Event(
                source="chat",
                type=EventType.MESSAGE,
                sender=Sender("chat:alice", "alice", "alice"),
                channel="alice",
                public=False,
                message=Message(text),
            )
        )

    @defer.inlineCallbacks
    def test_posted_only_for_prod(self):
        """Staging is published but not posted, moon is refused, prod is posted, signed
        with the configured secret."""
        posted = self.receiver.next()
        yield self.say("deployed 1.5 to staging")
        yield self.say("deployed 1.6 to moon")
        yield self.say("deployed 1.4 to prod")
        # The deploy events are published from the reactor thread after their messages'
        # runs, in order: by the time prod's post arrives, staging and moon are done.
        yield posted
        ((body, headers),) = self.receiver.requests
        expected = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
        self.assertEqual(headers.getRawHeaders("x-botcore-signature"), [expected])
        sent = json.loads(body)
        self.assertEqual(sent["reactor"], "deploy-hook")
        self.assertEqual(sent["event"]["type"], "deploy")
        self.assertEqual(sent["event"]["data"], {"env": "prod", "version": "1.4"})
        tally = self.bot.event_stats.reactors["deploy-hook"]
        self.assertEqual((tally.fired, tally.condition_false, tally.failed), (1, 1, 0))
        self.assertEqual(self.bot.catalogue.refused["deploy"], 1)
        self.assertEqual(self.bot.event_stats.types["deploy"].seen, 2)
