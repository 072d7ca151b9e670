"""One heal of a segment at a time, any number of segments at once.

The healer heals several segments concurrently (healer.HEAL_CONCURRENCY), from
several callers at once: the background worker's queue and scrub, and passes asked
for with ``s3lite heal``. Two heals of the *same* segment must not overlap: both
would place new parity parts for it, write its parts, and record them. A
:class:`SegmentTurns` gives each segment a lock of its own, made when a heal of it
starts and forgotten when the last one waiting for it is done, so it holds an entry
only per segment being healed or waited for (never one per segment ever seen).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio
import attrs

SegmentKey = tuple[str, int]
"""(upload id, segment number)."""


@attrs.define
class _Turn:
    lock: anyio.Lock = attrs.field(factory=anyio.Lock)
    users: int = 0
    """Heals of the segment holding or waiting for the lock."""


class SegmentTurns:
    """Per-segment locks (see the module doc)."""

    def __init__(self) -> None:
        self._turns: dict[SegmentKey, _Turn] = {}

    @asynccontextmanager
    async def hold(self, key: SegmentKey) -> AsyncIterator[None]:
        """Wait until no other heal of ``key`` runs, and keep it so until the block
        ends (waiters get their turn first come, first served)."""
        turn = self._turns.get(key)
        if turn is None:
            turn = self._turns[key] = _Turn()
        turn.users += 1
        try:
            async with turn.lock:
                yield
        finally:
            turn.users -= 1
            if not turn.users:
                del self._turns[key]

    def users(self, key: SegmentKey) -> int:
        """Heals of ``key`` running or waiting for their turn."""
        turn = self._turns.get(key)
        return 0 if turn is None else turn.users

    def __len__(self) -> int:
        """Segments being healed or waited for."""
        return len(self._turns)
