"""Fixtures of the real-client tests: one gateway process over node processes for the
whole package (fresh data each run), its root key, a boto3 client, and a bucket of
1,500 keys that every client lists.

The processes are started by tests/processes.py's :func:`running_service`, an async
context manager; these tests are synchronous (the clients are subprocesses or boto3),
so the service runs on an event loop in a thread of its own, behind an anyio blocking
portal, until the package's last test ends. Starting it once (seconds on two cores)
and filling the listed bucket once (1,500 PUTs) keeps the package's time down; each
client works in buckets of its own.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import anyio.from_thread
import pytest

from tests.clients.tools import LISTED, Endpoint, boto3_client, isolated_env, log_problems
from tests.processes import running_service
from tests.s3sign import ROOT_ACCESS, ROOT_SECRET


@pytest.fixture(scope="package")
def endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Endpoint]:
    """A gateway (JSON logs, so the check below can read them) over node processes.

    When the package ends, the gateway's log must show no 5xx answer and no error
    line: a client that retried past a server error would otherwise hide it."""
    root = tmp_path_factory.mktemp("service")
    with (
        anyio.from_thread.start_blocking_portal("asyncio") as portal,
        portal.wrap_async_context_manager(running_service(root, "--log-format", "json")) as svc,
    ):
        opened = Endpoint(svc.gw.url, ROOT_ACCESS, ROOT_SECRET, svc.gw.log)
        yield opened
    problems = log_problems(opened.log)
    assert not problems, "\n".join(problems)


@pytest.fixture(scope="package", autouse=True)
def _isolated(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """boto3 (in this process) reads HOME and AWS_* variables: it gets an empty home."""
    home = tmp_path_factory.mktemp("boto3-home")
    with pytest.MonkeyPatch.context() as patch:
        for name, value in isolated_env(home).items():
            patch.setenv(name, value)
        yield


@pytest.fixture(scope="package")
def s3(endpoint: Endpoint) -> Any:
    """boto3's S3 client with the root key."""
    return boto3_client(endpoint)


@pytest.fixture(scope="package")
def listed(s3: Any) -> dict[str, str]:
    """Bucket ``listed``: 1,500 small objects, 1,400 in four folders and 100 at the
    top (more than a page of 1,000 either way); {key: MD5 of its body}. Nobody
    changes it."""
    s3.create_bucket(Bucket="listed")
    keys = [f"d{i % 4}/k{i:04d}" for i in range(LISTED - 100)]
    keys += [f"top{i:04d}" for i in range(100)]

    def put(key: str) -> tuple[str, str]:
        data = key.encode() * (1 + len(key) % 7)
        s3.put_object(Bucket="listed", Key=key, Body=data)
        return key, hashlib.md5(data).hexdigest()

    with ThreadPoolExecutor(8) as pool:
        return dict(pool.map(put, keys))


@pytest.fixture
def home(tmp_path: Path) -> Path:
    """An empty home directory for one client run (its config files go there)."""
    path = tmp_path / "home"
    path.mkdir()
    return path
