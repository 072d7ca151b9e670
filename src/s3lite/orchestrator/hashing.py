"""Seedable, stable hashing for placement and lookups.

xxh3-64 is fast (about 17 GiB/s here) and mixes every input bit into every output
bit, so consecutive attempts for one part give independent sectors. Python's
``hash()`` is salted per process and crc32 is linear (hash(a) ^ hash(b) relates to
hash(a ^ b)), so neither is fit to derive several sectors from one key.
"""

from __future__ import annotations

import struct

import xxhash

from ..sectors import SECTORS

DEFAULT_SEED = 0x5E3C_0001

_FIELD = struct.Struct("<I")


def _encode(fields: tuple[str | int, ...]) -> bytes:
    """Length-prefix every field so that no two field tuples share an encoding."""
    out = bytearray()
    for field in fields:
        raw = field.encode("utf-8", "surrogatepass") if isinstance(field, str) else b"%d" % field
        out += _FIELD.pack(len(raw))
        out += raw
    return bytes(out)


def hash64(*fields: str | int, seed: int = DEFAULT_SEED) -> int:
    """A 64-bit hash of a tuple of strings and integers, identical in every process."""
    return xxhash.xxh3_64_intdigest(_encode(fields), seed)


def key_sector(key: str, seed: int = DEFAULT_SEED) -> int:
    """The sector a plain key hashes to."""
    return xxh3_64(key.encode("utf-8", "surrogatepass"), seed) % SECTORS


xxh3_64 = xxhash.xxh3_64_intdigest
"""xxh3-64 of bytes with a seed, as an int (bound once: lookups are a hot path)."""


def part_sector(
    key: str, upload_id: str, segment: int, index: int, attempt: int, seed: int = DEFAULT_SEED
) -> int:
    """The sector tried by the given attempt to place one part of one upload."""
    return hash64(key, upload_id, segment, index, attempt, seed=seed) % SECTORS
