"""Counting completed operations, so a test can wait for N more of them (no polling, no
sleeping): the clients tick, a fault or a join step waits until traffic has moved on."""

from __future__ import annotations

import anyio


class Progress:
    """Counts completed operations; :meth:`more` waits for N more."""

    def __init__(self) -> None:
        self.count = 0
        self._waiters: list[tuple[int, anyio.Event]] = []

    def tick(self) -> None:
        self.count += 1
        for target, event in list(self._waiters):
            if self.count >= target:
                event.set()
                self._waiters.remove((target, event))

    async def more(self, operations: int) -> None:
        event = anyio.Event()
        self._waiters.append((self.count + operations, event))
        await event.wait()
