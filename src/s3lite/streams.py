"""Small async stream helpers shared by the receiver and the transports."""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterator
from contextlib import contextmanager

import anyio

from .buffers import Buffer
from .errors import EntityTooLarge, S3liteError

Body = bytes | bytearray | memoryview | AsyncIterable[Buffer]
"""What an upload accepts: the bytes themselves, or an async iterable of chunks."""

CHUNK = 1 << 20
"""Largest chunk cut from an in-memory body."""


async def iterate_body(body: Body, chunk: int = CHUNK) -> AsyncIterator[Buffer]:
    """``body`` as an async iterator of non-empty chunks of at most ``chunk`` bytes when
    it is in memory; an async iterable is passed through (empty chunks dropped)."""
    if isinstance(body, bytes | bytearray | memoryview):
        view = memoryview(body).cast("B")
        for start in range(0, len(view), chunk):
            yield bytes(view[start : start + chunk])
        return
    async for piece in body:
        if piece:
            yield piece


async def at_most(chunks: AsyncIterator[Buffer], limit: int, what: str) -> AsyncIterator[Buffer]:
    """``chunks``, raising EntityTooLarge ("``what`` is at most ``limit`` bytes") as soon
    as they pass ``limit`` bytes, before the chunk that passes it is handed on."""
    total = 0
    async for chunk in chunks:
        total += len(chunk)
        if total > limit:
            raise EntityTooLarge(f"{what} is at most {limit} bytes; the body is larger")
        yield chunk


@contextmanager
def single_error() -> Iterator[None]:
    """Re-raise a task group's ExceptionGroup as the one error that caused it.

    Task groups wrap failures in ExceptionGroup; callers of the object API want the
    typed error (NodeUnavailable, BodyLengthMismatch...) that started the failure,
    not the BrokenResourceError or cancellations it caused in sibling tasks.
    """
    try:
        yield
    except BaseExceptionGroup as group:
        raise _root_cause(group) from None


def root_cause(exc: BaseException) -> BaseException:
    """``exc``, or the one error that caused it if it is a task group's ExceptionGroup."""
    return _root_cause(exc) if isinstance(exc, BaseExceptionGroup) else exc


def _leaves(group: BaseExceptionGroup[BaseException]) -> Iterator[BaseException]:
    for exc in group.exceptions:
        if isinstance(exc, BaseExceptionGroup):
            yield from _leaves(exc)
        else:
            yield exc


def _root_cause(group: BaseExceptionGroup[BaseException]) -> BaseException:
    leaves = list(_leaves(group))
    consequences = (anyio.BrokenResourceError, anyio.ClosedResourceError)
    preferences: tuple[Callable[[BaseException], bool], ...] = (
        lambda exc: not isinstance(exc, Exception),  # KeyboardInterrupt, cancellation...
        lambda exc: isinstance(exc, S3liteError),
        lambda exc: not isinstance(exc, consequences),
    )
    for preferred in preferences:
        for exc in leaves:
            if preferred(exc):
                return exc
    return leaves[0]
