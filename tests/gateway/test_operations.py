"""Operating the gateway in-process: health checks, metrics that move with requests,
node failures and joins, the request log line and its request id, join progress
streamed as NDJSON, and clients or nodes that go away mid-response (one log line,
never a traceback)."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import aiohttp
import anyio
import pytest
from prometheus_client.parser import text_string_to_metric_families

from s3lite import LocalCluster
from s3lite.errors import NodeUnavailable
from s3lite.gateway.ops import OpsApp
from s3lite.logs import fields_of
from s3lite.service import bind, serve, url_of
from s3lite.storager import StorageNode
from s3lite.transport.base import ByteStream
from tests.gateway.harness import TIMEOUT, Gateway, error_of, payload, serving
from tests.s3sign import ROOT_ACCESS, ROOT_SECRET, sign_raw

pytestmark = pytest.mark.anyio

MiB = 1 << 20


def sample(cluster: LocalCluster, name: str, **labels: str) -> float:
    value = cluster.metrics.registry.get_sample_value(name, labels)
    return 0.0 if value is None else value


async def unsigned(gateway: Gateway, method: str, path: str) -> tuple[int, str]:
    async with (
        aiohttp.ClientSession() as session,
        session.request(method, gateway.url + path) as response,
    ):
        return response.status, await response.text()


async def take_down(cluster: LocalCluster, node_id: str) -> StorageNode:
    node = cluster.nodes[node_id]
    cluster.transport.unregister(node.address)
    await cluster.orchestrator.probe()
    return node


async def bring_back(cluster: LocalCluster, node: StorageNode) -> None:
    cluster.transport.register(node)
    await cluster.orchestrator.probe()


# -- health ------------------------------------------------------------------------------


async def test_health_checks_need_no_key_and_flip_when_nodes_stop(gateway: Gateway) -> None:
    cluster = gateway.cluster
    assert await unsigned(gateway, "GET", "/health/live") == (200, "ok: alive\n")
    status, text = await unsigned(gateway, "GET", "/health/ready")
    assert (status, text) == (200, "ok: 6 of 6 nodes up\n")
    assert (await unsigned(gateway, "HEAD", "/health/ready"))[0] == 200
    assert (await unsigned(gateway, "POST", "/health/ready"))[0] == 405

    stopped = await take_down(cluster, "node-3")
    status, text = await unsigned(gateway, "GET", "/health/ready")
    assert status == 503
    assert "5 of 6 nodes up" in text
    assert (await unsigned(gateway, "GET", "/health/live"))[0] == 200
    await bring_back(cluster, stopped)
    assert (await unsigned(gateway, "GET", "/health/ready"))[0] == 200


async def test_a_signed_request_to_health_paths_is_an_s3_request(gateway: Gateway) -> None:
    """A bucket may be called "health": signed requests reach it as S3 requests."""
    status, _, body = await gateway.request("GET", "/health/live")
    assert status == 404
    assert error_of(body)["Code"] == "NoSuchBucket"
    assert (await gateway.request("PUT", "/health"))[0] == 200
    assert (await gateway.request("PUT", "/health/ready", data=b"mine"))[0] == 200
    assert (await gateway.request("GET", "/health/ready"))[2] == b"mine"
    assert await unsigned(gateway, "GET", "/health/ready") == (200, "ok: 6 of 6 nodes up\n")


# -- metrics -----------------------------------------------------------------------------


async def test_metrics_move_with_requests_failures_and_joins(gateway: Gateway) -> None:
    cluster = gateway.cluster
    assert (await gateway.request("PUT", "/metered"))[0] == 200
    data = payload(300_000)
    for n in range(3):
        assert (await gateway.request("PUT", f"/metered/o{n}", data=data))[0] == 200
    assert (await gateway.request("GET", "/metered/o1"))[2] == data
    assert (await gateway.request("GET", "/metered/missing"))[0] == 404
    await gateway.idle()
    assert sample(cluster, "s3lite_requests_total", operation="PutObject", status="200") == 3
    assert sample(cluster, "s3lite_requests_total", operation="GetObject", status="404") == 1
    assert sample(cluster, "s3lite_received_bytes_total", operation="PutObject") == 3 * len(data)
    assert sample(cluster, "s3lite_sent_bytes_total", operation="GetObject") >= len(data)
    count = sample(cluster, "s3lite_request_duration_seconds_count", operation="PutObject")
    assert count == 3
    assert sample(cluster, "s3lite_node_calls_total", node="node-1", method="put_part") == 3
    assert sample(cluster, "s3lite_node_sent_bytes_total", node="node-1") > 0
    await cluster.orchestrator.probe()
    assert sample(cluster, "s3lite_node_up", node="node-2") == 1
    assert sample(cluster, "s3lite_node_stored_parts", node="node-2") == 3
    assert sample(cluster, "s3lite_nodes_up") == 6

    # A node that stops: the next call to it fails, it is down at once, counted.
    node = cluster.nodes["node-2"]
    cluster.transport.unregister(node.address)
    status, _, body = await gateway.request("GET", "/metered/o1")
    assert status == 503, body
    assert sample(cluster, "s3lite_node_up", node="node-2") == 0
    assert sample(cluster, "s3lite_node_transitions_total", node="node-2", to="down") == 1
    errors = sample(cluster, "s3lite_node_call_errors_total", node="node-2", method="get_part",
                    error="NodeUnavailable")  # fmt: skip
    assert errors == 1
    assert sample(cluster, "s3lite_nodes_up") == 5
    await bring_back(cluster, node)
    assert sample(cluster, "s3lite_node_up", node="node-2") == 1
    assert sample(cluster, "s3lite_node_transitions_total", node="node-2", to="up") == 1

    # A join: the ring's generation, the bytes relayed, the new node's sectors.
    generation = sample(cluster, "s3lite_ring_generation")
    new_node = await cluster.add_node()
    assert sample(cluster, "s3lite_ring_generation") > generation
    assert sample(cluster, "s3lite_joins_total", outcome="done") == 1
    relayed = sum(
        sample(cluster, "s3lite_migration_relayed_bytes_total", donor=f"node-{n}")
        for n in range(1, 7)
    )
    assert relayed > 0
    assert sample(cluster, "s3lite_node_sectors", node=new_node) > 0
    assert sample(cluster, "s3lite_migration_active") == 0
    assert cluster.orchestrator.progress is not None
    snapshot = cluster.orchestrator.progress.snapshot()
    assert snapshot["finished"]
    assert snapshot["items_done"] == snapshot["items_total"] > 0
    assert snapshot["bytes_done"] == snapshot["bytes_total"]
    assert snapshot["fraction"] == 1.0


async def test_the_metrics_listener_serves_the_text_format(cluster: LocalCluster) -> None:
    sock = bind("127.0.0.1", 0)
    app = OpsApp(cluster.orchestrator, cluster.metrics)
    async with serving(cluster) as gateway:
        assert (await gateway.request("PUT", "/listener"))[0] == 200
        async with anyio.create_task_group() as group:
            group.start_soon(serve, app, sock)
            url = url_of(sock)
            async with aiohttp.ClientSession() as session:
                async with session.get(url + "/metrics") as response:
                    assert response.status == 200
                    assert response.headers["content-type"].startswith("text/plain")
                    text = await response.text()
                async with session.get(url + "/health/ready") as response:
                    assert response.status == 200
                async with session.get(url + "/anything") as response:
                    assert response.status == 404
            group.cancel_scope.cancel()
    sock.close()
    families = {family.name: family for family in text_string_to_metric_families(text)}
    requests = families["s3lite_requests"]
    assert any(s.labels == {"operation": "CreateBucket", "status": "200"} for s in requests.samples)
    assert {s.labels["node"] for s in families["s3lite_node_up"].samples} == {
        f"node-{n}" for n in range(1, 7)
    }


# -- logs --------------------------------------------------------------------------------


async def test_the_log_line_carries_the_request_id_of_the_error_body(
    gateway: Gateway, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    status, headers, body = await gateway.request("GET", "/nowhere/key")
    assert status == 404
    request_id = headers["x-amz-request-id"]
    assert error_of(body)["RequestId"] == request_id
    await gateway.idle()
    (record,) = [r for r in caplog.records if fields_of(r).get("request_id") == request_id]
    assert fields_of(record)["status"] == 404
    assert fields_of(record)["operation"] == "GetObject"
    assert ROOT_SECRET not in caplog.text


async def test_node_state_changes_are_logged_once_each(
    cluster: LocalCluster, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="s3lite.orchestrator")
    node = await take_down(cluster, "node-4")
    await cluster.orchestrator.probe()  # still down: no second line
    await bring_back(cluster, node)
    lines = [r.getMessage() for r in caplog.records if "node node-4" in r.getMessage()]
    assert lines == ["node node-4 is down", "node node-4 is up again"]


# -- join progress -----------------------------------------------------------------------


async def test_a_streamed_join_sends_steps_progress_and_the_result(gateway: Gateway) -> None:
    cluster = gateway.cluster
    assert (await gateway.request("PUT", "/joining"))[0] == 200
    for n in range(4):
        assert (await gateway.request("PUT", f"/joining/o{n}", data=payload(200_000, n)))[0] == 200
    node = await StorageNode.open(cluster.root / "nodes" / "node-7", "node-7", fsync=False)
    cluster.transport.register(node)
    try:
        with anyio.fail_after(TIMEOUT):
            async with gateway.session.post(
                gateway.at("/_admin/join"),
                json={"node": node.address},
                headers={"accept": "application/x-ndjson"},
            ) as response:
                assert response.status == 200
                assert response.headers["content-type"] == "application/x-ndjson"
                events = [json.loads(line) async for line in response.content]
        steps = [e["step"] for e in events if e["event"] == "step"]
        assert steps == ["plan", "drain", "re-home", "copy", "switch", "drain", "reconcile", "drop"]
        assert events[-1] == {"event": "done", "result": {"node_id": "node-7"}}
        last = [e["progress"] for e in events if "progress" in e][-1]
        assert last["items_done"] == last["items_total"] > 0
        assert last["bytes_done"] == last["bytes_total"] > 0

        # A refused join ends the stream with an error event.
        async with gateway.session.post(
            gateway.at("/_admin/join"),
            json={"node": node.address},
            headers={"accept": "application/x-ndjson"},
        ) as response:
            events = [json.loads(line) async for line in response.content]
        assert events[-1]["event"] == "error"
        assert events[-1]["error"] == "JoinRefused"
        assert events[-1]["status"] == 400
    finally:
        node.close()


# -- responses cut short -----------------------------------------------------------------


async def test_a_client_that_leaves_mid_response_is_one_info_line(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    async with (
        LocalCluster(tmp_path / "c", stripe_unit=MiB, janitor_interval=None, fsync=False,
                     root_key=(ROOT_ACCESS, ROOT_SECRET), probe_interval=None) as cluster,
        serving(cluster) as gateway,
    ):  # fmt: skip
        assert (await gateway.request("PUT", "/big"))[0] == 200
        data = payload(48 * MiB)
        assert (await gateway.request("PUT", "/big/object", data=io.BytesIO(data)))[0] == 200
        port = int(gateway.url.rsplit(":", 1)[1])
        request = b"GET /big/object HTTP/1.1\r\nHost: x\r\n\r\n"
        async with await anyio.connect_tcp("127.0.0.1", port) as stream:
            await stream.send(sign_raw(gateway.url, request))
            received = b""
            while len(received) < MiB:
                received += await stream.receive()
        await gateway.idle()
    gone = [r for r in caplog.records if fields_of(r).get("outcome") == "client_gone"]
    assert len(gone) == 1
    assert gone[0].levelno == logging.INFO
    assert fields_of(gone[0])["bytes_out"] < len(data)
    assert not [
        r
        for r in caplog.records
        if (r.levelno >= logging.WARNING and not r.getMessage().startswith("target parity"))
        or r.exc_info
    ]  # a six-node cluster warns once at start that it cannot write parity


class BreakingStream:
    """A part stream that sends its first chunk and then loses its node."""

    def __init__(self, inner: ByteStream, address: str) -> None:
        self._inner = inner
        self._address = address
        self._sent = False

    def __aiter__(self) -> BreakingStream:
        return self

    async def __anext__(self) -> bytes:
        if self._sent:
            raise NodeUnavailable(self._address, "stream broke: the node went away")
        self._sent = True
        return await self._inner.__anext__()

    async def aclose(self) -> None:
        await self._inner.aclose()


class BreakingNode:
    """Serves ``node``'s address; its part streams break after their first chunk."""

    def __init__(self, node: StorageNode) -> None:
        self._node = node

    def __getattr__(self, name: str) -> Any:
        return getattr(self._node, name)

    async def get_part(
        self, sector: int, name: str, start: int | None = None, end: int | None = None
    ) -> ByteStream:
        stream = await self._node.get_part(sector, name, start, end)
        return BreakingStream(stream, self._node.address)

    async def usage(self) -> Mapping[int, int]:
        return await self._node.usage()


