"""The service benchmark: s3lite as separate processes on loopback, driven over HTTP.

One ``s3lite gateway`` (``--parity 2``) and eight ``s3lite node`` processes are started
on 127.0.0.1
(ports picked by the kernel, data under a temporary directory that is removed at the
end, every process stopped by its PID: see tests/processes.py). The client is aiohttp
on uvloop in this process; it generates the payload chunk by chunk (16 random 1 MiB
blocks in turn) and never holds a large object, and it checks every download with
xxh3 against the payload it sent.

Measured, in this order:

1. The physical baseline (benchmarks/baseline.py): the same bytes, in the same chunks,
   through one loopback socket into a file (fsynced), and back from the file through a
   socket into a reader process.
2. The client's own ceiling: the same client code against a null app on the gateway's
   server stack (uvicorn + httptools + uvloop), so that the gateway's figure can be
   judged against what the client could have done.
3. One large object (1 GiB) up and down through the gateway, with peak resident memory
   of the gateway and the nodes sampled every 100 ms, and the CPU each process used:
   first with parity 0 (``x-amz-storage-class: REDUCED_REDUNDANCY``, six parts), then
   with parity 2 (STANDARD, eight parts), side by side in one run; then the parity-2
   upload again with its payload signed (the SHA-256 known before the clock).
   Then the boto3 figures (benchmarks/boto.py): put_object / get_object of the large
   object, 1 MiB put_object and 8 MiB multipart uploads, unsigned then signed payload.
4. 1 MiB objects: PUT then GET throughput with 8 concurrent keep-alive clients, after a
   warm-up.
5. 4 KiB objects: latency (p50, p99) of GETs from 8 concurrent keep-alive clients.
6. Faults (benchmarks/faults.py): the 4 KiB GET latency with one node stopped (SIGSTOP)
   against the healthy one, then the parity-2 large object read with two of the nodes
   holding its data parts killed.

MB is 10^6 bytes throughout (as in the Swift figures quoted beside the results).
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import anyio.abc
import anyio.to_thread
import attrs
import psutil
from tests.processes import Server, running
from tests.s3sign import SignedSession

from benchmarks import boto, faults
from benchmarks.baseline import CHUNK, blocks, stream_digest
from benchmarks.client import (
    PHASE_TIMEOUT,
    RequestFailed,
    check_status,
    concurrently,
    download,
    percentile,
    rate,
    session,
    stream_sha256,
    upload,
)
from benchmarks.monitor import CpuMeter, MemorySampler, machine_load
from benchmarks.profiling import Profiler

ROOT = Path(__file__).resolve().parent.parent
MIB = 1 << 20
NODES = 8
PARITY = 2
BUCKET = "bench"
READY_TIMEOUT = 30.0
PHASES = frozenset(("baseline", "ceiling", "large-p0", "large", "boto", "mib", "small", "faults"))
BUSY = 25.0
"""Percent of one CPU used by other processes above which the run is flagged."""


@attrs.frozen
class Options:
    """What to run; ``quick`` picks the smoke-test sizes."""

    large_bytes: int = 1 << 30
    ceiling_bytes: int = 512 << 20
    mib_objects: int = 400
    small_gets: int = 2000
    small_objects: int = 256
    clients: int = 8
    warmup: int = 16
    profile_dir: Path | None = None
    stripe_unit: int | None = None
    """Passed to the gateway (--stripe-unit); None keeps its default (1 MiB)."""
    boto_objects: int = 200
    boto_multipart_objects: int = 32
    phases: frozenset[str] = PHASES
    """The parts to run (``--phases``; all by default): a subset makes iterating on one
    figure quick. ``faults`` needs ``large``."""

    @classmethod
    def quick(cls, profile_dir: Path | None = None) -> Options:
        return cls(
            large_bytes=128 << 20,
            ceiling_bytes=128 << 20,
            mib_objects=64,
            small_gets=400,
            small_objects=64,
            warmup=8,
            boto_objects=48,
            boto_multipart_objects=8,
            profile_dir=profile_dir,
        )


# -- the baseline processes ----------------------------------------------------------------


@attrs.define
class Listener:
    """A listening baseline role: its process, its port, and (once it has ended) the
    JSON line it printed last."""

    process: anyio.abc.Process
    port: int
    result: dict[str, Any] = attrs.field(factory=dict)


@asynccontextmanager
async def baseline_listener(*args: str) -> AsyncIterator[Listener]:
    """Start ``python -m benchmarks.baseline ARGS`` (a listening role) and wait for it to
    end after the block (killing it at once if the block fails)."""
    command = [sys.executable, "-m", "benchmarks.baseline", *args]
    process = await anyio.open_process(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=None)
    try:
        assert process.stdout is not None
        seen = b""
        with anyio.fail_after(READY_TIMEOUT):
            while b"\n" not in seen:
                seen += await process.stdout.receive()
        first, _, seen = seen.partition(b"\n")
        listener = Listener(process, int(first.rsplit(b" ", 1)[1]))
        yield listener
        with anyio.fail_after(PHASE_TIMEOUT):
            async for data in process.stdout:
                seen += data
            await process.wait()  # it ends on its own once served (null-http: terminated)
        lines = seen.decode().splitlines()
        if lines and lines[-1].startswith("{"):
            listener.result = json.loads(lines[-1])
    finally:
        with anyio.CancelScope(shield=True):
            if process.returncode is None:
                process.kill()
                await process.wait()
            await process.aclose()


async def baseline_role(*args: str) -> dict[str, Any]:
    """Run a measuring role to its end; its JSON line."""
    command = [sys.executable, "-m", "benchmarks.baseline", *args]
    with anyio.fail_after(PHASE_TIMEOUT):
        result = await anyio.run_process(command, cwd=ROOT, stderr=None)
    value: dict[str, Any] = json.loads(result.stdout.decode().strip().splitlines()[-1])
    return value


async def physical_baseline(workdir: Path, size: int, digest: int) -> dict[str, float]:
    path = str(workdir / "baseline.bin")
    chunk = str(CHUNK)
    async with baseline_listener("sink", "--path", path, "--chunk", chunk) as sink:
        port = str(sink.port)
        up = await baseline_role("push", "--port", port, "--size", str(size), "--chunk", chunk)
    async with baseline_listener("serve-file", "--path", path, "--chunk", chunk) as server:
        down = await baseline_role("fetch", "--port", str(server.port), "--chunk", chunk)
    if down["bytes"] != size or down["digest"] != digest:
        raise RuntimeError("the baseline read back other bytes than it wrote")
    await anyio.Path(path).unlink()
    gib = size / (1 << 30)
    up_cpu = up["cpu_seconds"] + sink.result.get("cpu_seconds", float("nan"))
    down_cpu = down["cpu_seconds"] + server.result.get("cpu_seconds", float("nan"))
    return {
        "baseline_upload_mb_s": rate(size, up["seconds"]),
        "baseline_download_mb_s": rate(size, down["seconds"]),
        "baseline_cpu_s_per_gib_upload": up_cpu / gib,
        "baseline_cpu_s_per_gib_download": down_cpu / gib,
    }


async def client_ceiling(options: Options, pattern: list[bytes]) -> dict[str, float]:
    """The client against a null app on the gateway's server stack."""
    size = min(options.ceiling_bytes, options.large_bytes)
    digest = stream_digest(size, pattern)
    async with baseline_listener("null-http", "--chunk", str(CHUNK)) as server:
        url = f"http://127.0.0.1:{server.port}/null"
        try:
            async with session() as client:
                up = await upload(client, url, size, pattern)
                down = await download(client, f"{url}?size={size}", size, digest)
        finally:
            server.process.terminate()
    return {
        "client_ceiling_upload_mb_s": rate(size, up),
        "client_ceiling_download_mb_s": rate(size, down),
    }


