"""S3's XML responses: errors, listings, multipart and copy results, ACLs (request
bodies are read in xmlparse.py). Every value is escaped; a character XML 1.0 cannot
hold never reaches the document as it is."""

from __future__ import annotations

import datetime as dt
import re
import urllib.parse
from collections.abc import Iterable, Mapping, Sequence
from xml.sax.saxutils import escape

import attrs

from ..receiver.buckets import Bucket
from ..receiver.manifest import MultipartUpload, ObjectInfo, PartInfo, PartList

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
        return urllib.parse.quote(key, safe="/")
    return _NOT_XML.sub(lambda match: f"&#x{ord(match[0]):x};", escape(key))


def _tag(name: str, value: object) -> str:
    return f"<{name}>{text(value)}</{name}>"


def _document(root: str, body: str) -> bytes:
    return f'{_PROLOG}<{root} xmlns="{NAMESPACE}">{body}</{root}>'.encode()


def iso8601(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.") + (
        f"{moment.microsecond // 1000:03d}Z"
    )


def _bool(value: bool) -> str:
    return "true" if value else "false"


def owner(owner_id: str) -> str:
    return f"<Owner>{_tag('ID', owner_id)}{_tag('DisplayName', owner_id)}</Owner>"


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


def bucket_list(
    buckets: Iterable[Bucket], owner_id: str, *, next_token: str | None, prefix: str | None
) -> bytes:
    """ListAllMyBucketsResult; ``next_token`` continues a page cut by max-buckets."""
    entries = "".join(
        "<Bucket>" + _tag("Name", b.name) + _tag("CreationDate", iso8601(b.created)) + "</Bucket>"
        for b in buckets
    )
    extra = (_tag("ContinuationToken", next_token) if next_token else "") + (
        _tag("Prefix", prefix) if prefix is not None else ""
    )
    return _document(
        "ListAllMyBucketsResult", owner(owner_id) + f"<Buckets>{entries}</Buckets>" + extra
    )


@attrs.frozen
class Listing:
    """One page of a bucket listing, keys without the bucket prefix, as the list
    handlers render it (v1, v2 and versions)."""

    bucket: str
    prefix: str
    objects: Sequence[ObjectInfo]
    common_prefixes: Sequence[str]
    max_keys: int
    truncated: bool
    delimiter: str | None
    encoding: str | None
    owner_id: str


def _contents(
    page: Listing, *, with_owner: bool, element: str = "Contents", extra: str = ""
) -> str:
    return "".join(
        f"<{element}>"
        + f"<Key>{key_text(info.key, page.encoding)}</Key>"
        + extra
        + _tag("LastModified", iso8601(info.last_modified))
        + _tag("ETag", f'"{info.etag}"')
        + _tag("Size", info.size)
        + _tag("StorageClass", info.storage_class)
        + (owner(page.owner_id) if with_owner else "")
        + f"</{element}>"
        for info in page.objects
    )


def _common(page: Listing, *, encode_prefix: bool = True) -> str:
    """The fields every listing starts with. ListObjects v1 sends its Prefix as it is
    (escaped, never URL-encoded): botocore decodes v1's Marker, NextMarker and
    Delimiter but not its Prefix."""
    prefix = key_text(page.prefix, page.encoding if encode_prefix else None)
    head = [_tag("Name", page.bucket), f"<Prefix>{prefix}</Prefix>"]
    if page.delimiter:
        head.append(f"<Delimiter>{key_text(page.delimiter, page.encoding)}</Delimiter>")
    head += [_tag("MaxKeys", page.max_keys), _tag("IsTruncated", _bool(page.truncated))]
    if page.encoding:
        head.append(_tag("EncodingType", page.encoding))
    return "".join(head)


def _prefixes(page: Listing) -> str:
    return "".join(
        f"<CommonPrefixes><Prefix>{key_text(p, page.encoding)}</Prefix></CommonPrefixes>"
        for p in page.common_prefixes
    )


def object_list_v2(
    page: Listing,
    *,
    start_after: str,
    continuation: str | None,
    next_continuation: str | None,
    fetch_owner: bool,
) -> bytes:
    """A ListObjectsV2 result."""
    parts = [_common(page), _tag("KeyCount", len(page.objects) + len(page.common_prefixes))]
    if start_after:
        parts.append(f"<StartAfter>{key_text(start_after, page.encoding)}</StartAfter>")
    if continuation is not None:
        parts.append(_tag("ContinuationToken", continuation))
    if next_continuation:
        parts.append(_tag("NextContinuationToken", next_continuation))
    body = "".join(parts) + _contents(page, with_owner=fetch_owner) + _prefixes(page)
    return _document("ListBucketResult", body)


