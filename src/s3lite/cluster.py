"""Wiring: a cluster as its gateway sees it, and LocalCluster, which also runs the nodes.

:class:`Cluster` puts the orchestrator, receiver and janitor together over any
transport, with their state in one directory::

    topology.json       the ring, nodes and any migration (orchestrator)
    manifests.sqlite3   buckets, keys, uploads and parts (receiver)
    keys.sqlite3        access keys, grants and bucket owners (gateway; mode 0600)

:class:`LocalCluster` is the embedded default: the same, plus its storage nodes in
this process (in-memory transport), under ``root``::

    gateway/            the Cluster's directory
    nodes/<node id>/    one storage node each

Opening the same directory again restores the nodes, the ring and the objects,
finishes a join that a crash interrupted, and removes uploads the crash left pending.

A cluster's target parity (``parity``, default 2) is fixed when it is created and
kept in its topology. While fewer than ``6 + parity`` nodes can take new parts, new
segments get fewer parity parts; the cluster says so in a warning when it opens (and
``s3lite status`` says so while it lasts).

Background work runs in the cluster's task group while it is open: the heal queue's
flusher, the healer (receiver/healer.py), the liveness probes, and the janitor,
which also runs as soon as a node comes back up (to delete the parts of uploads that
failed while it was down). With
``probe_interval`` and ``janitor_interval`` both None nothing runs in the background
(tests drive it): the heal queue is then saved when read and when the cluster closes.
"""

from __future__ import annotations

import logging
import re
import shutil
import time
from collections.abc import Sequence
from contextlib import AsyncExitStack
from pathlib import Path
from types import TracebackType
from typing import Self

import anyio

from .erasure import MAX_PARITY
from .gateway.auth.keystore import KeyStore
from .metrics import GatewayMetrics
from .orchestrator import Orchestrator, Topology, TopologyFile
from .orchestrator.liveness import DEFAULT_PROBE_INTERVAL, DEFAULT_PROBE_TIMEOUT, NodeStatus
from .orchestrator.topology import DEFAULT_PARITY
from .receiver import Janitor, Receiver, SqliteManifestStore
from .receiver.buckets import Buckets
from .receiver.completion import MIN_PART_SIZE
from .receiver.healer import DEFAULT_HEAL_RATE, DEFAULT_IDLE, DEFAULT_SCRUB_RATE, Healer
from .receiver.janitor import DEFAULT_MULTIPART_TTL, DEFAULT_PENDING_TTL
from .receiver.striping import DEFAULT_STRIPE_UNIT
from .storager import StorageNode
from .transport import MemoryTransport, Transport

log = logging.getLogger(__name__)

DEFAULT_JANITOR_INTERVAL = 600.0
_NODE_ID = re.compile(r"node-(\d+)")


