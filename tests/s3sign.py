"""Signing test requests the way S3 clients do: with botocore's SigV4 signer (an
implementation independent of the gateway's checker), for aiohttp, raw sockets and
urllib alike. Every test module that talks to a gateway imports this one.

aws-chunked bodies are framed here too (:func:`aws_chunked`): botocore streams only
unsigned ones, so signed chunk chains are built from the seed signature botocore made,
with HMAC written out below (the chain is pinned to AWS's published example in
tests/gateway/test_chunked.py).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import hmac
import json as jsonlib
import urllib.parse
from collections.abc import Mapping
from typing import Any
from unittest import mock

import aiohttp
import attrs
import yarl
from botocore.auth import HmacV1QueryAuth, S3SigV4Auth, S3SigV4QueryAuth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

ROOT_ACCESS = "S3LITETESTROOT000001"
ROOT_SECRET = "test-root-secret/for+tests/only0000000001"
ROOT = Credentials(ROOT_ACCESS, ROOT_SECRET)
ROOT_ENV = {"S3LITE_ROOT_USER": ROOT_ACCESS, "S3LITE_ROOT_PASSWORD": ROOT_SECRET}
"""Environment that gives a gateway process (and the CLI) the test root key."""
REGION = "us-east-1"
UNSIGNED = "UNSIGNED-PAYLOAD"
STREAMING = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD"
STREAMING_TRAILER = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER"
UNSIGNED_TRAILER = "STREAMING-UNSIGNED-PAYLOAD-TRAILER"


class _FixedPayload(S3SigV4Auth):
    """botocore's S3 signer with the payload hash chosen by the test."""

    def __init__(self, credentials: Credentials, region: str, payload: str) -> None:
        super().__init__(credentials, "s3", region)
        self._payload = payload

    def payload(self, request: AWSRequest) -> str:
        return self._payload


def _at(when: dt.datetime | None) -> Any:
    """Sign as if the clock said ``when`` (None: now)."""
    if when is None:
        return contextlib.nullcontext()
    return mock.patch("botocore.auth.get_current_datetime", return_value=when)


def sign(
    method: str,
    url: str,
    headers: Mapping[str, str] | None = None,
    body: bytes | None = b"",
    *,
    payload: str | None = None,
    credentials: Credentials = ROOT,
    region: str = REGION,
    when: dt.datetime | None = None,
) -> dict[str, str]:
    """The headers of a header-signed request (``url`` as sent, percent-encoded).

    ``payload`` is what x-amz-content-sha256 says; None hashes ``body`` (what botocore
    does over plain HTTP). A streamed body (``body=None``) defaults to UNSIGNED-PAYLOAD.
    """
    if payload is None:
        payload = UNSIGNED if body is None else hashlib.sha256(body).hexdigest()
    request = AWSRequest(method=method, url=url, headers=dict(headers or {}), data=b"")
    with _at(when):
        _FixedPayload(credentials, region, payload).add_auth(request)
    signed = {name: str(value) for name, value in request.headers.items()}
    signed.setdefault("host", urllib.parse.urlsplit(url).netloc)
    return signed


def presign(
    method: str,
    url: str,
    *,
    expires: int = 3600,
    headers: Mapping[str, str] | None = None,
    credentials: Credentials = ROOT,
    region: str = REGION,
    when: dt.datetime | None = None,
) -> str:
    """A presigned URL for ``url`` (as boto3's generate_presigned_url makes them)."""
    request = AWSRequest(method=method, url=url, headers=dict(headers or {}))
    with _at(when):
        S3SigV4QueryAuth(credentials, "s3", region, expires=expires).add_auth(request)
    return str(request.url)


def presign_v2(
    method: str,
    url: str,
    *,
    expires: int = 3600,
    headers: Mapping[str, str] | None = None,
    credentials: Credentials = ROOT,
) -> str:
    """A SigV2 presigned URL for ``url`` (what boto3's generate_presigned_url and
    ``aws s3 presign`` make by default); ``headers`` are signed, and botocore copies
    them into the query too."""
    request = AWSRequest(method=method, url=url, headers=dict(headers or {}))
    HmacV1QueryAuth(credentials, expires=expires).add_auth(request)
    return str(request.url)


@attrs.frozen
class Seed:
    """What a chunk chain needs from its request's signature."""

    key: bytes
    timestamp: str
    scope: str
    signature: str

    @classmethod
    def of(cls, headers: Mapping[str, str], secret: str = ROOT_SECRET) -> Seed:
        authorization = headers["Authorization"]
        credential = authorization.split("Credential=")[1].split(",")[0]
        _, date, region, service, _ = credential.split("/")
        key = f"AWS4{secret}".encode()
        for part in (date, region, service, "aws4_request"):
            key = hmac.new(key, part.encode(), hashlib.sha256).digest()
        return cls(
            key,
            headers["X-Amz-Date"],
            f"{date}/{region}/{service}/aws4_request",
            authorization.rsplit("Signature=", 1)[1],
        )

    def sign(self, algorithm: str, previous: str, *hashes: str) -> str:
        text = "\n".join([algorithm, self.timestamp, self.scope, previous, *hashes])
        return hmac.new(self.key, text.encode(), hashlib.sha256).hexdigest()


