"""The heal queue's transactions on the SQLite manifest store (``heal_queue`` table;
see healing.py for what the queue is and schema.py for the table)."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence

from .healing import HealItem


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
