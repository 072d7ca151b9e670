"""Byte ranges: the library's inclusive (start, end) and HTTP's ``Range`` header.

Both resolve against the object's size to an inclusive ``(first, last)`` or to None,
meaning the whole object (which is also how an empty object is read).
"""

from __future__ import annotations

import re

from ..errors import InvalidRange

_RANGE = re.compile(r"\s*bytes\s*=\s*([0-9]*)\s*-\s*([0-9]*)\s*", re.IGNORECASE)
_MAX_DIGITS = 18


def _number(text: str) -> int:
    """A range bound; one of more than 18 digits is past any object (and int() of
    thousands of digits raises ValueError)."""
    return int(text) if len(text) <= _MAX_DIGITS else 10**_MAX_DIGITS


def resolve_range(size: int, start: int | None, end: int | None) -> tuple[int, int] | None:
    """Resolve a library range: ``start`` defaults to 0, ``end`` to the last byte and is
    clipped to it. Raises InvalidRange when the range selects no byte of the object."""
    if start is None and end is None:
        return None
    first = 0 if start is None else start
    last = size - 1 if end is None else min(end, size - 1)
    if first < 0 or (end is not None and end < first) or first >= size:
        raise InvalidRange(
            f"range start={start} end={end} selects no byte of an object of {size} bytes",
            size=size,
        )
    return first, last


def parse_http_range(header: str | None, size: int) -> tuple[int, int] | None:
    """Resolve an HTTP ``Range`` header (RFC 9110) against ``size``.

    Returns None (serve the whole object, status 200) when there is no header or it is
    not a single ``bytes=`` range we understand: HTTP says to ignore what cannot be
    parsed, and like S3 we serve multi-range requests whole. Raises InvalidRange
    (status 416) for a well-formed range that selects nothing.
    """
    if header is None:
        return None
    match = _RANGE.fullmatch(header)
    if match is None:
        return None
    first_text, last_text = match.groups()
    if not first_text and not last_text:
        return None
    if not first_text:  # suffix: the last N bytes
        suffix = _number(last_text)
        if suffix == 0 or size == 0:
            raise InvalidRange(f"range {header!r} selects no byte of {size}", size=size)
        return max(0, size - suffix), size - 1
    first = _number(first_text)
    if last_text and _number(last_text) < first:
        return None  # syntactically invalid: ignored, as RFC 9110 asks
    if first >= size:
        raise InvalidRange(f"range {header!r} starts beyond the last byte of {size}", size=size)
    last = _number(last_text) if last_text else size - 1
    return first, min(last, size - 1)
