"""The HTTP gateway (GatewayApp) served by uvicorn in the test's event loop, over a
six-node LocalCluster: the S3 REST surface (buckets, objects, ranges, listings, errors),
clients that misbehave (half bodies, stalls, lying lengths) and the admin routes.

Requests go through aiohttp, or through raw TCP where a real client cannot misbehave
enough. Nothing waits by sleeping: a test that must know the gateway has received a
body waits on an event set by a thin ASGI wrapper, and clean-up is awaited through the
gateway's own ``GET /_admin/idle``.
"""

from __future__ import annotations

import datetime as dt
import email.utils
import json
import os
import random
import urllib.parse
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import pytest

from s3lite import LocalCluster, PartsUnavailable
from s3lite.receiver import download
from s3lite.storager import StorageNode
from s3lite.storager.partfile import Header
from tests.gateway.harness import (
    NS,
    Gateway,
    assert_only_parts_of,
    chunks_of,
    error_of,
    md5,
    parse_response,
    payload,
    pending_uploads,
    quote_key,
    raw_exchange,
    read_until_closed,
    serving,
    stored_parts,
    temp_files,
)
from tests.s3sign import STREAMING, sign_raw

pytestmark = pytest.mark.anyio

# -- buckets -------------------------------------------------------------------------------


async def test_bucket_create_is_idempotent_and_listed(gateway: Gateway) -> None:
    for _ in range(2):
        status, headers, _ = await gateway.request("PUT", "/zeta-bucket")
        assert status == 200
        assert headers["Location"] == "/zeta-bucket"
    assert (await gateway.request("PUT", "/alpha.bucket"))[0] == 200
    status, headers, body = await gateway.request("HEAD", "/zeta-bucket")
    assert (status, body) == (200, b"")
    status, headers, body = await gateway.request("GET", "/")
    assert status == 200
    assert headers["Content-Type"] == "application/xml"
    root = ET.fromstring(body)
    names = [b.findtext(f"{NS}Name") for b in root.iter(f"{NS}Bucket")]
    assert names == ["alpha.bucket", "zeta-bucket"]
    for created in root.iter(f"{NS}CreationDate"):
        moment = dt.datetime.fromisoformat(created.text.replace("Z", "+00:00"))  # type: ignore[union-attr]
        assert abs(moment - dt.datetime.now(dt.UTC)) < dt.timedelta(minutes=1)


async def test_an_empty_bucket_lists_no_objects(gateway: Gateway, bucket: str) -> None:
    status, _, body = await gateway.request("GET", f"/{bucket}?list-type=2")
    assert status == 200
    root = ET.fromstring(body)
    assert root.findtext(f"{NS}Name") == bucket
    assert root.findtext(f"{NS}KeyCount") == "0"
    assert root.findtext(f"{NS}IsTruncated") == "false"
    assert root.findall(f"{NS}Contents") == []


async def test_head_and_get_of_a_missing_bucket(gateway: Gateway) -> None:
    status, _, body = await gateway.request("HEAD", "/nothing-here")
    assert (status, body) == (404, b"")
    status, headers, body = await gateway.request("GET", "/nothing-here")
    assert status == 404
    error = error_of(body)
    assert error["Code"] == "NoSuchBucket"
    assert error["Resource"] == "/nothing-here"
    assert error["RequestId"] == headers["x-amz-request-id"]


async def test_delete_bucket(gateway: Gateway, bucket: str) -> None:
    assert (await gateway.request("PUT", f"/{bucket}/kept", data=b"kept"))[0] == 200
    status, _, body = await gateway.request("DELETE", f"/{bucket}")
    assert status == 409
    assert error_of(body)["Code"] == "BucketNotEmpty"
    assert (await gateway.request("GET", f"/{bucket}/kept"))[2] == b"kept"

    assert (await gateway.request("DELETE", f"/{bucket}/kept"))[0] == 204
    status, _, body = await gateway.request("DELETE", f"/{bucket}")
    assert (status, body) == (204, b"")
    assert (await gateway.request("HEAD", f"/{bucket}"))[0] == 404
    status, _, body = await gateway.request("GET", "/")
    assert ET.fromstring(body).findall(f".//{NS}Bucket") == []

    status, _, body = await gateway.request("DELETE", f"/{bucket}")
    assert status == 404
    assert error_of(body)["Code"] == "NoSuchBucket"
    status, _, body = await gateway.request("PUT", f"/{bucket}/key", data=b"x")
    assert status == 404
    assert error_of(body)["Code"] == "NoSuchBucket"


