"""The object API over a six-node in-memory cluster: round trips, ranges, bad input,
overwrites, cancellation. Invariants 1, 2, 4 and 5 of DESIGN.md are pinned here."""

from __future__ import annotations

import hashlib
import os
from collections.abc import AsyncIterator
from typing import Any

import anyio
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from s3lite import (
    BodyLengthMismatch,
    ChecksumMismatch,
    InvalidArgument,
    InvalidKey,
    InvalidRange,
    LocalCluster,
    NodeUnavailable,
    NotFound,
    PartsUnavailable,
)
from s3lite.orchestrator import part_name
from tests.receiver.helpers import chunked, read_all, stored_part_names
from tests.strategies import object_keys

pytestmark = pytest.mark.anyio

UNIT = 4096  # the cluster fixture's stripe unit


async def temp_files(cluster: LocalCluster) -> list[str]:
    return [name for node in cluster.nodes.values() for name in os.listdir(node.data_dir / "tmp")]


@pytest.mark.parametrize("size", [0, 1, 5, 6, 7, UNIT - 1, 6 * UNIT, 6 * UNIT + 1, 50_000, 200_003])
async def test_round_trip_of_every_size(cluster: LocalCluster, size: int) -> None:
    data = os.urandom(size)
    info = await cluster.receiver.put_object("obj", data)
    assert info.size == size
    assert info.etag == hashlib.md5(data).hexdigest()
    assert await read_all(cluster, "obj") == data
    assert (await cluster.receiver.head_object("obj")).size == size


async def test_streamed_body_without_size_round_trips(cluster: LocalCluster) -> None:
    data = os.urandom(123_457)
    await cluster.receiver.put_object("streamed", chunked(data, 1000), size=None)
    assert await read_all(cluster, "streamed") == data


async def test_streamed_body_with_declared_size_round_trips(cluster: LocalCluster) -> None:
    data = os.urandom(77_777)
    await cluster.receiver.put_object("declared", chunked(data, 333), size=len(data))
    assert await read_all(cluster, "declared") == data


async def test_parts_land_on_six_distinct_nodes_and_are_named_by_upload(
    cluster: LocalCluster,
) -> None:
    key = "../../etc/passwd with spaces %2F/and/slashes"
    await cluster.receiver.put_object(key, os.urandom(60_000))
    manifest = await cluster.receiver.manifests.get(key)
    assert manifest is not None
    parts = manifest.segments[0].parts
    owners = {cluster.orchestrator.ring.owner(part.sector) for part in parts}
    assert len(owners) == 6
    files = await stored_part_names(cluster)
    expected = {
        (
            cluster.orchestrator.ring.owner(p.sector),
            p.sector,
            part_name(manifest.upload_id, 0, p.index),
        )
        for p in parts
    }
    assert files == expected
    assert all(key not in name and "passwd" not in name for _, _, name in files)


async def test_small_object_uses_all_six_parts(cluster: LocalCluster) -> None:
    await cluster.receiver.put_object("small", b"x" * 600)  # ceil(600/6) = 100-byte unit
    manifest = await cluster.receiver.manifests.get("small")
    assert manifest is not None
    assert [p.length for p in manifest.segments[0].parts] == [100] * 6


async def test_unsized_small_body_gets_the_same_layout_as_a_sized_one(
    cluster: LocalCluster,
) -> None:
    await cluster.receiver.put_object("sized", b"y" * 1000, size=1000)
    await cluster.receiver.put_object("unsized", chunked(b"y" * 1000, 7))
    sized = await cluster.receiver.manifests.get("sized")
    unsized = await cluster.receiver.manifests.get("unsized")
    assert sized is not None
    assert unsized is not None
    assert [p.length for p in sized.segments[0].parts] == [
        p.length for p in unsized.segments[0].parts
    ]


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data())
async def test_ranges_return_exactly_the_slice(cluster: LocalCluster, data: st.DataObject) -> None:
    size = data.draw(st.integers(1, 40_000), label="size")
    key = f"range-{size}"
    body = os.urandom(size)
    await cluster.receiver.put_object(key, body)
    start = data.draw(st.integers(0, size - 1), label="start")
    end = data.draw(st.integers(start, size + 10), label="end")
    assert await read_all(cluster, key, start, end) == body[start : end + 1]
    assert await read_all(cluster, key, start, None) == body[start:]
    assert await read_all(cluster, key, None, end) == body[: end + 1]


