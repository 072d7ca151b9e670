"""The embedded default :class:`ManifestStore` (manifest_protocol.py): SQLite.

SQLite runs in WAL mode with ``synchronous=FULL``: a commit that returned survives a
power cut (``durable=False`` relaxes that to surviving a crash of the process). All
calls go through one connection in a worker thread, one at a time, so transactions
never interleave. The schema and its migrations are in ``schema.py``; multipart
sessions' transactions in ``multipart_store.py``, the heal queue's in
``heal_store.py``.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Collection, Iterator, Sequence
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread

from ..orchestrator.catalog import PartKey, PlacedPart
from . import heal_store, multipart_store, sqlrows
from .conditions import WriteCondition
from .healing import HealItem
from .keys import prefix_upper_bound
from .listing import Position, list_page
from .manifest import (
    Manifest,
    MultipartUpload,
    ObjectInfo,
    ObjectList,
    PartInfo,
    PartRecord,
    Segment,
    UploadList,
)
from .manifest_protocol import Plan
from .schema import connect


class SqliteManifestStore:
    """:class:`ManifestStore` in one SQLite file."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self._db: sqlite3.Connection | None = None
        self._limiter = anyio.CapacityLimiter(1)

    @classmethod
    async def open(cls, path: Path | str, *, durable: bool = True) -> SqliteManifestStore:
        """Open (creating, or migrating an older schema) the store. ``durable=False``
        skips fsync on commit: a crash of the process loses nothing, a power cut may
        lose the last commits."""
        store = cls(path)
        store._db = await anyio.to_thread.run_sync(connect, store.path, durable)
        return store

    async def close(self) -> None:
        db, self._db = self._db, None
        if db is not None:
            await anyio.to_thread.run_sync(db.close, limiter=self._limiter)

    async def _run(self, work: Callable[..., Any], *args: Any) -> Any:
        db = self._db
        if db is None:
            raise RuntimeError("the manifest store is closed")
        return await anyio.to_thread.run_sync(work, db, *args, limiter=self._limiter)

    async def _transaction(self, work: Callable[..., Any], *args: Any) -> Any:
        def run(db: sqlite3.Connection) -> Any:
            with db:
                return work(db, *args)

        return await self._run(run)

    # -- objects -----------------------------------------------------------------------

    async def begin_upload(
        self, upload_id: str, key: str, sectors: Sequence[int], created: float
    ) -> None:
        def work(db: sqlite3.Connection) -> None:
            db.execute(
                "INSERT INTO uploads (upload_id, key, state, created) VALUES (?, ?, 'pending', ?)",
                (upload_id, key, created),
            )
            db.executemany(
                "INSERT INTO parts (upload_id, segment, idx, sector) VALUES (?, 0, ?, ?)",
                [(upload_id, index, sector) for index, sector in enumerate(sectors)],
            )

        await self._transaction(work)

    async def commit_upload(
        self,
        upload_id: str,
        segments: Sequence[Segment],
        info: ObjectInfo,
        *,
        condition: WriteCondition | None = None,
        bucket: str | None = None,
    ) -> list[str]:
        def work(db: sqlite3.Connection) -> list[str]:
            row = sqlrows.state_of(db, upload_id)
            if row is None or row[1] != "pending":
                raise RuntimeError(f"upload {upload_id} is not pending: {row}")
            for position, segment in enumerate(segments):
                sqlrows.insert_segment(db, segment, upload_id, position)
            write_info(db, upload_id, info)
            return sqlrows.point(db, row[0], upload_id, condition, bucket)

        result: list[str] = await self._transaction(work)
        return result

    async def get(self, key: str) -> Manifest | None:
        def work(db: sqlite3.Connection) -> Manifest | None:
            row = db.execute(
                f"SELECT {sqlrows.INFO_COLUMNS} FROM objects JOIN uploads USING (upload_id) "
                "WHERE objects.key = ?",
                (key,),
            ).fetchone()
            return None if row is None else sqlrows.manifest(db, row)

        result: Manifest | None = await self._run(work)
        return result

    async def current_upload(self, key: str) -> str | None:
        def work(db: sqlite3.Connection) -> str | None:
            row = db.execute("SELECT upload_id FROM objects WHERE key = ?", (key,)).fetchone()
            return None if row is None else str(row[0])

        result: str | None = await self._run(work)
        return result

    async def segment(self, upload_id: str, number: int) -> Segment | None:
        def work(db: sqlite3.Connection) -> Segment | None:
            row = db.execute(
                f"SELECT {sqlrows.SEGMENT_COLUMNS} FROM segments "
                "WHERE upload_id = ? AND segment = ?",
                (upload_id, number),
            ).fetchone()
            return None if row is None else sqlrows.load_segment(db, row)

        result: Segment | None = await self._run(work)
        return result

    async def delete(self, key: str) -> list[str]:
        def work(db: sqlite3.Connection) -> list[str]:
            row = db.execute("SELECT upload_id FROM objects WHERE key = ?", (key,)).fetchone()
            if row is None:
                return []
            db.execute("DELETE FROM objects WHERE key = ?", (key,))
            return sqlrows.supersede(db, str(row[0]))

        result: list[str] = await self._transaction(work)
        return result

    async def list_objects(
        self, prefix: str, *, start_after: str, limit: int, delimiter: str
    ) -> ObjectList:
        upper = prefix_upper_bound(prefix) if prefix else None

        def work(db: sqlite3.Connection) -> ObjectList:
            def fetch(bound: Position, inclusive: bool) -> Iterator[tuple[Position, ObjectInfo]]:
                query = (
                    f"SELECT {sqlrows.INFO_COLUMNS} FROM objects JOIN uploads USING (upload_id) "
                    f"WHERE objects.key {'>=' if inclusive else '>'} ?"
                )
                args: list[Any] = [bound[0]]
                if upper is not None:
                    query += " AND objects.key < ?"
                    args.append(upper)
                for row in db.execute(query + " ORDER BY objects.key", args):
                    yield (row[0],), sqlrows.info(row)

            page = list_page(
                fetch, prefix=prefix, delimiter=delimiter, after=(start_after,), limit=limit
            )
            return ObjectList(page.rows, page.is_truncated, page.next_marker, page.prefixes)

        result: ObjectList = await self._run(work)
        return result

    # -- multipart uploads (transactions in multipart_store.py) ------------------------

    async def create_multipart(self, upload: MultipartUpload, bucket: str | None) -> None:
        await self._transaction(multipart_store.create, upload, bucket)

    async def open_multipart(self, upload_id: str) -> MultipartUpload | None:
        result: MultipartUpload | None = await self._run(multipart_store.open_upload, upload_id)
        return result

    async def store_part(
        self, segment: Segment, upload_id: str, part_number: int, modified: float
    ) -> list[str]:
        result: list[str] = await self._transaction(
            multipart_store.store_part, segment, upload_id, part_number, modified
        )
        return result

    async def complete_multipart(
        self,
        upload_id: str,
        key: str,
        plan: Plan,
        *,
        modified: float,
        condition: WriteCondition | None = None,
        bucket: str | None = None,
    ) -> tuple[ObjectInfo, list[str]]:
        def work(db: sqlite3.Connection) -> tuple[ObjectInfo, list[str]]:
            done = multipart_store.completed(db, upload_id, key)
            if done is not None:
                return done, []
            upload = multipart_store.open_upload(db, upload_id, key)
            completion = plan(upload, multipart_store.stored_parts(db, upload_id))
            info = completion.info(upload, modified)
            doomed = multipart_store.keep_only(db, upload_id, completion.chosen)
            write_info(db, upload_id, info)
            return info, doomed + sqlrows.point(db, key, upload_id, condition, bucket)

        result: tuple[ObjectInfo, list[str]] = await self._transaction(work)
        return result

    async def abort_multipart(self, upload_id: str, key: str) -> list[str]:
        def work(db: sqlite3.Connection) -> list[str]:
            multipart_store.open_upload(db, upload_id, key)
            return sqlrows.supersede(db, upload_id)

        result: list[str] = await self._transaction(work)
        return result

    async def list_parts(self, upload_id: str, marker: int, limit: int) -> list[PartInfo]:
        result: list[PartInfo] = await self._run(
            multipart_store.list_parts, upload_id, marker, limit
        )
        return result

    async def list_uploads(
        self,
        prefix: str,
        *,
        delimiter: str,
        key_marker: str,
        upload_id_marker: str,
        limit: int,
    ) -> UploadList:
        result: UploadList = await self._run(
            multipart_store.list_uploads, prefix, delimiter, key_marker, upload_id_marker, limit
        )
        return result

    # -- clean-up ----------------------------------------------------------------------

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
            for table in ("heal_queue", "parts", "segments", "uploads"):
                db.execute(f"DELETE FROM {table} WHERE upload_id = ?", (upload_id,))

        await self._transaction(work)

    async def abandon_upload(self, upload_id: str) -> bool:
        def work(db: sqlite3.Connection) -> bool:
            cursor = db.execute(
                "UPDATE uploads SET state = 'deleting' WHERE upload_id = ? AND state = 'pending'",
                (upload_id,),
            )
            return cursor.rowcount == 1

        result: bool = await self._transaction(work)
        return result

    # -- the heal queue (heal_store.py) ------------------------------------------------

    async def queue_heal(self, items: Sequence[HealItem]) -> None:
        await self._transaction(heal_store.queue, items)

    async def heal_items(self, limit: int) -> list[HealItem]:
        result: list[HealItem] = await self._run(heal_store.oldest, limit)
        return result

    async def heal_done(self, upload_id: str, segment: int) -> int:
        result: int = await self._transaction(heal_store.done, upload_id, segment)
        return result

    async def heal_queue_size(self) -> int:
        result: int = await self._run(heal_store.size)
        return result

    async def scan_segments(self, after: tuple[str, int], limit: int) -> list[tuple[Segment, str]]:
        result: list[tuple[Segment, str]] = await self._run(heal_store.scan, after, limit)
        return result

    async def scan_position(self, after: tuple[str, int]) -> tuple[int, int]:
        result: tuple[int, int] = await self._run(heal_store.position, after)
        return result

    async def reserve_parity(self, segment: Segment, records: Sequence[PartRecord]) -> bool:
        result: bool = await self._transaction(heal_store.reserve_parity, segment, records)
        return result

    async def mark_stored(self, segment: Segment, records: Sequence[PartRecord]) -> bool:
        result: bool = await self._transaction(heal_store.mark_stored, segment, records)
        return result

    async def heal_state(self, name: str) -> str | None:
        result: str | None = await self._run(heal_store.get_state, name)
        return result

    async def save_heal_state(self, name: str, value: str) -> None:
        await self._transaction(heal_store.set_state, name, value)

    async def stale_uploads(
        self, pending_before: float, multipart_before: float = float("-inf")
    ) -> list[str]:
        def work(db: sqlite3.Connection) -> list[str]:
            rows = db.execute(
                "SELECT upload_id FROM uploads WHERE state = 'deleting' "
                "OR (state = 'pending' AND created < ?) "
                "OR (state = 'multipart' AND created < ?) ORDER BY created",
                (pending_before, multipart_before),
            )
            return [str(row[0]) for row in rows]

        result: list[str] = await self._run(work)
        return result

    async def claim_stale(
        self, upload_id: str, pending_before: float, multipart_before: float = float("-inf")
    ) -> list[str]:
        def work(db: sqlite3.Connection) -> list[str]:
            row = db.execute(
                "SELECT state FROM uploads WHERE upload_id = ? AND (state = 'deleting' "
                "OR (state = 'pending' AND created < ?) "
                "OR (state = 'multipart' AND created < ?))",
                (upload_id, pending_before, multipart_before),
            ).fetchone()
            if row is None:
                return []
            return sqlrows.supersede(db, upload_id)

        result: list[str] = await self._transaction(work)
        return result

    # -- the orchestrator's catalog ----------------------------------------------------

    async def recorded_sectors(self, parts: Collection[PartKey]) -> dict[PartKey, int]:
        uploads = sorted({upload_id for upload_id, _, _ in parts})

        def work(db: sqlite3.Connection) -> dict[PartKey, int]:
            found: dict[PartKey, int] = {}
            for batch in sqlrows.batches(uploads):
                rows = db.execute(
                    "SELECT upload_id, segment, idx, sector FROM parts "
                    f"WHERE upload_id IN ({sqlrows.marks(batch)})",
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
            for batch in sqlrows.batches(wanted):
                rows = db.execute(
                    "SELECT upload_id, segment, idx, sector FROM parts "
                    f"WHERE sector IN ({sqlrows.marks(batch)})",
                    batch,
                )
                found.extend(PlacedPart(*row) for row in rows)
            return found

        result: list[PlacedPart] = await self._run(work)
        return result

    async def move_part(self, part: PlacedPart, new_sector: int) -> bool:
        def work(db: sqlite3.Connection) -> bool:
            cursor = db.execute(
                "UPDATE parts SET sector = ? "
                "WHERE upload_id = ? AND segment = ? AND idx = ? AND sector = ?",
                (new_sector, part.upload_id, part.segment, part.index, part.sector),
            )
            return cursor.rowcount == 1

        result: bool = await self._transaction(work)
        return result

    # -- buckets -----------------------------------------------------------------------

    async def create_bucket(self, name: str, created: float) -> bool:
        def work(db: sqlite3.Connection) -> bool:
            cursor = db.execute(
                "INSERT INTO buckets (name, created) VALUES (?, ?) ON CONFLICT DO NOTHING",
                (name, created),
            )
            return cursor.rowcount == 1

        result: bool = await self._transaction(work)
        return result

    async def delete_bucket(self, name: str, prefix: str) -> bool | None:
        upper = prefix_upper_bound(prefix)

        def work(db: sqlite3.Connection) -> bool | None:
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

        result: bool | None = await self._transaction(work)
        return result

    async def list_buckets(self) -> list[tuple[str, float]]:
        def work(db: sqlite3.Connection) -> list[tuple[str, float]]:
            rows = db.execute("SELECT name, created FROM buckets ORDER BY name")
            return [(str(name), float(created)) for name, created in rows]

        result: list[tuple[str, float]] = await self._run(work)
        return result


def write_info(db: sqlite3.Connection, upload_id: str, info: ObjectInfo) -> None:
    """Mark an upload committed, described by ``info``."""
    db.execute(
        "UPDATE uploads SET state = 'committed', modified = ?, size = ?, etag = ?, "
        "content_type = ?, metadata = ?, headers = ?, storage_class = ?, checksum_type = ?, "
        "checksums = ?, parts_count = ? WHERE upload_id = ?",
        (
            info.last_modified.timestamp(),
            info.size,
            info.etag,
            info.content_type,
            json.dumps(dict(info.metadata)),
            json.dumps(info.headers.as_dict()),
            info.storage_class,
            info.checksum_type,
            json.dumps(dict(info.checksums)),
            info.parts_count,
            upload_id,
        ),
    )
