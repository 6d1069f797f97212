"""Identifying the sender of an event: their identity (created on first sight), its account,
and whether they are authenticated. The core plugin's Identify processor runs it for every
event, early in the pre band, so later processors read ``event.identity``,
``event.account`` and ``event.authenticated`` and never work them out again."""

from __future__ import annotations

from typing import TYPE_CHECKING

from botcore.accounts import models as accounts
from botcore.accounts.models import AccountError

if TYPE_CHECKING:
    from botcore.event import Event
    from botcore.interfaces import IBotContext


def identify(bot: IBotContext, event: Event) -> None:
    """Set the event's identity and account (creating the identity on first sight) and
    whether its sender is authenticated: remembered for this connection, vouched for by
    the source, or matching a hostmask credential. An event with no sender or no database,
    or whose sender's id is too long to store, stays anonymous (identity None). Worker
    thread (it uses the event's session); idempotent."""
    sender = event.sender
    if sender is None or event._session_factory is None or event.identity is not None:
        return
    # A sender seen before is known without the database, so an event that no later
    # processor needs a session for opens none.
    found = bot.auth.known_identity(event.source, sender.id)
    if found is None:
        try:
            found = bot.auth.identity_of(event.session, event.source, sender.id)
        except AccountError:
            return  # an id too long to store: the sender stays anonymous
    event.identity, event.account = found
    if event.account is None:
        return
    now = bot.seconds()
    if not event.authenticated and bot.auth.remembered(event, now):
        event.authenticated = True
        return
    source = bot.get_source(event.source)
    vouched = source.verified_identity(event) if source is not None else None
    if vouched is not None and vouched.casefold() == sender.id.casefold():
        event.authenticated = True
        return
    # A hostmask credential proves itself on every message; remembered like a password.
    mask = event.data.get("mask")
    if isinstance(mask, str) and accounts.check_credentials(
        event.session, event.account, event.source, "hostmask", mask
    ):
        event.authenticated = True
        bot.auth.remember(event, event.account, now)
