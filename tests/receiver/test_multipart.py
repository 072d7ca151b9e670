"""Multipart uploads through the library: sessions, parts, completion rules, abort,
listings, GET ?partNumber, the janitor, checksums and UploadPartCopy."""

from __future__ import annotations

import base64
import hashlib
import os

import anyio
import pytest

from s3lite import InvalidArgument, InvalidRange, LocalCluster, NoSuchBucket, NotFound
from s3lite.errors import (
    BadDigest,
    EntityTooLarge,
    EntityTooSmall,
    InvalidPart,
    InvalidPartNumber,
    InvalidPartOrder,
    MalformedXML,
    NoSuchUpload,
    PreconditionFailed,
)
from s3lite.receiver import CompletedPart, ExpectedDigests, ObjectHeaders, WriteCondition
from s3lite.receiver.checksums import checksum_of
from tests.receiver.helpers import read_all, stored_part_names

pytestmark = pytest.mark.anyio

MIN = 10_000  # the tests' minimum part size


@pytest.fixture
def mp(cluster: LocalCluster) -> LocalCluster:
    cluster.receiver.min_part_size = MIN
    return cluster


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


async def upload(cluster: LocalCluster, key: str, parts: list[bytes], **create: object) -> str:
    """A completed multipart upload of ``parts`` (sent in parallel, last first)."""
    upload_id = await cluster.receiver.create_multipart(key, **create)  # type: ignore[arg-type]
    etags: dict[int, str] = {}

    async def send(number: int, data: bytes) -> None:
        etags[number] = (await cluster.receiver.upload_part(key, upload_id, number, data)).etag

    async with anyio.create_task_group() as group:
        for number in reversed(range(1, len(parts) + 1)):
            group.start_soon(send, number, parts[number - 1])
    await cluster.receiver.complete_multipart(
        key, upload_id, [(n, etags[n]) for n in sorted(etags)]
    )
    return upload_id


async def test_parts_in_parallel_make_one_object(mp: LocalCluster) -> None:
    parts = [os.urandom(MIN + 1234), os.urandom(MIN), os.urandom(777)]
    upload_id = await mp.receiver.create_multipart(
        "big",
        content_type="video/mp4",
        metadata={"who": "ana"},
        headers=ObjectHeaders(cache_control="no-cache", expires="Thu, 01 Dec 1994 16:00:00 GMT"),
        storage_class="REDUCED_REDUNDANCY",
    )
    assert (await mp.receiver.list_objects()).objects == ()  # unfinished: invisible
    infos = {}

    async def send(number: int) -> None:
        infos[number] = await mp.receiver.upload_part("big", upload_id, number, parts[number - 1])

    async with anyio.create_task_group() as group:
        for number in (3, 1, 2):
            group.start_soon(send, number)
    assert [infos[n].etag for n in (1, 2, 3)] == [md5(p) for p in parts]
    info = await mp.receiver.complete_multipart(
        "big", upload_id, [CompletedPart(n, f'"{infos[n].etag}"') for n in (1, 2, 3)]
    )
    binary = b"".join(hashlib.md5(p).digest() for p in parts)
    assert info.etag == f"{hashlib.md5(binary).hexdigest()}-3"
    assert (info.size, info.parts_count, info.content_type) == (
        sum(map(len, parts)),
        3,
        "video/mp4",
    )
    head = await mp.receiver.head_object("big")
    assert head == info
    assert head.headers.cache_control == "no-cache"
    assert head.storage_class == "REDUCED_REDUNDANCY"
    assert await read_all(mp, "big") == b"".join(parts)
    whole = b"".join(parts)
    assert await read_all(mp, "big", MIN + 1000, MIN + 1300) == whole[MIN + 1000 : MIN + 1301]
    # GET ?partNumber=N
    read = await mp.receiver.open_object("big", part_number=2)
    try:
        assert read.span == (len(parts[0]), len(parts[0]) + len(parts[1]) - 1)
        assert b"".join([c async for c in read.chunks]) == parts[1]
    finally:
        await read.aclose()
    assert (await mp.receiver.head_part("big", 3))[1] == (len(whole) - 777, len(whole) - 1)
    with pytest.raises(InvalidPartNumber):
        await mp.receiver.open_object("big", part_number=4)
    # every segment has six parts on six nodes, named by the attempt that wrote it
    manifest = await mp.receiver.manifests.get("big")
    assert manifest is not None
    assert len({s.upload_id for s in manifest.segments}) == 3
    assert upload_id not in {s.upload_id for s in manifest.segments}
    assert len(await stored_part_names(mp)) == 18
    # a second Complete answers the same
    again = await mp.receiver.complete_multipart("big", upload_id, [(1, infos[1].etag)])
    assert again == info


