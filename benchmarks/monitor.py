"""Watching benchmark processes: peak memory, CPU per phase, and how busy the machine is."""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import psutil


class MemorySampler:
    """Peak RSS of some processes, sampled every ``interval`` seconds in a thread (so a
    busy event loop in this process does not delay the samples)."""

    def __init__(self, processes: Mapping[str, psutil.Process], interval: float = 0.1) -> None:
        self._processes = dict(processes)
        self._interval = interval
        self.peaks = dict.fromkeys(self._processes, 0)
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)

    def _sample(self) -> None:
        for name, process in self._processes.items():
            with contextlib.suppress(psutil.Error):
                self.peaks[name] = max(self.peaks[name], process.memory_info().rss)
        self.samples += 1

    def _run(self) -> None:
        while not self._stop.is_set():
            self._sample()
            self._stop.wait(self._interval)

    def __enter__(self) -> MemorySampler:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join()
        self._sample()


class CpuMeter:
    """CPU seconds (user + system) used by groups of processes over a phase."""

    def __init__(self, groups: Mapping[str, Sequence[psutil.Process]]) -> None:
        self._groups = {name: list(processes) for name, processes in groups.items()}

    def snapshot(self) -> dict[str, float]:
        totals: dict[str, float] = {}
        for name, processes in self._groups.items():
            total = 0.0
            for process in processes:
                with contextlib.suppress(psutil.Error):
                    times = process.cpu_times()
                    total += times.user + times.system
            totals[name] = total
        return totals

    @contextlib.contextmanager
    def measure(self, into: dict[str, float], phase: str) -> Iterator[dict[str, float]]:
        """Adds, in percent of one CPU over the phase's wall time, ``{group}_cpu_{phase}_pct``
        for each group, ``other_cpu_{phase}_pct`` (the machine's busy time not spent by the
        groups: other processes, the kernel's own work) and ``iowait_{phase}_pct``. The
        yielded dict is filled at the end with each group's CPU seconds and their sum
        (``"all"``): CPU spent per byte or per request hardly depends on what else runs
        on the machine, unlike the rates."""
        spent: dict[str, float] = {}
        before, started = self.snapshot(), time.perf_counter()
        machine_before = psutil.cpu_times()
        yield spent
        after, wall = self.snapshot(), time.perf_counter() - started
        machine_after = psutil.cpu_times()
        for name in self._groups:
            spent[name] = after[name] - before[name]
            into[f"{name}_cpu_{phase}_pct"] = 100 * spent[name] / wall
        spent["all"] = sum(spent.values())
        busy = _busy(machine_after) - _busy(machine_before)
        into[f"other_cpu_{phase}_pct"] = max(0.0, 100 * (busy - spent["all"]) / wall)
        iowait = getattr(machine_after, "iowait", 0.0) - getattr(machine_before, "iowait", 0.0)
        into[f"iowait_{phase}_pct"] = 100 * iowait / wall


def _busy(times: Any) -> float:
    """CPU seconds the machine ran processes (user, nice, system) or lost to other
    virtual machines (steal); interrupt time is left out, as loopback traffic, ours
    included, is processed there."""
    return sum(getattr(times, field, 0.0) for field in ("user", "nice", "system", "steal"))


def machine_load(seconds: float = 1.0, top: int = 3) -> tuple[float, list[str]]:
    """CPU used by processes other than this one and its children over ``seconds``, in
    percent of one CPU, and the busiest of them: a busy machine understates every figure."""
    mine = {os.getpid(), *(child.pid for child in psutil.Process().children(recursive=True))}
    processes = [p for p in psutil.process_iter(["pid", "name", "cmdline"]) if p.pid not in mine]
    for process in processes:
        with contextlib.suppress(psutil.Error):
            process.cpu_percent(None)
    time.sleep(seconds)
    usage = []
    for process in processes:
        with contextlib.suppress(psutil.Error):
            usage.append((process.cpu_percent(None), process))
    usage.sort(key=lambda item: -item[0])
    busiest = [
        f"{percent:.0f}% pid {process.pid} {_command(process)}"
        for percent, process in usage[:top]
        if percent >= 5
    ]
    return sum(percent for percent, _ in usage), busiest


def _command(process: psutil.Process) -> str:
    words = process.info.get("cmdline") or [process.info.get("name") or "?"]
    return " ".join(" ".join(words).split())[:100]
