"""s3lite: a small S3-like object store.

Objects are cut into six data parts plus parity parts (Reed-Solomon), each on a
distinct storage node, so any six of them rebuild the object; a 360-sector
consistent-hashing ring decides where each part lives, and nodes can join while
traffic flows. Start with :class:`LocalCluster`.
"""

from .cluster import Cluster, LocalCluster
from .errors import (
    BodyLengthMismatch,
    BucketNotEmpty,
    ChecksumMismatch,
    CorruptArchive,
    DamagedPart,
    DataLoss,
    DiskFull,
    InsufficientCapacity,
    InvalidArgument,
    InvalidBucketName,
    InvalidKey,
    InvalidName,
    InvalidRange,
    JoinRefused,
    MethodNotAllowed,
    NodeUnavailable,
    NoSuchBucket,
    NotEnoughNodes,
    NotEnoughParts,
    NotFound,
    NotImplementedYet,
    PartNotFound,
    PartsUnavailable,
    S3liteError,
)
from .receiver import ObjectInfo, ObjectList, ObjectRead, Receiver

__all__ = [
    "BodyLengthMismatch",
    "BucketNotEmpty",
    "ChecksumMismatch",
    "Cluster",
    "CorruptArchive",
    "DamagedPart",
    "DataLoss",
    "DiskFull",
    "InsufficientCapacity",
    "InvalidArgument",
    "InvalidBucketName",
    "InvalidKey",
    "InvalidName",
    "InvalidRange",
    "JoinRefused",
    "LocalCluster",
    "MethodNotAllowed",
    "NoSuchBucket",
    "NodeUnavailable",
    "NotEnoughNodes",
    "NotEnoughParts",
    "NotFound",
    "NotImplementedYet",
    "ObjectInfo",
    "ObjectList",
    "ObjectRead",
    "PartNotFound",
    "PartsUnavailable",
    "Receiver",
    "S3liteError",
]
