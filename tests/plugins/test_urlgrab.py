"""Tests for the urlgrab plugin: URLs recorded from channels, the queries about them, and
title fetching against a real web server on loopback (refused unless allowed)."""

from __future__ import annotations

from twisted.internet import defer, reactor, task
from twisted.internet.address import IPv4Address, IPv6Address
from twisted.internet.interfaces import IHostnameResolver
from twisted.trial.unittest import SynchronousTestCase, TestCase
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Site
from twisted.web.util import Redirect
from zope.interface import implementer

from botcore.event import Sender
from botcore.plugins.urlgrab import MAX_FETCHES, address_allowed, find_urls, page_title, shorten
from botcore.testing import PluginTestCase


class FindURLsTests(SynchronousTestCase):
    """URLs are picked out of running text."""

    def test_schemes_and_www(self):
        """scheme:// URLs and bare www. hosts are found, www. ones made http."""
        self.assertEqual(
            find_urls("see https://a.example/x?y=1 and www.b.example, or ftp://c.example."),
            ["https://a.example/x?y=1", "http://www.b.example", "ftp://c.example"],
        )

    def test_trailing_punctuation_and_parentheses(self):
        """Trailing punctuation and an unbalanced closing parenthesis are not the URL's."""
        self.assertEqual(find_urls("(see http://a.example/b)."), ["http://a.example/b"])
        self.assertEqual(find_urls("http://w.example/Foo_(bar)!"), ["http://w.example/Foo_(bar)"])

    def test_nothing(self):
        """Text without URLs, or a scheme without a host, gives nothing."""
        self.assertEqual(find_urls("nothing here: just http:// and words"), [])


class HelpersTests(SynchronousTestCase):
    """Addresses, titles and times."""

    def test_address_allowed(self):
        """Only public unicast addresses are allowed, unless an allowed network has them."""
        import ipaddress

        for address in (
            "127.0.0.1",
            "10.1.2.3",
            "192.168.0.1",
            "169.254.1.1",
            "::1",
            "fe80::1",
            "::ffff:127.0.0.1",
            "0.0.0.0",
            "224.0.0.1",
            "fc00::1",
        ):
            self.assertFalse(address_allowed(address), address)
        self.assertTrue(address_allowed("93.184.216.34"))
        self.assertTrue(address_allowed("2606:4700::1111"))
        allowed = [ipaddress.ip_network("127.0.0.0/8")]
        self.assertTrue(address_allowed("127.0.0.1", allowed))
        self.assertFalse(address_allowed("::1", allowed))

    def test_page_title(self):
        """The title is decoded by the header's or the page's charset, entities resolved,
        space collapsed; a page without one has None."""
        page = "<html><head><title>Caf\xe9 &amp;\n  bar</title></head></html>"
        self.assertEqual(
            page_title(page.encode("latin-1"), "text/html; charset=latin-1"), "Caf\xe9 & bar"
        )
        meta = '<meta charset="iso-8859-1"><title>Caf\xe9</title>'.encode("latin-1")
        self.assertEqual(page_title(meta, "text/html"), "Caf\xe9")
        self.assertEqual(page_title("<title>\u2603</title>".encode(), ""), "\u2603")
        self.assertIsNone(page_title(b"<html><body>no title</body></html>"))
        self.assertEqual(page_title(b"<svg><title>icon</title></svg><title>Page</title>"), "Page")

    def test_shorten(self):
        """Control characters go, long titles are cut with an ellipsis."""
        self.assertEqual(shorten("a\r\nPRIVMSG #x :hi\x03", 100), "a PRIVMSG #x :hi")
        self.assertEqual(shorten("x" * 20, 10), "x" * 9 + "\N{HORIZONTAL ELLIPSIS}")


