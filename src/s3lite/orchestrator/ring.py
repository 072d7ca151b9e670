"""The ring: which node owns each of the 360 sectors.

A :class:`Ring` is a value. Its lookup table is the ``owners`` tuple itself (one entry
per sector), so ``owner(sector)`` is a single index operation; everything else
(arcs, per-node sector lists) is derived from it. Changing ownership returns a new
ring, which is how the orchestrator swaps routing atomically.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from functools import cached_property

import attrs

from ..sectors import SECTORS
from .hashing import DEFAULT_SEED, xxh3_64

NodeId = str


@attrs.frozen
class Arc:
    """A run of consecutive sectors ``start, start+1, ...`` (wrapping after 359)."""

    start: int
    length: int

    @property
    def sectors(self) -> tuple[int, ...]:
        return tuple((self.start + i) % SECTORS for i in range(self.length))

    def __str__(self) -> str:
        end = (self.start + self.length - 1) % SECTORS
        return f"{self.start}-{end}"


def _check_owners(instance: Ring, attribute: attrs.Attribute[object], value: object) -> None:
    if not isinstance(value, tuple) or len(value) != SECTORS:
        got = len(value) if isinstance(value, tuple) else type(value).__name__
        raise ValueError(f"a ring needs exactly {SECTORS} owners, got {got}")
    if not all(isinstance(node, str) and node for node in value):
        raise ValueError("every sector owner must be a non-empty node id")


@attrs.frozen(cache_hash=True)
class Ring:
    """Sector -> owner table of a 360-sector consistent-hashing ring."""

    owners: tuple[NodeId, ...] = attrs.field(validator=_check_owners)

    @classmethod
    def equal_arcs(cls, nodes: Sequence[NodeId]) -> Ring:
        """Nodes in the given order, each owning one contiguous arc of (nearly) equal length.

        Arc lengths differ by at most one sector when 360 is not a multiple of len(nodes).
        """
        if not nodes:
            raise ValueError("a ring needs at least one node")
        if len(set(nodes)) != len(nodes):
            raise ValueError(f"node ids must be distinct, got {list(nodes)}")
        count = len(nodes)
        return cls(tuple(nodes[sector * count // SECTORS] for sector in range(SECTORS)))

    def owner(self, sector: int) -> NodeId:
        """The node that owns ``sector`` (0 <= sector < 360)."""
        return self.owners[sector]

    def owner_of_key(self, key: str) -> NodeId:
        """The node that owns the sector ``key`` hashes to: one hash, one index.

        Same as ``owner(key_sector(key))`` for valid keys (UTF-8, see receiver.keys);
        this path skips the surrogate handling, so a lone surrogate raises here."""
        return self.owners[xxh3_64(key.encode(), DEFAULT_SEED) % SECTORS]

    @cached_property
    def nodes(self) -> tuple[NodeId, ...]:
        """Every node owning at least one sector, sorted."""
        return tuple(sorted(set(self.owners)))

    @cached_property
    def _sectors_by_node(self) -> Mapping[NodeId, tuple[int, ...]]:
        grouped: dict[NodeId, list[int]] = {}
        for sector, node in enumerate(self.owners):
            grouped.setdefault(node, []).append(sector)
        return {node: tuple(sectors) for node, sectors in grouped.items()}

    def sectors_of(self, node: NodeId) -> tuple[int, ...]:
        """The sectors ``node`` owns, ascending (empty if it owns none)."""
        return self._sectors_by_node.get(node, ())

    def arcs_of(self, node: NodeId) -> tuple[Arc, ...]:
        """The maximal runs of consecutive sectors ``node`` owns; a run may wrap past 359."""
        return tuple(arc for arc in self.arcs() if self.owners[arc.start] == node)

    def arcs(self) -> tuple[Arc, ...]:
        """The ring cut into maximal single-owner runs, in ring order."""
        owners = self.owners
        if len(set(owners)) == 1:
            return (Arc(0, SECTORS),)
        # Start at a boundary so that no run is split by the 359 -> 0 wrap.
        first = next(s for s in range(SECTORS) if owners[s] != owners[s - 1])
        arcs: list[Arc] = []
        start, length = first, 0
        for step in range(SECTORS):
            sector = (first + step) % SECTORS
            if owners[sector] != owners[start]:
                arcs.append(Arc(start, length))
                start, length = sector, 0
            length += 1
        arcs.append(Arc(start, length))
        return tuple(arcs)

    def reassign(self, sectors: Iterable[int], node: NodeId) -> Ring:
        """A new ring in which ``node`` owns ``sectors`` and nothing else changed."""
        owners = list(self.owners)
        for sector in sectors:
            owners[sector] = node
        return Ring(tuple(owners))

    def moved_sectors(self, other: Ring) -> dict[int, tuple[NodeId, NodeId]]:
        """Sectors whose owner differs in ``other``: sector -> (owner here, owner there)."""
        return {
            sector: (mine, theirs)
            for sector, (mine, theirs) in enumerate(zip(self.owners, other.owners, strict=True))
            if mine != theirs
        }
