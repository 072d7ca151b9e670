"""The one table from an exception to what the client sees: HTTP status, S3 error
code and any extra headers (after Garage's ``src/api/s3/error.rs``).

Every S3liteError class is in :data:`TABLE` or inherits an entry (the lookup walks the
class's MRO, so NoSuchBucket finds its own row before NotFound's). What is not in the
table at all is a bug: it becomes a 500 InternalError whose message names the request id
and nothing else, and the gateway logs the traceback.

Choices where S3 leaves room:

* DiskFull is 507 InsufficientStorage, not 503 SlowDown: a node out of space is not a
  transient overload, and botocore, the aws cli and rclone retry 503s, streaming the
  whole body again each time for nothing; 507 tells the operator what to fix.
* Errors raised after part of a body was left unread (RequestTimeout, IncompleteBody)
  add ``Connection: close``: the rest of the body would otherwise be read as the next
  request. The app adds the same header to any error sent before the body was read.
"""

from __future__ import annotations

from collections.abc import Callable

import attrs

from .. import errors as e
from ..asgi import BadRequest, ClientDisconnected

Headers = list[tuple[str, str]]
_CLOSE: Headers = [("connection", "close")]


@attrs.frozen
class Entry:
    status: int
    code: str
    headers: Callable[[BaseException], Headers] = lambda exc: []


def _content_range(exc: BaseException) -> Headers:
    assert isinstance(exc, e.InvalidRange)
    return [("content-range", f"bytes */{exc.size}")]


TABLE: dict[type[BaseException], Entry] = {
    # objects and buckets
    e.NotFound: Entry(404, "NoSuchKey"),
    e.NoSuchBucket: Entry(404, "NoSuchBucket"),
    e.NoSuchUpload: Entry(404, "NoSuchUpload"),
    e.BucketNotEmpty: Entry(409, "BucketNotEmpty"),
    e.BucketAlreadyExists: Entry(409, "BucketAlreadyExists"),
    e.InvalidRange: Entry(416, "InvalidRange", _content_range),
    e.BodyLengthMismatch: Entry(400, "IncompleteBody", lambda exc: _CLOSE),
    e.RequestTimeout: Entry(400, "RequestTimeout", lambda exc: _CLOSE),
    e.InvalidKey: Entry(400, "InvalidArgument"),
    e.KeyTooLong: Entry(400, "KeyTooLongError"),
    e.InvalidBucketName: Entry(400, "InvalidBucketName"),
    e.InvalidArgument: Entry(400, "InvalidArgument"),
    e.MalformedXML: Entry(400, "MalformedXML"),
    e.InvalidDigest: Entry(400, "InvalidDigest"),
    e.BadDigest: Entry(400, "BadDigest"),
    e.PreconditionFailed: Entry(412, "PreconditionFailed"),
    e.NotModified: Entry(304, "NotModified"),
    e.InvalidPart: Entry(400, "InvalidPart"),
    e.InvalidPartOrder: Entry(400, "InvalidPartOrder"),
    e.EntityTooSmall: Entry(400, "EntityTooSmall"),
    e.EntityTooLarge: Entry(400, "EntityTooLarge"),
    # AWS answers 416 InvalidPartNumber; ceph's s3-tests (and RGW) expect this:
    e.InvalidPartNumber: Entry(400, "InvalidPart"),
    e.InvalidRequest: Entry(400, "InvalidRequest"),
    e.InvalidStorageClass: Entry(400, "InvalidStorageClass"),
    # authentication
    e.AccessDenied: Entry(403, "AccessDenied"),
    e.InvalidAccessKeyId: Entry(403, "InvalidAccessKeyId"),
    e.SignatureDoesNotMatch: Entry(403, "SignatureDoesNotMatch"),
    e.RequestTimeTooSkewed: Entry(403, "RequestTimeTooSkewed"),
    e.AuthorizationHeaderMalformed: Entry(400, "AuthorizationHeaderMalformed"),
    e.XAmzContentSHA256Mismatch: Entry(400, "XAmzContentSHA256Mismatch"),
    # the protocol
    e.NotImplementedYet: Entry(501, "NotImplemented"),
    e.MethodNotAllowed: Entry(405, "MethodNotAllowed"),
    e.JoinRefused: Entry(400, "InvalidRequest"),
    e.CorruptArchive: Entry(400, "InvalidRequest"),
    e.InvalidName: Entry(400, "InvalidRequest"),
    BadRequest: Entry(400, "InvalidRequest"),
    ClientDisconnected: Entry(400, "IncompleteBody", lambda exc: _CLOSE),
    # the cluster
    e.NodeUnavailable: Entry(503, "ServiceUnavailable"),
    e.NotEnoughNodes: Entry(503, "ServiceUnavailable"),
    e.DiskFull: Entry(507, "InsufficientStorage"),
    e.PartNotFound: Entry(500, "InternalError"),  # a missing part is our fault, not a 404
    e.ChecksumMismatch: Entry(500, "InternalError"),
    e.DataLoss: Entry(500, "InternalError"),
    e.S3liteError: Entry(500, "InternalError"),
}

INTERNAL = Entry(500, "InternalError")


def entry_of(exc: BaseException) -> Entry:
    """The table's row for ``exc``: its class's, or its nearest base class's."""
    for cls in type(exc).__mro__:
        found = TABLE.get(cls)
        if found is not None:
            return found
    return INTERNAL


def is_known(exc: BaseException) -> bool:
    """Whether ``exc`` is an error the table describes (else: a bug, logged in full)."""
    return any(cls in TABLE for cls in type(exc).__mro__)
