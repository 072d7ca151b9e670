"""Erasure-code libraries on PyPI, measured the way s3lite uses them.

    python -m benchmarks erasure [--unit-mib N] [--seconds S]

s3lite codes each stripe row of six data units (1 MiB each by default) into ``p``
parity units (p = 1..4) and, on a degraded read, rebuilds one or two missing data
units from any six of the ``6 + p``. For each candidate this prints:

* encode and decode throughput, in MB/s of row data (6 units) per second: encode
  computes the ``p`` parity units; decode rebuilds 1 or 2 missing data units from
  the remaining data units plus parity;
* whether a call releases the GIL, two ways: the same encodes in two threads at once
  against one thread (near 2 on a machine with two free cores means it does; near 1,
  it does not), on 64 KiB units so that memory bandwidth does not cap the figure;
  and how much pure-Python work another thread gets done meanwhile (near 1: it
  releases the GIL; 0.5 or less: it holds it). The second is the one to trust: two
  vCPUs that are hyperthreads of one core share its vector units, so SIMD code shows
  about 1 on the first whatever it does with the GIL;
* how the installed copy was built (its wheel tags): a ``manylinux ... x86_64``
  wheel installs with no compiler.

Candidates: ``zfec`` (Tahoe-LAFS), ``pyeclib`` (OpenStack's liberasurecode; its wheel
bundles ISA-L, measured through ``isa_l_rs_vand``, ``isa_l_rs_cauchy`` and the
portable ``liberasurecode_rs_vand``), ``reed-solomon-leopard`` (reed-solomon-simd,
an FFT code over GF(2^16)), and the one s3lite chose: ISA-L itself, from the
pyeclib wheel, called through ctypes by ``s3lite.erasure.Codec``. A library that is
not installed is listed as such; ``pip install zfec reed-solomon-leopard`` brings
the ones s3lite does not depend on. Figures are the best of several repeats, since
other processes on a shared machine can only make a run slower.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import os
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any, Protocol

DATA = 6
PARITIES = (1, 2, 3, 4)
MB = 1e6


class Candidate(Protocol):
    """One library, adapted to 'six units in, parity units out' and back."""

    label: str

    def encode(self, units: list[bytes], parity: int) -> Any:
        """Whatever the library returns for a row; :meth:`decode` is given it back."""
        ...

    def decode(self, units: list[bytes], encoded: Any, parity: int, missing: list[int]) -> None:
        """Rebuild the data units ``missing`` from the others and the parity."""
        ...


class Zfec:
    label = "zfec"

    def __init__(self) -> None:
        import zfec

        self._zfec = zfec
        self._encoders = {p: zfec.Encoder(DATA, DATA + p) for p in PARITIES}
        self._decoders = {p: zfec.Decoder(DATA, DATA + p) for p in PARITIES}

    def encode(self, units: list[bytes], parity: int) -> Any:
        return self._encoders[parity].encode(units, tuple(range(DATA, DATA + parity)))

    def decode(self, units: list[bytes], encoded: Any, parity: int, missing: list[int]) -> None:
        numbers = [i for i in range(DATA) if i not in missing] + [
            DATA + j for j in range(len(missing))
        ]
        blocks = [units[n] if n < DATA else encoded[n - DATA] for n in numbers]
        self._decoders[parity].decode(blocks, numbers)


class Leopard:
    label = "reed-solomon-leopard"

    def __init__(self) -> None:
        import reed_solomon_leopard

        self._rs = reed_solomon_leopard

    def encode(self, units: list[bytes], parity: int) -> Any:
        return self._rs.encode(units, parity)

    def decode(self, units: list[bytes], encoded: Any, parity: int, missing: list[int]) -> None:
        original = {i: units[i] for i in range(DATA) if i not in missing}
        recovery = {j: encoded[j] for j in range(len(missing))}
        self._rs.decode(DATA, parity, original, recovery)


class Isal:
    """s3lite's own codec: ISA-L's ``ec_encode_data`` called through ctypes (the copy
    of ISA-L in the pyeclib wheel), on six separate units, no headers, GIL released."""

    label = "ISA-L via ctypes (s3lite.erasure)"

    def __init__(self) -> None:
        from s3lite.erasure import Codec

        self._codecs = {p: Codec(p) for p in PARITIES}

    def encode(self, units: list[bytes], parity: int) -> Any:
        return self._codecs[parity].encode(units)

    def decode(self, units: list[bytes], encoded: Any, parity: int, missing: list[int]) -> None:
        available: dict[int, bytes] = {i: units[i] for i in range(DATA) if i not in missing}
        available.update({DATA + j: encoded[j] for j in range(len(missing))})
        self._codecs[parity].decode(available, missing)


class Pyeclib:
    """pyeclib's fragments carry an 80-byte header each, and it splits one buffer into
    six itself, so a row is joined first (that copy is part of what s3lite would pay)."""

    def __init__(self, ec_type: str) -> None:
        from pyeclib.ec_iface import ECDriver

        self.label = f"pyeclib {ec_type}"
        self._drivers = {p: ECDriver(k=DATA, m=p, ec_type=ec_type) for p in PARITIES}

    def encode(self, units: list[bytes], parity: int) -> Any:
        return self._drivers[parity].encode(b"".join(units))

    def decode(self, units: list[bytes], encoded: Any, parity: int, missing: list[int]) -> None:
        kept = [i for i in range(DATA) if i not in missing] + [
            DATA + j for j in range(len(missing))
        ]
        self._drivers[parity].reconstruct([encoded[i] for i in kept], missing)


def candidates() -> tuple[list[Candidate], list[str]]:
    """The candidates that import, and a note for each that does not."""
    found: list[Candidate] = []
    absent: list[str] = []
    makers: list[tuple[str, Callable[[], Candidate]]] = [
        ("zfec", Zfec),
        ("pyeclib isa_l_rs_vand", lambda: Pyeclib("isa_l_rs_vand")),
        ("pyeclib isa_l_rs_cauchy", lambda: Pyeclib("isa_l_rs_cauchy")),
        ("pyeclib liberasurecode_rs_vand", lambda: Pyeclib("liberasurecode_rs_vand")),
        ("reed-solomon-leopard", Leopard),
        ("ISA-L via ctypes", Isal),
    ]
    for label, make in makers:
        try:
            found.append(make())
        except Exception as exc:  # ImportError, or a backend the wheel lacks
            absent.append(f"{label}: not available ({type(exc).__name__}: {exc})")
    return found, absent


def best_seconds(call: Callable[[], object], seconds: float, least: int = 3) -> float:
    """The fastest of repeated calls, repeating for about ``seconds`` (at least ``least``)."""
    best = float("inf")
    deadline = time.perf_counter() + seconds
    runs = 0
    while runs < least or time.perf_counter() < deadline:
        started = time.perf_counter()
        call()
        best = min(best, time.perf_counter() - started)
        runs += 1
    return best


def gil_ratio(call: Callable[[], object], rounds: int) -> float:
    """Throughput of two threads running ``call`` at once over one thread, best of 3."""

    def loop() -> None:
        for _ in range(rounds):
            call()

    def timed(threads: int) -> float:
        workers = [threading.Thread(target=loop) for _ in range(threads)]
        started = time.perf_counter()
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
        return time.perf_counter() - started

    one = min(timed(1) for _ in range(3))
    two = min(timed(2) for _ in range(3))
    return 2 * one / two


def python_progress(call: Callable[[], object], seconds: float) -> float:
    """How much pure-Python work the main thread gets done while a second thread runs
    ``call`` in a loop, relative to the main thread alone (best of 3). Near 1: the
    library releases the GIL; 0.5 or less: it holds it. Unlike two threads coding at
    once, this is not capped by memory bandwidth."""

    def spin() -> int:
        count = 0
        deadline = time.perf_counter() + seconds
        while time.perf_counter() < deadline:
            count += 1
        return count

    alone = max(spin() for _ in range(3))
    shared = 0
    for _ in range(3):
        stop = threading.Event()

        def loop(stop: threading.Event = stop) -> None:
            while not stop.is_set():
                call()

        worker = threading.Thread(target=loop)
        worker.start()
        try:
            shared = max(shared, spin())
        finally:
            stop.set()
            worker.join()
    return shared / alone


def wheel_tags(distribution: str) -> str:
    try:
        wheel = importlib.metadata.distribution(distribution).read_text("WHEEL") or ""
    except importlib.metadata.PackageNotFoundError:
        return "not installed"
    tags = [line.split(":", 1)[1].strip() for line in wheel.splitlines() if line.startswith("Tag:")]
    return ", ".join(tags) or "built from source"


def measure(candidate: Candidate, unit: int, seconds: float) -> dict[str, float]:
    units = [os.urandom(unit) for _ in range(DATA)]
    row = DATA * unit / MB
    figures: dict[str, float] = {}
    for parity in PARITIES:
        encoded = candidate.encode(units, parity)
        figures[f"encode_{parity}"] = row / best_seconds(
            lambda p=parity: candidate.encode(units, p), seconds
        )
        for lost in (1, 2):
            if lost <= parity:
                missing = [1, 4][:lost]
                figures[f"decode{lost}_{parity}"] = row / best_seconds(
                    lambda p=parity, e=encoded, m=missing: candidate.decode(units, e, p, m),
                    seconds,
                )
    # 64 KiB units stay in the CPU's caches, so two threads are not capped by memory
    small = [unit[: 64 * 1024] for unit in units]
    rounds = max(3, int(figures["encode_2"] * MB * seconds / (DATA * len(small[0]))))
    figures["two_threads"] = gil_ratio(lambda: candidate.encode(small, 2), rounds)
    figures["python_progress"] = python_progress(lambda: candidate.encode(units, 2), seconds)
    return figures


def table(results: dict[str, dict[str, float]], unit: int) -> str:
    lines = [
        f"erasure codes, 6 data units of {unit / (1 << 20):g} MiB; MB/s of row data "
        "(6 units); best of repeats",
        "",
        f"{'library':<34} {'p':>2} {'encode':>9} {'decode 1':>9} {'decode 2':>9}",
    ]
    for label, figures in results.items():
        for parity in PARITIES:
            cells = [
                f"{figures[key]:>9,.0f}" if key in figures else f"{'-':>9}"
                for key in (f"encode_{parity}", f"decode1_{parity}", f"decode2_{parity}")
            ]
            lines.append(f"{label:<34} {parity:>2} {' '.join(cells)}")
    lines += [
        "",
        "GIL (encode, p=2): two threads' throughput over one thread (64 KiB units); and",
        "pure-Python progress of another thread while it encodes, relative to alone",
        f"{'library':<34} {'2 threads / 1':>14} {'Python progress':>16}",
    ]
    for label, figures in results.items():
        lines.append(
            f"{label:<34} {figures['two_threads']:>14.2f} {figures['python_progress']:>16.2f}"
        )
    return "\n".join(lines)


def main(argv: Sequence[str] = ()) -> dict[str, dict[str, float]]:
    parser = argparse.ArgumentParser(prog="python -m benchmarks erasure")
    parser.add_argument("--unit-mib", type=float, default=1.0, help="stripe unit (default 1)")
    parser.add_argument("--seconds", type=float, default=0.5, help="time per figure")
    args = parser.parse_args(list(argv))
    unit = int(args.unit_mib * (1 << 20))
    found, absent = candidates()
    results = {}
    for candidate in found:
        print(f"measuring {candidate.label} ...", flush=True)
        results[candidate.label] = measure(candidate, unit, args.seconds)
    print()
    print(table(results, unit))
    print()
    print(f"{os.cpu_count()} CPUs; wheels installed:")
    for distribution in ("zfec", "pyeclib", "reed-solomon-leopard"):
        print(f"  {distribution}: {wheel_tags(distribution)}")
    for note in absent:
        print(f"  {note}")
    return results
