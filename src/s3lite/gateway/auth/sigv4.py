"""AWS Signature Version 4 for S3: checking a request's signature, and making one.

Pure: no I/O, no clock (``now`` is passed in), no key store (the caller looks the secret
up between :func:`parse` and :func:`verify`). The steps are AWS's:

1. canonical request: method, canonical URI, canonical query, canonical headers, the
   signed header names, and the payload hash (the ``x-amz-content-sha256`` header: a hex
   SHA-256, ``UNSIGNED-PAYLOAD`` or a ``STREAMING-...`` marker; presigned URLs always
   use ``UNSIGNED-PAYLOAD``);
2. string to sign: algorithm, timestamp, scope (``date/region/s3/aws4_request``) and
   the SHA-256 of the canonical request;
3. signing key: HMAC chain of the secret over date, region, service, "aws4_request";
4. signature: hex HMAC of the string to sign.

S3 URI-encodes the path once (no dot-segment normalisation). Which encoding the client
applied is not knowable from the decoded path, so the path is tried as sent first and
then in AWS's canonical encoding of its decoded form: both name the same object.

Any region is accepted (it only enters the key derivation); the service must be ``s3``.
A header-signed request more than 15 minutes from ``now`` is RequestTimeTooSkewed; a
presigned URL is valid from its ``X-Amz-Date`` for ``X-Amz-Expires`` seconds (1 s to
7 days). Every ``x-amz-*`` header the request carries must be signed, as S3 requires,
so that no one can add a copy source or a metadata header to a signed request.
"""

from __future__ import annotations

import datetime as dt
import email.utils
import hashlib
import hmac
import re
import urllib.parse
from collections.abc import Iterable, Mapping

import attrs

from ...errors import (
    AccessDenied,
    AuthorizationHeaderMalformed,
    RequestTimeTooSkewed,
    SignatureDoesNotMatch,
)

ALGORITHM = "AWS4-HMAC-SHA256"
SERVICE = "s3"
TERMINATOR = "aws4_request"
UNSIGNED_PAYLOAD = "UNSIGNED-PAYLOAD"
STREAMING_PAYLOAD = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD"
STREAMING_PAYLOAD_TRAILER = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER"
STREAMING_UNSIGNED_TRAILER = "STREAMING-UNSIGNED-PAYLOAD-TRAILER"
EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
PAYLOAD_MARKERS = frozenset(
    {UNSIGNED_PAYLOAD, STREAMING_PAYLOAD, STREAMING_PAYLOAD_TRAILER, STREAMING_UNSIGNED_TRAILER}
)
MAX_SKEW = 15 * 60
"""Seconds a header-signed request's date may be from the gateway's clock."""
MAX_EXPIRES = 7 * 24 * 3600
"""Longest validity of a presigned URL (X-Amz-Expires), as S3 allows."""
TIMESTAMP_FORMAT = "%Y%m%dT%H%M%SZ"

_TIMESTAMP = re.compile(r"\d{8}T\d{6}Z")
_HEX64 = re.compile(r"[0-9a-f]{64}")
_UNRESERVED = "-_.~"


@attrs.frozen
class Claim:
    """What a request says about who signed it, parsed but not yet checked."""

    access_key: str
    timestamp: str
    """``YYYYMMDDTHHMMSSZ``."""
    region: str
    signed_headers: tuple[str, ...]
    signature: str
    payload: str
    """How the body is to be checked: the hex hash it must have, UNSIGNED-PAYLOAD or a
    STREAMING-... marker (as x-amz-content-sha256 says; UNSIGNED-PAYLOAD without it)."""
    canonical_requests: tuple[str, ...]
    """The canonical request under each path encoding tried, the as-sent one first."""
    presigned: bool

    @property
    def scope(self) -> str:
        return f"{self.timestamp[:8]}/{self.region}/{SERVICE}/{TERMINATOR}"


@attrs.frozen
class Verified:
    """A request whose signature matched: who sent it, and how its body is signed."""

    access_key: str
    payload: str
    seed_signature: str
    """The request's signature: the first link of an aws-chunked body's chain."""
    signing_key: bytes = attrs.field(repr=False)
    timestamp: str
    scope: str


