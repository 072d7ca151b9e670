"""S3's object headers, both ways: what a request's headers say about the object it
writes or reads (stored headers, metadata, storage class, conditions, digests), and
the headers a response carries about an object.

Header values arrive as bytes, which the ASGI server reads as ISO-8859-1. A stored
value (``x-amz-meta-*``, Cache-Control...) is kept as the text those bytes mean:
UTF-8 when they are valid UTF-8 (botocore sends ``é`` so), else ISO-8859-1. On the
way out a value ISO-8859-1 can carry is sent in it (so boto3, whose http.client reads
headers as ISO-8859-1, gets ``é`` back, as ceph's s3-tests expect); any other
non-ASCII value is sent RFC 2047-encoded (``=?UTF-8?B?...?=``), as S3 does.

Pure: no I/O. Errors are S3liteErrors (InvalidDigest, InvalidArgument).
"""

from __future__ import annotations

import base64
import binascii
import email.utils
from collections.abc import AsyncIterator, Mapping

from ..buffers import Buffer
from ..errors import BadDigest, EntityTooLarge, InvalidArgument, InvalidDigest
from ..receiver import ExpectedDigests, ObjectHeaders, ObjectInfo, ReadConditions, WriteCondition
from ..receiver.checksums import ALGORITHMS, check_algorithm, decode
from .auth.payload import CHECKSUM_PREFIX, Trailers
from .auth.sigv4 import header_text

META_PREFIX = "x-amz-meta-"
STORED_HEADERS = {
    "cache-control": "cache_control",
    "content-disposition": "content_disposition",
    "content-language": "content_language",
    "expires": "expires",
}
"""Standard headers kept with an object (Content-Encoding comes from the payload,
without ``aws-chunked``), by ObjectHeaders field."""

MAX_SINGLE_UPLOAD = 5 * 1024**3
"""S3's largest PutObject or UploadPart body: 5 GiB (EntityTooLarge beyond)."""


def metadata(headers: Mapping[str, str]) -> dict[str, str]:
    """The ``x-amz-meta-*`` headers, by name without the prefix."""
    return {
        name[len(META_PREFIX) :]: header_text(value)
        for name, value in headers.items()
        if name.startswith(META_PREFIX)
    }


def object_headers(headers: Mapping[str, str], content_encoding: str | None) -> ObjectHeaders:
    """The standard headers a write stores; ``content_encoding`` as the payload
    decoded it (``aws-chunked`` removed)."""
    fields = {
        field: header_text(headers[name])
        for name, field in STORED_HEADERS.items()
        if name in headers
    }
    return ObjectHeaders(content_encoding=content_encoding or None, **fields)


def storage_class(headers: Mapping[str, str]) -> str | None:
    return headers.get("x-amz-storage-class")


def read_conditions(headers: Mapping[str, str], prefix: str = "") -> ReadConditions | None:
    """The If-* headers of a read (``prefix="x-amz-copy-source-"`` for a copy's
    source), None when there are none."""
    names = ("if-match", "if-none-match", "if-modified-since", "if-unmodified-since")
    values = [headers.get(prefix + name) for name in names]
    if all(value is None for value in values):
        return None
    return ReadConditions(*values)


def write_condition(headers: Mapping[str, str]) -> WriteCondition | None:
    """A write's If-Match / If-None-Match (``*``: create only; ETags: not over an
    object that has one of them)."""
    if_match = headers.get("if-match")
    if_none_match = headers.get("if-none-match")
    if if_match is None and if_none_match is None:
        return None
    none_match: bool | str = False
    if if_none_match is not None:
        none_match = True if if_none_match.strip() == "*" else if_none_match
    return WriteCondition(if_match=if_match, if_none_match=none_match)


def checksum_values(headers: Mapping[str, str], *, composite: bool = False) -> dict[str, str]:
    """The ``x-amz-checksum-<algorithm>`` headers, by algorithm; a value that is not
    base64 of a digest of the algorithm's size is BadDigest, as S3 answers (with
    ``composite``, a ``-N`` suffix is allowed)."""
    found = {}
    for name, value in headers.items():
        algorithm = name[len(CHECKSUM_PREFIX) :].upper()
        if not name.startswith(CHECKSUM_PREFIX) or algorithm not in ALGORITHMS:
            continue
        digest = value.strip()
        if composite and "-" in digest:
            digest, _, count = digest.rpartition("-")
            if not (count.isascii() and count.isdigit()):
                digest = ""
        try:
            decode(algorithm, digest)
        except InvalidDigest:
            raise BadDigest(
                f"{name} must be base64 of a {algorithm} digest, got {value[:80]!r}"
            ) from None
        found[algorithm] = value.strip()
    return found


