"""A 10 GiB object through a gateway process in bounded memory (invariant 6).

Six ``s3lite node`` processes and one ``s3lite gateway`` process; the object is
streamed up from a generator of pseudo-random bytes and streamed back down, each side
hashing on the fly, so neither the test nor the gateway ever holds it. The gateway's
resident set size is sampled (psutil) every SAMPLE_EVERY seconds during both
transfers and must stay under RSS_LIMIT.

Run with ``make test-large`` (``pytest -m large -s``: the figures are printed for the
README); it is skipped unless selected that way or ``S3LITE_LARGE_BYTES`` is set.
``S3LITE_LARGE_BYTES`` sets the size (default 10 GiB); the nodes' data directories,
under pytest's temporary directory, need that much free disk, and are removed at the
end.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import struct
import time
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import anyio
import anyio.to_thread
import attrs
import psutil
import pytest
import yarl

from tests.processes import NODES, Service, running_service
from tests.s3sign import SignedSession

MiB = 1 << 20
GiB = 1 << 30
SIZE = int(os.environ.get("S3LITE_LARGE_BYTES", 10 * GiB))
CHUNK = MiB
RSS_LIMIT = 200 * MiB
SAMPLE_EVERY = 0.25
SLOWEST = 8 * MiB
"""Bytes per second below which a transfer counts as hung (bounds every wait)."""
TRANSFER_TIMEOUT = 120 + SIZE / SLOWEST

pytestmark = [pytest.mark.large, pytest.mark.anyio]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(autouse=True)
def _only_when_asked(request: pytest.FixtureRequest) -> None:
    """A plain `pytest` or `pytest tests/test_large.py` must not move 10 GiB by accident:
    run only under `-m large` (make test-large) or with S3LITE_LARGE_BYTES set."""
    if "large" not in (request.config.option.markexpr or "") and (
        "S3LITE_LARGE_BYTES" not in os.environ
    ):
        pytest.skip("select with -m large (make test-large) or set S3LITE_LARGE_BYTES")


@pytest.fixture
async def service(tmp_path: Path) -> AsyncIterator[Service]:
    try:
        async with running_service(tmp_path) as cluster:
            yield cluster
    finally:
        await anyio.to_thread.run_sync(_remove_node_dirs, tmp_path)


def _remove_node_dirs(root: Path) -> None:
    """The nodes hold the object's bytes: do not leave them in pytest's kept temp dirs."""
    for data_dir in root.glob("node*"):
        if data_dir.is_dir():
            shutil.rmtree(data_dir, ignore_errors=True)


@attrs.define
class RssSampler:
    """Samples a process's RSS until stopped; keeps the peak."""

    process: psutil.Process
    peak: int = 0
    samples: int = 0
    _stop: anyio.Event = attrs.Factory(anyio.Event)

    async def run(self) -> None:
        while True:
            self.peak = max(self.peak, self.process.memory_info().rss)
            self.samples += 1
            if self._stop.is_set():
                return
            with anyio.move_on_after(SAMPLE_EVERY):
                await self._stop.wait()

    def stop(self) -> None:
        self._stop.set()


@contextlib.asynccontextmanager
async def sampling(pid: int) -> AsyncIterator[RssSampler]:
    sampler = RssSampler(psutil.Process(pid))
    async with anyio.create_task_group() as group:
        group.start_soon(sampler.run)
        try:
            yield sampler
        finally:
            sampler.stop()


def pseudo_random_chunks(size: int, digest: hashlib._Hash) -> AsyncIterator[bytes]:
    """``size`` bytes in CHUNK-sized pieces, each a different window of one random block
    stamped with its index (so no two chunks are equal), fed to ``digest`` as they go."""
    block = os.urandom(CHUNK + 8192)

    async def generate() -> AsyncIterator[bytes]:
        index = sent = 0
        while sent < size:
            offset = (index * 7919) % 8192
            chunk = bytearray(block[offset : offset + min(CHUNK, size - sent)])
            if len(chunk) >= 8:
                struct.pack_into("<Q", chunk, 0, index)
            digest.update(chunk)
            sent += len(chunk)
            index += 1
            yield bytes(chunk)

    return generate()


def rate(size: int, seconds: float) -> float:
    return size / MiB / seconds if seconds > 0 else float("inf")


@pytest.mark.timeout(int(2 * TRANSFER_TIMEOUT + 120))
async def test_large_object_streams_through_the_gateway_in_bounded_memory(
    service: Service,
) -> None:
    timeout = aiohttp.ClientTimeout(total=None, sock_connect=30, sock_read=None)
    gateway = psutil.Process(service.gw.process.pid)
    async with aiohttp.ClientSession(timeout=timeout, auto_decompress=False) as session:
        http = SignedSession(session)  # the body streams: UNSIGNED-PAYLOAD
        async with http.put(f"{service.gw.url}/large") as response:
            assert response.status == 200, await response.text()
        url = yarl.URL(f"{service.gw.url}/large/object.bin")
        rest_rss = gateway.memory_info().rss

        sent = hashlib.md5()
        started = time.monotonic()
        with anyio.fail_after(TRANSFER_TIMEOUT):
            async with (
                sampling(gateway.pid) as up,
                http.put(
                    url,
                    data=pseudo_random_chunks(SIZE, sent),
                    headers={"content-length": str(SIZE)},
                ) as response,
            ):
                assert response.status == 200, await response.text()
                etag = response.headers["etag"]
        upload_seconds = time.monotonic() - started
        assert etag == f'"{sent.hexdigest()}"'

        received = hashlib.md5()
        length = 0
        started = time.monotonic()
        with anyio.fail_after(TRANSFER_TIMEOUT):
            async with sampling(gateway.pid) as down, http.get(url) as response:
                assert response.status == 200, await response.text()
                assert int(response.headers["content-length"]) == SIZE
                async for chunk in response.content.iter_chunked(CHUNK):
                    received.update(chunk)
                    length += len(chunk)
        download_seconds = time.monotonic() - started

    print(
        "\n"
        f"s3lite large object: {SIZE:,} bytes ({SIZE / GiB:.2f} GiB), "
        f"{NODES} node processes + 1 gateway process on 127.0.0.1, "
        f"{os.cpu_count()} CPUs\n"
        f"  gateway RSS at rest      {rest_rss / MiB:7.1f} MiB\n"
        f"  upload   {upload_seconds:7.1f} s  {rate(SIZE, upload_seconds):7.1f} MiB/s  "
        f"gateway peak RSS {up.peak / MiB:6.1f} MiB ({up.samples} samples)\n"
        f"  download {download_seconds:7.1f} s  {rate(SIZE, download_seconds):7.1f} MiB/s  "
        f"gateway peak RSS {down.peak / MiB:6.1f} MiB ({down.samples} samples)\n"
        f"  limit {RSS_LIMIT / MiB:.0f} MiB; md5 {sent.hexdigest()} both ways"
    )
    assert length == SIZE
    assert received.hexdigest() == sent.hexdigest()
    assert up.samples >= 2
    assert down.samples >= 2
    assert up.peak < RSS_LIMIT, f"gateway RSS peaked at {up.peak / MiB:.1f} MiB on upload"
    assert down.peak < RSS_LIMIT, f"gateway RSS peaked at {down.peak / MiB:.1f} MiB on download"
