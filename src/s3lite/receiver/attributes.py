"""What a writer says about an object besides its bytes, checked before anything is
stored: content type, user metadata, the standard headers, the storage class, and
the body's type and declared size.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

import attrs

from ..errors import BodyLengthMismatch, InvalidArgument, InvalidStorageClass
from .manifest import FULL_OBJECT, STANDARD, STORAGE_CLASSES, ObjectHeaders, ObjectInfo, Segment

DEFAULT_CONTENT_TYPE = "application/octet-stream"
MAX_METADATA_BYTES = 2048


@attrs.frozen
class Attributes:
    """What a writer says about an object besides its bytes, validated."""

    content_type: str
    metadata: Mapping[str, str]
    headers: ObjectHeaders
    storage_class: str

    @classmethod
    def check(
        cls,
        content_type: str | None,
        metadata: Mapping[str, str] | None,
        headers: ObjectHeaders | None,
        storage_class: str | None,
    ) -> Attributes:
        if content_type is not None and not _printable(content_type):
            raise InvalidArgument(f"content type must be printable ASCII, got {content_type!r}")
        if headers is not None and not isinstance(headers, ObjectHeaders):
            raise InvalidArgument(f"headers must be ObjectHeaders, got {headers!r}")
        headers = headers or ObjectHeaders()
        for name, value in headers.as_dict().items():
            if not _header_value(value):
                raise InvalidArgument(f"{name} must be a header value, got {value!r}")
        if storage_class is not None and storage_class not in STORAGE_CLASSES:
            raise InvalidStorageClass(
                f"storage class must be one of {', '.join(STORAGE_CLASSES)}, got {storage_class!r}"
            )
        return cls(
            content_type or DEFAULT_CONTENT_TYPE,
            check_metadata(metadata),
            headers,
            storage_class or STANDARD,
        )

    def info(self, key: str, segment: Segment, modified: float, **extra: object) -> ObjectInfo:
        """The ObjectInfo of a one-segment object of ``segment``."""
        return ObjectInfo.of(
            key,
            segment.size,
            segment.md5,
            self.content_type,
            modified,
            self.metadata,
            headers=self.headers,
            storage_class=self.storage_class,
            checksums=segment.checksums,
            checksum_type=FULL_OBJECT if segment.checksums else None,
            **extra,
        )


def check_body(body: object, size: object) -> None:
    if size is not None and (not is_int(size) or size < 0):  # type: ignore[operator]
        raise InvalidArgument(f"size must be a non-negative integer or None, got {size!r}")
    in_memory = isinstance(body, bytes | bytearray | memoryview)
    if not in_memory and not hasattr(body, "__aiter__"):
        raise InvalidArgument(
            f"body must be bytes or an async iterable of bytes, got {type(body).__name__}"
        )
    if isinstance(body, bytes | bytearray | memoryview) and size not in (None, len(body)):
        raise BodyLengthMismatch(declared=size, received=len(body))  # type: ignore[arg-type]


_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")


def is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _printable(value: object) -> bool:
    """Printable ASCII: what an HTTP header value can carry as it is."""
    return isinstance(value, str) and all(" " <= char <= "~" for char in value)


def _header_value(value: object) -> bool:
    """Any UTF-8 text without control characters (tab allowed), as a header value
    S3 stores may be."""
    if not isinstance(value, str) or _CONTROL.search(value):
        return False
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def check_metadata(metadata: Mapping[str, str] | None) -> dict[str, str]:
    """User metadata travels as ``x-amz-meta-<name>: <value>`` headers, so names must
    be HTTP tokens; values may be any UTF-8 without control characters (S3 keeps
    them and returns non-ASCII ones RFC 2047-encoded, the gateway's job). The limit is
    S3's: 2 KB, the UTF-8 bytes of every name and value summed."""
    if metadata is None:
        return {}
    if not isinstance(metadata, Mapping):
        raise InvalidArgument(f"metadata must be a mapping, got {type(metadata).__name__}")
    for name, value in metadata.items():
        if not isinstance(name, str) or _TOKEN.fullmatch(name) is None:
            raise InvalidArgument(f"metadata names must be HTTP tokens, got {name!r}")
        if not _header_value(value):
            raise InvalidArgument(
                f"metadata values must be text without control characters, got {value!r}"
            )
    size = sum(len(k.encode()) + len(v.encode()) for k, v in metadata.items())
    if size > MAX_METADATA_BYTES:
        raise InvalidArgument(
            f"metadata is at most {MAX_METADATA_BYTES} bytes of UTF-8, got {size}"
        )
    return dict(metadata)
