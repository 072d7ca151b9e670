"""The cluster's state as Prometheus gauges, computed at each scrape (never stale).

Per node (label ``node``): up, full, joining, the time of its last up/down change,
what its last probe said (bytes and parts stored, free bytes, quarantined parts) and
the sectors it owns. For the cluster: nodes and nodes up, the ring's generation, and
the migration in progress (sectors and bytes to move and moved so far).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from prometheus_client.metrics_core import GaugeMetricFamily, Metric

from .topology import NodeState

if TYPE_CHECKING:
    from .orchestrator import Orchestrator


def _per_node(name: str, text: str) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, text, labels=["node"])


def cluster_gauges(orchestrator: Orchestrator) -> Iterator[Metric]:
    if not orchestrator.is_open:
        return
    topology = orchestrator.topology
    ring = orchestrator.ring
    liveness = orchestrator.liveness
    up = _per_node("s3lite_node_up", "1 if the node answers (liveness), else 0.")
    full = _per_node("s3lite_node_full", "1 if the node is out of space, else 0.")
    joining = _per_node("s3lite_node_joining", "1 while the node is joining, else 0.")
    since = _per_node(
        "s3lite_node_state_since_seconds", "Unix time of the node's last up/down change."
    )
    stored = _per_node("s3lite_node_stored_bytes", "Bytes the node stores (last probe).")
    parts = _per_node("s3lite_node_stored_parts", "Part files the node stores (last probe).")
    free = _per_node("s3lite_node_free_bytes", "Free bytes on the node's disk (last probe).")
    quarantined = _per_node(
        "s3lite_node_quarantined_parts", "Damaged parts the node quarantined (last probe)."
    )
    replaced = _per_node(
        "s3lite_node_replaced", "1 while the node's lost disk is not rebuilt yet (last probe)."
    )
    sectors = _per_node("s3lite_node_sectors", "Sectors of the ring the node owns.")
    for info in topology.nodes:
        node = [info.node_id]
        sectors.add_metric(node, len(ring.sectors_of(info.node_id)))
        joining.add_metric(node, float(info.state is NodeState.JOINING))
        try:
            status = liveness.state(info.node_id)
        except KeyError:
            continue
        up.add_metric(node, float(status.up))
        full.add_metric(node, float(status.full))
        since.add_metric(node, status.since)
        health = status.health
        if health is not None:
            stored.add_metric(node, health.bytes_stored)
            parts.add_metric(node, health.parts)
            free.add_metric(node, health.free_bytes)
            quarantined.add_metric(node, health.quarantined)
            replaced.add_metric(node, float(health.replaced))
    yield from (up, full, joining, since, stored, parts, free, quarantined, replaced, sectors)

    ready = [info.node_id for info in topology.nodes if info.state is NodeState.READY]
    yield GaugeMetricFamily("s3lite_nodes", "Nodes in the cluster.", len(topology.nodes))
    yield GaugeMetricFamily("s3lite_nodes_up", "Ready nodes that are up.", liveness.up_count(ready))
    yield GaugeMetricFamily(
        "s3lite_ring_generation", "Generation of the topology (one more per change).",
        topology.generation,
    )  # fmt: skip
    yield from _migration(orchestrator)


def _migration(orchestrator: Orchestrator) -> Iterator[Metric]:
    migration = orchestrator.topology.migration
    progress = orchestrator.progress
    active = migration is not None
    yield GaugeMetricFamily(
        "s3lite_migration_active", "1 while a join is moving sectors, else 0.", float(active)
    )
    live = active and progress is not None and not progress.finished
    figures = (
        ("s3lite_migration_sectors", "Sectors the join in progress moves.",
         progress.items_total if live and progress else None),
        ("s3lite_migration_sectors_moved", "Sectors of the join in progress copied so far.",
         progress.items_done if live and progress else None),
        ("s3lite_migration_bytes", "Bytes the join in progress moves (donors' usage).",
         progress.bytes_total if live and progress else None),
        ("s3lite_migration_bytes_moved", "Bytes of the join in progress copied so far.",
         progress.bytes_done if live and progress else None),
    )  # fmt: skip
    for name, text, value in figures:
        yield GaugeMetricFamily(name, text, float(value or 0))
