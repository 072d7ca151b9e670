"""The manifest database's schema: a file from before multipart uploads (schema 0, as
s3lite wrote it until then) opens, keeps its objects, and ends up with the schema a
new file gets."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from s3lite.receiver import SqliteManifestStore
from s3lite.receiver.schema import LATEST
from tests.receiver.helpers import put

pytestmark = pytest.mark.anyio

V0_SCHEMA = """
CREATE TABLE IF NOT EXISTS uploads (
    upload_id    TEXT PRIMARY KEY,
    key          TEXT NOT NULL,
    state        TEXT NOT NULL CHECK (state IN ('pending', 'committed', 'deleting')),
    created      REAL NOT NULL,
    modified     REAL,
    size         INTEGER,
    etag         TEXT,
    content_type TEXT,
    metadata     TEXT
);
CREATE INDEX IF NOT EXISTS uploads_state ON uploads (state, created);
CREATE TABLE IF NOT EXISTS segments (
    upload_id   TEXT NOT NULL,
    segment     INTEGER NOT NULL,
    size        INTEGER NOT NULL,
    stripe_unit INTEGER NOT NULL,
    PRIMARY KEY (upload_id, segment)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS parts (
    upload_id TEXT NOT NULL,
    segment   INTEGER NOT NULL,
    idx       INTEGER NOT NULL,
    sector    INTEGER NOT NULL,
    length    INTEGER,
    checksum  TEXT,
    PRIMARY KEY (upload_id, segment, idx)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS parts_sector ON parts (sector);
CREATE TABLE IF NOT EXISTS objects (
    key       TEXT PRIMARY KEY,
    upload_id TEXT NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS buckets (
    name    TEXT PRIMARY KEY,
    created REAL NOT NULL
) WITHOUT ROWID;
"""


def make_v0(path: Path) -> None:
    db = sqlite3.connect(path)
    db.executescript(V0_SCHEMA)
    with db:
        db.execute(
            "INSERT INTO uploads VALUES ('u1', 'b/k', 'committed', 1.0, 2.0, 60, 'e1', "
            "'text/plain', '{\"m\": \"v\"}')"
        )
        db.execute(
            "INSERT INTO uploads (upload_id, key, state, created) VALUES "
            "('p1', 'b/p', 'pending', 3.0)"
        )
        db.execute("INSERT INTO segments VALUES ('u1', 0, 60, 10)")
        for index in range(6):
            db.execute(
                "INSERT INTO parts VALUES ('u1', 0, ?, ?, 10, ?)",
                (index, 10 + index, f"{index:016x}"),
            )
            db.execute(
                "INSERT INTO parts (upload_id, segment, idx, sector) VALUES ('p1', 0, ?, ?)",
                (index, 20 + index),
            )
        db.execute("INSERT INTO objects VALUES ('b/k', 'u1')")
        db.execute("INSERT INTO buckets VALUES ('b', 1.0)")
    db.close()


def schema_of(path: Path) -> dict[str, list[tuple[object, ...]]]:
    db = sqlite3.connect(path)
    try:
        tables = [row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        found = {table: sorted(db.execute(f"PRAGMA table_info({table})")) for table in tables}
        indexes = db.execute(
            "SELECT name FROM sqlite_master WHERE type='index' AND sql IS NOT NULL"
        )
        found["indexes"] = sorted(indexes)
        found["version"] = [db.execute("PRAGMA user_version").fetchone()]
        return found
    finally:
        db.close()


async def test_a_schema_0_file_is_migrated_and_keeps_everything(tmp_path: Path) -> None:
    old, new = tmp_path / "old.sqlite3", tmp_path / "new.sqlite3"
    make_v0(old)
    store = await SqliteManifestStore.open(old)
    try:
        manifest = await store.get("b/k")
        assert manifest is not None
        assert (manifest.upload_id, manifest.size, manifest.etag) == ("u1", 60, "e1")
        assert dict(manifest.info.metadata) == {"m": "v"}
        assert manifest.info.storage_class == "STANDARD"
        (segment,) = manifest.segments
        assert (segment.upload_id, segment.md5, segment.parity) == ("u1", "e1", 0)
        assert [p.sector for p in segment.parts] == [10, 11, 12, 13, 14, 15]
        assert await store.stale_uploads(pending_before=5.0) == ["p1"]
        assert await store.list_buckets() == [("b", 1.0)]
        page = await store.list_objects("b/", start_after="", limit=10, delimiter="/")
        assert [o.key for o in page.objects] == ["b/k"]
        assert await put(store, "b/k", "u2", [1, 2, 3, 4, 5, 6]) == ["u1"]
    finally:
        await store.close()
    fresh = await SqliteManifestStore.open(new)
    await fresh.close()
    assert schema_of(old) == schema_of(new)
    assert schema_of(new)["version"] == [(LATEST,)]
    reopened = await SqliteManifestStore.open(old)  # migrating is done once
    await reopened.close()


async def test_a_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "m.sqlite3"
    store = await SqliteManifestStore.open(path)
    await store.close()
    db = sqlite3.connect(path)
    db.execute(f"PRAGMA user_version = {LATEST + 1}")
    db.close()
    with pytest.raises(RuntimeError, match="schema"):
        await SqliteManifestStore.open(path)
