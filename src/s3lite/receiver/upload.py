"""The write path: cut a stream into six data parts, compute the parity parts, and
store them all in parallel.

Incoming chunks are dealt to the six data parts in stripe units (striping.py). Rows
of units are handled in *groups*: a group is one stripe row, or as many rows as make
about ``SEND_BATCH`` bytes per part when units are small. Once a part's share of a
group is complete it is joined into one batch, hashed (xxh3, for the manifest) and
sent to the part's writer through a bounded channel, so a slow node slows the upload
instead of filling memory. Once the six data batches of a group are out, the
group's parity batches are computed with the erasure code (in a worker thread for
all but tiny groups: ISA-L releases the GIL) and sent to the parity parts' writers.
Because Reed-Solomon works byte by byte, the parity of a group of rows is the code
applied to the six data batches at once; the last group's short batches are padded
with zeros to the length of batch 0 (the spec's padding of the last row). Memory is
one group being gathered plus the channels (``PART_QUEUE`` batches of ``SEND_BATCH``
bytes per destination, fewer when batches are larger).

Every part writer streams straight into ``NodeClient.put_part``; a part whose sector
is moving is written to the donor and to the new node at once (dual write).

A writer whose node fails (unreachable, timed out, out of space) does not fail the
upload while six parts can still be stored: it drains its channel and the part is
recorded ``missing`` (manifest.py), with the length and checksum it should have, for
the healer. Once more parts failed than the segment has parity parts, the upload is
abandoned at once. Abandoning never leaves a part behind on a node that answers:
every writer's body is ended with :class:`UploadAborted` (so its node discards what
it got), and every writer's ``put_part`` is waited for (bounded) before the caller
deletes the parts; cancelling a writer instead could let a node commit a body it had
received in full after the delete.

If a segment's size is not declared, up to six stripe units are read ahead: a body
that ends within them is small, and gets a stripe unit of ``ceil(size / 6)`` so that
all six parts carry data, as a body of declared size does.
"""

from __future__ import annotations

import functools
from collections import deque
from collections.abc import AsyncIterable, AsyncIterator, Callable, Sequence

import anyio
import anyio.to_thread
import attrs
import xxhash
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from ..erasure import DATA_UNITS, Codec, codec
from ..errors import (
    BodyLengthMismatch,
    DataLoss,
    DiskFull,
    PartsUnavailable,
    S3liteError,
)
from ..orchestrator import Orchestrator, RoutingView, part_name
from ..orchestrator.placement import place_parts, segment_parity
from ..streams import single_error
from ..transport.base import PartStat
from .checksums import Digester
from .healing import HealQueue, HealReason
from .manifest import STANDARD, PartRecord, Segment
from .striping import Layout, pieces, unit_for

PART_QUEUE = 4
"""Batches buffered per destination node before the reader of the body waits."""

SEND_BATCH = 256 * 1024
"""Pieces of one part are gathered up to about this many bytes before they are sent
(a group of rows, see the module doc): each send costs a task switch, a write and a
syscall whatever its size, so small pieces (a client's small TCP reads, small stripe
units) would make the CPU the bottleneck."""

HASH_BATCH = 1 << 20
"""Bytes of the body hashed per hop to the worker thread (OrderedHasher)."""

INLINE_ENCODE = 64 * 1024
"""Groups whose batches are at most this long are encoded on the event loop: the code
takes microseconds there, less than a hop to a worker thread."""

ABORT_GRACE = 30.0
"""Longest an abandoned upload waits for its writers' nodes to answer (each is bounded
by the transport's own timeouts well before this) before it stops waiting."""


class UploadAborted(S3liteError):
    """Ends the body of a part whose upload was abandoned, so its node keeps nothing;
    never reaches a caller of the object API."""


@attrs.frozen
class Prepared:
    """A body whose stripe unit is settled: ``chunks`` replays any read-ahead."""

    unit: int
    chunks: AsyncIterator[bytes]
    size: int | None = None
    """The body's size when known: declared, or read ahead to its end."""


