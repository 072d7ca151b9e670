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

import enum
import re
from collections.abc import AsyncIterable, AsyncIterator, Collection, Mapping
from typing import Protocol, runtime_checkable

import attrs

from ..buffers import Buffer
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

    def __aiter__(self) -> AsyncIterator[Buffer]: ...

    async def __anext__(self) -> Buffer: ...

    async def aclose(self) -> None: ...


@runtime_checkable
class SizedByteStream(ByteStream, Protocol):
    """A ByteStream that knows from the start how many bytes it yields in all (a
    part's range). The HTTP node sends that as Content-Length, not in chunked
    framing, which uvicorn writes by joining every chunk with its frame (a copy of
    every byte sent), and which the receiving end must parse."""

    @property
    def size(self) -> int: ...


@attrs.frozen
class PartStat:
    """A part file as a node sees it without reading it: its payload length."""

    name: str
    sector: int
    length: int


class PartState(enum.StrEnum):
    """What :meth:`NodeClient.verify_parts` found for a part."""

    OK = "ok"
    """Every block matches its checksum."""
    MISSING = "missing"
    """The node holds no file of that name (and quarantined none since it was written)."""
    DAMAGED = "damaged"
    """The file is damaged: it was moved to quarantine (now or earlier)."""


@attrs.frozen
class PartCheck:
    """One part as :meth:`NodeClient.verify_parts` found it. For an ``ok`` part,
    ``length`` is its payload length and ``checksum`` the xxh3-64 (seed 0) of its
    payload, which is what a manifest's PartRecord holds; ``reason`` says why a
    ``damaged`` one is."""

    state: PartState
    length: int | None = None
    checksum: int | None = None
    reason: str | None = None

    @classmethod
    def ok(cls, length: int, checksum: int) -> PartCheck:
        return cls(PartState.OK, length, checksum)

    @classmethod
    def missing(cls) -> PartCheck:
        return cls(PartState.MISSING)

    @classmethod
    def damaged(cls, reason: str) -> PartCheck:
        return cls(PartState.DAMAGED, reason=reason)


@attrs.frozen
class NodeHealth:
    """What a node says about itself; cheap to ask (no directory walk), so it is also
    the liveness probe."""

    node_id: str
    parts: int
    bytes_stored: int
    free_bytes: int
    """Free space on the data directory's file system (statvfs, for unprivileged use)."""
    full: bool
    """``free_bytes`` is under the node's reserve: it refuses new parts with DiskFull,
    and still serves reads and deletes."""
    quarantined: int
    """Damaged part files the node moved to its quarantine directory and keeps."""
    replaced: bool
    """The node was started with an empty data directory in place of a lost one
    (``s3lite node --replaced``) and has not been rebuilt yet (see clear_replaced)."""


@attrs.frozen
class QuarantinedPart:
    """A damaged part file kept in a node's quarantine directory."""

    sector: int
    name: str
    reason: str
    time: str
    """When it was quarantined, ISO 8601 in UTC."""


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
        """The node's identity, totals, free space and state; the cheapest call (no
        directory walk), used as a liveness probe."""
        ...

    async def usage(self) -> Mapping[int, int]:
        """Bytes on disk per sector (only sectors holding data appear)."""
        ...

    async def put_part(
        self, sector: int, name: str, body: AsyncIterable[Buffer], *, length: int | None = None
    ) -> PartStat:
        """Store a part durably; replaces a part of the same name (parts are immutable,
        so a second write of a name carries the same bytes). Raises DiskFull when the
        node is full (free space under its reserve) or runs out of space; a body that
        fails or ends early stores nothing. ``length``, when the caller knows it, is
        the body's exact length: the network transport then sends it with a
        Content-Length instead of chunked framing (a copy less per chunk), and a body
        of another length stores nothing."""
        ...

    async def get_part(
        self, sector: int, name: str, start: int | None = None, end: int | None = None
    ) -> ByteStream:
        """Open a part, whole or the inclusive byte range [start, end] of its payload.

        Every block the range touches is verified before any byte of it is yielded.
        Raises PartNotFound, InvalidRange for a range outside the payload, or
        DamagedPart (the file is moved to quarantine): at the call when the header or
        the first blocks read are bad, from the stream when a later block is.
        """
        ...

    async def delete_parts(self, sector: int, names: Collection[str]) -> int:
        """Delete parts if present; returns how many existed. Idempotent."""
        ...

    async def list_parts(self, sector: int) -> list[PartStat]:
        """The parts stored in one sector, sorted by name (from their headers: a file
        whose header is bad is left out and logged)."""
        ...

    async def verify_parts(self, sector: int, names: Collection[str]) -> dict[str, PartCheck]:
        """Read and check every block of the named parts on the node (so a scrub never
        ships their bytes): each is ok (with length and payload checksum), missing or
        damaged (then moved to quarantine). Bounded memory; may take as long as reading
        the parts from disk."""
        ...

    async def list_quarantined(self) -> list[QuarantinedPart]:
        """The damaged files the node keeps in quarantine, oldest first."""
        ...

    async def clear_replaced(self) -> None:
        """Forget that the node's disk was replaced (the healer calls this once it has
        rebuilt the node's parts); ``health().replaced`` is False from then on, across
        restarts. Idempotent."""
        ...

    async def link_part(self, name: str, from_sector: int, to_sector: int) -> None:
        """Make a part also appear in another sector of the same node, moving no bytes.

        The caller records the new location and then deletes the old one (a re-home);
        until then both names refer to the same file.
        """
        ...

    async def export_sectors(self, sectors: Collection[int]) -> ByteStream:
        """A zip stream (stored, zip64) of every part in ``sectors``, named ``SSS/name``,
        each member the part file as stored. Every part is verified before it is sent;
        a damaged one is moved to quarantine, logged and left out (the export goes on).
        """
        ...

    async def import_sectors(self, archive: AsyncIterable[Buffer]) -> ImportResult:
        """Verify and store every part of an archive made by ``export_sectors``;
        ``ImportResult.bytes`` counts payload bytes.

        All or nothing: on a CRC mismatch, a part whose blocks do not match their
        checksums, or a truncated stream, raises CorruptArchive and stores none of the
        archive's parts. Raises DiskFull on a full node.
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
