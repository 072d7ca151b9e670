"""The network transport: storage nodes reached over HTTP with aiohttp, and part
downloads with a client of our own (lean_client.py).

Why aiohttp: measured on loopback against uvicorn (README), its client streams
downloads about twice as fast as httpx and serves small requests four to five times
faster (p99 about 3 ms instead of 25-55 ms), with the same bounded memory. It ties
this transport to asyncio; the in-memory transport and everything above the
transport interface still run on any anyio backend. Part downloads, every byte of
every GET, skip aiohttp's two copies of each byte: lean_client reads them into
buffers of our own (a third less CPU in the gateway per GiB downloaded, README).

Timeouts. A node that hangs (stopped with SIGSTOP, a disk that blocks) must cost a
caller at most one short timeout, after which the caller routes around it; so every
wait on a node is bounded by what a healthy node needs (see :class:`HttpSettings`):
a control call, and the response headers of a stream, by ``call_timeout``; each next
bytes of a stream, and each chunk of an upload the node must take, by
``idle_timeout`` (a healthy node streams continuously, so a 10 GiB stream is never
cut for being long); work proportional to the data (verifying parts, installing an
import) by ``bulk_timeout``. Time spent waiting for an upload's *own* body (a slow
client) is never counted against the node. A timeout is not retried, since it means
the node hangs: it raises NodeUnavailable at once, its reason starting "timed out".

Retries. A refused or reset connection is retried with exponential backoff when the
call can be repeated without harm: every call but an upload, and an upload too as
long as everything taken from its body is still held (a body of one chunk or of
at most REPLAY_HOLD bytes, or a failure before more was needed). Errors the node
reports are rebuilt as the typed exceptions it raised (see wire.py) and never
retried.
"""

from __future__ import annotations

import math
import urllib.parse
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Collection, Mapping
from typing import Any, TypeVar

import aiohttp
import anyio
import attrs

from ..buffers import Buffer
from ..errors import DamagedPart, NodeUnavailable, S3liteError
from ..sectors import check_sector
from .base import (
    ByteStream,
    ImportResult,
    NodeHealth,
    PartCheck,
    PartStat,
    QuarantinedPart,
    check_name,
)
from .lean_client import NodeConnections
from .secret import authorization
from .wire import decode_check, decode_error

T = TypeVar("T")

REPLAY_HOLD = 1 << 20
"""An upload whose body took more than its first chunk stays replayable while what it
took is at most this many bytes (held by reference, not copied): the dealer sends a
part of one stripe unit as the two pieces of the client's chunks the unit straddles,
and such a part is retried as one sent in a single chunk is."""

CONNECTION_ERRORS = (aiohttp.ClientError, ConnectionError)
"""Failures of a connection that say nothing about a hung node: retried where safe.
(TimeoutError, which aiohttp's timeouts also raise, is handled before these.)"""


@attrs.frozen
class HttpSettings:
    """Timeouts (seconds) and retry policy of the network transport."""

    connect_timeout: float = 5.0
    """Longest wait for a TCP connection to a node."""
    call_timeout: float = 5.0
    """Longest a control call (health, usage, delete, link...) may take in all, the
    longest wait for a stream's response headers, and for a node's answer to an
    upload once the whole body is sent."""
    idle_timeout: float = 10.0
    """Longest wait for the next bytes of a part streamed from a node, and for a node
    to take the next chunk of an upload."""
    bulk_timeout: float = 120.0
    """Bound for node work proportional to the data involved, done with no bytes on
    the wire: verify_parts (reads every part named), list_parts (reads every header
    of a sector), drop_sectors (removes every file of the sectors), the answer to
    import_sectors (verifies and installs the archive after its last byte), and gaps
    in an export stream (each part is verified whole before it is sent). These are
    the calls of scrubs, joins and the janitor, not of a client's request."""
    retries: int = 3
    backoff: float = 0.05
    """First retry delay; each next one doubles."""


