"""HTTP helpers the process tests share: signed requests to a gateway process of a
tests/processes.py Service, payloads, and what is on the nodes' disks."""

from __future__ import annotations

import hashlib
import io
import random
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import anyio
import yarl
from multidict import CIMultiDict

from tests.processes import Service
from tests.s3sign import SignedSession


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
    limiter = anyio.CapacityLimiter(8)

    async def one(key: str, data: bytes) -> None:
        async with limiter:
            await put_ok(http, service.url(bucket, key), data)

    async with anyio.create_task_group() as group:
        for key, data in objects.items():
            group.start_soon(one, key, data)


async def assert_all_readable(
    http: SignedSession, service: Service, bucket: str, objects: dict[str, bytes]
) -> None:
    """Every object reads back byte-exact, with its ETag."""
    limiter = anyio.CapacityLimiter(8)

    async def one(key: str, data: bytes) -> None:
        async with limiter:
            code, headers, body = await get(http, service.url(bucket, key))
        assert code == 200, (key, code, body[:300])
        assert len(body) == len(data), key
        assert body == data, key
        assert headers["etag"] == f'"{md5(data)}"', key

    async with anyio.create_task_group() as group:
        for key, data in objects.items():
            group.start_soon(one, key, data)


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