async def test_a_node_lost_mid_response_is_one_warning_without_traceback(
    gateway: Gateway, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    cluster = gateway.cluster
    assert (await gateway.request("PUT", "/broken"))[0] == 200
    data = payload(2 * MiB)
    assert (await gateway.request("PUT", "/broken/object", data=io.BytesIO(data)))[0] == 200
    node = cluster.nodes["node-5"]
    cluster.transport.register(BreakingNode(node), node.address)  # type: ignore[arg-type]
    caplog.clear()
    with anyio.fail_after(TIMEOUT):
        async with gateway.session.get(gateway.at("/broken/object")) as response:
            assert response.status == 200
            with pytest.raises(aiohttp.ClientPayloadError):
                await response.read()
    await gateway.idle()
    problems = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert [r.getMessage() for r in problems if r.name == "s3lite.asgi"] == [
        "GET /broken/object: response broken off"
    ]
    assert "PartsUnavailable" in fields_of(problems[-1])["error"]  # no parity on 6 nodes
    assert not [r for r in caplog.records if r.exc_info]
    assert not [r for r in caplog.records if r.name.startswith("uvicorn")]
    (line,) = [r for r in caplog.records if fields_of(r).get("path") == "/broken/object"]
    assert fields_of(line)["outcome"] == "broken"
    assert cluster.orchestrator.liveness.state("node-5").up is False


# -- heal passes -------------------------------------------------------------------------


async def test_a_streamed_heal_pass_rebuilds_and_status_shows_the_healer(tmp_path: Path) -> None:
    async with (
        LocalCluster(tmp_path / "c", nodes=8, stripe_unit=4096, janitor_interval=None,
                     fsync=False, root_key=(ROOT_ACCESS, ROOT_SECRET), probe_interval=None,
                     heal_rate=None) as cluster,
        serving(cluster) as gateway,
    ):  # fmt: skip
        assert (await gateway.request("PUT", "/healing"))[0] == 200
        for n in range(3):
            data = payload(50_000, n)
            assert (await gateway.request("PUT", f"/healing/o{n}", data=data))[0] == 200
        manifest = await cluster.receiver.manifests.get("healing/o1")
        assert manifest is not None
        segment = manifest.segments[0]
        part = segment.parts[7]
        node = cluster.nodes[cluster.orchestrator.ring.owner(part.sector)]
        assert await node.delete_parts(part.sector, [f"{segment.upload_id}-0-7"]) == 1

        with anyio.fail_after(TIMEOUT):
            async with gateway.session.post(
                gateway.at("/_admin/heal"), json={}, headers={"accept": "application/x-ndjson"}
            ) as response:
                assert response.status == 200
                events = [json.loads(line) async for line in response.content]
        assert [e["step"] for e in events if e["event"] == "step"] == ["queue", "scan"]
        result = events[-1]["result"]
        assert (result["segments"], result["repaired"], result["rebuilt_parts"]) == (3, 1, 1)
        assert result["rebuilt_bytes"] == part.length

        status = await gateway.status()
        heal = status["heal"]
        assert heal["rebuilt_parts"] == 1
        assert heal["rebuilt_bytes"] == part.length
        assert (heal["degraded_segments"], heal["heal_queue"]) == (0, 0)
        assert status["progress"]["heal"]["finished"] is True
        assert sample(cluster, "s3lite_rebuilt_bytes_total") == part.length
        assert sample(cluster, "s3lite_heal_actions_total", action="rebuild", outcome="done") == 1

        # limited to a node: only its parts are checked; an unknown node changes nothing
        status_code, _, body = await gateway.request(
            "POST", "/_admin/heal", json={"node": "node-3"}
        )
        assert status_code == 200
        assert json.loads(body)["rebuilt_parts"] == 0
        status_code, _, body = await gateway.request(
            "POST", "/_admin/heal", json={"node": "node-99"}
        )
        assert status_code == 400
        assert "node-99" in json.loads(body)["message"]