@pytest.mark.parametrize(("start", "end"), [(10, 5), (100, None), (100, 200), (-1, 3)])
async def test_bad_ranges_raise_invalid_range(
    cluster: LocalCluster, start: int, end: int | None
) -> None:
    await cluster.receiver.put_object("hundred", os.urandom(100))
    with pytest.raises(InvalidRange):
        await read_all(cluster, "hundred", start, end)


@settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(key=object_keys)
async def test_any_valid_key_round_trips(cluster: LocalCluster, key: str) -> None:
    await cluster.receiver.put_object(key, key.encode())
    assert await read_all(cluster, key) == key.encode()
    assert (await cluster.receiver.head_object(key)).key == key


@pytest.mark.parametrize("key", ["", "a\0b", "x" * 1089, "\ud800", 17])
async def test_invalid_keys_are_refused_and_store_nothing(
    cluster: LocalCluster, key: object
) -> None:
    with pytest.raises(InvalidKey):
        await cluster.receiver.put_object(key, b"data")  # type: ignore[arg-type]
    assert await stored_part_names(cluster) == set()


async def test_missing_key_raises_not_found_everywhere(cluster: LocalCluster) -> None:
    with pytest.raises(NotFound):
        await cluster.receiver.head_object("nope")
    with pytest.raises(NotFound):
        await read_all(cluster, "nope")
    with pytest.raises(NotFound):
        await cluster.receiver.delete_object("nope")


@pytest.mark.parametrize(("declared", "actual"), [(100, 99), (100, 101), (0, 1), (5000, 0)])
async def test_body_length_mismatch_stores_nothing(
    cluster: LocalCluster, declared: int, actual: int
) -> None:
    await cluster.receiver.put_object("keep", b"old bytes")
    for body in (os.urandom(actual), chunked(os.urandom(actual), 7)):
        with pytest.raises(BodyLengthMismatch):
            await cluster.receiver.put_object("keep", body, size=declared)
    assert await read_all(cluster, "keep") == b"old bytes"
    assert len(await stored_part_names(cluster)) == 6
    assert await temp_files(cluster) == []
    assert await cluster.receiver.manifests.stale_uploads(pending_before=float("inf")) == []


async def test_bad_size_and_metadata_are_refused(cluster: LocalCluster) -> None:
    with pytest.raises(InvalidArgument):
        await cluster.receiver.put_object("k", b"", size=-1)
    with pytest.raises(InvalidArgument):
        await cluster.receiver.put_object("k", b"", metadata={"a": "x" * 3000})
    with pytest.raises(InvalidArgument):
        await cluster.receiver.list_objects(limit=0)
    assert await stored_part_names(cluster) == set()


async def test_metadata_and_content_type_are_kept(cluster: LocalCluster) -> None:
    await cluster.receiver.put_object(
        "doc", b"{}", content_type="application/json", metadata={"owner": "ana"}
    )
    info = await cluster.receiver.head_object("doc")
    assert (info.content_type, dict(info.metadata)) == ("application/json", {"owner": "ana"})


async def test_overwrite_replaces_bytes_and_deletes_old_parts(cluster: LocalCluster) -> None:
    await cluster.receiver.put_object("k", os.urandom(30_000))
    first = await stored_part_names(cluster)
    new = os.urandom(20_000)
    await cluster.receiver.put_object("k", new)
    assert await read_all(cluster, "k") == new
    second = await stored_part_names(cluster)
    assert len(second) == 6
    assert not first & second


