"""The healer: one background worker that brings every segment back to whole.

It works segment by segment (:meth:`Healer.heal_segment`), several segments at once
(:data:`HEAL_CONCURRENCY` over every source of work, never two heals of one segment
at a time: heal_turns.py): ask each part's node to verify it (``verify_parts``:
length and xxh3 computed on the node, so checking ships no bytes to the gateway; a
damaged file is quarantined by its node), compare with the manifest's records, and
decide (heal_plan.plan_repair) what to rebuild and how many parity parts to add.
Then, holding the routing lease as an upload does (so a join in flight waits, and
every write reaches both ends of a moving sector):

* new parity parts are placed on nodes holding no other part of the segment in every
  ring of the routing (invariant 1), and recorded ``missing`` with the segment's new
  parity in one transaction, before a byte is written (a delete meanwhile deletes
  them too; the janitor never takes them for orphans);
* the parts to rebuild are decoded from the others and written back
  (rebuild.rebuild_parts), through the rate limit;
* they are recorded stored in one transaction, which fails if the segment was
  deleted meanwhile: what was written is then deleted again (no orphans).

Where the work comes from:

* the heal queue (healing.py): what reads and writes found (:meth:`process_queue`);
* the scrub: a walk over every segment, in (upload id, segment) order, at a bounded
  rate of bytes verified per second; its position is saved in the manifest store, so
  a restart goes on where it stopped (:meth:`scrub_step`); a pass that ends starts
  again after ``scrub_interval``;
* a node that came back empty (``s3lite node --replaced``): every part the manifests
  place on it is rebuilt (reads of its objects are served degraded meanwhile), then
  its ``replaced`` flag is cleared (:meth:`rebuild_replaced`);
* a full pass, asked for with ``s3lite heal [--node ID]`` (:meth:`run_pass`), with
  its progress (progress.py) streamed to the caller and kept for ``status``.

A segment written with less parity than its class asks for is raised to what the
cluster can give now (the target, or fewer while fewer than ``6 + target`` nodes are
writable). Parts on a node that is down are neither checked nor rebuilt: they wait
(the segment stays queued) until the node is back. Every action is one log line
(s3lite.logs.heal_action) and counts in the durability metrics.
"""

from __future__ import annotations

import collections
import contextlib
import json
import logging
import math
import time
from collections.abc import AsyncGenerator, Callable, Mapping
from typing import Any

import anyio
import attrs

from ..erasure import DATA_UNITS
from ..errors import NotEnoughNodes, S3liteError
from ..logs import heal_action
from ..orchestrator import RoutingView, part_name
from ..orchestrator.placement import place_more
from ..progress import Progress
from ..streams import single_error
from ..transport.base import PartCheck
from .heal_plan import UNCHECKED, RateLimit, Repair, plan_repair, rebuildable
from .heal_turns import SegmentKey, SegmentTurns
from .healing import HealReason
from .manifest import STANDARD, PartRecord, Segment
from .rebuild import rebuild_parts, take_back
from .receiver import Receiver

log = logging.getLogger("s3lite.healer")

