"""The console's view of the cluster, for keys that may administer: the ring and the
nodes, joins, and the access keys.

    GET    cluster               admin status (admin.status: nodes probed first) plus
                                 ``ring`` (the owner of each of the 360 sectors and the
                                 migration in progress, see :func:`ring_state`) and each
                                 node's failed calls seen by the gateway (``errors``)
    POST   join                  {"node": URL}: the join, streamed as NDJSON as
                                 ``POST /_admin/join`` streams it, each line with
                                 ``migration`` (which sectors move, how far each is)
    *      keys[/KEY[/allow|deny]]   the admin API's key routes, as they are

Each is the admin API's call of the same name, allowed to the same keys (the root
key), and the key routes are served by the admin handler itself.
"""

from __future__ import annotations

import collections
from collections.abc import Mapping
from typing import Any

from ...asgi import Send
from ...errors import JoinRefused
from ...metrics import GatewayMetrics
from ...orchestrator import SECTORS, Orchestrator
from ...progress import Listener
from .. import admin
from ..router import ADMIN_PREFIX
from .context import ConsoleCall
from .web import send_json


def ring_state(orchestrator: Orchestrator) -> dict[str, Any]:
    """The ring as the console draws it: ``owners`` (360 node ids, by sector) and
    ``migration``: None, or the joining ``node``, the ``phase`` (copying, switched) and
    ``moves``, one ``{"sector", "donor", "copied"}`` per moving sector, ``copied``
    being the fraction of its bytes relayed so far in the current copy pass."""
    ring = orchestrator.ring
    return {
        "sectors": SECTORS,
        "owners": [ring.owner(sector) for sector in range(SECTORS)],
        "migration": migration_state(orchestrator),
    }


def migration_state(orchestrator: Orchestrator) -> dict[str, Any] | None:
    migration = orchestrator.topology.migration
    if migration is None:
        return None
    copied = orchestrator.sectors_copied
    return {
        "node": migration.new_node,
        "phase": migration.phase.value,
        "moves": [
            {"sector": sector, "donor": donor, "copied": round(copied.get(sector, 0.0), 4)}
            for sector, donor in migration.moves.items()
        ],
    }


def call_errors(metrics: GatewayMetrics) -> dict[str, int]:
    """Failed node calls by node, as the gateway counted them since it started."""
    totals: collections.Counter[str] = collections.Counter()
    for family in metrics.nodes.errors.collect():
        for sample in family.samples:
            if sample.name.endswith("_total"):
                totals[sample.labels["node"]] += int(sample.value)
    return dict(totals)


async def overview(call: ConsoleCall, send: Send) -> None:
    call.allow("GET", "Admin", ADMIN_PREFIX, "status")
    orchestrator = call.services.orchestrator
    status = await admin.status(call.services)
    errors = call_errors(orchestrator.metrics)
    for node in status["nodes"]:
        node["errors"] = errors.get(node["id"], 0)
    status["ring"] = ring_state(orchestrator)
    await send_json(send, 200, status)


async def join(call: ConsoleCall, send: Send) -> None:
    operation = call.allow("POST", "Admin", ADMIN_PREFIX, "join")
    payload = await call.read_json(operation)
    node = payload.get("node") if isinstance(payload, Mapping) else None
    if not isinstance(node, str) or not node.strip():
        raise JoinRefused('a join needs {"node": "<url of the new node>"}')
    orchestrator = call.services.orchestrator
    listeners: list[Listener] = []

    def with_migration(message: dict[str, Any]) -> None:
        message = {**message, "migration": migration_state(orchestrator)}
        for listener in list(listeners):
            listener(message)

    async def work() -> dict[str, Any]:
        return {"node_id": await orchestrator.add_node(node.strip())}

    orchestrator.progress_listeners.append(with_migration)
    try:
        await admin.stream_task(send, listeners, work)
    finally:
        orchestrator.progress_listeners.remove(with_migration)


async def keys(call: ConsoleCall, send: Send) -> None:
    operation = call.allow(call.request.method, "Admin", ADMIN_PREFIX, "/".join(call.route))
    await admin.admin(call.gateway_call(operation), send)
