"""Writing objects: PutObject, with the body checked as it was signed (hex SHA-256,
UNSIGNED-PAYLOAD, or aws-chunked with chunk signatures and trailers: auth.payload),
against Content-MD5 and ``x-amz-checksum-*`` (from a header or the aws-chunked
trailer), with the standard headers, metadata and storage class stored, and
``If-Match`` / ``If-None-Match: *`` checked in the commit's transaction.

The receiver commits only after the body iterator has finished, and every check of the
body (its SHA-256, its chunk signatures, its length, its size limit, the trailer's
checksum) raises out of that iterator or at the receiver's verify, so a body that
fails one stores nothing.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from ..asgi import Send, send_bytes
from ..buffers import Buffer
from ..receiver import ExpectedDigests
from ..streams import at_most
from . import headers as h
from .auth.payload import Payload
from .call import Call, Handler
from .get import stored_key


def checked_body(call: Call, payload: Payload) -> tuple[AsyncIterator[Buffer], ExpectedDigests]:
    """The body of a PutObject or UploadPart, refused past 5 GiB, with the digests it
    must match (the trailer's checksum filled in when the body ends; the signed
    SHA-256 of a ``defer_sha256`` payload, hashed by the receiver with the others)."""
    h.check_size(payload.size)
    expected = h.expected_digests(call.request.headers, payload.trailers)
    expected.payload_sha256 = payload.sha256
    chunks = at_most(payload.chunks, h.MAX_SINGLE_UPLOAD, "a single upload (use multipart)")
    return h.with_trailer_checksum(chunks, payload.trailers, expected), expected


async def put_object(call: Call, send: Send) -> None:
    key = await stored_key(call)
    payload = call.payload(defer_sha256=True)
    headers = call.request.headers
    chunks, expected = checked_body(call, payload)
    info = await call.services.receiver.put_object(
        key,
        chunks,
        payload.size,
        content_type=headers.get("content-type"),
        metadata=h.metadata(headers),
        headers=h.object_headers(headers, payload.content_encoding),
        storage_class=h.storage_class(headers),
        expected=expected,
        condition=h.write_condition(headers),
        bucket=call.bucket,
    )
    answer = [("etag", f'"{info.etag}"'), *h.checksum_headers(info.checksums, info.checksum_type)]
    await send_bytes(send, 200, headers=answer)


HANDLERS: dict[str, Handler] = {"PutObject": put_object}
