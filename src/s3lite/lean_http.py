"""uvicorn's httptools protocol with a leaner way for request bodies.

Profiled on a storage node, uvicorn's HTTP/1.1 protocol copied every body byte four
times in user space before our code saw it: httptools' ``on_body`` makes a new bytes
object of each slice of what the socket read, uvicorn appends it to a bytearray
(``cycle.body += body``), ``receive()`` copies that into bytes, and the app's batch
join copies it once more; and before all that, the event loop copies each read from
its own buffer into a new bytes object. This module keeps all of uvicorn (keep-alive
and its timeout, 100-continue, chunked bodies, pipelining, backpressure, disconnects,
graceful shutdown, 400 for bad HTTP), bounds the request head (MAX_HEAD, which
uvicorn's httptools protocol does not), and changes the body's way:

- :class:`LeanHttpProtocol` is an ``asyncio.BufferedProtocol``: the loop reads the
  socket straight into memory it hands out (``get_buffer``), so no read is copied.
  Outside a body it reads into one head buffer and feeds a copy of what came to
  uvicorn's parser, as uvicorn would.
- Once the head of a request with a ``Content-Length`` body has been parsed, reads
  go into *arenas* (:class:`s3lite.buffers.Arena`: fresh bytearrays, not zeroed as
  reads fill them, never written twice, so a piece handed out never changes), at most
  up to the body's end, so the parser never sees them (it would only copy them); it is
  replaced by a fresh one for the next request once the body is complete.
- Body bytes wait, up to :data:`BODY_HIGH_WATER`, and ``receive()`` hands over what
  waits without copying it: consecutive reads into one arena are one memoryview of it
  (a *run*), one message each; bytes that came through the parser are joined (a body
  of tiny chunks must not cost a message per chunk). So a busy app takes a whole
  arena per message, and an app that keeps up takes each read as it comes (measured
  on a node alone: 0.44-0.53 user CPU-s per GiB against 0.60-0.67 with the loop's
  bytes per read and a join per message).

So the app receives ``body`` as bytes *or a memoryview* (:data:`s3lite.buffers.Buffer`),
which every reader of a request body in s3lite takes. Chunked bodies, and the first
bytes of any body (those that arrived with the head), still go through the parser.
uvicorn is pinned exactly in pyproject.toml because these classes rely on the
attributes of its protocol and request cycle.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import httptools
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol, RequestResponseCycle

from .buffers import ARENA, Arena, Pieces

MAX_HEAD = 64 << 10
"""Bytes a request's URL and headers may take: more is answered 400 (httptools itself
sets no bound, so a head that never ends would grow a buffer for as long as it came)."""
BODY_HIGH_WATER = 1 << 20
"""Body bytes a connection holds before it stops reading the socket until the app
takes them (uvicorn's own limit is 64 KiB: a 1 MiB batch was then 16 messages)."""
HEAD_READ = 256 << 10
"""The head buffer: outside Content-Length bodies (heads, chunked bodies, pipelined
requests), reads of at most this many bytes, as uvloop's own buffer."""


class HeadTooLarge(Exception):
    """A request head over MAX_HEAD bytes (raised in a parser callback, which the
    parser turns into the HttpParserError uvicorn answers with 400)."""


class _LeanCycle(RequestResponseCycle):
    """uvicorn's request cycle, with the body kept as :class:`Pieces`."""

    pieces: Pieces

    def start_body(self) -> None:
        self.pieces = Pieces()

    async def receive(self) -> Any:
        # uvicorn's receive() (100-continue, resuming the socket, disconnects), with the
        # pieces handed over as one, joined only when there are several.
        if self.waiting_for_100_continue and not self.transport.is_closing():
            self.transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")
            self.waiting_for_100_continue = False
        if not self.disconnected and not self.response_complete:
            self.flow.resume_reading()
            await self.message_event.wait()
        if self.disconnected or self.response_complete:
            return {"type": "http.disconnect"}
        body = self.pieces.take() if self.pieces else b""
        if not self.pieces:
            self.message_event.clear()
        more = self.more_body or bool(self.pieces)
        return {"type": "http.request", "body": body, "more_body": more}


def _content_length(headers: list[tuple[bytes, bytes]]) -> int:
    """The body length the head declares, 0 unless it is one plain Content-Length
    (a chunked body, or anything odd, stays with the parser)."""
    lengths = [value for name, value in headers if name == b"content-length"]
    if len(lengths) != 1 or any(name == b"transfer-encoding" for name, _ in headers):
        return 0
    value = lengths[0].strip()
    return int(value) if value.isdigit() and len(value) <= 18 else 0


class LeanHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's HttpToolsProtocol, taking Content-Length bodies as reads into arenas
    (:meth:`body_read`) past the parser. :class:`LeanHttpProtocol` drives it."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.body_left = 0
        """Bytes of the current Content-Length body not received yet."""
        self._head_size = 0

    def _new_parser(self) -> None:
        self.parser = httptools.HttpRequestParser(self)
        self.parser.set_dangerous_leniencies(lenient_data_after_close=True)

    def body_read(self, arena: memoryview, start: int, end: int) -> None:
        """Bytes ``start..end`` of ``arena`` were read, all of them body bytes."""
        self._unset_keepalive_if_required()
        self.body_left -= end - start
        cycle = self.cycle
        if not cycle.response_complete:
            assert isinstance(cycle, _LeanCycle)
            cycle.pieces.add_read(arena, start, end)
            self._hold(cycle)
        if self.body_left == 0:
            # The old parser still waits for these bytes; the next request gets a new one.
            self.on_message_complete()
            self._new_parser()

    def _hold(self, cycle: _LeanCycle) -> None:
        if cycle.pieces.held > BODY_HIGH_WATER:
            self.flow.pause_reading()
        cycle.message_event.set()

    def on_message_begin(self) -> None:
        self._head_size = 0
        super().on_message_begin()

    def _count_head(self, size: int) -> None:
        self._head_size += size
        if self._head_size > MAX_HEAD:
            raise HeadTooLarge(f"the request head is over {MAX_HEAD} bytes")

    def on_url(self, url: bytes) -> None:
        self._count_head(len(url))
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._count_head(len(name) + len(value) + 4)
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        super().on_headers_complete()
        cycle = self.cycle
        if cycle is None or cycle.scope is not self.scope:
            self.body_left = 0
            return  # an upgrade: uvicorn made no cycle for it
        cycle.__class__ = _LeanCycle
        assert isinstance(cycle, _LeanCycle)
        cycle.start_body()
        self.body_left = _content_length(self.headers)

    def on_body(self, body: bytes) -> None:
        self.body_left -= len(body)
        cycle = self.cycle
        if cycle.response_complete or (self.parser.should_upgrade() and self._should_upgrade()):
            return
        assert isinstance(cycle, _LeanCycle)
        cycle.pieces.add(body)
        self._hold(cycle)

    def on_message_complete(self) -> None:
        self.body_left = 0
        super().on_message_complete()


_threads = threading.local()


def _head_buffer() -> memoryview:
    """The head buffer of every connection served by this thread's event loop: a read
    into it is copied out before the loop reads anything else, so one is enough (as
    uvloop's own buffer), and idle connections hold no memory."""
    buffer: memoryview | None = getattr(_threads, "head", None)
    if buffer is None:
        buffer = _threads.head = memoryview(bytearray(HEAD_READ))
    return buffer


class LeanHttpProtocol(asyncio.BufferedProtocol):
    """What uvicorn runs (``uvicorn.Config(http=LeanHttpProtocol)``): the socket is
    read into memory this protocol owns, for a :class:`LeanHttpToolsProtocol` made
    with uvicorn's arguments. (uvloop reads into a protocol's buffers only if it is
    not an ``asyncio.Protocol``, which uvicorn's is: hence two objects.) ``arena``:
    the size of the buffers bodies are read into (see :mod:`s3lite.buffers`)."""

    def __init__(self, *args: Any, arena: int = ARENA, **kwargs: Any) -> None:
        self.http = LeanHttpToolsProtocol(*args, **kwargs)
        self._arena = Arena(arena)
        self._into_arena = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.http.connection_made(transport)  # type: ignore[arg-type]

    def connection_lost(self, exc: Exception | None) -> None:
        self.http.connection_lost(exc)

    def eof_received(self) -> None:
        self.http.eof_received()

    def pause_writing(self) -> None:
        self.http.pause_writing()

    def resume_writing(self) -> None:
        self.http.resume_writing()

    def get_buffer(self, sizehint: int) -> memoryview:
        left = self.http.body_left
        self._into_arena = left > 0
        if not self._into_arena:
            return _head_buffer()
        return self._arena.room(left)

    def buffer_updated(self, nbytes: int) -> None:
        if not self._into_arena:
            self.http.data_received(_head_buffer()[:nbytes].tobytes())
            return
        self.http.body_read(*self._arena.filled(nbytes))
        if not self.http.body_left:  # an idle connection keeps no arena
            self._arena.release()