def object_list_v1(page: Listing, *, marker: str, next_marker: str | None) -> bytes:
    """A ListObjects (v1) result. NextMarker is sent whenever the page is truncated
    (S3 sends it only with a delimiter, and clients then use the last key, which is
    the same thing)."""
    parts = [
        _common(page, encode_prefix=False),
        f"<Marker>{key_text(marker, page.encoding)}</Marker>",
    ]
    if next_marker is not None:
        parts.append(f"<NextMarker>{key_text(next_marker, page.encoding)}</NextMarker>")
    body = "".join(parts) + _contents(page, with_owner=True) + _prefixes(page)
    return _document("ListBucketResult", body)


def versions_list(page: Listing, *, key_marker: str, next_key_marker: str | None) -> bytes:
    """A ListObjectVersions result for an unversioned bucket: every object is its only
    version, ``null``, and the latest."""
    parts = [
        _common(page),
        f"<KeyMarker>{key_text(key_marker, page.encoding)}</KeyMarker>",
        "<VersionIdMarker></VersionIdMarker>",
    ]
    if next_key_marker is not None:
        parts.append(f"<NextKeyMarker>{key_text(next_key_marker, page.encoding)}</NextKeyMarker>")
        parts.append("<NextVersionIdMarker>null</NextVersionIdMarker>")
    extra = "<VersionId>null</VersionId><IsLatest>true</IsLatest>"
    versions = _contents(page, with_owner=True, element="Version", extra=extra)
    return _document("ListVersionsResult", "".join(parts) + versions + _prefixes(page))


def delete_result(deleted: Iterable[str], errors: Iterable[tuple[str, str, str]]) -> bytes:
    """A DeleteObjects result: the keys deleted (none when Quiet) and (key, code,
    message) for each key that was not."""
    body = "".join(f"<Deleted>{_tag('Key', key)}</Deleted>" for key in deleted)
    body += "".join(
        f"<Error>{_tag('Key', key)}{_tag('Code', code)}{_tag('Message', message)}</Error>"
        for key, code, message in errors
    )
    return _document("DeleteResult", body)


def location(region: str) -> bytes:
    """GetBucketLocation: the cluster's region, empty for us-east-1 (as S3 answers)."""
    return _document("LocationConstraint", "" if region == "us-east-1" else text(region))


def versioning() -> bytes:
    """GetBucketVersioning of a bucket whose versioning was never enabled."""
    return _document("VersioningConfiguration", "")


# -- multipart and copy results ------------------------------------------------------------


def _checksums(checksums: Mapping[str, str], checksum_type: str | None = None) -> str:
    """``<ChecksumCRC32>`` and the like, then ``<ChecksumType>``."""
    body = "".join(_tag(f"Checksum{name}", value) for name, value in checksums.items())
    if body and checksum_type:
        body += _tag("ChecksumType", checksum_type)
    return body


def initiate_upload(bucket: str, key: str, upload_id: str) -> bytes:
    body = _tag("Bucket", bucket) + _tag("Key", key) + _tag("UploadId", upload_id)
    return _document("InitiateMultipartUploadResult", body)


def copy_result(root: str, etag: str, modified: dt.datetime, checksums: Mapping[str, str]) -> bytes:
    """CopyObjectResult or CopyPartResult."""
    body = _tag("ETag", f'"{etag}"') + _tag("LastModified", iso8601(modified))
    return _document(root, body + _checksums(checksums))


def complete_result(location: str, bucket: str, key: str, info: ObjectInfo) -> bytes:
    body = (
        _tag("Location", location)
        + _tag("Bucket", bucket)
        + _tag("Key", key)
        + _tag("ETag", f'"{info.etag}"')
        + _checksums(info.checksums, info.checksum_type)
    )
    return _document("CompleteMultipartUploadResult", body)


def _part(part: PartInfo) -> str:
    return (
        "<Part>"
        + _tag("PartNumber", part.number)
        + _tag("LastModified", iso8601(part.last_modified))
        + _tag("ETag", f'"{part.etag}"')
        + _tag("Size", part.size)
        + _checksums(part.checksums)
        + "</Part>"
    )


