"""The ``s3lite`` command: run the embedded cluster, nodes and gateways; join; status.

    s3lite serve   [--listen 127.0.0.1:9000] [--data-dir ./data] [--nodes 6]
    s3lite node    --data-dir D --listen HOST:PORT [--node-id ID] [--reserve BYTES]
                   [--replaced] [--keep-alive SECONDS]
    s3lite gateway --data-dir D --listen HOST:PORT --node URL [--node URL ...]
    s3lite join    --gateway URL --node URL
    s3lite status  --gateway URL

Servers print ``... listening on http://HOST:PORT`` on stdout once they accept
connections (with ``:0`` the port is the one the kernel picked).
"""

from __future__ import annotations

import argparse
import json
import sys
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .cluster import Cluster, LocalCluster
from .orchestrator import POLICIES
from .receiver.gateway import GatewayApp
from .receiver.striping import DEFAULT_STRIPE_UNIT
from .service import DEFAULT_KEEP_ALIVE, bind, parse_listen, run, serve, url_of
from .storager import StorageNode
from .storager.node import DEFAULT_RESERVE
from .transport.http import HttpTransport
from .transport.http_node import NodeApp

DEFAULT_LISTEN = "127.0.0.1:9000"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="s3lite", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def cluster_options(command: argparse.ArgumentParser) -> None:
        command.add_argument("--policy", choices=sorted(POLICIES), default="fill",
                             help="join policy of a new cluster (default: fill)")  # fmt: skip
        command.add_argument("--stripe-unit", type=int, default=DEFAULT_STRIPE_UNIT,
                             help="bytes dealt to a part at a time (default: 1 MiB)")  # fmt: skip

    serve_cmd = commands.add_parser(
        "serve", help="gateway and storage nodes in one process (the embedded default)"
    )
    serve_cmd.add_argument("--listen", default=DEFAULT_LISTEN, help=f"default {DEFAULT_LISTEN}")
    serve_cmd.add_argument("--data-dir", type=Path, default=Path("data"), help="default ./data")
    serve_cmd.add_argument("--nodes", type=int, default=6, help="nodes of a new cluster (>= 6)")
    cluster_options(serve_cmd)

    node_cmd = commands.add_parser("node", help="one storage node")
    node_cmd.add_argument("--data-dir", type=Path, required=True)
    node_cmd.add_argument("--listen", required=True, help="HOST:PORT")
    node_cmd.add_argument("--node-id", help="id of a new node (default: random)")
    node_cmd.add_argument("--reserve", type=_bytes, default=DEFAULT_RESERVE, metavar="BYTES",
                          help="free space under which the node is full: it refuses new "
                          "parts and still serves reads (default 256 MiB; suffixes K, M, "
                          "G, T for KiB..TiB)")  # fmt: skip
    node_cmd.add_argument("--replaced", action="store_true",
                          help="the node's disk was lost: start node --node-id on an "
                          "empty data directory, marked replaced until it is rebuilt")  # fmt: skip
    node_cmd.add_argument("--keep-alive", type=int, default=DEFAULT_KEEP_ALIVE,
                          metavar="SECONDS", help="close idle connections after this long "
                          f"(default {DEFAULT_KEEP_ALIVE})")  # fmt: skip

    gateway_cmd = commands.add_parser("gateway", help="the HTTP gateway over remote nodes")
    gateway_cmd.add_argument("--data-dir", type=Path, required=True)
    gateway_cmd.add_argument("--listen", required=True, help="HOST:PORT")
    gateway_cmd.add_argument("--node", action="append", default=[], metavar="URL",
                             help="a node of a new cluster (six or more); a restarted "
                             "gateway takes its nodes from its data directory")  # fmt: skip
    cluster_options(gateway_cmd)

    join_cmd = commands.add_parser("join", help="add a running node to a cluster")
    join_cmd.add_argument("--gateway", required=True, metavar="URL")
    join_cmd.add_argument("--node", required=True, metavar="URL")

    status_cmd = commands.add_parser("status", help="nodes, arcs, usage and migrations")
    status_cmd.add_argument("--gateway", required=True, metavar="URL")
    status_cmd.add_argument("--json", action="store_true", help="print the raw JSON")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.command == "serve":
            run(lambda: _serve(args))
        elif args.command == "node":
            run(lambda: _node(args))
        elif args.command == "gateway":
            run(lambda: _gateway(args))
        elif args.command == "join":
            result = _admin(args.gateway, "join", {"node": args.node})
            print(f"node {result['node_id']} joined; its sectors have moved")
        else:
            _print_status(_admin(args.gateway, "status"), raw=args.json)
    except (ValueError, OSError) as exc:
        print(f"s3lite {args.command}: {exc}", file=sys.stderr)
        return 1
    return 0


