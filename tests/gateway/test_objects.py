"""Object headers, conditions, checksums and listings over HTTP: what a PUT stores
comes back on GET/HEAD (and response-* overrides it), If-* on reads and writes,
Content-MD5 and x-amz-checksum-* from headers and aws-chunked trailers (a mismatch
stores nothing), the 5 GiB limit of a single upload, delimiter listings, and the
handler table against router.IMPLEMENTED."""

from __future__ import annotations

import base64
import hashlib
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator
from typing import Any

import pytest

from s3lite.gateway import app
from s3lite.gateway.router import IMPLEMENTED
from s3lite.receiver.checksums import checksum_of
from tests.gateway.harness import (
    NS,
    Gateway,
    client,
    error_of,
    get,
    in_thread,
    payload,
    put_chunked,
    raw_exchange,
    refused,
    snapshot,
)
from tests.s3sign import UNSIGNED_TRAILER, aws_chunked

pytestmark = pytest.mark.anyio

DATA = payload(20_000, seed=7)


def test_the_handler_table_is_what_the_router_calls_implemented() -> None:
    assert set(app.HANDLERS) == IMPLEMENTED


@pytest.fixture
async def s3(gateway: Gateway, bucket: str) -> AsyncIterator[Any]:
    with client(gateway) as s3:
        yield s3


async def test_stored_headers_come_back_and_response_overrides(s3: Any, gateway: Gateway) -> None:
    def accented(params: dict[str, Any], **kwargs: Any) -> None:
        # botocore refuses non-ASCII Metadata, so set the header as ceph's s3-tests do:
        # botocore sends it in UTF-8 and signs that
        params["headers"]["x-amz-meta-accent"] = "Hello World\xe9"

    s3.meta.events.register("before-call.s3.PutObject", accented)
    await in_thread(
        s3.put_object,
        Bucket="photos",
        Key="k",
        Body=DATA,
        ContentType="image/jpeg",
        CacheControl="no-cache",
        ContentDisposition='attachment; filename="a.jpg"',
        ContentEncoding="gzip",
        ContentLanguage="de",
        Expires="Wed, 01 Dec 2094 16:00:00 GMT",
        StorageClass="REDUCED_REDUNDANCY",
        Metadata={"plain": "yes"},
    )
    got, got_body = await get(s3, Bucket="photos", Key="k")
    assert got_body == DATA
    assert (
        got["ContentType"],
        got["CacheControl"],
        got["ContentDisposition"],
        got["ContentEncoding"],
        got["ContentLanguage"],
        got["ExpiresString"],
        got["StorageClass"],
    ) == (
        "image/jpeg",
        "no-cache",
        'attachment; filename="a.jpg"',
        "gzip",
        "de",
        "Wed, 01 Dec 2094 16:00:00 GMT",
        "REDUCED_REDUNDANCY",
    )
    assert got["Metadata"] == {"plain": "yes", "accent": "Hello World\xe9"}
    status, headers, _ = await gateway.request(
        "GET", "/photos/k?response-content-type=text%2Fplain&response-cache-control=max-age%3D9"
    )
    assert (status, headers["Content-Type"], headers["Cache-Control"]) == (
        200,
        "text/plain",
        "max-age=9",
    )
    listed = await in_thread(s3.list_objects_v2, Bucket="photos")
    assert listed["Contents"][0]["StorageClass"] == "REDUCED_REDUNDANCY"


async def test_metadata_the_library_wrote_in_utf8_goes_out_rfc_2047(
    gateway: Gateway, bucket: str
) -> None:
    receiver = gateway.cluster.receiver
    await receiver.put_object("photos/u", b"x", metadata={"city": "東京"})
    status, headers, _ = await gateway.request("HEAD", "/photos/u")
    encoded = base64.b64encode("東京".encode()).decode()
    assert (status, headers["x-amz-meta-city"]) == (200, f"=?UTF-8?B?{encoded}?=")


