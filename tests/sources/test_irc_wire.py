"""The IRC wire helpers: parsing received lines, decoding, masks, case folding, and
building lines to send (splitting, budgets, sanitising)."""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from botcore.sources.irc.wire import (
    LINE_LIMIT,
    Mask,
    clean_text,
    decode,
    encode_line,
    irc_lower,
    parse_line,
    text_budget,
    valid_target,
)
from botcore.text import split_text


class ParseLineTests(SynchronousTestCase):
    def test_prefix_command_params_trailing(self) -> None:
        """A full line splits into prefix, upper-cased command, middle and trailing params."""
        line = parse_line(":nick!user@host privmsg #chan :hello there")
        self.assertEqual(line.prefix, "nick!user@host")
        self.assertEqual(line.command, "PRIVMSG")
        self.assertEqual(line.params, ["#chan", "hello there"])

    def test_no_prefix(self) -> None:
        """A line without a prefix has an empty one."""
        line = parse_line("PING :irc.example.net")
        self.assertEqual(
            (line.prefix, line.command, line.params), ("", "PING", ["irc.example.net"])
        )

    def test_tags(self) -> None:
        """IRCv3 message tags are parsed, with their escapes undone."""
        line = parse_line("@account=alice;msgid=a\\sb\\:c;flag :a!b@c PRIVMSG #x :hi")
        self.assertEqual(line.tags, {"account": "alice", "msgid": "a b;c", "flag": ""})
        self.assertEqual(line.command, "PRIVMSG")

    def test_empty_trailing_kept(self) -> None:
        """An empty trailing parameter is still a parameter."""
        self.assertEqual(parse_line(":a!b@c PRIVMSG #x :").params, ["#x", ""])

    def test_extra_spaces(self) -> None:
        """Runs of spaces between parameters are tolerated."""
        line = parse_line(":srv   005  bot   A=1  B  :are supported")
        self.assertEqual(line.params, ["bot", "A=1", "B", "are supported"])

    def test_no_command(self) -> None:
        """Lines with no command (empty, only a prefix, only tags) give None."""
        for text in ("", "   ", ":prefix.only", "@a=b", "@a=b :prefix", "\r\n"):
            self.assertIsNone(parse_line(text), text)

    def test_trailing_only(self) -> None:
        """A line that is only a trailing parameter has no command."""
        self.assertIsNone(parse_line(":x :y"))

    def test_param_default(self) -> None:
        """Line.param gives a default for a missing parameter."""
        line = parse_line("KICK #chan")
        self.assertEqual(line.param(0), "#chan")
        self.assertEqual(line.param(2, "none"), "none")


class DecodeTests(SynchronousTestCase):
    def test_utf8(self) -> None:
        """Valid UTF-8 is decoded as such."""
        self.assertEqual(decode("héllo €".encode()), "héllo €")

    def test_fallback(self) -> None:
        """Invalid UTF-8 is decoded with the fallback encoding."""
        self.assertEqual(decode("héllo".encode("cp1252")), "héllo")

    def test_unmappable_bytes_replaced(self) -> None:
        """Bytes the fallback cannot map become replacement characters, never an error."""
        self.assertEqual(decode(b"a\x81\xffb"), "a\ufffdÿb")

    def test_unknown_fallback(self) -> None:
        """An unknown fallback encoding falls back to latin-1."""
        self.assertEqual(decode(b"\xe9", "no-such-codec"), "é")


class MaskTests(SynchronousTestCase):
    def test_full_mask(self) -> None:
        """nick!user@host splits into its parts and joins back."""
        mask = Mask.parse("alice!~al@example.org")
        self.assertEqual((mask.nick, mask.user, mask.host), ("alice", "~al", "example.org"))
        self.assertEqual(str(mask), "alice!~al@example.org")
        self.assertFalse(mask.is_server)

    def test_server(self) -> None:
        """A bare name with a dot is a server."""
        mask = Mask.parse("irc.example.net")
        self.assertTrue(mask.is_server)
        self.assertEqual(str(mask), "irc.example.net")

    def test_malformed(self) -> None:
        """Odd prefixes parse without errors."""
        self.assertEqual(Mask.parse("nick@host").host, "host")
        self.assertEqual(Mask.parse("!@").nick, "")
        self.assertEqual(Mask.parse("a!b").user, "b")


