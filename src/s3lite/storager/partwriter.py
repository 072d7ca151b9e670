"""Writing part files (the format is in partfile.py): through a temporary file that is
fsynced and renamed into place, so a part file either is complete or does not exist.

:class:`PartWriter` makes a part file from its payload as the payload streams in,
computing the block checksums with at most one block held back; :class:`StagedPart`
takes a whole part file as received (a member of a sector import) and checks it on
the way in. Out-of-space errors become DiskFull and leave no temporary file.

Everything here blocks; the storage node calls it from worker threads.
"""

from __future__ import annotations

import errno
import os
import tempfile
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn

from ..buffers import Buffer
from ..errors import DiskFull
from .partfile import BLOCK_SIZE, CHECK, HEADER_SIZE, FileChecker, Header, pieces_checksum
from .writeback import WRITEBACK_AFTER, start_writeback

_DISK_FULL = {errno.ENOSPC, errno.EDQUOT}
_IOV_BATCH = 512
"""Buffers per writev call (the system's IOV_MAX is at least 1024)."""


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def replace(source: Path, target: Path) -> int:
    """Rename ``source`` over ``target``; the size of the file replaced, 0 if none.
    Call with the node's namespace lock held."""
    try:
        replaced = target.stat().st_size
    except FileNotFoundError:
        replaced = 0
    os.replace(source, target)
    return replaced


def disk_full(node_id: str, exc: OSError) -> DiskFull | None:
    """A DiskFull for ``exc`` if it is an out-of-space error, else None."""
    if exc.errno in _DISK_FULL:
        return DiskFull(f"node {node_id!r} is out of space: {exc.strerror}")
    return None


class TempFile:
    """A file written under a temporary name in ``temp_dir``; :meth:`commit` makes it
    durable (with ``fsync``) and renames it into place. Out-of-space errors become
    DiskFull and remove the temporary file.

    Not thread-safe: one writer is driven by one task, a call at a time.
    """

    def __init__(self, temp_dir: Path, node_id: str, *, fsync: bool) -> None:
        self._node_id = node_id
        self._fsync = fsync
        self.size = 0
        """Bytes written to the file so far."""
        self._written_back = 0
        """Bytes whose write-back has been started (with fsync only: writeback.py)."""
        self._fd, temp_name = tempfile.mkstemp(dir=temp_dir, prefix="part-")
        self.temp_path = Path(temp_name)
        self._temp_gone = False

    def _fail(self, exc: OSError) -> NoReturn:
        """Remove the temporary file after ``exc`` and raise DiskFull for an
        out-of-space error, ``exc`` itself otherwise."""
        self.abort()
        full = disk_full(self._node_id, exc)
        if full is None:
            raise exc
        raise full from exc

    def write_buffers(self, buffers: Sequence[Buffer]) -> None:
        """Append ``buffers`` in order (a short write is completed)."""
        assert self._fd >= 0, "write after commit or abort"
        views = [memoryview(buffer).cast("B") for buffer in buffers if len(buffer)]
        try:
            while views:
                written = os.writev(self._fd, views[:_IOV_BATCH])
                self.size += written
                while views and written >= len(views[0]):
                    written -= len(views.pop(0))
                if written:
                    views[0] = views[0][written:]
        except OSError as exc:
            self._fail(exc)
        if self._fsync and self.size - self._written_back >= WRITEBACK_AFTER:
            start_writeback(self._fd, self._written_back, self.size - self._written_back)
            self._written_back = self.size

    def _seal(self) -> None:
        """Last writes before the file is made durable (subclasses complete it here)."""

    def _write_at(self, data: bytes, offset: int) -> None:
        view = memoryview(data)
        while view:
            view = view[os.pwrite(self._fd, view, offset) :]
            offset = offset + len(data) - len(view)

    def commit(self, final_path: Path, namespace: threading.Lock) -> int:
        """Complete the file, make it durable and rename it to ``final_path``.

        Returns the size of the file that was replaced (0 if none), for usage
        accounting; ``namespace`` (the node's lock on its file names) makes that size
        and the rename one step, so two writers of one name cannot both see no
        previous file.
        """
        assert self._fd >= 0, "commit after commit or abort"
        try:
            self._seal()
            if self._fsync:
                os.fsync(self._fd)
            os.close(self._fd)
            self._fd = -1
            with namespace:
                replaced = replace(self.temp_path, final_path)
            self._temp_gone = True
            if self._fsync:
                fsync_dir(final_path.parent)
        except OSError as exc:
            self._fail(exc)
        return replaced

    def abort(self) -> None:
        """Close and remove the temporary file; safe to call more than once, and after
        a commit (when there is nothing left to remove)."""
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
        if not self._temp_gone:
            self._temp_gone = True  # nothing left to remove, whatever happens next
            self.temp_path.unlink(missing_ok=True)


class PartWriter(TempFile):
    """Writes one part in the format above from its payload, as it streams in.

    The payload's pieces are written as they are, never joined: a block that spans
    pieces is hashed piece by piece and written as several iovecs, and the start of
    a block still incomplete is held as views of its pieces (so a piece must not
    change once written).
    """

    def __init__(self, temp_dir: Path, node_id: str, *, fsync: bool) -> None:
        super().__init__(temp_dir, node_id, fsync=fsync)
        self.length = 0
        """Payload bytes received so far."""
        self._held: list[memoryview] = []
        self._held_size = 0
        self._blocks = 0
        try:
            self.write_buffers([bytes(HEADER_SIZE)])  # the header goes in at commit
        except BaseException:
            self.abort()
            raise

    def write(self, data: Buffer) -> None:
        """Append payload bytes; whole blocks go to disk, the rest waits for more."""
        self.write_pieces([data])

    def write_pieces(self, pieces: Sequence[Buffer]) -> None:
        """Append the payload bytes of ``pieces`` in order, with one writev per
        :data:`_IOV_BATCH` iovecs; the rest of a block waits for more."""
        frames: list[Buffer] = []
        for piece in pieces:
            view = memoryview(piece).cast("B")
            self.length += len(view)
            while len(view) >= BLOCK_SIZE - self._held_size:
                take = BLOCK_SIZE - self._held_size
                self._held.append(view[:take])
                view = view[take:]
                frames += self._frame()
            if view:
                self._held.append(view)
                self._held_size += len(view)
        self.write_buffers(frames)

    def _frame(self) -> list[Buffer]:
        """The held pieces as one framed block (checksum first); nothing held after."""
        pieces, self._held, self._held_size = self._held, [], 0
        check = CHECK.pack(pieces_checksum(pieces, self._blocks))
        self._blocks += 1
        return [check, *pieces]

    def _seal(self) -> None:
        if self._held:
            self.write_buffers(self._frame())
        self._write_at(Header(self.length).pack(), 0)


class StagedPart(TempFile):
    """A part file arriving whole (a member of a sector import): written as received
    and checked on the way in, every block and the CRC-32 of the file's bytes."""

    def __init__(self, temp_dir: Path, node_id: str, *, fsync: bool) -> None:
        super().__init__(temp_dir, node_id, fsync=fsync)
        self.checker = FileChecker(crc=True)

    def write(self, data: Buffer) -> None:
        """Append file bytes; raises Damage as soon as they stop being a valid part."""
        self.write_pieces([data])

    def write_pieces(self, pieces: Sequence[Buffer]) -> None:
        """:meth:`write` of each of ``pieces``, with one writev."""
        for piece in pieces:
            self.checker.feed(piece)
        self.write_buffers(pieces)
