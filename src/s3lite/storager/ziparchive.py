"""Streamed zip archives of stored (uncompressed) zip64 members.

Sectors move between nodes as one zip stream. Parts are already incompressible
payloads (or, if not, not worth the CPU), so members are *stored*; every member
uses zip64 fields, so neither a member nor the archive has a 4 GiB limit. Each
member's size and CRC-32 are known before its bytes are sent (they are in the part
header), so local headers carry them and no data descriptors are needed: the archive
can be read front to back by :func:`read_members` with bounded memory, and the
result is also an ordinary zip file that ``unzip`` or Python's ``zipfile`` can open.

The central directory grows by about a hundred bytes per member; it is spooled to a
temporary file past one MiB so that memory stays bounded for sectors of millions of
parts.
"""

from __future__ import annotations

import struct
import tempfile
from collections.abc import AsyncGenerator, AsyncIterable, AsyncIterator
from contextlib import aclosing

import attrs

from ..buffers import Buffer
from ..errors import CorruptArchive
from ..transport.base import ByteStream

LOCAL_HEADER = struct.Struct("<IHHHHHIIIHH")
CENTRAL_HEADER = struct.Struct("<IHHHHHHIIIHHHHHII")
ZIP64_LOCAL_EXTRA = struct.Struct("<HHQQ")
ZIP64_CENTRAL_EXTRA = struct.Struct("<HHQQQ")
ZIP64_END = struct.Struct("<IQHHIIQQQQ")
ZIP64_LOCATOR = struct.Struct("<IIQI")
END = struct.Struct("<IHHHHIIH")

LOCAL_SIG = 0x04034B50
CENTRAL_SIG = 0x02014B50
ZIP64_END_SIG = 0x06064B50
ZIP64_LOCATOR_SIG = 0x07064B50
END_SIG = 0x06054B50
ZIP64_EXTRA_ID = 0x0001

VERSION = 45  # zip64
UTF8_FLAG = 0x0800
DATA_DESCRIPTOR_FLAG = 0x0008
STORED = 0
DOS_TIME, DOS_DATE = 0, (2020 - 1980) << 9 | 1 << 5 | 1  # members carry no real mtime
FILE_ATTRIBUTES = 0o100644 << 16
MAX32 = 0xFFFFFFFF

CENTRAL_SPOOL_BYTES = 1 << 20
READ_CHUNK = 1 << 20


@attrs.frozen
class Member:
    """One member to write; the archive closes ``chunks`` once it has used them."""

    name: str
    size: int
    crc32: int
    chunks: ByteStream


async def write_archive(members: AsyncGenerator[Member, None]) -> AsyncGenerator[Buffer, None]:
    """Yield a zip archive of ``members`` (closed when the archive is); raises
    CorruptArchive if a member's bytes do not add up to its declared size (the file
    changed under us)."""
    offset = 0
    count = 0
    async with aclosing(members):
        with tempfile.SpooledTemporaryFile(max_size=CENTRAL_SPOOL_BYTES) as central:
            async for member in members:
                try:
                    header = _local_header(member)
                    yield header
                    sent = 0
                    async for chunk in member.chunks:
                        sent += len(chunk)
                        if sent > member.size:
                            break
                        yield chunk
                finally:
                    await member.chunks.aclose()
                if sent != member.size:
                    raise CorruptArchive(
                        f"member {member.name!r} declared {member.size} bytes but its source "
                        f"gave {'more' if sent > member.size else sent}"
                    )
                central.write(_central_header(member, offset))
                offset += len(header) + member.size
                count += 1
            central_size = central.tell()
            central.seek(0)
            while block := central.read(READ_CHUNK):
                yield block
    yield _end_records(count, central_size, offset)


def _local_header(member: Member) -> bytes:
    name = member.name.encode()
    fixed = LOCAL_HEADER.pack(
        LOCAL_SIG,
        VERSION,
        UTF8_FLAG,
        STORED,
        DOS_TIME,
        DOS_DATE,
        member.crc32,
        MAX32,  # sizes are in the zip64 extra field
        MAX32,
        len(name),
        ZIP64_LOCAL_EXTRA.size,
    )
    return fixed + name + ZIP64_LOCAL_EXTRA.pack(ZIP64_EXTRA_ID, 16, member.size, member.size)


def _central_header(member: Member, offset: int) -> bytes:
    name = member.name.encode()
    fixed = CENTRAL_HEADER.pack(
        CENTRAL_SIG,
        VERSION | 3 << 8,  # made by: Unix
        VERSION,
        UTF8_FLAG,
        STORED,
        DOS_TIME,
        DOS_DATE,
        member.crc32,
        MAX32,  # sizes and offset are in the zip64 extra field
        MAX32,
        len(name),
        ZIP64_CENTRAL_EXTRA.size,
        0,  # comment length
        0,  # disk number
        0,  # internal attributes
        FILE_ATTRIBUTES,
        MAX32,
    )
    extra = ZIP64_CENTRAL_EXTRA.pack(ZIP64_EXTRA_ID, 24, member.size, member.size, offset)
    return fixed + name + extra


def _end_records(count: int, central_size: int, central_offset: int) -> bytes:
    end64_offset = central_offset + central_size
    return (
        ZIP64_END.pack(
            ZIP64_END_SIG,
            ZIP64_END.size - 12,  # size of the rest of this record
            VERSION,
            VERSION,
            0,
            0,
            count,
            count,
            central_size,
            central_offset,
        )
        + ZIP64_LOCATOR.pack(ZIP64_LOCATOR_SIG, 0, end64_offset, 1)
        + END.pack(END_SIG, 0, 0, 0xFFFF, 0xFFFF, MAX32, MAX32, 0)
    )


