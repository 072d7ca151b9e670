"""boto3, unmodified, against a gateway process over node processes: managed transfers
of 100 MiB with the default TransferConfig (multipart both ways), presigned URLs used
by urllib, paginators over 1,500 keys, copies, conditional requests, and the three ways
a request's credentials are refused. Every test ends by comparing bytes (or, for
listings, every key with the MD5 of what was stored under it).

boto3 runs in this process with its home and config files pointed at an empty
directory (conftest.py), and with retries off: a failure shows at once instead of
being retried.
"""

from __future__ import annotations

import hashlib
import threading
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from tests.clients.tools import (
    REGION,
    Endpoint,
    MiB,
    boto3_client,
    create_key,
    make_file,
    seeded,
    sha256,
)

pytestmark = pytest.mark.clients


@pytest.fixture(scope="module")
def bucket(s3: Any) -> str:
    s3.create_bucket(Bucket="boto")
    return "boto"


def body_of(s3: Any, bucket: str, key: str, **params: Any) -> bytes:
    return s3.get_object(Bucket=bucket, Key=key, **params)["Body"].read()  # type: ignore[no-any-return]


def error_of(call: Any, **params: Any) -> tuple[int, str]:
    """The status and S3 code ``call(**params)`` is refused with."""
    with pytest.raises(ClientError) as refused:
        call(**params)
    response = refused.value.response
    return response["ResponseMetadata"]["HTTPStatusCode"], response["Error"]["Code"]


def test_upload_and_download_file_100_mib(s3: Any, bucket: str, tmp_path: Path) -> None:
    source, back = tmp_path / "source.bin", tmp_path / "back.bin"
    digest = make_file(source, "boto3-100", 100 * MiB)
    s3.upload_file(str(source), bucket, "big/object.bin")  # default TransferConfig
    head = s3.head_object(Bucket=bucket, Key="big/object.bin")
    assert head["ContentLength"] == 100 * MiB
    assert head["ETag"].endswith('-13"')  # 8 MiB parts: it went through multipart
    s3.download_file(bucket, "big/object.bin", str(back))  # ranged GETs, 10 threads
    assert sha256(back) == digest


@pytest.mark.parametrize(
    ("signature_version", "marker"),
    [(None, "Signature="), ("s3v4", "X-Amz-Signature=")],
    ids=["default-sigv2", "s3v4"],
)
def test_presigned_get_and_put_with_urllib(
    s3: Any, bucket: str, endpoint: Endpoint, signature_version: str | None, marker: str
) -> None:
    """boto3 presigns with SigV2 unless told ``signature_version="s3v4"``: both work.
    A SigV2 URL signs the Content-Type, so the PUT names one and sends it."""
    config = {"signature_version": signature_version} if signature_version else {}
    signer = boto3_client(endpoint, **config)
    key = f"pre/signed {signature_version}"
    data = seeded(key, 3 * MiB + 17)
    typed = {"ContentType": "application/x-test"}
    put_url = signer.generate_presigned_url(
        "put_object", Params={"Bucket": bucket, "Key": key, **typed}, ExpiresIn=300
    )
    assert marker in put_url
    sent = {"Content-Type": "application/x-test"}
    request = urllib.request.Request(put_url, data=data, method="PUT", headers=sent)
    with urllib.request.urlopen(request, timeout=60) as response:
        assert response.status == 200
        assert response.headers["ETag"] == f'"{hashlib.md5(data).hexdigest()}"'
    get_url = signer.generate_presigned_url(
        "get_object", Params={"Bucket": bucket, "Key": key}, ExpiresIn=300
    )
    assert marker in get_url
    with urllib.request.urlopen(get_url, timeout=60) as response:
        assert response.headers["Content-Type"] == "application/x-test"
        assert response.read() == data
    # The URL is bound to its method and key: a PUT signed for one key cannot write another.
    other = put_url.replace("signed%20", "other%20")
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(
            urllib.request.Request(other, data=b"x", method="PUT", headers=sent), timeout=60
        )
    assert refused.value.code == 403
    refused.value.close()
    assert error_of(s3.head_object, Bucket=bucket, Key=key.replace("signed", "other"))[0] == 404


def pages(s3: Any, operation: str, **params: Any) -> list[dict[str, Any]]:
    return list(s3.get_paginator(operation).paginate(Bucket="listed", **params))  # type: ignore[no-any-return]


