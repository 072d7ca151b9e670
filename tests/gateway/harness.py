"""Shared helpers of the gateway tests: the gateway app served by uvicorn in the
test's event loop over a LocalCluster, requests signed with botocore (tests/s3sign.py),
raw-socket exchanges, and checks on what the nodes hold.

Nothing waits by sleeping: a test that must know the gateway has received a body waits
on an event set by a thin ASGI wrapper (Spy), and clean-up is awaited through the
gateway's own ``GET /_admin/idle``.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import urllib.parse
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any, TypeVar

import aiohttp
import anyio
import anyio.abc
import anyio.to_thread
import attrs
import boto3
import botocore.config
import pytest
import uvicorn
from botocore.credentials import Credentials
from botocore.exceptions import ClientError
from yarl import URL

from s3lite import LocalCluster
from s3lite.asgi import Receive, Scope, Send
from s3lite.gateway import GatewayApp
from s3lite.service import bind, url_of
from tests.s3sign import REGION, ROOT, ROOT_SECRET, STREAMING, Seed, SignedSession, sign, sign_raw

T = TypeVar("T")

NS = "{http://s3.amazonaws.com/doc/2006-03-01/}"
TIMEOUT = 20  # seconds: a bound for anything that could hang, never a wait


def payload(size: int, seed: int = 0) -> bytes:
    return random.Random(f"{seed}:{size}").randbytes(size)


def quote_key(key: str, *, keep_slashes: bool = False) -> str:
    """Percent-encode every byte of ``key`` that could be read as URL syntax; dots too,
    so that no client or server can take '.' or '..' for a dot segment."""
    return urllib.parse.quote(key, safe="/" if keep_slashes else "").replace(".", "%2E")


class Spy:
    """ASGI wrapper that counts the body bytes the gateway has received per path, so
    that a test can wait until a request is being served (and how far)."""

    def __init__(self, app: GatewayApp) -> None:
        self.app = app
        self.received: dict[str, int] = {}
        self.headers: dict[str, dict[str, str]] = {}
        """The last request's headers per path, lower-cased, as the gateway saw them."""
        self._changed = anyio.Event()

    def _notify(self) -> None:
        self._changed.set()
        self._changed = anyio.Event()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope["path"]

        async def counting() -> Any:
            message = await receive()
            if message["type"] == "http.request":
                self.received[path] += len(message.get("body", b""))
                self._notify()
            return message

        self.received[path] = 0
        self.headers[path] = {k.decode().lower(): v.decode() for k, v in scope["headers"]}
        self._notify()
        await self.app(scope, counting, send)

    async def wait_received(self, path: str, count: int) -> None:
        with anyio.fail_after(TIMEOUT):
            while self.received.get(path, -1) < count:
                await self._changed.wait()


@attrs.frozen
class Gateway:
    url: str
    app: GatewayApp
    spy: Spy
    session: SignedSession
    cluster: LocalCluster

    def at(self, path: str) -> URL:
        """``path`` as sent, already percent-encoded."""
        return URL(self.url + path, encoded=True)

    async def request(
        self, method: str, path: str, **kwargs: Any
    ) -> tuple[int, aiohttp.typedefs.CIMultiDictProxy[str], bytes]:
        with anyio.fail_after(TIMEOUT):
            async with self.session.request(method, self.at(path), **kwargs) as response:
                return response.status, response.headers, await response.read()

    async def idle(self) -> None:
        status, _, body = await self.request("GET", "/_admin/idle")
        assert (status, json.loads(body)) == (200, {})

    async def status(self) -> dict[str, Any]:
        status, _, body = await self.request("GET", "/_admin/status")
        assert status == 200
        return json.loads(body)  # type: ignore[no-any-return]


@asynccontextmanager
async def serving(cluster: LocalCluster, **options: Any) -> AsyncIterator[Gateway]:
    app = GatewayApp(
        cluster.receiver, cluster.buckets, cluster.orchestrator, cluster.keys, **options
    )
    spy = Spy(app)
    sock = bind("127.0.0.1", 0)
    config = uvicorn.Config(spy, http="httptools", lifespan="off", log_level="warning")
    server = uvicorn.Server(config)
    try:
        async with anyio.create_task_group() as group:
            group.start_soon(server.serve, [sock])
            async with aiohttp.ClientSession(auto_decompress=False) as session:
                yield Gateway(url_of(sock), app, spy, SignedSession(session), cluster)
            # a graceful stop closes the connections clients left open (boto3's pool)
            server.should_exit = True
    finally:
        sock.close()


def error_of(body: bytes) -> dict[str, str]:
    root = ET.fromstring(body)
    assert root.tag == "Error"
    return {child.tag: child.text or "" for child in root}


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


async def stored_parts(cluster: LocalCluster) -> set[tuple[str, int, str]]:
    """Every part file of every node, as the nodes list them: (node, sector, name)."""
    found = set()
    for node_id, node in cluster.nodes.items():
        for sector in await node.usage():
            found |= {(node_id, sector, stat.name) for stat in await node.list_parts(sector)}
    return found


def temp_files(cluster: LocalCluster) -> list[str]:
    return [name for node in cluster.nodes.values() for name in os.listdir(node.data_dir / "tmp")]


async def pending_uploads(cluster: LocalCluster) -> list[str]:
    return await cluster.receiver.manifests.stale_uploads(pending_before=float("inf"))


async def upload_id(cluster: LocalCluster, key: str) -> str:
    manifest = await cluster.receiver.manifests.get(key)
    assert manifest is not None
    return manifest.upload_id


