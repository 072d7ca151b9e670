"""The cluster's topology as one value: nodes, their states, the ring, any migration.

The orchestrator never edits a topology in place; each change builds a new value that
is persisted before it is published, so what is on disk is always a state the
cluster was actually in (invariant 8).
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from typing import Any

import attrs

from ..erasure import MAX_PARITY
from ..sectors import SECTORS
from .policies import JoinPlan
from .ring import NodeId, Ring

FORMAT_VERSION = 1

DEFAULT_PARITY = 2
"""Target parity of a new cluster: parity parts per segment of a STANDARD object
(``--parity``; erasure.MAX_PARITY at most). A topology file written before parity
existed has none recorded and gets this one."""


class NodeState(enum.StrEnum):
    JOINING = "joining"
    """Registered, receiving sectors; serves nothing until the switch."""
    READY = "ready"
    """Owns its sectors and serves them."""


class MigrationPhase(enum.StrEnum):
    COPYING = "copying"
    """Writes to the moving sectors go to donor and recipient; reads to the donor.
    A crash here is resumed by copying again from the donors, which still hold everything."""
    SWITCHED = "switched"
    """Routing points at the recipient; only dropping the donors' copies is left."""


@attrs.frozen
class NodeInfo:
    node_id: NodeId
    address: str
    state: NodeState


def _sorted_moves(moves: Mapping[int, NodeId]) -> dict[int, NodeId]:
    return dict(sorted(moves.items()))


@attrs.frozen
class Migration:
    """A join in progress: ``moves`` maps each moving sector to its donor."""

    new_node: NodeId
    moves: Mapping[int, NodeId] = attrs.field(converter=_sorted_moves)
    phase: MigrationPhase = MigrationPhase.COPYING

    @property
    def plan(self) -> JoinPlan:
        return JoinPlan(self.new_node, self.moves)


@attrs.frozen
class Topology:
    """Everything the orchestrator must remember across restarts."""

    policy: str
    nodes: tuple[NodeInfo, ...]
    ring: Ring
    migration: Migration | None = None
    generation: int = 0
    parity: int = DEFAULT_PARITY
    """The cluster's target parity, chosen when it was created (see DEFAULT_PARITY).
    Segments get fewer parity parts while fewer than ``6 + parity`` nodes can take
    them (placement.effective_parity)."""

    def node(self, node_id: NodeId) -> NodeInfo:
        for info in self.nodes:
            if info.node_id == node_id:
                return info
        raise KeyError(node_id)

    @property
    def node_ids(self) -> tuple[NodeId, ...]:
        return tuple(info.node_id for info in self.nodes)

    @property
    def target_ring(self) -> Ring:
        """The ring once the migration in progress (if any) is complete."""
        if self.migration is None or self.migration.phase is MigrationPhase.SWITCHED:
            return self.ring
        return self.migration.plan.apply(self.ring)

    def evolve(self, **changes: Any) -> Topology:
        """A copy with ``changes`` applied and the generation advanced."""
        return attrs.evolve(self, generation=self.generation + 1, **changes)

    def with_node_state(self, node_id: NodeId, state: NodeState) -> tuple[NodeInfo, ...]:
        return tuple(
            attrs.evolve(info, state=state) if info.node_id == node_id else info
            for info in self.nodes
        )

    def to_json(self) -> dict[str, Any]:
        migration = None
        if self.migration is not None:
            migration = {
                "node": self.migration.new_node,
                "phase": self.migration.phase.value,
                "moves": {str(sector): donor for sector, donor in self.migration.moves.items()},
            }
        return {
            "format": FORMAT_VERSION,
            "generation": self.generation,
            "policy": self.policy,
            "parity": self.parity,
            "nodes": [
                {"id": n.node_id, "address": n.address, "state": n.state.value} for n in self.nodes
            ],
            "owners": list(self.ring.owners),
            "migration": migration,
        }

    @classmethod
    def from_json(cls, data: object) -> Topology:
        """Parse what :meth:`to_json` wrote; raises ValueError naming what is wrong."""
        if not isinstance(data, Mapping):
            raise ValueError(f"a topology is a JSON object, got {type(data).__name__}")
        if data.get("format") != FORMAT_VERSION:
            raise ValueError(f"topology format {data.get('format')!r} is not {FORMAT_VERSION}")
        try:
            nodes = tuple(
                NodeInfo(_text(n["id"]), _text(n["address"]), NodeState(n["state"]))
                for n in _list(data["nodes"])
            )
            owners = _list(data["owners"])
            migration = None
            if data.get("migration") is not None:
                raw = data["migration"]
                moves = raw["moves"]
                if not isinstance(moves, Mapping):
                    raise ValueError(f"migration moves must be an object, got {moves!r}")
                migration = Migration(
                    _text(raw["node"]),
                    {_sector(sector): _text(donor) for sector, donor in moves.items()},
                    MigrationPhase(raw["phase"]),
                )
            return cls(
                policy=_text(data["policy"]),
                nodes=nodes,
                ring=Ring(tuple(_text(owner) for owner in owners)),
                migration=migration,
                generation=int(data["generation"]),
                parity=_parity(data.get("parity", DEFAULT_PARITY)),
            )
        except (KeyError, TypeError, AttributeError) as exc:
            raise ValueError(f"topology is malformed: {exc!r}") from exc


def _text(value: object) -> str:
    if not isinstance(value, str):
        raise ValueError(f"expected a string, got {value!r}")
    return value


def _list(value: object) -> list[Any]:
    if not isinstance(value, list):
        raise ValueError(f"expected a list, got {type(value).__name__}")
    return value


def _parity(value: object) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= MAX_PARITY:
        raise ValueError(f"parity {value!r} is not an integer from 0 to {MAX_PARITY}")
    return value


def _sector(value: object) -> int:
    text = _text(value)
    if not (text.isascii() and text.isdigit()) or not 0 <= (sector := int(text)) < SECTORS:
        raise ValueError(f"sector {value!r} is not in [0, {SECTORS})")
    return sector
