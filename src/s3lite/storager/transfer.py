"""Moving whole sectors between nodes: a node's parts out as a zip stream, and an
archive's parts in. The other half of :class:`StorageNode`'s export and import (it
uses the node's own file opening, damage handling and writing).

Out, each part is verified whole before it is sent (which also gives its zip CRC): a
damaged part is quarantined and left out, so that one bad file does not fail a join.
In, every member is checked block by block as it is staged, and against its zip CRC
and size; anything wrong is CorruptArchive, and the node installs nothing.
"""

from __future__ import annotations

import logging
import os
from collections.abc import AsyncGenerator, AsyncIterable
from contextlib import aclosing
from pathlib import Path
from typing import TYPE_CHECKING

from ..buffers import Buffer
from ..errors import CorruptArchive, DamagedPart, InvalidName, PartNotFound
from ..sectors import check_sector
from ..transport.base import check_name
from . import partfile
from .partfile import Damage, sector_dir_name
from .partwriter import StagedPart
from .quarantine import Quarantined
from .streams import FileStream
from .ziparchive import Member, read_members

if TYPE_CHECKING:
    from .node import StorageNode

log = logging.getLogger(__name__)


async def members(node: StorageNode, sectors: list[int]) -> AsyncGenerator[Member, None]:
    """Each part of ``sectors`` as it is stored, verified whole first (which also
    gives the zip CRC): a damaged part is quarantined and skipped, so that one bad
    file does not fail a join."""
    skipped = 0
    for sector in sectors:
        for stat in await node.list_parts(sector):

            def first_pass(name: str = stat.name, sector: int = sector) -> Member | None:
                try:
                    fd = node._open_fd(sector, name)
                except (PartNotFound, Quarantined):
                    return None  # deleted since the listing: it no longer needs to move
                try:
                    found = partfile.check_file(fd, crc=True)
                except Damage as damage:
                    node._quarantine_closing(fd, sector, name, damage)
                except BaseException:
                    os.close(fd)
                    raise
                stored_as = f"{sector_dir_name(sector)}/{name}"
                return Member(stored_as, found.size, found.crc32, FileStream(fd, found.size))

            try:
                member = await node._checked(sector, stat.name, first_pass)
            except DamagedPart as exc:
                skipped += 1
                log.error("export of sector %d leaves out part %s: %s", sector, stat.name, exc)  # noqa: TRY400 - the reason says it all
                continue
            if member is not None:
                yield member
    if skipped:
        log.error("export of sectors %s left out %d damaged parts", sectors, skipped)


async def stage(
    node: StorageNode, archive: AsyncIterable[Buffer], staging: Path
) -> tuple[int, int]:
    """Write every member of ``archive`` under ``staging`` (``SSS/NAME``), checked on
    the way in; (parts, payload bytes). CorruptArchive for anything wrong, with the
    staged files left for the caller to remove."""
    parts = payload = 0

    def make() -> StagedPart:
        return StagedPart(node._tmp, node.node_id, fsync=node._fsync)

    async with aclosing(read_members(archive)) as entries:
        async for member in entries:
            sector, name = member_location(member.name)
            path = staging / sector_dir_name(sector) / name
            try:
                written = await node._write(member.chunks, make, path, None)
                header = written.checker.finish()
            except Damage as damage:
                raise CorruptArchive(f"member {member.name!r}: {damage}") from damage
            if written.checker.crc32 != member.crc32 or written.size != member.size:
                raise CorruptArchive(
                    f"member {member.name!r}: archive says {member.size} bytes with CRC "
                    f"{member.crc32:#010x}, received {written.size} bytes with CRC "
                    f"{written.checker.crc32:#010x}"
                )
            parts += 1
            payload += header.length
    return parts, payload


def member_location(member_name: str) -> tuple[int, str]:
    directory, _, name = member_name.partition("/")
    try:
        sector = int(directory)
        check_sector(sector)
        check_name(name)
    except (ValueError, InvalidName) as exc:
        raise CorruptArchive(f"member name {member_name!r} is not SSS/part-name") from exc
    return sector, name
