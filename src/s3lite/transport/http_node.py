"""The storage node's HTTP server: a :class:`NodeClient` served as an ASGI app.

Routes (all under ``/v1``; sectors are decimal, names as the node accepts them)::

    GET  /health                      NodeHealth: {"node_id", "parts", "bytes_stored",
                                      "free_bytes", "full", "quarantined", "replaced"}
    GET  /usage                       {"sectors": {"<sector>": bytes}}
    PUT  /sectors/S/NAME              body = the part          -> PartStat
    GET  /sectors/S/NAME?start=a&end=b  inclusive, both optional -> the bytes
    GET  /sectors/S                   -> {"parts": [PartStat...]}
    POST /sectors/S/delete            {"names": [...]}          -> {"deleted": n}
    POST /sectors/S/NAME/link         {"to": T}                 -> {}
    POST /sectors/S/verify            {"names": [...]}   -> {"parts": {name: PartCheck}}
    GET  /quarantine                  -> {"parts": [QuarantinedPart...]}
    POST /clear-replaced              -> {}
    POST /export                      {"sectors": [...]}        -> zip stream
    POST /import                      body = a zip stream       -> {"parts", "bytes"}
    POST /drop                        {"sectors": [...]}        -> {}
    GET  /idle                        returns when no other request is in flight

Every ``/v1`` call must carry the cluster secret when the node has one (secret.py):
without it the answer is 401 ``Unauthorized`` and the connection is closed, the body
unread. Outside ``/v1``, for operators, with no secret::

    GET  /health/live                 200 while the process answers (touches nothing)
    GET  /health/ready                200 if the node answers its own health(), else 503
    GET  /metrics                     Prometheus text format (s3lite.metrics.NodeMetrics)

The app wraps any NodeClient (a StorageNode in practice), so it adds no behaviour of
its own: every rule (names, ranges, all-or-nothing imports) is the node's. A stream
that fails after its headers went out (a damaged block mid-part) is cut off: the
connection is dropped, so a client never takes a short body for a whole one.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import attrs

from ..asgi import (
    App,
    BadRequest,
    ClientDisconnected,
    Exchange,
    Request,
    Send,
    send_bytes,
    send_json,
    send_stream,
)
from ..errors import InvalidArgument, InvalidName, S3liteError
from ..metrics import CONTENT_TYPE, NodeMetrics
from .base import NodeClient, PartStat, SizedByteStream
from .secret import is_authorized
from .wire import encode_check, encode_error

log = logging.getLogger(__name__)


def stat_json(stat: PartStat) -> dict[str, Any]:
    return attrs.asdict(stat)


def _sector(text: str) -> int:
    if not text.isascii() or not text.isdigit():
        raise InvalidName(f"sector must be a decimal number, got {text!r}")
    return int(text)


def _int_list(value: object, what: str) -> list[int]:
    if not isinstance(value, list) or not all(
        isinstance(item, int) and not isinstance(item, bool) for item in value
    ):
        raise InvalidArgument(f"{what} must be a list of integers, got {value!r}")
    return value


_TEXT = [("content-type", "text/plain; charset=utf-8"), ("cache-control", "no-store")]


def route_name(request: Request) -> str:
    """A route's name for metrics (never a part name or sector: labels must stay few)."""
    match request.method, request.segments:
        case "GET", ("v1", ("health" | "usage") as name):
            return name
        case "POST", ("v1", ("export" | "import" | "drop") as name):
            return name
        case "PUT", ("v1", "sectors", _, _):
            return "put_part"
        case "GET", ("v1", "sectors", _, _):
            return "get_part"
        case "GET", ("v1", "sectors", _):
            return "list_parts"
        case "POST", ("v1", "sectors", _, "delete"):
            return "delete_parts"
        case "POST", ("v1", "sectors", _, _, "link"):
            return "link_part"
    return "other"


