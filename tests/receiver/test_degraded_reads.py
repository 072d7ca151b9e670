"""Property tests of parity on real part files (in-memory transport): for every size
(empty to several stripe rows, odd tails), stripe unit and parity 0..4, any six parts
rebuild the exact segment, any range reads the same bytes healthy and degraded, and a
damaged part is detected and never used.

Segments are written by the receiver's SegmentWriter and read by its SegmentFetch,
the same code a PUT and a GET run, on a ten-node cluster (every parity fits); parts
are made unavailable by recording them missing, which is how a read learns of them.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

import anyio.from_thread
import attrs
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from s3lite import LocalCluster, PartsUnavailable
from s3lite.erasure import DATA_UNITS, MAX_PARITY
from s3lite.orchestrator import part_name, place_parts
from s3lite.receiver import Segment
from s3lite.receiver.fetch import SegmentFetch
from s3lite.receiver.upload import SegmentWriter
from tests.receiver.helpers import damage

T = TypeVar("T")


class Harness:
    """A cluster running in a background event loop, driven from sync test code."""

    def __init__(self, root: Path) -> None:
        self._portal_cm = anyio.from_thread.start_blocking_portal("asyncio")
        self.portal = self._portal_cm.__enter__()
        self.cluster = LocalCluster(
            root, nodes=DATA_UNITS + MAX_PARITY, parity=MAX_PARITY, fsync=False,
            janitor_interval=None, probe_interval=None,
        )  # fmt: skip
        self.portal.call(self.cluster.__aenter__)

    def run(self, function: Callable[..., Coroutine[Any, Any, T]], *args: Any) -> T:
        return self.portal.call(function, *args)

    def close(self) -> None:
        try:
            self.portal.call(self.cluster.__aexit__, None, None, None)
        finally:
            self._portal_cm.__exit__(None, None, None)

    async def write(self, data: bytes, unit: int, parity: int, batch: int) -> Segment:
        """Write a segment, its rows gathered ``batch`` bytes per part at a time (the
        writer's SEND_BATCH: small, so groups of rows start and end everywhere)."""
        upload_id = uuid.uuid4().hex
        orchestrator = self.cluster.orchestrator
        with orchestrator.lease() as view:
            sectors = place_parts(view.placement_rings, "key", upload_id, parts=6 + parity)
            writer = SegmentWriter(
                orchestrator, view, upload_id, 0, sectors, unit, send_batch=batch
            )

            async def body() -> Any:
                for start in range(0, len(data), 1000):
                    yield data[start : start + 1000]

            return await writer.write(body(), len(data))

    async def read(self, segment: Segment, first: int, last: int) -> bytes:
        fetch = SegmentFetch(self.cluster.receiver.read_context, segment, first, last)
        try:
            return b"".join([chunk async for chunk in fetch.chunks()])
        finally:
            await fetch.aclose()

    async def read_or_error(
        self, segment: Segment, first: int, last: int
    ) -> bytes | PartsUnavailable:
        try:
            return await self.read(segment, first, last)
        except PartsUnavailable as exc:
            return exc

    def path(self, segment: Segment, index: int) -> Path:
        part = segment.parts[index]
        owner = self.cluster.nodes[self.cluster.orchestrator.ring.owner(part.sector)]
        name = part_name(segment.upload_id, segment.number, index)
        return owner.data_dir / "sectors" / f"{part.sector:03d}" / name


@pytest.fixture(scope="module")
def harness(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Harness]:
    opened = Harness(tmp_path_factory.mktemp("parity"))
    try:
        yield opened
    finally:
        opened.close()


def without(segment: Segment, lost: set[int]) -> Segment:
    """The segment with parts ``lost`` recorded missing (so a read never asks for them)."""
    parts = tuple(attrs.evolve(p, missing=p.index in lost) for p in segment.parts)
    return attrs.evolve(segment, parts=parts)


@st.composite
def segments(draw: st.DrawFn) -> tuple[bytes, int, int, int]:
    """(bytes, stripe unit, parity, send batch): sizes from empty to five rows with odd
    tails, or ending exactly at a unit, a row or a group of rows."""
    unit = draw(st.integers(1, 40))
    rows = draw(st.integers(0, 5))
    size = draw(
        st.one_of(
            st.integers(0, 5 * DATA_UNITS * unit + unit - 1),
            st.builds(lambda units: units * unit, st.integers(0, rows * DATA_UNITS + 5)),
        )
    )
    parity = draw(st.integers(0, MAX_PARITY))
    batch = draw(st.integers(1, 4 * unit))
    return os.urandom(size), unit, parity, batch


PROPERTY = settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@PROPERTY
@given(segments(), st.data())
def test_any_six_parts_rebuild_the_segment_and_any_range(
    harness: Harness, drawn: tuple[bytes, int, int, int], data: st.DataObject
) -> None:
    content, unit, parity, batch = drawn
    segment = harness.run(harness.write, content, unit, parity, batch)
    assert segment.parity == parity
    assert [p.length for p in segment.parts[6:]] == [segment.parts[0].length] * parity
    if not content:
        return
    everything = range(DATA_UNITS + parity)
    kept = data.draw(st.sets(st.sampled_from(everything), min_size=6, max_size=6), label="kept")
    rebuilt = harness.run(
        harness.read, without(segment, set(everything) - kept), 0, len(content) - 1
    )
    assert rebuilt == content
    lost = data.draw(st.sets(st.sampled_from(everything), max_size=parity), label="lost")
    first = data.draw(st.integers(0, len(content) - 1), label="first")
    last = data.draw(st.integers(first, len(content) - 1), label="last")
    healthy = harness.run(harness.read, segment, first, last)
    degraded = harness.run(harness.read, without(segment, lost), first, last)
    assert healthy == degraded == content[first : last + 1]


@PROPERTY
@given(segments(), st.data())
def test_a_damaged_part_is_detected_never_used(
    harness: Harness, drawn: tuple[bytes, int, int, int], data: st.DataObject
) -> None:
    """Up to ``parity`` parts lost and one more damaged (data or parity): the read
    returns the exact bytes, or, when the damaged part was needed and there is no
    parity left to read around it, fails saying so; never other bytes."""
    content, unit, parity, batch = drawn
    if not content:
        return
    segment = harness.run(harness.write, content, unit, parity, batch)
    everything = range(DATA_UNITS + parity)
    lost = data.draw(st.sets(st.sampled_from(everything), max_size=parity), label="lost")
    index = data.draw(st.sampled_from([i for i in everything if i not in lost]), label="damaged")
    length = segment.parts[index].length
    if not length:
        return
    offset = data.draw(st.integers(0, length - 1), label="damaged byte")
    damage(harness.path(segment, index), offset, 1 << data.draw(st.integers(0, 7)))
    first = data.draw(st.integers(0, len(content) - 1), label="first")
    last = data.draw(st.integers(first, len(content) - 1), label="last")
    got = harness.run(harness.read_or_error, without(segment, lost), first, last)
    if isinstance(got, PartsUnavailable):
        assert len(lost) == parity, got  # no parity left to read around the damage
        assert "damaged" in str(got)
    else:
        assert got == content[first : last + 1]
