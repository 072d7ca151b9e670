"""Reading one segment: the healthy path when it can, the degraded path when it must.

A read of segment bytes first..last needs any six healthy parts. :class:`SegmentFetch`
keeps a set of *unavailable* parts, each with why: recorded missing by its upload,
on a node the liveness view has down (not even tried: a hung node would cost a
timeout), not found, damaged, or failed mid-stream. Its plan follows from that set:

* no data part the range touches is unavailable: the healthy path (download.py),
  exactly the data spans the range needs, nothing decoded;
* else the degraded path (degraded.py): six sources, every available data part
  first, then parity parts, and the missing data decoded row by row.

Opening a plan opens its streams concurrently; a part that fails to open joins the
set (after checking that it was not re-homed by a join since the manifest was read,
in which case the segment is looked up again), and the plan is made again. A part
that fails mid-stream (download.PartFailed) joins the set too, and the read goes on
from the first byte not yet sent, so the client sees neither a wrong byte nor a body
cut short while six parts are healthy. With fewer than six available parts the read
fails with PartsUnavailable (503) naming the nodes.

Every part found unavailable (other than one already recorded missing, which its
upload reported) is reported to the heal queue, and a read that decoded counts in
the ``s3lite_degraded_reads`` metric.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Mapping

import anyio
import attrs

from ..buffers import Buffer
from ..erasure import DATA_UNITS
from ..errors import (
    ChecksumMismatch,
    DataLoss,
    InvalidRange,
    NodeUnavailable,
    PartNotFound,
    PartsUnavailable,
    S3liteError,
)
from ..orchestrator import Orchestrator, RoutingView, part_name
from ..streams import single_error
from .degraded import decode_rows, source_span
from .download import PartFailed, PartReader, join_segment
from .healing import HealQueue, HealReason
from .manifest import Segment
from .manifest_protocol import ManifestStore

OPEN_ATTEMPTS = 8
"""Times a segment is looked up again when a part is not where the manifest said (a
join can re-home up to five parts of one segment)."""


@attrs.frozen
class ReadContext:
    """What every read needs: routing and liveness, the store (for re-homed parts),
    and the heal queue."""

    orchestrator: Orchestrator
    manifests: ManifestStore
    heal: HealQueue


class _Empty:
    """The stream of a source that contributes no byte (a data part that ends before
    the rows a degraded read takes)."""

    def __aiter__(self) -> _Empty:
        return self

    async def __anext__(self) -> bytes:
        raise StopAsyncIteration

    async def aclose(self) -> None:
        pass


@attrs.define
class SegmentFetch:
    """Bytes first..last (inclusive) of one segment, around whatever parts fail."""

    context: ReadContext
    segment: Segment
    first: int
    last: int
    avoid: Mapping[int, str] = attrs.field(factory=dict, kw_only=True)
    """Parts not to read, with why (the healer's rebuild: the parts it is replacing);
    they count as unavailable from the start and are not reported again."""
    _position: int = attrs.field(init=False)
    _unavailable: dict[int, str] = attrs.field(init=False, factory=dict)
    """Part index -> why it cannot be used."""
    _readers: dict[int, PartReader] | None = attrs.field(init=False, default=None)
    _degraded: bool = attrs.field(init=False, default=False)
    _counted: bool = attrs.field(init=False, default=False)

    def __attrs_post_init__(self) -> None:
        self._position = self.first
        self._unavailable.update(self.avoid)

    @property
    def degraded(self) -> bool:
        """Whether the current plan decodes from parity."""
        return self._degraded

    @property
    def unavailable(self) -> dict[int, str]:
        return dict(self._unavailable)

    async def open(self) -> None:
        """Open the streams of the plan for the bytes not sent yet; raises
        PartsUnavailable when fewer than six parts can be read."""
        for _ in range(OPEN_ATTEMPTS + len(self.segment.parts)):
            with self.context.orchestrator.lease() as view:
                self._note_unreachable(view)
                wanted = self._plan()
                failures = await self._open(view, wanted)
            if not failures:
                return
            for index, error in failures.items():
                if isinstance(error, PartNotFound) and await self._rehomed():
                    break  # the segment changed: plan again with the fresh one
                self._lost(index, error)
        raise DataLoss(
            f"segment {self.segment.number} of upload {self.segment.upload_id} could not be "
            f"opened: its parts kept moving or failing ({self._describe()})"
        )

    async def chunks(self) -> AsyncGenerator[Buffer, None]:
        """The bytes, opening (again) as needed; :meth:`open` first if the caller
        wants opening errors before the first byte."""
        while self._position <= self.last:
            if self._readers is None:
                await self.open()
            readers, self._readers = self._readers, None
            assert readers is not None
            if self._degraded:
                source = decode_rows(self.segment, readers, self._position, self.last)
            else:
                source = join_segment(self.segment, readers, self._position, self.last)
            try:
                async for chunk in source:
                    self._position += len(chunk)
                    yield chunk
            except PartFailed as failed:
                self._lost(failed.index, failed.error)
            except (ChecksumMismatch, DataLoss) as exc:
                # A part read whole is not what was recorded: what was sent of it
                # cannot be taken back, so the response must end short.
                self.context.heal.report(
                    self.segment.upload_id, self.segment.number, HealReason.DAMAGED, str(exc)
                )
                raise
            finally:
                await source.aclose()
                await _close(readers)  # if the generator never started, it closed none

    async def aclose(self) -> None:
        readers, self._readers = self._readers, None
        if readers:
            with anyio.CancelScope(shield=True):
                for reader in readers.values():
                    await reader.aclose()

    # -- planning --------------------------------------------------------------------------

    def _note_unreachable(self, view: RoutingView) -> None:
        liveness = self.context.orchestrator.liveness
        for part in self.segment.parts:
            if part.index in self._unavailable:
                continue
            if part.missing:
                self._unavailable[part.index] = "not stored when it was written"
            else:
                node = view.read_owner(part.sector)
                if not liveness.is_up(node):
                    self._lost(part.index, NodeUnavailable(node, "down, not asked"))

    def _plan(self) -> dict[int, tuple[int, int] | None]:
        """Part index -> inclusive span to open (None: a source with nothing to give)."""
        layout = self.segment.layout
        start, end = self._position, self.last
        touched = {
            index: span
            for index in range(DATA_UNITS)
            if (span := layout.part_span(index, start, end)) is not None
        }
        if not touched.keys() & self._unavailable.keys():
            self._degraded = False
            return dict(touched)
        usable = [part.index for part in self.segment.parts if part.index not in self._unavailable]
        if len(usable) < DATA_UNITS:
            raise self._too_few()
        self._degraded = True
        if not self._counted:
            self._counted = True
            self.context.orchestrator.metrics.durability.degraded_reads.inc()
        return {index: source_span(layout, index, start, end) for index in usable[:DATA_UNITS]}

    async def _open(
        self, view: RoutingView, wanted: dict[int, tuple[int, int] | None]
    ) -> dict[int, S3liteError]:
        """Open every wanted part at once; returns the failures (opened streams are
        closed again if there are any)."""
        readers: dict[int, PartReader] = {}
        failures: dict[int, S3liteError] = {}
        segment = self.segment

        async def open_part(index: int, span: tuple[int, int] | None) -> None:
            part = segment.parts[index]
            name = part_name(segment.upload_id, segment.number, index)
            if span is None:
                readers[index] = PartReader(name, _Empty(), None, index)
                return
            client = self.context.orchestrator.client(view.read_owner(part.sector))
            try:
                stream = await client.get_part(part.sector, name, *span)
            except InvalidRange as exc:
                failures[index] = DataLoss(f"part {name} is shorter than recorded: {exc}")
                return
            except S3liteError as exc:
                failures[index] = exc
                return
            whole = span == (0, part.length - 1)
            readers[index] = PartReader(name, stream, part.checksum if whole else None, index)

        try:
            with single_error():
                async with anyio.create_task_group() as group:
                    for index, span in wanted.items():
                        group.start_soon(open_part, index, span)
        except BaseException:
            await _close(readers)
            raise
        if failures:
            await _close(readers)
        else:
            self._readers = readers
        return failures

    async def _rehomed(self) -> bool:
        """Look the segment up again; True (and use it) if a join moved its parts."""
        fresh = await self.context.manifests.segment(self.segment.upload_id, self.segment.number)
        if fresh is None or fresh == self.segment:
            return False
        self.segment = fresh
        return True

    # -- what failed -------------------------------------------------------------------------

    def _lost(self, index: int, error: S3liteError) -> None:
        """Part ``index`` cannot be used: remember why and tell the healer."""
        part = self.segment.parts[index]
        self._unavailable[index] = str(error)
        if part.missing:
            return  # its upload queued it already
        if isinstance(error, NodeUnavailable):
            reason = HealReason.NODE_DOWN
        elif isinstance(error, PartNotFound):
            reason = HealReason.NOT_FOUND
        else:
            reason = HealReason.DAMAGED
        self.context.heal.report(
            self.segment.upload_id, self.segment.number, reason, f"part {index}: {error}"
        )

    def _describe(self) -> str:
        return "; ".join(f"part {i}: {why}" for i, why in sorted(self._unavailable.items()))

    def _too_few(self) -> PartsUnavailable:
        segment = self.segment
        view = self.context.orchestrator.view
        nodes = sorted(
            {view.read_owner(segment.parts[index].sector) for index in self._unavailable}
        )
        labels = ", ".join(self.context.orchestrator.label(node) for node in nodes)
        return PartsUnavailable(
            nodes,
            f"segment {segment.number} of upload {segment.upload_id} needs {DATA_UNITS} of "
            f"its {len(segment.parts)} parts and {len(self._unavailable)} are unavailable, on "
            f"{labels} ({self._describe()})",
        )


async def _close(readers: dict[int, PartReader]) -> None:
    with anyio.CancelScope(shield=True):
        for reader in readers.values():
            await reader.aclose()
