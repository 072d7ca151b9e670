"""The write path: cut a stream into six data parts, compute the parity parts, and
store them all in parallel.

Incoming chunks are dealt to the six data parts in stripe units (striping.py). Rows
of units are handled in *groups*: a group is one stripe row, or as many rows as make
about ``SEND_BATCH`` bytes per part when units are small. Once a part's share of a
group is complete it is one batch: the pieces of the body's chunks it is made of
(memoryviews, not joined: a copy of every byte costs about as much CPU as all the
dealing's Python; only many small pieces are joined, MAX_PIECES), hashed (xxh3, for
the manifest) and sent to the part's writer through a bounded channel, so a slow node
slows the upload instead of filling memory. Once the six data batches of a group are
out, the group's parity batches are computed with the erasure code (in a worker
thread for all but tiny groups: ISA-L releases the GIL) from the pieces themselves,
and sent to the parity parts' writers. Because Reed-Solomon works byte by byte, the
parity of a group of rows is the code applied to the six data batches at once; the
last group's short batches count as padded with zeros to the length of batch 0 (the
spec's padding of the last row; no padding is made). Memory is
one group being gathered plus the channels (``PART_QUEUE`` batches of ``SEND_BATCH``
bytes per destination, fewer when batches are larger).

The parts are streamed to their nodes by a PartSender (part_sender.py: one writer per
node routing names for the part, dual writes included, and abandoning that leaves
nothing behind). A part whose node fails (unreachable, timed out, out of space) does
not fail the upload while six parts can still be stored: the part is recorded
``missing`` (manifest.py), with the length and checksum it should have, for the
healer. Once more parts failed than the segment has parity parts, the upload is
abandoned at once.

If a segment's size is not declared, up to six stripe units are read ahead: a body
that ends within them is small, and gets a stripe unit of ``ceil(size / 6)`` so that
all six parts carry data, as a body of declared size does.
"""

from __future__ import annotations

from collections import deque
from collections.abc import AsyncIterable, AsyncIterator, Sequence

import anyio
import anyio.to_thread
import attrs

from ..buffers import Buffer
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
from .checksums import Digester, Hasher
from .healing import HealQueue, HealReason
from .manifest import STANDARD, PartRecord, Segment
from .part_sender import PART_QUEUE, PartSender, PartTarget
from .striping import Layout, pieces, unit_for

SEND_BATCH = 256 * 1024
"""Pieces of one part are gathered up to about this many bytes before they are sent
(a group of rows, see the module doc): each send costs a task switch, a write and a
syscall whatever its size, so small pieces (a client's small TCP reads, small stripe
units) would make the CPU the bottleneck."""

HASH_BATCH = 8 << 20
"""Bytes of the body hashed per hop to the worker thread (OrderedHasher). Each hop
costs far more than its bookkeeping (the thread wakes, the GIL and the chunks move
between cores): hashing 1 GiB in hops of 1, 4 and 8 MiB cost 0.28, 0.15 and 0.04
CPU-s more than in one go. Memory: HASH_DEPTH + 1 batches of chunks per upload at
most."""

HASH_DEPTH = 2
"""Batches handed to the hashing threads and not hashed yet before the loop waits: with
one, a thread held up for a moment (two cores, a dozen busy threads) stopped the deal.
7 alternated pairs of 1 GiB uploads (both orders, two of each kind per run), 1 -> 3:
medians unsigned 253 -> 263 MB/s, signed 231 -> 239 MB/s. With the gateway's 4 MiB
arenas, 3 took the gateway's peak RSS to 151 MiB in `make bench` (target < 150); 2
holds 8 MiB less per upload: 2 alternated pairs, 3 -> 2: VmHWM 135-142 -> 123-130
MiB, unsigned 311-338 -> 308-323 MB/s, signed 282-303 -> 272-288 MB/s. Memory: that
many batches of chunks, beyond the one gathering."""

INLINE_HASH = 256 * 1024
"""What is left to hash at the end of a body is hashed on the event loop up to this
many bytes (well under a millisecond of MD5), in the worker thread beyond."""

MAX_PIECES = 8
"""A part's share of a group is sent as the pieces the body's chunks were cut into
(memoryviews: no copy) unless there are more than this many: small chunks are then
joined, since every piece costs a write to the node's socket."""

