"""S3 object semantics through the library: stored headers, digests, conditional
commits, the bucket race, copies, long reads racing overwrites, and the read-ahead."""

from __future__ import annotations

import hashlib
import os
from collections.abc import AsyncIterator

import anyio
import pytest

from s3lite import InvalidArgument, LocalCluster, NoSuchBucket, NotFound
from s3lite.errors import (
    BadDigest,
    InvalidDigest,
    InvalidRequest,
    InvalidStorageClass,
    NotModified,
    PreconditionFailed,
)
from s3lite.receiver import ExpectedDigests, ObjectHeaders, ReadConditions, WriteCondition
from s3lite.receiver.checksums import checksum_of
from s3lite.receiver.upload import SEND_BATCH, prepare
from tests.receiver.helpers import read_all, stored_part_names

pytestmark = pytest.mark.anyio

UNIT = 4096


async def test_headers_metadata_and_class_are_kept(cluster: LocalCluster) -> None:
    headers = ObjectHeaders(
        cache_control="max-age=60",
        content_disposition='attachment; filename="r\u00e9sum\u00e9.pdf"',
        content_encoding="gzip",
        content_language="fr",
        expires="not a date, kept as given",
    )
    metadata = {"name": "Zo\u00eb \U0001f600", "x": "1"}
    info = await cluster.receiver.put_object(
        "k", b"data", headers=headers, metadata=metadata, storage_class="REDUCED_REDUNDANCY"
    )
    head = await cluster.receiver.head_object("k")
    assert head == info
    assert (head.headers, dict(head.metadata), head.storage_class) == (
        headers,
        metadata,
        "REDUCED_REDUNDANCY",
    )
    assert head.parts_count is None
    with pytest.raises(InvalidStorageClass):
        await cluster.receiver.put_object("k", b"x", storage_class="GLACIER")
    with pytest.raises(InvalidArgument):  # S3 measures the 2 KB in UTF-8 bytes
        await cluster.receiver.put_object("k", b"x", metadata={"m": "\u00e9" * 1024})
    await cluster.receiver.put_object("k2", b"x", metadata={"m": "\u00e9" * 1022})


async def test_digests_are_verified_before_the_commit(cluster: LocalCluster) -> None:
    r = cluster.receiver
    body = os.urandom(30_000)
    await r.put_object("k", b"old")
    good = ExpectedDigests(hashlib.md5(body).digest(), "CRC32C", checksum_of("CRC32C", body))
    info = await r.put_object("k", body, expected=good)
    assert info.checksums == {"CRC32C": checksum_of("CRC32C", body)}
    assert info.checksum_type == "FULL_OBJECT"
    before = await stored_part_names(cluster)
    for expected in (
        ExpectedDigests(hashlib.md5(b"other").digest()),
        ExpectedDigests(checksum_algorithm="SHA256", checksum_value=checksum_of("SHA256", b"x")),
    ):
        with pytest.raises(BadDigest):
            await r.put_object("k", body, expected=expected)
    with pytest.raises(InvalidDigest):
        await r.put_object("k", body, expected=ExpectedDigests(b"short"))
    assert await stored_part_names(cluster) == before
    assert await r.manifests.stale_uploads(pending_before=float("inf")) == []


async def test_a_trailing_checksum_is_read_when_the_body_ends(cluster: LocalCluster) -> None:
    """aws-chunked sends x-amz-checksum-* after the body: the gateway fills it in."""
    expected = ExpectedDigests(checksum_algorithm="CRC64NVME")
    body = os.urandom(20_000)

    async def chunks(trailer: str) -> AsyncIterator[bytes]:
        yield body[:10_000]
        yield body[10_000:]
        expected.checksum_value = trailer

    with pytest.raises(BadDigest):
        await cluster.receiver.put_object(
            "k", chunks(checksum_of("CRC64NVME", b"")), None, expected=expected
        )
    info = await cluster.receiver.put_object(
        "k", chunks(checksum_of("CRC64NVME", body)), expected=expected
    )
    assert info.checksums == {"CRC64NVME": checksum_of("CRC64NVME", body)}


