"""Reactors: the condition language, [reactor:NAME] through the config and a real bot
(say, publish), reactors in code, their counters, and webhooks to a local HTTP server on
the real reactor (signature, retries, timeouts, refused private addresses, never holding
a conversation)."""

from __future__ import annotations

import hashlib
import hmac
import json
from pathlib import Path
from textwrap import dedent

from twisted.internet import defer, reactor, task
from twisted.logger import Logger
from twisted.trial.unittest import SynchronousTestCase, TestCase
from twisted.web import resource, server

from botcore.bus.catalogue import Catalogue, EventTypeSpec
from botcore.bus.condition import ConditionError, compile_condition, compile_template, fields
from botcore.bus.reactors import (
    Reactor,
    Reactors,
    Refused,
    Webhook,
    WebhookFailed,
    WebhookTimeout,
    signature,
)
from botcore.bus.stats import BusStats
from botcore.config import ConfigErrors
from botcore.dispatch.dispatcher import Dispatcher
from botcore.event import Event, Message, Sender
from botcore.processor import Processor, handler, match
from botcore.settings import read_config
from botcore.testing import InlineThreadPool, MemorySource, PluginTestCase, StubContext


def deploy(env="prod", version="1.2", **kw):
    kw.setdefault("sender", Sender("irc", "alice!a@h", "alice"))
    kw.setdefault("source", "test")
    return Event(type="deploy", data={"env": env, "version": version}, **kw)


class ConditionTests(SynchronousTestCase):
    def holds(self, text, event=None):
        return compile_condition(text)(fields(event or deploy()))

    def test_language(self):
        """Comparisons, membership, and/or/not, lookups by . and [], literals, lists."""
        self.assertTrue(self.holds("data.env == 'prod'"))
        self.assertTrue(self.holds("data['env'] in ['prod', 'staging'] and type == 'deploy'"))
        self.assertTrue(self.holds("not public or sender == 'bob'"))
        self.assertTrue(self.holds("'1' < data.version < '2'"))
        self.assertTrue(self.holds("data.missing is None and data.missing.deeper is None"))
        self.assertFalse(self.holds("data.env != 'prod'"))
        self.assertTrue(self.holds("-1 < 0"))
        event = Event(source="irc", type="message", message=Message("deploy now"), public=True)
        self.assertTrue(self.holds("'deploy' in text and public", event))

    def test_refused(self):
        """No calls, no other names, no attributes of Python objects, no arithmetic, no
        comprehensions; too long is refused."""
        for text in (
            "__import__('os')",
            "data.keys()",
            "open",
            "[x for x in data]",
            "1 + 1",
            "lambda: 1",
            "data.env ==",
            "x" * 501,
            "b'bytes'",
        ):
            with self.assertRaises(ConditionError, msg=text):
                compile_condition(text)

    def test_attribute_is_a_key(self):
        """An attribute is a lookup in a mapping, never Python's attribute."""
        self.assertIsNone(self.holds("type.upper"))
        self.assertIsNone(self.holds("data.__class__"))

    def test_template(self):
        """Fields are expressions; None is empty; {{ and }} are braces."""
        render = compile_template("{sender} deployed {data.version} to {data.env}{data.x} {{ok}}")
        self.assertEqual(render(fields(deploy())), "alice deployed 1.2 to prod {ok}")
        with self.assertRaisesRegex(ConditionError, "field"):
            compile_template("{open()}")
        with self.assertRaisesRegex(ConditionError, "unmatched"):
            compile_template("a } b")


