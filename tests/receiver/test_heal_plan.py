"""The healer's pure parts: what a segment needs (plan_repair), the rate limit (also
shared by concurrent writers, in virtual time), and the code property that lets
parity be raised in place (parity unit i is the same whatever the number of parity
units)."""

from __future__ import annotations

import heapq
import itertools
import os

import anyio
import anyio.lowlevel
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from s3lite.erasure import DATA_UNITS, MAX_PARITY, codec
from s3lite.receiver import PartRecord, Segment
from s3lite.receiver.heal_plan import UNCHECKED, RateLimit, plan_repair, rebuildable
from s3lite.transport.base import PartCheck


def segment(parity: int, missing: tuple[int, ...] = ()) -> Segment:
    parts = tuple(
        PartRecord(i, 10 + i, 100, 1000 + i, missing=i in missing)
        for i in range(DATA_UNITS + parity)
    )
    return Segment(0, 600, 100, parts, upload_id="u", parity=parity)


def test_a_whole_segment_needs_nothing() -> None:
    whole = segment(2)
    checks = {i: PartCheck.ok(100, 1000 + i) for i in range(8)}
    repair = plan_repair(whole, checks, 2)
    assert repair.whole
    assert not repair.needed


def test_every_kind_of_bad_part_is_rebuilt_and_down_nodes_wait() -> None:
    seg = segment(3, missing=(5,))
    checks = {
        0: PartCheck.ok(100, 1000),
        1: PartCheck.missing(),
        2: PartCheck.damaged("block 0"),
        3: PartCheck.ok(99, 1003),  # truncated
        4: PartCheck.ok(100, 7),  # other bytes
        6: UNCHECKED,
        7: PartCheck.ok(100, 1007),
        8: PartCheck.ok(100, 1008),
    }
    repair = plan_repair(seg, checks, 3)
    assert repair.rebuild == {1, 2, 3, 4, 5}
    assert repair.unchecked == {6}
    assert repair.add == 0
    assert "damaged" in repair.reasons[2]
    assert not rebuildable(seg, repair)  # 9 parts, 6 unusable
    assert rebuildable(seg, plan_repair(seg, {1: PartCheck.missing()}, 3))


def test_low_parity_is_raised_never_lowered() -> None:
    assert plan_repair(segment(0), {}, 2).add == 2
    assert plan_repair(segment(1), {}, 2).add == 1
    assert plan_repair(segment(2), {}, 1).add == 0


@settings(max_examples=200)
@given(
    rate=st.integers(1, 10_000),
    steps=st.lists(st.tuples(st.integers(0, 50_000), st.floats(0, 3)), max_size=40),
)
def test_the_rate_limit_lets_through_at_most_rate_times_time_plus_a_burst(
    rate: int, steps: list[tuple[int, float]]
) -> None:
    now = [0.0]
    limit = RateLimit(rate, clock=lambda: now[0])
    sent = 0
    for size, pause in steps:
        now[0] += pause
        now[0] += limit.delay(size)  # the caller waits that long, then sends
        sent += size
        assert sent <= rate * now[0] + rate + 1e-6 * max(1, sent)
    assert RateLimit(None).delay(10**12) == 0.0


def test_the_rate_limit_is_reached_when_writing_flat_out() -> None:
    now = [0.0]
    limit = RateLimit(1000, clock=lambda: now[0])
    for _ in range(100):
        now[0] += limit.delay(100)
    assert now[0] == pytest.approx((100 * 100 - 1000) / 1000)


class VirtualTime:
    """A clock for ``writers`` concurrent tasks that moves only when every one of them
    is asleep (or done), straight to the earliest wake-up: sleeping costs no real
    time, and the order of wake-ups is exactly what the waits say."""

    def __init__(self, writers: int) -> None:
        self.now = 0.0
        self._awake = writers
        self._sleepers: list[tuple[float, int, anyio.Event]] = []
        self._order = itertools.count()

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        woken = anyio.Event()
        heapq.heappush(self._sleepers, (self.now + seconds, next(self._order), woken))
        self._awake -= 1
        self._advance()
        await woken.wait()

    def done(self) -> None:
        self._awake -= 1
        self._advance()

    def _advance(self) -> None:
        if not self._awake and self._sleepers:
            wake, _, woken = heapq.heappop(self._sleepers)
            self.now = max(self.now, wake)
            self._awake += 1
            woken.set()


async def write_concurrently(
    rate: int, plans: list[list[tuple[int, float]]]
) -> tuple[VirtualTime, list[tuple[float, int]]]:
    """One writer per plan, each pausing then taking ``size`` bytes from one shared
    bucket, step after step; returns the clock and (virtual time, size) of every
    write let through."""
    time = VirtualTime(len(plans))
    limit = RateLimit(rate, clock=time.clock, sleep=time.sleep)
    released: list[tuple[float, int]] = []

    async def writer(plan: list[tuple[int, float]]) -> None:
        for size, pause in plan:
            if pause:
                await time.sleep(pause)
            await limit.take(size)
            released.append((time.now, size))
            await anyio.lowlevel.checkpoint()  # let the others interleave
        time.done()

    async with anyio.create_task_group() as group:
        for plan in plans:
            group.start_soon(writer, plan)
    return time, released


@settings(max_examples=100, deadline=None)
@given(
    rate=st.integers(1, 10_000),
    plans=st.lists(
        st.lists(st.tuples(st.integers(0, 50_000), st.floats(0, 3)), max_size=12),
        min_size=2,
        max_size=6,
    ),
)
def test_concurrent_writers_share_one_bucket_within_rate_times_time_plus_a_burst(
    rate: int, plans: list[list[tuple[int, float]]]
) -> None:
    _, released = anyio.run(write_concurrently, rate, plans)
    sent = 0
    for at, size in sorted(released):
        sent += size
        assert sent <= rate * at + rate + 1e-6 * max(1, sent)
    assert len(released) == sum(map(len, plans))


def test_concurrent_writers_flat_out_reach_the_rate_together_not_each() -> None:
    """Four writers of 25 x 100 bytes at 1000 B/s: 10,000 bytes take 9 s after the
    one-second burst, as one writer's would (four buckets would take 1.5 s)."""
    time, released = anyio.run(write_concurrently, 1000, [[(100, 0.0)] * 25] * 4)
    assert sum(size for _, size in released) == 10_000
    assert time.now == pytest.approx((10_000 - 1000) / 1000)


def test_a_rate_must_be_positive() -> None:
    with pytest.raises(ValueError, match="heal rate"):
        RateLimit(0)


@settings(max_examples=20, deadline=None)
@given(length=st.integers(1, 3000), parity=st.integers(1, MAX_PARITY))
def test_parity_units_do_not_depend_on_how_many_there_are(length: int, parity: int) -> None:
    units = [os.urandom(length) for _ in range(DATA_UNITS)]
    most = codec(MAX_PARITY).encode(units)
    assert codec(parity).encode(units) == most[:parity]