@pytest.mark.parametrize(
    "name",
    ["ab", "Upper", "under_score", "a..b", "-dash", "dash-", ".dot", "192.168.1.1", "a" * 64],
)
async def test_invalid_bucket_names_are_refused(gateway: Gateway, name: str) -> None:
    for method, path in [("PUT", f"/{name}"), ("PUT", f"/{name}/key"), ("GET", f"/{name}")]:
        status, _, body = await gateway.request(method, path, data=b"x" if "key" in path else None)
        assert status == 400, (method, path)
        assert error_of(body)["Code"] == "InvalidBucketName"
    status, _, body = await gateway.request("GET", "/")
    assert ET.fromstring(body).findall(f".//{NS}Bucket") == []


# -- objects -------------------------------------------------------------------------------


@pytest.mark.parametrize("size", [0, 1, 1000, 200_003])
@pytest.mark.parametrize("transfer", ["content-length", "chunked"])
async def test_put_get_head_delete_round_trip(
    gateway: Gateway, bucket: str, size: int, transfer: str
) -> None:
    data = payload(size)
    path = f"/{bucket}/dir/object.bin"
    headers = {"Content-Type": "image/x-test", "x-amz-meta-color": "blue", "X-Amz-Meta-Owner": "me"}
    body: Any = data if transfer == "content-length" else chunks_of(data, 7777)
    before = dt.datetime.now(dt.UTC).replace(microsecond=0)
    status, put_headers, _ = await gateway.request("PUT", path, data=body, headers=headers)
    assert status == 200
    assert put_headers["ETag"] == f'"{md5(data)}"'
    sent = gateway.spy.headers[path]
    if transfer == "chunked":
        assert (sent.get("transfer-encoding"), sent.get("content-length")) == ("chunked", None)
    else:
        assert (sent.get("transfer-encoding"), sent.get("content-length")) == (None, str(size))

    status, got, content = await gateway.request("GET", path)
    assert status == 200
    assert content == data
    assert got["Content-Length"] == str(size)
    assert got["ETag"] == f'"{md5(data)}"'
    assert got["Content-Type"] == "image/x-test"
    assert got["x-amz-meta-color"] == "blue"
    assert got["x-amz-meta-owner"] == "me"
    modified = email.utils.parsedate_to_datetime(got["Last-Modified"])
    assert before <= modified <= dt.datetime.now(dt.UTC)

    head = await raw_exchange(gateway, raw_head(path))
    assert (head.status, head.body) == (200, b"")
    for name in ("ETag", "Content-Type", "Last-Modified", "x-amz-meta-color"):
        assert head.headers[name.lower()] == got[name]

    await assert_only_parts_of(gateway.cluster, f"{bucket}/dir/object.bin")
    status, _, content = await gateway.request("DELETE", path)
    assert (status, content) == (204, b"")
    status, _, content = await gateway.request("GET", path)
    assert status == 404
    assert error_of(content)["Code"] == "NoSuchKey"
    assert await stored_parts(gateway.cluster) == set()


def raw_head(path: str) -> bytes:
    return f"HEAD {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode()


@pytest.mark.parametrize("size", [0, 1000])
async def test_head_of_an_object_has_one_content_length(
    gateway: Gateway, bucket: str, size: int
) -> None:
    await gateway.request("PUT", f"/{bucket}/k", data=payload(size))
    port = int(gateway.url.rsplit(":", 1)[1])
    async with await anyio.connect_tcp("127.0.0.1", port) as stream:
        await stream.send(sign_raw(gateway.url, raw_head(f"/{bucket}/k")))
        head = (await read_until_closed(stream)).partition(b"\r\n\r\n")[0].lower()
    assert head.count(b"\r\ncontent-length:") == 1
    status, headers, body = await gateway.request("HEAD", f"/{bucket}/k")
    assert (status, headers["Content-Length"], body) == (200, str(size), b"")


async def test_overwrite_replaces_the_object_and_its_headers(gateway: Gateway, bucket: str) -> None:
    path = f"/{bucket}/k"
    await gateway.request("PUT", path, data=b"old", headers={"x-amz-meta-v": "1"})
    await gateway.request("PUT", path, data=b"new!", headers={"Content-Type": "text/plain"})
    status, headers, body = await gateway.request("GET", path)
    assert (status, body) == (200, b"new!")
    assert headers["Content-Type"] == "text/plain"
    assert "x-amz-meta-v" not in headers
    await assert_only_parts_of(gateway.cluster, f"{bucket}/k")


async def test_a_put_without_content_type_is_served_as_octet_stream(
    gateway: Gateway, bucket: str
) -> None:
    request = (
        f"PUT /{bucket}/plain HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n"
        "Connection: close\r\n\r\nabc"
    ).encode()
    assert (await raw_exchange(gateway, request)).status == 200
    _, headers, body = await gateway.request("GET", f"/{bucket}/plain")
    assert (headers["Content-Type"], body) == ("application/octet-stream", b"abc")