async def assert_only_parts_of(cluster: LocalCluster, *keys: str) -> None:
    """Every part on disk belongs to one of ``keys``' current uploads, and there are six
    per key; no temporary file and no pending upload is left."""
    uploads = [await upload_id(cluster, key) for key in keys]
    parts = await stored_parts(cluster)
    assert sorted(name.split("-")[0] for _, _, name in parts) == sorted(uploads * 6)
    assert temp_files(cluster) == []
    assert await pending_uploads(cluster) == []


@attrs.frozen
class RawResponse:
    status: int
    headers: dict[str, str]
    body: bytes


def parse_response(raw: bytes) -> RawResponse:
    head, _, body = raw.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return RawResponse(int(status_line.split()[1]), headers, body)


async def read_until_closed(stream: anyio.abc.ByteStream) -> bytes:
    received = b""
    with anyio.fail_after(TIMEOUT):
        try:
            async for chunk in stream:
                received += chunk
        except (anyio.BrokenResourceError, ConnectionResetError):
            pass
    return received


async def raw_exchange(gateway: Gateway, request: bytes, *, sign: bool = True) -> RawResponse:
    """Send raw bytes (a request with Connection: close; signed with UNSIGNED-PAYLOAD
    unless ``sign`` is False) and read the whole answer."""
    port = int(gateway.url.rsplit(":", 1)[1])
    async with await anyio.connect_tcp("127.0.0.1", port) as stream:
        await stream.send(sign_raw(gateway.url, request) if sign else request)
        return parse_response(await read_until_closed(stream))


async def chunks_of(data: bytes, size: int) -> AsyncIterator[bytes]:
    """An async body: aiohttp sends it with Transfer-Encoding: chunked."""
    for start in range(0, len(data), size):
        yield data[start : start + size]


async def snapshot(
    gateway: Gateway, bucket: str, key: str = "k"
) -> tuple[bytes, bytes, set[tuple[str, int, str]]]:
    """The object's bytes, the bucket's listing and every part on the nodes: equal
    before and after a request that must change nothing."""
    status, _, data = await gateway.request("GET", f"/{bucket}/{key}")
    if status != 200:
        data = str(status).encode()  # an error body carries its request id
    _, _, listing = await gateway.request("GET", f"/{bucket}?list-type=2")
    listing = listing.split(b"<Contents>", 1)[-1]  # past the request-dependent header
    await gateway.idle()
    return data, listing, await stored_parts(gateway.cluster)


@contextmanager
def client(gateway: Gateway, credentials: Credentials = ROOT, **config: Any) -> Iterator[Any]:
    """A real boto3 S3 client for the gateway (path style, no retries; ``config`` adds
    botocore Config options), closed on exit. Call it through :func:`in_thread`, since
    the gateway serves in the test's event loop."""
    made = boto3.client(
        "s3",
        endpoint_url=gateway.url,
        aws_access_key_id=credentials.access_key,
        aws_secret_access_key=credentials.secret_key,
        region_name=REGION,
        config=botocore.config.Config(
            s3={"addressing_style": "path"}, retries={"max_attempts": 1}, **config
        ),
    )
    try:
        yield made
    finally:
        made.close()


async def in_thread(function: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Run a blocking client call off the event loop (bounded by TIMEOUT)."""
    with anyio.fail_after(TIMEOUT):
        return await anyio.to_thread.run_sync(lambda: function(*args, **kwargs))


async def refused(function: Callable[..., Any], *args: Any, **kwargs: Any) -> tuple[int, str]:
    """(HTTP status, S3 code) of a client call that must fail with a ClientError."""
    with pytest.raises(ClientError) as caught:
        await in_thread(function, *args, **kwargs)
    response = caught.value.response
    return response["ResponseMetadata"]["HTTPStatusCode"], response["Error"]["Code"]


async def new_key(gateway: Gateway, name: str) -> Credentials:
    """A new access key made through the admin API."""
    status, _, body = await gateway.request("POST", "/_admin/keys", json={"name": name})
    assert status == 200, body
    created = json.loads(body)
    assert created["name"] == name
    return Credentials(created["access_key"], created["secret"])


async def grant(gateway: Gateway, verb: str, key: Credentials, bucket: str, **rights: bool) -> Any:
    """``verb`` ("allow" or "deny") ``rights`` on ``bucket`` to ``key``."""
    path = f"/_admin/keys/{key.access_key}/{verb}"
    status, _, body = await gateway.request("POST", path, json={"bucket": bucket, **rights})
    assert status == 200, body
    return json.loads(body)


async def put_chunked(
    gateway: Gateway,
    path: str,
    body: bytes | Callable[[Seed], bytes],
    declared: int,
    mode: str,
    *,
    seed_secret: str = ROOT_SECRET,
) -> tuple[int, bytes]:
    """PUT an aws-chunked body (``mode`` is its x-amz-content-sha256; the -TRAILER
    modes promise x-amz-checksum-crc32); ``body`` may be made from the seed signature."""
    headers = {"content-encoding": "aws-chunked", "x-amz-decoded-content-length": str(declared)}
    if mode != STREAMING:
        headers["x-amz-trailer"] = "x-amz-checksum-crc32"
    signed = sign("PUT", gateway.url + path, headers, payload=mode)
    if callable(body):
        body = body(Seed.of(signed, seed_secret))
    request = (
        f"PUT {path} HTTP/1.1\r\n"
        + "".join(f"{name}: {value}\r\n" for name, value in signed.items())
        + f"content-length: {len(body)}\r\nconnection: close\r\n\r\n"
    ).encode() + body
    response = await raw_exchange(gateway, request, sign=False)
    return response.status, response.body


async def get(s3: Any, **kwargs: Any) -> tuple[Any, bytes]:
    """GetObject and its whole body, both read off the event loop."""

    def read() -> tuple[Any, bytes]:
        response = s3.get_object(**kwargs)
        return response, response["Body"].read()

    return await in_thread(read)
