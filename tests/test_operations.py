"""Operating s3lite as processes: node liveness with real node processes (killed,
stopped with SIGSTOP, restarted), a gateway process's status, health checks, metrics
and JSON logs through node failures (and no secret in them), the CLI's output into a
closed pipe and ``status --watch``, and ``s3lite join`` drawing its progress bar in a
pseudo-terminal.

Nothing waits by sleeping: ``s3lite status`` probes every node before it answers, so
after a kill or a SIGSTOP the next status shows it; every wait is bounded.
"""

from __future__ import annotations

import io
import json
import os
import pty
import re
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import aiohttp
import anyio
import pytest

from s3lite.cluster import Cluster
from s3lite.transport.http import HttpTransport
from tests.processes import NODES, Server, Service, running, running_service
from tests.s3sign import ROOT_ENV, ROOT_SECRET, SignedSession

pytestmark = pytest.mark.anyio

MiB = 1 << 20
TEST_TIMEOUT = 150.0
CLI = [sys.executable, "-m", "s3lite"]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"  # the HTTP transport is asyncio-only


# -- liveness against real node processes ----------------------------------------------------


def _node(root: Path, index: int, port: int = 0) -> Any:
    return running(
        "node", "--data-dir", root / f"n{index}", "--listen", f"127.0.0.1:{port}",
        log=root / f"n{index}.log",
    )  # fmt: skip


async def test_a_killed_stopped_or_restarted_node_is_seen_down_and_back_up(
    tmp_path: Path,
) -> None:
    with anyio.fail_after(TEST_TIMEOUT):
        async with anyio.create_task_group() as group:
            servers: dict[int, Server] = {}

            async def hold(index: int, port: int = 0, *, task_status: Any) -> None:
                async with _node(tmp_path, index, port) as server:
                    servers[index] = server
                    task_status.started()
                    await anyio.sleep_forever()

            for index in range(NODES):
                await group.start(hold, index)
            urls = [servers[i].url for i in range(NODES)]
            cluster = Cluster(
                tmp_path / "gw", HttpTransport(), urls, janitor_interval=None,
                probe_interval=None, probe_timeout=1.0, fsync=False,
            )  # fmt: skip
            async with cluster:
                orchestrator = cluster.orchestrator
                ids = {info.address: info.node_id for info in orchestrator.topology.nodes}
                liveness = orchestrator.liveness
                assert all(liveness.is_up(node) for node in ids.values())

                # Killed: the next call fails and marks it down at once, no probe needed.
                killed = servers[1]
                killed_id = ids[killed.url]
                await killed.kill()
                with pytest.raises(Exception, match="unavailable"):
                    await orchestrator.client(killed_id).usage()
                assert not liveness.is_up(killed_id)
                down_since = liveness.state(killed_id).since
                await orchestrator.probe()
                assert liveness.state(killed_id).since == down_since  # still down, same since
                # Restarted on its port over its data: a probe brings it back.
                await group.start(hold, 1, killed.port)
                await orchestrator.probe()
                assert liveness.is_up(killed_id)

                # Stopped: a probe times out (bounded), SIGCONT and the next probe sees it.
                stopped = servers[2]
                stopped_id = ids[stopped.url]
                stopped.process.send_signal(signal.SIGSTOP)
                try:
                    with anyio.fail_after(10):
                        await orchestrator.probe()
                    assert not liveness.is_up(stopped_id)
                    assert liveness.state(stopped_id).reason.startswith("timed out")
                    assert liveness.up_count() == NODES - 1
                finally:
                    stopped.process.send_signal(signal.SIGCONT)
                await orchestrator.probe()
                assert liveness.is_up(stopped_id)
                assert liveness.up_count() == NODES
            group.cancel_scope.cancel()


# -- a gateway process under node failures ---------------------------------------------------


async def cli(*args: str, check: bool = True) -> subprocess.CompletedProcess[bytes]:
    result = await anyio.run_process([*CLI, *args], check=False, env={**os.environ, **ROOT_ENV})
    if check:
        assert result.returncode == 0, result.stderr.decode()
    return result


async def status_text(service: Service) -> str:
    return (await cli("status", "--gateway", service.gw.url)).stdout.decode()


async def get_text(url: str) -> tuple[int, str]:
    async with aiohttp.ClientSession() as session, session.get(url) as response:
        return response.status, await response.text()


def line_of(text: str, node: Server) -> str:
    """The status line of the node at ``node.url`` (the line above its address)."""
    lines = text.splitlines()
    (index,) = [i for i, line in enumerate(lines) if node.url in line]
    return lines[index - 1]


