"""Parity parts over an eight-node in-memory cluster (target parity 2): what gets
written, reads around missing, damaged and unreachable parts, writes that survive a
node failing mid-upload or a full disk, and nothing left behind when a write fails.
(The property tests over every size, unit and parity are in test_degraded_reads.py.)"""

from __future__ import annotations

import logging
import os
from collections.abc import AsyncIterable, AsyncIterator, Collection, Sequence
from pathlib import Path
from typing import Any

import anyio
import pytest

from s3lite import (
    DiskFull,
    InsufficientCapacity,
    LocalCluster,
    NodeUnavailable,
    NotEnoughNodes,
    PartsUnavailable,
)
from s3lite.buffers import Buffer
from s3lite.receiver.healing import HealReason
from s3lite.receiver.part_sender import PartSender
from s3lite.storager import StorageNode
from s3lite.transport.base import ByteStream, PartStat
from tests.receiver.helpers import (
    chunked,
    damage,
    manifest_of,
    owner_of,
    part_path,
    read_all,
    stored_part_names,
)
from tests.s3sign import ROOT_ACCESS, ROOT_SECRET

pytestmark = pytest.mark.anyio

UNIT = 4096


def eight_nodes(root: Path, *, nodes: int = 8, stripe_unit: int = UNIT) -> LocalCluster:
    return LocalCluster(
        root, nodes=nodes, stripe_unit=stripe_unit, janitor_interval=None, fsync=False,
        root_key=(ROOT_ACCESS, ROOT_SECRET), probe_interval=None,
    )  # fmt: skip


@pytest.fixture
async def cluster(tmp_path: Path) -> AsyncIterator[LocalCluster]:
    async with eight_nodes(tmp_path / "c") as opened:
        yield opened


async def heal_items(cluster: LocalCluster) -> set[tuple[str, int, HealReason]]:
    await cluster.receiver.heal.flush()
    return {(i.upload_id, i.segment, i.reason) for i in await cluster.receiver.heal.pending()}


def mark_down(cluster: LocalCluster, *nodes: str) -> None:
    for node in nodes:
        cluster.orchestrator.liveness.call_failed(node, "stopped by the test")


# -- what is written -----------------------------------------------------------------------


async def test_standard_objects_get_two_parity_parts_on_eight_distinct_nodes(
    cluster: LocalCluster,
) -> None:
    data = os.urandom(100_003)
    info = await cluster.receiver.put_object("std", data)
    assert info.storage_class == "STANDARD"
    (segment,) = (await manifest_of(cluster, "std")).segments
    assert segment.parity == 2
    owners = {cluster.orchestrator.ring.owner(part.sector) for part in segment.parts}
    assert owners == set(cluster.nodes)
    # a parity part is as long as data part 0, and every part's bytes are recorded
    assert [p.length for p in segment.parts[6:]] == [segment.parts[0].length] * 2
    assert not any(part.missing for part in segment.parts)
    assert await read_all(cluster, "std") == data
    assert await heal_items(cluster) == set()


@pytest.mark.parametrize(("unit", "units"), [(1 << 20, 8), (64 << 10, 20), (64 << 10, 24)])
async def test_objects_ending_on_a_unit_get_all_their_parity(
    tmp_path: Path, unit: int, units: int
) -> None:
    """The last group of rows ends exactly where a unit does (8 MiB with 1 MiB units:
    a row and two units): its parity is sent all the same."""
    async with eight_nodes(tmp_path / "c", stripe_unit=unit) as cluster:
        data = os.urandom(unit * units)
        await cluster.receiver.put_object("k", chunked(data, 100_000))
        (segment,) = (await manifest_of(cluster, "k")).segments
        assert [p.length for p in segment.parts[6:]] == [segment.parts[0].length] * 2
        assert await read_all(cluster, "k") == data


