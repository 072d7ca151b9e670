"""docker-compose.yml and the Dockerfile, checked without a Docker engine.

The compose file is parsed with yaml.safe_load; every service's command is parsed by
the real ``s3lite`` argument parser (``s3lite.cli.build_parser``), so a flag that the
CLI does not have, or a missing required one, fails here rather than in a container
that restarts forever. The nodes' healthcheck one-liner is run against a live node
process.
"""

from __future__ import annotations

import argparse
import contextlib
import fnmatch
import json
import re
import shlex
import subprocess
import sys
import tomllib
import urllib.parse
from collections import Counter
from pathlib import Path
from typing import Any

import anyio
import pytest
import yaml

from s3lite import LocalCluster
from s3lite.cli import build_parser
from s3lite.service import parse_listen
from s3lite.transport.secret import CLUSTER_SECRET_ENV
from tests.gateway.harness import serving
from tests.processes import running

ROOT = Path(__file__).resolve().parent.parent
COMPOSE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
NODE_COUNT = 8
CONTAINER_ADDRESS = "127.0.0.1:9000"
"""Where a healthcheck inside a container finds its own server."""


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    loaded = yaml.safe_load(COMPOSE.read_text())
    assert isinstance(loaded, dict)
    assert isinstance(loaded.get("services"), dict)
    return loaded


def argv_of(service: dict[str, Any]) -> list[str]:
    """The arguments the image's ``s3lite`` entry point receives."""
    entrypoint = service.get("entrypoint")
    assert entrypoint in (None, "s3lite", ["s3lite"]), f"entrypoint {entrypoint!r} is not s3lite"
    command = service["command"]
    argv = shlex.split(command) if isinstance(command, str) else command
    assert all(isinstance(arg, str) for arg in argv), f"{argv!r}: quote every argument"
    return list(argv)


def parse(argv: list[str]) -> argparse.Namespace:
    with contextlib.suppress(SystemExit):
        return build_parser().parse_args(argv)
    pytest.fail(f"`s3lite {' '.join(argv)}` does not parse")


def parsed(compose: dict[str, Any]) -> dict[str, argparse.Namespace]:
    return {name: parse(argv_of(service)) for name, service in compose["services"].items()}


def of_kind(compose: dict[str, Any], kind: str) -> dict[str, argparse.Namespace]:
    return {name: args for name, args in parsed(compose).items() if args.command == kind}


def test_eight_nodes_and_one_gateway(compose: dict[str, Any]) -> None:
    kinds = Counter(args.command for args in parsed(compose).values())
    assert kinds == {"node": NODE_COUNT, "gateway": 1}
    assert set(of_kind(compose, "node")) == {f"node{n}" for n in range(1, NODE_COUNT + 1)}
    assert set(of_kind(compose, "gateway")) == {"gateway"}
    (gateway,) = of_kind(compose, "gateway").values()
    assert gateway.parity == 2  # eight nodes: six data parts and two parity parts each


def test_every_command_is_a_valid_s3lite_command(compose: dict[str, Any]) -> None:
    for name, args in parsed(compose).items():
        assert args.command in {"node", "gateway"}, name
        host, port = parse_listen(args.listen)
        assert host == "0.0.0.0", f"{name} must listen on every interface of its container"
        assert 0 < port < 65536, name
        assert args.data_dir == Path("/data"), name


def test_the_parser_check_has_teeth() -> None:
    """What the checks above rely on: bad commands do not parse."""
    for bad in (
        ["node", "--data-dir", "/data"],  # --listen is required
        ["gateway", "--data-dir", "/data", "--listen", "0.0.0.0:9000", "--nodes", "x"],
        ["storage", "--data-dir", "/data"],
    ):
        with pytest.raises(SystemExit):
            build_parser().parse_args(bad)


def test_gateway_nodes_are_the_node_services(compose: dict[str, Any]) -> None:
    nodes = of_kind(compose, "node")
    ((name, gateway),) = of_kind(compose, "gateway").items()
    named = []
    for url in gateway.node:
        parts = urllib.parse.urlsplit(url)
        assert parts.scheme == "http", url
        assert parts.hostname in nodes, f"{url} names no node service"
        assert parts.port == parse_listen(nodes[parts.hostname].listen)[1], url
        assert parts.path in ("", "/"), url
        named.append(parts.hostname)
    assert sorted(named) == sorted(nodes), "each node once"

    service = compose["services"][name]
    depends = service.get("depends_on")
    assert isinstance(depends, dict), "the gateway must wait for healthy nodes"
    assert set(depends) == set(nodes)
    assert {entry.get("condition") for entry in depends.values()} == {"service_healthy"}
    # The gateway's listening port is published, on the host's loopback unless
    # S3LITE_PUBLISH names another interface.
    listen_port = parse_listen(gateway.listen)[1]
    published = [str(port).rsplit(":", 1)[-1].split("/")[0] for port in service["ports"]]
    assert str(listen_port) in published
    for port in service["ports"]:
        host = interpolate(str(port).rsplit(":", 2)[0], {})
        assert host == "127.0.0.1", port
        assert interpolate(str(port).rsplit(":", 2)[0], {"S3LITE_PUBLISH": "0.0.0.0"}) == "0.0.0.0"


def interpolate(text: str, env: dict[str, str]) -> str:
    """Compose's ``${NAME:-default}`` substitution (the only form used here)."""
    return re.sub(r"\$\{(\w+):-([^}]*)\}", lambda m: env.get(m[1]) or m[2], text)


