"""Listing a bucket: ListObjectsV2, ListObjects (v1, with marker and NextMarker) and
ListObjectVersions (an unversioned bucket: each object is its one ``null`` version).

All three take one page from :func:`page` and render it. The page comes from the
receiver's index (``Receiver.list_objects``), which also rolls keys up into
CommonPrefixes by the delimiter, in the store (skipping past each prefix), so a page
costs the same in a bucket of a million keys as in one of a thousand. Keys and common
prefixes count together against max-keys, and the next page starts after the last
entry of this one, key or prefix (the marker, the continuation token).
"""

from __future__ import annotations

import attrs

from ..asgi import Send
from ..errors import InvalidArgument
from ..receiver.manifest import ObjectInfo
from . import xml
from .call import Call, Handler, count_param, decode_token, encode_token, send_xml

MAX_KEYS = 1000


@attrs.frozen
class Page:
    objects: tuple[ObjectInfo, ...]
    """Keys without the bucket prefix."""
    common_prefixes: tuple[str, ...]
    truncated: bool
    last: str | None
    """The last key or common prefix of a truncated page: where the next one starts."""


async def page(call: Call, prefix: str, after: str, limit: int, delimiter: str | None) -> Page:
    """One page of the call's bucket: keys starting with ``prefix``, after ``after``,
    at most ``limit`` entries."""
    await call.services.buckets.check(call.bucket)
    if limit == 0:
        return Page((), (), False, None)
    base = f"{call.bucket}/"
    found = await call.services.receiver.list_objects(
        base + prefix,
        start_after=base + after if after else "",
        limit=limit,
        delimiter=delimiter or "",
    )
    objects = tuple(attrs.evolve(info, key=info.key[len(base) :]) for info in found.objects)
    prefixes = tuple(common[len(base) :] for common in found.common_prefixes)
    last = found.next_start_after
    last = last[len(base) :] if found.is_truncated and last else None
    return Page(objects, prefixes, found.is_truncated, last)


def _listing(
    call: Call, prefix: str, found: Page, max_keys: int, delimiter: str | None
) -> xml.Listing:
    encoding = call.request.query.get("encoding-type")
    owner = call.owner_id
    return xml.Listing(
        call.bucket,
        prefix,
        found.objects,
        found.common_prefixes,
        max_keys,
        found.truncated,
        delimiter,
        encoding,
        owner,
    )


def _common(call: Call) -> tuple[str, str | None, int]:
    query = call.request.query
    encoding = query.get("encoding-type")
    if encoding not in (None, "url"):
        raise InvalidArgument(f"encoding-type must be 'url', got {encoding[:40]!r}")
    limit = count_param(query, "max-keys", default=MAX_KEYS, maximum=MAX_KEYS)
    return query.get("prefix", ""), query.get("delimiter") or None, limit


async def list_objects_v2(call: Call, send: Send) -> None:
    prefix, delimiter, max_keys = _common(call)
    query = call.request.query
    start_after = query.get("start-after", "")
    token = query.get("continuation-token")
    after = max(start_after, decode_token(token)) if token else start_after  # "" is none
    found = await page(call, prefix, after, max_keys, delimiter)
    body = xml.object_list_v2(
        _listing(call, prefix, found, max_keys, delimiter),
        start_after=start_after,
        continuation=token,
        next_continuation=encode_token(found.last) if found.last else None,
        fetch_owner=query.get("fetch-owner") == "true",
    )
    await send_xml(send, body)


async def list_objects(call: Call, send: Send) -> None:
    prefix, delimiter, max_keys = _common(call)
    marker = call.request.query.get("marker", "")
    found = await page(call, prefix, marker, max_keys, delimiter)
    listing = _listing(call, prefix, found, max_keys, delimiter)
    await send_xml(send, xml.object_list_v1(listing, marker=marker, next_marker=found.last))


async def list_object_versions(call: Call, send: Send) -> None:
    prefix, delimiter, max_keys = _common(call)
    key_marker = call.request.query.get("key-marker", "")
    found = await page(call, prefix, key_marker, max_keys, delimiter)
    listing = _listing(call, prefix, found, max_keys, delimiter)
    await send_xml(
        send, xml.versions_list(listing, key_marker=key_marker, next_key_marker=found.last)
    )


HANDLERS: dict[str, Handler] = {
    "ListObjectsV2": list_objects_v2,
    "ListObjects": list_objects,
    "ListObjectVersions": list_object_versions,
}
