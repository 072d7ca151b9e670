"""Join policies: properties over sequences of joins, and exact hand-checked joins."""

from __future__ import annotations

from collections.abc import Mapping
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from uhashring import HashRing

from s3lite import JoinRefused
from s3lite.orchestrator import POLICIES, SECTORS, JoinPlan, Ring, get_policy
from s3lite.orchestrator.policies import Usage
from tests.strategies import node_ids, rings, usages

SIX = [f"node-{letter}" for letter in "abcdef"]


def owner_bytes(ring: Ring, usage: Usage) -> list[int]:
    """Bytes in each sector as its owner reports them (missing means 0)."""
    return [usage.get(owner, {}).get(sector, 0) for sector, owner in enumerate(ring.owners)]


def expected_half_donor(ring: Ring, usage: Usage) -> str:
    """The busiest node (bytes, then sector count, then lowest id) with an arc >= 2."""
    weights = owner_bytes(ring, usage)
    candidates = [node for node in ring.nodes if max(arc.length for arc in ring.arcs_of(node)) >= 2]

    def busy(node: str) -> tuple[int, int]:
        sectors = ring.sectors_of(node)
        return sum(weights[sector] for sector in sectors), len(sectors)

    top = max(busy(node) for node in candidates)
    return min(node for node in candidates if busy(node) == top)


def expected_kept(ring: Ring, weights: list[int], moves: Mapping[int, str]) -> float:
    """Bytes the new node is expected to keep after re-homing, as the fill policy's
    docstring defines it: a node X holding B_X of T bytes has a part of a fraction
    c_X = min(1, 6 B_X / T) of the segments; moving a fraction f_X of its bytes leaves
    a segment off the new node with probability 1 - c_X f_X, so the new node keeps
    T / 6 * (1 - prod(1 - c_X f_X))."""
    total = sum(weights)
    escape = 1.0
    for node in ring.nodes:
        load = sum(weights[sector] for sector in ring.sectors_of(node))
        if load:
            moved = sum(weights[sector] for sector, donor in moves.items() if donor == node)
            escape *= 1 - min(1.0, 6 * load / total) * moved / load
    return total / 6 * (1 - escape)


