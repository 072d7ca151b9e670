"""The network transport: the NodeClient contract against real storage-node processes
(``python -m s3lite node``) reached over HTTP, plus what only the network adds (dead
processes, unreachable ports, the wire's error encoding, malformed requests).

Starting a node process costs most of a second, so the contract's nodes come from a
module-wide pool. A node handed back at the end of a test is restarted if the test
stopped it, waited on until idle, emptied (every sector it reports dropped), and checked
on disk to hold no file but its identity before the next test gets it: the contract's
fresh, empty node with its own data directory, started once.

"""

from __future__ import annotations

import json
import socket
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import anyio
import anyio.abc
import pytest

if "tests.transport.contract" not in sys.modules:  # rewrite its asserts for readable failures
    pytest.register_assert_rewrite("tests.transport.contract")

from s3lite import (
    BodyLengthMismatch,
    ChecksumMismatch,
    CorruptArchive,
    DamagedPart,
    DataLoss,
    DiskFull,
    InvalidArgument,
    InvalidName,
    InvalidRange,
    NodeUnavailable,
    NotFound,
    PartNotFound,
    S3liteError,
)
from s3lite.transport import NodeClient
from s3lite.transport.http import REPLAY_HOLD, HttpSettings, HttpTransport
from s3lite.transport.wire import decode_error, encode_error
from tests.processes import Server, running

from .contract import (
    NodeClientContract,
    NodeFactory,
    chunked,
    data_files,
    part_path,
    payload,
    read_all,
    read_into,
)

MiB = 1 << 20
SETTINGS = HttpSettings(retries=1, backoff=0.01, connect_timeout=2)
IDENTITY = {"node.json"}
"""The only file an empty node keeps in its data directory."""


pytestmark = pytest.mark.anyio


@pytest.fixture(scope="module")
def anyio_backend() -> str:
    """aiohttp runs on asyncio only; module scope lets the node pool outlive one test."""
    return "asyncio"


# -- node processes ------------------------------------------------------------------------


class NodeProcess:
    """One ``s3lite node`` process, supervised by a task of the pool's task group so
    that it can be started and stopped from any task. Restarts reuse port and data dir."""

    def __init__(self, group: anyio.abc.TaskGroup, data_dir: Path, node_id: str) -> None:
        self._group = group
        self.data_dir = data_dir
        self.node_id = node_id
        self.port = 0
        self.server: Server | None = None
        self._stop = anyio.Event()
        self._done = anyio.Event()
        self._done.set()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def running(self) -> bool:
        return self.server is not None and self.server.process.returncode is None

    async def start(self) -> None:
        assert self._done.is_set(), "already started"
        self._stop, self._done = anyio.Event(), anyio.Event()
        self.server = await self._group.start(self._supervise)
        self.port = self.server.port

    async def _supervise(self, *, task_status: anyio.abc.TaskStatus[Server]) -> None:
        try:
            async with running(
                "node",
                "--data-dir",
                self.data_dir,
                "--listen",
                f"127.0.0.1:{self.port}",
                "--node-id",
                self.node_id,
                log=self.data_dir.with_suffix(".log"),
            ) as server:
                task_status.started(server)
                await self._stop.wait()
        finally:
            self._done.set()

    async def stop(self) -> None:
        """SIGTERM (Server.stop, when the supervisor leaves ``running``) and wait."""
        self._stop.set()
        await self._done.wait()

    async def kill(self) -> None:
        """SIGKILL, as a crash would."""
        assert self.server is not None
        await self.server.kill()


class HttpNode:
    """The contract's NodeHandle: a pooled node process seen through one test's transport."""

    def __init__(self, process: NodeProcess, transport: HttpTransport) -> None:
        self.process = process
        self._transport = transport

    @property
    def client(self) -> NodeClient:
        return self._transport.connect(self.process.url)

    @property
    def node_id(self) -> str:
        return self.process.node_id

    async def stop(self) -> None:
        await self.process.stop()

    async def restart(self) -> None:
        await self.process.stop()
        await self.process.start()

    async def settle(self) -> None:
        await settle(self._transport, self.process.url)

    def files(self) -> set[str]:
        return data_files(self.process.data_dir)

    def part_file(self, sector: int, name: str) -> Path:
        return part_path(self.process.data_dir, sector, name)


