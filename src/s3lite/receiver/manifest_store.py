"""Where manifests live: an interface, and its embedded default on SQLite.

An upload is recorded as ``pending`` *before* any of its parts is written, with the
sector of each part, so that whatever happens next (a disconnect, a crash) the parts
can be found and removed. Committing an upload is one transaction that fills in the
part lengths and checksums, points the key at it, and marks the upload the key used
to point at as ``deleting``; deleting a key marks its upload ``deleting`` too. Rows
are forgotten only after their parts are gone, so a part file on a node always has a
row until it is deleted (the janitor relies on that).

SQLite runs in WAL mode with ``synchronous=FULL``: a commit that returned survives a
power cut (``durable=False`` relaxes that to surviving a crash of the process). All
calls go through one connection in a worker thread, one at a time.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Collection, Iterable, Sequence
from pathlib import Path
from typing import Any, Protocol, TypeVar

import anyio
import anyio.to_thread

from ..orchestrator.catalog import PlacedPart
from .keys import prefix_upper_bound
from .manifest import Manifest, ObjectInfo, PartRecord, Segment

T = TypeVar("T")

PartKey = tuple[str, int, int]
"""(upload id, segment, part index)"""


class ManifestStore(Protocol):
    """The receiver's durable record of keys, uploads and parts."""

    async def begin_upload(
        self, upload_id: str, key: str, sectors: Sequence[int], created: float
    ) -> None:
        """Record a pending upload of ``key`` whose segment 0 parts go to ``sectors``."""
        ...

    async def commit_upload(
        self, upload_id: str, segments: Sequence[Segment], info: ObjectInfo
    ) -> str | None:
        """Point the key at this upload, described by ``info``; returns the upload it
        replaced, now ``deleting``."""
        ...

    async def get(self, key: str) -> Manifest | None: ...

    async def delete(self, key: str) -> str | None:
        """Unlink ``key``; returns its upload (now ``deleting``), None if there was none."""
        ...

    async def list_objects(self, prefix: str, start_after: str, limit: int) -> list[ObjectInfo]:
        """Up to ``limit`` committed objects with ``prefix``, keys > ``start_after``, sorted."""
        ...

    async def upload_parts(self, upload_id: str) -> list[PlacedPart]:
        """Every part recorded for an upload, in any state."""
        ...

    async def forget_upload(self, upload_id: str) -> None:
        """Remove an upload's rows (after its parts were deleted)."""
        ...

    async def stale_uploads(self, pending_before: float) -> list[str]:
        """Uploads to clean: pending ones created before ``pending_before``, and every
        ``deleting`` one."""
        ...

    async def claim_stale(self, upload_id: str, pending_before: float) -> bool:
        """Mark a stale upload ``deleting`` unless it moved on since it was listed
        (committed, or not stale any more); True if it is the caller's to delete."""
        ...

    async def recorded_sectors(self, parts: Collection[PartKey]) -> dict[PartKey, int]:
        """The recorded sector of each of ``parts`` that has a row."""
        ...

    async def parts_in_sectors(self, sectors: Collection[int]) -> list[PlacedPart]: ...

    async def move_part(self, part: PlacedPart, new_sector: int) -> bool: ...

    async def create_bucket(self, name: str, created: float) -> bool:
        """Record a bucket; False if it already existed."""
        ...

    async def delete_bucket(self, name: str, prefix: str) -> bool | None:
        """Forget a bucket if no key starts with ``prefix``: True if deleted, None if
        there is no such bucket, False if it still holds objects."""
        ...

    async def list_buckets(self) -> list[tuple[str, float]]:
        """(name, creation time) of every bucket, sorted by name."""
        ...

    async def close(self) -> None: ...


