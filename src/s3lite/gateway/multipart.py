"""Multipart uploads: CreateMultipartUpload, UploadPart, CompleteMultipartUpload,
AbortMultipartUpload, ListParts and ListMultipartUploads (UploadPartCopy is in
copy.py). The sessions themselves (parts as segments, completion rules, ETags and
checksums) are the receiver's; these handlers translate HTTP and XML.

Bad input changes nothing: a part number outside 1..10,000 is refused by the router, an
unknown or aborted upload is NoSuchUpload before a byte is stored, a Complete naming a
part never uploaded or with a wrong ETag is InvalidPart and leaves the upload open.
"""

from __future__ import annotations

import attrs

from ..asgi import Send, send_bytes
from ..errors import InvalidArgument, NoSuchUpload
from ..receiver import CompletedPart, MultipartUpload, checksums
from ..receiver.buckets import object_key
from . import headers as h
from . import xml, xmlparse
from .call import Call, Handler, count_param, send_xml
from .get import stored_key
from .put import checked_body

MAX_PARTS_LISTED = 1000
MAX_UPLOADS_LISTED = 1000
MAX_COMPLETE_BODY = 4 << 20
"""A Complete of 10,000 parts, each with an ETag and a checksum, fits."""


def upload_id(call: Call) -> str:
    found = call.operation.upload_id
    if not found:
        raise NoSuchUpload("the uploadId is empty")
    return found


async def create_multipart_upload(call: Call, send: Send) -> None:
    key = await stored_key(call)
    headers = call.request.headers
    encoding = headers.get("content-encoding")
    created = await call.services.receiver.create_multipart(
        key,
        content_type=headers.get("content-type"),
        metadata=h.metadata(headers),
        headers=h.object_headers(headers, encoding),
        storage_class=h.storage_class(headers),
        checksum_algorithm=headers.get("x-amz-checksum-algorithm"),
        checksum_type=headers.get("x-amz-checksum-type"),
        bucket=call.bucket,
    )
    answer = xml.initiate_upload(call.bucket, call.key, created)
    extra = []
    if algorithm := headers.get("x-amz-checksum-algorithm"):
        name = checksums.check_algorithm(algorithm)
        kind = checksums.check_type(name, headers.get("x-amz-checksum-type"))
        extra += [("x-amz-checksum-algorithm", name), ("x-amz-checksum-type", kind)]
    await send_bytes(send, 200, answer, [("content-type", "application/xml"), *extra])


async def upload_part(call: Call, send: Send) -> None:
    key = await stored_key(call)
    payload = call.payload(defer_sha256=True)
    chunks, expected = checked_body(call, payload)
    assert call.operation.part_number is not None  # the router requires it
    part = await call.services.receiver.upload_part(
        key, upload_id(call), call.operation.part_number, chunks, payload.size, expected=expected
    )
    answer = [("etag", f'"{part.etag}"'), *h.checksum_headers(part.checksums, None)]
    await send_bytes(send, 200, headers=answer)


async def complete_multipart_upload(call: Call, send: Send) -> None:
    key = await stored_key(call)
    parts = last_of_repeats(xmlparse.complete_request(await call.read_body(MAX_COMPLETE_BODY)))
    info = await call.services.receiver.complete_multipart(
        key,
        upload_id(call),
        parts,
        condition=h.write_condition(call.request.headers),
        bucket=call.bucket,
        expected_checksums=h.checksum_values(call.request.headers, composite=True),
    )
    location = f"/{call.bucket}/{call.key}"
    await send_xml(send, xml.complete_result(location, call.bucket, call.key, info))


def last_of_repeats(parts: list[CompletedPart]) -> list[CompletedPart]:
    """A part number named several times in a row counts once, by its last entry (the
    part re-sent last, as RGW has it and ceph's s3-tests expect); any other order is
    still the receiver's InvalidPartOrder."""
    kept: list[CompletedPart] = []
    for part in parts:
        if kept and kept[-1].number == part.number:
            kept[-1] = part
        else:
            kept.append(part)
    return kept


async def abort_multipart_upload(call: Call, send: Send) -> None:
    key = await stored_key(call)
    await call.services.receiver.abort_multipart(key, upload_id(call))
    await send_bytes(send, 204)


def _marker(text: str, name: str) -> int:
    if not (text.isascii() and text.isdigit()):
        raise InvalidArgument(f"{name} must be a non-negative integer, got {text[:40]!r}")
    return int(text) if len(text) <= 5 else 10_000


async def list_parts(call: Call, send: Send) -> None:
    key = await stored_key(call)
    query = call.request.query
    limit = count_param(query, "max-parts", default=MAX_PARTS_LISTED, maximum=MAX_PARTS_LISTED)
    marker = _marker(query.get("part-number-marker", "0") or "0", "part-number-marker")
    page = await call.services.receiver.list_parts(
        key, upload_id(call), marker=marker, limit=max(limit, 1)
    )
    owner = call.owner_id
    body = xml.parts_list(
        call.bucket, call.key, page, marker=marker, max_parts=limit, owner_id=owner
    )
    await send_xml(send, body)


async def list_multipart_uploads(call: Call, send: Send) -> None:
    await call.services.buckets.check(call.bucket)
    query = call.request.query
    encoding = query.get("encoding-type")
    if encoding not in (None, "url"):
        raise InvalidArgument(f"encoding-type must be 'url', got {encoding[:40]!r}")
    limit = count_param(
        query, "max-uploads", default=MAX_UPLOADS_LISTED, maximum=MAX_UPLOADS_LISTED
    )
    prefix = query.get("prefix", "")
    delimiter = query.get("delimiter") or None
    key_marker = query.get("key-marker", "")
    id_marker = query.get("upload-id-marker", "") if key_marker else ""
    base = object_key(call.bucket, "")
    found = await call.services.receiver.list_multipart_uploads(
        base + prefix,
        delimiter=delimiter or "",
        key_marker=base + key_marker if key_marker else "",
        upload_id_marker=id_marker,
        limit=max(limit, 1),
    )
    uploads: tuple[MultipartUpload, ...] = ()
    prefixes: tuple[str, ...] = ()
    truncated = False
    if limit > 0:
        uploads = tuple(attrs.evolve(u, key=u.key[len(base) :]) for u in found.uploads)
        prefixes = tuple(p[len(base) :] for p in found.common_prefixes)
        truncated = found.is_truncated
    next_key = found.next_key_marker
    owner = call.owner_id
    page = xml.UploadsPage(
        call.bucket,
        prefix,
        delimiter,
        key_marker,
        id_marker,
        limit,
        uploads,
        prefixes,
        truncated,
        next_key[len(base) :] if truncated and next_key else None,
        found.next_upload_id_marker if truncated else None,
        encoding,
        owner,
    )
    await send_xml(send, xml.uploads_list(page))


HANDLERS: dict[str, Handler] = {
    "CreateMultipartUpload": create_multipart_upload,
    "UploadPart": upload_part,
    "CompleteMultipartUpload": complete_multipart_upload,
    "AbortMultipartUpload": abort_multipart_upload,
    "ListParts": list_parts,
    "ListMultipartUploads": list_multipart_uploads,
}