def metric(text: str, name: str, **labels: str) -> float:
    wanted = ",".join(f'{key}="{value}"' for key, value in sorted(labels.items()))
    for line in text.splitlines():
        series, _, value = line.rpartition(" ")
        if series == (f"{name}{{{wanted}}}" if labels else name):
            return float(value)
    raise AssertionError(f"{name}{labels} not in the metrics")


async def test_a_gateway_process_reports_node_failures_everywhere(
    tmp_path: Path, http: SignedSession
) -> None:
    with anyio.fail_after(TEST_TIMEOUT):
        async with running_service(
            tmp_path, "--log-format", "json", "--metrics-listen", "127.0.0.1:0"
        ) as service:
            gateway = service.gw.url
            found = re.search(rb"metrics: (http://\S+)/metrics", service.gw.banner)
            assert found is not None, service.gw.banner
            metrics_url = found[1].decode()
            async with http.put(f"{gateway}/ops") as response:
                assert response.status == 200
            async with http.put(f"{gateway}/ops/object", data=io.BytesIO(os.urandom(MiB))) as r:
                assert r.status == 200
            async with http.get(f"{gateway}/ops/missing") as response:
                assert response.status == 404
                request_id = response.headers["x-amz-request-id"]
            async with http.post(f"{gateway}/_admin/keys", json={"name": "ops"}) as response:
                key_secret = (await response.json())["secret"]

            assert await get_text(f"{gateway}/health/ready") == (200, "ok: 6 of 6 nodes up\n")
            assert (await get_text(f"{metrics_url}/health/live"))[0] == 200
            _, text = await get_text(f"{metrics_url}/metrics")
            assert metric(text, "s3lite_requests_total", operation="PutObject", status="200") == 1
            assert metric(text, "s3lite_nodes_up") == NODES
            node = service.nodes[0]
            assert await get_text(f"{node.url}/health/ready") == (200, "ok: " + await _id(node))
            _, node_metrics = await get_text(f"{node.url}/metrics")
            assert metric(node_metrics, "s3lite_storage_parts") == 1
            assert metric(node_metrics, "s3lite_node_http_requests_total", route="put_part",
                          status="200") == 1  # fmt: skip

            # A node killed: status shows it down since now, readiness flips, metrics too.
            victim = service.nodes[3]
            await victim.kill()
            text = await status_text(service)
            assert "5 of 6 nodes up" in text
            assert "down since" in line_of(text, victim)
            status, why = await get_text(f"{gateway}/health/ready")
            assert (status, why) == (
                503,
                "not ready: 5 of 6 nodes up, 6 needed to read and write\n",
            )
            _, text = await get_text(f"{metrics_url}/metrics")
            assert metric(text, "s3lite_nodes_up") == NODES - 1
            # ... and back.
            await service.start_node(3, port=victim.port)
            assert "up" in line_of(await status_text(service), victim).split()
            assert (await get_text(f"{gateway}/health/ready"))[0] == 200

            # A node stopped (SIGSTOP): the status's probe times out, bounded; SIGCONT.
            stopped = service.nodes[4]
            stopped.process.send_signal(signal.SIGSTOP)
            try:
                text = await status_text(service)
            finally:
                stopped.process.send_signal(signal.SIGCONT)
            assert "down since" in line_of(text, stopped)
            assert "timed out" in text
            assert "down" not in line_of(await status_text(service), stopped)
            _, text = await get_text(f"{metrics_url}/metrics")
            downs = [
                float(line.rpartition(" ")[2])
                for line in text.splitlines()
                if line.startswith("s3lite_node_transitions_total") and 'to="down"' in line
            ]
            assert sum(downs) == 2

            await _cli_output_behaviour(service)
            assert await service.gw.stop() == 0

        log = service.root / "gateway.log"
        entries = [json.loads(line) for line in log.read_text().splitlines()]
        (line,) = [e for e in entries if e.get("request_id") == request_id]
        assert (line["status"], line["operation"], line["path"]) == (
            404,
            "GetObject",
            "/ops/missing",
        )
        assert {"time", "level", "logger", "message", "access_key", "bytes_in", "bytes_out",
                "duration_ms", "method"} <= set(line)  # fmt: skip
        messages = [e["message"] for e in entries]
        assert sum(1 for m in messages if m.endswith(" is down")) == 2
        assert sum(1 for m in messages if m.endswith(" is up again")) == 2
        assert not [e for e in entries if "exception" in e]
        everything = log.read_text() + "".join(
            path.read_text() for path in service.root.glob("*.log")
        )
        assert ROOT_SECRET not in everything
        assert key_secret not in everything


