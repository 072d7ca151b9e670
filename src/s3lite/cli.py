"""The ``s3lite`` command: run the embedded cluster, nodes and gateways; join; status.

    s3lite serve   [--listen 127.0.0.1:9000] [--data-dir ./data] [--nodes 6] [--domain D]
    s3lite node    --data-dir D --listen HOST:PORT
    s3lite gateway --data-dir D --listen HOST:PORT --node URL [--node URL ...] [--domain D]
    s3lite join    --gateway URL --node URL
    s3lite status  --gateway URL
    s3lite key     create [--name N] | list | delete KEY | allow|deny KEY BUCKET [--read] [--write]

Servers print ``... listening on http://HOST:PORT`` on stdout once they accept
connections (with ``:0`` the port is the one the kernel picked). A gateway's root key
comes from S3LITE_ROOT_USER/S3LITE_ROOT_PASSWORD, else from its data directory, else
it is generated and printed once; ``serve`` prints the one it uses every time.
``join``, ``status`` and ``key`` sign their requests with the root key, from
``--access-key``/``--secret-key`` or the same two variables.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .cluster import Cluster, LocalCluster
from .gateway import GatewayApp
from .gateway.auth.keystore import ROOT_PASSWORD_ENV, ROOT_USER_ENV, KeyStore, root_from_env
from .gateway.auth.sigv4 import sign_headers
from .gateway.call import DEFAULT_REGION
from .orchestrator import POLICIES
from .receiver.janitor import DEFAULT_MULTIPART_TTL
from .receiver.striping import DEFAULT_STRIPE_UNIT
from .service import bind, parse_listen, run, serve, url_of
from .storager import StorageNode
from .transport.http import HttpTransport
from .transport.http_node import NodeApp

DEFAULT_LISTEN = "127.0.0.1:9000"
REGION_HELP = (
    "the region GetBucketLocation names (default: us-east-1); any region is accepted "
    "in signatures and bucket configurations"
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="s3lite", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def cluster_options(command: argparse.ArgumentParser) -> None:
        command.add_argument("--policy", choices=sorted(POLICIES), default="fill",
                             help="join policy of a new cluster (default: fill)")  # fmt: skip
        command.add_argument("--stripe-unit", type=int, default=DEFAULT_STRIPE_UNIT,
                             help="bytes dealt to a part at a time (default: 1 MiB)")  # fmt: skip
        command.add_argument("--multipart-ttl", type=float, default=DEFAULT_MULTIPART_TTL,
                             metavar="SECONDS", help="abort multipart uploads left open this "
                             "long (default: 86400, 24 h)")  # fmt: skip

    serve_cmd = commands.add_parser(
        "serve", help="gateway and storage nodes in one process (the embedded default)"
    )
    serve_cmd.add_argument("--listen", default=DEFAULT_LISTEN, help=f"default {DEFAULT_LISTEN}")
    serve_cmd.add_argument("--data-dir", type=Path, default=Path("data"), help="default ./data")
    serve_cmd.add_argument("--nodes", type=int, default=6, help="nodes of a new cluster (>= 6)")
    cluster_options(serve_cmd)
    serve_cmd.add_argument("--domain", help="serve virtual-hosted-style requests for BUCKET.DOMAIN")
    serve_cmd.add_argument("--region", default=DEFAULT_REGION, help=REGION_HELP)

    node_cmd = commands.add_parser("node", help="one storage node")
    node_cmd.add_argument("--data-dir", type=Path, required=True)
    node_cmd.add_argument("--listen", required=True, help="HOST:PORT")
    node_cmd.add_argument("--node-id", help="id of a new node (default: random)")

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
    gateway_cmd.add_argument("--region", default=DEFAULT_REGION, help=REGION_HELP)

    def admin_options(command: argparse.ArgumentParser) -> None:
        command.add_argument("--gateway", required=True, metavar="URL")
        command.add_argument("--access-key", help=f"root key id (default: ${ROOT_USER_ENV})")
        command.add_argument("--secret-key", help=f"root secret (default: ${ROOT_PASSWORD_ENV})")

    join_cmd = commands.add_parser("join", help="add a running node to a cluster")
    admin_options(join_cmd)
    join_cmd.add_argument("--node", required=True, metavar="URL")

    status_cmd = commands.add_parser("status", help="nodes, arcs, usage and migrations")
    admin_options(status_cmd)
    status_cmd.add_argument("--json", action="store_true", help="print the raw JSON")

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
        if args.command == "serve":
            run(lambda: _serve(args))
        elif args.command == "node":
            run(lambda: _node(args))
        elif args.command == "gateway":
            run(lambda: _gateway(args))
        elif args.command == "join":
            result = _admin(args, "POST", "join", {"node": args.node})
            print(f"node {result['node_id']} joined; its sectors have moved")
        elif args.command == "status":
            _print_status(_admin(args, "GET", "status"), raw=args.json)
        else:
            _key(args)
    except (ValueError, OSError) as exc:
        print(f"s3lite {args.command}: {exc}", file=sys.stderr)
        return 1
    return 0


async def _serve(args: argparse.Namespace) -> None:
    sock = bind(*parse_listen(args.listen))
    async with LocalCluster(
        args.data_dir,
        args.nodes,
        policy=args.policy,
        stripe_unit=args.stripe_unit,
        root_key=root_from_env(),
        multipart_ttl=args.multipart_ttl,
    ) as cluster:
        app = _app(cluster, args.domain, args.region)
        url = url_of(sock)
        root = cluster.keys.root
        print(f"s3lite gateway listening on {url} ({len(cluster.nodes)} nodes in {args.data_dir})")
        print(f"  root access key: {root.access_key}")
        print(f"  root secret key: {root.secret}")
        print(f"  export AWS_ACCESS_KEY_ID={root.access_key} AWS_SECRET_ACCESS_KEY={root.secret}")
        sigv4 = (
            '--aws-sigv4 "aws:amz:us-east-1:s3" --user "$AWS_ACCESS_KEY_ID:$AWS_SECRET_ACCESS_KEY"'
        )
        print(f"  try: curl {sigv4} -X PUT {url}/demo")
        print(f"       curl {sigv4} -T README.md {url}/demo/readme.md")
        print(f"       aws --endpoint-url {url} s3 ls s3://demo/", flush=True)
        await serve(app, sock)


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
    node = await StorageNode.open(args.data_dir, args.node_id)
    print(f"s3lite node {node.node_id} listening on {url_of(sock)}", flush=True)
    await serve(NodeApp(node), sock)


async def _gateway(args: argparse.Namespace) -> None:
    sock = bind(*parse_listen(args.listen))
    cluster = Cluster(
        args.data_dir,
        HttpTransport(),
        args.node,
        policy=args.policy,
        stripe_unit=args.stripe_unit,
        root=root_from_env(),
        multipart_ttl=args.multipart_ttl,
    )
    async with cluster:
        known = {info.address for info in cluster.orchestrator.topology.nodes}
        for address in set(args.node) - known:
            print(f"ignoring --node {address}: not in the cluster; use `s3lite join`")
        app = _app(cluster, args.domain, args.region)
        _announce_root(cluster.keys)
        print(f"s3lite gateway listening on {url_of(sock)}", flush=True)
        await serve(app, sock)


def _credentials(args: argparse.Namespace) -> tuple[str, str]:
    access_key = args.access_key or os.environ.get(ROOT_USER_ENV)
    secret = args.secret_key or os.environ.get(ROOT_PASSWORD_ENV)
    if not access_key or not secret:
        raise ValueError(
            f"needs the root key: --access-key and --secret-key, or {ROOT_USER_ENV} and "
            f"{ROOT_PASSWORD_ENV} (`s3lite serve` and a new gateway print them)"
        )
    return access_key, secret


def _admin(args: argparse.Namespace, method: str, route: str, payload: object = None) -> Any:
    """Call an admin route, signed with the root key (SigV4, body hash included)."""
    access_key, secret = _credentials(args)
    url = f"{args.gateway.rstrip('/')}/_admin/{route}"
    data = b"" if payload is None else json.dumps(payload).encode()
    headers = sign_headers(
        method,
        url,
        {"content-type": "application/json"},
        hashlib.sha256(data).hexdigest(),
        access_key=access_key,
        secret=secret,
        now=time.time(),
    )
    request = urllib.request.Request(url, data=data or None, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=24 * 3600) as response:
            return json.loads(response.read())
    except urllib.error.HTTPError as exc:
        try:
            detail = json.loads(exc.read()).get("message", exc.reason)
        except ValueError:
            detail = exc.reason
        raise ValueError(f"{url}: {detail}") from None


def _key(args: argparse.Namespace) -> None:
    if args.verb == "create":
        key = _admin(args, "POST", "keys", {"name": args.name})
        print(f"access key: {key['access_key']}\nsecret key: {key['secret']}")
        print("(the secret is shown only now)")
    elif args.verb == "list":
        keys = _admin(args, "GET", "keys")["keys"]
        if args.json:
            print(json.dumps(keys, indent=2))
            return
        print(f"{'access key':<22} {'name':<16} grants")
        for key in keys:
            grants = ", ".join(
                f"{bucket}:{'r' if g['read'] else ''}{'w' if g['write'] else ''}"
                for bucket, g in key["grants"].items()
            )
            name = "(root)" if key["root"] else key["name"]
            print(f"{key['access_key']:<22} {name:<16} {grants}")
    elif args.verb == "delete":
        _admin(args, "DELETE", f"keys/{urllib.parse.quote(args.key_id, safe='')}")
        print(f"deleted key {args.key_id}")
    else:
        payload = {"bucket": args.bucket, "read": args.read, "write": args.write}
        quoted = urllib.parse.quote(args.key_id, safe="")
        grant = _admin(args, "POST", f"keys/{quoted}/{args.verb}", payload)
        rights = [name for name in ("read", "write") if grant[name]] or ["nothing"]
        print(f"{args.key_id} may now {' and '.join(rights)} on {args.bucket}")


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
