"""The healer over in-memory clusters: the scrub rebuilds damaged, truncated and
deleted parts; the heal queue's segments are repaired once their nodes are back;
segments written with low parity are raised after joins (invariant 1 for every
part); a node that comes back empty is rebuilt exactly; a segment deleted while it
is rebuilt leaves nothing behind; the scrub's position survives a restart."""

from __future__ import annotations

import os
import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from s3lite import LocalCluster
from s3lite.orchestrator import part_name
from s3lite.receiver import Segment
from s3lite.receiver.heal_plan import RateLimit
from s3lite.storager import StorageNode
from s3lite.transport.base import PartState
from tests.receiver.helpers import (
    damage,
    healer_cluster,
    manifest_of,
    owner_of,
    part_path,
    put_some,
    read_all,
    unreferenced_parts,
)

pytestmark = pytest.mark.anyio


@pytest.fixture
async def cluster(tmp_path: Path) -> AsyncIterator[LocalCluster]:
    async with healer_cluster(tmp_path / "c") as opened:
        yield opened


async def assert_whole(cluster: LocalCluster, objects: dict[str, bytes], parity: int) -> None:
    """Every segment has ``parity`` parity parts on distinct nodes, each stored on its
    owner with the recorded length and checksum, and every object reads back."""
    ring = cluster.orchestrator.ring
    for key, data in objects.items():
        for segment in (await manifest_of(cluster, key)).segments:
            assert segment.parity == parity
            assert len(segment.parts) == 6 + parity
            owners = [ring.owner(part.sector) for part in segment.parts]
            assert len(set(owners)) == len(owners), "invariant 1"
            await assert_stored(cluster, segment)
        assert await read_all(cluster, key) == data


async def assert_stored(cluster: LocalCluster, segment: Segment) -> None:
    ring = cluster.orchestrator.ring
    for part in segment.parts:
        assert not part.missing
        node = cluster.nodes[ring.owner(part.sector)]
        name = part_name(segment.upload_id, segment.number, part.index)
        check = (await node.verify_parts(part.sector, [name]))[name]
        assert (check.state, check.length, check.checksum) == (
            PartState.OK, part.length, part.checksum,
        )  # fmt: skip


async def test_the_scrub_rebuilds_damaged_truncated_and_deleted_parts(
    cluster: LocalCluster,
) -> None:
    objects = await put_some(cluster)
    manifests = [await manifest_of(cluster, key) for key in objects]
    damage(part_path(cluster, manifests[0], 2), 25_600 % 5000)
    truncated = part_path(cluster, manifests[1], 6)
    truncated.write_bytes(truncated.read_bytes()[:100])
    part_path(cluster, manifests[2], 0).unlink()
    damage(part_path(cluster, manifests[3], 7), 10)
    for key, data in objects.items():  # reads never see the damage
        assert await read_all(cluster, key) == data

    result = await cluster.healer.run_pass()

    assert result["repaired"] == 4
    assert result["rebuilt_parts"] == 4
    await assert_whole(cluster, objects, parity=2)
    quarantined = [q for node in cluster.nodes.values() for q in await node.list_quarantined()]
    assert len(quarantined) == 3  # the flipped bytes and the truncated file
    status = await cluster.healer.status()
    assert status["heal_queue"] == 0
    assert status["degraded_segments"] == 0
    assert status["rebuilt_parts"] == 4
    again = await cluster.healer.run_pass()
    assert again["whole"] == 4
    assert again["rebuilt_parts"] == 0
    assert again["repaired"] == 0


async def test_segments_written_with_nodes_down_are_healed_once_they_are_back(
    cluster: LocalCluster,
) -> None:
    liveness = cluster.orchestrator.liveness
    down = ["node-2", "node-5"]
    for node in down:
        liveness.call_failed(node, "stopped by the test")
    objects = await put_some(cluster, 3)
    for key in objects:
        assert (await manifest_of(cluster, key)).segments[0].parity == 0
    assert await cluster.receiver.heal.size() == 3  # low parity, queued

    assert await cluster.healer.process_queue() == {"waiting": 3}  # nodes still down
    await cluster.orchestrator.probe()  # they answer again
    assert await cluster.healer.process_queue() == {"repaired": 3}
    await assert_whole(cluster, objects, parity=2)
    assert await cluster.receiver.heal.size() == 0


async def test_joins_raise_every_object_to_the_target_parity(tmp_path: Path) -> None:
    async with healer_cluster(tmp_path / "c", nodes=6) as cluster:
        objects = await put_some(cluster, 5)
        await cluster.receiver.create_multipart("mp")  # an open upload's parts count too
        await cluster.add_node()
        more = await put_some(cluster, 1, "more")
        await cluster.add_node()
        result = await cluster.healer.run_pass()
        assert result["repaired"] == 6, result
        await assert_whole(cluster, objects | more, parity=2)
        # two nodes down: every object still reads (from parity parts the healer made)
        for node in ["node-1", "node-4"]:
            cluster.orchestrator.liveness.call_failed(node, "stopped by the test")
        for key, data in (objects | more).items():
            assert await read_all(cluster, key) == data


