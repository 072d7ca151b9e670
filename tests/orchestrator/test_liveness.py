"""Node liveness: the pure state machine (against a model, with Hypothesis), the probe
loop over fake clients (a hung one, a wrong one), and ObservedClient, the wrapper every
node call goes through."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from typing import Any

import anyio
import pytest
from hypothesis import given
from hypothesis import strategies as st

from s3lite.errors import DiskFull, NodeUnavailable, PartNotFound
from s3lite.metrics import GatewayMetrics
from s3lite.orchestrator.liveness import (
    CallFailed,
    DiskFullSeen,
    Liveness,
    NodeStatus,
    ProbeAnswered,
    ProbeFailed,
    probe_all,
    transition,
)
from s3lite.orchestrator.observed import ObservedClient
from s3lite.transport.base import NodeHealth
from tests.clock import Clock

NODES = ("a", "b", "c")


def health(node_id: str, *, full: bool = False) -> NodeHealth:
    return NodeHealth(node_id, 3, 300, free_bytes=1 << 30, full=full, quarantined=0, replaced=False)


events = st.one_of(
    st.builds(CallFailed, st.sampled_from(["refused", "timed out"])),
    st.builds(ProbeFailed, st.sampled_from(["timed out", "reset"])),
    st.builds(DiskFullSeen, st.just("no space")),
    st.builds(ProbeAnswered, st.builds(health, st.just("a"), full=st.booleans())),
)


@given(st.lists(st.tuples(st.sampled_from(NODES), events, st.floats(0, 100)), max_size=40))
def test_liveness_follows_its_table(steps: list[tuple[str, Any, float]]) -> None:
    """Against a model: failures mark down at once, only an answered probe brings a node
    back, DiskFull marks full and an answer says whether it still is; ``since`` moves
    only when up/down flips; listeners hear each change once and nothing else."""
    clock = Clock()
    liveness = Liveness(clock)
    heard: list[tuple[NodeStatus, NodeStatus]] = []
    liveness.listeners.append(lambda before, after: heard.append((before, after)))
    model = {node: {"up": True, "full": False, "since": clock.now} for node in NODES}
    for node in NODES:
        liveness.track(node)
    for node, event, delay in steps:
        clock.now += delay
        before = liveness.state(node)
        heard.clear()
        if isinstance(event, CallFailed):
            liveness.call_failed(node, event.reason)
        elif isinstance(event, ProbeFailed):
            liveness.probe_failed(node, event.reason)
        elif isinstance(event, DiskFullSeen):
            liveness.disk_full(node, event.reason)
        else:
            liveness.answered(node, event.health)
        expected = model[node]
        up = {CallFailed: False, ProbeFailed: False, ProbeAnswered: True}.get(
            type(event), expected["up"]
        )
        if up != expected["up"]:
            expected["since"] = clock.now
        expected["up"] = up
        if isinstance(event, DiskFullSeen):
            expected["full"] = True
        elif isinstance(event, ProbeAnswered):
            expected["full"] = event.health.full
        after = liveness.state(node)
        assert (after.up, after.full, after.since) == (
            expected["up"],
            expected["full"],
            expected["since"],
        )
        assert liveness.is_up(node) == after.up
        assert liveness.is_writable(node) == (after.up and not after.full)
        assert (after.reason == "") == after.up
        changed = (before.up, before.full, before.reason) != (after.up, after.full, after.reason)
        assert heard == ([(before, after)] if changed else [])
        for other in NODES:
            if other != node:
                assert liveness.state(other).up == model[other]["up"]


@given(st.lists(events, max_size=20), events)
def test_transition_is_pure_and_total(history: list[Any], last: Any) -> None:
    status = NodeStatus("a", since=5.0)
    for event in history:
        status = transition(status, event, 7.0)
    again = transition(status, last, 9.0)
    assert again == transition(status, last, 9.0)
    assert again.node_id == "a"


def test_first_reason_kept_until_the_node_answers() -> None:
    clock = Clock()
    liveness = Liveness(clock)
    liveness.track("a")
    liveness.call_failed("a", "connection refused")
    down_at = clock.now
    clock.now += 10
    liveness.probe_failed("a", "timed out")
    state = liveness.state("a")
    assert (state.up, state.reason, state.since) == (False, "connection refused", down_at)
    clock.now += 5
    liveness.answered("a", health("a"))
    state = liveness.state("a")
    assert (state.up, state.reason, state.since, state.checked) == (True, "", clock.now, clock.now)


def test_untracked_nodes_are_not_up_and_events_about_them_are_ignored() -> None:
    liveness = Liveness()
    liveness.call_failed("ghost", "gone")
    assert not liveness.is_up("ghost")
    assert not liveness.is_writable("ghost")
    with pytest.raises(KeyError):
        liveness.state("ghost")
    liveness.track("a")
    liveness.forget("a")
    assert list(liveness) == []


def test_up_count() -> None:
    liveness = Liveness()
    for node in NODES:
        liveness.track(node)
    liveness.call_failed("b", "refused")
    assert liveness.up_count() == 2
    assert liveness.up_count(["b", "c"]) == 1


# -- probes ----------------------------------------------------------------------------------


class FakeNode:
    """Answers health() as told: with an id, by raising, or never (hung)."""

    def __init__(self, answer: str | Exception | None) -> None:
        self.answer = answer
        self.address = "fake://node"

    async def health(self) -> NodeHealth:
        if self.answer is None:
            await anyio.sleep_forever()
        if isinstance(self.answer, Exception):
            raise self.answer
        assert isinstance(self.answer, str)
        return health(self.answer)


@pytest.mark.anyio
async def test_probes_mark_hung_refusing_and_impostor_nodes_down_and_answering_ones_up() -> None:
    liveness = Liveness()
    clients: Mapping[str, Any] = {
        "hung": FakeNode(None),
        "refused": FakeNode(NodeUnavailable("http://x", "connection refused")),
        "impostor": FakeNode("someone-else"),
        "fine": FakeNode("fine"),
    }
    for node in clients:
        liveness.track(node)
    liveness.call_failed("fine", "it failed once")
    with anyio.fail_after(5):
        await probe_all(liveness, clients, 0.05)
    assert {s.node_id: s.up for s in liveness} == {
        "hung": False,
        "refused": False,
        "impostor": False,
        "fine": True,
    }
    assert liveness.state("hung").reason.startswith("timed out")
    assert liveness.state("refused").reason == "connection refused"
    assert "someone-else" in liveness.state("impostor").reason
    assert liveness.state("fine").health == health("fine")


# -- the observed client ---------------------------------------------------------------------


class Stream:
    def __init__(self, chunks: list[bytes | Exception]) -> None:
        self._chunks = chunks
        self.closed = False

    def __aiter__(self) -> Stream:
        return self

    async def __anext__(self) -> bytes:
        if not self._chunks:
            raise StopAsyncIteration
        chunk = self._chunks.pop(0)
        if isinstance(chunk, Exception):
            raise chunk
        return chunk

    async def aclose(self) -> None:
        self.closed = True


class Scripted:
    """A node client whose methods do what the test says."""

    address = "http://node-a"

    def __init__(self) -> None:
        self.error: Exception | None = None
        self.stream_chunks: list[bytes | Exception] = []
        self.received = b""

    async def usage(self) -> dict[int, int]:
        if self.error:
            raise self.error
        return {1: 10}

    async def get_part(self, sector: int, name: str, start: Any = None, end: Any = None) -> Stream:
        if self.error:
            raise self.error
        return Stream(list(self.stream_chunks))

    async def put_part(
        self, sector: int, name: str, body: AsyncIterator[bytes], length: int | None = None
    ) -> None:
        async for chunk in body:
            self.received += chunk
        if self.error:
            raise self.error


def observed() -> tuple[ObservedClient, Scripted, Liveness, GatewayMetrics]:
    liveness = Liveness()
    liveness.track("a")
    metrics = GatewayMetrics()
    inner = Scripted()
    return ObservedClient(inner, "a", liveness, metrics.nodes), inner, liveness, metrics  # type: ignore[arg-type]


def value(metrics: GatewayMetrics, name: str, **labels: str) -> float:
    found = metrics.registry.get_sample_value(name, labels)
    return 0.0 if found is None else found


@pytest.mark.anyio
async def test_a_failed_call_marks_the_node_down_and_is_counted() -> None:
    client, inner, liveness, metrics = observed()
    assert await client.usage() == {1: 10}
    assert liveness.is_up("a")
    inner.error = NodeUnavailable(inner.address, "connection refused")
    with pytest.raises(NodeUnavailable):
        await client.usage()
    assert not liveness.is_up("a")
    assert liveness.state("a").reason == "connection refused"
    assert value(metrics, "s3lite_node_calls_total", node="a", method="usage") == 2
    errors = value(
        metrics, "s3lite_node_call_errors_total", node="a", method="usage", error="NodeUnavailable"
    )
    assert errors == 1
    assert value(metrics, "s3lite_node_call_duration_seconds_count", node="a", method="usage") == 2


@pytest.mark.anyio
async def test_errors_that_say_nothing_about_liveness_change_nothing() -> None:
    client, inner, liveness, metrics = observed()
    inner.error = PartNotFound("a", 1, "x-0-0")
    with pytest.raises(PartNotFound):
        await client.get_part(1, "x-0-0")
    assert liveness.is_up("a")
    # Another node's failure, re-raised through this node's call (an import relaying
    # a donor's export), is not held against this one.
    inner.error = NodeUnavailable("http://the-donor", "stream broke")
    with pytest.raises(NodeUnavailable):
        await client.usage()
    assert liveness.is_up("a")
    assert value(metrics, "s3lite_node_call_errors_total", node="a", method="usage",
                 error="NodeUnavailable") == 1  # fmt: skip


@pytest.mark.anyio
async def test_disk_full_marks_the_node_full_but_up() -> None:
    client, inner, liveness, _ = observed()
    inner.error = DiskFull("no space left")

    async def body() -> AsyncIterator[bytes]:
        yield b"abc"

    with pytest.raises(DiskFull):
        await client.put_part(1, "x-0-0", body())
    assert liveness.is_up("a")
    assert not liveness.is_writable("a")


@pytest.mark.anyio
async def test_streams_count_bytes_and_a_broken_stream_marks_the_node_down() -> None:
    client, inner, liveness, metrics = observed()
    inner.stream_chunks = [b"12345", b"678"]
    stream = await client.get_part(1, "x-0-0")
    assert [chunk async for chunk in stream] == [b"12345", b"678"]
    assert value(metrics, "s3lite_node_received_bytes_total", node="a") == 8

    async def body() -> AsyncIterator[bytes]:
        yield b"abcd"

    await client.put_part(1, "x-0-0", body())
    assert inner.received == b"abcd"
    assert value(metrics, "s3lite_node_sent_bytes_total", node="a") == 4

    inner.stream_chunks = [b"12", NodeUnavailable(inner.address, "stream broke")]
    stream = await client.get_part(1, "x-0-0")
    assert await stream.__anext__() == b"12"
    assert liveness.is_up("a")
    with pytest.raises(NodeUnavailable):
        await stream.__anext__()
    assert not liveness.is_up("a")
    await stream.aclose()
