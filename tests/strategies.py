"""Hypothesis strategies every property test draws from."""

from __future__ import annotations

from hypothesis import strategies as st

from s3lite.orchestrator import (
    POLICIES,
    SECTORS,
    Migration,
    MigrationPhase,
    NodeInfo,
    NodeState,
    Ring,
    Topology,
)

node_ids = st.from_regex(r"node-[a-z0-9]{1,6}", fullmatch=True)


@st.composite
def rings(draw: st.DrawFn, min_nodes: int = 6, max_nodes: int = 24) -> Ring:
    """Rings built like real ones: equal arcs, then arbitrary single-sector handovers to
    random nodes, so arcs fragment the way joins fragment them."""
    nodes = draw(st.lists(node_ids, min_size=min_nodes, max_size=max_nodes, unique=True))
    ring = Ring.equal_arcs(nodes)
    handovers = draw(
        st.lists(st.tuples(st.integers(0, SECTORS - 1), st.sampled_from(nodes)), max_size=60)
    )
    for sector, node in handovers:
        ring = ring.reassign([sector], node)
    # keep every node owning something, as real clusters do
    for node in nodes:
        if not ring.sectors_of(node):
            donor = max(ring.nodes, key=lambda n: len(ring.sectors_of(n)))
            ring = ring.reassign([ring.sectors_of(donor)[0]], node)
    return ring


@st.composite
def usages(draw: st.DrawFn, ring: Ring, empty_allowed: bool = True) -> dict[str, dict[int, int]]:
    """Bytes per sector as each owner would report them."""
    sizes = st.integers(0, 10**9) if empty_allowed else st.integers(1, 10**9)
    usage: dict[str, dict[int, int]] = {node: {} for node in ring.nodes}
    for sector, owner in enumerate(ring.owners):
        size = draw(sizes)
        if size:
            usage[owner][sector] = size
    return usage


object_keys = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\0"),
    min_size=1,
    max_size=60,
)
"""Valid keys: any UTF-8 but NUL and surrogates, including '/', '%', spaces, emoji."""


@st.composite
def byte_ranges(draw: st.DrawFn, size: int) -> tuple[int, int]:
    """An inclusive (start, end) range within an object of ``size`` > 0 bytes."""
    start = draw(st.integers(0, size - 1))
    end = draw(st.integers(start, size - 1))
    return start, end


@st.composite
def fragmented_rings(draw: st.DrawFn, max_nodes: int = 4) -> Ring:
    """Rings whose 360 owners are drawn independently from a few nodes: arcs of every
    length, many of one sector, and runs that wrap past sector 359."""
    nodes = draw(st.lists(node_ids, min_size=1, max_size=max_nodes, unique=True))
    runs = draw(
        st.lists(st.tuples(st.sampled_from(nodes), st.integers(1, 90)), min_size=1, max_size=40)
    )
    owners: list[str] = []
    while len(owners) < SECTORS:
        for node, length in runs:
            owners.extend([node] * length)
    shift = draw(st.integers(0, SECTORS - 1))
    owners = owners[:SECTORS]
    return Ring(tuple(owners[shift:] + owners[:shift]))


upload_ids = st.from_regex(r"[0-9a-f]{32}", fullmatch=True)
"""Upload ids as the receiver makes them (uuid4().hex)."""

addresses = st.one_of(
    st.from_regex(r"127\.0\.0\.1:[1-9][0-9]{3,4}", fullmatch=True),
    st.from_regex(r"memory://node-[a-z0-9]{1,6}", fullmatch=True),
)


@st.composite
def topologies(draw: st.DrawFn, migration: bool | None = None) -> Topology:
    """Topologies as the orchestrator persists them: READY nodes owning the ring and,
    with a migration, a JOINING node taking sectors from their current owners.
    ``migration`` forces one (True) or none (False); None draws either."""
    ring = draw(rings(max_nodes=10))
    nodes = [NodeInfo(node, draw(addresses), NodeState.READY) for node in ring.nodes]
    moving = None
    if draw(st.booleans()) if migration is None else migration:
        new_node = draw(node_ids.filter(lambda node: node not in ring.nodes))
        sectors = draw(st.sets(st.integers(0, SECTORS - 1), max_size=90))
        moving = Migration(
            new_node,
            {sector: ring.owner(sector) for sector in sectors},
            draw(st.sampled_from(MigrationPhase)),
        )
        nodes.append(NodeInfo(new_node, draw(addresses), NodeState.JOINING))
    return Topology(
        policy=draw(st.sampled_from(sorted(POLICIES))),
        nodes=tuple(draw(st.permutations(nodes))),
        ring=ring,
        migration=moving,
        generation=draw(st.integers(0, 2**53)),
    )


@st.composite
def stripe_rows(draw: st.DrawFn, max_length: int = 600) -> tuple[int, list[bytes]]:
    """(parity 0..4, six data units of one length, 0 to ``max_length`` bytes)."""
    parity = draw(st.integers(0, 4))
    length = draw(st.integers(0, max_length))
    units = [draw(st.binary(min_size=length, max_size=length)) for _ in range(6)]
    return parity, units
