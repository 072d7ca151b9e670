"""StorageNode behaviour that the NodeClient contract cannot express: what is on disk
(usage measured at open, temp files cleared, node.json), disk-full handling, fsync,
file handles, and races between calls. The interface itself is covered by
``tests/transport/contract.py`` over the memory transport."""

from __future__ import annotations

import contextlib
import errno
import io
import json
import os
import sys
import threading
import zipfile
from collections.abc import AsyncIterator
from pathlib import Path

import anyio
import anyio.from_thread
import pytest

from s3lite import DiskFull, InvalidName, NodeUnavailable, PartNotFound
from s3lite.storager import StorageNode, partfile
from s3lite.storager import node as node_module
from s3lite.transport import ImportResult, PartStat

if "tests.transport.contract" not in sys.modules:  # rewrite its asserts for readable failures
    pytest.register_assert_rewrite("tests.transport.contract")

from ..transport.contract import chunked, payload, read_all, stat_of
from .test_partfile import faulty_files, fsync_recorder, patch_partfile_os

pytestmark = pytest.mark.anyio

MiB = 1 << 20
HEADER = 32


async def open_node(data_dir: Path, node_id: str | None = "node-t", **kwargs: bool) -> StorageNode:
    return await StorageNode.open(data_dir, node_id, fsync=kwargs.get("fsync", False))


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "node"


@pytest.fixture
async def node(data_dir: Path) -> AsyncIterator[StorageNode]:
    opened = await open_node(data_dir)
    yield opened
    opened.close()


async def reopen(node: StorageNode) -> StorageNode:
    node.close()
    return await StorageNode.open(node.data_dir, fsync=False)


def disk_usage(data_dir: Path) -> dict[int, int]:
    """Bytes per sector as the directory says, independently of the node."""
    usage: dict[int, int] = {}
    for path in (data_dir / "sectors").glob("*/*"):
        usage[int(path.parent.name)] = usage.get(int(path.parent.name), 0) + path.stat().st_size
    return {sector: size for sector, size in usage.items() if size}


def tmp_contents(data_dir: Path) -> list[str]:
    return sorted(p.relative_to(data_dir).as_posix() for p in (data_dir / "tmp").rglob("*"))


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


PARTS = [(0, "a", 0), (0, "b", 1), (5, "c", 3 * MiB + 7), (5, "d", 4096), (359, "e", 100)]


async def fill(node: StorageNode) -> None:
    for sector, name, size in PARTS:
        await node.put_part(sector, name, chunked(payload(size), [65_537, 1, 0]))


# -- usage -----------------------------------------------------------------------------


async def test_usage_is_payload_plus_a_32_byte_header_per_part(node: StorageNode) -> None:
    await fill(node)
    expected: dict[int, int] = {}
    for sector, _, size in PARTS:
        expected[sector] = expected.get(sector, 0) + HEADER + size
    assert await node.usage() == expected
    assert disk_usage(node.data_dir) == expected
    assert (await node.health()).bytes_stored == sum(expected.values())


async def test_usage_is_measured_from_disk_at_open(node: StorageNode) -> None:
    await fill(node)
    await node.link_part("c", 5, 6)
    await node.delete_parts(0, ["b"])
    tracked = await node.usage()
    reopened = await reopen(node)
    assert await reopened.usage() == tracked
    assert await reopened.usage() == disk_usage(node.data_dir)
    assert (await reopened.health()).parts == len(PARTS)  # one deleted, one linked


async def test_part_files_placed_while_closed_are_counted_at_open(node: StorageNode) -> None:
    await node.put_part(3, "p", chunked(b"x" * 1000))
    node.close()
    (node.data_dir / "sectors" / "004").mkdir()
    (node.data_dir / "sectors" / "003" / "p").rename(node.data_dir / "sectors" / "004" / "p")
    reopened = await StorageNode.open(node.data_dir, fsync=False)
    assert await reopened.usage() == {4: HEADER + 1000}
    assert await read_all(await reopened.get_part(4, "p")) == b"x" * 1000


