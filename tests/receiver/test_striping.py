"""Striping arithmetic against a brute-force model that deals every byte in turn."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from s3lite.receiver.striping import Layout, pieces, unit_for

PARTS = 6


def deal(size: int, unit: int, parts: int = PARTS) -> list[tuple[int, int]]:
    """(part, offset in part) of every byte, found by handing bytes out one at a time:
    byte o goes to part (o // unit) % parts, at the next free offset of that part."""
    filled = [0] * parts
    where = []
    for offset in range(size):
        part = (offset // unit) % parts
        where.append((part, filled[part]))
        filled[part] += 1
    return where


@st.composite
def small_layouts(draw: st.DrawFn) -> Layout:
    size = draw(st.integers(0, 300))
    unit = draw(st.integers(1, max(1, size) + 10))
    return Layout(size, unit)


@st.composite
def large_layouts(draw: st.DrawFn) -> Layout:
    size = draw(st.one_of(st.integers(0, 10**4), st.integers(0, 10**13)))
    unit = draw(st.one_of(st.integers(1, 64), st.integers(1, 2 * 10**7), st.just(1 << 20)))
    return Layout(size, unit)


# -- part lengths -------------------------------------------------------------------------


@given(st.one_of(small_layouts(), large_layouts()))
def test_part_lengths_add_up_and_differ_by_at_most_a_unit(layout: Layout) -> None:
    lengths = [layout.part_length(index) for index in range(PARTS)]
    assert sum(lengths) == layout.size
    assert max(lengths) - min(lengths) <= layout.unit
    # dealt round-robin from part 0, so earlier parts are never shorter
    assert lengths == sorted(lengths, reverse=True)
    assert all(length >= 0 for length in lengths)
    assert layout.stripes * layout.unit >= layout.size > (layout.stripes - 1) * layout.unit or (
        layout.size == layout.stripes == 0
    )


@given(small_layouts())
def test_part_lengths_match_the_model(layout: Layout) -> None:
    model = deal(layout.size, layout.unit)
    for index in range(PARTS):
        assert layout.part_length(index) == sum(1 for part, _ in model if part == index)


def test_part_lengths_exact() -> None:
    # 10 bytes in units of 3: stripes [0-2][3-5][6-8][9] -> parts 3, 3, 3, 1, 0, 0
    assert [Layout(10, 3).part_length(i) for i in range(6)] == [3, 3, 3, 1, 0, 0]
    # 100 bytes in units of 7: 15 stripes (14 full + 2 bytes); parts 0..2 get 3 stripes,
    # 3..5 get 2; the short 15th stripe (index 14) is part 14 % 6 = 2: 2*7 + 2 = 16
    assert [Layout(100, 7).part_length(i) for i in range(6)] == [21, 21, 16, 14, 14, 14]
    assert [Layout(0, 1).part_length(i) for i in range(6)] == [0] * 6


# -- unit_for -------------------------------------------------------------------------------


@given(st.integers(0, 10**13), st.integers(1, 10**8))
def test_unit_for(size: int, max_unit: int) -> None:
    unit = unit_for(size, max_unit)
    assert 1 <= unit <= max_unit
    layout = Layout(size, unit)
    if size <= PARTS * max_unit:
        # small: at most one stripe per part, so each part is one contiguous run
        assert unit == max(1, -(-size // PARTS))
        assert layout.stripes <= PARTS
        lengths = [layout.part_length(i) for i in range(PARTS)]
        assert max(lengths) == unit or size == 0
    else:
        assert unit == max_unit


def test_unit_for_exact() -> None:
    assert unit_for(0, 1 << 20) == 1
    assert unit_for(6, 1 << 20) == 1
    assert unit_for(7, 1 << 20) == 2  # ceil(7 / 6)
    assert unit_for(6 << 20, 1 << 20) == 1 << 20
    assert unit_for(10**12, 1 << 20) == 1 << 20


@pytest.mark.parametrize("max_unit", [0, -1])
def test_unit_for_rejects_units_below_one_byte(max_unit: int) -> None:
    with pytest.raises(ValueError, match="stripe unit"):
        unit_for(100, max_unit)


def test_unit_for_gives_every_part_data_above_thirty_bytes() -> None:
    """ceil(size / 6) leaves parts empty only for tiny segments (7 bytes: 2,2,2,1,0,0)."""
    empty = {}
    for size in range(PARTS, 2000):
        layout = Layout(size, unit_for(size, 1 << 30))
        lengths = [layout.part_length(i) for i in range(PARTS)]
        if 0 in lengths:
            empty[size] = lengths
    assert max(empty) == 25
    assert empty[7] == [2, 2, 2, 1, 0, 0]


# -- locate and pieces ----------------------------------------------------------------------


@given(small_layouts())
def test_locate_matches_the_model(layout: Layout) -> None:
    for offset, expected in enumerate(deal(layout.size, layout.unit)):
        assert layout.locate(offset) == expected


@given(large_layouts(), st.data())
def test_locate_lands_inside_the_part(layout: Layout, data: st.DataObject) -> None:
    if layout.size == 0:
        return
    offset = data.draw(st.integers(0, layout.size - 1))
    part, within = layout.locate(offset)
    assert 0 <= part < PARTS
    assert 0 <= within < layout.part_length(part)


@given(st.integers(1, 10**7), st.integers(0, 10**12), st.integers(0, 10**8))
def test_pieces_cover_the_range_one_stripe_unit_each(unit: int, start: int, extra: int) -> None:
    end = start + min(extra, 50 * unit)  # bounded number of pieces
    offset = start
    for part, length in pieces(unit, start, end):
        assert length >= 1
        assert offset // unit == (offset + length - 1) // unit, "piece crosses a unit"
        assert part == (offset // unit) % PARTS
        offset += length
    assert offset == end + 1


@given(st.integers(1, 100), st.integers(0, 1000))
def test_empty_pieces_when_end_is_before_start(unit: int, start: int) -> None:
    assert list(pieces(unit, start, start - 1)) == []


@settings(max_examples=200)
@given(small_layouts(), st.data())
def test_pieces_and_part_span_match_the_model(layout: Layout, data: st.DataObject) -> None:
    if layout.size == 0:
        return
    start = data.draw(st.integers(0, layout.size - 1))
    end = data.draw(st.integers(start, layout.size - 1))
    model = deal(layout.size, layout.unit)[start : end + 1]

    # pieces, expanded to bytes, name the same part for every byte in order
    expanded = [part for part, length in layout.pieces(start, end) for _ in range(length)]
    assert expanded == [part for part, _ in model]

    # walking the pieces of one part reads contiguous bytes of it, forming part_span
    read_at = [None] * PARTS
    offset = start
    for part, length in layout.pieces(start, end):
        first = layout.locate(offset)[1]
        assert layout.locate(offset + length - 1) == (part, first + length - 1)
        previous = read_at[part]
        assert previous is None or previous == first, "gap or overlap within a part"
        read_at[part] = first + length
        offset += length
    for part in range(PARTS):
        offsets = [within for index, within in model if index == part]
        span = layout.part_span(part, start, end)
        if not offsets:
            assert span is None
        else:
            assert span == (offsets[0], offsets[-1])
            assert offsets == list(range(offsets[0], offsets[-1] + 1))


def test_part_span_exact() -> None:
    # 100 bytes, unit 7: bytes 10..50 are stripes 1 (7-13) .. 7 (49-55).
    # Part 1 holds stripe 1 (its bytes 0-6) and stripe 7 (its bytes 7-13): segment bytes
    # 10..13 are its 3..6, and 49..50 are its 7..8 -> span (3, 8).
    layout = Layout(100, 7)
    assert layout.part_span(1, 10, 50) == (3, 8)
    # part 0 holds stripe 6 (42-48) only within the range -> its bytes 7..13
    assert layout.part_span(0, 10, 50) == (7, 13)
    # a range inside stripe 3 (21-27) touches part 3 alone
    assert layout.part_span(3, 22, 24) == (1, 3)
    assert layout.part_span(2, 22, 24) is None


@given(large_layouts(), st.data())
def test_part_span_edges_agree_with_locate(layout: Layout, data: st.DataObject) -> None:
    if layout.size == 0:
        return
    start = data.draw(st.integers(0, layout.size - 1))
    end = data.draw(st.integers(start, layout.size - 1))
    first_part, first_within = layout.locate(start)
    last_part, last_within = layout.locate(end)
    assert layout.part_span(first_part, start, end)[0] == first_within  # type: ignore[index]
    assert layout.part_span(last_part, start, end)[1] == last_within  # type: ignore[index]
    for part in range(PARTS):
        span = layout.part_span(part, start, end)
        if span is not None:
            assert 0 <= span[0] <= span[1] < layout.part_length(part)


@pytest.mark.parametrize(("size", "unit"), [(-1, 1), (10, 0)])
def test_layout_rejects_bad_values(size: int, unit: int) -> None:
    with pytest.raises(ValueError, match="must be >="):
        Layout(size, unit)
