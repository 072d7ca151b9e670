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
import anyio.lowlevel
import pytest

from s3lite import DamagedPart, DiskFull, InvalidName, NodeUnavailable, PartNotFound
from s3lite.storager import StorageNode, layout, partfile, partwriter, sectorfiles
from s3lite.storager import node as node_module
from s3lite.storager.partfile import Header
from s3lite.transport import ImportResult, PartStat

if "tests.transport.contract" not in sys.modules:  # rewrite its asserts for readable failures
    pytest.register_assert_rewrite("tests.transport.contract")

from ..transport.contract import chunked, payload, read_all, stat_of
from .test_partfile import faulty_files, fsync_recorder, patch_partfile_os

pytestmark = pytest.mark.anyio

MiB = 1 << 20
HEADER = 32


def stored(size: int) -> int:
    """Bytes a part of ``size`` payload bytes takes on disk."""
    return Header(size).file_size


async def open_node(
    data_dir: Path, node_id: str | None = "node-t", *, fsync: bool = False, reserve: int = 0
) -> StorageNode:
    return await StorageNode.open(data_dir, node_id, fsync=fsync, reserve=reserve)


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
    return await StorageNode.open(node.data_dir, fsync=False, reserve=0)


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


async def test_usage_is_the_size_of_the_part_files(node: StorageNode) -> None:
    await fill(node)
    expected: dict[int, int] = {}
    for sector, _, size in PARTS:
        expected[sector] = expected.get(sector, 0) + stored(size)
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
    assert await reopened.usage() == {4: stored(1000)}
    assert await read_all(await reopened.get_part(4, "p")) == b"x" * 1000


async def test_temp_files_are_cleared_at_open(node: StorageNode) -> None:
    await node.put_part(1, "kept", chunked(b"kept"))
    tmp = node.data_dir / "tmp"
    (tmp / "part-abandoned").write_bytes(b"\0" * 5000)
    (tmp / "import-0123" / "001").mkdir(parents=True)
    (tmp / "import-0123" / "001" / "staged").write_bytes(b"\0" * 5000)
    reopened = await reopen(node)
    assert tmp_contents(node.data_dir) == []
    assert await reopened.usage() == {1: stored(4)}
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
    [0, HEADER + 1000, stored(2 * MiB + 5)],
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


# -- reads from the page cache -------------------------------------------------------


async def test_a_part_in_the_page_cache_streams_without_a_thread_hop(
    node: StorageNode, monkeypatch: pytest.MonkeyPatch
) -> None:
    if not node_module.CACHED_READS:
        pytest.skip("no RWF_NOWAIT here: every read goes through a worker thread")
    data = payload(4 * MiB + 3)
    await node.put_part(1, "p", chunked(data, [MiB]))
    stream = await node.get_part(1, "p", 5, None)  # opening reads the first batch
    hops = 0
    real = anyio.to_thread.run_sync

    async def counted(*args: object, **kwargs: object) -> object:
        nonlocal hops
        hops += 1
        return await real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(anyio.to_thread, "run_sync", counted)
    assert await read_all(stream) == data[5:]
    assert hops == 0


async def test_a_part_read_from_the_page_cache_still_lets_other_tasks_run(
    node: StorageNode,
) -> None:
    """Reads on the loop yield to it after every batch, as the thread hop did: a long
    cached part must not starve the node's other requests (or a disconnect watch)."""
    data = payload(4 * MiB)
    await node.put_part(1, "p", chunked(data, [MiB]))
    stream = await node.get_part(1, "p")
    turns = 0
    reading = True

    async def count_turns() -> None:
        nonlocal turns
        while reading:
            turns += 1
            await anyio.lowlevel.checkpoint()

    async with anyio.create_task_group() as group:
        group.start_soon(count_turns)
        await anyio.lowlevel.checkpoint()
        started = turns
        assert await read_all(stream) == data
        reading = False
    assert turns - started >= len(data) // node_module.READ_BATCH - 2