async def test_a_resent_part_replaces_the_earlier_one(mp: LocalCluster) -> None:
    upload_id = await mp.receiver.create_multipart("k")
    first = await mp.receiver.upload_part("k", upload_id, 1, b"a" * MIN)
    files = await stored_part_names(mp)
    second = await mp.receiver.upload_part("k", upload_id, 1, b"b" * MIN)
    assert not files & await stored_part_names(mp)  # the first attempt's files are gone
    with pytest.raises(InvalidPart):
        await mp.receiver.complete_multipart("k", upload_id, [(1, first.etag)])
    await mp.receiver.complete_multipart("k", upload_id, [(1, second.etag)])
    assert await read_all(mp, "k") == b"b" * MIN


async def test_completion_rules(mp: LocalCluster) -> None:
    r = mp.receiver
    upload_id = await r.create_multipart("k")
    one = await r.upload_part("k", upload_id, 1, os.urandom(MIN))
    two = await r.upload_part("k", upload_id, 2, os.urandom(10))
    three = await r.upload_part("k", upload_id, 3, os.urandom(10))
    with pytest.raises(MalformedXML):
        await r.complete_multipart("k", upload_id, [])
    with pytest.raises(InvalidPartOrder):
        await r.complete_multipart("k", upload_id, [(2, two.etag), (1, one.etag)])
    with pytest.raises(InvalidPart):
        await r.complete_multipart("k", upload_id, [(1, one.etag), (4, two.etag)])
    with pytest.raises(InvalidPart):
        await r.complete_multipart("k", upload_id, [(1, two.etag)])
    with pytest.raises(EntityTooSmall):
        await r.complete_multipart("k", upload_id, [(1, one.etag), (2, two.etag), (3, three.etag)])
    with pytest.raises(NoSuchUpload):
        await r.complete_multipart("other-key", upload_id, [(1, one.etag)])
    with pytest.raises(NoSuchUpload):
        await r.complete_multipart("k", "0" * 32, [(1, one.etag)])
    before = await stored_part_names(mp)
    assert len(before) == 18
    # the part left out (2) is deleted with the completion
    await r.complete_multipart("k", upload_id, [(1, one.etag), (3, three.etag)])
    assert len(await stored_part_names(mp)) == 12
    assert (await r.head_object("k")).size == MIN + 10
    with pytest.raises(NoSuchUpload):
        await r.upload_part("k", upload_id, 4, b"late")


async def test_bad_parts_are_refused_and_store_nothing(mp: LocalCluster) -> None:
    r = mp.receiver
    upload_id = await r.create_multipart("k")
    for number in (0, 10_001, -1, True):
        with pytest.raises(InvalidArgument):
            await r.upload_part("k", upload_id, number, b"x")
    r.max_part_size = 1000
    with pytest.raises(EntityTooLarge):
        await r.upload_part("k", upload_id, 1, os.urandom(1001))

    async def streamed():  # type: ignore[no-untyped-def]
        for _ in range(11):
            yield os.urandom(100)

    with pytest.raises(EntityTooLarge):
        await r.upload_part("k", upload_id, 1, streamed())
    with pytest.raises(BadDigest):
        await r.upload_part(
            "k", upload_id, 1, b"abc", expected=ExpectedDigests(hashlib.md5(b"abd").digest())
        )
    with pytest.raises(NoSuchUpload):
        await r.upload_part("k", "f" * 32, 1, b"abc")
    with pytest.raises(NoSuchUpload):
        await r.upload_part("other", upload_id, 1, b"abc")
    assert await stored_part_names(mp) == set()
    assert (await r.list_parts("k", upload_id)).parts == ()


async def test_abort_deletes_every_part(mp: LocalCluster) -> None:
    r = mp.receiver
    upload_id = await r.create_multipart("k")
    await r.upload_part("k", upload_id, 1, os.urandom(MIN))
    await r.upload_part("k", upload_id, 2, os.urandom(5))
    await r.abort_multipart("k", upload_id)
    assert await stored_part_names(mp) == set()
    assert await r.manifests.stale_uploads(pending_before=float("inf")) == []
    with pytest.raises(NoSuchUpload):
        await r.abort_multipart("k", upload_id)
    with pytest.raises(NoSuchUpload):
        await r.list_parts("k", upload_id)
    with pytest.raises(NotFound):
        await r.head_object("k")


