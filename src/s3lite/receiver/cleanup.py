"""Deleting an upload's parts, then its record: the one way storage is reclaimed.

Parts are deleted from every node routing names for their sector (both ends of a
moving sector), and only then are the upload's rows forgotten. If a node cannot be
reached the rows stay, and the janitor tries again later.
"""

from __future__ import annotations

from ..orchestrator import Orchestrator, RoutingView
from .manifest_store import ManifestStore


async def discard_upload(
    orchestrator: Orchestrator,
    manifests: ManifestStore,
    upload_id: str,
    view: RoutingView | None = None,
) -> None:
    """Delete every part of ``upload_id`` and forget it. Pass ``view`` when the caller
    already holds a lease; otherwise one is taken for the duration."""
    if view is None:
        with orchestrator.lease() as current:
            await _delete_parts(orchestrator, manifests, upload_id, current)
    else:
        await _delete_parts(orchestrator, manifests, upload_id, view)
    await manifests.forget_upload(upload_id)


async def _delete_parts(
    orchestrator: Orchestrator, manifests: ManifestStore, upload_id: str, view: RoutingView
) -> None:
    by_sector: dict[int, list[str]] = {}
    for part in await manifests.upload_parts(upload_id):
        by_sector.setdefault(part.sector, []).append(part.name)
    for sector, names in sorted(by_sector.items()):
        for node_id in view.write_owners(sector):
            await orchestrator.client(node_id).delete_parts(sector, names)
