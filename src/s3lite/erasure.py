"""Reed-Solomon erasure coding of stripe rows: six data units plus ``p`` parity units.

Theory of operation. A segment's bytes are dealt to six data parts in stripe units;
stripe row ``r`` is unit ``r`` of each of the six parts. For every row, :class:`Codec`
computes ``p`` parity units (0 <= p <= 4) with a *systematic* code: the generator
matrix is the 6x6 identity stacked on a ``p x 6`` Cauchy matrix over GF(2^8), so the
data parts stay plain bytes (a healthy read decodes nothing) and any six of the
``6 + p`` units of a row determine the other ones (every 6x6 submatrix of a Cauchy
generator is invertible). Parity part ``i`` is parity unit ``i`` of every row, in row
order. Units of one call must have equal lengths: a row's short units (the last row
of a segment) are zero-padded by the caller to the length of the row's unit 0.

The code works byte by byte: byte ``j`` of a parity unit depends only on byte ``j``
of the data units. So coding bytes ``[a, b)`` of each unit gives bytes ``[a, b)`` of
the result, for any ``a`` and ``b``: a ranged degraded read decodes just the blocks
it needs, and a caller may cut a row into slices of any size.

The arithmetic is Intel's ISA-L (``ec_encode_data``: SIMD, several GB/s per core),
found in the ``pyeclib`` wheel, which bundles it, or else as the system's
``libisal.so.2``. It is called through ctypes, which **releases the GIL** for the
duration of each call, so callers run :meth:`Codec.encode` and :meth:`Codec.decode`
in a worker thread and the event loop keeps running meanwhile. Why ISA-L through
ctypes rather than a Python binding: see the README ("Choices, and why"; measured
by ``python -m benchmarks erasure``). Nothing here does I/O or awaits; the library
is loaded once, on the first :class:`Codec`.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import importlib.metadata
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

from .buffers import Buffer
from .errors import NotEnoughParts

DATA_UNITS = 6
"""Data units per stripe row (the spec's six parts)."""

MAX_PARITY = 4
"""Most parity units a row can have (the issue's bound on ``--parity``)."""

ENCODE_SLICE = 256 * 1024
"""Bytes of each unit coded per call into ISA-L: inputs and outputs of one slice
stay in the CPU's caches (measured twice as fast as whole 1 MiB units for p >= 3)."""

_Pointers = ctypes.c_void_p * (DATA_UNITS + MAX_PARITY)


class IsalNotFound(ImportError):
    """Neither pyeclib's bundled ISA-L nor a system ``libisal.so.2`` could be loaded."""


@functools.cache
def _isal() -> ctypes.CDLL:
    """ISA-L, from the pyeclib wheel (``pyeclib.libs/libisal*.so*``) or the system."""
    candidates: list[str] = []
    try:
        files = importlib.metadata.files("pyeclib") or []
        candidates += [
            str(file.locate()) for file in files if Path(str(file)).name.startswith("libisal")
        ]
    except importlib.metadata.PackageNotFoundError:
        pass
    system = ctypes.util.find_library("isal")
    if system:
        candidates.append(system)
    for candidate in candidates:
        try:
            lib = ctypes.CDLL(candidate)  # CDLL (not PyDLL): calls release the GIL
            lib.ec_encode_data  # noqa: B018 - an ISA-L without erasure codes is no use
        except (OSError, AttributeError):
            continue
        lib.gf_gen_cauchy1_matrix.argtypes = [ctypes.c_char_p, ctypes.c_int, ctypes.c_int]
        lib.gf_gen_cauchy1_matrix.restype = None
        lib.gf_invert_matrix.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_int]
        lib.gf_invert_matrix.restype = ctypes.c_int
        lib.gf_mul.argtypes = [ctypes.c_ubyte, ctypes.c_ubyte]
        lib.gf_mul.restype = ctypes.c_ubyte
        lib.ec_init_tables.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_char_p]
        lib.ec_init_tables.restype = None
        lib.ec_encode_data.argtypes = [
            ctypes.c_int,
            ctypes.c_int,
            ctypes.c_int,
            ctypes.c_char_p,
            ctypes.c_void_p,
            ctypes.c_void_p,
        ]
        lib.ec_encode_data.restype = None
        return lib
    raise IsalNotFound(
        "s3lite's erasure code needs ISA-L: install the pyeclib wheel (a dependency of "
        "s3lite, which bundles it) or the system package providing libisal.so.2 "
        f"(tried: {candidates or 'nothing found'})"
    )


class _Py_buffer(ctypes.Structure):
    _fields_ = [
        ("buf", ctypes.c_void_p),
        ("obj", ctypes.c_void_p),
        ("len", ctypes.c_ssize_t),
        ("itemsize", ctypes.c_ssize_t),
        ("readonly", ctypes.c_int),
        ("ndim", ctypes.c_int),
        ("format", ctypes.c_char_p),
        ("shape", ctypes.c_void_p),
        ("strides", ctypes.c_void_p),
        ("suboffsets", ctypes.c_void_p),
        ("internal", ctypes.c_void_p),
    ]


