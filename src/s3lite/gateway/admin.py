"""The admin API, under ``/_admin/`` (a name no bucket can have), JSON in and out.
Every route needs a request signed by the root key (the app checks it as it checks
any operation: the router marks them all Access.ADMIN).

    GET    status                  nodes, arcs, usage, migration
    POST   join                    {"node": URL}: join a node (returns when rebalanced)
    GET    idle                    returns once no other request is in flight (tests)
    GET    keys                    every key (no secrets) with its grants
    POST   keys                    {"name": ...}: a new key; the only time its secret is shown
    DELETE keys/KEY                delete a key (its buckets pass to root)
    POST   keys/KEY/allow          {"bucket": B, "read": bool, "write": bool}
    POST   keys/KEY/deny           the same, taking the named rights away

Errors are JSON too: ``{"error": <error class>, "message": ...}`` with the error's status.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from ..asgi import MAX_JSON_BODY, BadRequest, Send, send_json
from ..errors import InvalidArgument, JoinRefused, NotFound, S3liteError
from ..receiver.buckets import check_bucket
from .call import Call, Handler, Services


async def admin(call: Call, send: Send) -> None:
    request = call.request
    services = call.services
    route = tuple(call.key.split("/")) if call.operation.key else ()
    match request.method, route:
        case "GET", ("status",):
            await send_json(send, 200, await status(services))
        case "POST", ("join",):
            payload = await _json(call)
            node = payload.get("node") if isinstance(payload, Mapping) else None
            if not isinstance(node, str) or not node:
                raise JoinRefused(f'join needs {{"node": "<url>"}}, got {payload!r}')
            node_id = await services.orchestrator.add_node(node)
            await send_json(send, 200, {"node_id": node_id})
        case "GET", ("idle",):
            await services.in_flight.wait_idle(own=1)
            await send_json(send, 200, {})
        case "GET", ("keys",):
            keys = [
                {**key.describe(), "grants": services.keys.grants_of(key.access_key)}
                for key in services.keys.list_keys()
            ]
            await send_json(send, 200, {"keys": keys})
        case "POST", ("keys",):
            payload = await _json(call)
            payload = {} if payload is None else payload
            name = payload.get("name", "") if isinstance(payload, Mapping) else None
            if not isinstance(name, str):
                raise InvalidArgument(f'create a key with {{"name": "<text>"}}, got {payload!r}')
            key = services.keys.create_key(name)
            await send_json(send, 200, {**key.describe(), "secret": key.secret})
        case "DELETE", ("keys", access_key):
            services.keys.delete_key(access_key)
            await send_json(send, 200, {"deleted": access_key})
        case "POST", ("keys", access_key, ("allow" | "deny") as verb):
            await send_json(send, 200, await _grant(services, access_key, verb, await _json(call)))
        case _:
            raise NotFound(f"no admin route {request.method} /_admin/{call.operation.key or ''}")


async def _json(call: Call) -> Any:
    """The body as JSON, checked against its signature like any body (None if empty)."""
    body = await call.read_body(MAX_JSON_BODY)
    try:
        return json.loads(body or b"null")
    except ValueError as exc:
        raise BadRequest(f"the body is not valid JSON: {exc}") from exc


async def _grant(services: Services, access_key: str, verb: str, payload: Any) -> dict[str, Any]:
    if not isinstance(payload, Mapping) or not isinstance(payload.get("bucket"), str):
        raise InvalidArgument(f'{verb} takes {{"bucket": B, "read": bool, "write": bool}}')
    flags = {name: payload.get(name, False) for name in ("read", "write")}
    if not all(isinstance(flag, bool) for flag in flags.values()):
        raise InvalidArgument("read and write are true or false")
    bucket = check_bucket(payload["bucket"])
    await services.buckets.check(bucket)
    if not any(flags.values()):
        flags = {"read": True, "write": True}  # neither named: both
    value = verb == "allow"
    read, write = services.keys.grant(
        access_key,
        bucket,
        read=value if flags["read"] else None,
        write=value if flags["write"] else None,
    )
    return {"access_key": access_key, "bucket": bucket, "read": read, "write": write}


async def status(services: Services) -> dict[str, Any]:
    """Nodes with their state, arcs and usage; the migration in progress, if any."""
    orchestrator = services.orchestrator
    topology = orchestrator.topology
    ring = orchestrator.ring
    nodes = []
    for info in topology.nodes:
        entry: dict[str, Any] = {
            "id": info.node_id,
            "address": info.address,
            "state": info.state.value,
            "sectors": len(ring.sectors_of(info.node_id)),
            "arcs": [str(arc) for arc in ring.arcs_of(info.node_id)],
        }
        try:
            usage = await orchestrator.client(info.node_id).usage()
            entry["bytes"] = sum(usage.values())
        except S3liteError as exc:
            entry["bytes"] = None
            entry["error"] = str(exc)
        nodes.append(entry)
    migration = topology.migration
    return {
        "policy": topology.policy,
        "generation": topology.generation,
        "nodes": nodes,
        "migration": None
        if migration is None
        else {
            "node": migration.new_node,
            "phase": migration.phase.value,
            "sectors": len(migration.moves),
            "donors": {d: len(s) for d, s in migration.plan.by_donor().items()},
        },
        "requests_in_flight": services.in_flight.count - 1,
    }


HANDLERS: dict[str, Handler] = {"Admin": admin}
