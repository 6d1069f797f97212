"""The web front door's JSON API over a real loopback listener, with treq: who may call
it (tokens missing, wrong, revoked; permissions), every kind of bad input, the sources
and plugins it drives, configuration as the chat commands do it, sending and firing
messages; and health, readiness and metrics as Prometheus parses them."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families
from twisted.internet.defer import ensureDeferred
from twisted.trial.unittest import TestCase

from botcore.web import tokens
from tests.sources.web_harness import WebBot


class WebTestCase(TestCase):
    timeout = 120
    web_config = ""

    def setUp(self):
        self.web = WebBot(web=self.web_config)
        d = ensureDeferred(self.web.start())
        d.addCallback(lambda _: self.addCleanup(lambda: ensureDeferred(self.web.stop())))
        return d

    def call(self, *args, **kw):
        return ensureDeferred(self.web.call(*args, **kw))

    def assertError(self, result, status, words, field=None):
        code, body = result
        self.assertEqual(code, status, body)
        self.assertEqual(body["error"]["status"], status)
        self.assertIn(words, body["error"]["message"])
        if field is not None:
            self.assertEqual(body["error"].get("field"), field)


class AuthenticationTests(WebTestCase):
    async def test_missing(self):
        """A call without a token is 401, saying how to authenticate."""
        self.assertError(await self.call("GET", "/api/v1/status", user=None), 401, "Bearer")

    async def test_not_bearer(self):
        """An Authorization header of another scheme is 401."""
        result = await self.call(
            "GET", "/api/v1/status", user=None, headers={"Authorization": "Basic YWxpY2U6eA=="}
        )
        self.assertError(result, 401, "Bearer <token>")

    async def test_wrong(self):
        """An unknown token is 401."""
        wrong = tokens.PREFIX + "x" * 43
        self.assertError(await self.call("GET", "/api/v1/status", token=wrong), 401, "unknown")

    async def test_revoked(self):
        """A token works until it is revoked, then is 401."""
        code, body = await self.call("GET", "/api/v1/status")
        self.assertEqual((code, body["state"], body["name"]), (200, "running", "webbot"))
        with self.web.session() as session:
            account = session.get(tokens.APIToken, self.web.token_ids["alice"]).account_id
            self.assertTrue(tokens.revoke_token(session, account, self.web.token_ids["alice"]))
            session.commit()
        self.assertError(await self.call("GET", "/api/v1/status"), 401, "revoked")

    async def test_stored_hashed(self):
        """Only the token's digest is stored, never the token."""
        with self.web.session() as session:
            row = session.get(tokens.APIToken, self.web.token_ids["alice"])
            self.assertNotIn(self.web.tokens["alice"], (row.digest, row.label))
            self.assertEqual(row.digest, tokens.digest_of(self.web.tokens["alice"]))

    async def test_permissions(self):
        """Each call needs the permission of its chat command: bob has none."""
        for method, path, permission in [
            ("GET", "/api/v1/sources", "sources"),
            ("POST", "/api/v1/sources/console/disconnect", "sources"),
            ("GET", "/api/v1/plugins", "plugins"),
            ("POST", "/api/v1/plugins/basic/reload", "plugins"),
            ("GET", "/api/v1/config/bot/name", "config"),
            ("POST", "/api/v1/stop", "admin"),
            ("GET", "/api/v1/log", "admin"),
        ]:
            result = await self.call(method, path, user="bob")
            self.assertError(result, 403, f"{permission!r} permission")
        self.assertEqual(self.web.bot.source_states()["console"], "connected")
        # What needs no permission in chat needs none here either.
        code, body = await self.call("POST", "/api/v1/fire", {"text": "ping"}, user="bob")
        self.assertEqual(code, 200, body)

    async def test_me(self):
        """/me names the account and the control permissions it holds."""
        code, body = await self.call("GET", "/api/v1/me")
        self.assertEqual((code, body["account"], body["by"]), (200, "alice", "token"))
        self.assertEqual(set(body["permissions"].values()), {True})
        code, body = await self.call("GET", "/api/v1/me", user="bob")
        self.assertEqual(
            body["permissions"],
            {"sources": False, "plugins": False, "config": False, "admin": False},
        )

    async def test_source_grants_count(self):
        """Permissions resolve as in chat: a grant in the account row decides."""
        with self.web.session() as session:
            from botcore.accounts import models as accounts

            bob = accounts.find_account(session, "bob")
            accounts.set_permission(session, bob.id, "sources", "yes")
            session.commit()
        self.web.bot.auth.invalidate()
        code, body = await self.call("GET", "/api/v1/sources", user="bob")
        self.assertEqual(code, 200, body)


