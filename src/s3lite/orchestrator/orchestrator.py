"""The orchestrator: owns the topology, routes requests, and carries out joins.

A join runs in these steps; each step that changes routing is persisted first
(``TopologyStore.save``) and then published as a new routing epoch:

1. *plan* — ask every node for its usage; the join policy picks the moving sectors.
   Persist the new node as ``joining`` and the migration as ``copying``; from this
   epoch on, writes and deletes to moving sectors reach the donor and the new node.
2. *drain* — wait until no request from before step 1 is still running, so every
   earlier write is on the donor.
3. *re-home* — parts of one segment that would meet on the new node are linked into
   sectors their donors keep (catalog updated, old link removed).
4. *copy* — each donor zips its moving sectors; the stream is unzipped on the new
   node, which verifies every CRC and installs the archive all or nothing
   (sector_copy.py).
5. *switch* — persist and publish the ring with the new node owning its sectors.
6. *drain*, *reconcile* (delete what the copy brought that no row places on the new
   node: a part deleted after the export listed it), then *drop* the donors' copies
   and persist the end of the migration. If a dual write to the new node failed
   meanwhile (the donor's copy succeeded, so the client's write stood), the sectors
   are copied once more before the reconcile.

Each step is logged (one line) and reported through :attr:`Orchestrator.progress`
(s3lite.progress), which also counts the sectors and bytes relayed during the copy:
the admin API streams it to ``s3lite join`` and the metrics export it.

Every node call goes through ``client(id)``, an ObservedClient (observed.py): a
failure marks the node down in :attr:`Orchestrator.liveness` at once, and
:meth:`Orchestrator.run_probes` brings it back when it answers again.

A crash before step 5 is resumed on restart by clearing the new node's moving sectors
and copying again (the donors still hold everything); after step 5, by copying again
(a dual write may have been missed) and dropping the donors' copies. An ordinary error
or a cancellation before step 5 rolls the join back; a new node that is gone by then
is rolled back too. Donors whose drop fails keep their copies until a later resume.
"""

from __future__ import annotations

import collections
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping, Sequence
from contextlib import asynccontextmanager, contextmanager
from typing import Any, Final

import anyio
import attrs

from ..erasure import MAX_PARITY
from ..errors import (
    InsufficientCapacity,
    JoinRefused,
    NodeUnavailable,
    NotEnoughNodes,
    PartNotFound,
    S3liteError,
)
from ..logs import event
from ..metrics import GatewayMetrics
from ..progress import Progress
from ..streams import single_error
from ..transport.base import NodeClient, Transport
from .catalog import PartCatalog, plan_rehomes, sweep_sector
from .copy_count import moving_bytes
from .gauges import cluster_gauges
from .liveness import (
    DEFAULT_PROBE_INTERVAL,
    DEFAULT_PROBE_TIMEOUT,
    Liveness,
    NodeStatus,
    probe_all,
    probe_forever,
)
from .observed import ObservedClient
from .persistence import TopologyStore
from .placement import segment_parity
from .policies import JoinPlan, JoinPolicy, get_policy
from .ring import NodeId, Ring
from .routing import EpochGate, RoutingView
from .sector_copy import copy_sectors, moving_sizes
from .topology import DEFAULT_PARITY, Migration, MigrationPhase, NodeInfo, NodeState, Topology

log = logging.getLogger(__name__)

StepHook = Callable[[str], Awaitable[None]]

MIN_NODES: Final = 6


@attrs.frozen
class ParityStatus:
    """How much parity new STANDARD objects get, against the cluster's target."""

    target: int
    effective: int
    """Parity parts a new STANDARD segment gets now."""
    writable_nodes: int
    nodes: int
    warning: str | None
    """Why ``effective`` is below ``target`` (None when it is not)."""