async def test_listing_parts_and_uploads(mp: LocalCluster) -> None:
    r = mp.receiver
    upload_id = await r.create_multipart("k", checksum_algorithm="SHA256")
    for number in (5, 1, 3, 2):
        await r.upload_part("k", upload_id, number, b"%d" % number)
    page = await r.list_parts("k", upload_id, limit=2)
    assert [p.number for p in page.parts] == [1, 2]
    assert (page.is_truncated, page.next_marker) == (True, 2)
    assert page.upload.checksum_algorithm == "SHA256"
    assert page.parts[0].checksums == {"SHA256": checksum_of("SHA256", b"1")}
    page = await r.list_parts("k", upload_id, marker=2, limit=2)
    assert ([p.number for p in page.parts], page.is_truncated) == ([3, 5], False)

    ids = {key: await r.create_multipart(key) for key in ("a/1", "a/2", "b", "c/d/e")}
    second_b = await r.create_multipart("b")
    listing = await r.list_multipart_uploads(delimiter="/")
    assert listing.common_prefixes == ("a/", "c/")
    assert sorted(u.upload_id for u in listing.uploads) == sorted([ids["b"], second_b, upload_id])
    first = await r.list_multipart_uploads(limit=2)
    assert [u.key for u in first.uploads] == ["a/1", "a/2"]
    assert (first.next_key_marker, first.next_upload_id_marker) == ("a/2", ids["a/2"])
    rest = await r.list_multipart_uploads(
        key_marker=first.next_key_marker or "", upload_id_marker=first.next_upload_id_marker or ""
    )
    assert [u.key for u in rest.uploads] == ["b", "b", "c/d/e", "k"]
    after_b = await r.list_multipart_uploads(key_marker="b")
    assert [u.key for u in after_b.uploads] == ["c/d/e", "k"]
    assert (await r.list_objects()).objects == ()


async def test_janitor_aborts_old_uploads_but_not_one_in_use(mp: LocalCluster) -> None:
    r = mp.receiver
    old = await r.create_multipart("old")
    await r.upload_part("old", old, 1, os.urandom(500))
    busy = await r.create_multipart("busy")
    streaming, release = anyio.Event(), anyio.Event()

    async def body():  # type: ignore[no-untyped-def]
        yield os.urandom(300)
        streaming.set()
        await release.wait()
        yield os.urandom(300)

    async with anyio.create_task_group() as group:
        group.start_soon(r.upload_part, "busy", busy, 1, body())
        await streaming.wait()
        report = await mp.janitor.run_once(multipart_before=float("inf"))
        release.set()
    assert report.uploads_removed == 1
    assert (await r.list_multipart_uploads()).uploads[0].upload_id == busy
    assert len(await stored_part_names(mp)) == 6  # the busy upload's part only
    # a young upload survives a normal pass (24 h default), and restarts
    await mp.janitor.run_once(pending_before=float("inf"))
    assert [u.upload_id for u in (await r.list_multipart_uploads()).uploads] == [busy]


@pytest.mark.parametrize(
    ("algorithm", "checksum_type"),
    [("CRC32", None), ("CRC32C", "FULL_OBJECT"), ("CRC64NVME", None), ("SHA1", None)],
)
async def test_multipart_checksums(
    mp: LocalCluster, algorithm: str, checksum_type: str | None
) -> None:
    parts = [os.urandom(MIN), os.urandom(99)]
    await upload(mp, "c", parts, checksum_algorithm=algorithm, checksum_type=checksum_type)
    info = await mp.receiver.head_object("c")
    values = [checksum_of(algorithm, p) for p in parts]
    if info.checksum_type == "FULL_OBJECT":
        assert info.checksums == {algorithm: checksum_of(algorithm, b"".join(parts))}
    else:
        digest = b"".join(base64.b64decode(v) for v in values)
        assert info.checksums == {algorithm: f"{checksum_of(algorithm, digest)}-2"}


