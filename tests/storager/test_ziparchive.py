"""Streamed zip archives: ours open in ``zipfile``, ``zipfile``'s stored archives read
back with ours, and anything cut short, padded or inconsistent is refused."""

from __future__ import annotations

import io
import zipfile
import zlib
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Iterable
from contextlib import aclosing

import anyio
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from s3lite import CorruptArchive
from s3lite.storager.ziparchive import Member, read_members, write_archive

Entry = tuple[str, bytes]

member_names = st.builds(
    lambda sector, name: f"{sector:03d}/{name}",
    st.integers(0, 359),
    st.text(
        alphabet=st.characters(
            whitelist_categories=("Ll", "Lu", "Nd"), whitelist_characters="-._\u00e9\u4e2d"
        ),
        min_size=1,
        max_size=30,
    ),
)
entries_strategy = st.lists(
    st.tuples(member_names, st.binary(max_size=300)),
    max_size=6,
    unique_by=lambda entry: entry[0],
)


class Source:
    """A ByteStream yielding ``data`` in chunks of ``chunk`` bytes; records aclose()."""

    def __init__(self, data: bytes, chunk: int) -> None:
        self.pieces = iter([data[i : i + chunk] for i in range(0, len(data), chunk)])
        self.closed = False

    def __aiter__(self) -> Source:
        return self

    async def __anext__(self) -> bytes:
        if self.closed:
            raise RuntimeError("read after aclose")
        try:
            return next(self.pieces)
        except StopIteration:
            raise StopAsyncIteration from None

    async def aclose(self) -> None:
        self.closed = True


def member(
    name: str, data: bytes, *, chunk: int = 7, declared: int | None = None, crc: int | None = None
) -> Member:
    """A member whose source yields ``data`` in chunks of ``chunk`` bytes."""
    size = len(data) if declared is None else declared
    crc32 = zlib.crc32(data) if crc is None else crc
    return Member(name, size, crc32, Source(data, chunk))


async def iterate(members: Iterable[Member]) -> AsyncGenerator[Member, None]:
    for item in members:
        yield item


async def write(members: Iterable[Member]) -> bytes:
    async with aclosing(write_archive(iterate(members))) as chunks:
        return b"".join([chunk async for chunk in chunks])


async def chunked(data: bytes, size: int) -> AsyncIterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


async def read(archive: bytes, chunk: int = 1 << 16) -> list[tuple[str, int, int, bytes]]:
    """(name, size, crc32, bytes) of every member, reading each one fully."""
    out = []
    async with aclosing(read_members(chunked(archive, chunk))) as members:
        async for item in members:
            data = b"".join([piece async for piece in item.chunks])
            out.append((item.name, item.size, item.crc32, data))
    return out


def run(function: Callable[..., object], *args: object) -> object:
    return anyio.run(function, *args)  # type: ignore[arg-type]


def expected(entries: list[Entry]) -> list[tuple[str, int, int, bytes]]:
    return [(name, len(data), zlib.crc32(data), data) for name, data in entries]


def archive_of(entries: list[Entry], chunk: int = 7) -> bytes:
    members = [member(name, data, chunk=chunk) for name, data in entries]
    archive = run(write, members)
    assert all(item.chunks.closed for item in members)  # type: ignore[attr-defined]
    assert isinstance(archive, bytes)
    return archive


# -- our archives -------------------------------------------------------------------------


@settings(deadline=None)
@given(entries_strategy, st.integers(1, 50))
def test_written_archive_opens_in_zipfile(entries: list[Entry], chunk: int) -> None:
    archive = archive_of(entries, chunk)
    with zipfile.ZipFile(io.BytesIO(archive)) as opened:
        assert opened.testzip() is None
        assert opened.namelist() == [name for name, _ in entries]
        for info, (name, data) in zip(opened.infolist(), entries, strict=True):
            assert info.compress_type == zipfile.ZIP_STORED
            assert info.file_size == len(data)
            assert zlib.crc32(data) == info.CRC
            assert opened.read(name) == data


@settings(deadline=None)
@given(entries_strategy, st.data())
def test_written_archive_reads_back_in_chunks_of_any_size(
    entries: list[Entry], data: st.DataObject
) -> None:
    archive = archive_of(entries)
    chunk = data.draw(st.integers(1, len(archive)))
    assert run(read, archive, chunk) == expected(entries)


def test_empty_archive() -> None:
    archive = archive_of([])
    with zipfile.ZipFile(io.BytesIO(archive)) as opened:
        assert opened.namelist() == []
    assert run(read, archive) == []


def test_read_one_byte_at_a_time_exact() -> None:
    entries = [("000/a-0-0", b"hello"), ("359/b-1-5", b""), ("007/c", bytes(range(256)))]
    archive = archive_of(entries)
    assert run(read, archive, 1) == expected(entries)


