"""A storage node's data directory: its identity file, and what is measured at start.

Layout::

    node.json        {"node_id": ID} or {"node_id": ID, "replaced": true}
    sectors/SSS/NAME one file per part (partfile.py), SSS = 000..359
    tmp/             parts and imports being written; emptied at start
    quarantine/      damaged part files, kept for inspection (quarantine.py)

``replaced`` marks a node whose disk was lost and that was started again, empty,
under its old id (``s3lite node --replaced``); it stays until the healer has
rebuilt the node and calls ``clear_replaced``. Usage (bytes and part files per
sector) is measured once here, at start; the node keeps it up to date after that.

Everything here blocks; the node calls it from a worker thread.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
from pathlib import Path

import attrs

from ..transport.base import check_name

NODE_FILE = "node.json"


@attrs.frozen
class Identity:
    node_id: str
    replaced: bool = False


@attrs.frozen
class Measured:
    """What a data directory holds, per sector: bytes on disk and part files."""

    usage: dict[int, int]
    parts: dict[int, int]


def write_identity(data_dir: Path, identity: Identity) -> None:
    """Replace node.json atomically (a node never finds half an identity) and durably."""
    record: dict[str, object] = {"node_id": identity.node_id}
    if identity.replaced:
        record["replaced"] = True
    temp = data_dir / f".{NODE_FILE}.tmp"
    with open(temp, "w") as handle:
        handle.write(json.dumps(record))
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temp, data_dir / NODE_FILE)
    fd = os.open(data_dir, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def prepare(data_dir: Path, node_id: str | None, *, replaced: bool) -> Identity:
    """Create the layout and settle the node's identity.

    ``node_id`` names a new node; for an existing one it must match what is stored
    (ValueError otherwise). Without it a new node gets a random id. ``replaced``
    creates an empty data directory for an existing node id: it needs ``node_id``
    and refuses a directory that holds anything, unless it is that same node,
    still marked replaced (a restart before it was rebuilt). A ``lost+found``
    directory does not count: a new disk's file system comes with one.
    """
    identity_file = data_dir / NODE_FILE
    stored = _stored(identity_file)
    if replaced:
        if not node_id:
            raise ValueError("a replaced node needs its old id (--node-id)")
        same = stored == Identity(node_id, replaced=True)
        if not same and data_dir.exists() and set(os.listdir(data_dir)) - {"lost+found"}:
            raise ValueError(
                f"refusing to start {data_dir} as a replaced node: it is not empty "
                f"(a replaced node starts from an empty data directory)"
            )
        if not same:
            check_name(node_id)
            data_dir.mkdir(parents=True, exist_ok=True)
            write_identity(data_dir, Identity(node_id, replaced=True))
            stored = Identity(node_id, replaced=True)
    data_dir.mkdir(parents=True, exist_ok=True)
    if stored is None:
        stored = Identity(node_id or f"node-{secrets.token_hex(4)}")
        check_name(stored.node_id)
        write_identity(data_dir, stored)
    elif node_id and node_id != stored.node_id:
        raise ValueError(f"{data_dir} belongs to node {stored.node_id!r}, not {node_id!r}")
    (data_dir / "sectors").mkdir(exist_ok=True)
    shutil.rmtree(data_dir / "tmp", ignore_errors=True)
    (data_dir / "tmp").mkdir()
    return stored


def _stored(identity_file: Path) -> Identity | None:
    try:
        record = json.loads(identity_file.read_text())
    except FileNotFoundError:
        return None
    return Identity(str(record["node_id"]), bool(record.get("replaced", False)))


def measure(sectors: Path) -> Measured:
    """Bytes and files per sector directory under ``sectors``."""
    usage: dict[int, int] = {}
    parts: dict[int, int] = {}
    for entry in os.scandir(sectors):
        if entry.is_dir() and entry.name.isdigit():
            sizes = [f.stat().st_size for f in os.scandir(entry.path) if f.is_file()]
            if sizes:
                usage[int(entry.name)] = sum(sizes)
                parts[int(entry.name)] = len(sizes)
    return Measured(usage, parts)