def uri_encode(text: str, *, keep_slash: bool) -> str:
    """AWS's URI encoding: every byte of the UTF-8 but ``A-Za-z0-9-_.~`` (and ``/`` in
    a path) as ``%XX`` in upper case."""
    return urllib.parse.quote(
        text.encode("utf-8", "surrogatepass"), safe=_UNRESERVED + ("/" if keep_slash else "")
    )


def canonical_query(raw_query: str, *, drop: Iterable[str] = ()) -> str:
    """Canonical query string of a raw (as-sent) query: each name and value decoded and
    URI-encoded again, sorted by name then value; names in ``drop`` left out."""
    dropped = set(drop)
    pairs = []
    for piece in raw_query.split("&"):
        if not piece:
            continue
        name, _, value = piece.partition("=")
        name = urllib.parse.unquote(name)
        if name in dropped:
            continue
        pairs.append(
            (
                uri_encode(name, keep_slash=False),
                uri_encode(urllib.parse.unquote(value), keep_slash=False),
            )
        )
    return "&".join(f"{name}={value}" for name, value in sorted(pairs))


def canonical_headers(headers: Mapping[str, str], names: Iterable[str]) -> str:
    """``name:value\\n`` for each signed header, values trimmed and inner runs of
    spaces collapsed to one. Values are signed as the text their bytes mean in UTF-8
    (botocore sends ``x-amz-meta-*: é`` as UTF-8 and signs that text); ``headers``
    hold the bytes read as ISO-8859-1, as the ASGI server hands them over."""
    return "".join(
        f"{name}:{' '.join(header_text(headers.get(name, '')).split())}\n" for name in names
    )


def header_text(value: str) -> str:
    """The text a header value's bytes (read as ISO-8859-1) mean: UTF-8 if they are
    valid UTF-8, else ISO-8859-1 as read."""
    if value.isascii():
        return value
    try:
        return value.encode("latin-1").decode("utf-8")
    except (UnicodeEncodeError, UnicodeDecodeError):
        return value


def canonical_request(
    method: str,
    uri: str,
    query: str,
    headers: Mapping[str, str],
    signed_headers: Iterable[str],
    payload: str,
) -> str:
    names = list(signed_headers)
    return "\n".join(
        [method, uri, query, canonical_headers(headers, names), ";".join(names), payload]
    )


def string_to_sign(timestamp: str, scope: str, canonical: str) -> str:
    digest = hashlib.sha256(canonical.encode("utf-8", "surrogatepass")).hexdigest()
    return f"{ALGORITHM}\n{timestamp}\n{scope}\n{digest}"


def signing_key(secret: str, date: str, region: str, service: str = SERVICE) -> bytes:
    key = _hmac(f"AWS4{secret}".encode(), date)
    for part in (region, service, TERMINATOR):
        key = _hmac(key, part)
    return key


def signature(key: bytes, text: str) -> str:
    return hmac.new(key, text.encode("utf-8", "surrogatepass"), hashlib.sha256).hexdigest()


def _hmac(key: bytes, text: str) -> bytes:
    return hmac.new(key, text.encode("utf-8"), hashlib.sha256).digest()


# -- checking a request ---------------------------------------------------------------------


