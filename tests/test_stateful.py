"""A stateful Hypothesis model of the cluster: puts, overwrites, gets, ranged gets,
deletes, joins, reopenings, node kills and restarts and heal passes in any order,
checked against a dict after every step.

The cluster starts with eight nodes (parity 2). A kill stops serving a node (the
in-memory transport unregisters it); the gateway either notices at once or finds out
on its next call. At most two nodes are down at a time. An object is readable while
no more of its parts are unavailable (on a down node, or recorded missing because a
node died during its upload) than its parity: the model says which, and a read must
return the exact bytes or PartsUnavailable accordingly. A restart serves the node
again, probes it and lets the janitor delete what failed uploads and deletes left on
it; then nothing but referenced parts may be stored.

The cluster lives in an event loop on a background thread (an anyio blocking portal),
because Hypothesis drives state machines synchronously.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any, TypeVar

import anyio.from_thread
import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from s3lite import LocalCluster, NotFound, PartsUnavailable
from s3lite.storager.partfile import Header

T = TypeVar("T")

KEYS = st.sampled_from(["a", "a/b", "b c", "%41", "\u00e9t\u00e9", "z" * 200, "x/y/z"])
MAX_NODES = 10
MAX_DOWN = 2


class ClusterModel(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.root = Path(tempfile.mkdtemp(prefix="s3lite-stateful-"))
        self.portal_cm = anyio.from_thread.start_blocking_portal("asyncio")
        self.portal = self.portal_cm.__enter__()
        self.model: dict[str, bytes] = {}
        self.down: set[str] = set()
        self.cluster = self._open()

    def _open(self) -> LocalCluster:
        cluster = LocalCluster(
            root=self.root, nodes=8, stripe_unit=512, janitor_interval=None, probe_interval=None,
            fsync=False,
        )  # fmt: skip
        return self.portal.call(cluster.__aenter__)

    def _readable(self, key: str) -> bool:
        """Whether every segment of ``key`` has six parts that are not unavailable."""
        manifest = self._run(self.cluster.receiver.manifests.get, key)
        assert manifest is not None
        ring = self.cluster.orchestrator.ring
        return all(
            sum(part.missing or ring.owner(part.sector) in self.down for part in s.parts)
            <= s.parity
            for s in manifest.segments
            if s.size  # an empty segment is read from no part at all
        )

    def _check_read(self, key: str, start: int | None = None, end: int | None = None) -> None:
        body = self.model[key]
        expected = body[start or 0 : len(body) if end is None else end + 1]
        if self._readable(key):
            assert self._run(self._read, key, start, end) == expected
        else:
            with pytest.raises(PartsUnavailable):
                self._run(self._read, key, start, end)

    def _run(self, function: Callable[..., Coroutine[Any, Any, T]], *args: Any) -> T:
        return self.portal.call(function, *args)

    async def _read(self, key: str, start: int | None = None, end: int | None = None) -> bytes:
        return b"".join([c async for c in self.cluster.receiver.get_object(key, start, end)])

    @rule(key=KEYS, data=st.binary(max_size=5000))
    def put(self, key: str, data: bytes) -> None:
        self._run(self.cluster.receiver.put_object, key, data)
        self.model[key] = data

    @rule(key=KEYS)
    def get(self, key: str) -> None:
        if key in self.model:
            self._check_read(key)
        else:
            with pytest.raises(NotFound):
                self._run(self._read, key)

    @rule(key=KEYS, data=st.data())
    def get_range(self, key: str, data: st.DataObject) -> None:
        body = self.model.get(key)
        if not body:
            return
        start = data.draw(st.integers(0, len(body) - 1))
        end = data.draw(st.integers(start, len(body) - 1))
        self._check_read(key, start, end)

    @rule(key=KEYS)
    def delete(self, key: str) -> None:
        if key in self.model:
            self._run(self.cluster.receiver.delete_object, key)
            del self.model[key]
        else:
            with pytest.raises(NotFound):
                self._run(self.cluster.receiver.delete_object, key)

    @precondition(lambda self: len(self.cluster.nodes) < MAX_NODES and not self.down)
    @rule()
    def join(self) -> None:
        new = self._run(self.cluster.add_node)
        assert new in self.cluster.orchestrator.ring.nodes

    @rule()
    def reopen(self) -> None:
        """Every node runs again after a restart of the whole cluster."""
        self.portal.call(self.cluster.__aexit__, None, None, None)
        self.cluster = self._open()
        self.down.clear()
        self._run(self.cluster.janitor.retry_deletions)

    @precondition(lambda self: len(self.down) < MAX_DOWN)
    @rule(data=st.data(), noticed=st.booleans())
    def kill(self, data: st.DataObject, noticed: bool) -> None:
        node_id = data.draw(st.sampled_from(sorted(set(self.cluster.nodes) - self.down)))
        self.cluster.transport.unregister(self.cluster.nodes[node_id].address)
        if noticed:  # else the next call to it finds out
            self.cluster.orchestrator.liveness.call_failed(node_id, "killed by the test")
        self.down.add(node_id)

    @precondition(lambda self: self.down)
    @rule(data=st.data())
    def restart(self, data: st.DataObject) -> None:
        node_id = data.draw(st.sampled_from(sorted(self.down)))
        self.cluster.transport.register(self.cluster.nodes[node_id])
        self.down.discard(node_id)
        self._run(self.cluster.orchestrator.probe)
        self._run(self.cluster.janitor.retry_deletions)

    @rule()
    def heal(self) -> None:
        """A full heal pass: nothing is lost; with every node up, every segment ends
        with all its parts stored and the target parity (eight nodes or more)."""
        result = self._run(self.cluster.healer.run_pass)
        assert result["lost"] == 0, result
        if self.down:
            return
        assert result["waiting"] == 0, result
        for key in self.model:
            manifest = self._run(self.cluster.receiver.manifests.get, key)
            assert manifest is not None
            for segment in manifest.segments:
                assert segment.parity == 2
                assert not any(part.missing for part in segment.parts)

    @invariant()
    def listing_matches_model(self) -> None:
        listing = self._run(self.cluster.receiver.list_objects)
        assert [info.key for info in listing.objects] == sorted(self.model, key=str.encode)
        assert [info.size for info in listing.objects] == [
            len(self.model[k]) for k in sorted(self.model, key=str.encode)
        ]

    @invariant()
    def parts_on_distinct_nodes_and_nothing_else_stored(self) -> None:
        ring = self.cluster.orchestrator.ring
        referenced = 0
        for key in self.model:
            manifest = self._run(self.cluster.receiver.manifests.get, key)
            assert manifest is not None
            (segment,) = manifest.segments
            parts = segment.parts
            assert len({ring.owner(p.sector) for p in parts}) == len(parts) == 6 + segment.parity
            referenced += sum(Header(p.length).file_size for p in parts if not p.missing)
        if not self.down:  # every node answers: what is stored is exactly what is referenced
            assert sum(self._run(self.cluster.usage).values()) == referenced

    def teardown(self) -> None:
        try:
            self.portal.call(self.cluster.__aexit__, None, None, None)
        finally:
            self.portal_cm.__exit__(None, None, None)
            shutil.rmtree(self.root, ignore_errors=True)


ClusterModel.TestCase.settings = settings(
    max_examples=25,
    stateful_step_count=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestCluster = ClusterModel.TestCase
