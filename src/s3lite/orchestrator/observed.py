"""The one place every node call goes through: failures feed liveness, all feed metrics.

:class:`ObservedClient` wraps a transport's NodeClient (``orchestrator.client(id)``
returns one). It adds no behaviour a caller could notice: each method forwards to the
wrapped client and returns or raises what it did. On the way it

* marks the node down on NodeUnavailable (at once, see liveness.py) and full on
  DiskFull; a stream that breaks mid-way (NodeUnavailable from the stream) counts
  the same;
* counts the call, its error class, its latency (to the return; for a stream, to its
  opening) and the body bytes each way, per node.

A NodeUnavailable that names *another* node is not held against this one: an import
whose body is a donor's export re-raises the donor's failure, and the recipient did
nothing wrong.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Collection, Mapping
from typing import TypeVar

from ..buffers import Buffer
from ..errors import DiskFull, NodeUnavailable
from ..metrics import NodeCallMetrics
from ..transport.base import (
    ByteStream,
    ImportResult,
    NodeClient,
    NodeHealth,
    PartCheck,
    PartStat,
    QuarantinedPart,
)
from .liveness import Liveness
from .ring import NodeId

T = TypeVar("T")
AnyBuffer = TypeVar("AnyBuffer", bound=Buffer)
"""A body chunk counted as it passes, given back with its own type."""


class ObservedClient:
    """A :class:`NodeClient` that reports to liveness and metrics (see module doc)."""

    def __init__(
        self,
        inner: NodeClient,
        node_id: NodeId,
        liveness: Liveness,
        metrics: NodeCallMetrics,
    ) -> None:
        self.inner = inner
        self.node_id = node_id
        self._liveness = liveness
        self._metrics = metrics

    @property
    def address(self) -> str:
        return self.inner.address

    def _blames(self, exc: NodeUnavailable) -> bool:
        return exc.node in (self.node_id, self.inner.address)

    def report(self, method: str, exc: BaseException) -> None:
        """Count ``exc`` raised by ``method`` and feed liveness (also for streams)."""
        if not isinstance(exc, Exception):
            return  # cancellation is the caller's doing, not the node's
        self._metrics.errors.labels(self.node_id, method, type(exc).__name__).inc()
        if isinstance(exc, NodeUnavailable) and self._blames(exc):
            self._liveness.call_failed(self.node_id, exc.reason)
        elif isinstance(exc, DiskFull):
            self._liveness.disk_full(self.node_id, str(exc))

    async def _call(self, method: str, call: Awaitable[T]) -> T:
        self._metrics.calls.labels(self.node_id, method).inc()
        started = time.monotonic()
        try:
            return await call
        except BaseException as exc:
            self.report(method, exc)
            raise
        finally:
            self._metrics.duration.labels(self.node_id, method).observe(time.monotonic() - started)

    async def _counted(self, body: AsyncIterable[AnyBuffer]) -> AsyncIterator[AnyBuffer]:
        sent = self._metrics.sent.labels(self.node_id)
        async for chunk in body:
            sent.inc(len(chunk))
            yield chunk

    def _stream(self, method: str, stream: ByteStream) -> ByteStream:
        return ObservedStream(stream, self, method)

    # -- the NodeClient methods ---------------------------------------------------------------

    async def health(self) -> NodeHealth:
        return await self._call("health", self.inner.health())

    async def usage(self) -> Mapping[int, int]:
        return await self._call("usage", self.inner.usage())

    async def put_part(
        self, sector: int, name: str, body: AsyncIterable[Buffer], *, length: int | None = None
    ) -> PartStat:
        upload = self.inner.put_part(sector, name, self._counted(body), length=length)
        return await self._call("put_part", upload)

    async def get_part(
        self, sector: int, name: str, start: int | None = None, end: int | None = None
    ) -> ByteStream:
        stream = await self._call("get_part", self.inner.get_part(sector, name, start, end))
        return self._stream("get_part", stream)

    async def delete_parts(self, sector: int, names: Collection[str]) -> int:
        return await self._call("delete_parts", self.inner.delete_parts(sector, names))

    async def list_parts(self, sector: int) -> list[PartStat]:
        return await self._call("list_parts", self.inner.list_parts(sector))

    async def verify_parts(self, sector: int, names: Collection[str]) -> dict[str, PartCheck]:
        return await self._call("verify_parts", self.inner.verify_parts(sector, names))

    async def list_quarantined(self) -> list[QuarantinedPart]:
        return await self._call("list_quarantined", self.inner.list_quarantined())

    async def clear_replaced(self) -> None:
        await self._call("clear_replaced", self.inner.clear_replaced())

    async def link_part(self, name: str, from_sector: int, to_sector: int) -> None:
        await self._call("link_part", self.inner.link_part(name, from_sector, to_sector))

    async def export_sectors(self, sectors: Collection[int]) -> ByteStream:
        stream = await self._call("export_sectors", self.inner.export_sectors(sectors))
        return self._stream("export_sectors", stream)

    async def import_sectors(self, archive: AsyncIterable[Buffer]) -> ImportResult:
        return await self._call("import_sectors", self.inner.import_sectors(self._counted(archive)))

    async def drop_sectors(self, sectors: Collection[int]) -> None:
        await self._call("drop_sectors", self.inner.drop_sectors(sectors))


class ObservedStream:
    """A node's response stream that counts its bytes and reports a mid-way failure."""

    def __init__(self, inner: ByteStream, client: ObservedClient, method: str) -> None:
        self._inner = inner
        self._client = client
        self._method = method
        self._received = client._metrics.received.labels(client.node_id)

    def __aiter__(self) -> ObservedStream:
        return self

    async def __anext__(self) -> Buffer:
        try:
            chunk = await self._inner.__anext__()
        except StopAsyncIteration:
            raise
        except BaseException as exc:
            self._client.report(self._method, exc)
            raise
        self._received.inc(len(chunk))
        return chunk

    async def aclose(self) -> None:
        await self._inner.aclose()
