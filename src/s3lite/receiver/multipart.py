"""Multipart upload sessions: create, upload parts, complete, abort, list.

Each UploadPart attempt is an upload of its own (a fresh upload id V) that writes one
segment, (V, 0), cut into six parts on six distinct nodes exactly as a plain PUT; it
is ``pending`` until stored, so a disconnect or a bad digest leaves nothing. Storing
it (one transaction) attaches it to the open upload under its part number and dooms
an earlier attempt of that number. Parts may arrive in parallel and in any order.

CompleteMultipartUpload validates the named parts against the stored ones in the
same transaction that commits the object (completion.py), so a part re-sent meanwhile
is either in the object or rejected, never half. The object's manifest lists the
attempts' segments in part order. A second Complete of a completed upload returns the
same object, as S3 does.

The open upload is held (holds.py) while a part of it is written or while it is
being completed, so the janitor, which aborts uploads older than its multipart TTL,
never aborts one that is in use.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from ..errors import EntityTooLarge, InvalidArgument, NoSuchUpload
from ..streams import Body
from . import checksums
from .attributes import Attributes, check_body
from .checksums import Digester, ExpectedDigests
from .completion import MAX_PARTS, Completion, StoredPart, plan_completion
from .conditions import WriteCondition
from .keys import check_key
from .manifest import (
    CompletedPart,
    MultipartUpload,
    ObjectInfo,
    PartInfo,
    PartList,
    Segment,
)

if TYPE_CHECKING:
    from .receiver import Receiver


async def create(
    receiver: Receiver,
    key: str,
    attributes: Attributes,
    checksum_algorithm: str | None,
    checksum_type: str | None,
    bucket: str | None,
) -> str:
    algorithm = None
    if checksum_algorithm is not None:
        algorithm = checksums.check_algorithm(checksum_algorithm)
        checksum_type = checksums.check_type(algorithm, checksum_type)
    elif checksum_type is not None:
        raise InvalidArgument("a checksum type needs a checksum algorithm")
    upload = MultipartUpload(
        key,
        uuid.uuid4().hex,
        dt.datetime.fromtimestamp(receiver.clock(), dt.UTC),
        attributes.content_type,
        attributes.metadata,
        attributes.headers,
        attributes.storage_class,
        algorithm,
        checksum_type if algorithm else None,
    )
    await receiver.manifests.create_multipart(upload, bucket)
    return upload.upload_id


async def open_upload(receiver: Receiver, key: str, upload_id: str) -> MultipartUpload:
    """The open upload ``upload_id`` of ``key``, else NoSuchUpload."""
    check_key(key)
    upload = await receiver.manifests.open_multipart(_check_id(upload_id))
    if upload is None or upload.key != key:
        raise NoSuchUpload(f"no multipart upload {upload_id!r} of key {key!r} is open")
    return upload


def check_part_number(part_number: object) -> int:
    if (
        not isinstance(part_number, int)
        or isinstance(part_number, bool)
        or not 1 <= part_number <= MAX_PARTS
    ):
        raise InvalidArgument(f"part number must be in 1..{MAX_PARTS}, got {part_number!r}")
    return part_number


async def upload_part(
    receiver: Receiver,
    key: str,
    upload_id: str,
    part_number: int,
    body: Body,
    size: int | None,
    expected: ExpectedDigests | None,
) -> PartInfo:
    check_part_number(part_number)
    check_body(body, size)
    if size is not None and size > receiver.max_part_size:
        raise _too_large(receiver, size)
    upload = await open_upload(receiver, key, upload_id)
    digester = Digester(expected, upload.checksum_algorithm)

    async def store(segment: Segment) -> PartInfo:
        modified = receiver.clock()
        replaced = await receiver.manifests.store_part(segment, upload_id, part_number, modified)
        await receiver.discard(replaced)
        return PartInfo(
            part_number,
            segment.md5,
            segment.size,
            dt.datetime.fromtimestamp(modified, dt.UTC),
            segment.checksums,
        )

    receiver.uploads_in_flight.acquire([upload_id])
    try:
        return await receiver.write_segment(
            key,
            body,
            size,
            digester,
            store,
            max_size=receiver.max_part_size,
            storage_class=upload.storage_class,
        )
    finally:
        await receiver.release([upload_id])


def _too_large(receiver: Receiver, size: int) -> EntityTooLarge:
    return EntityTooLarge(f"a part is at most {receiver.max_part_size} bytes, got {size}")


def _completed_part(
    part: CompletedPart | tuple[int, str] | tuple[int, str, Mapping[str, str]],
) -> CompletedPart:
    if isinstance(part, CompletedPart):
        return part
    if isinstance(part, tuple) and len(part) in (2, 3):
        number, etag, *rest = part
        if isinstance(number, int) and isinstance(etag, str):
            return CompletedPart(number, etag, dict(rest[0]) if rest else {})
    raise InvalidArgument(f"a completed part is (number, etag[, checksums]), got {part!r}")


async def complete(
    receiver: Receiver,
    key: str,
    upload_id: str,
    parts: Sequence[CompletedPart | tuple[int, str] | tuple[int, str, Mapping[str, str]]],
    condition: WriteCondition | None,
    bucket: str | None,
    expected: Mapping[str, str] | None = None,
) -> ObjectInfo:
    check_key(key)
    requested = [_completed_part(part) for part in parts]
    for part in requested:
        check_part_number(part.number)
    minimum = receiver.min_part_size

    def plan(upload: MultipartUpload, stored: dict[int, StoredPart]) -> Completion:
        return plan_completion(upload, requested, stored, min_part_size=minimum, expected=expected)

    receiver.uploads_in_flight.acquire([_check_id(upload_id)])
    try:
        info, doomed = await receiver.manifests.complete_multipart(
            upload_id,
            key,
            plan,
            modified=receiver.clock(),
            condition=condition,
            bucket=bucket,
        )
    finally:
        await receiver.release([upload_id])
    await receiver.discard(doomed)
    return info


async def abort(receiver: Receiver, key: str, upload_id: str) -> None:
    check_key(key)
    doomed = await receiver.manifests.abort_multipart(_check_id(upload_id), key)
    await receiver.discard(doomed)


async def abort_all(receiver: Receiver, prefix: str) -> int:
    """Abort every open upload whose key starts with ``prefix`` (a deleted bucket's:
    its parts would otherwise stay on the nodes until the janitor's TTL) and say how
    many; one finished meanwhile is left as it is."""
    aborted = 0
    key_marker = upload_id_marker = ""
    while True:
        page = await receiver.manifests.list_uploads(
            prefix,
            delimiter="",
            key_marker=key_marker,
            upload_id_marker=upload_id_marker,
            limit=1000,
        )
        for upload in page.uploads:
            try:
                await abort(receiver, upload.key, upload.upload_id)
            except NoSuchUpload:
                continue
            aborted += 1
        if not page.is_truncated or not page.uploads:
            return aborted
        key_marker, upload_id_marker = page.uploads[-1].key, page.uploads[-1].upload_id


async def list_parts(
    receiver: Receiver, key: str, upload_id: str, marker: int, limit: int
) -> PartList:
    if not isinstance(marker, int) or isinstance(marker, bool) or marker < 0:
        raise InvalidArgument(f"part number marker must be a non-negative integer, got {marker!r}")
    if not isinstance(limit, int) or isinstance(limit, bool) or not 1 <= limit <= 1000:
        raise InvalidArgument(f"limit must be in [1, 1000], got {limit!r}")
    upload = await open_upload(receiver, key, upload_id)
    found = await receiver.manifests.list_parts(upload_id, marker, limit + 1)
    page = tuple(found[:limit])
    truncated = len(found) > limit
    return PartList(upload, page, truncated, page[-1].number if truncated else None)


def _check_id(upload_id: object) -> str:
    if not isinstance(upload_id, str) or not upload_id.isalnum() or not upload_id.isascii():
        raise NoSuchUpload(f"no multipart upload {upload_id!r}")
    return upload_id
