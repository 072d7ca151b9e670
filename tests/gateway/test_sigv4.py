"""SigV4 checking against AWS's published examples (S3 API reference, "Signature
Calculations for the Authorization Header" and "Query Parameters" pages: the
AKIAIOSFODNN7EXAMPLE requests of 2013-05-24) and against botocore's signer, an
independent implementation, over arbitrary keys, paths, queries and headers."""

from __future__ import annotations

import datetime as dt
import urllib.parse

import pytest
from botocore.auth import S3SigV4Auth, S3SigV4QueryAuth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from hypothesis import given, settings
from hypothesis import strategies as st

from s3lite.errors import (
    AccessDenied,
    AuthorizationHeaderMalformed,
    RequestTimeTooSkewed,
    SignatureDoesNotMatch,
)
from s3lite.gateway.auth import sigv4

ACCESS = "AKIAIOSFODNN7EXAMPLE"
SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
WHEN = dt.datetime(2013, 5, 24, tzinfo=dt.UTC).timestamp()
SCOPE = f"{ACCESS}/20130524/us-east-1/s3/aws4_request"
EMPTY = sigv4.EMPTY_SHA256


def header_auth(signed: str, signature: str) -> str:
    return f"AWS4-HMAC-SHA256 Credential={SCOPE},SignedHeaders={signed},Signature={signature}"


def check(
    method: str, path: str, query: str, headers: dict[str, str], *, now: float = WHEN
) -> sigv4.Verified:
    claim = sigv4.parse(method, path, query, headers, now=now)
    assert claim is not None
    return sigv4.verify(claim, SECRET)


GET_OBJECT = {
    "host": "examplebucket.s3.amazonaws.com",
    "range": "bytes=0-9",
    "x-amz-content-sha256": EMPTY,
    "x-amz-date": "20130524T000000Z",
    "authorization": header_auth(
        "host;range;x-amz-content-sha256;x-amz-date",
        "f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41",
    ),
}
"""AWS's GET Object example: the first 10 bytes of examplebucket/test.txt."""


def test_aws_example_get_object() -> None:
    headers = dict(GET_OBJECT)
    verified = check("GET", "/test.txt", "", headers)
    assert (verified.access_key, verified.payload) == (ACCESS, EMPTY)


def test_aws_example_put_object() -> None:
    payload = "44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072"
    headers = {
        "host": "examplebucket.s3.amazonaws.com",
        "date": "Fri, 24 May 2013 00:00:00 GMT",
        "x-amz-date": "20130524T000000Z",
        "x-amz-storage-class": "REDUCED_REDUNDANCY",
        "x-amz-content-sha256": payload,
        "authorization": header_auth(
            "date;host;x-amz-content-sha256;x-amz-date;x-amz-storage-class",
            "98ad721746da40c64f1a55b78f14c238d841ea1380cd77a1b5971af0ece108bd",
        ),
    }
    assert check("PUT", "/test%24file.text", "", headers).payload == payload
    # the decoded path is re-encoded the AWS way when the client sent '$' as it is
    assert check("PUT", "/test$file.text", "", headers).payload == payload


def test_aws_example_get_bucket_lifecycle_and_list() -> None:
    base = {
        "host": "examplebucket.s3.amazonaws.com",
        "x-amz-content-sha256": EMPTY,
        "x-amz-date": "20130524T000000Z",
    }
    signed = "host;x-amz-content-sha256;x-amz-date"
    lifecycle = header_auth(
        signed, "fea454ca298b7da1c68078a5d1bdbfbbe0d65c699e0f91ac7a200a0136783543"
    )
    check("GET", "/", "lifecycle", {**base, "authorization": lifecycle})
    listing = header_auth(
        signed, "34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7"
    )
    check("GET", "/", "max-keys=2&prefix=J", {**base, "authorization": listing})


PRESIGNED = (
    "X-Amz-Algorithm=AWS4-HMAC-SHA256"
    "&X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%2F20130524%2Fus-east-1%2Fs3%2Faws4_request"
    "&X-Amz-Date=20130524T000000Z&X-Amz-Expires=86400&X-Amz-SignedHeaders=host"
    "&X-Amz-Signature=aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404"
)