class Cluster:
    """Receiver, orchestrator and janitor over ``transport``, state under ``data_dir``.

    ``addresses`` are the nodes of a new cluster (at least 6); an existing one keeps
    the nodes its topology lists. ``policy`` is the join policy of a new cluster
    ("fill", "half", "ketama"). The janitor runs at open and then every
    ``janitor_interval`` seconds (None: only at open and when called). ``fsync=False``
    trades durability across power cuts (not process crashes) for speed. ``root`` is
    the gateway's root key (access key id, secret); None keeps the stored one or
    generates one (``cluster.keys.generated_root`` then says so). Every node is probed
    every ``probe_interval`` seconds (None: only when asked), each probe bounded by
    ``probe_timeout`` (orchestrator/liveness.py). ``metrics`` is where the cluster's
    figures go (a new registry if None). ``parity`` is the target parity of a new
    cluster (0 to 4; an existing one keeps its own). ``multipart_ttl`` is how long
    (seconds) a multipart upload may stay open before the janitor aborts it (default
    24 h); ``min_part_size`` is the least size of every part but the last (S3's 5 MiB;
    tests lower it). ``heal_rate`` is the most bytes per second the healer writes
    (None: no limit), ``scrub_rate`` the bytes of parts per second its background
    scrub has verified (None: no background scrub); ``heal_idle`` the seconds between
    two looks at the heal queue (it also looks as soon as a node comes back).
    """

    def __init__(
        self,
        data_dir: Path | str,
        transport: Transport,
        addresses: Sequence[str] = (),
        *,
        policy: str = "fill",
        stripe_unit: int = DEFAULT_STRIPE_UNIT,
        pending_ttl: float = DEFAULT_PENDING_TTL,
        janitor_interval: float | None = DEFAULT_JANITOR_INTERVAL,
        fsync: bool = True,
        root: tuple[str, str] | None = None,
        probe_interval: float | None = DEFAULT_PROBE_INTERVAL,
        probe_timeout: float = DEFAULT_PROBE_TIMEOUT,
        metrics: GatewayMetrics | None = None,
        parity: int = DEFAULT_PARITY,
        multipart_ttl: float = DEFAULT_MULTIPART_TTL,
        min_part_size: int = MIN_PART_SIZE,
        heal_rate: float | None = DEFAULT_HEAL_RATE,
        scrub_rate: float | None = DEFAULT_SCRUB_RATE,
        heal_idle: float = DEFAULT_IDLE,
    ) -> None:
        if heal_rate is not None and heal_rate <= 0:
            raise ValueError(f"heal_rate must be > 0 bytes per second, got {heal_rate}")
        if scrub_rate is not None and scrub_rate <= 0:
            raise ValueError(f"scrub_rate must be > 0 bytes per second, got {scrub_rate}")
        self._heal_rate = heal_rate
        self._scrub_rate = scrub_rate
        self._heal_idle = heal_idle
        if not isinstance(parity, int) or isinstance(parity, bool) or not 0 <= parity <= MAX_PARITY:
            raise ValueError(f"parity must be an integer from 0 to {MAX_PARITY}, got {parity!r}")
        if multipart_ttl <= 0:
            raise ValueError(f"multipart_ttl must be > 0 seconds, got {multipart_ttl}")
        if min_part_size < 1:
            raise ValueError(f"min_part_size must be >= 1 byte, got {min_part_size}")
        self.data_dir = Path(data_dir)
        self._parity = parity
        self._node_back = anyio.Event()
        self._probe_interval = probe_interval
        self._probe_timeout = probe_timeout
        self.metrics = metrics or GatewayMetrics()
        self._multipart_ttl = multipart_ttl
        self._min_part_size = min_part_size
        self._root = root
        self._keys: KeyStore | None = None
        self.transport = transport
        self._addresses = list(addresses)
        self._policy = policy
        self._stripe_unit = stripe_unit
        self._pending_ttl = pending_ttl
        self._janitor_interval = janitor_interval
        self._fsync = fsync
        self._stack = AsyncExitStack()
        self._opened: tuple[Orchestrator, Receiver, Janitor, Buckets] | None = None

    def _parts(self) -> tuple[Orchestrator, Receiver, Janitor, Buckets]:
        if self._opened is None:
            name = type(self).__name__
            raise RuntimeError(f"use {name} as `async with {name}(...) as cluster`")
        return self._opened

    @property
    def orchestrator(self) -> Orchestrator:
        return self._parts()[0]

    @property
    def receiver(self) -> Receiver:
        return self._parts()[1]

    @property
    def janitor(self) -> Janitor:
        return self._parts()[2]

    @property
    def buckets(self) -> Buckets:
        return self._parts()[3]

    @property
    def healer(self) -> Healer:
        """The healer (healer.py): runs in the background unless nothing does."""
        healer = self.receiver.healer
        assert healer is not None
        return healer

    @property
    def keys(self) -> KeyStore:
        """The gateway's access keys, grants and bucket owners."""
        self._parts()
        assert self._keys is not None
        return self._keys

    async def __aenter__(self) -> Self:
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

    async def _start_nodes(self, saved: Topology | None) -> list[str]:
        """Hook for clusters that run their own nodes: start them, return the addresses
        of a new cluster's nodes."""
        return self._addresses

    async def _open(self) -> None:
        store = TopologyFile(self.data_dir / "topology.json")
        addresses = await self._start_nodes(await store.load())
        self._stack.push_async_callback(self.transport.aclose)
        manifests = await SqliteManifestStore.open(
            self.data_dir / "manifests.sqlite3", durable=self._fsync
        )
        self._stack.push_async_callback(manifests.close)
        orchestrator = Orchestrator(
            self.transport,
            store,
            policy=self._policy,
            metrics=self.metrics,
            probe_timeout=self._probe_timeout,
            parity=self._parity,
        )
        receiver = Receiver(
            orchestrator,
            manifests,
            stripe_unit=self._stripe_unit,
            min_part_size=self._min_part_size,
        )
        janitor = Janitor(
            orchestrator,
            manifests,
            pending_ttl=self._pending_ttl,
            multipart_ttl=self._multipart_ttl,
            in_flight=receiver.uploads_in_flight,
        )
        buckets = Buckets(manifests)
        receiver.healer = Healer(
            receiver, rate=self._heal_rate, scrub_rate=self._scrub_rate, idle=self._heal_idle
        )
        self._keys = KeyStore.open(self.data_dir, root=self._root)
        self._stack.callback(self._keys.close)
        self._keys.adopt(bucket.name for bucket in await buckets.list())
        self._opened = (orchestrator, receiver, janitor, buckets)
        await orchestrator.open(addresses)
        await orchestrator.resume()
        # Nothing is being uploaded yet, so every pending upload is a crash's leftover.
        await janitor.run_once(pending_before=time.time())
        self._warn_low_parity()
        await receiver.healer.load()
        self._stack.push_async_callback(receiver.heal.flush)
        if self._janitor_interval is None and self._probe_interval is None:
            return  # nothing in the background (tests drive it all)
        orchestrator.liveness.listeners.append(self._on_liveness_change)
        group = await self._stack.enter_async_context(anyio.create_task_group())
        self._stack.callback(group.cancel_scope.cancel)
        group.start_soon(receiver.heal.run)
        group.start_soon(self._retry_deletions_loop)
        group.start_soon(receiver.healer.run)
        if self._janitor_interval is not None:
            group.start_soon(self._janitor_loop, self._janitor_interval)
        if self._probe_interval is not None:
            group.start_soon(orchestrator.run_probes, self._probe_interval)

    def _warn_low_parity(self) -> None:
        warning = self.orchestrator.parity_status().warning
        if warning is not None:
            log.warning("%s", warning)

    def _on_liveness_change(self, before: NodeStatus, after: NodeStatus) -> None:
        if after.up and not before.up:
            self._node_back.set()
            self.healer.wake()

    async def _retry_deletions_loop(self) -> None:
        """Delete what failed uploads left on a node as soon as the node is back."""
        while True:
            await self._node_back.wait()
            self._node_back = anyio.Event()
            try:
                await self.janitor.retry_deletions()
            except Exception:
                log.exception("deleting what a failed upload left behind failed")

    async def _janitor_loop(self, interval: float) -> None:
        while True:
            await anyio.sleep(interval)
            try:
                await self.janitor.run_once()
            except Exception:  # a failed pass must not take the cluster down
                log.exception("janitor pass failed")

    async def join(self, address: str) -> str:
        """Join the node serving ``address``; returns its id once it is rebalanced."""
        return await self.orchestrator.add_node(address)

    async def usage(self) -> dict[str, int]:
        """Bytes stored on each node (as the nodes measure them)."""
        usage = await self.orchestrator.usage()
        return {node_id: sum(sectors.values()) for node_id, sectors in usage.items()}


