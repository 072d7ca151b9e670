"""The in-memory transport: nodes live in this process and are called directly.

Any object implementing :class:`NodeClient` can be registered (a ``StorageNode`` is
one), so the embedded default and the tests run the same code paths as the network
transport, minus the sockets.
"""

from __future__ import annotations

from ..errors import NodeUnavailable
from .base import NodeClient


class MemoryTransport:
    """Addresses (``memory://<node id>``) mapped to in-process nodes."""

    def __init__(self) -> None:
        self._nodes: dict[str, NodeClient] = {}

    def register(self, node: NodeClient) -> None:
        """Make ``node`` reachable at its own address."""
        self._nodes[node.address] = node

    def connect(self, address: str) -> NodeClient:
        try:
            return self._nodes[address]
        except KeyError:
            raise NodeUnavailable(address, "no node is registered at this address") from None

    async def aclose(self) -> None:
        self._nodes.clear()
