"""Routing views per epoch, and the gate that lets a migration wait for old requests."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import ExitStack

import anyio
import pytest
from hypothesis import given, settings

from s3lite.orchestrator import (
    SECTORS,
    Migration,
    MigrationPhase,
    NodeInfo,
    NodeState,
    Ring,
    RoutingView,
    Topology,
)
from s3lite.orchestrator.routing import EpochGate
from tests.strategies import topologies

# -- routing views ----------------------------------------------------------------------


@settings(max_examples=40)
@given(topologies(migration=False))
def test_view_without_migration(topology: Topology) -> None:
    view = RoutingView.of(topology, epoch=3)
    assert view.epoch == 3
    assert view.ring == view.target == topology.ring
    assert view.dual_writes == {}
    assert view.placement_rings == (topology.ring,)
    for sector in range(SECTORS):
        assert view.read_owner(sector) == topology.ring.owner(sector)
        assert view.write_owners(sector) == (topology.ring.owner(sector),)


@settings(max_examples=40)
@given(topologies(migration=True))
def test_view_with_migration(topology: Topology) -> None:
    migration = topology.migration
    assert migration is not None
    view = RoutingView.of(topology, epoch=7)
    copying = migration.phase is MigrationPhase.COPYING
    for sector in range(SECTORS):
        owner = topology.ring.owner(sector)
        # reads stay with the current ring in every phase
        assert view.read_owner(sector) == owner
        if copying and sector in migration.moves:
            assert view.write_owners(sector) == (owner, migration.new_node)
        else:
            assert view.write_owners(sector) == (owner,)
    if copying:
        assert view.target == migration.plan.apply(topology.ring)
        assert set(view.dual_writes) == set(migration.moves)
        expected = (view.ring,) if view.target == view.ring else (view.ring, view.target)
        assert view.placement_rings == expected
    else:
        assert view.target == view.ring == topology.ring
        assert view.dual_writes == {}
        assert view.placement_rings == (topology.ring,)


def test_view_copying_exact() -> None:
    # six equal arcs; "new" is copying sectors 0 (from n0) and 60 (from n1)
    ring = Ring.equal_arcs([f"n{i}" for i in range(6)])
    nodes = tuple(NodeInfo(node, node, NodeState.READY) for node in ring.nodes)
    migration = Migration("new", {0: "n0", 60: "n1"})
    topology = Topology(
        "fill", (*nodes, NodeInfo("new", "new", NodeState.JOINING)), ring, migration
    )
    view = RoutingView.of(topology, epoch=1)
    assert view.write_owners(0) == ("n0", "new")
    assert view.write_owners(60) == ("n1", "new")
    assert view.write_owners(1) == ("n0",)
    assert view.read_owner(0) == "n0"
    assert view.placement_rings == (ring, ring.reassign([0, 60], "new"))
    assert view.target.sectors_of("new") == (0, 60)


# -- the epoch gate ---------------------------------------------------------------------


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


class Drainer:
    """Runs gate.drain(before) in a task and records when it returned."""

    def __init__(self, gate: EpochGate, before: int) -> None:
        self.gate, self.before, self.done = gate, before, False

    async def __call__(self) -> None:
        await self.gate.drain(self.before)
        self.done = True


@pytest.mark.anyio
async def test_drain_returns_at_once_with_nothing_in_flight() -> None:
    gate = EpochGate()
    assert gate.in_flight(10) == 0
    with anyio.fail_after(5):  # a guard against hanging, not a wait for a condition
        await gate.drain(10)
        await gate.drain(0)


@pytest.mark.anyio
async def test_drain_ignores_the_current_and_newer_epochs() -> None:
    gate = EpochGate()
    with gate.hold(5), gate.hold(7), gate.hold(5):
        assert gate.in_flight(5) == 0
        assert gate.in_flight(6) == 2
        assert gate.in_flight(8) == 3
        with anyio.fail_after(5):
            await gate.drain(5)
    assert gate.in_flight(100) == 0


@pytest.mark.anyio
async def test_drain_waits_for_an_older_request() -> None:
    gate = EpochGate()
    drainer = Drainer(gate, before=5)
    async with anyio.create_task_group() as tg:
        with gate.hold(3):
            tg.start_soon(drainer)
            await anyio.wait_all_tasks_blocked()
            assert not drainer.done
            assert gate.in_flight(5) == 1
    assert drainer.done
    assert gate.in_flight(5) == 0


Release = Callable[[], None]


def holds(gate: EpochGate, stack: ExitStack, *epochs: int) -> list[Release]:
    """Enter gate.hold(epoch) for each epoch; return a function releasing each one."""
    releases = []
    for epoch in epochs:
        inner = ExitStack()
        inner.enter_context(gate.hold(epoch))
        stack.callback(inner.close)
        releases.append(inner.close)
    return releases


@pytest.mark.anyio
async def test_drain_waits_for_every_older_request_in_any_order() -> None:
    gate = EpochGate()
    drainer = Drainer(gate, before=5)
    with ExitStack() as stack:
        release_2, release_9, release_4a, release_4b, release_6 = holds(gate, stack, 2, 9, 4, 4, 6)
        async with anyio.create_task_group() as tg:
            tg.start_soon(drainer)
            # each release wakes the drainer; it goes back to waiting while any
            # request of epoch < 5 remains
            for release, left in [(release_9, 3), (release_4a, 2), (release_6, 2), (release_2, 1)]:
                release()
                await anyio.wait_all_tasks_blocked()
                assert not drainer.done
                assert gate.in_flight(5) == left
            release_4b()
        assert drainer.done
        assert gate.in_flight(100) == 0


@pytest.mark.anyio
async def test_new_requests_are_not_blocked_while_draining() -> None:
    gate = EpochGate()
    drainer = Drainer(gate, before=2)
    with ExitStack() as stack:
        (release_old,) = holds(gate, stack, 1)
        async with anyio.create_task_group() as tg:
            tg.start_soon(drainer)
            await anyio.wait_all_tasks_blocked()
            # requests of the new epoch start and finish while the drain waits
            for _ in range(3):
                with gate.hold(2):
                    assert gate.in_flight(3) == 2
                await anyio.wait_all_tasks_blocked()
                assert not drainer.done
            release_old()
        assert drainer.done


@pytest.mark.anyio
async def test_several_drains_of_different_epochs() -> None:
    gate = EpochGate()
    early, late = Drainer(gate, before=2), Drainer(gate, before=4)
    with ExitStack() as stack:
        release_1, release_3 = holds(gate, stack, 1, 3)
        async with anyio.create_task_group() as tg:
            tg.start_soon(early)
            tg.start_soon(late)
            await anyio.wait_all_tasks_blocked()
            assert not early.done
            assert not late.done
            release_1()
            await anyio.wait_all_tasks_blocked()
            assert early.done
            assert not late.done
            release_3()
        assert late.done


@pytest.mark.anyio
async def test_a_failing_request_still_leaves_the_gate() -> None:
    gate = EpochGate()

    def failing_request() -> None:
        with gate.hold(1):
            assert gate.in_flight(2) == 1
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        failing_request()
    assert gate.in_flight(2) == 0
    with anyio.fail_after(5):
        await gate.drain(2)