async def prepare(
    chunks: AsyncIterator[bytes], declared: int | None, max_unit: int, parts: int
) -> Prepared:
    """Settle the stripe unit, reading ahead at most ``parts * max_unit`` bytes.

    The read-ahead is kept as a few large pieces, not the body's own chunks: a body
    sent one byte at a time would otherwise cost a Python object (and, replayed from
    the front of a list, a quadratic number of moves) per byte.
    """
    if declared is not None:
        return Prepared(unit_for(declared, max_unit, parts), chunks, declared)
    buffered = _Coalescer()
    async for chunk in chunks:
        buffered.add(chunk)
        if buffered.total > parts * max_unit:
            return Prepared(max_unit, _replay(buffered.pieces(), chunks))
    unit = unit_for(buffered.total, max_unit, parts)
    return Prepared(unit, _replay(buffered.pieces(), chunks), buffered.total)


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


def place_segment(
    orchestrator: Orchestrator, view: RoutingView, key: str, upload_id: str, storage_class: str
) -> tuple[int, tuple[int, ...]]:
    """The parity ``storage_class`` asks for, and the sectors of segment 0's parts:
    six data parts plus as many parity parts as writable nodes allow (placement.py;
    NotEnoughNodes or InsufficientCapacity when fewer than six nodes can take one)."""
    target = orchestrator.target_parity if storage_class == STANDARD else 0
    liveness = orchestrator.liveness
    rings = view.placement_rings
    parity = segment_parity(rings, target, liveness.is_up, liveness.is_writable, orchestrator.label)
    sectors = place_parts(
        rings, key, upload_id, 0, DATA_UNITS + parity, is_writable=liveness.is_writable
    )
    return target, sectors


def report_written(
    heal: HealQueue,
    view: RoutingView,
    segment: Segment,
    failed: dict[int, str],
    target: int,
) -> None:
    """Queue a committed segment for the healer if it is short of what it should have:
    parts recorded missing, or less parity than its class asks for because nodes were
    down or full. (A cluster with fewer than ``6 + target`` nodes writes less parity
    by design; the healer raises those segments after a join, not from this queue.)"""
    if failed:
        detail = ", ".join(f"part {index} on {node}" for index, node in sorted(failed.items()))
        heal.report(segment.upload_id, segment.number, HealReason.MISSING, detail)
    big_enough = min(len(ring.nodes) for ring in view.placement_rings) >= DATA_UNITS + target
    if segment.parity < target and big_enough:
        heal.report(
            segment.upload_id,
            segment.number,
            HealReason.LOW_PARITY,
            f"written with parity {segment.parity} of {target}: nodes down or full",
        )


