"""Conditional requests: S3's If-* headers, evaluated against an object. Pure.

Reads (GET/HEAD) follow RFC 9110 section 13.2.2's order, which is also S3's:

1. ``If-Match`` present: false -> 412. Absent: ``If-Unmodified-Since`` is evaluated
   instead (a modification after the date -> 412).
2. ``If-None-Match`` present: false (an ETag matches) -> 304 for GET/HEAD. Absent:
   ``If-Modified-Since`` is evaluated instead (no modification after the date -> 304).

So when If-Match holds, If-Unmodified-Since is ignored, and when If-None-Match is
present, If-Modified-Since is ignored (S3 documents both cases). CopyObject's
``x-amz-copy-source-if-*`` headers use the same order, but every failure is 412.

ETags compare as RFC 9110 says: strong comparison for If-Match (a weak tag never
matches), weak for If-None-Match (``W/"x"`` matches ``"x"``); ``*`` matches any
object; a header may list several tags; quotes are optional, as some clients omit
them. Dates are HTTP-dates (IMF-fixdate, RFC 850 or asctime); an invalid date makes
its header ignored (RFC 9110 13.1.3/13.1.4). Last-Modified is compared at whole
seconds, the resolution of an HTTP-date.

Writes (PUT, CompleteMultipartUpload, CopyObject's destination) take a
:class:`WriteCondition` checked in the same transaction as the manifest commit.
"""

from __future__ import annotations

import calendar
import datetime as dt
import re

import attrs

from ..errors import NotFound, NotModified, PreconditionFailed
from .manifest import ObjectInfo

_MONTHS = {name: n for n, name in enumerate(calendar.month_abbr) if name}
_DAY = r"(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun)"
_LONG_DAY = r"(?:Monday|Tuesday|Wednesday|Thursday|Friday|Saturday|Sunday)"
_MONTH = r"(Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)"
_TIME = r"(\d\d):(\d\d):(\d\d)"
_IMF = re.compile(rf"{_DAY}, (\d\d) {_MONTH} (\d{{4}}) {_TIME} GMT")
_RFC850 = re.compile(rf"{_LONG_DAY}, (\d\d)-{_MONTH}-(\d\d) {_TIME} GMT")
_ASCTIME = re.compile(rf"{_DAY} {_MONTH} ([ \d]\d) {_TIME} (\d{{4}})")


def parse_http_date(text: str) -> dt.datetime | None:
    """An HTTP-date (RFC 9110 5.6.7) as an aware UTC datetime; None if it is not one."""
    text = text.strip()
    if match := _IMF.fullmatch(text):
        day, month, year, hour, minute, second = match.groups()
    elif match := _RFC850.fullmatch(text):
        day, month, short_year, hour, minute, second = match.groups()
        # RFC 9110: a two-digit year more than 50 years in the future is in the past.
        year = str(2000 + int(short_year))
        if int(year) > dt.datetime.now(dt.UTC).year + 50:
            year = str(int(year) - 100)
    elif match := _ASCTIME.fullmatch(text):
        month, day, hour, minute, second, year = match.groups()
    else:
        return None
    try:
        return dt.datetime(
            int(year), _MONTHS[month], int(day), int(hour), int(minute), int(second), tzinfo=dt.UTC
        )
    except ValueError:  # 31 Feb, 25:00...
        return None


def parse_etags(header: str) -> list[tuple[str, bool]] | None:
    """The entity tags of an If-Match/If-None-Match header as (opaque tag, weak), or
    None for ``*``. Quotes are optional; empty list items are skipped."""
    if header.strip() == "*":
        return None
    tags = []
    for item in header.split(","):
        item = item.strip()
        weak = item.startswith("W/")
        if weak:
            item = item[2:]
        if len(item) >= 2 and item[0] == item[-1] == '"':
            item = item[1:-1]
        if item:
            tags.append((item, weak))
    return tags


def etag_matches(header: str, etag: str, *, weak: bool) -> bool:
    """Whether ``etag`` (unquoted, strong) matches the header's list (or ``*``)."""
    tags = parse_etags(header)
    if tags is None:
        return True
    return any(tag == etag and (weak or not is_weak) for tag, is_weak in tags)


def _modified_after(info: ObjectInfo, header: str) -> bool | None:
    """Whether the object changed after the header's date (None: invalid date)."""
    date = parse_http_date(header)
    if date is None:
        return None
    return info.last_modified.replace(microsecond=0) > date


@attrs.frozen
class ReadConditions:
    """The If-* headers of a read (or the x-amz-copy-source-if-* of a copy), as sent."""

    if_match: str | None = None
    if_none_match: str | None = None
    if_modified_since: str | None = None
    if_unmodified_since: str | None = None

    def check(self, info: ObjectInfo) -> None:
        """Raise PreconditionFailed (412) or NotModified (304) for a GET/HEAD of
        ``info``; return if the read may go on."""
        self._evaluate(info, NotModified)

    def check_copy_source(self, info: ObjectInfo) -> None:
        """As :meth:`check`, for a copy source: every failure is PreconditionFailed."""
        self._evaluate(info, PreconditionFailed)

    def _evaluate(self, info: ObjectInfo, not_modified: type[Exception]) -> None:
        if self.if_match is not None:
            if not etag_matches(self.if_match, info.etag, weak=False):
                raise PreconditionFailed(
                    f"If-Match {self.if_match!r} does not match ETag {info.etag!r}"
                )
        elif self.if_unmodified_since is not None and _modified_after(
            info, self.if_unmodified_since
        ):
            raise PreconditionFailed(f"modified since {self.if_unmodified_since}")
        if self.if_none_match is not None:
            if etag_matches(self.if_none_match, info.etag, weak=True):
                raise not_modified(f"If-None-Match {self.if_none_match!r} matches {info.etag!r}")
        elif (
            self.if_modified_since is not None
            and _modified_after(info, self.if_modified_since) is False
        ):
            raise not_modified(f"not modified since {self.if_modified_since}")


@attrs.frozen
class WriteCondition:
    """A conditional write: ``if_match`` an ETag (or ``*``), and/or ``if_none_match``:
    True (``If-None-Match: *``, create only) or an If-None-Match list of ETags (the
    write fails if the current object has one of them, as S3 does)."""

    if_match: str | None = None
    if_none_match: bool | str = False

    def check(self, key: str, current_etag: str | None) -> None:
        """Raise unless the write may replace the object whose ETag is
        ``current_etag`` (None: there is no object). If-Match on a missing key is
        NotFound, as S3 answers (404 NoSuchKey)."""
        if self.if_none_match and current_etag is not None:
            tags = "*" if self.if_none_match is True else str(self.if_none_match)
            if etag_matches(tags, current_etag, weak=True):
                raise PreconditionFailed(
                    f"If-None-Match {tags!r} but {key!r} has ETag {current_etag!r}"
                )
        if self.if_match is not None:
            if current_etag is None:
                raise NotFound(f"If-Match {self.if_match!r} but there is no object {key!r}")
            if not etag_matches(self.if_match, current_etag, weak=False):
                raise PreconditionFailed(
                    f"If-Match {self.if_match!r} does not match ETag {current_etag!r}"
                )
