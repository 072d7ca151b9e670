"""Progress of long work (s3lite.progress) and how the CLI draws it and the status
(s3lite.cli_render): pure functions, a fake clock, no I/O."""

from __future__ import annotations

import io
import logging
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from s3lite.cli_render import (
    ProgressPrinter,
    bar,
    human_bytes,
    human_duration,
    progress_line,
    status_text,
    usage_bar,
)
from s3lite.logs import fields_of
from s3lite.progress import RATE_WINDOW, Progress
from tests.clock import Clock


def test_progress_counts_rate_eta_and_events() -> None:
    clock = Clock(100.0)
    heard: list[dict[str, Any]] = []
    progress = Progress("join n7", clock=clock)
    progress.listeners.append(heard.append)
    progress.step("copy", sectors=4)
    progress.set_totals(items=4, bytes=1000)
    assert progress.fraction == 0
    assert progress.rate is None
    for _ in range(4):
        clock.now += 1
        progress.advance(items=1, bytes=100)
    assert progress.rate == pytest.approx(100.0)
    assert progress.eta == pytest.approx(6.0)
    snapshot = progress.snapshot()
    assert snapshot["fraction"] == pytest.approx(0.4)
    assert (snapshot["items_done"], snapshot["bytes_done"]) == (4, 400)
    assert snapshot["elapsed"] == pytest.approx(4.0)
    assert [m["event"] for m in heard] == ["step", "progress"] + ["progress"] * 4
    assert heard[0]["details"] == {"sectors": 4}
    assert heard[-1]["progress"]["bytes_done"] == 400
    progress.finish(node_id="n7")
    assert heard[-1]["event"] == "done"
    assert progress.snapshot()["finished"]


def test_the_rate_follows_recent_samples_only() -> None:
    clock = Clock(100.0)
    progress = Progress("t", clock=clock)
    progress.set_totals(bytes=10_000)
    for _ in range(10):
        clock.now += 1
        progress.advance(bytes=500)
    clock.now += 1
    for _ in range(10):  # a stall: a byte a second
        clock.now += 1
        progress.advance(bytes=1)
    rate = progress.rate
    assert rate is not None
    assert rate < 2 * (1 + 500 / RATE_WINDOW)


@given(st.lists(st.integers(0, 10**6), max_size=30), st.integers(0, 10**7))
def test_fraction_stays_in_range_and_milestones_log_once(advances: list[int], total: int) -> None:
    clock = Clock(100.0)
    log = logging.getLogger("test.progress")
    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    handler = Keep()
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    try:
        progress = Progress("t", clock=clock, log=log)
        progress.step("copy")
        progress.set_totals(bytes=total)
        for size in advances:
            clock.now += 0.5
            progress.advance(bytes=size)
            fraction = progress.fraction
            assert fraction is not None
            assert 0.0 <= fraction <= 1.0
    finally:
        log.removeHandler(handler)
    percents = [fields_of(r)["percent"] for r in records if "percent" in fields_of(r)]
    assert percents == sorted(set(percents))
    if total and sum(advances) >= total:
        assert percents == [25, 50, 75, 100]


def test_a_failure_is_recorded_and_told() -> None:
    heard: list[dict[str, Any]] = []
    progress = Progress("join n7")
    progress.listeners.append(heard.append)
    progress.fail(ValueError("the donor went away"))
    assert heard[-1]["event"] == "error"
    assert progress.snapshot()["error"] == "ValueError: the donor went away"


# -- rendering -------------------------------------------------------------------------------


def test_human_units() -> None:
    assert human_bytes(None) == "?"
    assert human_bytes(512) == "512 B"
    assert human_bytes(1536) == "1.5 KiB"
    assert human_bytes(3 << 30) == "3.0 GiB"
    assert human_duration(None) == "--:--"
    assert human_duration(75) == "1:15"
    assert human_duration(3725) == "1:02:05"


@given(st.one_of(st.none(), st.floats(-1, 2)), st.integers(1, 80))
def test_bars_have_their_width(fraction: float | None, width: int) -> None:
    drawn = bar(fraction, width)
    assert len(drawn) == width + 2
    assert set(drawn[1:-1]) <= {"#", "."}


def test_progress_line() -> None:
    snapshot = {"fraction": 0.5, "items_done": 3, "items_total": 6, "bytes_done": 5 << 20,
                "bytes_total": 10 << 20, "rate": 2 << 20, "eta": 2.5}  # fmt: skip
    line = progress_line(snapshot)
    assert line.startswith("[" + "#" * 15 + "." * 15 + "]")
    assert " 50%" in line
    assert "3/6 sectors" in line
    assert "5.0/10.0 MiB" in line
    assert "2.0 MiB/s" in line
    assert "ETA 0:02" in line


