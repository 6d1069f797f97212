"""Accounts and identities: who people are across networks, how they prove it, and who may
do what. Create an account, link your identities on other networks to it, authenticate,
and (admins) grant permissions."""

from __future__ import annotations

import secrets
from typing import TYPE_CHECKING

from twisted.logger import Logger

from botcore.accounts import models as accounts
from botcore.accounts.models import Account, AccountError, Identity
from botcore.accounts.secrets import TAKEN_SECRET, Secret
from botcore.event import Event, EventType
from botcore.options import FloatOption
from botcore.processor import Priority, Processor, authorise, handler, match

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from botcore.interfaces import IBotContext


#: Permissions every bot knows of, whatever plugins are loaded.
CORE_PERMISSIONS = ("admin",)


def known_permissions(bot: IBotContext) -> set[str]:
    """The permission names the loaded processors check, and the core's."""
    names = set(CORE_PERMISSIONS)
    for processor in (p for processors in bot.loaded().values() for p in processors):
        if processor.permission:
            names.add(processor.permission.lower())
        for spec in type(processor)._handler_specs:
            if spec.permission:
                names.add(spec.permission.lower())
    return names


def account_named(session: Session, source: str, name: str) -> Account | None:
    """The account called ``name``, or else the account of the identity ``name`` on
    ``source``."""
    account = accounts.find_account(session, name)
    if account is not None:
        return account
    identity = accounts.find_identity(session, source, name)
    if identity is not None and identity.account_id is not None:
        return session.get(Account, identity.account_id)
    return None


def own_account(event: Event) -> Account | None:
    """The sender's account, as the core's Identify found it: None when they have none (or
    it was deleted since)."""
    if event.account is None:
        return None
    return event.session.get(Account, event.account)


def account_asked_about(event: Event, name: str | None) -> Account | None:
    """The account ``name`` (an account or an identity on the event's source), or the
    sender's own when ``name`` is None; says so to the sender when there is none."""
    if name is None:
        account = own_account(event)
    else:
        account = account_named(event.session, event.source, name)
    if account is None:
        event.addresponse("No such account" if name else "You don't have an account")
    return account


