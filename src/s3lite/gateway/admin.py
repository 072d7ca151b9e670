"""The admin API, under ``/_admin/`` (a name no bucket can have), JSON in and out.
Every route needs a request signed by the root key (the app checks it as it checks
any operation: the router marks them all Access.ADMIN).

    GET    status                  nodes (up/down/joining, since, full, usage), arcs,
                                   migration, progress, parity (target, what new
                                   objects get, warning), heal queue size, the
                                   healer (degraded segments, queue, rebuilt bytes,
                                   scrub position) (probes every node first)
    POST   join                    {"node": URL}: join a node (returns when rebalanced);
                                   with Accept: application/x-ndjson, streams progress
    POST   heal                    {} or {"node": ID}: a full heal pass (every segment, or
                                   those with a part on the node); returns its counts,
                                   or streams its progress as join does
    GET    idle                    returns once no other request is in flight (tests)
    GET    keys                    every key (no secrets) with its grants
    POST   keys                    {"name": ...}: a new key; the only time its secret is shown
    DELETE keys/KEY                delete a key (its buckets pass to root)
    POST   keys/KEY/allow          {"bucket": B, "read": bool, "write": bool}
    POST   keys/KEY/deny           the same, taking the named rights away

Errors are JSON too: ``{"error": <error class>, "message": ...}`` with the error's status.

A streamed join (progress.py's events, one JSON object per line) answers 200 at once
and then sends ``{"event": "step", "step": ..., "details": {...}, "progress": P}`` per
step, ``{"event": "progress", "progress": P}`` at most every PROGRESS_INTERVAL
seconds while bytes move, and ends with ``{"event": "done", "result": {"node_id":
...}, "progress": P}`` or ``{"event": "error", "error": <class>, "message": ...,
"status": <HTTP status it would have had>}``. P is a Progress.snapshot(). The join
does not depend on the caller: a client that goes away does not stop it (the stream's
writes then go nowhere); its progress stays in ``status``. :func:`stream_task` is the
same machinery for any long task (the healer's pass).
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Final

import anyio
import attrs

from ..asgi import MAX_JSON_BODY, BadRequest, Send, send_json
from ..errors import InvalidArgument, JoinRefused, NotFound
from ..orchestrator import NodeState
from ..receiver.buckets import check_bucket
from ..receiver.healer import Healer
from .call import Call, Handler, Services
from .errors import entry_of

NDJSON: Final = "application/x-ndjson"
PROGRESS_INTERVAL: Final = 0.25
"""Seconds between two progress lines of a stream (steps are sent at once)."""


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
            orchestrator = services.orchestrator

            async def join() -> dict[str, Any]:
                return {"node_id": await orchestrator.add_node(node)}

            if NDJSON in request.headers.get("accept", ""):
                await stream_task(send, orchestrator.progress_listeners, join)
            else:
                await send_json(send, 200, await join())
        case "POST", ("heal",):
            healer = _healer(services)
            only = _heal_node(services, await _json(call))

            async def heal() -> dict[str, Any]:
                return await healer.run_pass(only)

            if NDJSON in request.headers.get("accept", ""):
                await stream_task(send, healer.progress_listeners, heal)
            else:
                await send_json(send, 200, await heal())
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


def _healer(services: Services) -> Healer:
    healer = services.receiver.healer
    if healer is None:
        raise NotFound("this gateway runs no healer")
    return healer


def _heal_node(services: Services, payload: Any) -> str | None:
    """The node a heal pass is limited to (None: all), checked before anything runs."""
    payload = {} if payload is None else payload
    node = payload.get("node") if isinstance(payload, Mapping) else 0
    if node is None:
        return None
    if not isinstance(node, str) or node not in services.orchestrator.topology.node_ids:
        known = ", ".join(services.orchestrator.topology.node_ids)
        raise InvalidArgument(f'heal takes {{}} or {{"node": <one of {known}>}}, got {payload!r}')
    return node


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
    """The cluster now: nodes with their ring state, liveness (probed first, so a node
    that just came back shows up), usage against the fair share, arcs; the migration
    and the progress of long tasks."""
    orchestrator = services.orchestrator
    await orchestrator.probe()
    topology = orchestrator.topology
    ring = orchestrator.ring
    liveness = orchestrator.liveness
    nodes: list[dict[str, Any]] = []
    for info in topology.nodes:
        live = liveness.state(info.node_id)
        health = live.health if live.up else None
        nodes.append(
            {
                "id": info.node_id,
                "address": info.address,
                "state": info.state.value,
                "up": live.up,
                "condition": _condition(info.state, live.up, live.full),
                "since": live.since,
                "down_since": None if live.up else live.since,
                "reason": live.reason or None,
                "full": live.full,
                "bytes": None if health is None else health.bytes_stored,
                "parts": None if health is None else health.parts,
                "free_bytes": None if health is None else health.free_bytes,
                "quarantined": None if health is None else health.quarantined,
                "replaced": None if health is None else health.replaced,
                "sectors": len(ring.sectors_of(info.node_id)),
                "arcs": [str(arc) for arc in ring.arcs_of(info.node_id)],
            }
        )
    ready = [n for n in nodes if n["state"] == NodeState.READY.value]
    known = [n["bytes"] for n in ready if n["bytes"] is not None]
    migration = topology.migration
    progress = orchestrator.progress
    healer = services.receiver.healer
    heal_progress = None if healer is None or healer.progress is None else healer.progress
    return {
        "policy": topology.policy,
        "generation": topology.generation,
        "nodes": nodes,
        "nodes_up": sum(1 for n in ready if n["up"]),
        "fair_share_bytes": sum(known) // len(known) if known else None,
        "migration": None
        if migration is None
        else {
            "node": migration.new_node,
            "phase": migration.phase.value,
            "sectors": len(migration.moves),
            "donors": {d: len(s) for d, s in migration.plan.by_donor().items()},
        },
        "progress": {
            "join": None if progress is None else progress.snapshot(),
            "heal": None if heal_progress is None else heal_progress.snapshot(),
        },
        "requests_in_flight": services.in_flight.count - 1,
        "parity": attrs.asdict(orchestrator.parity_status()),
        "heal_queue": await services.receiver.heal.size(),
        "heal": None if healer is None else await healer.status(),
    }


def _condition(state: NodeState, up: bool, full: bool) -> str:
    """One word for people: joining, down, full or up."""
    if not up:
        return "down"
    if state is NodeState.JOINING:
        return "joining"
    return "full" if full else "up"


async def stream_task(
    send: Send,
    listeners: list[Callable[[dict[str, Any]], None]],
    work: Callable[[], Awaitable[dict[str, Any]]],
) -> None:
    """Run ``work`` and stream the progress events ``listeners`` receive meanwhile as
    NDJSON (see the module doc); the last line is ``done`` with what ``work``
    returned, or ``error``. Steps are sent in order; progress lines are coalesced to
    one per PROGRESS_INTERVAL."""
    steps: list[dict[str, Any]] = []
    latest: list[dict[str, Any]] = []
    changed = anyio.Event()

    def listen(message: dict[str, Any]) -> None:
        nonlocal changed
        if message["event"] == "progress":
            latest[:] = [message]
        elif message["event"] == "step":
            steps.append(message)
        changed.set()

    async def line(message: dict[str, Any]) -> None:
        data = json.dumps(message, default=str).encode() + b"\n"
        await send({"type": "http.response.body", "body": data, "more_body": True})

    async def forward(done: anyio.Event) -> None:
        nonlocal changed
        while True:
            await changed.wait()
            changed = anyio.Event()
            while steps:
                await line(steps.pop(0))
            if latest:
                await line(latest.pop())
            if done.is_set():
                return
            await anyio.sleep(PROGRESS_INTERVAL)

    headers = [(b"content-type", NDJSON.encode()), (b"cache-control", b"no-store")]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    listeners.append(listen)
    done = anyio.Event()
    ending: dict[str, Any]
    try:
        async with anyio.create_task_group() as group:
            group.start_soon(forward, done)
            try:
                result = await work()
            except Exception as exc:
                entry = entry_of(exc)
                ending = {"event": "error", "error": type(exc).__name__, "message": str(exc),
                          "status": entry.status}  # fmt: skip
            else:
                ending = {"event": "done", "result": result}
            done.set()
            changed.set()
    finally:
        listeners.remove(listen)
    await line(ending)
    await send({"type": "http.response.body", "body": b""})


HANDLERS: dict[str, Handler] = {"Admin": admin}
