"""Part names and the re-homes that keep a segment's parts apart through a join."""

from __future__ import annotations

from collections import defaultdict

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from s3lite.orchestrator import (
    POLICIES,
    SECTORS,
    JoinPlan,
    PlacedPart,
    Ring,
    get_policy,
    parse_part_name,
    part_name,
    place_parts,
)
from s3lite.orchestrator.catalog import plan_rehomes
from tests.strategies import node_ids, object_keys, rings, upload_ids, usages

# -- part names ---------------------------------------------------------------------------

simple_upload_ids = st.one_of(upload_ids, st.from_regex(r"[A-Za-z0-9]{1,40}", fullmatch=True))


@given(simple_upload_ids, st.integers(0, 10**9), st.integers(0, 10**3))
def test_part_name_round_trip(upload_id: str, segment: int, index: int) -> None:
    name = part_name(upload_id, segment, index)
    assert parse_part_name(name) == (upload_id, segment, index)


@pytest.mark.parametrize(
    "name",
    [
        "",
        "abc",
        "abc-1",
        "abc-1-",
        "abc--1",
        "-1-2",
        "abc-x-1",
        "abc-1-y",
        "abc-01-2",  # leading zeros: not what part_name writes
        "abc-1-02",
        "abc-+1-2",
        "abc- 1-2",
        "abc-1-2 ",
        "abc-1-2\n",
        "abc-1-2-3",
        "abc-1.5-2",
        "abc-\u0663-0",  # ARABIC-INDIC DIGIT THREE: int() reads it, part_name writes "3"
    ],
)
def test_parse_part_name_rejects_junk(name: str) -> None:
    assert parse_part_name(name) is None


@pytest.mark.parametrize("name", ["abc-\u00b2-0", "abc-0-\u2460"])
def test_parse_part_name_rejects_non_decimal_digits(name: str) -> None:
    assert parse_part_name(name) is None


@given(st.text(alphabet="ab-0123456789\u0663 .", max_size=20))
def test_parse_part_name_is_the_inverse_of_part_name(name: str) -> None:
    parsed = parse_part_name(name)
    if parsed is not None:
        assert part_name(*parsed) == name
        upload_id, segment, index = parsed
        assert upload_id
        assert segment >= 0
        assert index >= 0


def test_placed_part_name() -> None:
    assert PlacedPart("u1", 2, 5, 100).name == "u1-2-5"


# -- re-homes ---------------------------------------------------------------------------


def place_objects(ring: Ring, objects: list[tuple[str, str, int, int]]) -> list[PlacedPart]:
    """Parts of each (key, upload, segment, parity): six data parts and as many parity
    parts as the ring's nodes allow, as the receiver places them."""
    placed = []
    for key, upload_id, segment, parity in objects:
        count = 6 + min(parity, len(ring.nodes) - 6)
        for index, sector in enumerate(place_parts([ring], key, upload_id, segment, count)):
            placed.append(PlacedPart(upload_id, segment, index, sector))
    return placed


objects_strategy = st.lists(
    st.tuples(object_keys, upload_ids, st.integers(0, 3), st.integers(0, 4)),
    min_size=1,
    max_size=30,
    unique_by=lambda obj: (obj[1], obj[2]),
)


