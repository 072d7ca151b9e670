"""The HTTP transport against real ``s3lite node`` processes in trouble: a node that
hangs (SIGSTOP), a node that closes idle pooled connections while a slow client is
still producing its first bytes, a node that is full, and a node whose disk was
replaced. Each node here is started for its test (they end in states the contract's
pool cannot reuse).
"""

from __future__ import annotations

import asyncio
import signal
import sys
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any

import aiohttp
import anyio
import pytest

from s3lite import DiskFull, NodeUnavailable
from s3lite.transport.http import HttpSettings, HttpTransport
from s3lite.transport.lean_client import NodeConnections
from tests.processes import Server, running

from .contract import chunked, payload, read_all

MiB = 1 << 20

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"  # aiohttp


class Requests:
    """Counts the HTTP requests a transport starts (aiohttp tracing, and the part
    downloads lean_client sends), and keeps the connection (its protocol object) each
    aiohttp request whose body was unread used."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch | None = None) -> None:
        self.started = 0
        self.connections: list[Any] = []
        self.config = aiohttp.TraceConfig()
        self.config.on_request_start.append(self._start)
        self.config.on_request_end.append(self._end)
        if monkeypatch is not None:
            get = NodeConnections.get

            async def counted(pool: NodeConnections, url: str, idle: float | None) -> Any:
                self.started += 1
                return await get(pool, url, idle)

            monkeypatch.setattr(NodeConnections, "get", counted)

    async def _start(self, session: Any, context: Any, params: Any) -> None:
        self.started += 1

    async def _end(self, session: Any, context: Any, params: Any) -> None:
        """(A response whose body is not read yet still holds its connection.)"""
        connection = params.response.connection
        self.connections.append(None if connection is None else connection.protocol)


def node_process(data_dir: Path, *args: str) -> AbstractAsyncContextManager[Server]:
    return running(
        "node", "--data-dir", data_dir, "--listen", "127.0.0.1:0", *args,
        log=data_dir.with_suffix(".log"),
    )  # fmt: skip


@pytest.fixture
async def hung_node(tmp_path: Path) -> AsyncIterator[Server]:
    """A node process that the test stops with SIGSTOP; always resumed at teardown so
    that it can be stopped."""
    async with node_process(tmp_path / "node") as server:
        try:
            yield server
        finally:
            server.process.send_signal(signal.SIGCONT)


async def test_a_hung_node_costs_each_call_one_timeout_and_no_retry(
    hung_node: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SIGSTOP: the kernel still accepts connections and buffers bytes, the node answers
    nothing. Every kind of wait is bounded by its short timeout, raises NodeUnavailable
    saying it timed out, and is not retried; SIGCONT brings the node back."""
    settings = HttpSettings(
        connect_timeout=2, call_timeout=1, idle_timeout=1.5, bulk_timeout=2, retries=3
    )
    requests = Requests(monkeypatch)
    transport = HttpTransport(settings, trace_configs=[requests.config])
    client = transport.connect(hung_node.url)
    try:
        big = payload(32 * MiB)  # more than loopback's socket buffers hold
        await client.put_part(1, "big", chunked(big, [MiB]))
        streaming = await client.get_part(1, "big")
        first = await anext(streaming)
        assert first == big[: len(first)]
        hung_node.process.send_signal(signal.SIGSTOP)
        calls = {
            "health": client.health,
            "usage": client.usage,
            "list (bulk)": lambda: client.list_parts(1),
            "verify (bulk)": lambda: client.verify_parts(1, ["big"]),
            "open a stream": lambda: client.get_part(1, "big"),
            "small upload": lambda: client.put_part(2, "small", chunked(b"small")),
            "large upload": lambda: client.put_part(2, "large", chunked(big, [MiB])),
        }
        with anyio.fail_after(60):  # generous: each call should take about 1-2 s
            for name, call in calls.items():
                before = requests.started
                with pytest.raises(NodeUnavailable) as raised:
                    await call()
                assert raised.value.reason.startswith("timed out"), (name, raised.value)
                assert requests.started - before == 1, f"{name} was retried"
            with pytest.raises(NodeUnavailable) as raised:
                await read_all(streaming)  # a stream opened before: its next bytes stall
            assert raised.value.reason.startswith("timed out")
        hung_node.process.send_signal(signal.SIGCONT)
        with anyio.fail_after(30):
            # (the small upload reached the node whole before it was stopped, so the
            # node may store it once it runs again: a timed-out call's outcome is
            # unknown, and its caller deletes what it does not keep)
            assert (await client.health()).parts in (1, 2)
            assert await read_all(await client.get_part(1, "big", 0, 99)) == big[:100]
    finally:
        await transport.aclose()


