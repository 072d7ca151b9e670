"""Every error s3lite raises on purpose, in one place.

Each class maps to one thing a caller can act on (and, in the gateway, to one HTTP
status). Messages name the thing that was wrong, what was expected and what was got.
"""

from __future__ import annotations


class S3liteError(Exception):
    """Base class of every error s3lite raises on purpose."""

    http_status = 500


class NotFound(S3liteError):
    """The object key (or bucket) does not exist."""

    http_status = 404


class NoSuchBucket(NotFound):
    """The bucket named in a request does not exist."""


class BucketNotEmpty(S3liteError):
    """A bucket that still holds objects cannot be deleted."""

    http_status = 409


class InvalidKey(S3liteError):
    """An object key or bucket name breaks the naming rules."""

    http_status = 400


class InvalidBucketName(InvalidKey):
    """A bucket name that breaks S3's naming rules."""


class InvalidArgument(S3liteError):
    """A request argument (size, metadata, listing limit...) is out of bounds."""

    http_status = 400


class InvalidRange(S3liteError):
    """A byte range that does not fit the object (HTTP 416)."""

    http_status = 416

    def __init__(self, message: str, *, size: int) -> None:
        super().__init__(message)
        self.size = size


class BodyLengthMismatch(S3liteError):
    """The body was shorter or longer than the size the client declared."""

    http_status = 400

    def __init__(self, *, declared: int, received: int) -> None:
        if received > declared:
            got = f"more than {declared} bytes arrived"
        else:
            got = f"the body ended after {received} bytes"
        super().__init__(f"declared size is {declared} bytes but {got}; nothing was stored")
        self.declared = declared
        self.received = received


class RequestTimeout(S3liteError):
    """The client stopped sending its body; the upload was abandoned."""

    http_status = 400


class ChecksumMismatch(S3liteError):
    """Bytes read back do not match the checksum recorded when they were written."""

    http_status = 500


class PartNotFound(S3liteError):
    """A storage node does not hold the part file that was asked for."""

    http_status = 404

    def __init__(self, node_id: str, sector: int, name: str) -> None:
        super().__init__(f"node {node_id!r} holds no part {name!r} in sector {sector}")
        self.node_id = node_id
        self.sector = sector
        self.name = name


class DataLoss(S3liteError):
    """A committed object cannot be read back: a part is missing or damaged."""

    http_status = 500


class DamagedPart(DataLoss):
    """A storage node found a part file damaged (a block whose checksum does not match,
    a truncated file, a header that lies) and moved it to its quarantine directory:
    it is never served again. Raised before the first byte of a read when the first
    block read is bad, in the middle of the stream otherwise."""

    def __init__(self, node_id: str, sector: int, name: str, reason: str) -> None:
        super().__init__(f"node {node_id!r}: part {name!r} in sector {sector} is damaged: {reason}")
        self.node_id = node_id
        self.sector = sector
        self.name = name
        self.reason = reason


class NotEnoughParts(DataLoss):
    """Fewer than six of a stripe row's units (of a segment's parts) are available,
    so the missing data cannot be rebuilt."""


class DiskFull(S3liteError):
    """A storage node ran out of space; the partial file was removed."""

    http_status = 507


class InsufficientCapacity(DiskFull):
    """Enough nodes are up, but fewer than six of them have room for new parts: nothing
    can be written until space is freed or nodes join (507, like DiskFull)."""


class NodeUnavailable(S3liteError):
    """A storage node could not be reached, or answered with a server error."""

    http_status = 503

    def __init__(self, node: str, reason: str) -> None:
        super().__init__(f"storage node {node} is unavailable: {reason}")
        self.node = node
        self.reason = reason


class NotEnoughNodes(S3liteError):
    """Placement needs six distinct nodes and the ring has fewer (or fewer are up)."""

    http_status = 503


