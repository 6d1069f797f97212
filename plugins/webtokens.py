"""API tokens for the web front door: make one for your account (shown once, in private),
list yours (without their secrets) and revoke one. A token acts as its account, with the
account's permissions; you must be authenticated to manage yours."""

from __future__ import annotations

from botcore.accounts.identify import proven_account
from botcore.accounts.models import AccountError
from botcore.event import Event
from botcore.processor import Processor, match
from botcore.web import tokens


class WebTokens(Processor):
    """``create token <label>``, ``list tokens``, ``revoke token <id>``."""

    usage = "create token <label>\nlist tokens\nrevoke token <id>"
    features = ("web", "tokens")

    def _account(self, event: Event) -> int | None:
        account = proven_account(event)
        if account is None:
            event.addresponse(
                "You need to be authenticated (say 'auth <password>' to me privately) "
                "to manage your API tokens"
            )
        return account

    @match(r"^(?:create|make|new)\s+(?:api\s+)?token\s+(?P<label>.+)$", simple=False)
    def create(self, event: Event, label: str) -> None:
        if event.public:
            # It would be shown to the whole channel.
            event.addresponse("Ask me for a token in private: I show it only once")
            return
        account = self._account(event)
        if account is None:
            return
        try:
            row, secret = tokens.create_token(event.session, account, label)
        except AccountError as e:
            event.addresponse(str(e))
            return
        event.addresponse(
            "Token %d (%s): %s — keep it now, I won't show it again. Send it as "
            "'Authorization: Bearer <token>'; 'revoke token %d' ends it",
            (row.id, row.label, secret, row.id),
        )

    @match(r"^(?:list\s+)?(?:my\s+)?(?:api\s+)?tokens$", simple=False)
    def list(self, event: Event) -> None:
        account = self._account(event)
        if account is None:
            return
        rows = tokens.tokens_of(event.session, account)
        if not rows:
            event.addresponse("You have no API tokens")
            return
        shown = [
            f"{row.id} {row.label} (made {row.created:%Y-%m-%d}"
            + (", revoked)" if row.revoked else ")")
            for row in rows
        ]
        event.addresponse("Your tokens: %s", "; ".join(shown))

    @match(r"^(?:revoke|delete|remove)\s+(?:api\s+)?token\s+#?(?P<number>\d{1,18})$",
           simple=False)  # fmt: skip
    def revoke(self, event: Event, number: str) -> None:
        account = self._account(event)
        if account is None:
            return
        if tokens.revoke_token(event.session, account, int(number)):
            event.addresponse("Revoked token %s", number)
        else:
            event.addresponse("You have no live token %s", number)
