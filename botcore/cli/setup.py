"""botcore-setup: write a working bot.ini from conf.example.ini (bot name, database, one
source) and create the admin account, with a password and every admin permission.

Interactive by default; every question has a flag, and ``--yes`` takes the defaults for
the rest. Safe to run twice: an existing config or account is kept unless ``--force``."""

from __future__ import annotations

import argparse
import getpass
import os
import re
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO, Any

from botcore.config import ConfigErrors
from botcore.db.faults import first_line

#: Where conf.example.ini is in a checkout or an editable install.
TEMPLATE = Path(__file__).resolve().parents[2] / "conf.example.ini"

SOURCE_TYPES = ("telnet", "irc")
#: The example's section for each source type setup can configure.
SOURCE_SECTIONS = {"telnet": "console", "irc": "libera"}


class SetupError(Exception):
    """Setup cannot go on; the message says why and what to do."""


def set_option(text: str, section: str, key: str, value: str) -> str:
    """``text`` (an INI file) with ``key`` in ``[section]`` set to ``value``: the existing
    line (or the commented-out ``# key =``) is replaced, comments are kept."""
    lines = text.splitlines(keepends=True)
    header = re.compile(r"^\[(.+)\]\s*$")
    wanted = re.compile(rf"^(?:#\s*)?{re.escape(key)}\s*=.*$")
    inside = False
    rendered = value.replace("\n", "\n    ")
    for index, line in enumerate(lines):
        found = header.match(line)
        if found:
            if inside:
                break
            inside = found.group(1) == section
            continue
        if inside and wanted.match(line):
            # A list value's continuation lines go with it.
            end = index + 1
            while end < len(lines) and lines[end].startswith((" ", "\t")) and lines[end].strip():
                end += 1
            lines[index:end] = [f"{key} = {rendered}\n"]
            return "".join(lines)
    raise SetupError(f"the template has no '{key}' in [{section}]")


def render_config(
    template: str,
    *,
    name: str,
    database: str,
    source: str,
    irc_servers: str | None = None,
    irc_channels: str | None = None,
) -> str:
    """The config text: the template with the bot's name, the database URL and exactly
    one enabled source."""
    text = set_option(template, "bot", "name", name)
    text = set_option(text, "database:main", "url", database)
    for kind, section in SOURCE_SECTIONS.items():
        text = set_option(text, f"source:{section}", "enabled", "yes" if kind == source else "no")
    if source == "irc":
        if irc_servers:
            text = set_option(text, "source:libera", "servers", irc_servers)
        if irc_channels:
            text = set_option(text, "source:libera", "channels", irc_channels)
    return text


def admin_permissions() -> list[str]:
    """``admin`` and every permission the bundled plugins' processors check."""
    from botcore.loading.reloader import Reloader
    from botcore.processor import Processor

    names = {"admin"}
    reloader = Reloader()
    for plugin in reloader.plugin_names():
        try:
            module = reloader.plugin_module(plugin)
        except Exception:
            continue  # a broken plugin grants nothing; the bot reports it at start
        for value in vars(module).values():
            if isinstance(value, type) and issubclass(value, Processor):
                names.update(value.declared_permissions())
    return sorted(names)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="botcore-setup",
        description="Create a bot config and its admin account (asks for what flags don't say).",
    )
    parser.add_argument("-c", "--config", default="bot.ini", help="config file to write")
    parser.add_argument("--template", default=str(TEMPLATE), help="example config to start from")
    parser.add_argument("--name", help="the bot's name")
    parser.add_argument("--database", help="SQLAlchemy URL (default sqlite:///botcore.sqlite)")
    parser.add_argument("--source", choices=SOURCE_TYPES, help="the one source to enable")
    parser.add_argument("--irc-servers", help="IRC servers, e.g. tls:irc.libera.chat:6697")
    parser.add_argument("--irc-channels", help="IRC channels to join, comma separated")
    parser.add_argument("--admin", help="the admin account's username")
    parser.add_argument(
        "--admin-identity",
        help="who the admin is on the source: telnet nick, IRC services account or mask",
    )
    parser.add_argument(
        "--password-env",
        metavar="VARIABLE",
        help="read the admin password from this environment variable (not argv: ps shows it)",
    )
    parser.add_argument(
        "--password-stdin", action="store_true", help="read the admin password from stdin"
    )
    parser.add_argument(
        "--api-token",
        metavar="LABEL",
        help="also make an API token for the web front door for the admin (printed once)",
    )
    parser.add_argument(
        "-y", "--yes", action="store_true", help="no questions: defaults for what flags omit"
    )
    parser.add_argument(
        "--force",
        action="store_true",
        help="overwrite an existing config and reset an existing admin's password",
    )
    return parser


