"""The part file format: its documented layout, that every damaged, truncated or lying
file is found by a read that covers the damage (and no wrong byte is ever returned),
that healthy files read exactly in any range, and every way a write can fail (disk
full at each step, other I/O errors), which must leave no temporary file.

The fault helpers here (``faulty_files``, ``patch_partfile_os``) are also used by
``test_node.py``: they replace what ``partwriter`` sees as ``os`` with a copy, so the
real ``os`` module (used by pytest, tempfile and the event loop) is never touched.
"""

from __future__ import annotations

import errno
import os
import random
import stat
import struct
import sys
import threading
import types
import zlib
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest
import xxhash
from hypothesis import given, settings
from hypothesis import strategies as st

from s3lite import DiskFull, InvalidName
from s3lite.sectors import check_sector
from s3lite.storager import partwriter, writeback
from s3lite.storager.partfile import (
    BLOCK_SIZE,
    CHECK_SIZE,
    HEADER_SIZE,
    VECTOR_BLOCKS,
    Damage,
    FileChecker,
    Header,
    RangeReader,
    check_file,
    read_header,
    read_payload,
    sector_dir_name,
)
from s3lite.storager.partwriter import PartWriter, StagedPart
from s3lite.transport.base import check_name

B = BLOCK_SIZE

# -- fault injection -------------------------------------------------------------------


class Faults:
    """Stand-ins for the ``os.writev`` and ``os.pwrite`` that PartWriter writes through.

    Accepts ``room`` more bytes (None: unlimited), then fails every write with ``error``,
    as a full disk does: the write that crosses the limit is short, the next one fails.
    ``max_write`` caps each write, to exercise the short-write loops.
    """

    def __init__(
        self, room: int | None = None, error: int = errno.ENOSPC, max_write: int | None = None
    ) -> None:
        self.room = room
        self.error = error
        self.max_write = max_write
        self.writes = 0

    def _allowed(self, size: int) -> int:
        self.writes += 1
        if self.max_write is not None:
            size = min(size, self.max_write)
        if self.room is not None:
            if self.room == 0:
                raise OSError(self.error, os.strerror(self.error))
            size = min(size, self.room)
            self.room -= size
        return size

    def writev(self, fd: int, buffers: Sequence[Any]) -> int:
        data = b"".join(bytes(buffer) for buffer in buffers)
        return os.write(fd, data[: self._allowed(len(data))])

    def pwrite(self, fd: int, data: Any, offset: int) -> int:
        return os.pwrite(fd, bytes(data)[: self._allowed(len(data))], offset)


def patch_partfile_os(monkeypatch: pytest.MonkeyPatch, **overrides: Any) -> None:
    """Make ``partwriter`` see an ``os`` whose named functions are replaced."""
    fake = types.SimpleNamespace(**vars(os))
    for name, value in overrides.items():
        setattr(fake, name, value)
    monkeypatch.setattr(partwriter, "os", fake)


def faulty_files(monkeypatch: pytest.MonkeyPatch, **faults: Any) -> Faults:
    """Every part file written from now on goes through one Faults(**faults)."""
    injected = Faults(**faults)
    patch_partfile_os(monkeypatch, writev=injected.writev, pwrite=injected.pwrite)
    return injected


def failing(error: int) -> Callable[..., Any]:
    """A stand-in for an os function that raises OSError(error)."""

    def fail(*args: Any, **kwargs: Any) -> Any:
        raise OSError(error, os.strerror(error))

    return fail


def fsync_recorder(calls: list[str]) -> Callable[[int], None]:
    """An os.fsync that records whether it synced a file or a directory."""

    def fsync(fd: int) -> None:
        calls.append("dir" if stat.S_ISDIR(os.fstat(fd).st_mode) else "file")
        os.fsync(fd)

    return fsync


# -- helpers ---------------------------------------------------------------------------


@pytest.fixture
def temp_dir(tmp_path: Path) -> Path:
    path = tmp_path / "tmp"
    path.mkdir()
    return path


@pytest.fixture
def final_path(tmp_path: Path) -> Path:
    path = tmp_path / "sectors" / "003"
    path.mkdir(parents=True)
    return path / "part-1"


