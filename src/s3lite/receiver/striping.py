"""Where each byte of a segment lives: stripe units dealt round-robin to six parts.

Byte ``o`` of a segment is in stripe unit ``u = o // unit``, which goes to part
``u % 6`` at offset ``(u // 6) * unit + o % unit`` of that part. Parts therefore
differ in length by at most one unit, every part streams in parallel on upload and
download, and a contiguous byte range of the segment is a contiguous byte range of
each part. A unit of ``ceil(size / 6)`` gives six contiguous parts; the same code
serves both.

Stripe *row* ``r`` is unit ``r`` of each of the six parts (units ``6r .. 6r+5``); the
parity parts hold one parity unit per row, as long as the row's unit 0 (a shorter
unit of the last row counts as zero-padded to that length). :meth:`Layout.row_plan`
says which bytes of each unit of a row a read needs, which is what a degraded read
decodes.

Pure arithmetic, no I/O: every function here is property-tested.
"""

from __future__ import annotations

from collections.abc import Iterator

import attrs

from ..orchestrator.placement import PARTS_PER_SEGMENT

DEFAULT_STRIPE_UNIT = 1 << 20


def unit_for(size: int, max_unit: int, parts: int = PARTS_PER_SEGMENT) -> int:
    """The stripe unit of a segment of ``size`` bytes: ``max_unit`` for large segments,
    ``ceil(size / parts)`` for small ones, which makes six contiguous parts equal within
    one unit. (A segment of 30 bytes or fewer can leave its last parts empty: 7 bytes
    are cut 2, 2, 2, 1, 0, 0.)"""
    if max_unit < 1:
        raise ValueError(f"stripe unit must be >= 1 byte, got {max_unit}")
    return max(1, min(max_unit, -(-size // parts)))


def pieces(
    unit: int, start: int, end: int, parts: int = PARTS_PER_SEGMENT
) -> Iterator[tuple[int, int]]:
    """(part index, length) of each run of bytes start..end (inclusive), in order.

    Each run lies within one stripe unit, so consecutive runs alternate parts.
    """
    offset = start
    while offset <= end:
        stripe = offset // unit
        run_end = min((stripe + 1) * unit - 1, end)
        yield stripe % parts, run_end - offset + 1
        offset = run_end + 1


@attrs.frozen
class Layout:
    """The striping of one segment: its size and stripe unit."""

    size: int = attrs.field(validator=attrs.validators.ge(0))
    unit: int = attrs.field(validator=attrs.validators.ge(1))
    parts: int = PARTS_PER_SEGMENT

    @property
    def stripes(self) -> int:
        """Number of stripe units, the last possibly short."""
        return -(-self.size // self.unit)

    def part_length(self, index: int) -> int:
        """Bytes stored in part ``index``."""
        stripes = self.stripes
        if index >= stripes:
            return 0
        count = -(-(stripes - index) // self.parts)
        length = count * self.unit
        tail = self.size % self.unit
        if tail and (stripes - 1) % self.parts == index:
            length -= self.unit - tail
        return length

    def locate(self, offset: int) -> tuple[int, int]:
        """(part index, offset within that part) of segment byte ``offset``."""
        stripe, within = divmod(offset, self.unit)
        return stripe % self.parts, (stripe // self.parts) * self.unit + within

    def part_span(self, index: int, start: int, end: int) -> tuple[int, int] | None:
        """The inclusive range of part ``index`` holding segment bytes start..end, or None
        if the part holds none of them."""
        first_stripe, last_stripe = start // self.unit, end // self.unit
        first = first_stripe + (index - first_stripe) % self.parts
        last = last_stripe - (last_stripe - index) % self.parts
        if first > last:
            return None
        if first == first_stripe:
            span_start = self.locate(start)[1]
        else:
            span_start = (first // self.parts) * self.unit
        if last == last_stripe:
            span_end = self.locate(end)[1]
        else:
            span_end = (last // self.parts) * self.unit + self.unit - 1
        return span_start, span_end

    def pieces(self, start: int, end: int) -> Iterator[tuple[int, int]]:
        """See :func:`pieces`."""
        return pieces(self.unit, start, end, self.parts)

    def unit_length(self, row: int, index: int) -> int:
        """Bytes of data unit ``index`` in stripe row ``row`` (0 past the end)."""
        stripe = row * self.parts + index
        stripes = self.stripes
        if stripe >= stripes:
            return 0
        tail = self.size % self.unit
        return tail if stripe == stripes - 1 and tail else self.unit

    def row_of(self, offset: int) -> int:
        """The stripe row holding segment byte ``offset``."""
        return offset // self.unit // self.parts

    def row_plan(self, row: int, start: int, end: int) -> RowPlan:
        """Which bytes of each unit of ``row`` hold segment bytes start..end (inclusive),
        and the window covering them all."""
        spans: list[tuple[int, int] | None] = []
        row_start = row * self.parts * self.unit
        for index in range(self.parts):
            unit_start = row_start + index * self.unit
            first = max(start, unit_start)
            last = min(end, unit_start + self.unit_length(row, index) - 1)
            spans.append((first - unit_start, last - unit_start + 1) if first <= last else None)
        found = [span for span in spans if span is not None]
        window = (min(s for s, _ in found), max(e for _, e in found)) if found else (0, 0)
        return RowPlan(row, tuple(spans), window)


@attrs.frozen
class RowPlan:
    """The bytes one read needs from one stripe row."""

    row: int
    spans: tuple[tuple[int, int] | None, ...]
    """Per data unit, the half-open range of it the read needs (None: none of it)."""
    window: tuple[int, int]
    """The half-open range of unit offsets covering every span: what a degraded read
    takes from each source part for this row (and decodes for a missing one)."""
