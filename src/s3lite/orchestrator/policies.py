"""Join policies: which sectors a joining node takes, and from whom.

A policy is pure: it is given the current ring and every node's usage (bytes per
sector, as the nodes measured it) and returns a :class:`JoinPlan`. Carrying the plan
out (zipping, streaming, switching routing) is the orchestrator's job.

Three policies share one interface:

``fill`` (the default)
    The spec's rule applied one sector at a time: the new node takes a sector from
    the end of the busiest node's largest arc, then asks again who is busiest now,
    until it holds its fair share ``total / (n + 1)`` of bytes (of sectors, while the
    cluster is empty). It stops at the sector that would take it further from the
    fair share than it already is, so it ends within one sector's bytes of it.
    "Holds" counts what the node keeps after re-homing (see :class:`Landing`), not
    what it is handed: with several donors some moving parts are re-homed back.
``half``
    The spec's literal rule: the new node takes the second half of the busiest node's
    largest arc (floor(length / 2) sectors). A one-sector arc is never split; the
    next busiest node with an arc of two or more sectors donates instead.
``ketama``
    Sector ``s`` belongs to whichever node ``uhashring`` (ketama) maps ``str(s)`` to.
    A join moves exactly the sectors the new node wins. The baseline for benchmarks.

Every policy only hands sectors to the new node: no other owner changes in a join.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol

import attrs
from uhashring import HashRing

from ..errors import JoinRefused
from ..sectors import SECTORS
from .placement import PARTS_PER_SEGMENT
from .ring import NodeId, Ring

Usage = Mapping[NodeId, Mapping[int, int]]
"""Bytes stored per sector, per node, as each node reports it."""


@attrs.frozen
class JoinPlan:
    """The sectors a new node takes: ``moves`` maps each one to its current owner."""

    new_node: NodeId
    moves: Mapping[int, NodeId]

    def apply(self, ring: Ring) -> Ring:
        """The ring after the join."""
        return ring.reassign(self.moves, self.new_node)

    def by_donor(self) -> dict[NodeId, tuple[int, ...]]:
        """Donor -> the sectors it hands over, ascending."""
        grouped: dict[NodeId, list[int]] = {}
        for sector in sorted(self.moves):
            grouped.setdefault(self.moves[sector], []).append(sector)
        return {donor: tuple(sectors) for donor, sectors in sorted(grouped.items())}


class JoinPolicy(Protocol):
    """Decides the initial layout of a cluster and the sectors each joining node takes."""

    @property
    def name(self) -> str:
        """How configuration and the topology file refer to the policy."""
        ...

    def initial(self, nodes: Sequence[NodeId]) -> Ring:
        """The ring of a new cluster of ``nodes``."""
        ...

    def plan(self, ring: Ring, usage: Usage, new_node: NodeId) -> JoinPlan:
        """What ``new_node`` takes when it joins ``ring``; raises JoinRefused on a bad join."""
        ...


def sector_bytes(ring: Ring, usage: Usage) -> list[int]:
    """Bytes in each sector, as reported by that sector's owner."""
    return [usage.get(owner, {}).get(sector, 0) for sector, owner in enumerate(ring.owners)]


def node_loads(ring: Ring, weights: Sequence[int]) -> dict[NodeId, int]:
    """Total weight of the sectors each ring node owns."""
    loads = dict.fromkeys(ring.nodes, 0)
    for sector, owner in enumerate(ring.owners):
        loads[owner] += weights[sector]
    return loads


def _check_new_node(ring: Ring, new_node: NodeId) -> None:
    if not isinstance(new_node, str) or not new_node:
        raise JoinRefused(f"a node id must be a non-empty string, got {new_node!r}")
    if new_node in ring.nodes:
        raise JoinRefused(f"node id {new_node!r} is already in the ring")


def _largest_arc_sectors(ring: Ring, owned: set[int], node: NodeId) -> list[int]:
    """The sectors of ``node``'s largest remaining arc, in ring order (ties: lowest start)."""
    best: list[int] = []
    for arc in ring.arcs_of(node):
        run: list[int] = []
        for sector in arc.sectors:
            if sector in owned:
                run.append(sector)
                if len(run) > len(best):
                    best = list(run)
            else:
                run = []
    return best


class Landing:
    """What a join is expected to *keep* on the new node, given what it takes.

    The new node keeps one part of every segment that has at least one part in a
    moving sector (invariant 1: the others are re-homed onto their donors). If a
    fraction ``f`` of node X's bytes moves, a segment with a part on X keeps it away
    from the new node with probability ``1 - f``. A node holding ``B`` of the
    cluster's ``T`` bytes has a part of a fraction ``c = 6 B / T`` of the segments
    (weighted by size), so a segment escapes the join with probability about
    ``prod((1 - f_X) ** c_X)`` and the new node keeps ``T / 6`` times the rest. When
    every donor gives the same fraction ``f`` this is exactly ``(1 - f) ** 6``,
    whatever the cluster size. Planning by bytes handed over instead would leave the
    first joins with about 70% of their fair share.
    """

    def __init__(self, loads: Mapping[NodeId, int], parts: int = PARTS_PER_SEGMENT) -> None:
        self._loads = dict(loads)
        self._total = sum(loads.values())
        self._parts = parts
        self._coverage = {
            node: min(1.0, parts * load / self._total) if self._total else 0.0
            for node, load in loads.items()
        }
        self._moved = dict.fromkeys(loads, 0)

    def kept(self, moved: Mapping[NodeId, int] | None = None) -> float:
        """Expected bytes the new node keeps if ``moved`` (default: what was taken) moves."""
        moved = self._moved if moved is None else moved
        escape = 1.0
        for node, load in self._loads.items():
            if load:
                escape *= (1.0 - moved[node] / load) ** self._coverage[node]
        return self._total / self._parts * (1.0 - escape)

    def kept_if(self, donor: NodeId, weight: int) -> float:
        moved = dict(self._moved)
        moved[donor] += weight
        return self.kept(moved)

    def take(self, donor: NodeId, weight: int) -> None:
        self._moved[donor] += weight

    def moved(self, node: NodeId) -> int:
        return self._moved[node]


