"""LocalCluster: the public surface of issue #2, reopening, and joins end to end."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import s3lite
from s3lite import JoinRefused, LocalCluster, NotFound, S3liteError
from s3lite.cli import build_parser
from s3lite.orchestrator import SECTORS, NodeState
from s3lite.storager import StorageNode
from tests.receiver.helpers import assert_invariant_one, read_all, referenced_bytes

pytestmark = pytest.mark.anyio


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


async def test_public_surface_as_documented(tmp_path: Path) -> None:
    """The snippet from the issue, verbatim apart from the data, on asyncio and trio."""
    path = tmp_path / "c"
    body = os.urandom(300_000)
    async with LocalCluster(root=path, nodes=6) as cluster:
        await cluster.receiver.put_object("a/b.bin", body, size=None)
        chunks = [
            chunk async for chunk in cluster.receiver.get_object("a/b.bin", start=None, end=None)
        ]
        assert b"".join(chunks) == body
        info = await cluster.receiver.head_object("a/b.bin")
        assert info.size == len(body)
        new_id = await cluster.add_node()
        assert new_id == "node-7"
        usage = await cluster.usage()
        assert set(usage) == {f"node-{n}" for n in range(1, 8)}
        assert sum(usage.values()) > len(body)
        owner = cluster.orchestrator.ring.owner(17)
        assert owner in usage
        await cluster.receiver.delete_object("a/b.bin")
        with pytest.raises(s3lite.NotFound):
            await cluster.receiver.head_object("a/b.bin")
    assert issubclass(NotFound, S3liteError)


async def test_reopen_restores_nodes_ring_and_objects(tmp_path: Path) -> None:
    path = tmp_path / "c"
    objects = {f"k{i}": os.urandom(1000 * i + 1) for i in range(20)}
    async with LocalCluster(root=path, nodes=7, stripe_unit=4096, fsync=False) as cluster:
        for key, data in objects.items():
            await cluster.receiver.put_object(key, data)
        await cluster.add_node()
        ring = cluster.orchestrator.ring
        usage = await cluster.usage()
    async with LocalCluster(root=path, nodes=6, fsync=False) as reopened:
        assert reopened.orchestrator.ring == ring
        assert await reopened.usage() == usage
        assert all(info.state is NodeState.READY for info in reopened.orchestrator.topology.nodes)
        for key, data in objects.items():
            assert await read_all(reopened, key) == data


async def test_a_new_cluster_needs_six_nodes(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="at least 6"):
        async with LocalCluster(root=tmp_path / "c", nodes=5):
            pass


async def test_every_sector_has_one_owner_and_arcs_are_equal(tmp_path: Path) -> None:
    async with LocalCluster(root=tmp_path / "c", nodes=8, fsync=False) as cluster:
        ring = cluster.orchestrator.ring
        assert len(ring.owners) == SECTORS
        assert sorted(len(ring.sectors_of(n)) for n in ring.nodes) == [45] * 8


async def test_join_of_a_duplicate_or_non_empty_node_is_refused_and_changes_nothing(
    tmp_path: Path,
) -> None:
    async with LocalCluster(root=tmp_path / "c", nodes=6, fsync=False) as cluster:
        await cluster.receiver.put_object("x", os.urandom(5000))
        before = cluster.orchestrator.topology
        with pytest.raises(JoinRefused, match="already"):
            await cluster.orchestrator.add_node(cluster.nodes["node-2"].address)
        twin = await StorageNode.open(tmp_path / "twin", "node-3", fsync=False)
        cluster.transport.register(twin, "memory://twin")
        with pytest.raises(JoinRefused, match="already in the ring"):
            await cluster.orchestrator.add_node("memory://twin")
        full = await StorageNode.open(tmp_path / "full", "node-full", fsync=False)
        await full.put_part(5, "stray-0-0", _once(b"leftover"))
        cluster.transport.register(full)
        with pytest.raises(JoinRefused, match="only an empty node"):
            await cluster.orchestrator.add_node(full.address)
        with pytest.raises(JoinRefused, match="cannot join"):
            await cluster.orchestrator.add_node("memory://nobody")
        assert cluster.orchestrator.topology == before
        assert await read_all(cluster, "x")


async def _once(data: bytes):  # type: ignore[no-untyped-def]
    yield data


@pytest.mark.parametrize("policy", ["fill", "half", "ketama"])
async def test_joins_keep_every_object_and_invariant_one(tmp_path: Path, policy: str) -> None:
    """Objects written before each of several joins stay readable, with every part
    (data and parity) of every object on a distinct node after every join (re-homing
    at work); objects written once there are eight nodes or more have parity 2."""
    async with LocalCluster(
        root=tmp_path / policy, nodes=6, policy=policy, stripe_unit=2048, fsync=False
    ) as cluster:
        objects: dict[str, bytes] = {}
        for round_ in range(4):
            for i in range(40):
                key = f"r{round_}/o{i}"
                objects[key] = os.urandom(3000 + 17 * i)
                await cluster.receiver.put_object(key, objects[key])
            for i in range(40):
                manifest = await cluster.receiver.manifests.get(f"r{round_}/o{i}")
                assert manifest is not None
                assert manifest.segments[0].parity == min(2, len(cluster.nodes) - 6)
            new = await cluster.add_node()
            usage = await cluster.usage()
            assert usage[new] > 0, f"{new} received nothing under {policy}"
            await assert_invariant_one(cluster)
        for key, data in objects.items():
            assert await read_all(cluster, key) == data
        # the donors' copies are gone: total bytes equal what the manifests reference
        assert sum((await cluster.usage()).values()) == await referenced_bytes(cluster)


async def test_multipart_options(tmp_path: Path) -> None:
    """multipart_ttl (the janitor's) and min_part_size (the receiver's) are options."""
    async with LocalCluster(
        tmp_path / "c", fsync=False, janitor_interval=None, multipart_ttl=60, min_part_size=7
    ) as cluster:
        assert cluster.janitor.multipart_ttl == 60
        assert cluster.receiver.min_part_size == 7
    for bad in ({"multipart_ttl": 0}, {"min_part_size": 0}):
        with pytest.raises(ValueError, match=next(iter(bad))):
            LocalCluster(tmp_path / "d", **bad)  # type: ignore[arg-type]
    parsed = build_parser().parse_args(["serve", "--multipart-ttl", "3600"])
    assert parsed.multipart_ttl == 3600