@attrs.frozen
class ReadMember:
    """A member being read: consume ``chunks`` fully before asking for the next member."""

    name: str
    size: int
    crc32: int
    chunks: AsyncIterator[bytes]


class _Reader:
    """Exact reads over an async byte stream, holding at most one chunk of look-ahead."""

    def __init__(self, body: AsyncIterable[Buffer]) -> None:
        self._source = aiter(body)
        self._buffer = b""
        self._position = 0
        self.consumed = 0

    @property
    def _available(self) -> int:
        return len(self._buffer) - self._position

    async def _fill(self) -> bool:
        try:
            chunk = await anext(self._source)
        except StopAsyncIteration:
            return False
        self._buffer = self._buffer[self._position :] + chunk
        self._position = 0
        return True

    async def exact(self, size: int, what: str) -> bytes:
        while self._available < size:
            if not await self._fill():
                raise CorruptArchive(f"archive ends inside {what} at byte {self.consumed}")
        return self._take(size)

    async def upto(self, size: int, what: str) -> bytes:
        if not self._available and not await self._fill():
            raise CorruptArchive(f"archive ends inside {what} at byte {self.consumed}")
        return self._take(min(size, self._available))

    def _take(self, size: int) -> bytes:
        if self._position == 0 and size == len(self._buffer):
            data, self._buffer = self._buffer, b""
        else:
            data = self._buffer[self._position : self._position + size]
            self._position += size
        self.consumed += size
        return data

    async def at_end(self) -> bool:
        return not self._available and not await self._fill()


def _zip64_sizes(extra: bytes, name: str) -> tuple[int, int]:
    position = 0
    while position + 4 <= len(extra):
        header_id, size = struct.unpack_from("<HH", extra, position)
        if header_id == ZIP64_EXTRA_ID and size >= 16:
            return struct.unpack_from("<QQ", extra, position + 4)
        position += 4 + size
    raise CorruptArchive(f"member {name!r} has 32-bit overflow sizes but no zip64 extra field")


async def read_members(body: AsyncIterable[Buffer]) -> AsyncGenerator[ReadMember, None]:
    """Yield the members of an archive written by :func:`write_archive` (or any zip of
    stored members whose local headers carry sizes), then check the directory at the
    end: its entry count must match, so a truncated archive is never taken as whole.

    CRCs are *not* checked here; the consumer computes them while storing the bytes
    and compares them with ``ReadMember.crc32``.
    """
    reader = _Reader(body)
    count = 0
    while True:
        signature = struct.unpack("<I", await reader.exact(4, "a record signature"))[0]
        if signature != LOCAL_SIG:
            break
        fields = LOCAL_HEADER.unpack(
            struct.pack("<I", signature)
            + await reader.exact(LOCAL_HEADER.size - 4, "a local header")
        )
        flags, method, crc, compressed, size = fields[2], fields[3], fields[6], fields[7], fields[8]
        raw_name = await reader.exact(fields[9], "a member name")
        name = raw_name.decode("utf-8", "replace")
        extra = await reader.exact(fields[10], "a local extra field")
        if method != STORED or flags & DATA_DESCRIPTOR_FLAG:
            raise CorruptArchive(
                f"member {name!r} must be stored with its size in the local header "
                f"(method {method}, flags {flags:#06x})"
            )
        if MAX32 in (size, compressed):
            size, compressed = _zip64_sizes(extra, name)
        if size != compressed:
            raise CorruptArchive(f"stored member {name!r} has different sizes {size}/{compressed}")
        remaining = size

        async def chunks(
            remaining: int = remaining, name: str = name
        ) -> AsyncGenerator[bytes, None]:
            while remaining:
                data = await reader.upto(min(remaining, READ_CHUNK), f"member {name!r}")
                remaining -= len(data)
                yield data

        stream = chunks()
        try:
            yield ReadMember(name, size, crc, stream)
            async for _ in stream:  # whatever the consumer left unread
                pass
        finally:
            await stream.aclose()
        count += 1
    entries = 0
    while signature == CENTRAL_SIG:
        header = CENTRAL_HEADER.unpack(
            b"\x50\x4b\x01\x02"
            + await reader.exact(CENTRAL_HEADER.size - 4, "the central directory")
        )
        await reader.exact(header[10] + header[11] + header[12], "the central directory")
        entries += 1
        signature = struct.unpack("<I", await reader.exact(4, "a record signature"))[0]
    if signature == ZIP64_END_SIG:
        size = struct.unpack("<Q", await reader.exact(8, "the zip64 end record"))[0]
        await reader.exact(size, "the zip64 end record")
        signature = struct.unpack("<I", await reader.exact(4, "a record signature"))[0]
    if signature == ZIP64_LOCATOR_SIG:
        await reader.exact(ZIP64_LOCATOR.size - 4, "the zip64 locator")
        signature = struct.unpack("<I", await reader.exact(4, "a record signature"))[0]
    if signature != END_SIG:
        raise CorruptArchive(f"unexpected record {signature:#010x} at byte {reader.consumed - 4}")
    comment_length = END.unpack(
        struct.pack("<I", END_SIG) + await reader.exact(END.size - 4, "the end record")
    )[7]
    await reader.exact(comment_length, "the archive comment")
    if not await reader.at_end():
        raise CorruptArchive(f"unexpected bytes after the end record at byte {reader.consumed}")
    if entries != count:
        raise CorruptArchive(f"archive has {count} members but its directory lists {entries}")
