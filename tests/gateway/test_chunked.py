"""The aws-chunked decoder: AWS's published signed-chunk example, every split of the
input decoding alike, every changed byte of a signed stream refused, and the limits."""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Mapping

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from s3lite.errors import BodyLengthMismatch, InvalidArgument, S3liteError, SignatureDoesNotMatch
from s3lite.gateway.auth import sigv4
from s3lite.gateway.auth.chunked import MAX_LINE, ChunkedDecoder, ChunkSigning
from tests.s3sign import Seed, aws_chunked

SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
SCOPE = "20130524/us-east-1/s3/aws4_request"
AWS_SEED = "4f232c4386841ef735655705268965c44a0e4690baa4adea153f7db9fa80a0a9"
AWS_EXAMPLE = (
    b"10000;chunk-signature=ad80c730a21e5b8d04586a2213dd63b9a0e99e0e2307b0ade35a65485a288648\r\n"
    + b"a" * 65536
    + b"\r\n400;chunk-signature="
    + b"0055627c9e194cb4542bae2aa5492e3c1575bbb81b612b7d234b86a503ef5497\r\n"
    + b"a" * 1024
    + b"\r\n0;chunk-signature=b6c6ea8a5354eaf15b3cb7646744f4275b71ea724fed81ceb9323e279d449df9"
    + b"\r\n\r\n"
)


def aws_signing() -> ChunkSigning:
    key = sigv4.signing_key(SECRET, "20130524", "us-east-1")
    return ChunkSigning(key, "20130524T000000Z", SCOPE, AWS_SEED)


def test_the_seed_signature_of_aws_example() -> None:
    headers = {
        "content-encoding": "aws-chunked",
        "content-length": "66824",
        "host": "s3.amazonaws.com",
        "x-amz-content-sha256": sigv4.STREAMING_PAYLOAD,
        "x-amz-date": "20130524T000000Z",
        "x-amz-decoded-content-length": "66560",
        "x-amz-storage-class": "REDUCED_REDUNDANCY",
    }
    names = sorted(headers)
    headers["authorization"] = (
        "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/" + SCOPE
        + ",SignedHeaders=" + ";".join(names) + ",Signature=" + AWS_SEED
    )  # fmt: skip
    claim = sigv4.parse("PUT", "/examplebucket/chunkObject.txt", "", headers, now=1369353600)
    assert claim is not None
    verified = sigv4.verify(claim, SECRET)
    assert (verified.seed_signature, verified.payload) == (AWS_SEED, sigv4.STREAMING_PAYLOAD)


def feed_all(decoder: ChunkedDecoder, body: bytes) -> Mapping[str, str]:
    decoder.feed(body)
    return decoder.end()


def decode(decoder: ChunkedDecoder, body: bytes, step: int) -> tuple[bytes, dict[str, str]]:
    out = b"".join(decoder.feed(body[i : i + step]) for i in range(0, len(body), step))
    return out, dict(decoder.end())


@pytest.mark.parametrize("step", [1, 7, 4096, len(AWS_EXAMPLE)])
def test_aws_published_chunk_signatures(step: int) -> None:
    decoder = ChunkedDecoder(66560, signing=aws_signing(), trailer=False)
    assert decode(decoder, AWS_EXAMPLE, step) == (b"a" * 66560, {})


def test_the_test_encoder_reproduces_aws_example() -> None:
    seed = Seed(aws_signing().key, "20130524T000000Z", SCOPE, AWS_SEED)
    assert aws_chunked(b"a" * 66560, 65536, seed=seed) == AWS_EXAMPLE


def stream(data: bytes, size: int, *, signed: bool, trailers: dict[str, str] | None) -> bytes:
    seed = Seed(aws_signing().key, "20130524T000000Z", SCOPE, AWS_SEED) if signed else None
    return aws_chunked(data, size, seed=seed, trailers=trailers)


def decoder_for(length: int, *, signed: bool, trailer: bool) -> ChunkedDecoder:
    return ChunkedDecoder(length, signing=aws_signing() if signed else None, trailer=trailer)


bodies = st.tuples(
    st.binary(max_size=600),
    st.integers(1, 200),
    st.booleans(),
    st.one_of(st.none(), st.just({"x-amz-checksum-crc32": "AAAAAA=="})),
)