class PublicTests(PluginTestCase):
    """URLs said in a channel, and the questions about them."""

    load = ["urlgrab"]
    public = True

    def test_recorded_silently(self):
        """URLs said in the channel are recorded without a reply (titles are off)."""
        self.assertNoResponse("look at http://a.example/one and www.b.example.")
        self.assertResponseMatches(
            "botcore: last url", r"^user: http://www\.b\.example from user just now$"
        )

    def test_last_url_time(self):
        """last url tells who said it and how long ago, by the bot's clock."""
        self.say("https://a.example/x", sender="alice")
        self.advance(7300)
        self.assertResponseMatches(
            "botcore: last url", r"^user: https://a\.example/x from alice 2 hours ago$"
        )

    def test_last_url_per_channel(self):
        """last url is the channel's own; another channel's URLs are not mixed in."""
        self.say("http://a.example/here")
        self.say("http://a.example/elsewhere", channel="#other")
        self.assertResponseMatches("botcore: last url", r"a\.example/here from")
        self.assertResponseMatches("botcore: last url in #other", r"a\.example/elsewhere from")
        self.assertResponseMatches("botcore: last url in #none", "haven't seen any URL in #none")

    def test_urls_from(self):
        """urls from <who> lists that person's URLs, newest first, case-blind."""
        self.say("http://a.example/1", sender="Alice")
        self.say("http://b.example/2", sender="bob")
        self.say("http://a.example/3", sender="alice")
        self.assertResponseMatches(
            "botcore: urls from ALICE",
            r"^user: http://a\.example/3 from alice just now; http://a\.example/1 from Alice",
        )
        self.assertResponseMatches("botcore: urls from carol", "haven't seen any URL from carol")

    def test_urls_from_limit(self):
        """urls from lists at most list_limit URLs."""
        for n in range(8):
            self.say(f"http://a.example/{n}")
        replies = self.responses("botcore: urls from user")
        self.assertEqual(replies[0].count("http://"), 5)

    def test_search(self):
        """search urls for <text> finds URLs containing the text, case-blind; LIKE
        wildcards in the text are literal."""
        self.say("http://python.example/Docs")
        self.say("http://rust.example/book")
        self.assertResponseMatches("botcore: search urls for docs", r"python\.example/Docs")
        self.assertResponseMatches("botcore: search urls for %", "No URL in #test matches '%'")

    def test_not_addressed_queries(self):
        """Queries not addressed to the bot are not answered."""
        self.say("http://a.example/")
        self.assertNoResponse("last url")


class CapTests(PluginTestCase):
    """The URLs kept are capped per conversation and per source, oldest forgotten first."""

    load = ["urlgrab"]
    public = True
    plugin_config = {"plugin:urlgrab": {"max_per_conversation": "3", "max_per_source": "5"}}

    def kept(self) -> list[tuple[str, str]]:
        from sqlalchemy import select

        from botcore.plugins.urlgrab import GrabbedURL

        with self.bot.databases["main"].session_factory() as session:
            rows = session.scalars(select(GrabbedURL).order_by(GrabbedURL.id))
            return [(row.channel, row.url) for row in rows]

    def test_per_conversation(self) -> None:
        """A channel keeps its newest max_per_conversation URLs, from any senders; the
        oldest go first, and the queries see only those kept."""
        for n in range(5):
            self.say(f"http://a.example/{n}", sender=f"nick{n}")
            self.advance(1)
        self.assertEqual(self.kept(), [("#test", f"http://a.example/{n}") for n in (2, 3, 4)])
        self.assertResponseMatches("botcore: urls from nick0", "no URLs from nick0|haven't")
        self.assertResponseMatches("botcore: last url", "a.example/4 from nick4")

    def test_per_source(self) -> None:
        """A source keeps its newest max_per_source URLs over all its conversations,
        first counted after SOURCE_CHECK_EVERY messages with URLs there, then at each."""
        from botcore.plugins.urlgrab import SOURCE_CHECK_EVERY

        for n in range(SOURCE_CHECK_EVERY - 1):
            self.say(f"http://b.example/{n}", channel=f"#c{n % 30}")
            self.advance(1)
        self.assertEqual(len(self.kept()), SOURCE_CHECK_EVERY - 1)
        self.say("http://b.example/last", channel="#c0")
        self.assertEqual(
            [url for _, url in self.kept()],
            [
                f"http://b.example/{n}"
                for n in range(SOURCE_CHECK_EVERY - 5, SOURCE_CHECK_EVERY - 1)
            ]
            + ["http://b.example/last"],
        )
        self.say("http://b.example/next", channel="#c1")
        self.assertEqual(
            [url for _, url in self.kept()][-2:],
            ["http://b.example/last", "http://b.example/next"],
        )
        self.assertEqual(len(self.kept()), 5)

    def test_counted_once(self) -> None:
        """A conversation is counted in the database once; then its count is kept in
        memory, and only an excess reads the table again."""
        statements: list[str] = []
        engine = self.bot.databases["main"].engine

        def executed(connection, cursor, statement, *args):
            if "count(" in statement.lower():
                statements.append(statement)

        from sqlalchemy import event as sa_event

        sa_event.listen(engine, "before_cursor_execute", executed)
        self.addCleanup(sa_event.remove, engine, "before_cursor_execute", executed)
        for n in range(4):
            self.say(f"http://d.example/{n}")
        self.assertEqual(len(statements), 1, "one count of the channel")
        self.assertEqual(
            [url for _, url in self.kept()], [f"http://d.example/{n}" for n in (1, 2, 3)]
        )

    def test_counts_across_restarts(self) -> None:
        """After a restart the counts start from what the database holds."""
        for n in range(3):
            self.say(f"http://e.example/{n}")
        self.restart()
        self.say("http://e.example/3")
        self.assertEqual(
            [url for _, url in self.kept()], [f"http://e.example/{n}" for n in (1, 2, 3)]
        )

    def test_one_message_past_the_cap(self) -> None:
        """A message with more URLs than the cap keeps its last ones."""
        self.say(" ".join(f"http://c.example/{n}" for n in range(5)))
        self.assertEqual(
            [url for _, url in self.kept()], [f"http://c.example/{n}" for n in (2, 3, 4)]
        )


