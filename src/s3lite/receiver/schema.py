"""The manifest database's schema, and the migrations that bring an older file to it.

``PRAGMA user_version`` records the schema a file has. A new file gets the latest
schema at once; a file from an older s3lite is migrated in one transaction when it is
opened, so an existing ``manifests.sqlite3`` keeps every object.

Tables:

* ``uploads``: one row per upload, whatever it is. ``state`` is ``pending`` while
  parts are written (the row exists before any part file does), ``committed`` for an
  object's upload, ``multipart`` for a multipart upload created and neither completed
  nor aborted, ``part`` for a stored UploadPart attempt, ``deleting`` once superseded
  (its part files are deleted, then its rows forgotten).
* ``segments``: a stored segment, under the upload that wrote it; ``object_upload``
  and ``part_number`` say which object (or open multipart upload) it belongs to and
  where: a plain PUT's segment belongs to its own upload, number 0.
* ``parts``: one row per part file, recorded (with its sector) before it is written.
  ``missing`` is 1 for a part of a committed segment that was *not* stored (its node
  failed during the upload, and six others were): its length and checksum are what
  it must hold once the healer writes it.
* ``objects``: key -> the committed upload it means. ``buckets``: names.
* ``heal_queue``: segments the healer must look at, with why (healing.py): the
  seam between the read and write paths, which find problems, and the healer.
* ``heal_state``: the healer's own state across restarts (the scrub's position, the
  bytes it rebuilt), name -> JSON value (healer.py).
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

LATEST = 3

_UPLOADS = """
CREATE TABLE uploads (
    upload_id          TEXT PRIMARY KEY,
    key                TEXT NOT NULL,
    state              TEXT NOT NULL
                       CHECK (state IN ('pending', 'committed', 'deleting', 'multipart', 'part')),
    created            REAL NOT NULL,
    modified           REAL,
    size               INTEGER,
    etag               TEXT,
    content_type       TEXT,
    metadata           TEXT,
    headers            TEXT NOT NULL DEFAULT '{}',
    storage_class      TEXT NOT NULL DEFAULT 'STANDARD',
    checksum_algorithm TEXT,
    checksum_type      TEXT,
    checksums          TEXT NOT NULL DEFAULT '{}',
    parts_count        INTEGER
)"""

_INDEXES = """
CREATE INDEX IF NOT EXISTS uploads_state ON uploads (state, created);
CREATE INDEX IF NOT EXISTS uploads_open ON uploads (key, upload_id) WHERE state = 'multipart';
CREATE INDEX IF NOT EXISTS segments_object ON segments (object_upload, part_number);
"""

_HEAL_QUEUE = """
CREATE TABLE heal_queue (
    upload_id TEXT NOT NULL,
    segment   INTEGER NOT NULL,
    reason    TEXT NOT NULL,
    detail    TEXT NOT NULL DEFAULT '',
    queued    REAL NOT NULL,
    PRIMARY KEY (upload_id, segment, reason)
) WITHOUT ROWID;
CREATE INDEX heal_queue_order ON heal_queue (queued);
"""

_HEAL_STATE = """
CREATE TABLE heal_state (
    name  TEXT PRIMARY KEY,
    value TEXT NOT NULL
) WITHOUT ROWID;
"""

SCHEMA = (
    _UPLOADS
    + """;
