"""S3's checksums: CRC32, CRC32C, CRC64NVME, SHA1, SHA256 (and MD5 for Content-MD5 and
ETags), computed incrementally, encoded as S3 sends them, and combined for multipart
uploads. Pure: no I/O.

Values travel as base64 of the big-endian digest (``x-amz-checksum-crc32: 2qnZ7w==``).
CRCs come from C: ``zlib`` (CRC32), the ``crc32c`` package (CRC32C, hardware
instructions where the CPU has them) and ``awscrt`` (CRC64NVME, the one botocore
itself uses); each runs at gigabytes per second, against the published check values
of "123456789" in the tests.

Multipart objects have one of two checksum types (S3's rules):

* COMPOSITE: the checksum of the concatenated binary part checksums, then ``-N``
  (SHA1, SHA256, CRC32, CRC32C);
* FULL_OBJECT: the CRC of the whole object, found by *combining* the part CRCs with
  their lengths (CRC64NVME always, CRC32 and CRC32C when the client asks). The
  combination is zlib's ``crc32_combine`` method (multiplication by x^(8n) modulo the
  polynomial), written here once for any reflected CRC.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import zlib
from collections.abc import Callable, Mapping, Sequence
from typing import Protocol

import attrs
import crc32c
from awscrt import checksums as crt

from ..buffers import Buffer
from ..errors import BadDigest, InvalidArgument, InvalidDigest, XAmzContentSHA256Mismatch
from .manifest import COMPOSITE, FULL_OBJECT

CRC32, CRC32C, CRC64NVME, SHA1, SHA256 = "CRC32", "CRC32C", "CRC64NVME", "SHA1", "SHA256"
ALGORITHMS = (CRC32, CRC32C, CRC64NVME, SHA1, SHA256)

DIGEST_SIZES = {CRC32: 4, CRC32C: 4, CRC64NVME: 8, SHA1: 20, SHA256: 32}

CHECKSUM_TYPES = {
    CRC32: (COMPOSITE, FULL_OBJECT),
    CRC32C: (COMPOSITE, FULL_OBJECT),
    CRC64NVME: (FULL_OBJECT,),
    SHA1: (COMPOSITE,),
    SHA256: (COMPOSITE,),
}
"""The multipart checksum types each algorithm allows; the first is the default."""


class Hasher(Protocol):
    def update(self, data: Buffer, /) -> None: ...

    def digest(self) -> bytes: ...


@attrs.define
class _Crc:
    """A running CRC from a C function ``(data, previous) -> crc``."""

    step: Callable[[Buffer, int], int]
    width: int
    value: int = 0

    def update(self, data: Buffer) -> None:
        self.value = self.step(data, self.value)

    def digest(self) -> bytes:
        return self.value.to_bytes(self.width // 8, "big")


def _crc32c(data: Buffer, previous: int) -> int:
    result: int = crc32c.crc32c(data, previous)
    return result


_CRCS: dict[str, tuple[Callable[[Buffer, int], int], int, int]] = {
    # name: (C function, width, reflected polynomial)
    CRC32: (zlib.crc32, 32, 0xEDB88320),
    CRC32C: (_crc32c, 32, 0x82F63B78),
    CRC64NVME: (crt.crc64nvme, 64, 0x9A6C9329AC4BC9B5),
}


def check_algorithm(algorithm: str) -> str:
    """The canonical (upper-case) name of a checksum algorithm, else InvalidArgument."""
    name = algorithm.upper() if isinstance(algorithm, str) else ""
    if name not in ALGORITHMS:
        raise InvalidArgument(
            f"checksum algorithm must be one of {', '.join(ALGORITHMS)}, got {algorithm!r}"
        )
    return name


def new(algorithm: str) -> Hasher:
    """A fresh incremental hasher for ``algorithm`` (one of ALGORITHMS, or MD5)."""
    if algorithm in _CRCS:
        step, width, _ = _CRCS[algorithm]
        return _Crc(step, width)
    if algorithm == SHA1:
        return hashlib.sha1(usedforsecurity=False)
    if algorithm == SHA256:
        return hashlib.sha256()
    if algorithm == "MD5":
        return hashlib.md5(usedforsecurity=False)
    raise InvalidArgument(f"unknown checksum algorithm {algorithm!r}")


def encode(digest: bytes) -> str:
    return base64.b64encode(digest).decode()


def decode(algorithm: str, value: str) -> bytes:
    """The digest a base64 ``value`` carries; InvalidDigest if it is not one of the
    algorithm's size."""
    try:
        digest = base64.b64decode(value.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError, ValueError, AttributeError):
        digest = b""
    if len(digest) != DIGEST_SIZES[algorithm]:
        raise InvalidDigest(
            f"x-amz-checksum-{algorithm.lower()} must be base64 of a "
            f"{DIGEST_SIZES[algorithm]}-byte digest, got {value!r}"
        )
    return digest


