"""The servers' allocator settings (s3lite.allocator): freed large buffers are used
again instead of being mapped afresh, page fault by page fault."""

from __future__ import annotations

import platform
import subprocess
import sys

import pytest

PROBE = """
import resource, sys
from s3lite.allocator import tune_allocator
if sys.argv[1] == "tuned":
    assert tune_allocator()
size = 40 << 20  # above glibc's largest dynamic mmap threshold (32 MiB)
source = bytes(size)
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(5):
    buffer = bytearray(size)
    buffer[:] = source
    del buffer
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def page_faults(mode: str) -> int:
    done = subprocess.run(
        [sys.executable, "-c", PROBE, mode], capture_output=True, text=True, check=True, timeout=60
    )
    return int(done.stdout)


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="the settings are glibc's")
def test_freed_large_buffers_are_reused_without_faulting_their_pages_again() -> None:
    pages = 5 * (40 << 20) // 4096
    default = page_faults("default")
    assert default > pages  # every buffer mapped afresh, every page faulted in
    assert page_faults("tuned") * 2 < default