async def test_a_part_not_in_the_page_cache_is_read_in_a_worker_thread(
    node: StorageNode, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = payload(2 * MiB + 3)
    await node.put_part(1, "p", chunked(data, [MiB]))
    stream = await node.get_part(1, "p")  # the opening read is in a thread anyway
    on_the_loop = threading.get_ident()
    asked: list[int] = []
    waited: list[int] = []
    preadv = os.preadv

    def not_cached(fd: int, buffers: list[memoryview], offset: int, flags: int = 0) -> int:
        if flags:  # a read from the page cache only
            asked.append(threading.get_ident())
            raise BlockingIOError(errno.EAGAIN, "not in the page cache")
        waited.append(threading.get_ident())
        return preadv(fd, buffers, offset, flags)

    monkeypatch.setattr(partfile.os, "preadv", not_cached)
    assert await read_all(stream) == data
    batches = -(-len(data) // node_module.READ_BATCH) - 1  # after the opening one
    assert len(waited) == batches
    assert on_the_loop not in waited
    if node_module.CACHED_READS:
        assert asked == [on_the_loop] * batches  # each asked the page cache first


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
        assert opened.read("004/b") == (node.data_dir / "sectors/004/b").read_bytes()
        assert opened.read("004/b").endswith(b"B" * 20)


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
    assert await node.list_parts(1) == [PartStat("same", 1, 100)]
    assert await node.usage() == disk_usage(node.data_dir)


async def test_an_import_cancelled_while_installing_keeps_usage_exact(
    node: StorageNode, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = await open_node(tmp_path / "source", "node-s")
    await fill(source)
    archive = await read_all(await source.export_sectors([0, 5]))
    real_install = sectorfiles.install
    with anyio.CancelScope() as scope:

        def install(
            staging: Path,
            sectors: Path,
            namespace: threading.Lock,
            fsync: bool,
            added: dict[int, tuple[int, int]],
        ) -> None:
            anyio.from_thread.run_sync(scope.cancel)
            real_install(staging, sectors, namespace, fsync, added)

        monkeypatch.setattr(sectorfiles, "install", install)
        await node.import_sectors(chunked(archive))
    assert await node.usage() == disk_usage(node.data_dir)


async def test_imports_and_links_are_durable_before_they_return(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The donors drop their copies once an import returns, and a re-home deletes the
    old link once link_part returns: both must have reached the disk by then."""
    synced: list[Path] = []
    real_fsync_dir = partwriter.fsync_dir

    def recording_fsync_dir(path: Path) -> None:
        synced.append(Path(path))
        real_fsync_dir(path)

    source = await open_node(tmp_path / "source", "node-s")
    await fill(source)
    archive = await read_all(await source.export_sectors([0, 5]))
    target = await open_node(tmp_path / "target", "node-t", fsync=True)
    monkeypatch.setattr(partwriter, "fsync_dir", recording_fsync_dir)
    await target.import_sectors(chunked(archive))
    sectors = target.data_dir / "sectors"
    assert {sectors / "000", sectors / "005", sectors} <= set(synced)
    synced.clear()
    name = (await target.list_parts(5))[0].name
    await target.link_part(name, 5, 9)
    assert sectors / "009" in synced


# -- part counts, free space and the reserve ---------------------------------------------


def disk_parts(data_dir: Path) -> int:
    return sum(1 for path in (data_dir / "sectors").glob("*/*") if path.is_file())


async def test_health_counts_parts_without_walking_the_directory(
    node: StorageNode, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    await fill(node)
    await node.put_part(0, "a", chunked(b"overwritten"))
    await node.link_part("c", 5, 6)
    await node.link_part("c", 5, 6)  # already there
    await node.delete_parts(0, ["b", "missing"])
    source = await open_node(tmp_path / "source", "node-s")
    await source.put_part(7, "imported", chunked(b"i"))
    await source.put_part(0, "a", chunked(b"replaces a"))
    await node.import_sectors(await source.export_sectors([0, 7]))
    await node.drop_sectors([359])

    def no_walks(*args: object) -> None:
        raise AssertionError("health() walked a directory")

    monkeypatch.setattr(os, "scandir", no_walks)
    monkeypatch.setattr(os, "listdir", no_walks)
    health = await node.health()
    monkeypatch.undo()
    assert health.parts == disk_parts(node.data_dir) == 5
    assert (await reopen(node)).node_id == node.node_id
    assert (await StorageNode.open(node.data_dir)).node_id == node.node_id


async def test_free_space_and_full_follow_the_reserve(tmp_path: Path) -> None:
    relaxed = await open_node(tmp_path / "relaxed", reserve=0)
    health = await relaxed.health()
    assert health.free_bytes > 0
    assert not health.full
    strict = await open_node(tmp_path / "strict", reserve=health.free_bytes * 1000)
    assert (await strict.health()).full


async def test_a_full_node_refuses_new_parts_and_serves_everything_else(tmp_path: Path) -> None:
    data_dir = tmp_path / "node"
    roomy = await open_node(data_dir, reserve=0)
    await fill(roomy)
    roomy.close()
    full = await open_node(data_dir, reserve=1 << 62)
    before = await full.usage()
    with pytest.raises(DiskFull, match="reserve"):
        await full.put_part(1, "new", chunked(payload(3 * MiB), [MiB]))
    with pytest.raises(DiskFull):
        await full.put_part(0, "a", chunked(b""))  # an overwrite is a new part too
    with pytest.raises(DiskFull):
        await full.import_sectors(await full.export_sectors([5]))
    assert await full.usage() == before
    assert tmp_contents(data_dir) == []
    assert await read_all(await full.get_part(5, "c")) == payload(3 * MiB + 7)
    await full.link_part("d", 5, 6)  # moves no bytes
    assert await full.delete_parts(5, ["d"]) == 1
    assert (await full.health()).full


@pytest.mark.parametrize("reserve", [-1, 1.5, True, "1"])
async def test_a_bad_reserve_is_refused(tmp_path: Path, reserve: object) -> None:
    with pytest.raises(ValueError, match="reserve"):
        await StorageNode.open(tmp_path / "node", "node-t", reserve=reserve)  # type: ignore[arg-type]
    assert not (tmp_path / "node").exists()


# -- a replaced disk ---------------------------------------------------------------------


async def test_a_replaced_node_is_empty_and_flagged_until_cleared(tmp_path: Path) -> None:
    data_dir = tmp_path / "new-disk"
    (data_dir / "lost+found").mkdir(parents=True)  # what a fresh file system comes with
    node = await StorageNode.open(data_dir, "node-r", fsync=False, replaced=True)
    assert (await node.health()).replaced
    assert json.loads((data_dir / "node.json").read_text()) == {
        "node_id": "node-r",
        "replaced": True,
    }
    await node.put_part(1, "rebuilt", chunked(b"rebuilt"))
    node.close()
    again = await StorageNode.open(data_dir, "node-r", fsync=False, replaced=True)  # restart
    assert (await again.health()).replaced
    assert (await again.health()).parts == 1
    await again.clear_replaced()
    await again.clear_replaced()
    assert not (await again.health()).replaced
    assert json.loads((data_dir / "node.json").read_text()) == {"node_id": "node-r"}
    assert not (await reopen(again)).__dict__["_replaced"]
    with pytest.raises(ValueError, match="not empty"):
        await StorageNode.open(data_dir, "node-r", fsync=False, replaced=True)


async def test_clearing_the_replaced_flag_twice_at_once_writes_it_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The background healer and ``s3lite heal --node`` can end a rebuild together:
    both clear the flag. The first write is held until the second call has gone as
    far as it can; then node.json was written once (two writers through the one
    temporary name made one of them fail with FileNotFoundError, a 500)."""
    node = await StorageNode.open(tmp_path / "n", "node-r", fsync=False, replaced=True)
    writes: list[bool] = []
    entered, release = threading.Event(), threading.Event()
    real = layout.write_identity

    def held(data_dir: Path, identity: layout.Identity) -> None:
        writes.append(identity.replaced)
        entered.set()
        release.wait(10)
        real(data_dir, identity)

    monkeypatch.setattr(layout, "write_identity", held)
    async with anyio.create_task_group() as group:
        group.start_soon(node.clear_replaced)
        await anyio.to_thread.run_sync(entered.wait, 10)
        group.start_soon(node.clear_replaced)
        await anyio.wait_all_tasks_blocked()
        release.set()
    assert writes == [False]
    assert json.loads((tmp_path / "n" / "node.json").read_text()) == {"node_id": "node-r"}
    assert not (await node.health()).replaced


@pytest.mark.parametrize(
    ("existing", "node_id", "message"),
    [
        ({"stray": "data"}, "node-r", "not empty"),
        ({"node.json": '{"node_id": "node-r"}'}, "node-r", "not empty"),
        ({"node.json": '{"node_id": "node-o", "replaced": true}'}, "node-r", "not empty"),
        ({}, None, "--node-id"),
    ],
    ids=["stray-file", "same-node-not-replaced", "other-node", "no-id"],
)
async def test_replaced_refuses_a_directory_that_is_not_empty(
    tmp_path: Path, existing: dict[str, str], node_id: str | None, message: str
) -> None:
    data_dir = tmp_path / "node"
    data_dir.mkdir()
    for name, content in existing.items():
        (data_dir / name).write_text(content)
    with pytest.raises(ValueError, match=message):
        await StorageNode.open(data_dir, node_id, fsync=False, replaced=True)
    assert {path.name: path.read_text() for path in data_dir.iterdir()} == existing


# -- damaged files -----------------------------------------------------------------------


async def test_a_file_of_the_old_format_is_damaged_and_quarantined(node: StorageNode) -> None:
    """s3lite 0.1 part files (magic S3LPART1, one CRC per file) are not readable."""
    old = node.data_dir / "sectors" / "004" / "old"
    old.parent.mkdir(parents=True)
    old.write_bytes(b"S3LPART1" + (5).to_bytes(8, "little") + bytes(16) + b"hello")
    reopened = await reopen(node)
    assert await reopened.list_parts(4) == []  # not a part it can serve
    with pytest.raises(DamagedPart, match="magic"):
        await reopened.get_part(4, "old")
    assert not old.exists()
    assert await reopened.usage() == {}
    assert [(p.sector, p.name) for p in await reopened.list_quarantined()] == [(4, "old")]


async def test_a_damaged_file_replaced_meanwhile_is_not_quarantined(node: StorageNode) -> None:
    """A reader that finds damage in a file whose name was meanwhile given to a new,
    healthy copy (a rebuild) must not move the new copy away."""
    size = 16 * partfile.BLOCK_SIZE
    await node.put_part(3, "p", chunked(payload(size)))
    path = node.data_dir / "sectors" / "003" / "p"
    raw = bytearray(path.read_bytes())
    raw[Header(size).payload_offset(size - 1)] ^= 1
    path.write_bytes(raw)
    stream = await node.get_part(3, "p")  # block 0 is fine: open succeeds
    await node.put_part(3, "p", chunked(b"healthy copy"))
    with pytest.raises(DamagedPart):
        await read_all(stream)
    assert await read_all(await node.get_part(3, "p")) == b"healthy copy"
    assert (await node.health()).quarantined == 0
    assert await node.usage() == disk_usage(node.data_dir)


async def test_an_incomplete_quarantine_entry_is_cleared_at_start(node: StorageNode) -> None:
    entry = node.data_dir / "quarantine" / "20260101T000000-003-crashed"
    entry.mkdir(parents=True)
    (entry / "info.json").write_text('{"sector": 3, "name": "p", "reason": "r", "time": "t"}')
    reopened = await reopen(node)
    assert not entry.exists()
    assert (await reopened.health()).quarantined == 0
    with pytest.raises(PartNotFound):
        await reopened.get_part(3, "p")
