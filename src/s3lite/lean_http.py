"""uvicorn's httptools protocol with a leaner way for request bodies.

Profiled on a storage node, uvicorn's HTTP/1.1 protocol copied every body byte four
times in user space before our code saw it: httptools' ``on_body`` makes a new bytes
object of each slice of what the socket read, uvicorn appends it to a bytearray
(``cycle.body += body``), ``receive()`` copies that into bytes, and the app's batch
join copies it once more. This protocol keeps all of uvicorn (keep-alive and its
timeout, 100-continue, chunked bodies, pipelining, backpressure, disconnects,
graceful shutdown, 400 for bad HTTP), bounds the request head (MAX_HEAD, which
uvicorn's httptools protocol does not), and changes the body's way:

- once the head of a request with a ``Content-Length`` body has been parsed, the
  bytes the socket delivers are body bytes up to that length, so they are kept as the
  socket's own bytes objects, without the parser (which would only copy them) — the
  parser is replaced by a fresh one for the next request once the body is complete;
- body pieces (each what one socket read delivered, up to 256 KiB with uvloop) wait
  in a list, up to :data:`BODY_HIGH_WATER` bytes, and ``receive()`` hands over all
  that waits as one message: the piece itself when there is one, one join otherwise.
  Handing each piece over as its own message (so that the app's batch join would be
  the only copy) measured worse: the app's per-message Python work costs more than
  the join it saves.

Chunked bodies, and the first bytes of any body (those that arrived with the head),
still go through the parser. uvicorn is pinned exactly in pyproject.toml because
this subclass relies on the attributes of its protocol and request cycle.
"""

from __future__ import annotations

from typing import Any

import httptools
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol, RequestResponseCycle

MAX_HEAD = 64 << 10
"""Bytes a request's URL and headers may take: more is answered 400 (httptools itself
sets no bound, so a head that never ends would grow a buffer for as long as it came)."""
BODY_HIGH_WATER = 1 << 20
"""Body bytes a connection holds before it stops reading the socket until the app
takes them (uvicorn's own limit is 64 KiB: a 1 MiB batch was then 16 messages)."""


class HeadTooLarge(Exception):
    """A request head over MAX_HEAD bytes (raised in a parser callback, which the
    parser turns into the HttpParserError uvicorn answers with 400)."""


class _LeanCycle(RequestResponseCycle):
    """uvicorn's request cycle, with the body kept as a list of pieces."""

    pieces: list[bytes]
    held: int

    async def receive(self) -> Any:
        # uvicorn's receive() (100-continue, resuming the socket, disconnects), with the
        # pieces joined once instead of a bytearray copied into bytes.
        if self.waiting_for_100_continue and not self.transport.is_closing():
            self.transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")
            self.waiting_for_100_continue = False
        if not self.disconnected and not self.response_complete:
            self.flow.resume_reading()
            await self.message_event.wait()
        if self.disconnected or self.response_complete:
            return {"type": "http.disconnect"}
        pieces = self.pieces
        body = pieces[0] if len(pieces) == 1 else b"".join(pieces)
        self.pieces, self.held = [], 0
        self.message_event.clear()
        return {"type": "http.request", "body": body, "more_body": self.more_body}


def _content_length(headers: list[tuple[bytes, bytes]]) -> int:
    """The body length the head declares, 0 unless it is one plain Content-Length
    (a chunked body, or anything odd, stays with the parser)."""
    lengths = [value for name, value in headers if name == b"content-length"]
    if len(lengths) != 1 or any(name == b"transfer-encoding" for name, _ in headers):
        return 0
    value = lengths[0].strip()
    return int(value) if value.isdigit() and len(value) <= 18 else 0


class LeanHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's HttpToolsProtocol, taking Content-Length bodies straight from the
    socket (see the module doc). Pass the class as ``uvicorn.Config(http=...)``."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._body_left = 0
        """Bytes of the current Content-Length body not received yet."""
        self._head_size = 0

    def _new_parser(self) -> None:
        self.parser = httptools.HttpRequestParser(self)
        self.parser.set_dangerous_leniencies(lenient_data_after_close=True)

    def data_received(self, data: bytes) -> None:
        if self._body_left <= 0:
            super().data_received(data)
            return
        self._unset_keepalive_if_required()
        take = min(self._body_left, len(data))
        self.on_body(data if take == len(data) else data[:take])
        if self._body_left == 0:
            # The old parser still waits for these bytes; the next request gets a new one.
            self.on_message_complete()
            self._new_parser()
            if take < len(data):
                super().data_received(data[take:])

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
            self._body_left = 0
            return  # an upgrade: uvicorn made no cycle for it
        cycle.__class__ = _LeanCycle
        assert isinstance(cycle, _LeanCycle)
        cycle.pieces, cycle.held = [], 0
        self._body_left = _content_length(self.headers)

    def on_body(self, body: bytes) -> None:
        self._body_left -= len(body)
        cycle = self.cycle
        if cycle.response_complete or (self.parser.should_upgrade() and self._should_upgrade()):
            return
        assert isinstance(cycle, _LeanCycle)
        cycle.pieces.append(body)
        cycle.held += len(body)
        if cycle.held > BODY_HIGH_WATER:
            self.flow.pause_reading()
        cycle.message_event.set()

    def on_message_complete(self) -> None:
        self._body_left = 0
        super().on_message_complete()