def checksum_of(algorithm: str, data: bytes) -> str:
    """The base64 checksum of ``data`` (a convenience for tests and small bodies)."""
    hasher = new(algorithm)
    hasher.update(data)
    return encode(hasher.digest())


def check_type(algorithm: str, checksum_type: str | None) -> str:
    """The multipart checksum type for ``algorithm``: the one asked for if S3 allows it
    (else InvalidArgument), or the algorithm's default."""
    allowed = CHECKSUM_TYPES[algorithm]
    if checksum_type is None:
        return allowed[0]
    if checksum_type not in allowed:
        raise InvalidArgument(
            f"checksum type {checksum_type!r} is not supported with {algorithm}; "
            f"it allows {', '.join(allowed)}"
        )
    return checksum_type


# -- combining parts -----------------------------------------------------------------


def _multiply(a: int, b: int, poly: int, width: int) -> int:
    """a * b modulo the polynomial, in reflected bit order (zlib's multmodp)."""
    top = 1 << (width - 1)
    product = 0
    while True:
        if a & top:
            product ^= b
            if not a & (top - 1):
                return product
        top >>= 1
        b = (b >> 1) ^ poly if b & 1 else b >> 1


def _x_to_8n(n: int, poly: int, width: int) -> int:
    """x^(8n) modulo the polynomial (zlib's x2nmodp(n, 3)), by repeated squaring."""
    power = 1 << (width - 2)  # x^1
    for _ in range(3):  # x^8
        power = _multiply(power, power, poly, width)
    result = 1 << (width - 1)  # x^0
    while n:
        if n & 1:
            result = _multiply(power, result, poly, width)
        n >>= 1
        power = _multiply(power, power, poly, width)
    return result


def combine(algorithm: str, first: int, second: int, second_length: int) -> int:
    """The CRC of A + B from CRC(A), CRC(B) and len(B), without reading the bytes."""
    _, width, poly = _CRCS[algorithm]
    if second_length == 0:
        return first
    return _multiply(_x_to_8n(second_length, poly, width), first, poly, width) ^ second


def composite(algorithm: str, part_values: Sequence[str]) -> str:
    """S3's COMPOSITE multipart checksum: the checksum of the concatenated binary part
    checksums, then ``-N``."""
    hasher = new(algorithm)
    for value in part_values:
        hasher.update(decode(algorithm, value))
    return f"{encode(hasher.digest())}-{len(part_values)}"


