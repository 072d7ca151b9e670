"""The healer's decisions, as pure functions: what a segment needs, and how fast.

:func:`plan_repair` takes a segment as the manifest records it and what its nodes
said when asked to verify each part (``verify_parts``: length and xxh3 computed on the
node), and says which parts must be rebuilt, how many parity parts to add, and which
parts could not be checked (their node is down: they wait, nothing is rebuilt in
their place, since a part can only live on its sector's owner).

:class:`RateLimit` is the token bucket the healer writes through, so a heal pass or a
rebuild of a whole node never takes more than ``--heal-rate`` bytes per second from
the disks and the network that serve clients.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Mapping

import anyio
import attrs

from ..erasure import DATA_UNITS
from ..transport.base import PartCheck, PartState
from .manifest import Segment

UNCHECKED = None
"""What :func:`plan_repair` gets for a part whose node could not be asked."""


@attrs.frozen
class Repair:
    """What one segment needs."""

    rebuild: frozenset[int]
    """Parts to rebuild and write back: recorded missing, not found or damaged on their
    node, or holding other bytes than the manifest records."""
    add: int
    """Parity parts to add (the segment has fewer than its class asks for)."""
    unchecked: frozenset[int]
    """Parts whose node is down: neither usable as a source nor rebuildable now."""
    reasons: Mapping[int, str] = attrs.field(factory=dict)
    """Part index -> why it is rebuilt."""

    @property
    def needed(self) -> bool:
        return bool(self.rebuild or self.add)

    @property
    def whole(self) -> bool:
        """Nothing to do and nothing left unknown: the segment can leave the queue."""
        return not self.needed and not self.unchecked


def usable(segment: Segment, repair: Repair) -> int:
    """How many of the segment's parts a rebuild can read."""
    return len(segment.parts) - len(repair.rebuild) - len(repair.unchecked)


def plan_repair(
    segment: Segment,
    checks: Mapping[int, PartCheck | None],
    desired_parity: int,
) -> Repair:
    """What ``segment`` needs, given ``checks`` (part index -> what its node found, or
    None if the node could not be asked; a part absent from ``checks`` is taken as
    fine) and the parity it should have now (``desired_parity``; never lowered)."""
    rebuild: dict[int, str] = {}
    unchecked: set[int] = set()
    for part in segment.parts:
        if part.missing:
            rebuild[part.index] = "not stored when it was written"
            continue
        if part.index not in checks:
            continue
        check = checks[part.index]
        if check is UNCHECKED:
            unchecked.add(part.index)
        elif check.state is PartState.MISSING:
            rebuild[part.index] = "not found on its node"
        elif check.state is PartState.DAMAGED:
            rebuild[part.index] = f"damaged: {check.reason}"
        elif check.length != part.length:
            rebuild[part.index] = f"{check.length} bytes on its node, {part.length} recorded"
        elif check.checksum != part.checksum:
            rebuild[part.index] = "other bytes than recorded (checksum differs)"
    add = max(0, desired_parity - segment.parity)
    return Repair(frozenset(rebuild), add, frozenset(unchecked), rebuild)


def rebuildable(segment: Segment, repair: Repair) -> bool:
    """Whether six parts are left to rebuild from."""
    return usable(segment, repair) >= DATA_UNITS


class RateLimit:
    """A token bucket: on average at most ``rate`` bytes per second, with bursts of at
    most ``burst`` bytes (default: one second's worth). ``rate`` None is no limit.

    :meth:`delay` is the pure part (how long to wait before sending ``n`` bytes, the
    bytes then counted as sent); :meth:`take` waits that long. Over any stretch of
    time ``t``, the bytes let through are at most ``rate * t + burst``.

    One bucket serves any number of concurrent writers (the healer rebuilds several
    segments at once, all through ``self.limit``): :meth:`delay` reserves the bytes
    at once, with no await between reading and updating the bucket, so each writer
    waits for the bytes reserved before its own as well, and the bound holds for
    their sum. ``sleep`` is how :meth:`take` waits (tests pass a virtual one).
    """

    def __init__(
        self,
        rate: float | None,
        *,
        burst: float | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = anyio.sleep,
    ) -> None:
        if rate is not None and rate <= 0:
            raise ValueError(f"the heal rate must be > 0 bytes per second, got {rate}")
        self.rate = rate
        self.burst = burst if burst is not None else (rate or 0.0)
        self._clock = clock
        self._sleep = sleep
        self._tokens = self.burst
        self._updated = clock()

    def delay(self, size: int) -> float:
        """Seconds to wait before ``size`` bytes go; counts them as gone."""
        if self.rate is None:
            return 0.0
        now = self._clock()
        self._tokens = min(self.burst, self._tokens + (now - self._updated) * self.rate)
        self._updated = now
        self._tokens -= size
        return 0.0 if self._tokens >= 0 else -self._tokens / self.rate

    async def take(self, size: int) -> None:
        """Wait until ``size`` more bytes are within the rate (a rate limit is the one
        thing here that waits on time itself, not on an event)."""
        wait = self.delay(size)
        if wait > 0:
            await self._sleep(wait)
