"""Multipart uploads over HTTP, driven by boto3: parts out of order and re-sent,
Complete and its checks, ?partNumber reads, ListParts, ListMultipartUploads, Abort,
UploadPartCopy; and the bad input of issue 6, each changing nothing."""

from __future__ import annotations

import hashlib
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator
from typing import Any

import pytest

from s3lite import LocalCluster
from s3lite.receiver.checksums import checksum_of
from tests.gateway.harness import (
    NS,
    Gateway,
    client,
    error_of,
    get,
    in_thread,
    payload,
    refused,
    snapshot,
    stored_parts,
)

pytestmark = pytest.mark.anyio

MIN = 64 * 1024  # the cluster's minimum part size in these tests


@pytest.fixture
async def s3(gateway: Gateway, bucket: str, cluster: LocalCluster) -> AsyncIterator[Any]:
    cluster.receiver.min_part_size = MIN
    with client(gateway) as s3:
        yield s3


async def create(s3: Any, key: str = "big", **extra: Any) -> str:
    answer = await in_thread(s3.create_multipart_upload, Bucket="photos", Key=key, **extra)
    return str(answer["UploadId"])


async def upload(s3: Any, upload_id: str, number: int, data: bytes, key: str = "big") -> str:
    answer = await in_thread(
        s3.upload_part, Bucket="photos", Key=key, UploadId=upload_id, PartNumber=number, Body=data
    )
    return str(answer["ETag"])


def completing(s3: Any, upload_id: str, parts: list[dict[str, Any]], **extra: Any) -> Any:
    """CompleteMultipartUpload of photos/big (or ``Key=``) with ``parts`` (blocking)."""
    extra.setdefault("Key", "big")
    return s3.complete_multipart_upload(
        Bucket="photos", UploadId=upload_id, MultipartUpload={"Parts": parts}, **extra
    )


async def complete(s3: Any, upload_id: str, parts: list[dict[str, Any]], **extra: Any) -> Any:
    return await in_thread(completing, s3, upload_id, parts, **extra)


async def test_parts_out_of_order_resent_then_read_by_part(s3: Any, gateway: Gateway) -> None:
    parts = [payload(MIN, seed=n) for n in (1, 2)] + [payload(1000, seed=3)]
    upload_id = await create(s3, ContentType="video/mp4", Metadata={"take": "2"})
    etags = {}
    for number in (3, 1, 2):
        etags[number] = await upload(s3, upload_id, number, parts[number - 1])
    stale = await upload(s3, upload_id, 2, b"x" * MIN)  # replaced again below
    etags[2] = await upload(s3, upload_id, 2, parts[1])
    assert stale != etags[2]
    listed = await in_thread(s3.list_parts, Bucket="photos", Key="big", UploadId=upload_id)
    assert [(p["PartNumber"], p["ETag"], p["Size"]) for p in listed["Parts"]] == [
        (n, etags[n], len(parts[n - 1])) for n in (1, 2, 3)
    ]
    uploads = await in_thread(s3.list_multipart_uploads, Bucket="photos")
    assert [(u["Key"], u["UploadId"]) for u in uploads["Uploads"]] == [("big", upload_id)]
    objects = await in_thread(s3.list_objects_v2, Bucket="photos")
    assert "Contents" not in objects  # nothing of an unfinished upload is listed

    done = await complete(s3, upload_id, [{"PartNumber": n, "ETag": etags[n]} for n in (1, 2, 3)])
    md5s = b"".join(hashlib.md5(part).digest() for part in parts)
    assert done["ETag"] == f'"{hashlib.md5(md5s).hexdigest()}-3"'
    got, got_body = await get(s3, Bucket="photos", Key="big")
    assert got_body == b"".join(parts)
    assert (got["ContentType"], got["Metadata"]) == ("video/mp4", {"take": "2"})
    for number, part in enumerate(parts, 1):
        one, one_body = await get(s3, Bucket="photos", Key="big", PartNumber=number)
        assert one_body == part
        assert (one["PartsCount"], one["ContentLength"]) == (3, len(part))
        first = sum(map(len, parts[: number - 1]))
        total = sum(map(len, parts))
        assert one["ContentRange"] == f"bytes {first}-{first + len(part) - 1}/{total}"
        head = await in_thread(s3.head_object, Bucket="photos", Key="big", PartNumber=number)
        assert (head["ContentLength"], head["PartsCount"]) == (len(part), 3)
    assert await refused(s3.get_object, Bucket="photos", Key="big", PartNumber=4) == (
        400,
        "InvalidPart",
    )
    # a second Complete of the finished upload answers the same object
    again = await complete(s3, upload_id, [{"PartNumber": n, "ETag": etags[n]} for n in (1, 2, 3)])
    assert again["ETag"] == done["ETag"]
    await gateway.idle()
    names = {name.split("-")[0] for _, _, name in await stored_parts(gateway.cluster)}
    assert len(names) == 3  # the stale attempt of part 2 is gone


