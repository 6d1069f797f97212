"""botcore-setup: scripted and interactive runs write a valid config with one source and an
admin account with a hashed password and the admin permissions; running it again clobbers
nothing unless --force; bad input is one clear line."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

from twisted.logger import formatEvent, globalLogPublisher
from twisted.trial.unittest import SynchronousTestCase

from botcore.accounts import models as accounts
from botcore.cli.setup import SetupError, main, render_config, set_option
from botcore.db.engine import make_engine, make_session_factory
from botcore.settings import read_config

SECRET = "tr0ub4dor&3-setup"


class SetupTests(SynchronousTestCase):
    """Runs of botcore-setup in a temporary folder."""

    def setUp(self) -> None:
        self.directory = Path(self.mktemp()).absolute()
        self.directory.mkdir(parents=True)
        self.config = self.directory / "bot.ini"
        self.database = f"sqlite:///{self.directory / 'bot.sqlite'}"

    def run_setup(self, *argv: str, answers: list[str] = (), secrets: list[str] = (), **kw):
        out, err = io.StringIO(), io.StringIO()
        answers, secrets = list(answers), list(secrets)
        code = main(
            ["-c", str(self.config), *argv],
            stdout=out,
            stderr=err,
            ask=lambda prompt: answers.pop(0),
            ask_secret=lambda prompt: secrets.pop(0),
            environ={"PW": SECRET, **kw.pop("environ", {})},
            stdin=io.StringIO(kw.pop("stdin", "")),
        )
        return code, out.getvalue(), err.getvalue()

    def scripted(self, *extra: str):
        return self.run_setup(
            "--yes", "--name", "mybot", "--database", self.database, "--password-env", "PW", *extra
        )

    def account(self, name: str = "admin") -> tuple[Any, dict[str, str], list[Any]]:
        engine = make_engine(self.database)
        self.addCleanup(engine.dispose)
        with make_session_factory(engine)() as session:
            account = accounts.find_account(session, name)
            return (
                account,
                accounts.permissions_of(session, account.id),
                accounts.identities_of(session, account.id),
            )

    def password_ok(self, secret: str) -> bool:
        engine = make_engine(self.database)
        self.addCleanup(engine.dispose)
        with make_session_factory(engine)() as session:
            account = accounts.find_account(session, "admin")
            return accounts.check_credentials(session, account.id, "console", "password", secret)

    def test_scripted(self) -> None:
        """With flags and --yes: a valid config naming the bot, the database and only the
        console; an admin linked on it with a hashed password and every admin permission."""
        code, out, err = self.scripted()
        self.assertEqual((code, err), (0, ""))
        config = read_config(self.config)
        self.assertEqual(config.section("bot")["name"], "mybot")
        self.assertEqual(config.section("database:main")["url"], self.database)
        self.assertTrue(config.section("source:console")["enabled"])
        self.assertFalse(config.section("source:libera")["enabled"])
        _account, permissions, identities = self.account()
        self.assertEqual(permissions["admin"], "auth")
        self.assertEqual([(i.source, i.identity) for i in identities], [("console", "admin")])
        self.assertTrue(self.password_ok(SECRET))
        self.assertNotIn(SECRET, self.config.read_text() + out)

    def test_second_run_clobbers_nothing(self) -> None:
        """Run again (even with another password), the config and account stay."""
        self.scripted()
        before = self.config.read_text()
        code, out, err = self.run_setup(
            "--yes", "--name", "other", "--password-env", "PW2", environ={"PW2": "new-one"}
        )
        self.assertEqual(code, 0, err)
        self.assertIn("Keeping the existing", out)
        self.assertEqual(self.config.read_text(), before)
        self.assertTrue(self.password_ok(SECRET))
        self.assertFalse(self.password_ok("new-one"))

    def test_force_resets(self) -> None:
        """--force writes a new config and resets the admin's password."""
        self.scripted()
        code, _out, err = self.run_setup(
            "--yes",
            "--force",
            "--database",
            self.database,
            "--password-stdin",
            stdin="new-one\n",
        )
        self.assertEqual(code, 0, err)
        self.assertTrue(self.password_ok("new-one"))
        self.assertFalse(self.password_ok(SECRET))

    def test_interactive(self) -> None:
        """Questions take the answers given (empty for the default); a password typed
        differently twice is asked again."""
        code, out, err = self.run_setup(
            answers=["askbot", self.database, "", "boss", "bossnick"],
            secrets=["one", "two", SECRET, SECRET],
        )
        self.assertEqual(code, 0, err)
        self.assertIn("did not match", out)
        self.assertEqual(read_config(self.config).section("bot")["name"], "askbot")
        _account, _permissions, identities = self.account("boss")
        self.assertEqual(identities[0].identity, "bossnick")

    def test_irc_source(self) -> None:
        """--source irc enables only the IRC section, with its servers and channels."""
        code, _out, err = self.scripted(
            "--source", "irc", "--irc-servers", "tcp:127.0.0.1:6667", "--irc-channels", "#a,#b"
        )
        self.assertEqual(code, 0, err)
        config = read_config(self.config)
        self.assertFalse(config.section("source:console")["enabled"])
        self.assertTrue(config.section("source:libera")["enabled"])
        self.assertIn("#a", str(config.section("source:libera")["channels"]))
        self.assertEqual(self.account()[2][0].source, "libera")

    def test_no_password_is_one_line(self) -> None:
        """--yes without a password source fails with one line, no traceback."""
        code, _out, err = self.run_setup("--yes", "--database", self.database)
        self.assertEqual(code, 1)
        self.assertEqual(len(err.strip().splitlines()), 1)
        self.assertIn("--password-env", err)

    def test_no_secret_logged(self) -> None:
        """Nothing setup logs or prints holds the password."""
        logged: list[str] = []

        def observe(event: dict[str, Any]) -> None:
            logged.append(formatEvent(event) + repr(event))

        globalLogPublisher.addObserver(observe)
        self.addCleanup(globalLogPublisher.removeObserver, observe)
        code, out, err = self.scripted()
        self.assertEqual(code, 0)
        for text in [out, err, *logged]:
            self.assertNotIn(SECRET, text)


class RenderTests(SynchronousTestCase):
    """Editing the template text."""

    def test_set_option_keeps_comments(self) -> None:
        """A key is replaced within its section only, commented-out keys included."""
        text = "[a]\n# help\nname = x\n[b]\nname = y\n# nick =\n"
        changed = set_option(set_option(text, "b", "nick", "z"), "a", "name", "q")
        self.assertEqual(changed, "[a]\n# help\nname = q\n[b]\nname = y\nnick = z\n")

    def test_missing_key(self) -> None:
        """A key the template lacks is a SetupError."""
        self.assertRaises(SetupError, set_option, "[a]\n", "a", "b", "c")

    def test_render_one_source(self) -> None:
        """render_config enables exactly the chosen source."""
        text = "[bot]\nname = x\n[database:main]\nurl = u\n"
        text += "[source:console]\nenabled = yes\n[source:libera]\nenabled = no\nservers = s\n"
        rendered = render_config(text, name="n", database="d", source="irc", irc_servers="t")
        self.assertIn("[source:console]\nenabled = no", rendered)
        self.assertIn("enabled = yes\nservers = t", rendered)
