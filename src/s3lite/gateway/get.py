"""Reading objects: GetObject and HeadObject (Range, ETag, Last-Modified, the stored
Content-Type and x-amz-meta-*, and the response-* query overrides)."""

from __future__ import annotations

import email.utils

from ..asgi import Send, send_head, send_stream
from ..errors import InvalidArgument, NotImplementedYet
from ..receiver.buckets import object_key
from ..receiver.manifest import ObjectInfo
from .call import Call, Handler
from .router import RESPONSE_OVERRIDES

META_PREFIX = "x-amz-meta-"


async def stored_key(call: Call) -> str:
    """The receiver key of the call's object, once its bucket is known to exist.
    Versioning is never enabled, so the only version id there is is ``null``."""
    await call.services.buckets.check(call.bucket)
    if call.operation.version_id not in (None, "null"):
        raise InvalidArgument(
            f"invalid version id {call.operation.version_id!r}: versioning is not enabled"
        )
    return object_key(call.bucket, call.key)


def object_headers(call: Call, info: ObjectInfo, length: int) -> list[tuple[str, str]]:
    headers = [
        ("content-length", str(length)),
        ("content-type", info.content_type),
        ("etag", f'"{info.etag}"'),
        ("last-modified", email.utils.format_datetime(info.last_modified, usegmt=True)),
        ("accept-ranges", "bytes"),
    ]
    headers += [(META_PREFIX + name, value) for name, value in info.metadata.items()]
    overrides = {
        name[len("response-") :]: value
        for name, value in call.request.query.items()
        if name in RESPONSE_OVERRIDES
    }
    return [(n, v) for n, v in headers if n not in overrides] + list(overrides.items())


def _no_parts(call: Call) -> None:
    if call.operation.part_number is not None:
        raise NotImplementedYet("GET and HEAD with ?partNumber come with multipart upload")


async def get_object(call: Call, send: Send) -> None:
    _no_parts(call)
    key = await stored_key(call)
    receiver = call.services.receiver
    read = await receiver.open_object(key, http_range=call.request.headers.get("range"))
    try:
        headers = object_headers(call, read.info, read.length)
        status = 200
        if read.span is not None:
            status = 206
            first, last = read.span
            headers.append(("content-range", f"bytes {first}-{last}/{read.info.size}"))
        await send_stream(send, status, read.chunks, headers, call.request.receive)
    finally:
        await read.aclose()


async def head_object(call: Call, send: Send) -> None:
    _no_parts(call)
    info = await call.services.receiver.head_object(await stored_key(call))
    await send_head(send, 200, object_headers(call, info, info.size))


HANDLERS: dict[str, Handler] = {"GetObject": get_object, "HeadObject": head_object}
