"""s3lite.lean_http: uvicorn's httptools protocol with request bodies taken straight
from the socket. Each test serves a small ASGI app with the protocol in the test's
event loop and talks raw HTTP/1.1 to it over a socket, so that the bytes on the wire
(split at every kind of boundary, pipelined, chunked, cut short) are the test's own.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import random
import select
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
import anyio.abc
import pytest
import uvicorn
from hypothesis import given, settings
from hypothesis import strategies as st
from uvicorn.server import ServerState

from s3lite.asgi import Receive, Scope, Send
from s3lite.buffers import ARENA, LARGE_ARENA
from s3lite.lean_http import HEAD_READ, MAX_HEAD, LeanHttpProtocol
from s3lite.service import bind

pytestmark = pytest.mark.anyio

TIMEOUT = 30.0
MiB = 1 << 20


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"  # uvicorn's protocols are asyncio protocols


class Echo:
    """Answers every request with JSON: method, path, body digest and length, and the
    number of body messages; a request to /disconnect records what receive() said."""

    def __init__(self) -> None:
        self.release = anyio.Event()
        self.gone = anyio.Event()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        assert scope["type"] == "http"
        if scope["path"] == "/wait":
            await self.release.wait()
        digest, size, messages = hashlib.sha256(), 0, 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                self.gone.set()
                return
            body = message.get("body", b"")
            assert isinstance(body, bytes | memoryview)
            digest.update(body)
            size += len(body)
            messages += 1
            if not message.get("more_body", False):
                break
        answer = json.dumps(
            {
                "method": scope["method"],
                "path": scope["path"],
                "sha256": digest.hexdigest(),
                "size": size,
                "messages": messages,
            }
        ).encode()
        headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(answer))]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": answer})


@asynccontextmanager
async def serving(app: Any) -> AsyncIterator[tuple[str, int]]:
    sock = bind("127.0.0.1", 0)  # listening already: clients may connect at once
    config = uvicorn.Config(
        app, http=LeanHttpProtocol, lifespan="off", log_level="critical", log_config=None
    )
    server = uvicorn.Server(config)
    try:
        async with anyio.create_task_group() as group:
            group.start_soon(server.serve, [sock])
            host, port = sock.getsockname()[:2]
            yield str(host), int(port)
            server.should_exit = True
    finally:
        sock.close()


@asynccontextmanager
async def connection(app: Any) -> AsyncIterator[tuple[anyio.abc.SocketStream, Reader]]:
    """One connection to ``app`` served by the protocol."""
    async with serving(app) as (host, port), await anyio.connect_tcp(host, port) as stream:
        yield stream, Reader(stream)


class Reader:
    """Reads HTTP/1.1 responses (Content-Length bodies) off one connection."""

    def __init__(self, stream: anyio.abc.ByteStream) -> None:
        self.stream = stream
        self.buffer = b""

    async def _fill(self) -> None:
        data = await self.stream.receive()
        self.buffer += data

    async def head(self) -> tuple[int, dict[str, str]]:
        while b"\r\n\r\n" not in self.buffer:
            await self._fill()
        head, self.buffer = self.buffer.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").split("\r\n")
        headers = dict(line.lower().split(": ", 1) for line in lines[1:])
        return int(lines[0].split()[1]), headers

    async def response(self, *, head_request: bool = False) -> tuple[int, bytes]:
        status, headers = await self.head()
        length = 0 if head_request else int(headers.get("content-length", "0"))
        while len(self.buffer) < length:
            await self._fill()
        body, self.buffer = self.buffer[:length], self.buffer[length:]
        return status, body


def put(path: str, body: bytes, *extra: str) -> bytes:
    head = [f"PUT {path} HTTP/1.1", "host: test", f"content-length: {len(body)}", *extra]
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


def expected(body: bytes, path: str = "/") -> dict[str, Any]:
    return {"sha256": hashlib.sha256(body).hexdigest(), "size": len(body), "path": path}


def answer_of(body: bytes) -> dict[str, Any]:
    answer: dict[str, Any] = json.loads(body)
    return answer


async def test_pipelined_requests_split_anywhere_arrive_whole_and_in_order() -> None:
    rng = random.Random(7)
    bodies = [rng.randbytes(size) for size in (0, 1, 5000, 300_000, 3 * MiB + 17, 65536)]
    wire = b"".join(put(f"/{i}", body) for i, body in enumerate(bodies))
    wire += b"GET /last HTTP/1.1\r\nhost: test\r\n\r\n"
    with anyio.fail_after(TIMEOUT):
        async with connection(Echo()) as (stream, reader):

            async def send_in_pieces() -> None:
                view = memoryview(wire)
                while view:
                    size = rng.choice((1, 7, 100, 4096, 70_000, 1 << 20))
                    await stream.send(bytes(view[:size]))
                    view = view[size:]

            async with anyio.create_task_group() as group:
                group.start_soon(send_in_pieces)
                for i, body in enumerate(bodies):
                    status, answer = await reader.response()
                    assert status == 200
                    assert answer_of(answer).items() >= expected(body, f"/{i}").items()
                status, answer = await reader.response()
                assert (status, answer_of(answer)["path"]) == (200, "/last")


async def test_a_large_body_arrives_whole() -> None:
    app = Echo()
    body = random.Random(1).randbytes(16 * MiB)
    with anyio.fail_after(TIMEOUT):
        async with connection(app) as (stream, reader):
            await stream.send(put("/big", body))
            status, answer = await reader.response()
    assert status == 200
    assert answer_of(answer).items() >= expected(body, "/big").items()


async def test_keep_alive_head_and_chunked_bodies_on_one_connection() -> None:
    chunked = (
        b"POST /chunked HTTP/1.1\r\nhost: test\r\ntransfer-encoding: chunked\r\n\r\n"
        b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"
    )
    with anyio.fail_after(TIMEOUT):
        async with connection(Echo()) as (stream, reader):
            await stream.send(put("/one", b"x" * 1000))
            status, answer = await reader.response()
            assert (status, answer_of(answer)["size"]) == (200, 1000)
            await stream.send(chunked)
            status, answer = await reader.response()
            assert status == 200
            assert answer_of(answer).items() >= expected(b"hello world", "/chunked").items()
            await stream.send(b"HEAD /h HTTP/1.1\r\nhost: test\r\n\r\n")
            status, _ = await reader.response(head_request=True)
            assert status == 200
            await stream.send(put("/two", b"y" * 70_000))
            status, answer = await reader.response()
            assert answer_of(answer).items() >= expected(b"y" * 70_000, "/two").items()


async def test_100_continue_is_sent_when_the_app_reads_the_body() -> None:
    body = b"z" * 200_000
    with anyio.fail_after(TIMEOUT):
        async with connection(Echo()) as (stream, reader):
            head = put("/c", b"", "expect: 100-continue").replace(
                b"content-length: 0", b"content-length: %d" % len(body)
            )
            await stream.send(head)
            status, _ = await reader.head()
            assert status == 100
            await stream.send(body)
            status, answer = await reader.response()
            assert answer_of(answer).items() >= expected(body, "/c").items()


async def test_a_client_gone_mid_body_is_a_disconnect_for_the_app() -> None:
    app = Echo()
    with anyio.fail_after(TIMEOUT):
        async with serving(app) as (host, port):
            stream = await anyio.connect_tcp(host, port)
            await stream.send(put("/cut", b"a" * 10 * MiB)[: 3 * MiB])
            await stream.aclose()
            await app.gone.wait()


@pytest.mark.parametrize(
    "wire",
    [
        b"NOT HTTP AT ALL\r\n\r\n",
        b"GET / HTTP/1.1\r\nhost: test\r\nx-big: " + b"a" * (MAX_HEAD + 1) + b"\r\n\r\n",
        b"GET /" + b"p" * (MAX_HEAD + 1) + b" HTTP/1.1\r\nhost: test\r\n\r\n",
    ],
    ids=["garbage", "huge-header", "huge-url"],
)
async def test_bad_or_oversized_heads_get_400(wire: bytes) -> None:
    with anyio.fail_after(TIMEOUT):
        async with connection(Echo()) as (stream, reader):
            await stream.send(wire)
            status, _ = await reader.response()
            assert status == 400


async def test_a_body_the_app_does_not_read_stops_the_socket_being_read() -> None:
    app = Echo()
    body = b"b" * 64 * MiB
    wire = put("/wait", body)
    with anyio.fail_after(TIMEOUT):
        async with serving(app) as (host, port):
            client = socket.create_connection((host, port))
            client.setblocking(False)
            sent = 0

            def send_until_stalled() -> int:
                # Sends until the socket has not become writable for a second: the
                # server stopped reading (or took the whole request).
                total = 0
                while total < len(wire):
                    try:
                        total += client.send(wire[total : total + MiB])
                    except BlockingIOError:
                        if not select.select([], [client], [], 1.0)[1]:
                            break
                return total

            try:
                sent = await anyio.to_thread.run_sync(send_until_stalled)
                # the server holds at most its limit plus what the kernel buffers
                assert sent < 32 * MiB
                app.release.set()
                client.setblocking(True)
                await anyio.to_thread.run_sync(client.sendall, wire[sent:])
                answer = b""
                while b"}" not in answer:
                    answer += await anyio.to_thread.run_sync(client.recv, 65536)
            finally:
                client.close()
    status_line, _, rest = answer.partition(b"\r\n")
    assert status_line == b"HTTP/1.1 200 OK"
    assert answer_of(rest.split(b"\r\n\r\n", 1)[1]).items() >= expected(body, "/wait").items()


class Keeper:
    """Keeps every body message as it was handed over (no copy), answers once the body
    has ended with the digest of what the kept messages hold *then*, and records the
    messages' types and sizes; /wait first waits for ``release``."""

    def __init__(self) -> None:
        self.release = anyio.Event()
        self.kept: list[Any] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["path"] == "/wait":
            await self.release.wait()
        while True:
            message = await receive()
            assert message["type"] == "http.request"
            self.kept.append(message.get("body", b""))
            if not message.get("more_body", False):
                break
        digest = hashlib.sha256()
        for body in self.kept:
            digest.update(body)
        answer = json.dumps({"sha256": digest.hexdigest(), "size": sum(map(len, self.kept))})
        headers = [(b"content-length", b"%d" % len(answer))]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": answer.encode()})


