"""Copies: CopyObject and UploadPartCopy, named by ``x-amz-copy-source`` (the router
percent-decodes it; ``?versionId=null`` is the one version there is).

The app has checked, before either runs, that the key may write the destination
bucket and read the source's (policy.allowed, twice). The bytes stream node to gateway
to node through the receiver (copying.py), with bounded memory and no temporary file.
``x-amz-metadata-directive`` COPY keeps the source's content type, metadata and
headers, REPLACE takes the request's; ``x-amz-copy-source-if-*`` are checked on the
source the copy reads (every failure 412), ``If-Match``/``If-None-Match: *`` on the
destination in the commit's transaction.
"""

from __future__ import annotations

from ..asgi import Send
from ..errors import InvalidArgument
from ..receiver.buckets import object_key
from . import headers as h
from . import xml
from .call import Call, Handler, send_xml
from .get import check_version, stored_key
from .multipart import upload_id

SOURCE_CONDITIONS = "x-amz-copy-source-"


async def source_key(call: Call) -> str:
    """The receiver key of the copy source, once its bucket is known to exist."""
    source = call.operation.copy_source
    assert source is not None  # the router makes Copy* only with a copy source
    await call.services.buckets.check(source.bucket)
    check_version(source.version_id)
    return object_key(source.bucket, source.key)


async def copy_object(call: Call, send: Send) -> None:
    key = await stored_key(call)
    source = await source_key(call)
    headers = call.request.headers
    directive = headers.get("x-amz-metadata-directive", "COPY").upper()
    if directive not in ("COPY", "REPLACE"):
        raise InvalidArgument(
            f"x-amz-metadata-directive must be COPY or REPLACE, got {directive[:40]!r}"
        )
    info = await call.services.receiver.copy_object(
        source,
        key,
        metadata_directive=directive,
        content_type=headers.get("content-type"),
        metadata=h.metadata(headers),
        headers=h.object_headers(headers, headers.get("content-encoding")),
        storage_class=h.storage_class(headers),
        source_conditions=h.read_conditions(headers, SOURCE_CONDITIONS),
        condition=h.write_condition(headers),
        bucket=call.bucket,
    )
    body = xml.copy_result("CopyObjectResult", info.etag, info.last_modified, info.checksums)
    await send_xml(send, body)


async def upload_part_copy(call: Call, send: Send) -> None:
    key = await stored_key(call)
    source = await source_key(call)
    headers = call.request.headers
    assert call.operation.part_number is not None  # the router requires it
    part = await call.services.receiver.upload_part_copy(
        key,
        upload_id(call),
        call.operation.part_number,
        source,
        source_range=headers.get("x-amz-copy-source-range"),
        source_conditions=h.read_conditions(headers, SOURCE_CONDITIONS),
    )
    body = xml.copy_result("CopyPartResult", part.etag, part.last_modified, part.checksums)
    await send_xml(send, body)


HANDLERS: dict[str, Handler] = {"CopyObject": copy_object, "UploadPartCopy": upload_part_copy}