SCHEMA = """
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

_BATCH = 500


class SqliteManifestStore:
    """:class:`ManifestStore` in one SQLite file."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self._db: sqlite3.Connection | None = None
        self._limiter = anyio.CapacityLimiter(1)

    @classmethod
    async def open(cls, path: Path | str, *, durable: bool = True) -> SqliteManifestStore:
        """Open (creating) the store. ``durable=False`` skips fsync on commit: a crash
        of the process loses nothing, a power cut may lose the last commits."""
        store = cls(path)
        store._db = await anyio.to_thread.run_sync(_connect, store.path, durable)
        return store

    async def close(self) -> None:
        db, self._db = self._db, None
        if db is not None:
            await anyio.to_thread.run_sync(db.close, limiter=self._limiter)

    async def _run(self, work: Any, *args: Any) -> Any:
        db = self._db
        if db is None:
            raise RuntimeError("the manifest store is closed")
        return await anyio.to_thread.run_sync(work, db, *args, limiter=self._limiter)

    async def begin_upload(
        self, upload_id: str, key: str, sectors: Sequence[int], created: float
    ) -> None:
        def work(db: sqlite3.Connection) -> None:
            with db:
                db.execute(
                    "INSERT INTO uploads (upload_id, key, state, created) "
                    "VALUES (?, ?, 'pending', ?)",
                    (upload_id, key, created),
                )
                db.executemany(
                    "INSERT INTO parts (upload_id, segment, idx, sector) VALUES (?, 0, ?, ?)",
                    [(upload_id, index, sector) for index, sector in enumerate(sectors)],
                )

        await self._run(work)

    async def commit_upload(
        self, upload_id: str, segments: Sequence[Segment], info: ObjectInfo
    ) -> str | None:
        modified = info.last_modified.timestamp()

        def work(db: sqlite3.Connection) -> str | None:
            with db:
                row = db.execute(
                    "SELECT key, state FROM uploads WHERE upload_id = ?", (upload_id,)
                ).fetchone()
                if row is None or row[1] != "pending":
                    raise RuntimeError(f"upload {upload_id} is not pending: {row}")
                key = row[0]
                for segment in segments:
                    db.execute(
                        "INSERT INTO segments (upload_id, segment, size, stripe_unit) "
                        "VALUES (?, ?, ?, ?)",
                        (upload_id, segment.number, segment.size, segment.stripe_unit),
                    )
                    db.executemany(
                        "UPDATE parts SET length = ?, checksum = ? "
                        "WHERE upload_id = ? AND segment = ? AND idx = ?",
                        [
                            (p.length, f"{p.checksum:016x}", upload_id, segment.number, p.index)
                            for p in segment.parts
                        ],
                    )
                db.execute(
                    "UPDATE uploads SET state = 'committed', modified = ?, size = ?, etag = ?, "
                    "content_type = ?, metadata = ? WHERE upload_id = ?",
                    (
                        modified,
                        info.size,
                        info.etag,
                        info.content_type,
                        json.dumps(dict(info.metadata)),
                        upload_id,
                    ),
                )
                previous = db.execute(
                    "SELECT upload_id FROM objects WHERE key = ?", (key,)
                ).fetchone()
                db.execute(
                    "INSERT INTO objects (key, upload_id) VALUES (?, ?) "
                    "ON CONFLICT (key) DO UPDATE SET upload_id = excluded.upload_id",
                    (key, upload_id),
                )
                if previous is None:
                    return None
                db.execute(
                    "UPDATE uploads SET state = 'deleting' WHERE upload_id = ?", (previous[0],)
                )
                return str(previous[0])

        result: str | None = await self._run(work)
        return result

    async def get(self, key: str) -> Manifest | None:
        def work(db: sqlite3.Connection) -> Manifest | None:
            row = db.execute(
                f"SELECT {_MANIFEST_COLUMNS} FROM objects JOIN uploads USING (upload_id) "
                "WHERE objects.key = ?",
                (key,),
            ).fetchone()
            return None if row is None else _manifest(db, row)

        result: Manifest | None = await self._run(work)
        return result

    async def delete(self, key: str) -> str | None:
        def work(db: sqlite3.Connection) -> str | None:
            with db:
                row = db.execute("SELECT upload_id FROM objects WHERE key = ?", (key,)).fetchone()
                if row is None:
                    return None
                db.execute("DELETE FROM objects WHERE key = ?", (key,))
                db.execute("UPDATE uploads SET state = 'deleting' WHERE upload_id = ?", row)
                return str(row[0])

        result: str | None = await self._run(work)
        return result

    async def list_objects(self, prefix: str, start_after: str, limit: int) -> list[ObjectInfo]:
        lower = max(prefix, start_after)
        upper = prefix_upper_bound(prefix) if prefix else None

        def work(db: sqlite3.Connection) -> list[ObjectInfo]:
            query = (
                f"SELECT {_MANIFEST_COLUMNS} FROM objects JOIN uploads USING (upload_id) "
                "WHERE objects.key >= ? AND objects.key != ?"
            )
            args: list[Any] = [lower, start_after]
            if upper is not None:
                query += " AND objects.key < ?"
                args.append(upper)
            query += " ORDER BY objects.key LIMIT ?"
            args.append(limit)
            return [_info(row) for row in db.execute(query, args).fetchall()]

        result: list[ObjectInfo] = await self._run(work)
        return result

    async def upload_parts(self, upload_id: str) -> list[PlacedPart]:
        def work(db: sqlite3.Connection) -> list[PlacedPart]:
            rows = db.execute(
                "SELECT upload_id, segment, idx, sector FROM parts WHERE upload_id = ? "
                "ORDER BY segment, idx",
                (upload_id,),
            )
            return [PlacedPart(*row) for row in rows]

        result: list[PlacedPart] = await self._run(work)
        return result

    async def forget_upload(self, upload_id: str) -> None:
        def work(db: sqlite3.Connection) -> None:
            with db:
                for table in ("parts", "segments", "uploads"):
                    db.execute(f"DELETE FROM {table} WHERE upload_id = ?", (upload_id,))

        await self._run(work)

    async def stale_uploads(self, pending_before: float) -> list[str]:
        def work(db: sqlite3.Connection) -> list[str]:
            rows = db.execute(
                "SELECT upload_id FROM uploads WHERE state = 'deleting' "
                "OR (state = 'pending' AND created < ?) ORDER BY created",
                (pending_before,),
            )
            return [str(row[0]) for row in rows]

        result: list[str] = await self._run(work)
        return result

    async def claim_stale(self, upload_id: str, pending_before: float) -> bool:
        def work(db: sqlite3.Connection) -> bool:
            with db:
                cursor = db.execute(
                    "UPDATE uploads SET state = 'deleting' WHERE upload_id = ? AND "
                    "(state = 'deleting' OR (state = 'pending' AND created < ?))",
                    (upload_id, pending_before),
                )
                return cursor.rowcount == 1

        result: bool = await self._run(work)
        return result

    async def recorded_sectors(self, parts: Collection[PartKey]) -> dict[PartKey, int]:
        uploads = sorted({upload_id for upload_id, _, _ in parts})

        def work(db: sqlite3.Connection) -> dict[PartKey, int]:
            found: dict[PartKey, int] = {}
            for batch in _batches(uploads):
                rows = db.execute(
                    "SELECT upload_id, segment, idx, sector FROM parts "
                    f"WHERE upload_id IN ({','.join('?' * len(batch))})",
                    batch,
                )
                for upload_id, segment, index, sector in rows:
                    found[(upload_id, segment, index)] = sector
            return {part: found[part] for part in parts if part in found}

        result: dict[PartKey, int] = await self._run(work)
        return result

    async def parts_in_sectors(self, sectors: Collection[int]) -> list[PlacedPart]:
        wanted = sorted(set(sectors))

        def work(db: sqlite3.Connection) -> list[PlacedPart]:
            found: list[PlacedPart] = []
            for batch in _batches(wanted):
                rows = db.execute(
                    "SELECT upload_id, segment, idx, sector FROM parts "
                    f"WHERE sector IN ({','.join('?' * len(batch))})",
                    batch,
                )
                found.extend(PlacedPart(*row) for row in rows)
            return found

        result: list[PlacedPart] = await self._run(work)
        return result

    async def move_part(self, part: PlacedPart, new_sector: int) -> bool:
        def work(db: sqlite3.Connection) -> bool:
            with db:
                cursor = db.execute(
                    "UPDATE parts SET sector = ? "
                    "WHERE upload_id = ? AND segment = ? AND idx = ? AND sector = ?",
                    (new_sector, part.upload_id, part.segment, part.index, part.sector),
                )
                return cursor.rowcount == 1

        result: bool = await self._run(work)
        return result

    async def create_bucket(self, name: str, created: float) -> bool:
        def work(db: sqlite3.Connection) -> bool:
            with db:
                cursor = db.execute(
                    "INSERT INTO buckets (name, created) VALUES (?, ?) ON CONFLICT DO NOTHING",
                    (name, created),
                )
                return cursor.rowcount == 1

        result: bool = await self._run(work)
        return result

    async def delete_bucket(self, name: str, prefix: str) -> bool | None:
        upper = prefix_upper_bound(prefix)

        def work(db: sqlite3.Connection) -> bool | None:
            with db:
                if db.execute("SELECT 1 FROM buckets WHERE name = ?", (name,)).fetchone() is None:
                    return None
                query = "SELECT 1 FROM objects WHERE key >= ?"
                args: list[str] = [prefix]
                if upper is not None:
                    query += " AND key < ?"
                    args.append(upper)
                if db.execute(query + " LIMIT 1", args).fetchone() is not None:
                    return False
                db.execute("DELETE FROM buckets WHERE name = ?", (name,))
                return True

        result: bool | None = await self._run(work)
        return result

    async def list_buckets(self) -> list[tuple[str, float]]:
        def work(db: sqlite3.Connection) -> list[tuple[str, float]]:
            rows = db.execute("SELECT name, created FROM buckets ORDER BY name")
            return [(str(name), float(created)) for name, created in rows]

        result: list[tuple[str, float]] = await self._run(work)
        return result


