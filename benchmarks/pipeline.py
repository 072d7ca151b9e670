"""The gateway's upload pipeline alone, after the body has arrived: CPU per GiB.

    python -m benchmarks.pipeline [--mib N] [--repeats R]

A SegmentWriter (dealing, the hashing thread's MD5, Reed-Solomon parity 2, xxh3 per
part, the PartSender's channels) sends a body of 1.0625 MiB chunks (what the ASGI
layer hands over: sixteen-odd 64 KiB messages joined) through the real HTTP
transport (aiohttp) to eight null nodes: one uvloop process that reads each part
body and answers with its length, so no disk and no node CPU is measured. What is
printed is this process's CPU seconds (all threads, user + system) per GiB of body.

Why it exists: the full benchmark (``python -m benchmarks --phases large``) measures
gateway, nodes and client together, and on a two-core machine shared with other work
its per-process figures move by ±0.5 CPU-s/GiB from run to run; this one leaves out
the client, the server side and the disks, so an A/B of the pipeline code (run it
with ``PYTHONPATH`` pointing at each tree, alternately) shows differences of
0.1-0.2 CPU-s/GiB. The minimum of the repeats is the figure to compare: contention
only ever adds.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import time
from collections.abc import AsyncIterator, Sequence
from typing import Any, cast

import uvloop

from s3lite.receiver.checksums import Digester
from s3lite.receiver.upload import SegmentWriter
from s3lite.transport.http import HttpNodeClient, HttpTransport

CHUNK = 17 * 65536
UNIT = 1 << 20
PARTS = 8
"""Six data parts and two parity parts."""
GIB = 1 << 30


class NullNode(asyncio.Protocol):
    """Reads one part body at a time (Content-Length framing) and answers as a node
    does: the JSON of a PartStat."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        self.head = b""
        self.left: int | None = None
        self.total = 0
        self.path: list[bytes] = []

    def data_received(self, data: bytes) -> None:
        if self.left is None:
            self.head += data
            if b"\r\n\r\n" not in self.head:
                return
            head, _, data = self.head.partition(b"\r\n\r\n")
            lines = head.split(b"\r\n")
            self.path = lines[0].split(b" ")[1].split(b"/")
            length = next(line for line in lines if line.lower().startswith(b"content-length"))
            self.left = self.total = int(length.split(b":")[1])
            self.head = b""
        self.left -= len(data)
        if self.left == 0:
            stat = {
                "name": self.path[-1].decode(),
                "sector": int(self.path[-2]),
                "length": self.total,
            }
            body = json.dumps(stat).encode()
            self.transport.write(
                b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
                b"content-length: %d\r\n\r\n%s" % (len(body), body)
            )
            self.left = None


async def serve(ready: int) -> None:
    server = await asyncio.get_running_loop().create_server(NullNode, "127.0.0.1", 0)
    os.write(ready, b"%d\n" % server.sockets[0].getsockname()[1])
    await asyncio.Event().wait()  # until killed


class NullCluster:
    """What a SegmentWriter asks of the orchestrator and the routing view: part ``i``
    goes to sector ``i``, served by node ``n<i>``, every one the null node process."""

    def __init__(self, port: int) -> None:
        self.transport = HttpTransport()
        address = f"http://127.0.0.1:{port}"
        self.clients = {f"n{i}": self.transport.connect(address) for i in range(PARTS)}

    def client(self, node_id: str) -> HttpNodeClient:
        return self.clients[node_id]

    def write_owners(self, sector: int) -> list[str]:
        return [f"n{sector}"]

    def note_dual_write_failure(self, node_id: str, error: BaseException) -> None:
        raise AssertionError(f"no dual writes here: {node_id} {error}")


async def body(size: int, blocks: Sequence[bytes]) -> AsyncIterator[bytes]:
    sent = 0
    for number in range(-(-size // CHUNK)):
        block = blocks[number % len(blocks)][: size - sent]
        sent += len(block)
        yield block


async def write(cluster: NullCluster, size: int, blocks: Sequence[bytes]) -> None:
    loose = cast(Any, cluster)
    writer = SegmentWriter(
        loose, loose, "u" * 32, 0, range(PARTS), UNIT, Digester(None), expected_size=size
    )
    await writer.write(body(size, blocks), size)


async def measure(port: int, size: int, repeats: int) -> list[float]:
    cluster = NullCluster(port)
    blocks = [os.urandom(CHUNK) for _ in range(16)]
    figures = []
    try:
        await write(cluster, 8 << 20, blocks)  # connections made, code paths warm
        for _ in range(repeats):
            before, start = os.times(), time.perf_counter()
            await write(cluster, size, blocks)
            after, elapsed = os.times(), time.perf_counter() - start
            user, system = after.user - before.user, after.system - before.system
            figures.append((user + system) / (size / GIB))
            print(
                f"  {figures[-1]:.2f} CPU-s/GiB (user {user / (size / GIB):.2f}, "
                f"system {system / (size / GIB):.2f}), {size / elapsed / 1e6:.0f} MB/s",
                flush=True,
            )
    finally:
        await cluster.transport.aclose()
    return figures


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.pipeline", description=__doc__)
    parser.add_argument("--mib", type=int, default=512, help="body size (default 512)")
    parser.add_argument("--repeats", type=int, default=3)
    options = parser.parse_args(argv)
    ready_read, ready_write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the null nodes
        uvloop.run(serve(ready_write))
        os._exit(0)
    try:
        port = int(os.read(ready_read, 100))
        figures = uvloop.run(measure(port, options.mib << 20, options.repeats))
        print(f"min {min(figures):.2f} CPU-s/GiB (gateway pipeline, parity 2)")
    finally:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)


if __name__ == "__main__":
    main()
