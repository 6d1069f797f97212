"""Inbound webhooks: a plugin's ``@webhook`` route over a real loopback listener, its
HMAC signature check, the request as an event through the chain (answered in chat), and
the route living and dying with its plugin across unload, load and reload."""

from __future__ import annotations

import json

from twisted.internet.defer import ensureDeferred
from twisted.trial.unittest import SynchronousTestCase, TestCase

from botcore.web import webhook as hooks
from tests.sources.web_harness import WebBot

HOOK_PLUGIN = '''\
"""A plugin with webhooks, for the web source's tests."""

from botcore.options import Option
from botcore.web.webhook import WebhookProcessor, webhook


class Hooks(WebhookProcessor):
    secret = Option("The shared secret of the GitHub hook.", "", secret=True)
    unset = Option("A secret nobody configured.", "", secret=True)

    @webhook("/github", secret="secret")
    def github(self, event):
        body = event.data["json"]
        event.addresponse(
            "push to %s by %s" % (body["repository"], body["pusher"]),
            source="mem", target="#dev", address=False,
        )

    @webhook("/plain")
    def plain(self, event):
        event.addresponse("plain %s" % event.data["body"], address=False)

    @webhook("/ci/builds")
    def builds(self, event):
        event.addresponse("build %s" % event.data["json"]["status"], address=False)

    @webhook("/locked", secret="unset")
    def locked(self, event):
        event.addresponse("never")
'''

SECRET = "s3cret-shared"
PUSH = json.dumps({"repository": "botcore", "pusher": "alice"}).encode()


class SignatureTests(SynchronousTestCase):
    def test_signed(self):
        """The body's HMAC in the header is accepted; anything else is not."""
        spec = hooks.WebhookSpec("/x", "secret")
        good = hooks.sign(spec, SECRET, b"body")
        self.assertTrue(good.startswith("sha256="))
        self.assertTrue(hooks.signature_ok(spec, SECRET, b"body", good))
        self.assertFalse(hooks.signature_ok(spec, SECRET, b"body!", good))
        self.assertFalse(hooks.signature_ok(spec, "other", b"body", good))
        self.assertFalse(hooks.signature_ok(spec, SECRET, b"body", None))
        self.assertFalse(hooks.signature_ok(spec, SECRET, b"body", good[:-1]))
        self.assertFalse(hooks.signature_ok(spec, SECRET, b"body", "sha256=é"))

    def test_other_digest(self):
        """Another digest and prefix (sha1=, GitHub's old header) are checked as given."""
        spec = hooks.WebhookSpec("/x", "secret", "X-Hub-Signature", "sha1=", "sha1")
        signature = hooks.sign(spec, SECRET, b"body")
        self.assertEqual(len(signature), len("sha1=") + 40)
        self.assertTrue(hooks.signature_ok(spec, SECRET, b"body", signature))

    def test_bad_declarations(self):
        """A route path or digest that cannot be served is refused where declared."""
        for path in ("github", "/", "/a/../b", "/a b", "/-x"):
            self.assertRaises(ValueError, hooks.webhook, path)
        self.assertRaises(ValueError, hooks.webhook, "/x", digest="md5")