DEFAULT_HEAL_RATE = 64 * 1024 * 1024
"""Bytes per second the healer writes at most (``--heal-rate``)."""
DEFAULT_SCRUB_RATE = 64 * 1024 * 1024
"""Bytes per second of parts the background scrub asks nodes to verify."""
DEFAULT_SCRUB_INTERVAL = 7 * 24 * 3600.0
"""Seconds between the end of a background scrub pass and the start of the next."""
DEFAULT_IDLE = 10.0
"""Seconds the worker waits before it looks at the heal queue and for replaced nodes
again (it is woken at once when a node comes back up)."""
SCAN_BATCH = 64
"""Segments read from the manifest store per step of a scan."""
QUEUE_BATCH = 100
HEAL_CONCURRENCY = 4
"""Segments the healer heals at once, whoever asked (the queue, the scrub, passes).

One segment's heal waits on nodes in turn (a round of verify calls, then a read of
six parts, a decode and a write), so several at once keep the nodes and the gateway
busy. Measured with ``python -m benchmarks healing`` (8 node processes and the
gateway on a shared 2-core machine, 2026-11-27), MB/s written back:

* a wiped node of 256 MiB (64 MiB objects), two runs each: 1: 23, 20; 2: 23, 31;
  4: 28, 27; 8: 26, 25 (the gateway's core is the limit: more than 4 only adds
  memory);
* 1 GiB (64 MiB objects), back to back: 1: 26, 19; 4: 32, 28;
* 64 MiB of 2 MiB objects (where round trips weigh most): 1: 9; 4: 12; 8: 14.

Memory is bounded by this many rebuilds at once, whatever the segments' sizes, each
holding what rebuild.py holds for one segment: a group of rows (six stripe units of
at least ``SEND_BATCH`` bytes: 1.5 MiB, 6 MiB with the default 1 MiB unit) as read,
as copied out and as dealt into parts, its parity, up to ``PART_QUEUE`` batches (a
unit's worth each) per part written on each of its write channels, and the read's
buffers. Measured: the benchmark gateway's peak resident memory is 110-115 MiB with
1 (uploads included), 200-260 MiB with 4 (64 MiB segments, 1 MiB units): about
35-45 MiB per rebuild. A heal that only verifies holds next to nothing."""
RETRY = 300.0
"""Seconds after which the worker looks at the queue again even if nothing changed."""

Outcome = str
"""What heal_segment did: whole, repaired, waiting (parts on down nodes, or a node
failed while writing), lost (fewer than six parts left), gone (deleted)."""

START: tuple[str, int] = ("", -1)
"""A scan position before every segment."""


@attrs.frozen
class Healed:
    """What one heal of a segment did: its outcome, and what it wrote back (so a
    pass counts its own rebuilds, not those of heals running beside it)."""

    outcome: Outcome
    bytes: int = 0
    parts: int = 0


