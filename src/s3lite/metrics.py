"""Every Prometheus metric s3lite exports, defined in one place (``prometheus-client``).

Two kinds of metric live here:

* **Event metrics** (counters, histograms) are updated where the event happens: the
  gateway app per request (:class:`HttpMetrics`), the orchestrator's node clients per
  node call (``node_*``), the join per relayed chunk (``migration_relayed_bytes``).
* **State metrics** (node up/full, bytes stored, sectors owned, ring generation, the
  migration's progress) are not kept up to date by hand: they are read from the
  cluster's state at each scrape by a collector (orchestrator/gauges.py for the
  gateway, the node's own health for a node), so they can never drift from it.

Each process has its own registry (one :class:`GatewayMetrics` per cluster, one
:class:`NodeMetrics` per storage node), so several clusters in one process (tests)
never mix their figures. :func:`render` makes the text exposition format.

**Durability hooks.** The parity and healing work fills the metrics of
:class:`DurabilityMetrics` (``gateway.durability``): a gauge is set, a counter
incremented, at the one place the healer or the read path learns the figure; they
exist (at zero) from the start so dashboards and alerts can be written now. See the
README's metrics table for what each one means.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Final

import prometheus_client
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.metrics_core import Metric
from prometheus_client.process_collector import ProcessCollector

# Counters get only their ``_total`` series: ``_created`` doubles every series for a
# figure nobody graphs.
prometheus_client.disable_created_metrics()  # type: ignore[no-untyped-call]

CONTENT_TYPE: Final = CONTENT_TYPE_LATEST
"""The Content-Type of :func:`render`'s output (Prometheus text format 0.0.4)."""

LATENCY_BUCKETS: Final = (
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
)  # fmt: skip
"""Seconds: from a cached small GET on loopback (~1 ms) to a large object (a minute)."""


class StateCollector:
    """A collector whose metric families are computed at each scrape by ``collect``."""

    def __init__(self, collect: Callable[[], Iterable[Metric]]) -> None:
        self._collect = collect

    def collect(self) -> Iterable[Metric]:
        return self._collect()


def render(registry: CollectorRegistry) -> bytes:
    """The registry in the Prometheus text format (:data:`CONTENT_TYPE`)."""
    return generate_latest(registry)


def _counter(registry: CollectorRegistry, name: str, text: str, *labels: str) -> Counter:
    return Counter(name, text, labels, registry=registry)


def _gauge(registry: CollectorRegistry, name: str, text: str) -> Gauge:
    return Gauge(name, text, registry=registry)


def _histogram(registry: CollectorRegistry, name: str, text: str, *labels: str) -> Histogram:
    return Histogram(name, text, labels, buckets=LATENCY_BUCKETS, registry=registry)


class HttpMetrics:
    """Requests served by one HTTP server: count by kind and status, latency, bytes.

    ``prefix`` names the server (``s3lite`` for the gateway, ``s3lite_node_http`` for
    a node); ``kind`` is the label that says what was asked (the S3 operation, or the
    node route).
    """

    def __init__(self, registry: CollectorRegistry, prefix: str, kind: str) -> None:
        r = registry
        self.requests = _counter(
            r,
            f"{prefix}_requests",
            f"Requests answered, by {kind} and HTTP status.",
            kind,
            "status",
        )
        self.duration = _histogram(
            r, f"{prefix}_request_duration_seconds",
            f"Time from a request's arrival to the end of its response, by {kind}.", kind,
        )  # fmt: skip
        self.received = _counter(
            r, f"{prefix}_received_bytes", f"Request body bytes received, by {kind}.", kind
        )
        self.sent = _counter(
            r, f"{prefix}_sent_bytes", f"Response body bytes sent, by {kind}.", kind
        )
        self.in_flight = _gauge(r, f"{prefix}_requests_in_flight", "Requests being served now.")

    def observe(self, kind: str, status: int, seconds: float, received: int, sent: int) -> None:
        """Record one finished request (status 0: no response was started)."""
        self.requests.labels(kind, str(status)).inc()
        self.duration.labels(kind).observe(seconds)
        if received:
            self.received.labels(kind).inc(received)
        if sent:
            self.sent.labels(kind).inc(sent)