class ReactorsTests(SynchronousTestCase):
    """Reactors in code: listening, conditions, counts, failures, loops."""

    def setUp(self):
        self.catalogue = Catalogue()
        self.catalogue.declare(EventTypeSpec("deploy", "d"))
        self.catalogue.declare(EventTypeSpec("rollback", "r", parent="deploy"))
        self.stats = BusStats()
        self.reactors = Reactors(self.catalogue, self.stats)
        self.fired = []

    def test_condition_and_counts(self):
        """A reactor fires on its types and subtypes when the condition holds; condition
        false and failures are counted, and a failure is logged."""
        self.reactors.add(
            Reactor(
                "prod", frozenset({"deploy"}), self.fired.append, lambda e: e.data["env"] == "prod"
            )
        )
        self.reactors.observe(deploy())
        self.reactors.observe(deploy(env="staging"))
        self.reactors.observe(Event(source="x", type="rollback", data={"env": "prod"}))
        self.reactors.observe(Event(source="x", type="message"))
        self.reactors.observe(Event(source="x", type="deploy"))  # the condition raises
        self.assertEqual([e.type for e in self.fired], ["deploy", "rollback"])
        tally = self.stats.reactors["prod"]
        self.assertEqual((tally.fired, tally.condition_false, tally.failed), (2, 1, 1))
        self.assertEqual(len(self.flushLoggedErrors(KeyError)), 1)

    def test_failing_reaction(self):
        """A reaction that raises, or whose Deferred fails, is counted and logged."""

        def boom(event):
            raise RuntimeError("boom")

        self.reactors.add(Reactor("boom", frozenset({"deploy"}), boom))
        self.reactors.add(
            Reactor("later", frozenset({"deploy"}), lambda e: defer.fail(ValueError("no")))
        )
        self.reactors.observe(deploy())
        self.assertEqual(self.stats.reactors["boom"].failed, 1)
        self.assertEqual(self.stats.reactors["later"].failed, 1)
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError, ValueError)), 2)

    def test_remove_and_replace(self):
        """remove takes one out; replace_origin swaps a config's reactors only."""
        self.reactors.add(Reactor("a", frozenset({"deploy"}), self.fired.append, origin="config"))
        self.reactors.add(Reactor("b", frozenset({"deploy"}), self.fired.append, origin="karma"))
        self.reactors.replace_origin("config", [])
        self.assertEqual([r.name for r in self.reactors], ["b"])
        self.reactors.remove("b")
        self.reactors.remove("nope")
        self.assertEqual(len(self.reactors), 0)


class Audit(Processor):
    """Records the audit events it gets."""

    event_types = ("audit", "deploy")
    addressed = False
    processed = True
    seen: list = []

    @handler
    def record(self, event):
        self.seen.append((event.type, dict(event.data)))


