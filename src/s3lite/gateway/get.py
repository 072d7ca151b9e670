"""Reading objects: GetObject and HeadObject.

Both honour ``Range`` (GET), ``?partNumber=N`` (one part of a multipart object, 206
with Content-Range and ``x-amz-mp-parts-count``; part 1 of any other object is the
whole of it), the conditional headers (If-Match, If-None-Match -> 304,
If-Modified-Since, If-Unmodified-Since -> 412, in RFC 9110's order: the receiver's
ReadConditions), ``x-amz-checksum-mode: ENABLED`` (the stored checksum, for a whole
object only) and, on GET, the ``response-*`` query overrides.
"""

from __future__ import annotations

from ..asgi import Send, send_bytes, send_head, send_stream
from ..errors import InvalidArgument, NotModified
from ..receiver.buckets import object_key
from ..receiver.manifest import ObjectInfo
from . import headers as h
from . import xml
from .call import Call, Handler
from .router import RESPONSE_OVERRIDES


async def stored_key(call: Call) -> str:
    """The receiver key of the call's object, once its bucket is known to exist.
    Versioning is never enabled, so the only version id there is is ``null``."""
    await call.services.buckets.check(call.bucket)
    check_version(call.operation.version_id)
    return object_key(call.bucket, call.key)


def check_version(version_id: str | None) -> None:
    if version_id not in (None, "null"):
        raise InvalidArgument(f"invalid version id {version_id!r}: versioning is not enabled")


def response_headers(
    call: Call, info: ObjectInfo, length: int, span: tuple[int, int] | None, *, whole: bool
) -> tuple[int, list[tuple[str, str]]]:
    """Status and headers of a GET or HEAD answer. ``whole``: the answer is the whole
    object (its checksum applies)."""
    headers = [("content-length", str(length))]
    headers += h.info_headers(info, checksums=whole and h.wants_checksums(call.request.headers))
    status = 200
    if span is not None:
        status = 206
        headers.append(("content-range", f"bytes {span[0]}-{span[1]}/{info.size}"))
    overrides = {
        name[len("response-") :]: value
        for name, value in call.request.query.items()
        if name in RESPONSE_OVERRIDES
    }
    return status, [(n, v) for n, v in headers if n not in overrides] + list(overrides.items())


async def not_modified(call: Call, key: str, send: Send) -> None:
    """304 Not Modified, with the ETag and Last-Modified a client revalidates with."""
    info = await call.services.receiver.head_object(key)
    await send_head(send, 304, [("etag", f'"{info.etag}"'), ("last-modified", h.http_date(info))])


async def get_object(call: Call, send: Send) -> None:
    key = await stored_key(call)
    part = call.operation.part_number
    conditions = h.read_conditions(call.request.headers)
    http_range = None if part is not None else call.request.headers.get("range")
    try:
        read = await call.services.receiver.open_object(
            key, http_range=http_range, part_number=part, conditions=conditions
        )
    except NotModified:
        await not_modified(call, key, send)
        return
    try:
        info, span = read.info, read.span
        whole = span is None or (span[0] == 0 and span[1] == info.size - 1 and part is None)
        if part is not None and info.parts_count is None:
            span = None  # part 1 of a plain object: the object, 200
        status, headers = response_headers(call, info, read.length, span, whole=whole)
        if part is not None and info.parts_count is not None:
            headers += h.checksum_headers(read.part_checksums, info.checksum_type)
        await send_stream(send, status, read.chunks, headers, call.request.receive)
    finally:
        await read.aclose()


async def head_object(call: Call, send: Send) -> None:
    key = await stored_key(call)
    receiver = call.services.receiver
    conditions = h.read_conditions(call.request.headers)
    part = call.operation.part_number
    try:
        if part is None:
            info = await receiver.head_object(key, conditions=conditions)
            status, headers = response_headers(call, info, info.size, None, whole=True)
        else:
            info, span = await receiver.head_part(key, part, conditions=conditions)
            length = 0 if span is None else span[1] - span[0] + 1
            if info.parts_count is None:
                span, length = None, info.size
            status, headers = response_headers(call, info, length, span, whole=span is None)
    except NotModified:
        await not_modified(call, key, send)
        return
    await send_head(send, status, headers)


async def get_object_attributes(call: Call, send: Send) -> None:
    """GetObjectAttributes: the attributes ``x-amz-object-attributes`` names (ETag,
    Checksum, ObjectParts (the count), StorageClass, ObjectSize)."""
    key = await stored_key(call)
    wanted = {
        name.strip() for name in call.request.headers.get("x-amz-object-attributes", "").split(",")
    }
    unknown = wanted - ATTRIBUTES
    if unknown or not wanted - {""}:
        raise InvalidArgument(
            f"x-amz-object-attributes names some of {', '.join(sorted(ATTRIBUTES))}, "
            f"got {sorted(unknown or wanted)}"
        )
    info = await call.services.receiver.head_object(
        key, conditions=h.read_conditions(call.request.headers)
    )
    body = xml.object_attributes(info, wanted)
    await send_bytes(
        send,
        200,
        body,
        [("content-type", "application/xml"), ("last-modified", h.http_date(info))],
    )


ATTRIBUTES = frozenset({"ETag", "Checksum", "ObjectParts", "StorageClass", "ObjectSize"})


HANDLERS: dict[str, Handler] = {
    "GetObject": get_object,
    "HeadObject": head_object,
    "GetObjectAttributes": get_object_attributes,
}
