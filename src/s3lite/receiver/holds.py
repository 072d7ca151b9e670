"""Which uploads requests are using right now, so nothing deletes them underneath.

Two kinds of request hold an upload: a write, from its pending record to its commit
or discard, and a read, from the moment it has checked that the key still means the
upload until it is closed (a read of a multipart object holds the object's upload and
every part upload it streams from). The janitor never sweeps a held upload. An upload
superseded (overwritten or deleted) while a read holds it is *deferred*: the last
holder to let go deletes it. Holds live in memory only: after a crash nothing holds
anything, and the janitor removes whatever was left ``deleting``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator


class UploadHolds:
    """A multiset of held upload ids, with the deletions waiting for them."""

    def __init__(self) -> None:
        self._count: Counter[str] = Counter()
        self._deferred: set[str] = set()

    def __contains__(self, upload_id: object) -> bool:
        return upload_id in self._count

    def __iter__(self) -> Iterator[str]:
        return iter(list(self._count))

    def __len__(self) -> int:
        return len(self._count)

    def acquire(self, upload_ids: Iterable[str]) -> None:
        self._count.update(upload_ids)

    def release(self, upload_ids: Iterable[str]) -> list[str]:
        """Let go of ``upload_ids``; returns the deferred ones nobody holds any more,
        which the caller must now delete."""
        freed = []
        for upload_id in upload_ids:
            self._count[upload_id] -= 1
            if self._count[upload_id] <= 0:
                del self._count[upload_id]
                if upload_id in self._deferred:
                    self._deferred.discard(upload_id)
                    freed.append(upload_id)
        return freed

    def defer(self, upload_id: str) -> bool:
        """If ``upload_id`` is held, note that it must be deleted once free and return
        True; False means nobody holds it and the caller deletes it now."""
        if upload_id not in self._count:
            return False
        self._deferred.add(upload_id)
        return True

    @property
    def deferred(self) -> frozenset[str]:
        return frozenset(self._deferred)
