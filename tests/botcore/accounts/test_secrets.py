"""Tests for botcore.accounts.secrets: the declared secret-carrying commands, found however
the bot is addressed, their arguments, and the secret never in a repr."""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from botcore.accounts.secrets import REDACTED, SECRET_COMMANDS, find_secret, take_secret

NAMES = ("botcore", "bc")

#: One example of every declared command: (text, the arguments it carries).
EXAMPLES = {
    "auth": ("auth s3cret", {}),
    "authenticate": (
        "authenticate alice on irc using password s3cret",
        {"user": "alice", "source": "irc", "method": "password"},
    ),
    "set password": ("set my password on irc to s3cret", {"source": "irc"}),
    "create account": ("create account bob with password s3cret", {"user": "bob"}),
    "link token": ("link token s3cret", {}),
    "set config": (
        "set config source:irc.account_password to s3cret",
        {"option": "source:irc.account_password"},
    ),
}


class TakeSecretTests(SynchronousTestCase):
    """take_secret: the command said to the bot, in every form of address."""

    def test_every_command(self) -> None:
        """Each declared command is found with its name and arguments, its secret replaced;
        the examples cover every declared command."""
        self.assertEqual(set(EXAMPLES), {command.name for command in SECRET_COMMANDS})
        for name, (text, arguments) in EXAMPLES.items():
            found = take_secret(text, NAMES)
            self.assertEqual(found.command, name)
            self.assertEqual({k: v for k, v in found.arguments.items() if v}, arguments)
            self.assertEqual(found.secret, "s3cret")
            self.assertEqual(found.scrubbed, text.replace("s3cret", REDACTED))
            self.assertIsNone(found.addressed)

    def test_set_config_of_secret_options_only(self) -> None:
        """``set config`` carries a secret when the option it names is a secret one (the
        caller says which); without being told, every value is taken; find_secret (for
        logs) takes every value."""
        text = "set config bot.name to robo"
        self.assertIsNone(take_secret(text, NAMES, lambda path: path != "bot.name"))
        found = take_secret("bc: " + text, NAMES, lambda path: path == "bot.name")
        self.assertEqual(
            (found.secret, found.scrubbed), ("robo", "bc: set config bot.name to [secret]")
        )
        self.assertEqual(found.key, "botcore.secret.config")
        self.assertEqual(take_secret(text, NAMES).secret, "robo")
        self.assertEqual(find_secret("x: " + text), ("x: set config bot.name to [secret]", "robo"))

    def test_every_form_of_address(self) -> None:
        """Whatever separates the name from the command, or when the name comes last, the
        secret is found and only it is replaced (the address stays as typed)."""
        for text, scrubbed in (
            ("botcore: auth s3cret", "botcore: auth [secret]"),
            ("botcore, auth s3cret", "botcore, auth [secret]"),
            ("botcore> auth s3cret", "botcore> auth [secret]"),
            ("botcore auth s3cret", "botcore auth [secret]"),
            ("botcore:auth s3cret", "botcore:auth [secret]"),
            ("botcore -> auth s3cret", "botcore -> auth [secret]"),
            ("botcore! auth s3cret", "botcore! auth [secret]"),
            ("  BC;  auth s3cret  ", "  BC;  auth [secret]  "),
            ("auth s3cret, botcore", "auth [secret], botcore"),
            ("auth s3cret, bc?", "auth [secret], bc?"),
        ):
            found = take_secret(text, NAMES)
            self.assertIsNotNone(found, text)
            self.assertEqual((found.scrubbed, found.secret), (scrubbed, "s3cret"), text)
            self.assertIn(found.addressed.lower(), NAMES, text)

    def test_name_that_is_a_command(self) -> None:
        """A bot called "auth" addressed as "auth hunter2" still has the secret taken."""
        found = take_secret("auth hunter2", ("auth",))
        self.assertEqual((found.scrubbed, found.addressed), ("auth [secret]", None))

    def test_not_commands(self) -> None:
        """A command not at the start of what is said, or no command, is not taken."""
        for text in ("what is auth for", "botcore: what is auth for", "botcore: hello", ""):
            self.assertIsNone(take_secret(text, NAMES), text)

    def test_repr_hides_secret(self) -> None:
        """The secret is not in the repr of what was found."""
        found = take_secret("botcore: auth s3cret", NAMES)
        self.assertNotIn("s3cret", repr(found))

    def test_find_secret_agrees(self) -> None:
        """find_secret (for logs) finds each declared command too."""
        for text, _ in EXAMPLES.values():
            self.assertEqual(find_secret(text), (text.replace("s3cret", REDACTED), "s3cret"))