class PrivateTests(PluginTestCase):
    """In private, queries are about the private conversation unless a channel is named;
    URLs said in private are recorded but shown only there."""

    load = ["urlgrab"]

    def test_nothing_yet(self):
        """In private, last url with nothing said here says so."""
        self.assertResponseMatches("last url", "^I haven't seen any URL here$")

    def test_private_urls_recorded_privately(self):
        """A URL said in private is recorded and found in that private conversation."""
        self.say("http://secret.example/")
        self.assertResponseMatches("last url", r"^http://secret\.example/ from user")
        self.assertResponseMatches("search urls for secret", "secret.example")

    def test_named_channel(self):
        """In private, last url in #channel answers for that channel."""
        self.say("http://a.example/public", public=True)
        self.assertResponseMatches("last url in #test", r"^http://a\.example/public from user")
        self.assertResponseMatches("urls from user in #test", "a.example/public")
        self.assertResponseMatches("search urls for public in #test", "a.example/public")

    def test_private_urls_stay_private(self):
        """A URL said in private is not shown in a channel, nor to anyone naming one."""
        self.say("http://secret.example/")
        self.assertResponseMatches("search urls for secret in #test", "No URL")
        self.assertResponseMatches(
            "botcore: last url", "haven't seen any URL in #test", public=True
        )
        self.assertResponseMatches("urls from user in #test", "haven't seen any URL")

    def test_channels_as_the_source_says(self):
        """A channel is named as the source names channels: other names are no channel,
        and a correspondent's private conversation cannot be asked about by its name."""
        self.source.chantypes = "+"
        self.say("http://a.example/modeless", public=True, channel="+modeless")
        self.say("http://a.example/private", sender="alice")
        self.assertResponseMatches("last url in +modeless", r"a\.example/modeless from user")
        self.assertResponseMatches("urls from user in +modeless", "a.example/modeless")
        self.assertResponseMatches("last url in #test", "^(Huh|Sorry|Excuse|\\*blink|What)")
        self.assertNotIn("private", " ".join(self.responses("last url in alice")))
        self.assertNotIn("private", " ".join(self.responses("urls from alice in alice")))
        self.assertResponseMatches(
            "search urls for example in alice", "No URL in user matches 'example in alice'"
        )


