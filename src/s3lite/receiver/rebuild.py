"""Rebuilding some parts of a segment from the others, and writing them back.

The healer's one way to write: the segment's bytes are read with the read path
(fetch.SegmentFetch over the whole segment, the parts being replaced *avoided*, so
the missing data is decoded from parity as a degraded read decodes it, each byte
checked by its node), dealt again into the six data parts group of rows by group of
rows, the group's parity computed if a parity part is wanted, and the wanted parts'
batches streamed to every node routing names for their sector (both ends of a moving
sector, by the PartSender an upload writes with, part_sender.py: the caller holds
the routing lease). Memory is one group of rows plus the write channels, whatever
the segment's size; the writes go through the healer's rate limit.

A rebuilt data part, and a parity part whose checksum the manifest knows, must come
out with the recorded length and checksum, or it is deleted again and reported
failed: the healer writes back exactly the bytes that were written, never others.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Mapping

import attrs

from ..erasure import DATA_UNITS, codec
from ..errors import S3liteError
from ..orchestrator import Orchestrator, RoutingView, part_name
from .fetch import ReadContext, SegmentFetch
from .heal_plan import RateLimit
from .manifest import PartRecord, Segment
from .part_sender import PartSender, PartTarget
from .upload import SEND_BATCH, encode_parity

log = logging.getLogger("s3lite.healer")


@attrs.frozen
class Rebuilt:
    """What a rebuild wrote."""

    records: Mapping[int, PartRecord]
    """Parts now stored on their sector's owner, as they must be recorded."""
    failed: Mapping[int, str]
    """Parts that could not be written (their node failed), or came out other than
    recorded, with why."""

    @property
    def bytes(self) -> int:
        return sum(record.length for record in self.records.values())


async def rebuild_parts(
    context: ReadContext,
    view: RoutingView,
    segment: Segment,
    indexes: Collection[int],
    *,
    avoid: Mapping[int, str],
    limit: RateLimit,
    send_batch: int = SEND_BATCH,
) -> Rebuilt:
    """Rebuild parts ``indexes`` of ``segment`` and write them where ``view`` routes
    them; ``avoid`` are the parts not to read (why, for errors). Raises what the read
    raises (PartsUnavailable when fewer than six parts can be read, DataLoss) after
    every node has discarded what it got."""
    rebuilder = _Rebuilder(context, view, segment, sorted(indexes), limit, send_batch)
    return await rebuilder.run(avoid)


@attrs.define
class _Rebuilder:
    context: ReadContext
    view: RoutingView
    segment: Segment
    indexes: list[int]
    limit: RateLimit
    send_batch: int
    _sender: PartSender = attrs.field(init=False)

    def __attrs_post_init__(self) -> None:
        segment = self.segment
        targets = {
            index: PartTarget(
                segment.parts[index].sector,
                part_name(segment.upload_id, segment.number, index),
                self._expected(index),
            )
            for index in self.indexes
        }
        why = f"rebuild of {segment.upload_id} abandoned"
        self._sender = PartSender(self.context.orchestrator, self.view, targets, why)

    async def run(self, avoid: Mapping[int, str]) -> Rebuilt:
        await self._sender.run(lambda: self._deal(avoid))
        return await self._outcome()

    def _expected(self, index: int) -> int:
        return self.segment.layout.part_length(index if index < DATA_UNITS else 0)

    async def _deal(self, avoid: Mapping[int, str]) -> None:
        segment = self.segment
        unit = segment.stripe_unit
        group_bytes = max(1, self.send_batch // unit) * unit * DATA_UNITS
        wants_parity = any(index >= DATA_UNITS for index in self.indexes)
        encoder = codec(segment.parity) if wants_parity and segment.parity else None

        async def flush(data: bytes) -> None:
            rows = -(-len(data) // (unit * DATA_UNITS))
            batches = [
                b"".join(
                    data[(row * DATA_UNITS + index) * unit : (row * DATA_UNITS + index + 1) * unit]
                    for row in range(rows)
                )
                for index in range(DATA_UNITS)
            ]
            if encoder is not None:
                batches += await encode_parity(encoder, [(batch,) for batch in batches])
            for index in self.indexes:
                batch = batches[index]
                if not batch:
                    continue
                await self.limit.take(len(batch))
                await self._sender.send(index, (batch,))

        if segment.size == 0:
            return
        fetch = SegmentFetch(self.context, segment, 0, segment.size - 1, avoid=avoid)
        gathered = bytearray()
        try:
            await fetch.open()
            async for chunk in fetch.chunks():
                gathered += chunk
                while len(gathered) >= group_bytes:
                    await flush(bytes(gathered[:group_bytes]))
                    del gathered[:group_bytes]
            if gathered:
                await flush(bytes(gathered))
        finally:
            await fetch.aclose()

    async def _outcome(self) -> Rebuilt:
        failed = {
            index: f"writing to {node_id} failed: {exc}"
            for index, (node_id, exc) in self._sender.failed.items()
        }
        records: dict[int, PartRecord] = {}
        wrong: dict[int, str] = {}
        for index in self.indexes:
            if index in failed:
                continue
            recorded = self.segment.parts[index]
            length, checksum = self._sender.stored.get(index), self._sender.checksum(index)
            if length != self._expected(index):
                wrong[index] = f"{length} bytes stored, {self._expected(index)} expected"
            elif checksum != recorded.checksum and not _new_parity(recorded):
                wrong[index] = "rebuilt bytes differ from the recorded checksum"
            else:
                records[index] = attrs.evolve(recorded, checksum=checksum, missing=False)
        if wrong:
            await self._delete(wrong)
        return Rebuilt(records, {**failed, **wrong})

    async def _delete(self, indexes: Collection[int]) -> None:
        """Take back parts that came out wrong (never left where a read could use them)."""
        sectors = {index: self.segment.parts[index].sector for index in indexes}
        await take_back(self.context.orchestrator, self.view, self.segment, sectors)


async def take_back(
    orchestrator: Orchestrator, view: RoutingView, segment: Segment, sectors: Mapping[int, int]
) -> None:
    """Delete parts (index -> sector) of ``segment`` the healer wrote: they came out
    wrong, or the segment was deleted while they were written. A node that fails
    keeps its copy until the janitor's next pass (logged)."""
    for index, sector in sorted(sectors.items()):
        name = part_name(segment.upload_id, segment.number, index)
        for node_id in view.write_owners(sector):
            try:
                await orchestrator.client(node_id).delete_parts(sector, [name])
            except S3liteError as exc:
                log.warning("could not delete rebuilt part %s on %s: %s", name, node_id, exc)


def _new_parity(record: PartRecord) -> bool:
    """A parity part recorded missing: its checksum is whatever the code gives (a part
    the healer added has none recorded yet; one an upload failed to store has the
    right one, and the code gives the same bytes)."""
    return record.index >= DATA_UNITS and record.missing
