"""SigV2 presigned URLs (auth/sigv2.py) against AWS's published example (S3 developer
guide, "Query string request authentication": johnsmith's puppy.jpg) and against
botocore's HmacV1QueryAuth, the signer boto3 and the aws cli presign with by default,
over arbitrary keys, sub-resources and headers."""

from __future__ import annotations

import time
import urllib.parse

import pytest
from botocore.credentials import Credentials
from hypothesis import given
from hypothesis import strategies as st

from s3lite.errors import (
    AccessDenied,
    AuthorizationHeaderMalformed,
    InvalidArgument,
    SignatureDoesNotMatch,
)
from s3lite.gateway.auth import sigv2, sigv4
from tests.s3sign import presign_v2

ACCESS = "AKIAIOSFODNN7EXAMPLE"
SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
PUPPY = "AWSAccessKeyId=AKIAIOSFODNN7EXAMPLE&Signature=NpgCjnDzrM%2BWFzoENXmpNDUsSn8%3D"
PUPPY_EXPIRES = 1175139620
HOST = {"host": "127.0.0.1:9000"}


def check(url: str, headers: dict[str, str], *, now: float, method: str = "GET") -> sigv4.Verified:
    parts = urllib.parse.urlsplit(url)
    claim = sigv2.parse(method, parts.path, parts.query, headers, now=now)
    assert claim is not None
    return sigv2.verify(claim, SECRET)


def test_aws_example_virtual_hosted() -> None:
    query = f"{PUPPY}&Expires={PUPPY_EXPIRES}"
    headers = {"host": "johnsmith.s3.amazonaws.com"}
    claim = sigv2.parse(
        "GET", "/photos/puppy.jpg", query, headers, now=PUPPY_EXPIRES - 60, bucket="johnsmith"
    )
    assert claim is not None
    assert sigv2.verify(claim, SECRET).access_key == ACCESS
    assert sigv2.verify(claim, SECRET).payload == sigv4.UNSIGNED_PAYLOAD
    # One second past Expires, it is refused before any key is looked up.
    with pytest.raises(AccessDenied, match="expired"):
        sigv2.parse("GET", "/photos/puppy.jpg", query, headers, now=PUPPY_EXPIRES + 1)


def test_path_style_is_the_same_resource() -> None:
    query = f"{PUPPY}&Expires={PUPPY_EXPIRES}"
    claim = sigv2.parse("GET", "/johnsmith/photos/puppy.jpg", query, HOST, now=PUPPY_EXPIRES)
    assert claim is not None
    assert sigv2.verify(claim, SECRET).access_key == ACCESS
    for method, path in [
        ("GET", "/johnsmith/photos/kitten.jpg"),
        ("PUT", "/johnsmith/photos/puppy.jpg"),
    ]:
        other = sigv2.parse(method, path, query, HOST, now=PUPPY_EXPIRES)
        assert other is not None
        with pytest.raises(SignatureDoesNotMatch):
            sigv2.verify(other, SECRET)


SUB = st.sampled_from(
    ["", "acl", "uploads", "uploadId=abc%2Fdef", "partNumber=3&uploadId=u1", "versionId=null",
     "response-content-type=text%2Fplain%3B%20charset%3Dutf-8", "tagging",
     "response-content-disposition=attachment%3B%20filename%3D%22a%20b%22"]
)  # fmt: skip
KEYS = st.text(st.characters(codec="utf-8", exclude_characters="\x00"), min_size=1, max_size=40)


@given(
    method=st.sampled_from(["GET", "PUT", "HEAD", "DELETE", "POST"]),
    key=KEYS,
    sub=SUB,
    content_type=st.sampled_from([None, "text/plain", "application/octet-stream"]),
    meta=st.sampled_from([None, "x", " padded value "]),
    expires=st.integers(1, 7 * 24 * 3600),
)
def test_botocore_presigned_urls_verify(
    method: str, key: str, sub: str, content_type: str | None, meta: str | None, expires: int
) -> None:
    headers: dict[str, str] = {}
    if content_type is not None:
        headers["Content-Type"] = content_type
    if meta is not None:
        headers["x-amz-meta-note"] = meta
    url = "http://127.0.0.1:9000/bucket/" + urllib.parse.quote(key, safe="/~")
    url += f"?{sub}" if sub else ""
    signed = presign_v2(
        method, url, expires=expires, headers=headers, credentials=Credentials(ACCESS, SECRET)
    )
    sent = {**HOST, **{name.lower(): value for name, value in headers.items()}}
    assert check(signed, sent, now=time.time(), method=method).access_key == ACCESS
    # The signature covers the method, the key, the sub-resources and the headers.
    parts = urllib.parse.urlsplit(signed)
    tampered = [
        ("PATCH" if method != "PATCH" else "GET", parts.path, parts.query, sent),
        (method, parts.path + "x", parts.query, sent),
        (method, parts.path, parts.query + "&versionId=other", sent),
        (method, parts.path, parts.query, {**sent, "x-amz-meta-note": "changed"}),
        (method, parts.path, parts.query, {**sent, "content-type": "image/png"}),
    ]
    for m, path, query, hdrs in tampered:
        claim = sigv2.parse(m, path, query, hdrs, now=time.time())
        assert claim is not None
        with pytest.raises(SignatureDoesNotMatch):
            sigv2.verify(claim, SECRET)
    claim = sigv2.parse(method, parts.path, parts.query, sent, now=time.time())
    assert claim is not None
    with pytest.raises(SignatureDoesNotMatch):
        sigv2.verify(claim, SECRET[:-1] + "x")


