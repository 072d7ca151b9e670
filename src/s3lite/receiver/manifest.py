"""Manifests: what a key means, as values.

A key points at one committed *object upload*. Its bytes are one or more segments in
order (one for a plain PUT; one per part for a multipart upload). Each segment names
the upload whose part files hold it (``Segment.upload_id``: the object's own upload
for a plain PUT, the UploadPart attempt that wrote it for a multipart object) and is
striped over six data parts plus ``parity`` parity parts, each recorded with the
sector it was placed in, its length and its checksum (xxh3-64 of its bytes, verified
when a part is read whole).

A part the upload could not store (its node failed mid-upload while at least six
others were stored) is recorded all the same, flagged ``missing``, with the length and
checksum it must have: reads treat it as unavailable (they decode from parity), and
the healer writes it and clears the flag. So a segment always lists all ``6 +
parity`` parts, and its parity says what it was written for.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping

import attrs

from .striping import Layout

STANDARD = "STANDARD"
REDUCED_REDUNDANCY = "REDUCED_REDUNDANCY"
STORAGE_CLASSES = (STANDARD, REDUCED_REDUNDANCY)
"""STANDARD gets the cluster's target parity, REDUCED_REDUNDANCY none (upload.place_segment)."""

FULL_OBJECT = "FULL_OBJECT"
COMPOSITE = "COMPOSITE"


@attrs.frozen
class PartRecord:
    index: int
    sector: int
    length: int
    checksum: int
    """xxh3-64 (seed 0) of the part's bytes (for a missing part: of the bytes it must hold)."""
    missing: bool = False
    """Not stored when the segment was written (see the module doc)."""


@attrs.frozen
class Segment:
    """One stretch of an object's bytes, stored as one set of part files."""

    number: int
    """The segment number in the part file names (0 for every segment written today)."""
    size: int
    stripe_unit: int
    parts: tuple[PartRecord, ...]
    """Data parts 0..5, then parity parts 6..5+parity."""
    upload_id: str = attrs.field(kw_only=True)
    """The upload whose part files hold this segment: ``<upload_id>-<number>-<index>``."""
    parity: int = attrs.field(kw_only=True, default=0)
    md5: str = attrs.field(kw_only=True, default="")
    """Hex MD5 of the segment's bytes: the part ETag of a multipart part."""
    checksums: Mapping[str, str] = attrs.field(kw_only=True, factory=dict)
    """Algorithm (``CRC32``...) -> base64 value of the segment's bytes, if computed."""

    @property
    def layout(self) -> Layout:
        return Layout(self.size, self.stripe_unit, len(self.parts) - self.parity)

    @property
    def data_parts(self) -> int:
        return len(self.parts) - self.parity

    @property
    def stored_parts(self) -> int:
        """Parts written when the segment was (six at least; all but the missing ones)."""
        return sum(1 for part in self.parts if not part.missing)


@attrs.frozen
class ObjectHeaders:
    """The standard headers S3 stores with an object and returns on GET/HEAD, as the
    client sent them (``expires`` is kept verbatim, as S3 does)."""

    cache_control: str | None = None
    content_disposition: str | None = None
    content_encoding: str | None = None
    content_language: str | None = None
    expires: str | None = None

    def as_dict(self) -> dict[str, str]:
        return {name: value for name, value in attrs.asdict(self).items() if value is not None}


