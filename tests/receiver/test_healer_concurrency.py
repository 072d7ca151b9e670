"""The healer heals several segments at once, and only so many: HEAL_CONCURRENCY
segments are verified at the same time (never more) whoever asks (a pass, the queue,
the scrub); two passes started together never heal one segment twice at once and
repair each damaged part once; the scrub's saved position never passes a segment
still being healed; concurrent rebuilds write through one rate limit."""

from __future__ import annotations

import collections
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import anyio
import pytest

from s3lite import LocalCluster
from s3lite.receiver.heal_plan import RateLimit
from s3lite.receiver.healer import HEAL_CONCURRENCY, START, Healed, Healer
from s3lite.receiver.healing import HealReason
from s3lite.storager import StorageNode
from s3lite.transport.base import PartCheck
from tests.receiver.helpers import (
    damage,
    healer_cluster,
    manifest_of,
    part_path,
    put_some,
    read_all,
)

pytestmark = pytest.mark.anyio

Key = tuple[str, int]
Verify = Callable[[int, list[str]], Awaitable[dict[str, PartCheck]]]
PATIENCE = 60.0
"""Seconds a test waits for what must happen before it fails rather than hangs."""


@pytest.fixture
async def cluster(tmp_path: Path) -> AsyncIterator[LocalCluster]:
    async with healer_cluster(tmp_path / "c") as opened:
        yield opened


def segment_of(part: str) -> str:
    """``<upload id>-<segment>`` of a part file's name."""
    return part.rsplit("-", 1)[0]


class VerifyGate:
    """Wraps every node's ``verify_parts``: holds each call until ``want`` distinct
    segments are being verified at the same time (``reached``), then (or when the
    test says, without ``auto_open``) lets every call through (``open``), and keeps
    the most segments ever verified at once."""

    def __init__(self, nodes: dict[str, StorageNode], want: int, *, auto_open: bool = True) -> None:
        self.want = want
        self.auto_open = auto_open
        self.reached = anyio.Event()
        self.open = anyio.Event()
        self.in_flight: collections.Counter[str] = collections.Counter()
        self.peak = 0
        for node in nodes.values():
            node.verify_parts = self._wrap(node.verify_parts)  # type: ignore[method-assign]

    def _wrap(self, verify: Verify) -> Verify:
        async def gated(sector: int, names: list[str]) -> dict[str, PartCheck]:
            segments = {segment_of(name) for name in names}
            self.in_flight.update(segments)
            self.peak = max(self.peak, len(+self.in_flight))
            if len(+self.in_flight) >= self.want:
                self.reached.set()
                if self.auto_open:
                    self.open.set()
            try:
                await self.open.wait()
                return await verify(sector, names)
            finally:
                self.in_flight.subtract(segments)

        return gated


async def queue_everything(cluster: LocalCluster, objects: dict[str, bytes]) -> None:
    for key in objects:
        upload_id = (await manifest_of(cluster, key)).upload_id
        cluster.receiver.heal.report(upload_id, 0, HealReason.NODE_DOWN, "the test")


@pytest.mark.parametrize("caller", ["run_pass", "process_queue", "scrub_step"])
async def test_segments_are_healed_concurrently_and_never_more_than_the_limit(
    cluster: LocalCluster, caller: str
) -> None:
    objects = await put_some(cluster, 2 * HEAL_CONCURRENCY + 1)
    await queue_everything(cluster, objects)
    gate = VerifyGate(cluster.nodes, HEAL_CONCURRENCY)
    healer = cluster.healer
    with anyio.fail_after(PATIENCE):  # fewer at once: the gate never opens
        if caller == "run_pass":
            result = await healer.run_pass()
            assert result["whole"] == result["segments"] == len(objects)
        elif caller == "process_queue":
            assert await healer.process_queue() == {"whole": len(objects)}
        else:
            assert await healer.scrub_step(batch=len(objects) + 1)  # the whole pass
    assert gate.peak == HEAL_CONCURRENCY
    assert not +gate.in_flight
    assert await cluster.receiver.heal.size() == 0


async def test_heals_asked_for_by_many_callers_share_one_limit(cluster: LocalCluster) -> None:
    """2N heals started at once (as by a pass, the queue and the scrub together):
    N are verifying, the other N wait for a slot before they do anything else."""
    objects = await put_some(cluster, 2 * HEAL_CONCURRENCY)
    gate = VerifyGate(cluster.nodes, HEAL_CONCURRENCY, auto_open=False)
    healer = cluster.healer
    uploads = [(await manifest_of(cluster, key)).upload_id for key in objects]
    with anyio.fail_after(PATIENCE):
        async with anyio.create_task_group() as group:
            for upload_id in uploads:
                group.start_soon(healer.heal_segment, upload_id, 0)
            await gate.reached.wait()
            assert healer._slots.statistics().tasks_waiting == HEAL_CONCURRENCY
            assert gate.peak == HEAL_CONCURRENCY
            gate.open.set()
    assert gate.peak == HEAL_CONCURRENCY


