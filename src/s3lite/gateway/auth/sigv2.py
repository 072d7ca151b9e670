"""AWS Signature Version 2 presigned URLs (query string authentication), checked.

Why s3lite takes them at all: boto3's ``generate_presigned_url`` and ``aws s3 presign``
make SigV2 URLs (``?AWSAccessKeyId=...&Signature=...&Expires=...``) unless the user
configured ``signature_version = s3v4``, so an unmodified client's shared link would
otherwise be refused. Only the presigned form is accepted: a request signed with a
SigV2 ``Authorization: AWS ...`` header is refused (sigv4.py says so), as every SDK
signs headers with SigV4.

Pure, like sigv4.py: no clock (``now`` is passed in), no key store. The string to sign
is S3's (and botocore's ``HmacV1QueryAuth``):

    METHOD \\n Content-MD5 \\n Content-Type \\n Expires \\n [x-amz-* headers \\n] resource

where the headers are the request's own, the x-amz-* ones lower-cased, sorted, one
``name:value`` a line; the resource is the path as sent (``/bucket`` first when the
bucket is in the Host name) followed by the sub-resources of :data:`SUB_RESOURCES` in
the query, sorted, their values decoded. The signature is the base64 HMAC-SHA1 of it
under the secret. A URL is valid until ``Expires`` (seconds since the epoch), and at
most :data:`sigv4.MAX_EXPIRES` ahead of ``now`` (SigV4's limit; SigV2 has none).

botocore copies the ``x-amz-*`` headers it signed into the URL's query (lower-cased:
``x-amz-meta-note=...``, ``x-amz-acl=...``, ``x-amz-security-token=...``), so that the
URL alone carries them. :func:`query_headers` makes them the request's headers, as
S3 does for query string authentication: ``curl -T file URL`` then stores what the
presigner signed. A header also sent must say the same (InvalidArgument otherwise),
and the signature is checked over the merged headers, so no one can add one.

A presigned URL's body is not signed (UNSIGNED-PAYLOAD), unless the request carries
a hex ``x-amz-content-sha256``, which it then must match; an aws-chunked body needs
SigV4 (its chunk signatures chain from a SigV4 signature).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import urllib.parse
from collections.abc import Mapping

import attrs

from ...errors import (
    AccessDenied,
    AuthorizationHeaderMalformed,
    InvalidArgument,
    SignatureDoesNotMatch,
)
from . import sigv4

PARAMETERS = ("AWSAccessKeyId", "Signature", "Expires")
"""The query parameters of a SigV2 presigned URL."""
SUB_RESOURCES = frozenset(
    {
        "accelerate", "acl", "analytics", "cors", "defaultObjectAcl", "delete",
        "intelligent-tiering", "inventory", "lifecycle", "location", "logging", "metrics",
        "notification", "object-lock", "partNumber", "policy", "replication",
        "requestPayment", "response-cache-control", "response-content-disposition",
        "response-content-encoding", "response-content-language", "response-content-type",
        "response-expires", "restore", "select", "select-type", "storageClass", "tagging",
        "torrent", "uploadId", "uploads", "versionId", "versioning", "versions", "website",
    }
)  # fmt: skip
"""Query parameters that are part of the signed resource (botocore's list, the signer
the URLs come from)."""

_DIGITS = re.compile(r"[0-9]{1,12}")
_HEX64 = re.compile(r"[0-9a-f]{64}")


@attrs.frozen
class Claim:
    """What a SigV2 presigned URL says about who signed it, parsed but not checked."""

    access_key: str
    signature: str
    payload: str
    """UNSIGNED-PAYLOAD, or the hex SHA-256 the body must have."""
    strings_to_sign: tuple[str, ...]
    """Under each path encoding tried, the as-sent one first."""


def parse(
    method: str,
    raw_path: str,
    raw_query: str,
    headers: Mapping[str, str],
    *,
    now: float,
    bucket: str | None = None,
) -> Claim | None:
    """The request's SigV2 presigned claim, or None if its query has none of
    :data:`PARAMETERS`.

    ``raw_path`` and ``raw_query`` are as sent; ``headers`` have lower-case names;
    ``bucket`` is the bucket the Host name gives (virtual-hosted style), else None.
    Raises AuthorizationHeaderMalformed for a URL that misses a parameter, carries one
    twice, or also carries SigV4 credentials; AccessDenied once it has expired.
    """
    pairs = [_pair(item) for item in raw_query.split("&") if item]
    given = {name: [value for key, value in pairs if key == name] for name in PARAMETERS}
    if not any(given.values()):
        return None
    if "authorization" in headers or any(key.startswith("X-Amz-") for key, _ in pairs):
        raise AuthorizationHeaderMalformed(
            "a request carries one of a SigV2 presigned query, a SigV4 presigned query "
            "or an Authorization header"
        )
    access_key, signature, expires = (_single(given, name) for name in PARAMETERS)
    if _DIGITS.fullmatch(expires) is None:
        raise AuthorizationHeaderMalformed(
            f"Expires must be seconds since 1970 (digits), got {expires[:40]!r}"
        )
    if now > int(expires):
        raise AccessDenied("the presigned URL has expired")
    if int(expires) - now > sigv4.MAX_EXPIRES + sigv4.MAX_SKEW:
        raise AuthorizationHeaderMalformed(
            f"a presigned URL may be valid for at most {sigv4.MAX_EXPIRES} seconds"
        )
    payload = headers.get("x-amz-content-sha256", sigv4.UNSIGNED_PAYLOAD)
    if payload != sigv4.UNSIGNED_PAYLOAD and _HEX64.fullmatch(payload) is None:
        raise AuthorizationHeaderMalformed(
            "a SigV2 presigned request's body is unsigned or named by a hex SHA-256; "
            "aws-chunked bodies need SigV4"
        )
    head = "\n".join([method, headers.get("content-md5", ""), headers.get("content-type", "")])
    amz = "".join(
        f"{name}:{headers[name].strip()}\n" for name in sorted(headers) if name.startswith("x-amz-")
    )
    prefix = f"/{bucket}" if bucket is not None else ""
    sub = _sub_resources(pairs)
    paths = dict.fromkeys(
        [raw_path, sigv4.uri_encode(urllib.parse.unquote(raw_path), keep_slash=True)]
    )
    texts = tuple(f"{head}\n{expires}\n{amz}{prefix}{path}{sub}" for path in paths)
    return Claim(access_key, signature, payload, texts)


QUERY_HEADER_PREFIX = "x-amz-"
"""The query parameters of a SigV2 presigned URL that are headers (see the module doc)."""


def query_headers(
    query: Mapping[str, str], headers: Mapping[str, str]
) -> tuple[dict[str, str], dict[str, str]] | None:
    """(query, headers) with the ``x-amz-*`` parameters of a SigV2 presigned URL moved
    from the first to the second; None if the query is not such a URL or has none.
    InvalidArgument if a header sent as well says something else."""
    if not all(name in query for name in PARAMETERS):
        return None
    lifted = {name: value for name, value in query.items() if name.startswith(QUERY_HEADER_PREFIX)}
    if not lifted:
        return None
    for name, value in lifted.items():
        if headers.get(name, value) != value:
            raise InvalidArgument(
                f"{name} is both in the presigned URL and a header, with different values"
            )
    rest = {name: value for name, value in query.items() if name not in lifted}
    return rest, {**headers, **lifted}


def verify(claim: Claim, secret: str) -> sigv4.Verified:
    """Check ``claim`` against the access key's ``secret``; SignatureDoesNotMatch if
    no form of the request gives the signature it carries."""
    for text in claim.strings_to_sign:
        if hmac.compare_digest(signature(secret, text), claim.signature):
            return sigv4.Verified(claim.access_key, claim.payload, "", b"", "", "")
    raise SignatureDoesNotMatch(
        "the request signature we calculated does not match the signature you provided; "
        "check your secret key and signing method"
    )


def signature(secret: str, string_to_sign: str) -> str:
    """Base64 of the HMAC-SHA1 of ``string_to_sign`` under ``secret``."""
    digest = hmac.new(secret.encode(), string_to_sign.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()


def _pair(item: str) -> tuple[str, str | None]:
    """A query item split at its first ``=`` and percent-decoded; None as the value of
    a bare name (``?uploads``), which signs differently from ``?uploads=``."""
    name, sep, value = item.partition("=")
    return urllib.parse.unquote(name), (urllib.parse.unquote(value) if sep else None)


def _single(given: Mapping[str, list[str | None]], name: str) -> str:
    values = given[name]
    if len(values) != 1 or values[0] is None:
        raise AuthorizationHeaderMalformed(f"a SigV2 presigned URL needs exactly one {name}")
    return values[0]


def _sub_resources(pairs: list[tuple[str, str | None]]) -> str:
    signed = sorted((pair for pair in pairs if pair[0] in SUB_RESOURCES), key=lambda p: p[0])
    if not signed:
        return ""
    return "?" + "&".join(name if value is None else f"{name}={value}" for name, value in signed)