async def settle(transport: HttpTransport, url: str) -> None:
    """GET /v1/idle: returns once the node serves no other request."""
    with anyio.fail_after(30):
        async with transport.session().get(f"{url}/v1/idle") as response:
            assert response.status == 200


class NodePool:
    """Node processes shared by the module's tests, handed out empty."""

    def __init__(self, group: anyio.abc.TaskGroup, root: Path) -> None:
        self._group = group
        self._root = root
        self._idle: list[NodeProcess] = []
        self._all: list[NodeProcess] = []
        self._admin = HttpTransport(SETTINGS)

    async def acquire(self) -> NodeProcess:
        if self._idle:
            return self._idle.pop()
        process = NodeProcess(
            self._group, self._root / f"node-{len(self._all)}", f"node-{len(self._all)}"
        )
        self._all.append(process)
        await process.start()
        return process

    async def release(self, process: NodeProcess) -> None:
        """Empty the node and take it back (restarted first if a test stopped it). A
        node that quarantined files is retired instead: its quarantine is part of
        its state (counted in health), and only a new node has none."""
        if not process.running:
            await process.stop()  # let the supervisor finish
            await process.start()
        await settle(self._admin, process.url)
        if any(path.startswith("quarantine/") for path in data_files(process.data_dir)):
            await process.stop()
            return
        client = self._admin.connect(process.url)
        await client.drop_sectors(list(await client.usage()))
        assert dict(await client.usage()) == {}
        assert data_files(process.data_dir) == IDENTITY, "a test left files behind"
        self._idle.append(process)

    async def aclose(self) -> None:
        await self._admin.aclose()
        for process in self._all:
            await process.stop()