async def test_missing_keys_and_buckets_answer_s3_errors(gateway: Gateway, bucket: str) -> None:
    status, headers, body = await gateway.request("GET", f"/{bucket}/no/such%20key")
    assert status == 404
    assert headers["Content-Type"] == "application/xml"
    error = error_of(body)
    assert error["Code"] == "NoSuchKey"
    assert error["Resource"] == f"/{bucket}/no/such key"
    assert error["RequestId"] == headers["x-amz-request-id"]
    status, _, body = await gateway.request("HEAD", f"/{bucket}/absent")
    assert (status, body) == (404, b"")
    status, _, body = await gateway.request("GET", "/no-bucket/key")
    assert status == 404
    assert error_of(body)["Code"] == "NoSuchBucket"
    status, _, body = await gateway.request("DELETE", f"/{bucket}/absent")  # S3: idempotent
    assert (status, body) == (204, b"")


KEYS = [
    "zq with spaces",
    "zq 100% sure",
    "zq a+b=c&d",
    "zq/dir/sub/file.txt",
    "zq/trailing/",
    "zq//double",
    "zq ünïcødé 日本語 😀",
    "zq ../../etc/passwd",
    "zq/../up",
    "zq/./here",
    "zq?query#fragment",
    "zq \\ back;slash:colon\"quote'<tag>",
]
"""Every key carries 'zq', which no file or directory name may contain."""


async def test_keys_round_trip_exactly_and_never_touch_the_disk(
    gateway: Gateway, bucket: str
) -> None:
    keys = [*KEYS, "..", "."]
    for index, key in enumerate(keys):
        data = payload(100 + index, seed=index)
        status, _, _ = await gateway.request("PUT", f"/{bucket}/{quote_key(key)}", data=data)
        assert status == 200, key
    for index, key in enumerate(keys):
        for path in {quote_key(key), quote_key(key, keep_slashes=True)}:
            status, _, body = await gateway.request("GET", f"/{bucket}/{path}")
            assert (status, body) == (200, payload(100 + index, seed=index)), key
    status, _, body = await gateway.request("GET", f"/{bucket}?list-type=2")
    listed = [c.findtext(f"{NS}Key") for c in ET.fromstring(body).iter(f"{NS}Contents")]
    assert listed == sorted(keys, key=lambda k: k.encode())
    names = [name for _, dirs, files in os.walk(gateway.cluster.root) for name in dirs + files]
    assert names
    assert [name for name in names if "zq" in name or name in ("etc", "passwd", "up")] == []


async def test_keys_that_break_the_rules_are_refused(gateway: Gateway, bucket: str) -> None:
    for path, code in [
        (f"/{bucket}/{'k' * 1025}", "KeyTooLongError"),
        (f"/{bucket}/{quote_key('é' * 513)}", "KeyTooLongError"),  # 1026 bytes of UTF-8
        (f"/{bucket}/bad%FFutf8", "InvalidURI"),
    ]:
        status, _, body = await gateway.request("PUT", path, data=b"x")
        assert status == 400, path
        assert error_of(body)["Code"] == code
    status, _, body = await gateway.request("PUT", f"/{bucket}/nul%00byte", data=b"x")
    assert status == 400
    assert b"<Code>InvalidArgument</Code>" in body
    assert (await gateway.request("PUT", f"/{bucket}/{'k' * 1024}", data=b"x"))[0] == 200
    await assert_only_parts_of(gateway.cluster, f"{bucket}/{'k' * 1024}")


@pytest.mark.parametrize("key", ["ctl\x01char", "esc\x1bape", "a\uffff", "plus+ and space"])
async def test_a_url_encoded_listing_carries_any_valid_key(
    gateway: Gateway, bucket: str, key: str
) -> None:
    """Keys may hold characters XML 1.0 cannot carry; with encoding-type=url (what S3
    clients ask for) the listing stays well-formed and the keys come back exactly."""
    status, _, _ = await gateway.request("PUT", f"/{bucket}/{quote_key(key)}", data=b"x")
    assert status == 200
    status, _, body = await gateway.request("GET", f"/{bucket}?list-type=2&encoding-type=url")
    assert status == 200
    root = ET.fromstring(body)
    keys = [element.text or "" for element in root.iter() if element.tag.endswith("Key")]
    assert [urllib.parse.unquote_plus(k) for k in keys] == [key]
    assert any(element.tag.endswith("EncodingType") for element in root.iter())