@attrs.define
class SegmentWriter:
    """Writes one segment: six data parts plus ``len(sectors) - 6`` parity parts, each
    to the node(s) routing names for it."""

    orchestrator: Orchestrator
    view: RoutingView
    upload_id: str
    number: int
    sectors: Sequence[int]
    """One sector per part: data parts 0..5, then the parity parts."""
    unit: int
    digester: Digester = attrs.field(factory=lambda: Digester(None))
    """Sees every byte of the body in order (MD5 and any checksum asked for)."""
    expected_size: int | None = attrs.field(kw_only=True, default=None)
    """The segment's size if known before its body is read (a declared length): each
    part is then sent with its length (put_part ``length``)."""
    send_batch: int = attrs.field(kw_only=True, default=SEND_BATCH)
    """Bytes per part a group of rows gathers (SEND_BATCH; tests make it small)."""
    size: int = attrs.field(init=False, default=0)
    _hashers: list[xxhash.xxh3_64] = attrs.field(init=False, factory=list)
    _stored: dict[int, int] = attrs.field(init=False, factory=dict)
    _failed: dict[int, tuple[str, S3liteError]] = attrs.field(init=False, factory=dict)
    """Part index -> (node, error) of the writers whose node failed."""
    _aborted: bool = attrs.field(init=False, default=False)
    _writers: list[anyio.CancelScope] = attrs.field(init=False, factory=list)
    _dealing: anyio.CancelScope = attrs.field(init=False, factory=anyio.CancelScope)

    @property
    def parity(self) -> int:
        return len(self.sectors) - DATA_UNITS

    @property
    def failed_nodes(self) -> dict[int, str]:
        """Part index -> node, for the parts recorded missing."""
        return {index: node for index, (node, _) in self._failed.items()}

    async def write(self, chunks: AsyncIterable[bytes], declared: int | None) -> Segment:
        """Store every byte of ``chunks``; raises BodyLengthMismatch (after the writers
        stop) if the total differs from ``declared``, and the first node failure when
        fewer than six parts could be stored. Whatever it raises, no writer is still
        running and no node keeps a part it was still receiving."""
        self._hashers = [xxhash.xxh3_64() for _ in self.sectors]
        senders: list[list[MemoryObjectSendStream[bytes]]] = []
        try:
            with single_error():
                async with anyio.create_task_group() as group:
                    senders = [self._start_part(group, i) for i in range(len(self.sectors))]
                    try:
                        await self._deal_or_stop(chunks, declared, senders)
                    except BaseException:
                        self._abort()
                        raise
                    finally:
                        _close(senders)  # the end of every part: clean unless aborted
        finally:
            _close(senders)
        if len(self._stored) < DATA_UNITS:
            raise self._too_few_parts()
        return self._segment()

    async def _deal_or_stop(
        self,
        chunks: AsyncIterable[bytes],
        declared: int | None,
        senders: list[list[MemoryObjectSendStream[bytes]]],
    ) -> None:
        """Deal the body, unless too many writers fail first (they cancel the deal)."""
        with self._dealing:
            async with anyio.create_task_group() as group:
                hasher = OrderedHasher(self.digester, group)
                await self._deal(chunks, declared, senders, hasher)
                await hasher.finish()
        if self._dealing.cancelled_caught:
            raise self._too_few_parts()

    def _segment(self) -> Segment:
        layout = Layout(self.size, self.unit, DATA_UNITS)
        records = []
        for index, sector in enumerate(self.sectors):
            # a parity part is as long as data part 0 (each row's parity unit is as
            # long as the row's unit 0)
            expected = layout.part_length(index if index < DATA_UNITS else 0)
            missing = index in self._failed
            if not missing and self._stored.get(index) != expected:
                raise DataLoss(
                    f"part {index} of upload {self.upload_id}: a node stored "
                    f"{self._stored.get(index)} bytes, {expected} were sent"
                )
            checksum = self._hashers[index].intdigest()
            records.append(PartRecord(index, sector, expected, checksum, missing))
        return Segment(
            self.number,
            self.size,
            self.unit,
            tuple(records),
            upload_id=self.upload_id,
            parity=self.parity,
            md5=self.digester.md5.hexdigest(),
        )

    def _too_few_parts(self) -> S3liteError:
        """The error of an upload that could not store six parts: DiskFull (507) if
        every failure was a full node, else PartsUnavailable (503) naming the nodes."""
        errors = [error for _, error in self._failed.values()]
        if errors and all(isinstance(error, DiskFull) for error in errors):
            return errors[0]
        nodes = sorted({node for node, _ in self._failed.values()})
        reasons = "; ".join(str(error) for _, error in self._failed.values())
        return PartsUnavailable(
            nodes, f"fewer than {DATA_UNITS} parts of the upload could be stored ({reasons})"
        )

    def _abort(self) -> None:
        """Abandon the upload: every body still open ends with UploadAborted (once
        the senders are closed), and no writer waits longer than ABORT_GRACE."""
        self._aborted = True
        deadline = anyio.current_time() + ABORT_GRACE
        for scope in self._writers:
            scope.deadline = min(scope.deadline, deadline)

    def _start_part(
        self, group: anyio.abc.TaskGroup, index: int
    ) -> list[MemoryObjectSendStream[bytes]]:
        sector = self.sectors[index]
        name = part_name(self.upload_id, self.number, index)
        senders = []
        depth = max(1, PART_QUEUE * self.send_batch // self._batch_size)
        for number, node_id in enumerate(self.view.write_owners(sector)):
            send, receive = anyio.create_memory_object_stream[bytes](depth)
            put = functools.partial(self._put, primary=number == 0)
            group.start_soon(put, node_id, sector, name, index, receive)
            senders.append(send)
        return senders

    def _length(self, index: int) -> int | None:
        """Part ``index``'s length, when the segment's size is known in advance."""
        if self.expected_size is None:
            return None
        layout = Layout(self.expected_size, self.unit, DATA_UNITS)
        return layout.part_length(index if index < DATA_UNITS else 0)

    @property
    def _group_rows(self) -> int:
        return max(1, self.send_batch // self.unit)

    @property
    def _batch_size(self) -> int:
        return self._group_rows * self.unit

    def _body(self, receive: MemoryObjectReceiveStream[bytes]) -> AsyncIterator[bytes]:
        return held_back(receive, lambda: self._aborted, f"upload {self.upload_id} was abandoned")

    async def _put(
        self,
        node_id: str,
        sector: int,
        name: str,
        index: int,
        receive: MemoryObjectReceiveStream[bytes],
        *,
        primary: bool,
    ) -> None:
        """Write the part to a node routing names for it. The node that serves the
        sector (``primary``) counts: a failure records the part missing. A node
        joining with the sector is best effort: the donor's copy is the one that
        counts until the switch, so a failure there only tells the orchestrator to
        copy the sector again."""
        outcome = await self._send(node_id, sector, name, index, receive)
        if isinstance(outcome, S3liteError):
            if primary:
                self._part_failed(index, node_id, outcome)
            else:
                self.orchestrator.note_dual_write_failure(node_id, outcome)
        elif outcome is not None and primary:
            self._stored[index] = outcome.length

    def _part_failed(self, index: int, node_id: str, error: S3liteError) -> None:
        self._failed[index] = (node_id, error)
        if len(self._failed) > self.parity:
            self._dealing.cancel()  # six parts can no longer be stored: stop now

    async def _send(
        self,
        node_id: str,
        sector: int,
        name: str,
        index: int,
        receive: MemoryObjectReceiveStream[bytes],
    ) -> PartStat | S3liteError | None:
        """Stream one part to one node: what it stored, why it failed (the rest of the
        part is then drained, so the dealer never waits on a part nobody writes), or
        None if the upload was abandoned. Shielded from cancellation (an abandoned
        upload ends the body instead, see _abort), so this returns only once the node
        has answered, given up or timed out."""
        outcome: PartStat | S3liteError | None = None
        with anyio.CancelScope(shield=True) as scope, receive:
            self._writers.append(scope)
            try:
                outcome = await self.orchestrator.client(node_id).put_part(
                    sector, name, self._body(receive), length=self._length(index)
                )
            except UploadAborted:
                pass
            except S3liteError as exc:
                outcome = exc
                async for _ in receive:
                    pass
        return outcome

    async def _deal(
        self,
        chunks: AsyncIterable[bytes],
        declared: int | None,
        senders: list[list[MemoryObjectSendStream[bytes]]],
        hasher: OrderedHasher,
    ) -> None:
        """Deal the body to the data parts, group by group, and send each group's
        parity once its data is out."""
        unit = self.unit
        row_bytes = unit * DATA_UNITS
        group_rows = self._group_rows
        encoder = codec(self.parity) if self.parity else None
        pending: list[list[bytes | memoryview]] = [[] for _ in range(DATA_UNITS)]
        batches: list[bytes] = [b""] * DATA_UNITS

        async def send(index: int, batch: bytes) -> None:
            self._hashers[index].update(batch)
            for sender in senders[index]:
                await sender.send(batch)

        async def flush(index: int) -> None:
            gathered = pending[index]
            batch = gathered[0] if len(gathered) == 1 else b"".join(gathered)
            if not isinstance(batch, bytes):
                batch = bytes(batch)
            gathered.clear()
            batches[index] = batch
            await send(index, batch)

        async def send_parity() -> None:
            if encoder is not None and batches[0]:
                for offset, parity in enumerate(await encode_parity(encoder, batches)):
                    await send(DATA_UNITS + offset, parity)
            batches[:] = [b""] * DATA_UNITS

        async for chunk in chunks:
            start = self.size
            if declared is not None and start + len(chunk) > declared:
                raise BodyLengthMismatch(declared=declared, received=start + len(chunk))
            await hasher.add(chunk)
            self.size += len(chunk)
            view = memoryview(chunk)
            position = 0
            for index, length in pieces(unit, start, start + len(chunk) - 1, DATA_UNITS):
                piece = chunk if length == len(chunk) else view[position : position + length]
                position += length
                pending[index].append(piece)
                end = start + position
                if end % unit == 0 and ((end - 1) // row_bytes) % group_rows == group_rows - 1:
                    await flush(index)  # the part's share of this group is complete
                    if index == DATA_UNITS - 1:
                        await send_parity()
        if declared is not None and self.size != declared:
            raise BodyLengthMismatch(declared=declared, received=self.size)
        if any(pending) or any(batches):  # the last group, incomplete
            for index in range(DATA_UNITS):
                if pending[index]:
                    await flush(index)
            await send_parity()


async def held_back(
    receive: MemoryObjectReceiveStream[bytes], aborted: Callable[[], bool], why: str
) -> AsyncIterator[bytes]:
    """A part's body: its batches, ending with UploadAborted(``why``) if ``aborted()``
    once they are all in. The last batch is held back until the body is known to end
    well: a node that had every byte could commit the part (its length is known to
    it) even though the write was abandoned after. (The healer's rebuild too.)"""
    held: bytes | None = None
    async for batch in receive:
        if held is not None:
            yield held
        held = batch
    if aborted():
        raise UploadAborted(why)
    if held is not None:
        yield held


class OrderedHasher:
    """Feeds the body to the digester (the ETag's MD5, any checksum asked for) in a
    worker thread, a batch at a time and in order, while the event loop goes on
    dealing: MD5 is about half of the gateway's work per byte, and hashlib releases
    the GIL, so on a second core it costs the upload no time. One batch is hashed
    while the next gathers; a small body is hashed on the loop at the end."""

    def __init__(self, digester: Digester, group: anyio.abc.TaskGroup) -> None:
        self._digester = digester
        self._group = group
        self._gathered: list[bytes] = []
        self._size = 0
        self._idle = anyio.Event()
        self._idle.set()

    async def add(self, chunk: bytes) -> None:
        self._gathered.append(chunk)
        self._size += len(chunk)
        if self._size >= HASH_BATCH:
            await self._idle.wait()  # the previous batch first: digests are ordered
            batch, self._gathered, self._size = self._gathered, [], 0
            self._idle = anyio.Event()
            self._group.start_soon(self._hash, batch, self._idle)

    async def _hash(self, batch: list[bytes], done: anyio.Event) -> None:
        try:
            await anyio.to_thread.run_sync(self._update, batch)
        finally:
            done.set()

    def _update(self, batch: list[bytes]) -> None:
        for chunk in batch:
            self._digester.update(chunk)

    async def finish(self) -> None:
        """Hash what is left; the digester is complete once this returns."""
        await self._idle.wait()
        self._update(self._gathered)
        self._gathered, self._size = [], 0


async def encode_parity(codec: Codec, batches: list[bytes]) -> list[bytes]:
    """The parity batches of one group: short data batches (the last row's units)
    padded with zeros to the length of batch 0."""
    length = len(batches[0])
    padded = [b if len(b) == length else b + bytes(length - len(b)) for b in batches]
    if length <= INLINE_ENCODE:
        return codec.encode(padded)
    return await anyio.to_thread.run_sync(codec.encode, padded)


def _close(senders: list[list[MemoryObjectSendStream[bytes]]]) -> None:
    for destinations in senders:
        for sender in destinations:
            sender.close()