async def test_temp_files_are_cleared_at_open(node: StorageNode) -> None:
    await node.put_part(1, "kept", chunked(b"kept"))
    tmp = node.data_dir / "tmp"
    (tmp / "part-abandoned").write_bytes(b"\0" * 5000)
    (tmp / "import-0123" / "001").mkdir(parents=True)
    (tmp / "import-0123" / "001" / "staged").write_bytes(b"\0" * 5000)
    reopened = await reopen(node)
    assert tmp_contents(node.data_dir) == []
    assert await reopened.usage() == {1: HEADER + 4}
    assert [s.name for s in await reopened.list_parts(1)] == ["kept"]
    await reopened.put_part(1, "after", chunked(b"tmp still works"))


# -- identity --------------------------------------------------------------------------


async def test_the_node_id_is_persisted_in_node_json(data_dir: Path) -> None:
    first = await open_node(data_dir, "node-a")
    assert json.loads((data_dir / "node.json").read_text()) == {"node_id": "node-a"}
    assert first.address == "memory://node-a"
    first.close()
    assert (await open_node(data_dir, None)).node_id == "node-a"
    assert (await open_node(data_dir, "node-a")).node_id == "node-a"


async def test_a_mismatching_node_id_raises_value_error(data_dir: Path) -> None:
    (await open_node(data_dir, "node-a")).close()
    with pytest.raises(ValueError, match=r"node-a.*node-b"):
        await open_node(data_dir, "node-b")
    assert json.loads((data_dir / "node.json").read_text()) == {"node_id": "node-a"}


async def test_a_new_node_without_an_id_gets_a_random_one(tmp_path: Path) -> None:
    one = await open_node(tmp_path / "one", None)
    two = await open_node(tmp_path / "two", None)
    assert one.node_id != two.node_id
    assert one.node_id.startswith("node-")
    one.close()
    assert (await open_node(tmp_path / "one", None)).node_id == one.node_id


@pytest.mark.parametrize("node_id", ["../evil", "a/b", ".hidden", ""])
async def test_an_unusable_node_id_is_refused(data_dir: Path, node_id: str) -> None:
    if node_id == "":  # empty means "pick one", like None
        assert (await open_node(data_dir, node_id)).node_id.startswith("node-")
        return
    with pytest.raises(InvalidName):
        await open_node(data_dir, node_id)
    assert not (data_dir / "node.json").exists()


# -- disk full -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "room",
    [0, HEADER + 1000, HEADER + 2 * MiB + 5],
    ids=["first-write", "mid-stream", "sealing-the-header"],
)
async def test_disk_full_raises_disk_full_and_stores_nothing(
    node: StorageNode, monkeypatch: pytest.MonkeyPatch, room: int
) -> None:
    await node.put_part(1, "old", chunked(b"old"))
    usage = await node.usage()
    faulty_files(monkeypatch, room=room)
    for name in ["new", "old"]:
        body = chunked(payload(2 * MiB + 5), [MiB + 1, 3])
        with pytest.raises(DiskFull, match="node-t"):
            await node.put_part(1, name, body)
        assert tmp_contents(node.data_dir) == []
    assert await node.usage() == usage
    assert await node.list_parts(1) == [stat_of(1, "old", b"old")]
    with pytest.raises(PartNotFound):
        await node.get_part(1, "new")
    monkeypatch.undo()  # space freed: writing works again
    await node.put_part(1, "new", chunked(b"new"))
    assert await node.usage() == disk_usage(node.data_dir)


