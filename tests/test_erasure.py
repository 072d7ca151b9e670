"""The erasure code: any six of a row's 6 + p units rebuild the others, byte-position
independently, and the parity is the Cauchy Reed-Solomon code the module documents.

The parity is checked against a pure-Python GF(2^8) computation of the documented
generator (not against ISA-L itself) and against liberasurecode's ``isa_l_rs_cauchy``
(pyeclib's own use of ISA-L), so a wrong table, matrix or pointer cannot pass.
"""

from __future__ import annotations

import functools
import itertools
import operator
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from s3lite import NotEnoughParts
from s3lite.erasure import DATA_UNITS, ENCODE_SLICE, MAX_PARITY, Codec

from .strategies import stripe_rows


def _gf_tables() -> tuple[list[int], list[int]]:
    """exp/log tables of GF(2^8) with ISA-L's polynomial x^8 + x^4 + x^3 + x^2 + 1."""
    exp, log = [0] * 512, [0] * 256
    value = 1
    for power in range(255):
        exp[power] = value
        log[value] = power
        value <<= 1
        if value & 0x100:
            value ^= 0x11D
    for power in range(255, 512):
        exp[power] = exp[power - 255]
    return exp, log


EXP, LOG = _gf_tables()


def gf_mul(a: int, b: int) -> int:
    return 0 if a == 0 or b == 0 else EXP[LOG[a] + LOG[b]]


def gf_inv(a: int) -> int:
    return EXP[255 - LOG[a]]


def reference_parity(units: list[bytes], parity: int) -> list[bytes]:
    """Parity unit i, byte j = sum over data units d of 1/((6 + i) xor d) * unit_d[j]."""
    rows = [[gf_inv((DATA_UNITS + i) ^ d) for d in range(DATA_UNITS)] for i in range(parity)]
    return [
        bytes(
            functools.reduce(operator.xor, (gf_mul(row[d], units[d][j]) for d in range(6)))
            for j in range(len(units[0]))
        )
        for row in rows
    ]


def all_units(codec: Codec, data: list[bytes]) -> dict[int, bytes]:
    return dict(enumerate([*data, *codec.encode(data)]))


@settings(max_examples=60, deadline=None)
@given(stripe_rows(max_length=64))
def test_parity_is_the_documented_cauchy_code(row: tuple[int, list[bytes]]) -> None:
    parity, data = row
    assert Codec(parity).encode(data) == reference_parity(data, parity)


@pytest.mark.parametrize("parity", range(1, MAX_PARITY + 1))
def test_parity_matches_liberasurecode_isa_l_cauchy(parity: int) -> None:
    pyeclib = pytest.importorskip("pyeclib.ec_iface")
    driver = pyeclib.ECDriver(k=DATA_UNITS, m=parity, ec_type="isa_l_rs_cauchy")
    data = [random.Random(index).randbytes(4096) for index in range(DATA_UNITS)]
    fragments = driver.encode(b"".join(data))
    header = len(fragments[0]) - 4096  # liberasurecode's fragment header
    assert [fragment[header:] for fragment in fragments[DATA_UNITS:]] == Codec(parity).encode(data)


@settings(max_examples=200, deadline=None)
@given(stripe_rows(), st.data())
def test_any_six_units_rebuild_every_other_unit(
    row: tuple[int, list[bytes]], draw: st.DataObject
) -> None:
    parity, data = row
    codec = Codec(parity)
    units = all_units(codec, data)
    kept = draw.draw(st.sets(st.sampled_from(range(codec.units)), min_size=6, max_size=6))
    available = {index: units[index] for index in kept}
    assert codec.decode(available, range(codec.units)) == units


@pytest.mark.parametrize("parity", range(MAX_PARITY + 1))
def test_every_choice_of_six_units_rebuilds_the_data(parity: int) -> None:
    """Exhaustive over the C(6 + p, 6) choices (at most 210), one row each."""
    codec = Codec(parity)
    data = [random.Random(index).randbytes(97) for index in range(DATA_UNITS)]
    units = all_units(codec, data)
    for kept in itertools.combinations(range(codec.units), DATA_UNITS):
        rebuilt = codec.decode({index: units[index] for index in kept}, range(DATA_UNITS))
        assert [rebuilt[index] for index in range(DATA_UNITS)] == data, kept


@settings(max_examples=200, deadline=None)
@given(stripe_rows(), st.data())
def test_decoding_a_byte_range_gives_that_range_of_the_missing_units(
    row: tuple[int, list[bytes]], draw: st.DataObject
) -> None:
    parity, data = row
    codec = Codec(parity)
    units = all_units(codec, data)
    length = len(data[0])
    start = draw.draw(st.integers(0, length))
    end = draw.draw(st.integers(start, length))
    kept = draw.draw(st.sets(st.sampled_from(range(codec.units)), min_size=6, max_size=7))
    available = {index: units[index][start:end] for index in kept}
    rebuilt = codec.decode(available, range(codec.units))
    assert rebuilt == {index: unit[start:end] for index, unit in units.items()}
    assert codec.encode([unit[start:end] for unit in data]) == [
        unit[start:end] for unit in codec.encode(data)
    ]


@pytest.mark.parametrize("parity", [1, 4])
def test_units_longer_than_one_coding_slice(parity: int) -> None:
    codec = Codec(parity)
    length = 2 * ENCODE_SLICE + 12_345
    data = [random.Random(index).randbytes(length) for index in range(DATA_UNITS)]
    units = all_units(codec, data)
    for unit in units.values():  # each slice is the code of that slice alone
        assert len(unit) == length
    middle = slice(ENCODE_SLICE - 100, ENCODE_SLICE + 100)
    assert (
        codec.encode([unit[middle] for unit in data])
        == [unit[middle] for unit in units.values()][DATA_UNITS:]
    )
    lost = list(range(parity))
    available = {index: unit for index, unit in units.items() if index not in lost}
    assert codec.decode(available, lost) == {index: units[index] for index in lost}


