"""The SQLite transactions of multipart sessions (used by SqliteManifestStore).

An open upload is an ``uploads`` row in state ``multipart``. Each UploadPart attempt
is an upload of its own: ``pending`` while written, then ``part``, its one segment
attached to the open upload with its part number. A part re-sent with the same number
detaches the earlier attempt, which becomes ``deleting``. Completing turns the open
row into the object's ``committed`` upload, keeps the parts it names and marks every
other attempt ``deleting``; aborting marks the upload and its parts ``deleting``.
"""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
from collections.abc import Iterator, Sequence
from typing import Any

from ..errors import NoSuchUpload
from . import sqlrows
from .completion import StoredPart
from .keys import prefix_upper_bound
from .listing import Position, list_page
from .manifest import (
    MultipartUpload,
    ObjectHeaders,
    ObjectInfo,
    PartInfo,
    Segment,
    UploadList,
)

_UPLOAD_COLUMNS = (
    "key, upload_id, created, content_type, metadata, headers, storage_class, "
    "checksum_algorithm, checksum_type"
)


def _upload(row: Sequence[Any]) -> MultipartUpload:
    key, upload_id, created, content_type, metadata, headers, storage_class = row[:7]
    return MultipartUpload(
        key,
        upload_id,
        _time(created),
        content_type,
        json.loads(metadata),
        ObjectHeaders(**json.loads(headers)),
        storage_class,
        row[7],
        row[8],
    )


def _time(seconds: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(seconds, dt.UTC)


def create(db: sqlite3.Connection, upload: MultipartUpload, bucket: str | None) -> None:
    sqlrows.check_bucket(db, bucket)
    db.execute(
        f"INSERT INTO uploads (state, {_UPLOAD_COLUMNS}) "
        "VALUES ('multipart', ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            upload.key,
            upload.upload_id,
            upload.initiated.timestamp(),
            upload.content_type,
            json.dumps(dict(upload.metadata)),
            json.dumps(upload.headers.as_dict()),
            upload.storage_class,
            upload.checksum_algorithm,
            upload.checksum_type,
        ),
    )


def find_open(db: sqlite3.Connection, upload_id: str) -> MultipartUpload | None:
    row = db.execute(
        f"SELECT {_UPLOAD_COLUMNS} FROM uploads WHERE upload_id = ? AND state = 'multipart'",
        (upload_id,),
    ).fetchone()
    return None if row is None else _upload(row)


def open_upload(db: sqlite3.Connection, upload_id: str, key: str | None = None) -> MultipartUpload:
    """The open upload ``upload_id`` of ``key``, else NoSuchUpload."""
    upload = find_open(db, upload_id)
    if upload is None or (key is not None and upload.key != key):
        target = "" if key is None else f" of key {key!r}"
        raise NoSuchUpload(
            f"no multipart upload {upload_id!r}{target} is open (never created, completed "
            "or aborted)"
        )
    return upload


def store_part(
    db: sqlite3.Connection,
    segment: Segment,
    upload_id: str,
    part_number: int,
    modified: float,
) -> list[str]:
    open_upload(db, upload_id)
    state = sqlrows.state_of(db, segment.upload_id)
    if state is None or state[1] != "pending":
        raise RuntimeError(f"part upload {segment.upload_id} is not pending: {state}")
    replaced = [
        str(row[0])
        for row in db.execute(
            "SELECT upload_id FROM segments WHERE object_upload = ? AND part_number = ?",
            (upload_id, part_number),
        )
    ]
    _detach(db, replaced)
    sqlrows.insert_segment(db, segment, upload_id, part_number)
    db.execute(
        "UPDATE uploads SET state = 'part', modified = ?, size = ?, etag = ? WHERE upload_id = ?",
        (modified, segment.size, segment.md5, segment.upload_id),
    )
    return replaced


