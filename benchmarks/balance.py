"""How evenly nodes fill, and how much each join moves, under each join policy.

Runs the real code: a LocalCluster per policy, objects of lognormal sizes uploaded
through the receiver while the cluster grows one ``add_node()`` at a time from 6 to
``--max-nodes``. After every join it records, from the nodes' own usage figures:

* max/mean and max/min of bytes per node,
* bytes the join moved (what the new node received) against the ideal
  ``total / (n + 1)``.

Objects are STANDARD: with the cluster's target parity (``--parity``, default 2) a
segment has 6 data parts and, from eight nodes on, two parity parts, every one on its
own node, so joins move parity parts like any other.

Usage: ``python -m benchmarks balance [--objects N] [--max-nodes N] [--policies ...]
[--parity P]``
"""

from __future__ import annotations

import argparse
import json
import math
import random
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import anyio

from s3lite import LocalCluster

MEDIAN_BYTES = 1024
SIGMA = 1.2
SEED = 2026


def object_sizes(count: int, seed: int = SEED) -> list[int]:
    rng = random.Random(seed)
    return [max(1, int(rng.lognormvariate(math.log(MEDIAN_BYTES), SIGMA))) for _ in range(count)]


async def grow(
    policy: str, objects: int, max_nodes: int, root: Path, parity: int = 2
) -> list[dict[str, float]]:
    """Upload an equal batch of objects before each join, from 6 to ``max_nodes``."""
    sizes = object_sizes(objects)
    rounds = max_nodes - 5
    batches = [sizes[r * objects // rounds : (r + 1) * objects // rounds] for r in range(rounds)]
    rows: list[dict[str, float]] = []
    uploaded = 0
    cluster = LocalCluster(
        root=root, policy=policy, janitor_interval=None, fsync=False, parity=parity
    )
    async with cluster:
        for batch in batches:
            for size in batch:
                await cluster.receiver.put_object(f"o{uploaded}", b"\x5a" * size)
                uploaded += 1
            if len(cluster.nodes) == max_nodes:
                break
            before = sum((await cluster.usage()).values())
            started = time.perf_counter()
            new = await cluster.add_node()
            seconds = time.perf_counter() - started
            usage = await cluster.usage()
            loads = list(usage.values())
            mean = sum(loads) / len(loads)
            ideal = before / len(loads)
            rows.append(
                {
                    "nodes": len(loads),
                    "max_mean": max(loads) / mean,
                    "max_min": max(loads) / max(1, min(loads)),
                    "moved_ratio": usage[new] / ideal if ideal else 0.0,
                    "join_seconds": seconds,
                }
            )
    return rows


def summarize(policy: str, rows: Sequence[dict[str, float]]) -> dict[str, float | str]:
    upto24 = [r for r in rows if r["nodes"] <= 24]
    return {
        "policy": policy,
        "worst_max_mean": max(r["max_mean"] for r in rows),
        "worst_max_min": max(r["max_min"] for r in rows),
        "worst_max_mean_upto24": max(r["max_mean"] for r in upto24),
        "worst_max_min_upto24": max(r["max_min"] for r in upto24),
        "worst_moved_ratio": max(r["moved_ratio"] for r in rows),
        "mean_moved_ratio": sum(r["moved_ratio"] for r in rows) / len(rows),
    }


async def main(argv: Sequence[str] | None = None) -> dict[str, object]:
    parser = argparse.ArgumentParser(prog="python -m benchmarks balance")
    parser.add_argument("--objects", type=int, default=100_000)
    parser.add_argument("--max-nodes", type=int, default=48)
    parser.add_argument("--policies", nargs="+", default=["fill", "half", "ketama"])
    parser.add_argument("--every", type=int, default=6, help="print every Nth cluster size")
    parser.add_argument("--parity", type=int, default=2, help="the clusters' target parity")
    args = parser.parse_args(argv)
    results: dict[str, object] = {}
    for policy in args.policies:
        with tempfile.TemporaryDirectory(prefix=f"s3lite-balance-{policy}-") as root:
            rows = await grow(policy, args.objects, args.max_nodes, Path(root), args.parity)
        results[policy] = {"rows": rows, "summary": summarize(policy, rows)}
        print(
            f"\n{policy}: {args.objects} objects, lognormal median {MEDIAN_BYTES} B, "
            f"target parity {args.parity}"
        )
        print(f"{'nodes':>5} {'max/mean':>9} {'max/min':>8} {'moved/ideal':>12} {'join s':>7}")
        for row in rows:
            if row["nodes"] % args.every == 0 or row["nodes"] == args.max_nodes:
                print(
                    f"{row['nodes']:>5.0f} {row['max_mean']:>9.3f} {row['max_min']:>8.3f} "
                    f"{row['moved_ratio']:>12.3f} {row['join_seconds']:>7.2f}"
                )
        print(json.dumps(summarize(policy, rows)))
    return results


if __name__ == "__main__":
    anyio.run(main)
