"""The front door's Prometheus metrics: counters the dispatcher feeds as it works (events,
processor latencies and errors, replies) and gauges read from the bot's own state when
scraped (sources, worker pool, queues, reloads, databases). One registry per source, no
global one."""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

try:
    from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
    from prometheus_client.core import (
        CounterMetricFamily,
        GaugeMetricFamily,
        SummaryMetricFamily,
    )
    from prometheus_client.registry import Collector
except ImportError as e:  # said when the source is loaded, with what to install
    raise ImportError(
        f"the web source needs prometheus_client ({e}): pip install 'botcore[web]'"
    ) from e

if TYPE_CHECKING:
    from botcore.event import Event, Response
    from botcore.interfaces import IBotControl

#: Latency buckets, in seconds: processors mostly take microseconds to milliseconds.
BUCKETS = (0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 30.0)
STATES = ("stopped", "connecting", "connected", "reconnecting", "failed")


def _step_labels(who: Any) -> tuple[str, str]:
    """(plugin, processor) of what ran: a processor, or a call_later/periodic function."""
    name = getattr(who, "name", None)
    if isinstance(name, str) and hasattr(who, "process"):
        return name, type(who).__name__
    if isinstance(who, str):
        return "call", who
    return "call", getattr(who, "__qualname__", type(who).__name__)


