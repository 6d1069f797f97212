"""Identifying the sender of an event: their identity (created on first sight, within a
budget per source), its account, and whether they are authenticated. The core plugin's
Identify processor runs it for every event, early in the pre band, so later processors
read ``event.identity``, ``event.account`` and ``event.authenticated`` and never work them
out again."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

from twisted.logger import Logger

from botcore.accounts import models as accounts
from botcore.accounts.models import AccountError

if TYPE_CHECKING:
    from botcore.event import Event
    from botcore.interfaces import IBotContext


def proven_account(event: Event) -> int | None:
    """The account the event's sender has shown to be theirs, or None: ``event.account``
    only when the sender is authenticated (on this connection, or vouched for by the
    source). ``event.account`` alone is only the account their identity is linked to,
    which anyone using that nick may claim: whatever belongs to an account (its memos,
    its facts, its URLs, its permission rows) goes by this. Any thread."""
    return event.account if event.authenticated else None


class FirstSightings:
    """The budget of new identities per source: at most ``limit`` rows created in each
    ``window`` seconds on one source, so a flood of strangers (50,000 nicks) writes a
    bounded number of rows however fast it comes. A stranger past the budget stays
    anonymous for that event (answered, but nothing is kept about them) and gets their
    identity at a later event once the window has passed; each source's refusals are
    counted (`refused`) and logged once per window. Any thread."""

    log = Logger()

    def __init__(self) -> None:
        self._lock = threading.Lock()
        #: source -> [window start, rows admitted in it, refused in it].
        self._windows: dict[str, list[float]] = {}
        #: source -> strangers refused an identity since the start.
        self.refused: dict[str, int] = {}

    def admit(self, source: str, now: float, limit: int, window: float) -> bool:
        """Count one new identity on ``source`` at ``now``; whether it may be created.
        A ``limit`` or ``window`` of 0 means no budget."""
        if limit <= 0 or window <= 0:
            return True
        ended = 0  # strangers refused in the window that has just ended
        with self._lock:
            current = self._windows.get(source)
            if current is None or now - current[0] >= window:
                ended = int(current[2]) if current is not None else 0
                current = self._windows[source] = [now, 0, 0]
            admitted = current[1] < limit
            if admitted:
                current[1] += 1
            else:
                current[2] += 1
                self.refused[source] = self.refused.get(source, 0) + 1
            first = current[2] == 1 and not admitted
        if ended:
            self.log.info(
                "source {source}: {count} new senders were left anonymous "
                "(past {limit} new identities in {window} seconds)",
                source=source,
                count=ended,
                limit=limit,
                window=window,
            )
        if admitted:
            return True
        if first:
            self.log.warn(
                "source {source}: more than {limit} new senders in {window} seconds; "
                "further ones stay anonymous (no identity kept) until the window ends",
                source=source,
                limit=limit,
                window=window,
            )
        return False


def identify(
    bot: IBotContext,
    event: Event,
    budget: FirstSightings | None = None,
    limit: int = 0,
    window: float = 0.0,
) -> None:
    """Set the event's identity and account (creating the identity on first sight, if
    ``budget`` admits one more of ``limit`` per ``window`` seconds on the event's source)
    and whether its sender is authenticated: remembered for this connection, vouched for
    by the source, or matching a hostmask credential. An event with no sender or no
    database, whose sender's id is too long to store, or whose new sender is past the
    budget, stays anonymous (identity None). Worker thread (it uses the event's session);
    idempotent."""
    sender = event.sender
    if sender is None or event._session_factory is None or event.identity is not None:
        return
    # A sender seen before is known without the database, so an event that no later
    # processor needs a session for opens none.
    found = bot.auth.known_identity(event.source, sender.id)
    if found is None:

        def may_create() -> bool:
            if budget is None:
                return True
            return budget.admit(event.source, bot.seconds(), limit, window)

        try:
            found = bot.auth.identity_of(event.session, event.source, sender.id, may_create)
        except AccountError:
            return  # an id too long to store: the sender stays anonymous
        if found is None:
            return  # a stranger past this source's budget of new identities
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
