"""The cluster secret: what a storage node asks of every caller of its ``/v1`` API.

A node's API reads, writes and deletes parts, so whoever reaches its port could
otherwise read every object or destroy it. The gateway and every node of a cluster
are given one shared secret (``S3LITE_CLUSTER_SECRET``, at least 16 characters); the
gateway's transport sends it as ``Authorization: Bearer <secret>`` on every call and
a node refuses any ``/v1`` call without it (401), before reading a byte of the body.
The operators' endpoints (``/health/live``, ``/health/ready``, ``/metrics``) stay open:
they carry no data and no names, and health checks and scrapers have no secret.

A bearer token sent in clear protects against anyone who can reach a node's port,
not against someone who can read its traffic: that one sees the data too, so a
cluster spread over an untrusted network needs TLS or a private network either way.
"""

from __future__ import annotations

import hmac
import os
from collections.abc import Mapping
from typing import Final

CLUSTER_SECRET_ENV: Final = "S3LITE_CLUSTER_SECRET"
MIN_SECRET_LENGTH: Final = 16


def check_secret(secret: str) -> str:
    """``secret`` if it is usable (ValueError otherwise, without echoing it)."""
    if len(secret) < MIN_SECRET_LENGTH or not secret.isascii() or not secret.isprintable():
        raise ValueError(
            f"{CLUSTER_SECRET_ENV} must be at least {MIN_SECRET_LENGTH} printable ASCII "
            f"characters (it has {len(secret)})"
        )
    return secret


def cluster_secret_from_env(environ: Mapping[str, str] = os.environ) -> str | None:
    """The cluster secret from the environment, or None if it is not set."""
    secret = environ.get(CLUSTER_SECRET_ENV)
    return None if not secret else check_secret(secret)


def authorization(secret: str) -> str:
    """The ``Authorization`` header value that carries ``secret``."""
    return f"Bearer {secret}"


def is_authorized(header: str | None, secret: str) -> bool:
    """Whether an ``Authorization`` header carries ``secret`` (in constant time)."""
    expected = authorization(secret).encode()
    return header is not None and hmac.compare_digest(header.encode(), expected)