def aws_chunked(
    data: bytes,
    chunk_size: int,
    *,
    seed: Seed | None = None,
    trailers: Mapping[str, str] | None = None,
) -> bytes:
    """``data`` framed as aws-chunked: signed when ``seed`` is given, with ``trailers``
    (signed too when ``seed`` is given) after the final chunk."""
    empty = hashlib.sha256(b"").hexdigest()
    pieces = [data[i : i + chunk_size] for i in range(0, len(data), chunk_size)] + [b""]
    previous = seed.signature if seed else ""
    out = bytearray()
    for piece in pieces:
        line = b"%x" % len(piece)
        if seed is not None:
            digest = hashlib.sha256(piece).hexdigest()
            previous = seed.sign("AWS4-HMAC-SHA256-PAYLOAD", previous, empty, digest)
            line += b";chunk-signature=" + previous.encode()
        out += line + b"\r\n" + piece + (b"\r\n" if piece else b"")
    if trailers is not None:
        text = "".join(f"{name}:{value}\n" for name, value in trailers.items())
        out += text.replace("\n", "\r\n").encode()
        if seed is not None:
            digest = hashlib.sha256(text.encode()).hexdigest()
            signature = seed.sign("AWS4-HMAC-SHA256-TRAILER", previous, digest)
            out += f"x-amz-trailer-signature:{signature}\r\n".encode()
    return bytes(out + b"\r\n")


def canonical_url(url: str) -> str:
    """``url`` with its query encoded the way AWS signs it (every byte but
    ``A-Za-z0-9-_.~`` as %XX), as botocore sends queries; the path is left as it is."""
    parts = urllib.parse.urlsplit(url)
    pairs = urllib.parse.parse_qsl(parts.query, keep_blank_values=True)
    query = "&".join(
        f"{urllib.parse.quote(name, safe='-_.~')}={urllib.parse.quote(value, safe='-_.~')}"
        for name, value in pairs
    )
    return urllib.parse.urlunsplit(parts._replace(query=query))


def sign_raw(
    base_url: str, request: bytes, *, payload: str = UNSIGNED, credentials: Credentials = ROOT
) -> bytes:
    """A raw HTTP/1.1 request (for tests that write to a socket) with SigV4 headers
    added; its ``Host`` header is replaced by the one signed for ``base_url``."""
    head, _, body = request.partition(b"\r\n\r\n")
    line, *lines = head.decode("latin-1").split("\r\n")
    method, path, _ = line.split(" ")
    headers = {}
    for text in lines:
        name, _, value = text.partition(":")
        if name.strip().lower() != "host":
            headers[name.strip()] = value.strip()
    signed = sign(method, base_url + path, headers, payload=payload, credentials=credentials)
    lines = [line, *(f"{name}: {value}" for name, value in signed.items())]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


class SignedSession:
    """An aiohttp session that signs every request with botocore: bytes bodies with
    their SHA-256, streamed ones with UNSIGNED-PAYLOAD (or ``payload=``, per request or
    for the whole session)."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        credentials: Credentials = ROOT,
        *,
        payload: str | None = None,
    ) -> None:
        self.session = session
        self.credentials = credentials
        self.payload = payload

    def request(
        self,
        method: str,
        url: str | yarl.URL,
        *,
        data: Any = None,
        json: Any = None,
        headers: Mapping[str, str] | None = None,
        payload: str | None = None,
        credentials: Credentials | None = None,
        **options: Any,
    ) -> Any:
        headers = dict(headers or {})
        if json is not None:
            data = jsonlib.dumps(json).encode()
            headers.setdefault("content-type", "application/json")
        text = str(url)
        params = options.pop("params", None)
        if params:
            text += ("&" if "?" in text else "?") + urllib.parse.urlencode(params)
        text = canonical_url(text)
        body = data if isinstance(data, bytes | bytearray) else (b"" if data is None else None)
        signed = sign(
            method,
            text,
            headers,
            None if body is None else bytes(body),
            payload=payload or self.payload,
            credentials=credentials or self.credentials,
        )
        target = yarl.URL(text, encoded=True)
        return self.session.request(method, target, data=data, headers=signed, **options)

    def get(self, url: str | yarl.URL, **options: Any) -> Any:
        return self.request("GET", url, **options)

    def put(self, url: str | yarl.URL, **options: Any) -> Any:
        return self.request("PUT", url, **options)

    def head(self, url: str | yarl.URL, **options: Any) -> Any:
        return self.request("HEAD", url, **options)

    def delete(self, url: str | yarl.URL, **options: Any) -> Any:
        return self.request("DELETE", url, **options)

    def post(self, url: str | yarl.URL, **options: Any) -> Any:
        return self.request("POST", url, **options)