# -- the cluster ---------------------------------------------------------------------------


@attrs.frozen
class Cluster:
    gateway: Server
    nodes: tuple[Server, ...]
    workdir: Path

    @property
    def url(self) -> str:
        return self.gateway.url


@asynccontextmanager
async def cluster(workdir: Path, stripe_unit: int | None = None) -> AsyncIterator[Cluster]:
    """Eight nodes and a gateway (parity 2) over them, as processes; stopped by PID at
    the end. A server's stderr is in workdir/logs; the gateway's tail is printed on
    failure."""
    logs = workdir / "logs"
    async with AsyncExitStack() as stack:
        nodes = []
        for number in range(NODES):
            data = workdir / f"node-{number}"
            node = await stack.enter_async_context(
                running(
                    "node",
                    "--data-dir",
                    data,
                    "--listen",
                    "127.0.0.1:0",
                    log=logs / f"node-{number}.log",
                )
            )
            nodes.append(node)
        addresses = [arg for node in nodes for arg in ("--node", node.url)]
        addresses += ["--parity", str(PARITY)]
        if stripe_unit is not None:
            addresses += ["--stripe-unit", str(stripe_unit)]
        gateway = await stack.enter_async_context(
            running(
                "gateway",
                "--data-dir",
                workdir / "gateway",
                "--listen",
                "127.0.0.1:0",
                *addresses,
                log=logs / "gateway.log",
            )
        )
        try:
            yield Cluster(gateway, tuple(nodes), workdir)
        except BaseException:
            for log in [gateway.log, *(node.log for node in nodes)]:
                text = log.read_text(errors="replace")[-3000:]
                if text.strip():
                    print(f"--- {log.name} (tail) ---\n{text}", file=sys.stderr)
            raise