class HttpTransport:
    """One pooled aiohttp session for every node, and one pool of part-download
    connections (lean_client.py), created in the running event loop.

    ``trace_configs`` are handed to the session (aiohttp's request tracing), for
    instrumentation: counting connections made and reused, timing requests. With a
    ``secret`` (the cluster's, secret.py), every call carries it.
    """

    def __init__(
        self,
        settings: HttpSettings | None = None,
        *,
        trace_configs: Collection[aiohttp.TraceConfig] = (),
        secret: str | None = None,
    ) -> None:
        self.settings = settings or HttpSettings()
        self._trace_configs = list(trace_configs)
        self._headers = {} if secret is None else {"authorization": authorization(secret)}
        self._session: aiohttp.ClientSession | None = None
        self._connections: NodeConnections | None = None

    def connections(self) -> NodeConnections:
        """The connections part downloads use (lean_client.py), made in the running
        event loop."""
        if self._connections is None:
            self._connections = NodeConnections(self._headers)
        return self._connections

    def session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(limit=1024, limit_per_host=0, ttl_dns_cache=300)
            self._session = aiohttp.ClientSession(
                connector=connector,
                auto_decompress=False,
                raise_for_status=False,
                trace_configs=self._trace_configs or None,
                headers=self._headers,
            )
        return self._session

    def connect(self, address: str) -> HttpNodeClient:
        return HttpNodeClient(self, address)

    async def aclose(self) -> None:
        if self._connections is not None:
            self._connections.close()
            self._connections = None
        if self._session is not None:
            await self._session.close()
            self._session = None


class _Deadline:
    """A cancel scope around one attempt whose deadline moves as the node makes
    progress; :meth:`bound` says what the node owes next and by when."""

    def __init__(self) -> None:
        self.scope = anyio.CancelScope()
        self.waiting_for = "an answer"

    def bound(self, seconds: float, waiting_for: str) -> None:
        self.waiting_for = waiting_for
        self.scope.deadline = anyio.current_time() + seconds

    def lift(self) -> None:
        """Nothing is owed by the node (the caller is waiting for its own data)."""
        self.scope.deadline = math.inf

    def check(self) -> None:
        """After the scope: TimeoutError if the deadline ended the attempt."""
        if self.scope.cancelled_caught:
            raise TimeoutError(f"no {self.waiting_for}")


