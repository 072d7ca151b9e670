"""Durable storage of the topology: one JSON file replaced atomically.

The file is written next to its final name, fsynced, renamed over it and the
directory fsynced, so a crash leaves either the old or the new topology, never a torn
one.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Protocol

import anyio

from .topology import Topology


class TopologyStore(Protocol):
    """Where the orchestrator keeps its topology between runs."""

    async def load(self) -> Topology | None:
        """The last saved topology, or None for a new cluster."""
        ...

    async def save(self, topology: Topology) -> None:
        """Persist ``topology`` durably before returning."""
        ...


def write_atomically(path: Path, data: bytes) -> None:
    """Replace ``path`` with ``data`` so that readers see the old or the new bytes only."""
    temp = path.with_name(f".{path.name}.tmp")
    with open(temp, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temp, path)
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)


class TopologyFile:
    """A :class:`TopologyStore` backed by one JSON file."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    async def load(self) -> Topology | None:
        try:
            raw = await anyio.Path(self.path).read_bytes()
        except FileNotFoundError:
            return None
        try:
            return Topology.from_json(json.loads(raw))
        except ValueError as exc:
            raise ValueError(f"{self.path}: {exc}") from exc

    async def save(self, topology: Topology) -> None:
        data = json.dumps(topology.to_json(), indent=1).encode()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        await anyio.to_thread.run_sync(write_atomically, self.path, data)
