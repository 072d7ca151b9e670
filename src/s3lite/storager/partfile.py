"""The on-disk format of one part file, and the blocking I/O that reads and checks it.

A part file is a 32-byte header, then the payload in blocks, each preceded by its
checksum::

    0   magic    b"S3LPART2"
    8   length   u64 little-endian: payload bytes
    16  block    u32 little-endian: payload bytes per block (BLOCK_SIZE when written here)
    20  flags    u32 little-endian: 0 (no flag is defined; a file with others is refused)
    24  check    u64 little-endian: xxh3-64 of bytes 0..23
    32  frames   for block i = 0, 1, ...: u64 little-endian xxh3-64 of the block seeded
                 with i, then the block

Every block holds ``block`` payload bytes except the last, which holds the rest; an
empty payload has no blocks. The header therefore fixes the file's size exactly,
``32 + length + 8 * ceil(length / block)``.

Why this shape:

* A read verifies exactly the blocks it touches, before any byte of them leaves the
  node (DESIGN.md, invariant 5), ranges included, with memory bounded by a block.
* The checksum of block ``i`` is seeded with ``i``, so a block that turns up at
  another position (a misdirected write, blocks swapped) does not validate there.
* The header checks itself, so a flipped bit cannot change the length, the block
  size or the flags unnoticed; and as it fixes the file size, a truncated or
  extended file is found when it is opened, before a byte is served.
* A sector export ships the file as stored (header, checksums, data): an import
  installs byte-identical files and re-verifies every block on the way in.

Files are written by partwriter.py. Files of s3lite 0.1 (magic ``S3LPART1``, one
CRC-32 per file) are not readable: they fail the magic check like any damaged file.

This module reads and checks part files. Everything here blocks; the storage node
calls it from worker threads. A file that is not what its header and checksums say
raises :class:`Damage`, which the node turns into quarantine and a typed
``DamagedPart``.
"""

from __future__ import annotations

import os
import struct
import zlib
from collections.abc import Sequence

import attrs
import xxhash

from ..buffers import Buffer, uninitialized

MAGIC = b"S3LPART2"
BLOCK_SIZE = 64 * 1024
"""Payload bytes per checksummed block: the unit a read verifies (and so the least a
ranged read of a part reads from disk)."""

MAX_BLOCK_SIZE = 16 << 20
"""The largest block a reader accepts, so a file cannot make it hold more memory."""

HEADER = struct.Struct("<8sQIIQ")
HEADER_SIZE = HEADER.size
CHECK = struct.Struct("<Q")
CHECK_SIZE = CHECK.size

VECTOR_BLOCKS = 256
"""Blocks per scatter read: two buffers each, well under any system's IOV_MAX."""


class Damage(Exception):
    """A part file is not what its header and checksums say; the message says where.

    Internal to the storager: the node quarantines the file and raises DamagedPart.
    """


def sector_dir_name(sector: int) -> str:
    return f"{sector:03d}"


def block_checksum(block: Buffer, index: int) -> int:
    return xxhash.xxh3_64_intdigest(block, seed=index)


def pieces_checksum(pieces: Sequence[Buffer], index: int) -> int:
    """:func:`block_checksum` of the block that is ``pieces`` end to end, without
    joining them."""
    if len(pieces) == 1:
        return block_checksum(pieces[0], index)
    state = xxhash.xxh3_64(seed=index)
    for piece in pieces:
        state.update(piece)
    return state.intdigest()