class NodeApp(App):
    """ASGI application serving one storage node."""

    idle_route = ("v1", "idle")

    def __init__(
        self,
        node: NodeClient,
        metrics: NodeMetrics | None = None,
        *,
        secret: str | None = None,
    ) -> None:
        super().__init__()
        self.node = node
        self.metrics = metrics or NodeMetrics()
        self._secret = secret

    async def handle(self, request: Request, send: Send) -> None:
        match request.method, request.segments:
            case (("GET" | "HEAD"), ("health", "live")):
                await send_bytes(send, 200, b"ok: alive\n", _TEXT, head=request.method == "HEAD")
            case (("GET" | "HEAD"), ("health", "ready")):
                await self._ready(send, head=request.method == "HEAD")
            case "GET", ("metrics",):
                await self._metrics(send)
            case _ if self._secret is not None and not is_authorized(
                request.headers.get("authorization"), self._secret
            ):
                await self._refuse(request, send)
            case _:
                await self._counted(request, send)

    async def _refuse(self, request: Request, send: Send) -> None:
        """401 without reading the body; the connection closes so that an unread body
        is never taken for the next request."""
        log.warning("refused %s /%s: no valid cluster secret", request.method,
                    "/".join(request.segments[:2]))  # fmt: skip
        body = {"error": "Unauthorized", "message": "this node needs the cluster secret"}
        await send_json(send, 401, body, [("connection", "close")])

    async def _ready(self, send: Send, *, head: bool) -> None:
        try:
            health = await self.node.health()
        except S3liteError as exc:
            await send_bytes(send, 503, f"not ready: {exc}\n".encode(), _TEXT, head=head)
            return
        await send_bytes(send, 200, f"ok: node {health.node_id}\n".encode(), _TEXT, head=head)

    async def _metrics(self, send: Send) -> None:
        metrics = self.metrics
        try:
            health = await self.node.health()
        except S3liteError:
            pass  # a closed node: its storage figures keep their last values
        else:
            metrics.stored_bytes.set(health.bytes_stored)
            metrics.stored_parts.set(health.parts)
            metrics.free_bytes.set(health.free_bytes)
            metrics.full.set(health.full)
            metrics.quarantined.set(health.quarantined)
        await send_bytes(send, 200, metrics.render(), [("content-type", CONTENT_TYPE)])

    async def _counted(self, request: Request, send: Send) -> None:
        exchange = Exchange(request, send)
        route = route_name(request)
        started = time.monotonic()
        try:
            await self._answer(exchange.request, exchange.send)
        finally:
            self.metrics.http.observe(
                route,
                exchange.status,
                time.monotonic() - started,
                exchange.bytes_in,
                exchange.bytes_out,
            )

    async def _answer(self, request: Request, send: Send) -> None:
        try:
            await self._dispatch(request, send)
        except S3liteError as exc:
            status, body = encode_error(exc)
            await send_json(send, status, body)
        except BadRequest as exc:
            await send_json(send, 400, {"error": "BadRequest", "message": str(exc)})
        except ClientDisconnected:
            log.info("client left during %s %s", request.method, "/".join(request.segments))

    async def _dispatch(self, request: Request, send: Send) -> None:
        node = self.node
        match request.method, request.segments:
            case "GET", ("v1", "health"):
                health = await node.health()
                await send_json(send, 200, attrs.asdict(health))
            case "GET", ("v1", "usage"):
                usage = await node.usage()
                await send_json(send, 200, {"sectors": {str(s): b for s, b in usage.items()}})
            case "PUT", ("v1", "sectors", sector, name):
                # The messages as they come (arena runs, lean_http.py): the node's writer
                # gathers them into its batches without joining them.
                body = request.body()
                stat = await node.put_part(_sector(sector), name, body)
                await send_json(send, 200, stat_json(stat))
            case "GET", ("v1", "sectors", sector, name):
                start, end = _optional_int(request, "start"), _optional_int(request, "end")
                stream = await node.get_part(_sector(sector), name, start, end)
                try:
                    octets = [("content-type", "application/octet-stream")]
                    if isinstance(stream, SizedByteStream):
                        octets.append(("content-length", str(stream.size)))
                    await send_stream(send, 200, stream, octets, request.receive)
                finally:
                    await stream.aclose()
            case "GET", ("v1", "sectors", sector):
                parts = await node.list_parts(_sector(sector))
                await send_json(send, 200, {"parts": [stat_json(stat) for stat in parts]})
            case "POST", ("v1", "sectors", sector, "delete"):
                names = _names(await request.json())
                deleted = await node.delete_parts(_sector(sector), names)
                await send_json(send, 200, {"deleted": deleted})
            case "POST", ("v1", "sectors", sector, "verify"):
                checks = await node.verify_parts(_sector(sector), _names(await request.json()))
                found = {name: encode_check(check) for name, check in checks.items()}
                await send_json(send, 200, {"parts": found})
            case "GET", ("v1", "quarantine"):
                kept = await node.list_quarantined()
                await send_json(send, 200, {"parts": [attrs.asdict(part) for part in kept]})
            case "POST", ("v1", "clear-replaced"):
                await node.clear_replaced()
                await send_json(send, 200, {})
            case "POST", ("v1", "sectors", sector, name, "link"):
                target = _field(await request.json(), "to")
                (to_sector,) = _int_list([target], "to")
                await node.link_part(name, _sector(sector), to_sector)
                await send_json(send, 200, {})
            case "POST", ("v1", "export"):
                sectors = _int_list(_field(await request.json(), "sectors"), "sectors")
                archive = await node.export_sectors(sectors)
                try:
                    zipped = [("content-type", "application/zip")]
                    await send_stream(send, 200, archive, zipped, request.receive)
                finally:
                    await archive.aclose()
            case "POST", ("v1", "import"):
                result = await node.import_sectors(request.body())
                await send_json(send, 200, attrs.asdict(result))
            case "POST", ("v1", "drop"):
                sectors = _int_list(_field(await request.json(), "sectors"), "sectors")
                await node.drop_sectors(sectors)
                await send_json(send, 200, {})
            case _:
                await send_json(
                    send,
                    404,
                    {
                        "error": "NoRoute",
                        "message": f"no route {request.method} /{'/'.join(request.segments)}",
                    },
                )


def _optional_int(request: Request, name: str) -> int | None:
    """An integer query parameter; its range is the node's to judge (InvalidRange)."""
    value = request.query.get(name)
    if value is None:
        return None
    digits = value.removeprefix("-")
    if not digits.isascii() or not digits.isdigit():
        raise BadRequest(f"{name} must be an integer, got {value!r}")
    return int(value)


def _names(payload: object) -> list[str]:
    names = _field(payload, "names")
    if not isinstance(names, list) or not all(isinstance(name, str) for name in names):
        raise InvalidArgument(f"names must be a list of strings, got {names!r}")
    return names


def _field(payload: object, name: str) -> object:
    """``payload[name]`` of a JSON object body; InvalidArgument for anything else."""
    if not isinstance(payload, dict) or name not in payload:
        raise InvalidArgument(f'the body must be a JSON object with "{name}", got {payload!r}')
    return payload[name]
