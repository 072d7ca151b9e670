"""How the gateway talks to storage nodes: the interface and its implementations."""

from .base import (
    ByteStream,
    ImportResult,
    NodeClient,
    NodeHealth,
    PartCheck,
    PartStat,
    PartState,
    QuarantinedPart,
    Transport,
)
from .memory import MemoryTransport

__all__ = [
    "ByteStream",
    "ImportResult",
    "MemoryTransport",
    "NodeClient",
    "NodeHealth",
    "PartCheck",
    "PartStat",
    "PartState",
    "QuarantinedPart",
    "Transport",
]
