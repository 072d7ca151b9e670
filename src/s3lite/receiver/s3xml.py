"""The XML bodies of S3's REST API that the gateway speaks (errors, listings)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from xml.sax.saxutils import escape

from .buckets import Bucket
from .manifest import ObjectInfo

NAMESPACE = "http://s3.amazonaws.com/doc/2006-03-01/"
_PROLOG = '<?xml version="1.0" encoding="UTF-8"?>\n'


def _tag(name: str, value: object) -> str:
    return f"<{name}>{escape(str(value))}</{name}>"


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
) -> bytes:
    """A ListObjectsV2 result; ``objects`` carry keys without the bucket prefix."""
    contents = "".join(
        "<Contents>"
        + _tag("Key", info.key)
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
        _tag("Prefix", prefix),
        _tag("KeyCount", count),
        _tag("MaxKeys", max_keys),
        _tag("IsTruncated", "true" if next_continuation else "false"),
    ]
    if start_after:
        parts.append(_tag("StartAfter", start_after))
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