async def test_part_checksum_mismatch_is_bad_digest(mp: LocalCluster) -> None:
    r = mp.receiver
    upload_id = await r.create_multipart("k", checksum_algorithm="CRC32")
    with pytest.raises(BadDigest):
        await r.upload_part(
            "k",
            upload_id,
            1,
            b"abc",
            expected=ExpectedDigests(checksum_algorithm="CRC32", checksum_value="AAAAAA=="),
        )
    part = await r.upload_part("k", upload_id, 1, b"abc")
    assert part.checksums == {"CRC32": checksum_of("CRC32", b"abc")}
    with pytest.raises(InvalidPart):  # Complete naming another checksum for the part
        await r.complete_multipart("k", upload_id, [(1, part.etag, {"CRC32": "AAAAAA=="})])
    await r.complete_multipart("k", upload_id, [(1, part.etag, dict(part.checksums))])


async def test_complete_compares_the_whole_objects_checksum(mp: LocalCluster) -> None:
    r = mp.receiver
    parts = [os.urandom(MIN), os.urandom(10)]
    upload_id = await r.create_multipart("k", checksum_algorithm="SHA256")
    stored = [await r.upload_part("k", upload_id, n, data) for n, data in enumerate(parts, 1)]
    named = [(p.number, p.etag) for p in stored]
    digest = b"".join(base64.b64decode(p.checksums["SHA256"]) for p in stored)
    whole = f"{checksum_of('SHA256', digest)}-2"
    for wrong in ({"SHA256": checksum_of("SHA256", b"x")}, {"CRC32": "AAAAAA=="}):
        with pytest.raises(BadDigest):
            await r.complete_multipart("k", upload_id, named, expected_checksums=wrong)
    with pytest.raises(NotFound):  # nothing was committed
        await r.head_object("k")
    info = await r.complete_multipart(
        "k", upload_id, named, expected_checksums={"SHA256": whole.split("-")[0]}
    )
    assert info.checksums == {"SHA256": whole}
    read = await r.open_object("k", part_number=2)
    try:
        assert read.part_checksums == stored[1].checksums
    finally:
        await read.aclose()


async def test_upload_part_copy_copies_a_range(mp: LocalCluster) -> None:
    r = mp.receiver
    source = os.urandom(3 * MIN)
    await r.put_object("src", source)
    upload_id = await r.create_multipart("dst")
    one = await r.upload_part_copy("dst", upload_id, 1, "src", source_range=f"bytes=0-{MIN - 1}")
    two = await r.upload_part_copy("dst", upload_id, 2, "src", source_range=(MIN, 3 * MIN - 1))
    assert (one.etag, two.etag) == (md5(source[:MIN]), md5(source[MIN:]))
    with pytest.raises(InvalidRange):
        await r.upload_part_copy("dst", upload_id, 3, "src", source_range=f"bytes=0-{3 * MIN}")
    with pytest.raises(InvalidArgument):
        await r.upload_part_copy("dst", upload_id, 3, "src", source_range="bytes=5-")
    with pytest.raises(NotFound):
        await r.upload_part_copy("dst", upload_id, 3, "missing")
    await r.complete_multipart("dst", upload_id, [(1, one.etag), (2, two.etag)])
    assert await read_all(mp, "dst") == source


async def test_completion_checks_conditions_and_bucket(mp: LocalCluster) -> None:
    r = mp.receiver
    await mp.buckets.create("bkt")
    await r.put_object("bkt/k", b"exists")
    upload_id = await r.create_multipart("bkt/k", bucket="bkt")
    part = await r.upload_part("bkt/k", upload_id, 1, b"new")
    with pytest.raises(PreconditionFailed):
        await r.complete_multipart(
            "bkt/k", upload_id, [(1, part.etag)], condition=WriteCondition(if_none_match=True)
        )
    assert await read_all(mp, "bkt/k") == b"exists"
    await r.delete_object("bkt/k")
    await mp.buckets.delete("bkt")
    with pytest.raises(NoSuchBucket):
        await r.complete_multipart("bkt/k", upload_id, [(1, part.etag)], bucket="bkt")
    await mp.buckets.create("bkt")
    info = await r.complete_multipart(
        "bkt/k",
        upload_id,
        [(1, part.etag)],
        condition=WriteCondition(if_none_match=True),
        bucket="bkt",
    )
    assert info.etag == f"{hashlib.md5(bytes.fromhex(md5(b'new'))).hexdigest()}-1"
    assert len(await stored_part_names(mp)) == 6
