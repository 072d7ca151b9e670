"""Streaming some parts of one segment to their nodes: the one way parts are written,
by an upload (upload.py) and by the healer's rebuild (rebuild.py).

Each part gets a writer per node routing names for its sector (both ends of a moving
sector: dual write), fed through a bounded channel, so a slow node slows whoever
deals the bytes instead of filling memory. ``send`` hashes a part's batch (xxh3, for
the manifest) and hands it to every writer of the part. A batch is a sequence of
pieces (memoryviews into the client's chunks, say), hashed and sent one by one and
never joined: a copy of every byte is the memory bandwidth of the whole upload.

The node that serves a sector (the *primary*) counts: its failure records the part
failed, and the writer drains its channel so the dealer never waits on a part nobody
writes. A node joining with the sector is best effort (the donor's copy counts until
the switch): its failure only tells the orchestrator to copy the sector again.

Abandoning never leaves a part behind on a node that answers: every body still open
ends with :class:`UploadAborted` (so its node discards what it got), its last batch
held back until then, and every ``put_part`` is waited for (at most ``ABORT_GRACE``)
before ``run`` returns, so a caller that deletes the parts afterwards cannot race a
node committing a body it had received in full. Cancelling a writer instead could
let a node commit after the delete, which is why writers are shielded.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence

import anyio
import attrs
import xxhash
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from ..buffers import Buffer
from ..errors import S3liteError
from ..orchestrator import Orchestrator, RoutingView
from ..streams import single_error
from ..transport.base import PartStat

PART_QUEUE = 4
"""Batches buffered per destination node before the dealer waits (the default depth)."""

ABORT_GRACE = 30.0
"""Longest an abandoned write waits for its writers' nodes to answer (each is bounded
by the transport's own timeouts well before this) before it stops waiting."""


class UploadAborted(S3liteError):
    """Ends the body of a part whose write was abandoned, so its node keeps nothing;
    never reaches a caller of the object API."""


@attrs.frozen
class PartTarget:
    """Where one part goes: its sector, its file name, and its length when known in
    advance (sent as put_part ``length``, so a node can check it)."""

    sector: int
    name: str
    length: int | None = None