async def test_body_messages_are_views_that_never_change_after_they_are_handed_over() -> None:
    # Several bodies on one connection, sent in uneven writes: had an arena been
    # written again, a message kept from an earlier body would now hold other bytes.
    rng = random.Random(11)
    app = Keeper()
    bodies = [rng.randbytes(size) for size in (3 * MiB + 5, 70_000, 2 * MiB, 1)]
    with anyio.fail_after(TIMEOUT):
        async with connection(app) as (stream, reader):
            for i, body in enumerate(bodies):
                wire = memoryview(put(f"/{i}", body))
                while wire:
                    size = rng.choice((1000, 65536, 300_000, MiB))
                    await stream.send(bytes(wire[:size]))
                    wire = wire[size:]
                status, answer = await reader.response()
                assert status == 200
                whole = b"".join(bodies[: i + 1])
                assert answer_of(answer) == {
                    "sha256": hashlib.sha256(whole).hexdigest(),
                    "size": len(whole),
                }
    # the body's bytes that came with its head went through the parser; the rest are
    # the reads themselves
    assert memoryview in {type(body) for body in app.kept}
    assert all(len(body) <= HEAD_READ for body in app.kept if isinstance(body, bytes))


async def test_connections_sharing_the_head_buffer_keep_their_own_requests() -> None:
    # Heads arrive on three connections in halves, interleaved: each read of the one
    # head buffer is copied out before the next, so no request gets another's bytes.
    rng = random.Random(9)
    bodies = [rng.randbytes(size) for size in (10, 200_000, 3000)]
    wires = [put(f"/{i}", body) for i, body in enumerate(bodies)]
    with anyio.fail_after(TIMEOUT):
        async with serving(Echo()) as (host, port):
            streams = [await anyio.connect_tcp(host, port) for _ in wires]
            try:
                for start, end in ((0, 20), (20, 60), (60, None)):
                    for stream, wire in zip(streams, wires, strict=True):
                        await stream.send(wire[start:end])
                for i, (stream, body) in enumerate(zip(streams, bodies, strict=True)):
                    status, answer = await Reader(stream).response()
                    assert status == 200
                    assert answer_of(answer).items() >= expected(body, f"/{i}").items()
            finally:
                for stream in streams:
                    await stream.aclose()