def check_join(policy_name: str, ring: Ring, usage: Usage, new_node: str) -> Ring:
    """Plan and apply one join, asserting what every policy promises; return the new ring."""
    policy = get_policy(policy_name)
    plan = policy.plan(ring, usage, new_node)
    assert plan == policy.plan(ring, usage, new_node)  # deterministic
    assert plan.new_node == new_node
    after = plan.apply(ring)
    moved = ring.moved_sectors(after)
    # only sectors going to the new node change owner, and the plan names their donors
    assert set(moved) == set(plan.moves)
    assert all(recipient == new_node for _, recipient in moved.values())
    assert all(plan.moves[sector] == donor for sector, (donor, _) in moved.items())
    assert plan.moves, "a join must give the new node something"

    if policy_name == "half":
        donor = expected_half_donor(ring, usage)
        assert set(plan.moves.values()) == {donor}
        arc = max(ring.arcs_of(donor), key=lambda arc: (arc.length, -arc.start))
        assert len(plan.moves) == arc.length // 2
        assert set(plan.moves) == set(arc.sectors[arc.length - arc.length // 2 :])
    if policy_name == "fill":
        weights = owner_bytes(ring, usage)
        total = sum(weights)
        n = len(ring.nodes)
        if total:
            taken = sum(weights[sector] for sector in plan.moves)
            # it takes at least its fair share (it keeps at most what it takes) ...
            assert taken >= Fraction(total, n + 1) - max(weights)
            # ... and expects to keep it, within one sector's bytes
            kept = expected_kept(ring, weights, plan.moves)
            assert abs(kept - total / (n + 1)) <= max(weights) * (1 + 1e-9)
        else:
            assert abs(len(plan.moves) - Fraction(SECTORS, n + 1)) <= 1
    if policy_name in ("fill", "half"):
        # no donor is emptied
        assert set(after.nodes) == {*ring.nodes, new_node}
    if policy_name == "ketama":
        continuum = HashRing(nodes=[*ring.nodes, new_node], hash_fn="ketama")
        wins = {s for s in range(SECTORS) if continuum.get_node(str(s)) == new_node}
        assert set(plan.moves) == wins
    return after


@pytest.mark.parametrize("policy_name", sorted(POLICIES))
@settings(max_examples=25, deadline=None)
@given(data=st.data())
def test_sequences_of_joins(policy_name: str, data: st.DataObject) -> None:
    policy = get_policy(policy_name)
    everyone = data.draw(st.lists(node_ids, min_size=6, max_size=10, unique=True))
    ring = policy.initial(everyone)
    assert set(ring.nodes) <= set(everyone)
    for _ in range(data.draw(st.integers(1, 3))):
        usage = data.draw(usages(ring))
        new_node = data.draw(node_ids.filter(lambda node: node not in everyone))
        ring = check_join(policy_name, ring, usage, new_node)
        everyone.append(new_node)
    if policy_name == "ketama":
        # consistent hashing: joins one at a time land where a fresh layout would
        assert ring == policy.initial(everyone)


@pytest.mark.parametrize("policy_name", ["fill", "half"])
@settings(max_examples=30, deadline=None)
@given(data=st.data())
def test_join_on_fragmented_rings(policy_name: str, data: st.DataObject) -> None:
    ring = data.draw(rings())
    usage = data.draw(usages(ring, empty_allowed=data.draw(st.booleans())))
    new_node = data.draw(node_ids.filter(lambda node: node not in ring.nodes))
    check_join(policy_name, ring, usage, new_node)


@pytest.mark.parametrize("policy_name", sorted(POLICIES))
@given(data=st.data())
@settings(max_examples=20, deadline=None)
def test_bad_node_ids_are_refused(policy_name: str, data: st.DataObject) -> None:
    policy = get_policy(policy_name)
    ring = data.draw(rings(max_nodes=10))
    usage = data.draw(usages(ring))
    before = Ring(ring.owners)
    for bad in ["", data.draw(st.sampled_from(ring.nodes)), None, 7]:
        with pytest.raises(JoinRefused):
            policy.plan(ring, usage, bad)  # type: ignore[arg-type]
    assert ring == before


def test_half_refuses_when_every_arc_is_one_sector() -> None:
    ring = Ring(tuple("ab"[sector % 2] for sector in range(SECTORS)))
    with pytest.raises(JoinRefused, match="arc"):
        get_policy("half").plan(ring, {}, "c")


def test_unknown_policy() -> None:
    with pytest.raises(ValueError, match="fill"):
        get_policy("round-robin")
    assert {name: get_policy(name).name for name in POLICIES} == {
        "fill": "fill",
        "half": "half",
        "ketama": "ketama",
    }


@given(data=st.data())
def test_by_donor_groups_the_moves(data: st.DataObject) -> None:
    ring = data.draw(rings(max_nodes=10))
    sectors = data.draw(st.sets(st.integers(0, SECTORS - 1)))
    plan = JoinPlan("new", {sector: ring.owner(sector) for sector in sectors})
    grouped = plan.by_donor()
    assert list(grouped) == sorted(grouped)
    assert sorted(s for group in grouped.values() for s in group) == sorted(sectors)
    for donor, group in grouped.items():
        assert group == tuple(sorted(group))
        assert all(plan.moves[sector] == donor for sector in group)


# -- exact joins on six equal nodes (60 sectors each) -----------------------------------


def test_fill_join_on_empty_six_node_cluster_exact() -> None:
    ring = Ring.equal_arcs(SIX)
    plan = get_policy("fill").plan(ring, {}, "node-g")
    # fair share 360 / 7 = 51.43 sectors; at 51 the next one would end 0.57 away
    # instead of 0.43, so the new node stops at exactly 51.
    assert len(plan.moves) == 51
    # loads tie at every round, so donors take turns: 51 = 8 rounds of 6 + 3, the three
    # highest ids (the max() tie-break) giving the ninth sector.
    by_donor = plan.by_donor()
    assert {donor: len(sectors) for donor, sectors in by_donor.items()} == {
        "node-a": 8,
        "node-b": 8,
        "node-c": 8,
        "node-d": 9,
        "node-e": 9,
        "node-f": 9,
    }
    # each donor gives the tail of its arc 60 i .. 60 i + 59
    for i, donor in enumerate(SIX):
        count = len(by_donor[donor])
        assert by_donor[donor] == tuple(range(60 * i + 60 - count, 60 * i + 60))
    after = plan.apply(ring)
    assert sorted(len(after.sectors_of(node)) for node in SIX) == [51, 51, 51, 52, 52, 52]


def test_fill_join_with_uniform_usage_exact() -> None:
    # 1000 bytes in every sector: T = 360000, fair share T / 7 = 51428.6 bytes kept.
    # With six nodes every segment has a part on each (c = 1), so moving fractions f_X
    # keeps T / 6 * (1 - prod(1 - f_X)). Donors take turns (equal loads, the same
    # tie-break as on an empty cluster):
    #   99 sectors (16,16,16,17,17,17): 60000 * (1 - (44/60)^3 (43/60)^3) = 51290, 138 short
    #  100 sectors (16,16,17,17,17,17): 60000 * (1 - (44/60)^2 (43/60)^4) = 51488, 60 over
    #  101 sectors (16,17,17,17,17,17): 60000 * (1 - (44/60)^1 (43/60)^5) = 51682, 253 over
    # so it stops at exactly 100 sectors, keeping one seventh of the bytes.
    ring = Ring.equal_arcs(SIX)
    usage = {node: dict.fromkeys(ring.sectors_of(node), 1000) for node in SIX}
    plan = get_policy("fill").plan(ring, usage, "node-g")
    assert len(plan.moves) == 100
    assert sorted(len(sectors) for sectors in plan.by_donor().values()) == [16, 16, 17, 17, 17, 17]


def test_half_join_on_empty_six_node_cluster_exact() -> None:
    # all loads 0 and all counts 60 tie, so the lowest id donates: node-a's arc 0..59
    # loses its second half, floor(60 / 2) = 30 sectors 30..59.
    ring = Ring.equal_arcs(SIX)
    plan = get_policy("half").plan(ring, {}, "node-g")
    assert plan.by_donor() == {"node-a": tuple(range(30, 60))}
    # a second join finds node-a with 30 and takes from node-b (60 sectors, same bytes)
    after = plan.apply(ring)
    second = get_policy("half").plan(after, {}, "node-h")
    assert second.by_donor() == {"node-b": tuple(range(90, 120))}


def test_half_join_takes_from_the_busiest_node_exact() -> None:
    # node-c (sectors 120..179) holds the most bytes: it gives 150..179 (30 sectors)
    ring = Ring.equal_arcs(SIX)
    usage = {"node-c": {120: 5}, "node-e": {250: 4}}
    plan = get_policy("half").plan(ring, usage, "node-g")
    assert plan.by_donor() == {"node-c": tuple(range(150, 180))}


def test_half_join_skips_a_busiest_node_with_only_one_sector_arcs() -> None:
    # node-x owns the even sectors 0..18 (ten one-sector arcs) and all the bytes; it
    # cannot be split, so node-y donates. node-y's arcs: 1, 3, .., 17 and 19..359
    # (341 sectors); it gives floor(341 / 2) = 170 of them, 359 - 170 + 1 = 190..359.
    owners = ["node-y"] * SECTORS
    for sector in range(0, 20, 2):
        owners[sector] = "node-x"
    ring = Ring(tuple(owners))
    usage = {"node-x": dict.fromkeys(range(0, 20, 2), 10**6)}
    plan = get_policy("half").plan(ring, usage, "node-z")
    assert plan.by_donor() == {"node-y": tuple(range(190, 360))}