# -- the measurements ----------------------------------------------------------------------


@attrs.define
class Rig:
    """The running cluster and what watches it during a phase."""

    servers: Cluster
    profiler: Profiler
    cpu: CpuMeter
    gateway: psutil.Process
    nodes: list[psutil.Process]

    @classmethod
    def of(cls, servers: Cluster, profile_dir: Path | None) -> Rig:
        gateway = psutil.Process(servers.gateway.process.pid)
        nodes = [psutil.Process(node.process.pid) for node in servers.nodes]
        targets = {"gateway": gateway.pid, "node-0": nodes[0].pid}
        cpu = CpuMeter({"client": [psutil.Process()], "gateway": [gateway], "nodes": nodes})
        return cls(servers, Profiler(profile_dir, targets), cpu, gateway, nodes)

    @asynccontextmanager
    async def phase(self, name: str, figures: dict[str, float]) -> AsyncIterator[dict[str, float]]:
        """Profile (if asked) and meter the CPU of the block; see CpuMeter.measure."""
        async with self.profiler.phase(name):
            with self.cpu.measure(figures, name.replace("-", "_")) as spent:
                yield spent


LARGE_KEY = "large-object"
"""The parity-2 large object, kept for the degraded read at the end (faults.py)."""


async def large_object(
    options: Options, rig: Rig, pattern: list[bytes], digest: int, parity: int
) -> dict[str, float]:
    """The large object up and down with ``parity`` 0 (REDUCED_REDUNDANCY, deleted
    after) or 2 (STANDARD, kept); figures of parity 0 end in ``_p0``."""
    size = options.large_bytes
    gib = size / (1 << 30)
    suffix = "_p0" if parity == 0 else ""
    figures: dict[str, float] = {}
    if parity:
        figures["gateway_idle_rss_mib"] = rig.gateway.memory_info().rss / MIB
        figures["node_idle_rss_mib"] = max(node.memory_info().rss for node in rig.nodes) / MIB
    headers = {} if parity else {"x-amz-storage-class": "REDUCED_REDUNDANCY"}
    watched = {"gateway": rig.gateway, **{f"node-{n}": node for n, node in enumerate(rig.nodes)}}
    url = f"{rig.servers.url}/{BUCKET}/{LARGE_KEY if parity else 'large-p0'}"
    with MemorySampler(watched) as memory:
        async with session() as client:
            async with rig.phase(f"upload{suffix}", figures) as spent:
                with anyio.fail_after(PHASE_TIMEOUT):
                    up = await upload(client, url, size, pattern, headers)
            figures[f"cpu_s_per_gib_upload{suffix}"] = spent["all"] / gib
            for group in ("client", "gateway", "nodes"):
                figures[f"{group}_cpu_s_per_gib_upload{suffix}"] = spent[group] / gib
            async with rig.phase(f"download{suffix}", figures) as spent:
                with anyio.fail_after(PHASE_TIMEOUT):
                    down = await download(client, url, size, digest)
            figures[f"cpu_s_per_gib_download{suffix}"] = spent["all"] / gib
            figures[f"servers_cpu_s_per_gib_download{suffix}"] = (
                spent["all"] - spent["client"]
            ) / gib
            if not parity:
                async with client.delete(url) as response:
                    await check_status(response, 204)
            else:
                figures.update(await signed_upload(options, rig, client, pattern))
    figures[f"upload_mb_s{suffix}"] = rate(size, up)
    figures[f"download_mb_s{suffix}"] = rate(size, down)
    figures[f"gateway_peak_rss_mib{suffix}"] = memory.peaks["gateway"] / MIB
    figures[f"node_peak_rss_mib{suffix}"] = (
        max(memory.peaks[f"node-{n}"] for n in range(NODES)) / MIB
    )
    figures[f"rss_samples{suffix}"] = memory.samples
    return figures


SIGNED_ORDER = ("unsigned", "signed", "signed", "unsigned")
"""The uploads that measure a signature's cost, in this order (ABBA): both kinds run in
the same state of the machine and of the nodes' page cache (a third 1 GiB in the
cache made the first signed upload about 5% slower than an unsigned one there), and
a drift of the machine's speed during the four cancels out."""


