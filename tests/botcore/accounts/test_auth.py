"""Tests for botcore.accounts.permissions: the order permissions are resolved in, and
what +perm, -perm and a plain perm grant."""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from botcore.accounts.permissions import Permissions, check_grant, parse_grants
from botcore.event import Event, EventType, Sender
from botcore.options import options_of


def event(sender_id: str = "alice", source: str = "irc", authenticated: bool = False) -> Event:
    return Event(
        source=source,
        type=EventType.MESSAGE,
        sender=Sender(source, sender_id, sender_id),
        authenticated=authenticated,
    )


def permissions(sources=None, **config) -> Permissions:
    parsed = {key: options_of(Permissions)[key].parse(value) for key, value in config.items()}
    sources = sources or {}
    return Permissions(parsed, lambda name: sources.get(name, []))


class GrantTests(SynchronousTestCase):
    """What one grant says."""

    def test_parse(self):
        """+perm is yes, -perm is no, a bare perm is 'once authenticated'; words may share
        an entry."""
        self.assertEqual(parse_grants(["+a -b", "c"]), {"a": "yes", "b": "no", "c": "auth"})

    def test_check(self):
        """yes and no are fixed; auth follows event.authenticated; None is silent."""
        self.assertIs(check_grant("yes", event()), True)
        self.assertIs(check_grant("no", event(authenticated=True)), False)
        self.assertIs(check_grant("auth", event()), False)
        self.assertIs(check_grant("auth", event(authenticated=True)), True)
        self.assertIsNone(check_grant(None, event()))


class ResolutionTests(SynchronousTestCase):
    """Permissions.authorise: sender grants, then source permissions, then global."""

    def test_default_refused(self):
        """A permission nobody granted is refused, even to authenticated senders."""
        self.assertFalse(permissions().authorise(event(authenticated=True), "admin"))

    def test_global(self):
        """Global permissions apply to everyone on every source."""
        auth = permissions(permissions="+help, -admin, op")
        self.assertTrue(auth.authorise(event(source="xmpp"), "help"))
        self.assertFalse(auth.authorise(event(authenticated=True), "admin"))
        self.assertFalse(auth.authorise(event(), "op"))
        self.assertTrue(auth.authorise(event(authenticated=True), "op"))

    def test_source_before_global(self):
        """A source's permissions override the global ones, on that source only."""
        auth = permissions({"irc": ["-help", "+admin"]}, permissions="+help")
        self.assertFalse(auth.authorise(event(source="irc"), "help"))
        self.assertTrue(auth.authorise(event(source="xmpp"), "help"))
        self.assertTrue(auth.authorise(event(source="irc"), "admin"))
        self.assertFalse(auth.authorise(event(source="xmpp"), "admin"))

    def test_sender_before_source(self):
        """A sender's own grants override the source's and the global ones."""
        auth = permissions(
            {"irc": ["+admin"]},
            permissions="+help",
            grants="irc:mallory = -admin -help\nirc:bob = +root",
        )
        self.assertFalse(auth.authorise(event("mallory"), "admin"))
        self.assertFalse(auth.authorise(event("mallory"), "help"))
        self.assertTrue(auth.authorise(event("alice"), "admin"))
        self.assertTrue(auth.authorise(event("bob"), "root"))
        self.assertFalse(auth.authorise(event("alice"), "root"))

    def test_sender_key_includes_source(self):
        """A sender's grants apply to that id on that source only."""
        auth = permissions(grants="irc:bob = +root")
        self.assertFalse(auth.authorise(event("bob", source="xmpp"), "root"))

    def test_sender_needs_authentication(self):
        """A sender's bare grant needs authentication, and is not overridden by a source +perm."""
        auth = permissions({"irc": ["+op"]}, grants="irc:bob = op")
        self.assertFalse(auth.authorise(event("bob"), "op"))
        self.assertTrue(auth.authorise(event("bob", authenticated=True), "op"))

    def test_no_sender(self):
        """Events without a sender are resolved by source and global permissions."""
        auth = permissions({"irc": ["+tick"]}, grants="irc:bob = -tick")
        anonymous = Event(source="irc", type=EventType.PERIODIC)
        self.assertTrue(auth.authorise(anonymous, "tick"))

    def test_without_source_lookup(self):
        """Without a way to look up source permissions only global ones count."""
        auth = Permissions({"permissions": ["+help"]})
        self.assertTrue(auth.authorise(event(), "help"))
        self.assertFalse(auth.authorise(event(), "admin"))
