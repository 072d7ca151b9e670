"""Part downloads from a node, read from the socket into buffers of our own.

A download is the gateway's busiest path: every byte of a GET comes from six nodes.
Through aiohttp each byte was copied twice after the kernel's copy: uvloop reads into
its own buffer and hands the protocol a new bytes object, and aiohttp's parser copies
the body out of that into another (py-spy of a 1 GiB download: a fifth of the
gateway's CPU in those two ``memmove``). Here the connection is a BufferedProtocol:
the response head is read into a small buffer and parsed, and the body, whose length
the node always sends (``Content-Length``), is read straight into arenas
(:class:`s3lite.buffers.Arena`) and handed out as views of them.

Only what the node's part route answers is understood: HTTP/1.1, a status line, and
a body of ``Content-Length`` bytes (any other framing is an error, not a guess).
Connections are kept per node and reused once a body was read to its end; one that
the node closed while idle fails the next request with a connection error, which the
caller retries as it retries any (see http.py). Waits are bounded the way http.py
bounds aiohttp's: the caller's deadline for the head, ``idle`` for each next bytes.
"""

from __future__ import annotations

import asyncio
import json
import urllib.parse
from typing import Any, cast

from ..buffers import Arena, Buffer, Pieces

HEAD_READ = 16 << 10
"""Bytes read at a time while the head is incomplete."""
MAX_HEAD = 64 << 10
"""A response head longer than this is an error (a node's is about 150 bytes)."""
HIGH_WATER = 1 << 20
"""Body bytes a connection holds before it stops reading the socket until they are
taken (the node's send then waits: memory stays bounded by a slow client)."""
MAX_ERROR_BODY = 1 << 20
"""An error answer longer than this is not read (a node's is a short JSON object)."""
MAX_IDLE = 32
"""Idle connections kept per node; one more is closed (a burst of parallel reads must
not leave as many open connections behind)."""


class MalformedResponse(ConnectionError):
    """The node's answer is not HTTP/1.1 with a Content-Length body: the connection
    cannot be trusted (a ConnectionError, so the call fails as a broken one does)."""


class _Connection(asyncio.BufferedProtocol):
    """One connection to a node, answering one request at a time."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.status = 0
        self.headers: dict[str, str] = {}
        self.body_left = 0
        """Body bytes not received yet."""
        self.closed = False
        self._head = bytearray()
        self._head_buffer = memoryview(bytearray(HEAD_READ))
        self._in_head = False
        self._arena = Arena()
        self._pieces = Pieces()
        self._error: Exception | None = None
        self._paused = False
        self._waiter: asyncio.Future[None] | None = None

    def start(self, request: bytes) -> None:
        """Send ``request`` and expect its answer."""
        assert self.transport is not None
        self.status, self.headers, self.body_left = 0, {}, 0
        self._head.clear()
        self._in_head = True
        self.transport.write(request)

    # -- asyncio.BufferedProtocol ------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # (uvloop's transports are not asyncio.Transport subclasses, but have its methods)
        self.transport = cast(asyncio.Transport, transport)

    def get_buffer(self, sizehint: int) -> memoryview:
        if self._in_head or not self.body_left:
            return self._head_buffer
        return self._arena.room(self.body_left)

    def buffer_updated(self, nbytes: int) -> None:
        if self._in_head:
            self._head += self._head_buffer[:nbytes]
            self._parse_head()
        elif self.body_left:
            arena, start, end = self._arena.filled(nbytes)
            self.body_left -= nbytes
            self._pieces.add_read(arena, start, end)
            if not self.body_left:
                self._arena.release()
        else:
            self._fail(MalformedResponse("the node sent bytes past the end of its answer"))
            return
        if self._pieces.held > HIGH_WATER and not self._paused and self.transport is not None:
            self._paused = True
            self.transport.pause_reading()
        self._wake()

    def eof_received(self) -> bool:
        self._fail(ConnectionResetError("the node closed the connection"))
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self._fail(exc or ConnectionResetError("the connection was closed"))

    # -- the answer --------------------------------------------------------------------

    async def head(self) -> None:
        """Wait for the answer's status line and headers (raises the connection's
        error); the caller bounds the wait."""
        while self._in_head:
            await self._wait(None)

    async def read(self, idle: float | None) -> Buffer:
        """The next body bytes, empty at the end; TimeoutError if none come within
        ``idle`` seconds."""
        while not self._pieces:
            if not self.body_left:
                return b""
            await self._wait(idle)
        piece = self._pieces.take()
        if self._paused and self._pieces.held <= HIGH_WATER and self.transport is not None:
            self._paused = False
            self.transport.resume_reading()
        return piece

    @property
    def body_size(self) -> int:
        """Body bytes not taken yet, received or not."""
        return self.body_left + self._pieces.held

    @property
    def reusable(self) -> bool:
        """Whether the answer was read to its end and the node keeps the connection."""
        return (
            not self.closed
            and not self._in_head
            and not self.body_left
            and not self._pieces
            and self.headers.get("connection", "").lower() != "close"
        )

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()

    def _parse_head(self) -> None:
        end = self._head.find(b"\r\n\r\n")
        if end < 0:
            if len(self._head) > MAX_HEAD:
                self._fail(MalformedResponse(f"an answer head over {MAX_HEAD} bytes"))
            return
        try:
            self.status, self.headers = parse_head(bytes(self._head[:end]))
            length = content_length(self.headers)
        except ValueError as exc:
            self._fail(MalformedResponse(str(exc)))
            return
        self._in_head = False
        rest = bytes(self._head[end + 4 :])
        if len(rest) > length:
            self._fail(MalformedResponse("the node sent bytes past the end of its answer"))
            return
        self.body_left = length - len(rest)
        if rest:
            self._pieces.add(rest)

    def _fail(self, error: Exception) -> None:
        self.closed = True
        if self._error is None:
            self._error = error
        if self.transport is not None:
            self.transport.close()
        self._wake()

    def _wake(self) -> None:
        waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def _wait(self, idle: float | None) -> None:
        if self._error is not None:
            raise self._error
        loop = asyncio.get_running_loop()
        self._waiter = waiter = loop.create_future()
        timer = None if idle is None else loop.call_later(idle, _expire, waiter, idle)
        try:
            await waiter
        finally:
            if timer is not None:
                timer.cancel()
        if self._error is not None and not self._pieces:
            raise self._error


def _expire(waiter: asyncio.Future[None], idle: float) -> None:
    if not waiter.done():
        waiter.set_exception(TimeoutError(f"no bytes for {idle} s"))


def parse_head(head: bytes) -> tuple[int, dict[str, str]]:
    """(status, headers with lower-case names) of an HTTP/1.1 answer head (without its
    blank line); ValueError if it is not one."""
    lines = head.split(b"\r\n")
    version, _, rest = lines[0].partition(b" ")
    code = rest[:3]
    if version != b"HTTP/1.1" or len(code) != 3 or not code.isdigit():
        raise ValueError(f"not an HTTP/1.1 status line: {lines[0][:80]!r}")
    headers = {}
    for line in lines[1:]:
        name, colon, value = line.partition(b":")
        if not colon or not name or name != name.strip():
            raise ValueError(f"a malformed header line: {line[:80]!r}")
        key = name.decode("latin-1").lower()
        if key in headers:
            raise ValueError(f"header {key} given twice")
        headers[key] = value.strip().decode("latin-1")
    return int(code), headers


def content_length(headers: dict[str, str]) -> int:
    """The body's length; ValueError unless it is one plain Content-Length."""
    value = headers.get("content-length")
    if value is None or "transfer-encoding" in headers:
        raise ValueError("an answer without a Content-Length")
    if not value.isdigit() or len(value) > 18:
        raise ValueError(f"a malformed Content-Length: {value[:40]!r}")
    return int(value)


