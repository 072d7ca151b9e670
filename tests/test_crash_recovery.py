"""A crash at each step of a join: reopening serves every acknowledged object and
finishes the migration (invariants 3, 7 and 8).

Two kinds of crash: an exception no handler catches (BaseException), which unwinds
the stack without running the join's roll-back, and a real one — a child process that
calls ``os._exit`` at the step, so no cleanup code of any kind runs.
"""

from __future__ import annotations

import os
import sys
import textwrap
from pathlib import Path

import anyio
import pytest

from s3lite import LocalCluster
from s3lite.orchestrator import NodeState
from s3lite.storager.partfile import Header

pytestmark = pytest.mark.anyio

STEPS = ["before-export", "mid-import", "after-switch", "before-drop"]


class Crash(BaseException):
    """Stands for the process dying: not an Exception, so nothing rolls back."""


async def read_all(cluster: LocalCluster, key: str) -> bytes:
    return b"".join([chunk async for chunk in cluster.receiver.get_object(key)])


async def check_recovered(path: Path, objects: dict[str, bytes]) -> None:
    # Recovery happens while the cluster opens; nothing runs in the background after
    # (the healer would start raising the parity of older objects now that a node
    # joined, and the bytes on disk would move under the checks below).
    async with LocalCluster(
        root=path, fsync=False, probe_interval=None, janitor_interval=None
    ) as cluster:
        topology = cluster.orchestrator.topology
        assert topology.migration is None
        assert [info.node_id for info in topology.nodes][-1] == "node-7"
        assert all(info.state is NodeState.READY for info in topology.nodes)
        usage = await cluster.usage()
        assert usage["node-7"] > 0
        for key, data in objects.items():
            assert await read_all(cluster, key) == data, key
        ring = cluster.orchestrator.ring
        total = 0
        for key in objects:
            manifest = await cluster.receiver.manifests.get(key)
            assert manifest is not None
            parts = manifest.segments[0].parts
            assert len({ring.owner(p.sector) for p in parts}) == len(parts)  # parity too
            total += sum(Header(p.length).file_size for p in parts)
        # no copy left behind on a donor, no partial import on the new node
        assert sum(usage.values()) == total
        for node_id, node in cluster.nodes.items():
            for sector in await node.usage():
                assert ring.owner(sector) == node_id


@pytest.mark.parametrize("step", STEPS)
async def test_crash_at_each_step_recovers(tmp_path: Path, step: str) -> None:
    path = tmp_path / "c"
    objects = {f"o{i}": os.urandom(2000 + 97 * i) for i in range(60)}
    async with LocalCluster(root=path, stripe_unit=1024, fsync=False) as cluster:
        for key, data in objects.items():
            await cluster.receiver.put_object(key, data)

        async def crash(name: str) -> None:
            if name == "mid-import" or name == step:
                # writes acknowledged while the join is in flight must survive too
                key = f"during-{name}"
                objects[key] = os.urandom(5000)
                await cluster.receiver.put_object(key, objects[key])
                victim = "o1" if name == "mid-import" else "o2"
                if objects.pop(victim, None) is not None:
                    await cluster.receiver.delete_object(victim)
            if name == step:
                raise Crash

        cluster.orchestrator.on_step = crash
        with pytest.raises(Crash):
            await cluster.add_node()
    await check_recovered(path, objects)


CHILD = textwrap.dedent(
    """
    import os, sys, anyio
    from s3lite import LocalCluster

    async def main(path, step):
        async with LocalCluster(root=path, stripe_unit=1024, fsync=False) as cluster:
            for i in range(40):
                await cluster.receiver.put_object(f"o{i}", bytes([i]) * (1500 + i))
            async def crash(name):
                if name == step:
                    os._exit(17)
            cluster.orchestrator.on_step = crash
            await cluster.add_node()
        sys.exit("the join finished without reaching " + step)

    anyio.run(main, sys.argv[1], sys.argv[2])
    """
)


@pytest.mark.parametrize("step", STEPS)
async def test_process_killed_at_each_step_recovers(tmp_path: Path, step: str) -> None:
    path = tmp_path / "c"
    with anyio.fail_after(60):
        child = await anyio.run_process([sys.executable, "-c", CHILD, str(path), step], check=False)
    assert child.returncode == 17, child.stderr.decode()
    await check_recovered(path, {f"o{i}": bytes([i]) * (1500 + i) for i in range(40)})
