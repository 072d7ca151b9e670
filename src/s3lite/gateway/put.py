"""Writing objects: PutObject, with the body checked as it was signed (hex SHA-256,
UNSIGNED-PAYLOAD, or aws-chunked with chunk signatures and trailers: auth.payload).

The receiver commits only after the body iterator has finished, and every check of the
body (its SHA-256, its chunk signatures, its length) raises out of that iterator, so a
body that fails one stores nothing.
"""

from __future__ import annotations

from ..asgi import Send, send_bytes
from .call import Call, Handler
from .get import META_PREFIX, stored_key


async def put_object(call: Call, send: Send) -> None:
    key = await stored_key(call)
    payload = call.payload()
    headers = call.request.headers
    metadata = {
        name[len(META_PREFIX) :]: value
        for name, value in headers.items()
        if name.startswith(META_PREFIX)
    }
    info = await call.services.receiver.put_object(
        key,
        payload.chunks,
        payload.size,
        content_type=headers.get("content-type"),
        metadata=metadata,
    )
    await send_bytes(send, 200, headers=[("etag", f'"{info.etag}"')])


HANDLERS: dict[str, Handler] = {"PutObject": put_object}
