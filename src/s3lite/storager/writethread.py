"""One part's writes in a thread of its own, fed from the event loop without a round
trip per batch.

Handing each 1 MiB batch to anyio's worker pool (``to_thread.run_sync``) costs, per
batch, a wake-up of a worker, a wake-up of the event loop when the worker is done,
and anyio's capacity limiter and cancel scope around both; on a node alone that was
about a sixth of its CPU (benchmarks/nodeput.py). Here the loop appends batches to a
queue that one thread drains: it wakes the thread only when the thread sleeps, and
waits (in a pool worker) only when more than ``queue_limit`` bytes are queued, and
at the end. While the thread writes, the loop goes on receiving, and what queued
meanwhile is written in one go.

A dedicated thread, not a pool worker held for the part's whole duration: the pool
is bounded (anyio's 40 tokens), and a part's body may itself need a pool worker to
arrive (the erasure coder of an embedded gateway), so long-held pool workers could
starve the bodies they wait for.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import Generic, Protocol, TypeVar

import anyio
import anyio.to_thread

from ..buffers import Buffer

R = TypeVar("R")


class Writer(Protocol):
    def write_pieces(self, pieces: Sequence[Buffer]) -> None: ...

    def abort(self) -> None: ...


W = TypeVar("W", bound=Writer)


class WriteThread(Generic[W]):
    """Writes queued batches, in order, to the writer ``start`` makes (``start`` runs
    in the thread, first). Driven by one task: :meth:`put` each batch (awaiting
    :meth:`wait_room` when it says so), then :meth:`finish` or, on any failure or
    cancellation, :meth:`stop`. An error of the thread (``start``'s or a write's) is
    raised by the next call, and the writer is aborted.
    """

    def __init__(self, start: Callable[[], W], queue_limit: int) -> None:
        self._start = start
        self._limit = queue_limit
        lock = threading.Lock()
        self._work = threading.Condition(lock)
        """The thread waits on it for batches (or the end)."""
        self._room = threading.Condition(lock)
        """:meth:`wait_room` waits on it for the queue to shrink."""
        self._queue: list[Buffer] = []
        """The pieces of the batches put and not taken yet, in order."""
        self._queued = 0
        """Bytes put and not written yet (those queued and those being written)."""
        self._sleeping = False
        self._ending = False
        self._stopped = False
        self._error: BaseException | None = None
        self._writer: W | None = None
        self._thread = threading.Thread(target=self._run, name="s3lite-part-writer", daemon=True)
        self._thread.start()

    def _raise_error(self) -> None:
        if self._error is not None:
            raise self._error

    def put(self, batch: Sequence[Buffer], size: int) -> bool:
        """Queue the pieces of ``batch``, ``size`` bytes (never blocks; they must not
        change after this); True when more than the limit is queued: await
        :meth:`wait_room` before the next."""
        with self._work:
            self._raise_error()
            self._queue += batch
            self._queued += size
            if self._sleeping:
                self._work.notify()
            return self._queued > self._limit

    async def wait_room(self) -> None:
        """Return once the queue is back under its limit (or the thread failed).
        Cancellable: the worker that waits is let go, and ends at :meth:`stop`."""

        def wait() -> None:
            with self._room:
                while self._queued > self._limit and self._error is None and not self._stopped:
                    self._room.wait()

        await anyio.to_thread.run_sync(wait, abandon_on_cancel=True)
        self._raise_error()

    async def finish(self, last: Sequence[Buffer], complete: Callable[[W], R]) -> R:
        """Write ``last`` after everything queued, then ``complete(writer)`` (in a pool
        worker, once the thread has ended); its result."""
        self._end(stop=False)

        def end() -> R:
            self._thread.join()
            self._raise_error()
            assert self._writer is not None
            self._writer.write_pieces(last)
            return complete(self._writer)

        return await anyio.to_thread.run_sync(end)

    async def stop(self) -> None:
        """Drop what is queued, wait for the thread to end and abort the writer
        (removing its temporary file). Shielded from cancellation; idempotent."""
        self._end(stop=True)

        def end() -> None:
            self._thread.join()
            if self._writer is not None:
                self._writer.abort()

        with anyio.CancelScope(shield=True):
            await anyio.to_thread.run_sync(end)

    def _end(self, *, stop: bool) -> None:
        with self._work:
            self._ending = True
            self._stopped = self._stopped or stop
            self._work.notify()
            self._room.notify()

    def _take(self) -> list[Buffer] | None:
        """(The thread) The pieces to write next; None when there are no more."""
        with self._work:
            while not self._queue and not self._ending:
                self._sleeping = True
                self._work.wait()
                self._sleeping = False
            if self._stopped or not self._queue:
                return None
            pieces, self._queue = self._queue, []
            return pieces

    def _run(self) -> None:
        try:
            writer = self._writer = self._start()
            while (pieces := self._take()) is not None:
                writer.write_pieces(pieces)
                with self._room:
                    self._queued -= sum(len(piece) for piece in pieces)
                    self._room.notify()
        except BaseException as exc:  # handed to the task that drives us, not lost
            with self._room:
                self._error = exc
                self._room.notify()
            if self._writer is not None:
                self._writer.abort()
