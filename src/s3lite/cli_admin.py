"""The ``s3lite`` commands that talk to a running gateway's admin API: ``join``,
``heal``, ``status`` and ``key``.

Each request is signed with the root key (SigV4, body hash included), from
``--access-key``/``--secret-key`` or S3LITE_ROOT_USER/S3LITE_ROOT_PASSWORD; an error
status becomes a ValueError carrying the gateway's message, which ``s3lite`` prints
as one line (cli.main). Long tasks (join, heal) stream their progress as NDJSON and
are drawn as they go (cli_render.py). Kept apart from cli.py, which parses the
command line and runs the servers, because these need none of the server code.
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
from collections.abc import Iterator
from contextlib import contextmanager
from http.client import HTTPResponse
from typing import Any

from .cli_render import ProgressPrinter, status_text
from .gateway.admin import NDJSON
from .gateway.auth.keystore import ROOT_PASSWORD_ENV, ROOT_USER_ENV
from .gateway.auth.sigv4 import sign_headers

CLEAR_SCREEN = "\x1b[H\x1b[2J"
"""What ``status --watch`` writes before each redraw on a terminal."""


def _credentials(args: argparse.Namespace) -> tuple[str, str]:
    access_key = args.access_key or os.environ.get(ROOT_USER_ENV)
    secret = args.secret_key or os.environ.get(ROOT_PASSWORD_ENV)
    if not access_key or not secret:
        raise ValueError(
            f"needs the root key: --access-key and --secret-key, or {ROOT_USER_ENV} and "
            f"{ROOT_PASSWORD_ENV} (`s3lite serve` and a new gateway print them)"
        )
    return access_key, secret


@contextmanager
def _admin_call(
    args: argparse.Namespace,
    method: str,
    route: str,
    payload: object = None,
    accept: str = "application/json",
) -> Iterator[HTTPResponse]:
    """An admin route's response, signed with the root key (SigV4, body hash
    included); an error status raises ValueError with the gateway's message."""
    access_key, secret = _credentials(args)
    url = f"{args.gateway.rstrip('/')}/_admin/{route}"
    data = b"" if payload is None else json.dumps(payload).encode()
    headers = sign_headers(
        method,
        url,
        {"content-type": "application/json", "accept": accept},
        hashlib.sha256(data).hexdigest(),
        access_key=access_key,
        secret=secret,
        now=time.time(),
    )
    request = urllib.request.Request(url, data=data or None, method=method, headers=headers)
    try:
        response = urllib.request.urlopen(request, timeout=24 * 3600)
    except urllib.error.HTTPError as exc:
        try:
            detail = json.loads(exc.read()).get("message", exc.reason)
        except ValueError:
            detail = exc.reason
        raise ValueError(f"{url}: {detail}") from None
    with response:
        yield response


def _admin(args: argparse.Namespace, method: str, route: str, payload: object = None) -> Any:
    """Call an admin route; its JSON answer."""
    with _admin_call(args, method, route, payload) as response:
        return json.loads(response.read())


def _follow(args: argparse.Namespace, route: str, payload: object, what: str) -> Any:
    """Run a long admin task that streams progress (admin.stream_task), drawing it
    as it goes; returns its result, raises ValueError with its error. ``s3lite heal``
    can use this as ``join`` does."""
    printer = ProgressPrinter(sys.stdout, tty=sys.stdout.isatty())
    try:
        with _admin_call(args, "POST", route, payload, accept=NDJSON) as response:
            for raw in response:
                message = json.loads(raw)
                if message.get("event") == "done":
                    return message.get("result")
                if message.get("event") == "error":
                    printer.close()
                    raise ValueError(f"{what} failed: {message.get('message')}")
                printer.feed(message)
    finally:
        printer.close()
    raise ValueError(f"the gateway ended the stream before the {what} finished")


def join(args: argparse.Namespace) -> None:
    result = _follow(args, "join", {"node": args.node}, "join")
    print(f"node {result['node_id']} joined; its sectors have moved", flush=True)


def heal(args: argparse.Namespace) -> None:
    payload = {} if args.node is None else {"node": args.node}
    result = _follow(args, "heal", payload, "heal")
    print(
        f"heal pass done: {result['segments']} segment(s) checked, {result['repaired']} "
        f"repaired ({result['rebuilt_parts']} part(s), {result['rebuilt_bytes']} bytes), "
        f"{result['waiting']} waiting for nodes, {result['lost']} lost",
        flush=True,
    )


def status(args: argparse.Namespace) -> None:
    if not args.watch:
        _print_status(_admin(args, "GET", "status"), raw=args.json)
        return
    tty = sys.stdout.isatty()
    while True:
        status = _admin(args, "GET", "status")
        stamp = time.strftime("%Y-%m-%d %H:%M:%S")
        header = f"{stamp}  (every {args.interval:g} s, Ctrl-C to stop)\n"
        body = json.dumps(status, indent=2) + "\n" if args.json else status_text(status)
        sys.stdout.write((CLEAR_SCREEN if tty else "") + header + body + ("" if tty else "\n"))
        sys.stdout.flush()
        time.sleep(args.interval)


def key(args: argparse.Namespace) -> None:
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
    sys.stdout.write(json.dumps(status, indent=2) + "\n" if raw else status_text(status))
    sys.stdout.flush()
