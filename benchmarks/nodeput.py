"""One storage node alone: the CPU it spends per GiB of part bodies it receives.

``python -m benchmarks.nodeput [--parts 24] [--python PYTHONPATH]`` starts one
``s3lite node`` process on 127.0.0.1 (port picked by the kernel, data in a temporary
directory removed at the end), PUTs ``--parts`` parts of 64 MiB over one keep-alive
raw socket (one warm-up part first), and prints the node's user and system CPU
seconds per GiB (psutil), its minor page faults per GiB and the rate. The client is
a plain blocking socket, so nothing but the node's own receive path is measured: this
is the cleanest A/B for the server protocol and the writer (the full-path benchmark
shares two cores among nine processes). ``--python`` runs the node with another
``src`` tree first on its path (an A/B against another checkout). The node is
stopped by its PID.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time

import psutil

PART = 64 << 20
GiB = 1 << 30
SECRET = "benchmark-node-secret"


def _minor_faults(pid: int) -> int:
    with open(f"/proc/{pid}/stat") as stat:
        return int(stat.read().rsplit(")", 1)[1].split()[7])


def _put(sock: socket.socket, index: int, payload: bytes) -> None:
    head = (
        f"PUT /v1/sectors/{index % 360}/bench{index}-0-0 HTTP/1.1\r\nhost: node\r\n"
        f"authorization: Bearer {SECRET}\r\ncontent-length: {len(payload)}\r\n\r\n"
    )
    sock.sendall(head.encode())
    sock.sendall(payload)
    answer = b""
    while b"\r\n\r\n" not in answer:
        answer += sock.recv(65536)
    head_bytes, _, body = answer.partition(b"\r\n\r\n")
    if not head_bytes.startswith(b"HTTP/1.1 200"):
        raise RuntimeError(f"the node answered {head_bytes[:200]!r}")
    found = re.search(rb"content-length: (\d+)", head_bytes, re.IGNORECASE)
    length = int(found.group(1)) if found else 0
    while len(body) < length:
        body += sock.recv(65536)


def run(parts: int, src: str | None) -> dict[str, float]:
    env = dict(os.environ, S3LITE_CLUSTER_SECRET=SECRET)
    if src:
        env["PYTHONPATH"] = src
    data = tempfile.mkdtemp(prefix="s3lite-nodeput-")
    command = [sys.executable, "-m", "s3lite", "node", "--data-dir", data]
    command += ["--listen", "127.0.0.1:0", "--log-level", "warning"]
    node = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, text=True)
    try:
        assert node.stdout is not None
        line = node.stdout.readline()
        found = re.search(r"http://127\.0\.0\.1:(\d+)", line)
        if found is None:
            raise RuntimeError(f"the node did not print its address: {line!r}")
        process = psutil.Process(node.pid)
        payload = os.urandom(1 << 20) * (PART >> 20)
        with socket.create_connection(("127.0.0.1", int(found.group(1)))) as sock:
            _put(sock, parts, payload)  # warm-up: imports, first file, pool threads
            faults, before = _minor_faults(node.pid), process.cpu_times()
            start = time.perf_counter()
            for index in range(parts):
                _put(sock, index, payload)
            seconds = time.perf_counter() - start
            after = process.cpu_times()
            faults = _minor_faults(node.pid) - faults
    finally:
        node.terminate()
        node.wait()
        shutil.rmtree(data, ignore_errors=True)
    gib = parts * PART / GiB
    return {
        "user_s_per_gib": (after.user - before.user) / gib,
        "sys_s_per_gib": (after.system - before.system) / gib,
        "minor_faults_per_gib": faults / gib,
        "mb_per_s": parts * PART / seconds / 1e6,
    }


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.nodeput", description=__doc__)
    parser.add_argument("--parts", type=int, default=24, help="64 MiB parts to PUT")
    parser.add_argument("--python", help="a src directory to put first on the node's path")
    args = parser.parse_args()
    result = run(args.parts, args.python)
    total = result["user_s_per_gib"] + result["sys_s_per_gib"]
    print(
        f"node CPU s per GiB of parts: user {result['user_s_per_gib']:.2f} "
        f"sys {result['sys_s_per_gib']:.2f} total {total:.2f}; "
        f"minor faults/GiB {result['minor_faults_per_gib']:.0f}; {result['mb_per_s']:.0f} MB/s"
    )


if __name__ == "__main__":
    main()
