"""How the gateway talks to storage nodes: the interface and its implementations."""

from .base import ByteStream, ImportResult, NodeClient, NodeHealth, PartStat, Transport
from .memory import MemoryTransport

__all__ = [
    "ByteStream",
    "ImportResult",
    "MemoryTransport",
    "NodeClient",
    "NodeHealth",
    "PartStat",
    "Transport",
]