@settings(deadline=None)
@given(entries_strategy)
def test_members_left_unread_are_skipped(entries: list[Entry]) -> None:
    archive = archive_of(entries)

    async def names_only() -> list[str]:
        async with aclosing(read_members(chunked(archive, 5))) as members:
            return [item.name async for item in members]

    async def first_chunk_only() -> list[bytes]:
        firsts = []
        async with aclosing(read_members(chunked(archive, 5))) as members:
            async for item in members:
                firsts.append(await anext(aiter(item.chunks), b""))
        return firsts

    assert run(names_only) == [name for name, _ in entries]
    firsts = run(first_chunk_only)
    assert len(firsts) == len(entries)
    for (_, data), first in zip(entries, firsts, strict=True):
        assert data.startswith(first)
        assert bool(first) == bool(data)


# -- zipfile's archives ---------------------------------------------------------------------


@settings(deadline=None)
@given(entries_strategy, st.booleans(), st.integers(1, 64))
def test_reads_stored_archives_written_by_zipfile(
    entries: list[Entry], force_zip64: bool, chunk: int
) -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_STORED) as archive:
        for name, data in entries:
            if force_zip64:
                # seekable output: the local header is rewritten with the sizes, in a
                # zip64 extra field, and no data descriptor follows
                with archive.open(name, "w", force_zip64=True) as out:
                    out.write(data)
            else:
                archive.writestr(name, data)
    assert run(read, buffer.getvalue(), chunk) == expected(entries)


class Unseekable(io.RawIOBase):
    def __init__(self) -> None:
        self.data = bytearray()

    def writable(self) -> bool:
        return True

    def write(self, data: bytes) -> int:  # type: ignore[override]
        self.data += data
        return len(data)


def test_data_descriptors_are_refused() -> None:
    # on an unseekable stream zipfile cannot go back: sizes follow the data instead
    out = Unseekable()
    with zipfile.ZipFile(out, "w") as archive:
        archive.writestr("000/a", b"payload")
    with pytest.raises(CorruptArchive, match="stored with its size"):
        run(read, bytes(out.data))


def test_compressed_members_are_refused() -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("000/a", b"payload " * 10)
    with pytest.raises(CorruptArchive, match="method 8"):
        run(read, buffer.getvalue())


# -- damage ---------------------------------------------------------------------------------


async def every_cut_is_refused(archive: bytes) -> list[int]:
    """The cut points (archive[:cut]) that were NOT refused with CorruptArchive."""
    accepted = []
    for cut in range(len(archive)):
        try:
            await read(archive[:cut], 3)
        except CorruptArchive:
            continue
        accepted.append(cut)
    return accepted


@settings(max_examples=15, deadline=None)
@given(entries_strategy)
def test_truncation_anywhere_is_refused(entries: list[Entry]) -> None:
    archive = archive_of(entries)
    assert run(read, archive) == expected(entries)
    assert run(every_cut_is_refused, archive) == []


@settings(deadline=None)
@given(entries_strategy, st.binary(min_size=1, max_size=40))
def test_trailing_garbage_is_refused(entries: list[Entry], garbage: bytes) -> None:
    archive = archive_of(entries)
    with pytest.raises(CorruptArchive):
        run(read, archive + garbage)


def test_a_second_archive_appended_is_refused() -> None:
    archive = archive_of([("000/a", b"x")])
    with pytest.raises(CorruptArchive, match="after the end record"):
        run(read, archive + archive)


def test_a_directory_missing_an_entry_is_refused() -> None:
    # splice the two-member archive's local records onto the one-member archive's
    # directory: the entry counts disagree (2 members, 1 listed)
    one = archive_of([("000/a", b"abc")])
    two = archive_of([("000/a", b"abc"), ("000/b", b"def")])
    local_one = one.index(b"PK\x01\x02")
    local_two = two.index(b"PK\x01\x02")
    spliced = two[:local_two] + one[local_one:]
    with pytest.raises(CorruptArchive, match="2 members but its directory lists 1"):
        run(read, spliced)


@settings(deadline=None)
@given(member_names, st.binary(max_size=100), st.integers(-5, 5).filter(bool))
def test_a_source_giving_the_wrong_number_of_bytes_is_refused(
    name: str, data: bytes, difference: int
) -> None:
    declared = len(data) + difference
    if declared < 0:
        declared = len(data) + 1
    members = [member("000/ok", b"fine"), member(name, data, declared=declared)]
    with pytest.raises(CorruptArchive, match="declared"):
        run(write, members)
    # both sources were released, the failing one included
    assert [item.chunks.closed for item in members] == [True, True]  # type: ignore[attr-defined]


def test_a_source_giving_more_bytes_stops_before_sending_them() -> None:
    # declared 10, source gives 3 chunks of 7: the second chunk would pass 10, so only
    # the first 7 bytes of data were sent when the error is raised
    sent = bytearray()

    async def collect() -> None:
        async with aclosing(
            write_archive(iterate([member("000/a", b"x" * 21, chunk=7, declared=10)]))
        ) as chunks:
            async for chunk in chunks:
                sent.extend(chunk)

    with pytest.raises(CorruptArchive, match="declared 10 bytes but its source gave more"):
        run(collect)
    assert sent.endswith(b"x" * 7)
    assert b"x" * 8 not in sent
