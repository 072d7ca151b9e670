"""Blocking operations on a node's sector tree (``sectors/SSS/NAME``).

Each function that adds or removes a name does so under the node's namespace lock
and returns what it changed (bytes, files), so that the node's usage accounting sees
every file exactly once even when calls race. The node runs these in worker threads
and does the accounting in its event loop.
"""

from __future__ import annotations

import logging
import os
import shutil
import threading
from pathlib import Path

from ..errors import PartNotFound
from ..transport.base import NAME_PATTERN, PartStat
from . import partfile, partwriter

log = logging.getLogger(__name__)


def unlink_all(paths: list[Path], namespace: threading.Lock) -> tuple[int, int]:
    """Remove the files that exist; (bytes freed, files removed)."""
    freed = deleted = 0
    for path in paths:
        try:
            with namespace:
                size = path.stat().st_size
                path.unlink()
        except FileNotFoundError:
            continue
        freed += size
        deleted += 1
    return freed, deleted


def list_sector(directory: Path, sector: int) -> list[PartStat]:
    """The part files of a sector, from their headers. Anything else found there (a
    stray file, a part whose header is damaged) is logged and left out: it is not a
    part s3lite can serve, and not one it should delete either (a read or a scrub
    quarantines a damaged part)."""
    stats = []
    try:
        entries = sorted(os.scandir(directory), key=lambda entry: entry.name)
    except FileNotFoundError:
        return []
    for entry in entries:
        if NAME_PATTERN.fullmatch(entry.name) is None or not entry.is_file():
            log.warning("ignoring %s: not a part file", entry.path)
            continue
        try:
            fd = os.open(entry.path, os.O_RDONLY)
        except FileNotFoundError:
            continue
        try:
            header = partfile.read_header(fd)
        except (OSError, partfile.Damage) as exc:
            log.warning("ignoring %s: %s", entry.path, exc)
            continue
        finally:
            os.close(fd)
        stats.append(PartStat(entry.name, sector, header.length))
    return stats


def link(
    source: Path, target: Path, node_id: str, sector: int, namespace: threading.Lock, fsync: bool
) -> int | None:
    """Hard-link ``source`` as ``target``; the bytes newly accounted, or None if a part
    was already at ``target`` (the same file, or a copy: parts are immutable) and is
    kept. With ``fsync`` the link is durable before this returns: the caller records
    the new location next, and then removes the old one."""
    target.parent.mkdir(exist_ok=True)
    with namespace:
        try:
            os.link(source, target)
        except FileExistsError:
            if not source.exists():
                raise PartNotFound(node_id, sector, source.name) from None
            return None
        except FileNotFoundError:
            raise PartNotFound(node_id, sector, source.name) from None
        size = target.stat().st_size
    if fsync:
        partwriter.fsync_dir(target.parent)
    return size


def install(
    staging: Path,
    sectors: Path,
    namespace: threading.Lock,
    fsync: bool,
    added: dict[int, tuple[int, int]],
) -> None:
    """Rename every staged part into the sector tree, recording into ``added`` what
    each sector gained (bytes, files) as it goes, so a failure half way still accounts
    what moved; with ``fsync``, the renames are durable before this returns."""
    touched = []
    for directory in sorted(staging.iterdir()):
        sector = int(directory.name)
        target = sectors / directory.name
        target.mkdir(exist_ok=True)
        touched.append(target)
        for staged in directory.iterdir():
            size = staged.stat().st_size
            with namespace:
                replaced = partwriter.replace(staged, target / staged.name)
            grown, files = added.get(sector, (0, 0))
            added[sector] = (grown + size - replaced, files + (0 if replaced else 1))
    if fsync:
        for directory in [*touched, sectors]:
            partwriter.fsync_dir(directory)


def drop(directory: Path, namespace: threading.Lock) -> tuple[int, int]:
    """Remove a sector directory; (bytes, files) it held."""
    with namespace:
        try:
            sizes = [entry.stat().st_size for entry in os.scandir(directory)]
        except FileNotFoundError:
            return 0, 0
        remove_tree(directory)
    return sum(sizes), len(sizes)


def remove_tree(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)
