"""The one type for a chunk of bytes in flight, and buffers to read chunks into.

Bodies move through s3lite as the pieces they arrive in (the socket's bytes, slices of
them as memoryviews, a writer's bytearray) so that no layer copies them to change
their type; every layer that takes a chunk takes any of these.
"""

from __future__ import annotations

import ctypes

Buffer = bytes | bytearray | memoryview

_bytearray_from = ctypes.pythonapi.PyByteArray_FromStringAndSize
_bytearray_from.argtypes = (ctypes.c_char_p, ctypes.c_ssize_t)
_bytearray_from.restype = ctypes.py_object


def uninitialized(size: int) -> bytearray:
    """A bytearray of ``size`` bytes holding whatever the allocator handed over, for
    a read to fill. ``bytearray(size)`` zeroes its bytes first: a pass over memory as
    long as the read's own copy, paid by every byte of every body a server receives
    (measured: 4% of all CPU of a 1 GiB upload, gateway and nodes). Only the bytes a
    read filled may be used: the rest can hold anything this process freed."""
    if size < 0:
        raise ValueError(f"negative buffer size {size}")
    buffer: bytearray = _bytearray_from(None, size)
    return buffer
