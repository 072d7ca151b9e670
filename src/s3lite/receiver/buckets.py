"""Buckets: S3's top-level namespace, layered over the receiver's flat key space.

An object ``key`` in bucket ``b`` is stored under the receiver key ``b/key``. Bucket
names cannot contain ``/``, so the mapping is one to one, and listing a bucket is
listing the prefix ``b/``. Names follow S3's rules: 3 to 63 characters of lower-case
letters, digits, ``.`` and ``-``, starting and ending with a letter or digit, and not
shaped like an IP address.
"""

from __future__ import annotations

import datetime as dt
import re
import time

import attrs

from ..errors import BucketNotEmpty, InvalidBucketName, InvalidKey, NoSuchBucket
from .keys import S3_MAX_KEY_BYTES
from .manifest_protocol import ManifestStore

_NAME = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
_IP = re.compile(r"\d+\.\d+\.\d+\.\d+")


def check_bucket(name: str) -> str:
    """``name`` if it is a valid bucket name, else InvalidBucketName saying why."""
    if _NAME.fullmatch(name) is None or ".." in name or _IP.fullmatch(name):
        raise InvalidBucketName(
            f"invalid bucket name {name!r}: 3-63 lower-case letters, digits, '.' or '-', "
            "starting and ending with a letter or digit"
        )
    return name


def object_key(bucket: str, key: str) -> str:
    """The receiver key of ``key`` in ``bucket`` (the bucket name must be valid)."""
    if len(key.encode("utf-8", "surrogatepass")) > S3_MAX_KEY_BYTES:
        raise InvalidKey(f"an object key is at most {S3_MAX_KEY_BYTES} bytes of UTF-8")
    return f"{bucket}/{key}"


@attrs.frozen
class Bucket:
    name: str
    created: dt.datetime


class Buckets:
    """Create, check, list and delete buckets in the manifest store."""

    def __init__(self, manifests: ManifestStore) -> None:
        self._manifests = manifests
        self._known: set[str] = set()

    async def create(self, name: str) -> bool:
        """Create ``name``; False if it existed already (creating is idempotent)."""
        created = await self._manifests.create_bucket(check_bucket(name), time.time())
        self._known.add(name)
        return created

    async def check(self, name: str) -> None:
        """NoSuchBucket unless ``name`` exists."""
        check_bucket(name)
        if name in self._known:
            return
        if name not in {bucket.name for bucket in await self.list()}:
            raise NoSuchBucket(f"no bucket named {name!r}")
        self._known.add(name)

    async def delete(self, name: str) -> None:
        """Delete an empty bucket; NoSuchBucket or BucketNotEmpty otherwise."""
        deleted = await self._manifests.delete_bucket(check_bucket(name), f"{name}/")
        if deleted is None:
            raise NoSuchBucket(f"no bucket named {name!r}")
        if not deleted:
            raise BucketNotEmpty(f"bucket {name!r} still holds objects")
        self._known.discard(name)

    async def list(self) -> list[Bucket]:
        return [
            Bucket(name, dt.datetime.fromtimestamp(created, dt.UTC))
            for name, created in await self._manifests.list_buckets()
        ]
