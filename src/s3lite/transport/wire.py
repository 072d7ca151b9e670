"""The node protocol's error encoding, shared by the HTTP server and client.

An error travels as a JSON body ``{"error": <class name>, "message": ..., <fields>}``
with the exception's HTTP status, and is rebuilt as the same typed exception on the
client side, fields included (PartNotFound's node, sector and name; InvalidRange's
size), so code above the transport cannot tell a remote node from a local one.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .. import errors
from ..errors import InvalidRange, NodeUnavailable, PartNotFound, S3liteError

_PLAIN: Mapping[str, type[S3liteError]] = {
    cls.__name__: cls
    for cls in (
        errors.InvalidName,
        errors.DiskFull,
        errors.CorruptArchive,
        errors.InvalidArgument,
        errors.DataLoss,
    )
}


def encode_error(exc: S3liteError) -> tuple[int, dict[str, Any]]:
    """(status, JSON body) describing ``exc``."""
    body: dict[str, Any] = {"error": type(exc).__name__, "message": str(exc)}
    if isinstance(exc, PartNotFound):
        body.update(node=exc.node_id, sector=exc.sector, name=exc.name)
    elif isinstance(exc, InvalidRange):
        body.update(size=exc.size)
    return exc.http_status, body


def decode_error(status: int, body: object, address: str) -> S3liteError:
    """The typed exception a node's error response stands for."""
    if not isinstance(body, Mapping) or not isinstance(body.get("error"), str):
        return NodeUnavailable(address, f"HTTP {status} without an s3lite error body")
    kind, message = body["error"], str(body.get("message", ""))
    try:
        if kind == "PartNotFound":
            return PartNotFound(str(body["node"]), int(body["sector"]), str(body["name"]))
        if kind == "InvalidRange":
            return InvalidRange(message, size=int(body["size"]))
    except (KeyError, TypeError, ValueError):
        return NodeUnavailable(address, f"malformed {kind} error: {body!r}")
    if kind in _PLAIN:
        return _PLAIN[kind](message)
    return NodeUnavailable(address, f"HTTP {status}: {kind}: {message}")
