"""Progress of long work (a join's copy, a heal pass) for logs, metrics, the admin API
and the CLI's progress bar.

A :class:`Progress` is plain state plus a clock: the work calls :meth:`Progress.step`
when it enters a step (one log line each, and an event to listeners),
:meth:`Progress.set_totals` once it knows how much there is, and
:meth:`Progress.advance` as items and bytes get done. Anyone can read a
:meth:`Progress.snapshot` (a JSON-ready dict, the same one the admin API sends and the
CLI draws); listeners get every step and every advance (a streaming endpoint coalesces
them). The rate is measured over a sliding window of recent samples, so a stall shows
up as a falling rate rather than being averaged away, and the time left follows from
it.

The heal pass uses it the same way as a join::

    progress = Progress("heal", log=logging.getLogger("s3lite.healer"))
    progress.step("scrub", segments=n)
    progress.set_totals(items=n, bytes=total)
    progress.advance(items=1, bytes=len(part))
    progress.finish()            # or progress.fail(exc)
"""

from __future__ import annotations

import collections
import logging
import time
from collections.abc import Callable
from typing import Any, Final

from .logs import event

RATE_WINDOW: Final = 5.0
"""Seconds of samples the rate is measured over."""
MILESTONES: Final = (25, 50, 75, 100)
"""Percentages of the bytes (or items) at which a line is logged."""

Listener = Callable[[dict[str, Any]], None]
"""Called with an event: {"event": "step" | "progress" | "done" | "error", ...}."""


class Progress:
    """One long task's progress (see the module doc). ``task`` names it in logs and
    snapshots ("join node-7", "heal"); ``clock`` is monotonic seconds."""

    def __init__(
        self,
        task: str,
        *,
        log: logging.Logger | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.task = task
        self._log = log or logging.getLogger("s3lite.progress")
        self._clock = clock
        self.listeners: list[Listener] = []
        self.started = clock()
        self.current_step = ""
        self.items_total: int | None = None
        self.items_done = 0
        self.bytes_total: int | None = None
        self.bytes_done = 0
        self.finished = False
        self.error: str | None = None
        self._samples: collections.deque[tuple[float, int]] = collections.deque()
        self._milestone = 0

    # -- what the work calls ---------------------------------------------------------------

    def step(self, name: str, **details: Any) -> None:
        """Enter step ``name``; logs one line with ``details`` and tells listeners."""
        self.current_step = name
        event(self._log, logging.INFO, f"{self.task}: {name}", task=self.task, step=name, **details)
        self._emit({"event": "step", "step": name, "details": details})

    def set_totals(self, *, items: int | None = None, bytes: int | None = None) -> None:
        """How much there is to do (counts done so far are kept); resets the rate."""
        self.items_total = items
        self.bytes_total = bytes
        self._samples.clear()
        self._milestone = 0
        self._emit({"event": "progress"})

    def restart_counts(self) -> None:
        """Count from zero again (a second copy pass over the same totals)."""
        self.items_done = 0
        self.bytes_done = 0
        self._samples.clear()
        self._milestone = 0
        self._emit({"event": "progress"})

    def advance(self, *, items: int = 0, bytes: int = 0) -> None:
        """``items`` and ``bytes`` more are done."""
        self.items_done += items
        self.bytes_done += bytes
        now = self._clock()
        self._samples.append((now, self.bytes_done))
        while len(self._samples) > 2 and now - self._samples[1][0] > RATE_WINDOW:
            self._samples.popleft()
        self._log_milestones()
        self._emit({"event": "progress"})

    def finish(self, **result: Any) -> None:
        self.finished = True
        event(self._log, logging.INFO, f"{self.task}: done", task=self.task, **result)
        self._emit({"event": "done", "result": result})

    def fail(self, exc: BaseException) -> None:
        self.finished = True
        self.error = f"{type(exc).__name__}: {exc}"
        event(self._log, logging.WARNING, f"{self.task}: failed", task=self.task, error=self.error)
        self._emit({"event": "error", "error": type(exc).__name__, "message": str(exc)})

    # -- what observers read ---------------------------------------------------------------

    @property
    def fraction(self) -> float | None:
        """Done over total, by bytes if their total is known (and not zero), else items."""
        if self.bytes_total:
            return min(1.0, self.bytes_done / self.bytes_total)
        if self.items_total:
            return min(1.0, self.items_done / self.items_total)
        if self.bytes_total == 0 or self.items_total == 0:
            return 1.0
        return None

    @property
    def rate(self) -> float | None:
        """Bytes per second over the last :data:`RATE_WINDOW` seconds (None: too early)."""
        if len(self._samples) < 2:
            return None
        (first_time, first_bytes), (last_time, last_bytes) = self._samples[0], self._samples[-1]
        if last_time <= first_time:
            return None
        return (last_bytes - first_bytes) / (last_time - first_time)

    @property
    def eta(self) -> float | None:
        """Seconds left at the current rate (None: unknown)."""
        rate = self.rate
        if self.bytes_total is None or not rate or rate <= 0:
            return None
        return max(0.0, (self.bytes_total - self.bytes_done) / rate)

    def snapshot(self) -> dict[str, Any]:
        """Everything above as a JSON-ready dict (the admin API's and the CLI's format)."""
        return {
            "task": self.task,
            "step": self.current_step,
            "items_done": self.items_done,
            "items_total": self.items_total,
            "bytes_done": self.bytes_done,
            "bytes_total": self.bytes_total,
            "fraction": self.fraction,
            "rate": self.rate,
            "eta": self.eta,
            "elapsed": self._clock() - self.started,
            "finished": self.finished,
            "error": self.error,
        }

    # -- internals ---------------------------------------------------------------------------

    def _log_milestones(self) -> None:
        fraction = self.fraction
        if fraction is None:
            return
        while self._milestone < len(MILESTONES) and fraction * 100 >= MILESTONES[self._milestone]:
            percent = MILESTONES[self._milestone]
            self._milestone += 1
            event(
                self._log,
                logging.INFO,
                f"{self.task}: {self.current_step} {percent}%",
                task=self.task,
                step=self.current_step,
                percent=percent,
                items_done=self.items_done,
                items_total=self.items_total,
                bytes_done=self.bytes_done,
                bytes_total=self.bytes_total,
            )

    def _emit(self, message: dict[str, Any]) -> None:
        if not self.listeners:
            return
        message = {**message, "progress": self.snapshot()}
        for listener in list(self.listeners):
            listener(message)
