"""The router: a table of requests and the one operation each must map to, every
destructive near-miss of issue 6 among them, and properties over arbitrary queries."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from s3lite.errors import InvalidArgument, MethodNotAllowed
from s3lite.gateway.router import (
    IMPLEMENTED,
    OPERATIONS,
    PARAMETERS,
    SUBRESOURCES,
    Access,
    CopySource,
    Operation,
    parse_copy_source,
    route,
)

COPY = {"x-amz-copy-source": "/src/a%20b.txt"}

DESTRUCTIVE_NEAR_MISSES = [
    # issue 6's probes: each once acted on the plain object or bucket
    ("DELETE", "/b/k", "uploadId=bogus", {}, "AbortMultipartUpload"),
    ("PUT", "/b/k", "tagging", {}, "PutObjectTagging"),
    ("PUT", "/b/k", "acl", {}, "PutObjectAcl"),
    ("PUT", "/b/k", "partNumber=1&uploadId=x", {}, "UploadPart"),
    ("DELETE", "/b", "policy", {}, "DeleteBucketPolicy"),
    ("GET", "/b/k", "acl", {}, "GetObjectAcl"),
    ("PUT", "/b/k", "", COPY, "CopyObject"),
]

CASES: list[tuple[str, str, str, dict[str, str], str]] = [
    *DESTRUCTIVE_NEAR_MISSES,
    # method, path, query string, headers, operation
    ("GET", "/", "", {}, "ListBuckets"),
    ("GET", "/", "max-buckets=10&continuation-token=x", {}, "ListBuckets"),
    ("PUT", "/b", "", {}, "CreateBucket"),
    ("HEAD", "/b", "", {}, "HeadBucket"),
    ("DELETE", "/b", "", {}, "DeleteBucket"),
    ("GET", "/b", "", {}, "ListObjects"),
    ("GET", "/b", "marker=a&max-keys=5", {}, "ListObjects"),
    ("GET", "/b", "list-type=2&prefix=a&encoding-type=url", {}, "ListObjectsV2"),
    ("GET", "/b/", "list-type=2", {}, "ListObjectsV2"),
    ("GET", "/b", "versions&max-keys=128", {}, "ListObjectVersions"),
    ("GET", "/b", "uploads", {}, "ListMultipartUploads"),
    ("GET", "/b", "location", {}, "GetBucketLocation"),
    ("GET", "/b", "versioning", {}, "GetBucketVersioning"),
    ("PUT", "/b", "versioning", {}, "PutBucketVersioning"),
    ("POST", "/b", "delete", {}, "DeleteObjects"),
    ("POST", "/b", "", {}, "PostObject"),
    ("GET", "/b", "acl", {}, "GetBucketAcl"),
    ("PUT", "/b", "acl", {}, "PutBucketAcl"),
    ("GET", "/b", "policy", {}, "GetBucketPolicy"),
    ("DELETE", "/b", "lifecycle", {}, "DeleteBucketLifecycle"),
    ("PUT", "/b", "lifecycle", {}, "PutBucketLifecycleConfiguration"),
    ("GET", "/b", "cors", {}, "GetBucketCors"),
    ("DELETE", "/b", "tagging", {}, "DeleteBucketTagging"),
    ("GET", "/b", "object-lock", {}, "GetObjectLockConfiguration"),
    ("GET", "/b", "metrics", {}, "ListBucketMetricsConfigurations"),
    ("GET", "/b", "metrics&id=m", {}, "GetBucketMetricsConfiguration"),
    ("GET", "/b", "publicAccessBlock", {}, "GetPublicAccessBlock"),
    ("GET", "/b", "policyStatus", {}, "GetBucketPolicyStatus"),
    ("GET", "/b/k", "", {}, "GetObject"),
    ("GET", "/b/k", "partNumber=2", {}, "GetObject"),
    ("GET", "/b/k", "response-content-type=text/plain&versionId=null", {}, "GetObject"),
    ("GET", "/b/k", "x-id=GetObject", {}, "GetObject"),
    ("HEAD", "/b/k", "partNumber=1", {}, "HeadObject"),
    ("PUT", "/b/k", "", {}, "PutObject"),
    ("DELETE", "/b/k", "", {}, "DeleteObject"),
    ("POST", "/b/k", "uploads", {}, "CreateMultipartUpload"),
    ("PUT", "/b/k", "partNumber=1&uploadId=x", COPY, "UploadPartCopy"),
    ("POST", "/b/k", "uploadId=x", {}, "CompleteMultipartUpload"),
    ("GET", "/b/k", "uploadId=x", {}, "ListParts"),
    ("DELETE", "/b/k", "tagging", {}, "DeleteObjectTagging"),
    ("GET", "/b/k", "retention", {}, "GetObjectRetention"),
    ("PUT", "/b/k", "legal-hold", {}, "PutObjectLegalHold"),
    ("GET", "/b/k", "torrent", {}, "GetObjectTorrent"),
    ("GET", "/b/k", "attributes", {}, "GetObjectAttributes"),
    ("POST", "/b/k", "restore", {}, "RestoreObject"),
    ("POST", "/b/k", "select&select-type=2", {}, "SelectObjectContent"),
    ("GET", "/_admin/status", "", {}, "Admin"),
    ("POST", "/_admin/keys/create", "", {}, "Admin"),
]


def parse(query: str) -> dict[str, str]:
    pairs = [part.partition("=") for part in query.split("&") if part]
    return {name: value for name, _, value in pairs}


@pytest.mark.parametrize(("method", "path", "query", "headers", "name"), CASES)
def test_each_request_maps_to_its_operation(
    method: str, path: str, query: str, headers: dict[str, str], name: str
) -> None:
    operation = route(method, path, parse(query), headers)
    assert operation.name == name
    assert operation.name in OPERATIONS


@pytest.mark.parametrize(("method", "path", "query", "headers", "name"), DESTRUCTIVE_NEAR_MISSES)
def test_destructive_near_misses_are_not_plain_operations(
    method: str, path: str, query: str, headers: dict[str, str], name: str
) -> None:
    operation = route(method, path, parse(query), headers)
    assert operation.name == name
    assert operation.name not in ("PutObject", "GetObject", "DeleteObject", "DeleteBucket")


def test_operations_carry_their_parameters() -> None:
    operation = route("PUT", "/b/a/b c", parse("partNumber=0017&uploadId=u1"), COPY)
    assert operation == Operation(
        "UploadPartCopy",
        Access.WRITE,
        "b",
        "a/b c",
        upload_id="u1",
        part_number=17,
        copy_source=CopySource("src", "a b.txt"),
    )
    assert route("GET", "/b/k", {"versionId": "null"}, {}).version_id == "null"
    assert route("GET", "/_admin/keys/list", {}, {}) == Operation(
        "Admin", Access.ADMIN, key="keys/list"
    )


def test_access_needed_by_each_family() -> None:
    access = {
        name: route(method, path, parse(query), headers).access
        for method, path, query, headers, name in CASES
    }
    assert access["ListBuckets"] is Access.LIST_BUCKETS
    assert access["CreateBucket"] is Access.CREATE_BUCKET
    assert access["DeleteBucket"] is Access.OWNER
    assert access["DeleteBucketPolicy"] is Access.OWNER
    assert access["PutBucketAcl"] is Access.OWNER
    for name in ("GetObject", "HeadObject", "ListObjectsV2", "ListObjectVersions", "HeadBucket"):
        assert access[name] is Access.READ, name
    for name in ("PutObject", "CopyObject", "DeleteObject", "DeleteObjects", "UploadPart"):
        assert access[name] is Access.WRITE, name
    assert access["Admin"] is Access.ADMIN


@pytest.mark.parametrize(
    ("method", "path", "query", "headers", "error"),
    [
        ("PATCH", "/b/k", "", {}, MethodNotAllowed),
        ("OPTIONS", "/b", "", {}, MethodNotAllowed),
        ("POST", "/", "", {}, MethodNotAllowed),  # IAM ListRoles from s3-tests: fast 4xx
        ("PUT", "/", "", {}, MethodNotAllowed),
        ("DELETE", "/", "", {}, MethodNotAllowed),
        ("GET", "/", "acl", {}, MethodNotAllowed),
        ("POST", "/b/k", "", {}, MethodNotAllowed),
        ("GET", "/b/k", "uploads", {}, MethodNotAllowed),
        ("PUT", "/b/k", "restore", {}, MethodNotAllowed),
        ("HEAD", "/b", "acl", {}, MethodNotAllowed),
        ("GET", "/b/k", "unknownthing", {}, InvalidArgument),
        ("POST", "/", "Action=ListRoles", {}, InvalidArgument),
        ("GET", "/b", "acl&tagging", {}, InvalidArgument),
        ("PUT", "/b/k", "partNumber=1", {}, InvalidArgument),  # no uploadId: not a PutObject
        ("DELETE", "/b/k", "partNumber=1", {}, InvalidArgument),
        ("PUT", "/b/k", "partNumber=0&uploadId=x", {}, InvalidArgument),
        ("PUT", "/b/k", "partNumber=10001&uploadId=x", {}, InvalidArgument),
        ("PUT", "/b/k", f"partNumber={'9' * 5000}&uploadId=x", {}, InvalidArgument),
        ("GET", "/b/k", "partNumber=-1", {}, InvalidArgument),
        ("PUT", "/b/k", "response-content-type=x", {}, InvalidArgument),
        ("PUT", "/b/k", "tagging", COPY, InvalidArgument),
        ("PUT", "/b/k", "", {"x-amz-copy-source": "/nokey"}, InvalidArgument),
        ("PUT", "/b/k", "", {"x-amz-copy-source": "/b/k?acl"}, InvalidArgument),
    ],
)
def test_unknown_combinations_are_errors_never_fall_throughs(
    method: str, path: str, query: str, headers: dict[str, str], error: type[Exception]
) -> None:
    with pytest.raises(error):
        route(method, path, parse(query), headers)


def test_virtual_hosted_style_needs_a_domain() -> None:
    host = {"host": "photos.s3.example.com:9000"}
    assert route("GET", "/a/b.jpg", {}, host, domain="s3.example.com") == Operation(
        "GetObject", Access.READ, "photos", "a/b.jpg"
    )
    assert route("GET", "/", {}, host, domain="s3.example.com").name == "ListObjects"
    # without a domain, or with the bare domain, the path names the bucket
    assert route("GET", "/a/b.jpg", {}, host).bucket == "a"
    bare = {"host": "s3.example.com"}
    assert route("GET", "/a/b.jpg", {}, bare, domain="s3.example.com").bucket == "a"


def test_copy_source_forms() -> None:
    assert parse_copy_source("b/k%2Fx") == CopySource("b", "k/x")
    assert parse_copy_source("/b/k?versionId=v%201") == CopySource("b", "k", "v 1")


def test_every_implemented_operation_is_routed() -> None:
    assert IMPLEMENTED <= OPERATIONS


_names = st.text(st.characters(codec="ascii", exclude_characters="&="), min_size=1, max_size=12)


@given(
    method=st.sampled_from(["GET", "HEAD", "PUT", "POST", "DELETE"]),
    path=st.sampled_from(["/", "/b", "/b/", "/b/k", "/b/k/deeper"]),
    unknown=_names.filter(lambda name: name not in SUBRESOURCES | PARAMETERS),
    known=st.dictionaries(st.sampled_from(sorted(SUBRESOURCES | PARAMETERS)), _names, max_size=3),
    copy=st.booleans(),
)
def test_an_unknown_sub_resource_never_maps_to_an_operation(
    method: str, path: str, unknown: str, known: dict[str, str], copy: bool
) -> None:
    query = {**known, unknown: ""}
    with pytest.raises((InvalidArgument, MethodNotAllowed)):
        route(method, path, query, COPY if copy else {})


PLAIN = {"GetObject", "HeadObject", "PutObject", "DeleteObject", "DeleteBucket", "CreateBucket"}


@given(
    method=st.sampled_from(["GET", "HEAD", "PUT", "POST", "DELETE"]),
    path=st.sampled_from(["/b", "/b/k"]),
    subs=st.sets(st.sampled_from(sorted(SUBRESOURCES)), min_size=1, max_size=2),
)
def test_a_sub_resource_never_routes_to_a_plain_operation(
    method: str, path: str, subs: set[str]
) -> None:
    query = dict.fromkeys(subs, "")
    try:
        operation = route(method, path, query, {})
    except (InvalidArgument, MethodNotAllowed):
        return
    assert operation.name not in PLAIN