INLINE_ENCODE = 64 * 1024
"""Groups whose batches are at most this long are encoded on the event loop: the code
takes microseconds there, less than a hop to a worker thread."""


@attrs.frozen
class Prepared:
    """A body whose stripe unit is settled: ``chunks`` replays any read-ahead."""

    unit: int
    chunks: AsyncIterator[Buffer]
    size: int | None = None
    """The body's size when known: declared, or read ahead to its end."""


async def prepare(
    chunks: AsyncIterator[Buffer], declared: int | None, max_unit: int, parts: int
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
        self._done: deque[Buffer] = deque()
        self._small: list[Buffer] = []
        self._small_size = 0
        self.total = 0

    def add(self, chunk: Buffer) -> None:
        self.total += len(chunk)
        self._small.append(chunk)
        self._small_size += len(chunk)
        if self._small_size >= SEND_BATCH:
            self._flush()

    def _flush(self) -> None:
        if self._small:
            self._done.append(self._small[0] if len(self._small) == 1 else b"".join(self._small))
            self._small, self._small_size = [], 0

    def pieces(self) -> deque[Buffer]:
        self._flush()
        return self._done


async def _replay(buffered: deque[Buffer], rest: AsyncIterator[Buffer]) -> AsyncIterator[Buffer]:
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
    _sender: PartSender = attrs.field(init=False)
    _dealing: anyio.CancelScope = attrs.field(init=False, factory=anyio.CancelScope)

    def __attrs_post_init__(self) -> None:
        targets = {
            index: PartTarget(
                sector, part_name(self.upload_id, self.number, index), self._length(index)
            )
            for index, sector in enumerate(self.sectors)
        }
        self._sender = PartSender(
            self.orchestrator,
            self.view,
            targets,
            f"upload {self.upload_id} was abandoned",
            depth=max(1, PART_QUEUE * self.send_batch // self._batch_size),
            on_failure=self._part_failed,
        )

    @property
    def parity(self) -> int:
        return len(self.sectors) - DATA_UNITS

    @property
    def failed_nodes(self) -> dict[int, str]:
        """Part index -> node, for the parts recorded missing."""
        return {index: node for index, (node, _) in self._sender.failed.items()}

    async def write(self, chunks: AsyncIterable[Buffer], declared: int | None) -> Segment:
        """Store every byte of ``chunks``; raises BodyLengthMismatch (after the writers
        stop) if the total differs from ``declared``, and the first node failure when
        fewer than six parts could be stored. Whatever it raises, no writer is still
        running and no node keeps a part it was still receiving."""
        await self._sender.run(lambda: self._deal_or_stop(chunks, declared))
        if len(self._sender.stored) < DATA_UNITS:
            raise self._too_few_parts()
        return self._segment()

    async def _deal_or_stop(self, chunks: AsyncIterable[Buffer], declared: int | None) -> None:
        """Deal the body, unless too many parts fail first (they cancel the deal)."""
        with self._dealing:
            async with anyio.create_task_group() as group:
                hasher = OrderedHasher(self.digester, group)
                await self._deal(chunks, declared, hasher)
                await hasher.finish()
        if self._dealing.cancelled_caught:
            raise self._too_few_parts()

    def _segment(self) -> Segment:
        layout = Layout(self.size, self.unit, DATA_UNITS)
        stored, failed = self._sender.stored, self._sender.failed
        records = []
        for index, sector in enumerate(self.sectors):
            # a parity part is as long as data part 0 (each row's parity unit is as
            # long as the row's unit 0)
            expected = layout.part_length(index if index < DATA_UNITS else 0)
            missing = index in failed
            if not missing and stored.get(index) != expected:
                raise DataLoss(
                    f"part {index} of upload {self.upload_id}: a node stored "
                    f"{stored.get(index)} bytes, {expected} were sent"
                )
            checksum = self._sender.checksum(index)
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
        failures = self._sender.failed.values()
        errors = [error for _, error in failures]
        if errors and all(isinstance(error, DiskFull) for error in errors):
            return errors[0]
        nodes = sorted({node for node, _ in failures})
        reasons = "; ".join(str(error) for _, error in failures)
        return PartsUnavailable(
            nodes, f"fewer than {DATA_UNITS} parts of the upload could be stored ({reasons})"
        )

    def _part_failed(self) -> None:
        if len(self._sender.failed) > self.parity:
            self._dealing.cancel()  # six parts can no longer be stored: stop now

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

    async def _deal(
        self, chunks: AsyncIterable[Buffer], declared: int | None, hasher: OrderedHasher
    ) -> None:
        """Deal the body to the data parts, group by group, and send each group's
        parity once its data is out."""
        unit = self.unit
        row_bytes = unit * DATA_UNITS
        group_rows = self._group_rows
        encoder = codec(self.parity) if self.parity else None
        pending: list[list[Buffer]] = [[] for _ in range(DATA_UNITS)]
        batches: list[Sequence[Buffer]] = [()] * DATA_UNITS

        send = self._sender.send

        async def flush(index: int) -> None:
            gathered = pending[index]
            batch = gathered if len(gathered) <= MAX_PIECES else [b"".join(gathered)]
            pending[index] = []
            batches[index] = batch
            await send(index, batch)

        async def send_parity() -> None:
            if encoder is not None and batches[0]:
                for offset, parity in enumerate(await encode_parity(encoder, batches)):
                    await send(DATA_UNITS + offset, (parity,))
            batches[:] = [()] * DATA_UNITS

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


class OrderedHasher:
    """Feeds the body to the digester's hashers (the ETag's MD5, any checksum asked
    for, a signed payload's SHA-256) in worker threads, a batch at a time and in
    order, while the event loop goes on dealing: MD5 is about half of the gateway's
    work per byte, and hashlib releases the GIL, so on a second core it costs the
    upload little time. Each hasher has a thread of its own: with one thread for all,
    a signed upload's SHA-256 waited behind MD5 (6 alternated pairs of 1 GiB signed
    uploads: 224-246 MB/s with one thread, 257-271 MB/s with one per hasher). Up to
    HASH_DEPTH batches are in flight (each waits for the one before it), so the loop
    deals on while a thread is held up; a small rest is hashed on the loop at the
    end."""

    def __init__(self, digester: Digester, group: anyio.abc.TaskGroup) -> None:
        self._digester = digester
        self._group = group
        self._gathered: list[Buffer] = []
        self._size = 0
        self._in_flight: deque[anyio.Event] = deque()

    async def add(self, chunk: Buffer) -> None:
        self._gathered.append(chunk)
        self._size += len(chunk)
        if self._size >= HASH_BATCH:
            while len(self._in_flight) >= HASH_DEPTH:
                await self._in_flight.popleft().wait()
            batch, self._gathered, self._size = self._gathered, [], 0
            previous = self._in_flight[-1] if self._in_flight else None
            done = anyio.Event()
            self._in_flight.append(done)
            self._group.start_soon(self._hash, batch, previous, done)

    async def _hash(
        self, batch: list[Buffer], previous: anyio.Event | None, done: anyio.Event
    ) -> None:
        try:
            if previous is not None:
                await previous.wait()  # digests are ordered
            await self._in_threads(batch)
        finally:
            done.set()

    async def _in_threads(self, batch: list[Buffer]) -> None:
        async with anyio.create_task_group() as group:
            for hasher in self._digester.hashers:
                group.start_soon(anyio.to_thread.run_sync, _feed, hasher, batch)

    async def finish(self) -> None:
        """Hash what is left; the digester is complete once this returns."""
        if self._in_flight:
            await self._in_flight[-1].wait()  # the last waited for every one before it
            self._in_flight.clear()
        batch, self._gathered = self._gathered, []
        if self._size > INLINE_HASH:
            await self._in_threads(batch)
        else:
            for chunk in batch:
                self._digester.update(chunk)
        self._size = 0


def _feed(hasher: Hasher, batch: Sequence[Buffer]) -> None:
    for chunk in batch:
        hasher.update(chunk)


async def encode_parity(codec: Codec, batches: Sequence[Sequence[Buffer]]) -> list[bytes]:
    """The parity batches of one group, each data batch given as its pieces: short
    data batches (the last row's units) count as zero-padded to the length of batch 0."""
    length = sum(len(piece) for piece in batches[0])
    if length <= INLINE_ENCODE:
        return codec.encode_pieces(batches, length)
    return await anyio.to_thread.run_sync(codec.encode_pieces, batches, length)
