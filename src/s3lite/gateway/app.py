"""The HTTP front door: S3's path-style REST API over the receiver, plus admin routes.

Objects::

    PUT    /{bucket}/{key}     store the body (Content-Length, or chunked with an
                               optional x-amz-decoded-content-length); Content-Type
                               and x-amz-meta-* headers are kept
    GET    /{bucket}/{key}     stream it; Range: bytes=... gives 206, or 416
    HEAD   /{bucket}/{key}
    DELETE /{bucket}/{key}     204, whether or not the key existed (as S3)

Buckets: ``PUT /{bucket}`` creates (idempotent), ``HEAD``, ``DELETE`` (only when
empty), ``GET /{bucket}`` lists (ListObjectsV2: prefix, start-after, max-keys,
continuation-token), ``GET /`` lists buckets. Errors are S3 XML bodies with S3 codes.

Admin (JSON, under ``/_admin``, a name no bucket can have): ``GET status``,
``POST join`` with ``{"node": URL}``, ``GET idle`` (returns once no other request is
in flight).

Keys are taken from the raw path and percent-decoded once, so any UTF-8 works,
including ``/``, spaces and ``%``; they never touch the filesystem.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import email.utils
import logging
import uuid
from collections.abc import AsyncIterator, Mapping
from typing import Any

import anyio

from ..asgi import (
    App,
    BadRequest,
    ClientDisconnected,
    Request,
    Scope,
    Send,
    send_bytes,
    send_head,
    send_json,
    send_stream,
)
from ..errors import (
    BodyLengthMismatch,
    BucketNotEmpty,
    InvalidArgument,
    InvalidBucketName,
    InvalidKey,
    InvalidRange,
    JoinRefused,
    MethodNotAllowed,
    NodeUnavailable,
    NoSuchBucket,
    NotEnoughNodes,
    NotFound,
    NotImplementedYet,
    RequestTimeout,
    S3liteError,
)
from ..orchestrator import Orchestrator
from ..receiver import Receiver
from ..receiver.buckets import Buckets, object_key
from ..receiver.manifest import ObjectInfo
from . import xml as s3xml

log = logging.getLogger(__name__)

ADMIN = "_admin"
META_PREFIX = "x-amz-meta-"
DEFAULT_BODY_IDLE_TIMEOUT = 60.0
MAX_KEYS = 1000

_S3_CODES: tuple[tuple[type[S3liteError], str], ...] = (
    (NoSuchBucket, "NoSuchBucket"),
    (NotFound, "NoSuchKey"),
    (BucketNotEmpty, "BucketNotEmpty"),
    (InvalidRange, "InvalidRange"),
    (BodyLengthMismatch, "IncompleteBody"),
    (InvalidBucketName, "InvalidBucketName"),
    (InvalidKey, "InvalidArgument"),
    (InvalidArgument, "InvalidArgument"),
    (JoinRefused, "InvalidRequest"),
    (MethodNotAllowed, "MethodNotAllowed"),
    (NotImplementedYet, "NotImplemented"),
    (RequestTimeout, "RequestTimeout"),
    (NodeUnavailable, "ServiceUnavailable"),
    (NotEnoughNodes, "ServiceUnavailable"),
)


def s3_code(exc: S3liteError) -> str:
    for cls, code in _S3_CODES:
        if isinstance(exc, cls):
            return code
    return "InternalError" if exc.http_status >= 500 else "InvalidRequest"


class GatewayApp(App):
    """ASGI application: the S3-style API of one cluster."""

    idle_route = (ADMIN, "idle")

    def __init__(
        self,
        receiver: Receiver,
        buckets: Buckets,
        orchestrator: Orchestrator,
        *,
        body_idle_timeout: float = DEFAULT_BODY_IDLE_TIMEOUT,
    ) -> None:
        super().__init__()
        self.receiver = receiver
        self.buckets = buckets
        self.orchestrator = orchestrator
        self.body_idle_timeout = body_idle_timeout

    async def reject(self, scope: Scope, send: Send, error: BadRequest) -> None:
        resource = scope.get("path", "/")
        await _send_error(send, 400, "InvalidURI", str(error), resource, uuid.uuid4().hex[:16])

    async def handle(self, request: Request, send: Send) -> None:
        request_id = uuid.uuid4().hex[:16]
        resource = "/" + "/".join(request.segments)
        try:
            if request.segments[0] == ADMIN:
                await self._admin(request, send)
            else:
                await self._s3(request, send, request_id)
        except S3liteError as exc:
            if isinstance(exc, NodeUnavailable | NotEnoughNodes):
                log.warning("%s %s failed: %s", request.method, resource, exc)
            headers = []
            if isinstance(exc, InvalidRange):
                headers.append(("content-range", f"bytes */{exc.size}"))
            if isinstance(exc, RequestTimeout | BodyLengthMismatch):
                headers.append(("connection", "close"))  # the body was not read to its end
            await _send_error(
                send,
                exc.http_status,
                s3_code(exc),
                str(exc),
                resource,
                request_id,
                headers,
                head=request.method == "HEAD",
            )
        except BadRequest as exc:
            await _send_error(send, 400, "InvalidRequest", str(exc), resource, request_id)
        except ClientDisconnected as exc:
            # Usually nobody is left to read this; a half-closed client still is.
            log.info("%s %s: %s", request.method, resource, exc)
            await _send_error(
                send,
                400,
                "IncompleteBody",
                str(exc),
                resource,
                request_id,
                [("connection", "close")],
            )

    # -- S3 --------------------------------------------------------------------------------

    async def _s3(self, request: Request, send: Send, request_id: str) -> None:
        bucket, *rest = request.segments
        key = "/".join(rest)
        method = request.method
        if not bucket:
            if method != "GET":
                raise _not_allowed(method, "/")
            body = s3xml.bucket_list(await self.buckets.list())
            await send_bytes(send, 200, body, [("content-type", "application/xml")])
            return
        if not key:
            await self._bucket(request, send, bucket)
            return
        stored = object_key(bucket, key)
        await self.buckets.check(bucket)
        if method == "PUT":
            await self._put(request, send, stored)
        elif method in ("GET", "HEAD"):
            await self._get(request, send, stored, head=method == "HEAD")
        elif method == "DELETE":
            with contextlib.suppress(NotFound):  # S3 deletes idempotently
                await self.receiver.delete_object(stored)
            await send_bytes(send, 204, headers=[("x-amz-request-id", request_id)])
        else:
            raise _not_allowed(method, f"/{bucket}/{key}")

    async def _bucket(self, request: Request, send: Send, bucket: str) -> None:
        method = request.method
        if method == "PUT":
            await self.buckets.create(bucket)
            await send_bytes(send, 200, headers=[("location", f"/{bucket}")])
        elif method == "HEAD":
            await self.buckets.check(bucket)
            await send_bytes(send, 200, head=True)
        elif method == "DELETE":
            await self.buckets.delete(bucket)
            await send_bytes(send, 204)
        elif method == "GET":
            await self.buckets.check(bucket)
            await self._list(request, send, bucket)
        else:
            raise _not_allowed(method, f"/{bucket}")

    async def _list(self, request: Request, send: Send, bucket: str) -> None:
        query = request.query
        prefix = query.get("prefix", "")
        start_after = query.get("start-after", "")
        token = query.get("continuation-token")
        encoding = query.get("encoding-type")
        if encoding not in (None, "url"):
            raise InvalidArgument(f"encoding-type must be 'url', got {encoding!r}")
        max_keys = _max_keys(query.get("max-keys", str(MAX_KEYS)))
        after = max(start_after, _decode_token(token)) if token else start_after
        base = f"{bucket}/"
        objects: list[ObjectInfo] = []
        next_token = None
        if max_keys > 0:
            page = await self.receiver.list_objects(
                base + prefix, start_after=base + after if after else "", limit=max_keys
            )
            objects = [_strip(info, len(base)) for info in page.objects]
            if page.is_truncated and objects:
                next_token = _encode_token(objects[-1].key)
        body = s3xml.object_list(
            bucket,
            prefix,
            objects,
            max_keys=max_keys,
            start_after=start_after,
            continuation=token,
            next_continuation=next_token,
            encoding=encoding,
        )
        await send_bytes(send, 200, body, [("content-type", "application/xml")])

    async def _put(self, request: Request, send: Send, stored: str) -> None:
        encoding = request.headers.get("content-encoding", "")
        signed = request.headers.get("x-amz-content-sha256", "")
        if "aws-chunked" in encoding or signed.startswith("STREAMING-"):
            raise NotImplementedYet(
                "aws-chunked (signed streaming) uploads are not supported yet; "
                "send the body plainly, with Content-Length or chunked transfer encoding"
            )
        declared = request.declared_length
        decoded = request.headers.get("x-amz-decoded-content-length")
        if declared is None and decoded is not None:
            if not (decoded.isascii() and decoded.isdigit()):
                raise InvalidArgument(f"x-amz-decoded-content-length {decoded!r} is not a size")
            declared = int(decoded)
        metadata = {
            name[len(META_PREFIX) :]: value
            for name, value in request.headers.items()
            if name.startswith(META_PREFIX)
        }
        info = await self.receiver.put_object(
            stored,
            self._body(request),
            declared,
            content_type=request.headers.get("content-type"),
            metadata=metadata,
        )
        await send_bytes(send, 200, headers=[("etag", f'"{info.etag}"')])

    async def _body(self, request: Request) -> AsyncIterator[bytes]:
        """The request body; a client that sends nothing for body_idle_timeout seconds is
        treated as gone, so a stalled upload cannot hold its parts open forever."""
        chunks = request.body()
        while True:
            try:
                with anyio.fail_after(self.body_idle_timeout):
                    chunk = await anext(chunks)
            except StopAsyncIteration:
                return
            except TimeoutError:
                raise RequestTimeout(
                    f"no body bytes for {self.body_idle_timeout:g} s; the upload was abandoned"
                ) from None
            yield chunk

    async def _get(self, request: Request, send: Send, stored: str, *, head: bool) -> None:
        if head:
            info = await self.receiver.head_object(stored)
            await send_head(send, 200, _object_headers(info, info.size))
            return
        read = await self.receiver.open_object(stored, http_range=request.headers.get("range"))
        try:
            headers = _object_headers(read.info, read.length)
            status = 200
            if read.span is not None:
                status = 206
                first, last = read.span
                headers.append(("content-range", f"bytes {first}-{last}/{read.info.size}"))
            await send_stream(send, status, read.chunks, headers, request.receive)
        finally:
            await read.aclose()

    # -- admin -----------------------------------------------------------------------------

    async def _admin(self, request: Request, send: Send) -> None:
        try:
            match request.method, request.segments[1:]:
                case "GET", ("status",):
                    await send_json(send, 200, await self.status())
                case "POST", ("join",):
                    payload = await request.json()
                    node = payload.get("node") if isinstance(payload, Mapping) else None
                    if not isinstance(node, str) or not node:
                        raise JoinRefused(f'join needs {{"node": "<url>"}}, got {payload!r}')
                    node_id = await self.orchestrator.add_node(node)
                    await send_json(send, 200, {"node_id": node_id})
                case _:
                    await send_json(
                        send, 404, {"error": "NoRoute", "message": "no such admin route"}
                    )
        except S3liteError as exc:
            await send_json(
                send, exc.http_status, {"error": type(exc).__name__, "message": str(exc)}
            )
        except BadRequest as exc:
            await send_json(send, 400, {"error": "BadRequest", "message": str(exc)})

    async def status(self) -> dict[str, Any]:
        """Nodes with their state, arcs and usage; the migration in progress, if any."""
        topology = self.orchestrator.topology
        ring = self.orchestrator.ring
        nodes = []
        for info in topology.nodes:
            entry: dict[str, Any] = {
                "id": info.node_id,
                "address": info.address,
                "state": info.state.value,
                "sectors": len(ring.sectors_of(info.node_id)),
                "arcs": [str(arc) for arc in ring.arcs_of(info.node_id)],
            }
            try:
                usage = await self.orchestrator.client(info.node_id).usage()
                entry["bytes"] = sum(usage.values())
            except S3liteError as exc:
                entry["bytes"] = None
                entry["error"] = str(exc)
            nodes.append(entry)
        migration = topology.migration
        return {
            "policy": topology.policy,
            "generation": topology.generation,
            "nodes": nodes,
            "migration": None
            if migration is None
            else {
                "node": migration.new_node,
                "phase": migration.phase.value,
                "sectors": len(migration.moves),
                "donors": {d: len(s) for d, s in migration.plan.by_donor().items()},
            },
            "requests_in_flight": self.in_flight.count - 1,
        }


def _object_headers(info: ObjectInfo, length: int) -> list[tuple[str, str]]:
    headers = [
        ("content-length", str(length)),
        ("content-type", info.content_type),
        ("etag", f'"{info.etag}"'),
        ("last-modified", email.utils.format_datetime(info.last_modified, usegmt=True)),
        ("accept-ranges", "bytes"),
    ]
    headers += [(META_PREFIX + name, value) for name, value in info.metadata.items()]
    return headers


def _max_keys(text: str) -> int:
    if not (text.isascii() and text.isdigit()):
        raise InvalidArgument(f"max-keys must be a non-negative integer, got {text!r}")
    return min(int(text), MAX_KEYS)


def _strip(info: ObjectInfo, prefix_length: int) -> ObjectInfo:
    return ObjectInfo(
        info.key[prefix_length:],
        info.size,
        info.etag,
        info.content_type,
        info.last_modified,
        info.metadata,
    )


def _encode_token(key: str) -> str:
    return base64.urlsafe_b64encode(key.encode()).decode()


def _decode_token(token: str) -> str:
    try:
        return base64.b64decode(token.encode(), altchars=b"-_", validate=True).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise InvalidArgument(f"continuation-token {token!r} is not one this server made") from None


def _not_allowed(method: str, resource: str) -> MethodNotAllowed:
    return MethodNotAllowed(f"{method} is not allowed on {resource}")


async def _send_error(
    send: Send,
    status: int,
    code: str,
    message: str,
    resource: str,
    request_id: str,
    headers: list[tuple[str, str]] | None = None,
    *,
    head: bool = False,
) -> None:
    body = s3xml.error(code, message, resource, request_id)
    all_headers = [("content-type", "application/xml"), ("x-amz-request-id", request_id)]
    await send_bytes(send, status, body, all_headers + (headers or []), head=head)
