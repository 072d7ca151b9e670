"""Who may do what: a key, an operation's access need, the key's rights on the bucket.

Pure. The rules (issue 6): the root key may do everything; a bucket belongs to the key
that created it, which may do everything to it; another key reaches it only through a
grant (read and/or write); any key may list buckets (it sees those it can reach) and
create a bucket whose name is free; only root reaches the admin API. A bucket that no
key owns does not exist, and every key may ask for it, to be told NoSuchBucket.
"""

from __future__ import annotations

import attrs

from ..router import Access


@attrs.frozen
class Identity:
    """The key that signed a request."""

    access_key: str
    root: bool = False


@attrs.frozen
class Rights:
    """What one key holds on one bucket."""

    owned: bool = True
    """Whether any key owns the bucket (False: it does not exist)."""
    owner: bool = False
    read: bool = False
    write: bool = False

    @property
    def any(self) -> bool:
        return self.owner or self.read or self.write


NOBODY = Rights(owned=False)
"""The rights on a bucket that does not exist."""


def allowed(identity: Identity, access: Access, rights: Rights) -> bool:
    """Whether ``identity`` may perform an operation needing ``access`` on a bucket
    where it holds ``rights`` (ignored for LIST_BUCKETS, CREATE_BUCKET and ADMIN)."""
    if identity.root:
        return True
    if access is Access.ADMIN:
        return False
    if access in (Access.LIST_BUCKETS, Access.CREATE_BUCKET) or not rights.owned:
        return True
    if access is Access.READ:
        return rights.owner or rights.read
    if access is Access.WRITE:
        return rights.owner or rights.write
    return rights.owner


def visible(identity: Identity, rights: Rights) -> bool:
    """Whether ListBuckets shows the bucket to ``identity``."""
    return identity.root or (rights.owned and rights.any)
