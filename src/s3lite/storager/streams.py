"""The byte streams a storage node hands out: a part's payload, verified block by block
as it is read, and a part file as stored (for exports). Closing one closes its file;
one dropped unclosed closes it when it is collected."""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable

import anyio
import anyio.lowlevel
import anyio.to_thread

from ..buffers import Buffer
from ..errors import DataLoss
from .partfile import RangeReader

RAW_READ = 1 << 20
"""Bytes per read when streaming a part file as stored."""


class PartStream:
    """A part's payload range: ``first`` (read and verified when the part was opened),
    then the next verified bytes, each from ``read_now`` if it has them (the page
    cache's, read on the event loop: a hop to a worker thread costs more than such a
    read) and else from ``read_more`` (a worker thread, which may wait for the disk),
    until the range is read. ``size`` is known from the start: the range's length."""

    def __init__(
        self,
        reader: RangeReader,
        first: Buffer,
        read_now: Callable[[], Buffer | None],
        read_more: Callable[[], Awaitable[Buffer]],
    ) -> None:
        self._reader = reader
        self._next: Buffer | None = first
        self._read_now = read_now
        self._read_more = read_more
        self._closed = False
        self.size = len(first) + reader.remaining

    def __aiter__(self) -> PartStream:
        return self

    async def __anext__(self) -> Buffer:
        if self._closed:
            raise StopAsyncIteration
        chunk, self._next = self._next, None
        if chunk is None and self._reader.remaining > 0:  # no thread hop to learn the end
            try:
                chunk = self._read_now()
                if chunk is None:
                    chunk = await self._read_more()
                else:
                    await anyio.lowlevel.checkpoint()  # as the thread hop was: let others run
            except BaseException:
                await self.aclose()
                raise
        if not chunk:
            await self.aclose()
            raise StopAsyncIteration
        return chunk

    async def aclose(self) -> None:
        self._closed = True
        self._reader.close()


class FileStream:
    """Streams the first ``size`` bytes of an open file as stored."""

    def __init__(self, fd: int, size: int) -> None:
        self._fd = fd
        self._offset = 0
        self._size = size

    def __aiter__(self) -> FileStream:
        return self

    async def __anext__(self) -> bytes:
        if self._offset >= self._size or self._fd < 0:
            await self.aclose()
            raise StopAsyncIteration
        want = min(RAW_READ, self._size - self._offset)
        chunk = await anyio.to_thread.run_sync(os.pread, self._fd, want, self._offset)
        if not chunk:
            await self.aclose()
            raise DataLoss(f"a part file ended {self._size - self._offset} bytes early")
        self._offset += len(chunk)
        return chunk

    async def aclose(self) -> None:
        self._close()

    def _close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def __del__(self) -> None:
        """A safety net, as for RangeReader: a stream dropped unclosed frees its file."""
        self._close()