class PrivacyTests(PluginTestCase):
    """What is said to the bot in private is shown only in that private conversation, and
    only to the person who said it, whoever holds the nick later."""

    load = ["urlgrab"]

    def test_not_shown_in_a_channel_by_name(self):
        """Asked in a channel about a correspondent by name, the bot shows none of their
        private URLs: a nick is no channel on the source (its is_channel says so)."""
        self.say("http://secret.example/alice", sender="alice")
        for question in (
            "botcore: last url in alice",
            "botcore: urls from alice in alice",
            "botcore: search urls for secret in alice",
            "botcore: search urls for secret",
            "botcore: urls from alice",
        ):
            for asker in ("bob", "alice"):  # not even alice, where everyone would read it
                said = " ".join(self.responses(question, public=True, sender=asker))
                self.assertNotIn("secret.example", said, (question, asker))
        # The same questions in a channel the source has find what was said there.
        self.say("http://open.example/alice", public=True, sender="alice")
        self.assertResponseMatches(
            "botcore: urls from alice", r"open\.example/alice", public=True, sender="bob"
        )

    def test_next_holder_of_the_nick(self):
        """Someone who later holds alice's nick (another identity: another mask on IRC)
        does not get alice's private URLs; alice herself still does."""
        alice = Sender("test:alice", "alice!a@home.example", "alice")
        other = Sender("test:other", "alice!x@elsewhere.example", "alice")
        self.say("http://secret.example/alice", sender=alice)
        self.assertResponseMatches("last url", "^I haven't seen any URL here$", sender=other)
        self.assertResponseMatches("urls from alice", "haven't seen any URL", sender=other)
        self.assertResponseMatches("search urls for secret", "^No URL", sender=other)
        self.assertResponseMatches("last url", r"^http://secret\.example/alice from", sender=alice)

    def test_same_nick_other_connection(self):
        """On the console the nick is the identity: someone who takes alice's nick on
        another connection (after she left) does not get the URLs she said there
        unauthenticated; on her own connection she does."""
        alice = Sender("console#1", "alice", "alice")
        later = Sender("console#2", "alice", "alice")
        self.say("http://secret.example/alice", sender=alice)
        self.assertResponseMatches("last url", "^I haven't seen any URL here$", sender=later)
        self.assertResponseMatches("search urls for secret", "^No URL", sender=later)
        self.assertResponseMatches("last url", r"^http://secret\.example/alice from", sender=alice)

    def test_said_authenticated(self):
        """A URL said authenticated is the account's: shown to it authenticated, from
        any of its identities and connections, and to nobody unauthenticated, not even
        on the same nick and connection."""
        self.link_account("alice", ("test", "alice!a@home.example"), ("test", "alice!a@work"))
        home = Sender("test:alice", "alice!a@home.example", "alice")
        work = Sender("test:alice2", "alice!a@work", "alice")
        said = self.make_event("http://secret.example/home", sender=home, authenticated=True)
        self.say(said)
        self.assertResponseMatches("last url", "haven't seen any URL", sender=home)
        self.assertResponseMatches("last url", "haven't seen any URL", sender=work)
        asked = self.make_event("last url", sender=work, authenticated=True)
        self.assertResponseMatches(asked, r"^http://secret\.example/home from")


# -- titles, over real HTTP on loopback -----------------------------------------------------


class _Page(Resource):
    isLeaf = True

    def __init__(
        self, body: bytes, content_type: bytes = b"text/html; charset=utf-8", code: int = 200
    ):
        super().__init__()
        self.body = body
        self.content_type = content_type
        self.code = code
        self.hits = 0

    def render_GET(self, request):
        self.hits += 1
        request.setResponseCode(self.code)
        request.setHeader(b"content-type", self.content_type)
        return self.body


class _Stalled(Resource):
    """Sends the headers and the start of a page, then nothing: a server that hangs."""

    isLeaf = True

    def __init__(self):
        super().__init__()
        self.closed: list[defer.Deferred] = []

    def render_GET(self, request):
        request.setHeader(b"content-type", b"text/html")
        request.write(b"<html><head>")
        self.closed.append(request.notifyFinish())
        return NOT_DONE_YET