def test_aws_example_presigned_url_and_its_expiry() -> None:
    host = {"host": "examplebucket.s3.amazonaws.com"}
    assert check("GET", "/test.txt", PRESIGNED, host).payload == sigv4.UNSIGNED_PAYLOAD
    assert check("GET", "/test.txt", PRESIGNED, host, now=WHEN + 86400).access_key == ACCESS
    with pytest.raises(AccessDenied, match="expired"):
        check("GET", "/test.txt", PRESIGNED, host, now=WHEN + 86401)  # one second past
    with pytest.raises(AccessDenied, match="not valid yet"):
        check("GET", "/test.txt", PRESIGNED, host, now=WHEN - 3600)
    with pytest.raises(SignatureDoesNotMatch):
        check("GET", "/test.txt", PRESIGNED.replace("86400", "86401"), host)
    with pytest.raises(SignatureDoesNotMatch):
        check("GET", "/other.txt", PRESIGNED, host)


@pytest.mark.parametrize("expires", ["0", "604801", "-", "9" * 5000, "1e3", ""])
def test_bad_expiries_are_refused(expires: str) -> None:
    query = PRESIGNED.replace("X-Amz-Expires=86400", f"X-Amz-Expires={expires}")
    with pytest.raises(AuthorizationHeaderMalformed):
        sigv4.parse("GET", "/test.txt", query, {"host": "h"}, now=WHEN)


@pytest.mark.parametrize("expires", ["-1", "-1000"])
def test_a_negative_expiry_has_expired(expires: str) -> None:
    """botocore makes these for ExpiresIn < 0; S3 (and ceph's s3-tests) answer 403."""
    query = PRESIGNED.replace("X-Amz-Expires=86400", f"X-Amz-Expires={expires}")
    with pytest.raises(AccessDenied, match="expired"):
        sigv4.parse("GET", "/test.txt", query, {"host": "h"}, now=WHEN)


def test_tampering_and_skew() -> None:
    headers = dict(GET_OBJECT)
    for changed in ({"range": "bytes=0-10"}, {"host": "other"}):
        with pytest.raises(SignatureDoesNotMatch):
            check("GET", "/test.txt", "", {**headers, **changed})
    with pytest.raises(SignatureDoesNotMatch):
        check("GET", "/test.txt", "acl", headers)
    with pytest.raises(SignatureDoesNotMatch):
        sigv4.verify(sigv4.parse("GET", "/test.txt", "", headers, now=WHEN), SECRET + "x")  # type: ignore[arg-type]
    check("GET", "/test.txt", "", headers, now=WHEN + 900)
    with pytest.raises(RequestTimeTooSkewed):
        check("GET", "/test.txt", "", headers, now=WHEN + 901)
    with pytest.raises(RequestTimeTooSkewed):
        check("GET", "/test.txt", "", headers, now=WHEN - 901)
    with pytest.raises(AccessDenied, match="not signed"):
        check("GET", "/test.txt", "", {**headers, "x-amz-copy-source": "b/k"})


@pytest.mark.parametrize(
    "authorization",
    [
        "AWS AKIAIOSFODNN7EXAMPLE:frJIUN8DYpKDtOLCwo//yllqDzg=",
        f"AWS4-HMAC-SHA256 Credential={SCOPE},SignedHeaders=host",
        f"AWS4-HMAC-SHA256 Credential={ACCESS}/20130524/us-east-1/iam/aws4_request,"
        "SignedHeaders=host;x-amz-date,Signature=00",
        f"AWS4-HMAC-SHA256 Credential={ACCESS}/20130525/us-east-1/s3/aws4_request,"
        "SignedHeaders=host;x-amz-date,Signature=00",
        f"AWS4-HMAC-SHA256 Credential={SCOPE},SignedHeaders=x-amz-date,Signature=00",
        f"AWS4-HMAC-SHA256 Credential={SCOPE},SignedHeaders=x-amz-date;host,Signature=00",
        f"AWS4-HMAC-SHA256 Credential={SCOPE},SignedHeaders=host;range,Signature=00",
        "AWS4-HMAC-SHA256 garbage",
    ],
)
def test_malformed_credentials_are_refused(authorization: str) -> None:
    headers = {"host": "h", "x-amz-date": "20130524T000000Z", "authorization": authorization}
    with pytest.raises(AuthorizationHeaderMalformed):
        sigv4.parse("GET", "/b", "", headers, now=WHEN)