def test_every_service_needs_the_same_cluster_secret(compose: dict[str, Any]) -> None:
    """Nodes refuse callers without the cluster secret (transport/secret.py): every
    service must be given it, from one variable that compose refuses to start without."""
    for name in parsed(compose):
        environment = compose["services"][name].get("environment") or {}
        value = environment.get(CLUSTER_SECRET_ENV)
        assert value is not None, f"{name} is not given {CLUSTER_SECRET_ENV}"
        assert re.fullmatch(r"\$\{" + CLUSTER_SECRET_ENV + r":\?[^}]+\}", value), (name, value)


def test_every_service_has_its_own_volume(compose: dict[str, Any]) -> None:
    declared = compose.get("volumes") or {}
    sources = []
    for name, args in parsed(compose).items():
        mounts = compose["services"][name].get("volumes") or []
        data = [m for m in mounts if str(m).split(":")[1].rstrip("/") == str(args.data_dir)]
        assert len(data) == 1, f"{name} needs one volume at its --data-dir {args.data_dir}"
        source = str(data[0]).split(":")[0]
        assert source in declared, f"{name}: {source} is not a named volume"
        sources.append(source)
    assert len(set(sources)) == len(sources), f"services share a volume: {sources}"
    node_ids = [args.node_id for args in of_kind(compose, "node").values()]
    assert None not in node_ids
    assert len(set(node_ids)) == len(node_ids)


def test_every_service_runs_the_image_built_here(compose: dict[str, Any]) -> None:
    images = set()
    for name, service in compose["services"].items():
        build = service.get("build")
        context = build if isinstance(build, str) else (build or {}).get("context")
        assert context in (".", "./"), f"{name} must build from the repository"
        images.add(service.get("image"))
    assert len(images) == 1, f"one image for every service, got {images}"


def healthcheck_code(service: dict[str, Any]) -> str:
    test = service["healthcheck"]["test"]
    assert test[:3] == ["CMD", "python", "-c"], test
    (code,) = test[3:]
    compile(code, "<healthcheck>", "exec")
    return str(code)


def test_healthchecks_hit_each_server(compose: dict[str, Any]) -> None:
    """Every service is checked through its cheap readiness route (no directory walk:
    the node's old /v1/health counted every part file every five seconds)."""
    for name, args in parsed(compose).items():
        code = healthcheck_code(compose["services"][name])
        port = parse_listen(args.listen)[1]
        assert f"127.0.0.1:{port}/health/ready'" in code, name


@pytest.mark.anyio
async def test_node_healthcheck_passes_on_a_live_node_only(
    compose: dict[str, Any], tmp_path: Path
) -> None:
    code = healthcheck_code(compose["services"]["node1"])
    with anyio.fail_after(60):
        async with running(
            "node", "--data-dir", tmp_path / "node", "--listen", "127.0.0.1:0", log=tmp_path / "log"
        ) as node:
            live = code.replace(CONTAINER_ADDRESS, node.url.removeprefix("http://"))
            result = await anyio.run_process([sys.executable, "-c", live], check=False)
            assert result.returncode == 0, result.stderr.decode()
            port = node.port
        # The node has stopped: the same check now fails.
        result = await anyio.run_process(
            [sys.executable, "-c", code.replace(CONTAINER_ADDRESS, f"127.0.0.1:{port}")],
            check=False,
            stderr=subprocess.DEVNULL,
        )
        assert result.returncode != 0


@pytest.mark.anyio
async def test_gateway_healthcheck_passes_only_when_ready(
    compose: dict[str, Any], cluster: LocalCluster
) -> None:
    code = healthcheck_code(compose["services"]["gateway"])

    async def check(url: str) -> int:
        live = code.replace(CONTAINER_ADDRESS, url.removeprefix("http://"))
        result = await anyio.run_process(
            [sys.executable, "-c", live], check=False, stderr=subprocess.DEVNULL
        )
        return result.returncode

    with anyio.fail_after(60):
        async with serving(cluster) as gateway:
            assert await check(gateway.url) == 0
            node = cluster.nodes["node-2"]
            cluster.transport.unregister(node.address)
            await cluster.orchestrator.probe()
            assert await check(gateway.url) != 0


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    instructions = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            instructions.append((word.upper(), rest.strip()))
    return instructions


def test_dockerfile_installs_the_package_and_runs_s3lite() -> None:
    instructions = dockerfile_instructions()
    (base,) = [rest for word, rest in instructions if word == "FROM"]
    assert re.fullmatch(r"python:3\.1[1-9]-slim\S*", base), base
    runs = " && ".join(rest for word, rest in instructions if word == "RUN")
    assert re.search(r"pip install (\S+ )*\.(\s|$)", runs), "the image must pip install ."
    copied = {
        source
        for word, rest in instructions
        if word == "COPY"
        for source in rest.split()[:-1]
        if not source.startswith("--")
    }
    assert {"pyproject.toml", "src"} <= copied
    (entrypoint,) = [json.loads(rest) for word, rest in instructions if word == "ENTRYPOINT"]
    assert entrypoint == ["s3lite"]
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts["s3lite"] == "s3lite.cli:main"
    (cmd,) = [json.loads(rest) for word, rest in instructions if word == "CMD"]
    assert parse(cmd).command in {"serve", "node", "gateway"}
    # .dockerignore must not hide what the Dockerfile copies.
    ignored = [
        line.strip()
        for line in DOCKERIGNORE.read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    for source in copied:
        hits = [pattern for pattern in ignored if fnmatch.fnmatch(source, pattern)]
        assert not hits, f"{source} is copied but .dockerignore excludes it ({hits})"
