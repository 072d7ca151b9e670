"""What the orchestrator needs to know about parts to keep invariants 1 and 4 through
a join.

When a join takes sectors from several donors, two parts of one segment can end up on
the new node. The orchestrator finds them through a :class:`PartCatalog` (the
receiver's manifests implement it) and re-homes all but one of each group into a
sector its donor keeps: a hard link and a catalog update, no bytes moved. Parity
parts are parts like any other here, so all ``6 + parity`` parts of a segment stay
on distinct nodes.

A part deleted while its sector was being copied can still arrive on the new node
(the export had listed it before the delete reached the donor), so once the copy is
done the moved sectors are swept against the catalog (:func:`sweep_sector`, which
the janitor's orphan sweep uses too).
"""

from __future__ import annotations

import re
from collections.abc import Collection, Sequence
from typing import Protocol

import attrs

from ..transport.base import NodeClient
from .hashing import hash64
from .policies import JoinPlan
from .ring import Ring

PartKey = tuple[str, int, int]
"""(upload id, segment, part index)"""


def part_name(upload_id: str, segment: int, index: int) -> str:
    """The file name of a part on its node: derived from the upload, never the key."""
    return f"{upload_id}-{segment}-{index}"


_PART_NAME = re.compile(r"([0-9a-zA-Z]+)-(0|[1-9][0-9]*)-(0|[1-9][0-9]*)")


def parse_part_name(name: str) -> tuple[str, int, int] | None:
    """(upload id, segment, index) of a part file name, or None if it is not one."""
    match = _PART_NAME.fullmatch(name)
    if match is None:
        return None
    return match[1], int(match[2]), int(match[3])


@attrs.frozen
class PlacedPart:
    """One part and the sector the manifest records for it."""

    upload_id: str
    segment: int
    index: int
    sector: int

    @property
    def name(self) -> str:
        return part_name(self.upload_id, self.segment, self.index)


class PartCatalog(Protocol):
    """The receiver's record of where each part lives, as far as joins need it."""

    async def parts_in_sectors(self, sectors: Collection[int]) -> list[PlacedPart]:
        """Every recorded part (pending or committed) whose sector is in ``sectors``."""
        ...

    async def move_part(self, part: PlacedPart, new_sector: int) -> bool:
        """Record that ``part`` now lives in ``new_sector``; False if it is no longer
        recorded (its upload was deleted meanwhile)."""
        ...

    async def recorded_sectors(self, parts: Collection[PartKey]) -> dict[PartKey, int]:
        """The recorded sector of each of ``parts`` that has a row."""
        ...


async def sweep_sector(
    client: NodeClient, catalog: PartCatalog, sector: int, *, owned: bool = True
) -> int:
    """Delete the part files of one sector of one node that no row places there (all
    of them if the node does not own the sector: ``owned=False``); returns how many.

    Safe while requests run, because a part's row is written before its file and
    forgotten only after its file is deleted: a file with no row, checked after the
    file was listed, is garbage. Not safe during a join's copy, when files exist where
    no row (yet) places them: callers hold off joins or are the join.
    """
    names = [stat.name for stat in await client.list_parts(sector)]
    keys = {name: parse_part_name(name) for name in names}
    recorded = await catalog.recorded_sectors([key for key in keys.values() if key is not None])
    orphans = [
        name
        for name, key in keys.items()
        if not owned or key is None or recorded.get(key) != sector
    ]
    return await client.delete_parts(sector, orphans) if orphans else 0


@attrs.frozen
class Rehome:
    part: PlacedPart
    new_sector: int


def plan_rehomes(parts: Sequence[PlacedPart], plan: JoinPlan, target: Ring) -> list[Rehome]:
    """Re-homes that leave at most one part of each segment on the new node.

    ``parts`` are the parts in the moving sectors. In each segment with several of
    them, one stays, picked by hashing the segment with the new node's id: a fixed
    rule (say, the lowest index) would make the parts a node received in one join the
    likely keepers of the next, so that node would shed more than planned. Each other
    part moves to a sector its donor keeps after the join (chosen by hashing the part,
    so re-homes spread out). Raises ValueError if a donor keeps no sector at all.
    """
    groups: dict[tuple[str, int], list[PlacedPart]] = {}
    for part in parts:
        if part.sector in plan.moves:
            groups.setdefault((part.upload_id, part.segment), []).append(part)
    rehomes = []
    for (upload_id, segment), group in groups.items():
        group.sort(key=lambda part: part.index)
        stays = hash64(upload_id, segment, plan.new_node) % len(group)
        for part in group[:stays] + group[stays + 1 :]:
            donor = plan.moves[part.sector]
            kept = target.sectors_of(donor)
            if not kept:
                raise ValueError(f"donor {donor!r} keeps no sector to re-home {part.name} into")
            choice = hash64(part.upload_id, part.segment, part.index) % len(kept)
            rehomes.append(Rehome(part, kept[choice]))
    return rehomes
