"""The degraded read path: a segment's bytes rebuilt from any six of its parts.

When a data part a read needs is unavailable (missing, damaged, on a node that is
down), fetch.py opens six *sources* instead: every available data part and as many
parity parts as it takes. This module then walks the stripe rows of the range one
at a time. For each row it takes the row's *window* (the unit offsets the read needs,
striping.RowPlan) from every source, pads a short unit of the last row with zeros
(as the writer did), decodes the missing data units over that window only (the code
works byte by byte, so ranges cost what they touch), and yields the needed spans in
order. Memory is one window of every source plus the decoded units: at most one row.

Nothing unverified is sent: every byte a node sends was checked by the node against
its block checksums, the decoded bytes come from those, and a source read whole is
also checked against its manifest checksum before the last chunk goes out (the
healthy path's rule, download.py).
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Mapping, Sequence

import anyio.to_thread

from ..buffers import Buffer
from ..erasure import DATA_UNITS, Codec, codec
from .download import PartReader
from .manifest import Segment
from .striping import Layout

INLINE_DECODE = 64 * 1024
"""Windows at most this long are decoded on the event loop (faster than a thread hop)."""


def source_span(layout: Layout, index: int, start: int, end: int) -> tuple[int, int] | None:
    """The inclusive range of part ``index`` (data 0..5, parity 6..) a degraded read of
    segment bytes start..end takes: each row's window, clipped to the part's length.
    None if it takes nothing (a data part that ends before the window)."""
    first_row, last_row = layout.row_of(start), layout.row_of(end)
    window_start = layout.row_plan(first_row, start, end).window[0]
    window_end = layout.row_plan(last_row, start, end).window[1]
    length = layout.part_length(index if index < DATA_UNITS else 0)
    first = first_row * layout.unit + window_start
    last = min(last_row * layout.unit + window_end, length) - 1
    return (first, last) if first <= last else None


async def decode_rows(
    segment: Segment,
    sources: Mapping[int, PartReader],
    start: int,
    end: int,
) -> AsyncGenerator[Buffer, None]:
    """Segment bytes start..end (inclusive) from six open ``sources`` (part index ->
    reader over :func:`source_span`), decoding the data parts that are not among them.
    Closes the sources when done or abandoned; raises download.PartFailed when a
    source fails, ChecksumMismatch/DataLoss when a source read whole is not what the
    manifest recorded."""
    layout = segment.layout
    decoder = codec(segment.parity)
    absent = [index for index in range(DATA_UNITS) if index not in sources]
    held: Buffer | None = None
    try:
        for row in range(layout.row_of(start), layout.row_of(end) + 1):
            plan = layout.row_plan(row, start, end)
            low, high = plan.window
            units = {}
            for index, reader in sources.items():
                limit = high if index >= DATA_UNITS else min(high, layout.unit_length(row, index))
                taken = await reader.take(max(0, limit - low))
                units[index] = taken + bytes(high - low - len(taken)) if limit < high else taken
            wanted = [index for index in absent if plan.spans[index] is not None]
            if wanted:
                units.update(await _decode(decoder, units, wanted, high - low))
            for index, span in enumerate(plan.spans):
                if span is not None:
                    if held is not None:
                        yield held
                    held = units[index][span[0] - low : span[1] - low]
        for reader in sources.values():
            await reader.finish()
        if held is not None:
            yield held
    finally:
        for reader in sources.values():
            await reader.aclose()


async def _decode(
    codec: Codec, units: Mapping[int, bytes], wanted: Sequence[int], width: int
) -> dict[int, bytes]:
    if width <= INLINE_DECODE:
        return codec.decode(units, wanted)
    return await anyio.to_thread.run_sync(codec.decode, units, wanted)
