"""Starting the write-back of a file's dirty pages early, without waiting for it.

A part is made durable by one fsync at commit. Left to itself, Linux keeps a part's
whole body in the page cache until then (background write-back starts only once 10%
of memory is dirty, or after 30 s), so every node of an upload flushes its part at the
same moment, after the last byte, while the client waits for its answer: with 1 GiB
uploaded, about 2 s of an otherwise idle machine on this VM. Asking the kernel to
start writing each few MiB as they are written (``sync_file_range`` with
``SYNC_FILE_RANGE_WRITE``, as RocksDB's ``bytes_per_sync`` and PostgreSQL's
``backend_flush_after`` do) overlaps the disk with the transfer and leaves the fsync
almost nothing to do. It promises nothing about durability: the fsync still does.

Python's ``os`` has no ``sync_file_range``; it is called through ctypes, and where
the C library lacks it (not Linux) :func:`start_writeback` does nothing.
"""

from __future__ import annotations

import ctypes

from ..libc import libc_function

SYNC_FILE_RANGE_WRITE = 2
"""Start writing the range's dirty pages; do not wait for them (linux/fs.h)."""

WRITEBACK_AFTER = 8 << 20
"""Bytes written to a file between two requests to start its write-back."""

_SYNC_FILE_RANGE = libc_function(
    "sync_file_range", [ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint]
)


def start_writeback(fd: int, offset: int, length: int) -> bool:
    """Ask the kernel to start writing bytes ``offset .. offset + length - 1`` of
    ``fd`` to disk; False where that cannot be asked (or the kernel refused: the
    fsync will write them anyway, so a refusal is not an error)."""
    if _SYNC_FILE_RANGE is None or length <= 0:
        return False
    return bool(_SYNC_FILE_RANGE(fd, offset, length, SYNC_FILE_RANGE_WRITE) == 0)