CREATE TABLE segments (
    upload_id     TEXT NOT NULL,
    segment       INTEGER NOT NULL,
    size          INTEGER NOT NULL,
    stripe_unit   INTEGER NOT NULL,
    parity        INTEGER NOT NULL DEFAULT 0,
    object_upload TEXT,
    part_number   INTEGER NOT NULL DEFAULT 0,
    md5           TEXT,
    checksums     TEXT NOT NULL DEFAULT '{}',
    PRIMARY KEY (upload_id, segment)
) WITHOUT ROWID;
CREATE TABLE parts (
    upload_id TEXT NOT NULL,
    segment   INTEGER NOT NULL,
    idx       INTEGER NOT NULL,
    sector    INTEGER NOT NULL,
    length    INTEGER,
    checksum  TEXT,
    missing   INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (upload_id, segment, idx)
) WITHOUT ROWID;
CREATE INDEX parts_sector ON parts (sector);
CREATE TABLE objects (
    key       TEXT PRIMARY KEY,
    upload_id TEXT NOT NULL
) WITHOUT ROWID;
CREATE TABLE buckets (
    name    TEXT PRIMARY KEY,
    created REAL NOT NULL
) WITHOUT ROWID;
"""
    + _INDEXES
    + _HEAL_QUEUE
    + _HEAL_STATE
)

_TO_1 = (
    # SQLite cannot alter a CHECK constraint: rebuild uploads with the new states.
    _UPLOADS.replace("CREATE TABLE uploads", "CREATE TABLE uploads_v1")
    + """;
INSERT INTO uploads_v1 (upload_id, key, state, created, modified, size, etag, content_type,
                        metadata)
    SELECT upload_id, key, state, created, modified, size, etag, content_type, metadata
    FROM uploads;
DROP TABLE uploads;
ALTER TABLE uploads_v1 RENAME TO uploads;
ALTER TABLE segments ADD COLUMN parity INTEGER NOT NULL DEFAULT 0;
ALTER TABLE segments ADD COLUMN object_upload TEXT;
ALTER TABLE segments ADD COLUMN part_number INTEGER NOT NULL DEFAULT 0;
ALTER TABLE segments ADD COLUMN md5 TEXT;
ALTER TABLE segments ADD COLUMN checksums TEXT NOT NULL DEFAULT '{}';
UPDATE segments SET object_upload = upload_id,
    md5 = (SELECT etag FROM uploads WHERE uploads.upload_id = segments.upload_id);
"""
    + _INDEXES
)

_TO_2 = (
    """
ALTER TABLE parts ADD COLUMN missing INTEGER NOT NULL DEFAULT 0;
"""
    + _HEAL_QUEUE
)

MIGRATIONS = {0: _TO_1, 1: _TO_2, 2: _HEAL_STATE}
"""user_version -> the script that moves a file from it to the next version."""


def connect(path: Path, durable: bool) -> sqlite3.Connection:
    """Open (creating or migrating) the manifest database at ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
    db.execute("PRAGMA journal_mode = WAL")
    db.execute(f"PRAGMA synchronous = {'FULL' if durable else 'NORMAL'}")
    db.execute("PRAGMA foreign_keys = ON")
    upgrade(db)
    # isolation_level=None is autocommit; `with db:` blocks need explicit transactions.
    db.isolation_level = "DEFERRED"
    return db


def upgrade(db: sqlite3.Connection) -> None:
    """Bring the schema of an autocommit connection to LATEST, in one transaction."""
    db.execute("BEGIN IMMEDIATE")
    try:
        version = db.execute("PRAGMA user_version").fetchone()[0]
        empty = db.execute("SELECT 1 FROM sqlite_master WHERE name = 'uploads'").fetchone() is None
        if empty:
            _script(db, SCHEMA)
        else:
            _check_version(version)
            for step in range(version, LATEST):
                _script(db, MIGRATIONS[step])
        db.execute(f"PRAGMA user_version = {LATEST}")
        db.execute("COMMIT")
    except BaseException:
        db.execute("ROLLBACK")
        raise


def _check_version(version: int) -> None:
    if version > LATEST:
        raise RuntimeError(
            f"the manifest database has schema {version}; this s3lite knows up to {LATEST}"
        )


def _script(db: sqlite3.Connection, script: str) -> None:
    """Run statements one by one (``executescript`` would commit the transaction)."""
    for statement in script.split(";"):
        if statement.strip():
            db.execute(statement)
