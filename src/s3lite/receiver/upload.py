"""The write path: cut a stream into six parts and store them in parallel.

Incoming chunks are cut at stripe-unit boundaries, gathered per part into batches of
``SEND_BATCH`` bytes, and sent to the part's writer through a bounded channel, so a
slow node slows the upload instead of filling memory: at most ``PART_QUEUE`` batches
wait per destination. Every part
writer streams straight into ``NodeClient.put_part``; a part whose sector is moving
is written to the donor and to the new node at once (dual write).

If a segment's size is not declared, up to six stripe units are read ahead: a body
that ends within them is small, and gets a stripe unit of ``ceil(size / 6)`` so that
all six parts carry data, as a body of declared size does.
"""

from __future__ import annotations

from collections import deque
from collections.abc import AsyncIterable, AsyncIterator, Sequence

import anyio
import attrs
import xxhash
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from ..errors import BodyLengthMismatch, DataLoss, S3liteError
from ..orchestrator import Orchestrator, RoutingView, part_name
from ..streams import single_error
from .checksums import Digester
from .manifest import PartRecord, Segment
from .striping import Layout, pieces, unit_for

PART_QUEUE = 4
"""Batches buffered per destination node before the reader of the body waits."""

SEND_BATCH = 256 * 1024
"""Pieces of one part are gathered up to this many bytes before they are sent: each
send costs a task switch, a write and a syscall whatever its size, so small pieces
(a client's small TCP reads, small stripe units) would make the CPU the bottleneck.
Memory per upload stays under parts x (PART_QUEUE + 1) x SEND_BATCH x destinations."""


@attrs.frozen
class Prepared:
    """A body whose stripe unit is settled: ``chunks`` replays any read-ahead."""

    unit: int
    chunks: AsyncIterator[bytes]


async def prepare(
    chunks: AsyncIterator[bytes], declared: int | None, max_unit: int, parts: int
) -> Prepared:
    """Settle the stripe unit, reading ahead at most ``parts * max_unit`` bytes.

    The read-ahead is kept as a few large pieces, not the body's own chunks: a body
    sent one byte at a time would otherwise cost a Python object (and, replayed from
    the front of a list, a quadratic number of moves) per byte.
    """
    if declared is not None:
        return Prepared(unit_for(declared, max_unit, parts), chunks)
    buffered = _Coalescer()
    async for chunk in chunks:
        buffered.add(chunk)
        if buffered.total > parts * max_unit:
            return Prepared(max_unit, _replay(buffered.pieces(), chunks))
    return Prepared(unit_for(buffered.total, max_unit, parts), _replay(buffered.pieces(), chunks))


class _Coalescer:
    """Gathers small chunks into pieces of about SEND_BATCH bytes, in linear time."""

    def __init__(self) -> None:
        self._done: deque[bytes] = deque()
        self._small: list[bytes] = []
        self._small_size = 0
        self.total = 0

    def add(self, chunk: bytes) -> None:
        self.total += len(chunk)
        self._small.append(chunk)
        self._small_size += len(chunk)
        if self._small_size >= SEND_BATCH:
            self._flush()

    def _flush(self) -> None:
        if self._small:
            self._done.append(self._small[0] if len(self._small) == 1 else b"".join(self._small))
            self._small, self._small_size = [], 0

    def pieces(self) -> deque[bytes]:
        self._flush()
        return self._done