async def test_an_upload_takes_a_connection_only_when_its_first_bytes_are_there(
    tmp_path: Path,
) -> None:
    """The pool holds a connection the node will close after 1 s of keep-alive; an
    upload starts, and its client takes longer than that to produce its first bytes.
    The upload must not have taken that connection before its bytes were there (the
    node closing it would fail the upload and blame a healthy node)."""
    requests = Requests()
    transport = HttpTransport(HttpSettings(retries=0), trace_configs=[requests.config])
    async with node_process(tmp_path / "node", "--keep-alive", "1") as server:
        client = transport.connect(server.url)
        try:
            await client.put_part(1, "warm", chunked(payload(4 * MiB), [MiB]))
            before = len(requests.connections)
            # a streamed answer: its connection is back in aiohttp's pool once read
            await read_all(await client.export_sectors([1]))
            pooled = requests.connections[before]
            closed = pooled.closed
            assert closed is not None
            assert not closed.done(), "the pool holds an open connection"

            async def slow_client() -> AsyncIterator[bytes]:
                await asyncio.shield(closed)  # the node dropped the idle connection
                yield b"first bytes, late"
                yield b"; the rest"

            with anyio.fail_after(30):
                stat = await client.put_part(1, "slow", slow_client())
            expected = b"first bytes, late; the rest"
            assert stat.length == len(expected)
            assert await read_all(await client.get_part(1, "slow")) == expected
        finally:
            await transport.aclose()


async def test_a_full_node_refuses_parts_with_disk_full_and_serves_reads(tmp_path: Path) -> None:
    data_dir = tmp_path / "node"
    transport = HttpTransport(HttpSettings(retries=0))
    try:
        async with node_process(data_dir, "--node-id", "node-f") as server:
            client = transport.connect(server.url)
            await client.put_part(1, "kept", chunked(b"kept bytes"))
            assert not (await client.health()).full
        await transport.aclose()
        async with node_process(data_dir, "--reserve", "1024T") as server:
            client = transport.connect(server.url)
            health = await client.health()
            assert health.full
            assert 0 < health.free_bytes < 1024 << 40
            with pytest.raises(DiskFull, match="full") as raised:
                await client.put_part(1, "new", chunked(payload(3 * MiB), [MiB]))
            assert raised.value.http_status == 507
            assert await read_all(await client.get_part(1, "kept")) == b"kept bytes"
            assert [stat.name for stat in await client.list_parts(1)] == ["kept"]
            with pytest.raises(DiskFull):
                await client.import_sectors(await client.export_sectors([1]))
            assert await client.delete_parts(1, ["kept"]) == 1
    finally:
        await transport.aclose()


async def run_node_command(*args: str | Path) -> tuple[int, str]:
    command = [sys.executable, "-m", "s3lite", "node", "--listen", "127.0.0.1:0"]
    result = await anyio.run_process([*command, *map(str, args)], check=False)
    return result.returncode, result.stderr.decode()


async def test_a_replaced_node_starts_empty_and_stays_replaced_until_cleared(
    tmp_path: Path,
) -> None:
    data_dir = tmp_path / "node"
    transport = HttpTransport(HttpSettings(retries=0))
    try:
        replaced = ("--node-id", "node-r", "--replaced")
        async with node_process(data_dir, *replaced) as server:
            client = transport.connect(server.url)
            health = await client.health()
            assert (health.node_id, health.replaced, health.parts) == ("node-r", True, 0)
            await client.put_part(3, "rebuilt", chunked(b"rebuilt"))
        async with node_process(data_dir, *replaced) as server:  # a restart mid-rebuild
            client = transport.connect(server.url)
            assert (await client.health()).replaced
            await client.clear_replaced()
            assert not (await client.health()).replaced
            await client.clear_replaced()
        async with node_process(data_dir) as server:
            client = transport.connect(server.url)
            health = await client.health()
            assert (health.node_id, health.replaced, health.parts) == ("node-r", False, 1)
    finally:
        await transport.aclose()
    code, error = await run_node_command("--data-dir", data_dir, *replaced)
    assert code == 1
    assert "not empty" in error


@pytest.mark.parametrize("setup", ["data", "other-node", "no-id"])
async def test_replaced_is_refused_for_a_directory_with_data(tmp_path: Path, setup: str) -> None:
    data_dir = tmp_path / "node"
    data_dir.mkdir()
    args: list[str | Path] = ["--data-dir", data_dir, "--replaced"]
    if setup == "data":
        (data_dir / "something").write_text("precious")
        args += ["--node-id", "node-r"]
    elif setup == "other-node":
        (data_dir / "node.json").write_text('{"node_id": "node-o"}')
        args += ["--node-id", "node-r"]
    code, error = await run_node_command(*args)
    assert code == 1
    assert ("--node-id" if setup == "no-id" else "not empty") in error
    assert (data_dir / "something").exists() == (setup == "data")
