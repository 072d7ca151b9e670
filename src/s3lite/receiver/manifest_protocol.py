"""Where manifests live: the interface the receiver, janitor and healer use.

An upload is recorded as ``pending`` *before* any of its parts is written, with the
sector of each part, so that whatever happens next (a disconnect, a crash) the parts
can be found and removed. Committing an upload is one transaction that fills in the
part lengths and checksums, checks the write's conditions (the bucket still exists,
If-Match / If-None-Match), points the key at it, and marks the upload the key used
to point at as ``deleting`` (with the part uploads of a multipart object); deleting a
key marks its uploads ``deleting`` too. Rows are forgotten only after their parts are
gone, so a part file on a node always has a row until it is deleted (the janitor
relies on that). The embedded default is manifest_store.SqliteManifestStore.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from typing import Protocol

from ..orchestrator.catalog import PartKey, PlacedPart
from .completion import Completion, StoredPart
from .conditions import WriteCondition
from .healing import HealStore
from .manifest import (
    Manifest,
    MultipartUpload,
    ObjectInfo,
    ObjectList,
    PartInfo,
    PartRecord,
    Segment,
    UploadList,
)

Plan = Callable[[MultipartUpload, dict[int, StoredPart]], Completion]
"""Validates a CompleteMultipartUpload against the stored parts, inside its transaction."""


class ManifestStore(HealStore, Protocol):
    """The receiver's durable record of keys, uploads and parts, and the heal queue."""

    async def begin_upload(
        self, upload_id: str, key: str, sectors: Sequence[int], created: float
    ) -> None:
        """Record a pending upload of ``key`` whose segment 0 parts go to ``sectors``."""
        ...

    async def commit_upload(
        self,
        upload_id: str,
        segments: Sequence[Segment],
        info: ObjectInfo,
        *,
        condition: WriteCondition | None = None,
        bucket: str | None = None,
    ) -> list[str]:
        """Point the key at this upload, described by ``info``, if ``bucket`` exists and
        ``condition`` holds (else NoSuchBucket, PreconditionFailed or NotFound, and
        nothing changes); returns the uploads it replaced, now ``deleting``."""
        ...

    async def get(self, key: str) -> Manifest | None: ...

    async def current_upload(self, key: str) -> str | None:
        """The upload ``key`` means now (None if there is no object)."""
        ...

    async def segment(self, upload_id: str, number: int) -> Segment | None:
        """A stored segment as recorded now (a join may have re-homed its parts)."""
        ...

    async def delete(self, key: str) -> list[str]:
        """Unlink ``key``; returns its uploads (now ``deleting``), empty if none."""
        ...

    async def list_objects(
        self, prefix: str, *, start_after: str, limit: int, delimiter: str
    ) -> ObjectList:
        """One page of committed objects under ``prefix`` after ``start_after``, with
        keys rolled up at ``delimiter`` (see listing.py)."""
        ...

    async def create_multipart(self, upload: MultipartUpload, bucket: str | None) -> None:
        """Record an open multipart upload (NoSuchBucket if ``bucket`` is gone)."""
        ...

    async def open_multipart(self, upload_id: str) -> MultipartUpload | None:
        """The multipart upload if it is open (created, neither completed nor aborted)."""
        ...

    async def store_part(
        self, segment: Segment, upload_id: str, part_number: int, modified: float
    ) -> list[str]:
        """Record ``segment`` (written by its pending upload) as part ``part_number`` of
        the open multipart ``upload_id``; returns the earlier attempt(s) it replaced,
        now ``deleting``. NoSuchUpload if the upload is no longer open."""
        ...

    async def complete_multipart(
        self,
        upload_id: str,
        key: str,
        plan: Plan,
        *,
        modified: float,
        condition: WriteCondition | None = None,
        bucket: str | None = None,
    ) -> tuple[ObjectInfo, list[str]]:
        """Commit an open multipart upload as ``plan`` decides, or return the result of
        an earlier completion of it; returns the object and the uploads to delete."""
        ...

    async def abort_multipart(self, upload_id: str, key: str) -> list[str]:
        """Close an open upload; returns it and its stored parts, now ``deleting``."""
        ...

    async def list_parts(self, upload_id: str, marker: int, limit: int) -> list[PartInfo]:
        """Up to ``limit`` stored parts numbered above ``marker``, by number."""
        ...

    async def list_uploads(
        self,
        prefix: str,
        *,
        delimiter: str,
        key_marker: str,
        upload_id_marker: str,
        limit: int,
    ) -> UploadList: ...

    async def upload_parts(self, upload_id: str) -> list[PlacedPart]:
        """Every part recorded for an upload, in any state."""
        ...

    async def forget_upload(self, upload_id: str) -> None:
        """Remove an upload's rows (after its parts were deleted), heal items included."""
        ...

    async def abandon_upload(self, upload_id: str) -> bool:
        """Mark a pending upload ``deleting`` (its write failed and some of its parts
        could not be deleted yet), so the janitor's next pass deletes them instead of
        waiting for the pending TTL; False if it is not pending."""
        ...

    async def stale_uploads(
        self, pending_before: float, multipart_before: float = float("-inf")
    ) -> list[str]:
        """Uploads to clean: pending ones created before ``pending_before``, multipart
        uploads still open that were created before ``multipart_before``, and every
        ``deleting`` one."""
        ...

    async def claim_stale(
        self, upload_id: str, pending_before: float, multipart_before: float = float("-inf")
    ) -> list[str]:
        """Mark a stale upload ``deleting`` unless it moved on since it was listed
        (committed, or not stale any more); returns what is the caller's to delete
        (an open multipart upload brings its stored parts), empty if nothing."""
        ...

    async def recorded_sectors(self, parts: Collection[PartKey]) -> dict[PartKey, int]:
        """The recorded sector of each of ``parts`` that has a row."""
        ...

    async def parts_in_sectors(self, sectors: Collection[int]) -> list[PlacedPart]: ...

    async def move_part(self, part: PlacedPart, new_sector: int) -> bool: ...

    async def create_bucket(self, name: str, created: float) -> bool:
        """Record a bucket; False if it already existed."""
        ...

    async def delete_bucket(self, name: str, prefix: str) -> bool | None:
        """Forget a bucket if no key starts with ``prefix``: True if deleted, None if
        there is no such bucket, False if it still holds objects."""
        ...

    async def list_buckets(self) -> list[tuple[str, float]]:
        """(name, creation time) of every bucket, sorted by name."""
        ...

    async def scan_segments(self, after: tuple[str, int], limit: int) -> list[tuple[Segment, str]]:
        """Up to ``limit`` live segments after (upload id, number), in that order, each
        with its object's storage class (the healer's scrub)."""
        ...

    async def scan_position(self, after: tuple[str, int]) -> tuple[int, int]:
        """(segments up to ``after``, all segments)."""
        ...

    async def reserve_parity(self, segment: Segment, records: Sequence[PartRecord]) -> bool:
        """Add parity parts recorded missing and raise the segment's parity, if it is
        still live with the parity it has (heal_store.reserve_parity)."""
        ...

    async def mark_stored(self, segment: Segment, records: Sequence[PartRecord]) -> bool:
        """Record rebuilt parts as stored, if the segment is still live and they did
        not move (heal_store.mark_stored)."""
        ...

    async def heal_state(self, name: str) -> str | None:
        """A value of the healer's saved state (None: never saved)."""
        ...

    async def save_heal_state(self, name: str, value: str) -> None: ...

    async def close(self) -> None: ...
