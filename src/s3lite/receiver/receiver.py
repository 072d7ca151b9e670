"""The object API: put, get, head, delete, list, copy and multipart uploads, over the
orchestrator's routing.

An upload takes one routing lease for its whole life: placement, the pending record,
the six part writes and the commit all see the same routing, and a migration waits
for it before copying. The manifest is committed only after every part is stored and
the body matched the digests the client sent, in one transaction that also checks
the write's conditions (bucket, If-Match, If-None-Match), so a reader sees the old
object or the new one, never a mix. Whatever stops an upload before its commit (a
short body, a bad digest, a failed condition, a failed node, the caller's cancel
scope) deletes the parts already written, shielded from the cancellation, and forgets
the upload.

Each segment gets the parity its storage class asks for (STANDARD: the cluster's
target; REDUCED_REDUNDANCY: none), fewer while nodes are down or full (placement.py);
a part whose node fails mid-upload is recorded missing when six others were stored
(upload.py). Both, and every read that had to decode around a part, are reported to
the heal queue (healing.py), the healer's input.

Multipart sessions are in multipart.py, copies in copy.py, the read path in
reads.py; this class is the one front door to all of them.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, TypeVar

import anyio
import attrs

from ..errors import (
    InvalidArgument,
    InvalidPartNumber,
    NotFound,
    S3liteError,
)
from ..orchestrator import PARTS_PER_SEGMENT, Orchestrator, RoutingView
from ..streams import Body, at_most, iterate_body
from . import copying, multipart, reads
from .attributes import Attributes, check_body, is_int
from .checksums import Digester, ExpectedDigests
from .cleanup import discard_upload
from .completion import MAX_PARTS, MIN_PART_SIZE
from .conditions import ReadConditions, WriteCondition
from .fetch import ReadContext
from .healing import HealQueue
from .holds import UploadHolds
from .keys import check_key
from .manifest import (
    STANDARD,
    CompletedPart,
    Manifest,
    ObjectHeaders,
    ObjectInfo,
    ObjectList,
    PartInfo,
    PartList,
    Segment,
    UploadList,
)
from .manifest_protocol import ManifestStore
from .ranges import parse_http_range, resolve_range
from .reads import ObjectRead
from .striping import DEFAULT_STRIPE_UNIT
from .upload import SegmentWriter, place_segment, prepare, report_written

if TYPE_CHECKING:
    from .healer import Healer

log = logging.getLogger(__name__)

T = TypeVar("T")

MAX_LIST_LIMIT = 1000
MAX_PART_SIZE = 5 * 1024**3
OPEN_ATTEMPTS = reads.OPEN_ATTEMPTS


class Receiver:
    """Objects over a cluster: the library's front door (the HTTP gateway wraps it)."""

    def __init__(
        self,
        orchestrator: Orchestrator,
        manifests: ManifestStore,
        *,
        stripe_unit: int = DEFAULT_STRIPE_UNIT,
        clock: Callable[[], float] = time.time,
        min_part_size: int = MIN_PART_SIZE,
        max_part_size: int = MAX_PART_SIZE,
        heal: HealQueue | None = None,
    ) -> None:
        if stripe_unit < 1:
            raise ValueError(f"stripe_unit must be >= 1 byte, got {stripe_unit}")
        self.orchestrator = orchestrator
        self.manifests = manifests
        self.stripe_unit = stripe_unit
        self.clock = clock
        self.min_part_size = min_part_size
        """Every part of a multipart upload but the last must be this large (S3: 5 MiB;
        tests lower it)."""
        self.max_part_size = max_part_size
        self.uploads_in_flight = UploadHolds()
        """Uploads being written or read: the janitor leaves them alone, however old
        they are, and a superseded one is deleted when its last reader ends."""
        self.heal = heal or HealQueue(manifests, metrics=orchestrator.metrics.durability)
        """Where reads and writes report segments for the healer (the cluster runs its
        flusher; without one, call ``heal.flush()``)."""
        self.read_context = ReadContext(orchestrator, manifests, self.heal)
        self.healer: Healer | None = None
        """The healer working on these objects, if the cluster runs one (healer.py)."""
        orchestrator.catalog = manifests

    # -- writing -----------------------------------------------------------------------

    async def put_object(
        self,
        key: str,
        body: Body,
        size: int | None = None,
        *,
        content_type: str | None = None,
        metadata: Mapping[str, str] | None = None,
        headers: ObjectHeaders | None = None,
        storage_class: str | None = None,
        expected: ExpectedDigests | None = None,
        condition: WriteCondition | None = None,
        bucket: str | None = None,
    ) -> ObjectInfo:
        """Store ``body`` under ``key``, replacing any object there.

        ``size``, if given, must be the exact length of the body: a shorter or longer
        body raises BodyLengthMismatch and stores nothing. ``expected`` carries the
        Content-MD5 and ``x-amz-checksum-*`` the body must match (BadDigest, nothing
        stored; InvalidDigest for a malformed one), or an algorithm to compute.
        ``condition`` (If-Match / If-None-Match) and ``bucket`` (which must still
        exist: NoSuchBucket) are checked in the commit's transaction; a failed
        condition raises PreconditionFailed (NotFound for If-Match on no object) and
        leaves nothing of the upload on the nodes.
        """
        check_key(key)
        attributes = Attributes.check(content_type, metadata, headers, storage_class)
        check_body(body, size)
        digester = Digester(expected)
        if condition is not None:
            await self.precheck_write(key, condition)

        async def commit(segment: Segment) -> ObjectInfo:
            info = attributes.info(key, segment, self.clock())
            return await self.commit_object(segment, info, condition, bucket)

        return await self.write_segment(
            key, body, size, digester, commit, storage_class=attributes.storage_class
        )

    async def precheck_write(self, key: str, condition: WriteCondition) -> None:
        """Fail a conditional write before its body is stored when it would fail at the
        commit anyway; the commit checks again, atomically."""
        manifest = await self.manifests.get(key)
        condition.check(key, None if manifest is None else manifest.etag)

    async def commit_object(
        self,
        segment: Segment,
        info: ObjectInfo,
        condition: WriteCondition | None,
        bucket: str | None,
    ) -> ObjectInfo:
        replaced = await self.manifests.commit_upload(
            segment.upload_id, [segment], info, condition=condition, bucket=bucket
        )
        await self.discard(replaced)
        return info

    async def write_segment(
        self,
        key: str,
        body: Body,
        size: int | None,
        digester: Digester,
        commit: Callable[[Segment], Awaitable[T]],
        *,
        max_size: int | None = None,
        storage_class: str = STANDARD,
    ) -> T:
        """Write ``body`` as segment 0 of a new upload with the parity ``storage_class``
        asks for, verify its digests, and hand the segment to ``commit``; if anything
        fails before ``commit`` returns, the parts are deleted at once (on every node
        that answers) and the upload forgotten."""
        upload_id = uuid.uuid4().hex
        self.uploads_in_flight.acquire([upload_id])
        try:
            with self.orchestrator.lease() as view:
                chunks = iterate_body(body)
                if max_size is not None:
                    chunks = at_most(chunks, max_size, "a part")
                prepared = await prepare(chunks, size, self.stripe_unit, PARTS_PER_SEGMENT)
                target, sectors = place_segment(
                    self.orchestrator, view, key, upload_id, storage_class
                )
                try:
                    await self.manifests.begin_upload(upload_id, key, sectors, self.clock())
                    writer = SegmentWriter(
                        self.orchestrator,
                        view,
                        upload_id,
                        0,
                        sectors,
                        prepared.unit,
                        digester,
                        expected_size=prepared.size,
                    )
                    segment = await writer.write(prepared.chunks, size)
                    segment = attrs.evolve(segment, checksums=digester.verify())
                    result = await commit(segment)
                except BaseException:
                    with anyio.CancelScope(shield=True):
                        await self._discard_now(upload_id, view)
                    raise
                report_written(self.heal, view, segment, writer.failed_nodes, target)
                return result
        finally:
            await self.release([upload_id])

    async def discard(self, upload_ids: Iterable[str]) -> None:
        """Delete superseded uploads now, or when the last read holding one ends."""
        for upload_id in upload_ids:
            if not self.uploads_in_flight.defer(upload_id):
                await self._discard_now(upload_id)

    async def release(self, upload_ids: Sequence[str]) -> None:
        """Let go of held uploads, deleting those superseded meanwhile."""
        freed = self.uploads_in_flight.release(upload_ids)
        if freed:
            with anyio.CancelScope(shield=True):
                for upload_id in freed:
                    await self._discard_now(upload_id)

    async def _discard_now(self, upload_id: str, view: RoutingView | None = None) -> None:
        """Delete an upload's parts and forget it; parts on nodes that are down or do
        not answer are left to the janitor's next pass (the upload is marked
        ``deleting``, not left ``pending`` for the janitor's one-hour TTL)."""
        try:
            await discard_upload(self.orchestrator, self.manifests, upload_id, view)
        except S3liteError as exc:
            await self.manifests.abandon_upload(upload_id)
            log.warning("left upload %s for the janitor: %s", upload_id, exc)

    # -- reading -----------------------------------------------------------------------

    async def head_object(
        self, key: str, *, conditions: ReadConditions | None = None
    ) -> ObjectInfo:
        """The object's size, ETag, type, metadata; NotFound if there is none.
        ``conditions`` raise NotModified or PreconditionFailed as for a GET."""
        info = (await self._manifest(key)).info
        if conditions is not None:
            conditions.check(info)
        return info

    async def head_part(
        self, key: str, part_number: int, *, conditions: ReadConditions | None = None
    ) -> tuple[ObjectInfo, tuple[int, int] | None]:
        """HEAD ?partNumber=N: the object and the inclusive byte range of part N
        (None if that part is empty); InvalidPartNumber if there is no part N."""
        manifest = await self._manifest(key)
        if conditions is not None:
            conditions.check(manifest.info)
        return manifest.info, reads.part_span(manifest, _check_part_number(manifest, part_number))

    async def _manifest(self, key: str) -> Manifest:
        manifest = await self.manifests.get(check_key(key))
        if manifest is None:
            raise NotFound(f"no object with key {key!r}")
        return manifest

    async def open_object(
        self,
        key: str,
        start: int | None = None,
        end: int | None = None,
        *,
        http_range: str | None = None,
        part_number: int | None = None,
        conditions: ReadConditions | None = None,
    ) -> ObjectRead:
        """Open an object (or the inclusive byte range start..end of it) for reading.

        ``http_range``, if given, is an HTTP ``Range`` header to resolve against the
        object's size instead of ``start``/``end`` (see ranges.parse_http_range);
        ``part_number`` reads part N of a multipart object (1 for any other object;
        InvalidPartNumber beyond the last). ``conditions`` are the If-* headers
        (NotModified, PreconditionFailed). Everything that can fail before the first
        byte (NotFound, InvalidRange, a node that is down) fails here; the returned
        chunks can still raise DataLoss or ChecksumMismatch mid-stream if a node
        returns damaged bytes. Call ``aclose`` on the result when done.
        """
        for bound in (start, end):
            if bound is not None and not is_int(bound):
                raise InvalidArgument(f"start and end must be integers or None, got {bound!r}")
        if http_range is not None and not isinstance(http_range, str):
            raise InvalidArgument(f"http_range must be a Range header string, got {http_range!r}")
        if part_number is not None and (
            start is not None or end is not None or http_range is not None
        ):
            raise InvalidArgument("a read takes either a range or a part number, not both")

        def span_of(manifest: Manifest) -> tuple[int, int] | None:
            if part_number is not None:
                return reads.part_span(manifest, _check_part_number(manifest, part_number))
            if http_range is not None:
                return parse_http_range(http_range, manifest.size)
            return resolve_range(manifest.size, start, end)

        check = None if conditions is None else conditions.check
        return await self.open_with(key, span_of, check, part_number=part_number)

    async def open_with(
        self,
        key: str,
        span_of: Callable[[Manifest], tuple[int, int] | None],
        check: Callable[[ObjectInfo], None] | None,
        *,
        part_number: int | None = None,
    ) -> ObjectRead:
        """Open ``key`` for the span ``span_of`` picks, once ``check`` accepts it."""
        for _ in range(OPEN_ATTEMPTS):
            manifest = await self._manifest(key)
            if check is not None:
                check(manifest.info)
            span = span_of(manifest)
            held = manifest.upload_ids
            if not await self._hold_current(key, manifest.upload_id, held):
                continue  # overwritten meanwhile: read the new manifest
            try:
                first, last = span if span is not None else (0, manifest.size - 1)
                pieces = reads.pieces_of(manifest, first, last)
                opened = None
                if pieces:
                    opened = await reads.open_segment(self.read_context, pieces[0])
            except BaseException:
                with anyio.CancelScope(shield=True):
                    await self.release(held)
                raise
            chunks = reads.stream(self.read_context, pieces, opened)

            async def release(held: tuple[str, ...] = held) -> None:
                await self.release(held)

            return ObjectRead(
                manifest.info,
                span,
                chunks,
                release,
                opened,
                part_number=part_number,
                part_checksums=(
                    manifest.segments[part_number - 1].checksums
                    if part_number is not None and part_number <= len(manifest.segments)
                    else {}
                ),
            )
        raise NotFound(f"object {key!r} was overwritten {OPEN_ATTEMPTS} times while opening it")

    async def _hold_current(self, key: str, upload_id: str, held: tuple[str, ...]) -> bool:
        """Hold ``held`` if ``key`` still means ``upload_id`` once they are held (from
        then on nothing deletes them until released); False, holding nothing, if not."""
        self.uploads_in_flight.acquire(held)
        try:
            current = await self.manifests.current_upload(key)
        except BaseException:
            with anyio.CancelScope(shield=True):
                await self.release(held)
            raise
        if current != upload_id:
            await self.release(held)
            return False
        return True

    async def get_object(
        self, key: str, start: int | None = None, end: int | None = None
    ) -> AsyncIterator[bytes]:
        """The object's bytes (or the inclusive range start..end), streamed as bytes
        (the gateway, which takes any buffer, reads :meth:`open_object`'s chunks)."""
        read = await self.open_object(key, start, end)
        try:
            async for chunk in read.chunks:
                yield chunk if isinstance(chunk, bytes) else bytes(chunk)
        finally:
            await read.aclose()

    # -- deleting and listing ----------------------------------------------------------

    async def delete_object(self, key: str) -> None:
        """Delete the object; NotFound if there is none. Its parts are deleted now if
        every node answers and no read holds them, else by the last reader or the
        janitor."""
        uploads = await self.manifests.delete(check_key(key))
        if not uploads:
            raise NotFound(f"no object with key {key!r}")
        await self.discard(uploads)

    async def list_objects(
        self,
        prefix: str = "",
        *,
        start_after: str = "",
        limit: int = MAX_LIST_LIMIT,
        delimiter: str = "",
    ) -> ObjectList:
        """One page of objects whose key starts with ``prefix``, after ``start_after``;
        with a ``delimiter``, keys roll up into common prefixes (see listing.py). Keys
        and common prefixes together count against ``limit``."""
        if not is_int(limit) or not 1 <= limit <= MAX_LIST_LIMIT:
            raise InvalidArgument(f"limit must be in [1, {MAX_LIST_LIMIT}], got {limit!r}")
        for name, value in (("prefix", prefix), ("start_after", start_after)):
            if not isinstance(value, str):
                raise InvalidArgument(f"{name} must be a string, got {value!r}")
        if not isinstance(delimiter, str):
            raise InvalidArgument(f"delimiter must be a string, got {delimiter!r}")
        return await self.manifests.list_objects(
            prefix, start_after=start_after, limit=limit, delimiter=delimiter
        )

    # -- copies (copy.py) --------------------------------------------------------------

    async def copy_object(
        self,
        source_key: str,
        dest_key: str,
        *,
        metadata_directive: str = "COPY",
        content_type: str | None = None,
        metadata: Mapping[str, str] | None = None,
        headers: ObjectHeaders | None = None,
        storage_class: str | None = None,
        source_conditions: ReadConditions | None = None,
        condition: WriteCondition | None = None,
        bucket: str | None = None,
    ) -> ObjectInfo:
        """Copy an object, streamed from its nodes to the new parts' nodes (bounded
        memory). ``metadata_directive`` COPY keeps the source's content type, metadata
        and headers; REPLACE takes the ones given. Raises NotFound for a missing
        source, PreconditionFailed for a failed ``source_conditions``, InvalidRequest
        for a copy onto itself that changes nothing; ``condition`` and ``bucket`` as
        for put_object. A multipart source becomes one segment with a plain MD5 ETag."""
        replace = Attributes.check(content_type, metadata, headers, storage_class)
        return await copying.copy_object(
            self,
            source_key,
            dest_key,
            directive=metadata_directive,
            replace=replace,
            storage_class=storage_class,
            source_conditions=source_conditions,
            condition=condition,
            bucket=bucket,
        )

    # -- multipart uploads (multipart.py) ----------------------------------------------

    async def create_multipart(
        self,
        key: str,
        *,
        content_type: str | None = None,
        metadata: Mapping[str, str] | None = None,
        headers: ObjectHeaders | None = None,
        storage_class: str | None = None,
        checksum_algorithm: str | None = None,
        checksum_type: str | None = None,
        bucket: str | None = None,
    ) -> str:
        """Start a multipart upload of ``key``; returns its upload id."""
        check_key(key)
        attributes = Attributes.check(content_type, metadata, headers, storage_class)
        return await multipart.create(
            self, key, attributes, checksum_algorithm, checksum_type, bucket
        )

    async def upload_part(
        self,
        key: str,
        upload_id: str,
        part_number: int,
        body: Body,
        size: int | None = None,
        *,
        expected: ExpectedDigests | None = None,
    ) -> PartInfo:
        """Store part ``part_number`` (1..10,000) of an open upload, replacing an
        earlier part of that number. Raises NoSuchUpload, InvalidArgument (part
        number), EntityTooLarge (over ``max_part_size``), BadDigest/InvalidDigest,
        BodyLengthMismatch; on any failure nothing of this part stays."""
        return await multipart.upload_part(self, key, upload_id, part_number, body, size, expected)

    async def upload_part_copy(
        self,
        key: str,
        upload_id: str,
        part_number: int,
        source_key: str,
        *,
        source_range: str | tuple[int, int] | None = None,
        source_conditions: ReadConditions | None = None,
    ) -> PartInfo:
        """Store a byte range of another object (``bytes=first-last``, or an inclusive
        tuple; InvalidRange if outside it) as a part, streamed."""
        return await copying.upload_part_copy(
            self, key, upload_id, part_number, source_key, source_range, source_conditions
        )

    async def complete_multipart(
        self,
        key: str,
        upload_id: str,
        parts: Sequence[CompletedPart | tuple[int, str] | tuple[int, str, Mapping[str, str]]],
        *,
        condition: WriteCondition | None = None,
        bucket: str | None = None,
        expected_checksums: Mapping[str, str] | None = None,
    ) -> ObjectInfo:
        """Make the object from the parts named (number, ETag[, checksums]). Raises
        MalformedXML (no part), InvalidPartOrder, InvalidPart, EntityTooSmall,
        NoSuchUpload, BadDigest (``expected_checksums``, the whole object's, differ);
        a second Complete of a completed upload returns the same object. Parts
        uploaded but not named are deleted."""
        return await multipart.complete(
            self, key, upload_id, parts, condition, bucket, expected_checksums
        )

    async def abort_multipart(self, key: str, upload_id: str) -> None:
        """Abort an open upload and delete every part stored (NoSuchUpload if it is
        not open)."""
        await multipart.abort(self, key, upload_id)

    async def abort_multipart_uploads(self, prefix: str) -> int:
        """Abort every open upload of a key under ``prefix`` (say ``"bucket/"``) and
        delete its parts; returns how many were aborted."""
        return await multipart.abort_all(self, prefix)

    async def list_parts(
        self, key: str, upload_id: str, *, marker: int = 0, limit: int = MAX_LIST_LIMIT
    ) -> PartList:
        """One page of an open upload's parts, numbered above ``marker``."""
        return await multipart.list_parts(self, key, upload_id, marker, limit)

    async def list_multipart_uploads(
        self,
        prefix: str = "",
        *,
        delimiter: str = "",
        key_marker: str = "",
        upload_id_marker: str = "",
        limit: int = MAX_LIST_LIMIT,
    ) -> UploadList:
        """One page of open uploads by key then upload id (``upload_id_marker`` counts
        only with a ``key_marker``, as S3 has it)."""
        if not is_int(limit) or not 1 <= limit <= MAX_LIST_LIMIT:
            raise InvalidArgument(f"limit must be in [1, {MAX_LIST_LIMIT}], got {limit!r}")
        return await self.manifests.list_uploads(
            prefix,
            delimiter=delimiter,
            key_marker=key_marker,
            upload_id_marker=upload_id_marker,
            limit=limit,
        )


def _check_part_number(manifest: Manifest, part_number: object) -> int:
    count = len(manifest.segments)
    if not is_int(part_number) or not 1 <= part_number <= MAX_PARTS:  # type: ignore[operator]
        raise InvalidArgument(f"part number must be in 1..{MAX_PARTS}, got {part_number!r}")
    if part_number > count:  # type: ignore[operator]
        raise InvalidPartNumber(f"object {manifest.key!r} has {count} part(s), not {part_number}")
    return part_number  # type: ignore[return-value]
