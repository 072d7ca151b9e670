"""The front door over HTTP: authentication (header, presigned, aws-chunked), issue 6's
destructive probes and unknown sub-resources changing nothing, numbers too long for
int(), and the request log. Requests are signed by botocore (tests/s3sign.py)."""

from __future__ import annotations

import datetime as dt
import io
import logging
import urllib.parse
import xml.etree.ElementTree as ET

import pytest
from botocore.credentials import Credentials

from s3lite import LocalCluster
from s3lite.logs import JsonFormatter, TextFormatter, fields_of
from s3lite.receiver.checksums import checksum_of
from tests.gateway.harness import (
    NS,
    Gateway,
    error_of,
    md5,
    payload,
    put_chunked,
    raw_exchange,
    serving,
    snapshot,
)
from tests.s3sign import (
    ROOT,
    ROOT_SECRET,
    STREAMING,
    STREAMING_TRAILER,
    UNSIGNED_TRAILER,
    Seed,
    aws_chunked,
    presign,
    presign_v2,
    sign,
)

pytestmark = pytest.mark.anyio

DATA = payload(50_000)


@pytest.fixture
async def stored(gateway: Gateway, bucket: str) -> str:
    """An object ``/photos/k`` holding DATA; returns its path."""
    status, _, _ = await gateway.request("PUT", f"/{bucket}/k", data=DATA)
    assert status == 200
    return f"/{bucket}/k"


# -- authentication ------------------------------------------------------------------------


async def test_no_credentials_unknown_key_and_wrong_secret(gateway: Gateway, stored: str) -> None:
    async with gateway.session.session.get(gateway.at(stored)) as response:
        assert response.status == 403
        error = error_of(await response.read())
        assert error["Code"] == "AccessDenied"
        assert error["RequestId"] == response.headers["x-amz-request-id"]
        assert len(error["RequestId"]) == 16
    stranger = Credentials("NOSUCHKEY00000000000", ROOT_SECRET)
    status, _, body = await gateway.request("GET", stored, credentials=stranger)
    assert (status, error_of(body)["Code"]) == (403, "InvalidAccessKeyId")
    wrong = Credentials(ROOT.access_key, ROOT_SECRET + "x")
    status, _, body = await gateway.request("GET", stored, credentials=wrong)
    assert (status, error_of(body)["Code"]) == (403, "SignatureDoesNotMatch")
    assert ROOT_SECRET not in body.decode()


async def test_a_tampered_request_is_refused(gateway: Gateway, stored: str) -> None:
    headers = sign("GET", gateway.url + stored, {"range": "bytes=0-9"})
    headers["range"] = "bytes=0-99"
    async with gateway.session.session.get(gateway.at(stored), headers=headers) as response:
        assert response.status == 403
        assert error_of(await response.read())["Code"] == "SignatureDoesNotMatch"
    other = sign("GET", gateway.url + stored)
    async with gateway.session.session.get(gateway.at(stored + "x"), headers=other) as response:
        assert response.status == 403


async def test_a_request_signed_16_minutes_ago_is_too_skewed(gateway: Gateway, stored: str) -> None:
    then = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=16)
    headers = sign("GET", gateway.url + stored, when=then)
    async with gateway.session.session.get(gateway.at(stored), headers=headers) as response:
        assert response.status == 403
        assert error_of(await response.read())["Code"] == "RequestTimeTooSkewed"


async def test_presigned_get_and_put_and_expiry(gateway: Gateway, stored: str) -> None:
    raw = gateway.session.session
    async with raw.get(presign("GET", gateway.url + stored, expires=60)) as response:
        assert (response.status, await response.read()) == (200, DATA)
    url = presign("PUT", gateway.url + stored + "2", expires=60)
    async with raw.put(url, data=b"presigned") as response:
        assert response.status == 200
    assert (await gateway.request("GET", stored + "2"))[2] == b"presigned"
    # signed 61 s ago for 60 s: one second past its expiry
    then = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=61)
    async with raw.get(presign("GET", gateway.url + stored, expires=60, when=then)) as response:
        assert response.status == 403
        assert error_of(await response.read())["Code"] == "AccessDenied"
    tampered = presign("GET", gateway.url + stored, expires=60).replace(
        "X-Amz-Expires=60", "X-Amz-Expires=61"
    )
    async with raw.get(tampered) as response:
        assert response.status == 403
    for expires in ("0", "604801", "9" * 5000):
        bad = presign("GET", gateway.url + stored, expires=60).replace(
            "X-Amz-Expires=60", f"X-Amz-Expires={expires}"
        )
        async with raw.get(bad) as response:
            assert response.status == 400
            assert error_of(await response.read())["Code"] == "AuthorizationHeaderMalformed"


