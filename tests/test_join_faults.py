"""Joins meeting faults: a joining node that hiccups, nodes down at restart, nodes that
answer at each other's addresses, a cancelled join, stray files on a node."""

from __future__ import annotations

import os
from pathlib import Path

import anyio
import pytest

from s3lite import Cluster, LocalCluster, NodeUnavailable
from s3lite.orchestrator import NodeState
from s3lite.storager import StorageNode
from s3lite.transport import MemoryTransport
from tests.receiver.helpers import assert_invariant_one, read_all, referenced_bytes

pytestmark = pytest.mark.anyio


class Crash(BaseException):
    """Stands for the process dying: not an Exception, so nothing rolls back."""


async def test_writes_stand_when_the_joining_node_hiccups(tmp_path: Path) -> None:
    """A joining node that misses dual writes does not fail the clients' writes (the
    donor's copy counts until the switch); the sectors are copied again before the
    donors drop them, so nothing written during the join is lost."""
    async with LocalCluster(
        tmp_path / "c", stripe_unit=1024, janitor_interval=None, fsync=False
    ) as cluster:
        written = {f"o{i}": os.urandom(3000) for i in range(20)}
        for key, data in written.items():
            await cluster.receiver.put_object(key, data)

        async def hiccup(step: str) -> None:
            if step != "before-export":
                return
            migration = cluster.orchestrator.topology.migration
            assert migration is not None
            joining = cluster.nodes[migration.new_node]
            cluster.transport.unregister(joining.address)
            for i in range(20):
                written[f"w{i}"] = os.urandom(3000)
                await cluster.receiver.put_object(f"w{i}", written[f"w{i}"])
            cluster.transport.register(joining)

        cluster.orchestrator.on_step = hiccup
        await cluster.add_node()
        for key, data in written.items():
            assert await read_all(cluster, key) == data
        await assert_invariant_one(cluster)
        assert sum((await cluster.usage()).values()) == await referenced_bytes(cluster)


async def _crash_a_join(tmp_path: Path, step: str) -> tuple[list[StorageNode], dict[str, bytes]]:
    nodes = [
        await StorageNode.open(tmp_path / f"n{n}", f"node-{n}", fsync=False) for n in range(1, 8)
    ]
    transport = MemoryTransport()
    for node in nodes:
        transport.register(node)
    objects = {f"k{i}": os.urandom(5000) for i in range(30)}
    addresses = [node.address for node in nodes[:6]]
    cluster = Cluster(
        tmp_path / "gw", transport, addresses, stripe_unit=1024, janitor_interval=None, fsync=False
    )

    async def crash(name: str) -> None:
        if name == step:
            raise Crash

    async def run() -> None:
        async with cluster:
            for key, data in objects.items():
                await cluster.receiver.put_object(key, data)
            cluster.orchestrator.on_step = crash
            await cluster.join(nodes[6].address)

    with pytest.raises(Crash):
        await run()
    return nodes, objects


@pytest.mark.parametrize(
    ("step", "down"), [("before-export", "node-7"), ("after-switch", "node-1")]
)
async def test_a_gateway_starts_while_a_node_of_an_interrupted_join_is_down(
    tmp_path: Path, step: str, down: str
) -> None:
    """Copying with the new node gone: the join is rolled back and the donors serve.
    Switched with a donor gone: the donors keep their copies until it is back, and the
    next janitor pass finishes the join."""
    nodes, objects = await _crash_a_join(tmp_path, step)
    transport = MemoryTransport()
    for node in nodes:
        if node.node_id != down:
            transport.register(node)
    async with Cluster(tmp_path / "gw", transport, janitor_interval=None, fsync=False) as cluster:
        topology = cluster.orchestrator.topology
        if step == "before-export":
            assert topology.migration is None
            assert "node-7" not in topology.node_ids
            for key, data in objects.items():
                assert await read_all(cluster, key) == data
        else:
            assert topology.migration is not None  # the donors' drop is pending
            transport.register(next(node for node in nodes if node.node_id == down))
            await cluster.janitor.run_once()
            assert cluster.orchestrator.topology.migration is None
            assert all(info.state is NodeState.READY for info in topology.nodes)
            for key, data in objects.items():
                assert await read_all(cluster, key) == data
            assert sum((await cluster.usage()).values()) == await referenced_bytes(cluster)


async def test_nodes_answering_at_each_others_addresses_are_refused(tmp_path: Path) -> None:
    """Swapped ports would make the janitor see every part as misplaced and delete
    everything: the gateway refuses to start instead."""
    root = tmp_path / "c"
    async with LocalCluster(root=root, stripe_unit=1024, fsync=False) as cluster:
        await cluster.receiver.put_object("k", os.urandom(10_000))
    nodes = [
        await StorageNode.open(root / "nodes" / f"node-{n}", f"node-{n}", fsync=False)
        for n in range(1, 7)
    ]
    transport = MemoryTransport()
    for node in nodes:
        transport.register(node)
    transport.register(nodes[0], nodes[1].address)
    transport.register(nodes[1], nodes[0].address)
    with pytest.raises(NodeUnavailable, match="it is node"):
        async with Cluster(root / "gateway", transport, fsync=False):
            pass
    parts = 0
    for node in nodes:
        for sector in await node.usage():
            parts += len(await node.list_parts(sector))
    assert parts == 6  # nothing was deleted


async def test_a_cancelled_join_is_rolled_back(tmp_path: Path) -> None:
    async with LocalCluster(
        tmp_path / "c", stripe_unit=1024, janitor_interval=None, fsync=False
    ) as cluster:
        for i in range(10):
            await cluster.receiver.put_object(f"o{i}", os.urandom(3000))
        before = cluster.orchestrator.ring
        copying = anyio.Event()

        async def pause(step: str) -> None:
            if step == "before-export":
                copying.set()
                await anyio.sleep_forever()

        cluster.orchestrator.on_step = pause
        async with anyio.create_task_group() as group:
            group.start_soon(cluster.add_node)
            await copying.wait()
            group.cancel_scope.cancel()
        assert cluster.orchestrator.topology.migration is None
        assert cluster.orchestrator.ring == before
        assert cluster.orchestrator.view.dual_writes == {}


async def test_a_stray_file_on_a_node_is_ignored(tmp_path: Path) -> None:
    root = tmp_path / "c"
    async with LocalCluster(root=root, stripe_unit=1024, fsync=False) as cluster:
        await cluster.receiver.put_object("k", os.urandom(10_000))
        sector = next(iter(await cluster.nodes["node-1"].usage()))
    stray = root / "nodes" / "node-1" / "sectors" / f"{sector:03d}" / "README.txt"
    stray.write_text("not a part")
    async with LocalCluster(root=root, fsync=False) as cluster:
        report = await cluster.janitor.run_once()
        assert report.orphans_removed == 0
        assert len(await read_all(cluster, "k")) == 10_000
    assert stray.exists()