async def signed_upload(
    options: Options, rig: Rig, client: SignedSession, pattern: list[bytes]
) -> dict[str, float]:
    """The parity-2 large upload with its payload signed (x-amz-content-sha256 = the
    hex SHA-256, computed before the clock, as a client that knows its file's hash
    sends it) against the same upload unsigned, beside it (SIGNED_ORDER): what
    checking the signature costs the gateway alone (boto3.py measures it with the
    client's own hashing on this machine). Each object is deleted after its upload."""
    size = options.large_bytes
    gib = size / (1 << 30)
    digest = await anyio.to_thread.run_sync(stream_sha256, size, pattern)
    figures: dict[str, float] = {}
    rates: dict[str, list[float]] = {"signed": [], "unsigned": []}
    spent_signed = {"all": 0.0, "gateway": 0.0}
    for number, kind in enumerate(SIGNED_ORDER):
        url = f"{rig.servers.url}/{BUCKET}/large-{kind}-{number}"
        payload = digest if kind == "signed" else None
        async with rig.phase(f"upload-{kind}-{number}", figures) as spent:
            with anyio.fail_after(PHASE_TIMEOUT):
                seconds = await upload(client, url, size, pattern, payload=payload)
        async with client.delete(url) as response:
            await check_status(response, 204)
        rates[kind].append(rate(size, seconds))
        if kind == "signed":
            for group in spent_signed:
                spent_signed[group] += spent[group]
    figures["upload_mb_s_signed"] = statistics.mean(rates["signed"])
    figures["upload_mb_s_unsigned_beside"] = statistics.mean(rates["unsigned"])
    count = SIGNED_ORDER.count("signed")
    figures["cpu_s_per_gib_upload_signed"] = spent_signed["all"] / count / gib
    figures["gateway_cpu_s_per_gib_upload_signed"] = spent_signed["gateway"] / count / gib
    return figures


def per_request(figures: dict[str, float], phase: str, spent: dict[str, float], count: int) -> None:
    """CPU milliseconds per request of a phase: all processes, and the gateway's share."""
    figures[f"cpu_ms_per_{phase}"] = 1000 * spent["all"] / count
    figures[f"gateway_cpu_ms_per_{phase}"] = 1000 * spent["gateway"] / count


async def mib_objects(
    options: Options, rig: Rig, clients: Sequence[SignedSession]
) -> dict[str, float]:
    """PUT, then GET, ``mib_objects`` objects of 1 MiB, 8 clients at once."""
    pattern = blocks(MIB)
    base = f"{rig.servers.url}/{BUCKET}/mib"
    count = options.mib_objects

    def putter(prefix: str) -> Callable[[SignedSession, int], Awaitable[None]]:
        async def put(client: SignedSession, number: int) -> None:
            body = pattern[number % len(pattern)]
            async with client.put(f"{base}/{prefix}{number:05d}", data=body) as response:
                await check_status(response)
                await response.read()

        return put

    def getter(prefix: str) -> Callable[[SignedSession, int], Awaitable[None]]:
        async def get(client: SignedSession, number: int) -> None:
            async with client.get(f"{base}/{prefix}{number:05d}") as response:
                await check_status(response)
                body = await response.read()
            if body != pattern[number % len(pattern)]:
                raise RequestFailed(f"GET {base}/{prefix}{number:05d}: other bytes than PUT")

        return get

    figures: dict[str, float] = {}
    await concurrently(clients, options.warmup, putter("warm-"))
    async with rig.phase("put-1mib", figures) as spent:
        put_seconds, _ = await concurrently(clients, count, putter("obj-"))
    per_request(figures, "put_1mib", spent, count)
    await concurrently(clients, options.warmup, getter("warm-"))
    async with rig.phase("get-1mib", figures) as spent:
        get_seconds, _ = await concurrently(clients, count, getter("obj-"))
    per_request(figures, "get_1mib", spent, count)
    figures["small_put_objects_s"] = count / put_seconds
    figures["small_get_objects_s"] = count / get_seconds
    return figures


