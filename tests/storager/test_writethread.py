"""WriteThread: a part's writes in a thread of their own. Batches are written in order,
put never waits for a write (what queues meanwhile is written in one go), the loop
waits only over the limit, and every failure reaches the task and aborts the writer.
The node's own behaviour through it (disk full mid-stream, cancellation, a closed
node) is in test_node.py and the transport contract."""

from __future__ import annotations

import threading
from collections.abc import Sequence

import anyio
import pytest

from s3lite.buffers import Buffer
from s3lite.storager.writethread import WriteThread

pytestmark = pytest.mark.anyio

WAIT = 10.0
"""Seconds any step may take before the test fails instead of hanging."""


class Recorder:
    """A writer that records each write_pieces call; ``gate`` (when given) holds every
    write until it is set, and ``fail_on`` makes the write of that piece raise."""

    def __init__(self, gate: threading.Event | None = None, fail_on: bytes | None = None) -> None:
        self.calls: list[list[bytes]] = []
        self.writing = threading.Event()
        self.gate = gate
        self.fail_on = fail_on
        self.aborted = threading.Event()

    def write_pieces(self, pieces: Sequence[Buffer]) -> None:
        self.writing.set()
        if self.gate is not None:
            assert self.gate.wait(WAIT)
        if self.fail_on is not None and self.fail_on in [bytes(piece) for piece in pieces]:
            raise OSError(5, "Input/output error")
        self.calls.append([bytes(piece) for piece in pieces])

    def abort(self) -> None:
        self.aborted.set()

    @property
    def written(self) -> bytes:
        return b"".join(b"".join(call) for call in self.calls)


async def test_batches_are_written_in_order_and_finish_returns_completes_result() -> None:
    recorder = Recorder()
    thread = WriteThread(lambda: recorder, queue_limit=1 << 20)
    for index in range(5):
        assert not thread.put([b"a%d" % index, b"-"], 3)
    result = await thread.finish([b"last"], lambda writer: (writer is recorder, writer.written))
    assert result == (True, b"a0-a1-a2-a3-a4-last")
    assert not recorder.aborted.is_set()


async def test_put_never_waits_for_a_write_and_what_queued_is_written_in_one_go() -> None:
    gate = threading.Event()
    recorder = Recorder(gate)
    thread = WriteThread(lambda: recorder, queue_limit=100)
    thread.put([b"first"], 5)
    assert await anyio.to_thread.run_sync(recorder.writing.wait, WAIT)  # held in its write
    for piece in [b"b", b"c", b"d"]:
        assert not thread.put([piece], 1)  # returns at once though the thread is busy
    gate.set()
    await thread.finish([], lambda writer: None)
    assert [call for call in recorder.calls if call] == [[b"first"], [b"b", b"c", b"d"]]


async def test_over_the_limit_put_says_wait_and_wait_room_returns_once_written() -> None:
    gate = threading.Event()
    recorder = Recorder(gate)
    thread = WriteThread(lambda: recorder, queue_limit=10)
    assert not thread.put([b"x" * 10], 10)  # at the limit: no wait
    assert thread.put([b"y"], 1)  # over it
    with anyio.move_on_after(0.2) as early:
        await thread.wait_room()
    assert early.cancelled_caught  # the thread is still held: no room yet, and cancellable
    gate.set()
    with anyio.fail_after(WAIT):
        await thread.wait_room()
    await thread.finish([], lambda writer: None)
    assert recorder.written == b"x" * 10 + b"y"


async def test_a_failed_start_is_raised_by_the_next_call_and_nothing_is_written() -> None:
    def start() -> Recorder:
        raise OSError(28, "No space left on device")

    thread = WriteThread(start, queue_limit=1 << 20)
    with pytest.raises(OSError, match="No space"):
        await thread.finish([b"data"], lambda writer: None)
    await thread.stop()  # the node's failure path: nothing to abort, no error


async def test_a_failed_write_reaches_put_and_aborts_the_writer() -> None:
    recorder = Recorder(fail_on=b"bad")
    thread = WriteThread(lambda: recorder, queue_limit=1 << 20)
    thread.put([b"bad"], 3)
    assert await anyio.to_thread.run_sync(recorder.aborted.wait, WAIT)  # failed on its own
    with pytest.raises(OSError, match="Input/output"):
        thread.put([b"more"], 4)
    await thread.stop()


async def test_a_failed_write_wakes_a_task_waiting_for_room() -> None:
    gate = threading.Event()
    recorder = Recorder(gate, fail_on=b"bad")
    thread = WriteThread(lambda: recorder, queue_limit=1)
    thread.put([b"bad"], 3)
    assert thread.put([b"next"], 4)
    gate.set()
    with anyio.fail_after(WAIT), pytest.raises(OSError, match="Input/output"):
        await thread.wait_room()
    await thread.stop()


async def test_stop_drops_what_is_queued_ends_the_thread_and_aborts_the_writer() -> None:
    gate = threading.Event()
    recorder = Recorder(gate)
    thread = WriteThread(lambda: recorder, queue_limit=1 << 20)
    thread.put([b"one"], 3)
    assert await anyio.to_thread.run_sync(recorder.writing.wait, WAIT)
    thread.put([b"dropped"], 7)
    with anyio.fail_after(WAIT):
        async with anyio.create_task_group() as group:
            group.start_soon(thread.stop)
            await anyio.wait_all_tasks_blocked()  # stop has said so and waits for the thread
            gate.set()
    assert recorder.calls == [[b"one"]]
    assert recorder.aborted.is_set()
    assert not thread._thread.is_alive()
    await thread.stop()  # idempotent


async def test_a_task_cancelled_while_waiting_for_room_can_stop_the_thread() -> None:
    gate = threading.Event()
    recorder = Recorder(gate)
    thread = WriteThread(lambda: recorder, queue_limit=1)
    thread.put([b"held"], 4)
    assert thread.put([b"queued"], 6)
    with anyio.move_on_after(0.2) as scope:
        await thread.wait_room()
    assert scope.cancelled_caught
    with anyio.fail_after(WAIT):
        async with anyio.create_task_group() as group:
            group.start_soon(thread.stop)
            await anyio.wait_all_tasks_blocked()
            gate.set()
    assert recorder.aborted.is_set()
    assert not thread._thread.is_alive()
