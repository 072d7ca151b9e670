"""rclone (Debian's package), unmodified, against a gateway process over node
processes: ``copy``, ``sync`` both ways (from a bucket with sub-folders back onto the
local tree, which must lose nothing), ``lsd``, ``ls`` over 1,500 keys, ``check``, and
a multipart upload. Every test ends by comparing bytes.

rclone runs as a subprocess configured only by environment variables (a remote named
``s3lite``: provider Other, path style, region us-east-1), with a home of its own and
no retries, so a failure shows at once.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

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
    make_file,
    make_tree,
    sha256,
    tree,
)

pytestmark = pytest.mark.clients

BUCKET = "rclone"


@pytest.fixture(scope="module")
def rclone(endpoint: Endpoint, tmp_path_factory: pytest.TempPathFactory) -> Client:
    home = tmp_path_factory.mktemp("rclone-home")
    remote = {
        "TYPE": "s3",
        "PROVIDER": "Other",
        "ENDPOINT": endpoint.url,
        "FORCE_PATH_STYLE": "true",
        "REGION": REGION,
        "ACCESS_KEY_ID": endpoint.access_key,
        "SECRET_ACCESS_KEY": endpoint.secret_key,
    }
    env = isolated_env(
        home,
        RCLONE_CONFIG=str(home / "rclone.conf"),
        **{f"RCLONE_CONFIG_S3LITE_{name}": value for name, value in remote.items()},
    )
    flags = ("--retries", "1", "--low-level-retries", "1", "--contimeout", "10s")
    client = Client((binary("rclone"), *flags, "--timeout", "60s"), env, endpoint)
    client("mkdir", f"s3lite:{BUCKET}")
    return client


def test_copy_lsd_and_check(rclone: Client, tmp_path: Path) -> None:
    local, back = tmp_path / "local", tmp_path / "back"
    make_tree(local, "rclone-copy", TREE)
    rclone("copy", local, f"s3lite:{BUCKET}/copy")
    assert BUCKET in rclone("lsd", "s3lite:").stdout.split()
    folders = [
        line.split()[-1] for line in rclone("lsd", f"s3lite:{BUCKET}/copy").stdout.splitlines()
    ]
    assert folders == ["a", "b"]
    rclone("check", local, f"s3lite:{BUCKET}/copy")  # sizes and MD5s: exit 1 on a difference
    rclone("copy", f"s3lite:{BUCKET}/copy", back)
    assert tree(back) == tree(local)


def test_sync_from_a_bucket_with_folders_keeps_local_files(rclone: Client, tmp_path: Path) -> None:
    local, fresh = tmp_path / "local", tmp_path / "fresh"
    make_tree(local, "rclone-sync", TREE)
    before = tree(local)
    rclone("sync", local, f"s3lite:{BUCKET}/sync")
    rclone("sync", f"s3lite:{BUCKET}/sync", local)  # back onto the same files: nothing to do
    assert tree(local) == before
    rclone("sync", f"s3lite:{BUCKET}/sync", fresh)
    assert tree(fresh) == before
    # A file changed in the bucket comes down; the rest stays.
    make_file(tmp_path / "changed", "rclone-changed", 3 * MiB + 1)
    rclone("copyto", tmp_path / "changed", f"s3lite:{BUCKET}/sync/a/deeper/two.bin")
    rclone("sync", f"s3lite:{BUCKET}/sync", local)
    assert tree(local) == {**before, "a/deeper/two.bin": sha256(tmp_path / "changed")}


def test_ls_over_1500_keys(rclone: Client, listed: dict[str, str]) -> None:
    shown = rclone("ls", "s3lite:listed").stdout.splitlines()
    assert sorted(line.split()[-1] for line in shown) == sorted(listed)
    assert len(shown) == LISTED
    md5s = rclone("md5sum", "s3lite:listed/d3").stdout.splitlines()
    assert {f"d3/{name}": md5 for md5, name in (line.split() for line in md5s)} == {
        key: md5 for key, md5 in listed.items() if key.startswith("d3/")
    }


def test_multipart_upload(rclone: Client, s3: Any, tmp_path: Path) -> None:
    digest = make_file(tmp_path / "big" / "big.bin", "rclone-multipart", 20 * MiB + 7)
    cutoff = ("--s3-upload-cutoff", "5M", "--s3-chunk-size", "5M")
    rclone("copy", *cutoff, tmp_path / "big", f"s3lite:{BUCKET}/multipart")
    assert s3.head_object(Bucket=BUCKET, Key="multipart/big.bin")["ETag"].endswith('-5"')
    rclone("check", tmp_path / "big", f"s3lite:{BUCKET}/multipart")
    rclone("copy", f"s3lite:{BUCKET}/multipart", tmp_path / "back")
    assert sha256(tmp_path / "back" / "big.bin") == digest