def parse(
    method: str, raw_path: str, raw_query: str, headers: Mapping[str, str], *, now: float
) -> Claim | None:
    """The request's SigV4 claim (header or presigned query), or None if it carries no
    credentials at all.

    ``raw_path`` and ``raw_query`` are as sent (percent-encoded); ``headers`` have
    lower-case names. Raises AuthorizationHeaderMalformed for credentials that cannot
    be parsed or break the rules, RequestTimeTooSkewed, and AccessDenied for a
    presigned URL that has expired or is not valid yet.
    """
    authorization = headers.get("authorization")
    query = urllib.parse.parse_qs(raw_query, keep_blank_values=True)
    presigned = "X-Amz-Signature" in query or "X-Amz-Credential" in query
    if authorization is not None and presigned:
        raise AuthorizationHeaderMalformed(
            "a request carries an Authorization header or a presigned query, not both"
        )
    if authorization is not None:
        fields = _authorization_fields(authorization)
        timestamp = headers.get("x-amz-date") or _from_http_date(headers.get("date"))
        payload = headers.get("x-amz-content-sha256", EMPTY_SHA256)
        signed_payload = payload
        if "x-amz-content-sha256" not in headers:
            # curl before 8 signs the empty hash and sends no header: S3 refuses that;
            # we check the signature as made and take the body as unsigned.
            payload = UNSIGNED_PAYLOAD
        elif payload not in PAYLOAD_MARKERS and _HEX64.fullmatch(payload) is None:
            raise AuthorizationHeaderMalformed(
                "x-amz-content-sha256 must be a hex SHA-256 or one of "
                f"{sorted(PAYLOAD_MARKERS)}, got {payload[:80]!r}"
            )
        expires = None
        query_string = canonical_query(raw_query)
    elif presigned:
        fields = _presigned_fields(query)
        timestamp = _single(query, "X-Amz-Date")
        payload = signed_payload = UNSIGNED_PAYLOAD
        expires = _expires(_single(query, "X-Amz-Expires"))
        query_string = canonical_query(raw_query, drop=["X-Amz-Signature"])
    else:
        return None
    algorithm, credential, signed, signature_hex = fields
    if algorithm != ALGORITHM:
        raise AuthorizationHeaderMalformed(f"the algorithm must be {ALGORITHM}, got {algorithm!r}")
    access_key, date, region, service, terminator = _credential(credential)
    if _TIMESTAMP.fullmatch(timestamp) is None:
        raise AuthorizationHeaderMalformed(
            f"the request date must look like 20130524T000000Z, got {timestamp[:40]!r}"
        )
    if date != timestamp[:8]:
        raise AuthorizationHeaderMalformed(
            f"the credential's date {date!r} is not the request's date {timestamp[:8]!r}"
        )
    if service != SERVICE or terminator != TERMINATOR:
        raise AuthorizationHeaderMalformed(
            f"the credential scope must end in /{SERVICE}/{TERMINATOR}, got {credential!r}"
        )
    signed_headers = tuple(signed.split(";"))
    _check_signed_headers(signed_headers, headers)
    _check_time(_seconds(timestamp), now, expires)
    uris = dict.fromkeys([raw_path, uri_encode(urllib.parse.unquote(raw_path), keep_slash=True)])
    canonical = tuple(
        canonical_request(method, uri, query_string, headers, signed_headers, signed_payload)
        for uri in uris
    )
    return Claim(
        access_key, timestamp, region, signed_headers, signature_hex, payload, canonical, presigned
    )


def verify(claim: Claim, secret: str) -> Verified:
    """Check ``claim`` against the access key's ``secret``; SignatureDoesNotMatch if
    no canonical form of the request gives the signature it carries."""
    key = signing_key(secret, claim.timestamp[:8], claim.region)
    for canonical in claim.canonical_requests:
        expected = signature(key, string_to_sign(claim.timestamp, claim.scope, canonical))
        if hmac.compare_digest(expected, claim.signature):
            return Verified(
                claim.access_key, claim.payload, claim.signature, key, claim.timestamp, claim.scope
            )
    raise SignatureDoesNotMatch(
        "the request signature we calculated does not match the signature you provided; "
        "check your secret key and signing method"
    )


def _authorization_fields(header: str) -> tuple[str, str, str, str]:
    algorithm, _, rest = header.strip().partition(" ")
    if algorithm == "AWS":
        raise AuthorizationHeaderMalformed(
            f"Signature Version 2 headers are not supported: sign with {ALGORITHM} (SigV4); "
            "only presigned URLs may use SigV2"
        )
    fields: dict[str, str] = {}
    for item in rest.split(","):
        name, sep, value = item.strip().partition("=")
        if not sep or name in fields:
            raise AuthorizationHeaderMalformed(f"malformed Authorization header field {item!r}")
        fields[name] = value
    try:
        return algorithm, fields["Credential"], fields["SignedHeaders"], fields["Signature"]
    except KeyError as missing:
        raise AuthorizationHeaderMalformed(
            f"the Authorization header lacks {missing.args[0]}"
        ) from None


def _presigned_fields(query: Mapping[str, list[str]]) -> tuple[str, str, str, str]:
    return (
        _single(query, "X-Amz-Algorithm"),
        _single(query, "X-Amz-Credential"),
        _single(query, "X-Amz-SignedHeaders"),
        _single(query, "X-Amz-Signature"),
    )


def _single(query: Mapping[str, list[str]], name: str) -> str:
    values = query.get(name)
    if not values or len(values) > 1:
        raise AuthorizationHeaderMalformed(f"a presigned URL needs exactly one {name}")
    return values[0]


