"""A join's copy: every donor's moving sectors, exported as a zip stream and relayed
to the new node, which imports them (storager/transfer.py does both ends' work).

The copy is idempotent (parts are immutable, so copying again replaces files with the
same bytes), which is what lets a join copy once more after a missed dual write or a
restart. It counts as it relays (copy_count.py): progress, the relayed-bytes metric,
and each moving sector's fraction copied for the console.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Mapping

from ..buffers import Buffer
from ..errors import S3liteError
from ..metrics import GatewayMetrics
from ..progress import Progress
from ..transport.base import ByteStream, NodeClient
from .copy_count import DonorCount, moving_bytes
from .ring import NodeId
from .topology import Migration

Clients = Callable[[NodeId], NodeClient]
"""A node's client by its id (Orchestrator.client: calls observed for liveness)."""


async def copy_sectors(
    client: Clients,
    migration: Migration,
    progress: Progress,
    sizes: Mapping[int, int],
    metrics: GatewayMetrics,
    copied: dict[int, float],
    *,
    on_first_chunk: Callable[[], Awaitable[None]],
) -> None:
    """Stream every donor's moving sectors to the new node, one donor after another,
    counting sectors and bytes (``sizes``: bytes per moving sector) in ``progress``
    and each sector's fraction in ``copied``. ``on_first_chunk`` runs once per donor
    after its first chunk has gone on (a crash test's hook). Raises what a node
    raises; the import is all or nothing per donor."""
    progress.set_totals(items=len(migration.moves), bytes=sum(sizes.values()))
    progress.restart_counts()
    progress.step("copy", sectors=len(migration.moves), bytes=sum(sizes.values()))
    recipient = client(migration.new_node)
    for donor, sectors in migration.plan.by_donor().items():
        count = DonorCount(donor, sorted(sectors), sizes, progress, metrics, copied)
        archive = await client(donor).export_sectors(sectors)
        try:
            await recipient.import_sectors(_relay(archive, count, on_first_chunk))
        finally:
            await archive.aclose()
        count.complete()


async def moving_sizes(client: Clients, migration: Migration) -> dict[int, int]:
    """Bytes per moving sector as the donors report them now (0 where unknown)."""
    usage: dict[NodeId, dict[int, int]] = {}
    for donor in migration.plan.by_donor():
        try:
            usage[donor] = dict(await client(donor).usage())
        except S3liteError:
            usage[donor] = {}
    return moving_bytes(migration.moves, usage)


async def _relay(
    archive: ByteStream, count: DonorCount, on_first_chunk: Callable[[], Awaitable[None]]
) -> AsyncIterator[Buffer]:
    first = True
    async for chunk in archive:
        count.relayed(len(chunk))
        yield chunk
        if first:
            first = False
            await on_first_chunk()
