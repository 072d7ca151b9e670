"""Byte ranges against a brute-force model: list the selected bytes, then compare."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from hypothesis import given
from hypothesis import strategies as st

from s3lite import InvalidRange
from s3lite.receiver.ranges import parse_http_range, resolve_range

WHOLE = "whole"
UNSATISFIABLE = "416"

sizes = st.one_of(st.integers(0, 40), st.integers(0, 10**15))


def selected(size: int, wanted: range) -> tuple[int, int] | str:
    """(first, last) of the object's bytes in ``wanted``, or 416 when there are none.
    Objects here can be huge, so intersect ranges instead of listing every byte, except
    for small sizes, where the bytes are listed one by one."""
    if size <= 64:
        hits = [offset for offset in range(size) if offset in wanted]
    else:
        both = range(max(wanted.start, 0), min(wanted.stop, size))
        hits = [both.start, both.stop - 1] if both else []
    return (hits[0], hits[-1]) if hits else UNSATISFIABLE


def outcome_of(call: Callable[[], tuple[int, int] | None], size: int) -> tuple[int, int] | str:
    """What ``call`` decided: a range, WHOLE (None: serve it all) or 416."""
    try:
        result = call()
    except InvalidRange as exc:
        error = exc
    else:
        return WHOLE if result is None else result
    assert error.http_status == 416
    assert error.size == size  # the 416 response's Content-Range needs it
    return UNSATISFIABLE


# -- the library's inclusive (start, end) ---------------------------------------------------


def library_model(size: int, start: int | None, end: int | None) -> tuple[int, int] | str:
    if start is None and end is None:
        return WHOLE
    if start is not None and start < 0:
        return UNSATISFIABLE
    first = 0 if start is None else start
    last = size - 1 if end is None else end
    return selected(size, range(first, last + 1))


bounds = st.one_of(st.none(), st.integers(-5, 50), st.integers(-(10**16), 10**16))


@given(sizes, bounds, bounds)
def test_resolve_range_matches_the_model(size: int, start: int | None, end: int | None) -> None:
    outcome = outcome_of(lambda: resolve_range(size, start, end), size)
    assert outcome == library_model(size, start, end)


@pytest.mark.parametrize(
    ("size", "start", "end", "expected"),
    [
        (10, None, None, WHOLE),
        (0, None, None, WHOLE),  # an empty object is read whole
        (10, 0, 9, (0, 9)),
        (10, 3, None, (3, 9)),
        (10, None, 4, (0, 4)),
        (10, 5, 100, (5, 9)),  # end clipped to the last byte
        (10, 9, 9, (9, 9)),
        (10, 10, None, UNSATISFIABLE),  # starts past the end
        (10, 4, 3, UNSATISFIABLE),  # end before start
        (10, -1, 5, UNSATISFIABLE),
        (0, 0, 0, UNSATISFIABLE),
        (0, 0, None, UNSATISFIABLE),
    ],
)
def test_resolve_range_exact(
    size: int, start: int | None, end: int | None, expected: tuple[int, int] | str
) -> None:
    assert outcome_of(lambda: resolve_range(size, start, end), size) == expected


# -- HTTP Range headers (RFC 9110 section 14) -----------------------------------------------

digits = st.one_of(st.integers(0, 60), st.integers(0, 10**18)).map(str)
spaces = st.sampled_from(["", " ", "  ", "\t"])


@st.composite
def single_range_headers(draw: st.DrawFn) -> tuple[str, str, str]:
    """``bytes=first-last`` with either side possibly missing, and optional blanks."""
    first = draw(st.one_of(st.just(""), digits))
    last = draw(st.one_of(st.just(""), digits))
    blank = draw(spaces)
    header = f"{blank}bytes{draw(spaces)}={draw(spaces)}{first}{draw(spaces)}-{last}{blank}"
    return header, first, last


def http_model(size: int, first: str, last: str) -> tuple[int, int] | str:
    if not first and not last:
        return WHOLE  # "bytes=-" is not a range: ignored
    if not first:  # suffix-range: the last N bytes
        return selected(size, range(max(size - int(last), 0), size))
    if last and int(last) < int(first):
        return WHOLE  # an invalid range-spec: the header is ignored
    stop = int(last) + 1 if last else size
    return selected(size, range(int(first), stop))


@given(single_range_headers(), sizes)
def test_single_ranges_match_the_model(parts: tuple[str, str, str], size: int) -> None:
    header, first, last = parts
    assert outcome_of(lambda: parse_http_range(header, size), size) == http_model(size, first, last)


@pytest.mark.parametrize(
    ("header", "size"),
    [("bytes=10-", 10), ("bytes=11-", 10), ("bytes=0-", 0), ("bytes=12345678901234567890-", 5)],
)
def test_open_range_past_the_end_is_416(header: str, size: int) -> None:
    assert outcome_of(lambda: parse_http_range(header, size), size) == UNSATISFIABLE


@pytest.mark.parametrize(
    ("header", "size", "expected"),
    [
        (None, 10, WHOLE),
        ("bytes=0-0", 10, (0, 0)),
        ("bytes=0-9", 10, (0, 9)),
        ("bytes=0-99", 10, (0, 9)),  # clamped
        ("bytes=5-", 10, (5, 9)),
        ("bytes=-3", 10, (7, 9)),  # the last 3 bytes
        ("bytes=-30", 10, (0, 9)),  # a suffix longer than the object is the whole object
        ("bytes=-0", 10, UNSATISFIABLE),
        ("bytes=10-20", 10, UNSATISFIABLE),
        ("bytes=0-0", 0, UNSATISFIABLE),
        ("bytes=-1", 0, UNSATISFIABLE),
        ("bytes=5-4", 10, WHOLE),  # last < first: invalid, ignored
        ("bytes=0-1,3-4", 10, WHOLE),  # multi-range: served whole, like S3
        ("bytes=-", 10, WHOLE),
        ("bytes=", 10, WHOLE),
        ("bytes=a-b", 10, WHOLE),
        ("bytes=1", 10, WHOLE),
        ("bytes=--1", 10, WHOLE),
        ("bytes=-1-2", 10, WHOLE),
        ("bytes=1.5-2", 10, WHOLE),
        ("bytes=+1-2", 10, WHOLE),
        ("items=0-1", 10, WHOLE),  # an unknown unit
        ("0-1", 10, WHOLE),
        ("", 10, WHOLE),
        ("bytes 0-1", 10, WHOLE),
    ],
)
def test_http_range_exact(header: str | None, size: int, expected: tuple[int, int] | str) -> None:
    assert outcome_of(lambda: parse_http_range(header, size), size) == expected


@given(st.text(max_size=30), sizes)
def test_any_header_is_served_ignored_or_refused_never_crashes(header: str, size: int) -> None:
    result = outcome_of(lambda: parse_http_range(header, size), size)
    if isinstance(result, tuple):
        first, last = result
        assert 0 <= first <= last < size


@given(
    st.lists(st.tuples(digits, digits), min_size=2, max_size=4),
    sizes,
)
def test_multi_ranges_are_served_whole(ranges: list[tuple[str, str]], size: int) -> None:
    header = "bytes=" + ",".join(f"{first}-{last}" for first, last in ranges)
    assert parse_http_range(header, size) is None
