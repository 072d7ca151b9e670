"""The 360-sector ring: equal arcs, arcs as a partition, lookups, reassignment."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from s3lite.orchestrator import SECTORS, Arc, Ring
from s3lite.orchestrator.hashing import key_sector
from tests.strategies import fragmented_rings, node_ids, object_keys, rings

any_rings = st.one_of(rings(), fragmented_rings())


# -- equal arcs -----------------------------------------------------------------------


@given(st.lists(node_ids, min_size=1, max_size=SECTORS, unique=True))
def test_equal_arcs_are_contiguous_in_order_and_within_one_sector(nodes: list[str]) -> None:
    ring = Ring.equal_arcs(nodes)
    lengths = [len(ring.sectors_of(node)) for node in nodes]
    assert sum(lengths) == SECTORS
    assert max(lengths) - min(lengths) <= 1
    assert min(lengths) == SECTORS // len(nodes)
    # one contiguous arc per node, in the order given, starting at sector 0
    start = 0
    for node, length in zip(nodes, lengths, strict=True):
        assert ring.sectors_of(node) == tuple(range(start, start + length))
        start += length
    assert start == SECTORS


def test_equal_arcs_six_nodes_exact() -> None:
    # 360 / 6 = 60: node i owns exactly sectors 60*i .. 60*i + 59
    nodes = [f"node-{i}" for i in range(6)]
    ring = Ring.equal_arcs(nodes)
    for i, node in enumerate(nodes):
        assert ring.sectors_of(node) == tuple(range(60 * i, 60 * i + 60))
        assert ring.arcs_of(node) == (Arc(60 * i, 60),)
    assert len(ring.arcs()) == 6


def test_equal_arcs_seven_nodes_exact() -> None:
    # node i owns sectors s with floor(7 s / 360) == i, i.e. s >= ceil(360 i / 7):
    # starts 0, 52, 103, 155, 206, 258, 309 -> lengths 52 51 52 51 52 51 51
    # (3 * 52 + 4 * 51 = 156 + 204 = 360)
    nodes = [f"node-{i}" for i in range(7)]
    ring = Ring.equal_arcs(nodes)
    assert [len(ring.sectors_of(node)) for node in nodes] == [52, 51, 52, 51, 52, 51, 51]
    assert [arc.start for arc in ring.arcs()] == [0, 52, 103, 155, 206, 258, 309]


@pytest.mark.parametrize("nodes", [[], ["a", "b", "a"], ["x", "x"]])
def test_equal_arcs_rejects_no_nodes_and_duplicates(nodes: list[str]) -> None:
    with pytest.raises(ValueError, match="node"):
        Ring.equal_arcs(nodes)


# -- construction -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "owners",
    [
        ("a",) * (SECTORS - 1),
        ("a",) * (SECTORS + 1),
        (),
        ["a"] * SECTORS,  # a list, not a tuple
        ("a",) * (SECTORS - 1) + ("",),
        ("a",) * (SECTORS - 1) + (7,),
        ("a",) * (SECTORS - 1) + (None,),
        "a" * SECTORS,
    ],
    ids=["359", "361", "empty", "list", "empty-id", "int-id", "none-id", "str"],
)
def test_bad_owners_raise_value_error(owners: object) -> None:
    with pytest.raises(ValueError, match="owner"):
        Ring(owners)  # type: ignore[arg-type]


# -- arcs -------------------------------------------------------------------------------


@given(any_rings)
def test_arcs_partition_the_ring(ring: Ring) -> None:
    arcs = ring.arcs()
    assert sum(arc.length for arc in arcs) == SECTORS
    covered = [sector for arc in arcs for sector in arc.sectors]
    assert sorted(covered) == list(range(SECTORS))
    for arc in arcs:
        assert arc.length >= 1
        assert len({ring.owner(sector) for sector in arc.sectors}) == 1
    # in ring order: each arc starts where the previous one ended, wrapping past 359
    for previous, following in zip(arcs, arcs[1:] + arcs[:1], strict=True):
        assert following.start == (previous.start + previous.length) % SECTORS
    # maximal: neighbouring arcs have different owners (including last -> first)
    if len(arcs) > 1:
        for previous, following in zip(arcs, arcs[1:] + arcs[:1], strict=True):
            assert ring.owner(previous.start) != ring.owner(following.start)
    else:
        assert len(ring.nodes) == 1
        assert arcs == (Arc(0, SECTORS),)


def test_arc_wrapping_past_359_is_one_arc() -> None:
    # "a" owns 350..359 and 0..9: one arc of 10 + 10 = 20 sectors starting at 350
    owners = ["b"] * SECTORS
    for sector in [*range(350, 360), *range(10)]:
        owners[sector] = "a"
    ring = Ring(tuple(owners))
    assert ring.arcs_of("a") == (Arc(350, 20),)
    assert ring.arcs_of("b") == (Arc(10, 340),)
    assert str(Arc(350, 20)) == "350-9"
    assert Arc(358, 4).sectors == (358, 359, 0, 1)


def test_single_owner_ring_is_one_arc() -> None:
    ring = Ring(("solo",) * SECTORS)
    assert ring.arcs() == (Arc(0, SECTORS),)
    assert ring.arcs_of("solo") == (Arc(0, SECTORS),)
    assert ring.nodes == ("solo",)


def test_alternating_owners_give_360_single_sector_arcs() -> None:
    ring = Ring(tuple("ab"[sector % 2] for sector in range(SECTORS)))
    arcs = ring.arcs()
    assert len(arcs) == SECTORS
    assert {arc.length for arc in arcs} == {1}
    assert len(ring.arcs_of("a")) == len(ring.arcs_of("b")) == SECTORS // 2


# -- lookups ----------------------------------------------------------------------------


@given(any_rings, st.data())
def test_sectors_of_and_arcs_of_agree_with_owners(ring: Ring, data: st.DataObject) -> None:
    assert ring.nodes == tuple(sorted(set(ring.owners)))
    for node in ring.nodes:
        expected = tuple(sector for sector in range(SECTORS) if ring.owners[sector] == node)
        assert ring.sectors_of(node) == expected
        from_arcs = sorted(sector for arc in ring.arcs_of(node) for sector in arc.sectors)
        assert from_arcs == list(expected)
        assert all(ring.owner(sector) == node for sector in expected)
    stranger = data.draw(node_ids.filter(lambda node: node not in ring.nodes))
    assert ring.sectors_of(stranger) == ()
    assert ring.arcs_of(stranger) == ()


@given(any_rings, object_keys)
def test_owner_of_key_is_the_owner_of_the_keys_sector(ring: Ring, key: str) -> None:
    assert ring.owner_of_key(key) == ring.owners[key_sector(key)]


# -- changes ----------------------------------------------------------------------------


@given(any_rings, st.sets(st.integers(0, SECTORS - 1)), node_ids)
def test_reassign_changes_only_the_given_sectors(ring: Ring, sectors: set[int], node: str) -> None:
    after = ring.reassign(sectors, node)
    for sector in range(SECTORS):
        expected = node if sector in sectors else ring.owner(sector)
        assert after.owner(sector) == expected
    moved = ring.moved_sectors(after)
    assert moved == {
        sector: (ring.owner(sector), node) for sector in sectors if ring.owner(sector) != node
    }
    # and the reverse direction swaps the pairs
    assert after.moved_sectors(ring) == {
        sector: (theirs, mine) for sector, (mine, theirs) in moved.items()
    }


@given(any_rings)
def test_moved_sectors_of_a_ring_with_itself_is_empty(ring: Ring) -> None:
    assert ring.moved_sectors(ring) == {}
    assert ring.reassign([], "anyone") == ring


def test_moved_sectors_exact() -> None:
    # 6 equal arcs; sectors 59 (node-0) and 60 (node-1) go to "new": exactly those two move
    ring = Ring.equal_arcs([f"node-{i}" for i in range(6)])
    after = ring.reassign([59, 60], "new")
    assert ring.moved_sectors(after) == {59: ("node-0", "new"), 60: ("node-1", "new")}
    assert len(after.sectors_of("node-0")) == len(after.sectors_of("node-1")) == 59
    assert after.arcs_of("new") == (Arc(59, 2),)
