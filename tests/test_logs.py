"""Structured logs (s3lite.logs): the two formats, configure's checks, the healer's
helper, and asyncio's unretrieved task errors as one line."""

from __future__ import annotations

import asyncio
import gc
import io
import json
import logging
from collections.abc import Iterator

import pytest

from s3lite.logs import (
    JsonFormatter,
    TextFormatter,
    configure,
    event,
    fields_of,
    heal_action,
    quiet_loop_errors,
)


@pytest.fixture
def captured() -> Iterator[list[logging.LogRecord]]:
    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    handler = Keep()
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    try:
        yield records
    finally:
        root.removeHandler(handler)
        root.setLevel(level)


def test_both_formats_carry_the_fields(captured: list[logging.LogRecord]) -> None:
    event(logging.getLogger("s3lite.test"), logging.INFO, "GET /b/k 200", request_id="ab12",
          path="/b/a key", status=200)  # fmt: skip
    (record,) = captured
    text = TextFormatter().format(record)
    assert text.endswith(
        ' INFO s3lite.test: GET /b/k 200 request_id=ab12 path="/b/a key" status=200'
    )
    entry = json.loads(JsonFormatter().format(record))
    assert entry["message"] == "GET /b/k 200"
    assert entry["level"] == "info"
    assert entry["time"].endswith("Z")
    assert (entry["request_id"], entry["path"], entry["status"]) == ("ab12", "/b/a key", 200)


def test_a_traceback_is_one_json_line(captured: list[logging.LogRecord]) -> None:
    try:
        int("a bug")
    except ValueError:
        logging.getLogger("s3lite.test").exception("it failed")
    line = JsonFormatter().format(captured[0])
    assert "\n" not in line
    assert "ValueError: invalid literal" in json.loads(line)["exception"]


def test_heal_actions_are_one_line_each(captured: list[logging.LogRecord]) -> None:
    heal_action("rebuild", segment="u1-0", node="node-3", bytes=1024)
    heal_action("rebuild", outcome="failed", segment="u2-0")
    assert [r.getMessage() for r in captured] == ["heal rebuild done", "heal rebuild failed"]
    assert fields_of(captured[0])["node"] == "node-3"
    assert captured[1].levelno == logging.WARNING


def test_configure_checks_its_arguments_and_writes_json() -> None:
    with pytest.raises(ValueError, match="--log-format"):
        configure("xml")
    with pytest.raises(ValueError, match="--log-level"):
        configure("text", "loud")
    stream = io.StringIO()
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    try:
        configure("json", "warning", stream)
        logging.getLogger("s3lite.test").info("not shown")
        event(logging.getLogger("s3lite.test"), logging.WARNING, "shown", node="n1")
    finally:
        for handler in list(root.handlers):
            root.removeHandler(handler)
        for handler in saved[0]:
            root.addHandler(handler)
        root.setLevel(saved[1])
    (line,) = stream.getvalue().splitlines()
    assert json.loads(line)["node"] == "n1"


def test_an_unretrieved_task_error_is_one_warning_line(
    captured: list[logging.LogRecord],
) -> None:
    async def fails() -> None:
        raise ConnectionResetError("the node dropped the connection")

    async def main() -> None:
        quiet_loop_errors(asyncio.get_running_loop())
        task = asyncio.get_running_loop().create_task(fails())
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        assert task.done()
        del task
        gc.collect()

    asyncio.run(main())
    lines = [r for r in captured if r.name == "s3lite.asyncio"]
    assert len(lines) == 1
    assert lines[0].levelno == logging.WARNING
    assert lines[0].exc_info is None
    assert "ConnectionResetError" in fields_of(lines[0])["error"]
