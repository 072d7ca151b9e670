"""Optional py-spy profiling of benchmark processes, and a summary of where time went."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from pathlib import Path

import anyio


def py_spy() -> str | None:
    here = Path(sys.executable).parent / "py-spy"
    if here.exists():
        return str(here)
    found = None
    for directory in os.environ.get("PATH", "").split(os.pathsep):
        candidate = Path(directory) / "py-spy"
        if candidate.exists():
            found = str(candidate)
            break
    return found


class Profiler:
    """Samples the gateway and one node with py-spy during chosen phases (or does
    nothing without a directory); remembers the raw (collapsed stack) files."""

    def __init__(self, directory: Path | None, targets: Mapping[str, int]) -> None:
        self.directory = directory
        self.targets = dict(targets)
        self.files: list[Path] = []
        self.binary = py_spy() if directory is not None else None
        if directory is not None and self.binary is None:
            print("  (py-spy not found: pip install py-spy; profiling skipped)")

    @asynccontextmanager
    async def phase(self, name: str) -> AsyncIterator[None]:
        if self.directory is None or self.binary is None:
            yield
            return
        await anyio.Path(self.directory).mkdir(parents=True, exist_ok=True)
        processes = []
        for target, pid in self.targets.items():
            output = self.directory / f"{target}-{name}.txt"
            command = [self.binary, "record", "--pid", str(pid), "--rate", "250"]
            command += ["--nonblocking", "--format", "raw", "--output", str(output)]
            processes.append(
                await anyio.open_process(command, stdout=subprocess.DEVNULL, stderr=None)
            )
            self.files.append(output)
        await anyio.sleep(1.0)  # py-spy attaches
        try:
            yield
        finally:
            with anyio.CancelScope(shield=True):
                for process in processes:
                    if process.returncode is None:
                        process.send_signal(signal.SIGINT)  # py-spy writes its file and exits
                for process in processes:
                    with anyio.move_on_after(30):
                        await process.wait()
                    if process.returncode is None:
                        process.kill()
                        await process.wait()
                    await process.aclose()

    def summary(self) -> list[str]:
        return [line for path in self.files for line in summarize_profile(path)]


def summarize_profile(path: Path, top: int = 12) -> list[str]:
    """The functions where most samples ended (self) and, among s3lite's, the ones most
    samples passed through (inclusive), from a py-spy ``--format raw`` file."""
    if not path.exists():
        return [f"{path.name}: no samples"]
    self_counts: dict[str, int] = {}
    inclusive: dict[str, int] = {}
    total = waiting = 0
    for line in path.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [_frame(frame) for frame in stack.split(";")[1:]]
        if not frames:
            continue
        if frames[-1] in WAITS:
            waiting += count
            continue
        total += count
        self_counts[frames[-1]] = self_counts.get(frames[-1], 0) + count
        for frame in set(frames):
            if "s3lite/" in frame and not frame.endswith(ENTRY_FILES):
                inclusive[frame] = inclusive.get(frame, 0) + count
    if not total:
        return [f"{path.name}: no samples"]
    lines = [
        f"{path.name}: {total} busy samples (left out: {waiting} of worker threads waiting "
        "for work, and those py-spy saw idle)",
        "  self:",
    ]
    for frame, count in sorted(self_counts.items(), key=lambda item: -item[1])[:top]:
        note = "  [uvloop C code: socket I/O, callbacks]" if frame == LOOP else ""
        lines.append(f"    {100 * count / total:5.1f}%  {frame}{note}")
    lines.append("  inclusive (s3lite frames):")
    for frame, count in sorted(inclusive.items(), key=lambda item: -item[1])[:top]:
        lines.append(f"    {100 * count / total:5.1f}%  {frame}")
    return lines


ENTRY_FILES = ("(s3lite/__main__.py)", "(s3lite/cli.py)", "(s3lite/service.py)")
"""Frames every sample passes through; left out of the inclusive list."""

WAITS = ("Condition.wait (threading.py)",)
"""Leaf frame of anyio's worker threads idling between jobs."""

LOOP = "Runner.run (runners.py)"
"""Where py-spy puts time spent in uvloop's C code (socket I/O, protocol callbacks)."""


def _frame(text: str) -> str:
    """``func (path/to/file.py:123)`` -> ``func (file.py)``; s3lite paths keep their package."""
    name, _, where = text.partition(" (")
    where = where.rstrip(")").rsplit(":", 1)[0]
    if "s3lite/" in where:
        where = "s3lite/" + where.rsplit("s3lite/", 1)[1]
    else:
        where = where.rsplit("/", 1)[-1]
    return f"{name} ({where})"