class ConfigReactorTests(PluginTestCase):
    """[reactor:NAME] through read_config and a real bot."""

    load = ()
    public = True
    extra_processors = (Audit,)
    plugin_config = {
        "event:deploy": {"schema": '{"type": "object", "required": ["env"]}'},
        "event:audit": {"schema": '{"type": "object", "required": ["env", "version"]}'},
        "reactor:announce": {
            "listens": "deploy",
            "condition": "data.env == 'prod'",
            "action": "say",
            "source": "test",
            "target": "#ops",
            "message": "{sender} deployed {data.version} to {data.env}",
        },
        "reactor:audit": {"listens": "deploy", "action": "publish", "publish_type": "audit"},
    }

    def setUp(self):
        Audit.seen = []
        super().setUp()

    def test_say_and_publish(self):
        """A prod deploy is announced in #ops and audited; a staging one only audited."""
        self.successResultOf(self.bot.context.dispatch(deploy(source="test")))
        said = [(r.target, r.text) for r in self.source.sent]
        self.assertEqual(said, [("#ops", "alice deployed 1.2 to prod")])
        self.assertIn(("audit", {"env": "prod", "version": "1.2"}), Audit.seen)
        self.successResultOf(self.bot.context.dispatch(deploy(env="staging", source="test")))
        self.assertEqual(len(self.source.sent), 1)
        stats = self.bot.event_stats.reactors
        self.assertEqual((stats["announce"].fired, stats["announce"].condition_false), (1, 1))
        self.assertEqual(stats["audit"].fired, 2)

    def test_published_event_validated(self):
        """A publish whose payload breaks the new type's schema is counted as failed."""
        event = Event(source="test", type="deploy", data={"env": "prod"})  # no version
        self.successResultOf(self.bot.context.dispatch(event))
        self.assertEqual(self.bot.event_stats.reactors["audit"].failed, 1)
        self.assertTrue(self.flushLoggedErrors())

    def test_code_reactor(self):
        """A plugin's reactor, added through the bot interface."""
        fired = []
        self.bot.context.reactors.add(
            Reactor("mine", frozenset({"audit"}), fired.append, lambda e: True, origin="testing")
        )
        self.successResultOf(self.bot.context.dispatch(deploy(source="test")))
        self.assertEqual([e.type for e in fired], ["audit"])

    def test_reload_replaces_config_reactors(self):
        """A config reload rebuilds the config's reactors, leaving plugins' alone."""
        self.bot.context.reactors.add(Reactor("mine", frozenset({"x"}), print, origin="testing"))
        path = self.directory / "bot.ini"
        text = path.read_text()
        # Only that section goes (the rest of the file, [bot] load included, stays).
        start = text.index("[reactor:audit]")
        end = text.find("\n[", start + 1)
        path.write_text(text[:start] + (text[end + 1 :] if end != -1 else ""))
        self.assertIn("[bot]", path.read_text())
        self.assertEqual(self.bot.reload_config(), [])
        self.assertEqual(sorted(r.name for r in self.bot.reactors), ["announce", "mine"])


class LoopTests(PluginTestCase):
    """A reactor that publishes what it listens to."""

    load = ()
    extra_processors = (Audit,)
    plugin_config = {
        "reactor:echo": {"listens": "deploy", "action": "publish", "publish_type": "deploy"},
    }

    def setUp(self):
        Audit.seen = []
        super().setUp()

    def test_no_loop(self):
        """A reactor never fires on an event it led to: one copy, not a loop."""
        self.successResultOf(self.bot.context.dispatch(deploy(source="test")))
        self.assertEqual([seen[0] for seen in Audit.seen], ["deploy", "deploy"])
        self.assertEqual(self.bot.event_stats.reactors["echo"].fired, 1)


class ConfigErrorTests(SynchronousTestCase):
    def errors(self, text):
        path = Path(self.mktemp())
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(dedent(text))
        with self.assertRaises(ConfigErrors) as raised:
            read_config(path)
        return [(e.section, e.key) for e in raised.exception.errors]

    def test_reactor_sections(self):
        """Each action's keys, the condition, the URL and the action are checked with
        the rest of the config."""
        found = self.errors(
            """
            [reactor:a]
            listens = deploy
            action = webhook
            [reactor:b]
            listens = deploy
            action = webhook
            url = ftp://example.org/
            [reactor:c]
            listens = deploy
            action = say
            condition = open('/etc/passwd')
            message = hi
            [reactor:d]
            action = shout
            """
        )
        self.assertEqual(
            found,
            [
                ("reactor:a", "url"),
                ("reactor:b", "url"),
                ("reactor:c", "condition"),
                ("reactor:d", "action"),
                ("reactor:d", "listens"),
            ],
        )


class Hook(resource.Resource):
    """A webhook receiver: answers with the next of ``codes`` (200 when none are left),
    or never, with ``hang``; records each request's body and headers."""

    isLeaf = True

    def __init__(self, codes=(), hang=False):
        super().__init__()
        self.codes = list(codes)
        self.hang = hang
        self.requests = []
        self.waiting = []

    def render_POST(self, request):
        self.requests.append((request.content.read(), request.requestHeaders))
        if self.hang:
            self.waiting.append(request)
            return server.NOT_DONE_YET
        request.setResponseCode(self.codes.pop(0) if self.codes else 200)
        return b"ok"


