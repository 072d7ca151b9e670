"""Topology values: JSON round trip, rejection of malformed files, the target ring."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from s3lite.orchestrator import (
    SECTORS,
    Migration,
    MigrationPhase,
    NodeInfo,
    NodeState,
    Ring,
    Topology,
)
from tests.strategies import topologies


def through_json(topology: Topology) -> Topology:
    return Topology.from_json(json.loads(json.dumps(topology.to_json())))


@settings(max_examples=40)
@given(topologies())
def test_json_round_trip(topology: Topology) -> None:
    restored = through_json(topology)
    assert restored == topology
    assert restored.to_json() == topology.to_json()


@settings(max_examples=40)
@given(topologies(migration=True))
def test_json_round_trip_with_a_migration(topology: Topology) -> None:
    restored = through_json(topology)
    assert restored.migration == topology.migration
    assert restored.migration is not None
    assert restored.migration.phase is topology.migration.phase  # type: ignore[union-attr]
    assert restored.target_ring == topology.target_ring


@settings(max_examples=40)
@given(topologies())
def test_target_ring(topology: Topology) -> None:
    migration = topology.migration
    if migration is None or migration.phase is MigrationPhase.SWITCHED:
        assert topology.target_ring == topology.ring
    else:
        expected = list(topology.ring.owners)
        for sector in migration.moves:
            expected[sector] = migration.new_node
        assert topology.target_ring == Ring(tuple(expected))
        assert set(topology.ring.moved_sectors(topology.target_ring)) <= set(migration.moves)


@settings(max_examples=40)
@given(topologies())
def test_evolve_advances_the_generation(topology: Topology) -> None:
    evolved = topology.evolve(policy="half")
    assert evolved.generation == topology.generation + 1
    assert evolved.policy == "half"
    assert evolved.ring == topology.ring


def test_node_lookup_and_state_change() -> None:
    ring = Ring.equal_arcs([f"n{i}" for i in range(6)])
    nodes = tuple(NodeInfo(f"n{i}", f"addr-{i}", NodeState.READY) for i in range(6))
    topology = Topology("fill", (*nodes, NodeInfo("n6", "addr-6", NodeState.JOINING)), ring)
    assert topology.node("n6").state is NodeState.JOINING
    assert topology.node_ids == ("n0", "n1", "n2", "n3", "n4", "n5", "n6")
    changed = topology.with_node_state("n6", NodeState.READY)
    assert [info.state for info in changed] == [NodeState.READY] * 7
    with pytest.raises(KeyError):
        topology.node("n7")


def test_migration_moves_are_kept_sorted() -> None:
    migration = Migration("new", {300: "b", 5: "a", 100: "a"})
    assert list(migration.moves) == [5, 100, 300]
    assert migration.phase is MigrationPhase.COPYING
    assert migration.plan.by_donor() == {"a": (5, 100), "b": (300,)}


# -- malformed data -----------------------------------------------------------------------

VALID: dict[str, Any] = Topology(
    "fill",
    (
        *(NodeInfo(f"n{i}", f"addr-{i}", NodeState.READY) for i in range(6)),
        NodeInfo("n6", "addr-6", NodeState.JOINING),
    ),
    Ring.equal_arcs([f"n{i}" for i in range(6)]),
    Migration("n6", {0: "n0", 60: "n1"}),
    generation=4,
).to_json()

Mutation = Callable[[dict[str, Any]], object]


def _set(path: tuple[str | int, ...], value: object) -> Mutation:
    def mutate(data: dict[str, Any]) -> object:
        target: Any = data
        for step in path[:-1]:
            target = target[step]
        target[path[-1]] = value
        return data

    return mutate


def _delete(path: tuple[str | int, ...]) -> Mutation:
    def mutate(data: dict[str, Any]) -> object:
        target: Any = data
        for step in path[:-1]:
            target = target[step]
        del target[path[-1]]
        return data

    return mutate


MALFORMED: dict[str, Mutation] = {
    "no-format": _delete(("format",)),
    "format-2": _set(("format",), 2),
    "format-text": _set(("format",), "1"),
    "no-policy": _delete(("policy",)),
    "no-nodes": _delete(("nodes",)),
    "nodes-null": _set(("nodes",), None),
    "node-not-object": _set(("nodes", 0), "n0"),
    "node-without-address": _delete(("nodes", 0, "address")),
    "node-bad-state": _set(("nodes", 0, "state"), "asleep"),
    "no-owners": _delete(("owners",)),
    "owners-short": _set(("owners",), ["n0"] * (SECTORS - 1)),
    "owners-text": _set(("owners",), "n0"),
    "owner-empty": _set(("owners", 7), ""),
    "owner-number": _set(("owners", 7), 3),
    "migration-text": _set(("migration",), "n6"),
    "migration-without-node": _delete(("migration", "node")),
    "migration-bad-phase": _set(("migration", "phase"), "done"),
    "migration-sector-text": _set(("migration", "moves"), {"zero": "n0"}),
    "no-generation": _delete(("generation",)),
    "generation-text": _set(("generation",), "four"),
    "generation-null": _set(("generation",), None),
}


@pytest.mark.parametrize("mutation", list(MALFORMED.values()), ids=list(MALFORMED))
def test_from_json_rejects_malformed_data(mutation: Mutation) -> None:
    assert Topology.from_json(copy.deepcopy(VALID)).to_json() == VALID
    with pytest.raises(ValueError):  # noqa: PT011 - the message varies by field
        Topology.from_json(mutation(copy.deepcopy(VALID)))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "mutation",
    [
        lambda data: [data],
        _set(("migration", "moves"), [[0, "n0"]]),
        _set(("migration", "moves"), None),
        _set(("owners",), "n0" * (SECTORS // 2)),
    ],
    ids=["top-level-list", "moves-list", "moves-null", "owners-360-char-string"],
)
def test_from_json_rejects_non_objects(mutation: Mutation) -> None:
    with pytest.raises(ValueError):  # noqa: PT011 - the message varies by field
        Topology.from_json(mutation(copy.deepcopy(VALID)))  # type: ignore[arg-type]


@pytest.mark.parametrize("sector", ["360", "-1", "1000"])
def test_from_json_rejects_migration_sectors_off_the_ring(sector: str) -> None:
    with pytest.raises(ValueError):  # noqa: PT011 - the message varies by field
        Topology.from_json(_set(("migration", "moves"), {sector: "n0"})(copy.deepcopy(VALID)))  # type: ignore[arg-type]


@settings(max_examples=40)
@given(topologies(), st.sampled_from(list(MALFORMED)))
def test_from_json_rejects_malformed_random_topologies(topology: Topology, name: str) -> None:
    data = json.loads(json.dumps(topology.to_json()))
    if name.startswith("migration") and data["migration"] is None:
        data["migration"] = copy.deepcopy(VALID["migration"])
    with pytest.raises(ValueError):  # noqa: PT011 - the message varies by field
        Topology.from_json(MALFORMED[name](data))  # type: ignore[arg-type]
