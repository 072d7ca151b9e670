"""One page of a listing with S3's delimiter, computed by skip-scans over an index.

Listing ``prefix`` with a delimiter rolls every key ``prefix + X + delimiter + Y`` (X
free of the delimiter) up into the *common prefix* ``prefix + X + delimiter``. All keys
under one common prefix are contiguous in key order, so after meeting the first of
them the scan seeks straight past the last (to ``prefix_upper_bound`` of the common
prefix) instead of reading them: a page costs at most ``limit + 1`` rows and as many
seeks, whether the bucket holds a thousand keys or a million.

The marker (``start_after``, S3's ``marker``/``key-marker``) is exclusive. An entry (a
key or a common prefix) comes from the rows after the marker, and a common prefix
equal to the marker is skipped: it was the last entry of the previous page. So the
next page's marker is always the last entry of this one, and paging is exact even
when a page ends on a common prefix.

Pure: the caller supplies ``fetch``, which runs the index query lazily (SQLite steps
a cursor only as far as it is read), so this module is tested against a brute-force
model with plain lists.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

import attrs

from .keys import prefix_upper_bound

T = TypeVar("T")

Position = tuple[str, ...]
"""Where a row sorts: ``(key,)`` for objects, ``(key, upload_id)`` for uploads."""

Fetch = Callable[[Position, bool], Iterator[tuple[Position, T]]]
"""``fetch(bound, inclusive)``: the rows whose key starts with the listing's prefix
and whose position is after ``bound`` (or at it, if ``inclusive``), in order. The
first element of a bound of one element is compared with the key alone."""


@attrs.frozen
class Page(Generic[T]):
    entries: tuple[tuple[str, T | None], ...]
    """(key, row) for a row; (common prefix, None) for a roll-up."""
    is_truncated: bool

    @property
    def rows(self) -> tuple[T, ...]:
        return tuple(row for _, row in self.entries if row is not None)

    @property
    def prefixes(self) -> tuple[str, ...]:
        return tuple(name for name, row in self.entries if row is None)

    @property
    def next_marker(self) -> str | None:
        """The marker of the next page if there is one."""
        return self.last if self.is_truncated else None

    @property
    def last(self) -> str | None:
        """The marker of the next page: the last entry's name (None if empty)."""
        return self.entries[-1][0] if self.entries else None


def common_prefix(key: str, prefix: str, delimiter: str) -> str | None:
    """The common prefix ``key`` rolls up to under ``prefix`` and ``delimiter``, or
    None if it is listed as itself (no delimiter after the prefix, or no delimiter)."""
    if not delimiter:
        return None
    found = key.find(delimiter, len(prefix))
    return None if found < 0 else key[: found + len(delimiter)]


def list_page(
    fetch: Fetch[T], *, prefix: str, delimiter: str, after: Position, limit: int
) -> Page[T]:
    """Up to ``limit`` entries after ``after`` (exclusive), and whether more follow."""
    if limit < 1:
        raise ValueError(f"limit must be >= 1, got {limit}")
    marker = after[0]
    entries: list[tuple[str, T | None]] = []
    bound, inclusive = after, False
    if after < (prefix,):
        bound, inclusive = (prefix,), True
    while True:
        rolled = None
        for position, row in fetch(bound, inclusive):
            key = position[0]
            rolled = common_prefix(key, prefix, delimiter)
            if rolled is None:
                if len(entries) == limit:
                    return Page(tuple(entries), True)
                entries.append((key, row))
                continue
            if rolled != marker:
                if len(entries) == limit:
                    return Page(tuple(entries), True)
                entries.append((rolled, None))
            break
        if rolled is None:
            return Page(tuple(entries), False)
        upper = prefix_upper_bound(rolled)
        if upper is None:
            return Page(tuple(entries), False)
        bound, inclusive = (upper,), True
