"""The aws-chunked body decoder, sans I/O (fed bytes like h11's ``Connection``).

An aws-chunked body (``Content-Encoding: aws-chunked``) is a series of chunks::

    <hex size>[;chunk-signature=<64 hex>]\\r\\n<size bytes>\\r\\n
    ...
    0[;chunk-signature=<64 hex>]\\r\\n
    [<trailer name>:<value>\\r\\n ...]        (the -TRAILER variants)
    \\r\\n

With ``STREAMING-AWS4-HMAC-SHA256-PAYLOAD`` every chunk carries a signature chained
from the request's (seed) signature: HMAC of ``AWS4-HMAC-SHA256-PAYLOAD``, timestamp,
scope, the previous signature, the hash of nothing and the hash of the chunk's data.
``-PAYLOAD-TRAILER`` adds trailers signed by ``x-amz-trailer-signature`` over
``AWS4-HMAC-SHA256-TRAILER``. ``STREAMING-UNSIGNED-PAYLOAD-TRAILER`` has no signatures;
its trailer carries a checksum (``x-amz-checksum-crc32:...``).

A chunk's data is handed out as it arrives and its signature checked when the chunk
ends, so memory stays bounded whatever size a client picks for its chunks; a caller
that must not act on unverified bytes acts only after :meth:`ChunkedDecoder.end`
(the receiver commits only once the body iterator has finished, and the end is where
the last signature is checked).

The framing is read strictly (lower-case hex sizes and trailer names, no stray
spaces), so that no changed byte of a signed stream goes unnoticed. Limits are named
constants: a chunk header line of at most :data:`MAX_LINE` bytes,
trailers of at most :data:`MAX_TRAILERS` bytes in all, and never more data than the
declared ``x-amz-decoded-content-length``.

Errors: InvalidArgument (malformed framing, bytes after the end), BodyLengthMismatch
(more or fewer data bytes than declared, or a body cut short: S3's IncompleteBody),
SignatureDoesNotMatch (a chunk or trailer signature that is wrong or missing).
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import re
from collections.abc import Mapping

import attrs

from ...buffers import Buffer
from ...errors import BodyLengthMismatch, InvalidArgument, SignatureDoesNotMatch
from .sigv4 import EMPTY_SHA256, signature

MAX_LINE = 4096
"""Longest chunk header line: a hex size of up to 16 digits and its extensions."""
MAX_TRAILERS = 16 * 1024
"""Most bytes of trailer lines (names, values and line ends) a body may carry."""

CHUNK_ALGORITHM = "AWS4-HMAC-SHA256-PAYLOAD"
TRAILER_ALGORITHM = "AWS4-HMAC-SHA256-TRAILER"
TRAILER_SIGNATURE = "x-amz-trailer-signature"

_SIZE = re.compile(rb"[0-9a-f]{1,16}")
_SIGNATURE = re.compile(r"[0-9a-f]{64}")
_NAME = re.compile(r"[a-z0-9-]{1,64}")


@attrs.frozen
class ChunkSigning:
    """What checking chunk signatures needs from the request's verified signature."""

    key: bytes = attrs.field(repr=False)
    timestamp: str
    scope: str
    seed: str


class _State(enum.Enum):
    SIZE_LINE = 1
    DATA = 2
    DATA_END = 3
    TRAILER = 4
    DONE = 5


def chunk_signature(signing: ChunkSigning, previous: str, data_sha256: str) -> str:
    """The signature of a chunk whose data hashes to ``data_sha256`` (hex)."""
    text = "\n".join(
        [CHUNK_ALGORITHM, signing.timestamp, signing.scope, previous, EMPTY_SHA256, data_sha256]
    )
    return signature(signing.key, text)


def trailer_signature(signing: ChunkSigning, previous: str, trailers: str) -> str:
    """The signature of the trailer lines ``trailers`` (``name:value\\n`` each)."""
    digest = hashlib.sha256(trailers.encode()).hexdigest()
    text = "\n".join([TRAILER_ALGORITHM, signing.timestamp, signing.scope, previous, digest])
    return signature(signing.key, text)