async def test_a_replaced_node_gets_exactly_its_parts_back(cluster: LocalCluster) -> None:
    objects = await put_some(cluster, 5)
    victim = cluster.nodes["node-3"]
    held = {
        (stat.sector, stat.name, stat.length)
        for sector in await victim.usage()
        for stat in await victim.list_parts(sector)
    }
    assert held
    victim.close()
    cluster.transport.unregister(victim.address)
    shutil.rmtree(victim.data_dir)
    fresh = await StorageNode.open(victim.data_dir, "node-3", fsync=False, replaced=True)
    cluster.nodes["node-3"] = fresh
    cluster.transport.register(fresh, victim.address)
    await cluster.orchestrator.probe()
    for key, data in objects.items():  # served degraded meanwhile
        assert await read_all(cluster, key) == data

    assert await cluster.healer.rebuild_replaced() == ["node-3"]

    rebuilt = {
        (stat.sector, stat.name, stat.length)
        for sector in await fresh.usage()
        for stat in await fresh.list_parts(sector)
    }
    assert rebuilt == held
    assert not (await fresh.health()).replaced
    assert await cluster.healer.rebuild_replaced() == []
    await assert_whole(cluster, objects, parity=2)
    fresh.close()


class DeletingLimit(RateLimit):
    """Deletes the object the first time the healer writes (mid-rebuild)."""

    def __init__(self, cluster: LocalCluster, key: str) -> None:
        super().__init__(None)
        self.cluster, self.key, self.done = cluster, key, False

    async def take(self, size: int) -> None:
        if not self.done:
            self.done = True
            await self.cluster.receiver.delete_object(self.key)


async def test_an_object_deleted_while_it_is_rebuilt_leaves_no_part(tmp_path: Path) -> None:
    async with healer_cluster(tmp_path / "c", nodes=6) as cluster:
        data = os.urandom(200_000)
        await cluster.receiver.put_object("doomed", data)
        await cluster.add_node()
        await cluster.add_node()
        manifest = await manifest_of(cluster, "doomed")
        cluster.healer.limit = DeletingLimit(cluster, "doomed")
        outcome = await cluster.healer.heal_segment(manifest.upload_id, 0)
        assert outcome == "gone"
        assert await unreferenced_parts(cluster) == set()
        assert await cluster.receiver.manifests.upload_parts(manifest.upload_id) == []


async def test_the_scrub_goes_on_where_it_stopped_after_a_restart(tmp_path: Path) -> None:
    async with healer_cluster(tmp_path / "c") as cluster:
        objects = await put_some(cluster, 5)
        assert not await cluster.healer.scrub_step(batch=2)
        cursor = cluster.healer.scrub_cursor
        status = await cluster.healer.status()
        assert status["scrub_position"]["fraction"] == pytest.approx(2 / 5)
        manifests = [await manifest_of(cluster, key) for key in objects]
        later = [m for m in manifests if (m.upload_id, 0) > cursor]
        assert len(later) == 3
        part_path(cluster, later[0], 1).unlink()  # the scrub has yet to get there
    async with healer_cluster(tmp_path / "c") as cluster:
        assert cluster.healer.scrub_cursor == cursor
        assert await cluster.healer.scrub_step(batch=10)  # the rest: the pass ends
        assert cluster.healer.scrub_cursor == ("", -1)
        status = await cluster.healer.status()
        assert status["scrub_position"]["passes"] == 1
        assert status["rebuilt_parts"] == 1
        await assert_whole(cluster, objects, parity=2)


async def test_a_missing_part_owned_by_a_down_node_waits(cluster: LocalCluster) -> None:
    objects = await put_some(cluster, 1)
    (key,) = objects
    manifest = await manifest_of(cluster, key)
    part_path(cluster, manifest, 4).unlink()
    cluster.orchestrator.liveness.call_failed(owner_of(cluster, manifest, 4), "stopped")
    assert await cluster.healer.heal_segment(manifest.upload_id, 0) == "waiting"
    assert (await cluster.healer.status())["degraded_segments"] == 1
    await cluster.orchestrator.probe()
    assert await cluster.healer.heal_segment(manifest.upload_id, 0) == "repaired"
    assert (await cluster.healer.status())["degraded_segments"] == 0


async def test_the_background_scrub_is_due_again_after_a_join_or_its_interval(
    tmp_path: Path,
) -> None:
    async with healer_cluster(tmp_path / "c", nodes=6) as cluster:
        healer = cluster.healer
        assert healer.scrub_due()  # never done
        await put_some(cluster, 2)
        assert await healer.scrub_step()
        assert not healer.scrub_due()
        await cluster.add_node()
        assert healer.scrub_due()  # older segments can get parity now
        assert await healer.scrub_step()
        assert not healer.scrub_due()
        healer.scrub_interval = 0.0
        assert healer.scrub_due()
    async with healer_cluster(tmp_path / "c") as cluster:  # the pass's end survives a restart
        assert cluster.healer.scrub_finished is not None
        assert not cluster.healer.scrub_due()


async def test_too_few_parts_while_a_node_is_down_waits_rather_than_lost(
    cluster: LocalCluster,
) -> None:
    (key,) = await put_some(cluster, 1)
    manifest = await manifest_of(cluster, key)
    for index in (0, 1):
        part_path(cluster, manifest, index).unlink()
    down = owner_of(cluster, manifest, 2)
    cluster.orchestrator.liveness.call_failed(down, "stopped")
    assert await cluster.healer.heal_segment(manifest.upload_id, 0) == "waiting"
    part_path(cluster, manifest, 3).unlink()  # now only five parts exist anywhere
    assert await cluster.healer.heal_segment(manifest.upload_id, 0) == "lost"
    await cluster.orchestrator.probe()
    assert await cluster.healer.heal_segment(manifest.upload_id, 0) == "lost"