class SecretCommands(Processor):
    """Carries out the commands that carry a secret (``auth <password>``, ``authenticate
    ... using password <password>``, ``set password <password>``, ``create account <name>
    password <password>``, ``link token <token>``: `botcore.accounts.secrets` declares
    them). The core's Secrets processor has taken the secret out of the message before any
    other processor saw it, and left it here only for a private message."""

    usage = (
        "auth <password>\n"
        "authenticate <user> [on <source>] using <method> <secret>\n"
        "set password [on <source>] <password>\n"
        "create account <name> password <password>\n"
        "link token <token>"
    )
    features = ("accounts", "auth")
    # Right after the core's Identify (the sender's account is known), before Ignore.
    priority = Priority.IDENTIFY + 1
    addressed = False
    processed = True  # the core's Secrets marked it processed
    event_types = EventType.TEXT

    log = Logger()

    @handler
    def handle_secret(self, event: Event) -> None:
        found = event.extra.pop(TAKEN_SECRET, None)
        if found is None:
            return
        try:
            self.carry_out(event, found)
        except AccountError as e:
            event.addresponse(str(e))

    def carry_out(self, event: Event, found: Secret) -> None:
        """Run one secret-carrying command (a `SECRET_COMMANDS` entry). Worker thread."""
        arguments, secret = found.arguments, found.secret
        if found.command == "link token":
            self.link_token(event, secret)
        elif found.command == "auth":
            if event.account is None:
                event.addresponse("You don't have an account (create account NAME first)")
                return
            self.authenticate(event, event.account, event.source, "password", secret)
        elif found.command == "authenticate":
            session = event.session
            account = account_named(session, event.source, str(arguments["user"]))
            if account is None or account.id != event.account:
                self._failed(event)
                event.addresponse("I can't authenticate you as that account from here")
                return
            self.authenticate(
                event,
                account.id,
                arguments["source"] or event.source,
                str(arguments["method"]).lower(),
                secret,
            )
        elif found.command == "set password":
            self.set_password(event, arguments["source"], secret)
        elif found.command == "create account":
            account = Accounts.create(self.bot, event, str(arguments["user"]))
            if account is not None:
                accounts.add_credential(event.session, account.id, "password", secret)
        else:
            event.addresponse("Huh? (I took the secret out of that, just in case)")

    def _failed(self, event: Event) -> None:
        self.bot.auth.failed((event.source, event.who.id), self.bot.seconds())

    def authenticate(
        self, event: Event, account_id: int, source: str, method: str, secret: str
    ) -> None:
        """Check a credential of the sender's account and, when it holds, remember the
        connection as authenticated."""
        auth = self.bot.auth
        now = self.bot.seconds()
        key = (event.source, event.who.id)
        if not auth.attempts_left(key, now):
            event.addresponse("Too many failed attempts; try again later")
            return
        if method == "network":
            vouched = self.bot.get_source(event.source)
            identity = vouched.verified_identity(event) if vouched is not None else None
            ok = identity is not None and identity.casefold() == event.who.id.casefold()
        elif method == "hostmask":
            mask = event.data.get("mask")
            ok = isinstance(mask, str) and accounts.check_credentials(
                event.session, account_id, source, "hostmask", mask
            )
        elif method == "password":
            ok = accounts.check_credentials(event.session, account_id, source, method, secret)
        else:
            event.addresponse(f"I don't know the method {method}")
            return
        if not ok:
            auth.failed(key, now)
            self.log.info(
                "failed {method} authentication by {id} on {source}",
                method=method,
                id=event.who.id,
                source=event.source,
            )
            event.addresponse("Sorry, that didn't work")
            return
        auth.remember(event, account_id, now)
        event.authenticated = True
        self.log.info(
            "{id} on {source} authenticated by {method}",
            id=event.who.id,
            source=event.source,
            method=method,
        )
        event.addresponse("You are now authenticated")

    def set_password(self, event: Event, source: str | None, secret: str) -> None:
        """Set the sender's password: the first one freely, a new one only when
        authenticated."""
        if event.account is None:
            event.addresponse("You don't have an account (create account NAME first)")
            return
        session = event.session
        if accounts.credentials_of(session, event.account) and not event.authenticated:
            event.addresponse("You need to authenticate first")
            return
        accounts.add_credential(session, event.account, "password", secret, source)
        event.addresponse("Your password is set")

    def link_token(self, event: Event, token: str) -> None:
        """Finish ``I am ... on ...``: the token came back from the identity it was sent
        to, so link that identity to the account that asked."""
        auth = self.bot.auth
        now = self.bot.seconds()
        key = (event.source, event.who.id)
        if not auth.attempts_left(key, now):
            event.addresponse("Too many failed attempts; try again later")
            return
        with auth.state.lock:
            pending = auth.state.tokens.get(token)
            if pending is not None and (
                pending[3] <= now
                or pending[1].casefold() != event.source.casefold()
                or pending[2].casefold() != event.who.id.casefold()
            ):
                pending = None
            if pending is not None:
                del auth.state.tokens[token]
        if pending is None:
            auth.failed(key, now)
            event.addresponse("That token is not one I gave you (or it has expired)")
            return
        session = event.session
        identity = session.get(Identity, event.identity)
        account = session.get(Account, pending[0])
        if identity is None or account is None:
            event.addresponse("That account no longer exists")
            return
        accounts.link(session, identity, account)
        auth.invalidate(session)
        event.account = account.id
        event.addresponse(f"Linked: you are {account.username} here too")


