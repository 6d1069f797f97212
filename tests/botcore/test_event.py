"""Tests for botcore.event: ids and times, replies added by processors, derived events and
the lazily opened database session."""

from __future__ import annotations

from datetime import UTC, timedelta

from twisted.trial.unittest import SynchronousTestCase

from botcore.event import Event, EventType, Message, Response, Sender


def message_event(text: str = "hello", **kw) -> Event:
    kw.setdefault("sender", Sender("irc", "alice!a@host", "alice"))
    kw.setdefault("channel", "#chan")
    return Event(source="irc", type=EventType.MESSAGE, message=text, **kw)


class EventTests(SynchronousTestCase):
    """Identity and time of events."""

    def test_unique_ids(self):
        """Every event gets its own id."""
        ids = {Event(source="s", type=EventType.MESSAGE).id for _ in range(100)}
        self.assertEqual(len(ids), 100)

    def test_time_is_utc(self):
        """An event's time is timezone-aware UTC."""
        event = Event(source="s", type=EventType.MESSAGE)
        self.assertEqual(event.time.utcoffset(), timedelta(0))
        self.assertIs(event.time.tzinfo, UTC)

    def test_message_from_string(self):
        """A plain string message becomes a Message whose variants all start as the text."""
        event = message_event("hi there")
        self.assertIsInstance(event.message, Message)
        self.assertEqual(
            [event.message.get(v) for v in ("raw", "deaddressed", "clean", "stripped")],
            ["hi there"] * 4,
        )

    def test_conversation(self):
        """The conversation key is (source, channel)."""
        self.assertEqual(message_event().conversation, ("irc", "#chan"))


class AddResponseTests(SynchronousTestCase):
    """Event.addresponse."""

    def test_defaults(self):
        """A reply goes to the event's channel on the event's source and marks it processed."""
        event = message_event()
        reply = event.addresponse("hi")
        self.assertEqual(reply, Response("hi", target="#chan", source="irc"))
        self.assertEqual(event.responses, [reply])
        self.assertTrue(event.processed)

    def test_not_processed(self):
        """processed=False adds the reply without marking the event processed."""
        event = message_event()
        event.addresponse("hi", processed=False)
        self.assertFalse(event.processed)
        self.assertEqual(len(event.responses), 1)

    def test_params(self):
        """params fill % placeholders, positional or named."""
        event = message_event()
        event.addresponse("%s has %d", ("bob", 3))
        event.addresponse("%(who)s!", {"who": "carol"})
        self.assertEqual([r.text for r in event.responses], ["bob has 3", "carol!"])

    def test_no_params_keeps_percent(self):
        """Without params a % in the text is left alone."""
        event = message_event()
        event.addresponse("100% sure")
        self.assertEqual(event.responses[0].text, "100% sure")

    def test_fields(self):
        """Fields set the reply's target, source and flags."""
        event = message_event()
        reply = event.addresponse("waves", action=True, target="bob", address=False)
        self.assertEqual(
            reply, Response("waves", target="bob", source="irc", action=True, address=False)
        )

    def test_other_source_has_no_default_target(self):
        """A reply for another source does not inherit this event's channel."""
        event = message_event()
        reply = event.addresponse("relayed", source="xmpp")
        self.assertEqual((reply.source, reply.target), ("xmpp", None))

    def test_unknown_field(self):
        """An unknown response field is a TypeError naming it, and no reply is added."""
        event = message_event()
        with self.assertRaises(TypeError) as raised:
            event.addresponse("hi", colour="red")
        self.assertIn("colour", str(raised.exception))
        self.assertEqual(event.responses, [])

    def test_response_object(self):
        """A Response is added as it is, with missing places filled in."""
        event = message_event()
        reply = event.addresponse(Response(True))
        self.assertEqual(reply, Response(True, target="#chan", source="irc"))

    def test_private_reply_goes_to_channel_none(self):
        """A private event (no channel) answers with target None on its source."""
        event = message_event(channel=None)
        self.assertEqual(event.addresponse("psst").target, None)