async def test_of_two_create_only_puts_exactly_one_wins(cluster: LocalCluster) -> None:
    started = 0
    both = anyio.Event()
    outcomes: dict[str, object] = {}

    async def body(tag: bytes) -> AsyncIterator[bytes]:
        nonlocal started
        started += 1
        if started == 2:
            both.set()
        await both.wait()  # both have passed the early check: the commit decides
        yield tag * 20_000

    async def put(tag: str) -> None:
        try:
            await cluster.receiver.put_object(
                "k", body(tag.encode()), condition=WriteCondition(if_none_match=True)
            )
            outcomes[tag] = "won"
        except PreconditionFailed as exc:
            outcomes[tag] = exc

    async with anyio.create_task_group() as group:
        group.start_soon(put, "a")
        group.start_soon(put, "b")
    assert sorted(str(v) == "won" for v in outcomes.values()) == [False, True]
    winner = next(tag for tag, v in outcomes.items() if v == "won")
    assert await read_all(cluster, "k") == winner.encode() * 20_000
    assert len(await stored_part_names(cluster)) == 6  # nothing of the loser stays
    assert await cluster.receiver.manifests.stale_uploads(pending_before=float("inf")) == []


async def test_if_match_commits(cluster: LocalCluster) -> None:
    r = cluster.receiver
    with pytest.raises(NotFound):
        await r.put_object("k", b"x", condition=WriteCondition(if_match="*"))
    first = await r.put_object("k", b"one")
    with pytest.raises(PreconditionFailed):
        await r.put_object("k", b"two", condition=WriteCondition(if_match='"abc"'))
    await r.put_object("k", b"two", condition=WriteCondition(if_match=f'"{first.etag}"'))
    assert await read_all(cluster, "k") == b"two"
    assert len(await stored_part_names(cluster)) == 6


async def test_read_conditions_on_get_and_head(cluster: LocalCluster) -> None:
    info = await cluster.receiver.put_object("k", b"x")
    with pytest.raises(NotModified):
        await cluster.receiver.open_object("k", conditions=ReadConditions(if_none_match=info.etag))
    with pytest.raises(PreconditionFailed):
        await cluster.receiver.head_object("k", conditions=ReadConditions(if_match='"nope"'))
    read = await cluster.receiver.open_object("k", conditions=ReadConditions(if_match=info.etag))
    await read.aclose()


async def test_a_put_into_a_bucket_deleted_meanwhile_fails_and_leaves_nothing(
    cluster: LocalCluster,
) -> None:
    await cluster.buckets.create("bkt")
    streaming, release = anyio.Event(), anyio.Event()

    async def body() -> AsyncIterator[bytes]:
        yield os.urandom(10_000)
        streaming.set()
        await release.wait()
        yield os.urandom(10_000)

    async def put() -> None:
        with pytest.raises(NoSuchBucket):
            await cluster.receiver.put_object("bkt/k", body(), bucket="bkt")

    async with anyio.create_task_group() as group:
        group.start_soon(put)
        await streaming.wait()
        await cluster.buckets.delete("bkt")  # empty: the object is not committed yet
        release.set()
    assert await stored_part_names(cluster) == set()
    with pytest.raises(NotFound):
        await cluster.receiver.head_object("bkt/k")
    with pytest.raises(NoSuchBucket):
        await cluster.receiver.create_multipart("bkt/m", bucket="bkt")


async def test_copy_object(cluster: LocalCluster) -> None:
    r = cluster.receiver
    cluster.receiver.min_part_size = 1000
    data = os.urandom(50_000)
    source = await r.put_object(
        "a/src", data, content_type="text/x", metadata={"m": "1"}, headers=ObjectHeaders("no")
    )
    copied = await r.copy_object("a/src", "b/dst")
    assert (copied.etag, copied.content_type, dict(copied.metadata)) == (
        source.etag,
        "text/x",
        {"m": "1"},
    )
    assert copied.headers.cache_control == "no"
    assert await read_all(cluster, "b/dst") == data
    replaced = await r.copy_object(
        "a/src", "b/dst", metadata_directive="REPLACE", metadata={"n": "2"}
    )
    assert (replaced.content_type, dict(replaced.metadata)) == (
        "application/octet-stream",
        {"n": "2"},
    )
    with pytest.raises(InvalidRequest):
        await r.copy_object("a/src", "a/src")
    onto_itself = await r.copy_object(
        "a/src", "a/src", metadata_directive="REPLACE", content_type="text/y"
    )
    assert onto_itself.content_type == "text/y"
    assert await read_all(cluster, "a/src") == data
    with pytest.raises(NotFound):
        await r.copy_object("missing", "x")
    with pytest.raises(PreconditionFailed):
        await r.copy_object("a/src", "x", source_conditions=ReadConditions(if_none_match="*"))
    with pytest.raises(PreconditionFailed):
        await r.copy_object("a/src", "b/dst", condition=WriteCondition(if_none_match=True))
    with pytest.raises(InvalidArgument):
        await r.copy_object("a/src", "x", metadata_directive="MERGE")
    # a multipart source becomes one segment with a plain MD5 ETag
    upload_id = await r.create_multipart("mp", checksum_algorithm="CRC32")
    one = await r.upload_part("mp", upload_id, 1, data[:30_000])
    two = await r.upload_part("mp", upload_id, 2, data[30_000:])
    await r.complete_multipart("mp", upload_id, [(1, one.etag), (2, two.etag)])
    flat = await r.copy_object("mp", "flat")
    assert (flat.etag, flat.parts_count) == (hashlib.md5(data).hexdigest(), None)
    assert flat.checksums == {"CRC32": checksum_of("CRC32", data)}
    manifest = await r.manifests.get("flat")
    assert manifest is not None
    assert len(manifest.segments) == 1
    assert await read_all(cluster, "flat") == data
    files = {name.split("-")[0] for _, _, name in await stored_part_names(cluster)}
    assert len(files) == 5  # a/src, b/dst, two parts of mp, flat: no staging left over


