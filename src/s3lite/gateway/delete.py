"""Deleting objects: DeleteObject (204 whether or not the key existed, as S3) and
DeleteObjects (up to 1,000 keys, Quiet, an error entry per key that failed).
``x-amz-bypass-governance-retention`` is accepted: nothing here is ever retained."""

from __future__ import annotations

import contextlib

import anyio

from ..asgi import Send, send_bytes
from ..errors import InvalidArgument, NotFound, S3liteError
from ..receiver.buckets import object_key
from . import xml, xmlparse
from .call import Call, Handler, send_xml
from .errors import entry_of
from .get import stored_key

PARALLEL_DELETES = 8


async def delete_object(call: Call, send: Send) -> None:
    key = await stored_key(call)
    with contextlib.suppress(NotFound):
        await call.services.receiver.delete_object(key)
    await send_bytes(send, 204)


async def delete_objects(call: Call, send: Send) -> None:
    await call.services.buckets.check(call.bucket)
    request = xmlparse.delete_request(await call.read_body(xmlparse.MAX_BODY))
    deleted: list[tuple[int, str]] = []
    errors: list[tuple[int, tuple[str, str, str]]] = []
    limiter = anyio.CapacityLimiter(PARALLEL_DELETES)

    async def delete(index: int, key: str, version_id: str | None) -> None:
        async with limiter:
            try:
                if version_id not in (None, "null"):
                    raise InvalidArgument(f"invalid version id {version_id!r}: versioning is off")
                with contextlib.suppress(NotFound):
                    await call.services.receiver.delete_object(object_key(call.bucket, key))
            except S3liteError as exc:
                errors.append((index, (key, entry_of(exc).code, str(exc))))
            else:
                deleted.append((index, key))

    async with anyio.create_task_group() as group:
        for index, (key, version_id) in enumerate(request.objects):
            group.start_soon(delete, index, key, version_id)
    shown = [] if request.quiet else [key for _, key in sorted(deleted)]
    await send_xml(send, xml.delete_result(shown, [error for _, error in sorted(errors)]))


HANDLERS: dict[str, Handler] = {"DeleteObject": delete_object, "DeleteObjects": delete_objects}
