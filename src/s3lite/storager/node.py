"""One storage node: part files on disk, grouped by sector.

A node knows nothing about objects, manifests or other nodes: it stores named,
immutable blobs in sectors, reports how many bytes and files each sector holds, and
moves whole sectors in and out as zip streams. Its data directory is described in
layout.py, a part file in partfile.py.

Integrity: every read checks the blocks it touches against their checksums before a
byte of them leaves the node; so do scrubs (:meth:`StorageNode.verify_parts`) and
exports. A file found damaged is moved to quarantine (quarantine.py), never served
again, and the caller gets DamagedPart.

Space: a node whose file system has less free space than its *reserve* is full: it
refuses new parts and imports with DiskFull (before storing anything), and still
serves reads, deletes and everything else. ``health()`` reports it.

Usage and part counts are measured from the directory when the node opens and kept
up to date by every change after that, so ``health()`` walks nothing. Blocking file
work runs in worker threads so one node can live inside the gateway's event loop
(the embedded default) without stalling it.
"""

from __future__ import annotations

import os
import secrets
import threading
from collections.abc import AsyncIterable, Callable, Collection, Sequence
from pathlib import Path
from typing import NoReturn, Protocol, TypeVar

import anyio
import anyio.to_thread

from ..buffers import Buffer
from ..errors import (
    BodyLengthMismatch,
    DamagedPart,
    DiskFull,
    InvalidRange,
    NodeUnavailable,
    PartNotFound,
)
from ..sectors import check_sector
from ..transport.base import (
    ByteStream,
    ImportResult,
    NodeHealth,
    PartCheck,
    PartStat,
    QuarantinedPart,
    check_name,
)
from . import layout, partfile, sectorfiles, transfer
from .partfile import Damage, RangeReader, sector_dir_name
from .partwriter import PartWriter
from .quarantine import QUARANTINE_DIR, Quarantine, Quarantined
from .streams import PartStream
from .writethread import WriteThread
from .ziparchive import write_archive

WRITE_BATCH = 1 << 20
"""Incoming chunks are gathered (as they are, not joined) up to this many bytes before
they are handed to the part's writer thread: fewer thread wake-ups, and a bound on
what a part write holds in memory."""

WRITE_QUEUE = 2 * WRITE_BATCH
"""Bytes a part's write thread may have queued (and being written) before the loop
waits for it: with the batch being gathered, what a part write holds in memory."""

READ_BATCH = 256 * 1024
"""Payload bytes read, verified and sent at a time when streaming a part out."""

CACHED_READS = hasattr(os, "RWF_NOWAIT")
"""Whether a read can ask for the page cache's bytes only (Linux): part reads then
skip the worker thread whenever the page cache has their bytes."""

DEFAULT_RESERVE = 256 << 20
"""Free space under which a node is full and refuses new parts (``--reserve``)."""

T = TypeVar("T")


class _Writer(Protocol):
    size: int

    def write_pieces(self, pieces: Sequence[Buffer]) -> None: ...

    def commit(self, final_path: Path, namespace: threading.Lock) -> int: ...

    def abort(self) -> None: ...


W = TypeVar("W", bound=_Writer)


