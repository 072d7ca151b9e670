"""Ring lookups per second: s3lite's 360-entry table against uhashring's ``get_node``.

Both map the same keys to one of the same nodes. s3lite hashes the key once (xxh3)
and indexes a tuple; uhashring hashes with md5 and bisects its continuum of virtual
nodes. Reported as lookups/s and as the ratio s3lite / uhashring, measured in the same
run (best of several repeats, so background noise can only understate the ratio).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

from uhashring import HashRing

from s3lite.orchestrator import Ring

NODES = [f"node-{n}" for n in range(1, 13)]


def best_rate(lookup: Callable[[str], object], keys: Sequence[str], repeats: int = 5) -> float:
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        for key in keys:
            lookup(key)
        best = min(best, time.perf_counter() - started)
    return len(keys) / best


def measure(count: int = 200_000) -> dict[str, float]:
    keys = [f"bucket/photos/2026/{n:08d}.jpg" for n in range(count)]
    ring = Ring.equal_arcs(NODES)
    continuum = HashRing(nodes=NODES)
    ours = best_rate(ring.owner_of_key, keys)
    theirs = best_rate(continuum.get_node, keys)
    return {"lookups_per_s": ours, "uhashring_lookups_per_s": theirs, "lookup_ratio": ours / theirs}


def main() -> dict[str, float]:
    figures = measure()
    print(
        f"ring lookups/s: s3lite {figures['lookups_per_s']:,.0f}, "
        f"uhashring get_node {figures['uhashring_lookups_per_s']:,.0f}, "
        f"ratio {figures['lookup_ratio']:.1f}x"
    )
    return figures


if __name__ == "__main__":
    main()
