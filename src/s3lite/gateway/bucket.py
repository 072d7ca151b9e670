"""Bucket operations: ListBuckets, CreateBucket, HeadBucket, DeleteBucket,
GetBucketLocation and GetBucketVersioning.

A bucket belongs to the key that created it (the key store records it before the
bucket exists, so two keys racing for one name cannot both win); re-creating one's own
bucket answers 200, another key's 409 BucketAlreadyExists. Deleting a bucket forgets
its owner and grants.
"""

from __future__ import annotations

from ..asgi import Send, send_bytes, send_head
from ..errors import BucketAlreadyExists
from ..receiver.buckets import check_bucket, object_key
from . import xml, xmlparse
from .auth.policy import visible
from .call import Call, Handler, count_param, decode_token, encode_token, send_xml

MAX_BUCKETS = 10_000
MAX_CREATE_BODY = 64 * 1024


async def list_buckets(call: Call, send: Send) -> None:
    query = call.request.query
    limit = count_param(query, "max-buckets", default=MAX_BUCKETS, maximum=MAX_BUCKETS)
    prefix = query.get("prefix")
    token = query.get("continuation-token")
    after = decode_token(token) if token else ""
    keys, identity = call.services.keys, call.identity
    names = [
        bucket
        for bucket in await call.services.buckets.list()
        if visible(identity, keys.rights(identity.access_key, bucket.name))
        and bucket.name > after
        and (prefix is None or bucket.name.startswith(prefix))
    ]
    page = names[: max(limit, 1)]
    next_token = encode_token(page[-1].name) if len(names) > len(page) else None
    await send_xml(
        send, xml.bucket_list(page, identity.access_key, next_token=next_token, prefix=prefix)
    )


async def create_bucket(call: Call, send: Send) -> None:
    name = check_bucket(call.bucket)
    xmlparse.create_bucket_configuration(await call.read_body(MAX_CREATE_BODY))
    keys, me = call.services.keys, call.identity.access_key
    before = keys.owner(name)
    if before is None and name in {b.name for b in await call.services.buckets.list()}:
        keys.adopt([name])  # a bucket from before keys existed: root's
        before = keys.owner(name)
    owner = keys.claim(name, me)
    if owner != me:
        raise BucketAlreadyExists(f"bucket {name!r} belongs to another key")
    try:
        await call.services.buckets.create(name)
    except BaseException:
        if before is None:
            keys.forget(name)
        raise
    await send_bytes(send, 200, headers=[("location", f"/{name}")])


async def head_bucket(call: Call, send: Send) -> None:
    await call.services.buckets.check(call.bucket)
    region = call.services.region
    await send_head(send, 200, [("x-amz-bucket-region", region), ("content-length", "0")])


async def delete_bucket(call: Call, send: Send) -> None:
    await call.services.buckets.delete(call.bucket)
    # Open multipart uploads go with their bucket, as in MinIO: no one could complete
    # or list them any more, and their parts would wait for the janitor's TTL.
    await call.services.receiver.abort_multipart_uploads(object_key(call.bucket, ""))
    call.services.keys.forget(call.bucket)
    await send_bytes(send, 204)


async def get_bucket_location(call: Call, send: Send) -> None:
    await call.services.buckets.check(call.bucket)
    await send_xml(send, xml.location(call.services.region))


async def get_bucket_versioning(call: Call, send: Send) -> None:
    await call.services.buckets.check(call.bucket)
    await send_xml(send, xml.versioning())


HANDLERS: dict[str, Handler] = {
    "ListBuckets": list_buckets,
    "CreateBucket": create_bucket,
    "HeadBucket": head_bucket,
    "DeleteBucket": delete_bucket,
    "GetBucketLocation": get_bucket_location,
    "GetBucketVersioning": get_bucket_versioning,
}