class CaseMappingTests(SynchronousTestCase):
    def test_rfc1459(self) -> None:
        """rfc1459 folds []\\~ onto {}|^."""
        self.assertEqual(irc_lower("Nick[A]\\~", "rfc1459"), "nick{a}|^")

    def test_strict(self) -> None:
        """rfc1459-strict leaves ~ alone."""
        self.assertEqual(irc_lower("A[~", "rfc1459-strict"), "a{~")

    def test_ascii(self) -> None:
        """ascii folds letters only (not non-ASCII ones)."""
        self.assertEqual(irc_lower("ÄB[", "ascii"), "Äb[")

    def test_unknown_mapping(self) -> None:
        """An unknown CASEMAPPING is treated as rfc1459."""
        self.assertEqual(irc_lower("A[", "weird"), "a{")


class SanitiseTests(SynchronousTestCase):
    def test_clean_text(self) -> None:
        """Line breaks become spaces; NUL and CTCP delimiters go."""
        self.assertEqual(clean_text("a\r\nQUIT\rb\nc\0d\x01e"), "a QUIT b cde")
        self.assertEqual(clean_text("plain"), "plain")

    def test_valid_target(self) -> None:
        """Targets with spaces, commas, line breaks or a leading colon are refused."""
        for good in ("#chan", "nick", "&local", "nick[m]"):
            self.assertTrue(valid_target(good), good)
        for bad in ("", "a b", ":x", "#a,#b", "x\r\nQUIT", "x\0"):
            self.assertFalse(valid_target(bad), bad)

    def test_encode_line(self) -> None:
        """Words then a trailing parameter, ending in CR LF."""
        self.assertEqual(
            encode_line("PRIVMSG", "#c", trailing="hé"), "PRIVMSG #c :hé\r\n".encode()
        )
        self.assertEqual(encode_line("JOIN", "#c", "key"), b"JOIN #c key\r\n")


class SplitTextTests(SynchronousTestCase):
    def test_short_text_whole(self) -> None:
        """Text within the budget is one piece."""
        self.assertEqual(split_text("hello world", 20), ["hello world"])

    def test_prefers_spaces(self) -> None:
        """Long text breaks at a space in the second half of a piece, dropping it."""
        self.assertEqual(split_text("aaaa bbbb cccc", 10), ["aaaa bbbb", "cccc"])

    def test_hard_cut_without_spaces(self) -> None:
        """With no space in the second half, text is cut at the budget."""
        self.assertEqual(split_text("abcdefghij", 4), ["abcd", "efgh", "ij"])

    def test_never_inside_a_character(self) -> None:
        """Cuts fall on UTF-8 character boundaries; every piece decodes and fits."""
        text = "€" * 10 + "ü" * 7
        for budget in range(4, 30):
            pieces = split_text(text, budget)
            self.assertEqual("".join(pieces), text)
            for piece in pieces:
                self.assertLessEqual(len(piece.encode("utf-8")), budget)

    def test_four_byte_characters(self) -> None:
        """Four-byte characters (emoji) are kept whole even with the smallest budget."""
        self.assertEqual(split_text("😀😀", 4), ["😀", "😀"])

    def test_blank_pieces_dropped(self) -> None:
        """Pieces that would be only spaces are left out."""
        self.assertEqual(split_text("   ", 2 * 4), [])
        self.assertEqual(split_text("", 10), [])

    def test_tiny_budget_refused(self) -> None:
        """A budget that cannot hold every character is an error."""
        self.assertRaises(ValueError, split_text, "x", 3)


class TextBudgetTests(SynchronousTestCase):
    def test_relayed_line_fits(self) -> None:
        """A piece of exactly the budget makes a relayed line of exactly 512 bytes."""
        budget = text_budget("bot", "~bot", "host.example", "PRIVMSG", "#chan")
        relayed = f":bot!~bot@host.example PRIVMSG #chan :{'x' * budget}\r\n"
        self.assertEqual(len(relayed.encode()), LINE_LIMIT)

    def test_unknown_host_assumes_longest(self) -> None:
        """An unknown host counts as 63 bytes."""
        known = text_budget("bot", "~bot", "h" * 63, "PRIVMSG", "#chan")
        self.assertEqual(text_budget("bot", "~bot", "", "PRIVMSG", "#chan"), known)

    def test_action_overhead(self) -> None:
        """An action leaves room for the CTCP wrapping."""
        plain = text_budget("bot", "u", "h", "PRIVMSG", "#c")
        self.assertEqual(text_budget("bot", "u", "h", "PRIVMSG", "#c", action=True), plain - 9)

    def test_multibyte_target(self) -> None:
        """Targets are counted in bytes."""
        ascii_budget = text_budget("bot", "u", "h", "PRIVMSG", "#ab")
        self.assertEqual(text_budget("bot", "u", "h", "PRIVMSG", "#é"), ascii_budget)