class Accounts(Processor):
    """Create, delete and rename accounts; link identities across networks (with a token
    for your own, as an admin for anyone's); set and show attributes."""

    usage = (
        "create account <name>\n"
        "delete account <name>\n"
        "rename account <name> to <new name>\n"
        "I am <identity> on <source>\n"
        "link <identity> on <source> to <account> | unlink <identity> on <source>\n"
        "set my <attribute> to <value> | remove my <attribute>\n"
        "attributes [of <user>]\n"
        "add hostmask <nick!user@host pattern>\n"
        "who am I | logout"
    )
    features = ("accounts",)

    token_lifetime = FloatOption(
        "Seconds the token of 'I am <identity> on <source>' stays valid.", 600.0, min=1
    )

    log = Logger()

    @staticmethod
    def create(bot: IBotContext, event: Event, name: str) -> Account | None:
        """Create an account: for an unlinked sender, linked to their identity; for an
        admin, an empty one. None (with a reply) when refused."""
        session = event.session
        admin = bot.auth.authorise(event, "admin")
        if event.account is not None and not admin:
            event.addresponse("You already have an account")
            return None
        account = accounts.create_account(session, name)
        if event.account is None and event.identity is not None:
            identity = session.get(Identity, event.identity)
            if identity is not None:  # always: identities are never deleted
                accounts.link(session, identity, account)
                event.account = account.id
        bot.auth.invalidate(session)
        event.addresponse(f"Created account {account.username}")
        return account

    @match(r"^create\s+account\s+(\S+)$", simple=False)
    def create_account(self, event: Event, name: str) -> None:
        try:
            self.create(self.bot, event, name)
        except AccountError as e:
            event.addresponse(str(e))

    def _own_or_admin(self, event: Event, account: Account) -> bool:
        if account.id == event.account and event.authenticated:
            return True
        return self.authorised(event, "admin")

    @match(r"^delete\s+account\s+(\S+)$", simple=False)
    def delete_account(self, event: Event, name: str) -> None:
        session = event.session
        account = accounts.find_account(session, name)
        if account is None:
            event.addresponse(f"There is no account called {name}")
            return
        if not self._own_or_admin(event, account):
            event.complain = "notauthed"
            event.processed = True
            return
        accounts.delete_account(session, account)
        self.bot.auth.invalidate(session)
        if event.account == account.id:
            self.bot.auth.forget(event)
        event.addresponse(f"Deleted account {name}")

    @match(r"^rename\s+account\s+(\S+)\s+to\s+(\S+)$", simple=False)
    def rename_account(self, event: Event, old: str, new: str) -> None:
        session = event.session
        account = accounts.find_account(session, old)
        if account is None:
            event.addresponse(f"There is no account called {old}")
            return
        if not self._own_or_admin(event, account):
            event.complain = "notauthed"
            event.processed = True
            return
        try:
            accounts.rename_account(session, account, new)
        except AccountError as e:
            event.addresponse(str(e))
            return
        self.bot.auth.invalidate(session)
        event.addresponse(f"Account {old} is now called {new}")

    @match(r"^i\s+am\s+(\S+)\s+on\s+(\S+)$", simple=False)
    def i_am(self, event: Event, identity: str, source_name: str) -> None:
        account = own_account(event)
        if account is None:
            event.addresponse("You don't have an account (create account NAME first)")
            return
        source = self.bot.get_source(source_name)
        if source is None:
            event.addresponse(f"I don't know a source called {source_name}")
            return
        token = secrets.token_urlsafe(12)
        state = self.bot.auth.state
        with state.lock:
            now = self.bot.seconds()
            for key in [k for k, v in state.tokens.items() if v[3] <= now]:
                del state.tokens[key]
            state.tokens[token] = (account.id, source.name, identity, now + self.token_lifetime)
        target = identity.split("!", 1)[0]
        event.addresponse(
            f"{event.who.nick} on {event.source} says you are account {account.username}. "
            f"If that is you, tell me privately: link token {token}",
            source=source.name,
            target=target,
            address=False,
            processed=False,
        )
        event.addresponse(
            f"I've sent a token to {identity} on {source.name}; say 'link token <token>' "
            "to me from there"
        )

    @authorise(fallthrough=False, permission="admin")
    @match(r"^link\s+(?!token\b)(\S+)\s+on\s+(\S+)\s+to\s+(\S+)$", simple=False)
    def link(self, event: Event, identity: str, source: str, name: str) -> None:
        session = event.session
        account = account_named(session, event.source, name)
        if account is None:
            event.addresponse(f"There is no account called {name}")
            return
        row = accounts.identify(session, source, identity)
        accounts.link(session, row, account)
        self.bot.auth.invalidate(session)
        event.addresponse(f"Linked {identity} on {source} to {account.username}")

    @authorise(fallthrough=False, permission="admin")
    @match(r"^unlink\s+(\S+)\s+on\s+(\S+)$", simple=False)
    def unlink(self, event: Event, identity: str, source: str) -> None:
        session = event.session
        row = accounts.find_identity(session, source, identity)
        if row is None or row.account_id is None:
            event.addresponse(f"{identity} on {source} is not linked to an account")
            return
        accounts.unlink(session, row)
        self.bot.auth.invalidate(session)
        event.addresponse(f"Unlinked {identity} on {source}")

    @match(r"^set\s+my\s+(?!password\b)(\S+)\s+to\s+(.+)$", simple=False)
    def set_attribute(self, event: Event, name: str, value: str) -> None:
        if event.account is None:
            event.addresponse("You don't have an account (create account NAME first)")
            return
        try:
            accounts.set_attribute(event.session, event.account, name, value)
        except AccountError as e:
            event.addresponse(str(e))
            return
        event.addresponse(True)

    @match(r"^remove\s+my\s+(\S+)$", simple=False)
    def remove_attribute(self, event: Event, name: str) -> None:
        if event.account is None:
            event.addresponse("You don't have an account")
            return
        accounts.set_attribute(event.session, event.account, name, None)
        event.addresponse(True)

    @match(r"^(?:my\s+attributes|attributes(?:\s+of\s+(\S+))?)$", simple=False)
    def attributes(self, event: Event, name: str | None = None) -> None:
        session = event.session
        account = account_asked_about(event, name)
        if account is None:
            return
        values = accounts.attributes_of(session, account.id)
        if not values:
            event.addresponse(f"{account.username} has no attributes")
            return
        shown = ", ".join(f"{k}: {v}" for k, v in sorted(values.items()))
        event.addresponse(f"{account.username}: {shown}")

    @match(r"^add\s+hostmask\s+(\S+!\S+@\S+)$", simple=False)
    def add_hostmask(self, event: Event, mask: str) -> None:
        if event.account is None or not event.authenticated:
            event.addresponse("You need to be authenticated to add a hostmask")
            return
        accounts.add_credential(event.session, event.account, "hostmask", mask, event.source)
        event.addresponse(True)

    @match(r"^who\s+am\s+i$", simple=False)
    def whoami(self, event: Event) -> None:
        account = own_account(event)
        if account is None:
            event.addresponse(f"You are {event.who.id} on {event.source}, with no account")
            return
        linked = ", ".join(
            f"{i.identity} on {i.source}"
            for i in accounts.identities_of(event.session, account.id)
        )
        state = "authenticated" if event.authenticated else "not authenticated"
        event.addresponse(f"You are {account.username} ({state}); identities: {linked}")

    @match(r"^(?:logout|log\s+out|deauthenticate)$", simple=False)
    def logout(self, event: Event) -> None:
        self.bot.auth.forget(event)
        event.addresponse(True)