_get_buffer = ctypes.pythonapi.PyObject_GetBuffer
_get_buffer.argtypes = [ctypes.py_object, ctypes.POINTER(_Py_buffer), ctypes.c_int]
_get_buffer.restype = ctypes.c_int
_release_buffer = ctypes.pythonapi.PyBuffer_Release
_release_buffer.argtypes = [ctypes.POINTER(_Py_buffer)]
_release_buffer.restype = None
_new_bytes = ctypes.pythonapi.PyBytes_FromStringAndSize
_new_bytes.argtypes = [ctypes.c_char_p, ctypes.c_ssize_t]
_new_bytes.restype = ctypes.py_object
_PyBUF_SIMPLE = 0


def _unfilled(length: int) -> bytes:
    """A new bytes object whose contents are not initialised, for ISA-L to fill before
    anyone else sees it: the C API's way of building bytes, with no zero-filling and
    no copy (measured: half the cost of coding a 1 MiB row). Never called with length
    0, whose bytes object is shared."""
    made: bytes = _new_bytes(None, length)
    return made


class _Pinned:
    """Addresses of contiguous buffers, held (not copied) until :meth:`release`."""

    def __init__(self) -> None:
        self._views: list[_Py_buffer] = []

    def address(self, data: Buffer) -> int:
        if type(data) is bytes:  # the common case, and the cheapest: no buffer export
            return ctypes.cast(ctypes.c_char_p(data), ctypes.c_void_p).value or 0
        view = _Py_buffer()
        _get_buffer(data, ctypes.byref(view), _PyBUF_SIMPLE)
        self._views.append(view)
        return view.buf or 0

    def release(self) -> None:
        for view in self._views:
            _release_buffer(ctypes.byref(view))
        self._views.clear()


class Codec:
    """The erasure code of rows with six data units and ``parity`` parity units.

    Unit indexes: 0..5 are the data units, 6..5+parity the parity units. Instances
    are immutable and thread-safe (decode tables are cached per choice of units).
    """

    def __init__(self, parity: int) -> None:
        if not _is_int(parity) or not 0 <= parity <= MAX_PARITY:
            raise ValueError(f"parity must be an integer from 0 to {MAX_PARITY}, got {parity!r}")
        self.parity = parity
        self.units = DATA_UNITS + parity
        lib = _isal()
        matrix = ctypes.create_string_buffer(self.units * DATA_UNITS)
        lib.gf_gen_cauchy1_matrix(matrix, self.units, DATA_UNITS)
        self._matrix = matrix.raw
        """(6 + parity) rows of 6 coefficients: the identity, then the Cauchy rows."""
        self._encode_tables = _tables(self._matrix[DATA_UNITS * DATA_UNITS :], parity)
        self._decode_tables: dict[tuple[tuple[int, ...], tuple[int, ...]], bytes] = {}

    def __repr__(self) -> str:
        return f"Codec(parity={self.parity})"

    def encode(self, units: Sequence[Buffer]) -> list[bytes]:
        """The ``parity`` parity units of six equally long data units.

        Raises ValueError unless exactly six units of one length are given. Releases
        the GIL while coding: call it from a worker thread.
        """
        if len(units) != DATA_UNITS:
            raise ValueError(f"encode takes {DATA_UNITS} data units, got {len(units)}")
        length = _common_length(units)
        return _code(self._encode_tables, [(unit,) for unit in units], self.parity, length)

    def encode_pieces(self, units: Sequence[Sequence[Buffer]], length: int) -> list[bytes]:
        """The parity units of a row whose six data units each come as consecutive
        pieces, never joined: the dealer cuts units out of the body's chunks as
        memoryviews, and joining them would copy every byte once more (the memory
        bandwidth of a 1 GiB upload: about 0.2 CPU-s here). A unit shorter than
        ``length`` counts as zero-padded to it (the last row of a segment), with no
        padding made. ValueError unless six units of at most ``length`` bytes.
        """
        if len(units) != DATA_UNITS:
            raise ValueError(f"encode takes {DATA_UNITS} data units, got {len(units)}")
        for unit in units:
            if sum(memoryview(piece).nbytes for piece in unit) > length:
                raise ValueError(f"a unit of a row of {length} bytes is longer than that")
        return _code(self._encode_tables, units, self.parity, length)

    def decode(self, available: Mapping[int, Buffer], wanted: Iterable[int]) -> dict[int, bytes]:
        """The ``wanted`` units (data or parity indexes) of a row, from any six others.

        ``available`` maps unit indexes to equally long units (bytes ``[a, b)`` of each
        unit give bytes ``[a, b)`` of the wanted ones). Raises NotEnoughParts when fewer
        than six units are available, ValueError for an index outside the row or
        units of unequal lengths. Releases the GIL while coding: call it from a worker
        thread.
        """
        wanted = tuple(dict.fromkeys(wanted))
        for index in (*available, *wanted):
            if not _is_int(index) or not 0 <= index < self.units:
                raise ValueError(
                    f"unit index must be from 0 to {self.units - 1} for parity "
                    f"{self.parity}, got {index!r}"
                )
        length = _common_length(list(available.values()))
        result = {index: bytes(available[index]) for index in wanted if index in available}
        missing = tuple(index for index in wanted if index not in available)
        if not missing:
            return result
        if len(available) < DATA_UNITS:
            raise NotEnoughParts(
                f"rebuilding units {list(missing)} needs {DATA_UNITS} of the row's "
                f"{self.units} units, got {len(available)}: {sorted(available)}"
            )
        sources = tuple(sorted(available)[:DATA_UNITS])  # data units first: cheapest rows
        tables = self._decode_tables.get((sources, missing))
        if tables is None:
            tables = _tables(self._rebuild_rows(sources, missing), len(missing))
            if len(self._decode_tables) > 4096:  # every choice of units fits: a bound only
                self._decode_tables.clear()
            self._decode_tables[sources, missing] = tables
        units = [(available[index],) for index in sources]
        rebuilt = _code(tables, units, len(missing), length)
        result.update(zip(missing, rebuilt, strict=True))
        return result

    def _rebuild_rows(self, sources: tuple[int, ...], missing: tuple[int, ...]) -> bytes:
        """Coefficients giving each missing unit from the six ``sources`` units: the row
        of the missing unit in the generator, times the inverse of the sources' rows."""
        lib = _isal()
        chosen = b"".join(self._row(index) for index in sources)
        inverse = ctypes.create_string_buffer(DATA_UNITS * DATA_UNITS)
        if lib.gf_invert_matrix(chosen, inverse, DATA_UNITS) != 0:
            raise AssertionError(f"units {sources} of a Cauchy code must be independent")
        inverted = inverse.raw
        rows = bytearray()
        for index in missing:
            row = self._row(index)
            for column in range(DATA_UNITS):
                value = 0
                for k in range(DATA_UNITS):
                    value ^= lib.gf_mul(row[k], inverted[k * DATA_UNITS + column])
                rows.append(value)
        return bytes(rows)

    def _row(self, index: int) -> bytes:
        return self._matrix[index * DATA_UNITS : (index + 1) * DATA_UNITS]