def full_object(algorithm: str, parts: Sequence[tuple[str, int]]) -> str:
    """S3's FULL_OBJECT multipart checksum: the CRC of the whole object, combined from
    (base64 part CRC, part length) pairs."""
    if algorithm not in _CRCS:
        raise InvalidArgument(f"a FULL_OBJECT checksum needs a CRC, not {algorithm}")
    width = _CRCS[algorithm][1]
    total: int | None = None
    for value, length in parts:
        crc = int.from_bytes(decode(algorithm, value), "big")
        total = crc if total is None else combine(algorithm, total, crc, length)
    return encode((total or 0).to_bytes(width // 8, "big"))


# -- verifying a body ----------------------------------------------------------------


@attrs.define
class ExpectedDigests:
    """What the client says its body hashes to; mutable, because an aws-chunked body
    sends its ``x-amz-checksum-*`` in a trailer: the gateway sets ``checksum_value``
    once it has read the trailer, before the body iterator ends.

    ``content_md5`` is the raw 16-byte digest of Content-MD5. ``checksum_algorithm``
    without a value asks the store to compute and keep that checksum (S3 does the
    same for ``x-amz-sdk-checksum-algorithm``).
    """

    content_md5: bytes | None = None
    checksum_algorithm: str | None = None
    checksum_value: str | None = None
    payload_sha256: bytes | None = None
    """The raw SHA-256 a SigV4 request signed (``x-amz-content-sha256``), when the
    gateway leaves its check to the receiver: hashed with the rest, in the same pass."""


class Digester:
    """Hashes a body as it passes: MD5 always (the ETag), the one checksum asked for,
    and the signed SHA-256 (one hasher when the checksum is SHA256 too); :meth:`verify`
    then compares them with what the client expects."""

    def __init__(self, expected: ExpectedDigests | None, algorithm: str | None = None) -> None:
        self.expected = expected or ExpectedDigests()
        if self.expected.content_md5 is not None and len(self.expected.content_md5) != 16:
            raise InvalidDigest(
                f"Content-MD5 must be a 16-byte digest, got {len(self.expected.content_md5)} bytes"
            )
        wanted = self.expected.checksum_algorithm or algorithm
        self.algorithm = None if wanted is None else check_algorithm(wanted)
        if algorithm is not None and self.algorithm != check_algorithm(algorithm):
            raise InvalidArgument(
                f"this upload uses {algorithm} checksums, the request sent {self.algorithm}"
            )
        if self.algorithm is not None and self.expected.checksum_value is not None:
            decode(self.algorithm, self.expected.checksum_value)  # fail before the body
        self.md5 = hashlib.md5(usedforsecurity=False)
        self._checksum = None if self.algorithm is None else new(self.algorithm)
        self._sha256: Hasher | None = None
        if self.expected.payload_sha256 is not None:
            self._sha256 = self._checksum if self.algorithm == SHA256 else hashlib.sha256()
        self._hashers: list[Hasher] = [self.md5]
        for hasher in (self._checksum, self._sha256):
            if hasher is not None and all(hasher is not known for known in self._hashers):
                self._hashers.append(hasher)

    @property
    def hashers(self) -> tuple[Hasher, ...]:
        """The distinct hashers fed, MD5 first: each can take the body on a thread of
        its own (OrderedHasher), as they share no state."""
        return tuple(self._hashers)

    def update(self, chunk: Buffer) -> None:
        for hasher in self._hashers:
            hasher.update(chunk)

    def verify(self) -> dict[str, str]:
        """Raise BadDigest if the body does not match what was expected; return the
        checksums to keep (algorithm -> base64)."""
        expected = self.expected
        if self._sha256 is not None and not hmac.compare_digest(
            self._sha256.digest(), expected.payload_sha256 or b""
        ):
            raise XAmzContentSHA256Mismatch(
                "the body's SHA-256 does not match x-amz-content-sha256; nothing was stored"
            )
        if expected.content_md5 is not None and expected.content_md5 != self.md5.digest():
            raise BadDigest(
                f"the Content-MD5 you sent ({encode(expected.content_md5)}) does not match "
                f"the body ({encode(self.md5.digest())}); nothing was stored"
            )
        if self.algorithm is None or self._checksum is None:
            return {}
        computed = encode(self._checksum.digest())
        if expected.checksum_value is not None:
            sent = encode(decode(self.algorithm, expected.checksum_value))
            if sent != computed:
                raise BadDigest(
                    f"the {self.algorithm} checksum you sent ({sent}) does not match the body "
                    f"({computed}); nothing was stored"
                )
        return {self.algorithm: computed}


def checksums_match(stored: Mapping[str, str], sent: Mapping[str, str]) -> bool:
    """Whether every checksum the client names equals the stored one."""
    return all(stored.get(check_algorithm(name)) == value for name, value in sent.items())