async def test_read_conditions(s3: Any, gateway: Gateway) -> None:
    etag = (await in_thread(s3.put_object, Bucket="photos", Key="k", Body=DATA))["ETag"]
    status, headers, body = await gateway.request(
        "GET", "/photos/k", headers={"If-None-Match": etag}
    )
    assert (status, headers["ETag"], body) == (304, etag, b"")
    assert "Last-Modified" in headers
    status, headers, _ = await gateway.request("HEAD", "/photos/k", headers={"If-None-Match": etag})
    assert (status, headers["ETag"]) == (304, etag)
    future, past = "Wed, 01 Dec 2094 16:00:00 GMT", "Sat, 01 Jan 2000 00:00:00 GMT"
    for condition, answer in (
        ({"If-Match": '"nope"'}, 412),
        ({"If-Match": etag}, 200),
        ({"If-Modified-Since": future}, 304),
        ({"If-Modified-Since": past}, 200),
        ({"If-Unmodified-Since": past}, 412),
        ({"If-Match": etag, "If-Unmodified-Since": past}, 200),  # RFC 9110: If-Match wins
        ({"If-None-Match": '"other"', "If-Modified-Since": future}, 200),
    ):
        status, _, body = await gateway.request("GET", "/photos/k", headers=condition)
        assert status == answer, condition
        if answer == 412:
            assert error_of(body)["Code"] == "PreconditionFailed"


async def test_write_conditions(s3: Any, gateway: Gateway) -> None:
    etag = (await in_thread(s3.put_object, Bucket="photos", Key="k", Body=DATA, IfNoneMatch="*"))[
        "ETag"
    ]
    before = await snapshot(gateway, "photos")
    for condition, answer in (
        ({"IfNoneMatch": "*"}, (412, "PreconditionFailed")),
        ({"IfNoneMatch": etag}, (412, "PreconditionFailed")),
        ({"IfMatch": '"0000"'}, (412, "PreconditionFailed")),
    ):
        assert (
            await refused(s3.put_object, Bucket="photos", Key="k", Body=b"new", **condition)
            == answer
        ), condition
    assert await snapshot(gateway, "photos") == before
    assert await refused(
        s3.put_object, Bucket="photos", Key="absent", Body=b"new", IfMatch=etag
    ) == (404, "NoSuchKey")
    await in_thread(s3.put_object, Bucket="photos", Key="k", Body=b"new", IfMatch=etag)
    await in_thread(s3.put_object, Bucket="photos", Key="k", Body=b"newer", IfNoneMatch='"other"')
    _got, got_body = await get(s3, Bucket="photos", Key="k")
    assert got_body == b"newer"


async def test_digests_from_headers(s3: Any, gateway: Gateway) -> None:
    await in_thread(s3.put_object, Bucket="photos", Key="k", Body=DATA)
    before = await snapshot(gateway, "photos")
    good_md5 = base64.b64encode(hashlib.md5(b"abc").digest()).decode()
    for headers, answer in (
        ({"Content-MD5": "not base64!"}, (400, "InvalidDigest")),
        ({"Content-MD5": ""}, (400, "InvalidDigest")),
        ({"Content-MD5": good_md5}, (400, "BadDigest")),
        ({"x-amz-checksum-crc32": checksum_of("CRC32", b"abc")}, (400, "BadDigest")),
        ({"x-amz-checksum-sha256": "bad"}, (400, "BadDigest")),
        ({"x-amz-checksum-crc64nvme": checksum_of("CRC64NVME", b"abc")}, (400, "BadDigest")),
    ):
        status, _, body = await gateway.request("PUT", "/photos/k", data=b"abd", headers=headers)
        assert (status, error_of(body)["Code"]) == answer, headers
    assert await snapshot(gateway, "photos") == before
    sha1 = checksum_of("SHA1", b"abc")
    status, headers, _ = await gateway.request(
        "PUT",
        "/photos/k",
        data=b"abc",
        headers={"x-amz-checksum-sha1": sha1, "Content-MD5": good_md5},
    )
    assert (status, headers["x-amz-checksum-sha1"]) == (200, sha1)
    head = await in_thread(s3.head_object, Bucket="photos", Key="k")
    assert "ChecksumSHA1" not in head
    head = await in_thread(s3.head_object, Bucket="photos", Key="k", ChecksumMode="ENABLED")
    assert (head["ChecksumSHA1"], head["ChecksumType"]) == (sha1, "FULL_OBJECT")
    # an algorithm without a value is computed and kept
    await in_thread(s3.put_object, Bucket="photos", Key="c", Body=DATA, ChecksumAlgorithm="CRC32C")
    head = await in_thread(s3.head_object, Bucket="photos", Key="c", ChecksumMode="ENABLED")
    assert head["ChecksumCRC32C"] == checksum_of("CRC32C", DATA)


