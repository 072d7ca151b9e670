"""From an HTTP request to exactly one S3 (or admin) operation, before anything runs.

Theory of operation (after Garage's ``src/api/s3/router.rs``): S3 multiplexes dozens of
operations onto five methods and two kinds of path (``/bucket`` and ``/bucket/key``),
told apart by *sub-resource* query parameters (``?acl``, ``?uploads``, ``?uploadId=``,
``?tagging``...) and one header (``x-amz-copy-source``). A router that looks only at the
method and the path turns ``PUT /b/k?tagging`` into a PutObject that replaces the object
with the tagging XML. So every request is routed on all four, here, by table:

* the query's keys are split into sub-resources (which choose the operation),
  parameters (which operations take) and everything else, which is an error;
* (method, level, sub-resource) is looked up in :data:`_TABLE`; a combination that is
  not there is an error (MethodNotAllowed), never a fall-through to the plain operation;
* parameters that only some operations take (``partNumber``, ``response-*``) are refused
  on the others, so ``PUT /b/k?partNumber=1`` is not a PutObject either.

Operations s3lite does not implement are still recognised (their name is in the table)
and have ``implemented`` False: the gateway answers them 501 NotImplemented and changes
nothing. Each operation also says which :class:`Access` it needs, which the policy checks
before a handler runs (the copy source's bucket is read access on top of that).

Pure: no I/O; errors raised are S3liteErrors (InvalidArgument, MethodNotAllowed).
"""

from __future__ import annotations

import enum
import urllib.parse
from collections.abc import Mapping

import attrs

from ..errors import InvalidArgument, KeyTooLong, MethodNotAllowed

ADMIN_PREFIX = "_admin"
"""The first path segment of admin routes; no bucket can have this name."""

MAX_PART_NUMBER = 10_000
MAX_KEY_BYTES = 1024


class Access(enum.Enum):
    """What an operation needs from the key that signed it."""

    LIST_BUCKETS = "list buckets"
    CREATE_BUCKET = "create a bucket"
    READ = "read the bucket"
    WRITE = "write the bucket"
    OWNER = "own the bucket"
    ADMIN = "be the root key"


class Level(enum.Enum):
    SERVICE = "/"
    BUCKET = "/bucket"
    OBJECT = "/bucket/key"


@attrs.frozen
class CopySource:
    """The object named by ``x-amz-copy-source`` (URL-decoded)."""

    bucket: str
    key: str
    version_id: str | None = None


@attrs.frozen
class Operation:
    """One S3 (or admin) operation, with the parameters that decide what it acts on."""

    name: str
    """The S3 API name ("PutObject", "ListObjectsV2", ...), or "Admin"."""
    access: Access
    bucket: str | None = None
    key: str | None = None
    """The object key; for "Admin", the route under /_admin/ ("status", "keys/..."). """
    upload_id: str | None = None
    part_number: int | None = None
    version_id: str | None = None
    copy_source: CopySource | None = None

    @property
    def implemented(self) -> bool:
        return self.name in IMPLEMENTED


R, W, OWN = Access.READ, Access.WRITE, Access.OWNER
S, B, K = Level.SERVICE, Level.BUCKET, Level.OBJECT