@pytest.fixture(scope="module")
async def pool(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[NodePool]:
    async with anyio.create_task_group() as group:
        nodes = NodePool(group, tmp_path_factory.mktemp("http-nodes"))
        try:
            yield nodes
        finally:
            with anyio.CancelScope(shield=True):
                await nodes.aclose()


class TestHttpTransportContract(NodeClientContract):
    @pytest.fixture
    async def node_factory(self, pool: NodePool) -> AsyncIterator[NodeFactory]:
        transport = HttpTransport(SETTINGS)
        taken: list[NodeProcess] = []

        async def start() -> HttpNode:
            taken.append(await pool.acquire())
            return HttpNode(taken[-1], transport)

        yield start
        await transport.aclose()
        for process in taken:
            await pool.release(process)


# -- what only a network transport does -------------------------------------------------------


@pytest.fixture
async def transport() -> AsyncIterator[HttpTransport]:
    opened = HttpTransport(SETTINGS)
    yield opened
    await opened.aclose()


@pytest.fixture
async def node(pool: NodePool, transport: HttpTransport) -> AsyncIterator[HttpNode]:
    process = await pool.acquire()
    yield HttpNode(process, transport)
    await transport.aclose()
    await pool.release(process)


async def test_a_node_killed_mid_stream_breaks_the_stream(node: HttpNode) -> None:
    """SIGKILL while a part streams out: the reader gets NodeUnavailable, having seen
    only a prefix of the bytes, never a short body that looks complete, and no hang."""
    data = payload(48 * MiB)
    await node.client.put_part(3, "big", chunked(data, [4 * MiB]))
    stream = await node.client.get_part(3, "big")
    received = bytearray(await anext(stream))
    await node.process.kill()
    with anyio.fail_after(20), pytest.raises(NodeUnavailable) as raised:
        await read_into(stream, received)
    assert raised.value.node == node.process.url
    assert 0 < len(received) < len(data)
    assert bytes(received) == data[: len(received)]
    with pytest.raises(NodeUnavailable):
        await node.client.health()


async def test_a_part_goes_out_with_its_length_not_chunked(
    node: HttpNode, transport: HttpTransport
) -> None:
    """A part's range is sent with Content-Length (no chunked framing to join on the
    node and parse on the gateway), which is exactly the range's length."""
    data = payload(3 * MiB + 5)
    await node.client.put_part(2, "p", chunked(data, [MiB]))
    for query, expected in [
        ("", data),
        ("?start=10&end=1048586", data[10:1048587]),
        (f"?start={3 * MiB}", data[3 * MiB :]),
        ("?start=7&end=7", data[7:8]),
    ]:
        async with transport.session().get(f"{node.process.url}/v1/sectors/2/p{query}") as answer:
            assert answer.status == 200
            assert answer.headers["content-length"] == str(len(expected))
            assert "transfer-encoding" not in answer.headers
            assert await answer.read() == expected


async def test_a_node_killed_before_reading_is_unavailable_at_once(node: HttpNode) -> None:
    await node.client.put_part(3, "p", chunked(b"bytes"))
    await node.process.kill()
    with anyio.fail_after(10):
        for call in (
            lambda: node.client.get_part(3, "p"),
            lambda: node.client.put_part(3, "q", chunked(b"x")),
            lambda: node.client.list_parts(3),
        ):
            with pytest.raises(NodeUnavailable) as raised:
                await call()
            assert raised.value.node == node.process.url


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def test_an_unreachable_port_is_unavailable_naming_the_address() -> None:
    address = f"http://127.0.0.1:{free_port()}"
    transport = HttpTransport(HttpSettings(retries=2, backoff=0.1, connect_timeout=2))
    try:
        client = transport.connect(address + "/")
        assert client.address == address
        started = anyio.current_time()
        with pytest.raises(NodeUnavailable) as raised:
            await client.health()
        assert anyio.current_time() - started >= 0.1 + 0.2  # two retries, backoff doubling
        assert raised.value.node == address
        assert "Connect" in raised.value.reason  # says what failed: the connection
        with anyio.fail_after(10):
            for call in (
                client.health,
                client.usage,
                lambda: client.list_parts(1),
                lambda: client.get_part(1, "p"),
                lambda: client.put_part(1, "p", chunked(b"x")),
                lambda: client.import_sectors(chunked(b"PK")),
                lambda: client.drop_sectors([1]),
            ):
                with pytest.raises(NodeUnavailable) as raised:
                    await call()
                assert raised.value.node == address
                assert address in str(raised.value)
    finally:
        await transport.aclose()


class HangUp:
    """A TCP server that accepts connections and closes them, counting them: at once,
    or once it has received ``read_first`` bytes of the request."""

    def __init__(self) -> None:
        self.connections = 0
        self.read_first = 0

    async def handle(self, stream: anyio.abc.SocketStream) -> None:
        self.connections += 1
        received = 0
        try:
            while received < self.read_first:
                received += len(await stream.receive())
        except anyio.EndOfStream:
            pass
        await stream.aclose()


@pytest.mark.parametrize("retries", [0, 1, 3])
async def test_calls_are_retried_as_configured(retries: int) -> None:
    """Against a server that hangs up on every connection: a repeatable call makes
    1 + retries attempts; so does an upload while all it took from its body is held
    (its first chunk, and more up to REPLAY_HOLD bytes), and one that took more makes
    one."""
    hang_up = HangUp()
    listener = await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=0)
    address = f"http://127.0.0.1:{listener.extra(anyio.abc.SocketAttribute.local_port)}"
    transport = HttpTransport(HttpSettings(retries=retries, backoff=0.001, connect_timeout=2))

    async def connections(call: Callable[[], Awaitable[object]]) -> int:
        before = hang_up.connections
        with pytest.raises(NodeUnavailable) as raised:
            await call()
        assert raised.value.node == address
        return hang_up.connections - before

    try:
        async with anyio.create_task_group() as group:
            group.start_soon(listener.serve, hang_up.handle)
            client = transport.connect(address)
            with anyio.fail_after(10):
                assert await connections(lambda: client.drop_sectors([1])) == 1 + retries
                assert await connections(lambda: client.delete_parts(1, ["p"])) == 1 + retries
                assert await connections(lambda: client.export_sectors([1])) == 1 + retries
                # aiohttp itself retries a GET once on a fresh connection that drops
                for call in (client.health, lambda: client.get_part(1, "p")):
                    assert 1 + retries <= await connections(call) <= 2 * (1 + retries)
                one_chunk = chunked(b"x")
                assert await connections(lambda: client.put_part(1, "p", one_chunk)) == 1 + retries
                archive = chunked(b"PK")
                assert await connections(lambda: client.import_sectors(archive)) == 1 + retries
                hang_up.read_first = 1500  # the request's headers and the second chunk
                two_chunks = chunked(b"y" * 2000, [1000])  # held: a unit in two pieces
                assert await connections(lambda: client.put_part(1, "p", two_chunks)) == (
                    1 + retries
                )
                assert two_chunks.consumed == 2000
                past_hold = chunked(b"z" * (REPLAY_HOLD + 1000), [1000])
                assert await connections(lambda: client.put_part(1, "p", past_hold)) == 1
                assert past_hold.consumed == REPLAY_HOLD + 1000
            group.cancel_scope.cancel()
    finally:
        await transport.aclose()
        await listener.aclose()