async def test_delete_removes_manifest_and_parts(cluster: LocalCluster) -> None:
    await cluster.receiver.put_object("gone", os.urandom(10_000))
    await cluster.receiver.delete_object("gone")
    with pytest.raises(NotFound):
        await cluster.receiver.head_object("gone")
    assert await stored_part_names(cluster) == set()
    assert sum((await cluster.usage()).values()) == 0


async def test_list_objects_is_sorted_prefixed_and_paginated(cluster: LocalCluster) -> None:
    keys = ["a/1", "a/2", "a/10", "b/1", "a/\u00e9", "a/\U0001f600", "ab"]
    for key in keys:
        await cluster.receiver.put_object(key, b"-")
    listed: list[str] = []
    start_after = ""
    while True:
        page = await cluster.receiver.list_objects("a/", start_after=start_after, limit=2)
        listed += [info.key for info in page.objects]
        if not page.is_truncated:
            break
        assert page.next_start_after is not None
        start_after = page.next_start_after
    expected = sorted((k for k in keys if k.startswith("a/")), key=lambda k: k.encode())
    assert listed == expected


async def test_failing_body_iterator_leaves_nothing(cluster: LocalCluster) -> None:
    async def body() -> AsyncIterator[bytes]:
        yield os.urandom(50_000)
        raise ConnectionResetError("client went away")

    with pytest.raises(ConnectionResetError):
        await cluster.receiver.put_object("broken", body())
    with pytest.raises(NotFound):
        await cluster.receiver.head_object("broken")
    assert await stored_part_names(cluster) == set()
    assert await temp_files(cluster) == []
    assert await cluster.receiver.manifests.stale_uploads(pending_before=float("inf")) == []


async def test_cancelled_upload_leaves_nothing(cluster: LocalCluster) -> None:
    halfway = anyio.Event()
    never = anyio.Event()

    async def body() -> AsyncIterator[bytes]:
        for _ in range(10):
            yield os.urandom(10_000)
        halfway.set()
        await never.wait()
        yield b"unreachable"

    async with anyio.create_task_group() as group:
        group.start_soon(cluster.receiver.put_object, "cancelled", body())
        await halfway.wait()
        group.cancel_scope.cancel()
    with pytest.raises(NotFound):
        await cluster.receiver.head_object("cancelled")
    assert await stored_part_names(cluster) == set()
    assert await temp_files(cluster) == []
    assert await cluster.receiver.manifests.stale_uploads(pending_before=float("inf")) == []


async def test_unreachable_node_fails_the_upload_cleanly(cluster: LocalCluster) -> None:
    await cluster.receiver.put_object("before", b"safe")
    cluster.nodes["node-3"].close()
    with pytest.raises(NodeUnavailable, match="node-3"):
        await cluster.receiver.put_object("during", os.urandom(60_000))
    with pytest.raises(NotFound):
        await cluster.receiver.head_object("during")
    live = await stored_part_names(cluster)
    manifest = await cluster.receiver.manifests.get("before")
    assert manifest is not None
    assert all(manifest.upload_id in name for _, _, name in live)


async def test_corrupted_part_without_parity_is_unavailable(cluster: LocalCluster) -> None:
    """The node that holds the part finds the damaged block first (its checksum) and
    says so; the manifest's whole-part checksum stays behind it as a second check.
    With no parity to read around it (six nodes), the read fails with 503 naming the
    node and why."""
    await cluster.receiver.put_object("rot", os.urandom(30_000))
    manifest = await cluster.receiver.manifests.get("rot")
    assert manifest is not None
    part = manifest.segments[0].parts[2]
    owner = cluster.nodes[cluster.orchestrator.ring.owner(part.sector)]
    path = owner.data_dir / "sectors" / f"{part.sector:03d}" / part_name(manifest.upload_id, 0, 2)
    raw = bytearray(path.read_bytes())
    raw[-1] ^= 0xFF
    path.write_bytes(bytes(raw))
    with pytest.raises(PartsUnavailable, match="damaged") as raised:
        await read_all(cluster, "rot")
    assert raised.value.nodes == [owner.node_id]