@functools.cache
def codec(parity: int) -> Codec:
    """The shared :class:`Codec` of ``parity`` (codecs are immutable and thread-safe,
    and building one computes its tables)."""
    return Codec(parity)


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _tables(rows: bytes, count: int) -> bytes:
    """ISA-L's expanded multiplication tables for ``count`` rows of six coefficients."""
    tables = ctypes.create_string_buffer(max(1, DATA_UNITS * count * 32))
    if count:
        _isal().ec_init_tables(DATA_UNITS, count, rows, tables)
    return tables.raw


def _common_length(units: Sequence[Buffer]) -> int:
    lengths = {memoryview(unit).nbytes for unit in units}
    if len(lengths) > 1:
        raise ValueError(f"units must have equal lengths, got lengths {sorted(lengths)}")
    return lengths.pop() if lengths else 0


def _code(
    tables: bytes, sources: Sequence[Sequence[Buffer]], count: int, length: int
) -> list[bytes]:
    """``count`` output units, each the row of ``tables`` applied to the six sources.

    Each source is a unit as consecutive pieces of at most ``length`` bytes in all,
    zero-padded to ``length``: the code is byte by byte, so ISA-L is called once per
    stretch of bytes where no source crosses from one piece to the next (and at most
    ENCODE_SLICE long), with pointers into the pieces themselves.
    """
    if not count or not length:
        return [b""] * count
    outputs = [_unfilled(length) for _ in range(count)]
    pinned = _Pinned()
    try:
        spans = [_spans(pinned, pieces, length) for pieces in sources]
        output_addresses = [pinned.address(output) for output in outputs]
        cuts = set(range(ENCODE_SLICE, length, ENCODE_SLICE))
        cuts.update(end for unit in spans for end, _, _ in unit)
        code = _isal().ec_encode_data
        cursors = [0] * len(spans)
        offset = 0
        for cut in sorted(cuts):
            inputs = []
            for number, unit in enumerate(spans):
                while unit[cursors[number]][0] <= offset:
                    cursors[number] += 1
                _, start, address = unit[cursors[number]]
                inputs.append(address if start is None else address + offset - start)
            results = (address + offset for address in output_addresses)
            code(cut - offset, DATA_UNITS, count, tables, _Pointers(*inputs), _Pointers(*results))
            offset = cut
    finally:
        pinned.release()
    return outputs


_ZEROS = bytes(ENCODE_SLICE)
"""What a short unit is padded with: no stretch coded at once is longer."""


def _spans(
    pinned: _Pinned, pieces: Sequence[Buffer], length: int
) -> list[tuple[int, int | None, int]]:
    """(end, start, address) of each piece of a unit, by offset in the unit, then the
    zero padding to ``length`` (start None: the address does not move with the offset)."""
    spans: list[tuple[int, int | None, int]] = []
    offset = 0
    for piece in pieces:
        size = memoryview(piece).nbytes
        if size:
            spans.append((offset + size, offset, pinned.address(piece)))
            offset += size
    if offset < length:
        spans.append((length, None, pinned.address(_ZEROS)))
    return spans
