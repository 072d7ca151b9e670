"""Start and stop ``s3lite`` server processes for tests.

Every server listens on 127.0.0.1 (port 0: the kernel picks one) and prints
``listening on http://...`` when it accepts connections; :func:`running` waits for that
line (bounded), keeps draining stdout so the child never blocks on it, and stops the
process by its PID when the block ends: SIGTERM, then SIGKILL if it has not exited
within the grace period. stderr goes to a log file next to the data, which is shown
when a server fails to start.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import urllib.parse
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from types import MappingProxyType

import anyio
import anyio.abc
import attrs
import yarl

from tests.s3sign import ROOT_ENV

READY = re.compile(rb"listening on (http://\S+)")
NODES = 6
START_TIMEOUT = 30.0
STOP_GRACE = 15.0


@attrs.define
class Server:
    """A running ``s3lite`` process."""

    process: anyio.abc.Process
    url: str
    log: Path
    banner: bytes = b""
    """What the server printed on stdout up to its "listening" line."""

    @property
    def port(self) -> int:
        return int(self.url.rsplit(":", 1)[1])

    async def kill(self) -> None:
        """SIGKILL: the process dies at once, mid-whatever (a crash)."""
        if self.process.returncode is None:
            self.process.send_signal(signal.SIGKILL)
            with anyio.fail_after(STOP_GRACE):
                await self.process.wait()

    async def stop(self) -> int:
        """SIGTERM and wait (SIGKILL after the grace period); returns the exit code."""
        if self.process.returncode is None:
            self.process.terminate()
            with anyio.move_on_after(STOP_GRACE):
                return await self.process.wait()
            await self.kill()
        assert self.process.returncode is not None
        return self.process.returncode


async def _drain(stream: anyio.abc.ByteReceiveStream) -> None:
    async for _ in stream:
        pass


@asynccontextmanager
async def running(
    *args: str | Path, log: Path, env: Mapping[str, str] = MappingProxyType({})
) -> AsyncIterator[Server]:
    """Run ``python -m s3lite ARGS`` until the block ends; a gateway gets the test root
    key (tests/s3sign.py) from the environment, and ``env`` is added to it."""
    command = [sys.executable, "-m", "s3lite", *map(str, args)]
    env = {**os.environ, **ROOT_ENV, **env}
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as log_file:  # noqa: ASYNC230 - a local log file, opened once
        process = await anyio.open_process(
            command, stdout=subprocess.PIPE, stderr=log_file, env=env
        )
    server = None
    try:
        assert process.stdout is not None
        seen = b""
        with anyio.fail_after(START_TIMEOUT):
            while (match := READY.search(seen)) is None:
                try:
                    seen += await process.stdout.receive()
                except anyio.EndOfStream:
                    raise RuntimeError(
                        f"{' '.join(command)} exited before listening:\n{log.read_text()}"  # noqa: ASYNC240
                    ) from None
        server = Server(process, match[1].decode(), log, seen)
        async with anyio.create_task_group() as group:
            group.start_soon(_drain, process.stdout)
            try:
                yield server
            finally:
                with anyio.CancelScope(shield=True):
                    await server.stop()
                group.cancel_scope.cancel()
    finally:
        with anyio.CancelScope(shield=True):
            if process.returncode is None:
                process.kill()
                await process.wait()
            await process.aclose()


async def _hold(
    args: tuple[str | Path, ...],
    log: Path,
    env: Mapping[str, str],
    *,
    task_status: anyio.abc.TaskStatus[Server],
) -> None:
    """Run one server until this task is cancelled (then ``running`` stops it)."""
    async with running(*args, log=log, env=env) as server:
        task_status.started(server)
        await anyio.sleep_forever()


@attrs.define
class Service:
    """Node processes (six by default) and a gateway process, all under ``root``
    (started by :func:`running_service`), as the service tests and the operations
    tests use them; ``size`` nodes are in the cluster, any more are spares, ready to
    join."""

    root: Path
    group: anyio.abc.TaskGroup
    size: int = NODES
    """Nodes of the cluster the gateway is created with."""
    gateway: Server | None = None
    env: Mapping[str, str] = MappingProxyType({})
    """More environment for every process (say the cluster secret)."""
    _nodes: dict[int, Server] = attrs.Factory(dict)

    @property
    def nodes(self) -> list[Server]:
        """The node processes by index (a killed one stays until it is restarted)."""
        return [self._nodes[index] for index in sorted(self._nodes)]

    @property
    def node_dirs(self) -> list[Path]:
        return [self.node_dir(index) for index in sorted(self._nodes)]

    def node_dir(self, index: int) -> Path:
        return self.root / f"node{index}"

    @property
    def gateway_dir(self) -> Path:
        return self.root / "gateway"

    @property
    def gw(self) -> Server:
        assert self.gateway is not None
        return self.gateway

    async def start_node(self, index: int, port: int = 0, *options: str) -> Server:
        """Start node ``index`` over its own data dir; with ``port``, restart it there;
        ``options`` are more flags (``--reserve 1T``)."""
        args = (
            "node", "--data-dir", self.node_dir(index), "--listen", f"127.0.0.1:{port}", *options,
        )  # fmt: skip
        server = await self.group.start(_hold, args, self.root / f"node{index}.log", self.env)
        self._nodes[index] = server
        return server

    async def start_gateway(self, *options: str, with_nodes: bool = True) -> Server:
        """Start the gateway (``options`` are more flags, say --log-format json)."""
        node_flags: list[str] = []
        if with_nodes:
            for node in self.nodes[: self.size]:
                node_flags += ["--node", node.url]
        args = (
            "gateway", "--data-dir", self.gateway_dir, "--listen", "127.0.0.1:0",
            *node_flags, *options,
        )  # fmt: skip
        self.gateway = await self.group.start(_hold, args, self.root / "gateway.log", self.env)
        return self.gateway

    def url(self, bucket: str, key: str | None = None) -> yarl.URL:
        """The object's URL, the key percent-encoded whole (``/`` too)."""
        path = f"/{bucket}" if key is None else f"/{bucket}/{urllib.parse.quote(key, safe='')}"
        return yarl.URL(self.gw.url + path, encoded=True)


@asynccontextmanager
async def running_service(
    root: Path,
    *gateway_options: str,
    nodes: int = NODES,
    spares: int = 0,
    node_options: Sequence[str] = (),
    env: Mapping[str, str] = MappingProxyType({}),
) -> AsyncIterator[Service]:
    """``nodes`` node processes (each with ``node_options``) and a gateway process over
    them, and ``spares`` more node processes outside the cluster
    (``service.nodes[nodes:]``), all under ``root``, stopped at the end."""
    async with contextlib.AsyncExitStack() as stack:
        group = await stack.enter_async_context(anyio.create_task_group())
        stack.callback(group.cancel_scope.cancel)  # runs first: stops every process
        cluster = Service(root, group, size=nodes, env=env)
        async with anyio.create_task_group() as starting:
            for index in range(nodes + spares):
                starting.start_soon(cluster.start_node, index, 0, *node_options)
        await cluster.start_gateway(*gateway_options)
        yield cluster
