"""One storage node: part files on disk, grouped by sector.

Layout of a node's data directory::

    node.json            the node's id, written once
    sectors/SSS/NAME     one file per part (see partfile.py), SSS = 000..359
    tmp/                 parts and imports being written; emptied at start

A node knows nothing about objects, manifests or other nodes: it stores named,
immutable blobs in sectors, reports how many bytes each sector holds, and moves whole
sectors in and out as zip streams. Usage is measured from the directory when the node
opens and kept up to date by every change after that.

Blocking file work runs in worker threads so one node can live inside the gateway's
event loop (the embedded default) without stalling it.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import shutil
import threading
from collections.abc import AsyncGenerator, AsyncIterable, Collection
from contextlib import aclosing
from pathlib import Path
from typing import BinaryIO

import anyio
import anyio.to_thread

from ..errors import (
    CorruptArchive,
    DataLoss,
    InvalidName,
    InvalidRange,
    NodeUnavailable,
    PartNotFound,
)
from ..sectors import check_sector
from ..transport.base import (
    NAME_PATTERN,
    ByteStream,
    ImportResult,
    NodeHealth,
    PartStat,
    check_name,
)
from . import partfile
from .partfile import HEADER_SIZE, PartWriter, sector_dir_name
from .ziparchive import Member, read_members, write_archive

log = logging.getLogger(__name__)

WRITE_BATCH = 1 << 20
"""Incoming chunks are gathered up to this many bytes before one write in a worker
thread: fewer thread hops, and the most a part write holds in memory."""

READ_CHUNK = 256 * 1024
"""Bytes per read when streaming a part out."""

NODE_FILE = "node.json"


class StorageNode:
    """A storage node over one data directory. Create it with :meth:`open`."""

    def __init__(self, data_dir: Path, node_id: str, usage: dict[int, int], *, fsync: bool):
        self.data_dir = data_dir
        self.node_id = node_id
        self._usage = usage
        self._fsync = fsync
        self._sectors = data_dir / "sectors"
        self._tmp = data_dir / "tmp"
        self._closed = False
        self._namespace = threading.Lock()
        """Held (in worker threads) across each stat-and-rename/unlink/link, so that
        usage accounting sees every replaced file exactly once."""

    @classmethod
    async def open(
        cls, data_dir: Path | str, node_id: str | None = None, *, fsync: bool = True
    ) -> StorageNode:
        """Open (creating if needed) the node stored in ``data_dir``.

        ``node_id`` names a new node; for an existing one it must match what is stored
        (ValueError otherwise). Without it a new node gets a random id.
        """
        data_dir = Path(data_dir)
        stored_id, usage = await anyio.to_thread.run_sync(_prepare, data_dir, node_id)
        return cls(data_dir, stored_id, usage, fsync=fsync)

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

    def _account(self, sector: int, delta: int) -> None:
        """Add ``delta`` bytes to ``sector``. Concurrent operations may account in another
        order than they hit the disk, so a total can be briefly negative; it is kept
        (sums commute) and only positive totals are reported."""
        total = self._usage.get(sector, 0) + delta
        if total:
            self._usage[sector] = total
        else:
            self._usage.pop(sector, None)

    async def health(self) -> NodeHealth:
        self._check_open()
        usage = await self.usage()
        directories = [self._sectors / sector_dir_name(sector) for sector in usage]
        parts = await anyio.to_thread.run_sync(_count_files, directories)
        return NodeHealth(self.node_id, parts, sum(usage.values()))

    async def usage(self) -> dict[int, int]:
        self._check_open()
        return {sector: size for sector, size in self._usage.items() if size > 0}

    async def put_part(self, sector: int, name: str, body: AsyncIterable[bytes]) -> PartStat:
        self._check_open()
        written = await self._write(body, self._part_path(sector, name), sector)
        return PartStat(name, sector, written.length, written.crc32)

    async def _write(
        self, body: AsyncIterable[bytes], final_path: Path, sector: int | None
    ) -> PartWriter:
        """Stream ``body`` into a part file at ``final_path``, accounting it to ``sector``
        (None: a staged file, not yet in the sector tree).

        The temporary file is created by the first batch, so a small part costs one
        thread hop; on any failure or cancellation it is removed. The last batch, the
        rename and the accounting are shielded from cancellation, so usage always
        matches what is on disk.
        """
        writer: PartWriter | None = None

        def write(batch: bytearray, commit: bool) -> tuple[PartWriter, int]:
            nonlocal writer
            if writer is None:
                final_path.parent.mkdir(exist_ok=True)
                writer = PartWriter(self._tmp, self.node_id, fsync=self._fsync)
            writer.write(batch)
            return writer, writer.commit(final_path, self._namespace) if commit else 0

        pending = bytearray()
        try:
            async for chunk in body:
                pending += chunk
                if len(pending) >= WRITE_BATCH:
                    batch, pending = pending, bytearray()
                    await anyio.to_thread.run_sync(write, batch, False)
            self._check_open()
            with anyio.CancelScope(shield=True):
                done, replaced = await anyio.to_thread.run_sync(write, pending, True)
                if sector is not None:
                    self._account(sector, HEADER_SIZE + done.length - replaced)
        except BaseException:
            if writer is not None:
                writer.abort()
            raise
        return done

    async def get_part(
        self, sector: int, name: str, start: int | None = None, end: int | None = None
    ) -> ByteStream:
        self._check_open()
        path = self._part_path(sector, name)
        handle, length, _ = await anyio.to_thread.run_sync(
            partfile.open_part, path, self.node_id, sector, name
        )
        try:
            first, last = _part_range(length, start, end)
            if first:
                handle.seek(HEADER_SIZE + first)
        except BaseException:
            handle.close()
            raise
        return _FileStream(handle, last - first + 1)

    async def delete_parts(self, sector: int, names: Collection[str]) -> int:
        self._check_open()
        paths = [self._part_path(sector, name) for name in names]
        with anyio.CancelScope(shield=True):
            freed, deleted = await anyio.to_thread.run_sync(_unlink_all, paths, self._namespace)
            self._account(sector, -freed)
        return deleted

    async def list_parts(self, sector: int) -> list[PartStat]:
        self._check_open()
        directory = self._sectors / sector_dir_name(check_sector(sector))
        return await anyio.to_thread.run_sync(_list_sector, directory, sector)

    async def link_part(self, name: str, from_sector: int, to_sector: int) -> None:
        self._check_open()
        source = self._part_path(from_sector, name)
        target = self._part_path(to_sector, name)
        with anyio.CancelScope(shield=True):
            size = await anyio.to_thread.run_sync(
                _link, source, target, self.node_id, from_sector, self._namespace, self._fsync
            )
            self._account(to_sector, size)

    async def drop_sectors(self, sectors: Collection[int]) -> None:
        self._check_open()
        directories = {
            sector: self._sectors / sector_dir_name(check_sector(sector)) for sector in sectors
        }
        for sector, directory in directories.items():
            with anyio.CancelScope(shield=True):
                freed = await anyio.to_thread.run_sync(_drop, directory, self._namespace)
                self._account(sector, -freed)

    async def export_sectors(self, sectors: Collection[int]) -> ByteStream:
        self._check_open()
        for sector in sectors:
            check_sector(sector)
        return write_archive(self._members(sorted(set(sectors))))

    async def _members(self, sectors: list[int]) -> AsyncGenerator[Member, None]:
        for sector in sectors:
            for stat in await self.list_parts(sector):
                path = self._part_path(sector, stat.name)
                try:
                    handle, length, crc = await anyio.to_thread.run_sync(
                        partfile.open_part, path, self.node_id, sector, stat.name
                    )
                except PartNotFound:
                    continue  # deleted since the listing: it no longer needs to move
                yield Member(
                    f"{sector_dir_name(sector)}/{stat.name}",
                    length,
                    crc,
                    _FileStream(handle, length),
                )

    async def import_sectors(self, archive: AsyncIterable[bytes]) -> ImportResult:
        self._check_open()
        staging = self._tmp / f"import-{secrets.token_hex(8)}"
        await anyio.to_thread.run_sync(staging.mkdir)
        try:
            parts, payload = await self._stage(archive, staging)
            self._check_open()
            added: dict[int, int] = {}
            with anyio.CancelScope(shield=True):
                try:
                    await anyio.to_thread.run_sync(
                        _install, staging, self._sectors, self._namespace, self._fsync, added
                    )
                finally:
                    for sector, delta in added.items():
                        self._account(sector, delta)
        finally:
            with anyio.CancelScope(shield=True):
                await anyio.to_thread.run_sync(_remove_tree, staging)
        return ImportResult(parts, payload)

    async def _stage(self, archive: AsyncIterable[bytes], staging: Path) -> tuple[int, int]:
        parts = payload = 0
        async with aclosing(read_members(archive)) as members:
            async for member in members:
                sector, name = _member_location(member.name)
                path = staging / sector_dir_name(sector) / name
                written = await self._write(member.chunks, path, None)
                if written.crc32 != member.crc32 or written.length != member.size:
                    raise CorruptArchive(
                        f"member {member.name!r}: archive says {member.size} bytes with CRC "
                        f"{member.crc32:#010x}, received {written.length} bytes with CRC "
                        f"{written.crc32:#010x}"
                    )
                parts += 1
                payload += written.length
        return parts, payload


def _part_range(length: int, start: int | None, end: int | None) -> tuple[int, int]:
    """Inclusive payload range to read; the whole payload when both are None."""
    if start is None and end is None:
        return 0, length - 1
    first = 0 if start is None else start
    last = length - 1 if end is None else end
    if not 0 <= first <= last < length:
        raise InvalidRange(f"range {start}-{end} is outside a part of {length} bytes", size=length)
    return first, last


class _FileStream:
    """Streams ``remaining`` bytes of an open file; closing it closes the file."""

    def __init__(self, handle: BinaryIO, remaining: int) -> None:
        self._handle = handle
        self._remaining = remaining

    def __aiter__(self) -> _FileStream:
        return self

    async def __anext__(self) -> bytes:
        if self._remaining <= 0 or self._handle.closed:
            await self.aclose()
            raise StopAsyncIteration
        size = min(READ_CHUNK, self._remaining)
        chunk = await anyio.to_thread.run_sync(self._handle.read, size)
        if not chunk:
            await self.aclose()
            raise DataLoss(f"part file {self._handle.name} ended {self._remaining} bytes early")
        self._remaining -= len(chunk)
        return chunk

    async def aclose(self) -> None:
        self._handle.close()


def _member_location(member_name: str) -> tuple[int, str]:
    directory, _, name = member_name.partition("/")
    try:
        sector = int(directory)
        check_sector(sector)
        check_name(name)
    except (ValueError, InvalidName) as exc:
        raise CorruptArchive(f"member name {member_name!r} is not SSS/part-name") from exc
    return sector, name


def _prepare(data_dir: Path, node_id: str | None) -> tuple[str, dict[int, int]]:
    """Create the layout, settle the node id, clear temp files and measure usage."""
    (data_dir / "sectors").mkdir(parents=True, exist_ok=True)
    identity = data_dir / NODE_FILE
    if identity.exists():
        stored = json.loads(identity.read_text())["node_id"]
        if node_id is not None and node_id != stored:
            raise ValueError(f"{data_dir} belongs to node {stored!r}, not {node_id!r}")
        node_id = stored
    else:
        node_id = node_id or f"node-{secrets.token_hex(4)}"
        check_name(node_id)
        temp = identity.with_name(f".{NODE_FILE}.tmp")
        temp.write_text(json.dumps({"node_id": node_id}))
        os.replace(temp, identity)  # a node never finds half an identity
    _remove_tree(data_dir / "tmp")
    (data_dir / "tmp").mkdir()
    usage: dict[int, int] = {}
    for entry in os.scandir(data_dir / "sectors"):
        if entry.is_dir() and entry.name.isdigit():
            total = sum(f.stat().st_size for f in os.scandir(entry.path) if f.is_file())
            if total:
                usage[int(entry.name)] = total
    return node_id, usage


def _count_files(directories: list[Path]) -> int:
    return sum(len(os.listdir(directory)) for directory in directories if directory.exists())


def _unlink_all(paths: list[Path], namespace: threading.Lock) -> tuple[int, int]:
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


def _list_sector(directory: Path, sector: int) -> list[PartStat]:
    """The part files of a sector. Anything else found there (a stray file, a part
    whose header is damaged) is logged and left out: it is not a part s3lite can
    serve, and not one it should delete either."""
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
            with open(entry.path, "rb") as handle:
                length, crc = partfile.read_header(handle, Path(entry.path))
        except FileNotFoundError:
            continue
        except (OSError, DataLoss) as exc:
            log.warning("ignoring %s: %s", entry.path, exc)
            continue
        stats.append(PartStat(entry.name, sector, length, crc))
    return stats


def _link(
    source: Path, target: Path, node_id: str, sector: int, namespace: threading.Lock, fsync: bool
) -> int:
    """Hard-link ``source`` as ``target``; returns the bytes newly accounted. A part
    already at ``target`` (the same file, or a copy: parts are immutable) is kept.
    With ``fsync`` the link is durable before this returns: the caller records the new
    location next, and then removes the old one."""
    target.parent.mkdir(exist_ok=True)
    with namespace:
        try:
            os.link(source, target)
        except FileExistsError:
            if not source.exists():
                raise PartNotFound(node_id, sector, source.name) from None
            return 0
        except FileNotFoundError:
            raise PartNotFound(node_id, sector, source.name) from None
        size = target.stat().st_size
    if fsync:
        partfile.fsync_dir(target.parent)
    return size


def _install(
    staging: Path, sectors: Path, namespace: threading.Lock, fsync: bool, added: dict[int, int]
) -> None:
    """Rename every staged part into the sector tree, recording into ``added`` the bytes
    each sector gained as it goes (so a failure half way still accounts what moved);
    with ``fsync``, the renames are durable before this returns."""
    touched = []
    for directory in sorted(staging.iterdir()):
        sector = int(directory.name)
        target = sectors / directory.name
        target.mkdir(exist_ok=True)
        touched.append(target)
        for staged in directory.iterdir():
            size = staged.stat().st_size
            with namespace:
                replaced = partfile.replace(staged, target / staged.name)
            added[sector] = added.get(sector, 0) + size - replaced
    if fsync:
        for directory in [*touched, sectors]:
            partfile.fsync_dir(directory)


def _drop(directory: Path, namespace: threading.Lock) -> int:
    """Remove a sector directory; returns the bytes it held."""
    with namespace:
        try:
            freed = sum(entry.stat().st_size for entry in os.scandir(directory))
        except FileNotFoundError:
            return 0
        _remove_tree(directory)
    return freed


def _remove_tree(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)