async def test_disk_full_on_fsync_raises_disk_full(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    node = await open_node(data_dir, fsync=True)

    def fsync(fd: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    patch_partfile_os(monkeypatch, fsync=fsync)
    with pytest.raises(DiskFull):
        await node.put_part(1, "p", chunked(b"abc"))
    assert tmp_contents(data_dir) == []
    assert await node.usage() == {}
    assert await node.list_parts(1) == []


async def test_disk_full_during_an_import_stores_nothing(
    node: StorageNode, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = await open_node(tmp_path / "source", "node-s")
    await fill(source)
    archive = await read_all(await source.export_sectors([0, 5, 359]))
    await node.put_part(5, "c", chunked(b"older"))
    usage = await node.usage()
    faulty_files(monkeypatch, room=HEADER + MiB)
    with pytest.raises(DiskFull):
        await node.import_sectors(chunked(archive))
    assert tmp_contents(node.data_dir) == []
    assert await node.usage() == usage
    assert await node.list_parts(0) == []
    assert await read_all(await node.get_part(5, "c")) == b"older"


# -- fsync -----------------------------------------------------------------------------


async def test_with_fsync_every_stored_part_is_synced_with_its_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[str] = []
    patch_partfile_os(monkeypatch, fsync=fsync_recorder(calls))
    node = await open_node(tmp_path / "durable", fsync=True)
    await node.put_part(1, "p", chunked(payload(MiB + 3)))
    assert calls == ["file", "dir"]
    assert await read_all(await node.get_part(1, "p")) == payload(MiB + 3)

    calls.clear()
    target = await open_node(tmp_path / "target", "node-u", fsync=True)
    await node.put_part(2, "q", chunked(b"q"))
    calls.clear()
    result = await target.import_sectors(await node.export_sectors([1, 2]))
    assert result == ImportResult(2, MiB + 4)
    assert calls.count("file") == 2  # each staged part is made durable before install
    assert await target.usage() == await node.usage()


async def test_without_fsync_nothing_is_synced(
    node: StorageNode, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[str] = []
    patch_partfile_os(monkeypatch, fsync=fsync_recorder(calls))
    await node.put_part(1, "p", chunked(b"fast"))
    assert calls == []


# -- a node closed mid-call ------------------------------------------------------------


async def test_a_node_closed_during_an_upload_stores_nothing(node: StorageNode) -> None:
    async def body() -> AsyncIterator[bytes]:
        yield payload(2 * MiB)
        node.close()
        yield b"end"

    with pytest.raises(NodeUnavailable):
        await node.put_part(1, "p", body())
    assert tmp_contents(node.data_dir) == []
    assert disk_usage(node.data_dir) == {}


async def test_a_node_closed_during_an_import_stores_nothing(
    node: StorageNode, tmp_path: Path
) -> None:
    source = await open_node(tmp_path / "source", "node-s")
    await fill(source)
    archive = await read_all(await source.export_sectors([0, 5]))

    class ClosingBody(chunked):
        async def __anext__(self) -> bytes:
            if self.consumed > len(archive) // 2:
                node.close()
            return await super().__anext__()

    with pytest.raises(NodeUnavailable):
        await node.import_sectors(ClosingBody(archive, [MiB // 4]))
    assert tmp_contents(node.data_dir) == []
    assert disk_usage(node.data_dir) == {}


# -- file handles ----------------------------------------------------------------------


async def test_streams_closed_unread_release_their_files(node: StorageNode) -> None:
    await node.put_part(1, "p", chunked(payload(MiB)))
    before = open_fds()
    streams = [await node.get_part(1, "p") for _ in range(10)]
    streams += [await node.get_part(1, "p", 10, 20) for _ in range(10)]
    assert open_fds() == before + 20
    for stream in streams:
        await stream.aclose()
    assert open_fds() == before


async def test_streams_read_to_the_end_release_their_files(node: StorageNode) -> None:
    await node.put_part(1, "p", chunked(payload(MiB)))
    before = open_fds()
    for _ in range(5):
        stream = await node.get_part(1, "p")
        async for _ in stream:
            pass
    assert open_fds() == before


async def test_refused_ranges_release_their_files(node: StorageNode) -> None:
    await node.put_part(1, "p", chunked(b"abc"))
    before = open_fds()
    for _ in range(5):
        with pytest.raises(Exception, match="outside"):
            await node.get_part(1, "p", 3, None)
    assert open_fds() == before


async def test_an_export_closed_early_releases_its_files(node: StorageNode) -> None:
    await fill(node)
    before = open_fds()
    stream = await node.export_sectors([0, 5, 359])
    await anext(stream)
    await anext(stream)
    await stream.aclose()
    assert open_fds() == before


# -- races between calls ---------------------------------------------------------------


async def test_an_export_survives_parts_deleted_while_it_streams(
    node: StorageNode, tmp_path: Path
) -> None:
    for name in ["a", "b", "c"]:
        await node.put_part(4, name, chunked(payload(300_000, seed=ord(name))))
    stream = await node.export_sectors([4])
    chunks = [await anext(stream)]  # the listing is taken and "a" is open
    assert await node.delete_parts(4, ["a", "b"]) == 2
    chunks += [chunk async for chunk in stream]
    await stream.aclose()
    archive = b"".join(chunks)
    with zipfile.ZipFile(io.BytesIO(archive)) as opened:
        assert opened.testzip() is None
        assert opened.namelist() == ["004/a", "004/c"]  # "a" was already open; "b" went
    target = await open_node(tmp_path / "target", "node-u")
    assert await target.import_sectors(chunked(archive)) == ImportResult(2, 600_000)
    assert await read_all(await target.get_part(4, "a")) == payload(300_000, seed=ord("a"))
    assert [s.name for s in await target.list_parts(4)] == ["a", "c"]


async def test_an_export_survives_a_part_replaced_while_it_streams(node: StorageNode) -> None:
    await node.put_part(4, "a", chunked(b"a" * 10))
    await node.put_part(4, "b", chunked(b"b" * 10))
    stream = await node.export_sectors([4])
    chunks = [await anext(stream)]
    await node.put_part(4, "b", chunked(b"B" * 20))  # listed at 10 bytes, now 20
    chunks += [chunk async for chunk in stream]
    with zipfile.ZipFile(io.BytesIO(b"".join(chunks))) as opened:
        assert opened.testzip() is None
        assert opened.read("004/b") == b"B" * 20


async def test_concurrent_puts_of_one_name_count_the_part_once(
    node: StorageNode, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Without the node's namespace lock both writers meet here, each having seen no
    # previous file, and the part is counted twice. With it the second writer cannot
    # get here until the first has renamed, so the first gives up waiting after a
    # moment (the only way to show that something does not happen).
    both_sealed = threading.Barrier(2, timeout=0.5)

    def replace(source: str, target: str) -> None:
        with contextlib.suppress(threading.BrokenBarrierError):
            both_sealed.wait()
        os.replace(source, target)

    patch_partfile_os(monkeypatch, replace=replace)
    async with anyio.create_task_group() as group:
        for _ in range(2):
            group.start_soon(node.put_part, 1, "same", chunked(b"x" * 100))
    monkeypatch.undo()
    assert await node.list_parts(1) == [PartStat("same", 1, 100, stat_of(1, "", b"x" * 100).crc32)]
    assert await node.usage() == disk_usage(node.data_dir)


async def test_an_import_cancelled_while_installing_keeps_usage_exact(
    node: StorageNode, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = await open_node(tmp_path / "source", "node-s")
    await fill(source)
    archive = await read_all(await source.export_sectors([0, 5]))
    real_install = node_module._install
    with anyio.CancelScope() as scope:

        def install(
            staging: Path,
            sectors: Path,
            namespace: threading.Lock,
            fsync: bool,
            added: dict[int, int],
        ) -> None:
            anyio.from_thread.run_sync(scope.cancel)
            real_install(staging, sectors, namespace, fsync, added)

        monkeypatch.setattr(node_module, "_install", install)
        await node.import_sectors(chunked(archive))
    assert await node.usage() == disk_usage(node.data_dir)


async def test_imports_and_links_are_durable_before_they_return(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The donors drop their copies once an import returns, and a re-home deletes the
    old link once link_part returns: both must have reached the disk by then."""
    synced: list[Path] = []
    real_fsync_dir = partfile.fsync_dir

    def recording_fsync_dir(path: Path) -> None:
        synced.append(Path(path))
        real_fsync_dir(path)

    source = await open_node(tmp_path / "source", "node-s")
    await fill(source)
    archive = await read_all(await source.export_sectors([0, 5]))
    target = await StorageNode.open(tmp_path / "target", "node-t", fsync=True)
    monkeypatch.setattr(partfile, "fsync_dir", recording_fsync_dir)
    await target.import_sectors(chunked(archive))
    sectors = target.data_dir / "sectors"
    assert {sectors / "000", sectors / "005", sectors} <= set(synced)
    synced.clear()
    name = (await target.list_parts(5))[0].name
    await target.link_part(name, 5, 9)
    assert sectors / "009" in synced
