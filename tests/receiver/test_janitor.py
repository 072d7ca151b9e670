"""The janitor: stale uploads, deletions a node missed, orphan part files, crashes."""

from __future__ import annotations

import os
import sys
import textwrap
from collections.abc import AsyncIterator
from pathlib import Path

import anyio
import pytest

from s3lite import LocalCluster
from s3lite.orchestrator import part_name
from tests.receiver.helpers import read_all, stored_part_names

pytestmark = pytest.mark.anyio


async def once(data: bytes) -> AsyncIterator[bytes]:
    yield data


async def test_pending_upload_older_than_ttl_is_removed(cluster: LocalCluster) -> None:
    sectors = [0, 60, 120, 180, 240, 300]  # one per node of the equal-arc ring
    await cluster.receiver.manifests.begin_upload("dead", "k", sectors, created=1000.0)
    for index, sector in enumerate(sectors):
        node = cluster.nodes[cluster.orchestrator.ring.owner(sector)]
        await node.put_part(sector, part_name("dead", 0, index), once(b"abandoned"))
    await cluster.receiver.manifests.begin_upload("young", "k2", sectors, created=5000.0)
    report = await cluster.janitor.run_once(pending_before=2000.0)
    assert report.uploads_removed == 1
    assert await stored_part_names(cluster) == set()
    assert await cluster.receiver.manifests.stale_uploads(pending_before=2000.0) == []
    assert await cluster.receiver.manifests.upload_parts("young") != []


async def test_deletion_a_stopped_node_missed_is_finished_later(cluster: LocalCluster) -> None:
    await cluster.receiver.put_object("k", os.urandom(20_000))
    stopped = cluster.nodes["node-4"]
    cluster.transport.unregister(stopped.address)
    await cluster.receiver.delete_object("k")  # the five reachable parts go now
    assert {node for node, _, _ in await stored_part_names(cluster)} == {"node-4"}
    cluster.transport.register(stopped)
    report = await cluster.janitor.run_once()
    assert report.uploads_removed == 1
    assert await stored_part_names(cluster) == set()


async def test_orphan_part_files_are_removed_and_referenced_ones_kept(
    cluster: LocalCluster,
) -> None:
    await cluster.receiver.put_object("keep", os.urandom(20_000))
    kept = await stored_part_names(cluster)
    owner = cluster.orchestrator.ring.owner(7)
    stranger = next(n for n in cluster.nodes if n != owner)
    await cluster.nodes[owner].put_part(7, part_name("nobody", 0, 0), once(b"orphan"))
    await cluster.nodes[stranger].put_part(7, part_name("nobody", 0, 1), once(b"misplaced"))
    manifest = await cluster.receiver.manifests.get("keep")
    assert manifest is not None
    part = manifest.segments[0].parts[0]
    wrong = next(n for n in cluster.nodes if n != cluster.orchestrator.ring.owner(part.sector))
    name = part_name(manifest.upload_id, 0, 0)
    await cluster.nodes[wrong].put_part(part.sector, name, once(b"stale copy"))
    report = await cluster.janitor.run_once()
    assert report.orphans_removed == 3
    assert await stored_part_names(cluster) == kept
    assert len(await read_all(cluster, "keep")) == 20_000


CHILD = textwrap.dedent(
    """
    import os, sys, anyio
    from s3lite import LocalCluster

    async def main(path, where):
        async with LocalCluster(root=path, stripe_unit=4096, fsync=False) as cluster:
            await cluster.receiver.put_object("done", b"acknowledged" * 1000)
            async def body():  # 16 MiB: every part writer has flushed to a temp file
                for _ in range(256):  # (beyond what the part queues hold back)
                    yield os.urandom(65536)
                if where == "body":
                    os._exit(23)  # the process dies mid-upload
            async def die(*args, **kwargs):
                os._exit(23)  # every part is stored, the commit never happens
            if where == "commit":
                cluster.receiver.manifests.commit_upload = die
            await cluster.receiver.put_object("torn", body())

    anyio.run(main, sys.argv[1], sys.argv[2])
    """
)


@pytest.mark.parametrize("where", ["body", "commit"])
async def test_crash_mid_upload_leaves_nothing_after_restart(tmp_path: Path, where: str) -> None:
    path = tmp_path / "c"
    with anyio.fail_after(60):
        child = await anyio.run_process(
            [sys.executable, "-c", CHILD, str(path), where], check=False
        )
    assert child.returncode == 23, child.stderr.decode()
    committed = temporary = 0
    for node_dir in (path / "nodes").iterdir():
        temporary += len(os.listdir(node_dir / "tmp"))
        committed += sum(len(os.listdir(d)) for d in (node_dir / "sectors").iterdir())
    assert (committed, temporary > 0) == ((12, False) if where == "commit" else (6, True))
    async with LocalCluster(root=path, fsync=False) as cluster:
        assert await read_all(cluster, "done") == b"acknowledged" * 1000
        assert len(await stored_part_names(cluster)) == 6
        assert all(not os.listdir(node.data_dir / "tmp") for node in cluster.nodes.values())
        manifests = cluster.receiver.manifests
        assert await manifests.stale_uploads(pending_before=float("inf")) == []


async def test_an_upload_older_than_the_ttl_is_left_alone_while_it_streams(
    cluster: LocalCluster,
) -> None:
    """A slow upload outlives the TTL: the janitor must not sweep it from under its
    writer, and once it commits the object is whole."""
    streaming, release = anyio.Event(), anyio.Event()
    first, second = os.urandom(50_000), os.urandom(50_000)

    async def body() -> AsyncIterator[bytes]:
        yield first
        streaming.set()  # asked for more: the pending record and first parts exist
        await release.wait()
        yield second

    async with anyio.create_task_group() as group:
        group.start_soon(cluster.receiver.put_object, "slow", body())
        await streaming.wait()
        report = await cluster.janitor.run_once(pending_before=float("inf"))
        assert report.uploads_removed == 0
        release.set()
    assert await read_all(cluster, "slow") == first + second
    assert len(await stored_part_names(cluster)) == 6
