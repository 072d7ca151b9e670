"""The read path: join a segment's parts back into its bytes, in order.

Reads are pulled, not pushed: the joiner asks part ``p`` for exactly the bytes of the
next stripe unit, so nothing is buffered beyond one chunk per part. The parts still
stream in parallel: each node keeps sending into its connection (the kernel's socket
buffers) while the joiner drains the others.

A part read whole is hashed on the way through and checked against the manifest when
it ends; a mismatch, a part that ends early or one that runs long raises
ChecksumMismatch/DataLoss instead of returning wrong bytes.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator, Mapping

import xxhash

from ..errors import ChecksumMismatch, DataLoss
from ..transport.base import ByteStream
from .manifest import Segment


class PartReader:
    """Hands out exact byte counts from one part stream, hashing what passes."""

    def __init__(self, name: str, stream: ByteStream, checksum: int | None) -> None:
        self.name = name
        self._stream = stream
        self._left = b""
        self._checksum = checksum
        self._hasher = xxhash.xxh3_64() if checksum is not None else None

    async def read(self, length: int) -> AsyncIterator[bytes]:
        """Yield exactly ``length`` bytes; raises DataLoss if the part ends first."""
        while length:
            chunk = self._left
            if not chunk:
                try:
                    chunk = await anext(self._stream)
                except StopAsyncIteration:
                    raise DataLoss(f"part {self.name} ended {length} bytes early") from None
            if len(chunk) > length:
                chunk, self._left = chunk[:length], chunk[length:]
            else:
                self._left = b""
            if self._hasher is not None:
                self._hasher.update(chunk)
            length -= len(chunk)
            yield chunk

    async def finish(self) -> None:
        """Check that the part ended where expected and, if read whole, its checksum."""
        if self._left:
            raise DataLoss(f"part {self.name} is longer than its manifest says")
        try:
            await anext(self._stream)
        except StopAsyncIteration:
            pass
        else:
            raise DataLoss(f"part {self.name} is longer than its manifest says")
        if self._hasher is not None and self._hasher.intdigest() != self._checksum:
            raise ChecksumMismatch(
                f"part {self.name} does not match its checksum: expected "
                f"{self._checksum:016x}, read {self._hasher.intdigest():016x}"
            )

    async def aclose(self) -> None:
        await self._stream.aclose()


async def join_segment(
    segment: Segment, readers: Mapping[int, PartReader], start: int, end: int
) -> AsyncGenerator[bytes, None]:
    """The bytes start..end (inclusive) of ``segment``, read from the open ``readers``
    (one per part the range touches). Closes the readers when done or abandoned.

    Each part is checked as soon as its last byte has been read, and the last chunk
    is held back until every part has passed: a damaged part can cut a response
    short, but never let it end as if it were whole.
    """
    layout = segment.layout
    remaining = {}
    for index in readers:
        span = layout.part_span(index, start, end)
        remaining[index] = 0 if span is None else span[1] - span[0] + 1
    held: bytes | None = None
    try:
        for index, length in layout.pieces(start, end):
            async for chunk in readers[index].read(length):
                if held is not None:
                    yield held
                held = chunk
            remaining[index] -= length
            if not remaining[index]:
                await readers[index].finish()
        if held is not None:
            yield held
    finally:
        for reader in readers.values():
            await reader.aclose()