class Setup:
    """One run of botcore-setup: asks (or takes from flags), writes, creates."""

    def __init__(
        self,
        args: argparse.Namespace,
        stdout: IO[str],
        ask: Callable[[str], str],
        ask_secret: Callable[[str], str],
        environ: dict[str, str],
        stdin: IO[str],
    ) -> None:
        self.args = args
        self.stdout = stdout
        self._ask = ask
        self._ask_secret = ask_secret
        self.environ = environ
        self.stdin = stdin

    def say(self, text: str) -> None:
        print(text, file=self.stdout)

    def value(self, flag: str, question: str, default: str) -> str:
        given = getattr(self.args, flag)
        if given is not None:
            return given
        if self.args.yes:
            return default
        answer = self._ask(f"{question} [{default}]: ").strip()
        return answer or default

    def password(self) -> str:
        if self.args.password_env:
            secret = self.environ.get(self.args.password_env, "")
            if not secret:
                raise SetupError(
                    f"environment variable {self.args.password_env} is empty or unset"
                )
            return secret
        if self.args.password_stdin:
            secret = self.stdin.readline().rstrip("\r\n")
            if not secret:
                raise SetupError("no password on stdin")
            return secret
        if self.args.yes:
            raise SetupError("--yes needs --password-env or --password-stdin for the admin")
        for _ in range(3):
            first = self._ask_secret("Admin password: ")
            if not first:
                self.say("The password cannot be empty.")
                continue
            if self._ask_secret("Again: ") == first:
                return first
            self.say("Those did not match.")
        raise SetupError("no password given")

    # -- steps --------------------------------------------------------------------------

    def write_config(self) -> Path:
        path = Path(self.args.config)
        if path.exists() and not self.args.force:
            self.say(f"Keeping the existing {path} (--force writes a new one).")
            return path
        template = Path(self.args.template)
        if not template.is_file():
            raise SetupError(f"the template {template} is missing (give --template)")
        name = self.value("name", "Bot name", "botcore")
        database = self.value("database", "Database URL", "sqlite:///botcore.sqlite")
        source = self.value("source", "Source (telnet or irc)", "telnet")
        if source not in SOURCE_TYPES:
            raise SetupError(f"the source must be one of {', '.join(SOURCE_TYPES)}")
        servers = channels = None
        if source == "irc":
            servers = self.value("irc_servers", "IRC servers", "tls:irc.libera.chat:6697")
            channels = self.value("irc_channels", "IRC channels", "")
        text = render_config(
            template.read_text(encoding="utf-8"),
            name=name,
            database=database,
            source=source,
            irc_servers=servers,
            irc_channels=", ".join(c.strip() for c in channels.split(",")) if channels else None,
        )
        path.parent.mkdir(parents=True, exist_ok=True)
        # The config may name a database password: readable by its owner only.
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        self.say(f"Wrote {path}.")
        return path

    def create_admin(self, path: Path) -> None:
        from botcore.accounts import models as accounts
        from botcore.db import migrate
        from botcore.db.engine import make_session_factory
        from botcore.db.service import Database
        from botcore.settings import read_config

        config = read_config(path)
        enabled = [
            name
            for name in config.names("source")
            if config.section(f"source:{name}").get("enabled", True)
        ]
        if not enabled:
            raise SetupError(f"{path} enables no source, so the admin has nowhere to be")
        source = enabled[0]
        database = Database.from_config("main", config)
        engine = database.create_engine()
        try:
            state = migrate.schema_state(engine)
            if not state.current:
                migrate.upgrade(engine)
                self.say("Set up the database schema.")
            sessions = make_session_factory(engine)
            username = self.value("admin", "Admin account name", "admin")
            identity = self.value(
                "admin_identity", f"Admin's nick (or services account) on {source}", username
            )
            with sessions() as session:
                account = accounts.find_account(session, username)
                if account is not None and not self.args.force:
                    self.say(
                        f"Keeping the existing account {account.username} "
                        "(--force resets its password and permissions)."
                    )
                    self.create_token(session, account.id)
                    return
                secret = self.password()
                if account is None:
                    account = accounts.create_account(session, username)
                row = accounts.identify(session, source, identity)
                accounts.link(session, row, account)
                accounts.add_credential(session, account.id, "password", secret)
                for permission in admin_permissions():
                    accounts.set_permission(session, account.id, permission, "auth")
                session.commit()
                self.create_token(session, account.id)
            self.say(
                f"Admin account {username} is {identity} on {source}; say "
                "'auth <password>' to the bot privately to use its permissions."
            )
        finally:
            engine.dispose()

    def create_token(self, session: Any, account_id: int) -> None:
        """With ``--api-token``, a new token for the account, printed once."""
        if not self.args.api_token:
            return
        from botcore.accounts.models import AccountError
        from botcore.web import tokens

        try:
            row, secret = tokens.create_token(session, account_id, self.args.api_token)
        except AccountError as e:
            raise SetupError(str(e)) from None
        session.commit()
        self.say(f"API token {row.id} ({row.label}), shown only now: {secret}")


def main(
    argv: Sequence[str] | None = None,
    *,
    stdout: IO[str] | None = None,
    stderr: IO[str] | None = None,
    stdin: IO[str] | None = None,
    ask: Callable[[str], str] | None = None,
    ask_secret: Callable[[str], str] | None = None,
    environ: dict[str, str] | None = None,
) -> int:
    """Run botcore-setup; returns the exit status (0 done, 1 failed, 2 usage)."""
    stdout = stdout or sys.stdout
    stderr = stderr or sys.stderr
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as e:
        return int(e.code or 0)
    setup = Setup(
        args,
        stdout,
        ask or input,
        ask_secret or getpass.getpass,
        dict(os.environ if environ is None else environ),
        stdin or sys.stdin,
    )
    try:
        path = setup.write_config()
        setup.create_admin(path)
    except ConfigErrors as e:
        print(str(e), file=stderr)
        return 1
    except (SetupError, OSError, EOFError, KeyboardInterrupt) as e:
        print(f"botcore-setup: {first_line(e)}", file=stderr)
        return 1
    except Exception as e:  # a database that cannot be reached, for example
        print(f"botcore-setup: {type(e).__name__}: {first_line(e)}", file=stderr)
        return 1
    return 0