def test_any_buffer_is_read_in_place_and_left_unchanged() -> None:
    codec = Codec(2)
    data = [random.Random(index).randbytes(1000) for index in range(DATA_UNITS)]
    parity = codec.encode(data)
    mutable = [bytearray(unit) for unit in data]
    views = [memoryview(b"xx" + unit + b"yy")[2:-2] for unit in data]  # read-only slices
    assert codec.encode(mutable) == parity
    assert codec.encode(views) == parity
    assert [bytes(unit) for unit in mutable] == data
    available = {0: views[0], 2: mutable[2], 3: data[3], 4: views[4], 6: parity[0], 7: parity[1]}
    rebuilt = codec.decode(available, [1, 5, 0])
    assert rebuilt == {1: data[1], 5: data[5], 0: data[0]}
    assert all(type(unit) is bytes for unit in rebuilt.values())


def cut(unit: bytes, at: list[int]) -> list[bytes | memoryview]:
    """``unit`` as consecutive pieces cut at ``at`` (memoryviews, as the dealer cuts)."""
    view = memoryview(unit)
    bounds = [0, *sorted({min(point, len(unit)) for point in at}), len(unit)]
    return [view[start:end] for start, end in itertools.pairwise(bounds)]


@settings(max_examples=200, deadline=None)
@given(stripe_rows(), st.data())
def test_a_row_coded_from_pieces_is_the_row_joined_and_zero_padded(
    row: tuple[int, list[bytes]], draw: st.DataObject
) -> None:
    # the dealer codes units cut anywhere by the client's chunks, and the last row's
    # short units as if zero-padded: the parity must be that of the joined, padded row
    parity, data = row
    length = len(data[0])
    shortened = [unit[: draw.draw(st.integers(0, length))] for unit in data[1:]]
    units = [data[0], *shortened]
    points = st.lists(st.integers(0, length), max_size=4)
    pieces = [cut(unit, draw.draw(points)) for unit in units]
    padded = [unit + bytes(length - len(unit)) for unit in units]
    assert Codec(parity).encode_pieces(pieces, length) == Codec(parity).encode(padded)


@pytest.mark.parametrize("parity", [1, 4])
def test_pieces_across_coding_slices_and_a_short_last_unit(parity: int) -> None:
    codec = Codec(parity)
    length = 2 * ENCODE_SLICE + 12_345
    data = [random.Random(index).randbytes(length) for index in range(DATA_UNITS)]
    data[5] = data[5][: ENCODE_SLICE + 7]  # its padding spans more than one slice
    points = [[ENCODE_SLICE - 1 + index, ENCODE_SLICE * 2 + index] for index in range(6)]
    pieces = [cut(unit, at) for unit, at in zip(data, points, strict=True)]
    padded = [unit + bytes(length - len(unit)) for unit in data]
    assert codec.encode_pieces(pieces, length) == codec.encode(padded)
    with pytest.raises(ValueError, match="longer than that"):
        codec.encode_pieces(pieces, length - 1)
    with pytest.raises(ValueError, match="6 data units"):
        codec.encode_pieces(pieces[:5], length)


def test_parity_zero_has_no_parity_and_needs_every_data_unit() -> None:
    codec = Codec(0)
    data = [bytes([index]) * 10 for index in range(DATA_UNITS)]
    assert codec.encode(data) == []
    assert codec.decode(dict(enumerate(data)), [3]) == {3: data[3]}
    with pytest.raises(NotEnoughParts):
        codec.decode(dict(enumerate(data[:5])), [5])


@pytest.mark.parametrize("parity", range(MAX_PARITY + 1))
def test_fewer_than_six_units_is_a_typed_error(parity: int) -> None:
    codec = Codec(parity)
    data = [bytes([index]) * 10 for index in range(DATA_UNITS)]
    units = all_units(codec, data)
    five = {index: units[index] for index in list(units)[-5:]}
    with pytest.raises(NotEnoughParts) as raised:
        codec.decode(five, [0])
    assert "needs 6" in str(raised.value)
    first = min(five)
    assert codec.decode(five, [first]) == {first: units[first]}


@pytest.mark.parametrize("parity", [-1, 5, 2.0, "2", None, True])
def test_parity_out_of_range_is_refused(parity: object) -> None:
    with pytest.raises(ValueError, match="parity must be"):
        Codec(parity)  # type: ignore[arg-type]


def test_malformed_rows_are_refused() -> None:
    codec = Codec(2)
    data = [bytes(10)] * DATA_UNITS
    with pytest.raises(ValueError, match="6 data units"):
        codec.encode(data[:5])
    with pytest.raises(ValueError, match="equal lengths"):
        codec.encode([*data[:5], bytes(11)])
    with pytest.raises(ValueError, match="equal lengths"):
        codec.decode({0: bytes(10), 1: bytes(9), 2: b"", 3: b"", 4: b"", 5: b""}, [6])
    with pytest.raises(ValueError, match="unit index"):
        codec.decode(dict(enumerate(data)), [8])
    with pytest.raises(ValueError, match="unit index"):
        codec.decode({-1: bytes(10), **dict(enumerate(data))}, [6])
    with pytest.raises(ValueError, match="unit index"):
        codec.decode(dict(enumerate(data)), [True])