class WebhookTests(TestCase):
    """Webhooks to a real HTTP server on loopback, on the real reactor."""

    timeout = 30

    def serve(self, hook):
        site = server.Site(hook)
        site.noisy = False
        port = reactor.listenTCP(0, site, interface="127.0.0.1")
        self.addCleanup(port.stopListening)

        def finish_waiting():
            for request in hook.waiting:
                if not request.finished and not request._disconnected:
                    request.setResponseCode(200)
                    request.finish()

        self.addCleanup(finish_waiting)
        return f"http://127.0.0.1:{port.getHost().port}/hook"

    def webhook(self, url, **kw):
        kw.setdefault("secret", "s3cret")
        kw.setdefault("timeout", 5.0)
        kw.setdefault("retries", 3)
        kw.setdefault("retry_delay", 0.01)
        kw.setdefault("allow_private", True)
        return Webhook("ship", url, reactor=reactor, **kw)

    @defer.inlineCallbacks
    def test_signed_post(self):
        """The event is posted as JSON with a signature the receiver can check."""
        hook = Hook()
        yield self.webhook(self.serve(hook))(deploy(public=True, channel="#ops"))
        ((body, headers),) = hook.requests
        expected = "sha256=" + hmac.new(b"s3cret", body, hashlib.sha256).hexdigest()
        self.assertEqual(headers.getRawHeaders("x-botcore-signature"), [expected])
        self.assertEqual(signature("s3cret", body), expected)
        posted = json.loads(body)
        self.assertEqual(posted["reactor"], "ship")
        self.assertEqual(posted["event"]["data"], {"env": "prod", "version": "1.2"})
        self.assertEqual(headers.getRawHeaders("content-type"), ["application/json"])

    @defer.inlineCallbacks
    def test_retries(self):
        """5xx answers are retried with backoff until one succeeds."""
        hook = Hook(codes=[500, 503])
        yield self.webhook(self.serve(hook))(deploy())
        self.assertEqual(len(hook.requests), 3)

    @defer.inlineCallbacks
    def test_gives_up(self):
        """After the last retry it fails; a 4xx answer is not retried."""
        hook = Hook(codes=[500, 500, 500])
        failure = yield self.assertFailure(
            self.webhook(self.serve(hook), retries=2)(deploy()), WebhookFailed
        )
        self.assertEqual((failure.status, len(hook.requests)), (500, 3))
        hook = Hook(codes=[404])
        yield self.assertFailure(self.webhook(self.serve(hook))(deploy()), WebhookFailed)
        self.assertEqual(len(hook.requests), 1)

    @defer.inlineCallbacks
    def test_private_refused(self):
        """By default a loopback address is refused and nothing is sent."""
        hook = Hook()
        webhook = self.webhook(self.serve(hook), allow_private=False)
        yield self.assertFailure(webhook(deploy()), Refused)
        self.assertEqual(hook.requests, [])

    @defer.inlineCallbacks
    def test_timeout(self):
        """A receiver that does not answer times out (and is retried)."""
        hook = Hook(hang=True)
        webhook = self.webhook(self.serve(hook), timeout=0.2, retries=1)
        failure = yield self.assertFailure(webhook(deploy()), WebhookTimeout)
        self.assertIn("no answer in 0.2s", str(failure))
        self.assertEqual(len(hook.requests), 2)

    @defer.inlineCallbacks
    def test_never_holds_the_conversation(self):
        """The event's reply is sent at once while its webhook is still waiting."""
        hook = Hook(hang=True)
        catalogue = Catalogue()
        dispatcher = Dispatcher(
            reactor=reactor, threadpool=InlineThreadPool(), catalogue=catalogue
        )
        context = StubContext(reactor=reactor, dispatcher=dispatcher)
        source = MemorySource("test", context)
        context.add_source(source)
        dispatcher._get_source = context.get_source

        class Answer(Processor):
            event_types = ("deploy",)
            addressed = False

            @handler
            def answer(self, event):
                event.addresponse("deployed", target="#ops")

        dispatcher.set_chain([Answer("x", context)])
        dispatcher.startService()
        self.addCleanup(dispatcher.stopService)
        webhook = self.webhook(self.serve(hook), timeout=2.0, retries=0)
        posted = []
        context.reactors.add(
            Reactor("ship", frozenset({"deploy"}), lambda e: posted.append(webhook(e)))
        )
        yield dispatcher.dispatch(deploy(source="test"))
        self.assertEqual([r.text for r in source.sent], ["deployed"])
        self.assertFalse(posted[0].called)  # still waiting for the receiver
        while not hook.requests:
            yield task.deferLater(reactor, 0.01, lambda: None)
        for request in hook.waiting:
            request.setResponseCode(200)
            request.finish()
        yield posted[0]


