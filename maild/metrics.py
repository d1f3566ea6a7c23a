"""What one maild instance tells Prometheus and ``/healthz``: counters, histograms and the
state of each IMAP source, held per App (no process-global registry).

prometheus-client rather than hand-written exposition: it owns the text format, label
escaping and histogram buckets, and is what Prometheus' own documentation points to.
Figures that live in the database (outbox depth, quarantine, leases, SLA breaches) are
read at scrape time by a collector, so every instance reports the shared truth.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass

import peewee as pw
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from maild.faults import StorageHealth
from maild.storage.models import (
    INBOUND_HELD,
    INBOUND_QUARANTINED,
    Event,
    ImapState,
    Inbound,
    Outbox,
)

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

# Source states shown by /healthz and maild_imap_source_state.
SOURCE_STARTING = "starting"
SOURCE_CONNECTED = "connected"
SOURCE_STANDBY = "standby"  # another instance holds the lease
SOURCE_FAILING = "failing"
SOURCE_NEEDS_AUTHORIZATION = "needs_authorization"
SOURCE_STOPPED = "stopped"
SOURCE_STATES = (
    SOURCE_STARTING,
    SOURCE_CONNECTED,
    SOURCE_STANDBY,
    SOURCE_FAILING,
    SOURCE_NEEDS_AUTHORIZATION,
    SOURCE_STOPPED,
)
UNHEALTHY_SOURCE_STATES = frozenset({SOURCE_FAILING, SOURCE_NEEDS_AUTHORIZATION})

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
_DELIVERY_BUCKETS = (0.1, 0.5, 1.0, 5.0, 15.0, 60.0, 300.0, 900.0, 3600.0, 14400.0, 86400.0)
_BATCH_BUCKETS = (1, 2, 5, 10, 20, 50, 100, 200, 500)


@dataclass(frozen=True)
class SourceState:
    state: str
    detail: str = ""


class Metrics:
    """The instruments of one App. Safe to call from any thread."""

    def __init__(self, *, database_figures: bool = True) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.messages = Counter(
            "maild_messages",
            "Inbound messages by outcome and source",
            ["outcome", "source"],
            registry=r,
        )
        self.batch_size = Histogram(
            "maild_batch_size",
            "Messages handed over per commit",
            buckets=_BATCH_BUCKETS,
            registry=r,
        )
        self.processing_seconds = Histogram(
            "maild_message_processing_seconds",
            "Parse, decide and commit of one message",
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.deliveries = Counter(
            "maild_deliveries", "Outbound delivery attempts by result", ["result"], registry=r
        )
        self.delivery_seconds = Histogram(
            "maild_delivery_seconds",
            "From queued to accepted by the next hop",
            buckets=_DELIVERY_BUCKETS,
            registry=r,
        )
        self.scheduler_runs = Counter(
            "maild_scheduler_runs", "Scheduler jobs run", ["job"], registry=r
        )
        self._source_gauge = Gauge(
            "maild_imap_source_state",
            "1 for the state each IMAP source is in on this instance",
            ["source", "state"],
            registry=r,
        )
        self._lock = threading.Lock()
        self._sources: dict[str, SourceState] = {}
        # The last resource fault met while storing (a full disk, a lost database),
        # shown by /healthz until a message gets through again.
        self.storage = StorageHealth()
        r.register(_StorageCollector(self.storage))
        if database_figures:
            r.register(_DatabaseCollector())

    # -- recording ---------------------------------------------------------------------

    def message_processed(self, outcome: str, source: str, seconds: float) -> None:
        self.messages.labels(outcome=outcome, source=_source_label(source)).inc()
        self.processing_seconds.observe(max(0.0, seconds))

    def delivery(self, result: str, queued_seconds: float | None = None) -> None:
        self.deliveries.labels(result=result).inc()
        if queued_seconds is not None:
            self.delivery_seconds.observe(max(0.0, queued_seconds))

    def set_source_state(self, source: str, state: str, detail: str = "") -> None:
        with self._lock:
            self._sources[source] = SourceState(state, detail)
            for name in SOURCE_STATES:
                self._source_gauge.labels(source=source, state=name).set(int(name == state))

    # -- reading -----------------------------------------------------------------------

    def sources(self) -> dict[str, SourceState]:
        with self._lock:
            return dict(self._sources)

    def unhealthy_sources(self) -> dict[str, SourceState]:
        return {k: v for k, v in self.sources().items() if v.state in UNHEALTHY_SOURCE_STATES}

    def exposition(self) -> bytes:
        """The Prometheus text format; queries the database (call off the event loop)."""
        return generate_latest(self.registry)


def _source_label(source: str) -> str:
    """``imap:suporte`` stays; a free-form source (a file name from ``maild ingest``) does
    not become a label value of its own, which would grow the series without bound."""
    kind, _, name = source.partition(":")
    if kind == "imap" and name:
        return source
    return kind if kind in {"lmtp", "smtp", "web", "ingest", "imap"} else "other"


class _StorageCollector(Collector):
    """1 while storing meets a resource fault (a full disk, a lost database), by reason."""

    def __init__(self, storage: StorageHealth) -> None:
        self.storage = storage

    def describe(self) -> list[Metric]:
        return []

    def collect(self) -> Iterator[Metric]:
        family = GaugeMetricFamily(
            "maild_storage_fault",
            "1 while messages cannot be stored (answered 451) because of a resource fault",
            labels=["reason"],
        )
        state = self.storage.current()
        family.add_metric([state.fault.reason if state else ""], 1 if state else 0)
        yield family


class _DatabaseCollector(Collector):
    """The shared figures, read from the database at each scrape."""

    def describe(self) -> list[Metric]:
        return []  # dynamic: nothing is queried at registration

    def collect(self) -> Iterator[Metric]:
        # The caller holds this thread's connection (see maild.web.data.run_db).
        yield _outbox_depth()
        yield _quarantine_size()
        yield _leases()
        yield _sla_breaches()


def _outbox_depth() -> Metric:
    family = GaugeMetricFamily("maild_outbox_messages", "Outbox rows by status", labels=["status"])
    counts = dict(
        Outbox.select(Outbox.status, pw.fn.COUNT(Outbox.id)).group_by(Outbox.status).tuples()
    )
    for status in ("pending", "sent", "failed", "bounced"):
        counts.setdefault(status, 0)
    for status, count in sorted(counts.items()):
        family.add_metric([status], count)
    return family


def _quarantine_size() -> Metric:
    family = GaugeMetricFamily(
        "maild_quarantine_messages", "Inbound messages held or quarantined", labels=["state"]
    )
    for state in (INBOUND_QUARANTINED, INBOUND_HELD):
        family.add_metric([state], Inbound.select().where(Inbound.state == state).count())
    return family


def _leases() -> Metric:
    family = GaugeMetricFamily(
        "maild_imap_lease",
        "1 per IMAP source lease, labelled with its holder",
        labels=["source", "holder"],
    )
    for source, owner in ImapState.select(ImapState.source, ImapState.lease_owner).tuples():
        family.add_metric([source, owner or ""], 1 if owner else 0)
    return family


def _sla_breaches() -> Metric:
    family = CounterMetricFamily("maild_sla_breaches", "Tickets' sla_breached events so far")
    family.add_metric([], Event.select().where(Event.kind == "sla_breached").count())
    return family
