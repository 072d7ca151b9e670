"""Rows <-> values for the SQLite manifest store, and the steps its transactions share.

Every function here takes an open connection and runs inside the caller's
transaction; none commits.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Sequence
from typing import Any, TypeVar

from ..errors import NoSuchBucket
from .conditions import WriteCondition
from .manifest import Manifest, ObjectHeaders, ObjectInfo, PartRecord, Segment

T = TypeVar("T")

BATCH = 500
"""Ids per ``IN (...)`` query, well under SQLite's limit on bound parameters."""

INFO_COLUMNS = (
    "uploads.key, uploads.upload_id, size, etag, content_type, created, modified, metadata, "
    "headers, storage_class, checksum_type, checksums, parts_count"
)


def info(row: Sequence[Any], key: str | None = None) -> ObjectInfo:
    """An ObjectInfo from a row of INFO_COLUMNS (``key`` overrides the stored key)."""
    stored, _, size, etag, content_type, _, modified, metadata, headers = row[:9]
    storage_class, checksum_type, checksums, parts_count = row[9:13]
    return ObjectInfo.of(
        stored if key is None else key,
        size,
        etag,
        content_type,
        modified,
        json.loads(metadata),
        headers=ObjectHeaders(**json.loads(headers)),
        storage_class=storage_class,
        checksums=json.loads(checksums),
        checksum_type=checksum_type,
        parts_count=parts_count,
    )


def manifest(db: sqlite3.Connection, row: Sequence[Any]) -> Manifest:
    """The manifest of the committed upload in ``row`` (INFO_COLUMNS)."""
    upload_id, created = row[1], row[5]
    segments = tuple(
        load_segment(db, segment_row)
        for segment_row in db.execute(
            f"SELECT {SEGMENT_COLUMNS} FROM segments WHERE object_upload = ? ORDER BY part_number",
            (upload_id,),
        )
    )
    return Manifest(upload_id, created, info(row), segments)


SEGMENT_COLUMNS = "upload_id, segment, size, stripe_unit, parity, md5, checksums"


def load_segment(db: sqlite3.Connection, row: Sequence[Any]) -> Segment:
    upload_id, number, size, unit, parity, md5, checksums = row
    parts = tuple(
        PartRecord(index, sector, length, int(checksum, 16), bool(missing))
        for index, sector, length, checksum, missing in db.execute(
            "SELECT idx, sector, length, checksum, missing FROM parts "
            "WHERE upload_id = ? AND segment = ? ORDER BY idx",
            (upload_id, number),
        )
    )
    return Segment(
        number,
        size,
        unit,
        parts,
        upload_id=upload_id,
        parity=parity,
        md5=md5 or "",
        checksums=json.loads(checksums),
    )


def insert_segment(
    db: sqlite3.Connection, segment: Segment, object_upload: str, part_number: int
) -> None:
    """Record a stored segment (its parts' rows exist since the upload began)."""
    db.execute(
        "INSERT INTO segments (upload_id, segment, size, stripe_unit, parity, object_upload, "
        "part_number, md5, checksums) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            segment.upload_id,
            segment.number,
            segment.size,
            segment.stripe_unit,
            segment.parity,
            object_upload,
            part_number,
            segment.md5,
            json.dumps(dict(segment.checksums)),
        ),
    )
    db.executemany(
        "UPDATE parts SET length = ?, checksum = ?, missing = ? "
        "WHERE upload_id = ? AND segment = ? AND idx = ?",
        [
            (p.length, f"{p.checksum:016x}", int(p.missing), segment.upload_id, segment.number,
             p.index)
            for p in segment.parts
        ],
    )  # fmt: skip


def state_of(db: sqlite3.Connection, upload_id: str) -> tuple[str, str] | None:
    """(key, state) of an upload, or None if it has no row."""
    row = db.execute("SELECT key, state FROM uploads WHERE upload_id = ?", (upload_id,)).fetchone()
    return None if row is None else (str(row[0]), str(row[1]))


def current(db: sqlite3.Connection, key: str) -> tuple[str, str] | None:
    """(upload id, ETag) of the object ``key`` means now, or None."""
    row = db.execute(
        "SELECT upload_id, etag FROM objects JOIN uploads USING (upload_id) WHERE objects.key = ?",
        (key,),
    ).fetchone()
    return None if row is None else (str(row[0]), str(row[1]))


def check_bucket(db: sqlite3.Connection, bucket: str | None) -> None:
    """NoSuchBucket unless ``bucket`` (if given) exists, seen from this transaction."""
    if bucket is not None and (
        db.execute("SELECT 1 FROM buckets WHERE name = ?", (bucket,)).fetchone() is None
    ):
        raise NoSuchBucket(f"no bucket named {bucket!r}")


def point(
    db: sqlite3.Connection,
    key: str,
    upload_id: str,
    condition: WriteCondition | None,
    bucket: str | None,
) -> list[str]:
    """Point ``key`` at a committed upload, once ``bucket`` and ``condition`` are checked;
    returns the uploads it superseded (now ``deleting``)."""
    check_bucket(db, bucket)
    previous = current(db, key)
    if condition is not None:
        condition.check(key, None if previous is None else previous[1])
    db.execute(
        "INSERT INTO objects (key, upload_id) VALUES (?, ?) "
        "ON CONFLICT (key) DO UPDATE SET upload_id = excluded.upload_id",
        (key, upload_id),
    )
    return [] if previous is None else supersede(db, previous[0])


def supersede(db: sqlite3.Connection, upload_id: str) -> list[str]:
    """Mark an upload ``deleting`` with every other upload holding its segments (the
    parts of a multipart object); returns them all, the upload first."""
    members = [
        str(row[0])
        for row in db.execute(
            "SELECT upload_id FROM segments WHERE object_upload = ? AND upload_id != ?",
            (upload_id, upload_id),
        )
    ]
    doomed = [upload_id, *members]
    for batch in batches(doomed):
        db.execute(
            f"UPDATE uploads SET state = 'deleting' WHERE upload_id IN ({marks(batch)})", batch
        )
    return doomed


def marks(items: Sequence[object]) -> str:
    return ",".join("?" * len(items))


def batches(items: Sequence[T]) -> Iterable[list[T]]:
    for start in range(0, len(items), BATCH):
        yield list(items[start : start + BATCH])
