"""The healer, measured: the time to rebuild a wiped node, and its rate limit honoured.

    python -m benchmarks healing [--node-mib N] [--rate-mib R] [--object-mib M]

Eight ``s3lite node`` processes and a gateway (parity 2) on loopback, as in the
service benchmark (tests/processes.py). Objects are uploaded until one node holds
about ``--node-mib`` MiB of part files (a node holds a sixth of the bytes uploaded:
eight parts of a sixth each, over eight nodes). Then that node is killed, its data
directory deleted, and it is started again with ``--replaced``:

* ``rebuild_seconds``, ``rebuild_mb_s``: from the moment the empty node listens to
  the end of ``POST /_admin/heal {"node": ID}`` (the gateway's own healer also starts
  on it as soon as it sees the node back; the pass ends once every part is back),
  with the rate limit out of the way (``--heal-rate 64G``); MB/s counts the bytes
  written back (``rebuilt_bytes``), each of which took six parts' worth of reads;
* ``limited_mb_s`` against ``rate_limit_mb_s``: the same again, the gateway restarted
  with ``--heal-rate R MiB``: what the healer wrote per second against what it may;
  the token bucket starts with one second's worth, so ``limited_after_burst_mb_s``
  (the bytes beyond that first second's burst, per second) is the one to compare.

Every rebuilt part file is compared with the one wiped (byte for byte). Figures go to
stdout and to ``.bench/healing.json``.
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import anyio
from tests.processes import Service, running_service

from benchmarks import client as http
from benchmarks.baseline import blocks

ROOT = Path(__file__).resolve().parent.parent
OUTPUT = ROOT / ".bench" / "healing.json"
MiB = 1 << 20
VICTIM = 3


def part_bytes(data_dir: Path) -> dict[str, bytes]:
    sectors = data_dir / "sectors"
    return {str(p.relative_to(sectors)): p.read_bytes() for p in sectors.rglob("*") if p.is_file()}


async def admin(method: str, url: str, body: Any = None) -> Any:
    async with (
        http.session() as client,
        client.request(method, url, json=body) as response,
    ):
        await http.check_status(response)
        return await response.json(content_type=None) if method != "PUT" else None


async def rebuild(service: Service, node_id: str) -> tuple[float, int]:
    """Wipe the victim, start it replaced, heal it: (seconds, bytes rebuilt)."""
    victim = service.nodes[VICTIM]
    held = part_bytes(service.node_dir(VICTIM))
    before = (await admin("GET", f"{service.gw.url}/_admin/status"))["heal"]["rebuilt_bytes"]
    port = victim.port
    await victim.kill()
    shutil.rmtree(service.node_dir(VICTIM))
    await service.start_node(VICTIM, port, "--node-id", node_id, "--replaced")
    started = time.perf_counter()
    result = await admin("POST", f"{service.gw.url}/_admin/heal", {"node": node_id})
    seconds = time.perf_counter() - started
    status = await admin("GET", f"{service.gw.url}/_admin/status")
    if result["waiting"] or result["lost"] or part_bytes(service.node_dir(VICTIM)) != held:
        raise RuntimeError(f"the rebuild did not give the node its parts back: {result}")
    replaced = {n["id"]: n["replaced"] for n in status["nodes"]}[node_id]
    if replaced:
        raise RuntimeError(f"{node_id} is still marked replaced after its rebuild")
    return seconds, status["heal"]["rebuilt_bytes"] - before


async def measure(node_mib: int, rate_mib: int, object_mib: int) -> dict[str, float]:
    figures: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="s3lite-heal-bench-") as tmp:
        root = Path(tmp)
        async with running_service(root, "--heal-rate", "64G", nodes=8) as service:
            bucket = f"{service.gw.url}/heal"
            await admin("PUT", bucket)
            pattern = blocks()
            count = max(1, -(-node_mib * 6 // object_mib))
            async with http.session() as client:
                for number in range(count):
                    await http.upload(client, f"{bucket}/o{number}", object_mib * MiB, pattern)
            status = await admin("GET", f"{service.gw.url}/_admin/status")
            url = service.nodes[VICTIM].url
            node_id = next(n["id"] for n in status["nodes"] if n["address"] == url)
            held = sum(len(b) for b in part_bytes(service.node_dir(VICTIM)).values())
            figures["node_mib"] = held / MiB
            seconds, rebuilt = await rebuild(service, node_id)
            figures["rebuild_seconds"] = seconds
            figures["rebuild_mb_s"] = http.rate(rebuilt, seconds)
            print(f"rebuilt {node_id} ({held / MiB:.0f} MiB of part files, {rebuilt} bytes of "
                  f"parts) in {seconds:.1f} s: {figures['rebuild_mb_s']:.0f} MB/s")  # fmt: skip

            await service.gw.stop()
            await service.start_gateway("--heal-rate", f"{rate_mib}M", with_nodes=False)
            seconds, rebuilt = await rebuild(service, node_id)
            figures["rate_limit_mb_s"] = rate_mib * MiB / http.MB
            figures["limited_mb_s"] = http.rate(rebuilt, seconds)
            # the bucket starts full (one second's worth): the rate beyond that burst
            figures["limited_after_burst_mb_s"] = http.rate(rebuilt - rate_mib * MiB, seconds)
            figures["limited_seconds"] = seconds
            print(f"with --heal-rate {rate_mib}M ({figures['rate_limit_mb_s']:.1f} MB/s): "
                  f"{figures['limited_mb_s']:.1f} MB/s over {seconds:.1f} s")  # fmt: skip
    return figures


def main(argv: Sequence[str]) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks healing")
    parser.add_argument("--node-mib", type=int, default=1024,
                        help="part files on the wiped node, about (default 1 GiB)")  # fmt: skip
    parser.add_argument("--rate-mib", type=int, default=16,
                        help="--heal-rate of the limited run, MiB/s (default 16)")  # fmt: skip
    parser.add_argument("--object-mib", type=int, default=64, help="object size (default 64)")
    args = parser.parse_args(argv)
    figures = anyio.run(measure, args.node_mib, args.rate_mib, args.object_mib)
    OUTPUT.parent.mkdir(exist_ok=True)
    OUTPUT.write_text(json.dumps(figures, indent=2) + "\n")
    print(json.dumps(figures, indent=2))
