"""The seam between the app and the handlers: what a handler is given.

A handler is ``async def handler(call: Call, send: Send) -> None``: the request has
been authenticated, routed and allowed by the time it runs. A handler module exports
``HANDLERS: dict[str, Handler]`` keyed by S3 operation name; the app merges them, and
``router.IMPLEMENTED`` must name exactly those operations (a test checks it). To add an
operation: write its handler in the module of its family, add it to that module's
HANDLERS and its name to router.IMPLEMENTED.

Errors are raised, never sent: the app maps every exception through errors.TABLE.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Awaitable, Callable, Mapping

import attrs

from ..asgi import InFlight, Request, Send, send_bytes
from ..errors import InvalidArgument
from ..orchestrator import Orchestrator
from ..receiver import Receiver
from ..receiver.buckets import Buckets
from .auth.keystore import KeyStore
from .auth.payload import Payload, request_payload
from .auth.policy import Identity
from .auth.sigv4 import Verified
from .router import Operation

DEFAULT_REGION = "us-east-1"


@attrs.frozen
class Services:
    """What the handlers act on; one per gateway."""

    receiver: Receiver
    buckets: Buckets
    orchestrator: Orchestrator
    keys: KeyStore
    in_flight: InFlight
    body_idle_timeout: float
    region: str = DEFAULT_REGION
    """The one region of the cluster: where GetBucketLocation and HeadBucket say every
    bucket is (requests signed for any region are accepted all the same)."""


@attrs.frozen
class Call:
    """One authenticated, routed and allowed request."""

    request: Request
    operation: Operation
    identity: Identity
    verified: Verified
    request_id: str
    services: Services

    @property
    def bucket(self) -> str:
        """The operation's bucket (handlers of bucket and object operations only)."""
        assert self.operation.bucket is not None
        return self.operation.bucket

    @property
    def key(self) -> str:
        """The operation's object key (handlers of object operations only)."""
        assert self.operation.key is not None
        return self.operation.key

    @property
    def owner_id(self) -> str:
        """The access key that owns the call's bucket (root's for a bucket from before
        keys existed): the Owner listings and ACLs show."""
        keys = self.services.keys
        return keys.owner(self.bucket) or keys.root.access_key

    def payload(self, *, defer_sha256: bool = False) -> Payload:
        """The request body, checked as its signature says (see auth.payload; with
        ``defer_sha256`` the caller checks ``Payload.sha256``)."""
        return request_payload(
            self.request,
            self.verified,
            idle_timeout=self.services.body_idle_timeout,
            defer_sha256=defer_sha256,
        )

    async def read_body(self, limit: int) -> bytes:
        """The whole (small) body: XML documents, JSON. InvalidArgument past ``limit``."""
        data = bytearray()
        async for chunk in self.payload().chunks:
            data += chunk
            if len(data) > limit:
                raise InvalidArgument(f"this request's body is at most {limit} bytes")
        return bytes(data)


Handler = Callable[[Call, Send], Awaitable[None]]


async def send_xml(send: Send, body: bytes, status: int = 200) -> None:
    await send_bytes(send, status, body, [("content-type", "application/xml")])


MAX_COUNT_DIGITS = 9


def count_param(query: Mapping[str, str], name: str, *, default: int, maximum: int) -> int:
    """A count such as max-keys: a non-negative integer, clipped to ``maximum`` (as S3
    does: max-keys=5000 lists 1,000); a number too long to matter is the maximum too.
    InvalidArgument for anything that is not digits."""
    text = query.get(name)
    if text is None:
        return default
    if not (text.isascii() and text.isdigit()):
        raise InvalidArgument(f"{name} must be a non-negative integer, got {text[:40]!r}")
    return maximum if len(text) > MAX_COUNT_DIGITS else min(int(text), maximum)


def encode_token(key: str) -> str:
    """A continuation token: the last key (or bucket) of a page, opaque to clients."""
    return base64.urlsafe_b64encode(key.encode()).decode()


def decode_token(token: str) -> str:
    try:
        return base64.b64decode(token.encode(), altchars=b"-_", validate=True).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise InvalidArgument(
            f"continuation-token {token[:80]!r} is not one this server made"
        ) from None
