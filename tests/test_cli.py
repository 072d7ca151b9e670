"""The ``s3lite`` command's node options: byte counts for ``--reserve`` and the flags
a node process gets (the processes themselves are tested in
tests/transport/test_http_faults.py)."""

from __future__ import annotations

import argparse

import pytest

from s3lite.cli import build_parser
from s3lite.service import DEFAULT_KEEP_ALIVE
from s3lite.storager.node import DEFAULT_RESERVE


def node_args(*extra: str) -> argparse.Namespace:
    return build_parser().parse_args(["node", "--data-dir", "d", "--listen", "h:1", *extra])


@pytest.mark.parametrize(
    ("text", "expected"),
    [("0", 0), ("4096", 4096), ("512M", 512 << 20), ("1g", 1 << 30), ("2T", 2 << 40), ("7K", 7168)],
)
def test_reserve_takes_bytes_with_an_optional_unit(text: str, expected: int) -> None:
    assert node_args("--reserve", text).reserve == expected


@pytest.mark.parametrize("text", ["", "M", "-1", "1.5G", "12X", "1 G", "1GB"])
def test_reserve_refuses_what_is_not_a_byte_count(
    text: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as raised:
        node_args("--reserve", text)
    assert raised.value.code == 2
    assert "number of bytes" in capsys.readouterr().err


def test_node_defaults() -> None:
    args = node_args()
    assert args.reserve == DEFAULT_RESERVE == 256 << 20
    assert args.keep_alive == DEFAULT_KEEP_ALIVE
    assert args.replaced is False
    replaced = node_args("--replaced", "--node-id", "node-r", "--keep-alive", "2")
    assert (replaced.replaced, replaced.node_id, replaced.keep_alive) == (True, "node-r", 2)
