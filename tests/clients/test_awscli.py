"""The aws cli (v1, from PyPI), unmodified, against a gateway process over node
processes: buckets, folder listings, 100 MiB up and down, copies and moves between S3
paths (UploadPartCopy above 8 MiB), sync both ways, recursive removal, removing a full
bucket, and a presigned URL fetched with urllib. Every test ends by comparing bytes.

The cli runs as a subprocess with a home of its own: its config and credentials files
are written there (region us-east-1, path style), and no AWS_* variable of this
machine reaches it.
"""

from __future__ import annotations

import urllib.request
from pathlib import Path

import pytest

from tests.clients.tools import (
    LISTED,
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

BUCKET = "cli"


@pytest.fixture(scope="module")
def aws(endpoint: Endpoint, tmp_path_factory: pytest.TempPathFactory) -> Client:
    home = tmp_path_factory.mktemp("aws-home")
    (home / ".aws").mkdir()
    (home / ".aws" / "config").write_text(
        f"[default]\nregion = {REGION}\ns3 =\n    addressing_style = path\n"
    )
    (home / ".aws" / "credentials").write_text(
        "[default]\n"
        f"aws_access_key_id = {endpoint.access_key}\n"
        f"aws_secret_access_key = {endpoint.secret_key}\n"
    )
    command = (binary("aws"), "--endpoint-url", endpoint.url)
    client = Client(command, isolated_env(home), endpoint)
    client("s3", "mb", f"s3://{BUCKET}")
    return client


def test_mb_and_ls_with_folders(aws: Client, listed: dict[str, str], tmp_path: Path) -> None:
    assert any(line.endswith(f" {BUCKET}") for line in lines(aws("s3", "ls").stdout))
    make_tree(tmp_path / "tree", "ls", TREE)
    aws("s3", "cp", "--recursive", "--no-progress", tmp_path / "tree", f"s3://{BUCKET}/ls/")
    shown = lines(aws("s3", "ls", f"s3://{BUCKET}/ls/").stdout)
    assert [line for line in shown if line.startswith("PRE ")] == ["PRE a/", "PRE b/"]
    assert [line.split()[-1] for line in shown if not line.startswith("PRE ")] == ["readme.txt"]
    assert lines(aws("s3", "ls", f"s3://{BUCKET}/ls/a/").stdout)[0] == "PRE deeper/"
    # Over more than one page: the folders and the top-level keys of 1,500.
    top = lines(aws("s3", "ls", "s3://listed/").stdout)
    assert top[:4] == ["PRE d0/", "PRE d1/", "PRE d2/", "PRE d3/"]
    assert [line.split()[-1] for line in top[4:]] == sorted(k for k in listed if "/" not in k)
    everything = lines(aws("s3", "ls", "--recursive", "s3://listed/").stdout)
    assert [line.split()[-1] for line in everything] == sorted(listed)
    assert len(everything) == LISTED
    back = tmp_path / "back"
    aws("s3", "cp", "--recursive", "--no-progress", f"s3://{BUCKET}/ls/", back)
    assert tree(back) == tree(tmp_path / "tree")


def test_cp_100_mib_up_and_down(aws: Client, tmp_path: Path) -> None:
    digest = make_file(tmp_path / "big.bin", "aws-100", 100 * MiB)
    aws("s3", "cp", "--no-progress", tmp_path / "big.bin", f"s3://{BUCKET}/big.bin")
    aws("s3", "cp", "--no-progress", f"s3://{BUCKET}/big.bin", tmp_path / "back.bin")
    assert sha256(tmp_path / "back.bin") == digest


def test_cp_and_mv_between_s3_paths(aws: Client, tmp_path: Path) -> None:
    digest = make_file(tmp_path / "source.bin", "aws-copy", 20 * MiB + 3)
    aws("s3", "cp", "--no-progress", tmp_path / "source.bin", f"s3://{BUCKET}/copy/source")
    aws("s3", "mb", "s3://cli-other")
    # Above 8 MiB both are multipart copies: UploadPartCopy with source ranges.
    aws("s3", "cp", "--no-progress", f"s3://{BUCKET}/copy/source", f"s3://{BUCKET}/copy/copied")
    aws("s3", "mv", "--no-progress", f"s3://{BUCKET}/copy/copied", "s3://cli-other/moved")
    assert aws("s3", "ls", f"s3://{BUCKET}/copy/copied", check=False).returncode == 1
    for remote, local in [("cli-other/moved", "moved"), (f"{BUCKET}/copy/source", "source")]:
        aws("s3", "cp", "--no-progress", f"s3://{remote}", tmp_path / "back" / local)
        assert sha256(tmp_path / "back" / local) == digest


def test_sync_both_ways(aws: Client, tmp_path: Path) -> None:
    local, down = tmp_path / "local", tmp_path / "down"
    make_tree(local, "sync", TREE)
    remote = f"s3://{BUCKET}/sync/"
    uploaded = lines(aws("s3", "sync", "--no-progress", local, remote).stdout)
    assert len(uploaded) == len(TREE)
    assert lines(aws("s3", "sync", "--no-progress", remote, down).stdout)
    assert tree(down) == tree(local)
    # Nothing changed: nothing moves. Then one file in the sub-folder changes.
    assert lines(aws("s3", "sync", "--no-progress", local, remote).stdout) == []
    make_file(local / "a" / "deeper" / "two.bin", "sync-changed", 3 * MiB + 1)
    [upload] = lines(aws("s3", "sync", "--no-progress", local, remote).stdout)
    assert upload.startswith("upload: ")
    assert upload.endswith(f"{remote}a/deeper/two.bin")
    [download] = lines(aws("s3", "sync", "--no-progress", remote, down).stdout)
    assert download.startswith(f"download: {remote}a/deeper/two.bin")
    assert tree(down) == tree(local)


def test_rm_recursive_and_rb_force(aws: Client, tmp_path: Path) -> None:
    make_tree(tmp_path / "tree", "rm", TREE)
    aws("s3", "mb", "s3://cli-doomed")
    for target in (f"s3://{BUCKET}/rm/", "s3://cli-doomed/"):
        aws("s3", "cp", "--recursive", "--no-progress", tmp_path / "tree", target)
    kept = lines(aws("s3", "ls", "--recursive", f"s3://{BUCKET}/ls/", check=False).stdout)
    removed = lines(aws("s3", "rm", "--recursive", f"s3://{BUCKET}/rm/").stdout)
    assert len(removed) == len(TREE)
    assert aws("s3", "ls", "--recursive", f"s3://{BUCKET}/rm/", check=False).stdout == ""
    # Only the prefix went: the rest of the bucket is as it was.
    assert lines(aws("s3", "ls", "--recursive", f"s3://{BUCKET}/ls/", check=False).stdout) == kept
    aws("s3", "rb", "--force", "s3://cli-doomed")
    assert not any(line.endswith(" cli-doomed") for line in lines(aws("s3", "ls").stdout))
    gone = aws("s3api", "head-bucket", "--bucket", "cli-doomed", check=False)
    assert gone.returncode != 0
    assert "404" in gone.stderr


def test_presign_fetched_with_urllib(aws: Client, tmp_path: Path) -> None:
    digest = make_file(tmp_path / "shared.bin", "presign", 5 * MiB + 11)
    aws("s3", "cp", "--no-progress", tmp_path / "shared.bin", f"s3://{BUCKET}/shared file.bin")
    url = aws("s3", "presign", f"s3://{BUCKET}/shared file.bin", "--expires-in", "300").stdout
    with urllib.request.urlopen(url.strip(), timeout=60) as response:
        (tmp_path / "fetched.bin").write_bytes(response.read())
    assert sha256(tmp_path / "fetched.bin") == digest
