"""Attachments in the message model: how one reads as text where a network carries no
files, and that they travel with a message's variants and a reply's fields."""

from __future__ import annotations

import dataclasses

from twisted.trial.unittest import SynchronousTestCase

from botcore.event import Attachment, Event, EventType, Message, describe_attachments


class DescribeTests(SynchronousTestCase):
    """`Attachment.describe` and `describe_attachments`."""

    def test_everything_known(self):
        """Name, type and size (in the largest unit), then the URL."""
        shown = Attachment("https://x/a.png", "a.png", "image/png", 2_500_000).describe()
        self.assertEqual(shown, "a.png (image/png, 2.5 MB) https://x/a.png")

    def test_sizes(self):
        def size(n: int) -> str:
            return Attachment("u", "f", None, n).describe()

        self.assertEqual(size(999), "f (999 bytes) u")
        self.assertEqual(size(12_345), "f (12 KB) u")
        self.assertEqual(size(3_000_000_000), "f (3.0 GB) u")

    def test_only_a_url(self):
        self.assertEqual(Attachment("https://x/y").describe(), "https://x/y")

    def test_name_on_one_line(self):
        """A name with line breaks cannot break the line it is said on."""
        self.assertEqual(Attachment("u", "two\nlines").describe(), "two lines u")

    def test_text_then_one_line_each(self):
        files = (Attachment("u1", "a"), Attachment("u2"))
        self.assertEqual(describe_attachments("look  ", files), "look\na u1\nu2")
        self.assertEqual(describe_attachments(" ", files), "a u1\nu2")

    def test_frozen(self):
        with self.assertRaises(dataclasses.FrozenInstanceError):
            Attachment("u").url = "v"  # type: ignore[misc]


class CarriedTests(SynchronousTestCase):
    """Where attachments live on events and replies."""

    def test_on_the_message(self):
        """A message's attachments stay with it when its variants are filled in and when
        an event is derived from it."""
        files = (Attachment("https://x/a.png", "a.png"),)
        event = Event("test", EventType.MESSAGE, message=Message("", attachments=files))
        self.assertEqual(event.message.attachments, files)
        self.assertEqual(event.derive(EventType.DELAYED).message.attachments, files)

    def test_on_a_reply(self):
        files = (Attachment("https://x/a.png"),)
        event = Event("test", EventType.MESSAGE, channel="#c")
        reply = event.addresponse("see", attachments=files)
        self.assertEqual((reply.attachments, reply.target), (files, "#c"))
        self.assertEqual(event.addresponse("plain").attachments, ())
