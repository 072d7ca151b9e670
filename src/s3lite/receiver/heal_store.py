"""The heal queue's transactions on the SQLite manifest store (``heal_queue`` table;
see healing.py for what the queue is and schema.py for the table)."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence

from . import sqlrows
from .healing import HealItem
from .manifest import PartRecord, Segment


def queue(db: sqlite3.Connection, items: Sequence[HealItem]) -> None:
    db.executemany(
        "INSERT INTO heal_queue (upload_id, segment, reason, detail, queued) "
        "VALUES (?, ?, ?, ?, ?) "
        "ON CONFLICT (upload_id, segment, reason) DO UPDATE SET detail = excluded.detail",
        [(i.upload_id, i.segment, i.reason.value, i.detail, i.queued) for i in items],
    )


def oldest(db: sqlite3.Connection, limit: int) -> list[HealItem]:
    rows = db.execute(
        "SELECT upload_id, segment, reason, detail, queued FROM heal_queue "
        "ORDER BY queued, upload_id, segment LIMIT ?",
        (limit,),
    )
    return [HealItem(*row) for row in rows]


def done(db: sqlite3.Connection, upload_id: str, segment: int) -> int:
    cursor = db.execute(
        "DELETE FROM heal_queue WHERE upload_id = ? AND segment = ?", (upload_id, segment)
    )
    return cursor.rowcount


def size(db: sqlite3.Connection) -> int:
    row = db.execute("SELECT COUNT(*) FROM (SELECT DISTINCT upload_id, segment FROM heal_queue)")
    return int(row.fetchone()[0])


# -- the healer's transactions (healer.py) ------------------------------------------------

_LIVE = "(SELECT state FROM uploads WHERE uploads.upload_id = segments.upload_id) != 'deleting'"
"""A segment whose upload is not being deleted."""


def scan(db: sqlite3.Connection, after: tuple[str, int], limit: int) -> list[tuple[Segment, str]]:
    """Up to ``limit`` live segments after ``after`` (upload id, segment number), in
    that order, each with the storage class of the object (or open multipart upload)
    it belongs to."""
    rows = db.execute(
        f"SELECT {sqlrows.SEGMENT_COLUMNS}, "
        "(SELECT storage_class FROM uploads WHERE upload_id = "
        "COALESCE(segments.object_upload, segments.upload_id)) "
        f"FROM segments WHERE (upload_id, segment) > (?, ?) AND {_LIVE} "
        "ORDER BY upload_id, segment LIMIT ?",
        (*after, limit),
    ).fetchall()
    return [(sqlrows.load_segment(db, row[:-1]), str(row[-1] or "STANDARD")) for row in rows]


def position(db: sqlite3.Connection, after: tuple[str, int]) -> tuple[int, int]:
    """(segments up to ``after``, all segments): how far a scan is."""
    done = db.execute(
        "SELECT COUNT(*) FROM segments WHERE (upload_id, segment) <= (?, ?)", after
    ).fetchone()[0]
    total = db.execute("SELECT COUNT(*) FROM segments").fetchone()[0]
    return int(done), int(total)


def reserve_parity(db: sqlite3.Connection, segment: Segment, records: Sequence[PartRecord]) -> bool:
    """Add parity parts to a segment, recorded ``missing`` until they are written
    (so a delete meanwhile deletes them too, and the janitor never takes them for
    orphans), and raise its parity; False (nothing changed) if the segment is gone,
    being deleted, or no longer has the parity it had."""
    row = db.execute(
        f"SELECT parity FROM segments WHERE upload_id = ? AND segment = ? AND {_LIVE}",
        (segment.upload_id, segment.number),
    ).fetchone()
    if row is None or row[0] != segment.parity:
        return False
    db.executemany(
        "INSERT INTO parts (upload_id, segment, idx, sector, length, checksum, missing) "
        "VALUES (?, ?, ?, ?, ?, ?, 1)",
        [(segment.upload_id, segment.number, r.index, r.sector, r.length, f"{r.checksum:016x}")
         for r in records],
    )  # fmt: skip
    db.execute(
        "UPDATE segments SET parity = ? WHERE upload_id = ? AND segment = ?",
        (segment.parity + len(records), segment.upload_id, segment.number),
    )
    return True


def mark_stored(db: sqlite3.Connection, segment: Segment, records: Sequence[PartRecord]) -> bool:
    """Record rebuilt parts as stored (not missing, with their checksum); False
    (nothing changed) if the segment is gone or being deleted, or a part's row
    moved to another sector meanwhile."""
    live = db.execute(
        f"SELECT 1 FROM segments WHERE upload_id = ? AND segment = ? AND {_LIVE}",
        (segment.upload_id, segment.number),
    ).fetchone()
    if live is None:
        return False
    sectors = dict(
        db.execute(
            "SELECT idx, sector FROM parts WHERE upload_id = ? AND segment = ?",
            (segment.upload_id, segment.number),
        ).fetchall()
    )
    if any(sectors.get(record.index) != record.sector for record in records):
        return False
    db.executemany(
        "UPDATE parts SET missing = 0, length = ?, checksum = ? "
        "WHERE upload_id = ? AND segment = ? AND idx = ?",
        [(r.length, f"{r.checksum:016x}", segment.upload_id, segment.number, r.index)
         for r in records],
    )  # fmt: skip
    return True


def get_state(db: sqlite3.Connection, name: str) -> str | None:
    row = db.execute("SELECT value FROM heal_state WHERE name = ?", (name,)).fetchone()
    return None if row is None else str(row[0])


def set_state(db: sqlite3.Connection, name: str, value: str) -> None:
    db.execute(
        "INSERT INTO heal_state (name, value) VALUES (?, ?) "
        "ON CONFLICT (name) DO UPDATE SET value = excluded.value",
        (name, value),
    )