def test_no_credentials_is_none() -> None:
    assert sigv4.parse("GET", "/b/k", "acl", {"host": "h"}, now=WHEN) is None


def test_our_client_signer_passes_our_checker() -> None:
    url = "http://127.0.0.1:9000/_admin/keys/create?name=a%20b"
    headers = sigv4.sign_headers(
        "POST", url, {"content-type": "application/json"}, EMPTY, access_key=ACCESS,
        secret=SECRET, now=WHEN,
    )  # fmt: skip
    parts = urllib.parse.urlsplit(url)
    assert check("POST", parts.path, parts.query, headers).access_key == ACCESS


# -- against botocore ----------------------------------------------------------------------

_text = st.text(st.characters(codec="utf-8", exclude_categories=["Cs", "Cc"]), max_size=12)
_token = st.text("abcdefghijklmnopqrstuvwxyz0123456789-", min_size=1, max_size=10)


def _botocore_request(
    method: str, key: str, query: dict[str, str], headers: dict[str, str], body: bytes
) -> AWSRequest:
    path = "/bucket/" + urllib.parse.quote(key.encode(), safe="/~")
    url = "http://127.0.0.1:9000" + path
    if query:
        url += "?" + urllib.parse.urlencode(query, quote_via=urllib.parse.quote, safe="~")
    return AWSRequest(method=method, url=url, headers=headers, data=body)


def _split(request: AWSRequest) -> tuple[str, str, dict[str, str]]:
    parts = urllib.parse.urlsplit(request.url)
    headers = {name.lower(): str(value) for name, value in request.headers.items()}
    headers.setdefault("host", parts.netloc)
    return parts.path, parts.query, headers


@settings(max_examples=60, deadline=None)
@given(
    method=st.sampled_from(["GET", "PUT", "POST", "DELETE", "HEAD"]),
    key=_text.filter(bool),
    query=st.dictionaries(_token, _text, max_size=3),
    headers=st.dictionaries(_token.map(lambda name: "x-amz-meta-" + name), _token, max_size=3),
    body=st.binary(max_size=64),
    access=st.text("ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789", min_size=3, max_size=20),
    secret=st.text(
        st.characters(codec="ascii", min_codepoint=33, max_codepoint=126), min_size=1, max_size=40
    ),
    region=st.sampled_from(["us-east-1", "eu-west-3", "garage", "s3lite"]),
    presign=st.booleans(),
)
def test_botocore_signatures_verify_and_wrong_secrets_do_not(
    method: str,
    key: str,
    query: dict[str, str],
    headers: dict[str, str],
    body: bytes,
    access: str,
    secret: str,
    region: str,
    presign: bool,
) -> None:
    credentials = Credentials(access, secret)
    request = _botocore_request(method, key, query, headers, b"" if presign else body)
    if presign:
        S3SigV4QueryAuth(credentials, "s3", region, expires=60).add_auth(request)
    else:
        S3SigV4Auth(credentials, "s3", region).add_auth(request)
    path, raw_query, sent = _split(request)
    claim = sigv4.parse(method, path, raw_query, sent, now=dt.datetime.now(dt.UTC).timestamp())
    assert claim is not None
    verified = sigv4.verify(claim, secret)
    assert verified.access_key == access
    assert claim.presigned is presign
    with pytest.raises(SignatureDoesNotMatch):
        sigv4.verify(claim, secret + "!")


def test_a_request_without_a_payload_hash_header_is_checked_as_curl_signs_it() -> None:
    """curl before 8 signs host and x-amz-date over the empty payload hash and sends no
    x-amz-content-sha256: the signature is checked as made, the body taken as unsigned."""
    headers = {"host": "h:9000", "x-amz-date": "20130524T000000Z"}
    canonical = sigv4.canonical_request("PUT", "/b/k", "", headers, ["host", "x-amz-date"], EMPTY)
    key = sigv4.signing_key(SECRET, "20130524", "us-east-1")
    scope = "20130524/us-east-1/s3/aws4_request"
    value = sigv4.signature(key, sigv4.string_to_sign("20130524T000000Z", scope, canonical))
    headers["authorization"] = header_auth("host;x-amz-date", value)
    assert check("PUT", "/b/k", "", headers).payload == sigv4.UNSIGNED_PAYLOAD