class HttpNodeClient:
    """A :class:`NodeClient` for the node serving ``address`` (``http://host:port``)."""

    def __init__(self, transport: HttpTransport, address: str) -> None:
        self._transport = transport
        self._address = address.rstrip("/")
        self._settings = transport.settings

    @property
    def address(self) -> str:
        return self._address

    def _url(self, *segments: str | int) -> str:
        """The URL of a route; every segment is percent-encoded, so no value can add,
        remove (``..``) or reorder path segments."""
        quoted = (urllib.parse.quote(str(segment), safe="") for segment in segments)
        return "/".join([self._address, "v1", *quoted])

    def _unavailable(self, exc: BaseException, prefix: str = "") -> NodeUnavailable:
        if isinstance(exc, TimeoutError):
            return NodeUnavailable(self._address, f"timed out: {prefix}{_describe(exc)}")
        return NodeUnavailable(self._address, f"{prefix}{_describe(exc)}")

    async def _retrying(
        self, attempt: Callable[[], Awaitable[T]], retry: Callable[[], bool] = lambda: True
    ) -> T:
        """``attempt``, again after a failed connection while ``retry()`` allows it."""
        tries = 1 + self._settings.retries
        for number in range(tries):
            try:
                return await attempt()
            except TimeoutError as exc:  # a hung node: never retried
                raise self._unavailable(exc) from exc
            except CONNECTION_ERRORS as exc:
                if number + 1 == tries or not retry():
                    raise self._unavailable(exc) from exc
                await anyio.sleep(self._settings.backoff * 2**number)
        raise AssertionError("unreachable")

    async def _json(
        self,
        method: str,
        *segments: str | int,
        payload: object = None,
        params: Mapping[str, str] | None = None,
        bulk: bool = False,
    ) -> Any:
        total = self._settings.bulk_timeout if bulk else self._settings.call_timeout
        timeout = aiohttp.ClientTimeout(total=total, sock_connect=self._settings.connect_timeout)

        async def attempt() -> Any:
            async with self._transport.session().request(
                method, self._url(*segments), json=payload, params=params, timeout=timeout
            ) as response:
                return await _result(response, self._address)

        return await self._retrying(attempt)

    async def health(self) -> NodeHealth:
        body = await self._json("GET", "health")
        return NodeHealth(
            node_id=str(body["node_id"]),
            parts=int(body["parts"]),
            bytes_stored=int(body["bytes_stored"]),
            free_bytes=int(body["free_bytes"]),
            full=bool(body["full"]),
            quarantined=int(body["quarantined"]),
            replaced=bool(body["replaced"]),
        )

    async def usage(self) -> Mapping[int, int]:
        body = await self._json("GET", "usage")
        return {int(sector): int(size) for sector, size in body["sectors"].items()}

    async def list_parts(self, sector: int) -> list[PartStat]:
        body = await self._json("GET", "sectors", check_sector(sector), bulk=True)
        return [PartStat(**stat) for stat in body["parts"]]

    async def verify_parts(self, sector: int, names: Collection[str]) -> dict[str, PartCheck]:
        checked = [check_name(name) for name in names]
        body = await self._json(
            "POST", "sectors", check_sector(sector), "verify", payload={"names": checked}, bulk=True
        )
        return {str(name): decode_check(check) for name, check in body["parts"].items()}

    async def list_quarantined(self) -> list[QuarantinedPart]:
        body = await self._json("GET", "quarantine")
        return [QuarantinedPart(**part) for part in body["parts"]]

    async def clear_replaced(self) -> None:
        await self._json("POST", "clear-replaced")

    async def delete_parts(self, sector: int, names: Collection[str]) -> int:
        checked = [check_name(name) for name in names]
        body = await self._json(
            "POST", "sectors", check_sector(sector), "delete", payload={"names": checked}
        )
        return int(body["deleted"])

    async def link_part(self, name: str, from_sector: int, to_sector: int) -> None:
        sector, target = check_sector(from_sector), check_sector(to_sector)
        await self._json(
            "POST", "sectors", sector, check_name(name), "link", payload={"to": target}
        )

    async def drop_sectors(self, sectors: Collection[int]) -> None:
        payload = {"sectors": [check_sector(s) for s in sectors]}
        await self._json("POST", "drop", payload=payload, bulk=True)

    async def put_part(
        self, sector: int, name: str, body: AsyncIterable[Buffer], *, length: int | None = None
    ) -> PartStat:
        url = self._url("sectors", check_sector(sector), check_name(name))
        answer = self._settings.call_timeout
        result = await self._upload("PUT", url, body, answer_timeout=answer, length=length)
        return PartStat(**result)

    async def import_sectors(self, archive: AsyncIterable[Buffer]) -> ImportResult:
        result = await self._upload(
            "POST", self._url("import"), archive, answer_timeout=self._settings.bulk_timeout
        )
        return ImportResult(**result)

    async def _upload(
        self,
        method: str,
        url: str,
        body: AsyncIterable[Buffer],
        *,
        answer_timeout: float,
        length: int | None = None,
    ) -> Any:
        """Send ``body`` and return the node's JSON answer. No connection is taken
        before the body's first chunk is there (a pooled connection left idle while a
        slow client trickles in would hit the node's keep-alive timeout, and a healthy
        node would be blamed). A known ``length`` goes as Content-Length: aiohttp then
        writes each chunk as it is, where chunked framing joins every chunk with its
        header first (a copy of every byte, on Python before 3.12.9)."""
        upload = _Upload(body, self._settings, answer_timeout)
        await upload.start()
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=self._settings.connect_timeout)
        headers = None if length is None else {"content-length": str(length)}

        async def attempt() -> Any:
            deadline = _Deadline()
            upload.deadline = deadline
            with deadline.scope:
                deadline.bound(self._settings.call_timeout, "connection and request headers")
                async with self._transport.session().request(
                    method, url, data=upload.chunks(), timeout=timeout, headers=headers
                ) as response:
                    deadline.bound(answer_timeout, "answer")
                    return await _result(response, self._address)
            deadline.check()
            raise AssertionError("unreachable: a cancelled scope raises or is caught")

        return await upload.reraising(self._retrying(attempt, retry=upload.replayable))

    async def get_part(
        self, sector: int, name: str, start: int | None = None, end: int | None = None
    ) -> ByteStream:
        params = {
            key: str(value) for key, value in (("start", start), ("end", end)) if value is not None
        }
        segments = ("sectors", check_sector(sector), check_name(name))

        async def why_broken(error: NodeUnavailable) -> S3liteError:
            """A part stream cut mid-way: if the node found the part damaged (and says
            so when asked again), that is the error; else the broken stream is."""
            try:
                probe = await self._get(segments, retries=False)
            except DamagedPart as damaged:
                return damaged
            except S3liteError:
                return error
            await probe.aclose()
            return error

        return await self._get(segments, params=params, on_break=why_broken)

    async def export_sectors(self, sectors: Collection[int]) -> ByteStream:
        payload = {"sectors": [check_sector(s) for s in sectors]}
        return await self._open(
            "POST", ("export",), payload=payload, idle=self._settings.bulk_timeout
        )

    async def _get(
        self,
        segments: tuple[str | int, ...],
        *,
        params: Mapping[str, str] | None = None,
        retries: bool = True,
        on_break: Callable[[NodeUnavailable], Awaitable[S3liteError]] | None = None,
    ) -> ByteStream:
        """A part's bytes (lean_client.py): the answer's head within call_timeout,
        then each next bytes within idle_timeout."""
        url = self._url(*segments)
        if params:
            url += "?" + urllib.parse.urlencode(params)

        async def attempt() -> NodeStream:
            deadline = _Deadline()
            with deadline.scope:
                deadline.bound(self._settings.call_timeout, "response headers")
                answer = await self._transport.connections().get(url, self._settings.idle_timeout)
                if answer.status != 200:
                    raise decode_error(answer.status, await answer.json(), self._address)
                return NodeStream(answer.read, answer.release, self, on_break)
            deadline.check()
            raise AssertionError("unreachable: a cancelled scope raises or is caught")

        return await self._retrying(attempt, retry=lambda: retries)

    async def _open(
        self,
        method: str,
        segments: tuple[str | int, ...],
        *,
        params: Mapping[str, str] | None = None,
        payload: object = None,
        idle: float | None = None,
    ) -> ByteStream:
        """A streamed response through aiohttp (an export: a POST whose answer is
        chunked): its headers within call_timeout, then each next bytes within
        ``idle`` (idle_timeout by default)."""
        timeout = aiohttp.ClientTimeout(
            total=None,
            sock_connect=self._settings.connect_timeout,
            sock_read=idle or self._settings.idle_timeout,
        )

        async def attempt() -> NodeStream:
            deadline = _Deadline()
            with deadline.scope:
                deadline.bound(self._settings.call_timeout, "response headers")
                response = await self._transport.session().request(
                    method, self._url(*segments), params=params, json=payload, timeout=timeout
                )
                if response.status != 200:
                    async with response:
                        await _result(response, self._address)
                return _response_stream(response, self)
            deadline.check()
            raise AssertionError("unreachable: a cancelled scope raises or is caught")

        return await self._retrying(attempt)