async def test_bad_completions_change_nothing(s3: Any, gateway: Gateway) -> None:
    upload_id = await create(s3)
    one = await upload(s3, upload_id, 1, payload(MIN, seed=1))
    two = await upload(s3, upload_id, 2, payload(10, seed=2))
    before = await snapshot(gateway, "photos", "big")
    bad = [
        ([{"PartNumber": 1, "ETag": one}, {"PartNumber": 3, "ETag": two}], (400, "InvalidPart")),
        ([{"PartNumber": 1, "ETag": two}], (400, "InvalidPart")),
        (
            [{"PartNumber": 2, "ETag": two}, {"PartNumber": 1, "ETag": one}],
            (400, "InvalidPartOrder"),
        ),
        ([{"PartNumber": 2, "ETag": two}, {"PartNumber": 3, "ETag": two}], (400, "InvalidPart")),
    ]
    for parts, answer in bad:
        assert await refused(completing, s3, upload_id, parts) == answer, parts
    path = f"/photos/big?uploadId={upload_id}"
    for body in (b"<CompleteMultipartUpload><Part><PartNumber>1", b"<Other/>", b""):
        status, _, sent = await gateway.request("POST", path, data=body)
        assert (status, error_of(sent)["Code"]) == (400, "MalformedXML"), body
    two_small = await upload(s3, upload_id, 1, payload(10, seed=1))
    small = [{"PartNumber": 1, "ETag": two_small}, {"PartNumber": 2, "ETag": two}]
    assert await refused(completing, s3, upload_id, small) == (400, "EntityTooSmall")
    after = await snapshot(gateway, "photos", "big")
    assert after[:2] == before[:2]  # no object, the same listing
    listed = await in_thread(s3.list_parts, Bucket="photos", Key="big", UploadId=upload_id)
    assert [p["PartNumber"] for p in listed["Parts"]] == [1, 2]  # the upload is still open


async def test_abort_then_upload_part_is_no_such_upload(s3: Any, gateway: Gateway) -> None:
    upload_id = await create(s3)
    await upload(s3, upload_id, 1, payload(MIN))
    await in_thread(s3.abort_multipart_upload, Bucket="photos", Key="big", UploadId=upload_id)
    await gateway.idle()
    assert await stored_parts(gateway.cluster) == set()
    for call, extra in (
        (s3.upload_part, {"PartNumber": 1, "Body": b"late"}),
        (s3.abort_multipart_upload, {}),
        (s3.list_parts, {}),
    ):
        assert await refused(call, Bucket="photos", Key="big", UploadId=upload_id, **extra) == (
            404,
            "NoSuchUpload",
        )
    await gateway.idle()
    assert await stored_parts(gateway.cluster) == set()


async def test_deleting_a_bucket_aborts_its_open_uploads(s3: Any, gateway: Gateway) -> None:
    kept = await create(s3)
    await upload(s3, kept, 1, payload(MIN))
    before = await stored_parts(gateway.cluster)
    await in_thread(s3.create_bucket, Bucket="scratch")
    for key in ("a", "a", "dir/b"):
        answer = await in_thread(s3.create_multipart_upload, Bucket="scratch", Key=key)
        await in_thread(
            s3.upload_part, Bucket="scratch", Key=key, UploadId=answer["UploadId"],
            PartNumber=1, Body=payload(MIN, seed=len(key)),
        )  # fmt: skip
    assert len(await stored_parts(gateway.cluster)) == 4 * len(before)
    await in_thread(s3.delete_bucket, Bucket="scratch")
    await gateway.idle()
    assert await stored_parts(gateway.cluster) == before  # photos' upload is untouched
    await in_thread(s3.create_bucket, Bucket="scratch")
    assert "Uploads" not in await in_thread(s3.list_multipart_uploads, Bucket="scratch")
    listed = await in_thread(s3.list_multipart_uploads, Bucket="photos")
    assert [upload["UploadId"] for upload in listed["Uploads"]] == [kept]


