"""s3lite.buffers.uninitialized: buffers that reads fill, without zeroing them first."""

from __future__ import annotations

import os

import pytest
from hypothesis import given
from hypothesis import strategies as st

from s3lite.buffers import uninitialized


@given(st.binary(max_size=1 << 16))
def test_a_buffer_holds_what_is_written_into_it(data: bytes) -> None:
    buffer = uninitialized(len(data))
    assert type(buffer) is bytearray
    assert len(buffer) == len(data)
    memoryview(buffer)[:] = data
    assert buffer == data


@given(st.integers(min_value=1, max_value=1 << 20))
def test_buffers_do_not_share_memory(size: int) -> None:
    first, second = uninitialized(size), uninitialized(size)
    memoryview(first)[:] = b"\x01" * size
    memoryview(second)[:] = b"\x02" * size
    assert first == b"\x01" * size
    assert second == b"\x02" * size


def test_a_read_fills_it(tmp_path: os.PathLike[str]) -> None:
    path = os.path.join(tmp_path, "f")
    data = os.urandom(300_000)
    with open(path, "wb") as file:
        file.write(data)
    buffer = uninitialized(len(data))
    fd = os.open(path, os.O_RDONLY)
    try:
        assert os.preadv(fd, [buffer], 0) == len(data)
    finally:
        os.close(fd)
    assert buffer == data


def test_a_negative_size_is_refused() -> None:
    with pytest.raises(ValueError, match="negative"):
        uninitialized(-1)
