"""The object API: put, get, head, delete and list, over the orchestrator's routing.

An upload takes one routing lease for its whole life: placement, the pending record,
the six part writes and the commit all see the same routing, and a migration waits
for it before copying. The manifest is committed only after every part is stored, so
a reader sees the old object or the new one, never a mix. Whatever stops an upload
before its commit (a short body, a failed node, the caller's cancel scope) deletes the
parts already written, shielded from the cancellation, and forgets the upload.
"""

from __future__ import annotations

import logging
import re
import time
import uuid
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Mapping

import anyio
import attrs

from ..errors import (
    BodyLengthMismatch,
    DataLoss,
    InvalidArgument,
    InvalidRange,
    NotFound,
    PartNotFound,
    S3liteError,
)
from ..orchestrator import PARTS_PER_SEGMENT, Orchestrator, RoutingView, part_name, place_parts
from ..streams import Body, iterate_body, single_error
from .cleanup import discard_upload
from .download import PartReader, join_segment
from .keys import check_key
from .manifest import Manifest, ObjectInfo, ObjectList, Segment
from .manifest_store import ManifestStore
from .ranges import parse_http_range, resolve_range
from .striping import DEFAULT_STRIPE_UNIT
from .upload import SegmentWriter, prepare

log = logging.getLogger(__name__)

DEFAULT_CONTENT_TYPE = "application/octet-stream"
MAX_METADATA_BYTES = 2048
MAX_LIST_LIMIT = 1000
OPEN_ATTEMPTS = 8
"""A read whose parts vanish because the key was overwritten (or a part re-homed: a
join can re-home up to five parts of one object) between reading the manifest and
opening the parts starts over, at most this many times in all."""


@attrs.frozen
class ObjectRead:
    """An object opened for reading: what it is, which bytes, and the bytes."""

    info: ObjectInfo
    span: tuple[int, int] | None
    """Inclusive range being returned; None for the whole object."""
    chunks: AsyncGenerator[bytes, None]
    _readers: tuple[PartReader, ...] = ()

    @property
    def length(self) -> int:
        return self.info.size if self.span is None else self.span[1] - self.span[0] + 1

    async def aclose(self) -> None:
        """Release the part streams, whether or not ``chunks`` was read."""
        await self.chunks.aclose()
        for reader in self._readers:
            await reader.aclose()


class Receiver:
    """Objects over a cluster: the library's front door (the HTTP gateway wraps it)."""

    def __init__(
        self,
        orchestrator: Orchestrator,
        manifests: ManifestStore,
        *,
        stripe_unit: int = DEFAULT_STRIPE_UNIT,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if stripe_unit < 1:
            raise ValueError(f"stripe_unit must be >= 1 byte, got {stripe_unit}")
        self.orchestrator = orchestrator
        self.manifests = manifests
        self.stripe_unit = stripe_unit
        self._clock = clock
        self.uploads_in_flight: set[str] = set()
        """Uploads between their pending record and their commit or discard: the
        janitor leaves them alone, however old they are."""
        orchestrator.catalog = manifests

    async def put_object(
        self,
        key: str,
        body: Body,
        size: int | None = None,
        *,
        content_type: str | None = None,
        metadata: Mapping[str, str] | None = None,
    ) -> ObjectInfo:
        """Store ``body`` under ``key``, replacing any object there.

        ``size``, if given, must be the exact length of the body: a shorter or longer
        body raises BodyLengthMismatch and stores nothing.
        """
        check_key(key)
        metadata = _check_metadata(metadata)
        if content_type is not None and not _printable(content_type):
            raise InvalidArgument(f"content type must be printable ASCII, got {content_type!r}")
        if size is not None and (not _is_int(size) or size < 0):
            raise InvalidArgument(f"size must be a non-negative integer or None, got {size!r}")
        in_memory = isinstance(body, bytes | bytearray | memoryview)
        if not in_memory and not hasattr(body, "__aiter__"):
            raise InvalidArgument(
                f"body must be bytes or an async iterable of bytes, got {type(body).__name__}"
            )
        if isinstance(body, bytes | bytearray | memoryview) and size not in (None, len(body)):
            raise BodyLengthMismatch(declared=size, received=len(body))
        upload_id = uuid.uuid4().hex
        self.uploads_in_flight.add(upload_id)
        try:
            with self.orchestrator.lease() as view:
                prepared = await prepare(
                    iterate_body(body), size, self.stripe_unit, PARTS_PER_SEGMENT
                )
                sectors = place_parts(view.placement_rings, key, upload_id)
                try:
                    await self.manifests.begin_upload(upload_id, key, sectors, self._clock())
                    writer = SegmentWriter(
                        self.orchestrator, view, upload_id, 0, sectors, prepared.unit
                    )
                    segment = await writer.write(prepared.chunks, size)
                    info = ObjectInfo.of(
                        key,
                        segment.size,
                        writer.md5.hexdigest(),
                        content_type or DEFAULT_CONTENT_TYPE,
                        self._clock(),
                        metadata,
                    )
                    replaced = await self.manifests.commit_upload(upload_id, [segment], info)
                except BaseException:
                    with anyio.CancelScope(shield=True):
                        await self._discard_quietly(upload_id, view)
                    raise
        finally:
            self.uploads_in_flight.discard(upload_id)
        if replaced is not None:
            await self._discard_quietly(replaced)
        return info

    async def _discard_quietly(self, upload_id: str, view: RoutingView | None = None) -> None:
        try:
            await discard_upload(self.orchestrator, self.manifests, upload_id, view)
        except S3liteError as exc:
            log.warning("left upload %s for the janitor: %s", upload_id, exc)

    async def head_object(self, key: str) -> ObjectInfo:
        """The object's size, ETag, type, metadata; NotFound if there is none."""
        return (await self._manifest(key)).info

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
    ) -> ObjectRead:
        """Open an object (or the inclusive byte range start..end of it) for reading.

        ``http_range``, if given, is an HTTP ``Range`` header to resolve against the
        object's size instead of ``start``/``end`` (see ranges.parse_http_range).
        Everything that can fail before the first byte (NotFound, InvalidRange, a node
        that is down) fails here; the returned chunks can still raise DataLoss or
        ChecksumMismatch mid-stream if a node returns damaged bytes.
        """
        for bound in (start, end):
            if bound is not None and not _is_int(bound):
                raise InvalidArgument(f"start and end must be integers or None, got {bound!r}")
        if http_range is not None and not isinstance(http_range, str):
            raise InvalidArgument(f"http_range must be a Range header string, got {http_range!r}")
        attempt = 1
        while True:
            with self.orchestrator.lease() as view:
                manifest = await self._manifest(key)
                if len(manifest.segments) != 1:
                    raise DataLoss(
                        f"object {key!r} has {len(manifest.segments)} segments; this version "
                        "reads objects of one segment only"
                    )
                if http_range is not None:
                    span = parse_http_range(http_range, manifest.size)
                else:
                    span = resolve_range(manifest.size, start, end)
                first, last = span if span is not None else (0, manifest.size - 1)
                try:
                    readers = await _open_parts(self.orchestrator, view, manifest, first, last)
                    break
                except PartNotFound as missing:
                    if attempt == OPEN_ATTEMPTS or await self.manifests.get(key) == manifest:
                        raise DataLoss(f"object {key!r} cannot be read: {missing}") from missing
            attempt += 1  # overwritten or re-homed meanwhile: read the new manifest
        segment = manifest.segments[0]
        chunks = join_segment(segment, readers, first, last)
        return ObjectRead(manifest.info, span, chunks, tuple(readers.values()))

    async def get_object(
        self, key: str, start: int | None = None, end: int | None = None
    ) -> AsyncIterator[bytes]:
        """The object's bytes (or the inclusive range start..end), streamed."""
        read = await self.open_object(key, start, end)
        try:
            async for chunk in read.chunks:
                yield chunk
        finally:
            await read.aclose()

    async def delete_object(self, key: str) -> None:
        """Delete the object; NotFound if there is none. Its parts are deleted now if
        every node answers, else by the janitor."""
        upload_id = await self.manifests.delete(check_key(key))
        if upload_id is None:
            raise NotFound(f"no object with key {key!r}")
        await self._discard_quietly(upload_id)

    async def list_objects(
        self, prefix: str = "", *, start_after: str = "", limit: int = MAX_LIST_LIMIT
    ) -> ObjectList:
        """One page of objects whose key starts with ``prefix``, after ``start_after``."""
        if not isinstance(limit, int) or not 1 <= limit <= MAX_LIST_LIMIT:
            raise InvalidArgument(f"limit must be in [1, {MAX_LIST_LIMIT}], got {limit!r}")
        if not isinstance(prefix, str) or not isinstance(start_after, str):
            raise InvalidArgument("prefix and start_after must be strings")
        found = await self.manifests.list_objects(prefix, start_after, limit + 1)
        page = tuple(found[:limit])
        truncated = len(found) > limit
        return ObjectList(page, truncated, page[-1].key if truncated else None)


