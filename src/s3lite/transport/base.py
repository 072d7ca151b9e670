"""The transport interface: how the receiver and orchestrator talk to storage nodes.

A :class:`NodeClient` is one storage node as seen from the gateway; a
:class:`Transport` turns an address into a client. The in-memory transport calls
``StorageNode`` objects directly; the network transport speaks HTTP. Both pass the
same contract tests (``tests/transport/contract.py``).

Bodies stream both ways: uploads take any ``AsyncIterable[bytes]``; downloads return a
:class:`ByteStream`, which the caller must close (``aclose``) if it stops early.
Methods that open something (``get_part``, ``export_sectors``) do so before returning,
so a missing part raises at the call, never in the middle of a stream.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterable, AsyncIterator, Collection, Mapping
from typing import Protocol

import attrs

from ..errors import InvalidName

NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,199}")
"""Part names come from the receiver (``<upload>-<segment>-<index>``); a node still
refuses anything that could escape its directory or collide with its temp files."""


def check_name(name: object) -> str:
    """``name`` if it is a valid part name, else InvalidName."""
    if not isinstance(name, str) or NAME_PATTERN.fullmatch(name) is None:
        raise InvalidName(
            f"part name must match {NAME_PATTERN.pattern} (letters, digits, '.', '_', '-'), "
            f"got {name!r}"
        )
    return name


class ByteStream(Protocol):
    """Byte chunks from a resource (a file, a connection) that ``aclose`` releases.

    ``aclose`` must release the resource even if iteration never started, and may be
    called more than once. (Async generators do not qualify on the first point: one
    that never started ignores ``aclose``.)
    """

    def __aiter__(self) -> AsyncIterator[bytes]: ...

    async def __anext__(self) -> bytes: ...

    async def aclose(self) -> None: ...


@attrs.frozen
class PartStat:
    """A part file as a node sees it: payload length and the CRC-32 of the payload."""

    name: str
    sector: int
    length: int
    crc32: int


@attrs.frozen
class NodeHealth:
    """What a node says about itself."""

    node_id: str
    parts: int
    bytes_stored: int


@attrs.frozen
class ImportResult:
    """What an import added: part files and payload bytes."""

    parts: int
    bytes: int


class NodeClient(Protocol):
    """One storage node. Every method raises NodeUnavailable if the node cannot be reached."""

    @property
    def address(self) -> str: ...

    async def health(self) -> NodeHealth:
        """The node's identity and totals; the cheapest call, used as a liveness probe."""
        ...

    async def usage(self) -> Mapping[int, int]:
        """Bytes on disk per sector (only sectors holding data appear)."""
        ...

    async def put_part(self, sector: int, name: str, body: AsyncIterable[bytes]) -> PartStat:
        """Store a part durably; replaces a part of the same name (parts are immutable,
        so a second write of a name carries the same bytes). Raises DiskFull."""
        ...

    async def get_part(
        self, sector: int, name: str, start: int | None = None, end: int | None = None
    ) -> ByteStream:
        """Open a part, whole or the inclusive byte range [start, end] of its payload.

        Raises PartNotFound, or InvalidRange for a range outside the payload.
        """
        ...

    async def delete_parts(self, sector: int, names: Collection[str]) -> int:
        """Delete parts if present; returns how many existed. Idempotent."""
        ...

    async def list_parts(self, sector: int) -> list[PartStat]:
        """The parts stored in one sector, sorted by name."""
        ...

    async def link_part(self, name: str, from_sector: int, to_sector: int) -> None:
        """Make a part also appear in another sector of the same node, moving no bytes.

        The caller records the new location and then deletes the old one (a re-home);
        until then both names refer to the same file.
        """
        ...

    async def export_sectors(self, sectors: Collection[int]) -> ByteStream:
        """A zip stream (stored, zip64) of every part in ``sectors``, named ``SSS/name``."""
        ...

    async def import_sectors(self, archive: AsyncIterable[bytes]) -> ImportResult:
        """Verify and store every part of an archive made by ``export_sectors``.

        All or nothing: on a CRC mismatch or a truncated stream, raises CorruptArchive
        and stores none of the archive's parts.
        """
        ...

    async def drop_sectors(self, sectors: Collection[int]) -> None:
        """Delete every part in ``sectors``. Idempotent."""
        ...


class Transport(Protocol):
    """Turns node addresses into clients."""

    def connect(self, address: str) -> NodeClient:
        """A client for the node at ``address``; connecting is lazy, errors surface on use."""
        ...

    async def aclose(self) -> None:
        """Release every connection."""
        ...
