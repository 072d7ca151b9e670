"""Start and stop ``s3lite`` server processes for tests.

Every server listens on 127.0.0.1 (port 0: the kernel picks one) and prints
``listening on http://...`` when it accepts connections; :func:`running` waits for that
line (bounded), keeps draining stdout so the child never blocks on it, and stops the
process by its PID when the block ends: SIGTERM, then SIGKILL if it has not exited
within the grace period. stderr goes to a log file next to the data, which is shown
when a server fails to start.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import anyio
import anyio.abc
import attrs

from tests.s3sign import ROOT_ENV

READY = re.compile(rb"listening on (http://\S+)")
START_TIMEOUT = 30.0
STOP_GRACE = 15.0


@attrs.define
class Server:
    """A running ``s3lite`` process."""

    process: anyio.abc.Process
    url: str
    log: Path

    @property
    def port(self) -> int:
        return int(self.url.rsplit(":", 1)[1])

    async def kill(self) -> None:
        """SIGKILL: the process dies at once, mid-whatever (a crash)."""
        if self.process.returncode is None:
            self.process.send_signal(signal.SIGKILL)
            with anyio.fail_after(STOP_GRACE):
                await self.process.wait()

    async def stop(self) -> int:
        """SIGTERM and wait (SIGKILL after the grace period); returns the exit code."""
        if self.process.returncode is None:
            self.process.terminate()
            with anyio.move_on_after(STOP_GRACE):
                return await self.process.wait()
            await self.kill()
        assert self.process.returncode is not None
        return self.process.returncode


async def _drain(stream: anyio.abc.ByteReceiveStream) -> None:
    async for _ in stream:
        pass


@asynccontextmanager
async def running(*args: str | Path, log: Path) -> AsyncIterator[Server]:
    """Run ``python -m s3lite ARGS`` until the block ends; a gateway gets the test root
    key (tests/s3sign.py) from the environment."""
    command = [sys.executable, "-m", "s3lite", *map(str, args)]
    env = {**os.environ, **ROOT_ENV}
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as log_file:  # noqa: ASYNC230 - a local log file, opened once
        process = await anyio.open_process(
            command, stdout=subprocess.PIPE, stderr=log_file, env=env
        )
    server = None
    try:
        assert process.stdout is not None
        seen = b""
        with anyio.fail_after(START_TIMEOUT):
            while (match := READY.search(seen)) is None:
                try:
                    seen += await process.stdout.receive()
                except anyio.EndOfStream:
                    raise RuntimeError(
                        f"{' '.join(command)} exited before listening:\n{log.read_text()}"  # noqa: ASYNC240
                    ) from None
        server = Server(process, match[1].decode(), log)
        async with anyio.create_task_group() as group:
            group.start_soon(_drain, process.stdout)
            try:
                yield server
            finally:
                with anyio.CancelScope(shield=True):
                    await server.stop()
                group.cancel_scope.cancel()
    finally:
        with anyio.CancelScope(shield=True):
            if process.returncode is None:
                process.kill()
                await process.wait()
            await process.aclose()
