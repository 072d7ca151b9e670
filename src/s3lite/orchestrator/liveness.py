"""Which storage nodes are up: the gateway's live view of every node.

Theory of operation
-------------------
Each node has a :class:`NodeStatus`: up or down (and since when, and why), full or
not, and what the node last said about itself (its :class:`NodeHealth`). Four events
move it, and nothing else does:

=====================  ===========  =================================================
event                  up after     full after
=====================  ===========  =================================================
``CallFailed``         down         unchanged  (NodeUnavailable from any node call)
``ProbeFailed``        down         unchanged  (a health probe timed out or failed)
``DiskFullSeen``       unchanged    full       (a node call raised DiskFull)
``ProbeAnswered``      up           what the node says (``health.full``)
=====================  ===========  =================================================

So a failed call marks a node down at once, and only a probe that sees the node
answer brings it back: a hung node costs one request one call timeout, and from then
on callers that ask :meth:`Liveness.is_up` can route around it until a probe (every
``interval`` seconds, each bounded by a short ``timeout``) gets an answer again.
``since`` changes only when up/down flips, so "down since" survives repeated
failures. A node that has not been probed yet counts as up (optimism: the cluster's
first health checks run when it opens).

:class:`Liveness` is pure state (no I/O, no async: tested exhaustively with
Hypothesis); :func:`probe_all` and :func:`probe_forever` are the small async loop
around it. Observers subscribe to changes with :attr:`Liveness.listeners` (logs and
metrics do): each listener is called with the status before and after, once per
change, never for an event that changes nothing.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Final

import anyio
import attrs

from ..errors import NodeUnavailable, S3liteError
from ..transport.base import NodeClient, NodeHealth
from .ring import NodeId

DEFAULT_PROBE_INTERVAL: Final = 2.0
"""Seconds between two probe rounds."""
DEFAULT_PROBE_TIMEOUT: Final = 2.0
"""Longest wait for one node's answer to a probe; past it the node is down."""


@attrs.frozen
class CallFailed:
    """A node call raised NodeUnavailable (refused, reset, timed out, 5xx)."""

    reason: str


@attrs.frozen
class ProbeFailed:
    """A health probe got no answer in time, or an error."""

    reason: str


@attrs.frozen
class DiskFullSeen:
    """A node call raised DiskFull: the node refuses new parts."""

    reason: str


@attrs.frozen
class ProbeAnswered:
    """A health probe got the node's answer."""

    health: NodeHealth


Event = CallFailed | ProbeFailed | DiskFullSeen | ProbeAnswered

UP_AFTER: Final[Mapping[type[Event], bool | None]] = {
    CallFailed: False,
    ProbeFailed: False,
    DiskFullSeen: None,  # None: unchanged
    ProbeAnswered: True,
}
"""The state machine's up/down column, as data (see the table above)."""


@attrs.frozen
class NodeStatus:
    """One node as the gateway sees it now."""

    node_id: NodeId
    up: bool = True
    since: float = 0.0
    """Wall-clock time (epoch seconds) of the last up/down change (or of tracking)."""
    reason: str = ""
    """Why the node is down ("" while up)."""
    full: bool = False
    """The node is out of space: it serves reads but refuses new parts."""
    health: NodeHealth | None = None
    """What the node said about itself at its last answered probe."""
    checked: float | None = None
    """Wall-clock time of the last probe answer, None before the first."""

    @property
    def writable(self) -> bool:
        return self.up and not self.full

    def describe(self) -> str:
        """A few words for logs: "up", "down (why)", "up, full"."""
        text = "up" if self.up else f"down ({self.reason})"
        return f"{text}, full" if self.full else text


def transition(status: NodeStatus, event: Event, now: float) -> NodeStatus:
    """The status after ``event`` at time ``now`` (pure)."""
    up_after = UP_AFTER[type(event)]
    up = status.up if up_after is None else up_after
    since = now if up != status.up else status.since
    if isinstance(event, ProbeAnswered):
        return attrs.evolve(
            status, up=up, since=since, reason="", full=event.health.full, health=event.health,
            checked=now,
        )  # fmt: skip
    if isinstance(event, DiskFullSeen):
        return attrs.evolve(status, up=up, since=since, full=True)
    # A failure: the first reason the node went down is the one kept.
    reason = event.reason if status.up else status.reason
    return attrs.evolve(status, up=up, since=since, reason=reason)


Listener = Callable[[NodeStatus, NodeStatus], None]
"""Called with (before, after) once per change of a node's up, full or reason."""


