"""Tests for botcore.addressing: the one parser of the ways people address the bot."""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from botcore.addressing import VERBS, AddressParser, address_parser, parse_address

NAMES = ("botcore", "bc")


class ParseTests(SynchronousTestCase):
    """parse_address: which texts are said to the bot, by which name, and the body."""

    def test_leading_forms(self) -> None:
        """The name, then a separator (punctuation and space, a colon or comma, or just
        space), then the body."""
        for text in (
            "botcore: ping me",
            "botcore, ping me",
            "botcore> ping me",
            "botcore ping me",
            "botcore:ping me",
            "botcore,ping me",
            "botcore; ping me",
            "botcore. ping me",
            "botcore? ping me",
            "botcore! ping me",
            "botcore - ping me",
            "botcore -> ping me",
            "botcore :: ping me",
            "  BOTCORE: ping me",
        ):
            found = parse_address(text, NAMES)
            self.assertIsNotNone(found, text)
            self.assertEqual((found.name.lower(), found.body), ("botcore", "ping me"), text)

    def test_trailing_form(self) -> None:
        """``x, bot`` (with trailing space or ?!.) is addressed; the body is x."""
        for text in ("ping me, botcore", "ping me,botcore", "ping me, bc?!", "ping me, botcore. "):
            found = parse_address(text, NAMES)
            self.assertIsNotNone(found, text)
            self.assertEqual(found.body, "ping me", text)

    def test_not_addressed(self) -> None:
        """Texts that merely mention the bot, or address somebody else, are not."""
        for text in (
            "hello",
            "I like botcore",
            "botcore",
            "botcore;ping",
            "alice: ping me, botcore",
            "botcorex: ping",
        ):
            self.assertIsNone(parse_address(text, NAMES), text)

    def test_statements(self) -> None:
        """A verb right after the name makes a remark about the bot, unless statements are
        not asked about; a verb after a separator is addressed."""
        self.assertIsNone(parse_address("botcore is cool", NAMES))
        self.assertEqual(parse_address("botcore is cool", NAMES, statements=False).body, "is cool")
        self.assertEqual(parse_address("botcore is cool", NAMES, verbs=()).body, "is cool")
        self.assertEqual(parse_address("botcore: is cool", NAMES).body, "is cool")
        self.assertIn("isn't", VERBS)

    def test_longest_name_first(self) -> None:
        """Of names that start alike, the longer one is the address."""
        found = parse_address("botcore: hi", ("bot", "botcore"))
        self.assertEqual((found.name, found.body), ("botcore", "hi"))

    def test_span_and_replace(self) -> None:
        """The body's span lets a caller replace it, keeping the address as typed."""
        found = parse_address("  BotCore>  auth x", NAMES)
        self.assertEqual(found.text[found.start : found.end], found.body)
        self.assertEqual(found.replace_body("auth [secret]"), "  BotCore>  auth [secret]")
        found = parse_address("auth x, bc!", NAMES)
        self.assertEqual(found.replace_body("auth [secret]"), "auth [secret], bc!")

    def test_no_names(self) -> None:
        """With no names nothing is addressed."""
        self.assertIsNone(parse_address("botcore: hi", ()))
        self.assertIsNone(AddressParser(["", ""]).parse("botcore: hi"))

    def test_cached(self) -> None:
        """One compiled parser per set of names and verbs."""
        self.assertIs(address_parser(NAMES), address_parser(list(NAMES)))
        self.assertIsNot(address_parser(NAMES), address_parser(NAMES, ()))

    def test_mentioned(self) -> None:
        """The cheap pre-check looks for any name, case-blind."""
        parser = address_parser(NAMES)
        self.assertTrue(parser.mentioned("hey BC"))
        self.assertFalse(parser.mentioned("hey there"))
