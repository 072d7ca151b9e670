"""Just enough ASGI for s3lite's two HTTP servers (storage node and gateway).

Both servers stream request and response bodies of any size, so they are written
against raw ASGI instead of a framework: a request body is an async iterator over
``receive()`` (uvicorn stops reading the socket while it is not consumed, which is
the backpressure), and a response body is sent chunk by chunk (``send`` waits for
the socket to drain). Nothing here holds more than one chunk.
"""

from __future__ import annotations

import json
import logging
import urllib.parse
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Iterable, Mapping
from typing import Any

import anyio
import attrs

from .buffers import Buffer
from .errors import S3liteError
from .logs import event
from .streams import root_cause

Scope = Mapping[str, Any]
Message = Mapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

log = logging.getLogger(__name__)

MAX_JSON_BODY = 1 << 20
"""Largest control request body (JSON) a server reads into memory."""
MAX_LENGTH_DIGITS = 18
"""Digits a length header may have: more is beyond any size, and int() of thousands of
digits is slow or refused outright."""


class ClientDisconnected(Exception):
    """The client went away before sending its whole request body."""


class ResponseAborted(Exception):
    """A streamed response failed after its headers went out: the connection is
    dropped so the client sees a truncated body, never a whole-looking wrong one."""


class BadRequest(Exception):
    """A request that is malformed at the HTTP level (path, query, JSON)."""


@attrs.frozen
class Request:
    """The parts of an ASGI HTTP scope s3lite uses."""

    method: str
    segments: tuple[str, ...]
    """The path split on '/', each segment percent-decoded (UTF-8, strictly)."""
    query: Mapping[str, str]
    headers: Mapping[str, str]
    """Lower-cased names; repeated headers joined with ', '."""
    receive: Receive
    raw_path: str = "/"
    """The path as sent (still percent-encoded): what a SigV4 signature covers."""
    raw_query: str = ""
    """The query string as sent."""

    @classmethod
    def of(cls, scope: Scope, receive: Receive) -> Request:
        raw_path: bytes = scope.get("raw_path") or scope["path"].encode()
        raw_path = raw_path.split(b"?", 1)[0]
        try:
            segments = tuple(
                urllib.parse.unquote_to_bytes(part).decode("utf-8")
                for part in raw_path.lstrip(b"/").split(b"/")
            )
            query = dict(
                urllib.parse.parse_qsl(
                    scope.get("query_string", b"").decode("latin-1"),
                    keep_blank_values=True,
                    errors="strict",
                )
            )
        except UnicodeDecodeError as exc:
            raise BadRequest(f"the request path is not valid percent-encoded UTF-8: {exc}") from exc
        headers: dict[str, str] = {}
        for raw_name, raw_value in scope.get("headers", ()):
            name, value = raw_name.decode("latin-1").lower(), raw_value.decode("latin-1")
            headers[name] = f"{headers[name]}, {value}" if name in headers else value
        raw_query = scope.get("query_string", b"").decode("latin-1")
        return cls(
            scope["method"],
            segments,
            query,
            headers,
            receive,
            raw_path.decode("latin-1"),
            raw_query,
        )

    @property
    def declared_length(self) -> int | None:
        """Content-Length, or None for a chunked body."""
        value = self.headers.get("content-length")
        if value is None:
            return None
        if not (value.isascii() and value.isdigit() and len(value) <= MAX_LENGTH_DIGITS):
            raise BadRequest(f"Content-Length must be a number of bytes, got {value[:40]!r}")
        return int(value)

    async def body(
        self, *, batch: int = 0, idle_timeout: float | None = None
    ) -> AsyncIterator[Buffer]:
        """The request body, chunk by chunk (bytes or memoryviews: see lean_http.py);
        raises ClientDisconnected if it is cut short, and TimeoutError if no message
        comes for ``idle_timeout`` seconds.

        The server hands the body over in messages of any size (a socket read, or
        what waited: see lean_http.py); with ``batch``, messages are joined into
        chunks of at least that many bytes (the last may be shorter), so a large body
        costs every layer above (auth, digests, dealing) one pass per batch instead of
        one per message: that per-chunk Python work, not the copying, was most of the
        CPU an upload cost on the gateway. Memory is one batch. (A node's writer
        gathers pieces itself and takes the messages as they come.)
        """
        gathered: list[Buffer] = []
        size = 0
        while True:
            if idle_timeout is None:
                message = await self.receive()
            else:
                with anyio.fail_after(idle_timeout):
                    message = await self.receive()
            if message["type"] == "http.disconnect":
                raise ClientDisconnected("the client disconnected before the end of the body")
            chunk = message.get("body", b"")
            more = message.get("more_body", False)
            if chunk:
                gathered.append(chunk)
                size += len(chunk)
            if gathered and (size >= batch or not more):
                yield gathered[0] if len(gathered) == 1 else b"".join(gathered)
                gathered, size = [], 0
            if not more:
                return

    async def json(self) -> Any:
        """The body parsed as JSON (at most MAX_JSON_BODY bytes)."""
        data = bytearray()
        async for chunk in self.body():
            data += chunk
            if len(data) > MAX_JSON_BODY:
                raise BadRequest(f"a JSON body is at most {MAX_JSON_BODY} bytes")
        try:
            return json.loads(data or b"null")
        except ValueError as exc:
            raise BadRequest(f"the body is not valid JSON: {exc}") from exc


