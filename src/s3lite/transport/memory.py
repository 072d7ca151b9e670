"""The in-memory transport: nodes live in this process and are called directly.

Any object implementing :class:`NodeClient` can be registered under an address (a
``StorageNode`` registers under ``memory://<node id>``). Clients resolve their address
on every call, as a network client would: a node that is unregistered (stopped) is
unreachable until something registers at that address again (restarted). No bytes are
copied, so the embedded default and the tests run the receiver and orchestrator code
paths of the network transport minus the sockets.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, Collection, Mapping

from ..buffers import Buffer
from ..errors import NodeUnavailable
from .base import (
    ByteStream,
    ImportResult,
    NodeClient,
    NodeHealth,
    PartCheck,
    PartStat,
    QuarantinedPart,
)


class MemoryTransport:
    """Addresses mapped to in-process nodes."""

    def __init__(self) -> None:
        self._nodes: dict[str, NodeClient] = {}

    def register(self, node: NodeClient, address: str | None = None) -> None:
        """Serve ``node`` at ``address`` (default: the node's own address)."""
        self._nodes[address or node.address] = node

    def unregister(self, address: str) -> None:
        """Stop serving ``address``: calls to it raise NodeUnavailable."""
        self._nodes.pop(address, None)

    def resolve(self, address: str) -> NodeClient:
        try:
            return self._nodes[address]
        except KeyError:
            raise NodeUnavailable(address, "no node is registered at this address") from None

    def connect(self, address: str) -> NodeClient:
        return MemoryClient(self, address)

    async def aclose(self) -> None:
        self._nodes.clear()


class MemoryClient:
    """A :class:`NodeClient` that forwards each call to whatever serves its address."""

    def __init__(self, transport: MemoryTransport, address: str) -> None:
        self._transport = transport
        self._address = address

    @property
    def address(self) -> str:
        return self._address

    def _node(self) -> NodeClient:
        return self._transport.resolve(self._address)

    async def health(self) -> NodeHealth:
        return await self._node().health()

    async def usage(self) -> Mapping[int, int]:
        return await self._node().usage()

    async def put_part(
        self, sector: int, name: str, body: AsyncIterable[Buffer], *, length: int | None = None
    ) -> PartStat:
        return await self._node().put_part(sector, name, body, length=length)

    async def get_part(
        self, sector: int, name: str, start: int | None = None, end: int | None = None
    ) -> ByteStream:
        return await self._node().get_part(sector, name, start, end)

    async def delete_parts(self, sector: int, names: Collection[str]) -> int:
        return await self._node().delete_parts(sector, names)

    async def list_parts(self, sector: int) -> list[PartStat]:
        return await self._node().list_parts(sector)

    async def verify_parts(self, sector: int, names: Collection[str]) -> dict[str, PartCheck]:
        return await self._node().verify_parts(sector, names)

    async def list_quarantined(self) -> list[QuarantinedPart]:
        return await self._node().list_quarantined()

    async def clear_replaced(self) -> None:
        await self._node().clear_replaced()

    async def link_part(self, name: str, from_sector: int, to_sector: int) -> None:
        await self._node().link_part(name, from_sector, to_sector)

    async def export_sectors(self, sectors: Collection[int]) -> ByteStream:
        return await self._node().export_sectors(sectors)

    async def import_sectors(self, archive: AsyncIterable[Buffer]) -> ImportResult:
        return await self._node().import_sectors(archive)

    async def drop_sectors(self, sectors: Collection[int]) -> None:
        await self._node().drop_sectors(sectors)