def content_md5(headers: Mapping[str, str]) -> bytes | None:
    """The 16-byte digest of Content-MD5; InvalidDigest if it is not base64 of one."""
    value = headers.get("content-md5")
    if value is None:
        return None
    try:
        digest = base64.b64decode(value.strip().encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError, ValueError):
        digest = b""
    if len(digest) != 16:
        raise InvalidDigest(f"Content-MD5 must be base64 of a 16-byte MD5, got {value[:60]!r}")
    return digest


def expected_digests(headers: Mapping[str, str], trailers: Trailers) -> ExpectedDigests:
    """What the body must hash to: Content-MD5, and one ``x-amz-checksum-*`` from a
    header or promised in ``x-amz-trailer`` (its value is filled in by
    :func:`with_trailer_checksum` once the body has ended), or just an algorithm to
    compute (``x-amz-sdk-checksum-algorithm``, ``x-amz-checksum-algorithm``)."""
    sent = checksum_values(headers)
    promised = [
        name[len(CHECKSUM_PREFIX) :]
        for name in trailers.announced
        if name.startswith(CHECKSUM_PREFIX)
    ]
    named = [*sent, *promised]
    if len(named) > 1:
        raise InvalidArgument(f"a request carries one x-amz-checksum-* at most, got {named}")
    algorithm = named[0] if named else None
    if algorithm is None:
        for name in ("x-amz-sdk-checksum-algorithm", "x-amz-checksum-algorithm"):
            if headers.get(name):
                algorithm = headers[name]
                break
    if algorithm is not None:
        algorithm = check_algorithm(algorithm)
    value = next(iter(sent.values()), None)
    return ExpectedDigests(content_md5(headers), algorithm, value)


async def with_trailer_checksum(
    chunks: AsyncIterator[Buffer], trailers: Trailers, expected: ExpectedDigests
) -> AsyncIterator[Buffer]:
    """The body, then (once it has ended, before the receiver verifies and commits)
    the trailer's checksum put where the receiver will compare it."""
    async for chunk in chunks:
        yield chunk
    algorithm = expected.checksum_algorithm
    if algorithm is not None and expected.checksum_value is None:
        value = trailers.checksums.get(algorithm.lower())
        if value is not None:
            expected.checksum_value = value
        elif CHECKSUM_PREFIX + algorithm.lower() in trailers.announced:
            raise InvalidArgument(
                f"x-amz-trailer promised {CHECKSUM_PREFIX}{algorithm.lower()} and the body "
                "ended without it; nothing was stored"
            )


def check_size(size: int | None, limit: int = MAX_SINGLE_UPLOAD) -> None:
    if size is not None and size > limit:
        raise EntityTooLarge(
            f"a single upload is at most {limit} bytes (5 GiB), got {size}; use multipart"
        )


# -- responses -----------------------------------------------------------------------------


def header_value(value: str) -> str:
    """A stored value as a header can carry it: itself if ISO-8859-1 holds it, else
    RFC 2047 (UTF-8, base64)."""
    try:
        value.encode("latin-1")
    except UnicodeEncodeError:
        return "=?UTF-8?B?" + base64.b64encode(value.encode("utf-8")).decode() + "?="
    return value


def http_date(info: ObjectInfo) -> str:
    return email.utils.format_datetime(info.last_modified, usegmt=True)


def checksum_headers(
    checksums: Mapping[str, str], checksum_type: str | None
) -> list[tuple[str, str]]:
    found = [(CHECKSUM_PREFIX + name.lower(), value) for name, value in checksums.items()]
    if found and checksum_type:
        found.append(("x-amz-checksum-type", checksum_type))
    return found


def info_headers(info: ObjectInfo, *, checksums: bool) -> list[tuple[str, str]]:
    """What GET and HEAD say about an object (besides length and range); its checksums
    only when asked (``x-amz-checksum-mode: ENABLED``)."""
    headers = [
        ("content-type", info.content_type),
        ("etag", f'"{info.etag}"'),
        ("last-modified", http_date(info)),
        ("accept-ranges", "bytes"),
    ]
    for field, value in info.headers.as_dict().items():
        headers.append((field.replace("_", "-"), header_value(value)))
    headers += [(META_PREFIX + name, header_value(value)) for name, value in info.metadata.items()]
    if info.storage_class != "STANDARD":
        headers.append(("x-amz-storage-class", info.storage_class))
    if info.parts_count is not None:
        headers.append(("x-amz-mp-parts-count", str(info.parts_count)))
    if checksums:
        headers += checksum_headers(info.checksums, info.checksum_type)
    return headers


def wants_checksums(headers: Mapping[str, str]) -> bool:
    return headers.get("x-amz-checksum-mode", "").upper() == "ENABLED"
