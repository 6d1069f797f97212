"""The webtokens plugin as a conversation: an authenticated account makes a token (in
private only, shown once), lists its tokens without their secrets and revokes one; the
token then finds its account, and no longer once revoked."""

from __future__ import annotations

import io
import re
from pathlib import Path
from typing import Any

from twisted.trial.unittest import SynchronousTestCase

from botcore.accounts import models as accounts
from botcore.cli.setup import main
from botcore.db.engine import make_engine, make_session_factory
from botcore.testing import PluginTestCase
from botcore.web import tokens

PASSWORD = "correct-horse-battery-staple"


class WebTokensTests(PluginTestCase):
    load = ("identity", "webtokens")

    def setUp(self) -> None:
        super().setUp()
        with self.session() as session:
            account = accounts.create_account(session, "alice")
            accounts.link(session, accounts.identify(session, "test", "user"), account)
            accounts.add_credential(session, account.id, "password", PASSWORD)
            session.commit()
            self.account = account.id

    def session(self) -> Any:
        return self.bot.databases["main"].session_factory()

    def authenticate(self) -> None:
        self.assertResponseMatches(f"auth {PASSWORD}", "(?i)authenticated")

    def test_needs_authentication(self) -> None:
        """Without authenticating, no token is made (a linked nick is not proof)."""
        self.assertResponseMatches("create token ci", "need to be authenticated")
        with self.session() as session:
            self.assertEqual(tokens.tokens_of(session, self.account), [])

    def test_create_shows_once_and_stores_digest(self) -> None:
        """The token is said once, in private; only its digest is stored, and it finds
        the account."""
        self.authenticate()
        found = self.assertResponseMatches("create token deploy script", r"(bct_[\w-]{43})")
        secret = found.group(1)
        with self.session() as session:
            (row,) = tokens.tokens_of(session, self.account)
            self.assertEqual(row.label, "deploy script")
            self.assertEqual(row.digest, tokens.digest_of(secret))
            _, account = tokens.account_of_token(session, secret)
            self.assertEqual(account.username, "alice")
        listed = self.responses("list tokens")
        self.assertEqual(len(listed), 1)
        self.assertIn("deploy script", listed[0])
        self.assertNotIn(secret, listed[0])

    def test_not_in_public(self) -> None:
        """Asked in a channel, the bot refuses to show a token there."""
        self.authenticate()
        self.assertResponseMatches(
            f"{self.bot.name}: create token ci", "in private", public=True, addressed=True
        )
        with self.session() as session:
            self.assertEqual(tokens.tokens_of(session, self.account), [])

    def test_revoke(self) -> None:
        """A revoked token no longer finds its account, and is listed as revoked; someone
        else's token cannot be revoked."""
        self.authenticate()
        secret = self.assertResponseMatches("create token ci", r"(bct_[\w-]{43})").group(1)
        number = re.search(r"Token (\d+)", self.replies[0].text).group(1)
        with self.session() as session:
            other = accounts.create_account(session, "mallory")
            session.flush()
            theirs, _ = tokens.create_token(session, other.id, "theirs")
            session.commit()
            theirs_id = theirs.id
        self.assertResponseMatches(f"revoke token {theirs_id}", "no live token")
        self.assertResponseMatches(f"revoke token {number}", f"Revoked token {number}")
        self.assertResponseMatches(f"revoke token {number}", "no live token")
        with self.session() as session:
            self.assertIsNone(tokens.account_of_token(session, secret))
            self.assertFalse(session.get(tokens.APIToken, theirs_id).revoked)
        self.assertResponseMatches("list tokens", "ci .*revoked")

    def test_bad_labels_and_limit(self) -> None:
        """A label too long is refused; an account holds a bounded number of tokens."""
        self.authenticate()
        self.assertResponseMatches("create token " + "x" * 65, "at most 64")
        with self.session() as session:
            for index in range(tokens.MAX_TOKENS):
                tokens.create_token(session, self.account, f"t{index}")
            session.commit()
        self.assertResponseMatches("create token one more", "revoke one first")

    def test_not_a_token(self) -> None:
        """Strings that are not tokens find nothing."""
        with self.session() as session:
            for text in ("", "bct_", "nope", "bct_" + "a" * 300):
                self.assertIsNone(tokens.account_of_token(session, text))


class SetupTokenTests(SynchronousTestCase):
    """botcore-setup --api-token makes a token for the admin, printed once."""

    def run_setup(self, directory: Path, *argv: str) -> tuple[int, str, str]:
        out, err = io.StringIO(), io.StringIO()
        code = main(
            [
                "-c",
                str(directory / "bot.ini"),
                "--yes",
                "--database",
                f"sqlite:///{directory / 'bot.sqlite'}",
                "--password-env",
                "PW",
                *argv,
            ],
            stdout=out,
            stderr=err,
            environ={"PW": PASSWORD},
        )
        return code, out.getvalue(), err.getvalue()

    def test_token_for_new_and_existing_admin(self) -> None:
        """A new admin gets the token; running again with --api-token adds another for
        the kept account."""
        directory = Path(self.mktemp()).absolute()
        directory.mkdir(parents=True)
        code, out, err = self.run_setup(directory, "--api-token", "ci")
        self.assertEqual(code, 0, err)
        first = re.search(r"shown only now: (bct_[\w-]{43})", out).group(1)
        code, out, err = self.run_setup(directory, "--api-token", "deploy")
        self.assertEqual(code, 0, err)
        second = re.search(r"shown only now: (bct_[\w-]{43})", out).group(1)
        engine = make_engine(f"sqlite:///{directory / 'bot.sqlite'}")
        self.addCleanup(engine.dispose)
        with make_session_factory(engine)() as session:
            for secret in (first, second):
                _, account = tokens.account_of_token(session, secret)
                self.assertEqual(account.username, "admin")
        code, out, err = self.run_setup(directory, "--api-token", " ")
        self.assertEqual(code, 1)
        self.assertIn("needs a label", err)
