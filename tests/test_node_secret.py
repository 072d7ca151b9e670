"""The cluster secret (transport/secret.py): nodes given one answer only callers that
carry it, the gateway given the same one works as before, and the secret never
reaches a log."""

from __future__ import annotations

from pathlib import Path

import aiohttp
import pytest
from hypothesis import given
from hypothesis import strategies as st

from s3lite import NodeUnavailable
from s3lite.transport.http import HttpSettings, HttpTransport
from s3lite.transport.secret import (
    CLUSTER_SECRET_ENV,
    MIN_SECRET_LENGTH,
    authorization,
    check_secret,
    cluster_secret_from_env,
    is_authorized,
)
from tests.http_helpers import create_bucket, get, part_files, payload, put_ok
from tests.processes import running_service
from tests.s3sign import SignedSession

SECRET = "a-cluster-secret-for-the-tests-0123"
SECRET_ENV = {CLUSTER_SECRET_ENV: SECRET}

secrets = st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=16)


@given(secrets, st.text())
def test_only_the_secret_itself_is_authorized(secret: str, other: str) -> None:
    assert is_authorized(authorization(secret), secret)
    assert not is_authorized(None, secret)
    assert is_authorized(other, secret) == (other == f"Bearer {secret}")
    assert not is_authorized(authorization(secret + "x"), secret)
    assert not is_authorized(authorization(secret)[:-1], secret)


@given(st.text(max_size=MIN_SECRET_LENGTH - 1))
def test_a_short_secret_is_refused_without_being_echoed(secret: str) -> None:
    with pytest.raises(ValueError, match=CLUSTER_SECRET_ENV) as raised:
        check_secret(secret)
    assert secret == "" or secret not in str(raised.value).split(" ")


def test_the_secret_comes_from_the_environment() -> None:
    assert cluster_secret_from_env({}) is None
    assert cluster_secret_from_env({CLUSTER_SECRET_ENV: ""}) is None
    assert cluster_secret_from_env({CLUSTER_SECRET_ENV: SECRET}) == SECRET
    with pytest.raises(ValueError, match="printable ASCII"):
        cluster_secret_from_env({CLUSTER_SECRET_ENV: "short"})
    with pytest.raises(ValueError, match="printable ASCII"):
        cluster_secret_from_env({CLUSTER_SECRET_ENV: "sixteen chars\nwith a newline"})


@pytest.mark.anyio
async def test_nodes_answer_only_the_secret_and_the_gateway_carries_it(
    tmp_path: Path, http: SignedSession
) -> None:
    async with running_service(tmp_path, env=SECRET_ENV) as service:
        await create_bucket(http, service, "bkt")
        data = payload("secret", 300 * 1024)
        await put_ok(http, service.url("bkt", "k"), data)
        status, _, body = await get(http, service.url("bkt", "k"))
        assert (status, body) == (200, data)

        node = service.nodes[0]
        before = part_files(service.node_dir(0))
        async with aiohttp.ClientSession() as raw:
            for headers in ({}, {"authorization": authorization(SECRET + "x")},
                            {"authorization": SECRET}):  # fmt: skip
                for method, path, body_sent in (
                    ("GET", "/v1/health", None),
                    ("GET", "/v1/usage", None),
                    ("PUT", "/v1/sectors/7/intruder-0-0", b"x" * 70_000),
                    ("POST", "/v1/drop", b'{"sectors": [0, 1, 2, 3]}'),
                ):
                    async with raw.request(
                        method, node.url + path, data=body_sent, headers=headers
                    ) as answer:
                        assert answer.status == 401, (method, path, headers)
                        assert (await answer.json())["error"] == "Unauthorized"
            for path in ("/health/live", "/health/ready", "/metrics"):
                async with raw.get(node.url + path) as answer:
                    assert answer.status == 200, path  # operators' endpoints stay open
            right = {"authorization": authorization(SECRET)}
            async with raw.get(node.url + "/v1/health", headers=right) as answer:
                assert answer.status == 200
        assert part_files(service.node_dir(0)) == before  # nothing written, nothing dropped

        # A transport without the secret (a gateway started without it) is refused.
        transport = HttpTransport(HttpSettings(retries=0))
        try:
            with pytest.raises(NodeUnavailable, match="Unauthorized"):
                await transport.connect(node.url).health()
        finally:
            await transport.aclose()

        status, _, body = await get(http, service.url("bkt", "k"))
        assert (status, body) == (200, data)
    logs = [service.gateway_dir.parent / "gateway.log"]
    logs += [tmp_path / f"node{index}.log" for index in range(len(service.nodes))]
    text = "".join(path.read_text() for path in logs)
    assert "refused GET /v1/health: no valid cluster secret" in text
    assert SECRET not in text
