"""Shared fixtures. Async tests run on asyncio through the anyio plugin; the modules
that must also prove trio compatibility parametrize ``anyio_backend`` themselves.

Under CI (``CI`` set) Hypothesis runs derandomized, so a red build is reproducible
and never a roll of the dice; locally it explores new examples on every run.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from hypothesis import settings

from s3lite import LocalCluster
from tests.http_helpers import signed_session
from tests.s3sign import ROOT_ACCESS, ROOT_SECRET, SignedSession

settings.register_profile("ci", derandomize=True, print_blob=True)
if os.environ.get("CI"):
    settings.load_profile("ci")


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
async def http() -> AsyncIterator[SignedSession]:
    """Requests signed with the root key the gateway processes get (tests/processes.py)."""
    async with signed_session() as session:
        yield session


@pytest.fixture
async def cluster(tmp_path: Path) -> AsyncIterator[LocalCluster]:
    """A six-node cluster with small stripe units, so that small objects use every part
    and several stripes; fsync is off because tmp_path is throwaway. Its root key is
    the one tests/s3sign.py signs with. No background probes: a test that needs
    liveness refreshed calls ``cluster.orchestrator.probe()``, so nothing races it."""
    async with LocalCluster(
        root=tmp_path / "cluster",
        nodes=6,
        stripe_unit=4096,
        janitor_interval=None,
        fsync=False,
        root_key=(ROOT_ACCESS, ROOT_SECRET),
        probe_interval=None,
    ) as opened:
        yield opened
