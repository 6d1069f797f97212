"""A bot context for unit tests of one processor or source without a whole bot: the real
`IBotContext` contract (checked with ``verifyObject``), backed by a clock, a dict of
sources and, when given, a real dispatcher."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from twisted.internet.defer import Deferred, fail
from zope.interface import implementer

import botcore
from botcore.accounts.permissions import Permissions
from botcore.bus.catalogue import Catalogue
from botcore.bus.reactors import Reactors
from botcore.bus.stats import BusStats
from botcore.config import Config
from botcore.errors import DispatcherStopped
from botcore.event import Event, Lifecycle, Response
from botcore.interfaces import IBotContext, IScheduledCall, ISource

if TYPE_CHECKING:
    from botcore.dispatch.dispatcher import Dispatcher
    from botcore.processor import Processor


@implementer(IBotContext)
class StubContext:
    """What a processor or source under test is given as its bot.

    ``sources`` are what `get_source` finds (add more with `add_source`); with a
    ``dispatcher``, `dispatch` and `call_later` go through it (and its replies are routed),
    without one they fail with `DispatcherStopped` as a stopped bot's would. The clock is
    ``reactor`` (a `Clock` in tests); ``call_from_thread`` runs the call at once when the
    reactor has no ``callFromThread`` of its own."""

    def __init__(
        self,
        *,
        reactor: Any,
        name: str = "botcore",
        names: Iterable[str] = (),
        sources: Mapping[str, ISource] | None = None,
        dispatcher: Dispatcher | None = None,
        config: Config | None = None,
        auth: Permissions | None = None,
        plugins: Mapping[str, list[Processor]] | None = None,
        database: Any = None,
    ) -> None:
        self.reactor = reactor
        self.name = name
        self.names = [name, *names]
        self.version = botcore.__version__
        self.sources: dict[str, ISource] = dict(sources or {})
        self.dispatcher = dispatcher
        self.config = config or Config(path=Path("bot.ini"), files=[], sections={})
        self.auth = auth or Permissions(self.config.section("auth"), self._source_permissions)
        self.plugins: dict[str, list[Processor]] = dict(plugins or {})
        #: The main database service (`botcore.db.service.Database`), if the test has one.
        self.database = database
        self.state = Lifecycle.RUNNING
        self.started_at: datetime | None = None
        self._catalogue: Catalogue | None = None
        self._stats: BusStats | None = None
        self._reactors: Reactors | None = None
        self.namespace: dict[str, Any] = {}

    @property
    def catalogue(self) -> Catalogue:
        """The dispatcher's catalogue when there is a dispatcher, else one of its own."""
        if self.dispatcher is not None:
            return self.dispatcher.catalogue
        if self._catalogue is None:
            self._catalogue = Catalogue()
        return self._catalogue

    @property
    def reactors(self) -> Reactors:
        """Reactors of its own (a test adds them; the dispatcher's observer when there is
        a dispatcher)."""
        if self._reactors is None:
            self._reactors = Reactors(self.catalogue, self.event_stats)
            if self.dispatcher is not None:
                self.dispatcher.observers.append(self._reactors.observe)
        return self._reactors

    @property
    def event_stats(self) -> BusStats:
        """The dispatcher's counters when there is a dispatcher, else counters of its own."""
        if self.dispatcher is not None:
            return self.dispatcher.stats
        if self._stats is None:
            self._stats = BusStats()
        return self._stats

    def _source_permissions(self, name: str) -> list[str]:
        source = self.sources.get(name)
        return list(source.config.get("permissions", [])) if source is not None else []

    def add_source(self, source: ISource) -> None:
        """Make ``source`` one that `get_source` finds."""
        self.sources[source.name] = source

    def get_source(self, name: str | None) -> ISource | None:
        return self.sources.get(name) if name is not None else None

    def loaded(self) -> dict[str, list[Processor]]:
        return {name: list(processors) for name, processors in self.plugins.items()}

    def dispatch(self, event: Event) -> Deferred[Event]:
        if self.dispatcher is None:
            return fail(DispatcherStopped("this test context has no dispatcher"))
        return self.dispatcher.dispatch(event)

    def wants(self, event: Event) -> bool:
        # Without a dispatcher nothing can tell: say yes, so that nothing is left out.
        return self.dispatcher is None or self.dispatcher.wants(event)

    def skipped(self, event: Event) -> None:
        if self.dispatcher is not None:
            self.dispatcher.skipped(event)

    def call_later(
        self, delay: float, function: Callable[..., Any], event: Event, *args: Any, **kw: Any
    ) -> IScheduledCall:
        if self.dispatcher is None:
            raise DispatcherStopped("this test context has no dispatcher")
        return self.dispatcher.call_later(delay, function, event, *args, **kw)

    def send(self, response: Response) -> None:
        if self.dispatcher is None:
            raise DispatcherStopped("this test context has no dispatcher")
        self.dispatcher.send(response)

    def call_from_thread(self, function: Callable[..., Any], *args: Any, **kw: Any) -> None:
        call = getattr(self.reactor, "callFromThread", None)
        if call is None:
            function(*args, **kw)
        else:
            call(function, *args, **kw)

    def seconds(self) -> float:
        return float(self.reactor.seconds())

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.seconds(), UTC)
