"""Part placement: the sector of each of an upload's parts, and how many there are.

A segment has six data parts plus the parity parts its storage class asks for, every
one on a different node (invariant 1). Each part hashes ``(key, upload id, segment,
part index, attempt)`` to a sector and re-hashes with the next attempt until the
sector's owner holds no other part of the same segment and is *writable* (up and not
full, as the gateway's liveness view says). The sectors chosen are recorded in the
manifest, so a later move of whole sectors never needs the key's hash again.

During a migration a part must stay apart from its siblings both under the routing
that serves now and under the ring that will serve after the switch, so placement
takes several rings and asks for distinct writable owners in each.

How many parity parts a new segment gets (:func:`segment_parity`): its class's
target, but never more than there are writable nodes beyond the six data parts, so a
cluster with nodes down or full keeps accepting writes with less parity (the healer
raises it later). With fewer than six writable nodes nothing can be written:
NotEnoughNodes (503) when nodes are down, InsufficientCapacity (507) when enough
nodes are up but too many are full.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from ..errors import InsufficientCapacity, NotEnoughNodes
from ..sectors import SECTORS
from .hashing import part_sector
from .ring import NodeId, Ring

PARTS_PER_SEGMENT = 6
"""Every segment of an object is cut into this many parts, each on a different node."""

MAX_HASH_ATTEMPTS = 64
"""Re-hashes before falling back to a scan; with six or more nodes, 64 misses in a row
happen with a probability far below one in 10^12, so the scan exists only for
pathological rings (a node owning almost everything)."""


def _anywhere(node: NodeId) -> bool:
    return True


def segment_parity(
    rings: Sequence[Ring],
    target: int,
    is_up: Callable[[NodeId], bool] = _anywhere,
    is_writable: Callable[[NodeId], bool] = _anywhere,
    label: Callable[[NodeId], str] = str,
) -> int:
    """Parity parts for a new segment whose class asks for ``target``: as many as
    there are writable nodes beyond the six data parts in every ring, at most
    ``target``. Raises NotEnoughNodes when fewer than six nodes of a ring are up,
    InsufficientCapacity when six are up but fewer than six of them have room (both
    name the nodes, as ``label`` writes them)."""
    if not rings:
        raise ValueError("placement needs at least one ring")
    spare = target
    for ring in rings:
        up = [node for node in ring.nodes if is_up(node)]
        writable = [node for node in up if is_writable(node)]
        if len(up) < PARTS_PER_SEGMENT:
            down = [label(node) for node in sorted(set(ring.nodes) - set(up))]
            raise NotEnoughNodes(
                f"writing needs {PARTS_PER_SEGMENT} nodes up, {len(up)} of {len(ring.nodes)} "
                f"are; down: {', '.join(down) or 'none'}"
            )
        if len(writable) < PARTS_PER_SEGMENT:
            full = [label(node) for node in sorted(set(up) - set(writable))]
            raise InsufficientCapacity(
                f"writing needs {PARTS_PER_SEGMENT} nodes with room for new parts, "
                f"{len(writable)} have it; full: {', '.join(full)}"
            )
        spare = min(spare, len(writable) - PARTS_PER_SEGMENT)
    return spare


def place_parts(
    rings: Sequence[Ring],
    key: str,
    upload_id: str,
    segment: int = 0,
    parts: int = PARTS_PER_SEGMENT,
    is_writable: Callable[[NodeId], bool] = _anywhere,
) -> tuple[int, ...]:
    """One sector per part, such that in every ring the parts' owners are all distinct
    and writable (``is_writable``; every node by default).

    Raises NotEnoughNodes when a ring has fewer than ``parts`` writable owners, or
    when no assignment is found by the greedy search.
    """
    return place_more(rings, key, upload_id, segment, (), parts, is_writable)


def place_more(
    rings: Sequence[Ring],
    key: str,
    upload_id: str,
    segment: int,
    beside: Sequence[int],
    count: int,
    is_writable: Callable[[NodeId], bool] = _anywhere,
) -> tuple[int, ...]:
    """Sectors for ``count`` more parts of a segment whose parts already sit in the
    sectors ``beside`` (parts ``0 .. len(beside) - 1``): in every ring, each new
    part's owner is writable and holds no other part of the segment, old or new.
    The healer uses it to add parity parts to a segment written with fewer; with
    nothing ``beside`` it is :func:`place_parts`. Raises NotEnoughNodes as that does."""
    if not rings:
        raise ValueError("placement needs at least one ring")
    used: list[set[NodeId]] = [{ring.owner(sector) for sector in beside} for ring in rings]
    for ring, taken in zip(rings, used, strict=True):
        writable = [node for node in ring.nodes if is_writable(node) and node not in taken]
        if len(writable) < count:
            raise NotEnoughNodes(
                f"placing {count} parts needs {count} distinct writable nodes, "
                f"the ring has {len(writable)}: {writable}"
            )
    chosen: list[int] = []

    def free(sector: int) -> bool:
        for ring, taken in zip(rings, used, strict=True):
            owner = ring.owner(sector)
            if owner in taken or not is_writable(owner):
                return False
        return True

    for index in range(len(beside), len(beside) + count):
        sector = _hashed_choice(key, upload_id, segment, index, free)
        if sector is None:
            raise NotEnoughNodes(
                f"no sector left for part {index} of {upload_id!r}: every remaining sector "
                "is owned by a node that already holds a part of it"
            )
        chosen.append(sector)
        for ring, taken in zip(rings, used, strict=True):
            taken.add(ring.owner(sector))
    return tuple(chosen)


def _hashed_choice(
    key: str, upload_id: str, segment: int, index: int, free: Callable[[int], bool]
) -> int | None:
    first = part_sector(key, upload_id, segment, index, 0)
    for attempt in range(MAX_HASH_ATTEMPTS):
        sector = first if attempt == 0 else part_sector(key, upload_id, segment, index, attempt)
        if free(sector):
            return sector
    for step in range(1, SECTORS):
        sector = (first + step) % SECTORS
        if free(sector):
            return sector
    return None