def events() -> list[dict[str, Any]]:
    def snap(fraction: float) -> dict[str, Any]:
        return {
            "fraction": fraction, "items_done": int(fraction * 8), "items_total": 8,
            "bytes_done": int(fraction * 800), "bytes_total": 800, "rate": 100.0, "eta": 1.0,
        }  # fmt: skip

    plan = {"sectors": 8, "bytes": 800}
    return [
        {"event": "step", "step": "plan", "details": plan, "progress": snap(0)},
        {"event": "step", "step": "copy", "details": {}, "progress": snap(0)},
        *({"event": "progress", "progress": snap(f / 10)} for f in range(1, 11)),
        {"event": "step", "step": "switch", "details": {"generation": 3}, "progress": snap(1)},
        {"event": "progress", "progress": snap(1)},
    ]


def printed(*, tty: bool) -> str:
    out = io.StringIO()
    printer = ProgressPrinter(out, tty=tty)
    for message in events():
        printer.feed(message)
    printer.close()
    return out.getvalue()


def test_the_printer_draws_a_bar_on_a_terminal() -> None:
    text = printed(tty=True)
    assert "plan: sectors=8 bytes=800 B\n" in text
    assert "\r[" + "#" * 30 + "]  100%" in text
    assert "switch: generation=3" in text
    assert text.endswith("\n")


def test_the_printer_writes_plain_lines_elsewhere() -> None:
    text = printed(tty=False)
    lines = text.splitlines()
    assert "\r" not in text
    assert "\x1b" not in text
    assert lines[:2] == ["plan: sectors=8 bytes=800 B", "copy"]
    percents = [line.split("]")[1].split("%")[0].strip() for line in lines if line.startswith("[")]
    assert percents == ["30", "50", "80", "100"]  # one line per milestone passed
    assert lines[-1] == "switch: generation=3"


def test_usage_bars_mark_the_fair_share() -> None:
    assert usage_bar(100, 100, width=20) == "[###############|....] 100%"
    assert usage_bar(0, 100, width=20) == "[" + "." * 15 + "|" + "." * 4 + "]   0%"
    assert usage_bar(1000, 100, width=20).endswith("] 1000%")
    assert usage_bar(None, 100, width=4) == "[????]     "


def test_status_text_shows_down_since_and_joining() -> None:
    status = {
        "policy": "fill", "generation": 4, "nodes_up": 1, "fair_share_bytes": 1000,
        "nodes": [
            {"id": "n1", "address": "http://a", "state": "ready", "condition": "up", "up": True,
             "down_since": None, "reason": None, "bytes": 1000, "sectors": 60, "arcs": ["0-59"]},
            {"id": "n2", "address": "http://b", "state": "ready", "condition": "down",
             "up": False, "down_since": 400.0, "reason": "connection refused", "bytes": None,
             "sectors": 60, "arcs": ["60-119"]},
            {"id": "n7", "address": "http://c", "state": "joining", "condition": "joining",
             "up": True, "down_since": None, "reason": None, "bytes": 0, "sectors": 0, "arcs": []},
        ],
        "migration": {"node": "n7", "phase": "copying", "sectors": 30, "donors": {"n1": 30}},
        "progress": {"join": {"task": "join n7", "step": "copy", "finished": False,
                              "fraction": 0.5, "items_done": 15, "items_total": 30,
                              "bytes_done": 500, "bytes_total": 1000, "rate": None, "eta": None}},
    }  # fmt: skip
    text = status_text(status, now=lambda: 700.0)
    lines = text.splitlines()
    assert lines[0] == "policy fill, topology generation 4, 1 of 2 nodes up, fair share 1000 B"
    assert "n2" in lines[4]
    assert "down since" in lines[4]
    assert "(5:00 ago)" in lines[4]
    assert "why down: connection refused" in text
    assert "joining" in text
    assert "migration: 30 sectors to n7 (copying) from n1:30" in text
    assert "join n7 (copy): [" in text
    assert "parity" not in text  # a gateway from before parity says nothing about it


def test_status_text_shows_parity_and_the_heal_queue() -> None:
    status = {
        "policy": "fill", "generation": 1, "nodes_up": 7, "fair_share_bytes": None,
        "nodes": [], "migration": None, "progress": {"join": None}, "heal_queue": 3,
        "parity": {"target": 2, "effective": 1, "writable_nodes": 7, "nodes": 8,
                   "warning": "target parity is 2 but only 7 of 8 nodes can take new parts"},
    }  # fmt: skip
    lines = status_text(status).splitlines()
    assert lines[-2] == (
        "parity: target 2, new objects get 1 (7 of 8 nodes take new parts); "
        "heal queue: 3 segment(s)"
    )
    assert lines[-1] == "warning: target parity is 2 but only 7 of 8 nodes can take new parts"
    status["parity"] = {**status["parity"], "effective": 2, "warning": None}  # type: ignore[dict-item]
    assert status_text(status).splitlines()[-1].startswith("parity: target 2, new objects get 2")
