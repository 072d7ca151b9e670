"""Delimiter listings: the skip-scan page (pure, and in the SQLite store) against a
brute-force model, exact pagination, and the cost of a page in a large bucket."""

from __future__ import annotations

import bisect
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from s3lite.receiver import SqliteManifestStore
from s3lite.receiver.keys import prefix_upper_bound
from s3lite.receiver.listing import Position, common_prefix, list_page
from tests.receiver.helpers import put

pytestmark = pytest.mark.anyio

# Small alphabets make shared prefixes and delimiters frequent.
keys_st = st.sets(st.text(alphabet="ab/-é\U0001f600", min_size=1, max_size=8), max_size=40)
delimiters = st.sampled_from(["", "/", "-", "a/", "//", "é"])
prefixes = st.text(alphabet="ab/-é", max_size=3)
markers = st.text(alphabet="ab/-é\U0001f600", max_size=6)


def model(keys: set[str], prefix: str, delimiter: str, after: str) -> list[str]:
    """Every entry after ``after``, by brute force: keys under the prefix and after the
    marker, rolled up; a roll-up equal to the marker is the previous page's."""
    entries: list[str] = []
    for key in sorted(keys):
        if not key.startswith(prefix) or key <= after:
            continue
        rolled = common_prefix(key, prefix, delimiter)
        if rolled == after:
            continue
        entry = key if rolled is None else rolled
        if not entries or entries[-1] != entry:
            entries.append(entry)
    return entries


def fetcher(keys: set[str], prefix: str, reads: list[int]):  # type: ignore[no-untyped-def]
    ordered = sorted(keys)
    upper = prefix_upper_bound(prefix) if prefix else None

    def fetch(bound: Position, inclusive: bool) -> Iterator[tuple[Position, str]]:
        find = bisect.bisect_left if inclusive else bisect.bisect_right
        for key in ordered[find(ordered, bound[0]) :]:
            if upper is not None and key >= upper:
                return
            reads.append(1)
            yield (key,), key

    return fetch


@settings(max_examples=500, deadline=None)
@given(keys=keys_st, prefix=prefixes, delimiter=delimiters, after=markers, limit=st.integers(1, 6))
def test_a_page_is_the_models_next_entries(
    keys: set[str], prefix: str, delimiter: str, after: str, limit: int
) -> None:
    reads: list[int] = []
    page = list_page(
        fetcher(keys, prefix, reads),
        prefix=prefix,
        delimiter=delimiter,
        after=(after,),
        limit=limit,
    )
    expected = model(keys, prefix, delimiter, after)
    assert [name for name, _ in page.entries] == expected[:limit]
    assert page.is_truncated == (len(expected) > limit)
    for name, row in page.entries:
        assert (row is None) == (name not in keys or common_prefix(name, prefix, delimiter) == name)
    # A page reads at most one row per entry, plus the one that shows truncation and
    # one under the marker's own common prefix (skipped, once, at the start).
    assert len(reads) <= limit + 2


@settings(max_examples=300, deadline=None)
@given(keys=keys_st, prefix=prefixes, delimiter=delimiters, limit=st.integers(1, 4))
def test_paging_by_the_last_entry_lists_everything_once(
    keys: set[str], prefix: str, delimiter: str, limit: int
) -> None:
    listed: list[str] = []
    after = ""
    for _ in range(len(keys) + 2):
        page = list_page(
            fetcher(keys, prefix, []),
            prefix=prefix,
            delimiter=delimiter,
            after=(after,),
            limit=limit,
        )
        listed += [name for name, _ in page.entries]
        if not page.is_truncated:
            break
        assert page.last is not None
        after = page.last
    assert listed == model(keys, prefix, delimiter, "")


def test_s3_tests_delimiter_prefix_example() -> None:
    """ceph/s3-tests test_bucket_list_delimiter_prefix, page by page."""
    keys = {"asdf", "boo/bar", "boo/baz/xyzzy", "cquux/thud", "cquux/bla"}
    pages = []
    after = ""
    while True:
        page = list_page(fetcher(keys, "", []), prefix="", delimiter="/", after=(after,), limit=1)
        pages.append(([n for n, _ in page.entries], page.is_truncated))
        if not page.is_truncated:
            break
        after = page.last or ""
    assert pages == [(["asdf"], True), (["boo/"], True), (["cquux/"], False)]


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(keys=keys_st, prefix=prefixes, delimiter=delimiters, after=markers, limit=st.integers(1, 6))
async def test_the_store_lists_as_the_model(
    tmp_path_factory: pytest.TempPathFactory,
    keys: set[str],
    prefix: str,
    delimiter: str,
    after: str,
    limit: int,
) -> None:
    store = await SqliteManifestStore.open(
        tmp_path_factory.mktemp("m") / "m.sqlite3", durable=False
    )
    try:
        for n, key in enumerate(keys):
            await put(store, key, f"u{n}", [1, 2, 3, 4, 5, 6])
        page = await store.list_objects(prefix, start_after=after, limit=limit, delimiter=delimiter)
        expected = model(keys, prefix, delimiter, after)[:limit]
        names = sorted([o.key for o in page.objects] + list(page.common_prefixes))
        assert names == sorted(expected)
        assert page.next_start_after == (expected[-1] if page.is_truncated else None)
        assert all(o.size == 60 for o in page.objects)
    finally:
        await store.close()


async def test_a_page_costs_the_same_in_a_large_bucket(tmp_path: Path) -> None:
    """Listing '/'-folders of a bucket whose folders each hold many keys reads one row
    per folder (counted through SQLite's progress handler), not every key."""
    store = await SqliteManifestStore.open(tmp_path / "m.sqlite3", durable=False)
    try:
        db = store._db
        assert db is not None
        with db:
            for folder in range(20):
                for n in range(500):
                    upload = f"f{folder}n{n}"
                    db.execute(
                        "INSERT INTO uploads (upload_id, key, state, created, modified, size, "
                        "etag, content_type, metadata) VALUES (?, ?, 'committed', 0, 0, 1, 'e', "
                        "'t', '{}')",
                        (upload, f"b/{folder:02d}/{n:04d}"),
                    )
                    db.execute(
                        "INSERT INTO objects VALUES (?, ?)", (f"b/{folder:02d}/{n:04d}", upload)
                    )
        steps = 0

        def count() -> int:
            nonlocal steps
            steps += 1
            return 0

        db.set_progress_handler(count, 100)
        page = await store.list_objects("b/", start_after="", limit=10, delimiter="/")
        assert page.common_prefixes == tuple(f"b/{n:02d}/" for n in range(10))
        assert page.next_start_after == "b/09/"
        folders_steps = steps
        steps = 0
        flat = await store.list_objects("b/", start_after="", limit=10, delimiter="")
        assert len(flat.objects) == 10
        # 10 000 keys under 20 folders: both pages cost a few hundred VM steps, not 10 000s.
        assert folders_steps < 100
        assert steps < 100
    finally:
        await store.close()