async def test_upload_part_copy_with_ranges(s3: Any, gateway: Gateway) -> None:
    source = payload(3 * MIN, seed=9)
    await in_thread(s3.put_object, Bucket="photos", Key="src", Body=source)
    upload_id = await create(s3, key="dst")
    copied = []
    for number, (first, last) in enumerate([(0, MIN - 1), (MIN, 3 * MIN - 1)], 1):
        answer = await in_thread(
            s3.upload_part_copy,
            Bucket="photos",
            Key="dst",
            UploadId=upload_id,
            PartNumber=number,
            CopySource={"Bucket": "photos", "Key": "src"},
            CopySourceRange=f"bytes={first}-{last}",
        )
        copied.append({"PartNumber": number, "ETag": answer["CopyPartResult"]["ETag"]})
    before = await snapshot(gateway, "photos", "dst")
    assert await refused(
        s3.upload_part_copy,
        Bucket="photos",
        Key="dst",
        UploadId=upload_id,
        PartNumber=3,
        CopySource={"Bucket": "photos", "Key": "src"},
        CopySourceRange=f"bytes={3 * MIN}-{4 * MIN}",
    ) == (416, "InvalidRange")  # past the end of the source
    assert await snapshot(gateway, "photos", "dst") == before
    await complete(s3, upload_id, copied, Key="dst")
    _got, got_body = await get(s3, Bucket="photos", Key="dst")
    assert got_body == source


async def test_checksums_per_part_and_for_the_upload(s3: Any, gateway: Gateway) -> None:
    parts = [payload(MIN, seed=1), payload(100, seed=2)]
    upload_id = await create(s3, ChecksumAlgorithm="CRC32", ChecksumType="FULL_OBJECT")
    sent = []
    for number, data in enumerate(parts, 1):
        answer = await in_thread(
            s3.upload_part,
            Bucket="photos",
            Key="big",
            UploadId=upload_id,
            PartNumber=number,
            Body=data,
            ChecksumAlgorithm="CRC32",
        )
        assert answer["ChecksumCRC32"] == checksum_of("CRC32", data)
        sent.append(
            {"PartNumber": number, "ETag": answer["ETag"], "ChecksumCRC32": answer["ChecksumCRC32"]}
        )
    whole = checksum_of("CRC32", b"".join(parts))
    wrong = checksum_of("CRC32", b"something else")
    for value, answer in ((wrong, (400, "BadDigest")), ("bad", (400, "BadDigest"))):
        assert await refused(completing, s3, upload_id, sent, ChecksumCRC32=value) == answer
    done = await complete(s3, upload_id, sent, ChecksumCRC32=whole)
    assert (done["ChecksumCRC32"], done["ChecksumType"]) == (whole, "FULL_OBJECT")
    head = await in_thread(s3.head_object, Bucket="photos", Key="big", ChecksumMode="ENABLED")
    assert (head["ChecksumCRC32"], head["ChecksumType"]) == (whole, "FULL_OBJECT")
    one, _one_body = await get(s3, Bucket="photos", Key="big", PartNumber=2)
    assert one["ChecksumCRC32"] == checksum_of("CRC32", parts[1])


async def test_list_multipart_uploads_with_prefix_delimiter_and_pages(
    s3: Any, gateway: Gateway
) -> None:
    keys = ["a/1", "a/2", "b", "c/x/y"]
    ids = {key: await create(s3, key=key) for key in keys}
    answer = await in_thread(s3.list_multipart_uploads, Bucket="photos", Delimiter="/")
    assert [u["Key"] for u in answer["Uploads"]] == ["b"]
    assert [p["Prefix"] for p in answer["CommonPrefixes"]] == ["a/", "c/"]
    answer = await in_thread(s3.list_multipart_uploads, Bucket="photos", Prefix="a/", MaxUploads=1)
    assert [u["Key"] for u in answer["Uploads"]] == ["a/1"]
    assert answer["IsTruncated"]
    assert answer["NextKeyMarker"] == "a/1"
    answer = await in_thread(
        s3.list_multipart_uploads,
        Bucket="photos",
        Prefix="a/",
        KeyMarker=answer["NextKeyMarker"],
        UploadIdMarker=answer["NextUploadIdMarker"],
    )
    assert [(u["Key"], u["UploadId"]) for u in answer["Uploads"]] == [("a/2", ids["a/2"])]
    assert not answer["IsTruncated"]
    status, _, body = await gateway.request("GET", "/photos?uploads&max-uploads=0")
    assert status == 200
    assert ET.fromstring(body).findall(f"{NS}Upload") == []