async def _open_parts(
    orchestrator: Orchestrator, view: RoutingView, manifest: Manifest, first: int, last: int
) -> dict[int, PartReader]:
    """Open, concurrently, every part of the segment that holds bytes first..last."""
    segment: Segment = manifest.segments[0]
    layout = segment.layout
    readers: dict[int, PartReader] = {}
    if last < first:
        return readers

    async def open_part(index: int, span: tuple[int, int]) -> None:
        part = segment.parts[index]
        name = part_name(manifest.upload_id, segment.number, index)
        client = orchestrator.client(view.read_owner(part.sector))
        try:
            stream = await client.get_part(part.sector, name, *span)
        except InvalidRange as exc:
            raise DataLoss(f"part {name} is shorter than its manifest says: {exc}") from exc
        whole = span == (0, part.length - 1)
        readers[index] = PartReader(name, stream, part.checksum if whole else None)

    try:
        with single_error():
            async with anyio.create_task_group() as group:
                for index in range(len(segment.parts)):
                    span = layout.part_span(index, first, last)
                    if span is not None:
                        group.start_soon(open_part, index, span)
    except BaseException:
        with anyio.CancelScope(shield=True):
            for reader in readers.values():
                await reader.aclose()
        raise
    return readers


_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _printable(value: object) -> bool:
    """Printable ASCII: what an HTTP header value can carry as it is."""
    return isinstance(value, str) and all(" " <= char <= "~" for char in value)


def _check_metadata(metadata: Mapping[str, str] | None) -> dict[str, str]:
    """User metadata travels as ``x-amz-meta-<name>: <value>`` headers, so names must be
    HTTP tokens and values printable ASCII (as S3 requires)."""
    if metadata is None:
        return {}
    for name, value in metadata.items():
        if not isinstance(name, str) or _TOKEN.fullmatch(name) is None:
            raise InvalidArgument(f"metadata names must be HTTP tokens, got {name!r}")
        if not _printable(value):
            raise InvalidArgument(f"metadata values must be printable ASCII, got {value!r}")
    size = sum(len(k.encode()) + len(v.encode()) for k, v in metadata.items())
    if size > MAX_METADATA_BYTES:
        raise InvalidArgument(
            f"metadata is at most {MAX_METADATA_BYTES} bytes of UTF-8, got {size}"
        )
    return dict(metadata)