@attrs.frozen
class Header:
    """What a part file's header says, and the layout that follows from it."""

    length: int
    block_size: int = BLOCK_SIZE
    flags: int = 0

    @property
    def blocks(self) -> int:
        return -(-self.length // self.block_size)

    @property
    def file_size(self) -> int:
        return HEADER_SIZE + self.length + CHECK_SIZE * self.blocks

    def frame_offset(self, index: int) -> int:
        """Where the checksum of block ``index`` starts; ``file_size`` past the last."""
        if index >= self.blocks:
            return self.file_size
        return HEADER_SIZE + index * (CHECK_SIZE + self.block_size)

    def payload_offset(self, position: int) -> int:
        """Where payload byte ``position`` is in the file."""
        index = position // self.block_size
        return HEADER_SIZE + index * CHECK_SIZE + CHECK_SIZE + position

    def block_length(self, index: int) -> int:
        return min(self.block_size, self.length - index * self.block_size)

    def pack(self) -> bytes:
        fields = HEADER.pack(MAGIC, self.length, self.block_size, self.flags, 0)
        check = xxhash.xxh3_64_intdigest(fields[:24])
        return fields[:24] + CHECK.pack(check)

    @classmethod
    def unpack(cls, raw: Buffer) -> Header:
        """The header in ``raw`` (HEADER_SIZE bytes); Damage if it is not a valid one."""
        magic, length, block_size, flags, check = HEADER.unpack(raw)
        if magic != MAGIC:
            raise Damage(f"bad magic {magic!r} (not an s3lite 0.2 part file)")
        if check != xxhash.xxh3_64_intdigest(memoryview(raw)[:24]):
            raise Damage("the header does not match its checksum")
        if flags != 0:
            raise Damage(f"unknown header flags {flags:#x}")
        if not 0 < block_size <= MAX_BLOCK_SIZE:
            raise Damage(f"block size {block_size} is outside 1..{MAX_BLOCK_SIZE}")
        return cls(length, block_size, flags)


def read_header(fd: int) -> Header:
    """Check the header of an open part file against itself and the file's size."""
    raw = os.pread(fd, HEADER_SIZE, 0)
    size = os.fstat(fd).st_size
    if len(raw) < HEADER_SIZE:
        raise Damage(f"the file is {size} bytes, shorter than a header")
    header = Header.unpack(raw)
    if size != header.file_size:
        raise Damage(
            f"the file is {size} bytes but its header says {header.file_size} "
            f"({header.length} payload bytes)"
        )
    return header


def written_size(fd: int) -> int:
    """The size an open part file had when it was written, as far as can be told:
    what its header says if the header is intact, else its size now. (The node
    accounts a damaged file's bytes with this when it moves it away.)"""
    try:
        return Header.unpack(os.pread(fd, HEADER_SIZE, 0)).file_size
    except (Damage, struct.error):
        return os.fstat(fd).st_size


def read_payload(
    fd: int, header: Header, first: int, count: int, *, cached_only: bool = False
) -> memoryview:
    """The payload of blocks ``first .. first + count - 1`` (fewer at the end) end to
    end, each block verified against its checksum before any of it is returned;
    Damage names the first bad one. A scatter read puts each block's checksum aside
    and its payload right after the previous block's, so a range of blocks leaves the
    node as one buffer, neither copied out of the frames nor joined.

    With ``cached_only``, BlockingIOError instead of waiting for the disk: the blocks
    are read only if the page cache holds them all (``RWF_NOWAIT``), and anything
    short of that, a short file included, is for a blocking read to sort out."""
    blocks = max(0, min(first + count, header.blocks) - first)
    lengths = [header.block_length(index) for index in range(first, first + blocks)]
    payload = memoryview(uninitialized(sum(lengths)))
    checks = memoryview(uninitialized(CHECK_SIZE * blocks))
    flags = os.RWF_NOWAIT if cached_only else 0
    offset, position = header.frame_offset(first), 0
    for batch in range(0, blocks, VECTOR_BLOCKS):
        vectors = []
        expected = 0
        for number in range(batch, min(batch + VECTOR_BLOCKS, blocks)):
            vectors.append(checks[number * CHECK_SIZE : (number + 1) * CHECK_SIZE])
            vectors.append(payload[position : position + lengths[number]])
            position += lengths[number]
            expected += CHECK_SIZE + lengths[number]
        got = os.preadv(fd, vectors, offset, flags)
        if got != expected:
            if cached_only:
                raise BlockingIOError(f"blocks from {first + batch} are not all in the page cache")
            frame = CHECK_SIZE + header.block_size
            raise Damage(f"the file ends inside block {first + batch + got // frame}")
        offset += got
    position = 0
    for number, length in enumerate(lengths):
        index = first + number
        (expected,) = CHECK.unpack_from(checks, number * CHECK_SIZE)
        if block_checksum(payload[position : position + length], index) != expected:
            start = index * header.block_size
            raise Damage(
                f"block {index} (payload bytes {start}-{start + length - 1}) does not "
                "match its checksum"
            )
        position += length
    return payload


class RangeReader:
    """Payload bytes ``first .. last`` (inclusive) of an open part file, read a batch of
    verified blocks at a time: no byte of a block is returned before the whole block
    has matched its checksum. Owns ``fd`` and closes it."""

    def __init__(self, fd: int, header: Header, first: int, last: int, batch: int) -> None:
        self.fd = fd
        self._header = header
        self._position = first
        self._last = last
        self._blocks_per_read = max(1, batch // header.block_size)

    @property
    def remaining(self) -> int:
        return self._last - self._position + 1

    def read(self, *, cached_only: bool = False) -> memoryview:
        """The next verified bytes of the range, empty once it is read. Raises Damage,
        and with ``cached_only`` BlockingIOError as read_payload (the position does not
        move: the next read starts at the same byte)."""
        if self._position > self._last:
            return memoryview(b"")
        size = self._header.block_size
        first = self._position // size
        count = min(self._blocks_per_read, self._last // size - first + 1)
        payload = read_payload(self.fd, self._header, first, count, cached_only=cached_only)
        start = self._position - first * size
        end = self._last - first * size + 1  # relative to the first block's start
        chunk = payload[start:end]
        self._position += len(chunk)
        return chunk

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def __del__(self) -> None:
        """A safety net: a reader dropped unclosed (its opener was cancelled between
        opening it and handing it over) must not keep its file open for good."""
        self.close()


class FileChecker:
    """Checks a whole part file fed front to back in pieces of any size: the header,
    every block's checksum, and that the file ends exactly where the header says.

    Holds at most one block back between pieces. Optionally computes the CRC-32 of the
    file's bytes (a zip member's CRC) and the xxh3-64 of its payload (what a manifest
    records). Raises Damage as soon as something does not match.
    """

    def __init__(self, *, crc: bool = False, payload_checksum: bool = False) -> None:
        self.header: Header | None = None
        self.crc32 = 0
        self.size = 0
        self._crc = crc
        self._payload = xxhash.xxh3_64() if payload_checksum else None
        self._pending = bytearray()
        self._block = 0

    @property
    def payload_checksum(self) -> int:
        assert self._payload is not None, "payload_checksum=True was not asked for"
        return self._payload.intdigest()

    def _next_record(self) -> int:
        """Bytes of the next record to check: the header, a frame, or 1 past the end."""
        if self.header is None:
            return HEADER_SIZE
        if self._block < self.header.blocks:
            return CHECK_SIZE + self.header.block_length(self._block)
        return 1

    def feed(self, data: Buffer) -> None:
        view = memoryview(data).cast("B")
        self.size += len(view)
        if self._crc:
            self.crc32 = zlib.crc32(view, self.crc32)
        if self._pending:
            take = view[: self._next_record() - len(self._pending)]
            self._pending += take
            view = view[len(take) :]
            if len(self._pending) < self._next_record():
                return
            self._check(memoryview(self._pending))
            self._pending.clear()
        consumed = self._check(view)
        self._pending += view[consumed:]

    def _check(self, view: memoryview) -> int:
        """Check every whole record at the start of ``view``; returns the bytes used."""
        position = 0
        if self.header is None:
            if len(view) < HEADER_SIZE:
                return 0
            self.header = Header.unpack(view[:HEADER_SIZE])
            position = HEADER_SIZE
        header = self.header
        while self._block < header.blocks:
            length = header.block_length(self._block)
            if len(view) - position < CHECK_SIZE + length:
                return position
            (expected,) = CHECK.unpack_from(view, position)
            block = view[position + CHECK_SIZE : position + CHECK_SIZE + length]
            if block_checksum(block, self._block) != expected:
                raise Damage(f"block {self._block} does not match its checksum")
            if self._payload is not None:
                self._payload.update(block)
            position += CHECK_SIZE + length
            self._block += 1
        if position < len(view):
            raise Damage(f"the file goes on past the {header.file_size} bytes its header says")
        return position

    def finish(self) -> Header:
        """The header, once the whole file was fed; Damage if it ended early."""
        if self.header is None or self._block < self.header.blocks or self._pending:
            expected = "a header" if self.header is None else f"{self.header.file_size} bytes"
            raise Damage(f"the file ends after {self.size} bytes, expected {expected}")
        return self.header


def check_file(fd: int, *, crc: bool = False, payload_checksum: bool = False) -> FileChecker:
    """Read and check a whole open part file (from offset 0, in frame-aligned reads of
    about a MiB, so no byte is copied twice); Damage if anything is wrong."""
    checker = FileChecker(crc=crc, payload_checksum=payload_checksum)
    checker.feed(os.pread(fd, HEADER_SIZE, 0))
    offset = HEADER_SIZE
    if checker.header is not None:
        frame = CHECK_SIZE + checker.header.block_size
        step = max(1, (1 << 20) // frame) * frame
        while data := os.pread(fd, step, offset):
            checker.feed(data)
            offset += len(data)
    checker.finish()
    return checker