_MANIFEST_COLUMNS = "objects.key, upload_id, size, etag, content_type, created, modified, metadata"


def _info(row: tuple[Any, ...]) -> ObjectInfo:
    key, _, size, etag, content_type, _, modified, metadata = row
    return ObjectInfo.of(key, size, etag, content_type, modified, json.loads(metadata))


def _manifest(db: sqlite3.Connection, row: tuple[Any, ...]) -> Manifest:
    key, upload_id, size, etag, content_type, created, modified, metadata = row
    parts: dict[int, list[PartRecord]] = {}
    for segment, index, sector, length, checksum in db.execute(
        "SELECT segment, idx, sector, length, checksum FROM parts WHERE upload_id = ? "
        "ORDER BY segment, idx",
        (upload_id,),
    ):
        parts.setdefault(segment, []).append(PartRecord(index, sector, length, int(checksum, 16)))
    segments = tuple(
        Segment(number, segment_size, unit, tuple(parts[number]))
        for number, segment_size, unit in db.execute(
            "SELECT segment, size, stripe_unit FROM segments WHERE upload_id = ? ORDER BY segment",
            (upload_id,),
        )
    )
    return Manifest(
        key=key,
        upload_id=upload_id,
        size=size,
        etag=etag,
        content_type=content_type,
        created=created,
        last_modified=modified,
        metadata=json.loads(metadata),
        segments=segments,
    )


def _batches(items: Sequence[T]) -> Iterable[list[T]]:
    for start in range(0, len(items), _BATCH):
        yield list(items[start : start + _BATCH])


def _connect(path: Path, durable: bool) -> sqlite3.Connection:
    path.parent.mkdir(parents=True, exist_ok=True)
    db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
    db.execute("PRAGMA journal_mode = WAL")
    db.execute(f"PRAGMA synchronous = {'FULL' if durable else 'NORMAL'}")
    db.execute("PRAGMA foreign_keys = ON")
    db.executescript(SCHEMA)
    # isolation_level=None is autocommit; `with db:` blocks need explicit transactions.
    db.isolation_level = "DEFERRED"
    return db