class Orchestrator:
    """Topology, routing and joins of one cluster.

    Create it, attach the receiver's catalog, then :meth:`open` it (which loads or
    creates the topology) and :meth:`resume` any migration a crash interrupted.
    ``metrics`` is the registry its node calls, joins and state are exported to (a
    new one if None); ``probe_timeout`` bounds each liveness probe. ``parity`` is
    the target parity of a new cluster (an existing one keeps the one it was created
    with: :attr:`Topology.parity`).
    """

    def __init__(
        self,
        transport: Transport,
        store: TopologyStore,
        *,
        policy: str = "fill",
        metrics: GatewayMetrics | None = None,
        probe_timeout: float = DEFAULT_PROBE_TIMEOUT,
        parity: int = DEFAULT_PARITY,
    ):
        if not isinstance(parity, int) or isinstance(parity, bool) or not 0 <= parity <= MAX_PARITY:
            raise ValueError(f"parity must be an integer from 0 to {MAX_PARITY}, got {parity!r}")
        self._transport = transport
        self._store = store
        self._policy_name = policy
        self._parity = parity
        self._clients: dict[NodeId, ObservedClient] = {}
        self.metrics = metrics or GatewayMetrics()
        self.liveness = Liveness()
        """Which nodes are up (liveness.py): placement and reads route around down ones."""
        self.liveness.listeners.append(self._on_liveness_change)
        self.probe_timeout = probe_timeout
        self.progress: Progress | None = None
        """The join in progress, or the last one (None before any)."""
        self.progress_listeners: list[Callable[[dict[str, Any]], None]] = []
        """Called with every progress event of every join (s3lite.progress)."""
        self.sectors_copied: dict[int, float] = {}
        """Each moving sector's fraction copied (0 to 1) in the current or last copy
        pass of a join, so the console can fill the ring's sectors as they move."""
        self.metrics.add_state(lambda: cluster_gauges(self))
        self._topology: Topology | None = None
        self._view: RoutingView | None = None
        self._gate = EpochGate()
        self._join_lock = anyio.Lock()
        self._dual_write_failures = 0
        self._rehome_targets: set[tuple[NodeId, int]] = set()
        """(donor, sector) that took re-homed parts in the join in progress."""
        self.catalog: PartCatalog | None = None
        self.on_step: StepHook | None = None
        """Called with a step name at each point of a migration where a crash is worth
        testing: "before-export", "mid-import", "after-switch", "before-drop"."""

    # -- state ---------------------------------------------------------------------------

    @property
    def topology(self) -> Topology:
        if self._topology is None:
            raise RuntimeError("the orchestrator is not open")
        return self._topology

    @property
    def is_open(self) -> bool:
        return self._topology is not None

    @property
    def view(self) -> RoutingView:
        if self._view is None:
            raise RuntimeError("the orchestrator is not open")
        return self._view

    @property
    def ring(self) -> Ring:
        """The ring that serves reads now."""
        return self.view.ring

    @property
    def policy(self) -> JoinPolicy:
        return get_policy(self.topology.policy)

    @property
    def target_parity(self) -> int:
        """Parity parts a STANDARD segment should have (set when the cluster was made)."""
        return self.topology.parity

    def writable_parity(self) -> int:
        """Parity parts a new STANDARD segment gets now: the target, or fewer while
        fewer than ``6 + target`` nodes are writable (0 if fewer than six are)."""
        try:
            return segment_parity(
                self.view.placement_rings,
                self.target_parity,
                self.liveness.is_up,
                self.liveness.is_writable,
            )
        except (NotEnoughNodes, InsufficientCapacity):
            return 0

    def parity_status(self) -> ParityStatus:
        """The target parity against what new objects get now, and why (for status)."""
        nodes = self.ring.nodes
        writable = sum(1 for node in nodes if self.liveness.is_writable(node))
        target, effective = self.target_parity, self.writable_parity()
        warning = None
        if effective < target:
            warning = (
                f"target parity is {target} but only {writable} of {len(nodes)} nodes can take "
                f"new parts: new objects get {effective} parity part(s) until {MIN_NODES + target} "
                "nodes can (join nodes, or bring back the ones that are down or full)"
            )
        return ParityStatus(target, effective, writable, len(nodes), warning)

    def client(self, node_id: NodeId) -> NodeClient:
        """The node's client: every call through it feeds liveness and metrics."""
        try:
            return self._clients[node_id]
        except KeyError:
            raise NodeUnavailable(node_id, "not a node of this cluster") from None

    def label(self, node_id: NodeId) -> str:
        """``node-3 (http://host:port)``: how errors name a node, so people can find it."""
        client = self._clients.get(node_id)
        return node_id if client is None else f"{node_id} ({client.address})"

    def _observe(self, node_id: NodeId, client: NodeClient) -> None:
        self._clients[node_id] = ObservedClient(client, node_id, self.liveness, self.metrics.nodes)
        self.liveness.track(node_id)

    def _forget(self, node_id: NodeId) -> None:
        self._clients.pop(node_id, None)
        self.liveness.forget(node_id)

    def _on_liveness_change(self, before: NodeStatus, after: NodeStatus) -> None:
        """One log line and a metric per change of a node's state."""
        node = after.node_id
        transitions = self.metrics.nodes.transitions
        if before.up != after.up:
            transitions.labels(node, "up" if after.up else "down").inc()
            if after.up:
                event(log, logging.INFO, f"node {node} is up again", node=node,
                      down_seconds=round(after.since - before.since, 3))  # fmt: skip
            else:
                event(log, logging.WARNING, f"node {node} is down", node=node,
                      reason=after.reason)  # fmt: skip
        if before.full != after.full:
            transitions.labels(node, "full" if after.full else "not_full").inc()
            state = "full: it refuses new parts" if after.full else "no longer full"
            event(log, logging.WARNING if after.full else logging.INFO,
                  f"node {node} is {state}", node=node)  # fmt: skip

    async def probe(self) -> None:
        """Probe every node now (bounded by the probe timeout) and update liveness."""
        await probe_all(self.liveness, dict(self._clients), self.probe_timeout)

    async def run_probes(self, interval: float = DEFAULT_PROBE_INTERVAL) -> None:
        """Probe every node every ``interval`` seconds until cancelled."""
        await probe_forever(
            self.liveness, lambda: dict(self._clients), interval=interval,
            within=self.probe_timeout,
        )  # fmt: skip

    @contextmanager
    def lease(self) -> Iterator[RoutingView]:
        """The current routing view, held until the block ends (see routing.py)."""
        view = self.view
        with self._gate.hold(view.epoch):
            yield view

    @asynccontextmanager
    async def no_migration(self) -> AsyncIterator[None]:
        """Hold off joins for the duration (the janitor scans nodes under this)."""
        async with self._join_lock:
            yield

    # -- opening -----------------------------------------------------------------------------

    async def open(self, addresses: Sequence[str] = ()) -> None:
        """Load the saved topology, or create one over ``addresses`` for a new cluster.

        A new cluster needs at least six nodes; their ids come from the nodes
        themselves. Raises JoinRefused on duplicate ids or too few nodes.
        """
        topology = await self._store.load()
        if topology is None:
            topology = await self._bootstrap(addresses)
            await self._store.save(topology)
        for info in topology.nodes:
            self._observe(info.node_id, self._transport.connect(info.address))
        self._publish(topology)
        with single_error():
            async with anyio.create_task_group() as group:
                for info in topology.nodes:
                    group.start_soon(self._check_identity, info.node_id)

    async def _check_identity(self, node_id: NodeId) -> None:
        """Fail fast if another node answers at ``node_id``'s address (swapped ports or
        hosts would make the janitor and the joins delete the wrong node's data)."""
        try:
            await self.verified_client(node_id)
        except NodeUnavailable as exc:
            if exc.reason.startswith("it is node"):
                raise
            log.warning("node %s is not reachable yet: %s", node_id, exc)

    async def verified_client(self, node_id: NodeId) -> NodeClient:
        """The client of ``node_id``, after checking that the node at its address is it.

        Raises NodeUnavailable if the node cannot be reached or is another node. Every
        destructive sweep (dropping sectors, deleting orphans) goes through this.
        """
        client = self.client(node_id)
        health = await client.health()
        if health.node_id != node_id:
            found = health.node_id
            raise NodeUnavailable(client.address, f"it is node {found!r}, not {node_id!r}")
        self.liveness.answered(node_id, health)  # as good as a probe
        return client

    async def _bootstrap(self, addresses: Sequence[str]) -> Topology:
        if len(addresses) < MIN_NODES:
            raise JoinRefused(f"a cluster needs at least {MIN_NODES} nodes, got {len(addresses)}")
        if len(set(addresses)) != len(addresses):
            raise JoinRefused(f"node addresses must be distinct, got {list(addresses)}")
        ids = [(await self._transport.connect(a).health()).node_id for a in addresses]
        if len(set(ids)) != len(ids):
            raise JoinRefused(f"node ids must be distinct, got {ids}")
        policy = get_policy(self._policy_name)
        nodes = tuple(
            NodeInfo(node_id, address, NodeState.READY)
            for node_id, address in zip(ids, addresses, strict=True)
        )
        return Topology(policy.name, nodes, policy.initial(ids), parity=self._parity)

    def _publish(self, topology: Topology) -> None:
        epoch = 0 if self._view is None else self._view.epoch + 1
        self._topology = topology
        self._view = RoutingView.of(topology, epoch)

    async def _commit(self, topology: Topology) -> None:
        """Persist, then route by, ``topology``."""
        await self._store.save(topology)
        self._publish(topology)

    async def _drain(self) -> None:
        await self._gate.drain(self.view.epoch)

    async def _step(self, name: str) -> None:
        if self.on_step is not None:
            await self.on_step(name)

    # -- usage -------------------------------------------------------------------------------

    async def usage(self) -> dict[NodeId, dict[int, int]]:
        """Bytes per sector of every node, asked of the nodes now."""
        usage: dict[NodeId, dict[int, int]] = {}

        async def ask(node_id: NodeId) -> None:
            usage[node_id] = dict(await self.client(node_id).usage())

        async with anyio.create_task_group() as group:
            for node_id in self.topology.node_ids:
                group.start_soon(ask, node_id)
        return {node_id: usage[node_id] for node_id in self.topology.node_ids}

    # -- joins -------------------------------------------------------------------------------

    async def add_node(self, address: str) -> NodeId:
        """Join the node at ``address``; returns its id once its sectors are moved.

        Raises JoinRefused (and changes nothing) if the node is unreachable, already a
        member (by id or address), or not empty. :attr:`progress` follows it.
        """
        async with self._join_lock:
            if self.topology.migration is not None:
                await self._migrate(self._progress_of(self.topology.migration, resumed=True))
            if self.catalog is None:
                raise RuntimeError("attach a part catalog before adding nodes")
            client, node_id = await self._admit(address)
            progress = self._new_progress(f"join {node_id}")
            try:
                usage = await self.usage()
                plan, given = self._plan(usage, node_id)
                sizes = moving_bytes(plan.moves, usage)
                progress.step(
                    "plan", node=node_id, address=address, sectors=len(plan.moves),
                    bytes=sum(sizes.values()), donors=given,
                )  # fmt: skip
                topology = self.topology
                await self._commit(
                    topology.evolve(
                        nodes=(*topology.nodes, NodeInfo(node_id, address, NodeState.JOINING)),
                        migration=Migration(node_id, plan.moves),
                    )
                )
                self._observe(node_id, client)
                await self._migrate(progress, sizes)
            except BaseException as exc:
                progress.fail(exc)
                self.metrics.joins.joins.labels("failed").inc()
                raise
        self.metrics.joins.joins.labels("done").inc()
        progress.finish(node_id=node_id)
        return node_id

    def _plan(
        self, usage: Mapping[NodeId, Mapping[int, int]], node_id: NodeId
    ) -> tuple[JoinPlan, dict[NodeId, int]]:
        """The policy's plan and the sectors it takes from each donor; JoinRefused if
        it would leave a donor with no sector."""
        plan = self.policy.plan(self.ring, {n: dict(u) for n, u in usage.items()}, node_id)
        given = collections.Counter(plan.moves.values())
        for donor, count in sorted(given.items()):
            if count >= len(self.ring.sectors_of(donor)):
                raise JoinRefused(f"the {self.policy.name} plan would empty node {donor!r}")
        return plan, dict(sorted(given.items()))

    def _progress_of(self, migration: Migration, *, resumed: bool) -> Progress:
        return self._new_progress(f"join {migration.new_node}" + (" (resumed)" * resumed))

    def _new_progress(self, task: str) -> Progress:
        progress = self.progress = Progress(task, log=log)
        progress.listeners = self.progress_listeners  # shared: they follow every join
        return progress

    async def _admit(self, address: str) -> tuple[NodeClient, NodeId]:
        if any(info.address == address for info in self.topology.nodes):
            raise JoinRefused(f"a node at {address} is already in the cluster")
        try:
            client = self._transport.connect(address)
            health = await client.health()
        except NodeUnavailable as exc:
            raise JoinRefused(f"cannot join {address}: {exc}") from exc
        if health.node_id in self.topology.node_ids:
            raise JoinRefused(f"node id {health.node_id!r} (at {address}) is already in the ring")
        if health.parts or health.bytes_stored:
            raise JoinRefused(
                f"node {health.node_id!r} at {address} already holds {health.parts} parts "
                f"({health.bytes_stored} bytes); only an empty node can join"
            )
        return client, health.node_id

    async def resume(self) -> None:
        """Finish a migration that a crash or a failure interrupted (no-op if there is
        none). Never raises for an unreachable node: a join whose new node is gone is
        rolled back, and donors that cannot drop their copies yet keep them (nothing is
        lost) until the next call; the janitor calls this on every pass."""
        async with self._join_lock:
            migration = self.topology.migration
            if migration is None:
                return
            progress = self._progress_of(migration, resumed=True)
            try:
                if migration.phase is MigrationPhase.COPYING:
                    # Whatever reached the new node is incomplete; the donors hold it all.
                    try:
                        await self.client(migration.new_node).drop_sectors(list(migration.moves))
                    except S3liteError:
                        await self._roll_back(migration)
                        raise
                await self._migrate(progress, recopy=True)
            except S3liteError as exc:
                progress.fail(exc)
                log.warning("the join of %s cannot finish yet: %s", migration.new_node, exc)
            else:
                progress.finish(node_id=migration.new_node)

    def note_dual_write_failure(self, node_id: NodeId, error: BaseException) -> None:
        """A write to a joining node failed (the donor's copy succeeded, so the client's
        write stands): the sectors will be copied again before the donors drop them."""
        log.warning(
            "a dual write to %s failed, its sectors will be copied again: %s", node_id, error
        )
        self._dual_write_failures += 1

    async def _migrate(
        self,
        progress: Progress,
        sizes: Mapping[int, int] | None = None,
        *,
        recopy: bool = False,
    ) -> None:
        """Carry the migration through its remaining steps. ``sizes`` (bytes per moving
        sector, from the plan) are the copy's totals; None asks the donors again."""
        migration = self.topology.migration
        assert migration is not None
        if migration.phase is MigrationPhase.COPYING:
            self._dual_write_failures = 0
            try:
                await self._copy(migration, progress, sizes)
                # It took the copy: it is up (whatever a missed dual write said), and
                # it is the node it claims to be, before it starts serving reads.
                await self.verified_client(migration.new_node)
            except BaseException as exc:
                if isinstance(exc, Exception | anyio.get_cancelled_exc_class()):
                    progress.step("roll back", reason=f"{type(exc).__name__}: {exc}")
                    await self._roll_back(migration)
                raise
            topology = self.topology
            await self._commit(
                topology.evolve(
                    ring=migration.plan.apply(topology.ring),
                    nodes=topology.with_node_state(migration.new_node, NodeState.READY),
                    migration=attrs.evolve(migration, phase=MigrationPhase.SWITCHED),
                )
            )
            progress.step("switch", generation=self.topology.generation)
            await self._step("after-switch")
        progress.step("drain")
        await self._drain()
        if recopy or self._dual_write_failures:
            # The new node may have missed a write made while it was joining (or, after
            # a restart, nobody knows): copy again from the donors, which hold it all.
            progress.step("copy again", reason="resumed" if recopy else "a dual write failed")
            await self._transfer(migration, progress, sizes)
        await self._reconcile(migration, progress)
        await self._step("before-drop")
        progress.step("drop", donors=sorted(migration.plan.by_donor()))
        for donor, sectors in migration.plan.by_donor().items():
            await (await self.verified_client(donor)).drop_sectors(sectors)
        await self._commit(self.topology.evolve(migration=None))

    async def _copy(
        self, migration: Migration, progress: Progress, sizes: Mapping[int, int] | None
    ) -> None:
        progress.step("drain")
        await self._drain()
        progress.step("re-home")
        rehomed = await self._rehome(migration)
        if rehomed:
            event(log, logging.INFO, f"join {migration.new_node}: re-homed {rehomed} parts",
                  task=progress.task, rehomed=rehomed)  # fmt: skip
        await self._step("before-export")
        await self._transfer(migration, progress, sizes)

    async def _transfer(
        self, migration: Migration, progress: Progress, sizes: Mapping[int, int] | None
    ) -> None:
        """Copy the moving sectors to the new node (sector_copy.py); ``sizes`` None
        asks the donors what they hold now."""
        if sizes is None:
            sizes = await moving_sizes(self.client, migration)
        self.sectors_copied = dict.fromkeys(migration.moves, 0.0)
        await copy_sectors(
            self.client,
            migration,
            progress,
            sizes,
            self.metrics,
            self.sectors_copied,
            on_first_chunk=lambda: self._step("mid-import"),
        )

    async def _reconcile(self, migration: Migration, progress: Progress) -> None:
        """Delete what the copy brought to the new node that no row places there: a
        part deleted after the export listed it (its delete reached the donor first,
        then the import installed it). Every request of the copy's epochs has ended
        (the drain after the switch), so no such delete is still under way."""
        catalog = self.catalog
        assert catalog is not None
        swept = [(migration.new_node, sector) for sector in sorted(migration.moves)]
        # A part re-homed while its upload was being deleted can outlive the delete
        # (which read the old sector): sweep the sectors that took re-homed parts too.
        swept += sorted(self._rehome_targets)
        removed = 0
        for node_id, sector in swept:
            removed += await sweep_sector(self.client(node_id), catalog, sector)
        self._rehome_targets.clear()
        progress.step("reconcile", removed=removed)

    async def _rehome(self, migration: Migration) -> int:
        """Re-home the parts that would meet on the new node; returns how many moved."""
        catalog = self.catalog
        assert catalog is not None
        plan = migration.plan
        parts = await catalog.parts_in_sectors(list(plan.moves))
        moved = 0
        for rehome in plan_rehomes(parts, plan, plan.apply(self.ring)):
            part, donor = rehome.part, self.client(plan.moves[rehome.part.sector])
            try:
                await donor.link_part(part.name, part.sector, rehome.new_sector)
            except PartNotFound:
                continue  # an upload that never finished; the janitor removes its record
            if await catalog.move_part(part, rehome.new_sector):
                await donor.delete_parts(part.sector, [part.name])
                self._rehome_targets.add((plan.moves[part.sector], rehome.new_sector))
                moved += 1
            else:
                await donor.delete_parts(rehome.new_sector, [part.name])
        return moved

    async def _roll_back(self, migration: Migration) -> None:
        """Undo a join that failed before its switch: routing as before, node removed."""
        with anyio.CancelScope(shield=True):
            topology = self.topology
            await self._commit(
                topology.evolve(
                    nodes=tuple(i for i in topology.nodes if i.node_id != migration.new_node),
                    migration=None,
                )
            )
            await self._drain()
            # If the node is unreachable or broken, its leftovers do not matter: it is
            # not part of the cluster, and it cannot join again until it is empty.
            with contextlib.suppress(S3liteError, OSError):
                await self.client(migration.new_node).drop_sectors(list(migration.moves))
            self._forget(migration.new_node)