class ChunkedDecoder:
    """Decode one aws-chunked body of ``decoded_length`` data bytes.

    ``signing`` checks chunk signatures (None: an unsigned stream, whose chunk lines
    must carry none); ``trailer`` says whether trailers follow the last chunk.
    """

    def __init__(self, decoded_length: int, *, signing: ChunkSigning | None, trailer: bool) -> None:
        self.decoded_length = decoded_length
        self._signing = signing
        self._trailer = trailer
        self._state = _State.SIZE_LINE
        self._buffer = bytearray()
        self._remaining = 0
        self._previous = signing.seed if signing else ""
        self._expected = ""
        self._hash = hashlib.sha256()
        self._received = 0
        self._trailers: dict[str, str] = {}
        self._trailer_text: list[str] = []
        self._trailer_bytes = 0
        self._trailer_signature: str | None = None

    @property
    def received(self) -> int:
        """Data bytes decoded so far."""
        return self._received

    @property
    def done(self) -> bool:
        return self._state is _State.DONE

    def feed(self, data: Buffer) -> bytes:
        """Take the next bytes of the body; return the data bytes they complete."""
        if self._state is _State.DONE:
            if data:
                raise InvalidArgument("aws-chunked body: bytes after the final chunk")
            return b""
        self._buffer += data
        out = bytearray()
        while self._step(out):
            pass
        return bytes(out)

    def end(self) -> Mapping[str, str]:
        """The body has ended: its trailers (lower-case names; none without the trailer
        variant). BodyLengthMismatch if the body stopped before its final chunk."""
        if self._state is not _State.DONE:
            raise BodyLengthMismatch(declared=self.decoded_length, received=self._received)
        return dict(self._trailers)

    def _step(self, out: bytearray) -> bool:
        """Advance by one piece of the framing; False when more bytes are needed."""
        if self._state is _State.SIZE_LINE:
            line = self._line()
            if line is None:
                return False
            self._start_chunk(line)
        elif self._state is _State.DATA:
            if not self._buffer:
                return False
            take = min(self._remaining, len(self._buffer))
            piece = bytes(self._buffer[:take])
            del self._buffer[:take]
            self._hash.update(piece)
            self._remaining -= take
            out += piece
            if not self._remaining:
                self._state = _State.DATA_END
        elif self._state is _State.DATA_END:
            if len(self._buffer) < 2:
                return False
            if self._buffer[:2] != b"\r\n":
                raise InvalidArgument("aws-chunked body: a chunk's data is not followed by CRLF")
            del self._buffer[:2]
            self._check_chunk()
            self._state = _State.SIZE_LINE
        elif self._state is _State.TRAILER:
            line = self._line()
            if line is None:
                return False
            self._trailer_line(line)
        else:
            if self._buffer:
                raise InvalidArgument("aws-chunked body: bytes after the final chunk")
            return False
        return True

    def _line(self) -> bytes | None:
        end = self._buffer.find(b"\r\n")
        if end < 0:
            if len(self._buffer) > MAX_LINE:
                raise InvalidArgument(f"aws-chunked body: a line longer than {MAX_LINE} bytes")
            return None
        if end > MAX_LINE:
            raise InvalidArgument(f"aws-chunked body: a line longer than {MAX_LINE} bytes")
        line = bytes(self._buffer[:end])
        del self._buffer[: end + 2]
        return line

    def _start_chunk(self, line: bytes) -> None:
        size_text, *extensions = line.split(b";")
        if _SIZE.fullmatch(size_text) is None:
            raise InvalidArgument(f"aws-chunked body: bad chunk size line {line[:80]!r}")
        size = int(size_text, 16)
        self._expected = ""
        for extension in extensions:
            name, _, value = extension.decode("latin-1").partition("=")
            if name == "chunk-signature":
                self._expected = value
        if self._signing is not None and _SIGNATURE.fullmatch(self._expected) is None:
            raise SignatureDoesNotMatch("aws-chunked body: a chunk lacks its chunk-signature")
        if self._signing is None and self._expected:
            raise InvalidArgument("aws-chunked body: a chunk signature in an unsigned stream")
        if self._received + size > self.decoded_length:
            raise BodyLengthMismatch(declared=self.decoded_length, received=self._received + size)
        self._received += size
        self._hash = hashlib.sha256()
        if size:
            self._remaining = size
            self._state = _State.DATA
            return
        self._check_chunk()  # the final, empty chunk
        if self._received != self.decoded_length:
            raise BodyLengthMismatch(declared=self.decoded_length, received=self._received)
        self._state = _State.TRAILER

    def _check_chunk(self) -> None:
        if self._signing is None:
            return
        wanted = chunk_signature(self._signing, self._previous, self._hash.hexdigest())
        if not hmac.compare_digest(wanted.encode(), self._expected.encode("latin-1")):
            raise SignatureDoesNotMatch(
                "aws-chunked body: a chunk signature does not match its data; nothing was stored"
            )
        self._previous = wanted

    def _trailer_line(self, line: bytes) -> None:
        self._trailer_bytes += len(line) + 2
        if self._trailer_bytes > MAX_TRAILERS:
            raise InvalidArgument(f"aws-chunked body: trailers over {MAX_TRAILERS} bytes")
        if not line:
            self._finish_trailers()
            return
        if not self._trailer:
            raise InvalidArgument("aws-chunked body: trailers the request did not announce")
        name, sep, value = line.decode("latin-1").partition(":")
        if not sep or _NAME.fullmatch(name) is None or self._trailer_signature is not None:
            raise InvalidArgument(f"aws-chunked body: bad trailer line {line[:80]!r}")
        if name == TRAILER_SIGNATURE:
            self._trailer_signature = value
            return
        if name in self._trailers:
            raise InvalidArgument(f"aws-chunked body: trailer {name!r} sent twice")
        self._trailers[name] = value
        self._trailer_text.append(f"{name}:{value}\n")

    def _finish_trailers(self) -> None:
        if self._signing is not None and self._trailer:
            wanted = trailer_signature(self._signing, self._previous, "".join(self._trailer_text))
            if self._trailer_signature is None or not hmac.compare_digest(
                wanted.encode(), self._trailer_signature.encode("latin-1")
            ):
                raise SignatureDoesNotMatch(
                    "aws-chunked body: the trailer signature does not match; nothing was stored"
                )
        elif self._trailer_signature is not None:
            raise InvalidArgument("aws-chunked body: a trailer signature in an unsigned stream")
        self._state = _State.DONE
