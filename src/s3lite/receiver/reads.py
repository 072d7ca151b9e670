"""Reading an object: segment after segment, with the memory of one.

A read first *holds* the object's uploads (holds.py) and checks that the key still
means them; from then on an overwrite or a delete cannot delete those part files
until the read is closed, so a long read of a multi-segment object never fails midway
or returns a mix. Only the first segment the range touches is opened before
``open_object`` returns (everything that can fail before the first byte fails
there); each later segment's parts are opened when the previous segment ends, so
memory stays that of one segment's part streams whatever the object's size.

A part that is not where the manifest says (a join re-homed it after the manifest
was read) is looked up again in the store and reopened.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Awaitable, Callable, Mapping, Sequence

import anyio
import attrs

from ..errors import DataLoss, InvalidRange, PartNotFound
from ..orchestrator import Orchestrator, RoutingView, part_name
from ..streams import single_error
from .download import PartReader, join_segment
from .manifest import Manifest, ObjectInfo, Segment
from .manifest_store import ManifestStore

OPEN_ATTEMPTS = 8
"""Times a segment's parts are looked up again when one is not where the manifest said
(a join can re-home up to five parts of one segment), and times a read starts over
when the key was overwritten between reading its manifest and holding it."""

Piece = tuple[Segment, int, int]
"""A segment and the inclusive range of its bytes a read needs."""


@attrs.frozen
class ObjectRead:
    """An object opened for reading: what it is, which bytes, and the bytes."""

    info: ObjectInfo
    span: tuple[int, int] | None
    """Inclusive range being returned; None for the whole object."""
    chunks: AsyncGenerator[bytes, None]
    _release: Callable[[], Awaitable[None]] | None = None
    _readers: tuple[PartReader, ...] = ()
    """The first segment's part streams: closed here too, because closing a generator
    that never started does not run its clean-up."""
    part_number: int | None = attrs.field(default=None, kw_only=True)
    """The part asked for with ``part_number`` (GET/HEAD ?partNumber=N), else None."""
    part_checksums: Mapping[str, str] = attrs.field(factory=dict, kw_only=True)
    """The checksums of that part as it was uploaded (algorithm -> base64), if any."""

    @property
    def length(self) -> int:
        return self.info.size if self.span is None else self.span[1] - self.span[0] + 1

    async def aclose(self) -> None:
        """Release the part streams and the read's holds, whether or not ``chunks`` was
        read. Call it exactly once (``get_object`` does)."""
        try:
            await self.chunks.aclose()
            for reader in self._readers:
                await reader.aclose()
        finally:
            if self._release is not None:
                await self._release()


def pieces_of(manifest: Manifest, first: int, last: int) -> list[Piece]:
    """The segments holding object bytes first..last, with the range of each."""
    found = []
    for segment, (offset, size) in zip(manifest.segments, manifest.segment_spans(), strict=True):
        end = offset + size - 1
        if size and offset <= last and end >= first:
            found.append((segment, max(first, offset) - offset, min(last, end) - offset))
    return found


def part_span(manifest: Manifest, part_number: int) -> tuple[int, int] | None:
    """The object bytes of part ``part_number`` (None: the part is empty)."""
    offset, size = manifest.segment_spans()[part_number - 1]
    return None if size == 0 else (offset, offset + size - 1)


async def open_segment(
    orchestrator: Orchestrator, manifests: ManifestStore, piece: Piece
) -> dict[int, PartReader]:
    """Open the parts of one segment that hold its bytes first..last, looking the
    segment up again if a part was re-homed since it was read."""
    segment, first, last = piece
    for attempt in range(1, OPEN_ATTEMPTS + 1):
        try:
            return await _open_parts(orchestrator, segment, first, last)
        except PartNotFound as missing:
            fresh = await manifests.segment(segment.upload_id, segment.number)
            if attempt == OPEN_ATTEMPTS or fresh is None or fresh == segment:
                raise DataLoss(
                    f"segment {segment.number} of upload {segment.upload_id} "
                    f"cannot be read: {missing}"
                ) from missing
            segment = fresh
    raise AssertionError("unreachable")


async def stream(
    orchestrator: Orchestrator,
    manifests: ManifestStore,
    pieces: Sequence[Piece],
    first_readers: dict[int, PartReader],
) -> AsyncGenerator[bytes, None]:
    """The bytes of ``pieces`` in order; the first one's parts are already open."""
    readers: dict[int, PartReader] | None = first_readers
    try:
        for number, piece in enumerate(pieces):
            if number:
                readers = await open_segment(orchestrator, manifests, piece)
            segment, first, last = piece
            assert readers is not None
            async for chunk in join_segment(segment, readers, first, last):
                yield chunk
            readers = None
    finally:
        if readers is not None:
            with anyio.CancelScope(shield=True):
                for reader in readers.values():
                    await reader.aclose()


async def _open_parts(
    orchestrator: Orchestrator, segment: Segment, first: int, last: int
) -> dict[int, PartReader]:
    """Open, concurrently, every data part of the segment that holds bytes first..last."""
    layout = segment.layout
    readers: dict[int, PartReader] = {}
    if last < first:
        return readers

    async def open_part(view: RoutingView, index: int, span: tuple[int, int]) -> None:
        part = segment.parts[index]
        name = part_name(segment.upload_id, segment.number, index)
        client = orchestrator.client(view.read_owner(part.sector))
        try:
            stream = await client.get_part(part.sector, name, *span)
        except InvalidRange as exc:
            raise DataLoss(f"part {name} is shorter than its manifest says: {exc}") from exc
        whole = span == (0, part.length - 1)
        readers[index] = PartReader(name, stream, part.checksum if whole else None)

    try:
        with orchestrator.lease() as view, single_error():
            async with anyio.create_task_group() as group:
                for index in range(segment.data_parts):
                    span = layout.part_span(index, first, last)
                    if span is not None:
                        group.start_soon(open_part, view, index, span)
    except BaseException:
        with anyio.CancelScope(shield=True):
            for reader in readers.values():
                await reader.aclose()
        raise
    return readers
