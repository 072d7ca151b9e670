"""s3cmd (from PyPI), unmodified, against a gateway process over node processes: a
100 MiB multipart put (15 MB chunks), listings (``ls``, ``la`` over more than 1,000
keys), ``info``, ``cp``, ``del -r`` and ``sync`` both ways. Every test ends by
comparing bytes.

s3cmd runs as a subprocess with a home of its own and the config file this module
writes: path style (host_bucket without ``%(bucket)s``), SigV4, plain HTTP.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.clients.tools import (
    REGION,
    TREE,
    Client,
    Endpoint,
    MiB,
    binary,
    isolated_env,
    lines,
    make_file,
    make_tree,
    sha256,
    tree,
)

pytestmark = pytest.mark.clients

BUCKET = "s3cmd"


@pytest.fixture(scope="module")
def s3cmd(endpoint: Endpoint, tmp_path_factory: pytest.TempPathFactory) -> Client:
    home = tmp_path_factory.mktemp("s3cmd-home")
    config = home / ".s3cfg"
    config.write_text(
        "[default]\n"
        f"access_key = {endpoint.access_key}\n"
        f"secret_key = {endpoint.secret_key}\n"
        f"host_base = {endpoint.hostport}\n"
        f"host_bucket = {endpoint.hostport}\n"
        f"bucket_location = {REGION}\n"
        "use_https = False\n"
        "signature_v2 = False\n"
        "multipart_chunk_size_mb = 15\n"
        "progress_meter = False\n"
    )
    client = Client((binary("s3cmd"), "-c", str(config)), isolated_env(home), endpoint)
    client("mb", f"s3://{BUCKET}")
    return client


def test_put_100_mib_multipart(s3cmd: Client, s3: Any, tmp_path: Path) -> None:
    digest = make_file(tmp_path / "big.bin", "s3cmd-100", 100 * MiB)
    s3cmd("put", tmp_path / "big.bin", f"s3://{BUCKET}/big.bin")
    assert s3.head_object(Bucket=BUCKET, Key="big.bin")["ETag"].endswith('-7"')  # 15 MB parts
    info = s3cmd("info", f"s3://{BUCKET}/big.bin").stdout
    assert "104857600" in info
    s3cmd("get", f"s3://{BUCKET}/big.bin", tmp_path / "back.bin")
    assert sha256(tmp_path / "back.bin") == digest


def test_ls_and_la_over_1500_keys(s3cmd: Client, listed: dict[str, str]) -> None:
    assert any(line.endswith(f"s3://{BUCKET}") for line in lines(s3cmd("ls").stdout))
    top = lines(s3cmd("ls", "s3://listed/").stdout)
    assert [line.split()[-1] for line in top if line.startswith("DIR")] == [
        f"s3://listed/d{i}/" for i in range(4)
    ]
    files = [line.split()[-1] for line in top if not line.startswith("DIR")]
    assert files == [f"s3://listed/{key}" for key in sorted(listed) if "/" not in key]
    everything = lines(s3cmd("la", "--recursive", "--list-md5").stdout)
    mine = {line.split()[-1]: line.split()[-2] for line in everything if "s3://listed/" in line}
    assert mine == {f"s3://listed/{key}": md5 for key, md5 in listed.items()}


def test_info_and_cp(s3cmd: Client, tmp_path: Path) -> None:
    digest = make_file(tmp_path / "doc.txt", "s3cmd-info", 2 * MiB + 5)
    s3cmd("put", "--mime-type=text/plain", tmp_path / "doc.txt", f"s3://{BUCKET}/info/doc.txt")
    info = s3cmd("info", f"s3://{BUCKET}/info/doc.txt").stdout
    assert "text/plain" in info
    assert str(2 * MiB + 5) in info
    s3cmd("info", f"s3://{BUCKET}")  # the bucket: location, ACL, what else it asks for
    s3cmd("mb", "s3://s3cmd-other")
    s3cmd("cp", f"s3://{BUCKET}/info/doc.txt", f"s3://{BUCKET}/info/copy.txt")
    s3cmd("cp", f"s3://{BUCKET}/info/doc.txt", "s3://s3cmd-other/doc.txt")
    for remote in (f"{BUCKET}/info/copy.txt", "s3cmd-other/doc.txt", f"{BUCKET}/info/doc.txt"):
        local = tmp_path / "back" / remote
        local.parent.mkdir(parents=True, exist_ok=True)
        s3cmd("get", f"s3://{remote}", local)
        assert sha256(local) == digest


def test_sync_both_ways(s3cmd: Client, tmp_path: Path) -> None:
    local, down = tmp_path / "local", tmp_path / "down"
    make_tree(local, "s3cmd-sync", TREE)
    remote = f"s3://{BUCKET}/sync/"
    s3cmd("sync", f"{local}/", remote)
    down.mkdir()
    s3cmd("sync", remote, f"{down}/")
    assert tree(down) == tree(local)
    make_file(local / "a" / "deeper" / "two.bin", "s3cmd-changed", 3 * MiB + 1)
    changed = [line for line in lines(s3cmd("sync", f"{local}/", remote).stdout) if "->" in line]
    assert len(changed) == 1
    assert "a/deeper/two.bin" in changed[0]
    s3cmd("sync", remote, f"{down}/")
    assert tree(down) == tree(local)


def test_del_recursive(s3cmd: Client, tmp_path: Path) -> None:
    make_tree(tmp_path / "tree", "s3cmd-del", TREE)
    s3cmd("put", "--recursive", f"{tmp_path / 'tree'}/", f"s3://{BUCKET}/del/")
    s3cmd("put", tmp_path / "tree" / "readme.txt", f"s3://{BUCKET}/delete-not-me")
    assert len(lines(s3cmd("ls", "--recursive", f"s3://{BUCKET}/del/").stdout)) == len(TREE)
    s3cmd("del", "-r", f"s3://{BUCKET}/del/")
    assert s3cmd("ls", "--recursive", f"s3://{BUCKET}/del/").stdout.strip() == ""
    s3cmd("get", f"s3://{BUCKET}/delete-not-me", tmp_path / "kept")
    assert sha256(tmp_path / "kept") == sha256(tmp_path / "tree" / "readme.txt")
