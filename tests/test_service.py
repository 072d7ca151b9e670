"""The services end to end: six ``s3lite node`` processes and one ``s3lite gateway``
process on 127.0.0.1, driven over HTTP with aiohttp (and, for a client that vanishes
mid-body, a raw TCP socket).

Each test gets a fresh cluster (function-scoped fixture). Processes are started
concurrently, each held by a task of one task group; cancelling that group stops them
all (SIGTERM, see tests/processes.py). Nothing waits by sleeping: the tests wait for
process exit, for responses, and for the ``idle`` routes of the gateway
(``/_admin/idle``) and the nodes (``/v1/idle``), which return once no other request is
being served. Every test runs under a bounded ``anyio.fail_after``.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import sys
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator, Iterable
from pathlib import Path
from typing import Any

import anyio
import anyio.abc
import attrs
import pytest
import yarl

from tests.http_helpers import (
    assert_all_readable,
    create_bucket,
    get,
    get_json,
    md5,
    part_files,
    payload,
    put_object,
    put_ok,
    status,
    upload_all,
    xml_message,
)
from tests.processes import NODES, Server, Service, running_service
from tests.s3sign import ROOT_ACCESS, ROOT_ENV, ROOT_SECRET, SignedSession, sign_raw

pytestmark = pytest.mark.anyio

SECTORS = 360
MiB = 1 << 20
TEST_TIMEOUT = 120.0
S3_NS = {"s3": "http://s3.amazonaws.com/doc/2006-03-01/"}


@pytest.fixture
def anyio_backend() -> str:
    # The gateway's client side (aiohttp) ties these tests to asyncio.
    return "asyncio"


# -- the cluster of processes --------------------------------------------------------------


@pytest.fixture
async def service(tmp_path: Path) -> AsyncIterator[Service]:
    async with running_service(tmp_path) as cluster:
        yield cluster


# -- helpers -------------------------------------------------------------------------------


async def head_status(http: SignedSession, url: yarl.URL) -> int:
    async with http.head(url) as response:
        return response.status


async def raw_head(url: yarl.URL) -> tuple[int, list[tuple[str, str]]]:
    """HEAD over a raw socket: the status and every header line as sent (lower-cased
    names, repeats kept), for checks that a strict client such as aiohttp would refuse
    to parse (it rejects a response with two Content-Length headers)."""
    assert url.host is not None
    assert url.port is not None
    request = f"HEAD {url.raw_path_qs} HTTP/1.1\r\nHost: {url.host}\r\nConnection: close\r\n\r\n"
    received = b""
    async with await anyio.connect_tcp(url.host, url.port) as stream:
        await stream.send(sign_raw(f"http://{url.host}:{url.port}", request.encode()))
        with contextlib.suppress(anyio.EndOfStream):
            while b"\r\n\r\n" not in received:
                received += await stream.receive()
    status_line, *lines = received.split(b"\r\n\r\n", 1)[0].decode("latin-1").split("\r\n")
    headers = [(n.strip().lower(), v.strip()) for n, _, v in (h.partition(":") for h in lines)]
    return int(status_line.split()[1]), headers


async def list_keys(http: SignedSession, service: Service, bucket: str) -> dict[str, int]:
    """Every key of ``bucket`` with its size (following continuation tokens)."""
    found: dict[str, int] = {}
    token = None
    while True:
        query = (
            {"list-type": "2"} if token is None else {"list-type": "2", "continuation-token": token}
        )
        url = service.url(bucket).with_query(query)
        status_code, _, body = await get(http, url)
        assert status_code == 200, body
        root = ET.fromstring(body)
        for entry in root.findall("s3:Contents", S3_NS):
            found[entry.findtext("s3:Key", namespaces=S3_NS) or ""] = int(
                entry.findtext("s3:Size", namespaces=S3_NS) or -1
            )
        token = root.findtext("s3:NextContinuationToken", namespaces=S3_NS)
        if not token:
            return found


async def wait_idle(http: SignedSession, service: Service) -> None:
    """Return once the gateway, then every live node, serves no other request."""
    await get_json(http, f"{service.gw.url}/_admin/idle")
    for node in service.nodes:
        if node.process.returncode is None:
            await get_json(http, f"{node.url}/v1/idle")


def sectors_of(arcs: Iterable[str]) -> set[int]:
    """Sectors named by arcs such as "0-59" or "350-9" (wrapping)."""
    owned: set[int] = set()
    for arc in arcs:
        start, _, end = arc.partition("-")
        first, last = int(start), int(end or start)
        owned.update((first + i) % SECTORS for i in range((last - first) % SECTORS + 1))
    return owned


# -- (a) objects through the gateway --------------------------------------------------------

OBJECT_SIZES = {
    "empty": 0,
    "one-byte": 1,
    "six": 6,
    "seven": 7,
    "odd size": 4099,
    "dir/sub/ünïcödé key %20+&?#": 100_003,
    "several stripes": 6 * MiB + 12_345,
    "big/object.bin": 13 * MiB + 7,
}


async def test_objects_round_trip_byte_exact_with_ranges(
    service: Service, http: SignedSession
) -> None:
    with anyio.fail_after(TEST_TIMEOUT):
        await create_bucket(http, service, "objects")
        await create_bucket(http, service, "objects")  # idempotent
        objects = {key: payload(key, size) for key, size in OBJECT_SIZES.items()}

        async def upload(index: int, key: str, data: bytes) -> None:
            # Every other object is sent chunked (no Content-Length).
            response = await put_object(
                http, service.url("objects", key), data, chunked=index % 2 == 1
            )
            assert response.status == 200, key
            assert response.headers["etag"] == f'"{md5(data)}"', key

        async with anyio.create_task_group() as group:
            for index, (key, data) in enumerate(objects.items()):
                group.start_soon(upload, index, key, data)

        await assert_all_readable(http, service, "objects", objects)
        assert await list_keys(http, service, "objects") == {
            key: len(data) for key, data in objects.items()
        }

        for key, data in objects.items():
            url = service.url("objects", key)
            code, head = await raw_head(url)
            assert code == 200, key
            assert ("content-length", str(len(data))) in head, key
            assert ("etag", f'"{md5(data)}"') in head, key
            size = len(data)
            if size == 0:
                code, _, _ = await get(http, url, {"range": "bytes=0-"})
                assert code == 416, key
                continue
            ranges = {
                (0, 0),
                (size - 1, size - 1),
                (size // 3, 2 * size // 3),
                (max(0, size - 3 * MiB - 1), size - 1),
            }
            if size > MiB + 5:
                ranges.add((MiB - 5, MiB + 5))  # across a stripe unit boundary
            for first, last in sorted(ranges):
                code, headers, body = await get(http, url, {"range": f"bytes={first}-{last}"})
                assert code == 206, (key, first, last)
                assert headers["content-range"] == f"bytes {first}-{last}/{size}"
                assert body == data[first : last + 1], (key, first, last)
            code, headers, body = await get(http, url, {"range": "bytes=-100"})
            assert (code, body) == (206, data[-100:]), key
            code, headers, body = await get(http, url, {"range": f"bytes={size // 2}-"})
            assert (code, body) == (206, data[size // 2 :]), key
            code, headers, _ = await get(http, url, {"range": f"bytes={size}-"})
            assert code == 416, key
            assert headers["content-range"] == f"bytes */{size}"

        code, _, body = await get(http, service.url("objects", "no such key"))
        assert code == 404
        assert ET.fromstring(body).findtext("Code") == "NoSuchKey"


async def test_head_of_an_object_has_one_content_length(
    service: Service, http: SignedSession
) -> None:
    """A HEAD says what a GET would send, once. (At e2f4fcf the gateway sent the size and
    then "0" - gateway.py:269 with asgi.py:119 - and aiohttp refused the response.)"""
    with anyio.fail_after(TEST_TIMEOUT):
        await create_bucket(http, service, "heads")
        data = payload("head", 12_345)
        url = service.url("heads", "object")
        await put_ok(http, url, data)
        code, head = await raw_head(url)
        assert code == 200
        assert [v for n, v in head if n == "content-length"] == [str(len(data))]
        async with http.head(url) as response:  # a strict parser
            assert response.status == 200
            assert response.headers["content-length"] == str(len(data))
            assert response.headers["etag"] == f'"{md5(data)}"'


# -- (b) a join over the network under traffic ----------------------------------------------

SEED_OBJECTS = 40
CLIENTS = 4
CLIENT_KEYS = 6
MIN_CLIENT_OPS = 10


async def test_join_over_the_network_under_traffic(service: Service, http: SignedSession) -> None:
    rng = random.Random(7)
    with anyio.fail_after(TEST_TIMEOUT):
        await create_bucket(http, service, "joins")
        seeded = {
            f"seed/{n:02d}": payload(f"seed{n}", rng.choice([0, 1, 5000, 200_000, 2 * MiB + 3]))
            for n in range(SEED_OBJECTS)
        }
        await upload_all(http, service, "joins", seeded)

        new_node = await service.start_node(NODES)
        joining = anyio.Event()
        joined = anyio.Event()
        model: dict[str, bytes] = dict(seeded)
        during_join = [0]  # operations that completed while `s3lite join` ran

        async def client(number: int) -> None:
            crng = random.Random(number)
            operations = 0
            while not joined.is_set() or operations < MIN_CLIENT_OPS:
                if crng.random() < 0.5:
                    key = f"client{number}/{crng.randrange(CLIENT_KEYS)}"
                    data = payload(f"{key}/{operations}", crng.choice([10, 70_000, MiB + 11]))
                    await put_ok(http, service.url("joins", key), data)
                    model[key] = data
                else:
                    # Seeded keys never change; a client's own keys change only by its
                    # own acknowledged writes: either way the expected bytes are exact.
                    mine = [k for k in model if k.startswith(f"client{number}/")]
                    key = crng.choice(sorted(seeded) + sorted(mine))
                    expected = model[key]
                    code, _, body = await get(http, service.url("joins", key))
                    assert code == 200, (key, code, body[:300])
                    assert body == expected, key
                operations += 1
                if joining.is_set() and not joined.is_set():
                    during_join[0] += 1

        async def join() -> None:
            joining.set()
            command = [sys.executable, "-m", "s3lite", "join"]
            command += ["--gateway", service.gw.url, "--node", new_node.url]
            result = await anyio.run_process(command, check=False, env={**os.environ, **ROOT_ENV})
            joined.set()
            assert result.returncode == 0, result.stderr.decode()
            assert b"joined" in result.stdout

        async with anyio.create_task_group() as group:
            for number in range(CLIENTS):
                group.start_soon(client, number)
            group.start_soon(join)

        assert during_join[0] > 0, "no client operation completed while the join ran"
        await assert_all_readable(http, service, "joins", model)
        assert await list_keys(http, service, "joins") == {k: len(v) for k, v in model.items()}

        state = await status(http, service)
        assert state["migration"] is None
        assert len(state["nodes"]) == NODES + 1
        assert {node["state"] for node in state["nodes"]} == {"ready"}
        assert sum(node["sectors"] for node in state["nodes"]) == SECTORS
        by_address = {node["address"]: node for node in state["nodes"]}
        assert new_node.url in by_address
        assert by_address[new_node.url]["sectors"] > 0

        # The new node holds bytes, and every node holds only sectors it owns now: the
        # donors dropped what moved.
        usage = await get_json(http, f"{new_node.url}/v1/usage")
        assert usage["sectors"], "the new node holds nothing after its join"
        assert sum(usage["sectors"].values()) > 0
        for node in service.nodes:
            held = {int(s) for s in (await get_json(http, f"{node.url}/v1/usage"))["sectors"]}
            owned = sectors_of(by_address[node.url]["arcs"])
            assert held <= owned, (node.url, sorted(held - owned))


# -- (c) a node killed mid-upload -----------------------------------------------------------

KILL_BODY = 64 * MiB
KILL_AFTER = 40 * MiB
"""The victim is killed once this much of the body has been handed to the client's
socket: the gateway is then streaming a part to every node (six nodes, six parts)."""


async def put_killing(http: SignedSession, url: yarl.URL, victim: Server) -> tuple[int, bytes]:
    """PUT KILL_BODY bytes to ``url``, SIGKILLing ``victim`` part-way; the response."""
    block = os.urandom(MiB)
    killed = anyio.Event()

    async def body() -> AsyncIterator[bytes]:
        sent = 0
        while sent < KILL_BODY:
            if sent >= KILL_AFTER and not killed.is_set():
                await victim.kill()
                killed.set()
            yield block
            sent += len(block)

    async with http.put(url, data=body(), headers={"content-length": str(KILL_BODY)}) as r:
        code, error = r.status, await r.read()
    assert killed.is_set()
    return code, error


async def test_node_killed_mid_upload(service: Service, http: SignedSession) -> None:
    with anyio.fail_after(TEST_TIMEOUT):
        await create_bucket(http, service, "crash")
        earlier = {f"earlier/{n}": payload(f"e{n}", n * 150_001) for n in range(8)}
        await upload_all(http, service, "crash", earlier)
        victim_index = 2
        victim = service.nodes[victim_index]
        url = service.url("crash", "doomed")
        code, error = await put_killing(http, url, victim)
        assert 500 <= code < 600, (code, error)
        if code == 503:
            assert victim.url in xml_message(error), error

        # Nothing of the failed upload is visible; the gateway still answers.
        assert await head_status(http, url) == 404
        state = await status(http, service)
        by_address = {node["address"]: node for node in state["nodes"]}
        assert by_address[victim.url]["bytes"] is None
        assert all(
            by_address[node.url]["bytes"] is not None for node in service.nodes if node != victim
        )
        for key, data in earlier.items():
            code, head = await raw_head(service.url("crash", key))
            assert code == 200, key
            assert ("content-length", str(len(data))) in head, key
        assert await list_keys(http, service, "crash") == {k: len(v) for k, v in earlier.items()}
        # Every object has a part on every one of the six nodes: a read is a clear 503
        # naming the dead node, never wrong bytes.
        code, _, error = await get(http, service.url("crash", "earlier/3"))
        assert code == 503, error
        assert victim.url in xml_message(error)

        # The node comes back on the same port over the same data: everything is there
        # once the gateway has seen it answer (a probe: every 2 s, or status, as here).
        restarted = await service.start_node(victim_index, port=victim.port)
        assert restarted.url == victim.url
        await status(http, service)
        health = await get_json(http, f"{restarted.url}/v1/health")
        assert health["node_id"] == by_address[victim.url]["id"]
        assert os.listdir(service.node_dirs[victim_index] / "tmp") == []
        await assert_all_readable(http, service, "crash", earlier)
        assert await head_status(http, url) == 404
        again = payload("again", 3 * MiB)
        await put_ok(http, url, again)
        await assert_all_readable(http, service, "crash", {"doomed": again})


async def test_node_killed_mid_upload_is_a_503_naming_the_node(
    service: Service, http: SignedSession
) -> None:
    with anyio.fail_after(TEST_TIMEOUT):
        await create_bucket(http, service, "crash")
        for round_, victim_index in enumerate((0, 3, 5)):
            victim = service.nodes[victim_index]
            code, error = await put_killing(http, service.url("crash", f"doomed{round_}"), victim)
            assert code == 503, (code, error[:400])
            assert ET.fromstring(error).findtext("Code") == "ServiceUnavailable"
            assert victim.url in xml_message(error), error
            await service.start_node(victim_index, port=victim.port)
            await status(http, service)  # probes: the gateway sees it up again


# -- (d) gateway restart ----------------------------------------------------------------------


async def test_gateway_restart_restores_ring_and_objects(
    service: Service, http: SignedSession
) -> None:
    with anyio.fail_after(TEST_TIMEOUT):
        await create_bucket(http, service, "durable")
        objects = {f"obj{n}": payload(f"d{n}", n * 97_003 + 1) for n in range(12)}
        await upload_all(http, service, "durable", objects)
        # A join first, so that the ring to restore is not the initial even split.
        seventh = await service.start_node(NODES)
        async with http.post(
            f"{service.gw.url}/_admin/join", json={"node": seventh.url}
        ) as response:
            assert response.status == 200, await response.text()
        before = await status(http, service)
        assert len(before["nodes"]) == NODES + 1

        assert await service.gw.stop() == 0  # SIGTERM: a clean shutdown
        await service.start_gateway(with_nodes=False)
        after = await status(http, service)

        def ring(state: dict[str, Any]) -> list[tuple[Any, ...]]:
            return [
                (n["id"], n["address"], n["state"], n["sectors"], tuple(n["arcs"]))
                for n in state["nodes"]
            ]

        assert ring(after) == ring(before)
        assert (after["generation"], after["policy"]) == (before["generation"], before["policy"])
        assert after["migration"] is None
        printed = await anyio.run_process(
            [
                sys.executable,
                "-m",
                "s3lite",
                "status",
                "--json",
                "--gateway",
                service.gw.url,
                "--access-key",
                ROOT_ACCESS,
                "--secret-key",
                ROOT_SECRET,
            ]
        )
        assert ring(json.loads(printed.stdout)) == ring(before)
        assert await list_keys(http, service, "durable") == {k: len(v) for k, v in objects.items()}
        await assert_all_readable(http, service, "durable", objects)
        fresh = {"after-restart": payload("fresh", 2 * MiB + 1)}
        await upload_all(http, service, "durable", fresh)
        await assert_all_readable(http, service, "durable", fresh)

        # Restarted with its first --node flags (as docker-compose does): the flags are
        # ignored, the saved ring wins.
        assert await service.gw.stop() == 0
        await service.start_gateway(with_nodes=True)
        assert ring(await status(http, service)) == ring(before)
        await assert_all_readable(http, service, "durable", objects | fresh)


# -- (e) a client that drops the connection half-way ------------------------------------------

HALF_DECLARED = 128 * MiB
HALF_SENT = 64 * MiB
"""More than loopback's socket buffers can hold (tcp_wmem 4 MiB + tcp_rmem 32 MiB at
most), so the gateway must have read part of the body, and dealt it to the six nodes,
before the last send returns."""

ABANDONED = {"abandoned/declared-1": True, "abandoned/chunked": False, "abandoned/declared-2": True}
"""Keys of the uploads a client drops half-way: with a Content-Length (True) or chunked."""


@attrs.frozen
class Snapshot:
    """What every node stores: part files under sectors/ (path -> size) and usage."""

    files: list[dict[str, int]]
    usage: list[dict[str, int]]


async def snapshot(http: SignedSession, service: Service) -> Snapshot:
    await wait_idle(http, service)
    usage = [(await get_json(http, f"{n.url}/v1/usage"))["sectors"] for n in service.nodes]
    return Snapshot([part_files(d) for d in service.node_dirs], usage)


async def abandon_upload(
    http: SignedSession, service: Service, key: str, *, declared: bool
) -> None:
    """Send the request head and half the body over a raw socket, check the gateway is
    serving it, then close the connection."""
    gateway = yarl.URL(service.gw.url)
    assert gateway.host is not None
    assert gateway.port is not None
    framing = f"Content-Length: {HALF_DECLARED}" if declared else "Transfer-Encoding: chunked"
    head = (
        f"PUT {service.url('drops', key).raw_path} HTTP/1.1\r\n"
        f"Host: {gateway.host}:{gateway.port}\r\n{framing}\r\n"
        "Content-Type: application/octet-stream\r\n\r\n"
    )
    block = os.urandom(MiB)
    if not declared:
        block = f"{len(block):x}\r\n".encode() + block + b"\r\n"
    async with await anyio.connect_tcp(gateway.host, gateway.port) as stream:
        await stream.send(sign_raw(str(gateway), head.encode()))
        for _ in range(HALF_SENT // MiB):
            await stream.send(block)
        assert (await status(http, service))["requests_in_flight"] == 1
    # closed: gone half-way through the body


async def abandon_uploads(
    http: SignedSession, service: Service
) -> tuple[dict[str, bytes], Snapshot]:
    """Store a few objects, snapshot the nodes, then abandon the ABANDONED uploads and
    wait until the gateway and every node are idle. Returns the kept objects and the
    snapshot taken before."""
    await create_bucket(http, service, "drops")
    kept = {f"kept{n}": payload(f"k{n}", n * 300_007 + 5) for n in range(4)}
    await upload_all(http, service, "drops", kept)
    before = await snapshot(http, service)
    assert all(before.files), "every node holds parts of the kept objects"
    for key, declared in ABANDONED.items():
        await abandon_upload(http, service, key, declared=declared)
    await wait_idle(http, service)
    return kept, before


async def test_client_disconnect_mid_body_leaves_no_object(
    service: Service, http: SignedSession
) -> None:
    with anyio.fail_after(TEST_TIMEOUT):
        kept, _ = await abandon_uploads(http, service)
        for key in ABANDONED:
            assert await head_status(http, service.url("drops", key)) == 404, key
        assert await list_keys(http, service, "drops") == {k: len(v) for k, v in kept.items()}
        assert (await status(http, service))["requests_in_flight"] == 0
        for index, node in enumerate(service.nodes):
            assert os.listdir(service.node_dirs[index] / "tmp") == [], node.url
        await assert_all_readable(http, service, "drops", kept)


async def test_client_disconnect_mid_body_leaves_no_part_file(
    service: Service, http: SignedSession
) -> None:
    with anyio.fail_after(TEST_TIMEOUT):
        _, before = await abandon_uploads(http, service)
        after = await snapshot(http, service)
        for index, node in enumerate(service.nodes):
            assert after.files[index] == before.files[index], node.url
            assert after.usage[index] == before.usage[index], node.url