async def multipart_object(cluster: LocalCluster, key: str, parts: list[bytes]) -> None:
    r = cluster.receiver
    r.min_part_size = 1
    upload_id = await r.create_multipart(key)
    infos = [await r.upload_part(key, upload_id, n, p) for n, p in enumerate(parts, 1)]
    await r.complete_multipart(key, upload_id, [(i.number, i.etag) for i in infos])


async def test_a_long_read_survives_an_overwrite_and_a_delete_between_segments(
    cluster: LocalCluster,
) -> None:
    parts = [os.urandom(6 * UNIT * 3) for _ in range(3)]
    await multipart_object(cluster, "long", parts)
    old_files = await stored_part_names(cluster)
    assert len(old_files) == 18
    read = await cluster.receiver.open_object("long")
    received = b""
    try:
        while len(received) < len(parts[0]) + 10:
            received += await anext(read.chunks)
        await cluster.receiver.put_object("long", b"new bytes")  # overwrite ...
        await cluster.receiver.delete_object("long")  # ... then delete, mid-read
        report = await cluster.janitor.run_once(pending_before=float("inf"))
        assert report.uploads_removed == 0  # the janitor leaves held uploads alone
        assert await stored_part_names(cluster) == old_files  # new object's parts gone
        async for chunk in read.chunks:
            received += chunk
    finally:
        await read.aclose()
    assert received == b"".join(parts)
    assert await stored_part_names(cluster) == set()  # deleted once the read ended
    assert await cluster.receiver.manifests.stale_uploads(pending_before=float("inf")) == []
    assert not cluster.receiver.uploads_in_flight.deferred
    assert len(cluster.receiver.uploads_in_flight) == 0


async def test_an_abandoned_read_releases_its_hold(cluster: LocalCluster) -> None:
    await multipart_object(cluster, "k", [os.urandom(30_000), os.urandom(30_000)])
    read = await cluster.receiver.open_object("k", 5, 40_000)
    await anext(read.chunks)
    await cluster.receiver.delete_object("k")
    assert len(await stored_part_names(cluster)) == 12
    await read.aclose()
    assert await stored_part_names(cluster) == set()


async def test_read_ahead_of_a_one_byte_chunk_body_is_linear() -> None:
    """The read-ahead replays a few large pieces, not one object per byte."""
    size = 3 * SEND_BATCH + 17

    async def bytewise() -> AsyncIterator[bytes]:
        for _ in range(size):
            yield b"x"

    prepared = await prepare(bytewise(), None, max_unit=SEND_BATCH, parts=6)
    replayed = [chunk async for chunk in prepared.chunks]
    assert b"".join(replayed) == b"x" * size
    assert len(replayed) <= size // SEND_BATCH + 1
    assert prepared.unit == -(-size // 6)


async def test_a_one_byte_chunk_body_uploads(cluster: LocalCluster) -> None:
    data = os.urandom(30_000)

    async def bytewise() -> AsyncIterator[bytes]:
        for byte in data:
            yield bytes([byte])

    await cluster.receiver.put_object("k", bytewise())
    assert await read_all(cluster, "k") == data
