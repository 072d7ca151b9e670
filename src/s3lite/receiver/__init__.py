"""The object API: splitting, joining, manifests, clean-up."""

from .janitor import Janitor, JanitorReport
from .manifest import Manifest, ObjectInfo, ObjectList, PartRecord, Segment
from .manifest_store import ManifestStore, SqliteManifestStore
from .receiver import ObjectRead, Receiver

__all__ = [
    "Janitor",
    "JanitorReport",
    "Manifest",
    "ManifestStore",
    "ObjectInfo",
    "ObjectList",
    "ObjectRead",
    "PartRecord",
    "Receiver",
    "Segment",
    "SqliteManifestStore",
]
