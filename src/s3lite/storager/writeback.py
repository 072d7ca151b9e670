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
import ctypes.util
from collections.abc import Callable

SYNC_FILE_RANGE_WRITE = 2
"""Start writing the range's dirty pages; do not wait for them (linux/fs.h)."""

WRITEBACK_AFTER = 8 << 20
"""Bytes written to a file between two requests to start its write-back."""


def _sync_file_range() -> Callable[[int, int, int, int], int] | None:
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
        function = libc.sync_file_range
    except (OSError, AttributeError):
        return None
    function.argtypes = [ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint]
    function.restype = ctypes.c_int
    return function


_SYNC_FILE_RANGE = _sync_file_range()


def start_writeback(fd: int, offset: int, length: int) -> bool:
    """Ask the kernel to start writing bytes ``offset .. offset + length - 1`` of
    ``fd`` to disk; False where that cannot be asked (or the kernel refused: the
    fsync will write them anyway, so a refusal is not an error)."""
    if _SYNC_FILE_RANGE is None or length <= 0:
        return False
    return _SYNC_FILE_RANGE(fd, offset, length, SYNC_FILE_RANGE_WRITE) == 0
