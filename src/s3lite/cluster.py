"""LocalCluster: a whole s3lite cluster in one process, over the in-memory transport.

Layout under ``root``::

    gateway/topology.json      the ring, nodes and any migration (orchestrator)
    gateway/manifests.sqlite3  keys, uploads and parts (receiver)
    nodes/<node id>/           one storage node each

Opening the same root again restores the nodes, the ring and the objects, finishes a
join that a crash interrupted, and removes uploads the crash left pending.
"""

from __future__ import annotations

import re
import shutil
import time
from contextlib import AsyncExitStack
from pathlib import Path
from types import TracebackType

import anyio

from .orchestrator import Orchestrator, TopologyFile
from .receiver import Janitor, Receiver, SqliteManifestStore
from .receiver.janitor import DEFAULT_PENDING_TTL
from .receiver.striping import DEFAULT_STRIPE_UNIT
from .storager import StorageNode
from .transport import MemoryTransport

DEFAULT_JANITOR_INTERVAL = 600.0
_NODE_ID = re.compile(r"node-(\d+)")


class LocalCluster:
    """Receiver, orchestrator and storage nodes wired in memory, data under ``root``.

    ``nodes`` is the size of a new cluster (at least 6); an existing root keeps the
    nodes it has. ``policy`` is the join policy of a new cluster ("fill", "half",
    "ketama"); an existing one keeps its own. The janitor runs at open and then every
    ``janitor_interval`` seconds (None: only at open and when called). ``fsync=False``
    trades durability across power cuts (not process crashes) for speed, for tests and
    benchmarks on throwaway data.
    """

    def __init__(
        self,
        root: Path | str,
        nodes: int = 6,
        *,
        policy: str = "fill",
        stripe_unit: int = DEFAULT_STRIPE_UNIT,
        pending_ttl: float = DEFAULT_PENDING_TTL,
        janitor_interval: float | None = DEFAULT_JANITOR_INTERVAL,
        fsync: bool = True,
    ) -> None:
        self.root = Path(root)
        self._initial_nodes = nodes
        self._policy = policy
        self._stripe_unit = stripe_unit
        self._pending_ttl = pending_ttl
        self._janitor_interval = janitor_interval
        self._fsync = fsync
        self._stack = AsyncExitStack()
        self.transport = MemoryTransport()
        self.nodes: dict[str, StorageNode] = {}
        self._orchestrator: Orchestrator | None = None
        self._receiver: Receiver | None = None
        self._janitor: Janitor | None = None

    @property
    def orchestrator(self) -> Orchestrator:
        if self._orchestrator is None:
            raise RuntimeError("use LocalCluster as `async with LocalCluster(...) as cluster`")
        return self._orchestrator

    @property
    def receiver(self) -> Receiver:
        if self._receiver is None:
            raise RuntimeError("use LocalCluster as `async with LocalCluster(...) as cluster`")
        return self._receiver

    @property
    def janitor(self) -> Janitor:
        if self._janitor is None:
            raise RuntimeError("use LocalCluster as `async with LocalCluster(...) as cluster`")
        return self._janitor

    async def __aenter__(self) -> LocalCluster:
        try:
            await self._open()
        except BaseException:
            await self._stack.aclose()
            raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self._stack.aclose()

    async def _open(self) -> None:
        gateway = self.root / "gateway"
        store = TopologyFile(gateway / "topology.json")
        saved = await store.load()
        if saved is None:
            if self._initial_nodes < 6:
                raise ValueError(f"a cluster needs at least 6 nodes, got {self._initial_nodes}")
            addresses = [
                (await self._start_node(f"node-{n}")).address
                for n in range(1, self._initial_nodes + 1)
            ]
        else:
            addresses = []
            for info in saved.nodes:
                await self._start_node(info.node_id)
        manifests = await SqliteManifestStore.open(
            gateway / "manifests.sqlite3", durable=self._fsync
        )
        self._stack.push_async_callback(manifests.close)
        orchestrator = Orchestrator(self.transport, store, policy=self._policy)
        self._orchestrator = orchestrator
        self._receiver = Receiver(orchestrator, manifests, stripe_unit=self._stripe_unit)
        self._janitor = Janitor(orchestrator, manifests, pending_ttl=self._pending_ttl)
        await orchestrator.open(addresses)
        await orchestrator.resume()
        # Nothing is being uploaded yet, so every pending upload is a crash's leftover.
        await self._janitor.run_once(pending_before=time.time())
        if self._janitor_interval is not None:
            group = await self._stack.enter_async_context(anyio.create_task_group())
            self._stack.callback(group.cancel_scope.cancel)
            group.start_soon(self._janitor_loop, self._janitor_interval)

    async def _janitor_loop(self, interval: float) -> None:
        while True:
            await anyio.sleep(interval)
            await self.janitor.run_once()

    async def _start_node(self, node_id: str) -> StorageNode:
        node = await StorageNode.open(self.root / "nodes" / node_id, node_id, fsync=self._fsync)
        self.nodes[node_id] = node
        self.transport.register(node)
        self._stack.callback(node.close)
        return node

    async def add_node(self) -> str:
        """Start a new storage node and join it; returns its id once rebalanced."""
        taken = [int(m.group(1)) for n in self.nodes if (m := _NODE_ID.fullmatch(n))]
        node = await self._start_node(f"node-{max(taken, default=0) + 1}")
        try:
            return await self.orchestrator.add_node(node.address)
        except Exception:
            if node.node_id not in self.orchestrator.topology.node_ids:
                node.close()
                del self.nodes[node.node_id]
                shutil.rmtree(node.data_dir, ignore_errors=True)
            raise

    async def usage(self) -> dict[str, int]:
        """Bytes stored on each node (as the nodes measure them)."""
        usage = await self.orchestrator.usage()
        return {node_id: sum(sectors.values()) for node_id, sectors in usage.items()}
