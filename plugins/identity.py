"""Accounts and identities: who people are across networks, how they prove it, and who may
do what. Create an account, link your identities on other networks to it, authenticate,
and (admins) grant permissions."""

from __future__ import annotations

import re
import secrets
from math import ceil
from typing import TYPE_CHECKING

from twisted.logger import Logger

from botcore.accounts import models as accounts
from botcore.accounts.identify import proven_account
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
    """The permission names the loaded processors declare (`Processor.declared_permissions`),
    and the core's."""
    names = set(CORE_PERMISSIONS)
    for processor in (p for processors in bot.loaded().values() for p in processors):
        names.update(type(processor).declared_permissions())
    return names


_ACCOUNT_TARGET = re.compile(r"account\s+(\S+)", re.IGNORECASE)
_IDENTITY_TARGET = re.compile(r"(\S+)\s+on\s+(\S+)", re.IGNORECASE)


def account_named(session: Session, source: str, name: str) -> Account:
    """The account a user meant by ``name``: ``account NAME`` is the account called so,
    ``IDENTITY on SOURCE`` that identity's account, and a bare name the account called so
    or the account of the identity ``name`` on ``source``. A bare name that is both an
    account and an identity on ``source`` not linked to it is ambiguous: someone may have
    made an account with another person's nick. `AccountError` (a message for the user)
    when there is no such account or the name is ambiguous."""
    name = name.strip()
    found = _ACCOUNT_TARGET.fullmatch(name)
    if found is not None:
        account = accounts.find_account(session, found.group(1))
        if account is None:
            raise AccountError(f"There is no account called {found.group(1)}")
        return account
    found = _IDENTITY_TARGET.fullmatch(name)
    if found is not None:
        return _account_of_identity(session, found.group(2), found.group(1))
    account = accounts.find_account(session, name)
    identity = accounts.find_identity(session, source, name)
    if identity is None or (account is not None and identity.account_id == account.id):
        if account is None:
            raise AccountError(f"There is no account called {name}")
        return account
    if account is None:
        return _account_of_identity(session, source, name)
    raise AccountError(
        f"{name} is ambiguous: the account {account.username} is not the account of "
        f"{identity.identity} on {source}. Say 'account {name}' for the account, or "
        f"'{name} on {source}' for the identity"
    )


def _account_of_identity(session: Session, source: str, name: str) -> Account:
    identity = accounts.find_identity(session, source, name)
    account = None
    if identity is not None and identity.account_id is not None:
        account = session.get(Account, identity.account_id)
    if account is None:
        raise AccountError(f"{name} on {source} has no account")
    return account


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
        if account is None:
            event.addresponse("You don't have an account")
        return account
    try:
        return account_named(event.session, event.source, name)
    except AccountError as e:
        event.addresponse(str(e))
        return None


