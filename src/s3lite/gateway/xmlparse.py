"""S3's XML request bodies (DeleteObjects, CreateBucketConfiguration,
CompleteMultipartUpload, AccessControlPolicy), read safely.

A request body is parsed only up to a size limit, with expat, and a document that
declares a DTD or an entity is refused (no entity expansion, no external references:
the billion-laughs and XXE attacks need one or the other). Namespaces are dropped: S3
clients send the 2006-03-01 namespace or none. Anything that is not the document the
operation expects is MalformedXML.
"""

from __future__ import annotations

from typing import NoReturn
from xml.parsers import expat

import attrs

from ..errors import MalformedXML
from ..receiver.checksums import ALGORITHMS
from ..receiver.manifest import CompletedPart

MAX_DELETE_KEYS = 1000
MAX_BODY = 2 << 20
"""Largest XML request body read (a Delete of 1,000 keys of 1,024 bytes fits)."""


@attrs.frozen
class Element:
    tag: str
    text: str
    children: tuple[Element, ...]

    def find(self, tag: str) -> Element | None:
        return next((child for child in self.children if child.tag == tag), None)

    def findall(self, tag: str) -> list[Element]:
        return [child for child in self.children if child.tag == tag]


def parse(body: bytes, *, limit: int = MAX_BODY) -> Element:
    """The document's root element; MalformedXML if it is not well-formed XML, is over
    ``limit`` bytes, or declares a DTD or an entity."""
    if len(body) > limit:
        raise MalformedXML(f"an XML body is at most {limit} bytes")
    parser = expat.ParserCreate(namespace_separator="}")
    stack: list[tuple[str, list[str], list[Element]]] = [("", [], [])]

    def refuse(*args: object) -> NoReturn:
        raise MalformedXML("XML with a DTD or entity declarations is not accepted")

    def start(name: str, attributes: object) -> None:
        stack.append((name.rsplit("}", 1)[-1], [], []))

    def end(name: str) -> None:
        tag, texts, children = stack.pop()
        stack[-1][2].append(Element(tag, "".join(texts), tuple(children)))

    parser.StartDoctypeDeclHandler = refuse
    parser.EntityDeclHandler = refuse
    parser.ExternalEntityRefHandler = refuse
    parser.StartElementHandler = start
    parser.EndElementHandler = end
    parser.CharacterDataHandler = lambda data: stack[-1][1].append(data)
    try:
        parser.Parse(body, True)
    except expat.ExpatError as exc:
        raise MalformedXML(f"the body is not well-formed XML: {exc}") from None
    return stack[0][2][0]


@attrs.frozen
class DeleteRequest:
    quiet: bool
    objects: tuple[tuple[str, str | None], ...]
    """(key, version id) of each object to delete."""


def delete_request(body: bytes) -> DeleteRequest:
    """The DeleteObjects document: ``<Delete><Quiet>`` and 1 to 1,000 ``<Object>`` each
    with a ``<Key>`` (and optionally ``<VersionId>``); MalformedXML otherwise."""
    root = parse(body)
    if root.tag != "Delete":
        raise MalformedXML(f"expected a <Delete> document, got <{root.tag}>")
    quiet_element = root.find("Quiet")
    quiet_text = quiet_element.text.strip().lower() if quiet_element else "false"
    if quiet_text not in ("true", "false"):
        raise MalformedXML(f"<Quiet> must be true or false, got {quiet_text[:20]!r}")
    objects = []
    for element in root.findall("Object"):
        key = element.find("Key")
        if key is None or not key.text:
            raise MalformedXML("every <Object> needs a non-empty <Key>")
        version = element.find("VersionId")
        objects.append((key.text, version.text if version is not None else None))
    if not 1 <= len(objects) <= MAX_DELETE_KEYS:
        raise MalformedXML(f"a Delete names 1 to {MAX_DELETE_KEYS} objects, got {len(objects)}")
    return DeleteRequest(quiet_text == "true", tuple(objects))


def create_bucket_configuration(body: bytes) -> str | None:
    """The LocationConstraint of a CreateBucketConfiguration body (None if empty).
    Any constraint is accepted, and ignored: a cluster has no regions."""
    if not body.strip():
        return None
    root = parse(body)
    if root.tag != "CreateBucketConfiguration":
        raise MalformedXML(f"expected <CreateBucketConfiguration>, got <{root.tag}>")
    constraint = root.find("LocationConstraint")
    return constraint.text if constraint is not None else None


def complete_request(body: bytes) -> list[CompletedPart]:
    """The CompleteMultipartUpload document: ``<Part>`` elements each with a
    ``<PartNumber>`` and an ``<ETag>`` (and optionally ``<ChecksumCRC32>``...), in the
    order sent; MalformedXML otherwise (the receiver checks the order and the ETags)."""
    root = parse(body)
    if root.tag != "CompleteMultipartUpload":
        raise MalformedXML(f"expected a <CompleteMultipartUpload> document, got <{root.tag}>")
    parts = []
    for element in root.findall("Part"):
        number = element.find("PartNumber")
        etag = element.find("ETag")
        if number is None or etag is None:
            raise MalformedXML("every <Part> needs a <PartNumber> and an <ETag>")
        digits = number.text.strip()
        if not (digits.isascii() and digits.isdigit() and len(digits) <= 5):
            raise MalformedXML(
                f"<PartNumber> must be a number from 1 to 10000, got {digits[:20]!r}"
            )
        checksums = {
            name: found.text.strip()
            for name in ALGORITHMS
            if (found := element.find(f"Checksum{name}")) is not None
        }
        parts.append(CompletedPart(int(digits), etag.text.strip(), checksums))
    if not parts:
        raise MalformedXML("a CompleteMultipartUpload names at least one <Part>")
    return parts


def is_private_acl(body: bytes, owner_id: str) -> bool:
    """Whether an AccessControlPolicy document is the ``private`` ACL: every grant, and
    at least one, gives FULL_CONTROL to ``owner_id``, and the Owner (if named) is
    ``owner_id``. s3cmd sends the ACL GetObjectAcl gave back this way after a copy.
    MalformedXML if the body is not an AccessControlPolicy."""
    root = parse(body)
    if root.tag != "AccessControlPolicy":
        raise MalformedXML(f"expected an AccessControlPolicy document, got <{root.tag}>")
    owner = root.find("Owner")
    if owner is not None and _text(owner, "ID") != owner_id:
        return False
    listing = root.find("AccessControlList")
    grants = [] if listing is None else listing.findall("Grant")
    return bool(grants) and all(
        (grantee := grant.find("Grantee")) is not None
        and _text(grantee, "ID") == owner_id
        and _text(grant, "Permission") == "FULL_CONTROL"
        for grant in grants
    )


def _text(element: Element, tag: str) -> str | None:
    child = element.find(tag)
    return None if child is None else child.text.strip()
