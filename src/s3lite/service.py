"""Running s3lite's ASGI apps as servers: uvicorn on a socket we bind ourselves.

Binding first means ``--listen 127.0.0.1:0`` works (the kernel picks a port, and we
print the real one), and that clients can connect as soon as the address is printed.
uvicorn runs with httptools and uvloop (measured fastest, README); its graceful
shutdown on SIGINT/SIGTERM returns from :func:`serve`, and the callers' ``async
with`` blocks then close their state.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import socket
import sys
from collections.abc import Awaitable, Callable
from types import FrameType
from typing import Any

import anyio
import uvicorn

from .asgi import Receive, Scope, Send

App = Callable[[Scope, Receive, Send], Awaitable[None]]


def parse_listen(text: str) -> tuple[str, int]:
    """``HOST:PORT`` -> (host, port); raises ValueError naming the problem."""
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) < 65536:
        raise ValueError(f"--listen wants HOST:PORT (PORT 0 picks a free one), got {text!r}")
    return host.strip("[]"), int(port)


def bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(1024)
    sock.set_inheritable(True)
    return sock


def url_of(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


DEFAULT_KEEP_ALIVE = 30
"""Seconds an idle keep-alive connection stays open. The gateway's pool reuses
connections to nodes; the HTTP transport takes one only once it has bytes to send."""


async def serve(app: App, sock: socket.socket, *, keep_alive: int = DEFAULT_KEEP_ALIVE) -> None:
    """Serve ``app`` on ``sock`` until SIGINT or SIGTERM; idle connections are closed
    after ``keep_alive`` seconds."""
    config = uvicorn.Config(
        app,
        http="httptools",
        lifespan="off",
        access_log=False,
        log_level="warning",
        timeout_keep_alive=keep_alive,
    )
    await uvicorn.Server(config).serve(sockets=[sock])


def _terminate(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(0)


def run(main: Callable[[], Awaitable[Any]]) -> None:
    """Run ``main`` on asyncio with uvloop; SIGTERM and Ctrl-C end it cleanly.

    uvicorn re-raises the signal that stopped it once it has shut down; the handler
    installed here turns that into SystemExit, so ``async with`` blocks still close.
    """
    logging.basicConfig(
        level=logging.INFO,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    signal.signal(signal.SIGTERM, _terminate)
    with contextlib.suppress(KeyboardInterrupt):
        anyio.run(main, backend="asyncio", backend_options={"use_uvloop": True})