class NodeCallMetrics:
    """The gateway's calls to each storage node, seen from the gateway's side."""

    def __init__(self, registry: CollectorRegistry) -> None:
        r = registry
        self.calls = _counter(
            r, "s3lite_node_calls", "Calls the gateway made to a node, by node and method.",
            "node", "method",
        )  # fmt: skip
        self.errors = _counter(
            r, "s3lite_node_call_errors", "Node calls that raised, by node, method and error.",
            "node", "method", "error",
        )  # fmt: skip
        self.duration = _histogram(
            r, "s3lite_node_call_duration_seconds",
            "Time a node call took to return (for a stream: to open it), by node and method.",
            "node", "method",
        )  # fmt: skip
        self.sent = _counter(
            r, "s3lite_node_sent_bytes", "Body bytes streamed to a node (parts, imports).", "node"
        )
        self.received = _counter(
            r, "s3lite_node_received_bytes", "Body bytes streamed from a node (parts, exports).",
            "node",
        )  # fmt: skip
        self.transitions = _counter(
            r, "s3lite_node_transitions",
            "Changes of a node's liveness, by node and new state (up, down, full, not_full).",
            "node", "to",
        )  # fmt: skip


class JoinMetrics:
    """Joins and the bytes they move."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.joins = _counter(
            registry, "s3lite_joins", "Joins that ended, by outcome (done, failed).", "outcome"
        )
        self.relayed = _counter(
            registry, "s3lite_migration_relayed_bytes",
            "Bytes of sector archives relayed from a donor to a joining node, by donor.", "donor",
        )  # fmt: skip


class DurabilityMetrics:
    """Hooks for parity and healing: defined now, filled by the healer and read path.

    Where each is updated: ``heal_queue`` is set by the heal queue
    (receiver/healing.py) whenever it saves reports or the healer marks a segment
    done; ``degraded_segments`` by the healer; ``rebuilt_bytes`` is incremented per
    part written back; ``degraded_reads`` per segment read that had to decode from
    parity (receiver/fetch.py);
    ``heal_actions`` once per action the healer logs (s3lite.logs.heal_action);
    ``scrub_position`` is set as the scrub walks the manifests (0 to 1 through a
    pass), ``scrub_passes`` incremented when a pass ends.
    """

    def __init__(self, registry: CollectorRegistry) -> None:
        r = registry
        self.degraded_segments = _gauge(
            r, "s3lite_degraded_segments",
            "Segments with fewer healthy parts than their parity asks for.",
        )  # fmt: skip
        self.heal_queue = _gauge(
            r, "s3lite_heal_queue_segments", "Segments waiting for the healer."
        )
        self.rebuilt_bytes = _counter(
            r, "s3lite_rebuilt_bytes", "Bytes of parts the healer rebuilt and wrote back."
        )
        self.degraded_reads = _counter(
            r, "s3lite_degraded_reads",
            "Reads that decoded data from parity (a part missing, damaged or on a down node).",
        )  # fmt: skip
        self.heal_actions = _counter(
            r, "s3lite_heal_actions",
            "Healer actions, by action (rebuild, reprotect, quarantine, ...) and outcome.",
            "action", "outcome",
        )  # fmt: skip
        self.scrub_position = _gauge(
            r, "s3lite_scrub_position_ratio",
            "How far the scrub is through its current pass over the manifests (0 to 1).",
        )  # fmt: skip
        self.scrub_passes = _counter(r, "s3lite_scrub_passes", "Scrub passes completed.")


class GatewayMetrics:
    """The gateway process's metrics: requests, node calls, joins, durability, plus
    whatever state collectors the wiring adds (:meth:`add_state`)."""

    def __init__(self, *, process: bool = False) -> None:
        self.registry = CollectorRegistry()
        self.http = HttpMetrics(self.registry, "s3lite", "operation")
        self.nodes = NodeCallMetrics(self.registry)
        self.joins = JoinMetrics(self.registry)
        self.durability = DurabilityMetrics(self.registry)
        if process:
            ProcessCollector(registry=self.registry)

    def add_state(self, collect: Callable[[], Iterable[Metric]]) -> None:
        """Export the families ``collect`` computes at each scrape."""
        self.registry.register(StateCollector(collect))

    def render(self) -> bytes:
        return render(self.registry)


class NodeMetrics:
    """A storage node process's metrics: its HTTP requests and, at each scrape, its
    storage figures (set by the node app from the node's health just before
    rendering)."""

    def __init__(self, *, process: bool = False) -> None:
        r = self.registry = CollectorRegistry()
        self.http = HttpMetrics(r, "s3lite_node_http", "route")
        self.stored_bytes = _gauge(r, "s3lite_storage_bytes", "Bytes of the parts the node stores.")
        self.stored_parts = _gauge(r, "s3lite_storage_parts", "Part files this node stores.")
        self.free_bytes = _gauge(
            r, "s3lite_storage_free_bytes", "Free bytes on the data directory's file system."
        )
        self.full = _gauge(r, "s3lite_storage_full", "1 if the node refuses new parts (no space).")
        self.quarantined = _gauge(
            r, "s3lite_storage_quarantined_parts", "Damaged part files moved to quarantine."
        )
        if process:
            ProcessCollector(registry=r)

    def render(self) -> bytes:
        return render(self.registry)