async def _replay(buffered: deque[bytes], rest: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    while buffered:
        yield buffered.popleft()
    async for chunk in rest:
        yield chunk


@attrs.define
class SegmentWriter:
    """Writes one segment: six parts, each to the node(s) routing names for it."""

    orchestrator: Orchestrator
    view: RoutingView
    upload_id: str
    number: int
    sectors: Sequence[int]
    unit: int
    digester: Digester = attrs.field(factory=lambda: Digester(None))
    """Sees every byte of the body in order (MD5 and any checksum asked for)."""
    size: int = attrs.field(init=False, default=0)
    _hashers: list[xxhash.xxh3_64] = attrs.field(init=False, factory=list)
    _stored: dict[int, int] = attrs.field(init=False, factory=dict)

    async def write(self, chunks: AsyncIterable[bytes], declared: int | None) -> Segment:
        """Store every byte of ``chunks``; raises BodyLengthMismatch (after the writers
        stop) if the total differs from ``declared``."""
        self._hashers = [xxhash.xxh3_64() for _ in self.sectors]
        senders: list[list[MemoryObjectSendStream[bytes]]] = []
        try:
            with single_error():
                async with anyio.create_task_group() as group:
                    senders = [self._start_part(group, i) for i in range(len(self.sectors))]
                    try:
                        await self._deal(chunks, declared, senders)
                    except BaseException:
                        # Closing the channels now would end every part cleanly and its
                        # node would commit it, truncated. Cancel the writers instead:
                        # their nodes see an aborted body and keep nothing.
                        group.cancel_scope.cancel()
                        raise
                    _close(senders)  # the clean end of every part
        finally:
            _close(senders)  # after a failure: only once no writer is left to see it
        layout = Layout(self.size, self.unit, len(self.sectors))
        records = []
        for index, sector in enumerate(self.sectors):
            expected = layout.part_length(index)
            if self._stored.get(index) != expected:
                raise DataLoss(
                    f"part {index} of upload {self.upload_id}: a node stored "
                    f"{self._stored.get(index)} bytes, {expected} were sent"
                )
            records.append(PartRecord(index, sector, expected, self._hashers[index].intdigest()))
        return Segment(
            self.number,
            self.size,
            self.unit,
            tuple(records),
            upload_id=self.upload_id,
            md5=self.digester.md5.hexdigest(),
        )

    def _start_part(
        self, group: anyio.abc.TaskGroup, index: int
    ) -> list[MemoryObjectSendStream[bytes]]:
        sector = self.sectors[index]
        name = part_name(self.upload_id, self.number, index)
        senders = []
        owner, *recipients = self.view.write_owners(sector)
        send, receive = anyio.create_memory_object_stream[bytes](PART_QUEUE)
        group.start_soon(self._put, owner, sector, name, index, receive)
        senders.append(send)
        for recipient in recipients:
            send, receive = anyio.create_memory_object_stream[bytes](PART_QUEUE)
            group.start_soon(self._put_copy, recipient, sector, name, receive)
            senders.append(send)
        return senders

    async def _put(
        self,
        node_id: str,
        sector: int,
        name: str,
        index: int,
        receive: MemoryObjectReceiveStream[bytes],
    ) -> None:
        """Write the part to the node that serves it: the upload depends on it."""
        with receive:
            stat = await self.orchestrator.client(node_id).put_part(sector, name, receive)
        self._stored[index] = stat.length

    async def _put_copy(
        self, node_id: str, sector: int, name: str, receive: MemoryObjectReceiveStream[bytes]
    ) -> None:
        """Write the part to a node joining with its sector. Best effort: the donor's
        copy is the one that counts until the switch, so a failure here only tells the
        orchestrator to copy the sector again; the rest of the part is drained so the
        upload never waits on a channel nobody reads."""
        with receive:
            try:
                await self.orchestrator.client(node_id).put_part(sector, name, receive)
            except S3liteError as exc:
                self.orchestrator.note_dual_write_failure(node_id, exc)
                async for _ in receive:
                    pass

    async def _deal(
        self,
        chunks: AsyncIterable[bytes],
        declared: int | None,
        senders: list[list[MemoryObjectSendStream[bytes]]],
    ) -> None:
        parts = len(self.sectors)
        batches: list[list[bytes]] = [[] for _ in range(parts)]
        batched = [0] * parts

        async def flush(index: int) -> None:
            batch = b"".join(batches[index]) if len(batches[index]) > 1 else batches[index][0]
            batches[index].clear()
            batched[index] = 0
            for sender in senders[index]:
                await sender.send(batch)

        async for chunk in chunks:
            start = self.size
            if declared is not None and start + len(chunk) > declared:
                raise BodyLengthMismatch(declared=declared, received=start + len(chunk))
            self.digester.update(chunk)
            self.size += len(chunk)
            position = 0
            for index, length in pieces(self.unit, start, start + len(chunk) - 1, parts):
                piece = chunk if length == len(chunk) else chunk[position : position + length]
                position += length
                self._hashers[index].update(piece)
                batches[index].append(piece)
                batched[index] += length
                if batched[index] >= SEND_BATCH:
                    await flush(index)
        if declared is not None and self.size != declared:
            raise BodyLengthMismatch(declared=declared, received=self.size)
        for index in range(parts):
            if batches[index]:
                await flush(index)


def _close(senders: list[list[MemoryObjectSendStream[bytes]]]) -> None:
    for destinations in senders:
        for sender in destinations:
            sender.close()