# -- the README's worked example, as written there --------------------------------------

DEPLOY = EventTypeSpec(
    "deploy",
    "A deployment finished.",
    {
        "type": "object",
        "properties": {"env": {"enum": ["prod", "staging"]}, "version": {"type": "string"}},
        "required": ["env", "version"],
    },
)

example_log = Logger()


class Deployed(Processor):
    usage = "deployed <version> to <env>"

    def setup(self):
        self.bot.declare_event_type(DEPLOY)

    @match("deployed {version:chunk} to {env:word}")
    def deployed(self, event, version, env):
        deploy = Event(
            source=event.source,
            type="deploy",
            sender=event.sender,
            channel=event.channel,
            public=event.public,
            data={"env": env, "version": version},
        )
        # Processors run on a worker thread; dispatch is the reactor's.
        self.bot.call_from_thread(self.publish, event, deploy)

    def publish(self, event, deploy):
        self.bot.dispatch(deploy).addErrback(
            lambda failure: example_log.warn(
                "deploy refused: {why}", why=failure.getErrorMessage()
            )
        )


class RecordingAgent:
    """Stands in for the network under the real Webhook: records each request and
    answers 200."""

    def __init__(self):
        self.requests = []

    def request(self, method, url, headers, body):
        sent = []
        body.startProducing(_Consumer(sent))
        self.requests.append((method, url, headers, b"".join(sent)))
        return defer.succeed(_Response())


class _Consumer:
    def __init__(self, parts):
        self.parts = parts

    def write(self, data):
        self.parts.append(data)


class _Response:
    code = 200

    def deliverBody(self, protocol):
        protocol.connectionLost(None)


class WorkedExampleTests(PluginTestCase):
    """README's deploy plugin and [reactor:deploy-hook], on a real bot."""

    load = ()
    extra_processors = (Deployed,)
    plugin_config = {
        "reactor:deploy-hook": {
            "listens": "deploy",
            "condition": "data.env == 'prod'",
            "action": "webhook",
            "url": "https://hooks.example.org/deploy",
            "secret": "s3cret",
        },
    }

    def setUp(self):
        super().setUp()
        (hook,) = list(self.bot.reactors)
        self.agent = hook.reaction.agent = RecordingAgent()

    def test_prod_posted(self):
        """A prod deploy is posted, signed; staging is not; moon is refused."""
        self.say("deployed 1.4 to prod")
        ((method, url, headers, body),) = self.agent.requests
        self.assertEqual((method, url), (b"POST", b"https://hooks.example.org/deploy"))
        self.assertEqual(headers.getRawHeaders("x-botcore-signature"), [signature("s3cret", body)])
        self.assertEqual(json.loads(body)["event"]["data"], {"env": "prod", "version": "1.4"})
        self.say("deployed 1.5 to staging")
        self.say("deployed 1.6 to moon")
        self.assertEqual(len(self.agent.requests), 1)
        tally = self.bot.event_stats.reactors["deploy-hook"]
        self.assertEqual((tally.fired, tally.condition_false), (1, 1))
        self.assertEqual(self.bot.catalogue.refused["deploy"], 1)
