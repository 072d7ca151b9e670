"""The healer over real processes: eight ``s3lite node`` processes and a gateway
process with parity 2 (issue 7's "Done when"):

* a node whose data directory is wiped, restarted with ``--replaced``, gets back
  exactly the part files it held, byte for byte, while reads keep working;
* part files flipped, truncated and deleted on two nodes: every GET returns the right
  bytes, the bad files end in quarantine and a heal pass rebuilds them;
* a six-node cluster gains two nodes by joins while clients write: a heal pass raises
  every segment to parity 2, its eight parts on eight distinct nodes.

(The two nodes killed with kill -9 and healed back are in test_durability.py.)
Objects are small and few, so each test stays within seconds; every wait is bounded.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import anyio
import pytest

from s3lite.orchestrator import TopologyFile
from tests.http_helpers import (
    assert_all_readable,
    create_bucket,
    get_json,
    heal,
    payload,
    put_object,
    segments,
    signed_session,
    status,
    upload_all,
)
from tests.processes import Service, running_service
from tests.s3sign import SignedSession
from tests.test_operations import cli

pytestmark = pytest.mark.anyio

EIGHT = 8
TEST_TIMEOUT = 180.0
PROBE = ("--probe-interval", "0.5")


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
async def http() -> AsyncIterator[SignedSession]:
    async with signed_session() as session:
        yield session


def part_bytes(data_dir: Path) -> dict[str, bytes]:
    """Every part file under a node's ``sectors/``: relative path -> its bytes."""
    sectors = data_dir / "sectors"
    return {str(p.relative_to(sectors)): p.read_bytes() for p in sectors.rglob("*") if p.is_file()}


def quarantined(data_dir: Path) -> int:
    """Part files in the node's quarantine (each beside its ``info.json``)."""
    directory = data_dir / "quarantine"
    found = directory.rglob("*") if directory.exists() else ()
    return sum(1 for p in found if p.is_file() and p.name != "info.json")


async def node_id_at(http: SignedSession, service: Service, index: int) -> str:
    url = service.nodes[index].url
    (found,) = [n["id"] for n in (await status(http, service))["nodes"] if n["address"] == url]
    return str(found)


async def test_a_wiped_node_restarted_as_replaced_gets_exactly_its_parts_back(
    tmp_path: Path, http: SignedSession
) -> None:
    async with running_service(tmp_path, *PROBE, nodes=EIGHT) as service:
        with anyio.fail_after(TEST_TIMEOUT):
            await create_bucket(http, service, "wiped")
            objects = {f"o{n}": payload(f"o{n}", 120_001 + n * 33_331) for n in range(12)}
            await upload_all(http, service, "wiped", objects)
            victim = 3
            node_id = await node_id_at(http, service, victim)
            held = part_bytes(service.node_dir(victim))
            assert held
            port = service.nodes[victim].port
            await service.nodes[victim].kill()
            shutil.rmtree(service.node_dir(victim))
            await service.start_node(victim, port, "--node-id", node_id, "--replaced")
            await assert_all_readable(http, service, "wiped", objects)  # degraded meanwhile

            result = await heal(http, service, node_id)

            # (the background healer may have rebuilt some of them first: count all)
            assert (result["lost"], result["waiting"]) == (0, 0), result
            after = await status(http, service)
            assert after["heal"]["rebuilt_parts"] == len(held), after["heal"]
            assert part_bytes(service.node_dir(victim)) == held  # count and bytes
            states = {n["id"]: n for n in after["nodes"]}
            assert states[node_id]["replaced"] is False
            await assert_all_readable(http, service, "wiped", objects)


async def test_damaged_truncated_and_deleted_parts_on_two_nodes_are_rebuilt(
    tmp_path: Path, http: SignedSession
) -> None:
    async with running_service(tmp_path, *PROBE, nodes=EIGHT) as service:
        with anyio.fail_after(TEST_TIMEOUT):
            await create_bucket(http, service, "rot")
            objects = {f"o{n}": payload(f"r{n}", 90_001 + n * 40_009) for n in range(8)}
            await upload_all(http, service, "rot", objects)
            before = {index: part_bytes(service.node_dir(index)) for index in (1, 5)}
            files = {
                index: sorted(before[index])[:3] for index in before
            }  # three parts on each of two nodes
            for index, names in files.items():
                sectors = service.node_dir(index) / "sectors"
                flipped, cut, gone = (sectors / name for name in names)
                raw = bytearray(flipped.read_bytes())
                raw[100] ^= 0x40  # a payload byte of block 0
                flipped.write_bytes(bytes(raw))
                cut.write_bytes(cut.read_bytes()[: len(cut.read_bytes()) // 2])
                gone.unlink()

            await assert_all_readable(http, service, "rot", objects)
            shown = (await cli("heal", "--gateway", service.gw.url)).stdout.decode()

            assert "queue: queued=" in shown, shown  # one line per step off a terminal
            assert f"scan: segments={len(objects)}" in shown, shown
            assert "0 waiting for nodes, 0 lost" in shown, shown
            assert (await status(http, service))["heal"]["rebuilt_parts"] == 6
            for index in before:
                assert part_bytes(service.node_dir(index)) == before[index]
                assert quarantined(service.node_dir(index)) == 2  # flipped and truncated
            again = await heal(http, service)
            assert (again["repaired"], again["rebuilt_parts"]) == (0, 0)
            assert again["whole"] == again["segments"] == len(objects)
            await assert_all_readable(http, service, "rot", objects)
            text = (await cli("status", "--gateway", service.gw.url)).stdout.decode()
            assert "healer: 0 degraded segment(s), heal queue 0, rebuilt 6 part(s)" in text


async def test_two_joins_under_traffic_then_every_object_has_parity_two(
    tmp_path: Path, http: SignedSession
) -> None:
    async with running_service(tmp_path, *PROBE, nodes=6, spares=2) as service:
        with anyio.fail_after(TEST_TIMEOUT):
            await create_bucket(http, service, "grow")
            acked = {f"seed/{n}": payload(f"g{n}", 80_001 + n * 21_001) for n in range(8)}
            await upload_all(http, service, "grow", acked)
            joined = anyio.Event()
            failures: list[tuple[str, int]] = []

            async def writer() -> None:
                for i in range(10_000):
                    key, data = f"w/{i}", payload(f"w{i}", 60_000 + i * 1_003)
                    response = await put_object(http, service.url("grow", key), data)
                    if response.status == 200:
                        acked[key] = data
                    else:
                        failures.append((key, response.status))
                    if joined.is_set():
                        return

            async with anyio.create_task_group() as group:
                group.start_soon(writer)
                for spare in service.nodes[6:]:
                    async with http.post(
                        f"{service.gw.url}/_admin/join", json={"node": spare.url}
                    ) as response:
                        assert response.status == 200, await response.text()
                joined.set()
            assert failures == []

            result = await heal(http, service)

            assert result["lost"] == 0, result
            assert result["waiting"] == 0, result
            topology = await TopologyFile(service.gateway_dir / "topology.json").load()
            assert topology is not None
            ring = topology.ring
            found = segments(service)
            assert len(found) == len(acked)
            for parity, sectors in found:
                assert parity == 2
                assert len({ring.owner(sector) for sector in sectors}) == EIGHT  # invariant 1
            await assert_all_readable(http, service, "grow", acked)
            heal_status = (await status(http, service))["heal"]
            assert heal_status["degraded_segments"] == 0
            metrics = await get_json(http, f"{service.gw.url}/_admin/status")
            assert json.dumps(metrics["parity"])  # the status still renders as JSON
