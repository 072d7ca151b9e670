"""S3 checksums (pure): published check values, incremental hashing, CRC combination,
the multipart forms, and the body verifier."""

from __future__ import annotations

import base64
import hashlib
import random
import threading
import types
import zlib

import anyio
import attrs
import pytest
from awscrt import checksums as crt
from hypothesis import given
from hypothesis import strategies as st

from s3lite.errors import BadDigest, InvalidArgument, InvalidDigest, XAmzContentSHA256Mismatch
from s3lite.receiver import ExpectedDigests
from s3lite.receiver.checksums import (
    ALGORITHMS,
    CRC32,
    CRC32C,
    CRC64NVME,
    SHA1,
    SHA256,
    Digester,
    check_type,
    checksum_of,
    combine,
    composite,
    full_object,
    new,
)
from s3lite.receiver.upload import HASH_BATCH, HASH_DEPTH, INLINE_HASH, OrderedHasher

CHECK = b"123456789"


@pytest.mark.parametrize(
    ("algorithm", "value"),
    [
        # The "check" values of the RevEng CRC catalogue (CRC-32/ISO-HDLC, CRC-32/ISCSI,
        # CRC-64/NVME) and the SHA digests of the same string.
        (CRC32, 0xCBF43926),
        (CRC32C, 0xE3069283),
        (CRC64NVME, 0xAE8B14860A799888),
        (SHA1, int(hashlib.sha1(CHECK).hexdigest(), 16)),
        (SHA256, int(hashlib.sha256(CHECK).hexdigest(), 16)),
    ],
)
def test_published_check_values(algorithm: str, value: int) -> None:
    size = {CRC32: 4, CRC32C: 4, CRC64NVME: 8, SHA1: 20, SHA256: 32}[algorithm]
    assert checksum_of(algorithm, CHECK) == base64.b64encode(value.to_bytes(size, "big")).decode()


def test_s3_documented_values() -> None:
    """Values S3's documentation and botocore's tests give for ``b"Hello world"``."""
    assert checksum_of(CRC32, b"Hello world") == "i9aeUg=="
    assert checksum_of(CRC32C, b"Hello world") == "crUfeA=="
    assert checksum_of(SHA1, b"Hello world") == "e1AsOh9IyGCa4hLN+2Od7jlnP14="
    assert checksum_of(CRC64NVME, b"") == "AAAAAAAAAAA="


@given(data=st.binary(max_size=3000), cuts=st.lists(st.integers(0, 3000), max_size=5))
def test_incremental_equals_one_shot(data: bytes, cuts: list[int]) -> None:
    for algorithm in ALGORITHMS:
        hasher = new(algorithm)
        start = 0
        for cut in sorted(cuts):
            hasher.update(data[start:cut])
            start = max(start, cut)
        hasher.update(data[start:])
        assert base64.b64encode(hasher.digest()).decode() == checksum_of(algorithm, data)


@given(first=st.binary(max_size=2000), second=st.binary(max_size=2000))
def test_combined_crcs_equal_the_crc_of_the_concatenation(first: bytes, second: bytes) -> None:
    functions = {CRC32: zlib.crc32, CRC32C: crt.crc32c, CRC64NVME: crt.crc64nvme}
    for algorithm, crc in functions.items():
        joined = combine(algorithm, crc(first, 0), crc(second, 0), len(second))
        assert joined == crc(first + second, 0)


def test_combining_a_long_second_part_matches_awscrt() -> None:
    # 5 GiB parts cannot be hashed here; awscrt's own combination is the oracle.
    for length in (1, 5 * 1024**3, 2**40 + 7):
        assert combine(CRC64NVME, 0x1234, 0x9876, length) == crt.combine_crc64nvme(
            0x1234, 0x9876, length
        )
        assert combine(CRC32, 0x1234, 0x9876, length) == crt.combine_crc32(0x1234, 0x9876, length)


@given(parts=st.lists(st.binary(max_size=500), min_size=1, max_size=6))
def test_multipart_forms(parts: list[bytes]) -> None:
    for algorithm in (CRC32, CRC32C, CRC64NVME):
        values = [(checksum_of(algorithm, part), len(part)) for part in parts]
        assert full_object(algorithm, values) == checksum_of(algorithm, b"".join(parts))
    digests = b"".join(hashlib.sha256(part).digest() for part in parts)
    expected = base64.b64encode(hashlib.sha256(digests).digest()).decode()
    values_sha = [checksum_of(SHA256, part) for part in parts]
    assert composite(SHA256, values_sha) == f"{expected}-{len(parts)}"


def test_checksum_types_follow_s3() -> None:
    assert check_type(CRC64NVME, None) == "FULL_OBJECT"
    assert check_type(CRC32, None) == "COMPOSITE"
    assert check_type(CRC32C, "FULL_OBJECT") == "FULL_OBJECT"
    with pytest.raises(InvalidArgument):
        check_type(SHA256, "FULL_OBJECT")
    with pytest.raises(InvalidArgument):
        check_type(CRC64NVME, "COMPOSITE")