# -- the protocol driven by hand: reads as the event loop would make them --------------


class FakeTransport(asyncio.Transport):
    def __init__(self) -> None:
        super().__init__()
        self.written = bytearray()
        self.paused = False

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"sockname": ("127.0.0.1", 1), "peername": ("127.0.0.1", 2)}.get(name, default)

    def write(self, data: Any) -> None:
        self.written += data

    def is_closing(self) -> bool:
        return False

    def close(self) -> None:
        pass

    def pause_reading(self) -> None:
        self.paused = True

    def resume_reading(self) -> None:
        self.paused = False


async def never_reads(scope: Scope, receive: Receive, send: Send) -> None:
    await anyio.sleep_forever()  # the test takes the messages itself


def serve_by_hand(arena: int = ARENA) -> LeanHttpProtocol:
    config = uvicorn.Config(never_reads, lifespan="off", log_config=None, log_level="critical")
    config.load()
    protocol = LeanHttpProtocol(
        config=config, server_state=ServerState(), app_state={}, arena=arena
    )
    protocol.connection_made(FakeTransport())
    return protocol


def read(protocol: LeanHttpProtocol, data: bytes) -> int:
    """One read of the socket, as the event loop makes it: into the buffer the protocol
    gives, as much of ``data`` as fits; how much that was."""
    buffer = protocol.get_buffer(-1)
    size = min(len(buffer), len(data))
    buffer[:size] = data[:size]
    protocol.buffer_updated(size)
    return size