class WebhookTests(TestCase):
    timeout = 120

    def setUp(self):
        self.web = WebBot(
            load=", hooktest",
            files={"plugins/hooktest.py": HOOK_PLUGIN},
            extra=f"[plugin:hooktest]\nsecret = {SECRET}\n",
        )
        d = ensureDeferred(self.web.start())
        d.addCallback(lambda _: self.addCleanup(lambda: ensureDeferred(self.web.stop())))
        return d

    def post(self, path, body, **headers):
        headers.setdefault("Content-Type", "application/json")
        return ensureDeferred(
            self.web.call("POST", "/webhooks" + path, data=body, user=None, headers=headers)
        )

    async def test_signed_request_answered_in_chat(self):
        """A correctly signed request reaches the plugin, whose reply goes to chat."""
        signature = hooks.sign(hooks.WebhookSpec("/github", "secret"), SECRET, PUSH)
        code, body = await self.post("/github", PUSH, **{"X-Hub-Signature-256": signature})
        self.assertEqual(code, 200, body)
        self.assertTrue(body["processed"])
        self.assertEqual(
            [(r.target, r.text) for r in self.web.mem.sent], [("#dev", "push to botcore by alice")]
        )

    async def test_bad_signature(self):
        """A wrong or missing signature is 401 and nothing is processed."""
        wrong = hooks.sign(hooks.WebhookSpec("/github", "secret"), "guess", PUSH)
        code, body = await self.post("/github", PUSH, **{"X-Hub-Signature-256": wrong})
        self.assertEqual(code, 401, body)
        self.assertIn("X-Hub-Signature-256", body["error"]["message"])
        code, body = await self.post("/github", PUSH)
        self.assertEqual(code, 401, body)
        self.assertEqual(self.web.mem.sent, [])

    async def test_secret_not_configured(self):
        """A route whose secret is unset refuses every request (503), saying which key."""
        code, body = await self.post("/locked", b"{}")
        self.assertEqual(code, 503, body)
        self.assertIn("[plugin:hooktest] unset", body["error"]["message"])

    async def test_unsigned_route(self):
        """A route without a secret takes any body; its reply comes back in the answer."""
        code, body = await self.post("/plain", b"hello", **{"Content-Type": "text/plain"})
        self.assertEqual(code, 200, body)
        self.assertEqual([r["text"] for r in body["responses"]], ["plain hello"])

    async def test_nested_route(self):
        """A route of several segments is served at its whole path, and only there."""
        code, body = await self.post("/ci/builds", b'{"status": "green"}')
        self.assertEqual((code, [r["text"] for r in body["responses"]]), (200, ["build green"]))
        code, _ = await self.post("/ci", b"{}")
        self.assertEqual(code, 404)
        code, _ = await self.post("/ci/builds/x", b"{}")
        self.assertEqual(code, 404)

    async def test_invalid_json(self):
        """A JSON body that does not parse is 400."""
        code, body = await self.post("/plain", b"{nope")
        self.assertEqual(code, 400, body)

    async def test_unknown_route(self):
        """A path no plugin declared is 404; only POST is served."""
        code, body = await self.post("/nothing", b"{}")
        self.assertEqual(code, 404, body)
        code, body = await ensureDeferred(self.web.call("GET", "/webhooks/plain", user=None))
        self.assertEqual(code, 405, body)

    async def test_secret_set_through_the_api(self):
        """The hook's secret set by PUT /config (the admin plugin's secret path): the
        reply does not show it, the log does not hold it, and the hook checks it."""
        code, body = await ensureDeferred(
            self.web.call(
                "PUT", "/api/v1/config/plugin:hooktest/secret", {"value": "rotated-secret"}
            )
        )
        self.assertEqual(code, 200, body)
        self.assertIn("(secret)", body["replies"][0]["text"])
        self.assertNotIn("rotated-secret", str(body))
        tail = "\n".join(self.web.bot.get_source("web").tail.recent())
        self.assertNotIn("rotated-secret", tail)
        spec = hooks.WebhookSpec("/github", "secret")
        old = hooks.sign(spec, SECRET, PUSH)
        code, _ = await self.post("/github", PUSH, **{"X-Hub-Signature-256": old})
        self.assertEqual(code, 401)
        new = hooks.sign(spec, "rotated-secret", PUSH)
        code, body = await self.post("/github", PUSH, **{"X-Hub-Signature-256": new})
        self.assertEqual(code, 200, body)

    async def test_route_follows_plugin(self):
        """The route goes with its plugin's unload and comes back with its load and
        reload."""
        plugins = self.web.bot.plugins
        plugins.unload_plugin("hooktest")
        code, _ = await self.post("/plain", b"x", **{"Content-Type": "text/plain"})
        self.assertEqual(code, 404)
        await plugins.load_plugin("hooktest")
        code, _ = await self.post("/plain", b"x", **{"Content-Type": "text/plain"})
        self.assertEqual(code, 200)
        await plugins.reload_plugin("hooktest")
        code, body = await self.post("/plain", b"y", **{"Content-Type": "text/plain"})
        self.assertEqual((code, [r["text"] for r in body["responses"]]), (200, ["plain y"]))
