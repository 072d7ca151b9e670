"""Keys and grants over HTTP (a key reaches only its own buckets and those granted to
it; the admin API is root's), and a real client (boto3) reusing its connection after
an error answered to ``Expect: 100-continue`` before the body was sent."""

from __future__ import annotations

import io
import json
import os
import sys
import xml.etree.ElementTree as ET
from typing import Any

import anyio.to_thread
import botocore.config
import botocore.exceptions
import pytest
from botocore.credentials import Credentials

from tests.gateway.harness import NS, Gateway, error_of, grant, new_key, read_until_closed
from tests.gateway.harness import client as boto
from tests.s3sign import ROOT_ACCESS, ROOT_ENV, ROOT_SECRET, sign_raw

pytestmark = pytest.mark.anyio


def bucket_names(body: bytes) -> list[str]:
    return [b.findtext(f"{NS}Name") or "" for b in ET.fromstring(body).iter(f"{NS}Bucket")]


async def test_a_key_reaches_its_own_buckets_and_granted_ones(gateway: Gateway) -> None:
    alice, bob = await new_key(gateway, "alice"), await new_key(gateway, "bob")
    as_alice: dict[str, Any] = {"credentials": alice}
    as_bob: dict[str, Any] = {"credentials": bob}
    assert (await gateway.request("PUT", "/alices", **as_alice))[0] == 200
    assert (await gateway.request("PUT", "/alices", **as_alice))[0] == 200  # her own again
    status, _, body = await gateway.request("PUT", "/alices", **as_bob)
    assert (status, error_of(body)["Code"]) == (409, "BucketAlreadyExists")
    assert (await gateway.request("PUT", "/alices/doc", data=b"hers", **as_alice))[0] == 200
    assert (await gateway.request("PUT", "/bobs", **as_bob))[0] == 200

    for method, path in [
        ("GET", "/alices/doc"),
        ("PUT", "/alices/doc"),
        ("GET", "/alices"),
        ("DELETE", "/alices"),
    ]:
        status, _, body = await gateway.request(method, path, data=b"bob's", **as_bob)
        assert (status, error_of(body)["Code"]) == (403, "AccessDenied"), (method, path)
    assert bucket_names((await gateway.request("GET", "/", **as_bob))[2]) == ["bobs"]
    assert bucket_names((await gateway.request("GET", "/"))[2]) == ["alices", "bobs"]  # root

    assert await grant(gateway, "allow", bob, "alices", read=True) == {
        "access_key": bob.access_key, "bucket": "alices", "read": True, "write": False,
    }  # fmt: skip
    assert (await gateway.request("GET", "/alices/doc", **as_bob))[2] == b"hers"
    assert bucket_names((await gateway.request("GET", "/", **as_bob))[2]) == ["alices", "bobs"]
    assert (await gateway.request("PUT", "/alices/doc", data=b"bob's", **as_bob))[0] == 403
    await grant(gateway, "allow", bob, "alices", write=True)
    assert (await gateway.request("PUT", "/alices/new", data=b"bob's", **as_bob))[0] == 200
    assert (await gateway.request("DELETE", "/alices", **as_bob))[0] == 403  # owner only
    await grant(gateway, "deny", bob, "alices")  # neither named: both
    assert (await gateway.request("GET", "/alices/doc", **as_bob))[0] == 403

    # deleting a bucket forgets its owner: the name is free for anyone
    await gateway.request("DELETE", "/bobs/none", **as_bob)
    assert (await gateway.request("DELETE", "/bobs", **as_bob))[0] == 204
    assert (await gateway.request("PUT", "/bobs", **as_alice))[0] == 200
    assert (await gateway.request("GET", "/bobs", **as_bob))[0] == 403


async def test_the_admin_api_is_root_only(gateway: Gateway) -> None:
    alice = await new_key(gateway, "alice")
    for method, path in [
        ("GET", "/_admin/status"),
        ("GET", "/_admin/keys"),
        ("POST", "/_admin/keys"),
    ]:
        status, _, body = await gateway.request(method, path, credentials=alice)
        assert status == 403, path
        assert json.loads(body)["error"] == "AccessDenied"
    async with gateway.session.session.get(gateway.at("/_admin/status")) as response:
        assert response.status == 403  # unsigned
    status, _, body = await gateway.request("GET", "/_admin/keys")
    keys = json.loads(body)["keys"]
    assert [(k["access_key"], k["root"]) for k in keys] == [
        (ROOT_ACCESS, True),
        (alice.access_key, False),
    ]
    assert "secret" not in json.dumps(keys)
    status, _, body = await gateway.request("DELETE", f"/_admin/keys/{alice.access_key}")
    assert status == 200
    assert (await gateway.request("GET", "/", credentials=alice))[0] == 403
    status, _, body = await gateway.request("DELETE", f"/_admin/keys/{ROOT_ACCESS}")
    assert status == 400