async def take(protocol: LeanHttpProtocol) -> dict[str, Any]:
    cycle = protocol.http.cycle
    assert cycle.message_event.is_set()  # a message waits: receive() does not block
    message: dict[str, Any] = await cycle.receive()
    return message


@pytest.mark.parametrize("arena", [ARENA, LARGE_ARENA])
async def test_reads_that_wait_are_handed_over_as_one_view_per_arena(arena: int) -> None:
    """Arenas are as large as the server asks (the gateway's are LARGE_ARENA)."""
    protocol = serve_by_hand(arena)
    body = random.Random(3).randbytes(arena + 300_000)
    read(protocol, put("/", b"").replace(b"content-length: 0", b"content-length: %d" % len(body)))
    offset = 0
    for _ in range(8):  # eight reads of an eighth of an arena each, none taken yet
        offset += read(protocol, body[offset : offset + arena // 8])
    assert offset == arena
    first = await take(protocol)
    assert isinstance(first["body"], memoryview)
    assert bytes(first["body"]) == body[:arena]
    assert first["more_body"]
    while offset < len(body):
        offset += read(protocol, body[offset:])
    last = await take(protocol)
    assert bytes(last["body"]) == body[arena:]
    assert not last["more_body"]
    assert bytes(first["body"]) == body[:arena]  # unchanged by the reads that followed


@settings(max_examples=40, deadline=None)
@given(
    size=st.integers(1, 3 * ARENA),
    with_head=st.integers(0, 5000),
    reads=st.lists(st.integers(1000, 400_000), min_size=1, max_size=40),
    takes=st.lists(st.booleans(), min_size=1, max_size=40),
    seed=st.integers(0, 2**32),
)
def test_any_reads_and_takes_hand_over_the_body_whole_and_unchanged(
    size: int, with_head: int, reads: list[int], takes: list[bool], seed: int
) -> None:
    body = random.Random(seed).randbytes(size)
    head = put("/", b"").replace(b"content-length: 0", b"content-length: %d" % size)
    early = body[:with_head]  # body bytes that came with the head: through the parser

    async def run() -> list[Any]:
        protocol = serve_by_hand()
        wire = head + early
        while wire:
            wire = wire[read(protocol, wire) :]
        kept: list[Any] = []
        offset, step = len(early), 0
        while True:
            waiting = protocol.http.cycle.message_event.is_set()
            if offset < size and not (waiting and takes[step % len(takes)]):
                offset += read(protocol, body[offset : offset + reads[step % len(reads)]])
            else:
                message = await take(protocol)
                kept.append(message["body"])
                if not message["more_body"]:
                    return kept
            step += 1

    kept = asyncio.run(run())
    assert b"".join(kept) == body  # whole, in order, and no kept view was overwritten
    assert all(isinstance(piece, memoryview) for piece in kept if len(piece) > with_head)
