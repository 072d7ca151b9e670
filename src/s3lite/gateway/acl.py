"""Access control lists, as far as s3lite has them: Get{Bucket,Object}Acl answer the
one ACL there is (the bucket's owner has FULL_CONTROL; other keys reach a bucket only
through `s3lite key allow`, which ACLs do not express), and Put{Bucket,Object}Acl
accept only that same ACL: the canned ``private`` (tools such as s3cmd and the suite
set it), or an AccessControlPolicy body that says the same (s3cmd puts back the ACL it
read after a copy). Any other ACL (``public-read``, ``x-amz-grant-*``, a policy that
grants anyone else anything) is answered 501 NotImplemented and changes nothing.
"""

from __future__ import annotations

from ..asgi import Send, send_bytes
from ..errors import NotImplementedYet
from . import xml, xmlparse
from .call import Call, Handler, send_xml
from .get import stored_key

MAX_ACL_BODY = 64 * 1024


async def _check_private(call: Call) -> None:
    headers = call.request.headers
    canned = headers.get("x-amz-acl", "private").strip()
    grants = sorted(name for name in headers if name.startswith("x-amz-grant-"))
    body = await call.read_body(MAX_ACL_BODY)
    private = not body.strip() or xmlparse.is_private_acl(body, call.owner_id)
    if canned != "private" or grants or not private:
        raise NotImplementedYet(
            "s3lite keeps one ACL, private (the owner's FULL_CONTROL); grant access to "
            "other keys with `s3lite key allow`. Nothing was changed"
        )


async def get_bucket_acl(call: Call, send: Send) -> None:
    await call.services.buckets.check(call.bucket)
    await send_xml(send, xml.private_acl(call.owner_id))


async def put_bucket_acl(call: Call, send: Send) -> None:
    await call.services.buckets.check(call.bucket)
    await _check_private(call)
    await send_bytes(send, 200)


async def get_object_acl(call: Call, send: Send) -> None:
    await call.services.receiver.head_object(await stored_key(call))
    await send_xml(send, xml.private_acl(call.owner_id))


async def put_object_acl(call: Call, send: Send) -> None:
    await call.services.receiver.head_object(await stored_key(call))
    await _check_private(call)
    await send_bytes(send, 200)


HANDLERS: dict[str, Handler] = {
    "GetBucketAcl": get_bucket_acl,
    "PutBucketAcl": put_bucket_acl,
    "GetObjectAcl": get_object_acl,
    "PutObjectAcl": put_object_acl,
}