class TitleServer:
    """A twisted.web server on 127.0.0.1 with a few pages, counting requests."""

    def __init__(self, testcase: TestCase, interface: str = "127.0.0.1") -> None:
        root = Resource()
        self.pages = {
            b"page": _Page("<html><head><title>Hello \u2603 world</title>".encode()),
            b"big": _Page(b"<html>" + b" " * 200000 + b"<title>Too far</title>"),
            b"text": _Page(b"<title>not html</title>", b"text/plain"),
            b"broken": _Page(b"<title>Internal trouble</title>", code=500),
        }
        for name, page in self.pages.items():
            root.putChild(name, page)
        self.stalled = _Stalled()
        root.putChild(b"stalled", self.stalled)
        self.root = root
        self.port = reactor.listenTCP(0, Site(root), interface=interface)
        testcase.addCleanup(self.port.stopListening)
        self.number = self.port.getHost().port
        self.host = f"[{interface}]" if ":" in interface else interface
        root.putChild(b"redirect", Redirect(self.url("page").encode()))
        root.putChild(b"to-v6", Redirect(f"http://[::1]:{self.number}/page".encode()))

    def redirect(self, name: str, to: str) -> None:
        """Serve a redirect to ``to`` at /``name``."""
        self.root.putChild(name.encode(), Redirect(to.encode()))

    def url(self, path: str, host: str | None = None) -> str:
        return f"http://{host or self.host}:{self.number}/{path}"

    @property
    def hits(self) -> int:
        return sum(page.hits for page in self.pages.values())


class _TitleTestCase(PluginTestCase, TestCase):
    load = ["urlgrab"]
    public = True

    def setUp(self):
        super().setUp()
        self.server = TitleServer(self)
        self.grabber = self.processor("UrlGrab")
        self.grabber.http_reactor = reactor

    def said_titles(self, text: str) -> defer.Deferred:
        """Say ``text`` in the channel; fire with the replies once its fetches are done."""
        self.assertNoResponse(text)
        d = defer.gatherResults(list(self.grabber.fetches))
        d.addCallback(lambda _: self.advance(0))
        return d


class TitleTests(_TitleTestCase):
    """With fetch_titles and loopback allowed, titles are said in the channel."""

    plugin_config = {"plugin:urlgrab": {"fetch_titles": "yes", "allowed_networks": "127.0.0.0/8"}}

    @defer.inlineCallbacks
    def test_title(self):
        """The page's title is said in the channel, unaddressed, and stored with the URL."""
        replies = yield self.said_titles(f"see {self.server.url('page')} !")
        self.assertEqual(replies, ["title: Hello \u2603 world"])
        self.assertEqual(self.replies[0].target, "#test")
        self.assertResponseMatches("botcore: last url", r"/page \(Hello \u2603 world\) from user")
        self.assertResponseMatches("botcore: search urls for \u2603", "/page")

    @defer.inlineCallbacks
    def test_redirect(self):
        """Redirects to allowed addresses are followed."""
        replies = yield self.said_titles(self.server.url("redirect"))
        self.assertEqual(replies, ["title: Hello \u2603 world"])

    @defer.inlineCallbacks
    def test_redirect_guarded(self):
        """A redirect to an address that is not allowed (::1 here) is not followed."""
        replies = yield self.said_titles(self.server.url("to-v6"))
        self.assertEqual(replies, [])
        self.assertEqual(self.server.hits, 0)

    @defer.inlineCallbacks
    def test_error_pages_have_no_title(self):
        """Only a successful (2xx) HTML page gets a title line: the server's own 404 page
        ("No Such Resource") and a 500 page with a title are not announced."""
        replies = yield self.said_titles(
            f"{self.server.url('missing')} {self.server.url('broken')}"
        )
        self.assertEqual(replies, [])
        self.assertEqual(self.server.pages[b"broken"].hits, 1)
        self.assertResponseMatches("botcore: urls from user", "/broken from user")
        replies = yield self.said_titles(self.server.url("page"))  # while a 2xx page does
        self.assertEqual(replies, ["title: Hello \u2603 world"])

    @defer.inlineCallbacks
    def test_size_cap_and_type(self):
        """A title beyond title_max_bytes, or in a page that is not HTML, is not said."""
        replies = yield self.said_titles(f"{self.server.url('big')} {self.server.url('text')}")
        self.assertEqual(replies, [])

    def test_timeout(self):
        """A server that stops sending is given title_timeout seconds (of the bot's
        clock); then the fetch is abandoned, its connection dropped, and nothing said."""
        self.assertNoResponse(self.server.url("stalled"))
        fetches = list(self.grabber.fetches)
        self.assertEqual(len(fetches), 1)

        def stalled(_=None):
            if not self.server.stalled.closed:  # the request has not arrived yet
                return task.deferLater(reactor, 0.01, stalled)
            self.assertEqual(self.advance(9), [])
            self.assertFalse(fetches[0].called)
            self.advance(1)
            self.assertTrue(fetches[0].called)
            return self.server.stalled.closed[0]

        d = stalled()
        # The server sees the connection go: notifyFinish fails with ConnectionLost.
        d.addCallbacks(lambda _: self.fail("the request finished"), lambda f: None)
        d.addCallback(lambda _: self.assertEqual(self.advance(0), []))
        return d

    def test_fetch_cap(self):
        """No more than MAX_FETCHES titles are fetched at once; the rest get none."""
        busy = [defer.Deferred() for _ in range(MAX_FETCHES)]
        self.grabber.fetches.update(busy)
        self.assertNoResponse(self.server.url("page"))
        self.assertEqual(len(self.grabber.fetches), MAX_FETCHES)
        self.assertEqual(self.server.hits, 0)
        self.grabber.fetches.clear()

    @defer.inlineCallbacks
    def test_private_titles_off(self):
        """URLs said in private get no title unless title_private is on."""
        self.say(self.server.url("page"), public=False)
        yield defer.gatherResults(list(self.grabber.fetches))
        self.assertEqual(self.advance(0), [])
        self.assertEqual(self.server.hits, 0)