class InputTests(WebTestCase):
    web_config = "max_body = 1024\n"

    async def test_invalid_json(self):
        """A body that is not JSON is 400, saying so."""
        result = await self.call(
            "POST", "/api/v1/fire", data=b'{"text": ', headers={"Content-Type": "application/json"}
        )
        self.assertError(result, 400, "not valid JSON")

    async def test_not_an_object(self):
        """A JSON body that is not an object is 400."""
        self.assertError(await self.call("POST", "/api/v1/fire", ["ping"]), 400, "object")

    async def test_wrong_type(self):
        """A field of the wrong type is 400, naming it."""
        result = await self.call("POST", "/api/v1/fire", {"text": 5})
        self.assertError(result, 400, "must be a string", "text")
        result = await self.call("POST", "/api/v1/fire", {"text": "ping", "addressed": 1})
        self.assertError(result, 400, "must be a boolean", "addressed")

    async def test_unknown_field(self):
        """An unknown field is 400, naming it."""
        result = await self.call("POST", "/api/v1/fire", {"text": "ping", "txet": "x"})
        self.assertError(result, 400, "unknown field 'txet'", "txet")

    async def test_missing_field(self):
        """A missing required field is 400, naming it."""
        result = await self.call("POST", "/api/v1/messages", {"source": "mem", "text": "x"})
        self.assertError(result, 400, "'target' is required", "target")

    async def test_content_type(self):
        """A body that is not declared JSON is 415."""
        result = await self.call(
            "POST",
            "/api/v1/fire",
            data=b'{"text": "ping"}',
            headers={"Content-Type": "text/plain"},
        )
        self.assertError(result, 415, "must be JSON")

    async def test_too_large(self):
        """A body over max_body is 413, and nothing is processed."""
        registry = self.web.bot.get_source("web").metrics.registry
        labels = {"source": "web", "type": "message"}
        result = await self.call("POST", "/api/v1/fire", {"text": "x" * 2000})
        self.assertError(result, 413, "over 1024 bytes")
        self.assertIsNone(registry.get_sample_value("botcore_events_total", labels))
        await self.call("POST", "/api/v1/fire", {"text": "x" * 900})
        self.assertEqual(registry.get_sample_value("botcore_events_total", labels), 1)

    async def test_too_large_chunked(self):
        """A body of no declared length (chunked) is cut off at max_body as it arrives."""
        from twisted.internet import reactor
        from twisted.internet.defer import succeed
        from twisted.web.client import Agent, readBody
        from twisted.web.http_headers import Headers
        from twisted.web.iweb import UNKNOWN_LENGTH, IBodyProducer
        from zope.interface import implementer

        @implementer(IBodyProducer)
        class Chunks:
            length = UNKNOWN_LENGTH

            def startProducing(self, consumer):
                for _ in range(10):
                    consumer.write(b'{"text": "' + b"x" * 500 + b'"}')
                return succeed(None)

            def pauseProducing(self):
                pass

            def stopProducing(self):
                pass

        headers = Headers(
            {
                "Authorization": [f"Bearer {self.web.tokens['alice']}"],
                "Content-Type": ["application/json"],
            }
        )
        response = await Agent(reactor).request(
            b"POST", f"{self.web.base}/api/v1/fire".encode(), headers, Chunks()
        )
        body = await readBody(response)
        self.assertEqual(response.code, 413, body)
        self.assertIn(b"over 1024 bytes", body)

    async def test_unknown_source(self):
        """Sending to a source that does not exist is 404, naming the field."""
        result = await self.call(
            "POST", "/api/v1/messages", {"source": "nowhere", "target": "#x", "text": "hi"}
        )
        self.assertError(result, 404, "'nowhere'", "source")
        result = await self.call("POST", "/api/v1/sources/nowhere/connect")
        self.assertError(result, 404, "no source called 'nowhere'")

    async def test_unknown_action_and_path(self):
        """An unknown action, path or method is a JSON 404 or 405."""
        self.assertError(
            await self.call("POST", "/api/v1/sources/console/explode"),
            404,
            "unknown source action",
        )
        self.assertError(await self.call("GET", "/api/v1/nothing"), 404, "nothing at")
        self.assertError(await self.call("DELETE", "/api/v1/status"), 405, "not allowed")

    async def test_fire_target(self):
        """A fired message's target must be a channel of the web source."""
        result = await self.call("POST", "/api/v1/fire", {"text": "ping", "target": "alice"})
        self.assertError(result, 400, "#channel", "target")
        self.assertError(await self.call("POST", "/api/v1/fire", {"text": "  "}), 400, "empty")