# -- Expect: 100-continue ------------------------------------------------------------------


async def test_an_error_before_the_body_closes_the_connection(gateway: Gateway) -> None:
    """The client waits for 100 Continue and sends no body: the error must not leave
    the server reading the next request as this one's body."""
    head = sign_raw(
        gateway.url,
        b"PUT /no-such-bucket/k HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n"
        b"Expect: 100-continue\r\n\r\n",
    )
    port = int(gateway.url.rsplit(":", 1)[1])
    async with await anyio.connect_tcp("127.0.0.1", port) as stream:
        await stream.send(head)
        answer = await read_until_closed(stream)  # returns: the server closed it
    head_text = answer.split(b"\r\n\r\n")[0].lower()
    assert head_text.startswith(b"http/1.1 404")
    assert b"connection: close" in head_text
    assert b"100 continue" not in head_text


async def test_boto3_reuses_its_connection_after_an_early_error(gateway: Gateway) -> None:
    with boto(gateway, max_pool_connections=1) as client:
        assert await anyio.to_thread.run_sync(exchange, client) == b"y" * 200_000


def exchange(client: Any) -> bytes:  # file bodies: botocore sends Expect: 100-continue
    client.create_bucket(Bucket="boto")
    with pytest.raises(botocore.exceptions.ClientError, match="NoSuchBucket"):
        client.put_object(Bucket="missing-bucket", Key="k", Body=io.BytesIO(b"x" * 200_000))
    client.put_object(Bucket="boto", Key="k", Body=io.BytesIO(b"y" * 200_000))
    body: bytes = client.get_object(Bucket="boto", Key="k")["Body"].read()
    return body


async def cli(gateway: Gateway, *args: str, env: dict[str, str] | None = None) -> str:
    command = [sys.executable, "-m", "s3lite", *args[:2], "--gateway", gateway.url, *args[2:]]
    result = await anyio.run_process(command, check=False, env=env or {**os.environ, **ROOT_ENV})
    assert result.returncode == 0, result.stderr.decode()
    return result.stdout.decode()


async def test_the_key_commands(gateway: Gateway, bucket: str) -> None:
    created = await cli(gateway, "key", "create", "--name", "carol")
    access_key = created.split("access key: ")[1].split()[0]
    secret = created.split("secret key: ")[1].split()[0]
    carol = Credentials(access_key, secret)
    assert (await gateway.request("GET", f"/{bucket}", credentials=carol))[0] == 403
    assert "may now read on" in await cli(gateway, "key", "allow", access_key, bucket, "--read")
    assert (await gateway.request("GET", f"/{bucket}", credentials=carol))[0] == 200
    listed = await cli(gateway, "key", "list")
    assert access_key in listed
    assert f"{bucket}:r" in listed
    assert secret not in listed
    await cli(gateway, "key", "deny", access_key, bucket, "--read")
    assert (await gateway.request("GET", f"/{bucket}", credentials=carol))[0] == 403
    flags = ["--access-key", ROOT_ACCESS, "--secret-key", ROOT_SECRET]
    await cli(gateway, "key", "delete", *flags, access_key, env=dict(os.environ))
    assert access_key not in await cli(gateway, "key", "list")
    # without the root key, or with a wrong one, the command fails and says why
    for env in ({}, {"S3LITE_ROOT_USER": ROOT_ACCESS, "S3LITE_ROOT_PASSWORD": "wrong-secret"}):
        command = [sys.executable, "-m", "s3lite", "key", "list", "--gateway", gateway.url]
        clean = {k: v for k, v in os.environ.items() if not k.startswith("S3LITE_ROOT")}
        result = await anyio.run_process(command, check=False, env={**clean, **env})
        assert result.returncode == 1
        assert result.stderr