class NodeStream:
    """A node's answer body as a :class:`ByteStream`, whichever client reads it
    (``read`` gives the next bytes, empty at the end; ``release`` lets the connection
    go). A stream that breaks or stalls raises NodeUnavailable (or what ``on_break``
    makes of a break), never a bare client error."""

    def __init__(
        self,
        read: Callable[[], Awaitable[Buffer]],
        release: Callable[[], None],
        client: HttpNodeClient,
        on_break: Callable[[NodeUnavailable], Awaitable[S3liteError]] | None = None,
    ) -> None:
        self._read = read
        self._release = release
        self._client = client
        self._on_break = on_break

    def __aiter__(self) -> NodeStream:
        return self

    async def __anext__(self) -> Buffer:
        try:
            piece = await self._read()
        except (TimeoutError, *CONNECTION_ERRORS) as exc:
            self._release()
            error = self._client._unavailable(exc, "stream broke: ")
            if self._on_break is not None and not isinstance(exc, TimeoutError):
                raise await self._on_break(error) from exc
            raise error from exc
        if not piece:
            self._release()
            raise StopAsyncIteration
        return piece

    async def aclose(self) -> None:
        self._release()


def _response_stream(response: aiohttp.ClientResponse, client: HttpNodeClient) -> NodeStream:
    """An aiohttp response's body as a NodeStream."""

    async def read() -> bytes:
        """The next piece as aiohttp received it (``readchunk``: ``readany`` would join
        all that is buffered, a copy of most bytes of a fast stream)."""
        chunk, chunk_ended = await response.content.readchunk()
        while not chunk and chunk_ended:  # the end of an HTTP chunk, not of the body
            chunk, chunk_ended = await response.content.readchunk()
        return chunk

    def release() -> None:
        if not response.closed:
            if response.content.at_eof():
                response.release()
            else:
                response.close()  # unread bytes: do not reuse the connection

    return NodeStream(read, release, client)


