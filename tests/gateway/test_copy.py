"""CopyObject over HTTP with boto3: within and across buckets, COPY and REPLACE, onto
itself, the x-amz-copy-source-if-* conditions, a percent-encoded source with
?versionId=null, and a key that may not read the source's bucket (nothing changes)."""

from __future__ import annotations

import urllib.parse
from collections.abc import AsyncIterator
from typing import Any

import pytest

from tests.gateway.harness import (
    Gateway,
    client,
    error_of,
    get,
    grant,
    in_thread,
    new_key,
    payload,
    refused,
    snapshot,
)

pytestmark = pytest.mark.anyio

DATA = payload(30_000, seed=5)


@pytest.fixture
async def s3(gateway: Gateway, bucket: str) -> AsyncIterator[Any]:
    with client(gateway) as s3:
        await s3_source(s3)
        yield s3


async def s3_source(s3: Any) -> None:
    """The copies' source: photos/'src key+%' with headers and metadata."""
    await in_thread(
        s3.put_object,
        Bucket="photos",
        Key="src key+%",
        Body=DATA,
        ContentType="image/png",
        CacheControl="max-age=60",
        Metadata={"camera": "x100"},
    )


async def test_copy_within_and_across_buckets(s3: Any, gateway: Gateway) -> None:
    await in_thread(s3.create_bucket, Bucket="other")
    source = {"Bucket": "photos", "Key": "src key+%"}
    answer = await in_thread(s3.copy_object, Bucket="other", Key="dst", CopySource=source)
    got, got_body = await get(s3, Bucket="other", Key="dst")
    assert got_body == DATA
    assert answer["CopyObjectResult"]["ETag"] == got["ETag"]
    assert (got["ContentType"], got["CacheControl"], got["Metadata"]) == (
        "image/png",
        "max-age=60",
        {"camera": "x100"},
    )
    await in_thread(
        s3.copy_object,
        Bucket="photos",
        Key="replaced",
        CopySource=source,
        MetadataDirective="REPLACE",
        ContentType="text/plain",
        Metadata={"new": "1"},
    )
    got = await in_thread(s3.head_object, Bucket="photos", Key="replaced")
    assert (got["ContentType"], got["Metadata"]) == ("text/plain", {"new": "1"})
    assert "CacheControl" not in got
    # a raw header: percent-encoded, with the one version there is
    quoted = urllib.parse.quote("/photos/src key+%")
    status, _, body = await gateway.request(
        "PUT", "/photos/raw", headers={"x-amz-copy-source": quoted + "?versionId=null"}
    )
    assert status == 200, body
    status, _, body = await gateway.request(
        "PUT", "/photos/raw", headers={"x-amz-copy-source": quoted + "?versionId=v2"}
    )
    assert (status, error_of(body)["Code"]) == (400, "InvalidArgument")


async def test_copy_onto_itself_needs_replace(s3: Any) -> None:
    source = {"Bucket": "photos", "Key": "src key+%"}
    assert await refused(s3.copy_object, Bucket="photos", Key="src key+%", CopySource=source) == (
        400,
        "InvalidRequest",
    )
    await in_thread(
        s3.copy_object,
        Bucket="photos",
        Key="src key+%",
        CopySource=source,
        MetadataDirective="REPLACE",
        Metadata={"edited": "yes"},
    )
    got, got_body = await get(s3, Bucket="photos", Key="src key+%")
    assert (got_body, got["Metadata"]) == (DATA, {"edited": "yes"})


async def test_copy_source_conditions(s3: Any, gateway: Gateway) -> None:
    source = {"Bucket": "photos", "Key": "src key+%"}
    etag = (await in_thread(s3.head_object, **source))["ETag"]
    before = await snapshot(gateway, "photos", "dst")
    for condition in (
        {"CopySourceIfMatch": '"0123"'},
        {"CopySourceIfNoneMatch": etag},
        {"CopySourceIfModifiedSince": "2999-01-01T00:00:00Z"},
        {"CopySourceIfUnmodifiedSince": "2000-01-01T00:00:00Z"},
    ):
        assert await refused(
            s3.copy_object, Bucket="photos", Key="dst", CopySource=source, **condition
        ) == (412, "PreconditionFailed"), condition
    assert await snapshot(gateway, "photos", "dst") == before
    await in_thread(
        s3.copy_object, Bucket="photos", Key="dst", CopySource=source, CopySourceIfMatch=etag
    )
    assert await refused(
        s3.copy_object, Bucket="photos", Key="dst", CopySource={"Bucket": "photos", "Key": "nope"}
    ) == (404, "NoSuchKey")
    assert await refused(
        s3.copy_object, Bucket="photos", Key="dst", CopySource={"Bucket": "nobucket", "Key": "k"}
    ) == (404, "NoSuchBucket")


async def test_copy_needs_read_on_the_source_and_write_on_the_destination(
    s3: Any, gateway: Gateway
) -> None:
    key = await new_key(gateway, "alice")
    with client(gateway, key) as alice:
        await in_thread(alice.create_bucket, Bucket="alices")
        source = {"Bucket": "photos", "Key": "src key+%"}
        before = await snapshot(gateway, "alices", "stolen")
        assert await refused(
            alice.copy_object, Bucket="alices", Key="stolen", CopySource=source
        ) == (403, "AccessDenied")
        assert await refused(
            alice.upload_part_copy,
            Bucket="photos",
            Key="x",
            UploadId="u",
            PartNumber=1,
            CopySource=source,
        ) == (403, "AccessDenied")  # nor into a bucket it may only read
        assert await snapshot(gateway, "alices", "stolen") == before
        await grant(gateway, "allow", key, "photos", read=True)
        await in_thread(alice.copy_object, Bucket="alices", Key="stolen", CopySource=source)
        _got, got_body = await get(alice, Bucket="alices", Key="stolen")
        assert got_body == DATA