async def test_reduced_redundancy_objects_get_none(cluster: LocalCluster) -> None:
    data = os.urandom(50_000)
    await cluster.receiver.put_object("rrs", data, storage_class="REDUCED_REDUNDANCY")
    (segment,) = (await manifest_of(cluster, "rrs")).segments
    assert (segment.parity, len(segment.parts)) == (0, 6)
    assert (await cluster.receiver.head_object("rrs")).storage_class == "REDUCED_REDUNDANCY"
    listing = await cluster.receiver.list_objects()
    assert [(o.key, o.storage_class) for o in listing.objects] == [("rrs", "REDUCED_REDUNDANCY")]
    upload = await cluster.receiver.create_multipart("mp", storage_class="REDUCED_REDUNDANCY")
    part = await cluster.receiver.upload_part("mp", upload, 1, data)
    await cluster.receiver.complete_multipart("mp", upload, [(1, part.etag)])
    assert (await manifest_of(cluster, "mp")).segments[0].parity == 0
    await cluster.receiver.copy_object("rrs", "copy", storage_class="STANDARD")
    assert (await manifest_of(cluster, "copy")).segments[0].parity == 2


async def test_six_nodes_write_no_parity_and_queue_nothing(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """LocalCluster(root, nodes=6) keeps working: target 2, parity 0 until nodes join
    (the healer raises those objects after a join, not from the heal queue); it says
    so in a warning when it opens."""
    async with eight_nodes(tmp_path / "six", nodes=6) as cluster:
        (warning,) = [r for r in caplog.records if r.levelno == logging.WARNING]
        assert warning.getMessage().startswith(
            "target parity is 2 but only 6 of 6 nodes can take new parts: new objects "
            "get 0 parity part(s) until 8 nodes can"
        )
        assert cluster.orchestrator.target_parity == 2
        assert cluster.orchestrator.parity_status().effective == 0
        await cluster.receiver.put_object("k", os.urandom(10_000))
        assert (await manifest_of(cluster, "k")).segments[0].parity == 0
        assert await heal_items(cluster) == set()
        await cluster.add_node()
        await cluster.add_node()
        assert cluster.orchestrator.parity_status().effective == 2
        assert cluster.orchestrator.parity_status().warning is None
        await cluster.receiver.put_object("k2", os.urandom(10_000))
        assert (await manifest_of(cluster, "k2")).segments[0].parity == 2


async def test_the_target_parity_is_kept_in_the_topology(tmp_path: Path) -> None:
    async with LocalCluster(tmp_path / "p", nodes=10, parity=4, fsync=False) as cluster:
        await cluster.receiver.put_object("k", os.urandom(5000))
        assert (await manifest_of(cluster, "k")).segments[0].parity == 4
    async with LocalCluster(tmp_path / "p", parity=1, fsync=False) as reopened:
        assert reopened.orchestrator.target_parity == 4  # set when it was created
        assert await read_all(reopened, "k")
    with pytest.raises(ValueError, match="parity"):
        LocalCluster(tmp_path / "q", parity=5)


# -- reads around what is unavailable ------------------------------------------------------


async def test_a_damaged_range_reads_the_right_bytes(tmp_path: Path) -> None:
    """Issue 7's first defect: flip byte 25,600 of part 2 of a 300 KiB object, then a
    range read of bytes 127990-128010 returns the right bytes, and so does a full
    GET; the damaged file is quarantined and the segment queued for the healer."""
    async with eight_nodes(tmp_path / "c", stripe_unit=1 << 20) as cluster:
        data = os.urandom(300 * 1024)
        await cluster.receiver.put_object("rot", data)
        manifest = await manifest_of(cluster, "rot")
        path = part_path(cluster, manifest, 2)
        damage(path, 25_600)
        assert await read_all(cluster, "rot", 127_990, 128_010) == data[127_990:128_011]
        assert await read_all(cluster, "rot") == data
        assert not path.exists()
        node = cluster.nodes[owner_of(cluster, manifest, 2)]
        assert [q.name for q in await node.list_quarantined()] == [path.name]
        assert (manifest.upload_id, 0, HealReason.DAMAGED) in await heal_items(cluster)
        assert cluster.metrics.registry.get_sample_value("s3lite_degraded_reads_total") == 2


@pytest.mark.parametrize("how", ["delete", "truncate", "empty"])
async def test_a_deleted_or_truncated_part_reads_the_right_bytes(
    cluster: LocalCluster, how: str
) -> None:
    data = os.urandom(200_001)
    await cluster.receiver.put_object("k", data)
    manifest = await manifest_of(cluster, "k")
    path = part_path(cluster, manifest, 0)
    if how == "delete":
        path.unlink()
    else:
        path.write_bytes(path.read_bytes()[: 0 if how == "empty" else 5000])
    for start, end in [(None, None), (0, 0), (10, 50_000), (4095, 4097), (150_000, None)]:
        first = start or 0
        last = len(data) - 1 if end is None else end
        assert await read_all(cluster, "k", start, end) == data[first : last + 1]
    reasons = {reason for _, _, reason in await heal_items(cluster)}
    assert reasons == {HealReason.NOT_FOUND if how == "delete" else HealReason.DAMAGED}


async def test_a_block_damaged_mid_stream_switches_to_parity_where_it_stopped(
    cluster: LocalCluster,
) -> None:
    """The damage is in a later block of the part: its node has sent earlier blocks
    before it finds it, so the read goes on from parity at the first byte not sent."""
    data = os.urandom(1_500_000)  # parts of ~250 KB: four blocks each
    await cluster.receiver.put_object("k", data)
    manifest = await manifest_of(cluster, "k")
    damage(part_path(cluster, manifest, 3), 200_000, 0x80)
    assert await read_all(cluster, "k") == data


async def test_any_two_parts_missing_read_the_same_bytes(cluster: LocalCluster) -> None:
    data = os.urandom(123_457)
    await cluster.receiver.put_object("k", data)
    manifest = await manifest_of(cluster, "k")
    for lost in [(0, 1), (4, 5), (2, 7), (6, 7), (0, 6), (3, None)]:
        kept = {}
        for index in lost:
            if index is not None:
                path = part_path(cluster, manifest, index)
                kept[path] = path.read_bytes()
                path.unlink()
        assert await read_all(cluster, "k") == data, lost
        assert await read_all(cluster, "k", 70_000, 70_100) == data[70_000:70_101], lost
        for path, content in kept.items():
            path.write_bytes(content)


async def test_a_node_known_down_is_not_asked(cluster: LocalCluster) -> None:
    data = os.urandom(100_000)
    await cluster.receiver.put_object("k", data)
    manifest = await manifest_of(cluster, "k")
    down = owner_of(cluster, manifest, 1)
    counting = CountingNode(cluster.nodes[down])
    cluster.transport.register(counting, counting.address)  # type: ignore[arg-type]
    mark_down(cluster, down)
    assert await read_all(cluster, "k") == data
    assert await read_all(cluster, "k", 5, 60_000) == data[5:60_001]
    assert counting.calls == 0
    assert (manifest.upload_id, 0, HealReason.NODE_DOWN) in await heal_items(cluster)


async def test_a_node_that_fails_mid_read_is_read_around(cluster: LocalCluster) -> None:
    data = os.urandom(600_000)
    await cluster.receiver.put_object("k", data)
    manifest = await manifest_of(cluster, "k")
    failing = owner_of(cluster, manifest, 2)
    broken = BreaksAfter(cluster.nodes[failing], 10_000)
    cluster.transport.register(broken, broken.address)  # type: ignore[arg-type]
    assert await read_all(cluster, "k") == data
    assert not cluster.orchestrator.liveness.is_up(failing)


async def test_more_parts_unavailable_than_parity_is_503_naming_the_nodes(
    cluster: LocalCluster,
) -> None:
    data = os.urandom(50_000)
    await cluster.receiver.put_object("k", data)
    manifest = await manifest_of(cluster, "k")
    down = sorted(owner_of(cluster, manifest, index) for index in (0, 3, 7))
    mark_down(cluster, *down)
    with pytest.raises(PartsUnavailable, match="needs 6 of its 8 parts and 3 are") as raised:
        await cluster.receiver.open_object("k")
    assert raised.value.nodes == down
    assert raised.value.http_status == 503
    for node in down:
        assert cluster.nodes[node].address in str(raised.value)
    await cluster.orchestrator.probe()  # they answer again: readable again
    assert await read_all(cluster, "k") == data


# -- writes with nodes down, failing or full -----------------------------------------------


async def test_writes_with_nodes_down_get_less_parity_and_are_queued(
    cluster: LocalCluster,
) -> None:
    for down, parity in [(["node-3"], 1), (["node-3", "node-8"], 0)]:
        mark_down(cluster, *down)
        data = os.urandom(30_000)
        await cluster.receiver.put_object("k", data)
        manifest = await manifest_of(cluster, "k")
        (segment,) = manifest.segments
        assert segment.parity == parity
        owners = {cluster.orchestrator.ring.owner(part.sector) for part in segment.parts}
        assert len(owners) == 6 + parity
        assert not owners & set(down)
        assert (manifest.upload_id, 0, HealReason.LOW_PARITY) in await heal_items(cluster)
        assert await read_all(cluster, "k") == data
    mark_down(cluster, "node-1")
    before = await stored_part_names(cluster)
    with pytest.raises(NotEnoughNodes, match=r"5 of 8 are; down: node-1 .*node-3 .*node-8 "):
        await cluster.receiver.put_object("k3", os.urandom(30_000))
    assert await stored_part_names(cluster) == before


async def test_a_node_failing_mid_upload_is_recorded_missing(cluster: LocalCluster) -> None:
    failing = "node-4"
    broken = FailsUpload(cluster.nodes[failing], NodeUnavailable(failing, "went away"))
    cluster.transport.register(broken, broken.address)  # type: ignore[arg-type]
    data = os.urandom(700_001)
    info = await cluster.receiver.put_object("k", chunked(data, 10_000))
    assert info.size == len(data)
    manifest = await manifest_of(cluster, "k")
    (segment,) = manifest.segments
    missing = [part.index for part in segment.parts if part.missing]
    assert missing == [i for i in range(8) if owner_of(cluster, manifest, i) == failing]
    assert len(missing) == 1
    assert (manifest.upload_id, 0, HealReason.MISSING) in await heal_items(cluster)
    assert not [name for node, _, name in await stored_part_names(cluster) if node == failing]
    assert await read_all(cluster, "k") == data
    assert await read_all(cluster, "k", 1000, 2000) == data[1000:2001]


async def test_units_go_out_as_views_of_the_clients_chunks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A unit cut across the client's chunks reaches its node as views of those chunks,
    never a copy; the parity coded from the views rebuilds lost parts; and a node
    failing mid-upload still costs only its own part, leaving nothing behind."""
    sent: list[tuple[int, Sequence[Buffer]]] = []
    send = PartSender.send

    async def spy(self: PartSender, index: int, batch: Sequence[Buffer]) -> None:
        sent.append((index, batch))
        await send(self, index, batch)

    monkeypatch.setattr(PartSender, "send", spy)
    async with eight_nodes(tmp_path / "c", stripe_unit=64 << 10) as cluster:
        failing = "node-4"
        broken = FailsUpload(cluster.nodes[failing], NodeUnavailable(failing, "went away"))
        cluster.transport.register(broken, broken.address)  # type: ignore[arg-type]
        chunks = [os.urandom(100_000) for _ in range(20)]  # units straddle chunks

        async def body() -> AsyncIterator[bytes]:
            for chunk in chunks:
                yield chunk

        data = b"".join(chunks)
        await cluster.receiver.put_object("k", body(), len(data))  # sized: no read-ahead
        manifest = await manifest_of(cluster, "k")
        pieces = [piece for index, batch in sent if index < 6 for piece in batch]
        owners = [piece.obj if isinstance(piece, memoryview) else piece for piece in pieces]
        assert all(any(owner is chunk for chunk in chunks) for owner in owners)
        assert any(isinstance(piece, memoryview) for piece in pieces)
        assert sum(len(piece) for piece in pieces) == len(data)
        assert [part.index for part in manifest.segments[0].parts if part.missing] == [
            index for index in range(8) if owner_of(cluster, manifest, index) == failing
        ]
        assert not [name for node, _, name in await stored_part_names(cluster) if node == failing]
        assert await read_all(cluster, "k") == data
        lost = next(i for i in range(6) if owner_of(cluster, manifest, i) != failing)
        part_path(cluster, manifest, lost).unlink()  # two parts gone: parity rebuilds them
        assert await read_all(cluster, "k") == data


@pytest.mark.parametrize("nodes", [6, 8])
async def test_too_many_nodes_failing_mid_upload_store_nothing(tmp_path: Path, nodes: int) -> None:
    """More failures than parity: 503 naming the nodes, and no part file anywhere,
    counted right after the failure (no janitor pass). The failed nodes are down, so
    the upload is left ``deleting`` (not pending for an hour) for the janitor, which
    runs as soon as they are back."""
    async with eight_nodes(tmp_path / "c", nodes=nodes) as cluster:
        failing = ["node-2", "node-5", "node-6"][: nodes - 5]
        for node_id in failing:
            broken = FailsUpload(cluster.nodes[node_id], NodeUnavailable(node_id, "went away"))
            cluster.transport.register(broken, broken.address)  # type: ignore[arg-type]
        with pytest.raises(PartsUnavailable) as raised:
            await cluster.receiver.put_object("k", chunked(os.urandom(500_000), 7000))
        assert raised.value.http_status == 503
        assert set(raised.value.nodes) <= set(failing)
        assert await stored_part_names(cluster) == set()
        manifests = cluster.receiver.manifests
        assert len(await manifests.stale_uploads(float("-inf"))) == 1  # deleting only
        for node_id in failing:
            cluster.transport.register(cluster.nodes[node_id])
        assert await cluster.janitor.retry_deletions() == 1
        assert await manifests.stale_uploads(float("inf")) == []


async def test_a_full_node_is_skipped_and_puts_keep_succeeding(cluster: LocalCluster) -> None:
    full = cluster.nodes["node-6"]
    full.reserve = 1 << 62
    for n in range(12):
        await cluster.receiver.put_object(f"k{n}", os.urandom(20_000))
        manifest = await manifest_of(cluster, f"k{n}")
        owners = [cluster.orchestrator.ring.owner(p.sector) for p in manifest.segments[0].parts]
        missing = [part.index for part in manifest.segments[0].parts if part.missing]
        assert missing == [i for i, owner in enumerate(owners) if owner == "node-6"]
    assert not cluster.orchestrator.liveness.is_writable("node-6")
    assert cluster.orchestrator.liveness.is_up("node-6")
    assert not [name for node, _, name in await stored_part_names(cluster) if node == "node-6"]
    for n in range(12):
        assert await read_all(cluster, f"k{n}")


async def test_507_only_when_fewer_than_six_nodes_have_room(tmp_path: Path) -> None:
    """Issue 7: with one node of six full, 20 PUTs left 22 unreferenced parts. Now the
    first fails with DiskFull (507) and the others with InsufficientCapacity (507)
    before storing anything; no part file is left, counted after each failure."""
    async with eight_nodes(tmp_path / "c", nodes=6) as cluster:
        cluster.nodes["node-2"].reserve = 1 << 62
        for n in range(20):
            with pytest.raises(DiskFull) as raised:
                await cluster.receiver.put_object(f"k{n}", chunked(os.urandom(300_000), 64_000))
            assert raised.value.http_status == 507
            assert n == 0 or isinstance(raised.value, InsufficientCapacity)
            assert await stored_part_names(cluster) == set()
        assert await cluster.receiver.manifests.stale_uploads(float("inf")) == []


async def test_a_failed_upload_waits_for_nodes_still_committing_before_deleting(
    tmp_path: Path,
) -> None:
    """A node that had the whole body of its part when another node failed commits it
    (as a remote node does, whatever its client does). The upload waits for it to
    answer before deleting, so nothing is left behind."""
    async with eight_nodes(tmp_path / "c", nodes=6) as c:
        async with anyio.create_task_group() as background:
            for node_id in ("node-1", "node-3"):
                remote = CommitsAnyway(c.nodes[node_id], background)
                c.transport.register(remote, remote.address)  # type: ignore[arg-type]
            full = FailsUpload(c.nodes["node-5"], DiskFull("node node-5 is full"), at_end=True)
            c.transport.register(full, full.address)  # type: ignore[arg-type]
            for n in range(3):
                with pytest.raises(DiskFull):
                    await c.receiver.put_object(f"k{n}", os.urandom(60_000))
                c.orchestrator.liveness.answered("node-5", await c.nodes["node-5"].health())
        # the task group waited for every commit that landed late
        assert await stored_part_names(c) == set()


# -- test doubles --------------------------------------------------------------------------


class Wrapper:
    """Forwards every NodeClient call to a real node, so a test can change one."""

    def __init__(self, node: StorageNode) -> None:
        self.node = node
        self.address = node.address

    def __getattr__(self, name: str) -> Any:
        return getattr(self.node, name)


class CountingNode(Wrapper):
    def __init__(self, node: StorageNode) -> None:
        super().__init__(node)
        self.calls = 0

    async def get_part(self, sector: int, name: str, *span: int | None) -> ByteStream:
        self.calls += 1
        return await self.node.get_part(sector, name, *span)


class BreaksAfter(Wrapper):
    """Part streams that break (node gone) after ``limit`` bytes."""

    def __init__(self, node: StorageNode, limit: int) -> None:
        super().__init__(node)
        self.limit = limit

    async def get_part(self, sector: int, name: str, *span: int | None) -> ByteStream:
        stream = await self.node.get_part(sector, name, *span)
        return _Breaking(stream, self.limit, self.address)


class _Breaking:
    def __init__(self, stream: ByteStream, limit: int, address: str) -> None:
        self._stream, self._left, self._address = stream, limit, address

    def __aiter__(self) -> _Breaking:
        return self

    async def __anext__(self) -> bytes:
        if self._left <= 0:
            await self._stream.aclose()
            raise NodeUnavailable(self._address, "stream broke: the node went away")
        chunk = await anext(self._stream)
        chunk = chunk[: self._left]
        self._left -= len(chunk)
        return chunk

    async def aclose(self) -> None:
        await self._stream.aclose()


class FailsUpload(Wrapper):
    """put_part takes part of the body (or all of it, ``at_end``), then fails."""

    def __init__(self, node: StorageNode, error: Exception, *, at_end: bool = False) -> None:
        super().__init__(node)
        self.error = error
        self.at_end = at_end

    async def put_part(
        self, sector: int, name: str, body: AsyncIterable[bytes], *, length: int | None = None
    ) -> PartStat:
        async for _ in body:
            if not self.at_end:
                break
        raise self.error


class CommitsAnyway(Wrapper):
    """A node as a remote one behaves: once it has a whole body, it commits it even if
    its caller stops waiting (cancellation); the commit lands a little later."""

    DELAY = 0.05

    def __init__(self, node: StorageNode, background: anyio.abc.TaskGroup) -> None:
        super().__init__(node)
        self.background = background

    async def put_part(
        self, sector: int, name: str, body: AsyncIterable[bytes], *, length: int | None = None
    ) -> PartStat:
        received = [bytes(chunk) async for chunk in body]
        try:
            await anyio.sleep(self.DELAY)
        except anyio.get_cancelled_exc_class():
            self.background.start_soon(self._commit, sector, name, received, length)
            raise
        return await self._commit(sector, name, received, length)

    async def _commit(
        self, sector: int, name: str, received: Collection[bytes], length: int | None
    ) -> PartStat:
        await anyio.sleep(self.DELAY)

        async def replay() -> AsyncIterator[bytes]:
            for chunk in received:
                yield chunk

        return await self.node.put_part(sector, name, replay(), length=length)