class Healer:
    """The worker (see the module doc). ``rate`` is bytes written per second (None:
    unlimited), ``scrub_rate`` bytes verified per second by the background scrub
    (None: no background scrub), ``scrub_interval`` the pause between its passes,
    ``concurrency`` the segments healed at once (see :data:`HEAL_CONCURRENCY`)."""

    def __init__(
        self,
        receiver: Receiver,
        *,
        rate: float | None = DEFAULT_HEAL_RATE,
        scrub_rate: float | None = DEFAULT_SCRUB_RATE,
        scrub_interval: float = DEFAULT_SCRUB_INTERVAL,
        idle: float = DEFAULT_IDLE,
        clock: Callable[[], float] | None = None,
        concurrency: int = HEAL_CONCURRENCY,
    ) -> None:
        self.receiver = receiver
        self.orchestrator = receiver.orchestrator
        self.manifests = receiver.manifests
        self.heal = receiver.heal
        self.limit = RateLimit(rate) if clock is None else RateLimit(rate, clock=clock)
        self.scrub_limit = None if scrub_rate is None else RateLimit(scrub_rate)
        self.scrub_interval = scrub_interval
        self.idle = idle
        self.metrics = self.orchestrator.metrics.durability
        self.rebuilt_bytes = 0
        self.rebuilt_parts = 0
        self.scrub_cursor = START
        self.scrub_passes = 0
        self.scrub_finished: float | None = None
        """When the last scrub pass ended (Unix seconds)."""
        self.scrub_nodes = 0
        """Nodes in the ring when the last scrub pass ended: a join since starts the
        next pass at once (it raises the parity of older segments)."""
        self.degraded: set[tuple[str, int]] = set()
        """Segments found short and not repaired yet (down nodes, too few parts)."""
        self.progress: Progress | None = None
        self.progress_listeners: list[Callable[[dict[str, Any]], None]] = []
        self._wake = anyio.Event()
        if concurrency < 1:
            raise ValueError(f"the healer heals at least 1 segment at a time, got {concurrency}")
        self.concurrency = concurrency
        self._slots = anyio.CapacityLimiter(concurrency)
        """Heals running at once, over every caller (bounds the memory they hold)."""
        self._turns = SegmentTurns()
        """One heal of a segment at a time: a queue item and a pass take turns on it."""

    # -- state across restarts -----------------------------------------------------------------

    async def load(self) -> None:
        """Restore the scrub position and the counters saved by an earlier run."""
        saved = await self.manifests.heal_state("healer")
        if saved is None:
            return
        state = json.loads(saved)
        self.scrub_cursor = (str(state["cursor"][0]), int(state["cursor"][1]))
        self.rebuilt_bytes = int(state.get("rebuilt_bytes", 0))
        self.rebuilt_parts = int(state.get("rebuilt_parts", 0))
        self.scrub_passes = int(state.get("scrub_passes", 0))
        self.scrub_finished = state.get("scrub_finished")
        self.scrub_nodes = int(state.get("scrub_nodes", 0))
        self.metrics.rebuilt_bytes.inc(self.rebuilt_bytes)
        await self._publish_position()

    async def save(self) -> None:
        state = {
            "cursor": list(self.scrub_cursor),
            "rebuilt_bytes": self.rebuilt_bytes,
            "rebuilt_parts": self.rebuilt_parts,
            "scrub_passes": self.scrub_passes,
            "scrub_finished": self.scrub_finished,
            "scrub_nodes": self.scrub_nodes,
        }
        await self.manifests.save_heal_state("healer", json.dumps(state))

    def wake(self) -> None:
        """Look for work now (a node came back, a report came in)."""
        self._wake.set()

    # -- one segment ---------------------------------------------------------------------------

    async def heal_segment(
        self, upload_id: str, number: int, *, node: str | None = None
    ) -> Outcome:
        """Check one segment and repair what it needs (see the module doc). With
        ``node``, only the parts that node holds are checked (a replaced node's
        rebuild, ``s3lite heal --node``); missing and low-parity are handled anyway."""
        return (await self.heal_one(upload_id, number, node=node)).outcome

    async def heal_one(self, upload_id: str, number: int, *, node: str | None = None) -> Healed:
        """:meth:`heal_segment`, saying what it wrote back too. Waits while another
        heal of the segment runs, then for a free slot (``concurrency``)."""
        key = (upload_id, number)
        async with self._turns.hold(key), self._slots:
            found = await self.manifests.scan_segments((upload_id, number - 1), 1)
            if not found or (found[0][0].upload_id, found[0][0].number) != key:
                # deleted, or being deleted (its parts are the janitor's)
                await self.heal.done(upload_id, number)
                self.degraded.discard(key)
                return Healed("gone")
            segment, storage_class = found[0]
            desired, wanted = self._desired_parity(segment, storage_class)
            checks = await self._inspect(segment, self.orchestrator.view, node)
            repair = plan_repair(segment, checks, desired)
            healed = await self._repair(segment, repair)
            outcome = healed.outcome
            if outcome in ("whole", "repaired") and desired < wanted:
                outcome = "waiting"  # less parity than it should have, for now
            if outcome in ("whole", "repaired"):
                self.degraded.discard(key)
                await self.heal.done(upload_id, number)
            else:  # queued (if it was not), so it is looked at again once nodes are back
                self.degraded.add(key)
                self.heal.report(upload_id, number, _reason(repair), f"healer: {outcome}")
            self.metrics.degraded_segments.set(len(self.degraded))
            return attrs.evolve(healed, outcome=outcome)

    def _desired_parity(self, segment: Segment, storage_class: str) -> tuple[int, int]:
        """The parity the segment can be given now (its class's target, as far as the
        cluster has writable nodes for it; never lower than it has), and the parity
        it should have: the target, unless the cluster has fewer than ``6 + target``
        nodes (then what it can give: such segments are whole by design)."""
        if storage_class != STANDARD:
            return segment.parity, segment.parity
        now = max(segment.parity, self.orchestrator.writable_parity())
        rings = self.orchestrator.view.placement_rings
        small = (
            min(len(ring.nodes) for ring in rings) < DATA_UNITS + self.orchestrator.target_parity
        )
        return now, now if small else max(now, self.orchestrator.target_parity)

    async def _inspect(
        self, segment: Segment, view: RoutingView, node: str | None
    ) -> dict[int, PartCheck | None]:
        """Part index -> what its node says about it (None: the node is down)."""
        checks: dict[int, PartCheck | None] = {}
        liveness = self.orchestrator.liveness

        async def verify(part: PartRecord, owner: str) -> None:
            name = part_name(segment.upload_id, segment.number, part.index)
            try:
                found = await self.orchestrator.client(owner).verify_parts(part.sector, [name])
            except S3liteError as exc:  # down, or failing: nothing known about the part
                log.warning("could not verify %s on %s: %s", name, owner, exc)
                checks[part.index] = UNCHECKED
                return
            checks[part.index] = found.get(name, UNCHECKED)

        async with anyio.create_task_group() as group:
            for part in segment.parts:
                owner = view.read_owner(part.sector)
                if part.missing or (node is not None and owner != node):
                    continue
                if not liveness.is_up(owner):
                    checks[part.index] = UNCHECKED
                    continue
                group.start_soon(verify, part, owner)
        return checks

    async def _repair(self, segment: Segment, repair: Repair) -> Healed:
        label = f"{segment.upload_id}/{segment.number}"
        if not repair.needed:
            return Healed("whole" if repair.whole else "waiting")
        if not rebuildable(segment, repair):
            if len(segment.parts) - len(repair.rebuild) >= DATA_UNITS:
                return Healed("waiting")  # enough parts once their nodes are back
            heal_action("rebuild", outcome="lost", segment=label,
                        unavailable=sorted(repair.rebuild | repair.unchecked))  # fmt: skip
            self.metrics.heal_actions.labels("rebuild", "lost").inc()
            return Healed("lost")
        orchestrator = self.orchestrator
        with orchestrator.lease() as view:
            added: list[int] = []
            if repair.add:
                reserved = await self._reserve(segment, repair.add, view)
                if reserved is None:
                    return Healed("gone")
                segment, added = reserved
            wanted = {
                index
                for index in repair.rebuild | set(added)
                if orchestrator.liveness.is_up(view.read_owner(segment.parts[index].sector))
            }
            if not wanted:
                return Healed("waiting")
            avoid = dict.fromkeys(repair.rebuild | set(added), "being rebuilt")
            avoid.update(dict.fromkeys(repair.unchecked, "its node is down"))
            try:
                rebuilt = await rebuild_parts(
                    self.receiver.read_context, view, segment, wanted, avoid=avoid,
                    limit=self.limit,
                )  # fmt: skip
            except S3liteError as exc:
                heal_action("rebuild", outcome="failed", segment=label, error=str(exc))
                self.metrics.heal_actions.labels("rebuild", "failed").inc()
                return Healed("waiting")
            stored = await self.manifests.mark_stored(segment, list(rebuilt.records.values()))
            if not stored:
                sectors = {index: r.sector for index, r in rebuilt.records.items()}
                await take_back(orchestrator, view, segment, sectors)
                heal_action("rebuild", outcome="dropped", segment=label,
                            detail="the object was deleted meanwhile")  # fmt: skip
                return Healed("gone")
        for index, record in sorted(rebuilt.records.items()):
            node = view.read_owner(record.sector)
            action = "reprotect" if index in added else "rebuild"
            heal_action(action, segment=label, part=index, node=node, bytes=record.length,
                        reason=repair.reasons.get(index, "new parity part"))  # fmt: skip
            self.metrics.heal_actions.labels(action, "done").inc()
        for index, why in sorted(rebuilt.failed.items()):
            heal_action("rebuild", outcome="failed", segment=label, part=index, error=why)
            self.metrics.heal_actions.labels("rebuild", "failed").inc()
        self.rebuilt_bytes += rebuilt.bytes
        self.rebuilt_parts += len(rebuilt.records)
        self.metrics.rebuilt_bytes.inc(rebuilt.bytes)
        if self.progress is not None and not self.progress.finished:
            self.progress.advance(bytes=rebuilt.bytes)
        done = not rebuilt.failed and len(wanted) == len(repair.rebuild | set(added))
        outcome = "repaired" if done and not repair.unchecked else "waiting"
        return Healed(outcome, rebuilt.bytes, len(rebuilt.records))

    async def _reserve(
        self, segment: Segment, count: int, view: RoutingView
    ) -> tuple[Segment, list[int]] | None:
        """Place and record ``count`` new parity parts; the segment as it now is and
        their indexes, or None if it is gone. With too few nodes free for them, as
        many as fit (possibly none)."""
        liveness = self.orchestrator.liveness
        beside = [part.sector for part in segment.parts]
        while count:
            try:
                rings = view.placement_rings
                sectors = place_more(rings, "", segment.upload_id, segment.number, beside,
                                     count, liveness.is_writable)  # fmt: skip
                break
            except NotEnoughNodes:
                count -= 1
        if not count:
            return segment, []
        length = segment.layout.part_length(0)
        first = len(segment.parts)
        records = [
            PartRecord(first + offset, sector, length, 0, missing=True)
            for offset, sector in enumerate(sectors)
        ]
        if not await self.manifests.reserve_parity(segment, records):
            return None
        fresh = await self.manifests.segment(segment.upload_id, segment.number)
        if fresh is None:
            return None
        return fresh, [record.index for record in records]

    async def heal_each(
        self,
        keys: AsyncGenerator[SegmentKey],
        healed: Callable[[SegmentKey, Healed], None],
        *,
        node: str | None = None,
    ) -> None:
        """Heal the segments ``keys`` yields (:meth:`heal_one`), up to
        ``concurrency`` at once, calling ``healed`` with what each one did as it
        ends; returns once every one has. ``keys`` is drawn only as room frees up, so
        a caller scanning the store reads ahead by at most ``concurrency`` segments.
        The first failure cancels the others and is raised."""
        room = anyio.Semaphore(self.concurrency)

        async def one(key: SegmentKey) -> None:
            try:
                healed(key, await self.heal_one(*key, node=node))
            finally:
                room.release()

        with single_error():
            async with contextlib.aclosing(keys), anyio.create_task_group() as group:
                async for key in keys:
                    await room.acquire()
                    group.start_soon(one, key)

    # -- where work comes from -----------------------------------------------------------------

    async def process_queue(self) -> collections.Counter[Outcome]:
        """Heal every segment in the heal queue once; returns the outcomes (whole,
        repaired, gone: out of the queue; waiting, lost: still in it)."""
        outcomes: collections.Counter[Outcome] = collections.Counter()
        await self._heal_queue(lambda _, healed: outcomes.update([healed.outcome]))
        return outcomes

    async def _heal_queue(self, healed: Callable[[SegmentKey, Healed], None]) -> None:
        await self.heal.flush()
        seen: set[SegmentKey] = set()

        async def queued() -> AsyncGenerator[SegmentKey]:
            while True:
                fresh = [
                    key
                    for item in await self.heal.pending(QUEUE_BATCH + len(seen))
                    if (key := (item.upload_id, item.segment)) not in seen
                ]
                if not fresh:
                    return
                for key in fresh:
                    if key not in seen:
                        seen.add(key)
                        yield key

        await self.heal_each(queued(), healed)

    async def rebuild_replaced(self) -> list[str]:
        """Rebuild every node that came back empty; returns the nodes whose rebuild
        ended (their ``replaced`` flag cleared, see :meth:`run_pass`)."""
        cleared = []
        for node_id in self.orchestrator.topology.node_ids:
            if self._replaced(node_id):
                await self.run_pass(node_id)
                if not self._replaced(node_id):
                    cleared.append(node_id)
        return cleared

    def _replaced(self, node_id: str) -> bool:
        status = self.orchestrator.liveness.state(node_id)
        return status.up and status.health is not None and status.health.replaced

    async def _clear_replaced(self, node_id: str, counts: Mapping[str, int]) -> None:
        """After a pass over a replaced node's parts that left none behind, the node
        is whole again: clear its flag (and probe, so status shows it)."""
        await self.orchestrator.probe()
        if not self._replaced(node_id) or counts["waiting"] or counts["lost"]:
            return
        await self.orchestrator.client(node_id).clear_replaced()
        await self.orchestrator.probe()
        heal_action("replaced-node", node=node_id, parts=counts["rebuilt_parts"],
                    bytes=counts["rebuilt_bytes"])  # fmt: skip
        self.metrics.heal_actions.labels("replaced-node", "done").inc()

    async def scrub_step(self, batch: int = SCAN_BATCH) -> bool:
        """Check the next ``batch`` segments of the background scrub (``concurrency``
        at a time); True when its pass has just ended (the position starts over).
        The position moves to the batch's last segment once the whole batch is done,
        never past a segment still being healed."""
        found = await self.manifests.scan_segments(self.scrub_cursor, batch)

        async def paced() -> AsyncGenerator[SegmentKey]:
            for segment, _ in found:
                if self.scrub_limit is not None:  # (holding no turn: other heals go on)
                    await self.scrub_limit.take(sum(part.length for part in segment.parts))
                yield segment.upload_id, segment.number

        await self.heal_each(paced(), lambda key, outcome: None)
        if found:
            self.scrub_cursor = (found[-1][0].upload_id, found[-1][0].number)
        ended = len(found) < batch
        if ended:
            self.scrub_cursor = START
            self.scrub_passes += 1
            self.scrub_finished = time.time()
            self.scrub_nodes = len(self.orchestrator.ring.nodes)
            self.metrics.scrub_passes.inc()
            heal_action("scrub-pass", segments=len(found))
        await self.save()
        await self._publish_position()
        return ended

    async def run_pass(self, node: str | None = None) -> dict[str, Any]:
        """A full pass now: the heal queue, then every segment (with ``node``, every
        segment with a part on it), its progress in ``self.progress``; returns the
        counts."""
        progress = self.progress = Progress("heal" if node is None else f"heal {node}", log=log)
        progress.listeners = self.progress_listeners
        counts = dict.fromkeys(("segments", "whole", "repaired", "waiting", "lost", "gone"), 0)
        rebuilt = collections.Counter[str]()

        def from_queue(_: SegmentKey, healed: Healed) -> None:
            if healed.outcome in ("repaired", "lost", "gone"):  # the others: looked at again
                counts[healed.outcome] += 1
            rebuilt.update(bytes=healed.bytes, parts=healed.parts)

        try:
            await self.orchestrator.probe()  # a node just restarted is used at once
            progress.step("queue", queued=await self.heal.size())
            await self._heal_queue(from_queue)
            _, total = await self.manifests.scan_position(START)
            progress.step("scan", segments=total, **({} if node is None else {"node": node}))
            progress.set_totals(items=total)

            async def segments() -> AsyncGenerator[SegmentKey]:
                cursor = START
                while found := await self.manifests.scan_segments(cursor, SCAN_BATCH):
                    for segment, _ in found:
                        cursor = (segment.upload_id, segment.number)
                        if node is None or self._places_on(segment, node):
                            yield cursor
                        else:
                            progress.advance(items=1)

            def scanned(_: SegmentKey, healed: Healed) -> None:
                counts[healed.outcome] += 1
                counts["segments"] += 1
                rebuilt.update(bytes=healed.bytes, parts=healed.parts)
                progress.advance(items=1)

            await self.heal_each(segments(), scanned, node=node)
        except BaseException as exc:
            progress.fail(exc)
            raise
        finally:
            await self.save()
        counts["rebuilt_bytes"] = rebuilt["bytes"]
        counts["rebuilt_parts"] = rebuilt["parts"]
        if node is not None:
            await self._clear_replaced(node, counts)
        progress.finish(**counts)
        return counts

    def _places_on(self, segment: Segment, node: str) -> bool:
        view = self.orchestrator.view
        return any(view.read_owner(part.sector) == node for part in segment.parts)

    async def run(self) -> None:
        """The background worker, until cancelled: the queue and replaced nodes when
        something changed (woken, a node up or down, new reports) or every
        ``RETRY`` seconds anyway, looked for every ``idle`` seconds; the scrub a
        batch at a time in between, when due (:meth:`scrub_due`). Failures are
        logged; the next round tries again.
        (Segments waiting for a node are not checked again and again while it is
        down: each check has the nodes read whole parts.)"""
        await self.load()
        retry_due = 0.0
        seen: tuple[int, frozenset[str]] | None = None
        while True:
            forced = self._wake.is_set()
            self._wake = anyio.Event()
            try:
                now = anyio.current_time()
                state = await self._state()
                if forced or state != seen or now >= retry_due:
                    await self.process_queue()
                    await self.rebuild_replaced()
                    seen, retry_due = await self._state(), now + RETRY
                if self.scrub_limit is not None and self.scrub_due():
                    await self.scrub_step()
                    continue  # next batch, unless woken for the queue first
            except Exception:
                log.exception("heal round failed; trying again later")
            with anyio.move_on_after(self.idle):
                await self._wake.wait()

    def scrub_due(self) -> bool:
        """Whether the background scrub has work: a pass under way (also one a restart
        interrupted), never done, ``scrub_interval`` since the last one ended, or a
        node joined since."""
        if self.scrub_cursor != START or self.scrub_finished is None:
            return True
        if len(self.orchestrator.ring.nodes) > self.scrub_nodes:
            return True
        return time.time() >= self.scrub_finished + self.scrub_interval

    async def _state(self) -> tuple[int, frozenset[str]]:
        """What makes the queue worth another look: its size, which nodes are up."""
        liveness = self.orchestrator.liveness
        up = frozenset(n for n in self.orchestrator.topology.node_ids if liveness.is_up(n))
        return await self.heal.size(), up

    # -- what status shows -----------------------------------------------------------------------

    async def _publish_position(self) -> float:
        done, total = await self.manifests.scan_position(self.scrub_cursor)
        ratio = done / total if total else 0.0
        self.metrics.scrub_position.set(ratio)
        return ratio

    async def status(self) -> dict[str, Any]:
        """The ``heal`` section of ``/_admin/status``."""
        ratio = await self._publish_position()
        return {
            "degraded_segments": len(self.degraded),
            "heal_queue": await self.heal.size(),
            "rebuilt_bytes": self.rebuilt_bytes,
            "rebuilt_parts": self.rebuilt_parts,
            "scrub_position": {
                "upload_id": self.scrub_cursor[0] or None,
                "segment": None if self.scrub_cursor[1] < 0 else self.scrub_cursor[1],
                "fraction": round(ratio, 4) if math.isfinite(ratio) else None,
                "passes": self.scrub_passes,
            },
            "rate_limit": self.limit.rate,
        }


def _reason(repair: Repair) -> HealReason:
    """Why a segment the healer could not make whole stays queued."""
    if repair.unchecked:
        return HealReason.NODE_DOWN
    if repair.rebuild:
        return HealReason.DAMAGED
    return HealReason.LOW_PARITY
