"""The heal queue: reports deduplicated in memory, saved in the manifest store (and so
across restarts), taken oldest first by the healer, gone with their upload."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import anyio
import pytest

from s3lite.metrics import GatewayMetrics
from s3lite.receiver import SqliteManifestStore
from s3lite.receiver.healing import HealItem, HealQueue, HealReason

pytestmark = pytest.mark.anyio


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        self.now += 1
        return self.now


async def test_reports_are_saved_deduplicated_and_taken_oldest_first(tmp_path: Path) -> None:
    store = await SqliteManifestStore.open(tmp_path / "m.sqlite3", durable=False)
    metrics = GatewayMetrics()
    queue = HealQueue(store, metrics=metrics.durability, clock=Clock())
    try:
        queue.report("u1", 0, HealReason.DAMAGED, "part 2 on node-3")
        queue.report("u2", 1, HealReason.MISSING, "part 7 on node-1")
        queue.report("u1", 0, HealReason.DAMAGED, "part 2 on node-3, again")
        queue.report("u1", 0, HealReason.NODE_DOWN, "part 4")
        assert queue.unsaved == 3
        assert await queue.pending() == []  # nothing saved yet
        assert await queue.flush() == 3
        assert queue.unsaved == 0
        assert await queue.pending() == [
            HealItem("u1", 0, HealReason.DAMAGED, "part 2 on node-3, again", 101.0),
            HealItem("u2", 1, HealReason.MISSING, "part 7 on node-1", 102.0),
            HealItem("u1", 0, HealReason.NODE_DOWN, "part 4", 103.0),
        ]
        assert await queue.size() == 2  # segments, not reasons
        assert metrics.registry.get_sample_value("s3lite_heal_queue_segments") == 2
        queue.report("u2", 1, HealReason.MISSING, "later")
        await queue.flush()
        (kept,) = [item for item in await queue.pending(10) if item.upload_id == "u2"]
        assert (kept.queued, kept.detail) == (102.0, "later")  # first time kept
        await queue.done("u1", 0)
        assert [item.upload_id for item in await queue.pending()] == ["u2"]
        assert metrics.registry.get_sample_value("s3lite_heal_queue_segments") == 1
    finally:
        await store.close()
    reopened = await SqliteManifestStore.open(tmp_path / "m.sqlite3")
    try:
        assert [i.upload_id for i in await HealQueue(reopened).pending()] == ["u2"]
        await reopened.forget_upload("u2")  # the upload is gone: so are its items
        assert await HealQueue(reopened).size() == 0
    finally:
        await reopened.close()


class FlakyStore:
    """Fails the first save; signals every successful one."""

    def __init__(self) -> None:
        self.saved: list[HealItem] = []
        self.failures = 1
        self.changed = anyio.Event()

    async def queue_heal(self, items: Sequence[HealItem]) -> None:
        if self.failures:
            self.failures -= 1
            raise OSError("disk I/O error")
        self.saved += items
        self.changed.set()

    async def heal_items(self, limit: int) -> list[HealItem]:
        return self.saved[:limit]

    async def heal_done(self, upload_id: str, segment: int) -> int:
        return 0

    async def heal_queue_size(self) -> int:
        return len({(i.upload_id, i.segment) for i in self.saved})


async def test_a_failed_save_keeps_the_reports_for_the_next() -> None:
    store = FlakyStore()
    queue = HealQueue(store)
    queue.report("u", 0, HealReason.DAMAGED)
    with pytest.raises(OSError, match="disk I/O"):
        await queue.flush()
    assert queue.unsaved == 1
    assert await queue.flush() == 1
    assert [item.upload_id for item in store.saved] == ["u"]


async def test_the_flusher_saves_what_is_reported_and_what_is_left_at_shutdown() -> None:
    store = FlakyStore()
    store.failures = 0
    queue = HealQueue(store)
    async with anyio.create_task_group() as group:
        group.start_soon(queue.run)
        queue.report("a", 0, HealReason.MISSING)
        with anyio.fail_after(5):
            await store.changed.wait()
        assert [item.upload_id for item in store.saved] == ["a"]
        queue.report("b", 0, HealReason.LOW_PARITY)
        group.cancel_scope.cancel()  # before the flusher ran: saved on the way out
    assert [item.upload_id for item in store.saved] == ["a", "b"]
