"""Where a storage node puts part files it found damaged: out of its sectors, never
served again, kept for inspection.

Layout under the node's data directory::

    quarantine/ENTRY/info.json   {"sector", "name", "reason", "time"}
    quarantine/ENTRY/NAME        the damaged file, as it was found

``ENTRY`` is unique (time and a random suffix), so a part that is damaged, rebuilt
and damaged again keeps both copies. An entry is complete once its file is in it:
``info.json`` is written first, then the file is renamed in, so a crash in between
leaves an entry without a file, removed at the next start.

Besides the files, the node remembers which names it quarantined since they were
last written, so a read of such a name says "damaged" rather than "not found" (the
gateway then knows to rebuild it, and a client that saw a stream break mid-way can
learn why). Writing, linking over, deleting or dropping a name forgets it.

Everything here blocks; the node calls it from worker threads.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import secrets
import shutil
import threading
from pathlib import Path

from ..transport.base import QuarantinedPart

log = logging.getLogger(__name__)

QUARANTINE_DIR = "quarantine"
INFO_FILE = "info.json"


class Quarantined(Exception):
    """Raised in a node's worker thread once a damaged file was moved to quarantine (or
    was found there already); the node accounts ``freed`` bytes (None: nothing moved
    now) and raises DamagedPart."""

    def __init__(self, reason: str, freed: int | None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.freed = freed


class Quarantine:
    """The quarantine directory of one node. Create it with :meth:`load`."""

    def __init__(self, root: Path, entries: list[QuarantinedPart]) -> None:
        self.root = root
        self.count = len(entries)
        """Damaged files kept here: counted at start, then counted up as files come
        in (files an operator removes meanwhile are noticed at the next start)."""
        self._recent = {(entry.sector, entry.name): entry.reason for entry in entries}
        self._lock = threading.Lock()
        """Guards ``count`` and the names: worker threads move files in while the
        node's event loop asks and forgets."""

    @classmethod
    def load(cls, root: Path, sectors: Path) -> Quarantine:
        """Read ``root`` (creating it). A name whose part is back in ``sectors`` (the
        node's sector tree) is not reported as damaged, whatever its history."""
        root.mkdir(exist_ok=True)
        entries = sorted(_entries(root, clean=True), key=_time)
        quarantine = cls(root, entries)
        for entry in entries:
            if (sectors / f"{entry.sector:03d}" / entry.name).exists():
                quarantine.forget(entry.sector, [entry.name])
        return quarantine

    def move(
        self,
        path: Path,
        sector: int,
        name: str,
        reason: str,
        identity: tuple[int, int],
        namespace: threading.Lock,
    ) -> bool:
        """Move the damaged file at ``path`` into quarantine; False if ``path`` no
        longer names that file (``identity``: its device and inode, taken from the open
        file found damaged), because it was deleted or replaced by a healthy copy in
        the meantime."""
        entry = self.root / f"{_now():%Y%m%dT%H%M%S}-{sector:03d}-{secrets.token_hex(4)}"
        entry.mkdir()
        info = {"sector": sector, "name": name, "reason": reason, "time": _now().isoformat()}
        (entry / INFO_FILE).write_text(json.dumps(info))
        with namespace:
            try:
                found = path.stat()
            except FileNotFoundError:
                found = None
            if found is None or (found.st_dev, found.st_ino) != identity:
                shutil.rmtree(entry, ignore_errors=True)
                return False
            os.rename(path, entry / name)
            with self._lock:
                self.count += 1
                self._recent[sector, name] = reason
        log.error("part %s of sector %d is damaged (%s): moved to %s", name, sector, reason, entry)
        return True

    def reason(self, sector: int, name: str) -> str | None:
        """Why ``name`` was quarantined, if it was since it was last written."""
        with self._lock:
            return self._recent.get((sector, name))

    def forget(self, sector: int, names: list[str] | None = None) -> None:
        """``names`` (every name, with None) of ``sector`` were written or removed."""
        with self._lock:
            if names is None:
                for key in [key for key in self._recent if key[0] == sector]:
                    del self._recent[key]
            else:
                for name in names:
                    self._recent.pop((sector, name), None)

    def list(self) -> list[QuarantinedPart]:
        """Every file kept here, oldest first."""
        return sorted(_entries(self.root, clean=False), key=_time)


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _time(entry: QuarantinedPart) -> str:
    return entry.time


def _entries(root: Path, *, clean: bool) -> list[QuarantinedPart]:
    """The complete entries under ``root``. With ``clean`` (at start, when no move is
    under way) incomplete ones, left by a crash between writing info.json and moving
    the file in, are removed."""
    found = []
    for directory in root.iterdir():
        try:
            info = json.loads((directory / INFO_FILE).read_text())
            entry = QuarantinedPart(
                int(info["sector"]), str(info["name"]), str(info["reason"]), str(info["time"])
            )
        except (OSError, ValueError, KeyError, TypeError):
            if clean:
                log.warning("ignoring %s: not a quarantine entry", directory)
            continue
        if (directory / entry.name).is_file():
            found.append(entry)
        elif clean:
            shutil.rmtree(directory, ignore_errors=True)
    return found