# (method, level, sub-resource or None) -> (operation, access). Operations with a
# copy-source twin and the two listings are refined in route().
_TABLE: dict[tuple[str, Level, str | None], tuple[str, Access]] = {
    ("GET", S, None): ("ListBuckets", Access.LIST_BUCKETS),
    # -- buckets
    ("PUT", B, None): ("CreateBucket", Access.CREATE_BUCKET),
    ("HEAD", B, None): ("HeadBucket", R),
    ("DELETE", B, None): ("DeleteBucket", OWN),
    ("GET", B, None): ("ListObjects", R),
    ("POST", B, None): ("PostObject", W),
    ("POST", B, "delete"): ("DeleteObjects", W),
    ("GET", B, "uploads"): ("ListMultipartUploads", R),
    ("GET", B, "versions"): ("ListObjectVersions", R),
    ("GET", B, "location"): ("GetBucketLocation", R),
    ("GET", B, "versioning"): ("GetBucketVersioning", R),
    ("PUT", B, "versioning"): ("PutBucketVersioning", OWN),
    ("GET", B, "policyStatus"): ("GetBucketPolicyStatus", OWN),
    ("GET", B, "session"): ("CreateSession", R),
    # -- objects
    ("GET", K, None): ("GetObject", R),
    ("HEAD", K, None): ("HeadObject", R),
    ("PUT", K, None): ("PutObject", W),
    ("DELETE", K, None): ("DeleteObject", W),
    ("POST", K, "uploads"): ("CreateMultipartUpload", W),
    ("PUT", K, "uploadId"): ("UploadPart", W),
    ("POST", K, "uploadId"): ("CompleteMultipartUpload", W),
    ("DELETE", K, "uploadId"): ("AbortMultipartUpload", W),
    ("GET", K, "uploadId"): ("ListParts", R),
    ("GET", K, "torrent"): ("GetObjectTorrent", R),
    ("GET", K, "attributes"): ("GetObjectAttributes", R),
    ("POST", K, "restore"): ("RestoreObject", W),
    ("POST", K, "select"): ("SelectObjectContent", R),
    ("PUT", K, "renameObject"): ("RenameObject", W),
}


def _bucket_config(sub: str, name: str, *, delete: bool = True) -> None:
    """A bucket configuration sub-resource: Get/Put (and Delete) Bucket<name>, owner only."""
    _TABLE["GET", B, sub] = (f"Get{name}", OWN)
    _TABLE["PUT", B, sub] = (f"Put{name}", OWN)
    if delete:
        _TABLE["DELETE", B, sub] = (f"Delete{name}", OWN)


def _object_config(sub: str, name: str, *, delete: bool = False) -> None:
    _TABLE["GET", K, sub] = (f"Get{name}", R)
    _TABLE["PUT", K, sub] = (f"Put{name}", W)
    if delete:
        _TABLE["DELETE", K, sub] = (f"Delete{name}", W)


for _sub, _name, _delete in [
    ("acl", "BucketAcl", False),
    ("policy", "BucketPolicy", True),
    ("cors", "BucketCors", True),
    ("lifecycle", "BucketLifecycleConfiguration", True),
    ("website", "BucketWebsite", True),
    ("object-lock", "ObjectLockConfiguration", False),
    ("tagging", "BucketTagging", True),
    ("encryption", "BucketEncryption", True),
    ("replication", "BucketReplication", True),
    ("logging", "BucketLogging", False),
    ("notification", "BucketNotificationConfiguration", False),
    ("requestPayment", "BucketRequestPayment", False),
    ("accelerate", "BucketAccelerateConfiguration", False),
    ("analytics", "BucketAnalyticsConfiguration", True),
    ("inventory", "BucketInventoryConfiguration", True),
    ("metrics", "BucketMetricsConfiguration", True),
    ("intelligent-tiering", "BucketIntelligentTieringConfiguration", True),
    ("ownershipControls", "BucketOwnershipControls", True),
    ("publicAccessBlock", "PublicAccessBlock", True),
    ("metadataTable", "BucketMetadataTableConfiguration", True),
]:
    _bucket_config(_sub, _name, delete=_delete)
_TABLE["DELETE", B, "lifecycle"] = ("DeleteBucketLifecycle", OWN)
for _sub, _name, _delete in [
    ("acl", "ObjectAcl", False),
    ("tagging", "ObjectTagging", True),
    ("retention", "ObjectRetention", False),
    ("legal-hold", "ObjectLegalHold", False),
]:
    _object_config(_sub, _name, delete=_delete)

_LISTED_CONFIGS = {"analytics", "inventory", "metrics", "intelligent-tiering"}
"""Sub-resources whose GET without ``id`` lists every configuration."""

SUBRESOURCES = frozenset(sub for _, _, sub in _TABLE if sub is not None)

