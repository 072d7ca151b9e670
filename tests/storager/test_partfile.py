"""The part file format and its writer: header layout, names, and every way a write can
fail (disk full at each step, other I/O errors), which must leave no temporary file.

The fault helpers here (``FaultyFile``, ``patch_partfile_os``) are also used by
``test_node.py``: they replace what ``partfile`` sees as ``os`` with a copy, so the real
``os`` module (used by pytest, tempfile and the event loop) is never touched.
"""

from __future__ import annotations

import errno
import gc
import os
import stat
import struct
import threading
import types
import warnings
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from s3lite import DataLoss, DiskFull, InvalidName, PartNotFound
from s3lite.sectors import check_sector
from s3lite.storager import partfile
from s3lite.storager.partfile import (
    HEADER_SIZE,
    PartWriter,
    open_part,
    read_header,
    sector_dir_name,
)
from s3lite.transport.base import check_name

# -- fault injection -------------------------------------------------------------------


class FaultyFile:
    """Wraps the raw file PartWriter writes through.

    Accepts ``room`` more bytes (None: unlimited), then fails every write with ``error``,
    as a full disk does: the write that crosses the limit is short, the next one fails.
    ``max_write`` caps each write, to exercise the short-write loop.
    """

    def __init__(
        self,
        raw: Any,
        room: int | None = None,
        error: int = errno.ENOSPC,
        max_write: int | None = None,
    ) -> None:
        self.raw = raw
        self.room = room
        self.error = error
        self.max_write = max_write
        self.writes = 0

    def write(self, data: Any) -> int:
        self.writes += 1
        size = len(data)
        if self.max_write is not None:
            size = min(size, self.max_write)
        if self.room is not None:
            if self.room == 0:
                raise OSError(self.error, os.strerror(self.error))
            size = min(size, self.room)
        written: int = self.raw.write(bytes(memoryview(data)[:size]))
        if self.room is not None:
            self.room -= written
        return written

    def __getattr__(self, name: str) -> Any:
        return getattr(self.raw, name)


def patch_partfile_os(monkeypatch: pytest.MonkeyPatch, **overrides: Any) -> None:
    """Make ``partfile`` see an ``os`` whose named functions are replaced."""
    fake = types.SimpleNamespace(**vars(os))
    for name, value in overrides.items():
        setattr(fake, name, value)
    monkeypatch.setattr(partfile, "os", fake)


def faulty_files(monkeypatch: pytest.MonkeyPatch, **faults: Any) -> list[FaultyFile]:
    """Every file PartWriter opens from now on is a FaultyFile(**faults); returns them."""
    opened: list[FaultyFile] = []
    real_fdopen = os.fdopen

    def fdopen(fd: int, *args: Any, **kwargs: Any) -> FaultyFile:
        opened.append(FaultyFile(real_fdopen(fd, *args, **kwargs), **faults))
        return opened[-1]

    patch_partfile_os(monkeypatch, fdopen=fdopen)
    return opened


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


# -- fixtures --------------------------------------------------------------------------


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


# -- the format ------------------------------------------------------------------------


def test_a_part_file_is_the_documented_header_then_the_payload(
    temp_dir: Path, final_path: Path
) -> None:
    data = b"hello, " * 1000 + b"world"
    write_part(temp_dir, final_path, data[:10], b"", data[10:])
    raw = final_path.read_bytes()
    assert HEADER_SIZE == 32
    assert len(raw) == 32 + len(data)
    assert raw[0:8] == b"S3LPART1"
    assert int.from_bytes(raw[8:16], "little") == len(data)
    assert int.from_bytes(raw[16:20], "little") == zlib.crc32(data)
    assert raw[20:32] == bytes(12)
    assert raw[32:] == data


def test_an_empty_part_is_a_header_only(temp_dir: Path, final_path: Path) -> None:
    write_part(temp_dir, final_path)
    assert final_path.read_bytes() == b"S3LPART1" + bytes(24)


def test_the_writer_reports_length_and_crc(temp_dir: Path, final_path: Path) -> None:
    writer = PartWriter(temp_dir, "node-t", fsync=False)
    for chunk in (b"a", bytearray(b"bc"), memoryview(b"def")):
        writer.write(chunk)
    assert (writer.length, writer.crc32) == (6, zlib.crc32(b"abcdef"))
    writer.commit(final_path, threading.Lock())


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
    assert final_path.read_bytes()[32:] == b"payload"


