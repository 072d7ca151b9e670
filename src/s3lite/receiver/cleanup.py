"""Deleting an upload's parts, then its record: the one way storage is reclaimed.

Parts are deleted from every node routing names for their sector (both ends of a
moving sector), and only then are the upload's rows forgotten. A node the liveness
view has down is not even tried (it would cost a timeout, and a hung node would stall
the caller); if a node is down or cannot be reached the rows stay, and the janitor
tries again later (at once when the node comes back, see cluster.py).
"""

from __future__ import annotations

import anyio

from ..errors import NodeUnavailable, S3liteError
from ..orchestrator import Orchestrator, RoutingView
from .manifest_protocol import ManifestStore


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
    """Delete on every node at once; if some failed, raise the first failure after the
    others are done, so one dead node does not keep garbage on the live ones."""
    by_node: dict[tuple[str, int], list[str]] = {}
    for part in await manifests.upload_parts(upload_id):
        for node_id in view.write_owners(part.sector):
            by_node.setdefault((node_id, part.sector), []).append(part.name)
    failures: list[S3liteError] = []

    async def delete(node_id: str, sector: int, names: list[str]) -> None:
        if not orchestrator.liveness.is_up(node_id):
            failures.append(NodeUnavailable(node_id, "down: its parts are left for the janitor"))
            return
        try:
            await orchestrator.client(node_id).delete_parts(sector, names)
        except S3liteError as exc:
            failures.append(exc)

    async with anyio.create_task_group() as group:
        for (node_id, sector), names in sorted(by_node.items()):
            group.start_soon(delete, node_id, sector, names)
    if failures:
        raise failures[0]