async def test_sigv2_presigned_urls(gateway: Gateway, stored: str, bucket: str) -> None:
    """What boto3 and `aws s3 presign` make by default: they work as SigV4's do."""
    raw = gateway.session.session
    async with raw.get(presign_v2("GET", gateway.url + stored, expires=60)) as response:
        assert (response.status, await response.read()) == (200, DATA)
    typed = {"Content-Type": "text/x-v2"}
    url = presign_v2("PUT", gateway.url + stored + "2", expires=60, headers=typed)
    assert "content-type=text%2Fx-v2" in url  # botocore's copy of the signed header
    async with raw.put(url, data=b"presigned v2", headers=typed) as response:
        assert response.status == 200
    status, headers, body = await gateway.request("GET", stored + "2")
    assert (status, headers["Content-Type"], body) == (200, "text/x-v2", b"presigned v2")
    # Signed x-amz-* headers travel in the URL (botocore copies them there): the URL
    # alone is enough, and what the presigner signed is stored.
    meta = {"x-amz-meta-note": "from the url", "x-amz-storage-class": "REDUCED_REDUNDANCY"}
    url_only = presign_v2("PUT", gateway.url + stored + "3", expires=60, headers=meta)
    assert "x-amz-meta-note=from%20the%20url" in url_only
    bare = {"skip_auto_headers": ["Content-Type"]}  # as curl -T sends it
    async with raw.put(url_only, data=b"url only", **bare) as response:
        assert response.status == 200, await response.read()
    status, headers, body = await gateway.request("GET", stored + "3")
    assert (status, body) == (200, b"url only")
    assert (headers["x-amz-meta-note"], headers["x-amz-storage-class"]) == (
        "from the url", "REDUCED_REDUNDANCY"
    )  # fmt: skip
    before = await snapshot(gateway, bucket)
    conflicting = {"x-amz-meta-note": "another"}
    async with raw.put(url_only, data=b"refused", headers=conflicting) as response:
        assert response.status == 400
        assert error_of(await response.read())["Code"] == "InvalidArgument"
    forged = url_only.replace("from%20the%20url", "forged")
    async with raw.put(forged, data=b"refused", **bare) as response:
        assert response.status == 403
        assert error_of(await response.read())["Code"] == "SignatureDoesNotMatch"
    refusals = [
        (presign_v2("PUT", gateway.url + stored, expires=-1), typed, "AccessDenied"),
        (url, {"Content-Type": "text/other"}, "SignatureDoesNotMatch"),
        (url.replace("/k2?", "/k3?"), typed, "SignatureDoesNotMatch"),
        (
            presign_v2(
                "PUT", gateway.url + stored, credentials=Credentials(ROOT.access_key, "wrong")
            ),
            {},
            "SignatureDoesNotMatch",
        ),
        (
            presign_v2("PUT", gateway.url + stored, credentials=Credentials("NOSUCHKEY", "x")),
            {},
            "InvalidAccessKeyId",
        ),
    ]
    for target, sent, code in refusals:
        async with raw.put(target, data=b"refused", headers=sent) as response:
            assert response.status == 403, target
            assert error_of(await response.read())["Code"] == code
    assert await snapshot(gateway, bucket) == before


async def test_a_body_that_does_not_match_its_signed_hash_stores_nothing(
    gateway: Gateway, stored: str, bucket: str
) -> None:
    before = await snapshot(gateway, bucket)
    headers = sign("PUT", gateway.url + stored, body=b"what was signed")
    async with gateway.session.session.put(
        gateway.at(stored), data=b"what was sent!!", headers=headers
    ) as response:
        assert response.status == 400
        assert error_of(await response.read())["Code"] == "XAmzContentSHA256Mismatch"
    assert await snapshot(gateway, bucket) == before