@attrs.frozen
class ObjectInfo:
    """What HEAD returns about an object."""

    key: str
    size: int
    etag: str
    """Hex MD5 of the object's bytes, unquoted (S3's ETag of a plain PUT); for a
    multipart object the MD5 of the part MD5s, with ``-N``."""
    content_type: str
    last_modified: dt.datetime
    metadata: Mapping[str, str]
    headers: ObjectHeaders = attrs.field(kw_only=True, factory=ObjectHeaders)
    storage_class: str = attrs.field(kw_only=True, default=STANDARD)
    checksums: Mapping[str, str] = attrs.field(kw_only=True, factory=dict)
    """Algorithm -> base64 value (a COMPOSITE one ends in ``-N``)."""
    checksum_type: str | None = attrs.field(kw_only=True, default=None)
    """FULL_OBJECT or COMPOSITE when ``checksums`` is not empty."""
    parts_count: int | None = attrs.field(kw_only=True, default=None)
    """The number of parts of a multipart object; None for a plain PUT or a copy."""

    @classmethod
    def of(
        cls,
        key: str,
        size: int,
        etag: str,
        content_type: str,
        modified: float,
        metadata: Mapping[str, str],
        **extra: object,
    ) -> ObjectInfo:
        """An ObjectInfo from stored fields (``modified`` in Unix seconds); ``extra``
        are the keyword-only fields."""
        last_modified = dt.datetime.fromtimestamp(modified, dt.UTC)
        return cls(key, size, etag, content_type, last_modified, metadata, **extra)  # type: ignore[arg-type]


@attrs.frozen
class Manifest:
    """The committed upload a key points at."""

    upload_id: str
    created: float
    info: ObjectInfo
    segments: tuple[Segment, ...]

    @property
    def key(self) -> str:
        return self.info.key

    @property
    def size(self) -> int:
        return self.info.size

    @property
    def etag(self) -> str:
        return self.info.etag

    @property
    def upload_ids(self) -> tuple[str, ...]:
        """Every upload whose rows or part files this object uses."""
        ids = [self.upload_id]
        ids += [s.upload_id for s in self.segments if s.upload_id != self.upload_id]
        return tuple(ids)

    def segment_spans(self) -> list[tuple[int, int]]:
        """(first byte, size) of each segment within the object."""
        spans, offset = [], 0
        for segment in self.segments:
            spans.append((offset, segment.size))
            offset += segment.size
        return spans


@attrs.frozen
class ObjectList:
    """One page of a listing, sorted by key (UTF-8 byte order)."""

    objects: tuple[ObjectInfo, ...]
    is_truncated: bool
    next_start_after: str | None
    """Pass as ``start_after`` to get the next page (None on the last page). It is the
    last key or common prefix of this page: a common prefix as ``start_after`` skips
    every key under it."""
    common_prefixes: tuple[str, ...] = ()
    """With a delimiter: the distinct ``prefix + ... + delimiter`` that keys roll up to,
    each counted once against the page's limit, as S3 does."""


@attrs.frozen
class PartInfo:
    """One stored part of a multipart upload (UploadPart's answer, a ListParts row)."""

    number: int
    etag: str
    """Hex MD5 of the part's bytes, unquoted."""
    size: int
    last_modified: dt.datetime
    checksums: Mapping[str, str] = attrs.field(factory=dict)


@attrs.frozen
class CompletedPart:
    """A part as CompleteMultipartUpload names it."""

    number: int
    etag: str
    checksums: Mapping[str, str] = attrs.field(factory=dict)


@attrs.frozen
class MultipartUpload:
    """An upload created and neither completed nor aborted."""

    key: str
    upload_id: str
    initiated: dt.datetime
    content_type: str
    metadata: Mapping[str, str]
    headers: ObjectHeaders = attrs.field(factory=ObjectHeaders)
    storage_class: str = STANDARD
    checksum_algorithm: str | None = None
    checksum_type: str | None = None


@attrs.frozen
class PartList:
    """One page of ListParts."""

    upload: MultipartUpload
    parts: tuple[PartInfo, ...]
    is_truncated: bool
    next_marker: int | None
    """Pass as ``marker`` to get the next page (None on the last page)."""


@attrs.frozen
class UploadList:
    """One page of ListMultipartUploads, sorted by key, then upload id."""

    uploads: tuple[MultipartUpload, ...]
    common_prefixes: tuple[str, ...]
    is_truncated: bool
    next_key_marker: str | None
    next_upload_id_marker: str | None