async def test_a_trailer_checksum_is_verified(gateway: Gateway, bucket: str) -> None:
    """H2 captured aws-chunked trailers; now their value is compared with the body."""
    before = await snapshot(gateway, "photos")
    for value, answer in ((checksum_of("CRC32", DATA), 200), (checksum_of("CRC32", b"x"), 400)):
        framed = aws_chunked(DATA, 4096, trailers={"x-amz-checksum-crc32": value})
        status, body = await put_chunked(gateway, "/photos/t", framed, len(DATA), UNSIGNED_TRAILER)
        assert status == answer, body
        if answer == 400:
            assert error_of(body)["Code"] == "BadDigest"
            _, _, stored = await gateway.request("GET", "/photos/t")
            assert stored == DATA  # the first upload, unchanged
    assert (await snapshot(gateway, "photos"))[0] == before[0]


async def test_a_single_upload_over_5_gib_is_refused_before_its_body(
    gateway: Gateway, bucket: str
) -> None:
    size = 5 * 1024**3 + 1
    request = (
        b"PUT /photos/huge HTTP/1.1\r\nHost: h\r\nConnection: close\r\n"
        + f"Content-Length: {size}\r\n\r\n".encode()
    )
    response = await raw_exchange(gateway, request)
    assert (response.status, error_of(response.body)["Code"]) == (400, "EntityTooLarge")
    status, _, _ = await gateway.request("HEAD", "/photos/huge")
    assert status == 404


async def test_delimiter_listings_v1_v2_and_versions(s3: Any, gateway: Gateway) -> None:
    keys = ["a/1", "a/2", "b", "c d/e", "c+d/f", "z"]
    for key in keys:
        await in_thread(s3.put_object, Bucket="photos", Key=key, Body=b"x")
    v2 = await in_thread(s3.list_objects_v2, Bucket="photos", Delimiter="/")
    assert [c["Key"] for c in v2["Contents"]] == ["b", "z"]
    assert [p["Prefix"] for p in v2["CommonPrefixes"]] == ["a/", "c d/", "c+d/"]
    pages = await in_thread(
        lambda: list(
            s3.get_paginator("list_objects").paginate(
                Bucket="photos", Delimiter="/", PaginationConfig={"PageSize": 2}
            )
        )
    )
    seen = [(c["Key"]) for page in pages for c in page.get("Contents", [])]
    seen += [p["Prefix"] for page in pages for p in page.get("CommonPrefixes", [])]
    assert sorted(seen) == ["a/", "b", "c d/", "c+d/", "z"]
    assert len(pages) == 3
    _, _, body = await gateway.request(
        "GET", "/photos?list-type=2&delimiter=/&encoding-type=url&start-after=a%2F1"
    )
    root = ET.fromstring(body)
    assert root.findtext(f"{NS}EncodingType") == "url"
    assert root.findtext(f"{NS}StartAfter") == "a/1"
    prefixes = [p.findtext(f"{NS}Prefix") for p in root.iter(f"{NS}CommonPrefixes")]
    assert prefixes == ["a/", "c%20d/", "c%2Bd/"]
    versions = await in_thread(s3.list_object_versions, Bucket="photos", Delimiter="/")
    assert [(v["Key"], v["VersionId"]) for v in versions["Versions"]] == [
        ("b", "null"),
        ("z", "null"),
    ]
    assert [p["Prefix"] for p in versions["CommonPrefixes"]] == ["a/", "c d/", "c+d/"]
    v2 = await in_thread(s3.list_objects_v2, Bucket="photos", ContinuationToken="")
    assert v2["ContinuationToken"] == ""


async def test_content_encoding_aws_chunked_on_a_plain_body_is_a_label(
    s3: Any, gateway: Gateway
) -> None:
    """S3 drops ``aws-chunked`` from Content-Encoding and keeps the rest, also when the
    body is not framed (the payload hash says it is plain)."""
    for sent, kept in (("gzip, aws-chunked", "gzip"), ("aws-chunked", None)):
        await in_thread(s3.put_object, Bucket="photos", Key="e", Body=DATA, ContentEncoding=sent)
        got, body = await get(s3, Bucket="photos", Key="e")
        assert (body, got.get("ContentEncoding")) == (DATA, kept)
