"""A source with no network for tests: it keeps the replies it is asked to send."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from botcore.source import LocalSource

if TYPE_CHECKING:
    from botcore.event import Response
    from botcore.interfaces import IBotContext


class MemorySource(LocalSource):
    """A source with no network: replies are recorded in ``sent`` instead of going out.

    Its nick is the bot's name; it supports actions, notices and multi-line messages unless
    told otherwise, and has no truncation point unless given one. Given ``supports``
    with 'message-ids', each message sent gets the id ``NAME-1``, ``NAME-2``, ... (the
    last in ``last_id``), remembered as a network would confirm it. Its channels are the
    targets that start with one of ``chantypes`` (``#`` or ``&``, as on IRC, unless told
    otherwise). Like every source it needs its bot: a `Bot`'s context, or a
    `botcore.testing.StubContext` in a unit test. Reactor thread."""

    type = "memory"
    supports = frozenset({"action", "notice", "multiline"})

    def __init__(
        self,
        name: str,
        bot: IBotContext,
        config: dict[str, Any] | None = None,
        *,
        supports: Iterable[str] | None = None,
        truncation: int | None = None,
        chantypes: str = "#&",
    ) -> None:
        super().__init__(name, bot, config)
        if supports is not None:
            self.supports = frozenset(supports)
        self.truncation = truncation
        self.chantypes = chantypes
        self.nick = bot.name
        self.sent: list[Response] = []
        self.last_id: str | None = None
        self._count = 0

    def truncation_point(self, response: Response | None = None) -> int | None:
        return self.truncation

    def send(self, response: Response) -> None:
        self.sent.append(response)
        if "message-ids" in self.supports and response.kind == "message":
            self._count += 1
            self.last_id = f"{self.name}-{self._count}"
            self.remember_sent(response, self.last_id)
