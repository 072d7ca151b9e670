"""Reading an object: segment after segment, with the memory of one.

A read first *holds* the object's uploads (holds.py) and checks that the key still
means them; from then on an overwrite or a delete cannot delete those part files
until the read is closed, so a long read of a multi-segment object never fails midway
or returns a mix. Only the first segment the range touches is opened before
``open_object`` returns (everything that can fail before the first byte fails
there); each later segment's parts are opened when the previous segment ends, so
memory stays that of one segment's part streams whatever the object's size.

Each segment is read by a fetch.SegmentFetch: the healthy path while the data
parts it needs are available, the degraded path (decoding from parity) around the
ones that are not, looking the segment up again when a join re-homed a part.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Awaitable, Callable, Mapping, Sequence

import attrs

from ..buffers import Buffer
from .fetch import ReadContext, SegmentFetch
from .manifest import Manifest, ObjectInfo, Segment

OPEN_ATTEMPTS = 8
"""Times a read starts over when the key was overwritten between reading its manifest
and holding it."""

Piece = tuple[Segment, int, int]
"""A segment and the inclusive range of its bytes a read needs."""


@attrs.frozen
class ObjectRead:
    """An object opened for reading: what it is, which bytes, and the bytes."""

    info: ObjectInfo
    span: tuple[int, int] | None
    """Inclusive range being returned; None for the whole object."""
    chunks: AsyncGenerator[Buffer, None]
    _release: Callable[[], Awaitable[None]] | None = None
    _first: SegmentFetch | None = None
    """The first segment's read, opened: closed here too, because closing a generator
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
            if self._first is not None:
                await self._first.aclose()
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


async def open_segment(context: ReadContext, piece: Piece) -> SegmentFetch:
    """Open the read of one segment's bytes first..last (PartsUnavailable if fewer
    than six of its parts can be read)."""
    segment, first, last = piece
    fetch = SegmentFetch(context, segment, first, last)
    await fetch.open()
    return fetch


async def stream(
    context: ReadContext, pieces: Sequence[Piece], first: SegmentFetch | None
) -> AsyncGenerator[Buffer, None]:
    """The bytes of ``pieces`` in order; the first one is already open."""
    fetch = first
    try:
        for number, piece in enumerate(pieces):
            if number:
                fetch = await open_segment(context, piece)
            assert fetch is not None
            async for chunk in fetch.chunks():
                yield chunk
            fetch = None
    finally:
        if fetch is not None:
            await fetch.aclose()
