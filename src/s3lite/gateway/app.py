"""The gateway's ASGI app: every request is authenticated, routed, allowed, dispatched
and logged, in that order, and every error goes through the one table (errors.py).

1. A request id (16 hex characters) is made; it is sent as ``x-amz-request-id`` on
   every response and as the RequestId of an error body.
2. Authentication: SigV4 in the Authorization header or a presigned query; no
   credentials at all is AccessDenied, an unknown key InvalidAccessKeyId.
3. Routing (router.py): one Operation, or an error; nothing falls through.
4. Permission (auth/policy.py): the key's rights on the bucket (and on the copy
   source's bucket).
5. Dispatch to the operation's handler; an operation without one is answered 501
   NotImplemented and changes nothing.
6. One log line at info level (structured, s3lite.logs): request_id, access_key,
   operation, method, path, status, bytes_in, bytes_out, duration_ms and outcome
   (complete; client_gone when the client left before the end of the response;
   broken when the response broke off after its headers). Never a query string (a
   presigned URL's carries its signature), a header value or a secret. The same
   figures go to the metrics (s3lite_requests_total and friends).

Health checks (``/health/live``, ``/health/ready``, ops.py) are answered before all
this when the request is unsigned, and are neither logged nor counted. The web console
(``/_console/...``, console/) takes steps 2 to 5 itself: it is not S3, and its
requests carry a session cookie instead of a signature; they are logged and counted
like any other (operation ``Console`` or ``Console.<S3 operation>``).

An error answered before the request body was read to its end closes the connection
(``Connection: close``): with ``Expect: 100-continue`` the client never sends the body
(uvicorn sends 100 Continue only when the app first reads it), and without it the
rest of the body would have to be read and thrown away, so in both cases the next
request on a reused connection would be read from the middle of this one's body.

Keys in the path are percent-decoded once, so any UTF-8 works, including ``/``, spaces
and ``%``; they never touch the filesystem.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable

import attrs

from ..asgi import (
    App,
    BadRequest,
    Exchange,
    Message,
    Request,
    ResponseAborted,
    Scope,
    Send,
    send_bytes,
    send_head,
    send_json,
)
from ..errors import (
    AccessDenied,
    InvalidAccessKeyId,
    NodeUnavailable,
    NotEnoughNodes,
    NotImplementedYet,
)
from ..logs import event
from ..logs import fields_extra as _fields
from ..metrics import GatewayMetrics
from ..orchestrator import Orchestrator
from ..receiver import Receiver
from ..receiver.buckets import Buckets
from . import acl, admin, bucket, copy, delete, get, multipart, put, xml
from . import list as listing
from .auth import sigv2, sigv4
from .auth.keystore import KeyStore
from .auth.policy import NOBODY, Identity, allowed
from .call import DEFAULT_REGION, Call, Handler, Services
from .console import PREFIX as CONSOLE_PREFIX
from .console import Console, Visit
from .errors import entry_of, is_known
from .ops import HEALTH_PATHS, answer_health, is_unsigned
from .router import ADMIN_PREFIX, Access, Operation, route, virtual_bucket

log = logging.getLogger(__name__)

DEFAULT_BODY_IDLE_TIMEOUT = 60.0

HANDLERS: dict[str, Handler] = {
    **bucket.HANDLERS,
    **get.HANDLERS,
    **put.HANDLERS,
    **delete.HANDLERS,
    **listing.HANDLERS,
    **multipart.HANDLERS,
    **copy.HANDLERS,
    **acl.HANDLERS,
    **admin.HANDLERS,
}
"""One handler per implemented operation (router.IMPLEMENTED; a test checks they agree)."""


class _Exchange(Exchange):
    """An exchange whose response carries the request id (x-amz-request-id)."""

    def __init__(self, request: Request, send: Send, request_id: str) -> None:
        super().__init__(request, send)
        self._id = request_id.encode()

    async def send(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            headers = [*message.get("headers", []), (b"x-amz-request-id", self._id)]
            message = {**message, "headers": headers}
        await super().send(message)


class GatewayApp(App):
    """ASGI application: the S3 API of one cluster, and its admin API."""

    idle_route = None  # /_admin/idle is an admin route, behind the root key

    def __init__(
        self,
        receiver: Receiver,
        buckets: Buckets,
        orchestrator: Orchestrator,
        keys: KeyStore,
        *,
        body_idle_timeout: float = DEFAULT_BODY_IDLE_TIMEOUT,
        domain: str | None = None,
        region: str = DEFAULT_REGION,
        clock: Callable[[], float] = time.time,
        metrics: GatewayMetrics | None = None,
    ) -> None:
        super().__init__()
        self.services = Services(
            receiver, buckets, orchestrator, keys, self.in_flight, body_idle_timeout, region
        )
        self.domain = domain
        self.clock = clock
        self.metrics = metrics or orchestrator.metrics
        """Where requests are counted (the cluster's registry, by default)."""
        self.console = Console(self.services, clock=clock)

    async def reject(self, scope: Scope, send: Send, error: BadRequest) -> None:
        request_id = uuid.uuid4().hex[:16]
        body = xml.error("InvalidURI", str(error), scope.get("path", "/"), request_id)
        headers = [("content-type", "application/xml"), ("x-amz-request-id", request_id)]
        await send_bytes(send, 400, body, headers)

    async def handle(self, request: Request, send: Send) -> None:
        if request.segments in HEALTH_PATHS and is_unsigned(request):
            await answer_health(request, send, self.services.orchestrator)
            return
        request_id = uuid.uuid4().hex[:16]
        started = time.monotonic()
        exchange = _Exchange(request, send, request_id)
        request = exchange.request
        path = "/" + "/".join(request.segments)
        access_key = "-"
        operation = "-"
        self.metrics.http.in_flight.inc()
        console = Visit() if self._is_console(request) else None
        try:
            if console is not None:
                await self.console.handle(request, exchange.send, request_id, console)
                return
            lifted = sigv2.query_headers(request.query, request.headers)
            if lifted is not None:
                request = attrs.evolve(request, query=lifted[0], headers=lifted[1])
            identity, verified = self._authenticate(request)
            access_key = identity.access_key
            op = route(request.method, path, request.query, request.headers, domain=self.domain)
            operation = op.name
            self._admit(identity, op)
            call = Call(request, op, identity, verified, request_id, self.services)
            await HANDLERS[op.name](call, exchange.send)
        except ResponseAborted:
            exchange.broken = True
            raise
        except Exception as exc:
            if exchange.started:
                exchange.broken = True
                raise ResponseAborted(f"failed after the response started: {exc}") from exc
            await self._error(request, exchange, exc, path, request_id)
        finally:
            if console is not None:
                access_key, operation = console.access_key, console.operation
            seconds = time.monotonic() - started
            self.metrics.http.in_flight.dec()
            self.metrics.http.observe(
                operation, exchange.status, seconds, exchange.bytes_in, exchange.bytes_out
            )
            event(
                log,
                logging.INFO,
                f"{request.method} {path} {exchange.status}",
                request_id=request_id,
                access_key=access_key,
                operation=operation,
                method=request.method,
                path=path,
                status=exchange.status,
                bytes_in=exchange.bytes_in,
                bytes_out=exchange.bytes_out,
                duration_ms=round(seconds * 1000, 1),
                outcome=exchange.outcome,
            )

    def _is_console(self, request: Request) -> bool:
        """``/_console/...`` addressed to the gateway itself (with ``--domain``, the
        same path on a bucket's virtual host is an object key of that bucket)."""
        if request.segments[0] != CONSOLE_PREFIX:
            return False
        host = {"host": request.headers.get("host", "")}
        return self.domain is None or route("GET", "/", {}, host, domain=self.domain).bucket is None

    def _authenticate(self, request: Request) -> tuple[Identity, sigv4.Verified]:
        """Who signed the request: SigV4 (header or presigned query), or a SigV2
        presigned URL (what boto3 and the aws cli presign by default)."""
        now = self.clock()
        method, path, query, headers = (
            request.method, request.raw_path, request.raw_query, request.headers
        )  # fmt: skip
        bucket = virtual_bucket(headers.get("host"), self.domain)
        claim = sigv2.parse(method, path, query, headers, now=now, bucket=bucket) or sigv4.parse(
            method, path, query, headers, now=now
        )
        if claim is None:
            raise AccessDenied("the request carries no credentials: sign it with AWS SigV4")
        keys = self.services.keys
        secret = keys.secret(claim.access_key)
        if secret is None:
            raise InvalidAccessKeyId(f"the access key id {claim.access_key[:128]!r} does not exist")
        if isinstance(claim, sigv2.Claim):
            return keys.identity(claim.access_key), sigv2.verify(claim, secret)
        return keys.identity(claim.access_key), sigv4.verify(claim, secret)

    def _admit(self, identity: Identity, op: Operation) -> None:
        """AccessDenied unless the key may do ``op``; then NotImplemented if s3lite
        has no handler for it (so an unknown key learns nothing more)."""
        keys = self.services.keys
        rights = keys.rights(identity.access_key, op.bucket) if op.bucket else NOBODY
        if not allowed(identity, op.access, rights):
            raise AccessDenied(f"this key may not {op.access.value} {op.bucket or ''}".rstrip())
        source = op.copy_source
        if source is not None:
            source_rights = keys.rights(identity.access_key, source.bucket)
            if not allowed(identity, Access.READ, source_rights):
                raise AccessDenied(
                    f"this key may not read the copy source's bucket {source.bucket}"
                )
        if not op.implemented:
            raise NotImplementedYet(f"{op.name} is not implemented by s3lite; nothing was changed")

    async def _error(
        self, request: Request, exchange: _Exchange, exc: Exception, path: str, request_id: str
    ) -> None:
        entry = entry_of(exc)
        message = str(exc)
        if not is_known(exc):
            log.exception(
                "%s %s failed", request.method, path, extra=_fields(request_id=request_id)
            )
            message = f"internal error; the gateway's log has the details under {request_id}"
        elif isinstance(exc, NodeUnavailable | NotEnoughNodes):
            event(log, logging.WARNING, f"{request.method} {path}: {exc}", request_id=request_id)
        headers = entry.headers(exc)
        if not exchange.body_done and ("connection", "close") not in headers:
            headers = [*headers, ("connection", "close")]
        send = exchange.send
        if request.segments[0] in (ADMIN_PREFIX, CONSOLE_PREFIX):
            error = {"error": type(exc).__name__, "message": message}
            await send_json(send, entry.status, error, headers)
        elif entry.status == 304:
            await send_head(send, 304, headers)
        else:
            body = xml.error(entry.code, message, path, request_id)
            headers = [("content-type", "application/xml"), *headers]
            await send_bytes(send, entry.status, body, headers, head=request.method == "HEAD")