class OperationTests(WebTestCase):
    async def test_fire_answered(self):
        """A fired message runs through the chain and its replies come back."""
        code, body = await self.call("POST", "/api/v1/fire", {"text": "ping"})
        self.assertEqual(code, 200, body)
        self.assertTrue(body["processed"])
        self.assertEqual(
            [(r["target"], r["text"]) for r in body["responses"]], [("alice", "pong")]
        )

    async def test_fire_in_channel(self):
        """In a channel, the bot answers when addressed, as on any network."""
        code, body = await self.call(
            "POST", "/api/v1/fire", {"text": "webbot: ping", "target": "#ops"}
        )
        self.assertEqual(code, 200, body)
        self.assertEqual(
            [(r["target"], r["text"]) for r in body["responses"]], [("#ops", "alice: pong")]
        )
        code, body = await self.call("POST", "/api/v1/fire", {"text": "ping", "target": "#ops"})
        self.assertEqual(body["responses"], [])

    async def test_fire_into_other_source(self):
        """A message fired into a channel of another source runs as if it arrived there:
        its replies go there and come back in the answer; it needs ``sources``."""
        code, body = await self.call(
            "POST",
            "/api/v1/fire",
            {"text": "webbot: ping", "source": "mem", "target": "#chan"},
        )
        self.assertEqual(code, 200, body)
        self.assertEqual(
            [(r["source"], r["target"], r["text"]) for r in body["responses"]],
            [("mem", "#chan", "alice: pong")],
        )
        self.assertEqual(
            [(r.target, r.text) for r in self.web.mem.sent], [("#chan", "alice: pong")]
        )
        recent = self.web.bot.get_source("web").metrics.recent[-1]
        self.assertEqual((recent["source"], recent["channel"]), ("mem", "#chan"))
        result = await self.call(
            "POST",
            "/api/v1/fire",
            {"text": "ping", "source": "mem", "target": "#chan"},
            user="bob",
        )
        self.assertError(result, 403, "'sources' permission")

    async def test_fire_into_other_source_errors(self):
        """An unknown source is 404; a target that is not one of its channels is 400; a
        source that is not connected is 409."""
        result = await self.call(
            "POST", "/api/v1/fire", {"text": "ping", "source": "nowhere", "target": "#x"}
        )
        self.assertError(result, 404, "'nowhere'", "source")
        for target in (None, "someone", ""):
            result = await self.call(
                "POST", "/api/v1/fire", {"text": "ping", "source": "mem", "target": target}
            )
            self.assertError(result, 400, "channel of source mem", "target")
        await self.call("POST", "/api/v1/sources/mem/disconnect")
        result = await self.call(
            "POST", "/api/v1/fire", {"text": "ping", "source": "mem", "target": "#x"}
        )
        self.assertError(result, 409, "not connected")
        self.assertEqual(self.web.mem.sent, [])

    async def test_fired_as_account(self):
        """A fired message is from the token's account, authenticated."""
        code, body = await self.call("POST", "/api/v1/fire", {"text": "list tokens"})
        self.assertEqual(code, 200, body)
        self.assertIn("tests", body["responses"][0]["text"])

    async def test_sources(self):
        """Sources are listed with their states, disconnected and connected again."""
        code, body = await self.call("GET", "/api/v1/sources")
        self.assertEqual(code, 200)
        states = {s["name"]: (s["type"], s["state"]) for s in body["sources"]}
        self.assertEqual(states["console"], ("telnet", "connected"))
        self.assertEqual(states["web"], ("web", "connected"))
        code, body = await self.call("POST", "/api/v1/sources/console/disconnect")
        self.assertEqual((code, body["state"]), (200, "stopped"))
        code, body = await self.call("GET", "/readyz", user=None)
        self.assertEqual((code, body["checks"]["sources"]), (503, False))
        code, body = await self.call("POST", "/api/v1/sources/console/connect")
        self.assertEqual((code, body["state"]), (200, "connected"))
        code, body = await self.call("POST", "/api/v1/sources/console/reload")
        self.assertEqual((code, body["state"]), (200, "connected"))
        self.assertIsNot(self.web.bot.get_source("console"), None)

    async def test_plugins(self):
        """Plugins are listed, reloaded, unloaded and loaded; unknown ones are 404."""
        code, body = await self.call("GET", "/api/v1/plugins")
        self.assertIn("basic", [p["name"] for p in body["loaded"]])
        code, body = await self.call("POST", "/api/v1/plugins/basic/reload")
        self.assertEqual((code, body["loaded"]), (200, True))
        code, body = await self.call("GET", "/api/v1/plugins")
        self.assertEqual({p["name"]: p["reloads"] for p in body["loaded"]}["basic"], 1)
        code, body = await self.call("POST", "/api/v1/plugins/basic/unload")
        self.assertEqual((code, body["loaded"]), (200, False))
        code, body = await self.call("POST", "/api/v1/fire", {"text": "ping"})
        self.assertNotIn("pong", [r["text"] for r in body["responses"]])
        self.assertError(
            await self.call("POST", "/api/v1/plugins/basic/unload"), 409, "cannot unload"
        )
        code, body = await self.call("POST", "/api/v1/plugins/basic/load")
        self.assertEqual((code, body["loaded"]), (200, True))
        self.assertError(await self.call("POST", "/api/v1/plugins/nosuch/load"), 404, "nosuch")

    async def test_config(self):
        """Config is read and set as the chat commands do it, answered as data: the
        option's section, name, value, type, default and help."""
        code, body = await self.call("GET", "/api/v1/config/bot/name")
        self.assertEqual(code, 200, body)
        self.assertEqual(
            {k: body[k] for k in ("section", "option", "value", "secret", "type")},
            {
                "section": "bot",
                "option": "name",
                "value": "webbot",
                "secret": False,
                "type": "string",
            },
        )
        self.assertTrue(body["help"])
        code, body = await self.call("GET", "/api/v1/config/bot/threads")
        self.assertEqual((code, body["value"], body["type"]), (200, 4, "integer"))
        self.assertIsInstance(body["default"], int)
        code, body = await self.call("GET", "/api/v1/config/bot/names")
        self.assertEqual((body["value"], body["default"], body["type"]), ([], [], "list"))
        result = await self.call("PUT", "/api/v1/config/plugin:basic/nothing", {"value": "1"})
        self.assertError(result, 404, "has no option nothing", "key")
        code, body = await self.call("PUT", "/api/v1/config/bot/names", {"value": "robo"})
        self.assertEqual(code, 200, body)
        self.assertEqual((body["value"], body["file"]), (["robo"], "bot.local.ini"))
        self.assertEqual(self.web.bot.names, ["webbot", "robo"])
        result = await self.call("PUT", "/api/v1/config/bot/threads", {"value": "many"})
        self.assertError(result, 400, "expected", "value")
        result = await self.call("PUT", "/api/v1/config/bot/names", {"value": 3})
        self.assertError(result, 400, "must be a string", "value")

    async def test_config_without_admin_plugin(self):
        """Without the admin plugin nothing carries the command out: 503, saying so."""
        self.web.bot.plugins.unload_plugin("admin")
        result = await self.call("GET", "/api/v1/config/bot/name")
        self.assertError(result, 503, "admin plugin")

    async def test_config_secret(self):
        """A secret option's value is never in the answer."""
        code, body = await self.call("GET", "/api/v1/config/database:main/url")
        self.assertEqual(code, 200, body)
        self.assertEqual((body["secret"], body["value"], body["default"]), (True, None, None))
        self.assertTrue(body["shown"].startswith("sqlite:"), body)

    async def test_config_rate_limited(self):
        """Config commands go through chat's rate limit: past it the bot's warning (once
        per window, as in chat), then 429, not silence."""
        for _ in range(5):
            code, body = await self.call("GET", "/api/v1/config/bot/name")
            self.assertEqual(code, 200, body)
        self.assertError(await self.call("GET", "/api/v1/config/bot/name"), 429, "too fast")
        self.assertError(await self.call("GET", "/api/v1/config/bot/name"), 429, "too many")

    async def test_send_message(self):
        """A message is sent to a target on a source."""
        code, body = await self.call(
            "POST", "/api/v1/messages", {"source": "mem", "target": "#chan", "text": "hello"}
        )
        self.assertEqual(code, 200, body)
        self.assertEqual([(r.target, r.text) for r in self.web.mem.sent], [("#chan", "hello")])
        self.assertEqual([(r["source"], r["text"]) for r in body["sent"]], [("mem", "hello")])
        # Shaped for its source by the chain's Format, as any reply: no multi-line there.
        self.web.mem.supports = frozenset()
        code, body = await self.call(
            "POST",
            "/api/v1/messages",
            {"source": "mem", "target": "#chan", "text": "a\nb", "action": True},
        )
        self.assertEqual(code, 200, body)
        self.assertEqual(self.web.mem.sent[-1].text, "*a b*")

    async def test_stop(self):
        """An admin can stop the bot (answered before it stops)."""
        stopped = []
        self.web.bot.stop = lambda: stopped.append(True)
        code, body = await self.call("POST", "/api/v1/stop")
        self.assertEqual((code, body), (202, {"stopping": True}))
        from twisted.internet import reactor
        from twisted.internet.task import deferLater

        await deferLater(reactor, 0, lambda: None)
        self.assertEqual(stopped, [True])

    async def test_openapi(self):
        """The OpenAPI document is served and names every path."""
        code, body = await self.call("GET", "/api/v1/openapi.json", user=None)
        self.assertEqual(code, 200)
        self.assertEqual(body["openapi"][:2], "3.")
        self.assertIn("/fire", body["paths"])
        self.assertIn("/sources/{name}/{action}", body["paths"])
        fire = body["paths"]["/fire"]["post"]
        fields = fire["requestBody"]["content"]["application/json"]["schema"]["properties"]
        self.assertEqual(set(fields), {"text", "source", "target", "addressed"})
        self.assertTrue({"403", "404", "409"} <= set(fire["responses"]))
        option = body["paths"]["/config/{section}/{key}"]["get"]["responses"]["200"]
        schema = option["content"]["application/json"]["schema"]
        self.assertTrue(
            {"section", "option", "value", "type", "default"} <= set(schema["required"])
        )