@settings(max_examples=80, deadline=None)
@given(body=bodies, cuts=st.lists(st.integers(0, 2000), max_size=8))
def test_any_split_of_the_input_decodes_alike(
    body: tuple[bytes, int, bool, dict[str, str] | None], cuts: list[int]
) -> None:
    data, size, signed, trailers = body
    encoded = stream(data, size, signed=signed, trailers=trailers)
    decoder = decoder_for(len(data), signed=signed, trailer=trailers is not None)
    bounds = sorted({0, len(encoded), *(c % (len(encoded) + 1) for c in cuts)})
    out = b"".join(decoder.feed(encoded[a:b]) for a, b in itertools.pairwise(bounds))
    assert out == data
    assert decoder.end() == (trailers or {})


@settings(max_examples=150, deadline=None)
@given(body=bodies, where=st.integers(0), xor=st.integers(1, 255))
def test_any_changed_byte_of_a_signed_stream_is_refused(
    body: tuple[bytes, int, bool, dict[str, str] | None], where: int, xor: int
) -> None:
    data, size, _, trailers = body
    encoded = bytearray(stream(data, size, signed=True, trailers=trailers))
    encoded[where % len(encoded)] ^= xor
    decoder = decoder_for(len(data), signed=True, trailer=trailers is not None)
    with pytest.raises(S3liteError):
        feed_all(decoder, bytes(encoded))


def test_a_truncated_body_is_incomplete() -> None:
    encoded = stream(b"x" * 100, 30, signed=True, trailers=None)
    for cut in (0, 10, 50, len(encoded) - 1):
        decoder = decoder_for(100, signed=True, trailer=False)
        decoder.feed(encoded[:cut])
        with pytest.raises(BodyLengthMismatch):
            decoder.end()


@pytest.mark.parametrize("declared", [99, 0])
def test_more_data_than_declared_is_refused_before_it_is_read(declared: int) -> None:
    decoder = decoder_for(declared, signed=False, trailer=False)
    with pytest.raises(BodyLengthMismatch):
        decoder.feed(stream(b"x" * 100, 100, signed=False, trailers=None)[:8])


def test_fewer_data_bytes_than_declared_is_refused() -> None:
    decoder = decoder_for(101, signed=False, trailer=False)
    with pytest.raises(BodyLengthMismatch):
        decoder.feed(stream(b"x" * 100, 64, signed=False, trailers=None))


@pytest.mark.parametrize(
    "body",
    [
        b"zz\r\n",
        b"A\r\n" + b"x" * 10 + b"\r\n0\r\n\r\n",  # upper-case hex
        b"1" * 17 + b"\r\n",
        b"5\r\nxxxxxYY",
        b"1" * (MAX_LINE + 1),
        b"5;chunk-signature=" + b"0" * 64 + b"\r\nxxxxx\r\n0\r\n\r\n",  # unsigned stream
        b"0\r\nx-amz-checksum-crc32:AAAA\r\n\r\n",  # trailers not announced
        b"0\r\n\r\nextra",
    ],
)
def test_malformed_framing_is_refused(body: bytes) -> None:
    declared = {b"A": 10, b"0": 0}.get(body[:1], 5)
    decoder = ChunkedDecoder(declared, signing=None, trailer=False)
    with pytest.raises(InvalidArgument):
        feed_all(decoder, body)


def test_a_wrong_or_missing_chunk_signature() -> None:
    wrong = AWS_EXAMPLE.replace(b"ad80c730", b"ad80c731")
    with pytest.raises(SignatureDoesNotMatch):
        decode(ChunkedDecoder(66560, signing=aws_signing(), trailer=False), wrong, 8192)
    missing = b"5\r\nxxxxx\r\n0\r\n\r\n"
    with pytest.raises(SignatureDoesNotMatch):
        ChunkedDecoder(5, signing=aws_signing(), trailer=False).feed(missing)


def test_a_signed_trailer_is_checked() -> None:
    trailers = {"x-amz-checksum-sha256": "n4bQgYhMfWWaL+qgxVrQFaO/TxsrC4Is0V1sFbDwCgg="}
    encoded = stream(b"test", 2, signed=True, trailers=trailers)
    decoder = decoder_for(4, signed=True, trailer=True)
    assert decode(decoder, encoded, 5) == (b"test", trailers)
    unsigned = encoded.split(b"x-amz-trailer-signature")[0] + b"\r\n"
    with pytest.raises(SignatureDoesNotMatch):
        decode(decoder_for(4, signed=True, trailer=True), unsigned, 5)


def test_hashes_are_of_the_data() -> None:
    assert hashlib.sha256(b"").hexdigest() == sigv4.EMPTY_SHA256
