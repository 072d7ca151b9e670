"""Request bodies as the put handlers read them, checked against what was signed.

* hex ``x-amz-content-sha256``: the body is hashed as it streams, and compared when it
  ends; a mismatch raises XAmzContentSHA256Mismatch out of the body iterator, so the
  receiver, which commits only after the iterator has finished, stores nothing. A
  caller that hashes the body anyway (PutObject, UploadPart: the receiver's Digester,
  off the event loop) asks ``defer_sha256``: the body is then passed as sent and
  ``Payload.sha256`` holds the digest the caller must check before it commits;
* ``UNSIGNED-PAYLOAD``: the body as sent (TLS or the client's checksum covers it);
* ``STREAMING-*`` (aws-chunked): the body decoded by :class:`ChunkedDecoder`, every
  chunk signature checked, ``x-amz-decoded-content-length`` bytes long; the trailer's
  values (``x-amz-checksum-*``) are put in :class:`Trailers` before the iterator
  finishes, so a handler can hand that object to the receiver and the receiver reads
  it after the last byte and before its commit.

A client that sends nothing for ``idle_timeout`` seconds is treated as gone
(RequestTimeout), so a stalled upload cannot hold its parts open forever.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import AsyncIterator

import attrs

from ...asgi import MAX_LENGTH_DIGITS, Request
from ...buffers import LARGE_ARENA, Buffer
from ...errors import InvalidArgument, RequestTimeout, XAmzContentSHA256Mismatch
from . import sigv4
from .chunked import ChunkedDecoder, ChunkSigning

CHECKSUM_PREFIX = "x-amz-checksum-"

BODY_BATCH = LARGE_ARENA
"""The body is read in chunks of about this many bytes (Request.body's ``batch``): one
pass through the layers above per 4 MiB, not per socket read; as large as the arenas
the gateway reads bodies into (``LARGE_ARENA``), so a chunk is one view of one arena
and never a join."""


@attrs.define
class Trailers:
    """The trailer of an aws-chunked body: empty until the body has ended."""

    announced: tuple[str, ...] = ()
    """Names the ``x-amz-trailer`` header promised."""
    values: dict[str, str] = attrs.Factory(dict)
    ended: bool = False

    @property
    def checksums(self) -> dict[str, str]:
        """``x-amz-checksum-<algorithm>`` trailers by algorithm (``crc32``, ``sha256``...)."""
        return {
            name[len(CHECKSUM_PREFIX) :]: value
            for name, value in self.values.items()
            if name.startswith(CHECKSUM_PREFIX)
        }


@attrs.frozen
class Payload:
    chunks: AsyncIterator[Buffer]
    size: int | None
    """The body's length once decoded, if the request said (None: read to the end)."""
    trailers: Trailers
    content_encoding: str | None
    """Content-Encoding without ``aws-chunked`` (what the object is stored with)."""
    sha256: bytes | None = None
    """With ``defer_sha256``: the SHA-256 the request signed, which the body has not
    been checked against (the caller must, before it commits)."""


def parse_length(text: str, name: str) -> int:
    """A length header: decimal digits, at most 18 of them (InvalidArgument else)."""
    if not (text.isascii() and text.isdigit() and len(text) <= MAX_LENGTH_DIGITS):
        raise InvalidArgument(f"{name} must be a number of bytes, got {text[:40]!r}")
    return int(text)


def request_payload(
    request: Request, verified: sigv4.Verified, *, idle_timeout: float, defer_sha256: bool = False
) -> Payload:
    """The body of ``request``, checked as its signature says (see the module doc)."""
    headers = request.headers
    raw = _guarded(request, idle_timeout)
    decoded_header = headers.get("x-amz-decoded-content-length")
    decoded = (
        None
        if decoded_header is None
        else parse_length(decoded_header, "x-amz-decoded-content-length")
    )
    encodings = [e.strip() for e in headers.get("content-encoding", "").split(",") if e.strip()]
    stored_encoding = ", ".join(e for e in encodings if e != "aws-chunked") or None
    trailers = Trailers(
        tuple(t.strip().lower() for t in headers.get("x-amz-trailer", "").split(",") if t.strip())
    )
    payload = verified.payload
    if payload.startswith("STREAMING-"):
        if decoded is None:
            raise InvalidArgument("an aws-chunked body needs x-amz-decoded-content-length")
        signing = None
        if payload != sigv4.STREAMING_UNSIGNED_TRAILER:
            signing = ChunkSigning(
                verified.signing_key, verified.timestamp, verified.scope, verified.seed_signature
            )
        trailer = payload.endswith("-TRAILER")
        decoder = ChunkedDecoder(decoded, signing=signing, trailer=trailer)
        return Payload(_decoded(raw, decoder, trailers), decoded, trailers, stored_encoding)
    # Content-Encoding: aws-chunked with a plain payload hash: the body is not framed
    # (S3 treats the coding as a label and drops it, as boto3 users set it so).
    size = request.declared_length
    if size is None:
        size = decoded
    if payload == sigv4.UNSIGNED_PAYLOAD:
        return Payload(raw, size, trailers, stored_encoding)
    if defer_sha256:
        return Payload(raw, size, trailers, stored_encoding, bytes.fromhex(payload))
    return Payload(_hashed(raw, payload), size, trailers, stored_encoding)


async def _guarded(request: Request, idle_timeout: float) -> AsyncIterator[Buffer]:
    chunks = request.body(batch=BODY_BATCH, idle_timeout=idle_timeout)
    try:
        async for chunk in chunks:
            yield chunk
    except TimeoutError:
        raise RequestTimeout(
            f"no body bytes for {idle_timeout:g} s; the upload was abandoned"
        ) from None


async def _hashed(chunks: AsyncIterator[Buffer], expected: str) -> AsyncIterator[Buffer]:
    digest = hashlib.sha256()
    async for chunk in chunks:
        digest.update(chunk)
        yield chunk
    if not hmac.compare_digest(digest.hexdigest(), expected):
        raise XAmzContentSHA256Mismatch(
            "the body's SHA-256 does not match x-amz-content-sha256; nothing was stored"
        )


async def _decoded(
    chunks: AsyncIterator[Buffer], decoder: ChunkedDecoder, trailers: Trailers
) -> AsyncIterator[Buffer]:
    async for chunk in chunks:
        data = decoder.feed(chunk)
        if data:
            yield data
    trailers.values.update(decoder.end())
    trailers.ended = True
