"""The janitor: removes what interrupted uploads and crashes leave behind.

Two sweeps:

* *stale uploads*: uploads still ``pending`` after ``pending_ttl`` seconds (their
  writer died with the process) and uploads marked ``deleting`` whose parts could not
  all be deleted at the time. Their parts are deleted, then their rows.
* *orphan parts*: part files that no row places where they are (a crash between
  writing a part and recording it is impossible, since the row comes first, but a
  crash mid-delete, a rolled-back join or an aborted write racing a delete can leave
  them). This sweep holds off joins while it runs, because during a join files
  legitimately exist where no row (yet) places them.

A part file always has its row before it is written, and rows are forgotten only
after their files are deleted, so "no row places this file here", checked after
listing the file, means it is garbage.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Collection

import attrs

from ..orchestrator import Orchestrator
from ..orchestrator.catalog import sweep_sector
from .cleanup import discard_upload
from .manifest_protocol import ManifestStore

log = logging.getLogger(__name__)

DEFAULT_PENDING_TTL = 3600.0
DEFAULT_MULTIPART_TTL = 24 * 3600.0
"""Multipart uploads neither completed nor aborted this long after their creation are
aborted (their parts deleted). Unlike pending uploads they survive restarts: a client
may resume a multipart upload after the gateway restarts."""


@attrs.frozen
class JanitorReport:
    uploads_removed: int
    orphans_removed: int


class Janitor:
    def __init__(
        self,
        orchestrator: Orchestrator,
        manifests: ManifestStore,
        *,
        pending_ttl: float = DEFAULT_PENDING_TTL,
        multipart_ttl: float = DEFAULT_MULTIPART_TTL,
        in_flight: Collection[str] = (),
        clock: Callable[[], float] = time.time,
    ) -> None:
        """``in_flight``: the receiver's uploads being written or read (and open
        multipart uploads with a part being written or a completion under way); they
        are never swept, however old (a slow 10 GiB upload can outlive the TTL)."""
        self.orchestrator = orchestrator
        self.manifests = manifests
        self.in_flight = in_flight
        self.pending_ttl = pending_ttl
        self.multipart_ttl = multipart_ttl
        self._clock = clock

    async def run_once(
        self, *, pending_before: float | None = None, multipart_before: float | None = None
    ) -> JanitorReport:
        """One pass: probe the nodes (so one that came back is used), finish an
        interrupted join if one is pending, then both sweeps.
        ``pending_before`` and ``multipart_before`` override the TTL cut-offs (at
        start-up every pending upload is stale: no writer survived the restart).
        Problems are logged, never raised: a node that is down or a file that cannot
        be read waits for the next pass."""
        now = self._clock()
        if pending_before is None:
            pending_before = now - self.pending_ttl
        if multipart_before is None:
            multipart_before = now - self.multipart_ttl
        await self.orchestrator.probe()
        await self.orchestrator.resume()
        uploads = await self.remove_stale_uploads(pending_before, multipart_before)
        orphans = await self.remove_orphans()
        return JanitorReport(uploads, orphans)

    async def retry_deletions(self) -> int:
        """Delete the parts of uploads left ``deleting`` (a node was down when they were
        abandoned, overwritten or deleted); the cluster calls this as soon as a node
        comes back. Returns how many uploads are gone."""
        await self.orchestrator.probe()
        return await self.remove_stale_uploads(float("-inf"))

    async def remove_stale_uploads(
        self, pending_before: float, multipart_before: float = float("-inf")
    ) -> int:
        removed = 0
        for upload_id in await self.manifests.stale_uploads(pending_before, multipart_before):
            if upload_id in self.in_flight:
                continue
            try:
                claimed = await self.manifests.claim_stale(
                    upload_id, pending_before, multipart_before
                )
                if not claimed:
                    continue  # committed (or otherwise moved on) since it was listed
                for doomed in claimed:
                    if doomed not in self.in_flight:  # else a later pass, or its reader
                        await discard_upload(self.orchestrator, self.manifests, doomed)
            except Exception as exc:
                log.warning("janitor could not remove upload %s yet: %s", upload_id, exc)
                continue
            removed += 1
        return removed

    async def remove_orphans(self) -> int:
        removed = 0
        async with self.orchestrator.no_migration():
            ring = self.orchestrator.ring
            for node_id in self.orchestrator.topology.node_ids:
                try:
                    client = await self.orchestrator.verified_client(node_id)
                    sectors = sorted(await client.usage())
                except Exception as exc:
                    log.warning("janitor skipped node %s: %s", node_id, exc)
                    continue
                for sector in sectors:
                    try:
                        owned = ring.owner(sector) == node_id
                        removed += await sweep_sector(client, self.manifests, sector, owned=owned)
                    except Exception as exc:
                        log.warning("janitor skipped sector %d of %s: %s", sector, node_id, exc)
        return removed