@attrs.define
class PartSender:
    """Writes the parts ``targets`` names (part index -> target) while ``run``'s
    dealer calls ``send``; afterwards ``stored`` and ``failed`` say how each part
    fared and ``checksum`` what was sent."""

    orchestrator: Orchestrator
    view: RoutingView
    targets: Mapping[int, PartTarget]
    why: str
    """Why an abandoned part's body ends (UploadAborted's message)."""
    depth: int = attrs.field(kw_only=True, default=PART_QUEUE)
    """Batches each channel holds."""
    on_failure: Callable[[], None] = attrs.field(kw_only=True, default=lambda: None)
    """Called each time a part fails (``failed`` already holds it): an upload stops
    dealing once too many have."""
    stored: dict[int, int] = attrs.field(init=False, factory=dict)
    """Part index -> length its primary node stored."""
    failed: dict[int, tuple[str, S3liteError]] = attrs.field(init=False, factory=dict)
    """Part index -> (node, error) of the parts whose primary node failed."""
    _hashers: dict[int, xxhash.xxh3_64] = attrs.field(init=False, factory=dict)
    _senders: dict[int, list[MemoryObjectSendStream[Sequence[Buffer]]]] = attrs.field(
        init=False, factory=dict
    )
    _aborted: bool = attrs.field(init=False, default=False)
    _writers: list[anyio.CancelScope] = attrs.field(init=False, factory=list)

    def __attrs_post_init__(self) -> None:
        self._hashers = {index: xxhash.xxh3_64() for index in self.targets}

    async def run(self, deal: Callable[[], Awaitable[None]]) -> None:
        """Start every writer, await ``deal`` (which calls ``send``), then end every
        part's body. If ``deal`` raises, the write is abandoned (see the module doc)
        and its error re-raised, a task group's one root cause rather than a group.
        Whatever happens, no writer is still running when this returns or raises."""
        try:
            with single_error():
                async with anyio.create_task_group() as group:
                    for index in self.targets:
                        self._start(group, index)
                    try:
                        await deal()
                    except BaseException:
                        self.abort()
                        raise
                    finally:
                        self._close()  # the end of every part: clean unless aborted
        finally:
            self._close()

    async def send(self, index: int, batch: Sequence[Buffer]) -> None:
        """The next batch of part ``index``, as consecutive pieces (sent as they are,
        never joined), to every node writing it (waits while the slowest one's
        channel is full)."""
        hasher = self._hashers[index]
        for piece in batch:
            hasher.update(piece)
        for sender in self._senders[index]:
            await sender.send(batch)

    def checksum(self, index: int) -> int:
        """xxh3 of every byte sent for part ``index`` so far."""
        return self._hashers[index].intdigest()

    def abort(self) -> None:
        """Abandon the write: every body still open ends with UploadAborted once its
        channel is closed, and no writer waits longer than ABORT_GRACE."""
        self._aborted = True
        deadline = anyio.current_time() + ABORT_GRACE
        for scope in self._writers:
            scope.deadline = min(scope.deadline, deadline)

    def _close(self) -> None:
        for destinations in self._senders.values():
            for sender in destinations:
                sender.close()

    def _start(self, group: anyio.abc.TaskGroup, index: int) -> None:
        target = self.targets[index]
        senders = self._senders.setdefault(index, [])
        for number, node_id in enumerate(self.view.write_owners(target.sector)):
            send, receive = anyio.create_memory_object_stream[Sequence[Buffer]](self.depth)
            senders.append(send)
            group.start_soon(self._put, node_id, index, receive, number == 0)

    async def _put(
        self,
        node_id: str,
        index: int,
        receive: MemoryObjectReceiveStream[Sequence[Buffer]],
        primary: bool,
    ) -> None:
        outcome = await self._write(node_id, self.targets[index], receive)
        if isinstance(outcome, S3liteError):
            if primary:
                self.failed[index] = (node_id, outcome)
                self.on_failure()
            else:
                self.orchestrator.note_dual_write_failure(node_id, outcome)
        elif outcome is not None and primary:
            self.stored[index] = outcome.length

    async def _write(
        self, node_id: str, target: PartTarget, receive: MemoryObjectReceiveStream[Sequence[Buffer]]
    ) -> PartStat | S3liteError | None:
        """Stream one part to one node: what it stored, why it failed (the rest of the
        part is then drained), or None if the write was abandoned. Shielded from
        cancellation (abandoning ends the body instead), so this returns only once the
        node has answered, given up or timed out."""
        outcome: PartStat | S3liteError | None = None
        with anyio.CancelScope(shield=True) as scope, receive:
            self._writers.append(scope)
            try:
                outcome = await self.orchestrator.client(node_id).put_part(
                    target.sector, target.name, self._body(receive), length=target.length
                )
            except UploadAborted:
                pass
            except S3liteError as exc:
                outcome = exc
                async for _ in receive:
                    pass
        return outcome

    def _body(self, receive: MemoryObjectReceiveStream[Sequence[Buffer]]) -> AsyncIterator[Buffer]:
        """The part's body for ``put_part``: the batches' pieces as they are, often
        memoryviews of the client's chunks (upload.py), never joined."""
        return held_back(receive, lambda: self._aborted, self.why)


async def held_back(
    receive: MemoryObjectReceiveStream[Sequence[Buffer]], aborted: Callable[[], bool], why: str
) -> AsyncIterator[Buffer]:
    """A part's body: its batches, ending with UploadAborted(``why``) if ``aborted()``
    once they are all in. The last batch is held back until the body is known to end
    well: a node that had every byte could commit the part (its length is known to
    it) even though the write was abandoned after."""
    held: Sequence[Buffer] = ()
    async for batch in receive:
        for piece in held:
            yield piece
        held = batch
    if aborted():
        raise UploadAborted(why)
    for piece in held:
        yield piece