def test_not_a_sigv2_url() -> None:
    assert sigv2.parse("GET", "/b/k", "", HOST, now=0) is None
    assert sigv2.parse("GET", "/b/k", "X-Amz-Signature=abc&acl", HOST, now=0) is None


@pytest.mark.parametrize(
    ("query", "headers", "message"),
    [
        ("AWSAccessKeyId=A&Signature=s", {}, "exactly one Expires"),
        ("AWSAccessKeyId=A&Expires=100", {}, "exactly one Signature"),
        ("AWSAccessKeyId=A&AWSAccessKeyId=B&Signature=s&Expires=100", {}, "one AWSAccessKeyId"),
        ("AWSAccessKeyId&Signature=s&Expires=100", {}, "exactly one AWSAccessKeyId"),
        ("AWSAccessKeyId=A&Signature=s&Expires=soon", {}, "digits"),
        ("AWSAccessKeyId=A&Signature=s&Expires=" + "9" * 5000, {}, "digits"),
        ("AWSAccessKeyId=A&Signature=s&Expires=" + str(100 + 8 * 24 * 3600), {}, "at most"),
        ("AWSAccessKeyId=A&Signature=s&Expires=100", {"authorization": "AWS A:s"}, "one of"),
        ("AWSAccessKeyId=A&Signature=s&Expires=100&X-Amz-Date=1", {}, "one of"),
        (
            "AWSAccessKeyId=A&Signature=s&Expires=100",
            {"x-amz-content-sha256": sigv4.STREAMING_PAYLOAD},
            "aws-chunked",
        ),
    ],
)  # fmt: skip
def test_malformed(query: str, headers: dict[str, str], message: str) -> None:
    with pytest.raises(AuthorizationHeaderMalformed, match=message):
        sigv2.parse("GET", "/b/k", query, {**HOST, **headers}, now=100)


def test_a_signed_payload_hash_is_kept() -> None:
    digest = "a" * 64
    claim = sigv2.parse(
        "PUT", "/b/k", f"{PUPPY}&Expires=200", {**HOST, "x-amz-content-sha256": digest}, now=100
    )
    assert claim is not None
    assert claim.payload == digest
    assert "x-amz-content-sha256:" + digest in claim.strings_to_sign[0]


def test_sigv2_authorization_header_is_refused_with_a_reason() -> None:
    headers = {**HOST, "authorization": "AWS AKIAIOSFODNN7EXAMPLE:c2lnbmF0dXJl", "date": "x"}
    with pytest.raises(AuthorizationHeaderMalformed, match="Signature Version 2 headers"):
        sigv4.parse("GET", "/b/k", "", headers, now=0)


NAMES = st.sampled_from(["x-amz-meta-note", "x-amz-acl", "x-amz-storage-class", "x-amz-meta-a"])
VALUES = st.text(st.characters(codec="latin-1", exclude_characters="\r\n"), max_size=20)


@given(
    lifted=st.dictionaries(NAMES, VALUES, max_size=3),
    other=st.dictionaries(st.sampled_from(["acl", "uploads", "content-type"]), VALUES, max_size=2),
)
def test_query_headers_move_only_x_amz_parameters_of_a_sigv2_url(
    lifted: dict[str, str], other: dict[str, str]
) -> None:
    auth = {"AWSAccessKeyId": ACCESS, "Signature": "s", "Expires": "100"}
    query = {**auth, **other, **lifted}
    moved = sigv2.query_headers(query, HOST)
    if not lifted:
        assert moved is None
        return
    assert moved == ({**auth, **other}, {**HOST, **lifted})
    # the same header sent as well: fine when equal, refused when not
    assert sigv2.query_headers(query, {**HOST, **lifted}) == moved
    name = sorted(lifted)[0]
    with pytest.raises(InvalidArgument, match=name):
        sigv2.query_headers(query, {**HOST, name: lifted[name] + "!"})
    # not a SigV2 URL (a SigV4 one, or none): nothing moves
    assert sigv2.query_headers({**other, **lifted}, HOST) is None
    assert sigv2.query_headers({"X-Amz-Signature": "s", **lifted}, HOST) is None