class Metrics:
    """The registry of one web source and the dispatcher observer that feeds it. The
    observer methods are called from the reactor and worker threads (prometheus_client's
    metrics are thread-safe)."""

    #: Events kept for the dashboard's recent events.
    RECENT = 100

    def __init__(self, bot: IBotControl) -> None:
        self.bot = bot
        #: The latest events accepted (what, where, from whom; never their text).
        self.recent: deque[dict[str, Any]] = deque(maxlen=self.RECENT)
        self.registry = CollectorRegistry(auto_describe=True)
        self.events = Counter(
            "botcore_events",
            "Events accepted for processing.",
            ["source", "type"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "botcore_processor_seconds",
            "Time one processor took on one event.",
            ["plugin", "processor"],
            buckets=BUCKETS,
            registry=self.registry,
        )
        self.errors = Counter(
            "botcore_processor_errors",
            "Processor runs that raised (or gave up on the database).",
            ["plugin", "processor"],
            registry=self.registry,
        )
        self.skipped = Counter(
            "botcore_events_skipped",
            "Events a source left out before dispatching them: no processor wanted them.",
            ["source", "type"],
            registry=self.registry,
        )
        self.retries = Counter(
            "botcore_database_retries",
            "Processor steps run again after a database failure, by kind of failure.",
            ["kind"],
            registry=self.registry,
        )
        self.replies = Counter(
            "botcore_replies_sent",
            "Replies handed to their source.",
            ["source"],
            registry=self.registry,
        )
        self.registry.register(_StateCollector(bot))

    # -- DispatchMonitor --------------------------------------------------------------

    def event_dispatched(self, event: Event) -> None:
        self.events.labels(event.source, event.type).inc()
        self.recent.append(
            {
                "id": event.id,
                "time": event.time.isoformat(),
                "source": event.source,
                "type": event.type,
                "channel": event.channel,
                "sender": event.sender.nick if event.sender is not None else None,
            }
        )

    def step_done(self, who: Any, seconds: float, failed: bool) -> None:
        plugin, processor = _step_labels(who)
        self.latency.labels(plugin, processor).observe(seconds)
        if failed:
            self.errors.labels(plugin, processor).inc()

    def step_retried(self, who: Any, kind: str) -> None:
        self.retries.labels(kind).inc()

    def event_skipped(self, event: Event) -> None:
        self.skipped.labels(event.source, event.type).inc()

    def reply_sent(self, response: Response) -> None:
        self.replies.labels(response.source or "").inc()

    def text(self) -> bytes:
        """The metrics in Prometheus' text format. Reactor thread (reads bot state)."""
        return generate_latest(self.registry)


class _StateCollector(Collector):
    """Gauges read from the bot when scraped. Reactor thread."""

    def __init__(self, bot: IBotControl) -> None:
        self.bot = bot

    def collect(self) -> Iterator[Any]:
        bot = self.bot
        running = GaugeMetricFamily("botcore_up", "1 while the bot is running.")
        running.add_metric([], 1.0 if bot.state == "running" else 0.0)
        yield running
        uptime = GaugeMetricFamily("botcore_uptime_seconds", "Seconds since the bot started.")
        started = bot.started_at
        uptime.add_metric([], (bot.now() - started).total_seconds() if started else 0.0)
        yield uptime

        states = GaugeMetricFamily(
            "botcore_source_state",
            "1 for the state each source is in.",
            labels=["source", "state"],
        )
        changes = CounterMetricFamily(
            "botcore_source_state_changes",
            "Times each source entered each state (connecting again is a reconnect).",
            labels=["source", "state"],
        )
        reconnects = CounterMetricFamily(
            "botcore_source_reconnects",
            "Times each source lost its connection and set out to connect again.",
            labels=["source"],
        )
        for name, state in sorted(bot.source_states().items()):
            for known in (*STATES, "not loaded"):
                states.add_metric([name, known], 1.0 if state == known else 0.0)
            source = bot.get_source(name)
            entered_states = getattr(source, "state_changes", {})
            for entered, count in sorted(entered_states.items()):
                changes.add_metric([name, entered], float(count))
            if source is not None:
                reconnects.add_metric([name], float(entered_states.get("reconnecting", 0)))
        yield states
        yield changes
        yield reconnects

        load = bot.dispatcher.load()
        for key, help_text in (
            ("inflight", "Events queued or running."),
            ("active", "Runs in the worker pool now (not stuck)."),
            ("threads", "Worker threads configured."),
            ("capacity", "Runs the pool is given at once (threads less unreplaced stuck runs)."),
            ("stuck", "Runs past the handler deadline still going."),
        ):
            gauge = GaugeMetricFamily(f"botcore_dispatcher_{key}", help_text)
            gauge.add_metric([], float(load[key]))
            yield gauge
        # Not botcore_dispatcher_stuck: the gauge above has that name.
        for name, key, help_text in (
            ("stuck_runs", "stuck_total", "Runs that went past the handler deadline."),
            ("dropped", "dropped", "Events dropped because their source's backlog was full."),
            (
                "pauses",
                "pauses",
                "Times a source was told to pause its input (its backlog was full).",
            ),
        ):
            counter = CounterMetricFamily(f"botcore_dispatcher_{name}", help_text)
            counter.add_metric([], float(load[key]))
            yield counter
        queued = GaugeMetricFamily(
            "botcore_queue_depth", "Events waiting for a worker, by source.", labels=["source"]
        )
        for source, count in sorted(load["waiting"].items()):
            queued.add_metric([source], float(count))
        yield queued

        plugins = bot.plugins
        reloads = CounterMetricFamily(
            "botcore_plugin_reloads", "Times each loaded plugin was reloaded.", labels=["plugin"]
        )
        for name in plugins.loaded:
            _, count = plugins.versions.get(name, (0, 1))
            reloads.add_metric([name], float(max(0, count - 1)))
        yield reloads
        timed = SummaryMetricFamily(
            "botcore_reload_seconds",
            "Reloads of plugins and sources, and the seconds they took, by outcome.",
            labels=["kind", "name", "outcome"],
        )
        for (kind, name, outcome), totals in sorted(bot.reloads.totals.items()):
            timed.add_metric([kind, name, outcome], totals.count, totals.seconds)
        yield timed
        failed = GaugeMetricFamily(
            "botcore_plugin_failed", "1 for each plugin whose load failed.", labels=["plugin"]
        )
        for name in plugins.failed:
            failed.add_metric([name], 1.0)
        yield failed

        databases = GaugeMetricFamily(
            "botcore_database_unavailable",
            "1 while a database is known to be down.",
            labels=["database"],
        )
        outages = CounterMetricFamily(
            "botcore_database_outages",
            "Times a database was found unavailable after it had been available.",
            labels=["database"],
        )
        for name, database in sorted(bot.databases.items()):
            databases.add_metric([name], 1.0 if database.unavailable else 0.0)
            outages.add_metric([name], float(database.outages))
        yield databases
        yield outages