def contents(listing: list[dict[str, Any]]) -> dict[str, str]:
    return {
        entry["Key"]: entry["ETag"].strip('"')
        for page in listing
        for entry in page.get("Contents", [])
    }


def prefixes(listing: list[dict[str, Any]]) -> list[str]:
    return [entry["Prefix"] for page in listing for entry in page.get("CommonPrefixes", [])]


def test_paginators_v2_over_1500_keys(s3: Any, listed: dict[str, str]) -> None:
    default = pages(s3, "list_objects_v2")
    assert len(default) == 2  # 1,000 then 500
    assert contents(default) == listed
    small = pages(s3, "list_objects_v2", PaginationConfig={"PageSize": 400})
    assert [page["KeyCount"] for page in small] == [400, 400, 400, 300]
    assert [key for page in small for key in (e["Key"] for e in page["Contents"])] == sorted(listed)
    folders = pages(s3, "list_objects_v2", Delimiter="/", PaginationConfig={"PageSize": 30})
    assert prefixes(folders) == ["d0/", "d1/", "d2/", "d3/"]
    assert contents(folders) == {key: tag for key, tag in listed.items() if "/" not in key}
    inside = pages(s3, "list_objects_v2", Prefix="d2/", Delimiter="/", StartAfter="d2/k0500")
    expected = {k: v for k, v in listed.items() if k.startswith("d2/") and k > "d2/k0500"}
    assert contents(inside) == expected
    assert not prefixes(inside)


def test_paginators_v1_over_1500_keys(s3: Any, listed: dict[str, str]) -> None:
    default = pages(s3, "list_objects")
    assert len(default) == 2
    assert contents(default) == listed
    small = pages(s3, "list_objects", PaginationConfig={"PageSize": 300})
    assert len(small) == 5
    assert contents(small) == listed
    folders = pages(s3, "list_objects", Delimiter="/", PaginationConfig={"PageSize": 3})
    assert prefixes(folders) == ["d0/", "d1/", "d2/", "d3/"]
    assert contents(folders) == {key: tag for key, tag in listed.items() if "/" not in key}
    one = pages(s3, "list_objects", Prefix="d1/", Delimiter="/", PaginationConfig={"PageSize": 100})
    assert contents(one) == {k: v for k, v in listed.items() if k.startswith("d1/")}
    assert len(one) == 4  # 350 keys


def test_copy_object(s3: Any, bucket: str) -> None:
    data = seeded("copy", 20 * MiB + 5)
    s3.put_object(
        Bucket=bucket, Key="copy/source", Body=data, ContentType="text/x-source",
        Metadata={"colour": "blue"},
    )  # fmt: skip
    s3.create_bucket(Bucket="boto-other")
    s3.copy_object(
        Bucket=bucket, Key="copy/same", CopySource={"Bucket": bucket, "Key": "copy/source"}
    )
    s3.copy_object(
        Bucket="boto-other", Key="across", CopySource=f"{bucket}/copy/source",
        MetadataDirective="REPLACE", ContentType="text/x-copy", Metadata={"colour": "red"},
    )  # fmt: skip
    same = s3.get_object(Bucket=bucket, Key="copy/same")
    assert (same["ContentType"], same["Metadata"]) == ("text/x-source", {"colour": "blue"})
    assert same["Body"].read() == data
    across = s3.get_object(Bucket="boto-other", Key="across")
    assert (across["ContentType"], across["Metadata"]) == ("text/x-copy", {"colour": "red"})
    assert across["Body"].read() == data
    # The managed copy goes multipart above 8 MiB: UploadPartCopy, 8 MiB ranges.
    s3.copy({"Bucket": bucket, "Key": "copy/source"}, bucket, "copy/managed")
    assert s3.head_object(Bucket=bucket, Key="copy/managed")["ETag"].endswith('-3"')
    assert body_of(s3, bucket, "copy/managed") == data
    assert body_of(s3, bucket, "copy/source") == data


