"""Object keys: what is accepted, and how prefixes become index ranges.

Keys are arbitrary strings as S3 has them (any UTF-8, ``/``, spaces, ``%``...). They
are data: they are never turned into paths (part files are named by upload id). NUL
is refused because it truncates strings in too many tools. The receiver takes keys of
up to 1088 bytes of UTF-8: S3's 1024 plus room for the ``bucket/`` prefix under which
the HTTP gateway stores them (which enforces S3's 1024 on the key itself).
"""

from __future__ import annotations

from ..errors import InvalidKey

S3_MAX_KEY_BYTES = 1024
MAX_BUCKET_BYTES = 63
MAX_KEY_BYTES = MAX_BUCKET_BYTES + 1 + S3_MAX_KEY_BYTES
MAX_CODE_POINT = 0x10FFFF


def check_key(key: object) -> str:
    """``key`` if it is a valid object key, else InvalidKey saying why."""
    if not isinstance(key, str):
        raise InvalidKey(f"an object key must be a string, got {type(key).__name__}")
    if not key:
        raise InvalidKey("an object key must not be empty")
    try:
        size = len(key.encode("utf-8"))
    except UnicodeEncodeError:
        raise InvalidKey(f"object key {key!r} is not valid UTF-8 (lone surrogate)") from None
    if size > MAX_KEY_BYTES:
        raise InvalidKey(f"an object key is at most {MAX_KEY_BYTES} bytes of UTF-8, got {size}")
    if "\0" in key:
        raise InvalidKey(f"an object key must not contain NUL, got {key!r}")
    return key


def prefix_upper_bound(prefix: str) -> str | None:
    """The least string greater than every string that starts with ``prefix``.

    UTF-8 byte order is code point order, so keys with the prefix are exactly those
    in [prefix, bound). None means there is no bound (the prefix is all U+10FFFF).
    """
    stripped = prefix.rstrip(chr(MAX_CODE_POINT))
    if not stripped:
        return None
    last = ord(stripped[-1]) + 1
    if 0xD800 <= last <= 0xDFFF:  # surrogates are not characters; skip over them
        last = 0xE000
    return stripped[:-1] + chr(last)
