"""The healthy read path: join a segment's data parts back into its bytes, in order.

Reads are pulled, not pushed: the joiner asks part ``p`` for exactly the bytes of the
next stripe unit, so nothing is buffered beyond one chunk per part. The parts still
stream in parallel: each node keeps sending into its connection (the kernel's socket
buffers) while the joiner drains the others. Nothing is decoded: the data parts are
the segment's bytes (the parity parts are read only by degraded.py).

Every block a node sends was verified by the node against its checksum before it
was sent. A part read whole is also hashed on the way through and checked against
the manifest when it ends; a mismatch, or a part that runs long, raises
ChecksumMismatch/DataLoss instead of returning wrong bytes. A part that fails while
streaming (its node goes away, a block turns out damaged, it ends early) raises
:class:`PartFailed`, which the caller (fetch.py) answers by reading around the part
from parity, starting at the first byte not yet sent.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator, Mapping

import xxhash

from ..buffers import Buffer
from ..errors import ChecksumMismatch, DataLoss, S3liteError
from ..transport.base import ByteStream
from .manifest import Segment


class PartFailed(Exception):
    """Part ``index`` of the segment being read failed mid-stream with ``error``; the
    bytes it sent so far were verified, the rest must come from elsewhere. Internal to
    the read path: callers of the object API never see it."""

    def __init__(self, index: int, error: S3liteError) -> None:
        super().__init__(f"part {index}: {error}")
        self.index = index
        self.error = error


class PartReader:
    """Hands out exact byte counts from one part stream, hashing what passes."""

    def __init__(self, name: str, stream: ByteStream, checksum: int | None, index: int = 0) -> None:
        self.name = name
        self.index = index
        self._stream = stream
        self._left: Buffer = b""
        self._checksum = checksum
        self._hasher = xxhash.xxh3_64() if checksum is not None else None

    async def _next(self, length: int) -> Buffer:
        try:
            return await anext(self._stream)
        except StopAsyncIteration:
            error = DataLoss(f"part {self.name} ended {length} bytes early")
            raise PartFailed(self.index, error) from None
        except S3liteError as exc:
            raise PartFailed(self.index, exc) from exc

    async def read(self, length: int) -> AsyncIterator[Buffer]:
        """Yield exactly ``length`` bytes; raises PartFailed if the part ends first or
        its stream fails."""
        while length:
            chunk = self._left or await self._next(length)
            if len(chunk) > length:
                chunk, self._left = chunk[:length], chunk[length:]
            else:
                self._left = b""
            if self._hasher is not None:
                self._hasher.update(chunk)
            length -= len(chunk)
            yield chunk

    async def take(self, length: int) -> bytes:
        """Exactly ``length`` bytes as one buffer (PartFailed as :meth:`read`)."""
        pieces = [chunk async for chunk in self.read(length)]
        return pieces[0] if len(pieces) == 1 and isinstance(pieces[0], bytes) else b"".join(pieces)

    async def finish(self) -> None:
        """Check that the part ended where expected and, if read whole, its checksum:
        ChecksumMismatch or DataLoss if not (the part's bytes are not the recorded
        ones); PartFailed if its stream fails at the very end."""
        if self._left:
            raise DataLoss(f"part {self.name} is longer than its manifest says")
        try:
            await anext(self._stream)
        except StopAsyncIteration:
            pass
        except S3liteError as exc:
            raise PartFailed(self.index, exc) from exc
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
) -> AsyncGenerator[Buffer, None]:
    """The bytes start..end (inclusive) of ``segment``, read from the open ``readers``
    (one per data part the range touches). Closes the readers when done or abandoned.

    Each part is checked as soon as its last byte has been read, and the last chunk
    is held back until every part has passed: a damaged part can cut a response
    short, but never let it end as if it were whole.
    """
    layout = segment.layout
    remaining = {}
    for index in readers:
        span = layout.part_span(index, start, end)
        remaining[index] = 0 if span is None else span[1] - span[0] + 1
    held: Buffer | None = None
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