class SecretCommands(Processor):
    """Carries out the commands that carry a secret (``auth <password>``, ``authenticate
    ... using password <password>``, ``set password <password>``, ``create account <name>
    password <password>``, ``link token <token>``: `botcore.accounts.secrets` declares
    them). The core's Secrets processor has taken the secret out of the message before any
    other processor saw it, and left it here only for a private message."""

    usage = (
        "auth <password>\n"
        "authenticate <user> [on <source>] using <method> <secret>\n"
        "set password [for <user>] [on <source>] <password>\n"
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
            try:
                account = account_named(event.session, event.source, str(arguments["user"]))
            except AccountError:
                account = None
            if account is None or account.id != event.account:
                self.bot.auth.attempt_failed(event, None, self.bot.seconds())
                event.addresponse("I can't authenticate you as that account from here")
                return
            self.authenticate(
                event,
                account.id,
                arguments["source"] or event.source,
                str(arguments["method"]).lower(),
                secret,
            )
        elif found.command in ("set password", "create account"):
            # Hashing takes what checking takes (argon2, 64 MiB): the same slots bound it.
            auth = self.bot.auth
            key = auth.connection_key(event)
            if not auth.start_check(key):
                event.addresponse("I'm busy checking other passwords; try again in a moment")
                return
            try:
                if found.command == "set password":
                    self.set_password(event, arguments.get("user"), arguments["source"], secret)
                else:
                    account = Accounts.create(self.bot, event, str(arguments["user"]))
                    if account is not None:
                        accounts.add_credential(event.session, account.id, "password", secret)
            finally:
                auth.end_check(key)
        else:
            event.addresponse("Huh? (I took the secret out of that, just in case)")

    def _may_attempt(self, event: Event, account: int | None = None) -> bool:
        """Whether the sender may make an attempt (at ``account``) now: not while their
        connection, their address or the account must wait (says so, and how long)."""
        wait, what = self.bot.auth.attempt_wait(event, account, self.bot.seconds())
        if wait > 0:
            event.addresponse(
                f"Too many failed attempts {what}; try again in {ceil(wait)} seconds"
            )
            return False
        return True

    def authenticate(
        self, event: Event, account_id: int, source: str, method: str, secret: str
    ) -> None:
        """Check a credential of the sender's account and, when it holds, remember the
        connection as authenticated. Failures are counted for the connection that made
        them, its address and the account, each of which then waits longer and longer
        between attempts (`Permissions.attempt_wait`); one check at a time
        runs per connection, and ``[auth] max_checks`` in all (a password check takes
        64 MiB)."""
        auth = self.bot.auth
        key = auth.connection_key(event)
        if method not in ("network", "hostmask", "password"):
            event.addresponse(f"I don't know the method {method}")
            return
        if not self._may_attempt(event, account_id):
            return
        if not auth.start_check(key):
            event.addresponse("I'm busy checking other passwords; try again in a moment")
            return
        try:
            if method == "network":
                vouched = self.bot.get_source(event.source)
                identity = vouched.verified_identity(event) if vouched is not None else None
                ok = identity is not None and identity.casefold() == event.who.id.casefold()
            elif method == "hostmask":
                mask = event.data.get("mask")
                ok = isinstance(mask, str) and accounts.check_credentials(
                    event.session, account_id, source, "hostmask", mask
                )
            else:
                ok = accounts.check_credentials(event.session, account_id, source, method, secret)
        finally:
            auth.end_check(key)
        now = self.bot.seconds()
        if not ok:
            auth.attempt_failed(event, account_id, now)
            self.log.info(
                "failed {method} authentication by {id} on {source} ({connection})",
                method=method,
                id=event.who.id,
                source=event.source,
                connection=event.who.connection,
            )
            event.addresponse("Sorry, that didn't work")
            return
        event.authenticated = True
        auth.attempt_succeeded(event, account_id, now)
        self.log.info(
            "{id} on {source} authenticated by {method}",
            id=event.who.id,
            source=event.source,
            method=method,
        )
        if auth.remember(event, account_id, now):
            event.addresponse("You are now authenticated")
        else:
            event.addresponse(
                "That's right, but only for this message: I can't see when your connection "
                "ends from here (share a channel with me, or log in to services)"
            )

    def set_password(
        self, event: Event, user: str | None, source: str | None, secret: str
    ) -> None:
        """Set a password: the sender's own once authenticated as that account (an
        account's creator is, on the connection that created it), or, for an admin,
        ``for <user>``'s. Nobody sets the first password of an account merely by using
        a nick linked to it."""
        session = event.session
        if user is not None:
            if not self.bot.auth.authorise(event, "admin"):
                event.complain = "notauthed"
                return
            account = account_named(session, event.source, user)
            accounts.add_credential(session, account.id, "password", secret, source)
            self.log.info(
                "{id} on {source} set the password of {account}",
                id=event.who.id,
                source=event.source,
                account=account.username,
            )
            event.addresponse(f"The password of {account.username} is set")
            return
        if event.account is None:
            event.addresponse("You don't have an account (create account NAME first)")
            return
        if not event.authenticated:
            event.addresponse(
                "You need to authenticate first (an account without a password gets "
                "its first one from its creator's connection, or from an admin)"
            )
            return
        accounts.add_credential(session, event.account, "password", secret, source)
        event.addresponse("Your password is set")

    def link_token(self, event: Event, token: str) -> None:
        """Finish ``I am ... on ...``: the token came back from the identity it was sent
        to, so link that identity to the account that asked. An identity that already
        belongs to another account moves only when its sender is authenticated as that
        account: a token does not prove one owns the nick's account."""
        auth = self.bot.auth
        now = self.bot.seconds()
        if not self._may_attempt(event):
            return
        with auth.state.lock:
            pending = auth.state.tokens.get(token)
            if pending is not None and (
                pending[3] <= now
                or pending[1].casefold() != event.source.casefold()
                or pending[2].casefold() != event.who.id.casefold()
            ):
                pending = None
        if pending is None:
            auth.attempt_failed(event, None, now)
            event.addresponse("That token is not one I gave you (or it has expired)")
            return
        session = event.session
        identity = session.get(Identity, event.identity)
        account = session.get(Account, pending[0])
        if identity is None or account is None:
            event.addresponse("That account no longer exists")
            return
        if identity.account_id not in (None, account.id) and not (
            event.authenticated and event.account == identity.account_id
        ):
            current = session.get(Account, identity.account_id)
            name = current.username if current is not None else "another account"
            event.addresponse(
                f"{identity.identity} on {identity.source} belongs to {name}: authenticate "
                f"as {name} here first (or ask an admin to link it)"
            )
            return
        with auth.state.lock:
            auth.state.tokens.pop(token, None)
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
        "set display name <name> | remove display name\n"
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
        """Create an account: for an unlinked sender, linked to their identity, and their
        connection authenticated as it (so its creator, and nobody who later uses the
        same nick, can set its first password); for an admin, an empty one. None (with a
        reply) when refused."""
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
                remembered = bot.auth.remember(event, account.id, bot.seconds())
                event.authenticated = remembered or event.authenticated
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
        # Every connection logged in as it, not only this one: its id may come back.
        self.bot.auth.forget_account(account.id, session)
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
        if not event.authenticated:
            event.addresponse(f"You need to authenticate as {account.username} first")
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
        try:
            account = account_named(session, event.source, name)
        except AccountError as e:
            event.addresponse(str(e))
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

    @match(r"^set\s+(?:my\s+)?display\s*name\s+(?:to\s+)?(.+)$", simple=False)
    def set_display_name(self, event: Event, name: str) -> None:
        """The name the person is shown under on bridges (one name on every network)."""
        account = self._own_authenticated(event)
        if account is None:
            return
        try:
            shown = accounts.set_display_name(event.session, account, name.strip())
        except AccountError as e:
            event.addresponse(str(e))
            return
        event.addresponse(f"You are shown as {shown}")

    @match(r"^remove\s+(?:my\s+)?display\s*name$", simple=False)
    def remove_display_name(self, event: Event) -> None:
        account = self._own_authenticated(event)
        if account is None:
            return
        accounts.set_display_name(event.session, account, None)
        event.addresponse(f"You are shown as {account.username}")

    def _own_authenticated(self, event: Event) -> Account | None:
        account = own_account(event)
        if account is None:
            event.addresponse("You don't have an account (create account NAME first)")
            return None
        if not event.authenticated:
            event.addresponse("You need to authenticate first")
            return None
        return account

    @match(r"^set\s+my\s+(?!password\b|display\s*name\b)(\S+)\s+to\s+(.+)$", simple=False)
    def set_attribute(self, event: Event, name: str, value: str) -> None:
        if event.account is None:
            event.addresponse("You don't have an account (create account NAME first)")
            return
        if not event.authenticated:
            event.addresponse("You need to authenticate first")
            return
        try:
            accounts.set_attribute(event.session, event.account, name, value)
        except AccountError as e:
            event.addresponse(str(e))
            return
        event.addresponse(True)

    @match(r"^remove\s+my\s+(?!display\s*name$)(\S+)$", simple=False)
    def remove_attribute(self, event: Event, name: str) -> None:
        if event.account is None:
            event.addresponse("You don't have an account")
            return
        if not event.authenticated:
            event.addresponse("You need to authenticate first")
            return
        accounts.set_attribute(event.session, event.account, name, None)
        event.addresponse(True)

    @match(
        r"^(?:my\s+attributes|attributes(?:\s+of\s+(\S+(?:\s+on\s+\S+)?|account\s+\S+))?)$",
        simple=False,
    )
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
        shown = f", shown as {account.display_name}" if account.display_name else ""
        event.addresponse(f"You are {account.username} ({state}{shown}); identities: {linked}")

    @match(r"^(?:logout|log\s+out|deauthenticate)$", simple=False)
    def logout(self, event: Event) -> None:
        self.bot.auth.forget(event)
        event.addresponse(True)


class Grants(Processor):
    """Admins grant, revoke and remove permissions (only known ones, and only those they
        hold themselves); an account's permission rows are listed to the account itself,
    authenticated, and to admins. A grant holds once
        the account's owner has authenticated; ``always`` makes it hold for whoever uses one
        of the account's identities, authenticated or not. A <user> is ``account NAME``,
        ``IDENTITY on SOURCE``, or a bare name: an account, or an identity on this source
        (refused as ambiguous when it is both, for different accounts)."""

    usage = (
        "grant <permission> to <user> [always]\n"
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
        return account_asked_about(event, name)

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
    @match(
        r"^grant\s+(\S+)\s+to\s+(\S+(?:\s+on\s+\S+)?|account\s+\S+)"
        r"(?:\s+(always|when\s+auth(?:enticated|ed)?))?$",
        simple=False,
    )
    def grant(self, event: Event, permission: str, name: str, when: str | None) -> None:
        always = when is not None and when.lower() == "always"
        self._set(event, permission, name, "yes" if always else "auth")

    @authorise(fallthrough=False)
    @match(r"^revoke\s+(\S+)\s+from\s+(\S+(?:\s+on\s+\S+)?|account\s+\S+)$", simple=False)
    def revoke(self, event: Event, permission: str, name: str) -> None:
        self._set(event, permission, name, "no")

    @authorise(fallthrough=False)
    @match(
        r"^remove\s+permission\s+(\S+)\s+from\s+(\S+(?:\s+on\s+\S+)?|account\s+\S+)$",
        simple=False,
    )
    def remove(self, event: Event, permission: str, name: str) -> None:
        self._set(event, permission, name, None)

    @match(
        r"^permissions(?:\s+(?:for|of)\s+(\S+(?:\s+on\s+\S+)?|account\s+\S+))?$",
        simple=False,
    )
    def list_permissions(self, event: Event, name: str | None = None) -> None:
        session = event.session
        account = account_asked_about(event, name)
        if account is None:
            return
        # What an account may do is for its owner (authenticated) and admins: a nick
        # linked to it, or any stranger, learns nothing of it.
        if account.id != proven_account(event) and not self.authorised(event, "admin"):
            event.addresponse(
                f"Only {account.username} (authenticated) and admins may see what "
                f"{account.username} may do"
            )
            return
        rows = accounts.permissions_of(session, account.id)
        if not rows:
            event.addresponse(f"{account.username} has no permissions of their own")
            return
        shown = ", ".join(
            {"yes": f"+{k}", "no": f"-{k}", "auth": k}[v] for k, v in sorted(rows.items())
        )
        event.addresponse(f"{account.username}: {shown}")
