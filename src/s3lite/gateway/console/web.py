"""The console's HTTP details: its cookie, the same-origin check, the security
headers every answer carries, and the static files (served from the package, read
once at start: HTML, CSS and JavaScript written by hand, no build step).

Only :data:`PUBLIC_ASSETS` (the login page and what it loads) are served without a
session; every other file, the console page included, needs one.
"""

from __future__ import annotations

import hashlib
import importlib.resources
import json
import urllib.parse
from collections.abc import Mapping
from typing import Final

import attrs

from ...asgi import Headers, Send, send_bytes, send_head

PREFIX: Final = "_console"
"""The first path segment of the console; no bucket can have this name."""
COOKIE: Final = "s3lite_console"
CSRF_HEADER: Final = "x-s3lite-csrf"
ROOT: Final = f"/{PREFIX}"

CONTENT_SECURITY_POLICY: Final = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
    "frame-ancestors 'none'"
)
"""Scripts and styles from the console's own files only: no inline script can run,
so text shown in the page (keys, node ids) can never become code."""

SECURITY_HEADERS: Final[tuple[tuple[str, str], ...]] = (
    ("content-security-policy", CONTENT_SECURITY_POLICY),
    ("x-content-type-options", "nosniff"),
    ("x-frame-options", "DENY"),
    ("referrer-policy", "same-origin"),
    ("cache-control", "no-store"),
)

LOGIN_PAGE: Final = "login.html"
CONSOLE_PAGE: Final = "index.html"
PUBLIC_ASSETS: Final = frozenset({LOGIN_PAGE, "login.js", "console.css", "favicon.svg"})

_TYPES: Final = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
}


def session_cookie(session_id: str, max_age: float) -> str:
    """The Set-Cookie value: sent back only to the console's own paths, never to
    scripts (HttpOnly), never with a request another site starts (SameSite=Strict)."""
    return f"{COOKIE}={session_id}; Path={ROOT}; HttpOnly; SameSite=Strict; Max-Age={int(max_age)}"


def cleared_cookie() -> str:
    return f"{COOKIE}=; Path={ROOT}; HttpOnly; SameSite=Strict; Max-Age=0"


def cookie_value(headers: Mapping[str, str]) -> str | None:
    """The console cookie's value in a request's Cookie header, if any."""
    for piece in headers.get("cookie", "").split(";"):
        name, sep, value = piece.strip().partition("=")
        if sep and name == COOKIE and value:
            return value
    return None


def same_origin(headers: Mapping[str, str]) -> bool:
    """Whether the request says it comes from a page of this server: its Origin (or,
    failing that, its Referer) names the host the request was sent to. Browsers send
    Origin with every POST, PUT and DELETE, so a request with neither is refused."""
    source = headers.get("origin") or headers.get("referer")
    host = headers.get("host")
    if not source or not host or source == "null":
        return False
    parsed = urllib.parse.urlsplit(source)
    return parsed.scheme in ("http", "https") and parsed.netloc.lower() == host.lower()


@attrs.frozen
class Asset:
    body: bytes
    content_type: str
    etag: str


def load_assets() -> dict[str, Asset]:
    """Every file of ``static/`` by name (the directory is flat)."""
    assets = {}
    for entry in (importlib.resources.files(__package__) / "static").iterdir():
        suffix = "." + entry.name.rsplit(".", 1)[-1]
        if entry.is_file() and suffix in _TYPES:
            body = entry.read_bytes()
            etag = '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
            assets[entry.name] = Asset(body, _TYPES[suffix], etag)
    return assets


async def send_asset(
    send: Send, asset: Asset, headers: Mapping[str, str], status: int = 200, *, head: bool = False
) -> None:
    """A static file; revalidated on every use (no-cache + ETag), so a new version of
    s3lite is picked up at once and an unchanged file costs a 304."""
    answer = [
        *(header for header in SECURITY_HEADERS if header[0] != "cache-control"),
        ("cache-control", "no-cache"),
        ("content-type", asset.content_type),
        ("etag", asset.etag),
    ]
    if status == 200 and headers.get("if-none-match") == asset.etag:
        await send_head(send, 304, answer)
        return
    await send_bytes(send, status, asset.body, answer, head=head)


async def send_json(send: Send, status: int, value: object, headers: Headers = ()) -> None:
    """A JSON answer with the console's security headers."""
    body = json.dumps(value).encode()
    await send_bytes(
        send, status, body, [*SECURITY_HEADERS, ("content-type", "application/json"), *headers]
    )
