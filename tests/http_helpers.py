"""HTTP helpers the process tests share: signed requests to a gateway process of a
tests/processes.py Service, payloads, and what is on the nodes' disks."""

from __future__ import annotations

import hashlib
import io
import random
import sqlite3
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import anyio
import yarl
from multidict import CIMultiDict

from tests.processes import Service
from tests.s3sign import SignedSession


@asynccontextmanager
async def signed_session() -> AsyncIterator[SignedSession]:
    """Requests signed with the root key the gateway processes get (tests/processes.py)."""
    timeout = aiohttp.ClientTimeout(total=None, sock_connect=10, sock_read=60)
    async with aiohttp.ClientSession(timeout=timeout, auto_decompress=False) as session:
        yield SignedSession(session)


async def for_each(
    objects: dict[str, bytes], action: Callable[[str, bytes], Awaitable[None]], limit: int = 8
) -> None:
    """``action(key, data)`` for every object, ``limit`` at a time."""
    limiter = anyio.CapacityLimiter(limit)

    async def one(key: str, data: bytes) -> None:
        async with limiter:
            await action(key, data)

    async with anyio.create_task_group() as group:
        for key, data in objects.items():
            group.start_soon(one, key, data)


def payload(seed: object, size: int) -> bytes:
    return random.Random(str(seed)).randbytes(size)


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


async def put_object(
    http: SignedSession, url: yarl.URL, data: bytes, *, chunked: bool = False
) -> aiohttp.ClientResponse:
    body: Any = io.BytesIO(data)  # sized: sent with a Content-Length
    if chunked:

        async def chunks() -> AsyncIterator[bytes]:
            for start in range(0, len(data), 256 * 1024 + 13):
                yield data[start : start + 256 * 1024 + 13]

        body = chunks()
    async with http.put(url, data=body) as response:
        await response.read()
        return response


async def put_ok(http: SignedSession, url: yarl.URL, data: bytes) -> None:
    response = await put_object(http, url, data)
    assert response.status == 200, (url, response.status)
    assert response.headers["etag"] == f'"{md5(data)}"'


async def get(
    http: SignedSession, url: yarl.URL | str, headers: dict[str, str] | None = None
) -> tuple[int, CIMultiDict[str], bytes]:
    async with http.get(url, headers=headers) as response:
        return response.status, response.headers.copy(), await response.read()


async def get_json(http: SignedSession, url: str) -> Any:
    async with http.get(url) as response:
        assert response.status == 200, (url, response.status, await response.text())
        return await response.json()


async def status(http: SignedSession, service: Service) -> dict[str, Any]:
    result: dict[str, Any] = await get_json(http, f"{service.gw.url}/_admin/status")
    return result


async def create_bucket(http: SignedSession, service: Service, bucket: str) -> None:
    async with http.put(service.url(bucket)) as response:
        assert response.status == 200, await response.text()


async def upload_all(
    http: SignedSession, service: Service, bucket: str, objects: dict[str, bytes]
) -> None:
    async def put(key: str, data: bytes) -> None:
        await put_ok(http, service.url(bucket, key), data)

    await for_each(objects, put)


async def assert_all_readable(
    http: SignedSession, service: Service, bucket: str, objects: dict[str, bytes]
) -> None:
    """Every object reads back byte-exact, with its ETag."""

    async def check(key: str, data: bytes) -> None:
        code, headers, body = await get(http, service.url(bucket, key))
        assert code == 200, (key, code, body[:300])
        assert len(body) == len(data), key
        assert body == data, key
        assert headers["etag"] == f'"{md5(data)}"', key

    await for_each(objects, check)


def part_files(data_dir: Path) -> dict[str, int]:
    """Every file under the node's ``sectors/``, relative path -> size."""
    sectors = data_dir / "sectors"
    return {
        str(path.relative_to(sectors)): path.stat().st_size
        for path in sectors.rglob("*")
        if path.is_file()
    }


def xml_message(body: bytes) -> str:
    return ET.fromstring(body).findtext("Message") or ""


async def heal(http: SignedSession, service: Service, node: str | None = None) -> dict[str, Any]:
    """A full heal pass through the admin API; its counts."""
    body = {} if node is None else {"node": node}
    async with http.post(f"{service.gw.url}/_admin/heal", json=body) as response:
        assert response.status == 200, await response.text()
        result: dict[str, Any] = await response.json()
        return result


def live_upload_id(service: Service, object_key: str) -> str:
    """The upload id of ``object_key`` ("bucket/key") in the gateway's manifest
    database (read-only: the gateway keeps running)."""
    path = service.gateway_dir / "manifests.sqlite3"
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
        row = db.execute("SELECT upload_id FROM objects WHERE key = ?", (object_key,)).fetchone()
    assert row is not None, object_key
    return str(row[0])


def segments(service: Service) -> list[tuple[int, list[int]]]:
    """(parity, sectors of its parts) of every live segment, from the gateway's
    manifest database (read-only: the gateway keeps running)."""
    path = service.gateway_dir / "manifests.sqlite3"
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
        rows = db.execute(
            "SELECT s.upload_id, s.segment, s.parity FROM segments s JOIN uploads u "
            "USING (upload_id) WHERE u.state != 'deleting'"
        ).fetchall()
        found = []
        for upload_id, number, parity in rows:
            parts = db.execute(
                "SELECT sector, missing FROM parts WHERE upload_id = ? AND segment = ? "
                "ORDER BY idx",
                (upload_id, number),
            ).fetchall()
            assert not any(missing for _, missing in parts), (upload_id, number)
            found.append((parity, [sector for sector, _ in parts]))
    return found
