"""The console's buckets and objects, called on the receiver directly (each call is
first allowed as the S3 request it stands for: :meth:`ConsoleCall.allow`). Buckets
and keys travel in the query string (``?bucket=B&key=K``), so any key works.

    GET    buckets                       the buckets this key can see (ListBuckets)
    POST   buckets?bucket                create one (CreateBucket)
    DELETE buckets?bucket                delete an empty one (DeleteBucket)
    GET    objects?bucket&prefix&after   one page, "/" as delimiter (ListObjectsV2)
    GET    object?bucket&key             size, ETag, storage class, and (for a key
                                         that may administer, as the cluster's layout
                                         is the admin API's) segments with the node
                                         and sector of each part (HeadObject)
    GET    download?bucket&key           the bytes, as an attachment (GetObject)
    PUT    object?bucket&key             body: the object (PutObject)
    DELETE object?bucket&key             (DeleteObject)
    POST   uploads?bucket&key            a multipart upload: {"upload_id"}
    PUT    uploads/ID?bucket&key&part=N  body: part N: {"number", "etag", "size"}
    POST   uploads/ID/complete?bucket&key  {"parts": [{"number", "etag"}, ...]}
    DELETE uploads/ID?bucket&key         abort it

Creating and deleting a bucket are done by the S3 handlers themselves (bucket.py:
who owns a new bucket, what a deleted one forgets), with the session's key.

The page uploads a file up to PART_SIZE in one PUT and a larger one in parts of
PART_SIZE, so its progress bar moves with every part. A download is sent as
``application/octet-stream`` with ``Content-Disposition: attachment`` and a sandbox
policy: an object's bytes are never rendered as a page of the console's origin (an
HTML object could otherwise run script with the console's session).
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Mapping
from typing import Any, Final

from ...asgi import Send, send_stream
from ...errors import EntityTooLarge, InvalidArgument, NotFound
from ...orchestrator import MigrationPhase
from ...receiver.buckets import object_key
from ...receiver.manifest import Manifest, ObjectInfo
from .. import bucket as bucket_handlers
from ..auth.policy import NOBODY, allowed, visible
from ..router import Access, Operation
from .context import ConsoleCall
from .web import SECURITY_HEADERS, send_json

PAGE: Final = 200
"""Entries (objects and folders) per listing page."""


def describe(info: ObjectInfo, base: str = "") -> dict[str, Any]:
    """An object as the page lists it (``base``, the bucket's prefix, cut off)."""
    return {
        "key": info.key[len(base) :],
        "size": info.size,
        "etag": info.etag,
        "last_modified": info.last_modified.isoformat(),
        "content_type": info.content_type,
        "storage_class": info.storage_class,
    }


async def buckets(call: ConsoleCall, send: Send) -> None:
    call.allow("GET", "ListBuckets")
    keys, identity = call.services.keys, call.identity
    shown = []
    for bucket in await call.services.buckets.list():
        rights = keys.rights(identity.access_key, bucket.name)
        if visible(identity, rights):
            shown.append(
                {
                    "name": bucket.name,
                    "created": bucket.created.isoformat(),
                    "read": identity.root or rights.owner or rights.read,
                    "write": identity.root or rights.owner or rights.write,
                }
            )
    await send_json(send, 200, {"buckets": shown})


async def bucket_change(call: ConsoleCall, send: Send) -> None:
    """POST creates the bucket, DELETE deletes it, as CreateBucket and DeleteBucket
    would (their answers have no body)."""
    method, name = (
        ("PUT", "CreateBucket") if call.request.method == "POST" else ("DELETE", "DeleteBucket")
    )
    operation = call.allow(method, name, call.query("bucket"))
    await bucket_handlers.HANDLERS[name](call.gateway_call(operation), send)


async def _object(call: ConsoleCall, method: str, expected: str, **query: str) -> Operation:
    """The call's ``bucket`` and ``key``, allowed as ``expected``, in a bucket that
    exists."""
    operation = call.allow(method, expected, call.query("bucket"), call.query("key"), query)
    await call.services.buckets.check(call.query("bucket"))
    return operation


def _stored(operation: Operation) -> str:
    assert operation.bucket is not None
    assert operation.key is not None
    return object_key(operation.bucket, operation.key)


async def listing(call: ConsoleCall, send: Send) -> None:
    bucket = call.query("bucket")
    call.allow("GET", "ListObjectsV2", bucket, query={"list-type": "2"})
    await call.services.buckets.check(bucket)
    prefix, after = call.query("prefix", ""), call.query("after", "")
    base = f"{bucket}/"
    found = await call.services.receiver.list_objects(
        base + prefix, start_after=base + after if after else "", limit=PAGE, delimiter="/"
    )
    last = found.next_start_after if found.is_truncated else None
    page = {
        "bucket": bucket,
        "prefix": prefix,
        "folders": [folder[len(base) :] for folder in found.common_prefixes],
        "objects": [describe(info, base) for info in found.objects],
        "next": None if last is None else last[len(base) :],
    }
    await send_json(send, 200, page)


async def details(call: ConsoleCall, send: Send) -> None:
    operation = await _object(call, "HEAD", "HeadObject")
    manifest = await call.services.receiver.manifests.get(_stored(operation))
    if manifest is None:
        raise NotFound(f"no object {operation.key!r} in bucket {operation.bucket!r}")
    info = manifest.info
    found = {
        **describe(info, f"{operation.bucket}/"),
        "metadata": dict(info.metadata),
        "parts_count": info.parts_count,
        "segments": None,
    }
    if allowed(call.identity, Access.ADMIN, NOBODY):
        found["segments"] = placement(call, manifest)
    await send_json(send, 200, found)


def placement(call: ConsoleCall, manifest: Manifest) -> list[dict[str, Any]]:
    """The object's segments and, for each part, the sector it was placed in and the
    node that owns that sector now (and, while the sector moves in a join, the node
    it moves to)."""
    orchestrator = call.services.orchestrator
    ring = orchestrator.ring
    migration = orchestrator.topology.migration
    moving: Mapping[int, str] = {}
    if migration is not None and migration.phase is MigrationPhase.COPYING:
        moving = dict.fromkeys(migration.moves, migration.new_node)
    segments = []
    for number, segment in enumerate(manifest.segments, start=1):
        parts = [
            {
                "index": part.index,
                "kind": "data" if part.index < segment.data_parts else "parity",
                "sector": part.sector,
                "length": part.length,
                "node": ring.owner(part.sector),
                "moving_to": moving.get(part.sector),
            }
            for part in segment.parts
        ]
        segments.append(
            {
                "number": number,
                "size": segment.size,
                "stripe_unit": segment.stripe_unit,
                "parity": segment.parity,
                "parts": parts,
            }
        )
    return segments


def attachment(name: str) -> str:
    """A Content-Disposition that saves the object under its last key segment."""
    fallback = "".join(
        c if c.isascii() and c.isprintable() and c not in '"\\' else "_" for c in name
    )
    quoted = urllib.parse.quote(name, safe="")
    return f"attachment; filename=\"{fallback or 'download'}\"; filename*=UTF-8''{quoted}"


DOWNLOAD_HEADERS: Final = (
    *(header for header in SECURITY_HEADERS if header[0] != "content-security-policy"),
    ("content-security-policy", "sandbox; default-src 'none'"),
    ("content-type", "application/octet-stream"),
)


async def download(call: ConsoleCall, send: Send) -> None:
    operation = await _object(call, "GET", "GetObject")
    read = await call.services.receiver.open_object(_stored(operation))
    try:
        assert operation.key is not None
        headers = [
            *DOWNLOAD_HEADERS,
            ("content-length", str(read.length)),
            ("content-disposition", attachment(operation.key.rsplit("/", 1)[-1])),
            ("etag", f'"{read.info.etag}"'),
        ]
        await send_stream(send, 200, read.chunks, headers, call.request.receive)
    finally:
        await read.aclose()


def _declared(call: ConsoleCall, limit: int) -> None:
    """An upload's body must say its length, and be at most ``limit`` bytes."""
    size = call.request.declared_length
    if size is None:
        raise InvalidArgument("an upload needs a Content-Length")
    if size > limit:
        raise EntityTooLarge(f"one request uploads at most {limit} bytes; use parts")


async def upload(call: ConsoleCall, send: Send) -> None:
    operation = await _object(call, "PUT", "PutObject")
    receiver = call.services.receiver
    _declared(call, receiver.max_part_size)
    payload = call.gateway_call(operation).payload()
    info = await receiver.put_object(
        _stored(operation),
        payload.chunks,
        payload.size,
        content_type=call.request.headers.get("content-type") or None,
        bucket=operation.bucket,
    )
    await send_json(send, 200, describe(info, f"{operation.bucket}/"))


async def delete(call: ConsoleCall, send: Send) -> None:
    operation = await _object(call, "DELETE", "DeleteObject")
    await call.services.receiver.delete_object(_stored(operation))
    await send_json(send, 200, {"deleted": operation.key})


async def create_upload(call: ConsoleCall, send: Send) -> None:
    operation = await _object(call, "POST", "CreateMultipartUpload", uploads="")
    upload_id = await call.services.receiver.create_multipart(
        _stored(operation),
        content_type=call.query("content_type", "") or None,
        bucket=operation.bucket,
    )
    await send_json(send, 200, {"upload_id": upload_id})


async def upload_part(call: ConsoleCall, send: Send, upload_id: str) -> None:
    operation = await _object(
        call, "PUT", "UploadPart", uploadId=upload_id, partNumber=call.query("part")
    )
    receiver = call.services.receiver
    _declared(call, receiver.max_part_size)
    assert operation.part_number is not None
    payload = call.gateway_call(operation).payload()
    part = await receiver.upload_part(
        _stored(operation), upload_id, operation.part_number, payload.chunks, payload.size
    )
    await send_json(send, 200, {"number": part.number, "etag": part.etag, "size": part.size})


async def complete_upload(call: ConsoleCall, send: Send, upload_id: str) -> None:
    operation = await _object(call, "POST", "CompleteMultipartUpload", uploadId=upload_id)
    payload = await call.read_json(operation)
    parts = payload.get("parts") if isinstance(payload, Mapping) else None
    if not isinstance(parts, list) or not all(
        isinstance(p, Mapping) and type(p.get("number")) is int and isinstance(p.get("etag"), str)
        for p in parts
    ):
        raise InvalidArgument('complete an upload with {"parts": [{"number", "etag"}, ...]}')
    info = await call.services.receiver.complete_multipart(
        _stored(operation),
        upload_id,
        [(p["number"], p["etag"]) for p in parts],
        bucket=operation.bucket,
    )
    await send_json(send, 200, describe(info, f"{operation.bucket}/"))


async def abort_upload(call: ConsoleCall, send: Send, upload_id: str) -> None:
    operation = await _object(call, "DELETE", "AbortMultipartUpload", uploadId=upload_id)
    await call.services.receiver.abort_multipart(_stored(operation), upload_id)
    await send_json(send, 200, {"aborted": upload_id})