class Witness:
    """Wraps a healer to see two passes heal the same segments: each segment's heal
    is *inside* from when its parts are checked until its repair returns; the first
    heal of a segment stays inside until another heal of it is waiting for its turn
    (so without per-segment turns the two would overlap, and with them this cannot
    hang). Keeps the most heals of one segment ever inside at once."""

    def __init__(self, healer: Healer) -> None:
        self.inside: collections.Counter[Key] = collections.Counter()
        self.most = 0
        self.contended: dict[Key, anyio.Event] = collections.defaultdict(anyio.Event)
        turns = healer._turns
        hold, inspect, repair = turns.hold, healer._inspect, healer._repair

        def watched_hold(key: Key) -> Any:
            if turns.users(key):
                self.contended[key].set()
            return hold(key)

        async def watched_inspect(segment: Any, *args: Any) -> Any:
            key = (segment.upload_id, segment.number)
            self.inside[key] += 1
            self.most = max(self.most, self.inside[key])
            await self.contended[key].wait()
            return await inspect(segment, *args)

        async def watched_repair(segment: Any, *args: Any) -> Healed:
            key = (segment.upload_id, segment.number)
            try:
                return await repair(segment, *args)
            finally:
                self.inside[key] -= 1

        turns.hold = watched_hold  # type: ignore[method-assign]
        healer._inspect = watched_inspect  # type: ignore[method-assign]
        healer._repair = watched_repair  # type: ignore[method-assign]


async def test_two_passes_started_together_never_heal_one_segment_twice_at_once(
    cluster: LocalCluster,
) -> None:
    objects = await put_some(cluster, HEAL_CONCURRENCY + 2)
    for number, key in enumerate(objects):
        damage(part_path(cluster, await manifest_of(cluster, key), number % 8), 100)
    witness = Witness(cluster.healer)
    results: list[dict[str, Any]] = []

    async def one_pass() -> None:
        results.append(await cluster.healer.run_pass())

    with anyio.fail_after(PATIENCE):
        async with anyio.create_task_group() as group:
            group.start_soon(one_pass)
            group.start_soon(one_pass)
    assert witness.most == 1
    contended = {key for key, event in witness.contended.items() if event.is_set()}
    assert contended == {
        ((await manifest_of(cluster, key)).upload_id, 0) for key in objects
    }  # every segment was asked for twice at the same time
    assert sum(r["repaired"] for r in results) == len(objects)  # each damage repaired once
    assert sum(r["whole"] for r in results) == len(objects)  # then found whole
    assert sum(r["rebuilt_parts"] for r in results) == len(objects)
    assert len(cluster.healer._turns) == 0  # nothing left behind
    for key, data in objects.items():
        assert await read_all(cluster, key) == data


async def test_the_scrub_position_never_passes_a_segment_still_being_healed(
    cluster: LocalCluster,
) -> None:
    objects = await put_some(cluster, HEAL_CONCURRENCY + 1)
    healer = cluster.healer
    heal_one = healer.heal_one
    first = (await cluster.receiver.manifests.scan_segments(START, 1))[0][0]
    held, others_done = anyio.Event(), anyio.Event()
    done: list[Key] = []

    async def slow_first(upload_id: str, number: int, **kwargs: Any) -> Healed:
        if (upload_id, number) == (first.upload_id, first.number):
            await held.wait()
        outcome = await heal_one(upload_id, number, **kwargs)
        done.append((upload_id, number))
        if len(done) == len(objects) - 1:
            others_done.set()
        return outcome

    healer.heal_one = slow_first  # type: ignore[method-assign]
    with anyio.fail_after(PATIENCE):
        async with anyio.create_task_group() as group:
            group.start_soon(healer.scrub_step, len(objects))
            await others_done.wait()  # every later segment is healed, the first is not
            assert healer.scrub_cursor == START
            saved = await cluster.receiver.manifests.heal_state("healer")
            assert saved is None or json.loads(saved)["cursor"] == list(START)
            held.set()
    last = max(done)
    assert healer.scrub_cursor == last
    assert json.loads(await cluster.receiver.manifests.heal_state("healer") or "")["cursor"] == [
        *last
    ]


class SharedLimit(RateLimit):
    """The healer's rate limit, recording when each write was let through and how
    many writers were waiting in it at once."""

    def __init__(self, rate: float) -> None:
        super().__init__(rate)
        self.started = time.monotonic()
        self.released: list[tuple[float, int]] = []
        self.waiting = 0
        self.most_waiting = 0

    async def take(self, size: int) -> None:
        self.waiting += 1
        self.most_waiting = max(self.most_waiting, self.waiting)
        try:
            await super().take(size)
        finally:
            self.waiting -= 1
        self.released.append((time.monotonic() - self.started, size))


async def test_concurrent_rebuilds_keep_to_the_rate_limit_together(
    cluster: LocalCluster,
) -> None:
    objects = await put_some(cluster, 2 * HEAL_CONCURRENCY)
    for number, key in enumerate(objects):
        part_path(cluster, await manifest_of(cluster, key), number % 8).unlink()
    rate = 40_000  # bytes/s: about 140 kB of parts to write, so ~2.5 s past the burst
    limit = cluster.healer.limit = SharedLimit(rate)
    result = await cluster.healer.run_pass()
    assert result["repaired"] == len(objects)
    assert limit.most_waiting > 1  # writers of several segments shared the bucket
    sent = 0
    for at, size in sorted(limit.released):
        sent += size
        assert sent <= rate * at + limit.burst + 1
    assert sent == result["rebuilt_bytes"]
    assert sorted(limit.released)[-1][0] >= (sent - limit.burst) / rate


async def test_the_healer_heals_at_least_one_segment_at_a_time(cluster: LocalCluster) -> None:
    with pytest.raises(ValueError, match="at least 1 segment"):
        Healer(cluster.receiver, concurrency=0)