def _upload_fields(upload: MultipartUpload, owner_id: str) -> str:
    who = owner(owner_id)
    return (
        who.replace("Owner>", "Initiator>")
        + who
        + _tag("StorageClass", upload.storage_class)
        + (
            _tag("ChecksumAlgorithm", upload.checksum_algorithm)
            if upload.checksum_algorithm
            else ""
        )
        + (_tag("ChecksumType", upload.checksum_type) if upload.checksum_type else "")
    )


def parts_list(
    bucket: str, key: str, page: PartList, *, marker: int, max_parts: int, owner_id: str
) -> bytes:
    body = (
        _tag("Bucket", bucket)
        + _tag("Key", key)
        + _tag("UploadId", page.upload.upload_id)
        + _upload_fields(page.upload, owner_id)
        + _tag("PartNumberMarker", marker)
        + (_tag("NextPartNumberMarker", page.next_marker) if page.next_marker is not None else "")
        + _tag("MaxParts", max_parts)
        + _tag("IsTruncated", _bool(page.is_truncated))
        + "".join(_part(part) for part in page.parts)
    )
    return _document("ListPartsResult", body)


@attrs.frozen
class UploadsPage:
    """One page of ListMultipartUploads, keys without the bucket prefix."""

    bucket: str
    prefix: str
    delimiter: str | None
    key_marker: str
    upload_id_marker: str
    max_uploads: int
    uploads: Sequence[MultipartUpload]
    common_prefixes: Sequence[str]
    truncated: bool
    next_key_marker: str | None
    next_upload_id_marker: str | None
    encoding: str | None
    owner_id: str


def uploads_list(page: UploadsPage) -> bytes:
    def key(value: str) -> str:
        return key_text(value, page.encoding)

    parts = [
        _tag("Bucket", page.bucket),
        f"<KeyMarker>{key(page.key_marker)}</KeyMarker>",
        _tag("UploadIdMarker", page.upload_id_marker),
    ]
    if page.next_key_marker is not None:
        parts.append(f"<NextKeyMarker>{key(page.next_key_marker)}</NextKeyMarker>")
    if page.next_upload_id_marker is not None:
        parts.append(_tag("NextUploadIdMarker", page.next_upload_id_marker))
    if page.delimiter:
        parts.append(f"<Delimiter>{key(page.delimiter)}</Delimiter>")
    parts += [
        f"<Prefix>{key(page.prefix)}</Prefix>",
        _tag("MaxUploads", page.max_uploads),
        _tag("IsTruncated", _bool(page.truncated)),
    ]
    if page.encoding:
        parts.append(_tag("EncodingType", page.encoding))
    parts += [
        "<Upload>"
        + f"<Key>{key(upload.key)}</Key>"
        + _tag("UploadId", upload.upload_id)
        + _upload_fields(upload, page.owner_id)
        + _tag("Initiated", iso8601(upload.initiated))
        + "</Upload>"
        for upload in page.uploads
    ]
    parts += [
        f"<CommonPrefixes><Prefix>{key(prefix)}</Prefix></CommonPrefixes>"
        for prefix in page.common_prefixes
    ]
    return _document("ListMultipartUploadsResult", "".join(parts))


def object_attributes(info: ObjectInfo, wanted: Iterable[str]) -> bytes:
    """GetObjectAttributes' answer, with the attributes ``wanted``."""
    body = ""
    if "ETag" in wanted:
        body += _tag("ETag", info.etag)
    if "Checksum" in wanted and info.checksums:
        body += f"<Checksum>{_checksums(info.checksums, info.checksum_type)}</Checksum>"
    if "ObjectParts" in wanted and info.parts_count is not None:
        body += f"<ObjectParts>{_tag('TotalPartsCount', info.parts_count)}</ObjectParts>"
    if "StorageClass" in wanted:
        body += _tag("StorageClass", info.storage_class)
    if "ObjectSize" in wanted:
        body += _tag("ObjectSize", info.size)
    return _document("GetObjectAttributesResponse", body)


def private_acl(owner_id: str) -> bytes:
    """The canned ``private`` ACL: the owner, with FULL_CONTROL."""
    grantee = (
        '<Grantee xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" '
        'xsi:type="CanonicalUser">'
        + _tag("ID", owner_id)
        + _tag("DisplayName", owner_id)
        + "</Grantee>"
    )
    grant = f"<Grant>{grantee}{_tag('Permission', 'FULL_CONTROL')}</Grant>"
    return _document(
        "AccessControlPolicy", owner(owner_id) + f"<AccessControlList>{grant}</AccessControlList>"
    )
