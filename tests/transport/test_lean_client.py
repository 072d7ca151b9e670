"""s3lite.transport.lean_client: part downloads read into buffers of our own.

The head parser is pure and property-tested. The connection is driven against a
raw asyncio server whose answer bytes are the test's own (split anywhere, cut short,
too long, framed otherwise), on asyncio's loop and on uvloop's (the gateway's), whose
transports are no asyncio.Transport.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import pytest
from hypothesis import given
from hypothesis import strategies as st

from s3lite.transport import lean_client
from s3lite.transport.lean_client import (
    HIGH_WATER,
    MalformedResponse,
    NodeConnections,
    content_length,
    parse_head,
)

pytestmark = pytest.mark.anyio

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


@pytest.fixture(params=[False, True], ids=["asyncio", "uvloop"])
def anyio_backend(request: pytest.FixtureRequest) -> tuple[str, dict[str, bool]]:
    return "asyncio", {"use_uvloop": request.param}


@asynccontextmanager
async def serving(handler: Handler) -> AsyncIterator[str]:
    """A server on a free port running ``handler`` per connection; its base URL. Every
    connection is closed when the handler ends, and when the server stops."""
    writers: list[asyncio.StreamWriter] = []

    async def run(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writers.append(writer)
        try:
            await handler(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(run, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.close()
        for writer in writers:
            writer.close()
        await server.wait_closed()


@asynccontextmanager
async def pooled(headers: dict[str, str] | None = None) -> AsyncIterator[NodeConnections]:
    pool = NodeConnections(headers or {})
    try:
        yield pool
    finally:
        pool.close()


async def read_request(reader: asyncio.StreamReader) -> bytes:
    return await reader.readuntil(b"\r\n\r\n")


def answer(body: bytes, status: int = 200, extra: str = "") -> bytes:
    head = f"HTTP/1.1 {status} X\r\ncontent-length: {len(body)}\r\n{extra}\r\n"
    return head.encode() + body


async def read_all(pool: NodeConnections, url: str, idle: float | None = 10) -> bytes:
    got = await pool.get(url, idle)
    assert got.status == 200
    pieces = []
    while piece := await got.read():
        pieces.append(bytes(piece))
    return b"".join(pieces)


# -- the head, pure ----------------------------------------------------------------------

header_names = st.from_regex(r"[a-z][a-z0-9-]{0,20}", fullmatch=True)
header_values = st.from_regex(r"[ -~]{0,40}", fullmatch=True).map(str.strip)


@given(st.integers(100, 599), st.dictionaries(header_names, header_values, max_size=8))
def test_a_head_reads_back_as_written(status: int, headers: dict[str, str]) -> None:
    lines = [f"HTTP/1.1 {status} Whatever It Says"]
    lines += [f"{name.title()}: {value}" for name, value in headers.items()]
    assert parse_head("\r\n".join(lines).encode()) == (status, headers)


@pytest.mark.parametrize(
    "head",
    [
        b"HTTP/1.0 200 OK",
        b"HTTP/1.1 2x0 OK",
        b"HTTP/1.1",
        b"garbage",
        b"HTTP/1.1 200 OK\r\nno colon here",
        b"HTTP/1.1 200 OK\r\n: no name",
        b"HTTP/1.1 200 OK\r\nname : space before the colon",
        b"HTTP/1.1 200 OK\r\ncontent-length: 1\r\nContent-Length: 2",
    ],
)
def test_a_malformed_head_is_refused(head: bytes) -> None:
    with pytest.raises(ValueError):  # noqa: PT011 - the message varies with the flaw
        parse_head(head)


@given(st.integers(0, 10**18 - 1))
def test_a_content_length_reads_back(length: int) -> None:
    assert content_length({"content-length": str(length)}) == length


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"content-length": "-1"},
        {"content-length": "1e3"},
        {"content-length": "9" * 5000},
        {"content-length": "10", "transfer-encoding": "chunked"},
        {"transfer-encoding": "chunked"},
    ],
)
def test_anything_but_one_plain_content_length_is_refused(headers: dict[str, str]) -> None:
    with pytest.raises(ValueError, match="Content-Length"):
        content_length(headers)


# -- a connection, against a server of the test's own --------------------------------------


@pytest.mark.parametrize("split", [1, 7, 100, 4096, 1 << 20])
async def test_an_answer_split_anywhere_reads_whole(split: int) -> None:
    body = os.urandom(3 * (1 << 20) + 5)

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        data = answer(body)
        for start in range(0, len(data), split):
            writer.write(data[start : start + split])
            if split < 4096 and start < 2000:
                await writer.drain()  # the head really arrives in pieces
        await writer.drain()
        writer.close()

    async with serving(handler) as url, pooled() as pool:
        assert await read_all(pool, f"{url}/v1/x") == body


async def test_the_request_carries_the_path_query_and_headers() -> None:
    seen: list[bytes] = []

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        seen.append(await read_request(reader))
        writer.write(answer(b"ok"))
        await writer.drain()

    async with serving(handler) as url, pooled({"authorization": "Bearer s"}) as pool:
        assert await read_all(pool, f"{url}/v1/sectors/3/a%2Fb?start=1&end=2") == b"ok"
    request = seen[0]
    assert request.startswith(b"GET /v1/sectors/3/a%2Fb?start=1&end=2 HTTP/1.1\r\n")
    assert b"\r\nauthorization: Bearer s\r\n" in request


async def test_a_connection_read_to_its_end_is_reused() -> None:
    connections = 0

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        while True:
            try:
                await read_request(reader)
            except asyncio.IncompleteReadError:
                return
            writer.write(answer(b"again"))
            await writer.drain()

    async with serving(handler) as url, pooled() as pool:
        for _ in range(5):
            assert await read_all(pool, f"{url}/p") == b"again"
        unread = await pool.get(f"{url}/p", 10)  # released unread: closed, not reused
        unread.release()
        assert await read_all(pool, f"{url}/p") == b"again"
    assert connections == 2


async def test_an_error_answer_reads_as_json_and_keeps_the_connection() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(answer(b'{"error": "PartNotFound"}', 404))
        await read_request(reader)
        writer.write(answer(b"not json", 500))
        await writer.drain()

    async with serving(handler) as url, pooled() as pool:
        first = await pool.get(f"{url}/p", 10)
        assert first.status == 404
        assert await first.json() == {"error": "PartNotFound"}
        second = await pool.get(f"{url}/p", 10)
        assert second.status == 500
        assert await second.json() is None


@pytest.mark.parametrize(
    ("wire", "error"),
    [
        (answer(b"abc") + b"more", "past the end"),
        (b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n", "Content"),
        (b"HTTP/1.1 200 OK\r\n" + b"x-long: " + b"a" * (70 << 10), "head over"),
        (b"ICY 200 OK\r\n\r\n", "status line"),
    ],
    ids=["too-long", "chunked", "endless-head", "not-http"],
)
async def test_an_answer_framed_otherwise_is_an_error(wire: bytes, error: str) -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(wire)
        await writer.drain()
        await reader.read()  # until the client hangs up

    async with serving(handler) as url, pooled() as pool:
        with pytest.raises(MalformedResponse, match=error):
            await read_all(pool, f"{url}/p")


async def test_a_body_cut_short_is_a_connection_error() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(answer(b"x" * 100_000)[:50_000])
        await writer.drain()
        writer.close()

    async with serving(handler) as url, pooled() as pool:
        got = await pool.get(f"{url}/p", 10)

        async def drain() -> None:
            while await got.read():
                pass

        with pytest.raises(ConnectionError):
            await drain()


async def test_a_stalled_body_times_out_after_idle() -> None:
    release = asyncio.Event()

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(answer(b"x" * 1000)[:-10])
        await writer.drain()
        await release.wait()

    async with serving(handler) as url, pooled() as pool:
        got = await pool.get(f"{url}/p", idle=0.2)
        assert len(await got.read()) == 990
        with pytest.raises(TimeoutError):
            await got.read()
        got.release()
        release.set()


async def test_a_connection_the_node_closed_while_idle_is_not_reused() -> None:
    connections = 0
    closed = asyncio.Event()

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        await read_request(reader)
        writer.write(answer(b"once"))
        await writer.drain()
        writer.close()
        await writer.wait_closed()
        closed.set()

    async with serving(handler) as url, pooled() as pool:
        assert await read_all(pool, f"{url}/p") == b"once"
        await closed.wait()
        # The client may not have seen the close yet: then the request fails as a
        # broken connection, which callers retry (http.py), and the next one is new.
        try:
            again = await read_all(pool, f"{url}/p")
        except ConnectionError:
            again = await read_all(pool, f"{url}/p")
        assert again == b"once"
    assert connections == 2


async def test_a_slow_reader_holds_a_bounded_amount() -> None:
    """The node sends 16 MiB at once; the reader takes its time. What the connection
    holds stays near HIGH_WATER: reading the socket stops until bytes are taken."""
    body = os.urandom(16 << 20)

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(answer(body))
        await writer.drain()

    held: list[int] = []
    async with serving(handler) as url, pooled() as pool:
        got = await pool.get(f"{url}/p", 10)
        connection = got._connection
        assert connection is not None
        pieces = []
        while piece := await got.read():
            pieces.append(bytes(piece))
            for _ in range(20):  # let the loop read the socket as much as it will
                await asyncio.sleep(0)
            held.append(connection.body_size - connection.body_left)
    assert b"".join(pieces) == body
    assert max(held) <= HIGH_WATER + lean_client.HEAD_READ + (1 << 20)


async def test_a_burst_of_reads_leaves_at_most_max_idle_connections_open() -> None:
    open_connections: set[asyncio.StreamWriter] = set()
    all_answered = asyncio.Event()
    burst = lean_client.MAX_IDLE + 8

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        open_connections.add(writer)
        try:
            while True:
                await read_request(reader)
                if len(open_connections) == burst:
                    all_answered.set()
                await all_answered.wait()  # every read holds its connection at once
                writer.write(answer(b"burst"))
                await writer.drain()
        finally:
            open_connections.discard(writer)

    async with serving(handler) as url, pooled() as pool:
        results = await asyncio.gather(*(read_all(pool, f"{url}/p") for _ in range(burst)))
        assert results == [b"burst"] * burst
        kept = pool._idle[("127.0.0.1", int(url.rsplit(":", 1)[1]))]
        assert len(kept) == lean_client.MAX_IDLE
        assert sum(connection.closed for connection in kept) == 0