async def _id(node: Server) -> str:
    async with aiohttp.ClientSession() as session, session.get(f"{node.url}/v1/health") as r:
        return f"node {(await r.json())['node_id']}\n"


async def _cli_output_behaviour(service: Service) -> None:
    """``status`` into a pipe closed before it writes ends quietly; ``status --watch``
    redraws until SIGINT and then exits 0."""
    read_end, write_end = os.pipe()
    os.close(read_end)  # nobody will read: the first write gets EPIPE
    try:
        process = await anyio.open_process(
            [*CLI, "status", "--gateway", service.gw.url],
            stdout=write_end, stderr=subprocess.PIPE, env={**os.environ, **ROOT_ENV},
        )  # fmt: skip
    finally:
        os.close(write_end)
    async with process:
        assert process.stderr is not None
        errors = b"".join([chunk async for chunk in process.stderr])
        assert await process.wait() == 0
    assert b"Traceback" not in errors
    assert b"BrokenPipe" not in errors

    watch = await anyio.open_process(
        [*CLI, "status", "--watch", "--interval", "0.2", "--gateway", service.gw.url],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, env={**os.environ, **ROOT_ENV},
    )  # fmt: skip
    async with watch:
        assert watch.stdout is not None
        assert watch.stderr is not None
        seen = b""
        while seen.count(b"Ctrl-C to stop") < 3:
            seen += await watch.stdout.receive()
        watch.send_signal(signal.SIGINT)
        errors = b"".join([chunk async for chunk in watch.stderr])
        assert await watch.wait() == 0
    assert b"Traceback" not in errors
    assert b"\x1b" not in seen  # not a terminal: no screen control
    assert seen.count(b"nodes up") >= 3


# -- s3lite join in a terminal ----------------------------------------------------------------


def run_in_pty(command: list[str], log: Path) -> tuple[int, bytes]:
    """Run ``command`` with its stdout on a pseudo-terminal; (exit code, what it drew)."""
    master, slave = pty.openpty()
    with open(log, "wb") as errors:
        process = subprocess.Popen(
            command, stdin=subprocess.DEVNULL, stdout=slave, stderr=errors,
            env={**os.environ, **ROOT_ENV},
        )  # fmt: skip
    os.close(slave)
    drawn = b""
    try:
        while True:
            try:
                data = os.read(master, 65536)
            except OSError:  # EIO: the other side closed
                break
            if not data:
                break
            drawn += data
    finally:
        os.close(master)
    return process.wait(timeout=60), drawn


async def test_join_draws_a_progress_bar_to_100_percent_in_a_terminal(
    tmp_path: Path, http: SignedSession
) -> None:
    with anyio.fail_after(TEST_TIMEOUT):
        async with running_service(tmp_path, "--metrics-listen", "127.0.0.1:0") as service:
            gateway = service.gw.url
            async with http.put(f"{gateway}/joins") as response:
                assert response.status == 200
            for n in range(12):
                body = io.BytesIO(os.urandom(2 * MiB))
                async with http.put(f"{gateway}/joins/o{n}", data=body) as response:
                    assert response.status == 200
            new_node = await service.start_node(NODES)
            command = [*CLI, "join", "--gateway", gateway, "--node", new_node.url]
            code, drawn = await anyio.to_thread.run_sync(run_in_pty, command, tmp_path / "join.err")
            assert code == 0, (tmp_path / "join.err").read_text()
            text = drawn.decode()
            assert "\r[" + "#" * 30 + "]  100%" in text
            assert re.search(r"(\d+)/\1 sectors", text), text
            for step in ("plan:", "copy:", "switch:", "drop:"):
                assert step in text, text
            assert text.rstrip().endswith("joined; its sectors have moved")

            found = re.search(rb"metrics: (http://\S+)/metrics", service.gw.banner)
            assert found is not None
            _, metrics = await get_text(f"{found[1].decode()}/metrics")
            assert metric(metrics, "s3lite_joins_total", outcome="done") == 1
            relayed = sum(
                float(line.rpartition(" ")[2])
                for line in metrics.splitlines()
                if line.startswith("s3lite_migration_relayed_bytes_total")
            )
            assert relayed > 0
            assert metric(metrics, "s3lite_ring_generation") >= 3