class TypedEventTests(WebTestCase):
    def setUp(self):
        d = super().setUp()

        def declare(_):
            from botcore.bus.catalogue import EventTypeSpec

            self.web.bot.catalogue.declare(
                EventTypeSpec(
                    "deploy",
                    "A deployment finished.",
                    {
                        "type": "object",
                        "properties": {"version": {"type": "string"}},
                        "required": ["version"],
                    },
                )
            )

        return d.addCallback(declare)

    async def test_valid_event(self):
        """A declared type with a payload that fits its schema runs through the chain."""
        code, body = await self.call(
            "POST", "/api/v1/events", {"type": "deploy", "data": {"version": "1.2"}}
        )
        self.assertEqual(code, 200, body)
        self.assertIn("event", body)
        code, body = await self.call("GET", "/api/v1/event-types")
        self.assertIn("deploy", [t["name"] for t in body["types"]])

    async def test_invalid_payload(self):
        """A payload that breaks the schema is 400, naming the field, before any
        processor sees it."""
        registry = self.web.bot.get_source("web").metrics.registry
        result = await self.call(
            "POST", "/api/v1/events", {"type": "deploy", "data": {"version": 12}}
        )
        self.assertError(result, 400, "data.version")
        result = await self.call("POST", "/api/v1/events", {"type": "deploy", "data": {}})
        self.assertError(result, 400, "'version' is a required property")
        self.assertIsNone(
            registry.get_sample_value("botcore_events_total", {"source": "web", "type": "deploy"})
        )

    async def test_refused_types(self):
        """Undeclared types, messages and lifecycle events cannot be fired this way; it
        needs the admin permission."""
        result = await self.call("POST", "/api/v1/events", {"type": "nosuch"})
        self.assertError(result, 400, "not a declared event type", "type")
        for kind in ("message", "lifecycle", "webhook"):
            result = await self.call("POST", "/api/v1/events", {"type": kind})
            self.assertError(result, 400, "come from elsewhere", "type")
        result = await self.call("POST", "/api/v1/events", {"type": "deploy"}, user="bob")
        self.assertError(result, 403, "'admin' permission")
        result = await self.call("POST", "/api/v1/events", {"type": "deploy", "data": []})
        self.assertError(result, 400, "must be an object", "data")


