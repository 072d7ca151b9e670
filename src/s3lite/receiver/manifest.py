"""Manifests: what a key means, as values.

A key points at one committed upload. An upload has one or more segments (one for a
plain PUT); a segment is striped over six parts, each recorded with the sector it was
placed in, its length and its checksum (xxh3-64 of its bytes, verified when a part is
read whole).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping

import attrs

from .striping import Layout


@attrs.frozen
class PartRecord:
    index: int
    sector: int
    length: int
    checksum: int


@attrs.frozen
class Segment:
    number: int
    size: int
    stripe_unit: int
    parts: tuple[PartRecord, ...]

    @property
    def layout(self) -> Layout:
        return Layout(self.size, self.stripe_unit, len(self.parts))


@attrs.frozen
class ObjectInfo:
    """What HEAD returns about an object."""

    key: str
    size: int
    etag: str
    """Hex MD5 of the object's bytes, unquoted (S3's ETag of a plain PUT)."""
    content_type: str
    last_modified: dt.datetime
    metadata: Mapping[str, str]

    @classmethod
    def of(
        cls,
        key: str,
        size: int,
        etag: str,
        content_type: str,
        modified: float,
        metadata: Mapping[str, str],
    ) -> ObjectInfo:
        """An ObjectInfo from stored fields (``modified`` in Unix seconds)."""
        last_modified = dt.datetime.fromtimestamp(modified, dt.UTC)
        return cls(key, size, etag, content_type, last_modified, metadata)


@attrs.frozen
class Manifest:
    """The committed upload a key points at."""

    key: str
    upload_id: str
    size: int
    etag: str
    content_type: str
    created: float
    last_modified: float
    metadata: Mapping[str, str]
    segments: tuple[Segment, ...]

    @property
    def info(self) -> ObjectInfo:
        return ObjectInfo.of(
            self.key, self.size, self.etag, self.content_type, self.last_modified, self.metadata
        )


@attrs.frozen
class ObjectList:
    """One page of a listing, sorted by key (UTF-8 byte order)."""

    objects: tuple[ObjectInfo, ...]
    is_truncated: bool
    next_start_after: str | None
    """Pass as ``start_after`` to get the next page (None on the last page)."""
