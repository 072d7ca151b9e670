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


ARENA = 1 << 20
"""Bytes of one arena that body reads fill, one after the other (the default)."""
LARGE_ARENA = 4 << 20
"""The gateway's arenas for the bodies clients send: a client's body then reaches the
upload in views of up to 4 MiB, so every layer above (the hashing threads above all)
makes a quarter of the calls. Each call into hashlib gives up the GIL and must take it
back from the event loop: the MD5 thread, which bounds an upload, spent 14% of its time
waiting for it with 1 MiB views. 7 alternated pairs of 1 GiB uploads (both orders),
1 -> 4 MiB: unsigned 264-287 -> 301-326 MB/s, signed 244-269 -> 261-282 MB/s, the
gateway's CPU per GiB 3.69-3.93 -> 3.35-3.55 s; its peak RSS (VmHWM) 126-129 -> 134-142
MiB. Nodes gained nothing from it and keep :data:`ARENA` (their peak RSS grew by
5 MiB with it)."""
MIN_READ = 64 << 10
"""An arena with less room than this left is retired and a new one started, so that a
read is never made tiny by the end of an arena."""

_NO_ARENA = memoryview(bytearray())


class Arena:
    """Where a connection reads the bodies it receives (a BufferedProtocol's
    ``get_buffer``): fresh buffers of ``size`` bytes, each filled once from start to
    end and never written again, so a view handed out never changes. Slicing them
    costs no copy, where a protocol's ``data_received`` gets a new bytes object per
    read (uvloop copies out of its own buffer) and a parser would copy again."""

    def __init__(self, size: int = ARENA) -> None:
        self._size = size
        self._arena = _NO_ARENA
        self._filled = 0

    def room(self, left: int) -> memoryview:
        """Where the next read goes, for a body with ``left`` bytes still to come (a
        small body gets an arena of its size, not a whole one)."""
        if len(self._arena) - self._filled < min(left, MIN_READ):
            self._arena, self._filled = memoryview(uninitialized(min(left, self._size))), 0
        return self._arena[self._filled : self._filled + left]

    def filled(self, nbytes: int) -> tuple[memoryview, int, int]:
        """A read put ``nbytes`` into :meth:`room`: (arena, start, end) of them."""
        start = self._filled
        self._filled += nbytes
        return self._arena, start, self._filled

    def release(self) -> None:
        """An idle connection keeps no arena."""
        self._arena, self._filled = _NO_ARENA, 0


class Pieces:
    """Body bytes received and not yet taken: consecutive reads into one arena are one
    view of it (a *run*) that grows in place, so a consumer that falls behind takes a
    whole arena at once and one that keeps up takes each read as it comes."""

    def __init__(self) -> None:
        self._pieces: list[Buffer] = []
        self.held = 0
        """Bytes waiting to be taken."""
        self._run: tuple[memoryview, int, int] | None = None
        """(arena, start, end) of the last piece when it is ``arena[start:end]``."""

    def __bool__(self) -> bool:
        return bool(self._pieces)

    def add(self, piece: Buffer) -> None:
        """Bytes that came some other way (a parser's, say)."""
        self._pieces.append(piece)
        self.held += len(piece)
        self._run = None

    def add_read(self, arena: memoryview, start: int, end: int) -> None:
        """Bytes ``start..end`` of ``arena``: one view with the last piece if it ends
        at ``start`` of the same arena."""
        run = self._run
        self.held += end - start
        if run is not None and run[0] is arena and run[2] == start:
            first = run[1]
            self._pieces[-1] = arena[first:end]
        else:
            first = start
            self._pieces.append(arena[start:end])
        self._run = (arena, first, end)

    def take(self) -> Buffer:
        """The next piece: an arena run as it is, or the other pieces up to the next
        run, joined (a body of tiny chunks must not cost a message each)."""
        pieces = self._pieces
        count = 1
        while count < len(pieces) and not isinstance(pieces[0], memoryview):
            if isinstance(pieces[count], memoryview):
                break
            count += 1
        body = pieces[0] if count == 1 else b"".join(pieces[:count])
        del pieces[:count]
        self.held -= len(body)
        if not pieces:
            self._run = None
        return body