_LIST_PARAMETERS = frozenset(
    {
        "prefix", "delimiter", "marker", "max-keys", "encoding-type", "continuation-token",
        "start-after", "fetch-owner", "list-type", "key-marker", "upload-id-marker",
        "version-id-marker", "max-uploads", "max-parts", "part-number-marker", "max-buckets",
        "bucket-region", "optional-object-attributes",
    }
)  # fmt: skip
RESPONSE_OVERRIDES = frozenset(
    {
        "response-content-type", "response-content-language", "response-expires",
        "response-cache-control", "response-content-disposition", "response-content-encoding",
    }
)  # fmt: skip
PRESIGN_PARAMETERS = frozenset(
    {
        "X-Amz-Algorithm", "X-Amz-Credential", "X-Amz-Date", "X-Amz-Expires",
        "X-Amz-SignedHeaders", "X-Amz-Signature", "X-Amz-Security-Token",
        "AWSAccessKeyId", "Signature", "Expires", "content-type", "content-md5",
    }
)  # fmt: skip
"""SigV4's presigned query parameters, then SigV2's (auth/sigv2.py): botocore copies
the Content-Type and Content-MD5 it signed into a SigV2 URL's query; the request must
still send them as headers, which is what the signature is checked against."""
PARAMETERS = (
    _LIST_PARAMETERS
    | RESPONSE_OVERRIDES
    | PRESIGN_PARAMETERS
    | {"partNumber", "versionId", "id", "select-type", "x-id"}
)
"""Query keys that are not sub-resources but that some operation takes. botocore adds
``x-id=<Operation>`` to some requests; it names the operation and is ignored."""

_TAKES_PART_NUMBER = frozenset({"GetObject", "HeadObject", "UploadPart", "UploadPartCopy"})
_TAKES_OVERRIDES = frozenset({"GetObject"})

IMPLEMENTED = frozenset(
    {
        "ListBuckets", "CreateBucket", "HeadBucket", "DeleteBucket", "GetBucketLocation",
        "GetBucketVersioning", "ListObjects", "ListObjectsV2", "ListObjectVersions",
        "GetObject", "HeadObject", "PutObject", "DeleteObject", "DeleteObjects", "Admin",
        "CopyObject", "CreateMultipartUpload", "UploadPart", "UploadPartCopy",
        "CompleteMultipartUpload", "AbortMultipartUpload", "ListParts", "ListMultipartUploads",
        "GetObjectAttributes", "GetBucketAcl", "PutBucketAcl", "GetObjectAcl", "PutObjectAcl",
    }
)  # fmt: skip
"""Operations the gateway has a handler for; every other routed operation gets 501."""

OPERATIONS = frozenset(
    {name for name, _ in _TABLE.values()}
    | {"ListObjectsV2", "CopyObject", "UploadPartCopy", "Admin"}
    | {f"List{name}s" for name in ("BucketAnalyticsConfiguration",
                                   "BucketInventoryConfiguration",
                                   "BucketMetricsConfiguration",
                                   "BucketIntelligentTieringConfiguration")}
)  # fmt: skip
"""Every operation name route() can return."""

METHODS = frozenset({"GET", "HEAD", "PUT", "POST", "DELETE"})


