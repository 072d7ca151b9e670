"""The on-disk format of one part file, and the blocking I/O that reads and writes it.

A part file is a 32-byte header followed by the payload::

    0   magic   b"S3LPART1"
    8   length  u64 little-endian, payload bytes
    16  crc32   u32 little-endian, CRC-32 of the payload
    20  zero    12 bytes reserved

The CRC is the one a zip member of the payload carries, so exporting a sector needs a
single pass over each file. Files are written under a temporary name, fsynced and
renamed into place, so a part file either is complete or does not exist.

Everything here blocks; the storage node calls it from worker threads.
"""

from __future__ import annotations

import errno
import os
import struct
import tempfile
import threading
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

from ..errors import DataLoss, DiskFull, PartNotFound

MAGIC = b"S3LPART1"
HEADER = struct.Struct("<8sQI12x")
HEADER_SIZE = HEADER.size

_DISK_FULL = {errno.ENOSPC, errno.EDQUOT}

Buffer = bytes | bytearray | memoryview


def sector_dir_name(sector: int) -> str:
    return f"{sector:03d}"


def read_header(handle: BinaryIO, path: Path) -> tuple[int, int]:
    """(payload length, crc32) of an open part file positioned at 0; DataLoss if the
    file is not a whole part."""
    raw = handle.read(HEADER_SIZE)
    if len(raw) != HEADER_SIZE:
        raise DataLoss(f"part file {path} is shorter than its header")
    magic, length, crc = HEADER.unpack(raw)
    if magic != MAGIC:
        raise DataLoss(f"part file {path} has a bad magic {magic!r}")
    return length, crc


def open_part(path: Path, node_id: str, sector: int, name: str) -> tuple[BinaryIO, int, int]:
    """Open a part for reading: (file positioned after the header, length, crc32)."""
    try:
        handle = open(path, "rb")  # noqa: SIM115 - returned to the caller, who closes it
    except FileNotFoundError:
        raise PartNotFound(node_id, sector, name) from None
    try:
        length, crc = read_header(handle, path)
    except BaseException:
        handle.close()
        raise
    return handle, length, crc


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def replace(source: Path, target: Path) -> int:
    """Rename ``source`` over ``target``; the size of the file replaced, 0 if none.
    Call with the node's namespace lock held."""
    try:
        replaced = target.stat().st_size
    except FileNotFoundError:
        replaced = 0
    os.replace(source, target)
    return replaced


def disk_full(node_id: str, exc: OSError) -> DiskFull | None:
    """A DiskFull for ``exc`` if it is an out-of-space error, else None."""
    if exc.errno in _DISK_FULL:
        return DiskFull(f"node {node_id!r} is out of space: {exc.strerror}")
    return None


class PartWriter:
    """Writes one part through a temporary file; ``commit`` makes it visible.

    Not thread-safe: one writer is driven by one task, a call at a time.
    """

    def __init__(self, temp_dir: Path, node_id: str, *, fsync: bool) -> None:
        self._node_id = node_id
        self._fsync = fsync
        self.length = 0
        self.crc32 = 0
        fd, temp_name = tempfile.mkstemp(dir=temp_dir, prefix="part-")
        self.temp_path = Path(temp_name)
        self._handle: BinaryIO | None = os.fdopen(fd, "wb", buffering=0)
        try:
            self._checked(self._handle.write, b"\0" * HEADER_SIZE)
        except BaseException:
            self.abort()
            raise

    def _checked(self, write: Callable[[memoryview], int], data: Buffer) -> None:
        try:
            view = memoryview(data)
            while view:
                written = write(view)
                view = view[written:]
        except OSError as exc:
            full = disk_full(self._node_id, exc)
            if full is None:
                raise
            self.abort()
            raise full from exc

    def write(self, data: Buffer) -> None:
        assert self._handle is not None, "write after commit or abort"
        self._checked(self._handle.write, data)
        self.crc32 = zlib.crc32(data, self.crc32)
        self.length += len(data)

    def commit(self, final_path: Path, namespace: threading.Lock) -> int:
        """Seal the header, make the bytes durable and rename into place.

        Returns the size of the file that was replaced (0 if none), for usage accounting;
        ``namespace`` (the node's lock on its file names) makes that size and the rename
        one step, so two writers of one name cannot both see no previous file.
        """
        handle = self._handle
        assert handle is not None, "commit after commit or abort"
        try:
            handle.seek(0)
            self._checked(handle.write, HEADER.pack(MAGIC, self.length, self.crc32))
            if self._fsync:
                os.fsync(handle.fileno())
            handle.close()
            self._handle = None
            with namespace:
                replaced = replace(self.temp_path, final_path)
            if self._fsync:
                fsync_dir(final_path.parent)
        except OSError as exc:
            self.abort()
            full = disk_full(self._node_id, exc)
            if full is not None:
                raise full from exc
            raise
        return replaced

    def abort(self) -> None:
        """Close and remove the temporary file; safe to call more than once."""
        if self._handle is not None:
            self._handle.close()
            self._handle = None
        self.temp_path.unlink(missing_ok=True)