def test_digester_verifies_md5_and_checksums() -> None:
    body = b"some bytes"
    md5 = hashlib.md5(body).digest()
    good = Digester(ExpectedDigests(md5, CRC32, checksum_of(CRC32, body)))
    good.update(body)
    assert good.verify() == {CRC32: checksum_of(CRC32, body)}
    late = ExpectedDigests(checksum_algorithm=SHA256)  # the value comes in a trailer
    digester = Digester(late)
    digester.update(body)
    late.checksum_value = checksum_of(SHA256, b"other")
    with pytest.raises(BadDigest):
        digester.verify()
    wrong_md5 = Digester(ExpectedDigests(hashlib.md5(b"x").digest()))
    wrong_md5.update(body)
    with pytest.raises(BadDigest):
        wrong_md5.verify()
    computed = Digester(ExpectedDigests(checksum_algorithm="crc64nvme"))
    computed.update(body)
    assert computed.verify() == {CRC64NVME: checksum_of(CRC64NVME, body)}


@pytest.mark.parametrize(
    "expected",
    [
        ExpectedDigests(content_md5=b"short"),
        ExpectedDigests(checksum_algorithm=CRC32, checksum_value="not base64!"),
        ExpectedDigests(checksum_algorithm=CRC32, checksum_value="AAAAAAAAAAA="),  # 8 bytes
    ],
)
def test_malformed_digests_are_refused_before_the_body(expected: ExpectedDigests) -> None:
    with pytest.raises(InvalidDigest):
        Digester(expected)


def test_unknown_algorithm_is_refused() -> None:
    with pytest.raises(InvalidArgument):
        Digester(ExpectedDigests(checksum_algorithm="CRC16"))


@given(st.binary(max_size=3000), st.sampled_from([None, CRC32, SHA256]), st.booleans())
def test_digester_checks_the_signed_sha256_with_the_others(
    body: bytes, algorithm: str | None, right: bool
) -> None:
    signed = hashlib.sha256(body if right else body + b"!").digest()
    digester = Digester(ExpectedDigests(checksum_algorithm=algorithm, payload_sha256=signed))
    for start in range(0, len(body), 1000):
        digester.update(body[start : start + 1000])
    if not right:
        with pytest.raises(XAmzContentSHA256Mismatch):
            digester.verify()
        return
    kept = digester.verify()
    assert digester.md5.digest() == hashlib.md5(body).digest()
    assert kept == ({} if algorithm is None else {algorithm: checksum_of(algorithm, body)})


# -- hashing beside the upload ---------------------------------------------------------


@pytest.mark.anyio
@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("signed", [True, False])
async def test_the_ordered_hasher_gives_the_digests_of_the_whole_body(
    seed: int, signed: bool
) -> None:
    """Batches hashed in worker threads while the next ones gather still give every
    hash the body's bytes in order: across more batches than are let in flight, with
    odd chunk sizes."""
    rng = random.Random(seed)
    body = rng.randbytes((HASH_DEPTH + 2) * HASH_BATCH + rng.randrange(1, 3 * INLINE_HASH))
    cuts = sorted(rng.sample(range(1, len(body)), 40))
    chunks = [body[a:b] for a, b in zip([0, *cuts], [*cuts, len(body)], strict=True)]
    expected = ExpectedDigests(
        content_md5=hashlib.md5(body).digest(),
        checksum_algorithm="CRC32",
        checksum_value=base64.b64encode(zlib.crc32(body).to_bytes(4, "big")).decode(),
        payload_sha256=hashlib.sha256(body).digest() if signed else None,
    )
    digester = Digester(expected)
    async with anyio.create_task_group() as group:
        hasher = OrderedHasher(digester, group)
        for chunk in chunks:
            await hasher.add(chunk)
        await hasher.finish()
    assert digester.verify() == {"CRC32": expected.checksum_value}
    if signed:
        wrong = Digester(attrs.evolve(expected, payload_sha256=bytes(32)))
        async with anyio.create_task_group() as group:
            hasher = OrderedHasher(wrong, group)
            for chunk in chunks:
                await hasher.add(chunk)
            await hasher.finish()
        with pytest.raises(XAmzContentSHA256Mismatch):
            wrong.verify()


class _MeetingHasher:
    """Hashes nothing; its first update waits until every other one's has begun: it
    only returns if the hashers are fed at the same time, by different threads (the
    threads are pooled: later batches may swap them)."""

    def __init__(self, barrier: threading.Barrier) -> None:
        self.barrier = barrier
        self.threads: set[int] = set()
        self.bytes = 0

    def update(self, data: bytes) -> None:
        if not self.threads:
            self.barrier.wait(timeout=30)  # BrokenBarrierError if alone
        self.threads.add(threading.get_ident())
        self.bytes += len(data)

    def digest(self) -> bytes:
        return b""


@pytest.mark.anyio
async def test_each_hasher_is_fed_on_a_thread_of_its_own() -> None:
    """MD5 and a signed upload's SHA-256 overlap instead of one waiting for the other:
    a batch goes to every hasher at once, each in its own worker thread."""
    barrier = threading.Barrier(2)
    hashers = (_MeetingHasher(barrier), _MeetingHasher(barrier))
    chunks = [bytes(HASH_BATCH // 2)] * 5
    async with anyio.create_task_group() as group:
        hasher = OrderedHasher(types.SimpleNamespace(hashers=hashers), group)  # type: ignore[arg-type]
        for chunk in chunks:
            await hasher.add(chunk)
        await hasher.finish()
    assert [h.bytes for h in hashers] == [sum(map(len, chunks))] * 2
    assert threading.get_ident() not in hashers[0].threads | hashers[1].threads