class Grants(Processor):
    """Admins grant, revoke and remove permissions (only known ones, and only those they
    hold themselves); anyone can list an account's permission rows."""

    usage = (
        "grant <permission> to <user> [when authenticated]\n"
        "revoke <permission> from <user>\n"
        "remove permission <permission> from <user>\n"
        "permissions [for <user>]"
    )
    features = ("accounts", "permissions")
    permission = "admin"

    log = Logger()

    def _target(self, event: Event, permission: str, name: str) -> Account | None:
        permission = permission.lower()
        if permission not in known_permissions(self.bot):
            event.addresponse(f"I don't know a permission called {permission}")
            return None
        # Nobody grants (or takes away) what they could not do themselves.
        if not self.authorised(event, permission):
            event.complain = "notauthed"
            event.processed = True
            return None
        account = account_named(event.session, event.source, name)
        if account is None:
            event.addresponse(f"There is no account called {name}")
        return account

    def _set(self, event: Event, permission: str, name: str, value: str | None) -> None:
        account = self._target(event, permission, name)
        if account is None:
            return
        session = event.session
        accounts.set_permission(session, account.id, permission.lower(), value)
        self.bot.auth.invalidate(session)
        self.log.info(
            "{who} set permission {permission} of {account} to {value}",
            who=event.who.id,
            permission=permission.lower(),
            account=account.username,
            value=value or "(removed)",
        )
        event.addresponse(True)

    @authorise(fallthrough=False)
    @match(r"^grant\s+(\S+)\s+to\s+(\S+)(\s+when\s+auth(?:enticated|ed)?)?$", simple=False)
    def grant(self, event: Event, permission: str, name: str, when: str | None) -> None:
        self._set(event, permission, name, "auth" if when else "yes")

    @authorise(fallthrough=False)
    @match(r"^revoke\s+(\S+)\s+from\s+(\S+)$", simple=False)
    def revoke(self, event: Event, permission: str, name: str) -> None:
        self._set(event, permission, name, "no")

    @authorise(fallthrough=False)
    @match(r"^remove\s+permission\s+(\S+)\s+from\s+(\S+)$", simple=False)
    def remove(self, event: Event, permission: str, name: str) -> None:
        self._set(event, permission, name, None)

    @match(r"^permissions(?:\s+(?:for|of)\s+(\S+))?$", simple=False)
    def list_permissions(self, event: Event, name: str | None = None) -> None:
        session = event.session
        account = account_asked_about(event, name)
        if account is None:
            return
        rows = accounts.permissions_of(session, account.id)
        if not rows:
            event.addresponse(f"{account.username} has no permissions of their own")
            return
        shown = ", ".join(
            {"yes": f"+{k}", "no": f"-{k}", "auth": k}[v] for k, v in sorted(rows.items())
        )
        event.addresponse(f"{account.username}: {shown}")
