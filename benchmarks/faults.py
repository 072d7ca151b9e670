"""Benchmark phases under faults, run last on the service benchmark's cluster.

* ``stopped_node``: the 4 KiB GETs of the small-object phase, healthy, then with one
  node stopped (SIGSTOP). Requests in flight when it stops wait for it at most one call
  timeout (the *first timeout window*); once the gateway knows it is down (a failed
  call or a probe), reads go around it and decode from parity. Measured: the healthy
  p99, the p99 after the gateway knows the node is down (target: at most twice the
  healthy one), and the slowest request of the first window. SIGCONT at the end.
* ``degraded_download``: the parity-2 large object read with two of the nodes holding
  its data parts killed (SIGKILL): every stripe row is decoded from parity.

Timed assertions belong here rather than in the test suite: on a loaded machine a
latency ratio says more about the machine than about s3lite, and this run reports how
busy the machine was beside the figures.
"""

from __future__ import annotations

import json
import signal
import sqlite3
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import anyio
from tests.s3sign import SignedSession

from benchmarks import client as http

if TYPE_CHECKING:
    from benchmarks.service import Options, Rig

STOPPED = 3
"""Index of the node the SIGSTOP phase stops."""


async def _conditions(gateway_url: str) -> dict[str, str]:
    """Node address -> condition (up, down, full, joining), as the gateway's status
    says after probing every node."""
    async with http.session() as client, client.get(f"{gateway_url}/_admin/status") as response:
        await http.check_status(response)
        status: dict[str, Any] = await response.json()
    return {node["address"]: node["condition"] for node in status["nodes"]}


async def _wait_until(gateway_url: str, node_url: str, condition: str) -> None:
    with anyio.fail_after(120):
        while (await _conditions(gateway_url))[node_url] != condition:
            pass


async def stopped_node(
    options: Options, rig: Rig, clients: Sequence[SignedSession], base: str
) -> dict[str, float]:
    """``base``/00000 ... are the small-object phase's 4 KiB objects."""
    objects = options.small_objects

    async def get(client: SignedSession, number: int) -> None:
        async with client.get(f"{base}/{number % objects:05d}") as response:
            await http.check_status(response)
            if len(await response.read()) != 4096:
                raise http.RequestFailed(f"GET {base}/{number % objects:05d}: short")

    _, healthy = await http.concurrently(clients, options.small_gets, get)
    victim = rig.servers.nodes[STOPPED]
    victim.process.send_signal(signal.SIGSTOP)
    try:
        _, first_window = await http.concurrently(clients, 4 * len(clients), get)
        await _wait_until(rig.servers.url, victim.url, "down")
        _, after = await http.concurrently(clients, options.small_gets, get)
    finally:
        victim.process.send_signal(signal.SIGCONT)
    await _wait_until(rig.servers.url, victim.url, "up")
    healthy_p99, after_p99 = http.percentile(healthy, 0.99), http.percentile(after, 0.99)
    return {
        "stopped_healthy_p99_ms": 1000 * healthy_p99,
        "stopped_node_p99_ms": 1000 * after_p99,
        "stopped_node_p99_ratio": after_p99 / healthy_p99,
        "stopped_first_window_max_ms": 1000 * max(first_window),
    }


def data_part_owners(rig: Rig, key: str) -> list[str]:
    """Addresses of the nodes holding data parts 0, 1, ... of ``key``'s first segment,
    read from the gateway's own files (read-only; SQLite's WAL lets the gateway go on)."""
    gateway = rig.servers.workdir / "gateway"
    topology = json.loads((gateway / "topology.json").read_text())
    address = {node["id"]: node["address"] for node in topology["nodes"]}
    db = sqlite3.connect(f"file:{gateway / 'manifests.sqlite3'}?mode=ro", uri=True)
    try:
        rows = db.execute(
            "SELECT p.idx, p.sector FROM parts p JOIN objects o ON p.upload_id = o.upload_id "
            "WHERE o.key = ? AND p.segment = 0 AND p.idx < 6 ORDER BY p.idx",
            (key,),
        ).fetchall()
    finally:
        db.close()
    return [address[topology["owners"][sector]] for _, sector in rows]


async def degraded_download(options: Options, rig: Rig, key: str, digest: int) -> dict[str, float]:
    """``key`` is ``bucket/key`` of the parity-2 large object. The killed nodes' CPU is
    not counted (they are gone before the phase starts)."""
    owners = data_part_owners(rig, key)
    victims = [node for node in rig.servers.nodes if node.url in owners[:2]]
    for node in victims:
        await node.kill()
    for node in victims:
        await _wait_until(rig.servers.url, node.url, "down")
    size = options.large_bytes
    figures: dict[str, float] = {}
    async with http.session() as client, rig.phase("download-degraded", figures) as spent:
        with anyio.fail_after(http.PHASE_TIMEOUT):
            seconds = await http.download(client, f"{rig.servers.url}/{key}", size, digest)
    figures["degraded_download_mb_s"] = http.rate(size, seconds)
    figures["cpu_s_per_gib_download_degraded"] = spent["all"] / (size / (1 << 30))
    return figures