class StorageNode:
    """A storage node over one data directory. Create it with :meth:`open`."""

    def __init__(
        self,
        data_dir: Path,
        identity: layout.Identity,
        measured: layout.Measured,
        quarantine: Quarantine,
        *,
        fsync: bool,
        reserve: int,
    ) -> None:
        self.data_dir = data_dir
        self.node_id = identity.node_id
        self.reserve = reserve
        self._replaced = identity.replaced
        self._identity_lock = anyio.Lock()
        self._usage = measured.usage
        self._parts = measured.parts
        self._quarantine = quarantine
        self._fsync = fsync
        self._sectors = data_dir / "sectors"
        self._tmp = data_dir / "tmp"
        self._closed = False
        self._namespace = threading.Lock()
        """Held (in worker threads) across each stat-and-rename/unlink/link, so that
        usage accounting sees every replaced file exactly once."""

    @classmethod
    async def open(
        cls,
        data_dir: Path | str,
        node_id: str | None = None,
        *,
        fsync: bool = True,
        reserve: int = DEFAULT_RESERVE,
        replaced: bool = False,
    ) -> StorageNode:
        """Open (creating if needed) the node stored in ``data_dir``.

        ``node_id`` names a new node; for an existing one it must match what is stored
        (ValueError otherwise). Without it a new node gets a random id. ``reserve`` is
        the free space (bytes) under which the node refuses new parts. ``replaced``
        starts an existing node id on an empty data directory after its disk was lost
        (see layout.prepare; ValueError for a directory that is not empty).
        """
        if isinstance(reserve, bool) or not isinstance(reserve, int) or reserve < 0:
            raise ValueError(f"reserve must be a number of bytes >= 0, got {reserve!r}")
        data_dir = Path(data_dir)

        def prepare() -> tuple[layout.Identity, layout.Measured, Quarantine]:
            identity = layout.prepare(data_dir, node_id, replaced=replaced)
            sectors = data_dir / "sectors"
            quarantine = Quarantine.load(data_dir / QUARANTINE_DIR, sectors)
            return identity, layout.measure(sectors), quarantine

        identity, measured, quarantine = await anyio.to_thread.run_sync(prepare)
        return cls(data_dir, identity, measured, quarantine, fsync=fsync, reserve=reserve)

    @property
    def address(self) -> str:
        return f"memory://{self.node_id}"

    def close(self) -> None:
        """Refuse every further call with NodeUnavailable (what a stopped node does)."""
        self._closed = True

    def _check_open(self) -> None:
        if self._closed:
            raise NodeUnavailable(self.node_id, "the node is closed")

    def _part_path(self, sector: int, name: str) -> Path:
        return self._sectors / sector_dir_name(check_sector(sector)) / check_name(name)

    def _account(self, sector: int, size: int, files: int) -> None:
        """Add ``size`` bytes and ``files`` part files to ``sector``. Concurrent
        operations may account in another order than they hit the disk, so a total can
        be briefly negative; it is kept (sums commute) and only positive totals are
        reported."""
        for totals, delta in ((self._usage, size), (self._parts, files)):
            total = totals.get(sector, 0) + delta
            if total:
                totals[sector] = total
            else:
                totals.pop(sector, None)

    # -- state -------------------------------------------------------------------------

    def _free_bytes(self) -> int:
        stats = os.statvfs(self.data_dir)
        return stats.f_bavail * stats.f_frsize

    def _refuse_if_full(self) -> None:
        """(Blocking) DiskFull if free space is under the reserve."""
        free = self._free_bytes()
        if free < self.reserve:
            raise DiskFull(
                f"node {self.node_id!r} is full: {free} bytes free, under its reserve of "
                f"{self.reserve} bytes; it stores no new parts"
            )

    async def health(self) -> NodeHealth:
        self._check_open()
        free = await anyio.to_thread.run_sync(self._free_bytes)
        return NodeHealth(
            node_id=self.node_id,
            parts=sum(count for count in self._parts.values() if count > 0),
            bytes_stored=sum(size for size in self._usage.values() if size > 0),
            free_bytes=free,
            full=free < self.reserve,
            quarantined=self._quarantine.count,
            replaced=self._replaced,
        )

    async def usage(self) -> dict[int, int]:
        self._check_open()
        return {sector: size for sector, size in self._usage.items() if size > 0}

    async def clear_replaced(self) -> None:
        """Idempotent, and one at a time: the gateway's background healer and an
        operator's ``s3lite heal --node`` may both end a rebuild and clear the flag at
        once, and node.json is rewritten through one temporary name."""
        self._check_open()
        async with self._identity_lock:
            if self._replaced:
                identity = layout.Identity(self.node_id)
                await anyio.to_thread.run_sync(layout.write_identity, self.data_dir, identity)
                self._replaced = False

    async def list_quarantined(self) -> list[QuarantinedPart]:
        self._check_open()
        return await anyio.to_thread.run_sync(self._quarantine.list)

    # -- writing -----------------------------------------------------------------------

    async def put_part(
        self, sector: int, name: str, body: AsyncIterable[Buffer], *, length: int | None = None
    ) -> PartStat:
        self._check_open()
        path = self._part_path(sector, name)

        def make() -> PartWriter:
            return PartWriter(self._tmp, self.node_id, fsync=self._fsync)

        written = await self._write(body, make, path, sector, length)
        return PartStat(name, sector, written.length)

    async def _write(
        self,
        body: AsyncIterable[Buffer],
        make: Callable[[], W],
        final_path: Path,
        sector: int | None,
        length: int | None = None,
    ) -> W:
        """Stream ``body`` through a writer from ``make`` into ``final_path``, accounting
        it to ``sector`` (None: a staged file, not yet in the sector tree); a body that
        is not ``length`` bytes long (if given) raises BodyLengthMismatch, storing
        nothing.

        The writer (and its temporary file) is created after checking the node is not
        full, by the first batch: a body that ends within one batch costs one thread
        hop, written and committed at once; a longer one goes through a WriteThread
        (writethread.py), which writes while the loop goes on receiving. A chunk must
        not change once the body has yielded it (the writes lag behind the body). On
        any failure or cancellation the temporary file is removed before this returns.
        The last batch, the rename and the accounting are shielded from cancellation,
        so usage always matches what is on disk.
        """
        writer: W | None = None
        thread: WriteThread[W] | None = None

        def start() -> W:
            self._refuse_if_full()
            final_path.parent.mkdir(exist_ok=True)
            return make()

        def complete(done: W) -> tuple[W, int]:
            return done, done.commit(final_path, self._namespace)

        def write_all(pieces: Sequence[Buffer]) -> tuple[W, int]:
            nonlocal writer
            writer = start()
            writer.write_pieces(pieces)
            return complete(writer)

        pending: list[Buffer] = []
        gathered = received = 0
        try:
            async for chunk in body:
                received += len(chunk)
                pending.append(chunk)  # as is: the writer takes pieces, never joined
                gathered += len(chunk)
                if gathered < WRITE_BATCH:
                    continue
                if thread is None:
                    thread = WriteThread(start, WRITE_QUEUE)
                full = thread.put(pending, gathered)
                pending, gathered = [], 0
                if full:
                    await thread.wait_room()
            _check_length(length, received)
            self._check_open()
            with anyio.CancelScope(shield=True):
                if thread is None:
                    done, replaced = await anyio.to_thread.run_sync(write_all, pending)
                else:
                    done, replaced = await thread.finish(pending, complete)
                if sector is not None:
                    self._account(sector, done.size - replaced, 0 if replaced else 1)
                    self._quarantine.forget(sector, [final_path.name])
        except BaseException:
            if thread is not None:
                await thread.stop()
            if writer is not None:
                writer.abort()
            raise
        return done

    async def delete_parts(self, sector: int, names: Collection[str]) -> int:
        self._check_open()
        paths = [self._part_path(sector, name) for name in names]
        with anyio.CancelScope(shield=True):
            freed, deleted = await anyio.to_thread.run_sync(
                sectorfiles.unlink_all, paths, self._namespace
            )
            self._account(sector, -freed, -deleted)
            self._quarantine.forget(sector, [path.name for path in paths])
        return deleted

    async def link_part(self, name: str, from_sector: int, to_sector: int) -> None:
        self._check_open()
        source = self._part_path(from_sector, name)
        target = self._part_path(to_sector, name)
        with anyio.CancelScope(shield=True):
            size = await anyio.to_thread.run_sync(
                sectorfiles.link,
                source,
                target,
                self.node_id,
                from_sector,
                self._namespace,
                self._fsync,
            )
            if size is not None:
                self._account(to_sector, size, 1)
                self._quarantine.forget(to_sector, [name])

    async def drop_sectors(self, sectors: Collection[int]) -> None:
        self._check_open()
        directories = {
            sector: self._sectors / sector_dir_name(check_sector(sector)) for sector in sectors
        }
        for sector, directory in directories.items():
            with anyio.CancelScope(shield=True):
                freed, files = await anyio.to_thread.run_sync(
                    sectorfiles.drop, directory, self._namespace
                )
                self._account(sector, -freed, -files)
                self._quarantine.forget(sector)

    # -- reading and checking ------------------------------------------------------------

    async def _checked(self, sector: int, name: str, work: Callable[[], T]) -> T:
        """Run ``work`` (blocking) in a worker thread; a damaged file it quarantined
        becomes DamagedPart here, once its bytes are accounted."""
        try:
            return await anyio.to_thread.run_sync(work)
        except Quarantined as exc:
            if exc.freed is not None:
                self._account(sector, -exc.freed, -1)
            raise DamagedPart(self.node_id, sector, name, exc.reason) from None

    def _quarantine_open(self, fd: int, sector: int, name: str, damage: Damage) -> NoReturn:
        """(Blocking) Move the damaged file open as ``fd`` to quarantine, unless its
        name has meanwhile been given to another file; raises Quarantined."""
        found = os.fstat(fd)
        moved = self._quarantine.move(
            self._part_path(sector, name),
            sector,
            name,
            str(damage),
            (found.st_dev, found.st_ino),
            self._namespace,
        )
        freed = partfile.written_size(fd) if moved else None
        raise Quarantined(str(damage), freed) from damage

    def _quarantine_closing(self, fd: int, sector: int, name: str, damage: Damage) -> NoReturn:
        """:meth:`_quarantine_open`, then close ``fd`` whatever happens."""
        try:
            self._quarantine_open(fd, sector, name, damage)
        finally:
            os.close(fd)

    def _read_checked(self, reader: RangeReader, sector: int, name: str) -> memoryview:
        """(Blocking) ``reader.read()``, quarantining the file if it is damaged."""
        try:
            return reader.read()
        except Damage as damage:
            self._quarantine_open(reader.fd, sector, name, damage)

    def _open_fd(self, sector: int, name: str) -> int:
        """(Blocking) The part's file, opened; PartNotFound, or DamagedPart-to-be for a
        name quarantined since it was last written."""
        try:
            return os.open(self._part_path(sector, name), os.O_RDONLY)
        except FileNotFoundError:
            reason = self._quarantine.reason(sector, name)
            if reason is not None:
                raise Quarantined(f"quarantined earlier: {reason}", None) from None
            raise PartNotFound(self.node_id, sector, name) from None

    async def get_part(
        self, sector: int, name: str, start: int | None = None, end: int | None = None
    ) -> ByteStream:
        self._check_open()
        self._part_path(sector, name)  # validate before touching anything

        def open_range() -> tuple[RangeReader, memoryview]:
            fd = self._open_fd(sector, name)
            try:
                header = partfile.read_header(fd)
                first, last = _part_range(header.length, start, end)
            except Damage as damage:
                self._quarantine_closing(fd, sector, name, damage)
            except BaseException:
                os.close(fd)
                raise
            reader = RangeReader(fd, header, first, last, READ_BATCH)  # owns fd now
            try:
                return reader, self._read_checked(reader, sector, name)
            except BaseException:
                reader.close()
                raise

        reader, first_chunk = await self._checked(sector, name, open_range)

        def read_now() -> memoryview | None:
            """The next bytes if the page cache has them all and they check out; None
            for anything else (read_more then reads them again, and waits for the disk,
            quarantines a damaged file or raises as it must)."""
            if not CACHED_READS:
                return None
            try:
                return reader.read(cached_only=True)
            except (OSError, Damage):
                return None

        def read_more() -> memoryview:
            return self._read_checked(reader, sector, name)

        return PartStream(
            reader, first_chunk, read_now, lambda: self._checked(sector, name, read_more)
        )

    async def list_parts(self, sector: int) -> list[PartStat]:
        self._check_open()
        directory = self._sectors / sector_dir_name(check_sector(sector))
        return await anyio.to_thread.run_sync(sectorfiles.list_sector, directory, sector)

    async def verify_parts(self, sector: int, names: Collection[str]) -> dict[str, PartCheck]:
        self._check_open()
        checked = [self._part_path(sector, name).name for name in names]
        results: dict[str, PartCheck] = {}
        for name in dict.fromkeys(checked):

            def verify(name: str = name) -> PartCheck:
                try:
                    fd = self._open_fd(sector, name)
                except PartNotFound:
                    return PartCheck.missing()
                try:
                    found = partfile.check_file(fd, payload_checksum=True)
                    return PartCheck.ok(found.finish().length, found.payload_checksum)
                except Damage as damage:
                    self._quarantine_open(fd, sector, name, damage)
                finally:
                    os.close(fd)

            try:
                results[name] = await self._checked(sector, name, verify)
            except DamagedPart as exc:
                results[name] = PartCheck.damaged(exc.reason)
        return results

    # -- moving sectors ----------------------------------------------------------------

    async def export_sectors(self, sectors: Collection[int]) -> ByteStream:
        self._check_open()
        for sector in sectors:
            check_sector(sector)
        return write_archive(transfer.members(self, sorted(set(sectors))))

    async def import_sectors(self, archive: AsyncIterable[Buffer]) -> ImportResult:
        self._check_open()
        staging = self._tmp / f"import-{secrets.token_hex(8)}"
        await anyio.to_thread.run_sync(staging.mkdir)
        try:
            parts, payload = await transfer.stage(self, archive, staging)
            self._check_open()
            added: dict[int, tuple[int, int]] = {}
            with anyio.CancelScope(shield=True):
                try:
                    await anyio.to_thread.run_sync(
                        sectorfiles.install,
                        staging,
                        self._sectors,
                        self._namespace,
                        self._fsync,
                        added,
                    )
                finally:
                    for sector, (size, files) in added.items():
                        self._account(sector, size, files)
                        self._quarantine.forget(sector)
        finally:
            with anyio.CancelScope(shield=True):
                await anyio.to_thread.run_sync(sectorfiles.remove_tree, staging)
        return ImportResult(parts, payload)


def _part_range(length: int, start: int | None, end: int | None) -> tuple[int, int]:
    """Inclusive payload range to read; the whole payload when both are None."""
    if start is None and end is None:
        return 0, length - 1
    first = 0 if start is None else start
    last = length - 1 if end is None else end
    if not 0 <= first <= last < length:
        raise InvalidRange(f"range {start}-{end} is outside a part of {length} bytes", size=length)
    return first, last


def _check_length(expected: int | None, received: int) -> None:
    """BodyLengthMismatch unless a body meant to be ``expected`` bytes long was."""
    if expected is not None and received != expected:
        raise BodyLengthMismatch(declared=expected, received=received)
