"""The heal queue: where the read and write paths report segments that need repair.

This is the seam between the paths that *find* a problem and the healer that fixes
it. A read that had to decode around a part (missing, damaged, on a node that is
down), an upload that stored a part fewer than it meant to, or one written with less
parity than its class asks for because nodes were down or full, each calls
:meth:`HealQueue.report` with the segment's identity (upload id, segment number), a
:class:`HealReason` and a few words of detail (which part, which node, why).

``report`` never blocks and never fails the request that calls it: it records the
item in memory (deduplicated) and wakes the flusher (:meth:`HealQueue.run`, started by
the cluster), which writes batches to the ``heal_queue`` table of the manifest store
(``heal_store.py``), so the queue survives restarts. An item reported twice keeps
its first ``queued`` time and the latest detail.

The healer (a later piece of work) takes items with :meth:`HealQueue.pending`, in
the order they were queued, and removes them with :meth:`HealQueue.done` once the
segment is whole again. A segment whose upload is forgotten (deleted) leaves the
queue with it. Until then, the queue only grows: nothing here repairs anything.
"""

from __future__ import annotations

import enum
import logging
import time
from collections.abc import Callable, Sequence
from typing import Protocol

import anyio
import attrs

from ..metrics import DurabilityMetrics

log = logging.getLogger(__name__)


class HealReason(enum.StrEnum):
    """Why a segment was queued."""

    MISSING = "missing"
    """A part was not stored by its upload (its node failed while six or more others
    were stored): it is recorded ``missing`` and must be written."""
    DAMAGED = "damaged"
    """A node found a part damaged and quarantined it: it must be rebuilt."""
    NOT_FOUND = "not-found"
    """A node does not hold a part the manifest places there."""
    NODE_DOWN = "node-down"
    """A read found a part's node down (or it failed mid-read) and decoded around it;
    the part may be fine once the node is back: verify before rebuilding."""
    LOW_PARITY = "low-parity"
    """Written with fewer parity parts than its storage class asks for, because nodes
    were down or full at the time (re-protect once they are back)."""


@attrs.frozen
class HealItem:
    """One segment waiting for the healer, and why."""

    upload_id: str
    segment: int
    reason: HealReason = attrs.field(converter=HealReason)
    detail: str = ""
    """Which part, which node, what the node said: for the healer's log and for people."""
    queued: float = 0.0
    """When it was first reported (Unix seconds)."""


class HealStore(Protocol):
    """Where the queue is kept (the manifest store implements it)."""

    async def queue_heal(self, items: Sequence[HealItem]) -> None:
        """Add items; one already queued (same upload, segment, reason) keeps its
        ``queued`` time and takes the new detail."""
        ...

    async def heal_items(self, limit: int) -> list[HealItem]:
        """Up to ``limit`` items, oldest first."""
        ...

    async def heal_done(self, upload_id: str, segment: int) -> int:
        """Remove every item of a segment; returns how many there were."""
        ...

    async def heal_queue_size(self) -> int:
        """Distinct segments in the queue."""
        ...


class HealQueue:
    """Reports in, batched and persisted; items out for the healer (see module doc)."""

    def __init__(
        self,
        store: HealStore,
        *,
        metrics: DurabilityMetrics | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._store = store
        self._metrics = metrics
        self._clock = clock
        self._unsaved: dict[tuple[str, int, HealReason], HealItem] = {}
        self._wake = anyio.Event()

    # -- the read and write paths --------------------------------------------------------

    def report(self, upload_id: str, segment: int, reason: HealReason, detail: str = "") -> None:
        """Queue a segment for the healer. Never blocks, never raises."""
        key = (upload_id, segment, reason)
        earlier = self._unsaved.get(key)
        queued = self._clock() if earlier is None else earlier.queued
        self._unsaved[key] = HealItem(upload_id, segment, reason, detail, queued)
        self._wake.set()

    @property
    def unsaved(self) -> int:
        """Reports not written to the store yet."""
        return len(self._unsaved)

    async def flush(self) -> int:
        """Write what was reported to the store; returns how many items. On a store
        error the items stay here for the next flush."""
        if not self._unsaved:
            return 0
        items, self._unsaved = self._unsaved, {}
        try:
            await self._store.queue_heal(list(items.values()))
        except BaseException:
            for key, item in items.items():  # keep them, unless reported again meanwhile
                self._unsaved.setdefault(key, item)
            raise
        if self._metrics is not None:
            self._metrics.heal_queue.set(await self._store.heal_queue_size())
        return len(items)

    async def run(self) -> None:
        """Flush whenever something is reported, until cancelled (then flush once more,
        shielded, so a clean shutdown loses nothing)."""
        try:
            while True:
                await self._wake.wait()
                self._wake = anyio.Event()
                try:
                    await self.flush()
                except Exception:
                    log.exception("could not save the heal queue; will try again")
                    await anyio.sleep(1.0)
                    self._wake.set()
        finally:
            with anyio.CancelScope(shield=True):
                try:
                    await self.flush()
                except Exception:
                    log.exception("could not save the heal queue at shutdown")

    # -- the healer ----------------------------------------------------------------------

    async def pending(self, limit: int = 100) -> list[HealItem]:
        """The oldest items (saved ones; call :meth:`flush` first to include the rest)."""
        return await self._store.heal_items(limit)

    async def done(self, upload_id: str, segment: int) -> None:
        """The segment is whole again: forget every item of it."""
        self._unsaved = {k: v for k, v in self._unsaved.items() if k[:2] != (upload_id, segment)}
        await self._store.heal_done(upload_id, segment)
        if self._metrics is not None:
            self._metrics.heal_queue.set(await self._store.heal_queue_size())

    async def size(self) -> int:
        """Distinct segments queued (saved or not)."""
        await self.flush()
        return await self._store.heal_queue_size()