def test_commit_returns_the_size_of_the_replaced_file(temp_dir: Path, final_path: Path) -> None:
    assert write_part(temp_dir, final_path, b"x" * 100) == 0
    assert write_part(temp_dir, final_path, b"y" * 5) == 32 + 100
    assert final_path.read_bytes()[32:] == b"y" * 5


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
    temp_dir: Path, final_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    files = faulty_files(monkeypatch, max_write=3)
    data = bytes(range(256)) * 10
    write_part(temp_dir, final_path, data)
    assert final_path.read_bytes()[32:] == data
    assert files[0].writes > len(data) // 3


def test_read_header_returns_length_and_crc(temp_dir: Path, final_path: Path) -> None:
    write_part(temp_dir, final_path, b"abc")
    with open(final_path, "rb") as handle:
        assert read_header(handle, final_path) == (3, zlib.crc32(b"abc"))


@pytest.mark.parametrize(
    "content",
    [b"", b"S3LPART1", b"S3LPART1" + bytes(23), b"S3LPART2" + bytes(24), bytes(40)],
    ids=["empty", "magic-only", "one-short", "bad-magic", "zeros"],
)
def test_read_header_refuses_what_is_not_a_part(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "bogus"
    path.write_bytes(content)
    with open(path, "rb") as handle, pytest.raises(DataLoss, match="bogus"):
        read_header(handle, path)


def test_open_part_is_positioned_at_the_payload(temp_dir: Path, final_path: Path) -> None:
    write_part(temp_dir, final_path, b"payload")
    handle, length, crc = open_part(final_path, "node-t", 3, "part-1")
    with handle:
        assert (length, crc) == (7, zlib.crc32(b"payload"))
        assert handle.read() == b"payload"


def test_open_part_of_a_missing_file_names_the_part(tmp_path: Path) -> None:
    with pytest.raises(PartNotFound) as raised:
        open_part(tmp_path / "nope", "node-t", 12, "nope")
    assert (raised.value.node_id, raised.value.sector, raised.value.name) == ("node-t", 12, "nope")
    assert "node-t" in str(raised.value)


def test_open_part_closes_the_file_when_the_header_is_bad(tmp_path: Path) -> None:
    path = tmp_path / "bogus"
    path.write_bytes(b"junk")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(DataLoss, match="bogus"):
            open_part(path, "node-t", 1, "bogus")
        gc.collect()
    assert [w for w in caught if issubclass(w.category, ResourceWarning)] == []


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
    [0, 10, 32 + 1000, 32 + 5000],
    ids=["header-placeholder", "inside-header", "payload", "header-on-commit"],
)
def test_disk_full_raises_disk_full_and_leaves_no_temp_file(
    temp_dir: Path, final_path: Path, monkeypatch: pytest.MonkeyPatch, room: int, error: int
) -> None:
    faulty_files(monkeypatch, room=room, error=error)
    with pytest.raises(DiskFull, match="node-t") as raised:
        write_part(temp_dir, final_path, b"x" * 3000, b"y" * 2000)
    assert isinstance(raised.value.__cause__, OSError)
    assert raised.value.__cause__.errno == error
    assert list(temp_dir.iterdir()) == []
    assert not final_path.exists()


def test_disk_full_on_commit_keeps_the_previous_part(
    temp_dir: Path, final_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_part(temp_dir, final_path, b"old")
    faulty_files(monkeypatch, room=32 + 3)
    with pytest.raises(DiskFull):
        write_part(temp_dir, final_path, b"new")
    assert final_path.read_bytes()[32:] == b"old"
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


def test_other_errors_while_writing_propagate_and_abort_cleans_up(
    temp_dir: Path, final_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    faulty_files(monkeypatch, room=32 + 10, error=errno.EIO)
    writer = PartWriter(temp_dir, "node-t", fsync=False)
    with pytest.raises(OSError, match=os.strerror(errno.EIO)) as raised:
        writer.write(b"z" * 100)
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
    assert final_path.read_bytes()[32:] == b"durable"


def test_the_header_struct_matches_the_documented_layout() -> None:
    packed = partfile.HEADER.pack(partfile.MAGIC, 2**40 + 1, 0xDEADBEEF)
    assert packed == b"S3LPART1" + struct.pack("<QI", 2**40 + 1, 0xDEADBEEF) + bytes(12)
