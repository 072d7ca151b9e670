"""CompleteMultipartUpload's rules, as a pure function of the request and the stored
parts; the manifest store runs it inside the completing transaction, so what it
checks cannot change before the commit.

S3's checks, in its order: at least one part (MalformedXML), part numbers strictly
ascending (InvalidPartOrder), every part uploaded with that ETag and, if given, those
checksums (InvalidPart), every part but the last at least the minimum size
(EntityTooSmall). The object's ETag is the MD5 of the concatenated binary part MD5s,
then ``-N``; its checksum combines the part checksums (checksums.py).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import itertools
from collections.abc import Mapping, Sequence

import attrs

from ..errors import BadDigest, EntityTooSmall, InvalidPart, InvalidPartOrder, MalformedXML
from . import checksums
from .conditions import parse_etags
from .manifest import FULL_OBJECT, CompletedPart, MultipartUpload, ObjectInfo, PartInfo

MIN_PART_SIZE = 5 * 1024 * 1024
MAX_PARTS = 10_000


@attrs.frozen
class StoredPart:
    upload_id: str
    """The UploadPart attempt whose part files hold it."""
    info: PartInfo


@attrs.frozen
class Completion:
    """What completing decides: which part attempts make the object, and its fields."""

    chosen: tuple[str, ...]
    size: int
    etag: str
    checksums: Mapping[str, str]
    checksum_type: str | None

    def info(self, upload: MultipartUpload, modified: float) -> ObjectInfo:
        return ObjectInfo(
            upload.key,
            self.size,
            self.etag,
            upload.content_type,
            dt.datetime.fromtimestamp(modified, dt.UTC),
            upload.metadata,
            headers=upload.headers,
            storage_class=upload.storage_class,
            checksums=self.checksums,
            checksum_type=self.checksum_type,
            parts_count=len(self.chosen),
        )


def multipart_etag(md5s: Sequence[str]) -> str:
    """The MD5 of the concatenated binary MD5s (hex), then ``-N``."""
    joined = b"".join(bytes.fromhex(md5) for md5 in md5s)
    return f"{hashlib.md5(joined, usedforsecurity=False).hexdigest()}-{len(md5s)}"


def _unquoted(etag: str) -> str:
    tags = parse_etags(etag)
    return tags[0][0] if tags else ""


def plan_completion(
    upload: MultipartUpload,
    requested: Sequence[CompletedPart],
    stored: Mapping[int, StoredPart],
    *,
    min_part_size: int = MIN_PART_SIZE,
    expected: Mapping[str, str] | None = None,
) -> Completion:
    """Validate a completion request against the stored parts; raise the S3 error
    that applies, or return the object it makes. ``expected`` is the whole object's
    checksum the client sent (algorithm -> base64, a COMPOSITE one with or without
    its ``-N``): BadDigest unless the object's is the same."""
    if not requested:
        raise MalformedXML("CompleteMultipartUpload must name at least one part")
    numbers = [part.number for part in requested]
    if any(later <= earlier for earlier, later in itertools.pairwise(numbers)):
        raise InvalidPartOrder(f"part numbers must be strictly ascending, got {numbers}")
    chosen = []
    for part in requested:
        have = stored.get(part.number)
        if have is None:
            raise InvalidPart(f"part {part.number} of upload {upload.upload_id} was not uploaded")
        if _unquoted(part.etag) != have.info.etag:
            raise InvalidPart(
                f"part {part.number} has ETag {have.info.etag!r}, the request names {part.etag!r}"
            )
        if not checksums.checksums_match(have.info.checksums, part.checksums):
            raise InvalidPart(f"part {part.number}: the checksums named differ from the part's")
        chosen.append(have)
    for have in chosen[:-1]:
        if have.info.size < min_part_size:
            raise EntityTooSmall(
                f"part {have.info.number} is {have.info.size} bytes; every part but the last "
                f"must be at least {min_part_size}"
            )
    object_checksums: dict[str, str] = {}
    algorithm = upload.checksum_algorithm
    if algorithm is not None and all(algorithm in p.info.checksums for p in chosen):
        values = [p.info.checksums[algorithm] for p in chosen]
        if upload.checksum_type == FULL_OBJECT:
            sizes = [p.info.size for p in chosen]
            value = checksums.full_object(algorithm, list(zip(values, sizes, strict=True)))
        else:
            value = checksums.composite(algorithm, values)
        object_checksums[algorithm] = value
    for name, value in (expected or {}).items():
        computed = object_checksums.get(checksums.check_algorithm(name))
        if computed is None or value not in (computed, computed.rsplit("-", 1)[0]):
            raise BadDigest(
                f"the {name} checksum you sent ({value}) does not match the object's "
                f"({computed or 'none: the upload has no ' + name + ' checksum'}); "
                "nothing was changed"
            )
    return Completion(
        tuple(p.upload_id for p in chosen),
        sum(p.info.size for p in chosen),
        multipart_etag([p.info.etag for p in chosen]),
        object_checksums,
        upload.checksum_type if object_checksums else None,
    )
