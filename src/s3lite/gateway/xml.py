"""The XML bodies of S3's REST API that the gateway speaks (errors, listings)."""

from __future__ import annotations

import datetime as dt
import re
import urllib.parse
from collections.abc import Iterable
from xml.sax.saxutils import escape

from ..receiver.buckets import Bucket
from ..receiver.manifest import ObjectInfo

NAMESPACE = "http://s3.amazonaws.com/doc/2006-03-01/"
_PROLOG = '<?xml version="1.0" encoding="UTF-8"?>\n'


_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def text(value: object) -> str:
    """Escaped character data; characters XML 1.0 cannot hold become U+FFFD."""
    return escape(_NOT_XML.sub("\ufffd", str(value)))


def key_text(key: str, encoding: str | None) -> str:
    """A key as a listing shows it: URL-encoded with ``encoding-type=url`` (what S3
    clients ask for, since keys may hold characters XML cannot), else escaped, with
    characters XML 1.0 cannot hold as numeric references (as S3 does)."""
    if encoding == "url":
        return urllib.parse.quote_plus(key, safe="/")
    return _NOT_XML.sub(lambda match: f"&#x{ord(match[0]):x};", escape(key))


def _tag(name: str, value: object) -> str:
    return f"<{name}>{text(value)}</{name}>"


def iso8601(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.") + (
        f"{moment.microsecond // 1000:03d}Z"
    )


def error(code: str, message: str, resource: str, request_id: str) -> bytes:
    return (
        _PROLOG
        + "<Error>"
        + _tag("Code", code)
        + _tag("Message", message)
        + _tag("Resource", resource)
        + _tag("RequestId", request_id)
        + "</Error>"
    ).encode()


def bucket_list(buckets: Iterable[Bucket]) -> bytes:
    entries = "".join(
        "<Bucket>" + _tag("Name", b.name) + _tag("CreationDate", iso8601(b.created)) + "</Bucket>"
        for b in buckets
    )
    return (
        _PROLOG
        + f'<ListAllMyBucketsResult xmlns="{NAMESPACE}">'
        + "<Owner><ID>s3lite</ID><DisplayName>s3lite</DisplayName></Owner>"
        + f"<Buckets>{entries}</Buckets></ListAllMyBucketsResult>"
    ).encode()


def object_list(
    bucket: str,
    prefix: str,
    objects: Iterable[ObjectInfo],
    *,
    max_keys: int,
    start_after: str,
    continuation: str | None,
    next_continuation: str | None,
    encoding: str | None = None,
) -> bytes:
    """A ListObjectsV2 result; ``objects`` carry keys without the bucket prefix."""
    contents = "".join(
        "<Contents>"
        + f"<Key>{key_text(info.key, encoding)}</Key>"
        + _tag("LastModified", iso8601(info.last_modified))
        + _tag("ETag", f'"{info.etag}"')
        + _tag("Size", info.size)
        + _tag("StorageClass", "STANDARD")
        + "</Contents>"
        for info in objects
    )
    count = contents.count("<Contents>")
    parts = [
        _tag("Name", bucket),
        f"<Prefix>{key_text(prefix, encoding)}</Prefix>",
        _tag("KeyCount", count),
        _tag("MaxKeys", max_keys),
        _tag("IsTruncated", "true" if next_continuation else "false"),
    ]
    if encoding:
        parts.append(_tag("EncodingType", encoding))
    if start_after:
        parts.append(f"<StartAfter>{key_text(start_after, encoding)}</StartAfter>")
    if continuation:
        parts.append(_tag("ContinuationToken", continuation))
    if next_continuation:
        parts.append(_tag("NextContinuationToken", next_continuation))
    return (
        _PROLOG
        + f'<ListBucketResult xmlns="{NAMESPACE}">'
        + "".join(parts)
        + contents
        + "</ListBucketResult>"
    ).encode()