async def small_gets(
    options: Options, rig: Rig, clients: Sequence[SignedSession]
) -> dict[str, float]:
    """Latency of GETs of 4 KiB objects, 8 keep-alive clients at once."""
    body = blocks(4096, 1)[0]
    base = f"{rig.servers.url}/{BUCKET}/small"
    objects = options.small_objects

    async def put(client: SignedSession, number: int) -> None:
        async with client.put(f"{base}/{number:05d}", data=body) as response:
            await check_status(response)
            await response.read()

    async def get(client: SignedSession, number: int) -> None:
        async with client.get(f"{base}/{number % objects:05d}") as response:
            await check_status(response)
            if await response.read() != body:
                raise RequestFailed(f"GET {base}/{number % objects:05d}: other bytes than PUT")

    figures: dict[str, float] = {}
    await concurrently(clients, objects, put)
    await concurrently(clients, max(options.warmup, len(clients) * 10), get)
    async with rig.phase("get-4kib", figures) as spent:
        seconds, latencies = await concurrently(clients, options.small_gets, get)
    per_request(figures, "get_4kib", spent, options.small_gets)
    figures["small_get_p50_ms"] = 1000 * percentile(latencies, 0.50)
    figures["small_get_p99_ms"] = 1000 * percentile(latencies, 0.99)
    figures["small_get_mean_ms"] = 1000 * statistics.fmean(latencies)
    figures["small_get_4k_objects_s"] = options.small_gets / seconds
    return figures


async def run(options: Options) -> tuple[dict[str, float], list[str]]:
    """Everything but the ring lookups; the flat figures and any profile summary."""
    pattern = blocks()
    size = options.large_bytes
    digest = stream_digest(size, pattern)
    figures: dict[str, float] = {
        "large_object_mib": size / MIB,
        "mib_objects": options.mib_objects,
        "small_gets": options.small_gets,
        "clients": options.clients,
    }
    load, busiest = await anyio.to_thread.run_sync(machine_load)
    figures["other_cpu_before_pct"] = load
    if load > BUSY:
        print(f"warning: other processes use {load:.0f}% of a CPU; the figures will be low:")
        print("\n".join(f"  {line}" for line in busiest))
    with tempfile.TemporaryDirectory(prefix="s3lite-bench-") as directory:
        workdir = Path(directory)
        started = time.perf_counter()
        phases = options.phases
        if "baseline" in phases:
            print(f"baseline: {size / MIB:.0f} MiB through a loopback socket into a file and back")
            figures.update(await physical_baseline(workdir, size, digest))
        if "ceiling" in phases:
            print("client ceiling: the same client against a null app on uvicorn")
            figures.update(await client_ceiling(options, pattern))
        print(f"starting {NODES} nodes and a gateway under {workdir}")
        async with cluster(workdir, options.stripe_unit) as servers:
            async with session() as client, client.put(f"{servers.url}/{BUCKET}") as response:
                await check_status(response)
            rig = Rig.of(servers, options.profile_dir)
            for parity, phase in ((0, "large-p0"), (PARITY, "large")):
                if phase in phases:
                    print(f"large object: {size / MIB:.0f} MiB up and down, parity {parity}")
                    figures.update(await large_object(options, rig, pattern, digest, parity))
            if "boto" in phases:
                print(
                    f"boto3, unsigned then signed payload: {size / MIB:.0f} MiB put_object and "
                    f"get_object, {options.boto_objects} x 1 MiB put_object and "
                    f"{options.boto_multipart_objects} x 8 MiB multipart, "
                    f"{options.clients} threads"
                )
                sizes = boto.Sizes(
                    size, options.boto_objects, options.boto_multipart_objects, options.clients
                )
                figures.update(
                    await boto.measure(
                        servers.url,
                        BUCKET,
                        sizes,
                        pattern,
                        digest,
                        lambda name: rig.phase(name, figures),
                    )
                )
            async with AsyncExitStack() as stack:
                clients = [
                    await stack.enter_async_context(session()) for _ in range(options.clients)
                ]
                if "mib" in phases:
                    print(
                        f"1 MiB objects: {options.mib_objects} PUTs, then GETs, "
                        f"{len(clients)} clients"
                    )
                    figures.update(await mib_objects(options, rig, clients))
                if "small" in phases:
                    print(f"4 KiB objects: {options.small_gets} GETs, {len(clients)} clients")
                    figures.update(await small_gets(options, rig, clients))
                if "faults" in phases and "small" in phases:
                    print("4 KiB GETs with a node stopped (SIGSTOP), against healthy ones")
                    small = f"{servers.url}/{BUCKET}/small"
                    figures.update(await faults.stopped_node(options, rig, clients, small))
            if "faults" in phases and "large" in phases:
                print("large object read with two of the nodes holding its data parts killed")
                key = f"{BUCKET}/{LARGE_KEY}"
                figures.update(await faults.degraded_download(options, rig, key, digest))
        figures["service_seconds"] = time.perf_counter() - started
    return figures, rig.profiler.summary()