class NodeConnections:
    """Idle connections to each node, for part downloads."""

    def __init__(self, headers: dict[str, str]) -> None:
        self._headers = "".join(f"{name}: {value}\r\n" for name, value in headers.items())
        self._idle: dict[tuple[str, int], list[_Connection]] = {}

    async def get(self, url: str, idle: float | None) -> Answer:
        """Send a GET for ``url`` (``http://host:port/path?query``) and wait for the
        answer's head (the caller bounds the wait). Connection failures raise
        ConnectionError (OSError from connecting)."""
        parts = urllib.parse.urlsplit(url)
        host, port = parts.hostname or "", parts.port or 80
        target = parts.path + (f"?{parts.query}" if parts.query else "")
        head = f"GET {target} HTTP/1.1\r\nhost: {parts.netloc}\r\n{self._headers}\r\n"
        request = head.encode("latin-1")
        connection = await self._connection(host, port)
        try:
            connection.start(request)
            await connection.head()
        except BaseException:
            connection.close()
            raise
        return Answer(self, (host, port), connection, idle)

    async def _connection(self, host: str, port: int) -> _Connection:
        idle = self._idle.get((host, port))
        while idle:
            connection = idle.pop()
            if not connection.closed:
                return connection
        loop = asyncio.get_running_loop()
        _, protocol = await loop.create_connection(_Connection, host, port)
        return protocol

    def keep(self, address: tuple[str, int], connection: _Connection) -> None:
        """Keep ``connection`` for the next request to ``address``, unless enough are
        kept; the ones the node closed meanwhile are dropped on the way."""
        idle = [kept for kept in self._idle.get(address, ()) if not kept.closed]
        if len(idle) < MAX_IDLE:
            idle.append(connection)
        else:
            connection.close()
        self._idle[address] = idle

    def close(self) -> None:
        for connections in self._idle.values():
            for connection in connections:
                connection.close()
        self._idle.clear()


class Answer:
    """A node's answer: ``status``, and its body read piece by piece."""

    def __init__(
        self,
        pool: NodeConnections,
        address: tuple[str, int],
        connection: _Connection,
        idle: float | None,
    ) -> None:
        self._pool = pool
        self._address = address
        self._connection: _Connection | None = connection
        self._idle = idle
        self.status = connection.status
        self.size = connection.body_size

    async def read(self) -> Buffer:
        """The next body bytes, empty at the end (the connection then goes back to
        the pool); TimeoutError or ConnectionError if the node stalls or breaks."""
        connection = self._connection
        if connection is None:
            return b""
        piece = await connection.read(self._idle)
        if not piece:
            self.release()
        return piece

    async def json(self) -> Any:
        """The whole body as JSON (an error answer), None if it is not JSON or too
        long; the answer is released however this ends."""
        try:
            if self.size > MAX_ERROR_BODY:
                return None
            pieces = []
            while piece := await self.read():
                pieces.append(piece)
            return json.loads(b"".join(pieces))
        except ValueError:
            return None
        finally:
            self.release()

    def release(self) -> None:
        """Done with the answer: its connection is reused if it was read to its end,
        closed otherwise."""
        connection, self._connection = self._connection, None
        if connection is None:
            return
        if connection.reusable:
            self._pool.keep(self._address, connection)
        else:
            connection.close()
