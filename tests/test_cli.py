"""The ``s3lite`` command's surface: --version, help that reads as plain text, options
that refuse nonsense, what ``serve`` prints, ``make run PORT= DATA=``, and the node
options: byte counts for ``--reserve`` and the flags a node process gets (the
processes themselves are tested in tests/transport/test_http_faults.py)."""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
from pathlib import Path

import anyio
import pytest

from s3lite.cli import build_parser, main, version
from s3lite.service import DEFAULT_KEEP_ALIVE
from s3lite.storager.node import DEFAULT_RESERVE
from tests.s3sign import ROOT_ACCESS, ROOT_ENV, ROOT_SECRET

ROOT = Path(__file__).resolve().parent.parent


def parsers(parser: argparse.ArgumentParser) -> list[argparse.ArgumentParser]:
    found = [parser]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for child in action.choices.values():
                found += parsers(child)
    return found


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["--version"])
    assert exited.value.code == 0
    assert capsys.readouterr().out == f"s3lite {version()}\n"
    assert re.fullmatch(r"\d+\.\d+\.\d+", version())


def test_help_reads_as_plain_text() -> None:
    every = parsers(build_parser())
    assert len(every) >= 12
    for parser in every:
        text = parser.format_help()
        for noise in ("%(", "``", "**", ":class:", "default: None", "\x1b"):
            assert noise not in text, (parser.prog, noise)
    server = {p.prog: p.format_help() for p in every}
    for command in ("s3lite serve", "s3lite node", "s3lite gateway"):
        assert "--log-format {text,json}" in server[command]
        assert "--log-level {debug,info,warning,error}" in server[command]
    assert "--metrics-listen" in server["s3lite gateway"]
    assert "--watch" in server["s3lite status"]


@pytest.mark.parametrize(
    "argv",
    [
        ["status", "--gateway", "http://x", "--watch", "--interval", "0"],
        ["status", "--gateway", "http://x", "--interval", "soon"],
        ["gateway", "--data-dir", "d", "--listen", "h:1", "--log-format", "xml"],
        ["node", "--data-dir", "d", "--listen", "h:1", "--log-level", "loud"],
        ["gateway", "--data-dir", "d", "--listen", "h:1", "--probe-interval", "-1"],
    ],
)
def test_nonsense_options_are_refused(argv: list[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        build_parser().parse_args(argv)
    assert exited.value.code == 2


@pytest.mark.anyio
async def test_serve_prints_the_console_url_and_the_root_key(tmp_path: Path) -> None:
    command = [sys.executable, "-m", "s3lite", "serve", "--listen", "127.0.0.1:0",
               "--data-dir", str(tmp_path / "data"), "--metrics-listen", "127.0.0.1:0"]  # fmt: skip
    with anyio.fail_after(60):
        async with await anyio.open_process(
            command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
            env={**os.environ, **ROOT_ENV},
        ) as process:  # fmt: skip
            assert process.stdout is not None
            printed = b""
            while b"/metrics" not in printed:
                printed += await process.stdout.receive()
            process.terminate()
            await process.wait()
    text = printed.decode()
    url = re.search(r"listening on (http://\S+)", text)
    assert url is not None
    assert f"console: {url[1]}/_console" in text
    assert ROOT_ACCESS in text
    assert ROOT_SECRET in text
    assert "curl --aws-sigv4" in text
    assert f"aws --endpoint-url {url[1]}" in text


def test_make_run_takes_port_and_data() -> None:
    result = subprocess.run(
        ["make", "-n", "-W", "pyproject.toml", "run", "PORT=9100", "DATA=/tmp/x"],
        cwd=ROOT, capture_output=True, text=True, check=True,
    )  # fmt: skip
    (line,) = [line for line in result.stdout.splitlines() if " serve " in line]
    assert "--listen 127.0.0.1:9100 --data-dir /tmp/x" in line
    result = subprocess.run(
        ["make", "-n", "run", "METRICS=127.0.0.1:9090"], cwd=ROOT, capture_output=True,
        text=True, check=True,
    )  # fmt: skip
    (line,) = [line for line in result.stdout.splitlines() if " serve " in line]
    assert "--listen 127.0.0.1:9000 --data-dir data --metrics-listen 127.0.0.1:9090" in line


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