async def test_an_error_body_stays_well_formed_xml_for_any_path(
    gateway: Gateway, bucket: str
) -> None:
    status, _, body = await gateway.request("PUT", f"/{bucket}/nul%00byte", data=b"x")
    assert status == 400
    assert error_of(body)["Code"] == "InvalidArgument"


# -- ranges --------------------------------------------------------------------------------

SIZE = 200_003


@pytest.mark.parametrize(
    ("header", "first", "last"),
    [
        ("bytes=0-0", 0, 0),
        ("bytes=0-4095", 0, 4095),
        ("bytes=4090-4200", 4090, 4200),
        ("bytes=100000-150000", 100_000, 150_000),
        ("bytes=5-", 5, SIZE - 1),
        (f"bytes={SIZE - 1}-", SIZE - 1, SIZE - 1),
        (f"bytes=10-{SIZE + 1000}", 10, SIZE - 1),
        ("bytes=-1", SIZE - 1, SIZE - 1),
        ("bytes=-5000", SIZE - 5000, SIZE - 1),
        (f"bytes=-{SIZE + 7}", 0, SIZE - 1),
    ],
)
async def test_a_satisfiable_range_gets_206(
    gateway: Gateway, bucket: str, header: str, first: int, last: int
) -> None:
    data = payload(SIZE)
    await gateway.request("PUT", f"/{bucket}/r", data=data)
    status, headers, body = await gateway.request("GET", f"/{bucket}/r", headers={"Range": header})
    assert status == 206
    assert body == data[first : last + 1]
    assert headers["Content-Range"] == f"bytes {first}-{last}/{SIZE}"
    assert headers["Content-Length"] == str(last - first + 1)
    assert headers["ETag"] == f'"{md5(data)}"'


@pytest.mark.parametrize(
    ("size", "header"),
    [
        (SIZE, f"bytes={SIZE}-"),
        (SIZE, f"bytes={SIZE + 5}-{SIZE + 10}"),
        (SIZE, "bytes=-0"),
        (0, "bytes=0-0"),
        (0, "bytes=-5"),
    ],
)
async def test_an_unsatisfiable_range_gets_416(
    gateway: Gateway, bucket: str, size: int, header: str
) -> None:
    await gateway.request("PUT", f"/{bucket}/r", data=payload(size))
    status, headers, body = await gateway.request("GET", f"/{bucket}/r", headers={"Range": header})
    assert status == 416
    assert headers["Content-Range"] == f"bytes */{size}"
    assert error_of(body)["Code"] == "InvalidRange"


@pytest.mark.parametrize(
    "header",
    ["bytes=5-2", "bytes=0-1,5-6", "bytes=-", "items=0-1", "bytes=abc", "bytes=1-2-3", ""],
)
async def test_a_malformed_or_multi_range_gets_the_whole_object(
    gateway: Gateway, bucket: str, header: str
) -> None:
    data = payload(10_000)
    await gateway.request("PUT", f"/{bucket}/r", data=data)
    status, headers, body = await gateway.request("GET", f"/{bucket}/r", headers={"Range": header})
    assert (status, body) == (200, data)
    assert "Content-Range" not in headers
    assert headers["Content-Length"] == "10000"


# -- listing -------------------------------------------------------------------------------

LISTED = [
    "a",
    "a/b",
    "a/b/c",
    "a-b",
    "a0",
    "aZ",
    "a~",
    "a\u00e9",
    "a\u0800",
    "a\ue000",
    "a\ufffd",
    "a\U0001f600",  # after U+FFFD in UTF-8 (and code point) order, before it in UTF-16
    "b",
    *(f"many/{index:03d}" for index in range(20)),
    "many0",
    "zz",
]


async def list_page(gateway: Gateway, bucket: str, **query: str) -> ET.Element:
    status, _, body = await gateway.request("GET", f"/{bucket}", params={"list-type": "2", **query})
    assert status == 200, body
    return ET.fromstring(body)


def keys_of(page: ET.Element) -> list[str]:
    return [c.findtext(f"{NS}Key") or "" for c in page.iter(f"{NS}Contents")]


@pytest.fixture
async def listed(gateway: Gateway, bucket: str) -> list[str]:
    for key in random.Random(1).sample(LISTED, len(LISTED)):
        status, _, _ = await gateway.request("PUT", f"/{bucket}/{quote_key(key)}", data=b"v")
        assert status == 200
    await gateway.request("PUT", "/other-bucket")
    await gateway.request("PUT", "/other-bucket/a", data=b"elsewhere")
    return sorted(LISTED, key=lambda k: k.encode())


