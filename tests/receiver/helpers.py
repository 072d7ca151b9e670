"""Helpers the receiver and cluster tests share: reading objects whole, streaming
bodies, finding and damaging part files on the nodes of a LocalCluster, checking
invariant 1 and the bytes manifests reference, making manifest rows by hand, and
the small clusters and objects the healer's tests work on."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path

from s3lite import LocalCluster, NodeUnavailable
from s3lite.orchestrator import part_name
from s3lite.receiver import Manifest, ObjectInfo, PartRecord, Segment, SqliteManifestStore
from s3lite.storager.partfile import HEADER_SIZE, Header
from tests.s3sign import ROOT_ACCESS, ROOT_SECRET

HEALER_UNIT = 4096
"""The stripe unit of healer_cluster (small objects still have several rows)."""


def healer_cluster(root: Path, nodes: int = 8) -> LocalCluster:
    """A cluster whose healer runs only when a test asks (no janitor, no probes, no
    rate limit)."""
    return LocalCluster(
        root, nodes=nodes, stripe_unit=HEALER_UNIT, janitor_interval=None, fsync=False,
        root_key=(ROOT_ACCESS, ROOT_SECRET), probe_interval=None, heal_rate=None,
    )  # fmt: skip


async def put_some(cluster: LocalCluster, count: int = 4, prefix: str = "obj") -> dict[str, bytes]:
    """``count`` objects of distinct sizes (30 kB and up), random bytes."""
    objects = {f"{prefix}-{n}": os.urandom(30_000 + 17_011 * n) for n in range(count)}
    for key, data in objects.items():
        await cluster.receiver.put_object(key, data)
    return objects


async def read_all(
    cluster: LocalCluster, key: str, start: int | None = None, end: int | None = None
) -> bytes:
    return b"".join([chunk async for chunk in cluster.receiver.get_object(key, start, end)])


async def chunked(data: bytes, size: int) -> AsyncIterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


async def stored_part_names(cluster: LocalCluster) -> set[tuple[str, int, str]]:
    """Every part file on every reachable node: (node, sector, name)."""
    found = set()
    for node_id, node in cluster.nodes.items():
        try:
            sectors = await node.usage()
        except NodeUnavailable:
            continue
        for sector in sectors:
            for stat in await node.list_parts(sector):
                found.add((node_id, sector, stat.name))
    return found


async def manifest_of(cluster: LocalCluster, key: str) -> Manifest:
    manifest = await cluster.receiver.manifests.get(key)
    assert manifest is not None, key
    return manifest


def part_path(cluster: LocalCluster, manifest: Manifest, index: int, segment: int = 0) -> Path:
    """The file of part ``index`` of a segment, on the node that owns its sector."""
    stored = manifest.segments[segment]
    part = stored.parts[index]
    owner = cluster.nodes[cluster.orchestrator.ring.owner(part.sector)]
    name = part_name(stored.upload_id, stored.number, index)
    return owner.data_dir / "sectors" / f"{part.sector:03d}" / name


def damage(path: Path, offset: int, bits: int = 0x01) -> None:
    """Flip ``bits`` of payload byte ``offset`` in a part file, as bit rot would."""
    raw = bytearray(path.read_bytes())
    raw[Header.unpack(raw[:HEADER_SIZE]).payload_offset(offset)] ^= bits
    path.write_bytes(bytes(raw))


def owner_of(cluster: LocalCluster, manifest: Manifest, index: int, segment: int = 0) -> str:
    return cluster.orchestrator.ring.owner(manifest.segments[segment].parts[index].sector)


async def unreferenced_parts(cluster: LocalCluster) -> set[tuple[str, int, str]]:
    """Part files no committed manifest places where they are: (node, sector, name)."""
    ring = cluster.orchestrator.ring
    referenced = set()
    for info in (await cluster.receiver.list_objects(limit=1000)).objects:
        manifest = await manifest_of(cluster, info.key)
        for segment in manifest.segments:
            for part in segment.parts:
                name = part_name(segment.upload_id, segment.number, part.index)
                referenced.add((ring.owner(part.sector), part.sector, name))
    return await stored_part_names(cluster) - referenced


def segment(sectors: list[int], upload: str, size: int = 60) -> Segment:
    parts = tuple(PartRecord(i, s, size // 6, 1000 + i) for i, s in enumerate(sectors))
    return Segment(0, size, 10, parts, upload_id=upload, md5="e" * 32)


def info(key: str, size: int = 60, modified: float = 100.0) -> ObjectInfo:
    return ObjectInfo.of(key, size, "e" * 32, "text/plain", modified, {"m": "v"})


async def put(store: SqliteManifestStore, key: str, upload: str, sectors: list[int]) -> list[str]:
    await store.begin_upload(upload, key, sectors, created=1.0)
    return await store.commit_upload(upload, [segment(sectors, upload)], info(key))


async def assert_invariant_one(cluster: LocalCluster) -> None:
    ring = cluster.orchestrator.ring
    listing = await cluster.receiver.list_objects(limit=1000)
    for info in listing.objects:
        manifest = await cluster.receiver.manifests.get(info.key)
        assert manifest is not None
        (segment,) = manifest.segments
        owners = [ring.owner(part.sector) for part in segment.parts]
        assert len(set(owners)) == len(owners) == 6 + segment.parity, (info.key, owners)


async def referenced_bytes(cluster: LocalCluster) -> int:
    total = 0
    listing = await cluster.receiver.list_objects(limit=1000)
    for info in listing.objects:
        manifest = await cluster.receiver.manifests.get(info.key)
        assert manifest is not None
        parts = manifest.segments[0].parts
        total += sum(Header(part.length).file_size for part in parts if not part.missing)
    return total
