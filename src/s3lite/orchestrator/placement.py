"""Part placement: the sector of each of an upload's parts.

Each part hashes ``(key, upload id, segment, part index, attempt)`` to a sector and
re-hashes with the next attempt until the sector's owner holds no other part of the
same segment. The sectors chosen are recorded in the manifest, so a later move of
whole sectors never needs the key's hash again.

During a migration a part must stay apart from its siblings both under the routing
that serves now and under the ring that will serve after the switch, so placement
takes several rings and asks for distinct owners in each.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from ..errors import NotEnoughNodes
from ..sectors import SECTORS
from .hashing import part_sector
from .ring import NodeId, Ring

PARTS_PER_SEGMENT = 6
"""Every segment of an object is cut into this many parts, each on a different node."""

MAX_HASH_ATTEMPTS = 64
"""Re-hashes before falling back to a scan; with six or more nodes, 64 misses in a row
happen with a probability far below one in 10^12, so the scan exists only for
pathological rings (a node owning almost everything)."""


def place_parts(
    rings: Sequence[Ring],
    key: str,
    upload_id: str,
    segment: int = 0,
    parts: int = PARTS_PER_SEGMENT,
) -> tuple[int, ...]:
    """One sector per part, such that in every ring the parts' owners are all distinct.

    Raises NotEnoughNodes when a ring has fewer than ``parts`` owners, or when no
    assignment is found by the greedy search.
    """
    if not rings:
        raise ValueError("placement needs at least one ring")
    for ring in rings:
        if len(ring.nodes) < parts:
            raise NotEnoughNodes(
                f"placing {parts} parts needs {parts} distinct nodes, "
                f"the ring has {len(ring.nodes)}: {list(ring.nodes)}"
            )
    used: list[set[NodeId]] = [set() for _ in rings]
    chosen: list[int] = []

    def free(sector: int) -> bool:
        return all(ring.owner(sector) not in taken for ring, taken in zip(rings, used, strict=True))

    for index in range(parts):
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