class PrivateTitleTests(_TitleTestCase):
    """With title_private, URLs said to the bot in private get their title there."""

    plugin_config = {
        "plugin:urlgrab": {
            "fetch_titles": "yes",
            "title_private": "yes",
            "allowed_networks": "127.0.0.0/8",
        }
    }

    @defer.inlineCallbacks
    def test_private_title(self):
        """The title goes back to the private correspondent; the URL is not shown in the
        channel."""
        self.say(self.server.url("page"), public=False)
        yield defer.gatherResults(list(self.grabber.fetches))
        self.assertEqual(self.advance(0), ["title: Hello \u2603 world"])
        self.assertEqual(self.replies[0].target, "user")
        self.assertResponseMatches("botcore: last url", "haven't seen any URL in #test")


class RefusedTests(_TitleTestCase):
    """By default loopback addresses are not fetched, by address or by name."""

    plugin_config = {"plugin:urlgrab": {"fetch_titles": "yes"}}

    @defer.inlineCallbacks
    def test_loopback_refused(self):
        """http://127.0.0.1/ and http://localhost/ are not fetched: no request, no title."""
        replies = yield self.said_titles(
            f"{self.server.url('page')} {self.server.url('page', host='localhost')}"
        )
        self.assertEqual(replies, [])
        self.assertEqual(self.server.hits, 0)
        self.assertResponseMatches("botcore: urls from user", "localhost.*127.0.0.1")


@implementer(IHostnameResolver)
class _Network:
    """The real reactor for the test's title fetches, with the test's own DNS and routes:
    a name resolves to the addresses the test gives (public ones included), and a
    connection to an address in ``routes`` goes to the loopback server the test names
    instead. Every other connection is refused here, so nothing ever leaves the machine;
    ``connects`` records every address a connection was asked for."""

    def __init__(self, answers: dict[str, list[str]], routes: dict[str, str]) -> None:
        self.answers = answers
        self.routes = routes
        self.connects: list[str] = []
        self.nameResolver = self

    def __getattr__(self, name: str):
        return getattr(reactor, name)

    def resolveHostName(
        self, receiver, hostName, portNumber=0, addressTypes=None, transportSemantics="TCP"
    ):
        receiver.resolutionBegan(None)
        for address in self.answers.get(hostName, []):
            kind = IPv6Address if ":" in address else IPv4Address
            receiver.addressResolved(kind("TCP", address, portNumber))
        receiver.resolutionComplete()
        return receiver

    def connectTCP(self, host, port, factory, timeout=30, bindAddress=None):
        self.connects.append(host)
        if host not in self.routes:
            raise ConnectionRefusedError(f"the test network has no route to {host}")
        return reactor.connectTCP(self.routes[host], port, factory, timeout, bindAddress)


PUBLIC_V4 = "93.184.216.34"
PUBLIC_V6 = "2606:4700::1111"


