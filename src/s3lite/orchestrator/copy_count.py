"""Counting a join's copy as it streams: bytes and sectors relayed per donor, turned
into progress events, a metric and each moving sector's fraction copied (which the
console fills the ring with). Pure bookkeeping over byte counts, apart from the
counters it is handed."""

from __future__ import annotations

import bisect
import itertools
from collections.abc import Mapping

from ..metrics import GatewayMetrics
from ..progress import Progress
from .ring import NodeId


def moving_bytes(
    moves: Mapping[int, NodeId], usage: Mapping[NodeId, Mapping[int, int]]
) -> dict[int, int]:
    """Bytes each moving sector holds on its donor, per ``usage``."""
    return {sector: usage.get(donor, {}).get(sector, 0) for sector, donor in moves.items()}


class DonorCount:
    """Turns the bytes relayed from one donor into progress: bytes (at most the
    donor's planned share until it is complete) and sectors (the export streams them
    in order, so a sector is done once the bytes before its end have gone by). Each
    sector's own fraction goes to ``copied`` (sector -> 0..1)."""

    def __init__(
        self,
        donor: NodeId,
        sectors: list[int],
        sizes: Mapping[int, int],
        progress: Progress,
        metrics: GatewayMetrics,
        copied: dict[int, float],
    ) -> None:
        self._progress = progress
        self._counter = metrics.joins.relayed.labels(donor)
        self._sectors = sectors
        self._sizes = [sizes.get(sector, 0) for sector in sectors]
        self._copied = copied
        self._ends = list(itertools.accumulate(self._sizes))
        self._share = self._ends[-1] if self._ends else 0
        self._relayed = 0
        self._counted = 0
        self._sectors_done = 0

    def relayed(self, size: int) -> None:
        self._counter.inc(size)
        self._relayed += size
        self._advance(min(self._relayed, self._share))

    def complete(self) -> None:
        self._advance(self._share, all_sectors=True)

    def _advance(self, counted: int, *, all_sectors: bool = False) -> None:
        done = len(self._ends)
        if not all_sectors:
            done = bisect.bisect_right(self._ends, counted)
            if done == len(self._ends):
                done -= 1  # the last sector is done when the stream ends, not before
        before = self._sectors_done
        items, self._sectors_done = done - self._sectors_done, max(done, self._sectors_done)
        grown, self._counted = counted - self._counted, max(counted, self._counted)
        for sector in self._sectors[before : self._sectors_done]:
            self._copied[sector] = 1.0
        if self._sectors_done < len(self._sectors):
            index = self._sectors_done
            size = self._sizes[index]
            start = self._ends[index] - size
            fraction = (self._counted - start) / size if size else 0.0
            self._copied[self._sectors[index]] = min(max(fraction, 0.0), 1.0)
        if items > 0 or grown > 0:
            self._progress.advance(items=max(items, 0), bytes=max(grown, 0))
