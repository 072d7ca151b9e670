"""The ``s3lite`` command: run the embedded cluster, nodes and gateways; join; status.

    s3lite serve   [--listen 127.0.0.1:9000] [--data-dir ./data] [--nodes 8] [--parity 2]
                   [--domain D]
    s3lite node    --data-dir D --listen HOST:PORT [--node-id ID] [--reserve BYTES]
                   [--replaced] [--keep-alive SECONDS]
    s3lite gateway --data-dir D --listen HOST:PORT --node URL [--node URL ...] [--parity 2]
                   [--domain D]
    s3lite join    --gateway URL --node URL
    s3lite heal    --gateway URL [--node ID]
    s3lite status  --gateway URL [--watch [--interval S]] [--json]
    s3lite key     create [--name N] | list | delete KEY | allow|deny KEY BUCKET [--read] [--write]
    s3lite --version

The servers take ``--log-format text|json`` and ``--log-level``; ``serve`` and
``gateway`` take ``--metrics-listen HOST:PORT`` (Prometheus metrics and health checks
on a separate listener), ``--probe-interval`` (seconds between node probes),
``--heal-rate BYTES`` (what the healer writes per second at most) and
``--scrub-rate BYTES`` (part bytes per second its background scrub verifies).
``join`` and ``heal`` draw a progress bar on a terminal and prints one line per step otherwise;
``status --watch`` redraws until Ctrl-C. Output into a closed pipe (``| head``) ends
the command quietly.

Servers print ``... listening on http://HOST:PORT`` on stdout once they accept
connections (with ``:0`` the port is the one the kernel picked). A gateway's root key
comes from S3LITE_ROOT_USER/S3LITE_ROOT_PASSWORD, else from its data directory, else
it is generated and printed once; ``serve`` prints the one it uses every time.
``join``, ``heal``, ``status`` and ``key`` (cli_admin.py) sign their requests with the
root key, from ``--access-key``/``--secret-key`` or the same two variables. ``node`` and ``gateway``
take the cluster secret from S3LITE_CLUSTER_SECRET (transport/secret.py): nodes then
answer only callers that carry it; without it they answer anyone, and say so.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import logging
import os
import socket
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from . import cli_admin
from .asgi import App
from .buffers import LARGE_ARENA
from .cli_admin import CLEAR_SCREEN as CLEAR_SCREEN  # its home before cli_admin.py
from .cluster import Cluster, LocalCluster
from .erasure import MAX_PARITY
from .gateway import GatewayApp
from .gateway.auth.keystore import ROOT_PASSWORD_ENV, ROOT_USER_ENV, KeyStore, root_from_env
from .gateway.call import DEFAULT_REGION
from .gateway.ops import OpsApp
from .logs import FORMATS, LEVELS
from .metrics import GatewayMetrics, NodeMetrics
from .orchestrator import POLICIES
from .orchestrator.liveness import DEFAULT_PROBE_INTERVAL
from .orchestrator.topology import DEFAULT_PARITY
from .receiver.healer import DEFAULT_HEAL_RATE, DEFAULT_SCRUB_RATE
from .receiver.janitor import DEFAULT_MULTIPART_TTL
from .receiver.striping import DEFAULT_STRIPE_UNIT
from .service import DEFAULT_KEEP_ALIVE, bind, parse_listen, run, serve, url_of
from .storager import StorageNode
from .storager.node import DEFAULT_RESERVE
from .transport.http import HttpTransport
from .transport.http_node import NodeApp
from .transport.secret import CLUSTER_SECRET_ENV, cluster_secret_from_env

log = logging.getLogger(__name__)

DEFAULT_LISTEN = "127.0.0.1:9000"
DEFAULT_SERVE_NODES = 8
DEFAULT_WATCH_INTERVAL = 2.0


def version() -> str:
    try:
        return importlib.metadata.version("s3lite")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def _positive(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"a number of seconds, got {text!r}") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"a number of seconds above 0, got {text!r}")
    return value


def _parity(text: str) -> int:
    if not text.isdigit() or not 0 <= int(text) <= MAX_PARITY:
        raise argparse.ArgumentTypeError(f"a whole number from 0 to {MAX_PARITY}, got {text!r}")
    return int(text)


REGION_HELP = (
    "the region GetBucketLocation names (default: us-east-1); any region is accepted "
    "in signatures and bucket configurations"
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="s3lite",
        description="s3lite, a small S3-like object store: run a cluster (serve), its storage "
        "nodes and gateways; join nodes; show the status; manage access keys.",
    )
    parser.add_argument("--version", action="version", version=f"s3lite {version()}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def log_options(command: argparse.ArgumentParser) -> None:
        command.add_argument("--log-format", choices=FORMATS, default="text",
                             help="log lines as text or as JSON (default: text)")  # fmt: skip
        command.add_argument("--log-level", choices=LEVELS, default="info",
                             help="least severe level logged (default: info)")  # fmt: skip

    def gateway_options(command: argparse.ArgumentParser) -> None:
        command.add_argument("--metrics-listen", metavar="HOST:PORT",
                             help="serve /metrics and the health checks on this address, "
                             "without credentials (default: no metrics listener)")  # fmt: skip
        command.add_argument("--probe-interval", type=_positive, metavar="SECONDS",
                             default=DEFAULT_PROBE_INTERVAL,
                             help="seconds between node probes (default: 2)")  # fmt: skip

    def cluster_options(command: argparse.ArgumentParser) -> None:
        command.add_argument("--policy", choices=sorted(POLICIES), default="fill",
                             help="join policy of a new cluster (default: fill)")  # fmt: skip
        command.add_argument("--stripe-unit", type=int, default=DEFAULT_STRIPE_UNIT,
                             help="bytes dealt to a part at a time (default: 1 MiB)")  # fmt: skip
        command.add_argument("--parity", type=_parity, default=DEFAULT_PARITY,
                             help=f"parity parts per object of a new cluster, 0 to {MAX_PARITY}: "
                             "that many nodes can be lost (default: 2; it takes 6 + parity "
                             "nodes to write them all)")  # fmt: skip
        command.add_argument("--multipart-ttl", type=float, default=DEFAULT_MULTIPART_TTL,
                             metavar="SECONDS", help="abort multipart uploads left open this "
                             "long (default: 86400, 24 h)")  # fmt: skip
        command.add_argument("--heal-rate", type=_rate, default=DEFAULT_HEAL_RATE,
                             metavar="BYTES", help="bytes per second the healer writes at "
                             "most (default 64M; suffixes K, M, G, T)")  # fmt: skip
        command.add_argument("--scrub-rate", type=_rate, default=DEFAULT_SCRUB_RATE,
                             metavar="BYTES", help="bytes of parts per second the background "
                             "scrub has the nodes verify (default 64M)")  # fmt: skip

    serve_cmd = commands.add_parser(
        "serve", help="gateway and storage nodes in one process (the embedded default)"
    )
    serve_cmd.add_argument("--listen", default=DEFAULT_LISTEN, help=f"default {DEFAULT_LISTEN}")
    serve_cmd.add_argument("--data-dir", type=Path, default=Path("data"), help="default ./data")
    serve_cmd.add_argument("--nodes", type=int, default=DEFAULT_SERVE_NODES,
                           help=f"nodes of a new cluster (>= 6; default {DEFAULT_SERVE_NODES}: "
                           "six data parts and two parity parts per object)")  # fmt: skip
    cluster_options(serve_cmd)
    serve_cmd.add_argument("--domain", help="serve virtual-hosted-style requests for BUCKET.DOMAIN")
    gateway_options(serve_cmd)
    log_options(serve_cmd)
    serve_cmd.add_argument("--region", default=DEFAULT_REGION, help=REGION_HELP)

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
    log_options(node_cmd)

    gateway_cmd = commands.add_parser("gateway", help="the HTTP gateway over remote nodes")
    gateway_cmd.add_argument("--data-dir", type=Path, required=True)
    gateway_cmd.add_argument("--listen", required=True, help="HOST:PORT")
    gateway_cmd.add_argument("--node", action="append", default=[], metavar="URL",
                             help="a node of a new cluster (six or more); a restarted "
                             "gateway takes its nodes from its data directory")  # fmt: skip
    cluster_options(gateway_cmd)
    gateway_cmd.add_argument(
        "--domain", help="serve virtual-hosted-style requests for BUCKET.DOMAIN"
    )
    gateway_options(gateway_cmd)
    log_options(gateway_cmd)
    gateway_cmd.add_argument("--region", default=DEFAULT_REGION, help=REGION_HELP)

    def admin_options(command: argparse.ArgumentParser) -> None:
        command.add_argument("--gateway", required=True, metavar="URL")
        command.add_argument("--access-key", help=f"root key id (default: ${ROOT_USER_ENV})")
        command.add_argument("--secret-key", help=f"root secret (default: ${ROOT_PASSWORD_ENV})")

    join_cmd = commands.add_parser("join", help="add a running node to a cluster")
    admin_options(join_cmd)
    join_cmd.add_argument("--node", required=True, metavar="URL")

    heal_cmd = commands.add_parser(
        "heal", help="a full heal pass now (every segment, or those with a part on a node)"
    )
    admin_options(heal_cmd)
    heal_cmd.add_argument("--node", metavar="ID", help="only the parts this node holds")

    status_cmd = commands.add_parser(
        "status", help="nodes (up, down, joining), usage, arcs and migrations"
    )
    admin_options(status_cmd)
    status_cmd.add_argument("--json", action="store_true", help="print the raw JSON")
    status_cmd.add_argument("--watch", action="store_true", help="redraw until Ctrl-C")
    status_cmd.add_argument("--interval", type=_positive, metavar="SECONDS",
                            default=DEFAULT_WATCH_INTERVAL,
                            help="seconds between redraws (default: 2)")  # fmt: skip

    key_cmd = commands.add_parser("key", help="manage access keys and their grants")
    verbs = key_cmd.add_subparsers(dest="verb", required=True, metavar="VERB")
    create = verbs.add_parser("create", help="a new key (its secret is shown once)")
    create.add_argument("--name", default="", help="a label for the key")
    listed = verbs.add_parser("list", help="every key and its grants")
    listed.add_argument("--json", action="store_true", help="print the raw JSON")
    delete = verbs.add_parser("delete", help="delete a key (its buckets pass to root)")
    delete.add_argument("key_id", metavar="KEY")
    for verb, text in (("allow", "grant"), ("deny", "take back")):
        grant = verbs.add_parser(
            verb, help=f"{text} read and/or write on a bucket (both if neither)"
        )
        grant.add_argument("key_id", metavar="KEY")
        grant.add_argument("bucket", metavar="BUCKET")
        grant.add_argument("--read", action="store_true")
        grant.add_argument("--write", action="store_true")
    for command in verbs.choices.values():
        admin_options(command)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        with _quiet_broken_pipe():
            if args.command in ("serve", "node", "gateway"):
                server = {"serve": _serve, "node": _node, "gateway": _gateway}[args.command]
                run(lambda: server(args), log_format=args.log_format, log_level=args.log_level)
            elif args.command == "join":
                cli_admin.join(args)
            elif args.command == "heal":
                cli_admin.heal(args)
            elif args.command == "status":
                cli_admin.status(args)
            else:
                cli_admin.key(args)
    except KeyboardInterrupt:
        return 130 if args.command != "status" else 0
    except (ValueError, OSError) as exc:
        print(f"s3lite {args.command}: {exc}", file=sys.stderr)
        return 1
    return 0


@contextmanager
def _quiet_broken_pipe() -> Iterator[None]:
    """End quietly when whoever reads our output has stopped (``s3lite status | head``):
    no traceback, and nothing more written to the closed pipe (not even at exit)."""
    try:
        yield
    except BrokenPipeError:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)


def _cluster_options(args: argparse.Namespace) -> dict[str, Any]:
    """The cluster options ``serve`` and ``gateway`` share, from their flags."""
    return {
        "policy": args.policy,
        "stripe_unit": args.stripe_unit,
        "parity": args.parity,
        "probe_interval": args.probe_interval,
        "metrics": GatewayMetrics(process=True),
        "multipart_ttl": args.multipart_ttl,
        "heal_rate": args.heal_rate,
        "scrub_rate": args.scrub_rate,
    }


async def _serve(args: argparse.Namespace) -> None:
    sock = bind(*parse_listen(args.listen))
    metrics_sock = bind(*parse_listen(args.metrics_listen)) if args.metrics_listen else None
    async with LocalCluster(
        args.data_dir, args.nodes, root_key=root_from_env(), **_cluster_options(args)
    ) as cluster:
        app = _app(cluster, args.domain, args.region)
        url = url_of(sock)
        root = cluster.keys.root
        print(f"s3lite gateway listening on {url} ({len(cluster.nodes)} nodes in {args.data_dir})")
        print(f"  console: {url}/_console (log in with the root key)")
        print(f"  root access key: {root.access_key}")
        print(f"  root secret key: {root.secret}")
        print(f"  export AWS_ACCESS_KEY_ID={root.access_key} AWS_SECRET_ACCESS_KEY={root.secret}")
        sigv4 = (
            '--aws-sigv4 "aws:amz:us-east-1:s3" --user "$AWS_ACCESS_KEY_ID:$AWS_SECRET_ACCESS_KEY"'
        )
        print(f"  try: curl {sigv4} -X PUT {url}/demo")
        print(f"       curl {sigv4} -T README.md {url}/demo/readme.md")
        print(f"       aws --endpoint-url {url} s3 ls s3://demo/")
        print(f"       s3lite status --gateway {url}    (with the root key exported as below)")
        print(f"       export {ROOT_USER_ENV}={root.access_key} {ROOT_PASSWORD_ENV}={root.secret}")
        await serve(app, sock, _ops(cluster, metrics_sock), arena=LARGE_ARENA)


def _ops(cluster: Cluster, sock: socket.socket | None) -> dict[socket.socket, App]:
    """The metrics listener, if asked for (its URL printed)."""
    if sock is None:
        print("  (no metrics listener: add --metrics-listen HOST:PORT)", flush=True)
        return {}
    print(f"  metrics: {url_of(sock)}/metrics  health: {url_of(sock)}/health/ready", flush=True)
    return {sock: OpsApp(cluster.orchestrator, cluster.metrics)}


def _app(cluster: Cluster, domain: str | None, region: str) -> GatewayApp:
    return GatewayApp(
        cluster.receiver,
        cluster.buckets,
        cluster.orchestrator,
        cluster.keys,
        domain=domain,
        region=region,
    )


def _announce_root(keys: KeyStore) -> None:
    """A generated root key is printed once, on stdout (never logged): the only copy
    is then in keys.sqlite3, readable by its owner only."""
    if keys.generated_root:
        print("generated the root key (shown once; also in keys.sqlite3, mode 0600):")
        print(f"  {ROOT_USER_ENV}={keys.root.access_key}")
        print(f"  {ROOT_PASSWORD_ENV}={keys.root.secret}")


async def _node(args: argparse.Namespace) -> None:
    sock = bind(*parse_listen(args.listen))
    node = await StorageNode.open(
        args.data_dir, args.node_id, reserve=args.reserve, replaced=args.replaced
    )
    state = " (replaced: empty until rebuilt)" if args.replaced else ""
    app = NodeApp(node, NodeMetrics(process=True), secret=_cluster_secret("node"))
    print(f"s3lite node {node.node_id} listening on {url_of(sock)}{state}", flush=True)
    await serve(app, sock, keep_alive=args.keep_alive)


def _cluster_secret(role: str) -> str | None:
    """The cluster secret from the environment, with a warning when there is none."""
    secret = cluster_secret_from_env()
    if secret is None:
        who = (
            "this node answers anyone who reaches it"
            if role == "node"
            else ("nodes that require a secret will refuse this gateway")
        )
        log.warning("%s is not set: %s", CLUSTER_SECRET_ENV, who)
    return secret


_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}


def _rate(text: str) -> int:
    value = _bytes(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"a number of bytes above 0, got {text!r}")
    return value


def _bytes(text: str) -> int:
    """A byte count: digits, optionally followed by K, M, G or T (powers of 1024)."""
    number, unit = text.rstrip("KMGTkmgt"), text[len(text.rstrip("KMGTkmgt")) :].upper()
    if not number.isdigit() or unit not in _UNITS:
        raise argparse.ArgumentTypeError(f"expected a number of bytes like 512M, got {text!r}")
    return int(number) * _UNITS[unit]


async def _gateway(args: argparse.Namespace) -> None:
    sock = bind(*parse_listen(args.listen))
    metrics_sock = bind(*parse_listen(args.metrics_listen)) if args.metrics_listen else None
    cluster = Cluster(
        args.data_dir,
        HttpTransport(secret=_cluster_secret("gateway")),
        args.node,
        root=root_from_env(),
        **_cluster_options(args),
    )
    async with cluster:
        known = {info.address for info in cluster.orchestrator.topology.nodes}
        for address in set(args.node) - known:
            print(f"ignoring --node {address}: not in the cluster; use `s3lite join`")
        app = _app(cluster, args.domain, args.region)
        _announce_root(cluster.keys)
        extra = _ops(cluster, metrics_sock)
        print(f"s3lite gateway listening on {url_of(sock)}", flush=True)
        await serve(app, sock, extra, arena=LARGE_ARENA)


if __name__ == "__main__":
    sys.exit(main())