async def test_a_name_with_dot_segments_never_reaches_another_part(node: HttpNode) -> None:
    client = node.client
    await client.put_part(1, "p", chunked(b"original"))
    await client.put_part(2, "p", chunked(b"sector two"))
    calls: list[Callable[[], Awaitable[object]]] = [
        lambda: client.put_part(1, "x/../p", chunked(b"EVIL")),
        lambda: client.get_part(1, "x/../p"),
        lambda: client.get_part(1, "../2/p"),
        lambda: client.link_part("x/../p", 1, 3),
    ]
    outcomes = []
    for call in calls:
        try:
            result = await call()
            if hasattr(result, "aclose"):
                result = await read_all(result)  # type: ignore[arg-type]
            outcomes.append(result)
        except InvalidName:
            outcomes.append(InvalidName)
    assert await read_all(await client.get_part(1, "p")) == b"original"
    assert await client.list_parts(3) == []
    assert outcomes == [InvalidName] * len(calls)


WIRE_ERRORS = [
    pytest.param(PartNotFound("node-7", 42, "upload-0-3"), id="PartNotFound"),
    pytest.param(InvalidRange("range 5-9 selects nothing of 3", size=3), id="InvalidRange"),
    pytest.param(InvalidName("part name must match ..., got '../x'"), id="InvalidName"),
    pytest.param(DiskFull("no space left for part p in sector 3"), id="DiskFull"),
    pytest.param(CorruptArchive("member 000/a: CRC mismatch"), id="CorruptArchive"),
    pytest.param(InvalidArgument("names must be a list of strings"), id="InvalidArgument"),
    pytest.param(DataLoss("part file p is shorter than its header"), id="DataLoss"),
    pytest.param(DamagedPart("node-7", 42, "upload-0-3", "block 3 is bad"), id="DamagedPart"),
]


@pytest.mark.parametrize("error", WIRE_ERRORS)
def test_wire_round_trips_every_node_error(error: S3liteError) -> None:
    status, body = encode_error(error)
    assert status == error.http_status
    rebuilt = decode_error(status, json.loads(json.dumps(body)), "http://node:1")
    assert type(rebuilt) is type(error)
    assert str(rebuilt) == str(error)
    assert vars(rebuilt) == vars(error)  # the fields: node, sector, name, size


@pytest.mark.parametrize(
    "error",
    [
        NodeUnavailable("memory://inner", "the node is closed"),
        ChecksumMismatch("part p: crc"),
        NotFound("no key"),
        BodyLengthMismatch(declared=3, received=1),
    ],
    ids=lambda e: type(e).__name__,
)
def test_errors_a_node_does_not_send_decode_as_unavailable(error: S3liteError) -> None:
    status, body = encode_error(error)
    rebuilt = decode_error(status, body, "http://node:1")
    assert isinstance(rebuilt, NodeUnavailable)
    assert rebuilt.node == "http://node:1"
    assert type(error).__name__ in str(rebuilt)