class DeriveTests(SynchronousTestCase):
    """Event.derive, used for delayed events."""

    def test_same_conversation_fresh_event(self):
        """A derived event keeps sender and place but has a new id, no replies, not processed."""
        event = message_event(addressed=True, public=True, authenticated=True, identity=7)
        event.addresponse("done")
        event.extra["seen"] = True
        derived = event.derive(EventType.DELAYED)
        self.assertEqual(derived.type, EventType.DELAYED)
        self.assertEqual(
            (derived.source, derived.channel, derived.sender, derived.conversation),
            (event.source, event.channel, event.sender, event.conversation),
        )
        self.assertEqual(
            (derived.addressed, derived.public, derived.authenticated, derived.identity),
            (True, True, True, 7),
        )
        self.assertNotEqual(derived.id, event.id)
        self.assertEqual(derived.responses, [])
        self.assertFalse(derived.processed)
        self.assertEqual(derived.extra, {})

    def test_copies_are_independent(self):
        """Changing the derived event's message or data leaves the original alone."""
        event = message_event(data={"k": 1})
        derived = event.derive(EventType.DELAYED)
        derived.message.clean = "changed"
        derived.data["k"] = 2
        self.assertEqual((event.message.clean, event.data), ("hello", {"k": 1}))

    def test_changes(self):
        """Keyword changes override what is copied, including data and channel."""
        event = message_event(data={"k": 1})
        derived = event.derive(EventType.DELAYED, channel="#other", data={"k": 2})
        self.assertEqual((derived.channel, derived.data), ("#other", {"k": 2}))


class SessionTests(SynchronousTestCase):
    """The lazily opened database session."""

    def setUp(self):
        self.opened = []

        def factory():
            session = FakeSession()
            self.opened.append(session)
            return session

        self.factory = factory

    def test_not_opened_unless_used(self):
        """No session is opened while nobody asks for one."""
        event = message_event(_session_factory=self.factory)
        event.addresponse("hi")
        event.close_session()
        self.assertEqual(self.opened, [])
        self.assertFalse(event.has_session)

    def test_opened_once(self):
        """The first use opens the session; later uses get the same one."""
        event = message_event(_session_factory=self.factory)
        self.assertIs(event.session, event.session)
        self.assertEqual(len(self.opened), 1)
        self.assertTrue(event.has_session)

    def test_close(self):
        """close_session closes the opened session and forgets it."""
        event = message_event(_session_factory=self.factory)
        session = event.session
        event.close_session()
        self.assertTrue(session.closed)
        self.assertFalse(event.has_session)

    def test_no_database(self):
        """Asking for a session of an event without a database is a RuntimeError."""
        self.assertRaises(RuntimeError, lambda: message_event().session)


class FakeSession:
    closed = False

    def close(self):
        self.closed = True


class MessageModelTests(SynchronousTestCase):
    """Responses that react, edit and delete, and the event helpers that make them."""

    def event(self, **kw):
        return Event("src", EventType.MESSAGE, channel="#c", message="hi", **kw)

    def test_react_defaults_to_trigger(self):
        reply = self.event(message_id="m1").react("+1")
        self.assertEqual((reply.kind, reply.text, reply.refers_to), ("reaction", "+1", "m1"))
        self.assertFalse(reply.address)

    def test_edit_and_delete(self):
        event = self.event()
        first = event.addresponse("draft")
        edit = event.edit(first.id, "final")
        deletion = event.delete(first.id)
        self.assertEqual((edit.kind, edit.refers_to, edit.text), ("edit", first.id, "final"))
        self.assertEqual((deletion.kind, deletion.refers_to), ("delete", first.id))
        self.assertNotEqual(first.id, edit.id)

    def test_edit_needs_a_target(self):
        with self.assertRaises(ValueError):
            Response("x", kind="edit")
        with self.assertRaises(ValueError):
            Response("x", kind="shout")

    def test_unknown_field_still_refused(self):
        with self.assertRaises(TypeError):
            self.event().addresponse("x", edits="m1")

    def test_ids_kept_by_derive(self):
        later = self.event(message_id="m1", thread_id="t1", reply_to="m0").derive("delayed")
        self.assertEqual((later.message_id, later.thread_id, later.reply_to), ("m1", "t1", None))

    def test_equal_replies_differ_only_in_id(self):
        one, two = Response("x"), Response("x")
        self.assertEqual(one, two)
        self.assertNotEqual(one.id, two.id)