async def _serve(args: argparse.Namespace) -> None:
    sock = bind(*parse_listen(args.listen))
    async with LocalCluster(
        args.data_dir, args.nodes, policy=args.policy, stripe_unit=args.stripe_unit
    ) as cluster:
        app = GatewayApp(cluster.receiver, cluster.buckets, cluster.orchestrator)
        url = url_of(sock)
        print(f"s3lite gateway listening on {url} ({len(cluster.nodes)} nodes in {args.data_dir})")
        print(f"  try: curl -X PUT {url}/demo && curl -T README.md {url}/demo/readme.md")
        print(f"       curl {url}/demo/readme.md", flush=True)
        await serve(app, sock)


async def _node(args: argparse.Namespace) -> None:
    sock = bind(*parse_listen(args.listen))
    node = await StorageNode.open(
        args.data_dir, args.node_id, reserve=args.reserve, replaced=args.replaced
    )
    state = " (replaced: empty until rebuilt)" if args.replaced else ""
    print(f"s3lite node {node.node_id} listening on {url_of(sock)}{state}", flush=True)
    await serve(NodeApp(node), sock, keep_alive=args.keep_alive)


_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}


def _bytes(text: str) -> int:
    """A byte count: digits, optionally followed by K, M, G or T (powers of 1024)."""
    number, unit = text.rstrip("KMGTkmgt"), text[len(text.rstrip("KMGTkmgt")) :].upper()
    if not number.isdigit() or unit not in _UNITS:
        raise argparse.ArgumentTypeError(f"expected a number of bytes like 512M, got {text!r}")
    return int(number) * _UNITS[unit]


async def _gateway(args: argparse.Namespace) -> None:
    sock = bind(*parse_listen(args.listen))
    cluster = Cluster(
        args.data_dir,
        HttpTransport(),
        args.node,
        policy=args.policy,
        stripe_unit=args.stripe_unit,
    )
    async with cluster:
        known = {info.address for info in cluster.orchestrator.topology.nodes}
        for address in set(args.node) - known:
            print(f"ignoring --node {address}: not in the cluster; use `s3lite join`")
        app = GatewayApp(cluster.receiver, cluster.buckets, cluster.orchestrator)
        print(f"s3lite gateway listening on {url_of(sock)}", flush=True)
        await serve(app, sock)


def _admin(gateway: str, route: str, payload: object = None) -> Any:
    url = f"{gateway.rstrip('/')}/_admin/{route}"
    data = None if payload is None else json.dumps(payload).encode()
    request = urllib.request.Request(url, data=data, method="POST" if data else "GET")
    request.add_header("content-type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=24 * 3600) as response:
            return json.loads(response.read())
    except urllib.error.HTTPError as exc:
        try:
            detail = json.loads(exc.read()).get("message", exc.reason)
        except ValueError:
            detail = exc.reason
        raise ValueError(f"{url}: {detail}") from None


def _print_status(status: dict[str, Any], *, raw: bool) -> None:
    if raw:
        print(json.dumps(status, indent=2))
        return
    print(f"policy {status['policy']}, topology generation {status['generation']}")
    print(f"{'node':<16} {'state':<8} {'sectors':>7} {'bytes':>14}  address / arcs")
    for node in status["nodes"]:
        size = "unreachable" if node["bytes"] is None else f"{node['bytes']:,}"
        print(
            f"{node['id']:<16} {node['state']:<8} {node['sectors']:>7} {size:>14}  "
            f"{node['address']}\n{'':<50}{' '.join(node['arcs'])}"
        )
    migration = status["migration"]
    if migration:
        print(
            f"migration: {migration['sectors']} sectors to {migration['node']} "
            f"({migration['phase']}) from {migration['donors']}"
        )


if __name__ == "__main__":
    sys.exit(main())
