"""The SQLite manifest store: upload states, commits, listing, the catalog interface."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from s3lite.orchestrator import PlacedPart
from s3lite.receiver import SqliteManifestStore
from tests.receiver.helpers import info, put, segment
from tests.strategies import object_keys

pytestmark = pytest.mark.anyio


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqliteManifestStore]:
    opened = await SqliteManifestStore.open(tmp_path / "m.sqlite3")
    yield opened
    await opened.close()


async def test_pending_upload_is_invisible_until_committed(store: SqliteManifestStore) -> None:
    await store.begin_upload("u1", "k", [1, 2, 3, 4, 5, 6], created=5.0)
    assert await store.get("k") is None
    assert [p.sector for p in await store.upload_parts("u1")] == [1, 2, 3, 4, 5, 6]
    assert await store.stale_uploads(pending_before=5.0) == []
    assert await store.stale_uploads(pending_before=5.1) == ["u1"]
    assert await store.commit_upload("u1", [segment([1, 2, 3, 4, 5, 6], "u1")], info("k")) == []
    manifest = await store.get("k")
    assert manifest is not None
    assert (manifest.upload_id, manifest.size, manifest.etag) == ("u1", 60, "e" * 32)
    assert manifest.segments == (segment([1, 2, 3, 4, 5, 6], "u1"),)
    assert manifest.info == info("k")
    assert await store.stale_uploads(pending_before=1e12) == []


async def test_overwrite_returns_the_replaced_upload_marked_deleting(
    store: SqliteManifestStore,
) -> None:
    await put(store, "k", "old", [1, 2, 3, 4, 5, 6])
    assert await put(store, "k", "new", [7, 8, 9, 10, 11, 12]) == ["old"]
    manifest = await store.get("k")
    assert manifest is not None
    assert manifest.upload_id == "new"
    assert await store.stale_uploads(pending_before=0) == ["old"]
    await store.forget_upload("old")
    assert await store.upload_parts("old") == []


async def test_delete_unlinks_key_and_marks_upload(store: SqliteManifestStore) -> None:
    await put(store, "k", "u", [1, 2, 3, 4, 5, 6])
    assert await store.delete("k") == ["u"]
    assert await store.get("k") is None
    assert await store.delete("k") == []
    assert await store.stale_uploads(pending_before=0) == ["u"]


async def test_committing_twice_is_refused(store: SqliteManifestStore) -> None:
    await put(store, "k", "u", [1, 2, 3, 4, 5, 6])
    with pytest.raises(RuntimeError, match="not pending"):
        await store.commit_upload("u", [segment([1, 2, 3, 4, 5, 6], "u")], info("k"))


async def test_catalog_finds_and_moves_parts(store: SqliteManifestStore) -> None:
    await put(store, "a", "ua", [1, 2, 3, 4, 5, 6])
    await put(store, "b", "ub", [6, 7, 8, 9, 10, 11])
    await store.begin_upload("up", "c", [3, 20, 21, 22, 23, 24], created=1.0)
    found = await store.parts_in_sectors([3, 6])
    assert sorted(found, key=lambda p: (p.upload_id, p.index)) == [
        PlacedPart("ua", 0, 2, 3),
        PlacedPart("ua", 0, 5, 6),
        PlacedPart("ub", 0, 0, 6),
        PlacedPart("up", 0, 0, 3),
    ]
    assert await store.move_part(PlacedPart("ua", 0, 2, 3), 99)
    assert not await store.move_part(PlacedPart("ua", 0, 2, 3), 98)  # no longer in sector 3
    manifest = await store.get("a")
    assert manifest is not None
    assert [p.sector for p in manifest.segments[0].parts] == [1, 2, 99, 4, 5, 6]
    recorded = await store.recorded_sectors([("ua", 0, 2), ("ub", 0, 0), ("zz", 0, 0)])
    assert recorded == {("ua", 0, 2): 99, ("ub", 0, 0): 6}


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(keys=st.sets(object_keys, max_size=25), prefix=st.text(max_size=3), limit=st.integers(1, 7))
async def test_listing_pages_through_sorted_prefix_matches(
    tmp_path_factory: pytest.TempPathFactory, keys: set[str], prefix: str, limit: int
) -> None:
    store = await SqliteManifestStore.open(tmp_path_factory.mktemp("m") / "m.sqlite3")
    try:
        for n, key in enumerate(keys):
            await put(store, key, f"u{n}", [1, 2, 3, 4, 5, 6])
        pages: list[str] = []
        after = ""
        while True:
            page = await store.list_objects(prefix, start_after=after, limit=limit, delimiter="")
            pages += [item.key for item in page.objects]
            if not page.is_truncated:
                break
            assert page.next_start_after is not None
            after = page.next_start_after
        expected = sorted((k for k in keys if k.startswith(prefix)), key=str.encode)
        assert pages == expected
    finally:
        await store.close()


async def test_reopening_keeps_everything(tmp_path: Path) -> None:
    path = tmp_path / "m.sqlite3"
    store = await SqliteManifestStore.open(path)
    await put(store, "k", "u", [1, 2, 3, 4, 5, 6])
    await store.begin_upload("p", "k2", [1, 2, 3, 4, 5, 6], created=2.0)
    await store.close()
    reopened = await SqliteManifestStore.open(path)
    try:
        manifest = await reopened.get("k")
        assert manifest is not None
        assert manifest.upload_id == "u"
        assert await reopened.stale_uploads(pending_before=3.0) == ["p"]
    finally:
        await reopened.close()


async def test_only_a_still_stale_upload_can_be_claimed(store: SqliteManifestStore) -> None:
    await store.begin_upload("old", "k", [1, 2, 3, 4, 5, 6], created=1.0)
    await store.begin_upload("new", "k2", [1, 2, 3, 4, 5, 6], created=50.0)
    assert not await store.claim_stale("new", pending_before=10.0)  # not stale
    assert await store.commit_upload("old", [segment([1, 2, 3, 4, 5, 6], "old")], info("k")) == []
    assert not await store.claim_stale("old", pending_before=10.0)  # committed meanwhile
    assert await store.claim_stale("new", pending_before=100.0) == ["new"]
    assert await store.stale_uploads(pending_before=0) == ["new"]  # now marked deleting