def _credential(credential: str) -> tuple[str, str, str, str, str]:
    parts = credential.split("/")
    if len(parts) != 5 or not all(parts):
        raise AuthorizationHeaderMalformed(
            f"the credential must be KEY/DATE/REGION/s3/aws4_request, got {credential[:200]!r}"
        )
    access_key, date, region, service, terminator = parts
    return access_key, date, region, service, terminator


def _check_signed_headers(names: tuple[str, ...], headers: Mapping[str, str]) -> None:
    if list(names) != sorted(set(names)) or not all(names):
        raise AuthorizationHeaderMalformed(
            "SignedHeaders must list lower-case header names once each, sorted"
        )
    if "host" not in names:
        raise AuthorizationHeaderMalformed("the host header must be signed")
    missing = [name for name in names if name not in headers]
    if missing:
        raise AuthorizationHeaderMalformed(f"signed header {missing[0]!r} is not in the request")
    unsigned = sorted(name for name in headers if name.startswith("x-amz-") and name not in names)
    if unsigned:
        raise AccessDenied(
            f"there were headers present in the request which were not signed: {unsigned}"
        )


def _expires(text: str) -> int:
    """X-Amz-Expires in seconds; a negative one (an URL that expired before it was
    signed, which botocore makes for ExpiresIn < 0) counts as expired: 403."""
    if text.startswith("-") and text[1:].isascii() and text[1:].isdigit():
        return -1
    if not (text.isascii() and text.isdigit() and len(text) <= 7) or not (
        1 <= int(text) <= MAX_EXPIRES
    ):
        raise AuthorizationHeaderMalformed(
            f"X-Amz-Expires must be from 1 to {MAX_EXPIRES} seconds, got {text[:20]!r}"
        )
    return int(text)


def _check_time(signed_at: float, now: float, expires: int | None) -> None:
    if expires is None:
        if abs(now - signed_at) > MAX_SKEW:
            raise RequestTimeTooSkewed(
                "the difference between the request time and the server's time is more than "
                f"{MAX_SKEW // 60} minutes"
            )
        return
    if signed_at - now > MAX_SKEW:
        raise AccessDenied("the presigned URL is not valid yet")
    if now > signed_at + expires:
        raise AccessDenied("the presigned URL has expired")


def _seconds(timestamp: str) -> float:
    try:
        moment = dt.datetime.strptime(timestamp, TIMESTAMP_FORMAT).replace(tzinfo=dt.UTC)
    except ValueError:
        raise AuthorizationHeaderMalformed(f"{timestamp!r} is not a valid date") from None
    return moment.timestamp()


def _from_http_date(value: str | None) -> str:
    if value is None:
        raise AuthorizationHeaderMalformed("a signed request needs an x-amz-date or Date header")
    try:
        moment = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        raise AuthorizationHeaderMalformed(f"Date {value[:60]!r} is not an HTTP date") from None
    return moment.astimezone(dt.UTC).strftime(TIMESTAMP_FORMAT)


# -- making a signature (the CLI's client side) ----------------------------------------------


def sign_headers(
    method: str,
    url: str,
    headers: Mapping[str, str],
    payload_sha256: str,
    *,
    access_key: str,
    secret: str,
    now: float,
    region: str = "us-east-1",
) -> dict[str, str]:
    """The headers to send for a header-signed request: ``headers`` (names lower-cased)
    plus host, x-amz-date, x-amz-content-sha256 and Authorization. ``url`` is the
    request's URL as it will be sent (already percent-encoded)."""
    parts = urllib.parse.urlsplit(url)
    timestamp = dt.datetime.fromtimestamp(now, dt.UTC).strftime(TIMESTAMP_FORMAT)
    signed = {name.lower(): value for name, value in headers.items()}
    signed.update(
        {"host": parts.netloc, "x-amz-date": timestamp, "x-amz-content-sha256": payload_sha256}
    )
    names = sorted(signed)
    scope = f"{timestamp[:8]}/{region}/{SERVICE}/{TERMINATOR}"
    canonical = canonical_request(
        method, parts.path or "/", canonical_query(parts.query), signed, names, payload_sha256
    )
    key = signing_key(secret, timestamp[:8], region)
    value = signature(key, string_to_sign(timestamp, scope, canonical))
    signed["authorization"] = (
        f"{ALGORITHM} Credential={access_key}/{scope}, SignedHeaders={';'.join(names)}, "
        f"Signature={value}"
    )
    return signed
