"""Fixtures of the gateway tests (helpers in harness.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from s3lite import LocalCluster
from tests.gateway.harness import Gateway, serving


@pytest.fixture
async def gateway(cluster: LocalCluster) -> AsyncIterator[Gateway]:
    async with serving(cluster) as opened:
        yield opened


@pytest.fixture
async def bucket(gateway: Gateway) -> str:
    status, _, _ = await gateway.request("PUT", "/photos")
    assert status == 200
    return "photos"
