"""The node protocol's encodings shared by the HTTP server and client: errors, and
the results of ``verify_parts``.

An error travels as a JSON body ``{"error": <class name>, "message": ..., <fields>}``
with the exception's HTTP status, and is rebuilt as the same typed exception on the
client side, fields included (PartNotFound's node, sector and name; DamagedPart's
node, sector, name and reason; InvalidRange's size), so code above the transport
cannot tell a remote node from a local one.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .. import errors
from ..errors import DamagedPart, InvalidRange, NodeUnavailable, PartNotFound, S3liteError
from .base import PartCheck, PartState

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
    elif isinstance(exc, DamagedPart):
        body.update(node=exc.node_id, sector=exc.sector, name=exc.name, reason=exc.reason)
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
        if kind == "DamagedPart":
            node, sector, name = str(body["node"]), int(body["sector"]), str(body["name"])
            return DamagedPart(node, sector, name, str(body["reason"]))
        if kind == "InvalidRange":
            return InvalidRange(message, size=int(body["size"]))
    except (KeyError, TypeError, ValueError):
        return NodeUnavailable(address, f"malformed {kind} error: {body!r}")
    if kind in _PLAIN:
        return _PLAIN[kind](message)
    return NodeUnavailable(address, f"HTTP {status}: {kind}: {message}")


def encode_check(check: PartCheck) -> dict[str, Any]:
    """A PartCheck as JSON; the checksum as 16 hex digits (a JSON number may not hold
    64 bits exactly in every client)."""
    checksum = None if check.checksum is None else f"{check.checksum:016x}"
    return {"state": str(check.state), "length": check.length, "checksum": checksum,
            "reason": check.reason}  # fmt: skip


def decode_check(body: Mapping[str, Any]) -> PartCheck:
    """The PartCheck of :func:`encode_check`; ValueError, KeyError or TypeError if
    ``body`` is not one."""
    checksum = body["checksum"]
    length = body["length"]
    return PartCheck(
        PartState(body["state"]),
        None if length is None else int(length),
        None if checksum is None else int(checksum, 16),
        None if body["reason"] is None else str(body["reason"]),
    )