class GuardTests(_TitleTestCase):
    """The SSRF guard with the default configuration (only public addresses): every
    address a name resolves to must be public, and every redirect is checked again."""

    plugin_config = {"plugin:urlgrab": {"fetch_titles": "yes"}}

    def network(self, answers: dict[str, list[str]], routes: dict[str, str]) -> _Network:
        network = _Network(answers, routes)
        self.grabber.http_reactor = network
        return network

    @defer.inlineCallbacks
    def test_public_name_fetched(self):
        """A name whose only address is public is fetched, from the address checked (so
        the refusals below are the guard's, not a broken test network)."""
        network = self.network({"public.example": [PUBLIC_V4]}, {PUBLIC_V4: "127.0.0.1"})
        replies = yield self.said_titles(self.server.url("page", host="public.example"))
        self.assertEqual(replies, ["title: Hello \u2603 world"])
        self.assertEqual(network.connects, [PUBLIC_V4])

    @defer.inlineCallbacks
    def test_mixed_answers_refused(self):
        """A name resolving to a public and a loopback (or private) address is not
        fetched, whichever comes first: no connection is made at all."""
        network = self.network(
            {
                "mixed.example": [PUBLIC_V4, "127.0.0.1"],
                "loopfirst.example": ["127.0.0.1", PUBLIC_V4],
                "six.example": [PUBLIC_V6, "::1"],
                "private.example": [PUBLIC_V4, "10.0.0.1"],
            },
            {PUBLIC_V4: "127.0.0.1", PUBLIC_V6: "::1"},
        )
        urls = [
            self.server.url("page", host=name)
            for name in ("mixed.example", "loopfirst.example", "six.example", "private.example")
        ]
        replies = yield self.said_titles(" ".join(urls))
        self.assertEqual(replies, [])
        self.assertEqual(network.connects, [])
        self.assertEqual(self.server.hits, 0)

    @defer.inlineCallbacks
    def test_redirect_to_loopback_refused(self):
        """A public page redirecting to a loopback URL (by address or by a name that
        resolves to loopback) is not followed: the loopback server is never asked."""
        network = self.network(
            {"public.example": [PUBLIC_V4], "inside.example": ["127.0.0.1"]},
            {PUBLIC_V4: "127.0.0.1"},
        )
        self.server.redirect("to-loopback", self.server.url("page"))
        self.server.redirect("to-inside", self.server.url("page", host="inside.example"))
        replies = yield self.said_titles(
            f"{self.server.url('to-loopback', host='public.example')} "
            f"{self.server.url('to-inside', host='public.example')}"
        )
        self.assertEqual(replies, [])
        self.assertEqual(network.connects, [PUBLIC_V4, PUBLIC_V4])
        self.assertEqual(self.server.hits, 0)

    @defer.inlineCallbacks
    def test_ipv6_literal(self):
        """An IPv6 literal URL (``http://[...]:port/``) is fetched when its address is
        public (no codec error), and refused when it is loopback (``[::1]``)."""
        server6 = TitleServer(self, interface="::1")
        network = self.network({}, {PUBLIC_V6: "::1"})
        replies = yield self.said_titles(server6.url("page", host=f"[{PUBLIC_V6}]"))
        self.assertEqual(replies, ["title: Hello \u2603 world"])
        self.assertEqual(network.connects, [PUBLIC_V6])
        replies = yield self.said_titles(server6.url("page"))
        self.assertEqual(replies, [])
        self.assertEqual(network.connects, [PUBLIC_V6])
        self.assertEqual(server6.hits, 1)


class LoopbackRedirectTests(_TitleTestCase):
    """With only 127.0.0.1 allowed, a real loopback server's redirect to another loopback
    address (a second real server on 127.0.0.2) is refused."""

    plugin_config = {"plugin:urlgrab": {"fetch_titles": "yes", "allowed_networks": "127.0.0.1/32"}}

    @defer.inlineCallbacks
    def test_redirect_to_other_loopback(self):
        """The redirect to 127.0.0.2 is not followed; one to 127.0.0.1 is."""
        other = TitleServer(self, interface="127.0.0.2")
        self.server.redirect("away", other.url("page"))
        replies = yield self.said_titles(self.server.url("away"))
        self.assertEqual(replies, [])
        self.assertEqual(other.hits, 0)
        replies = yield self.said_titles(self.server.url("redirect"))
        self.assertEqual(replies, ["title: Hello \u2603 world"])