def test_if_none_match_racers_one_wins(s3: Any, bucket: str) -> None:
    bodies = [seeded(f"racer{i}", 6 * MiB + i) for i in range(2)]
    start = threading.Barrier(2, timeout=30)
    outcomes: list[Any] = [None, None]

    def race(index: int) -> None:
        racer = client_like(s3)
        start.wait()
        try:
            outcomes[index] = racer.put_object(
                Bucket=bucket, Key="race", Body=bodies[index], IfNoneMatch="*"
            )
        except ClientError as exc:
            outcomes[index] = exc

    threads = [threading.Thread(target=race, args=(i,)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    winners = [i for i, outcome in enumerate(outcomes) if isinstance(outcome, dict)]
    assert len(winners) == 1, outcomes
    loser = outcomes[1 - winners[0]]
    assert isinstance(loser, ClientError)
    assert loser.response["Error"]["Code"] == "PreconditionFailed"
    assert loser.response["ResponseMetadata"]["HTTPStatusCode"] == 412
    assert body_of(s3, bucket, "race") == bodies[winners[0]]
    # A third writer with If-None-Match: * is refused too, and changes nothing.
    assert error_of(s3.put_object, Bucket=bucket, Key="race", Body=b"late", IfNoneMatch="*") == (
        412, "PreconditionFailed",
    )  # fmt: skip
    assert body_of(s3, bucket, "race") == bodies[winners[0]]


def client_like(s3: Any) -> Any:
    """Another boto3 client with the same settings (a client per thread)."""
    credentials = s3._request_signer._credentials
    return boto3.session.Session().client(
        "s3",
        endpoint_url=s3.meta.endpoint_url,
        aws_access_key_id=credentials.access_key,
        aws_secret_access_key=credentials.secret_key,
        region_name=REGION,
        config=s3.meta.config,
    )


def test_if_match_and_not_modified(s3: Any, bucket: str) -> None:
    first, second = seeded("v1", MiB), seeded("v2", MiB + 1)
    etag = s3.put_object(Bucket=bucket, Key="cond", Body=first)["ETag"]
    assert error_of(s3.put_object, Bucket=bucket, Key="cond", Body=b"x", IfMatch='"0" ') == (
        412, "PreconditionFailed",
    )  # fmt: skip
    assert body_of(s3, bucket, "cond") == first
    new = s3.put_object(Bucket=bucket, Key="cond", Body=second, IfMatch=etag)["ETag"]
    assert new == f'"{hashlib.md5(second).hexdigest()}"'
    assert error_of(s3.put_object, Bucket=bucket, Key="cond", Body=b"x", IfMatch=etag) == (
        412, "PreconditionFailed",
    )  # fmt: skip
    # Reads: 304 for the ETag we hold, the body for an older one, 412 for If-Match.
    assert error_of(s3.get_object, Bucket=bucket, Key="cond", IfNoneMatch=new)[0] == 304
    assert error_of(s3.head_object, Bucket=bucket, Key="cond", IfNoneMatch=new)[0] == 304
    assert error_of(s3.get_object, Bucket=bucket, Key="cond", IfMatch=etag)[0] == 412
    assert body_of(s3, bucket, "cond", IfNoneMatch=etag) == second
    assert body_of(s3, bucket, "cond", IfMatch=new) == second


def test_credentials_refused(s3: Any, bucket: str, endpoint: Endpoint) -> None:
    s3.put_object(Bucket=bucket, Key="guarded", Body=b"root's bytes")
    wrong = boto3_client(endpoint, endpoint.access_key, "not-the-secret")
    assert error_of(wrong.list_buckets) == (403, "SignatureDoesNotMatch")
    assert error_of(wrong.put_object, Bucket=bucket, Key="guarded", Body=b"x") == (
        403, "SignatureDoesNotMatch",
    )  # fmt: skip
    unknown = boto3_client(endpoint, "AKIANOSUCHKEY0000000", endpoint.secret_key)
    assert error_of(unknown.get_object, Bucket=bucket, Key="guarded") == (
        403, "InvalidAccessKeyId",
    )  # fmt: skip
    stranger = boto3_client(endpoint, *create_key(endpoint, "stranger"))
    for call, params in [
        (stranger.get_object, {"Key": "guarded"}),
        (stranger.put_object, {"Key": "guarded", "Body": b"x"}),
        (stranger.delete_object, {"Key": "guarded"}),
        (stranger.list_objects_v2, {}),
    ]:
        assert error_of(call, Bucket=bucket, **params) == (403, "AccessDenied")
    assert stranger.list_buckets()["Buckets"] == []
    assert body_of(s3, bucket, "guarded") == b"root's bytes"