@pytest.mark.parametrize("size", [0, 3 * (1 << 20) + 17])
async def test_a_long_body_that_does_not_match_its_signed_hash_stores_nothing(
    gateway: Gateway, stored: str, bucket: str, size: int
) -> None:
    """The receiver hashes the signed SHA-256 with the ETag's MD5, batch by batch in a
    worker thread: a body of several batches (or none) that differs is refused before
    the commit, and the same body signed right is stored; with x-amz-checksum-sha256
    too (one hasher for both) the stored checksum is the body's."""
    data = payload(size)
    status, _, answer = await gateway.request("POST", f"{stored}?uploads")
    assert status == 200
    upload_id = ET.fromstring(answer).findtext(f"{NS}UploadId")
    before = await snapshot(gateway, bucket)
    for target in (stored, f"{stored}?partNumber=1&uploadId={upload_id}"):
        headers = sign("PUT", gateway.url + target, body=data + b"!")
        async with gateway.session.session.put(
            gateway.at(target), data=io.BytesIO(data), headers=headers
        ) as response:
            assert response.status == 400
            assert error_of(await response.read())["Code"] == "XAmzContentSHA256Mismatch"
    _, _, listed = await gateway.request("GET", f"{stored}?uploadId={upload_id}")
    assert b"<Part>" not in listed
    assert await snapshot(gateway, bucket) == before
    checksum = checksum_of("SHA256", data)
    headers = sign("PUT", gateway.url + stored, {"x-amz-checksum-sha256": checksum}, body=data)
    async with gateway.session.session.put(
        gateway.at(stored), data=io.BytesIO(data), headers=headers
    ) as response:
        assert response.status == 200
        assert response.headers["x-amz-checksum-sha256"] == checksum
    status, _, body = await gateway.request("GET", stored)
    assert (status, body) == (200, data)


# -- aws-chunked ---------------------------------------------------------------------------


@pytest.mark.parametrize("mode", [STREAMING, STREAMING_TRAILER, UNSIGNED_TRAILER])
async def test_aws_chunked_uploads(gateway: Gateway, bucket: str, mode: str) -> None:
    data = payload(70_000)
    trailers = None if mode == STREAMING else {"x-amz-checksum-crc32": checksum_of("CRC32", data)}
    signed = mode != UNSIGNED_TRAILER

    def body(seed: Seed) -> bytes:
        return aws_chunked(data, 8192, seed=seed if signed else None, trailers=trailers)

    status, answer = await put_chunked(gateway, f"/{bucket}/chunked", body, len(data), mode)  # type: ignore[arg-type]
    assert status == 200, answer
    _, headers, got = await gateway.request("GET", f"/{bucket}/chunked")
    assert (got, headers["ETag"]) == (data, f'"{md5(data)}"')


