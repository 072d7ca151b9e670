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
   node, which verifies every CRC and installs the archive all or nothing.
5. *switch* — persist and publish the ring with the new node owning its sectors.
6. *drain*, then *drop* the donors' copies and persist the end of the migration. If a
   dual write to the new node failed meanwhile (the donor's copy succeeded, so the
   client's write stood), the sectors are copied once more before the drop.

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
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from typing import Final

import anyio
import attrs

from ..errors import JoinRefused, NodeUnavailable, PartNotFound, S3liteError
from ..streams import single_error
from ..transport.base import ByteStream, NodeClient, Transport
from .catalog import PartCatalog, plan_rehomes
from .persistence import TopologyStore
from .policies import JoinPolicy, get_policy
from .ring import NodeId, Ring
from .routing import EpochGate, RoutingView
from .topology import Migration, MigrationPhase, NodeInfo, NodeState, Topology

log = logging.getLogger(__name__)

StepHook = Callable[[str], Awaitable[None]]

MIN_NODES: Final = 6


class Orchestrator:
    """Topology, routing and joins of one cluster.

    Create it, attach the receiver's catalog, then :meth:`open` it (which loads or
    creates the topology) and :meth:`resume` any migration a crash interrupted.
    """

    def __init__(self, transport: Transport, store: TopologyStore, *, policy: str = "fill"):
        self._transport = transport
        self._store = store
        self._policy_name = policy
        self._clients: dict[NodeId, NodeClient] = {}
        self._topology: Topology | None = None
        self._view: RoutingView | None = None
        self._gate = EpochGate()
        self._join_lock = anyio.Lock()
        self._dual_write_failures = 0
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

    def client(self, node_id: NodeId) -> NodeClient:
        try:
            return self._clients[node_id]
        except KeyError:
            raise NodeUnavailable(node_id, "not a node of this cluster") from None

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
            self._clients[info.node_id] = self._transport.connect(info.address)
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
        found = (await client.health()).node_id
        if found != node_id:
            raise NodeUnavailable(client.address, f"it is node {found!r}, not {node_id!r}")
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
        return Topology(policy.name, nodes, policy.initial(ids))

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
        member (by id or address), or not empty.
        """
        async with self._join_lock:
            if self.topology.migration is not None:
                await self._migrate()
            if self.catalog is None:
                raise RuntimeError("attach a part catalog before adding nodes")
            client, node_id = await self._admit(address)
            plan = self.policy.plan(self.ring, await self.usage(), node_id)
            given = collections.Counter(plan.moves.values())
            for donor, count in sorted(given.items()):
                if count >= len(self.ring.sectors_of(donor)):
                    raise JoinRefused(f"the {self.policy.name} plan would empty node {donor!r}")
            topology = self.topology
            await self._commit(
                topology.evolve(
                    nodes=(*topology.nodes, NodeInfo(node_id, address, NodeState.JOINING)),
                    migration=Migration(node_id, plan.moves),
                )
            )
            self._clients[node_id] = client
            await self._migrate()
        return node_id

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
            try:
                if migration.phase is MigrationPhase.COPYING:
                    # Whatever reached the new node is incomplete; the donors hold it all.
                    try:
                        await self.client(migration.new_node).drop_sectors(list(migration.moves))
                    except S3liteError:
                        await self._roll_back(migration)
                        raise
                await self._migrate(recopy=True)
            except S3liteError as exc:
                log.warning("the join of %s cannot finish yet: %s", migration.new_node, exc)

    def note_dual_write_failure(self, node_id: NodeId, error: BaseException) -> None:
        """A write to a joining node failed (the donor's copy succeeded, so the client's
        write stands): the sectors will be copied again before the donors drop them."""
        log.warning(
            "a dual write to %s failed, its sectors will be copied again: %s", node_id, error
        )
        self._dual_write_failures += 1

    async def _migrate(self, *, recopy: bool = False) -> None:
        migration = self.topology.migration
        assert migration is not None
        if migration.phase is MigrationPhase.COPYING:
            self._dual_write_failures = 0
            try:
                await self._copy(migration)
            except BaseException as exc:
                if isinstance(exc, Exception | anyio.get_cancelled_exc_class()):
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
            await self._step("after-switch")
        await self._drain()
        if recopy or self._dual_write_failures:
            # The new node may have missed a write made while it was joining (or, after
            # a restart, nobody knows): copy again from the donors, which hold it all.
            await self._transfer(migration)
        await self._step("before-drop")
        for donor, sectors in migration.plan.by_donor().items():
            await (await self.verified_client(donor)).drop_sectors(sectors)
        await self._commit(self.topology.evolve(migration=None))

    async def _copy(self, migration: Migration) -> None:
        await self._drain()
        await self._rehome(migration)
        await self._step("before-export")
        await self._transfer(migration)

    async def _transfer(self, migration: Migration) -> None:
        """Stream every donor's moving sectors to the new node (idempotent: parts are
        immutable, so copying again replaces files with the same bytes)."""
        recipient = self.client(migration.new_node)
        for donor, sectors in migration.plan.by_donor().items():
            archive = await self.client(donor).export_sectors(sectors)
            try:
                await recipient.import_sectors(self._relay(archive))
            finally:
                await archive.aclose()

    async def _relay(self, archive: ByteStream) -> AsyncIterator[bytes]:
        first = True
        async for chunk in archive:
            yield chunk
            if first:
                first = False
                await self._step("mid-import")

    async def _rehome(self, migration: Migration) -> None:
        catalog = self.catalog
        assert catalog is not None
        plan = migration.plan
        parts = await catalog.parts_in_sectors(list(plan.moves))
        for rehome in plan_rehomes(parts, plan, plan.apply(self.ring)):
            part, donor = rehome.part, self.client(plan.moves[rehome.part.sector])
            try:
                await donor.link_part(part.name, part.sector, rehome.new_sector)
            except PartNotFound:
                continue  # an upload that never finished; the janitor removes its record
            if await catalog.move_part(part, rehome.new_sector):
                await donor.delete_parts(part.sector, [part.name])
            else:
                await donor.delete_parts(rehome.new_sector, [part.name])

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
            self._clients.pop(migration.new_node, None)