Headers = Iterable[tuple[str, str]]


def _encode(headers: Headers) -> list[tuple[bytes, bytes]]:
    return [(name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in headers]


async def send_bytes(
    send: Send, status: int, body: bytes = b"", headers: Headers = (), *, head: bool = False
) -> None:
    """A whole response; with ``head`` the body is left out but its Content-Length kept."""
    all_headers = _encode([*headers, ("content-length", str(len(body)))])
    await send({"type": "http.response.start", "status": status, "headers": all_headers})
    await send({"type": "http.response.body", "body": b"" if head else body})


async def send_head(send: Send, status: int, headers: Headers) -> None:
    """A response without a body (HEAD): ``headers`` say what a GET would send."""
    await send({"type": "http.response.start", "status": status, "headers": _encode(headers)})
    await send({"type": "http.response.body", "body": b""})


async def send_json(send: Send, status: int, value: object, headers: Headers = ()) -> None:
    body = json.dumps(value).encode()
    await send_bytes(send, status, body, [("content-type", "application/json"), *headers])


async def send_stream(
    send: Send,
    status: int,
    chunks: AsyncIterable[Buffer],
    headers: Headers = (),
    receive: Receive | None = None,
) -> None:
    """Stream a response body.

    With ``receive``, a client that disconnects stops the stream at once (a server's
    ``send`` keeps accepting bytes after a disconnect, so without this an abandoned
    download would still be read to its end). An error after the headers went out
    raises ResponseAborted, so that the connection is dropped and a client never
    takes a truncated body for a whole one.
    """
    await send({"type": "http.response.start", "status": status, "headers": _encode(headers)})
    gone = False

    async def watch(scope: anyio.CancelScope) -> None:
        nonlocal gone
        assert receive is not None
        while (await receive())["type"] != "http.disconnect":
            pass
        gone = True
        scope.cancel()

    failure: Exception | None = None
    async with anyio.create_task_group() as group:
        if receive is not None:
            group.start_soon(watch, group.cancel_scope)
        try:
            async for chunk in chunks:
                if chunk:
                    await send({"type": "http.response.body", "body": chunk, "more_body": True})
        except Exception as exc:
            failure = exc  # raised below, outside the group, so not as an ExceptionGroup
        group.cancel_scope.cancel()
    if failure is not None:
        raise ResponseAborted(f"response broken off after its headers: {failure}") from failure
    if not gone:
        await send({"type": "http.response.body", "body": b""})


class Exchange:
    """One request/response as it goes by: status and body bytes each way, whether the
    response started and ended, whether the request body was read to its end. Use
    :attr:`request` (whose ``receive`` counts) and :meth:`send` in its place."""

    def __init__(self, request: Request, send: Send) -> None:
        self.status = 0
        self.bytes_in = 0
        self.bytes_out = 0
        self.started = False
        self.complete = False
        self.broken = False
        """Set by the app when the response broke off after its headers."""
        self.body_done = not _has_body(request)
        self._send = send
        self._receive = request.receive
        self.request = attrs.evolve(request, receive=self.receive)

    async def receive(self) -> Message:
        message = await self._receive()
        if message["type"] == "http.request":
            self.bytes_in += len(message.get("body", b""))
            self.body_done = not message.get("more_body", False)
        return message

    async def send(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            self.started = True
            self.status = int(message["status"])
        elif message["type"] == "http.response.body":
            self.bytes_out += len(message.get("body", b""))
            self.complete = not message.get("more_body", False)
        await self._send(message)

    @property
    def outcome(self) -> str:
        """complete; client_gone (the client left before the response ended); broken."""
        if self.broken:
            return "broken"
        return "complete" if self.complete or not self.started else "client_gone"


def _has_body(request: Request) -> bool:
    length = request.headers.get("content-length")
    return "chunked" in request.headers.get("transfer-encoding", "") or (
        length is not None and length.strip("0") != ""
    )


class InFlight:
    """Counts requests being served, so that a caller can wait until none is.

    Tests use it to wait for a server to finish tearing down an upload whose client
    went away; operators can use it to drain a server before stopping it.
    """

    def __init__(self) -> None:
        self.count = 0
        self._idle = anyio.Event()
        """Set (and replaced) each time a request leaves."""

    def enter(self) -> None:
        self.count += 1

    def leave(self) -> None:
        self.count -= 1
        self._idle.set()
        self._idle = anyio.Event()

    async def wait_idle(self, own: int = 0) -> None:
        """Return once no request is served but the caller's ``own`` (0 if the caller's
        request is not counted, 1 if it is)."""
        while self.count > own:
            await self._idle.wait()


class App:
    """Base of s3lite's ASGI apps: lifespan, counting requests, and an idle route.

    Subclasses implement :meth:`handle`, and :meth:`reject` for requests whose path
    cannot even be decoded. ``GET`` on :attr:`idle_route` returns once no other
    request is in flight (None: no such route; the gateway has its own, behind auth).
    """

    idle_route: tuple[str, ...] | None = ("idle",)

    def __init__(self) -> None:
        self.in_flight = InFlight()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await _lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        try:
            request = Request.of(scope, receive)
        except BadRequest as exc:
            await self.reject(scope, send, exc)
            return
        if request.segments == self.idle_route:
            await self.in_flight.wait_idle()
            await send_json(send, 200, {})
            return
        self.in_flight.enter()
        try:
            await self.handle(request, send)
        except ResponseAborted as exc:
            # Returning without finishing the response makes the server drop the
            # connection, which is the only way left to tell the client. A known
            # failure (a node went away mid-stream) is one line; a bug keeps its stack.
            cause = root_cause(exc.__cause__ or exc)
            while isinstance(cause, ResponseAborted) and cause.__cause__ is not None:
                cause = root_cause(cause.__cause__)
            path = "/" + "/".join(request.segments)
            if isinstance(cause, S3liteError | ClientDisconnected):
                event(log, logging.WARNING, f"{request.method} {path}: response broken off",
                      error=f"{type(cause).__name__}: {cause}")  # fmt: skip
            else:
                log.exception("%s %s: response broken off", request.method, path)
        finally:
            self.in_flight.leave()

    async def handle(self, request: Request, send: Send) -> None:
        raise NotImplementedError

    async def reject(self, scope: Scope, send: Send, error: BadRequest) -> None:
        await send_json(send, 400, {"error": "BadRequest", "message": str(error)})


async def _lifespan(receive: Receive, send: Send) -> None:
    """Acknowledge lifespan events: the apps' state is opened and closed around the
    server (the CLI does it around ``serve``), so there is nothing to do here."""
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return
