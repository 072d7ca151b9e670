"""The part sender on a six-node LocalCluster: a node failing mid-stream costs only its
own part (and keeps nothing of it), an abandoned write leaves nothing on any node, and
a joining node's failure is noted for a re-copy instead of failing the part. And the
body it feeds a node: an abandoned one never hands over its last batch."""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator, Sequence
from typing import Any, cast

import anyio
import attrs
import pytest
import xxhash

from s3lite import LocalCluster, NodeUnavailable
from s3lite.orchestrator import RoutingView, part_name
from s3lite.receiver.part_sender import PartSender, PartTarget, UploadAborted, held_back
from s3lite.transport.base import NodeClient, PartStat
from tests.receiver.helpers import stored_part_names

pytestmark = pytest.mark.anyio

BATCH = 1000
BATCHES = 10
UPLOAD = "u" * 32


class CutOff:
    """A node client whose part bodies fail with NodeUnavailable after ``after``
    batches, on the node's side of the call (the node sees its body break)."""

    def __init__(self, client: NodeClient, node_id: str, after: int) -> None:
        self._client = client
        self._node_id = node_id
        self._after = after

    async def put_part(
        self, sector: int, name: str, body: AsyncIterable[bytes], *, length: int | None = None
    ) -> PartStat:
        return await self._client.put_part(sector, name, self._cut(body), length=length)

    async def _cut(self, body: AsyncIterable[bytes]) -> AsyncIterator[bytes]:
        sent = 0
        async for batch in body:
            if sent == self._after:
                raise NodeUnavailable(self._node_id, "cut off mid-stream by the test")
            sent += 1
            yield batch


@attrs.define
class Orchestrating:
    """What the sender asks of the orchestrator: the real clients, one of them cut off,
    and the dual-write failures it is told of."""

    cluster: LocalCluster
    cut_off: str | None = None
    dual_write_failures: list[str] = attrs.field(factory=list)

    def client(self, node_id: str) -> Any:
        client = self.cluster.orchestrator.client(node_id)
        return CutOff(client, node_id, after=3) if node_id == self.cut_off else client

    def note_dual_write_failure(self, node_id: str, error: BaseException) -> None:
        assert isinstance(error, NodeUnavailable)
        self.dual_write_failures.append(node_id)


def one_sector_per_node(cluster: LocalCluster) -> dict[str, int]:
    ring = cluster.orchestrator.ring
    sectors: dict[str, int] = {}
    for sector in range(360):
        sectors.setdefault(ring.owner(sector), sector)
    return sectors


def sender(
    orchestrating: Orchestrating, view: RoutingView, sectors: list[int], failures: list[int]
) -> PartSender:
    targets = {
        index: PartTarget(sector, part_name(UPLOAD, 0, index), BATCH * BATCHES)
        for index, sector in enumerate(sectors)
    }
    return PartSender(
        cast(Any, orchestrating),
        view,
        targets,
        "abandoned by the test",
        depth=1,
        on_failure=lambda: failures.append(len(failures)),
    )


def batch(index: int, number: int) -> bytes:
    return bytes([index * BATCHES + number]) * BATCH


async def send_all(parts: PartSender, count: int) -> None:
    for number in range(BATCHES):
        for index in range(count):
            await parts.send(index, (batch(index, number),))


async def test_a_node_failing_mid_stream_fails_its_part_alone(cluster: LocalCluster) -> None:
    placed = one_sector_per_node(cluster)
    nodes, sectors = list(placed), list(placed.values())
    orchestrating = Orchestrating(cluster, cut_off=nodes[2])
    failures: list[int] = []
    parts = sender(orchestrating, cluster.orchestrator.view, sectors, failures)

    # depth 1 and ten batches a part: a failed writer that stopped reading would block this
    await parts.run(lambda: send_all(parts, len(sectors)))

    assert failures == [0]
    assert {index: node for index, (node, _) in parts.failed.items()} == {2: nodes[2]}
    assert isinstance(parts.failed[2][1], NodeUnavailable)
    assert parts.stored == {index: BATCH * BATCHES for index in range(6) if index != 2}
    for index in range(6):
        expected = b"".join(batch(index, number) for number in range(BATCHES))
        assert parts.checksum(index) == xxhash.xxh3_64_intdigest(expected)
    assert await stored_part_names(cluster) == {
        (nodes[index], sectors[index], part_name(UPLOAD, 0, index))
        for index in range(6)
        if index != 2
    }


async def test_an_abandoned_write_leaves_nothing_on_any_node(cluster: LocalCluster) -> None:
    sectors = list(one_sector_per_node(cluster).values())
    failures: list[int] = []
    parts = sender(Orchestrating(cluster), cluster.orchestrator.view, sectors, failures)

    async def every_byte_then_fail() -> None:
        await send_all(parts, len(sectors))  # every node could commit, length and all
        raise ValueError("the client went away")

    with pytest.raises(ValueError, match="the client went away"):
        await parts.run(every_byte_then_fail)

    assert (parts.stored, parts.failed, failures) == ({}, {}, [])
    assert await stored_part_names(cluster) == set()


async def test_a_joining_node_failing_is_noted_and_the_part_stands(
    cluster: LocalCluster,
) -> None:
    placed = one_sector_per_node(cluster)
    nodes, sectors = list(placed), list(placed.values())
    ring = cluster.orchestrator.ring
    view = RoutingView(1, ring, ring, {sectors[0]: nodes[1]})  # part 0 also to nodes[1]
    orchestrating = Orchestrating(cluster, cut_off=nodes[1])
    failures: list[int] = []
    parts = sender(orchestrating, view, sectors[:1], failures)

    await parts.run(lambda: send_all(parts, 1))

    assert (parts.stored, parts.failed, failures) == ({0: BATCH * BATCHES}, {}, [])
    assert orchestrating.dual_write_failures == [nodes[1]]
    assert await stored_part_names(cluster) == {(nodes[0], sectors[0], part_name(UPLOAD, 0, 0))}


@pytest.mark.parametrize("abandoned", [False, True])
async def test_a_body_hands_over_its_last_batch_only_if_it_ends_well(abandoned: bool) -> None:
    # a node that knows the part's length (the HTTP transport's) could commit on the
    # last byte, before the abandonment reaches it
    send, receive = anyio.create_memory_object_stream[Sequence[bytes]](3)
    with send:
        for pieces in ((b"a",), (b"b", b"c"), (b"d", b"e")):
            send.send_nowait(pieces)  # a batch comes as its pieces, handed over one by one
    got: list[bytes] = []
    ended: BaseException | None = None
    with receive:
        try:
            async for piece in held_back(receive, lambda: abandoned, "abandoned by the test"):
                got.append(piece)
        except UploadAborted as exc:
            ended = exc
    if abandoned:
        assert (got, str(ended)) == ([b"a", b"b", b"c"], "abandoned by the test")
    else:
        assert (got, ended) == ([b"a", b"b", b"c", b"d", b"e"], None)