def _detach(db: sqlite3.Connection, part_uploads: Sequence[str]) -> None:
    """Take part attempts out of their upload and mark them ``deleting``."""
    for batch in sqlrows.batches(part_uploads):
        marks = sqlrows.marks(batch)
        db.execute(f"UPDATE segments SET object_upload = NULL WHERE upload_id IN ({marks})", batch)
        db.execute(f"UPDATE uploads SET state = 'deleting' WHERE upload_id IN ({marks})", batch)


def completed(db: sqlite3.Connection, upload_id: str, key: str) -> ObjectInfo | None:
    """The object an earlier completion of ``upload_id`` made, if it still stands."""
    row = db.execute(
        f"SELECT {sqlrows.INFO_COLUMNS} FROM uploads WHERE upload_id = ? AND key = ? "
        "AND state = 'committed' AND parts_count IS NOT NULL",
        (upload_id, key),
    ).fetchone()
    return None if row is None else sqlrows.info(row)


def stored_parts(db: sqlite3.Connection, upload_id: str) -> dict[int, StoredPart]:
    """Every stored part of an open upload, by number."""
    rows = db.execute(
        "SELECT segments.upload_id, part_number, segments.size, md5, segments.checksums, "
        "modified FROM segments JOIN uploads USING (upload_id) "
        "WHERE object_upload = ? AND uploads.state = 'part'",
        (upload_id,),
    )
    return {number: StoredPart(attempt, _part(number, *rest)) for attempt, number, *rest in rows}


def _part(number: int, size: int, md5: str, checksums: str, modified: float) -> PartInfo:
    return PartInfo(number, md5, size, _time(modified), json.loads(checksums))


def keep_only(db: sqlite3.Connection, upload_id: str, chosen: Sequence[str]) -> list[str]:
    """Detach and doom every stored part of ``upload_id`` not in ``chosen``."""
    keep = set(chosen)
    doomed = [part.upload_id for part in stored_parts(db, upload_id).values()]
    doomed = [attempt for attempt in doomed if attempt not in keep]
    _detach(db, doomed)
    return doomed


def list_parts(db: sqlite3.Connection, upload_id: str, marker: int, limit: int) -> list[PartInfo]:
    rows = db.execute(
        "SELECT part_number, segments.size, md5, segments.checksums, modified "
        "FROM segments JOIN uploads USING (upload_id) "
        "WHERE object_upload = ? AND uploads.state = 'part' AND part_number > ? "
        "ORDER BY part_number LIMIT ?",
        (upload_id, marker, limit),
    )
    return [_part(*row) for row in rows]


def list_uploads(
    db: sqlite3.Connection,
    prefix: str,
    delimiter: str,
    key_marker: str,
    upload_id_marker: str,
    limit: int,
) -> UploadList:
    """Open uploads by (key, upload id); ``upload_id_marker`` counts only with a key
    marker, as S3 has it."""
    upper = prefix_upper_bound(prefix) if prefix else None

    def fetch(bound: Position, inclusive: bool) -> Iterator[tuple[Position, MultipartUpload]]:
        if len(bound) == 1:
            where, args = f"key {'>=' if inclusive else '>'} ?", list(bound)
        else:
            where, args = "(key, upload_id) > (?, ?)", list(bound)
        query = f"SELECT {_UPLOAD_COLUMNS} FROM uploads WHERE state = 'multipart' AND {where}"
        if upper is not None:
            query += " AND key < ?"
            args.append(upper)
        for row in db.execute(query + " ORDER BY key, upload_id", args):
            yield (row[0], row[1]), _upload(row)

    after = (key_marker, upload_id_marker) if key_marker and upload_id_marker else (key_marker,)
    page = list_page(fetch, prefix=prefix, delimiter=delimiter, after=after, limit=limit)
    next_upload = None
    if page.is_truncated and page.entries[-1][1] is not None:
        next_upload = page.entries[-1][1].upload_id
    return UploadList(page.rows, page.prefixes, page.is_truncated, page.next_marker, next_upload)