async def test_listing_pages_through_every_key_in_utf8_order(
    gateway: Gateway, bucket: str, listed: list[str]
) -> None:
    seen: list[str] = []
    token = None
    pages = 0
    while True:
        query = {"list-type": "2", "max-keys": "7"}
        if token is not None:
            query["continuation-token"] = token
        page = await list_page(gateway, bucket, **query)
        pages += 1
        keys = keys_of(page)
        seen += keys
        assert page.findtext(f"{NS}KeyCount") == str(len(keys))
        assert page.findtext(f"{NS}MaxKeys") == "7"
        if page.findtext(f"{NS}IsTruncated") == "false":
            assert page.find(f"{NS}NextContinuationToken") is None
            break
        assert len(keys) == 7
        token = page.findtext(f"{NS}NextContinuationToken")
        assert token
    assert seen == listed
    assert pages == -(-len(listed) // 7)
    for contents in (await list_page(gateway, bucket, **{"max-keys": "1"})).iter(f"{NS}Contents"):
        assert contents.findtext(f"{NS}Size") == "1"
        assert contents.findtext(f"{NS}ETag") == f'"{md5(b"v")}"'


async def test_listing_with_prefix_and_start_after(
    gateway: Gateway, bucket: str, listed: list[str]
) -> None:
    page = await list_page(gateway, bucket, prefix="many/")
    assert keys_of(page) == [k for k in listed if k.startswith("many/")]
    assert page.findtext(f"{NS}Prefix") == "many/"
    assert keys_of(await list_page(gateway, bucket, prefix="a/")) == ["a/b", "a/b/c"]
    assert keys_of(await list_page(gateway, bucket, prefix="nothing")) == []

    page = await list_page(gateway, bucket, **{"start-after": "a~"})
    assert keys_of(page) == [k for k in listed if k.encode() > b"a~"]
    assert page.findtext(f"{NS}StartAfter") == "a~"
    page = await list_page(gateway, bucket, prefix="many/", **{"start-after": "many/017"})
    assert keys_of(page) == ["many/018", "many/019"]

    first = await list_page(gateway, bucket, prefix="many/", **{"max-keys": "5"})
    assert keys_of(first) == [f"many/{i:03d}" for i in range(5)]
    token = first.findtext(f"{NS}NextContinuationToken") or ""
    second = await list_page(
        gateway, bucket, prefix="many/", **{"max-keys": "5", "continuation-token": token}
    )
    assert keys_of(second) == [f"many/{i:03d}" for i in range(5, 10)]
    assert second.findtext(f"{NS}ContinuationToken") == token


async def test_listing_limits_and_bad_arguments(
    gateway: Gateway, bucket: str, listed: list[str]
) -> None:
    page = await list_page(gateway, bucket, **{"max-keys": "0"})
    assert keys_of(page) == []
    assert page.findtext(f"{NS}IsTruncated") == "false"
    page = await list_page(gateway, bucket, **{"max-keys": "5000"})
    assert page.findtext(f"{NS}MaxKeys") == "1000"
    assert keys_of(page) == listed
    for query in ({"max-keys": "many"}, {"continuation-token": "***not base64***"}):
        status, _, body = await gateway.request(
            "GET", f"/{bucket}", params={"list-type": "2", **query}
        )
        assert status == 400, query
        assert error_of(body)["Code"] == "InvalidArgument"


# -- clients that misbehave ----------------------------------------------------------------


def chunked_body(data: bytes, size: int) -> bytes:
    pieces = [data[i : i + size] for i in range(0, len(data), size)]
    return b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in pieces) + b"0\r\n\r\n"


@pytest.mark.parametrize(
    ("sent", "declared"),
    [(50_000, 50_001), (50_000, 49_999), (50_000, 0), (0, 10), (10, 100_000)],
    ids=["one-short", "one-long", "declared-empty", "empty-body", "far-short"],
)
async def test_a_chunked_body_that_contradicts_its_decoded_length_stores_nothing(
    gateway: Gateway, bucket: str, sent: int, declared: int
) -> None:
    key = f"{bucket}/lying"
    await gateway.request("PUT", f"/{bucket}/lying", data=b"previous")
    data = payload(sent)
    request = (
        f"PUT /{bucket}/lying HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
        f"x-amz-decoded-content-length: {declared}\r\nConnection: close\r\n\r\n"
    ).encode() + chunked_body(data, 3001)
    response = await raw_exchange(gateway, request)
    assert response.status == 400
    assert error_of(response.body)["Code"] == "IncompleteBody"
    await gateway.idle()
    assert (await gateway.request("GET", f"/{bucket}/lying"))[2] == b"previous"
    await assert_only_parts_of(gateway.cluster, key)