@pytest.mark.parametrize("policy_name", sorted(POLICIES))
@settings(max_examples=30, deadline=None)
@given(data=st.data())
def test_rehomes_keep_every_segment_on_distinct_nodes_parity_included(
    policy_name: str, data: st.DataObject
) -> None:
    ring = data.draw(rings(max_nodes=10))
    usage = data.draw(usages(ring))
    new_node = data.draw(node_ids.filter(lambda node: node not in ring.nodes))
    plan = get_policy(policy_name).plan(ring, usage, new_node)
    target = plan.apply(ring)
    # a donor that keeps nothing cannot take a part back (ketama may empty a node)
    assume(all(target.sectors_of(donor) for donor in plan.moves.values()))
    parts = place_objects(ring, data.draw(objects_strategy))
    moving = [part for part in parts if part.sector in plan.moves]
    # giving only the moving parts (as the catalog does) or all of them is the same
    rehomes = plan_rehomes(moving, plan, target)
    assert plan_rehomes(parts, plan, target) == rehomes

    new_sector = {part: part.sector for part in parts}
    for rehome in rehomes:
        assert rehome.part in moving
        assert new_sector[rehome.part] == rehome.part.sector, "re-homed twice"
        # stays on its donor: same node before the join as after the re-home
        assert target.owner(rehome.new_sector) == ring.owner(rehome.part.sector)
        assert rehome.new_sector not in plan.moves
        new_sector[rehome.part] = rehome.new_sector

    segments: dict[tuple[str, int], list[PlacedPart]] = defaultdict(list)
    for part in parts:
        segments[part.upload_id, part.segment].append(part)
    rehomed = {rehome.part for rehome in rehomes}
    for segment_parts in segments.values():
        owners = {target.owner(new_sector[part]) for part in segment_parts}
        assert len(owners) == len(segment_parts) >= 6  # data and parity parts alike
        in_moving = sorted(
            (part for part in segment_parts if part.sector in plan.moves),
            key=lambda part: part.index,
        )
        # all but one of the moving parts are re-homed; nothing else is
        moved_back = {part for part in segment_parts if part in rehomed}
        assert moved_back <= set(in_moving)
        assert len(moved_back) == max(0, len(in_moving) - 1)


def test_rehome_exact() -> None:
    # six equal arcs; the new node takes sectors 0 (from node-0) and 60 (from node-1).
    # A segment in sectors 0, 60, 120, 180, 240, 300 would have parts 0 and 1 on the
    # new node: one of them goes back to its donor, into a sector that donor keeps
    # (node-0: 1..59, node-1: 61..119).
    ring = Ring.equal_arcs([f"node-{i}" for i in range(6)])
    plan = JoinPlan("new", {0: "node-0", 60: "node-1"})
    parts = [PlacedPart("up", 0, index, 60 * index) for index in range(6)]
    (rehome,) = plan_rehomes(parts, plan, plan.apply(ring))
    assert rehome.part in parts[:2]
    low = rehome.part.sector + 1
    assert low <= rehome.new_sector <= low + 58
    # a segment with one part in the moving sectors stays as it is
    lone = [PlacedPart("other", 0, index, 60 * index + 1) for index in range(6)]
    assert plan_rehomes(lone, plan, plan.apply(ring)) == []


def test_rehome_into_a_donor_that_keeps_nothing_raises() -> None:
    # node-1 gives all of 60..119: its part cannot be re-homed onto it
    ring = Ring.equal_arcs([f"node-{i}" for i in range(6)])
    plan = JoinPlan("new", {0: "node-0", **dict.fromkeys(range(60, 120), "node-1")})
    # ten segments: in some of them node-1's part is the one that must go back
    parts = [PlacedPart(f"up{n}", 0, index, 60 * index) for n in range(10) for index in range(6)]
    with pytest.raises(ValueError, match="node-1"):
        plan_rehomes(parts, plan, plan.apply(ring))


def test_the_part_that_stays_does_not_favour_an_index() -> None:
    """Which colliding part stays is hashed, not the lowest index: parts a node got in
    one join must not be the likely keepers of the next (it would shed too much)."""
    ring = Ring.equal_arcs([f"node-{i}" for i in range(6)])
    plan = JoinPlan("new", {60 * i: f"node-{i}" for i in range(6)})
    parts = [PlacedPart(f"u{n}", 0, index, 60 * index) for n in range(600) for index in range(6)]
    rehomed = {rehome.part for rehome in plan_rehomes(parts, plan, plan.apply(ring))}
    kept = [part.index for part in parts if part not in rehomed]
    assert len(kept) == 600
    assert min(kept.count(index) for index in range(6)) >= 70  # 100 each on average


@given(st.lists(st.integers(0, SECTORS - 1), min_size=1, max_size=6, unique=True))
def test_rehome_choice_is_deterministic(sectors: list[int]) -> None:
    ring = Ring.equal_arcs([f"node-{i}" for i in range(6)])
    plan = JoinPlan("new", {sector: ring.owner(sector) for sector in sectors})
    target = plan.apply(ring)
    parts = [PlacedPart("up", 0, index, sector) for index, sector in enumerate(sectors)]
    assert plan_rehomes(parts, plan, target) == plan_rehomes(list(reversed(parts)), plan, target)
    assert len(plan_rehomes(parts, plan, target)) == len(sectors) - 1
