"""Running s3lite's ASGI apps as servers: uvicorn on a socket we bind ourselves.

Binding first means ``--listen 127.0.0.1:0`` works (the kernel picks a port, and we
print the real one), and that clients can connect as soon as the address is printed.
uvicorn runs with httptools and uvloop (measured fastest, README), through
:mod:`s3lite.lean_http`, which takes request bodies off the socket with fewer copies; its graceful
shutdown on SIGINT/SIGTERM returns from :func:`serve`, and the callers' ``async
with`` blocks then close their state. One server can listen on several sockets, each
with its own app (the gateway's S3 port and its metrics listener). uvicorn logs
through s3lite's handler (s3lite.logs), never its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import signal
import socket
from collections.abc import Awaitable, Callable, Mapping
from types import FrameType
from typing import Any

import anyio
import uvicorn

from .allocator import tune_allocator
from .asgi import Receive, Scope, Send
from .buffers import ARENA
from .lean_http import LeanHttpProtocol
from .logs import configure, drop_unfinished_response_lines, quiet_loop_errors

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


def _address(sock: socket.socket) -> tuple[str, int]:
    host, port = sock.getsockname()[:2]
    return str(host), int(port)


class _ByListener:
    """Dispatches each connection to the app of the socket it arrived on."""

    def __init__(self, default: App, apps: Mapping[tuple[str, int], App]) -> None:
        self._default = default
        self._apps = dict(apps)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        server = scope.get("server")
        app = self._default
        if server is not None:
            app = self._apps.get((str(server[0]), int(server[1])), self._default)
        await app(scope, receive, send)


async def serve(
    app: App,
    sock: socket.socket,
    extra: Mapping[socket.socket, App] | None = None,
    *,
    keep_alive: int = DEFAULT_KEEP_ALIVE,
    arena: int = ARENA,
) -> None:
    """Serve ``app`` on ``sock`` (and each app of ``extra`` on its socket) until
    SIGINT or SIGTERM; idle connections are closed after ``keep_alive`` seconds, and
    request bodies are read into buffers of ``arena`` bytes."""
    tune_allocator()
    drop_unfinished_response_lines()
    served: App = app
    if extra:
        served = _ByListener(app, {_address(s): other for s, other in extra.items()})
    config = uvicorn.Config(
        served,
        # a BufferedProtocol (see lean_http), which uvicorn's types do not expect
        http=functools.partial(LeanHttpProtocol, arena=arena),  # type: ignore[arg-type]
        lifespan="off",
        access_log=False,
        log_config=None,
        log_level="warning",
        timeout_keep_alive=keep_alive,
    )
    await uvicorn.Server(config).serve(sockets=[sock, *(extra or {})])


def _terminate(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(0)


def run(
    main: Callable[[], Awaitable[Any]], *, log_format: str = "text", log_level: str = "info"
) -> None:
    """Run ``main`` on asyncio with uvloop, logging as asked; SIGTERM and Ctrl-C end
    it cleanly.

    uvicorn re-raises the signal that stopped it once it has shut down; the handler
    installed here turns that into SystemExit, so ``async with`` blocks still close.
    """
    configure(log_format, log_level)
    signal.signal(signal.SIGTERM, _terminate)

    async def logged() -> None:
        quiet_loop_errors(asyncio.get_running_loop())
        await main()

    with contextlib.suppress(KeyboardInterrupt):
        anyio.run(logged, backend="asyncio", backend_options={"use_uvloop": True})