class LocalCluster(Cluster):
    """A whole cluster in this process: storage nodes under ``root/nodes`` reached over
    the in-memory transport, and the gateway state under ``root/gateway``.

    ``nodes`` is the size of a new cluster (at least 6; with the default target
    parity of 2, eight nodes give every object its two parity parts); other options
    as :class:`Cluster`.
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
        root_key: tuple[str, str] | None = None,
        probe_interval: float | None = DEFAULT_PROBE_INTERVAL,
        probe_timeout: float = DEFAULT_PROBE_TIMEOUT,
        metrics: GatewayMetrics | None = None,
        parity: int = DEFAULT_PARITY,
        multipart_ttl: float = DEFAULT_MULTIPART_TTL,
        min_part_size: int = MIN_PART_SIZE,
        heal_rate: float | None = DEFAULT_HEAL_RATE,
        scrub_rate: float | None = DEFAULT_SCRUB_RATE,
        heal_idle: float = DEFAULT_IDLE,
    ) -> None:
        self.root = Path(root)
        self.transport: MemoryTransport = MemoryTransport()
        super().__init__(
            self.root / "gateway",
            self.transport,
            policy=policy,
            stripe_unit=stripe_unit,
            pending_ttl=pending_ttl,
            janitor_interval=janitor_interval,
            fsync=fsync,
            root=root_key,
            probe_interval=probe_interval,
            probe_timeout=probe_timeout,
            metrics=metrics,
            parity=parity,
            multipart_ttl=multipart_ttl,
            min_part_size=min_part_size,
            heal_rate=heal_rate,
            scrub_rate=scrub_rate,
            heal_idle=heal_idle,
        )
        self._initial_nodes = nodes
        self.nodes: dict[str, StorageNode] = {}

    async def _start_nodes(self, saved: Topology | None) -> list[str]:
        if saved is not None:
            for node_id in saved.node_ids:
                await self._start_node(node_id)
            return []
        if self._initial_nodes < 6:
            raise ValueError(f"a cluster needs at least 6 nodes, got {self._initial_nodes}")
        started = [await self._start_node(f"node-{n}") for n in range(1, self._initial_nodes + 1)]
        return [node.address for node in started]

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
            return await self.join(node.address)
        except Exception:
            if node.node_id not in self.orchestrator.topology.node_ids:
                node.close()
                del self.nodes[node.node_id]
                shutil.rmtree(node.data_dir, ignore_errors=True)
            raise