def _changed(before: NodeStatus, after: NodeStatus) -> bool:
    return (before.up, before.full, before.reason) != (after.up, after.full, after.reason)


class Liveness:
    """The live status of every node of the cluster (pure state; see the module doc).

    ``clock`` gives wall-clock seconds (``time.time``); tests pass their own.
    """

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._nodes: dict[NodeId, NodeStatus] = {}
        self.listeners: list[Listener] = []
        """Change notifications: append a callable taking (before, after)."""

    # -- membership ----------------------------------------------------------------------

    def track(self, node_id: NodeId) -> None:
        """Start tracking ``node_id`` (up until a call or a probe says otherwise)."""
        if node_id not in self._nodes:
            self._nodes[node_id] = NodeStatus(node_id, since=self._clock())

    def forget(self, node_id: NodeId) -> None:
        """Stop tracking a node that left the cluster (a join rolled back)."""
        self._nodes.pop(node_id, None)

    # -- questions -----------------------------------------------------------------------

    def state(self, node_id: NodeId) -> NodeStatus:
        """The node's status; KeyError for a node that is not tracked."""
        return self._nodes[node_id]

    def is_up(self, node_id: NodeId) -> bool:
        """Up: worth sending a request to (an untracked node is not)."""
        status = self._nodes.get(node_id)
        return status is not None and status.up

    def is_writable(self, node_id: NodeId) -> bool:
        """Up and not full: worth sending a new part to."""
        status = self._nodes.get(node_id)
        return status is not None and status.writable

    def __iter__(self) -> Iterator[NodeStatus]:
        return iter(list(self._nodes.values()))

    def up_count(self, among: Iterable[NodeId] | None = None) -> int:
        """How many nodes (of ``among``, default all tracked) are up."""
        ids = self._nodes if among is None else among
        return sum(1 for node_id in ids if self.is_up(node_id))

    # -- events --------------------------------------------------------------------------

    def call_failed(self, node_id: NodeId, reason: str) -> None:
        self._apply(node_id, CallFailed(reason))

    def probe_failed(self, node_id: NodeId, reason: str) -> None:
        self._apply(node_id, ProbeFailed(reason))

    def disk_full(self, node_id: NodeId, reason: str) -> None:
        self._apply(node_id, DiskFullSeen(reason))

    def answered(self, node_id: NodeId, health: NodeHealth) -> None:
        self._apply(node_id, ProbeAnswered(health))

    def _apply(self, node_id: NodeId, event: Event) -> None:
        before = self._nodes.get(node_id)
        if before is None:
            return  # not (or no longer) a node of the cluster
        after = transition(before, event, self._clock())
        self._nodes[node_id] = after
        if _changed(before, after):
            for listener in list(self.listeners):
                listener(before, after)


# -- probing ---------------------------------------------------------------------------------


async def probe_one(liveness: Liveness, node_id: NodeId, client: NodeClient, within: float) -> None:
    """Ask one node for its health within ``within`` seconds and record the outcome.
    A node at the address that says it is another node counts as down."""
    try:
        with anyio.fail_after(within):
            health = await client.health()
    except TimeoutError:
        liveness.probe_failed(node_id, f"timed out: no answer to a probe within {within:g} s")
    except NodeUnavailable as exc:
        liveness.probe_failed(node_id, exc.reason)
    except S3liteError as exc:
        liveness.probe_failed(node_id, f"{type(exc).__name__}: {exc}")
    else:
        if health.node_id != node_id:
            liveness.probe_failed(node_id, f"another node ({health.node_id!r}) answers there")
        else:
            liveness.answered(node_id, health)


async def probe_all(
    liveness: Liveness, clients: Mapping[NodeId, NodeClient], within: float
) -> None:
    """Probe every node in ``clients`` at once; returns within about ``within`` seconds."""
    async with anyio.create_task_group() as group:
        for node_id, client in clients.items():
            group.start_soon(probe_one, liveness, node_id, client, within)


async def probe_forever(
    liveness: Liveness,
    clients: Callable[[], Mapping[NodeId, NodeClient]],
    *,
    interval: float = DEFAULT_PROBE_INTERVAL,
    within: float = DEFAULT_PROBE_TIMEOUT,
) -> None:
    """Probe every node of ``clients()`` every ``interval`` seconds, until cancelled;
    each probe waits at most ``within`` seconds for its node."""
    while True:
        await probe_all(liveness, clients(), within)
        await anyio.sleep(interval)