@attrs.frozen
class FillPolicy:
    """Take one sector at a time from the busiest node until the fair share is kept."""

    name: str = "fill"

    def initial(self, nodes: Sequence[NodeId]) -> Ring:
        return Ring.equal_arcs(nodes)

    def plan(self, ring: Ring, usage: Usage, new_node: NodeId) -> JoinPlan:
        """Sectors for ``new_node`` such that the bytes it is expected to keep (see
        :class:`Landing`) come within one sector's bytes of ``total / (n + 1)``; on an
        empty cluster, within one sector of ``360 / (n + 1)`` sectors."""
        _check_new_node(ring, new_node)
        weights = sector_bytes(ring, usage)
        empty = sum(weights) == 0
        if empty:
            weights = [1] * SECTORS
        loads = node_loads(ring, weights)
        fair = sum(weights) / (len(loads) + 1)
        landing = Landing(loads)
        owned = {node: set(ring.sectors_of(node)) for node in loads}
        kept = 0.0
        moves: dict[int, NodeId] = {}
        while True:
            donors = [node for node in loads if len(owned[node]) > 1]
            if not donors:
                break
            # The busiest now: what each node is expected to hold after the join.
            share = kept / sum(landing.moved(n) for n in loads) if moves and kept else 1.0
            donor = max(
                donors,
                key=lambda node: (
                    loads[node] - share * landing.moved(node),
                    len(owned[node]),
                    node,
                ),
            )
            sector = _largest_arc_sectors(ring, owned[donor], donor)[-1]
            weight = weights[sector]
            after = kept + weight if empty else landing.kept_if(donor, weight)
            if after == kept:
                if kept >= fair:
                    break  # an empty sector changes nothing once the share is reached
            elif abs(after - fair) >= abs(kept - fair):
                if not moves:
                    # The first sector alone overshoots (one sector holds most of the
                    # bytes): the new node takes the donor's lightest sector instead,
                    # so that a join always gives it something.
                    sector = min(owned[donor], key=lambda s: (weights[s], s))
                    moves[sector] = donor
                break
            moves[sector] = donor
            owned[donor].discard(sector)
            landing.take(donor, weight)
            kept = after
        return JoinPlan(new_node, moves)


@attrs.frozen
class HalfPolicy:
    """Take the second half of the busiest node's largest arc."""

    name: str = "half"

    def initial(self, nodes: Sequence[NodeId]) -> Ring:
        return Ring.equal_arcs(nodes)

    def plan(self, ring: Ring, usage: Usage, new_node: NodeId) -> JoinPlan:
        _check_new_node(ring, new_node)
        weights = sector_bytes(ring, usage)
        loads = node_loads(ring, weights)
        counts = {node: len(ring.sectors_of(node)) for node in loads}
        for donor in sorted(loads, key=lambda node: (-loads[node], -counts[node], node)):
            arc = max(ring.arcs_of(donor), key=lambda arc: (arc.length, -arc.start))
            if arc.length >= 2:
                taken = arc.sectors[arc.length - arc.length // 2 :]
                return JoinPlan(new_node, dict.fromkeys(taken, donor))
        raise JoinRefused("no node owns an arc of two or more sectors, so none can be split")


@attrs.frozen
class KetamaPolicy:
    """Sectors follow uhashring's ketama continuum over the node ids."""

    name: str = "ketama"

    @staticmethod
    def _assign(nodes: Sequence[NodeId]) -> tuple[NodeId, ...]:
        continuum = HashRing(nodes=list(nodes), hash_fn="ketama")
        return tuple(str(continuum.get_node(str(sector))) for sector in range(SECTORS))

    def initial(self, nodes: Sequence[NodeId]) -> Ring:
        if len(set(nodes)) != len(nodes) or not nodes:
            raise ValueError(f"node ids must be distinct and non-empty, got {list(nodes)}")
        return Ring(self._assign(nodes))

    def plan(self, ring: Ring, usage: Usage, new_node: NodeId) -> JoinPlan:
        _check_new_node(ring, new_node)
        after = self._assign([*ring.nodes, new_node])
        moves = {
            sector: ring.owner(sector) for sector in range(SECTORS) if after[sector] == new_node
        }
        return JoinPlan(new_node, moves)


_ALL: tuple[JoinPolicy, ...] = (FillPolicy(), HalfPolicy(), KetamaPolicy())
POLICIES: Mapping[str, JoinPolicy] = {policy.name: policy for policy in _ALL}


def get_policy(name: str) -> JoinPolicy:
    """The policy called ``name``; raises ValueError listing the known names."""
    try:
        return POLICIES[name]
    except KeyError:
        raise ValueError(
            f"unknown join policy {name!r}; choose one of {sorted(POLICIES)}"
        ) from None