def route(
    method: str,
    path: str,
    query: Mapping[str, str],
    headers: Mapping[str, str],
    *,
    domain: str | None = None,
) -> Operation:
    """The operation a request asks for.

    ``path`` is percent-decoded (``/bucket/key``: the key may contain ``/``), ``query``
    maps decoded names to decoded values, ``headers`` has lower-case names. With
    ``domain``, a ``Host`` of ``<bucket>.<domain>`` names the bucket (virtual-hosted
    style) and the whole path is the key; path style always works.

    Raises MethodNotAllowed for a method or a (method, sub-resource) pair S3 does not
    have on that resource, and InvalidArgument for an unknown query key, two
    sub-resources at once, a parameter the operation does not take, or a malformed
    ``partNumber`` or ``x-amz-copy-source``; KeyTooLong for a key over 1,024 bytes.
    """
    if method not in METHODS:
        raise MethodNotAllowed(f"{method} is not an S3 method (GET, HEAD, PUT, POST, DELETE)")
    bucket, key = _split(path, headers.get("host"), domain)
    if bucket == ADMIN_PREFIX:
        return Operation("Admin", Access.ADMIN, key=key)
    if key is not None and len(key.encode("utf-8", "surrogatepass")) > MAX_KEY_BYTES:
        raise KeyTooLong(f"an object key is at most {MAX_KEY_BYTES} bytes of UTF-8")
    unknown = sorted(name for name in query if name not in SUBRESOURCES | PARAMETERS)
    if unknown:
        raise InvalidArgument(
            f"unknown query parameter {unknown[0]!r}: not an S3 sub-resource or parameter "
            "s3lite knows, so the request was not run"
        )
    subs = sorted(name for name in query if name in SUBRESOURCES)
    if len(subs) > 1:
        raise InvalidArgument(f"a request names one sub-resource at most, got {subs}")
    sub = subs[0] if subs else None
    level = S if bucket is None else B if key is None else K
    found = _TABLE.get((method, level, sub))
    if found is None:
        where = level.value + (f"?{sub}" if sub else "")
        raise MethodNotAllowed(f"{method} is not allowed on {where}")
    name, access = found
    copy_source = None
    if level is K and "x-amz-copy-source" in headers:
        if name not in ("PutObject", "UploadPart"):
            raise InvalidArgument(f"x-amz-copy-source cannot be sent with {name}")
        name = "CopyObject" if name == "PutObject" else "UploadPartCopy"
        copy_source = parse_copy_source(headers["x-amz-copy-source"])
    elif name == "ListObjects" and query.get("list-type") == "2":
        name = "ListObjectsV2"
    elif sub in _LISTED_CONFIGS and method == "GET" and "id" not in query:
        name = f"List{name[3:]}s"
    part_number = _part_number(query.get("partNumber"))
    if part_number is not None and name not in _TAKES_PART_NUMBER:
        raise InvalidArgument(f"{name} takes no partNumber")
    if name in ("UploadPart", "UploadPartCopy") and part_number is None:
        raise InvalidArgument(f"{name} needs a partNumber")
    overrides = sorted(RESPONSE_OVERRIDES & query.keys())
    if overrides and name not in _TAKES_OVERRIDES:
        raise InvalidArgument(f"{overrides[0]} is only allowed on GetObject")
    return Operation(
        name,
        access,
        bucket,
        key,
        upload_id=query.get("uploadId"),
        part_number=part_number,
        version_id=query.get("versionId"),
        copy_source=copy_source,
    )


def _split(path: str, host: str | None, domain: str | None) -> tuple[str | None, str | None]:
    """(bucket, key) of a request; None where the path stops short of them."""
    if not path.startswith("/"):
        raise InvalidArgument(f"a request path starts with '/', got {path!r}")
    virtual = virtual_bucket(host, domain)
    if virtual is not None:
        return virtual, (path[1:] or None)
    bucket, _, key = path[1:].partition("/")
    return (bucket or None), (key or None)


def virtual_bucket(host: str | None, domain: str | None) -> str | None:
    """The bucket a ``Host`` of ``<bucket>.<domain>`` names (virtual-hosted style),
    or None (path style: no domain, no host, or a host outside the domain)."""
    if not (domain and host):
        return None
    name = host.rsplit(":", 1)[0] if not host.endswith("]") else host
    name = name.lower().rstrip(".")
    if name.endswith("." + domain.lower()):
        return name[: -len(domain) - 1]
    return None


def _part_number(text: str | None) -> int | None:
    if text is None:
        return None
    if not (text.isascii() and text.isdigit() and len(text) <= 5) or not (
        1 <= int(text) <= MAX_PART_NUMBER
    ):
        raise InvalidArgument(
            f"partNumber must be an integer from 1 to {MAX_PART_NUMBER:,}, got {text[:32]!r}"
        )
    return int(text)


def parse_copy_source(header: str) -> CopySource:
    """``x-amz-copy-source``: ``[/]bucket/key[?versionId=V]``, URL-encoded."""
    raw, _, version = header.partition("?")
    version_id = None
    if version:
        name, _, value = version.partition("=")
        if name != "versionId" or not value:
            raise InvalidArgument(f"x-amz-copy-source may only carry ?versionId=, got {header!r}")
        version_id = urllib.parse.unquote(value)
    try:
        decoded = urllib.parse.unquote(raw.lstrip("/"), errors="strict")
    except UnicodeDecodeError:
        raise InvalidArgument(f"x-amz-copy-source is not URL-encoded UTF-8: {header!r}") from None
    bucket, _, key = decoded.partition("/")
    if not bucket or not key:
        raise InvalidArgument(f"x-amz-copy-source must be /bucket/key, got {header!r}")
    return CopySource(bucket, key, version_id)