@pytest.mark.parametrize(
    "body",
    [
        None,
        "text",
        [],
        {},
        {"error": 5},
        {"message": "no kind"},
        {"error": "PartNotFound", "node": "n", "sector": "x", "name": "p"},
        {"error": "PartNotFound", "node": "n"},
        {"error": "DamagedPart", "node": "n", "sector": 1, "name": "p"},
        {"error": "InvalidRange", "message": "m"},
        {"error": "InvalidRange", "size": None},
        {"error": "SomethingNew", "message": "m"},
    ],
)
def test_a_malformed_error_body_decodes_as_unavailable(body: Any) -> None:
    rebuilt = decode_error(500, body, "http://node:1")
    assert isinstance(rebuilt, NodeUnavailable)
    assert rebuilt.node == "http://node:1"


BAD_REQUESTS = [
    pytest.param("GET", "/v1/nowhere", None, 404, "NoRoute", id="unknown-route"),
    pytest.param("DELETE", "/v1/health", None, 404, "NoRoute", id="unknown-method"),
    pytest.param("GET", "/", None, 404, "NoRoute", id="root"),
    pytest.param("POST", "/v1/drop", b"{not json", 400, "BadRequest", id="drop-bad-json"),
    pytest.param(
        "POST", "/v1/sectors/1/delete", b'{"names": ', 400, "BadRequest", id="delete-bad-json"
    ),
    pytest.param(
        "POST", "/v1/sectors/1/delete", b'{"names": 5}', 400, "InvalidArgument", id="names-int"
    ),
    pytest.param(
        "POST",
        "/v1/sectors/1/delete",
        b"[1, 2]",
        400,
        "InvalidArgument",
        id="delete-json-list",
    ),
    pytest.param(
        "POST",
        "/v1/drop",
        b'"sectors"',
        400,
        "InvalidArgument",
        id="drop-json-string",
    ),
    pytest.param("POST", "/v1/drop", b'{"sectors": "1"}', 400, "InvalidArgument", id="drop-str"),
    pytest.param("POST", "/v1/drop", b'{"sectors": [true]}', 400, "InvalidArgument", id="bool"),
    pytest.param("POST", "/v1/drop", b'{"sectors": [360]}', 400, "InvalidName", id="drop-360"),
    pytest.param("POST", "/v1/export", b"null", 400, "InvalidArgument", id="export-null"),
    pytest.param(
        "POST", "/v1/sectors/1/p/link", b'{"to": "2"}', 400, "InvalidArgument", id="link-str"
    ),
    pytest.param("GET", "/v1/sectors/x1", None, 400, "InvalidName", id="sector-text"),
    pytest.param("GET", "/v1/sectors/-1", None, 400, "InvalidName", id="sector-negative"),
    pytest.param("GET", "/v1/sectors/1/p?start=x", None, 400, "BadRequest", id="start-text"),
    pytest.param("GET", "/v1/sectors/1/p?end=-1", None, 416, "InvalidRange", id="end-negative"),
    pytest.param("GET", "/v1/sectors/1/%ff", None, 400, "BadRequest", id="path-not-utf8"),
    pytest.param("PUT", "/v1/sectors/1/%C3%28", b"x", 400, "BadRequest", id="name-not-utf8"),
]


@pytest.mark.parametrize(("method", "path", "body", "status", "error"), BAD_REQUESTS)
async def test_malformed_requests_get_a_clean_4xx(
    node: HttpNode,
    transport: HttpTransport,
    method: str,
    path: str,
    body: bytes | None,
    status: int,
    error: str,
) -> None:
    await node.client.put_part(1, "p", chunked(b"kept"))
    before = node.files()
    url = node.process.url + path
    async with transport.session().request(
        method, aiohttp.client.URL(url, encoded=True), data=body
    ) as response:
        assert response.status == status
        assert response.content_type == "application/json"
        answer = await response.json()
    assert answer["error"] == error
    assert answer["message"]
    assert node.files() == before
    assert await read_all(await node.client.get_part(1, "p")) == b"kept"
    assert (await node.client.health()).parts == 1