async def test_an_intact_part_with_other_bytes_raises_checksum_mismatch(
    cluster: LocalCluster,
) -> None:
    """A node that serves a whole, valid part file with other bytes (a bug, a file put
    in the wrong place): the manifest's checksum of the part catches it."""
    await cluster.receiver.put_object("swapped", os.urandom(30_000))
    manifest = await cluster.receiver.manifests.get("swapped")
    assert manifest is not None
    part = manifest.segments[0].parts[2]
    owner = cluster.nodes[cluster.orchestrator.ring.owner(part.sector)]
    name = part_name(manifest.upload_id, 0, 2)

    async def other_bytes() -> AsyncIterator[bytes]:
        yield os.urandom(part.length)

    await owner.put_part(part.sector, name, other_bytes())
    with pytest.raises(ChecksumMismatch):
        await read_all(cluster, "swapped")


async def test_missing_part_without_parity_is_unavailable_not_wrong_bytes(
    cluster: LocalCluster,
) -> None:
    await cluster.receiver.put_object("lost", os.urandom(30_000))
    manifest = await cluster.receiver.manifests.get("lost")
    assert manifest is not None
    part = manifest.segments[0].parts[0]
    owner = cluster.nodes[cluster.orchestrator.ring.owner(part.sector)]
    await owner.delete_parts(part.sector, [part_name(manifest.upload_id, 0, 0)])
    with pytest.raises(PartsUnavailable, match="holds no part"):
        await read_all(cluster, "lost")


async def test_read_during_overwrite_returns_old_or_new_bytes(cluster: LocalCluster) -> None:
    old, new = os.urandom(40_000), os.urandom(40_000)
    await cluster.receiver.put_object("hot", old)
    results: list[bytes] = []

    async def reader() -> None:
        for _ in range(20):
            results.append(await read_all(cluster, "hot"))

    async def writer() -> None:
        for i in range(10):
            await cluster.receiver.put_object("hot", new if i % 2 == 0 else old)

    async with anyio.create_task_group() as group:
        group.start_soon(reader)
        group.start_soon(writer)
    assert results
    assert all(result in (old, new) for result in results)


@pytest.mark.parametrize(
    ("call", "error"),
    [
        (lambda r: r.put_object("k", "text, not bytes"), InvalidArgument),
        (lambda r: r.put_object("k", b"x", size=True), InvalidArgument),
        (lambda r: r.put_object("k", b"x", content_type="caf\u00e9"), InvalidArgument),
        (lambda r: r.put_object("k", b"x", content_type=5), InvalidArgument),
        (lambda r: r.put_object("k", b"x", metadata={"bad name": "v"}), InvalidArgument),
        (lambda r: r.put_object("k", b"x", metadata={"ok": "line\nbreak"}), InvalidArgument),
        (lambda r: r.open_object("hundred", start="5"), InvalidArgument),
        (lambda r: r.open_object("hundred", start=1.5), InvalidArgument),
        (lambda r: r.open_object("hundred", end=True), InvalidArgument),
        (lambda r: r.open_object("hundred", http_range=5), InvalidArgument),
    ],
    ids=[
        "str-body",
        "bool-size",
        "non-ascii-type",
        "int-type",
        "bad-metadata-name",
        "control-char-metadata",
        "str-start",
        "float-start",
        "bool-end",
        "int-range",
    ],
)
async def test_bad_arguments_raise_typed_errors_and_change_nothing(
    cluster: LocalCluster, call: Any, error: type[Exception]
) -> None:
    await cluster.receiver.put_object("hundred", os.urandom(100))
    before = await stored_part_names(cluster)
    with pytest.raises(error):
        await call(cluster.receiver)
    assert await stored_part_names(cluster) == before
    assert [i.key for i in (await cluster.receiver.list_objects()).objects] == ["hundred"]
