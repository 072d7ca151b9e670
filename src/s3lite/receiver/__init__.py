"""The object API: splitting, joining, manifests, multipart sessions, clean-up."""

from .checksums import ExpectedDigests
from .conditions import ReadConditions, WriteCondition
from .janitor import Janitor, JanitorReport
from .manifest import (
    CompletedPart,
    Manifest,
    MultipartUpload,
    ObjectHeaders,
    ObjectInfo,
    ObjectList,
    PartInfo,
    PartList,
    PartRecord,
    Segment,
    UploadList,
)
from .manifest_protocol import ManifestStore
from .manifest_store import SqliteManifestStore
from .reads import ObjectRead
from .receiver import Receiver

__all__ = [
    "CompletedPart",
    "ExpectedDigests",
    "Janitor",
    "JanitorReport",
    "Manifest",
    "ManifestStore",
    "MultipartUpload",
    "ObjectHeaders",
    "ObjectInfo",
    "ObjectList",
    "ObjectRead",
    "PartInfo",
    "PartList",
    "PartRecord",
    "ReadConditions",
    "Receiver",
    "Segment",
    "SqliteManifestStore",
    "UploadList",
    "WriteCondition",
]