async def test_a_chunked_body_matching_its_decoded_length_is_stored(
    gateway: Gateway, bucket: str
) -> None:
    data = payload(30_001)
    request = (
        f"PUT /{bucket}/exact HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
        f"x-amz-decoded-content-length: {len(data)}\r\nConnection: close\r\n\r\n"
    ).encode() + chunked_body(data, 4000)
    response = await raw_exchange(gateway, request)
    assert response.status == 200
    assert response.headers["etag"] == f'"{md5(data)}"'
    assert (await gateway.request("GET", f"/{bucket}/exact"))[2] == data


@pytest.mark.parametrize("previous", [None, b"the previous object"], ids=["new", "overwrite"])
async def test_a_client_that_leaves_mid_body_leaves_nothing(
    gateway: Gateway, bucket: str, previous: bytes | None
) -> None:
    key = f"{bucket}/half"
    if previous is not None:
        await gateway.request("PUT", f"/{key}", data=previous)
    size = 200_000
    port = int(gateway.url.rsplit(":", 1)[1])
    async with await anyio.connect_tcp("127.0.0.1", port) as stream:
        await stream.send(
            sign_raw(
                gateway.url,
                f"PUT /{key} HTTP/1.1\r\nHost: x\r\nContent-Length: {size}\r\n\r\n".encode(),
            )
        )
        await stream.send(payload(size // 2))
        await gateway.spy.wait_received(f"/{key}", size // 2)
    await gateway.idle()
    status, _, body = await gateway.request("GET", f"/{key}")
    if previous is None:
        assert status == 404
        assert error_of(body)["Code"] == "NoSuchKey"
        assert await stored_parts(gateway.cluster) == set()
        assert temp_files(gateway.cluster) == []
        assert await pending_uploads(gateway.cluster) == []
    else:
        assert (status, body) == (200, previous)
        await assert_only_parts_of(gateway.cluster, key)


async def stall(gateway: Gateway, path: str) -> bytes:
    """Start a PUT of 100 000 bytes, send 30 000 and go quiet; return what the gateway
    answers once it has given up (it does after body_idle_timeout)."""
    port = int(gateway.url.rsplit(":", 1)[1])
    async with await anyio.connect_tcp("127.0.0.1", port) as stream:
        await stream.send(
            sign_raw(
                gateway.url,
                f"PUT {path} HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n".encode(),
            )
        )
        await stream.send(payload(30_000))
        await gateway.spy.wait_received(path, 30_000)
        with anyio.fail_after(10):  # the gateway gives up after 0.5 s of silence
            await gateway.idle()
        return await read_until_closed(stream)


async def test_a_stalled_upload_is_abandoned_and_leaves_nothing(cluster: LocalCluster) -> None:
    async with serving(cluster, body_idle_timeout=0.5) as gateway:
        await gateway.request("PUT", "/slow")
        await gateway.request("PUT", "/slow/key", data=b"previous")
        await stall(gateway, "/slow/key")
        assert (await gateway.request("GET", "/slow/key"))[2] == b"previous"
        await assert_only_parts_of(cluster, "slow/key")
        await stall(gateway, "/slow/new")
        assert (await gateway.request("HEAD", "/slow/new"))[0] == 404
        await assert_only_parts_of(cluster, "slow/key")
        # the gateway still serves, and an upload that keeps sending is not cut
        data = payload(100_000)
        assert (await gateway.request("PUT", "/slow/new", data=chunks_of(data, 1000)))[0] == 200
        assert (await gateway.request("GET", "/slow/new"))[2] == data


async def test_a_stalled_upload_gets_a_clean_4xx(cluster: LocalCluster) -> None:
    async with serving(cluster, body_idle_timeout=0.5) as gateway:
        await gateway.request("PUT", "/slow")
        answer = parse_response(await stall(gateway, "/slow/key"))
    assert 400 <= answer.status < 500
    assert error_of(answer.body)["Code"] == "RequestTimeout"


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/photos/key"),
        ("PATCH", "/photos/key"),
        ("OPTIONS", "/photos/key"),
        ("PATCH", "/photos"),
        ("PUT", "/"),
        ("DELETE", "/"),
        ("POST", "/"),
    ],
)
async def test_unsupported_methods_get_405(
    gateway: Gateway, bucket: str, method: str, path: str
) -> None:
    status, _, body = await gateway.request(method, path, data=b"x")
    assert status == 405
    assert error_of(body)["Code"] == "MethodNotAllowed"
    assert await stored_parts(gateway.cluster) == set()


# -- an unreachable node -------------------------------------------------------------------


async def test_a_stopped_node_gets_503_naming_it_while_metadata_is_served(
    gateway: Gateway, bucket: str
) -> None:
    cluster = gateway.cluster
    data = payload(50_000)
    await gateway.request("PUT", f"/{bucket}/before", data=data)
    stopped = cluster.nodes["node-3"]
    cluster.transport.unregister(stopped.address)

    for method, body in [("PUT", payload(60_000, seed=1)), ("GET", None)]:
        path = f"/{bucket}/before" if method == "GET" else f"/{bucket}/during"
        status, _, answer = await gateway.request(method, path, data=body)
        assert status == 503, method
        error = error_of(answer)
        assert error["Code"] == "ServiceUnavailable"
        assert stopped.address in error["Message"]
    await gateway.idle()
    head = await raw_exchange(gateway, raw_head(f"/{bucket}/before"))
    assert (head.status, head.headers["etag"]) == (200, f'"{md5(data)}"')
    assert (await gateway.request("HEAD", f"/{bucket}/during"))[0] == 404
    page = await list_page(gateway, bucket)
    assert keys_of(page) == ["before"]
    assert (await gateway.request("GET", "/"))[0] == 200
    status_json = await gateway.status()
    unreachable = [n for n in status_json["nodes"] if n["bytes"] is None]
    assert [n["id"] for n in unreachable] == ["node-3"]

    cluster.transport.register(stopped)  # back again: reads work, nothing was lost
    await cluster.orchestrator.probe()  # as the gateway's probe loop would, within 2 s
    assert (await gateway.request("GET", f"/{bucket}/before"))[2] == data
    # the failed upload deleted its parts on the nodes that answered and left its
    # record for the janitor, which the cluster runs as soon as a node is back
    await gateway.idle()
    await cluster.janitor.retry_deletions()
    await assert_only_parts_of(cluster, f"{bucket}/before")


# -- admin ---------------------------------------------------------------------------------


async def test_admin_status_describes_the_ring(gateway: Gateway, bucket: str) -> None:
    await gateway.request("PUT", f"/{bucket}/k", data=payload(60_000))
    status = await gateway.status()
    assert status["migration"] is None
    assert status["policy"] == "fill"
    assert isinstance(status["generation"], int)
    nodes = status["nodes"]
    assert sorted(n["id"] for n in nodes) == [f"node-{i}" for i in range(1, 7)]
    assert {n["state"] for n in nodes} == {"ready"}
    assert sum(n["sectors"] for n in nodes) == 360
    assert all(n["arcs"] for n in nodes)
    usage = await gateway.cluster.usage()
    assert {n["id"]: n["bytes"] for n in nodes} == usage
    assert sum(usage.values()) >= 60_000
    # six nodes, target parity 2: new objects get none, and status says so
    parity = status["parity"]
    assert (parity["target"], parity["effective"]) == (2, 0)
    assert (parity["writable_nodes"], parity["nodes"]) == (6, 6)
    assert "until 8 nodes can" in parity["warning"]
    assert status["heal_queue"] == 0


async def test_admin_join_adds_a_node_and_refuses_a_duplicate(
    gateway: Gateway, bucket: str, tmp_path: Path
) -> None:
    data = payload(100_000)
    await gateway.request("PUT", f"/{bucket}/k", data=data)
    node = await StorageNode.open(tmp_path / "new-node", "node-new", fsync=False)
    try:
        gateway.cluster.transport.register(node)
        status, _, body = await gateway.request("POST", "/_admin/join", json={"node": node.address})
        assert (status, json.loads(body)) == (200, {"node_id": "node-new"})
        nodes = {n["id"]: n for n in (await gateway.status())["nodes"]}
        assert len(nodes) == 7
        assert nodes["node-new"]["state"] == "ready"
        assert nodes["node-new"]["sectors"] > 0
        assert sum(n["sectors"] for n in nodes.values()) == 360
        assert (await gateway.request("GET", f"/{bucket}/k"))[2] == data

        for payload_json in ({"node": node.address}, {"node": "memory://node-1"}):
            status, headers, body = await gateway.request("POST", "/_admin/join", json=payload_json)
            assert 400 <= status < 500
            assert headers["Content-Type"] == "application/json"
            assert json.loads(body)["error"] == "JoinRefused"
        assert len((await gateway.status())["nodes"]) == 7
    finally:
        node.close()


@pytest.mark.parametrize(
    ("method", "path", "body", "status"),
    [
        ("POST", "/_admin/join", b"{not json", 400),
        ("POST", "/_admin/join", b'{"node": 5}', 400),
        ("POST", "/_admin/join", b"[]", 400),
        ("POST", "/_admin/join", b'{"node": "memory://nobody"}', 400),
        ("GET", "/_admin/nothing", None, 404),
        ("DELETE", "/_admin/status", None, 404),
    ],
)
async def test_bad_admin_requests_get_a_json_4xx(
    gateway: Gateway, method: str, path: str, body: bytes | None, status: int
) -> None:
    got, headers, answer = await gateway.request(method, path, data=body)
    assert got == status
    assert headers["Content-Type"] == "application/json"
    assert json.loads(answer)["message"]
    assert len((await gateway.status())["nodes"]) == 6


async def test_a_damaged_part_never_reads_as_a_whole_response(cluster: LocalCluster) -> None:
    """Bit rot in one part of an object with no parity (six nodes): its node finds the
    damaged block before a byte of it leaves (and quarantines the file), so the
    library raises PartsUnavailable without handing out a wrong byte, and an HTTP
    client gets an error status, not a 200 of wrong bytes. (Reading around the damage
    from parity: tests/receiver/test_parity.py.)"""
    async with serving(cluster) as gateway:
        assert (await gateway.request("PUT", "/rot"))[0] == 200
        data = payload(100_000)
        assert (await gateway.request("PUT", "/rot/obj", data=data))[0] == 200
        manifest = await cluster.receiver.manifests.get("rot/obj")
        assert manifest is not None
        part = manifest.segments[0].parts[0]
        owner = cluster.nodes[cluster.orchestrator.ring.owner(part.sector)]
        path = owner.data_dir / "sectors" / f"{part.sector:03d}" / f"{manifest.upload_id}-0-0"
        raw = bytearray(path.read_bytes())
        raw[Header(part.length).payload_offset(10)] ^= 0xFF
        path.write_bytes(bytes(raw))
        got = bytearray()

        async def read_library() -> None:
            async for chunk in cluster.receiver.get_object("rot/obj"):
                got.extend(chunk)

        with pytest.raises(PartsUnavailable, match="damaged"):
            await read_library()
        assert got == data[: len(got)]
        assert len(got) < len(data)
        async with gateway.session.get(gateway.at("/rot/obj")) as response:
            assert response.status >= 500
            assert data[:1000] not in await response.read()


async def test_an_abandoned_download_stops_reading_the_nodes(
    cluster: LocalCluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A client that leaves after the first bytes of a 32 MiB object: the gateway
    stops pulling parts from the nodes instead of reading the object to its end."""
    size = 32 << 20
    pulled = 0
    real_read = download.PartReader.read

    async def counting_read(self: download.PartReader, length: int) -> AsyncIterator[bytes]:
        nonlocal pulled
        async for chunk in real_read(self, length):
            pulled += len(chunk)
            yield chunk

    async with serving(cluster) as gateway:
        assert (await gateway.request("PUT", "/big"))[0] == 200
        body = chunks_of(payload(size), 1 << 20)
        assert (await gateway.request("PUT", "/big/obj", data=body))[0] == 200
        monkeypatch.setattr(download.PartReader, "read", counting_read)
        port = int(gateway.url.rsplit(":", 1)[1])
        async with await anyio.connect_tcp("127.0.0.1", port) as stream:
            await stream.send(sign_raw(gateway.url, b"GET /big/obj HTTP/1.1\r\nHost: x\r\n\r\n"))
            assert await stream.receive(65536)
        with anyio.fail_after(20):
            await gateway.idle()
    assert pulled < size // 2


@pytest.mark.parametrize(
    ("method", "path", "headers", "status", "code"),
    [
        ("PUT", "/photos/k", {"x-streaming": "no decoded length"}, 400, "InvalidArgument"),
        ("PUT", "/photos/k", {"x-amz-decoded-content-length": "1e3"}, 400, "InvalidArgument"),
        ("GET", "/photos?max-keys=-1", {}, 400, "InvalidArgument"),
        ("GET", "/photos?max-keys=%C2%B2", {}, 400, "InvalidArgument"),
    ],
    ids=[
        "streaming-without-length",
        "superscript-length",
        "negative-max",
        "superscript-max",
    ],
)
async def test_unsupported_or_malformed_requests_are_refused_cleanly(
    gateway: Gateway,
    bucket: str,
    method: str,
    path: str,
    headers: dict[str, str],
    status: int,
    code: str,
) -> None:
    path = path.replace("/photos", f"/{bucket}")
    data = chunks_of(b"x", 1) if method == "PUT" else None  # chunked: no Content-Length
    streaming = headers.pop("x-streaming", None) is not None
    got, _, body = await gateway.request(
        method, path, data=data, headers=headers, payload=STREAMING if streaming else None
    )
    assert got == status
    assert error_of(body)["Code"] == code
    assert await stored_parts(gateway.cluster) == set()


async def test_a_continuation_token_this_server_did_not_make_is_refused(
    gateway: Gateway, bucket: str
) -> None:
    status, _, body = await gateway.request(
        "GET", f"/{bucket}?list-type=2&continuation-token=%25%25%25"
    )
    assert status == 400
    assert error_of(body)["Code"] == "InvalidArgument"
