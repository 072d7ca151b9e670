"""Routing views and the epochs that let a migration wait for older requests.

Every request takes a :class:`RoutingView` when it starts, so all its routing
decisions agree with each other, and holds it while it routes: an upload or a delete
to its end, a read until its parts are open (an open part keeps streaming even if its
file is then dropped: files are unlinked, not truncated). Each topology change
publishes a new view with the next epoch; before a migration takes its next step it
waits until no request still holds a view from an earlier epoch
(:meth:`EpochGate.drain`). That is how a copy can be sure it sees every write that
started before dual-writing began, and how a drop can be sure no request is still
about to open the old copy. New requests are never blocked: draining waits only for
old ones.
"""

from __future__ import annotations

import collections
from collections.abc import Iterator, Mapping
from contextlib import contextmanager

import anyio
import attrs

from .ring import NodeId, Ring
from .topology import MigrationPhase, Topology


@attrs.frozen
class RoutingView:
    """Where each sector is read and written, as of one epoch."""

    epoch: int
    ring: Ring
    """Serves reads, and writes outside moving sectors."""
    target: Ring
    """The ring after the migration in progress (``ring`` if there is none)."""
    dual_writes: Mapping[int, NodeId] = attrs.field(factory=dict)
    """Moving sector -> recipient: writes and deletes go to the donor *and* the recipient."""

    @classmethod
    def of(cls, topology: Topology, epoch: int) -> RoutingView:
        migration = topology.migration
        if migration is not None and migration.phase is MigrationPhase.COPYING:
            recipients = dict.fromkeys(migration.moves, migration.new_node)
            return cls(epoch, topology.ring, topology.target_ring, recipients)
        return cls(epoch, topology.ring, topology.ring)

    def read_owner(self, sector: int) -> NodeId:
        return self.ring.owner(sector)

    def write_owners(self, sector: int) -> tuple[NodeId, ...]:
        """Every node a write (or delete) of ``sector`` must reach; the reader first."""
        owner = self.ring.owner(sector)
        recipient = self.dual_writes.get(sector)
        return (owner,) if recipient is None else (owner, recipient)

    @property
    def placement_rings(self) -> tuple[Ring, ...]:
        """Rings in which a new upload's parts must have distinct owners."""
        return (self.ring,) if self.target == self.ring else (self.ring, self.target)


class EpochGate:
    """Counts requests in flight per epoch so that a migration can wait for old ones."""

    def __init__(self) -> None:
        self._active: collections.Counter[int] = collections.Counter()
        self._changed = anyio.Event()

    @contextmanager
    def hold(self, epoch: int) -> Iterator[None]:
        self._active[epoch] += 1
        try:
            yield
        finally:
            self._active[epoch] -= 1
            if not self._active[epoch]:
                del self._active[epoch]
                self._changed.set()
                self._changed = anyio.Event()

    def in_flight(self, before: int) -> int:
        """Requests still running under an epoch older than ``before``."""
        return sum(count for epoch, count in self._active.items() if epoch < before)

    async def drain(self, before: int) -> None:
        """Return once every request of an epoch older than ``before`` has finished."""
        while self.in_flight(before):
            await self._changed.wait()
