"""CopyObject and UploadPartCopy: an object's bytes streamed from its nodes, through the
gateway, into new parts on new nodes. Nothing is staged: memory is one read's part
streams plus one write's part queues, whatever the object's size.

The source is opened (and held, so an overwrite cannot delete it midway) before the
destination upload starts; its conditions are checked on the manifest the copy reads.
A copy is a new upload with its own parts (parts are immutable and named by upload),
so a multipart source becomes one segment with a plain MD5 ETag, as S3 does.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..errors import InvalidArgument, InvalidRequest
from .attributes import Attributes
from .checksums import Digester, ExpectedDigests
from .conditions import ReadConditions, WriteCondition
from .manifest import STANDARD, Manifest, ObjectInfo, PartInfo, Segment
from .multipart import check_part_number, open_upload
from .ranges import parse_copy_range
from .reads import ObjectRead

if TYPE_CHECKING:
    from .receiver import Receiver

DIRECTIVES = ("COPY", "REPLACE")


async def open_source(
    receiver: Receiver,
    source_key: str,
    conditions: ReadConditions | None,
    source_range: str | tuple[int, int] | None = None,
) -> ObjectRead:
    """Open the source for copying: ``x-amz-copy-source-if-*`` failures are all
    PreconditionFailed; a missing source is NotFound."""

    def span_of(manifest: Manifest) -> tuple[int, int] | None:
        if source_range is None:
            return None
        return parse_copy_range(source_range, manifest.size)

    check = None if conditions is None else conditions.check_copy_source
    return await receiver.open_with(source_key, span_of, check)


async def copy_object(
    receiver: Receiver,
    source_key: str,
    dest_key: str,
    *,
    directive: str,
    replace: Attributes,
    storage_class: str | None,
    source_conditions: ReadConditions | None,
    condition: WriteCondition | None,
    bucket: str | None,
) -> ObjectInfo:
    if directive not in DIRECTIVES:
        raise InvalidArgument(f"metadata directive must be COPY or REPLACE, got {directive!r}")
    read = await open_source(receiver, source_key, source_conditions)
    try:
        source = read.info
        same_class = storage_class is None or storage_class == source.storage_class
        if source_key == dest_key and directive == "COPY" and same_class:
            raise InvalidRequest(
                "This copy request is illegal because it is trying to copy an object to "
                "itself without changing the object's metadata or storage class"
            )
        if directive == "COPY":
            attributes = Attributes(
                source.content_type,
                source.metadata,
                source.headers,
                storage_class or STANDARD,
            )
        else:
            attributes = replace
        algorithm = next(iter(source.checksums), None)
        digester = Digester(ExpectedDigests(checksum_algorithm=algorithm))
        if condition is not None:
            await receiver.precheck_write(dest_key, condition)

        async def commit(segment: Segment) -> ObjectInfo:
            info = attributes.info(dest_key, segment, receiver.clock())
            return await receiver.commit_object(segment, info, condition, bucket)

        return await receiver.write_segment(
            dest_key,
            read.chunks,
            read.length,
            digester,
            commit,
            storage_class=attributes.storage_class,
        )
    finally:
        await read.aclose()


async def upload_part_copy(
    receiver: Receiver,
    key: str,
    upload_id: str,
    part_number: int,
    source_key: str,
    source_range: str | tuple[int, int] | None,
    source_conditions: ReadConditions | None,
) -> PartInfo:
    check_part_number(part_number)
    await open_upload(receiver, key, upload_id)  # fail before opening the source
    read = await open_source(receiver, source_key, source_conditions, source_range)
    try:
        return await receiver.upload_part(key, upload_id, part_number, read.chunks, read.length)
    finally:
        await read.aclose()
