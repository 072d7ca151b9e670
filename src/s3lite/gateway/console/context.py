"""What a console API handler is given: the request, its session and key, the
gateway's services, and the one way to check a call against the policy
(:meth:`ConsoleCall.allow`)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import attrs

from ...asgi import MAX_JSON_BODY, BadRequest, Request
from ...errors import AccessDenied, InvalidArgument
from ...receiver.buckets import check_bucket
from ..auth import sigv4
from ..auth.policy import NOBODY, Identity, allowed
from ..call import Call, Services
from ..router import ADMIN_PREFIX, Operation, route
from .sessions import Session


@attrs.define
class Visit:
    """What the gateway's request log line says about a console request."""

    access_key: str = "-"
    operation: str = "Console"


@attrs.frozen
class ConsoleCall:
    """One API call of a logged-in session."""

    request: Request
    route: tuple[str, ...]
    """The path after ``/_console/api/``."""
    session: Session
    identity: Identity
    services: Services
    request_id: str
    visit: Visit

    def query(self, name: str, default: str | None = None) -> str:
        """A query parameter; InvalidArgument if it is missing and has no default."""
        value = self.request.query.get(name, default)
        if value is None:
            raise InvalidArgument(f"this call needs the query parameter {name!r}")
        return value

    def allow(
        self,
        method: str,
        expected: str,
        bucket: str | None = None,
        key: str | None = None,
        query: Mapping[str, str] | None = None,
    ) -> Operation:
        """The S3 (or admin) operation this call stands for, once the session's key is
        allowed to do it: ``method`` on ``/bucket/key`` (or ``/_admin/<key>`` for
        ``bucket=ADMIN_PREFIX``) with ``query``, routed as a signed request would be
        and checked by the same policy. AccessDenied if the key may not."""
        if bucket is not None and bucket != ADMIN_PREFIX:
            check_bucket(bucket)
        if key is not None and not key:
            raise InvalidArgument("an object key is at least one character long")
        path = "/" if bucket is None else f"/{bucket}" + ("" if key is None else f"/{key}")
        operation = route(method, path, query or {}, {})
        if operation.name != expected:
            raise InvalidArgument(f"{path} is not an object this call can reach")
        keys = self.services.keys
        target = operation.bucket
        rights = keys.rights(self.identity.access_key, target) if target else NOBODY
        if not allowed(self.identity, operation.access, rights):
            raise AccessDenied(f"this key may not {operation.access.value} {bucket or ''}".rstrip())
        self.visit.operation = f"Console.{operation.name}"
        return operation

    def gateway_call(self, operation: Operation) -> Call:
        """The call as the gateway's own handlers take it: its body is read like an
        unsigned S3 payload (bounded by the gateway's body idle timeout); the session
        and the CSRF check stand in for the signature."""
        verified = sigv4.Verified(self.identity.access_key, sigv4.UNSIGNED_PAYLOAD, "", b"", "", "")
        return Call(
            self.request, operation, self.identity, verified, self.request_id, self.services
        )

    async def read_json(self, operation: Operation) -> Any:
        """The body as JSON (at most MAX_JSON_BODY bytes; None if empty)."""
        body = await self.gateway_call(operation).read_body(MAX_JSON_BODY)
        try:
            return json.loads(body or b"null")
        except ValueError as exc:
            raise BadRequest(f"the body is not valid JSON: {exc}") from exc
