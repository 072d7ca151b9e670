"""What the real-client tests share: the endpoint they talk to, finding a client's
binary (skip locally, fail under CI), running it with an isolated home and a bounded
time, seeded payload files and their digests, and reading the gateway's log.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs
import boto3
import pytest
from botocore.client import Config

MiB = 1 << 20
REGION = "us-east-1"
CLIENT_TIMEOUT = 180.0
"""Seconds any one client command may take (a 100 MiB transfer takes a few)."""
TREE = {"readme.txt": 1000, "a/one.bin": 70_000, "a/deeper/two.bin": 3 * MiB, "b/three": 10}
"""A local folder the sync and recursive tests make: files at the top, in a folder, in
a sub-folder."""
LISTED = 1500
"""Keys in the bucket every client lists (conftest.py's ``listed``)."""
_CHUNK = 4 * MiB
_FOREIGN_ENV = ("AWS_", "BOTO_", "RCLONE_", "S3CMD", "S3LITE_")
"""Variables of the machine that would change how a client behaves: dropped."""


@attrs.frozen
class Endpoint:
    """A running gateway: its URL, the root key it was given, its log file."""

    url: str
    access_key: str
    secret_key: str
    log: Path

    @property
    def hostport(self) -> str:
        return self.url.removeprefix("http://")


def boto3_client(
    endpoint: Endpoint,
    access_key: str | None = None,
    secret_key: str | None = None,
    **config: Any,
) -> Any:
    """boto3's S3 client for ``endpoint`` (the root key by default), path style, with
    bounded timeouts and no retries (a failure shows at once); ``config`` adds to
    botocore's Config."""
    return boto3.session.Session().client(
        "s3",
        endpoint_url=endpoint.url,
        aws_access_key_id=access_key or endpoint.access_key,
        aws_secret_access_key=secret_key or endpoint.secret_key,
        region_name=REGION,
        config=Config(
            s3={"addressing_style": "path"},
            connect_timeout=10,
            read_timeout=120,
            retries={"total_max_attempts": 1},
            **config,
        ),
    )


def binary(name: str) -> str:
    """The client ``name``: from this interpreter's environment (the dev extras put aws
    and s3cmd there), else from PATH. Missing: the test is skipped, unless CI is set,
    where .ci/run must have installed it and its absence is a failure."""
    beside = Path(sys.executable).parent / name
    found = str(beside) if beside.exists() else shutil.which(name)
    if found is not None:
        return found
    if os.environ.get("CI"):
        pytest.fail(f"{name} is not installed, and CI must run every client (see .ci/run)")
    pytest.skip(f"{name} is not installed (pip install -e '.[dev]'; apt-get install rclone)")


def isolated_env(home: Path, **extra: str) -> dict[str, str]:
    """This process's environment with ``home`` as HOME (and the aws config files
    under it), without the variables that configure S3 clients, plus ``extra``."""
    kept = {k: v for k, v in os.environ.items() if not k.upper().startswith(_FOREIGN_ENV)}
    return {
        **kept,
        "HOME": str(home),
        "XDG_CONFIG_HOME": str(home / ".config"),
        "AWS_CONFIG_FILE": str(home / ".aws" / "config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(home / ".aws" / "credentials"),
        "NO_PROXY": "127.0.0.1,localhost",
        "no_proxy": "127.0.0.1,localhost",
        **extra,
    }


@attrs.frozen
class Client:
    """One command-line client with its environment; calling it runs one command."""

    command: tuple[str, ...]
    env: Mapping[str, str]
    endpoint: Endpoint

    def __call__(
        self, *args: str | Path, check: bool = True, timeout: float = CLIENT_TIMEOUT
    ) -> subprocess.CompletedProcess[str]:
        """Run the client with ``args``; with ``check``, a non-zero exit fails the test
        with the client's output and the gateway's last log lines."""
        argv = [*self.command, *map(str, args)]
        result = subprocess.run(
            argv,
            env=dict(self.env),
            capture_output=True,
            text=True,
            stdin=subprocess.DEVNULL,
            timeout=timeout,
            check=False,
        )
        if check and result.returncode != 0:
            raise AssertionError(
                f"{' '.join(argv)} exited {result.returncode}\n"
                f"stdout:\n{result.stdout[-4000:]}\nstderr:\n{result.stderr[-4000:]}\n"
                f"gateway log (last lines):\n{tail(self.endpoint.log)}"
            )
        return result


def seeded(seed: object, size: int) -> bytes:
    """``size`` bytes drawn from a generator seeded with ``seed``."""
    return random.Random(str(seed)).randbytes(size)


def make_file(path: Path, seed: object, size: int) -> str:
    """Write ``size`` bytes drawn from a generator seeded with ``seed``; their SHA-256."""
    generator = random.Random(str(seed))
    digest = hashlib.sha256()
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as file:
        for start in range(0, size, _CHUNK):
            piece = generator.randbytes(min(_CHUNK, size - start))
            digest.update(piece)
            file.write(piece)
    return digest.hexdigest()


def sha256(path: Path) -> str:
    with open(path, "rb") as file:
        return hashlib.file_digest(file, "sha256").hexdigest()


def make_tree(root: Path, seed: object, files: Mapping[str, int]) -> dict[str, str]:
    """Files at the relative paths of ``files`` with those sizes; {path: sha256}."""
    return {name: make_file(root / name, (seed, name), size) for name, size in files.items()}


def tree(root: Path) -> dict[str, str]:
    """Every file under ``root``: {relative path with /: sha256}."""
    return {
        path.relative_to(root).as_posix(): sha256(path)
        for path in sorted(root.rglob("*"))
        if path.is_file()
    }


def lines(output: str) -> list[str]:
    """A client's output: its non-blank lines, stripped."""
    return [line.strip() for line in output.splitlines() if line.strip()]


def tail(log: Path, lines: int = 20) -> str:
    return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])


def log_problems(log: Path) -> list[str]:
    """The gateway's log lines that report a 5xx answer (but 501 NotImplemented, the
    answer to an operation s3lite does not have), an error or a traceback."""
    problems = []
    for line in log.read_text(errors="replace").splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            if "Traceback" in line:
                problems.append(line)
            continue
        status = record.get("status")
        if record.get("level") in {"error", "critical"} or (
            isinstance(status, int) and status >= 500 and status != 501
        ):
            problems.append(line)
    return problems


def create_key(endpoint: Endpoint, name: str) -> tuple[str, str]:
    """A new key made with ``s3lite key create`` (the root key from the environment);
    it owns nothing and is granted nothing. Returns (access key, secret)."""
    env = {
        **os.environ,
        "S3LITE_ROOT_USER": endpoint.access_key,
        "S3LITE_ROOT_PASSWORD": endpoint.secret_key,
    }
    command = [sys.executable, "-m", "s3lite", "key", "create", "--gateway", endpoint.url]
    result = subprocess.run(
        [*command, "--name", name],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    fields = dict(line.split(": ", 1) for line in result.stdout.splitlines() if ": " in line)
    return fields["access key"], fields["secret key"]