class _Upload:
    """An upload's body as aiohttp sends it, attempt after attempt.

    Holds the chunks taken from the body as long as they are everything taken and
    small (the first one, and more up to REPLAY_HOLD bytes in all), so a failed
    attempt can be replayed; moves
    the attempt's deadline as the node takes chunks (``idle_timeout`` each) and lifts
    it while the body itself makes the node wait; and remembers an error the body
    raised, so that the caller sees that error (say, its own client disconnecting)
    rather than the broken request it caused.
    """

    def __init__(self, body: AsyncIterable[Buffer], settings: HttpSettings, answer: float) -> None:
        self._body = aiter(body)
        self._settings = settings
        self._answer = answer
        self._held: list[Buffer] = []
        self._held_size = 0
        self._ended = False
        self._replayable = True
        self.deadline = _Deadline()
        self.error: BaseException | None = None

    async def start(self) -> None:
        """Wait for the body's first chunk (or its end), before any connection."""
        await self._take()

    async def _take(self) -> Buffer | None:
        try:
            chunk = await anext(self._body)
        except StopAsyncIteration:
            self._ended = True
            return None
        except Exception as exc:  # not cancellation: aiohttp cancels this when the node goes
            self.error = exc
            raise
        if self._replayable:
            held = self._held_size + len(chunk)
            if held <= REPLAY_HOLD or not self._held:
                self._held.append(chunk)
                self._held_size = held
            else:
                self._replayable, self._held = False, []
        return chunk

    def replayable(self) -> bool:
        return self._replayable and self.error is None

    async def chunks(self) -> AsyncIterator[Buffer]:
        if not self._replayable:
            raise AssertionError("an upload is replayed only while it is all held")
        idle = self._settings.idle_timeout
        for chunk in list(self._held):
            self.deadline.bound(idle, "progress sending the body")
            yield chunk
        while not self._ended:
            self.deadline.lift()
            taken = await self._take()
            if taken is not None:
                self.deadline.bound(idle, "progress sending the body")
                yield taken
        self.deadline.bound(self._answer, "answer once the body was sent")

    async def reraising(self, call: Awaitable[T]) -> T:
        try:
            result = await call
        except (S3liteError, *CONNECTION_ERRORS):
            if self.error is not None:
                raise self.error from None
            raise
        if self.error is not None:
            raise self.error
        return result


async def _result(response: aiohttp.ClientResponse, address: str) -> Any:
    """The JSON body of a success, or the typed error of a failure."""
    try:
        body = await response.json(content_type=None)
    except ValueError:
        body = None
    if response.status != 200:
        raise decode_error(response.status, body, address)
    return body


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