@pytest.mark.parametrize(
    ("case", "code"),
    [
        ("bad-signature", "SignatureDoesNotMatch"),
        ("truncated", "IncompleteBody"),
        ("oversized", "IncompleteBody"),
        ("undersized", "IncompleteBody"),
    ],
)
async def test_bad_aws_chunked_bodies_store_nothing(
    gateway: Gateway, stored: str, bucket: str, case: str, code: str
) -> None:
    before = await snapshot(gateway, bucket)
    data = payload(20_000, seed=3)
    declared = {"oversized": len(data) - 1, "undersized": len(data) + 1}.get(case, len(data))

    def body(seed: Seed) -> bytes:
        framed = aws_chunked(data, 4096, seed=seed)
        if case == "bad-signature":  # one flipped bit in the first chunk's data
            framed = framed[:200] + bytes([framed[200] ^ 1]) + framed[201:]
        if case == "truncated":
            framed = framed[: len(framed) // 2]
        return framed

    status, answer = await put_chunked(gateway, stored, body, declared, STREAMING)  # type: ignore[arg-type]
    assert status in (400, 403), answer
    assert error_of(answer)["Code"] == code
    assert await snapshot(gateway, bucket) == before


# -- nothing unknown falls through ---------------------------------------------------------

PROBES = [
    # (method, query, body, headers, what is answered now): each changes nothing
    ("DELETE", "?uploadId=bogus", b"", {}, (404, "NoSuchUpload")),
    ("PUT", "?tagging", b"<Tagging><TagSet/></Tagging>", {}, (501, "NotImplemented")),
    ("PUT", "?acl", b"", {"x-amz-acl": "public-read"}, (501, "NotImplemented")),
    ("PUT", "?partNumber=1&uploadId=x", b"part bytes", {}, (404, "NoSuchUpload")),
    ("GET", "?acl", b"", {}, (200, "AccessControlPolicy")),
    ("PUT", "?acl", b"<AccessControlPolicy/>", {}, (501, "NotImplemented")),
    ("PUT", "", b"", {"x-amz-copy-source": "/photos/k"}, (400, "InvalidRequest")),
    ("GET", "?uploadId=x", b"", {}, (404, "NoSuchUpload")),
    ("PUT", "?partNumber=0&uploadId=x", b"part bytes", {}, (400, "InvalidArgument")),
    ("PUT", "?partNumber=10001&uploadId=x", b"part bytes", {}, (400, "InvalidArgument")),
    ("PUT", f"?partNumber={'9' * 5000}&uploadId=x", b"part", {}, (400, "InvalidArgument")),
    ("POST", "?uploadId=x", b"<CompleteMultipartUpload", {}, (400, "MalformedXML")),
]


@pytest.mark.parametrize(("method", "query", "body", "headers", "answer"), PROBES)
async def test_issue_6_probes_change_nothing(
    gateway: Gateway,
    stored: str,
    bucket: str,
    method: str,
    query: str,
    body: bytes,
    headers: dict[str, str],
    answer: tuple[int, str],
) -> None:
    before = await snapshot(gateway, bucket)
    status, _, sent = await gateway.request(method, stored + query, data=body, headers=headers)
    what = ET.fromstring(sent).tag.removeprefix(NS) if status == 200 else error_of(sent)["Code"]
    assert (status, what) == answer, sent
    assert await snapshot(gateway, bucket) == before


def acl_body(owner: str, *grantees: str) -> bytes:
    """An AccessControlPolicy (as s3cmd sends one) granting FULL_CONTROL to each of
    ``grantees``: a canonical user id, or a group URI."""
    grants = "".join(
        "<Grant><Grantee xmlns:xsi='http://www.w3.org/2001/XMLSchema-instance' "
        + (
            f"xsi:type='Group'><URI>{g}</URI>"
            if "://" in g
            else f"xsi:type='CanonicalUser'><ID>{g}</ID>"
        )
        + "</Grantee><Permission>FULL_CONTROL</Permission></Grant>"
        for g in grantees
    )
    return (
        "<AccessControlPolicy xmlns='http://s3.amazonaws.com/doc/2006-03-01/'>"
        f"<Owner><ID>{owner}</ID></Owner><AccessControlList>{grants}</AccessControlList>"
        "</AccessControlPolicy>"
    ).encode()


async def test_an_acl_body_saying_private_is_accepted(
    gateway: Gateway, stored: str, bucket: str
) -> None:
    """What s3cmd puts back after a copy: the ACL GetObjectAcl gave. Only that."""
    owner = ROOT.access_key
    before = await snapshot(gateway, bucket)
    for target in (stored, f"/{bucket}"):
        status, _, acl = await gateway.request("GET", target + "?acl")
        assert status == 200
        assert (await gateway.request("PUT", target + "?acl", data=acl))[0] == 200
        assert (await gateway.request("PUT", target + "?acl", data=acl_body(owner, owner)))[
            0
        ] == 200
    everyone = "http://acs.amazonaws.com/groups/global/AllUsers"
    for body, answer in [
        (acl_body(owner, owner, everyone), (501, "NotImplemented")),
        (acl_body(owner, "SOMEONEELSE"), (501, "NotImplemented")),
        (acl_body("SOMEONEELSE", owner), (501, "NotImplemented")),
        (acl_body(owner), (501, "NotImplemented")),
        (b"<Tagging/>", (400, "MalformedXML")),
        (b"<AccessControlPolicy", (400, "MalformedXML")),
    ]:
        status, _, sent = await gateway.request("PUT", stored + "?acl", data=body)
        assert (status, error_of(sent)["Code"]) == answer
    assert await snapshot(gateway, bucket) == before


async def test_bucket_probes_change_nothing(gateway: Gateway, stored: str, bucket: str) -> None:
    before = await snapshot(gateway, bucket)
    for method, query in [
        ("DELETE", "?policy"),
        ("DELETE", "?cors"),
        ("PUT", "?versioning"),
        ("POST", ""),
    ]:
        status, _, answer = await gateway.request(method, f"/{bucket}{query}", data=b"<x/>")
        assert (status, error_of(answer)["Code"]) == (501, "NotImplemented"), (method, query)
    assert await snapshot(gateway, bucket) == before


@pytest.mark.parametrize("query", ["?foo", "?acl&tagging", "?torrentz=1", "?partNumber=1"])
@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE", "HEAD"])
async def test_unknown_sub_resources_are_refused_and_change_nothing(
    gateway: Gateway, stored: str, bucket: str, method: str, query: str
) -> None:
    before = await snapshot(gateway, bucket)
    if query == "?partNumber=1" and method in ("GET", "HEAD"):
        query = "?partNumber=1&foo"
    status, _, _ = await gateway.request(method, stored + query, data=b"overwritten?")
    assert 400 <= status < 500 or status == 501
    assert await snapshot(gateway, bucket) == before


async def test_iam_list_roles_gets_a_fast_4xx(gateway: Gateway) -> None:
    status, _, _ = await gateway.request("POST", "/", data=b"Action=ListRoles&Version=2010-05-08")
    assert 400 <= status < 500


# -- numbers too long for int() ------------------------------------------------------------

NINES = "9" * 5000


async def test_numbers_too_long_for_int(gateway: Gateway, stored: str, bucket: str) -> None:
    status, _, body = await gateway.request("GET", stored, headers={"Range": f"bytes={NINES}-"})
    assert (status, error_of(body)["Code"]) == (416, "InvalidRange")
    status, _, body = await gateway.request("GET", stored, headers={"Range": f"bytes=0-{NINES}"})
    assert (status, body) == (206, DATA)
    for query in (
        f"?list-type=2&max-keys={NINES}",
        f"?max-keys={NINES}",
        f"?versions&max-keys={NINES}",
    ):
        status, _, body = await gateway.request("GET", f"/{bucket}{query}")
        assert status == 200, query
        assert ET.fromstring(body).findtext(f"{NS}MaxKeys") == "1000"
    status, _, body = await gateway.request("GET", f"/?max-buckets={NINES}")
    assert status == 200
    before = await snapshot(gateway, bucket)
    status, _, body = await gateway.request(
        "PUT",
        stored,
        data=b"x",
        headers={"x-amz-decoded-content-length": NINES},
        payload="UNSIGNED-PAYLOAD",
    )
    assert 400 <= status < 500
    request = f"PUT {stored} HTTP/1.1\r\nHost: x\r\nContent-Length: {NINES}\r\n\r\nabc".encode()
    response = await raw_exchange(gateway, request)
    assert 400 <= response.status < 500
    assert await snapshot(gateway, bucket) == before


# -- listings and batch delete -------------------------------------------------------------


async def test_list_v1_pages_with_marker_and_versions_say_null(
    gateway: Gateway, bucket: str
) -> None:
    keys = [f"k{index:02d}" for index in range(7)]
    for key in keys:
        assert (await gateway.request("PUT", f"/{bucket}/{key}", data=key.encode()))[0] == 200
    seen: list[str] = []
    marker = ""
    for _ in range(10):
        _, _, body = await gateway.request("GET", f"/{bucket}?max-keys=3&marker={marker}")
        page = ET.fromstring(body)
        seen += [c.findtext(f"{NS}Key") or "" for c in page.iter(f"{NS}Contents")]
        if page.findtext(f"{NS}IsTruncated") == "false":
            assert page.find(f"{NS}NextMarker") is None
            break
        marker = page.findtext(f"{NS}NextMarker") or ""
    assert seen == keys
    _status, _, body = await gateway.request("GET", f"/{bucket}?versions&max-keys=128")
    versions = ET.fromstring(body).findall(f"{NS}Version")
    assert [v.findtext(f"{NS}Key") for v in versions] == keys
    assert {(v.findtext(f"{NS}VersionId"), v.findtext(f"{NS}IsLatest")) for v in versions} == {
        ("null", "true")
    }


async def test_delete_objects(gateway: Gateway, bucket: str) -> None:
    for key in ("a", "b"):
        await gateway.request("PUT", f"/{bucket}/{key}", data=b"x")
    objects = "".join(f"<Object><Key>{k}</Key></Object>" for k in ("a", "b", "never-was"))
    objects += f"<Object><Key>{'k' * 1025}</Key></Object>"
    objects += "<Object><Key>b</Key><VersionId>v7</VersionId></Object>"
    body = f"<Delete>{objects}</Delete>".encode()
    status, _, answer = await gateway.request(
        "POST",
        f"/{bucket}?delete",
        data=body,
        headers={"x-amz-bypass-governance-retention": "true"},
    )
    assert status == 200, answer
    root = ET.fromstring(answer)
    assert [d.findtext(f"{NS}Key") for d in root.findall(f"{NS}Deleted")] == ["a", "b", "never-was"]
    assert [e.findtext(f"{NS}Code") for e in root.findall(f"{NS}Error")] == [
        "InvalidArgument",
        "InvalidArgument",
    ]
    assert (await gateway.request("HEAD", f"/{bucket}/a"))[0] == 404
    quiet = b"<Delete><Quiet>true</Quiet><Object><Key>c</Key></Object></Delete>"
    status, _, answer = await gateway.request("POST", f"/{bucket}?delete", data=quiet)
    assert ET.fromstring(answer).findall(f"{NS}Deleted") == []
    too_many = "".join(f"<Object><Key>k{i}</Key></Object>" for i in range(1001))
    for bad in (
        f"<Delete>{too_many}</Delete>",
        "<Delete>",
        "<!DOCTYPE x [<!ENTITY a 'b'>]><Delete/>",
    ):
        status, _, answer = await gateway.request("POST", f"/{bucket}?delete", data=bad.encode())
        assert (status, error_of(answer)["Code"]) == (400, "MalformedXML")


async def test_the_gateways_region_is_every_buckets_location(cluster: LocalCluster) -> None:
    async with serving(cluster, region="eu-test-1") as gateway:
        assert (await gateway.request("PUT", "/placed"))[0] == 200
        status, _, body = await gateway.request("GET", "/placed?location")
        assert (status, ET.fromstring(body).text) == (200, "eu-test-1")
        status, headers, _ = await gateway.request("HEAD", "/placed")
        assert (status, headers["x-amz-bucket-region"]) == (200, "eu-test-1")


async def test_buckets_location_versioning_and_pages(gateway: Gateway) -> None:
    for name in ("b-one", "b-two", "b-three"):
        assert (
            await gateway.request(
                "PUT",
                f"/{name}",
                data=b"<CreateBucketConfiguration><LocationConstraint>eu-west-9</LocationConstraint></CreateBucketConfiguration>",
            )
        )[0] == 200
    status, _, body = await gateway.request("GET", "/b-one?location")
    location = ET.fromstring(body)
    assert (status, location.tag, location.text) == (200, f"{NS}LocationConstraint", None)
    status, _, body = await gateway.request("GET", "/b-one?versioning")
    assert ET.fromstring(body).findtext(f"{NS}Status") is None
    names: list[str] = []
    token = None
    for _ in range(5):
        query = "?max-buckets=2" + (
            f"&continuation-token={urllib.parse.quote(token)}" if token else ""
        )
        page = ET.fromstring((await gateway.request("GET", "/" + query))[2])
        names += [b.findtext(f"{NS}Name") or "" for b in page.iter(f"{NS}Bucket")]
        token = page.findtext(f"{NS}ContinuationToken")
        if not token:
            break
    assert names == ["b-one", "b-three", "b-two"]


async def test_virtual_hosted_style_with_a_domain(cluster: LocalCluster) -> None:
    async with serving(cluster, domain="s3.test") as gateway:
        assert (await gateway.request("PUT", "/vhost"))[0] == 200
        port = gateway.url.rsplit(":", 1)[1]
        host = f"vhost.s3.test:{port}"
        headers = sign("PUT", f"http://{host}/a/b.txt", {"host": host}, body=b"hosted")
        async with gateway.session.session.put(
            gateway.at("/a/b.txt"), data=b"hosted", headers=headers
        ) as response:
            assert response.status == 200, await response.read()
        assert (await gateway.request("GET", "/vhost/a/b.txt"))[2] == b"hosted"


# -- the request log -----------------------------------------------------------------------


async def test_one_log_line_per_request_without_secrets(
    gateway: Gateway, stored: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="s3lite.gateway.app")
    url = presign("GET", gateway.url + stored, expires=60)
    async with gateway.session.session.get(url) as response:
        assert (response.status, await response.read()) == (200, DATA)
        request_id = response.headers["x-amz-request-id"]
    await gateway.idle()  # the line is written once the response is out
    records = [r for r in caplog.records if fields_of(r).get("request_id") == request_id]
    assert len(records) == 1
    fields = dict(fields_of(records[0]))
    assert records[0].getMessage() == f"GET {stored} 200"
    assert fields.pop("duration_ms") >= 0
    assert fields == {
        "request_id": request_id,
        "access_key": ROOT.access_key,
        "operation": "GetObject",
        "method": "GET",
        "path": stored,
        "status": 200,
        "bytes_in": 0,
        "bytes_out": len(DATA),
        "outcome": "complete",
    }
    signature = urllib.parse.parse_qs(urllib.parse.urlsplit(url).query)["X-Amz-Signature"][0]
    for formatter in (TextFormatter(), JsonFormatter()):
        text = "\n".join(formatter.format(record) for record in caplog.records)
        assert request_id in text
        assert signature not in text
        assert ROOT_SECRET not in text