class ObservabilityTests(WebTestCase):
    async def metrics(self):
        """/metrics parsed by prometheus_client: (families by name, a function giving
        the value of one sample of a family, by its name's suffix and labels, or None)."""
        code, text = await self.call("GET", "/metrics", user=None)
        self.assertEqual(code, 200, text)
        families = {f.name: f for f in text_string_to_metric_families(text)}

        def value(family, suffix="", **labels):
            for sample in families[family].samples:
                if sample.name == family + suffix and all(
                    sample.labels.get(k) == v for k, v in labels.items()
                ):
                    return sample.value
            return None

        return families, value

    async def test_disabled_source_not_awaited(self):
        """A source the config leaves disabled does not hold readiness back."""
        ini = self.web.folder / "bot.ini"
        ini.write_text(ini.read_text() + "[source:off]\ntype = telnet\nenabled = no\n")
        self.assertEqual(self.web.bot.reload_config(), [])
        self.assertEqual(self.web.bot.source_states()["off"], "not loaded")
        code, body = await self.call("GET", "/readyz", user=None)
        self.assertEqual(code, 200, body)

    async def test_health(self):
        """/healthz says alive; /readyz checks running, database and sources."""
        code, body = await self.call("GET", "/healthz", user=None)
        self.assertEqual((code, body["alive"]), (200, True))
        code, body = await self.call("GET", "/readyz", user=None)
        self.assertEqual(code, 200, body)
        self.assertEqual(body["checks"], {"running": True, "database": True, "sources": True})

    async def test_recent_events(self):
        """The latest events are listed for admins, without their text."""
        await self.call("POST", "/api/v1/fire", {"text": "ping secretword"})
        code, body = await self.call("GET", "/api/v1/events/recent")
        self.assertEqual(code, 200, body)
        last = body["events"][-1]
        self.assertEqual(
            (last["source"], last["type"], last["sender"]), ("web", "message", "alice")
        )
        self.assertNotIn("secretword", str(body))
        self.assertError(
            await self.call("GET", "/api/v1/events/recent", user="bob"), 403, "'admin' permission"
        )

    async def test_metrics(self):
        """/metrics parses as Prometheus text and counts what happened."""
        await self.call("POST", "/api/v1/fire", {"text": "ping"})
        await self.call("POST", "/api/v1/sources/console/disconnect")
        await self.call("POST", "/api/v1/sources/console/connect")
        await self.call("POST", "/api/v1/plugins/basic/reload")
        _, value = await self.metrics()
        self.assertGreaterEqual(value("botcore_events", "_total", source="web", type="message"), 1)
        self.assertGreaterEqual(value("botcore_replies_sent", "_total", source="web"), 1)
        self.assertGreaterEqual(
            value("botcore_processor_seconds", "_count", plugin="basic", processor="Ping"), 1
        )
        self.assertEqual(value("botcore_source_state", source="console", state="connected"), 1)
        self.assertEqual(
            value("botcore_source_state_changes", "_total", source="console", state="connecting"),
            2,
        )
        self.assertEqual(value("botcore_plugin_reloads", "_total", plugin="basic"), 1)
        self.assertEqual(value("botcore_up"), 1)
        self.assertEqual(value("botcore_dispatcher_threads"), 4)

    async def test_every_listed_metric(self):
        """Every metric the issue lists is exported and counts what happened: events by
        source and type (and those a source left out), processor latencies and errors,
        replies, queue depths, worker pool use, database retries and outages, source
        reconnects and states, reload counts and durations of plugins and sources."""
        bot = self.web.bot
        web = bot.get_source("web")
        await self.call("POST", "/api/v1/fire", {"text": "ping"})
        code, _ = await self.call("POST", "/api/v1/plugins/basic/reload")
        self.assertEqual(code, 200)
        code, _ = await self.call("POST", "/api/v1/sources/console/reload")
        self.assertEqual(code, 200)
        self.assertEqual((await self.call("POST", "/api/v1/plugins/nosuch/reload"))[0], 409)
        # What the IRC source does with chatter nobody wants (test_irc_source runs it).
        from botcore.event import Event, EventType, Message, Sender

        chatter = Event(
            source="mem",
            type=EventType.MESSAGE,
            sender=Sender("c", "u", "u"),
            channel="#chan",
            public=True,
            message=Message("just chatting"),
        )
        bot.skipped(chatter)
        # A retried step, as the dispatcher tells it; an outage, as the database finds it.
        web.metrics.step_retried("step", "conflict")
        database = bot.databases["main"]
        database.gave_up("unavailable", OSError("gone"), "a test")
        self.addCleanup(database._statement_done)
        self.web.mem.set_state("reconnecting")
        self.web.mem.set_state("connected")
        families, value = await self.metrics()

        self.assertGreaterEqual(value("botcore_events", "_total", source="web", type="message"), 1)
        self.assertEqual(
            value("botcore_events_skipped", "_total", source="mem", type="message"), 1
        )
        self.assertGreaterEqual(
            value("botcore_processor_seconds", "_bucket", plugin="basic", le="+Inf"), 1
        )
        self.assertIn("botcore_processor_errors", families)
        self.assertGreaterEqual(value("botcore_replies_sent", "_total", source="web"), 1)
        self.assertIn("botcore_queue_depth", families)
        for gauge in ("inflight", "active", "threads", "capacity", "stuck"):
            self.assertIsNotNone(value(f"botcore_dispatcher_{gauge}"), gauge)
        for counter in ("stuck_runs", "dropped"):
            self.assertEqual(value(f"botcore_dispatcher_{counter}", "_total"), 0, counter)
        self.assertEqual(value("botcore_database_retries", "_total", kind="conflict"), 1)
        self.assertEqual(value("botcore_database_unavailable", database="main"), 1)
        self.assertEqual(value("botcore_database_outages", "_total", database="main"), 1)
        self.assertEqual(value("botcore_source_reconnects", "_total", source="mem"), 1)
        self.assertEqual(value("botcore_source_reconnects", "_total", source="console"), 0)
        self.assertEqual(value("botcore_source_state", source="mem", state="connected"), 1)
        self.assertEqual(value("botcore_plugin_reloads", "_total", plugin="basic"), 1)
        for kind, name in (("plugin", "basic"), ("source", "console")):
            labels = {"kind": kind, "name": name, "outcome": "ok"}
            self.assertEqual(value("botcore_reload_seconds", "_count", **labels), 1)
            self.assertGreater(value("botcore_reload_seconds", "_sum", **labels), 0)
        self.assertIsNone(value("botcore_reload_seconds", "_count", kind="plugin", name="nosuch"))