def write_part(temp_dir: Path, final_path: Path, *chunks: bytes, fsync: bool = False) -> int:
    writer = PartWriter(temp_dir, "node-t", fsync=fsync)
    for chunk in chunks:
        writer.write(chunk)
    return writer.commit(final_path, threading.Lock())


@pytest.fixture(scope="module")
def scratch(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory for the property tests (Hypothesis runs a test's examples within one
    call, so a function-scoped fixture would be shared by them anyway). Files in it are
    removed as soon as they are used."""
    return tmp_path_factory.mktemp("partfile")


def part_bytes(scratch: Path, data: bytes, chunk_sizes: Sequence[int] = (B,)) -> bytes:
    """The part file PartWriter makes of ``data`` sent in chunks of the given sizes."""
    final = scratch / f"part-{random.getrandbits(64):x}"
    writer = PartWriter(scratch, "node-t", fsync=False)
    position = index = 0
    while position < len(data):
        size = max(1, chunk_sizes[index % len(chunk_sizes)])
        writer.write(data[position : position + size])
        position += size
        index += 1
    writer.commit(final, threading.Lock())
    try:
        return final.read_bytes()
    finally:
        final.unlink()


class opened:
    """``raw`` as an open file descriptor (a context manager)."""

    def __init__(self, scratch: Path, raw: bytes) -> None:
        self.path = scratch / f"raw-{random.getrandbits(64):x}"
        self.path.write_bytes(raw)
        self.fd = os.open(self.path, os.O_RDONLY)

    def __enter__(self) -> int:
        return self.fd

    def __exit__(self, *exc: object) -> None:
        os.close(self.fd)
        self.path.unlink()


def read_range(
    scratch: Path, raw: bytes, first: int, last: int, batch: int, *, cached_only: bool = False
) -> tuple[bytes, Damage | None]:
    """What a reader of payload bytes first..last of the file ``raw`` receives before
    it stops, and the Damage it stopped on (None if it read the range). The file was
    just written: ``cached_only`` reads find it all in the page cache."""
    received = bytearray()
    with opened(scratch, raw) as fd:
        try:
            header = read_header(fd)
            reader = RangeReader(os.dup(fd), header, first, last, batch)
            try:
                while chunk := reader.read(cached_only=cached_only):
                    received += chunk
            finally:
                reader.close()
        except Damage as damage:
            return bytes(received), damage
    return bytes(received), None


def check_bytes(raw: bytes) -> Header:
    """Feed a whole file to a FileChecker at once."""
    checker = FileChecker()
    checker.feed(raw)
    return checker.finish()


def data_of(size: int, seed: int = 0) -> bytes:
    return random.Random(f"{seed}:{size}").randbytes(size)


sizes = st.integers(0, 4 * B + 100) | st.sampled_from([0, 1, B - 1, B, B + 1, 3 * B])
batches = st.sampled_from([1, B, 3 * B, 256 * 1024])


# -- the format ------------------------------------------------------------------------


def test_a_part_file_is_the_documented_header_then_checksummed_blocks(
    temp_dir: Path, final_path: Path
) -> None:
    data = data_of(2 * B + 1000)
    write_part(temp_dir, final_path, data[:10], b"", data[10:])
    raw = final_path.read_bytes()
    assert HEADER_SIZE == 32
    assert raw[0:8] == b"S3LPART2"
    assert struct.unpack_from("<QII", raw, 8) == (len(data), B, 0)
    assert int.from_bytes(raw[24:32], "little") == xxhash.xxh3_64_intdigest(raw[:24])
    position = 32
    for index, block in enumerate([data[:B], data[B : 2 * B], data[2 * B :]]):
        checksum = int.from_bytes(raw[position : position + 8], "little")
        assert checksum == xxhash.xxh3_64_intdigest(block, seed=index)
        assert raw[position + 8 : position + 8 + len(block)] == block
        position += 8 + len(block)
    assert position == len(raw) == Header(len(data)).file_size == 32 + len(data) + 3 * 8


def test_an_empty_part_is_a_header_only(scratch: Path, temp_dir: Path, final_path: Path) -> None:
    write_part(temp_dir, final_path)
    raw = final_path.read_bytes()
    assert raw == Header(0).pack()
    assert len(raw) == 32
    with opened(scratch, raw) as fd:
        assert read_header(fd) == Header(0)


@settings(max_examples=40, deadline=None)
@given(sizes, st.lists(st.integers(0, 3 * B), min_size=1, max_size=5))
def test_the_file_does_not_depend_on_how_the_payload_was_chunked(
    scratch: Path, size: int, chunk_sizes: list[int]
) -> None:
    data = data_of(size)
    assert part_bytes(scratch, data, chunk_sizes) == part_bytes(scratch, data)


@settings(max_examples=40, deadline=None)
@given(
    sizes,
    st.lists(st.integers(0, 3 * B), min_size=1, max_size=5),
    st.lists(st.integers(1, 4), min_size=1, max_size=3),
)
def test_the_file_does_not_depend_on_how_pieces_were_grouped(
    scratch: Path, size: int, chunk_sizes: list[int], group_sizes: list[int]
) -> None:
    """write_pieces holds an incomplete block as views of several pieces and hashes a
    block piece by piece: the file is the one a single write makes."""
    data = data_of(size)
    chunks, position = [], 0
    while position < len(data):
        size_of = max(1, chunk_sizes[len(chunks) % len(chunk_sizes)])
        chunks.append(memoryview(data)[position : position + size_of])
        position += size_of
    final = scratch / f"part-{random.getrandbits(64):x}"
    writer = PartWriter(scratch, "node-t", fsync=False)
    index = 0
    while chunks:
        count = group_sizes[index % len(group_sizes)]
        writer.write_pieces(chunks[:count])
        del chunks[:count]
        index += 1
    writer.commit(final, threading.Lock())
    try:
        assert final.read_bytes() == part_bytes(scratch, data)
    finally:
        final.unlink()


def test_payload_offset_finds_payload_bytes_in_the_file(scratch: Path) -> None:
    data = data_of(3 * B + 7)
    raw = part_bytes(scratch, data)
    header = Header(len(data))
    for position in [0, 1, B - 1, B, 2 * B + 5, len(data) - 1]:
        assert raw[header.payload_offset(position)] == data[position]


def test_the_writer_reports_length_and_size(temp_dir: Path, final_path: Path) -> None:
    writer = PartWriter(temp_dir, "node-t", fsync=False)
    for chunk in (b"a", bytearray(b"bc"), memoryview(b"def")):
        writer.write(chunk)
    writer.commit(final_path, threading.Lock())
    assert (writer.length, writer.size) == (6, 32 + 8 + 6)
    assert final_path.stat().st_size == writer.size


def test_bytes_are_invisible_until_commit_and_the_temp_file_goes(
    temp_dir: Path, final_path: Path
) -> None:
    writer = PartWriter(temp_dir, "node-t", fsync=False)
    writer.write(b"payload")
    assert writer.temp_path.parent == temp_dir
    assert writer.temp_path.exists()
    assert not final_path.exists()
    writer.commit(final_path, threading.Lock())
    assert list(temp_dir.iterdir()) == []
    assert final_path.read_bytes()[40:] == b"payload"


def test_commit_returns_the_size_of_the_replaced_file(temp_dir: Path, final_path: Path) -> None:
    assert write_part(temp_dir, final_path, b"x" * 100) == 0
    assert write_part(temp_dir, final_path, b"y" * 5) == 32 + 8 + 100
    assert final_path.read_bytes()[40:] == b"y" * 5


def test_abort_removes_the_temp_file_and_can_be_repeated(temp_dir: Path, final_path: Path) -> None:
    writer = PartWriter(temp_dir, "node-t", fsync=False)
    writer.write(b"abc")
    writer.abort()
    writer.abort()
    assert list(temp_dir.iterdir()) == []
    assert not final_path.exists()
    committed = PartWriter(temp_dir, "node-t", fsync=False)
    committed.commit(final_path, threading.Lock())
    committed.abort()  # after commit: nothing to remove, the part stays
    assert final_path.exists()


def test_short_writes_are_completed(
    scratch: Path, temp_dir: Path, final_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    faults = faulty_files(monkeypatch, max_write=1000)
    data = data_of(3 * B + 5)
    write_part(temp_dir, final_path, data)
    monkeypatch.undo()
    assert final_path.read_bytes() == part_bytes(scratch, data)
    assert faults.writes > len(data) // 1000


@pytest.mark.parametrize("fsync", [True, False])
def test_a_durable_writer_starts_write_back_every_few_mib(
    temp_dir: Path, final_path: Path, monkeypatch: pytest.MonkeyPatch, fsync: bool
) -> None:
    started: list[tuple[int, int]] = []
    real = partwriter.start_writeback

    def recording(fd: int, offset: int, length: int) -> bool:
        started.append((offset, length))
        return real(fd, offset, length)

    monkeypatch.setattr(partwriter, "start_writeback", recording)
    step = writeback.WRITEBACK_AFTER
    writer = PartWriter(temp_dir, "node-t", fsync=fsync)
    for _ in range(5):
        writer.write(bytes(step // 2 + 12345))
    writer.commit(final_path, threading.Lock())
    if not fsync:
        assert started == []  # nothing will fsync: no reason to hurry the disk
        return
    assert len(started) == 2
    assert [offset for offset, _ in started] == [0, sum(started[0])]  # contiguous
    assert all(length >= step for _, length in started)
    assert sum(started[-1]) <= final_path.stat().st_size


def test_write_back_is_started_on_a_real_file(tmp_path: Path) -> None:
    path = tmp_path / "file"
    with path.open("wb") as file:
        file.write(bytes(1 << 20))
        file.flush()
        started = writeback.start_writeback(file.fileno(), 0, 1 << 20)
        assert writeback.start_writeback(file.fileno(), 0, 0) is False
    assert started is (sys.platform == "linux")
    assert writeback.start_writeback(-1, 0, 1) is False


# -- headers ---------------------------------------------------------------------------


def header_with(**changes: Any) -> bytes:
    """A header of a 10-byte part with fields replaced, its checksum recomputed unless
    ``check`` is given."""
    fields = {"magic": b"S3LPART2", "length": 10, "block": B, "flags": 0, **changes}
    raw = struct.pack("<8sQII", fields["magic"], fields["length"], fields["block"], fields["flags"])
    check = changes.get("check", xxhash.xxh3_64_intdigest(raw))
    return raw + struct.pack("<Q", check)


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (header_with(magic=b"S3LPART1"), "magic"),  # s3lite 0.1: not readable, damaged
        (header_with(magic=b"\0" * 8), "magic"),
        (header_with(check=12345), "checksum"),
        (header_with(flags=1), "flags"),
        (header_with(block=0), "block size"),
        (header_with(block=(16 << 20) + 1), "block size"),
    ],
    ids=["old-format", "zeros", "checksum", "flags", "block-0", "block-huge"],
)
def test_a_header_that_is_not_valid_is_damage(raw: bytes, reason: str) -> None:
    with pytest.raises(Damage, match=reason):
        Header.unpack(raw)


@settings(max_examples=100, deadline=None)
@given(st.integers(0, 31), st.integers(0, 7), sizes)
def test_any_flipped_header_bit_is_found_when_the_file_opens(
    scratch: Path, offset: int, bit: int, size: int
) -> None:
    raw = bytearray(part_bytes(scratch, data_of(size)))
    raw[offset] ^= 1 << bit
    with opened(scratch, bytes(raw)) as fd, pytest.raises(Damage):
        read_header(fd)


@settings(max_examples=60, deadline=None)
@given(sizes, st.data())
def test_a_truncated_or_extended_file_is_found_when_it_opens(
    scratch: Path, size: int, draw: st.DataObject
) -> None:
    raw = part_bytes(scratch, data_of(size))
    cut = draw.draw(st.integers(0, len(raw) - 1))
    extra = draw.draw(st.binary(min_size=1, max_size=100))
    for changed in (raw[:cut], raw + extra):
        with opened(scratch, changed) as fd, pytest.raises(Damage):
            read_header(fd)
        with pytest.raises(Damage):
            check_bytes(changed)


# -- reading ---------------------------------------------------------------------------


@settings(max_examples=80, deadline=None)
@given(sizes, batches, st.booleans(), st.data())
def test_any_range_of_a_healthy_file_reads_exactly(
    scratch: Path, size: int, batch: int, cached_only: bool, draw: st.DataObject
) -> None:
    data = data_of(size)
    raw = part_bytes(scratch, data)
    if size == 0:
        assert read_range(scratch, raw, 0, -1, batch, cached_only=cached_only) == (b"", None)
        return
    first = draw.draw(st.integers(0, size - 1))
    last = draw.draw(st.integers(first, size - 1))
    received = read_range(scratch, raw, first, last, batch, cached_only=cached_only)
    assert received == (data[first : last + 1], None)


@settings(max_examples=300, deadline=None)
@given(st.integers(1, 4 * B + 100), batches, st.booleans(), st.data())
def test_a_flipped_byte_is_found_by_any_read_that_covers_it_and_no_wrong_byte_leaves(
    scratch: Path, size: int, batch: int, cached_only: bool, draw: st.DataObject
) -> None:
    data = data_of(size)
    raw = bytearray(part_bytes(scratch, data))
    offset = draw.draw(st.integers(0, len(raw) - 1))
    raw[offset] ^= 1 << draw.draw(st.integers(0, 7))
    first = draw.draw(st.integers(0, size - 1))
    last = draw.draw(st.integers(first, size - 1))
    received, damage = read_range(scratch, bytes(raw), first, last, batch, cached_only=cached_only)
    assert received == data[first : first + len(received)]  # never a wrong byte
    damaged_block = None if offset < HEADER_SIZE else (offset - HEADER_SIZE) // (B + 8)
    covered = damaged_block is None or first // B <= damaged_block <= last // B
    assert (damage is not None) == covered
    if damaged_block is not None and covered:
        assert len(received) <= max(0, damaged_block * B - first)  # nothing of that block
    with opened(scratch, bytes(raw)) as fd, pytest.raises(Damage):
        check_file(fd)  # a whole-file check always finds it


needs_nowait = pytest.mark.skipif(
    not hasattr(os, "RWF_NOWAIT"), reason="reads that skip the disk need RWF_NOWAIT (Linux)"
)


@needs_nowait
def test_a_read_for_cached_bytes_only_refuses_to_wait_for_the_disk(
    temp_dir: Path, final_path: Path
) -> None:
    data = data_of(5 * B + 9)
    write_part(temp_dir, final_path, data, fsync=True)
    fd = os.open(final_path, os.O_RDONLY)
    try:
        header = read_header(fd)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)  # written out: can be dropped
        try:
            read_payload(fd, header, 1, 3, cached_only=True)
        except BlockingIOError:
            pass
        else:
            pytest.skip("this file system keeps the pages (tmpfs): nothing to miss")
        assert read_payload(fd, header, 1, 3) == data[B : 4 * B]
        assert read_payload(fd, header, 1, 3, cached_only=True) == data[B : 4 * B]
    finally:
        os.close(fd)


@needs_nowait
def test_a_short_file_is_for_the_blocking_read_to_call_damaged(scratch: Path) -> None:
    data = data_of(3 * B)
    raw = part_bytes(scratch, data)[: -B // 2]
    with opened(scratch, raw) as fd:
        header = Header(len(data))  # what the header says; the file is shorter
        with pytest.raises(BlockingIOError):
            read_payload(fd, header, 0, 3, cached_only=True)
        with pytest.raises(Damage, match="ends inside block 2"):
            read_payload(fd, header, 0, 3)


def test_a_read_of_more_blocks_than_one_scatter_read_takes(scratch: Path) -> None:
    """Past VECTOR_BLOCKS blocks a read is several scatter reads: the payload is still
    one run of bytes, and damage or a short file past the first one is still named."""
    blocks = VECTOR_BLOCKS + 44
    data = data_of(blocks * B + 11)
    raw = part_bytes(scratch, data, [3 * B])
    with opened(scratch, raw) as fd:
        header = read_header(fd)
        assert read_payload(fd, header, 0, blocks + 1) == data
        assert read_payload(fd, header, 5, blocks) == data[5 * B :]
    bad = VECTOR_BLOCKS + 20
    flipped = bytearray(raw)
    flipped[header.frame_offset(bad) + CHECK_SIZE + 7] ^= 0x10
    with opened(scratch, bytes(flipped)) as fd, pytest.raises(Damage, match=f"block {bad} "):
        read_payload(fd, header, 0, blocks + 1)
    short = raw[: header.frame_offset(bad) + 100]
    with opened(scratch, short) as fd, pytest.raises(Damage, match=f"ends inside block {bad}"):
        read_payload(fd, header, 0, blocks + 1)


# -- whole-file checks -----------------------------------------------------------------


@settings(max_examples=60, deadline=None)
@given(sizes, st.lists(st.integers(1, 3 * B), min_size=1, max_size=6))
def test_the_file_checker_accepts_any_feeding_of_a_healthy_file(
    scratch: Path, size: int, pieces: list[int]
) -> None:
    data = data_of(size)
    raw = part_bytes(scratch, data)
    checker = FileChecker(crc=True, payload_checksum=True)
    position = index = 0
    while position < len(raw):
        checker.feed(raw[position : position + pieces[index % len(pieces)]])
        position += pieces[index % len(pieces)]
        index += 1
    assert checker.finish() == Header(size)
    assert checker.crc32 == zlib.crc32(raw)
    assert checker.payload_checksum == xxhash.xxh3_64_intdigest(data)
    assert checker.size == len(raw)
    with opened(scratch, raw) as fd:
        whole = check_file(fd, payload_checksum=True)
        assert whole.payload_checksum == xxhash.xxh3_64_intdigest(data)


def test_a_block_moved_to_another_position_does_not_validate(scratch: Path) -> None:
    """Blocks 0 and 1 swapped (each with its own checksum): every block is intact, but
    the seed of its checksum says where it belongs."""
    data = data_of(2 * B)
    raw = part_bytes(scratch, data)
    frame = B + 8
    swapped = raw[:32] + raw[32 + frame :] + raw[32 : 32 + frame]
    assert len(swapped) == len(raw)
    with opened(scratch, swapped) as fd, pytest.raises(Damage, match="block 0"):
        check_file(fd)


def test_a_staged_part_is_written_as_received_and_checked(scratch: Path, tmp_path: Path) -> None:
    data = data_of(2 * B + 3)
    raw = part_bytes(scratch, data)
    staged = StagedPart(tmp_path, "node-t", fsync=False)
    for start in range(0, len(raw), 5000):
        staged.write(raw[start : start + 5000])
    staged.commit(tmp_path / "installed", threading.Lock())
    assert (tmp_path / "installed").read_bytes() == raw
    assert staged.checker.finish() == Header(len(data))
    assert staged.checker.crc32 == zlib.crc32(raw)
    grouped = StagedPart(tmp_path, "node-t", fsync=False)
    grouped.write_pieces([raw[:100], b"", raw[100:5000]])
    grouped.write_pieces([raw[5000:]])
    grouped.commit(tmp_path / "grouped", threading.Lock())
    assert (tmp_path / "grouped").read_bytes() == raw
    assert grouped.checker.crc32 == zlib.crc32(raw)
    broken = StagedPart(tmp_path, "node-t", fsync=False)
    with pytest.raises(Damage, match="block 1"):
        broken.write(raw[: 32 + B + 8 + 8] + bytes([raw[32 + B + 16] ^ 1]) + raw[32 + B + 17 :])
    broken.abort()


# -- names and sectors -----------------------------------------------------------------


@pytest.mark.parametrize(
    "name", ["a", "Z", "0", "a" * 200, "upload-0001-2-5", "a.b_c-d", "a..b", "A_"]
)
def test_valid_names(name: str) -> None:
    assert check_name(name) == name


@pytest.mark.parametrize(
    "name",
    ["", "a" * 201, ".x", "-x", "_x", "a/b", "..", "a b", "a\nb", "ü", 5, None, b"ab"],
)
def test_invalid_names(name: object) -> None:
    with pytest.raises(InvalidName, match="part name"):
        check_name(name)  # type: ignore[arg-type]


@pytest.mark.parametrize("sector", [0, 1, 359])
def test_valid_sectors(sector: int) -> None:
    assert check_sector(sector) == sector


@pytest.mark.parametrize("sector", [-1, 360, True, False, 1.0, "1", None])
def test_invalid_sectors(sector: object) -> None:
    with pytest.raises(InvalidName, match="sector"):
        check_sector(sector)  # type: ignore[arg-type]


def test_sector_directories_have_three_digits() -> None:
    assert [sector_dir_name(s) for s in (0, 7, 42, 359)] == ["000", "007", "042", "359"]


# -- failures --------------------------------------------------------------------------


@pytest.mark.parametrize("error", [errno.ENOSPC, errno.EDQUOT], ids=["ENOSPC", "EDQUOT"])
@pytest.mark.parametrize(
    "room",
    [0, 10, 32 + 1000, 32 + 2 * (B + 8) + 100, 32 + 2 * (B + 8) + 8 + 5000],
    ids=["header-placeholder", "inside-header", "payload", "last-block", "header-on-commit"],
)
def test_disk_full_raises_disk_full_and_leaves_no_temp_file(
    temp_dir: Path, final_path: Path, monkeypatch: pytest.MonkeyPatch, room: int, error: int
) -> None:
    faulty_files(monkeypatch, room=room, error=error)
    with pytest.raises(DiskFull, match="node-t") as raised:
        write_part(temp_dir, final_path, data_of(B + 3000), data_of(B + 2000, seed=1))
    assert isinstance(raised.value.__cause__, OSError)
    assert raised.value.__cause__.errno == error
    assert list(temp_dir.iterdir()) == []
    assert not final_path.exists()


def test_disk_full_on_commit_keeps_the_previous_part(
    temp_dir: Path, final_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_part(temp_dir, final_path, b"old")
    old = final_path.read_bytes()
    faulty_files(monkeypatch, room=32 + 8 + 3)  # room for all but the sealed header
    with pytest.raises(DiskFull):
        write_part(temp_dir, final_path, b"new")
    assert final_path.read_bytes() == old
    assert list(temp_dir.iterdir()) == []


@pytest.mark.parametrize("call", ["fsync", "replace"])
def test_disk_full_while_sealing_raises_disk_full(
    temp_dir: Path, final_path: Path, monkeypatch: pytest.MonkeyPatch, call: str
) -> None:
    patch_partfile_os(monkeypatch, **{call: failing(errno.ENOSPC)})
    with pytest.raises(DiskFull):
        write_part(temp_dir, final_path, b"abc", fsync=True)
    assert list(temp_dir.iterdir()) == []
    assert not final_path.exists()


def test_other_errors_on_commit_propagate_and_leave_no_temp_file(
    temp_dir: Path, final_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    patch_partfile_os(monkeypatch, replace=failing(errno.EIO))
    with pytest.raises(OSError, match=os.strerror(errno.EIO)) as raised:
        write_part(temp_dir, final_path, b"abc")
    assert not isinstance(raised.value, DiskFull)
    assert raised.value.errno == errno.EIO
    assert list(temp_dir.iterdir()) == []


def test_other_errors_while_writing_propagate_and_clean_up(
    temp_dir: Path, final_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    faulty_files(monkeypatch, room=32 + 10, error=errno.EIO)
    writer = PartWriter(temp_dir, "node-t", fsync=False)
    with pytest.raises(OSError, match=os.strerror(errno.EIO)) as raised:
        writer.write(data_of(2 * B))
    assert raised.value.errno == errno.EIO
    writer.abort()
    assert list(temp_dir.iterdir()) == []


@pytest.mark.parametrize("fsync", [True, False])
def test_fsync_covers_the_file_and_its_directory(
    temp_dir: Path, final_path: Path, monkeypatch: pytest.MonkeyPatch, fsync: bool
) -> None:
    calls: list[str] = []
    patch_partfile_os(monkeypatch, fsync=fsync_recorder(calls))
    write_part(temp_dir, final_path, b"durable", fsync=fsync)
    assert sorted(calls) == (["dir", "file"] if fsync else [])
    assert final_path.read_bytes()[40:] == b"durable"