class PartsUnavailable(NodeUnavailable):
    """A segment cannot be read: more of its parts are unavailable (missing, damaged or
    on nodes that are down) than its parity covers. Names the nodes (503)."""

    def __init__(self, nodes: list[str], reason: str) -> None:
        super().__init__(", ".join(nodes) or "(none)", reason)
        self.nodes = nodes


class JoinRefused(S3liteError):
    """A node cannot join: duplicate id, not empty, unreachable, or a bad request."""

    http_status = 400


class CorruptArchive(S3liteError):
    """A sector archive is malformed or its CRCs do not match its bytes."""

    http_status = 400


class NotImplementedYet(S3liteError):
    """A protocol feature s3lite does not support (yet)."""

    http_status = 501


class MethodNotAllowed(S3liteError):
    """An HTTP method the resource does not support."""

    http_status = 405


class InvalidName(S3liteError):
    """A part name or sector number that a storage node refuses to turn into a path."""

    http_status = 400


# -- the S3 protocol: conditions, multipart, digests ---------------------------------------


class PreconditionFailed(S3liteError):
    """A conditional request (If-Match, If-None-Match: *, If-Unmodified-Since, a copy
    source condition) whose condition does not hold; nothing was changed."""

    http_status = 412


class NotModified(S3liteError):
    """A conditional read (If-None-Match, If-Modified-Since) of an unchanged object."""

    http_status = 304


class NoSuchUpload(NotFound):
    """A multipart upload id that is unknown, aborted or completed into another key."""


class InvalidPart(S3liteError):
    """A CompleteMultipartUpload naming a part that was not uploaded, or with a wrong ETag."""

    http_status = 400


class InvalidPartOrder(S3liteError):
    """A CompleteMultipartUpload whose part numbers are not in ascending order."""

    http_status = 400


class EntityTooSmall(S3liteError):
    """A multipart part other than the last is under the 5 MiB minimum."""

    http_status = 400


class EntityTooLarge(S3liteError):
    """A body larger than the operation allows (5 GiB for a single PUT or part)."""

    http_status = 400


class MalformedXML(S3liteError):
    """A request body that is not the XML document the operation expects."""

    http_status = 400


class InvalidDigest(S3liteError):
    """A Content-MD5 or x-amz-checksum-* value that is not well formed."""

    http_status = 400


class BadDigest(S3liteError):
    """The body does not match the Content-MD5 or x-amz-checksum-* the client sent;
    nothing was stored."""

    http_status = 400


# -- authentication and access -----------------------------------------------------------


class AccessDenied(S3liteError):
    """The request carries no credentials, an expired presigned URL, or a key that may
    not do this to this bucket."""

    http_status = 403


class InvalidAccessKeyId(S3liteError):
    """The access key id is not one this gateway knows."""

    http_status = 403


class SignatureDoesNotMatch(S3liteError):
    """The request's SigV4 signature (or one of its chunk signatures) is wrong."""

    http_status = 403


class RequestTimeTooSkewed(S3liteError):
    """The request's date is more than 15 minutes from the gateway's clock."""

    http_status = 403


class AuthorizationHeaderMalformed(S3liteError):
    """An Authorization header or presigned query that cannot be parsed as SigV4."""

    http_status = 400


class XAmzContentSHA256Mismatch(S3liteError):
    """The body's SHA-256 differs from the x-amz-content-sha256 the request signed;
    nothing was stored."""

    http_status = 400


class BucketAlreadyExists(S3liteError):
    """The bucket name is taken by another key."""

    http_status = 409


class InvalidPartNumber(S3liteError):
    """GET/HEAD ?partNumber=N of an object that has fewer than N parts (416)."""

    http_status = 416


class InvalidRequest(S3liteError):
    """A request S3 refuses as a whole, e.g. copying an object onto itself without
    changing anything about it."""

    http_status = 400


class InvalidStorageClass(InvalidArgument):
    """A storage class other than STANDARD or REDUCED_REDUNDANCY."""


class KeyTooLong(InvalidKey):
    """An object key longer than S3's 1,024 bytes of UTF-8."""
