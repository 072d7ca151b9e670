"""The contract every :class:`~s3lite.transport.NodeClient` implementation must honour.

This module is imported, never collected: a transport's test module subclasses
:class:`NodeClientContract` and provides one fixture, ``node_factory``. Every test here
then runs against that transport unchanged. The contract speaks only through the
``NodeClient`` interface plus the small :class:`NodeHandle` surface below (stop,
restart, list the node's files), so the in-memory transport and a network transport
(each node its own process) are held to exactly the same behaviour.

How a transport plugs in::

    class TestMyTransport(NodeClientContract):
        @pytest.fixture
        async def node_factory(self, tmp_path) -> AsyncIterator[NodeFactory]:
            # yield an async callable: each call starts a fresh, empty node (own data
            # directory) and returns a NodeHandle for it; stop every node at teardown.
            ...

``NodeHandle`` asks for: ``client`` (re-resolved after a restart), ``node_id``,
``stop()`` (the node becomes unreachable; old clients must then raise NodeUnavailable),
``restart()`` (same data directory), ``settle()`` (wait until the node has finished
every request it received; a no-op in process), ``files()`` (``data_files(data_dir)``
does it) and ``part_file(sector, name)`` (``part_path(data_dir, sector, name)``).
What a network client must carry across the wire for these tests to pass:
the typed errors with their fields (``PartNotFound.sector``/``.name``,
``InvalidRange.size``), ``InvalidName`` for sectors that are not ints in [0, 360)
(``True`` included, so check before formatting a URL), and an exception raised by an
upload body must reach the caller unchanged.

What the contract asserts about sizes is limited to what the interface promises:
usage counts the payload plus a per-part overhead (the node's header and block
checksums), and it equals what the node measures from its own directory after a
restart. The exact on-disk format is pinned by the storager tests, not here; the
integrity tests only use ``partfile.Header.payload_offset`` to find the byte to damage.
"""

from __future__ import annotations

import gc
import io
import random
import struct
import warnings
import zipfile
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Iterable, Sequence
from pathlib import Path
from typing import ClassVar, Protocol

import anyio
import pytest
import xxhash

from s3lite import (
    CorruptArchive,
    DamagedPart,
    InvalidName,
    InvalidRange,
    NodeUnavailable,
    PartNotFound,
    S3liteError,
)
from s3lite.storager.partfile import BLOCK_SIZE, Header
from s3lite.transport import ByteStream, ImportResult, NodeClient, PartCheck, PartStat

MiB = 1 << 20


class NodeHandle(Protocol):
    """One storage node under test, as the contract drives it."""

    @property
    def client(self) -> NodeClient:
        """A client for the node (after :meth:`restart`, for the restarted node)."""
        ...

    @property
    def node_id(self) -> str:
        """The id the node was started with; ``health()`` must report it."""
        ...

    async def stop(self) -> None:
        """Make the node unreachable the way a crash or shutdown would (close the
        node, kill its process). Clients obtained before keep existing."""
        ...

    async def restart(self) -> None:
        """Stop the node and start it again on the same data directory, so that it
        measures its usage from disk afresh."""
        ...

    async def settle(self) -> None:
        """Return once the node has finished handling every request it received.

        A client-side failure (a body that raises, a cancelled upload) may reach a
        remote node only as a dropped connection; the node cleans up in its own time.
        In-process nodes have nothing to wait for.
        """
        ...

    def files(self) -> set[str]:
        """Every regular file under the node's data directory, as relative POSIX paths.

        Used to prove that refused or failed calls leave nothing behind (no part, no
        temporary file) without knowing the layout.
        """
        ...

    def part_file(self, sector: int, name: str) -> Path:
        """The file that holds a part, for tests that damage it on disk."""
        ...


NodeFactory = Callable[[], Awaitable[NodeHandle]]
"""What the ``node_factory`` fixture yields: each call starts a fresh, empty node."""


def payload(size: int, seed: int = 0) -> bytes:
    """Deterministic incompressible bytes."""
    return random.Random(f"{seed}:{size}").randbytes(size)


class chunked:
    """``data`` as chunks whose sizes cycle through ``sizes`` (0 yields an empty chunk).

    A plain async iterator, not an async generator: a node may stop reading a body
    early (a refused call, a corrupt archive), and an abandoned generator would be
    finalized by the event loop (a ResourceWarning on trio) for no fault of the node.
    """

    def __init__(self, data: bytes, sizes: Sequence[int] = (64 * 1024,)) -> None:
        self._data = data
        self._sizes = sizes
        self._position = 0
        self._index = 0
        self.consumed = 0

    def __aiter__(self) -> chunked:
        return self

    async def __anext__(self) -> bytes:
        if self._position >= len(self._data):
            raise StopAsyncIteration
        size = self._sizes[self._index % len(self._sizes)]
        self._index += 1
        chunk = self._data[self._position : self._position + size]
        self._position += size
        self.consumed += len(chunk)
        return chunk


async def read_into(stream: ByteStream, received: bytearray) -> None:
    """Append a stream's chunks to ``received`` until it ends or fails; then close it
    (so a test can look at what arrived before a failure)."""
    try:
        async for chunk in stream:
            received.extend(chunk)
    finally:
        await stream.aclose()


async def read_all(stream: ByteStream) -> bytes:
    try:
        return b"".join([chunk async for chunk in stream])
    finally:
        await stream.aclose()


def stat_of(sector: int, name: str, data: bytes) -> PartStat:
    return PartStat(name, sector, len(data))


class BodyFailed(Exception):
    """Raised by a test body to simulate a client that fails mid-upload."""


class failing_body(chunked):
    """``data`` in chunks, then BodyFailed instead of the end of the stream."""

    async def __anext__(self) -> bytes:
        try:
            return await super().__anext__()
        except StopAsyncIteration:
            raise BodyFailed("the client went away") from None


def member_payloads(archive: bytes) -> dict[str, tuple[int, int]]:
    """Archive member name -> (offset of its payload, payload length)."""
    found = {}
    with zipfile.ZipFile(io.BytesIO(archive)) as opened:
        for info in opened.infolist():
            name_length, extra_length = struct.unpack_from("<HH", archive, info.header_offset + 26)
            start = info.header_offset + 30 + name_length + extra_length
            found[info.filename] = (start, info.file_size)
    return found


def central_directory_offset(archive: bytes) -> int:
    with zipfile.ZipFile(io.BytesIO(archive)) as opened:
        last = opened.infolist()[-1]
    start, length = member_payloads(archive)[last.filename]
    return start + length


class Snapshot:
    """Everything a client can observe about some sectors, plus the node's files."""

    def __init__(
        self, usage: dict[int, int], parts: dict[int, dict[str, bytes]], files: set[str]
    ) -> None:
        self.usage = usage
        self.parts = parts
        self.files = files

    @classmethod
    async def take(cls, node: NodeHandle, sectors: Iterable[int]) -> Snapshot:
        client = node.client
        parts: dict[int, dict[str, bytes]] = {}
        for sector in sectors:
            stats = await client.list_parts(sector)
            contents = {}
            for stat in stats:
                data = await read_all(await client.get_part(sector, stat.name))
                assert stat == stat_of(sector, stat.name, data)
                contents[stat.name] = data
            parts[sector] = contents
        return cls(dict(await client.usage()), parts, node.files())

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Snapshot):
            return NotImplemented
        return (self.usage, self.parts, self.files) == (other.usage, other.parts, other.files)

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        sizes = {s: {n: len(d) for n, d in p.items()} for s, p in self.parts.items()}
        return f"Snapshot(usage={self.usage}, parts={sizes}, files={sorted(self.files)})"


BAD_NAMES = [
    pytest.param("../x", id="parent"),
    pytest.param("..", id="dotdot"),
    pytest.param(".", id="dot"),
    pytest.param("a/b", id="slash"),
    pytest.param("/abs", id="absolute"),
    pytest.param("a\\b", id="backslash"),
    pytest.param("", id="empty"),
    pytest.param(".hidden", id="hidden"),
    pytest.param("-dash", id="leading-dash"),
    pytest.param("a\0b", id="nul"),
    pytest.param("sp ace", id="space"),
    pytest.param("é", id="non-ascii"),
    pytest.param("a" * 1000, id="very-long"),
]

BAD_SECTORS = [
    pytest.param(-1, id="minus-one"),
    pytest.param(360, id="360"),
    pytest.param(10**12, id="huge"),
    pytest.param(True, id="True"),
    pytest.param(False, id="False"),
]

UNAVAILABLE_CALLS: dict[str, Callable[[NodeClient, bytes], Awaitable[object]]] = {
    "health": lambda c, _: c.health(),
    "usage": lambda c, _: c.usage(),
    "put_part": lambda c, _: c.put_part(1, "q", chunked(b"abc")),
    "put_part_overwrite": lambda c, _: c.put_part(1, "p", chunked(b"abc")),
    "get_part": lambda c, _: c.get_part(1, "p"),
    "get_part_range": lambda c, _: c.get_part(1, "p", 0, 1),
    "delete_parts": lambda c, _: c.delete_parts(1, ["p"]),
    "list_parts": lambda c, _: c.list_parts(1),
    "link_part": lambda c, _: c.link_part("p", 1, 2),
    "export_sectors": lambda c, _: c.export_sectors([1]),
    "import_sectors": lambda c, archive: c.import_sectors(chunked(archive)),
    "drop_sectors": lambda c, _: c.drop_sectors([1]),
}


class NodeClientContract:
    """Behaviour every NodeClient must show. Subclasses provide ``node_factory``."""

    pytestmark: ClassVar = [pytest.mark.anyio]

    @pytest.fixture
    async def node(self, node_factory: NodeFactory) -> NodeHandle:
        return await node_factory()

    @pytest.fixture
    def client(self, node: NodeHandle) -> NodeClient:
        return node.client

    # -- put and get -------------------------------------------------------------------

    @pytest.mark.parametrize(
        ("size", "chunk_sizes"),
        [
            pytest.param(0, [1], id="empty"),
            pytest.param(1, [1], id="one-byte"),
            pytest.param(100_003, [1, 7, 0, 4093, 65_537], id="odd-chunks"),
            pytest.param(3 * MiB + 17, [MiB + 3, 65_536, 0, 999_999, 13], id="multi-MiB"),
            pytest.param(2 * MiB + 1, [2 * MiB + 1], id="one-big-chunk"),
        ],
    )
    async def test_put_then_get_returns_identical_bytes(
        self, client: NodeClient, size: int, chunk_sizes: list[int]
    ) -> None:
        data = payload(size)
        stat = await client.put_part(7, "part-1", chunked(data, chunk_sizes))
        assert stat == stat_of(7, "part-1", data)
        assert await read_all(await client.get_part(7, "part-1")) == data
        assert await client.list_parts(7) == [stat]

    @pytest.mark.parametrize("size", [0, 1, 100_003, 3 * MiB + 17])
    async def test_put_with_its_length_stores_the_same_part(
        self, client: NodeClient, size: int
    ) -> None:
        """A body of known length (sent with a Content-Length over HTTP)."""
        data = payload(size)
        chunks = chunked(data, [65_537, 1, MiB])
        stat = await client.put_part(3, "sized", chunks, length=size)
        assert stat == stat_of(3, "sized", data)
        assert await read_all(await client.get_part(3, "sized")) == data

    async def test_a_body_that_fails_after_its_whole_length_stores_nothing(
        self, client: NodeClient
    ) -> None:
        """The writer's body raises instead of ending (an abandoned upload): even
        with every byte of ``length`` sent before, the node keeps nothing."""

        class Abandoned(S3liteError):
            pass

        async def body() -> AsyncIterator[bytes]:
            yield payload(5000)
            raise Abandoned("the upload was abandoned")

        with pytest.raises(Abandoned):
            await client.put_part(3, "gone", body())
        assert await client.list_parts(3) == []

    async def test_a_body_of_empty_chunks_stores_an_empty_part(self, client: NodeClient) -> None:
        async def empty_chunks() -> AsyncIterator[bytes]:
            for _ in range(3):
                yield b""

        stat = await client.put_part(0, "empty", empty_chunks())
        assert stat == PartStat("empty", 0, 0)
        assert await read_all(await client.get_part(0, "empty")) == b""

    async def test_one_name_in_two_sectors_is_two_parts(self, client: NodeClient) -> None:
        first, second = payload(1000, seed=1), payload(2000, seed=2)
        await client.put_part(0, "same", chunked(first))
        await client.put_part(359, "same", chunked(second))
        assert await read_all(await client.get_part(0, "same")) == first
        assert await read_all(await client.get_part(359, "same")) == second

    async def test_two_streams_of_one_part_read_independently(self, client: NodeClient) -> None:
        """Two open streams of one part, read alternately chunk by chunk until both end,
        each return every byte (however each transport cuts its chunks)."""
        data = payload(3 * MiB)
        await client.put_part(5, "p", chunked(data))
        streams = [await client.get_part(5, "p"), await client.get_part(5, "p")]
        got = [bytearray(), bytearray()]
        ended = [False, False]
        try:
            while not all(ended):
                for index, stream in enumerate(streams):
                    if not ended[index]:
                        chunk = await anext(stream, None)
                        if chunk is None:
                            ended[index] = True
                        else:
                            got[index] += chunk
        finally:
            for stream in streams:
                await stream.aclose()
        assert got == [data, data]

    async def test_closing_a_stream_unread_releases_it(self, client: NodeClient) -> None:
        await client.put_part(5, "p", chunked(payload(1000)))
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            for _ in range(20):
                stream = await client.get_part(5, "p")
                await stream.aclose()
                await stream.aclose()  # closing twice is allowed
            partly = await client.get_part(5, "p", 10, None)
            await anext(partly)
            await partly.aclose()
            del stream, partly
            gc.collect()
        assert [str(w.message) for w in caught if issubclass(w.category, ResourceWarning)] == []
        assert await read_all(await client.get_part(5, "p")) == payload(1000)

    # -- ranges ------------------------------------------------------------------------

    RANGED_SIZE = MiB + 12_345  # several read chunks

    @pytest.mark.parametrize(
        ("start", "end"),
        [
            (0, 0),
            (0, None),
            (None, 0),
            (5, None),
            (None, 5),
            (RANGED_SIZE - 1, None),
            (None, RANGED_SIZE - 1),
            (RANGED_SIZE - 1, RANGED_SIZE - 1),
            (0, RANGED_SIZE - 1),
            (100_000, 700_000),
            (262_143, 262_144),
            (524_288, 524_288),
        ],
    )
    async def test_ranged_get_equals_slicing(
        self, client: NodeClient, start: int | None, end: int | None
    ) -> None:
        data = payload(self.RANGED_SIZE)
        await client.put_part(9, "ranged", chunked(data))
        first = 0 if start is None else start
        last = len(data) - 1 if end is None else end
        got = await read_all(await client.get_part(9, "ranged", start, end))
        assert got == data[first : last + 1]

    @pytest.mark.parametrize(
        ("start", "end"),
        [
            (RANGED_SIZE, None),
            (None, RANGED_SIZE),
            (RANGED_SIZE, RANGED_SIZE + 10),
            (0, RANGED_SIZE),
            (-1, None),
            (None, -1),
            (-5, 3),
            (6, 5),
        ],
    )
    async def test_range_outside_the_payload_raises(
        self, client: NodeClient, start: int | None, end: int | None
    ) -> None:
        data = payload(self.RANGED_SIZE)
        await client.put_part(9, "ranged", chunked(data))
        with pytest.raises(InvalidRange) as raised:
            await client.get_part(9, "ranged", start, end)
        assert raised.value.size == len(data)
        assert await read_all(await client.get_part(9, "ranged")) == data

    @pytest.mark.parametrize("size", [0, 1, 6])
    async def test_every_range_of_a_small_part(self, client: NodeClient, size: int) -> None:
        data = payload(size)
        await client.put_part(3, "small", chunked(data, [1]))
        bounds: list[int | None] = [None, *range(-1, size + 2)]
        for start in bounds:
            for end in bounds:
                first = 0 if start is None else start
                last = size - 1 if end is None else end
                if start is None and end is None:
                    expected: bytes | None = data
                elif 0 <= first <= last < size:
                    expected = data[first : last + 1]
                else:
                    expected = None
                if expected is None:
                    with pytest.raises(InvalidRange):
                        await client.get_part(3, "small", start, end)
                else:
                    got = await read_all(await client.get_part(3, "small", start, end))
                    assert got == expected, (start, end)

    # -- missing parts -----------------------------------------------------------------

    @pytest.mark.parametrize(
        ("start", "end"), [(None, None), (0, 0), (5, None), (None, 5), (10**9, None)]
    )
    async def test_get_of_a_missing_part_raises_at_the_call(
        self, client: NodeClient, start: int | None, end: int | None
    ) -> None:
        await client.put_part(4, "present", chunked(b"x" * 10))
        await client.put_part(5, "elsewhere", chunked(b"y" * 10))
        for sector, name in [(4, "absent"), (4, "elsewhere"), (6, "present")]:
            with pytest.raises(PartNotFound) as raised:
                await client.get_part(sector, name, start, end)  # not on iteration
            assert (raised.value.sector, raised.value.name) == (sector, name)

    # -- overwrite and delete ----------------------------------------------------------

    async def test_overwriting_a_name_replaces_the_part(self, client: NodeClient) -> None:
        old, new = payload(300_000, seed=1), payload(1000, seed=2)
        await client.put_part(2, "p", chunked(old))
        stat = await client.put_part(2, "p", chunked(new))
        assert stat == stat_of(2, "p", new)
        assert await read_all(await client.get_part(2, "p")) == new
        assert await client.list_parts(2) == [stat]
        # usage counts the new part only: same as a sector holding just that part
        await client.put_part(3, "p", chunked(new))
        usage = await client.usage()
        assert usage[2] == usage[3]

    async def test_delete_returns_how_many_existed_and_is_idempotent(
        self, client: NodeClient
    ) -> None:
        for name in ["a", "b", "c"]:
            await client.put_part(8, name, chunked(name.encode() * 100))
        assert await client.delete_parts(8, ["a", "b", "missing"]) == 2
        assert await client.delete_parts(8, ["a", "b", "missing"]) == 0
        assert await client.delete_parts(8, []) == 0
        assert await client.delete_parts(200, ["c"]) == 0  # a sector never written
        assert [s.name for s in await client.list_parts(8)] == ["c"]
        with pytest.raises(PartNotFound):
            await client.get_part(8, "a")
        assert await read_all(await client.get_part(8, "c")) == b"c" * 100

    async def test_deleting_the_last_part_empties_the_sector(self, client: NodeClient) -> None:
        await client.put_part(8, "a", chunked(b"a"))
        await client.put_part(9, "b", chunked(b"b"))
        assert await client.delete_parts(8, ["a"]) == 1
        assert set(await client.usage()) == {9}
        assert await client.list_parts(8) == []

    async def test_delete_with_an_invalid_name_deletes_nothing(
        self, node: NodeHandle, client: NodeClient
    ) -> None:
        await client.put_part(8, "a", chunked(b"a" * 10))
        before = await Snapshot.take(node, [8])
        with pytest.raises(InvalidName):
            await client.delete_parts(8, ["a", "../a"])
        assert await Snapshot.take(node, [8]) == before

    # -- listing -----------------------------------------------------------------------

    async def test_list_parts_is_sorted_with_lengths(self, client: NodeClient) -> None:
        names = ["b", "B", "a.b", "a_b", "a-1", "0", "Z9", "a"]
        expected = []
        for index, name in enumerate(names):
            data = payload(index * 37, seed=index)
            await client.put_part(11, name, chunked(data))
            expected.append(stat_of(11, name, data))
        await client.put_part(12, "other-sector", chunked(b"x"))
        assert await client.list_parts(11) == sorted(expected, key=lambda s: s.name)
        assert await client.list_parts(13) == []

    # -- usage and health --------------------------------------------------------------

    async def test_a_fresh_node_is_empty(self, node: NodeHandle, client: NodeClient) -> None:
        assert dict(await client.usage()) == {}
        health = await client.health()
        assert (health.node_id, health.parts, health.bytes_stored) == (node.node_id, 0, 0)
        assert (health.full, health.quarantined, health.replaced) == (False, 0, False)
        assert health.free_bytes > 0
        assert await client.list_quarantined() == []
        await client.clear_replaced()  # a node that was never replaced: nothing to do
        assert not (await client.health()).replaced
        assert await client.list_parts(0) == []
        assert await client.list_parts(359) == []

    async def test_usage_grows_with_puts_and_shrinks_with_deletes(self, client: NodeClient) -> None:
        await client.put_part(20, "empty", chunked(b""))
        overhead = (await client.usage())[20]  # what a part costs beyond its payload
        assert overhead >= 0
        sizes = {"a": 1, "b": 4096, "c": 1_000_003}
        costs = {}
        for name, size in sizes.items():
            before = (await client.usage())[20]
            await client.put_part(20, name, chunked(payload(size)))
            costs[name] = (await client.usage())[20] - before
            assert size + overhead <= costs[name] <= size + overhead + 64 + size // 1000
        await client.put_part(21, "d", chunked(payload(77)))
        usage = await client.usage()
        assert dict(usage) == {20: overhead + sum(costs.values()), 21: costs["a"] + 76}
        assert await client.delete_parts(20, ["c"]) == 1
        assert (await client.usage())[20] == overhead + costs["a"] + costs["b"]
        await client.delete_parts(20, ["a", "b", "empty"])
        assert dict(await client.usage()) == {21: costs["a"] + 76}

    async def test_usage_after_restart_equals_usage_tracked(self, node: NodeHandle) -> None:
        client = node.client
        other = payload(5000, seed=9)
        for sector, name, size in [(1, "a", 10), (1, "b", 200_000), (2, "c", 0), (3, "d", 5)]:
            await client.put_part(sector, name, chunked(payload(size)))
        await client.put_part(1, "a", chunked(other))  # overwrite
        await client.delete_parts(1, ["b"])
        await client.link_part("d", 3, 4)
        await client.put_part(5, "gone", chunked(b"soon dropped"))
        await client.drop_sectors([5])
        tracked = await Snapshot.take(node, range(6))
        await node.restart()
        assert await Snapshot.take(node, range(6)) == tracked
        health = await node.client.health()
        assert health.bytes_stored == sum(tracked.usage.values())

    async def test_health_reports_parts_and_bytes(
        self, node: NodeHandle, client: NodeClient
    ) -> None:
        for index in range(5):
            await client.put_part(index * 70, f"p{index}", chunked(payload(index * 1000)))
        health = await client.health()
        assert health.node_id == node.node_id
        assert health.parts == 5
        assert health.bytes_stored == sum((await client.usage()).values())
        assert health.bytes_stored >= sum(index * 1000 for index in range(5))

    # -- link --------------------------------------------------------------------------

    async def test_link_makes_a_part_readable_from_a_second_sector(
        self, node: NodeHandle, client: NodeClient
    ) -> None:
        data = payload(123_457)
        stat = await client.put_part(30, "moving", chunked(data))
        await client.link_part("moving", 30, 31)
        assert await read_all(await client.get_part(31, "moving")) == data
        assert await read_all(await client.get_part(31, "moving", 5, 9)) == data[5:10]
        assert await client.list_parts(31) == [PartStat("moving", 31, stat.length)]
        usage = await client.usage()
        assert usage[31] == usage[30]
        assert (await client.health()).parts == 2

        assert await client.delete_parts(30, ["moving"]) == 1
        assert await read_all(await client.get_part(31, "moving")) == data
        assert set(await client.usage()) == {31}
        tracked = await Snapshot.take(node, [30, 31])
        await node.restart()
        assert await Snapshot.take(node, [30, 31]) == tracked

    async def test_link_is_idempotent(self, client: NodeClient) -> None:
        await client.put_part(30, "p", chunked(payload(1000)))
        await client.link_part("p", 30, 31)
        usage = dict(await client.usage())
        await client.link_part("p", 30, 31)
        await client.link_part("p", 30, 30)
        assert dict(await client.usage()) == usage
        assert [s.name for s in await client.list_parts(31)] == ["p"]

    async def test_link_of_a_missing_part_raises(
        self, node: NodeHandle, client: NodeClient
    ) -> None:
        await client.put_part(31, "elsewhere", chunked(b"x"))
        before = await Snapshot.take(node, [30, 31, 32])
        for name, from_sector in [("absent", 30), ("elsewhere", 30)]:
            with pytest.raises(PartNotFound):
                await client.link_part(name, from_sector, 32)
        assert await Snapshot.take(node, [30, 31, 32]) == before

    async def test_link_onto_an_existing_copy_succeeds(
        self, node: NodeHandle, client: NodeClient
    ) -> None:
        await client.put_part(30, "p", chunked(b"same bytes"))
        await client.put_part(31, "p", chunked(b"same bytes"))
        await client.link_part("p", 30, 31)
        assert await read_all(await client.get_part(31, "p")) == b"same bytes"
        tracked = await Snapshot.take(node, [30, 31])
        await node.restart()
        assert await Snapshot.take(node, [30, 31]) == tracked

    # -- integrity ---------------------------------------------------------------------

    BLOCKS = 40  # several read batches of a node, and of a network stream
    DAMAGED_SIZE = BLOCKS * BLOCK_SIZE + 1234

    async def _damaged(self, node: NodeHandle, position: int, sector: int = 6) -> bytes:
        """A part "p" whose payload byte ``position`` is flipped on disk; its data."""
        data = payload(self.DAMAGED_SIZE, seed=7)
        await node.client.put_part(sector, "p", chunked(data))
        flip(node.part_file(sector, "p"), Header(len(data)).payload_offset(position))
        return data

    async def _assert_quarantined(self, node: NodeHandle, sector: int, name: str) -> None:
        """The part is gone from its sector, kept in quarantine, and reads say damaged."""
        client = node.client
        assert name not in [stat.name for stat in await client.list_parts(sector)]
        with pytest.raises(DamagedPart) as raised:
            await client.get_part(sector, name)
        assert "quarantined" in raised.value.reason
        assert (await client.verify_parts(sector, [name]))[name].state == "damaged"
        health = await client.health()
        assert health.quarantined == 1
        assert health.parts == sum([len(await client.list_parts(s)) for s in await client.usage()])
        kept = await client.list_quarantined()
        assert [(part.sector, part.name) for part in kept] == [(sector, name)]
        assert kept[0].reason
        assert any(path.startswith("quarantine/") for path in node.files())

    @pytest.mark.parametrize("position", [0, 5, BLOCK_SIZE - 1])
    async def test_a_damaged_first_block_fails_the_read_at_the_call(
        self, node: NodeHandle, position: int
    ) -> None:
        await self._damaged(node, position)
        with pytest.raises(DamagedPart) as raised:
            await node.client.get_part(6, "p")  # not on iteration: nothing was sent
        assert (raised.value.node_id, raised.value.sector, raised.value.name) == (
            node.node_id,
            6,
            "p",
        )
        assert "block 0" in raised.value.reason
        await self._assert_quarantined(node, 6, "p")

    @pytest.mark.parametrize("block", [BLOCKS - 10, BLOCKS])
    async def test_a_damaged_later_block_ends_the_stream_after_good_bytes_only(
        self, node: NodeHandle, block: int
    ) -> None:
        position = block * BLOCK_SIZE + 17
        data = await self._damaged(node, position)
        stream = await node.client.get_part(6, "p")
        received = bytearray()
        with pytest.raises(DamagedPart) as raised:
            await read_into(stream, received)
        assert raised.value.name == "p"
        assert len(received) <= block * BLOCK_SIZE  # nothing of the damaged block
        assert bytes(received) == data[: len(received)]
        await node.settle()
        await self._assert_quarantined(node, 6, "p")

    async def test_a_range_verifies_exactly_the_blocks_it_touches(self, node: NodeHandle) -> None:
        data = await self._damaged(node, 3 * BLOCK_SIZE + 100)
        client = node.client
        for start, end in [
            (0, 3 * BLOCK_SIZE - 1),
            (3 * BLOCK_SIZE - 10, 3 * BLOCK_SIZE - 1),
            (4 * BLOCK_SIZE, 4 * BLOCK_SIZE),
            (4 * BLOCK_SIZE, len(data) - 1),
        ]:
            assert (
                await read_all(await client.get_part(6, "p", start, end)) == data[start : end + 1]
            )
        assert [stat.name for stat in await client.list_parts(6)] == ["p"]  # not noticed yet
        with pytest.raises(DamagedPart):
            await read_all(
                await client.get_part(6, "p", 3 * BLOCK_SIZE + 100, 3 * BLOCK_SIZE + 100)
            )
        await self._assert_quarantined(node, 6, "p")
        with pytest.raises(DamagedPart):  # never served again, whatever the range
            await client.get_part(6, "p", 0, 0)

    @pytest.mark.parametrize(
        "damage", ["truncated", "extended", "header-length", "header-magic", "emptied"]
    )
    async def test_a_file_that_lies_about_its_size_is_damaged(
        self, node: NodeHandle, damage: str
    ) -> None:
        data = payload(3 * BLOCK_SIZE, seed=3)
        await node.client.put_part(6, "p", chunked(data))
        path = node.part_file(6, "p")
        raw = path.read_bytes()
        changed = {
            "truncated": raw[:-1],
            "extended": raw + b"\0",
            "header-length": raw[:8] + bytes([raw[8] ^ 0x40]) + raw[9:],
            "header-magic": b"S3LPART1" + raw[8:],
            "emptied": b"",
        }[damage]
        path.write_bytes(changed)
        with pytest.raises(DamagedPart):
            await node.client.get_part(6, "p", 5, 10)
        await self._assert_quarantined(node, 6, "p")

    async def test_verify_parts_checks_every_block_on_the_node(self, node: NodeHandle) -> None:
        client = node.client
        good, empty = payload(3 * BLOCK_SIZE + 5, seed=1), b""
        await client.put_part(6, "good", chunked(good))
        await client.put_part(6, "empty", chunked(empty))
        await self._damaged(node, self.DAMAGED_SIZE - 1)
        checks = await client.verify_parts(6, ["good", "p", "absent", "empty", "good"])
        assert checks == {
            "good": PartCheck.ok(len(good), xxhash.xxh3_64_intdigest(good)),
            "p": PartCheck.damaged(checks["p"].reason or "missing reason"),
            "absent": PartCheck.missing(),
            "empty": PartCheck.ok(0, xxhash.xxh3_64_intdigest(b"")),
        }
        assert f"block {self.BLOCKS}" in (checks["p"].reason or "")
        await self._assert_quarantined(node, 6, "p")
        assert await client.verify_parts(6, []) == {}
        # written again (a rebuild), the part is whole and no longer reported damaged
        await client.put_part(6, "p", chunked(good))
        assert (await client.verify_parts(6, ["p"]))["p"] == checks["good"]
        assert await read_all(await client.get_part(6, "p")) == good

    async def test_quarantine_is_remembered_across_a_restart(self, node: NodeHandle) -> None:
        await self._damaged(node, 0)
        with pytest.raises(DamagedPart):
            await node.client.get_part(6, "p")
        usage = dict(await node.client.usage())
        await node.restart()
        await self._assert_quarantined(node, 6, "p")
        assert dict(await node.client.usage()) == usage

    async def test_an_export_leaves_out_a_damaged_part(self, node_factory: NodeFactory) -> None:
        source, target = await node_factory(), await node_factory()
        await self._filled(source)
        big = source.part_file(7, "big")
        flip(big, Header(self.SOURCE_PARTS[7]["big"]).payload_offset(MiB))
        archive = await self._archive(source)
        with zipfile.ZipFile(io.BytesIO(archive)) as opened:
            assert opened.testzip() is None
            assert "007/big" not in opened.namelist()
            assert len(opened.namelist()) == 5
        await self._assert_quarantined(source, 7, "big")
        result = await target.client.import_sectors(chunked(archive))
        assert result.parts == 5
        assert await target.client.list_parts(7) == []
        assert await read_all(await target.client.get_part(0, "a")) == payload(5000, seed=0)

    @pytest.mark.parametrize("where", ["header", "payload", "checksum"])
    async def test_import_checks_every_block_not_only_the_zip_crc(
        self, node_factory: NodeFactory, where: str
    ) -> None:
        """A member whose zip CRC matches its bytes but whose blocks do not match their
        checksums (damaged before it was zipped) is refused, all or nothing."""
        source = await node_factory()
        await self._filled(source)
        archive = await self._archive(source)
        rebuilt = io.BytesIO()
        with (
            zipfile.ZipFile(io.BytesIO(archive)) as opened,
            zipfile.ZipFile(rebuilt, "w", zipfile.ZIP_STORED) as out,
        ):
            for info in opened.infolist():
                member = bytearray(opened.read(info))
                if info.filename == "007/big":
                    offset = {"header": 20, "payload": Header(len(member)).payload_offset(9),
                              "checksum": 32}[where]  # fmt: skip
                    member[offset] ^= 0x01
                out.writestr(info.filename, bytes(member))
        target, before = await self._target_with_data(node_factory)
        with pytest.raises(CorruptArchive, match="007/big"):
            await target.client.import_sectors(chunked(rebuilt.getvalue()))
        await target.settle()
        assert await Snapshot.take(target, [0, 7, 100, 359]) == before

    # -- export and import -------------------------------------------------------------

    SOURCE_PARTS: ClassVar[dict[int, dict[str, int]]] = {
        0: {"a": 5000, "b": 0, "c": 1},
        7: {"big": 2 * MiB + 3},
        359: {"last": 70_000, "z.9": 12},
    }

    async def _filled(self, node: NodeHandle) -> None:
        for sector, parts in self.SOURCE_PARTS.items():
            for name, size in parts.items():
                await node.client.put_part(sector, name, chunked(payload(size, seed=sector)))
        await node.client.put_part(8, "not-exported", chunked(b"stay"))

    async def _archive(self, node: NodeHandle, sectors: Iterable[int] = (0, 7, 359)) -> bytes:
        return await read_all(await node.client.export_sectors(list(sectors)))

    async def test_export_then_import_reproduces_the_sectors(
        self, node_factory: NodeFactory
    ) -> None:
        source, target = await node_factory(), await node_factory()
        await self._filled(source)
        stream = await source.client.export_sectors([359, 0, 7])
        try:
            result = await target.client.import_sectors(stream)
        finally:
            await stream.aclose()
        sizes = [size for parts in self.SOURCE_PARTS.values() for size in parts.values()]
        assert result == ImportResult(parts=len(sizes), bytes=sum(sizes))
        exported = await Snapshot.take(source, [0, 7, 359])
        imported = await Snapshot.take(target, [0, 7, 359, 8])
        assert imported.parts == {**exported.parts, 8: {}}
        assert dict(imported.usage) == {s: exported.usage[s] for s in (0, 7, 359)}
        for sector in (0, 7, 359):
            assert await target.client.list_parts(sector) == await source.client.list_parts(sector)
        health = await target.client.health()
        assert (health.parts, health.bytes_stored) == (len(sizes), sum(imported.usage.values()))
        await target.restart()
        assert await Snapshot.take(target, [0, 7, 359, 8]) == imported

    async def test_export_is_a_standard_zip_of_stored_members(self, node: NodeHandle) -> None:
        await self._filled(node)
        archive = await self._archive(node, [7, 0, 359, 0])
        with zipfile.ZipFile(io.BytesIO(archive)) as opened:
            assert opened.testzip() is None
            names = [info.filename for info in opened.infolist()]
            assert sorted(names) == names
            assert names == [
                f"{sector:03d}/{name}"
                for sector in sorted(self.SOURCE_PARTS)
                for name in sorted(self.SOURCE_PARTS[sector])
            ]
            for info in opened.infolist():
                assert info.compress_type == zipfile.ZIP_STORED
                sector, name = info.filename.split("/")
                # each member is the part file as the node stores it
                assert opened.read(info) == node.part_file(int(sector), name).read_bytes()

    async def test_import_accepts_any_chunking_of_the_archive(
        self, node_factory: NodeFactory
    ) -> None:
        source, target = await node_factory(), await node_factory()
        await self._filled(source)
        archive = await self._archive(source)
        await target.client.import_sectors(chunked(archive, [1, 3, 0, 29, 4093, 1 << 16]))
        imported = await Snapshot.take(target, [0, 7, 359])
        exported = await Snapshot.take(source, [0, 7, 359])
        assert imported.parts == exported.parts
        assert dict(imported.usage) == {s: exported.usage[s] for s in (0, 7, 359)}

    @pytest.mark.parametrize("sectors", [[], [1], [1, 2, 300]], ids=["none", "one", "several"])
    async def test_export_of_empty_sectors_imports_nothing(
        self, node_factory: NodeFactory, sectors: list[int]
    ) -> None:
        source, target = await node_factory(), await node_factory()
        await source.client.put_part(5, "elsewhere", chunked(b"x"))
        before = await Snapshot.take(target, [1, 2, 5, 300])
        archive = await self._archive(source, sectors)
        with zipfile.ZipFile(io.BytesIO(archive)) as opened:
            assert opened.namelist() == []
        assert await target.client.import_sectors(chunked(archive)) == ImportResult(0, 0)
        assert await Snapshot.take(target, [1, 2, 5, 300]) == before

    async def test_importing_twice_changes_nothing_the_second_time(
        self, node_factory: NodeFactory
    ) -> None:
        source, target = await node_factory(), await node_factory()
        await self._filled(source)
        archive = await self._archive(source)
        await target.client.import_sectors(chunked(archive))
        once = await Snapshot.take(target, [0, 7, 359])
        await target.client.import_sectors(chunked(archive))
        assert await Snapshot.take(target, [0, 7, 359]) == once

    async def test_import_replaces_parts_of_the_same_name(self, node_factory: NodeFactory) -> None:
        source, target = await node_factory(), await node_factory()
        await self._filled(source)
        await target.client.put_part(0, "a", chunked(payload(300_000, seed=42)))
        await target.client.put_part(0, "kept", chunked(b"kept"))
        await target.client.import_sectors(chunked(await self._archive(source)))
        assert await read_all(await target.client.get_part(0, "a")) == payload(5000, seed=0)
        assert await read_all(await target.client.get_part(0, "kept")) == b"kept"
        tracked = await Snapshot.take(target, [0, 7, 359])
        await target.restart()
        assert await Snapshot.take(target, [0, 7, 359]) == tracked

    async def _target_with_data(self, node_factory: NodeFactory) -> tuple[NodeHandle, Snapshot]:
        """A node that already holds an older "000/a" and an unrelated part."""
        target = await node_factory()
        await target.client.put_part(0, "a", chunked(payload(999, seed=5)))
        await target.client.put_part(100, "unrelated", chunked(b"u" * 10))
        return target, await Snapshot.take(target, [0, 7, 100, 359])

    @pytest.mark.parametrize(
        ("member", "where"),
        [
            ("000/a", "first"),
            ("000/a", "last"),
            ("007/big", "middle"),
            ("359/z.9", "first"),
            ("359/z.9", "last"),
            ("359/z.9", "local-header-crc"),
        ],
    )
    async def test_import_of_a_corrupted_archive_stores_nothing(
        self, node_factory: NodeFactory, member: str, where: str
    ) -> None:
        source = await node_factory()
        await self._filled(source)
        archive = bytearray(await self._archive(source))
        start, length = member_payloads(bytes(archive))[member]
        position = {
            "first": start,
            "middle": start + length // 2,
            "last": start + length - 1,
            "local-header-crc": start - 30 - len(member) - 20 + 14,
        }[where]
        archive[position] ^= 0x01
        target, before = await self._target_with_data(node_factory)
        with pytest.raises(CorruptArchive):
            await target.client.import_sectors(chunked(bytes(archive), [4093]))
        await target.settle()
        assert await Snapshot.take(target, [0, 7, 100, 359]) == before

    @pytest.mark.parametrize(
        "cut",
        [
            "nothing",
            "one-byte",
            "inside-first-local-header",
            "inside-first-payload",
            "after-first-payload",
            "inside-last-payload",
            "before-central-directory",
            "inside-central-directory",
            "inside-end-records",
            "last-byte",
        ],
    )
    async def test_import_of_a_truncated_archive_stores_nothing(
        self, node_factory: NodeFactory, cut: str
    ) -> None:
        source = await node_factory()
        await self._filled(source)
        archive = await self._archive(source)
        members = member_payloads(archive)
        first_start, first_length = members["000/a"]
        last_start, last_length = members["359/z.9"]
        central = central_directory_offset(archive)
        keep = {
            "nothing": 0,
            "one-byte": 1,
            "inside-first-local-header": 10,
            "inside-first-payload": first_start + first_length // 2,
            "after-first-payload": first_start + first_length,
            "inside-last-payload": last_start + last_length // 2,
            "before-central-directory": central,
            "inside-central-directory": central + 40,
            "inside-end-records": len(archive) - 30,
            "last-byte": len(archive) - 1,
        }[cut]
        target, before = await self._target_with_data(node_factory)
        with pytest.raises(CorruptArchive):
            await target.client.import_sectors(chunked(archive[:keep], [4093]))
        await target.settle()
        assert await Snapshot.take(target, [0, 7, 100, 359]) == before

    @pytest.mark.parametrize(
        "garbage",
        [b"not a zip at all", b"PK\x03\x04" + b"\xff" * 40],
        ids=["text", "bad-local-header"],
    )
    async def test_import_of_garbage_stores_nothing(
        self, node_factory: NodeFactory, garbage: bytes
    ) -> None:
        target, before = await self._target_with_data(node_factory)
        with pytest.raises(CorruptArchive):
            await target.client.import_sectors(chunked(garbage))
        await target.settle()
        assert await Snapshot.take(target, [0, 7, 100, 359]) == before

    async def test_import_with_bytes_after_the_end_stores_nothing(
        self, node_factory: NodeFactory
    ) -> None:
        source = await node_factory()
        await self._filled(source)
        archive = await self._archive(source)
        target, before = await self._target_with_data(node_factory)
        with pytest.raises(CorruptArchive):
            await target.client.import_sectors(chunked(archive + b"\0"))
        await target.settle()
        assert await Snapshot.take(target, [0, 7, 100, 359]) == before

    async def test_closing_an_export_early_releases_it(self, node: NodeHandle) -> None:
        await self._filled(node)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            unread = await node.client.export_sectors([0, 7])
            await unread.aclose()
            started = await node.client.export_sectors([0, 7])
            await anext(started)
            await anext(started)
            await started.aclose()
            del unread, started
            gc.collect()
        assert [str(w.message) for w in caught if issubclass(w.category, ResourceWarning)] == []
        await node.client.drop_sectors([0, 7])
        assert await node.client.list_parts(0) == []

    # -- drop --------------------------------------------------------------------------

    async def test_drop_sectors_removes_them_and_is_idempotent(
        self, node: NodeHandle, client: NodeClient
    ) -> None:
        await self._filled(node)
        kept = await Snapshot.take(node, [7, 8])
        await client.drop_sectors([0, 359])
        for sector in (0, 359):
            assert await client.list_parts(sector) == []
            with pytest.raises(PartNotFound):
                await client.get_part(sector, "last" if sector else "a")
        after = await Snapshot.take(node, [7, 8])
        assert after.parts == kept.parts
        assert dict(after.usage) == {7: kept.usage[7], 8: kept.usage[8]}
        await client.drop_sectors([0, 359])
        await client.drop_sectors([])
        await client.drop_sectors([200])
        assert await Snapshot.take(node, [7, 8]) == after
        health = await client.health()
        assert (health.parts, health.bytes_stored) == (2, sum(after.usage.values()))
        # a dropped sector can be written again
        await client.put_part(0, "a", chunked(b"again"))
        assert await read_all(await client.get_part(0, "a")) == b"again"

    async def test_drop_with_an_invalid_sector_drops_nothing(
        self, node: NodeHandle, client: NodeClient
    ) -> None:
        await client.put_part(1, "p", chunked(b"p" * 10))
        before = await Snapshot.take(node, [1])
        with pytest.raises(InvalidName):
            await client.drop_sectors([1, 360])
        assert await Snapshot.take(node, [1]) == before

    # -- invalid input -----------------------------------------------------------------

    @pytest.mark.parametrize("name", BAD_NAMES)
    async def test_invalid_part_names_are_refused(
        self, node: NodeHandle, client: NodeClient, name: str
    ) -> None:
        await client.put_part(1, "p", chunked(b"p"))
        before = await Snapshot.take(node, [1, 2])
        calls: list[Callable[[], Awaitable[object]]] = [
            lambda: client.put_part(1, name, chunked(b"data")),
            lambda: client.put_part(1, name, chunked(b"")),
            lambda: client.get_part(1, name),
            lambda: client.get_part(1, name, 0, 0),
            lambda: client.delete_parts(1, [name]),
            lambda: client.link_part(name, 1, 2),
        ]
        for call in calls:
            with pytest.raises(InvalidName):
                await call()
        await node.settle()
        assert await Snapshot.take(node, [1, 2]) == before

    @pytest.mark.parametrize("sector", BAD_SECTORS)
    async def test_invalid_sectors_are_refused(
        self, node: NodeHandle, client: NodeClient, sector: int
    ) -> None:
        await client.put_part(1, "p", chunked(b"p"))
        before = await Snapshot.take(node, [0, 1, 359])
        calls: list[Callable[[], Awaitable[object]]] = [
            lambda: client.put_part(sector, "q", chunked(b"data")),
            lambda: client.get_part(sector, "p"),
            lambda: client.delete_parts(sector, ["p"]),
            lambda: client.list_parts(sector),
            lambda: client.link_part("p", sector, 2),
            lambda: client.link_part("p", 1, sector),
            lambda: client.export_sectors([1, sector]),
            lambda: client.drop_sectors([sector]),
        ]
        for call in calls:
            with pytest.raises(InvalidName):
                await call()
        await node.settle()
        assert await Snapshot.take(node, [0, 1, 359]) == before

    # -- failed and cancelled uploads --------------------------------------------------

    @pytest.mark.parametrize(
        "sent", [0, 1, 3 * MiB + 5], ids=["before-first-chunk", "after-a-byte", "after-MiBs"]
    )
    async def test_a_body_that_raises_leaves_nothing(self, node: NodeHandle, sent: int) -> None:
        client = node.client
        await client.put_part(1, "old", chunked(b"old"))
        before = await Snapshot.take(node, [1])
        with pytest.raises(BodyFailed):
            await client.put_part(1, "new", failing_body(payload(sent)))
        with pytest.raises(BodyFailed):  # a failed overwrite keeps the old part
            await client.put_part(1, "old", failing_body(payload(sent)))
        await node.settle()
        assert await Snapshot.take(node, [1]) == before

    async def test_a_cancelled_put_leaves_nothing(self, node: NodeHandle) -> None:
        client = node.client
        await client.put_part(1, "old", chunked(b"old"))
        before = await Snapshot.take(node, [1])
        for name in ["new", "old"]:
            with anyio.CancelScope() as scope:

                async def body(scope: anyio.CancelScope = scope) -> AsyncIterator[bytes]:
                    yield payload(2 * MiB + 1)  # more than one write batch
                    yield b"more"
                    scope.cancel()
                    await anyio.sleep_forever()
                    yield b"never"

                await client.put_part(1, name, body())
            assert scope.cancelled_caught
        await node.settle()
        assert await Snapshot.take(node, [1]) == before

    async def test_a_cancelled_import_leaves_nothing(self, node_factory: NodeFactory) -> None:
        source = await node_factory()
        await self._filled(source)
        archive = await self._archive(source)
        target, before = await self._target_with_data(node_factory)
        with anyio.CancelScope() as scope:

            class CancellingBody(chunked):
                async def __anext__(self) -> bytes:
                    if self.consumed > len(archive) // 2:  # inside the 2 MiB member
                        scope.cancel()
                        await anyio.sleep_forever()
                    return await super().__anext__()

            await target.client.import_sectors(CancellingBody(archive, [MiB // 4]))
        assert scope.cancelled_caught
        await target.settle()
        assert await Snapshot.take(target, [0, 7, 100, 359]) == before

    # -- an unreachable node -----------------------------------------------------------

    @pytest.mark.parametrize("call", list(UNAVAILABLE_CALLS))
    async def test_a_stopped_node_is_unavailable(self, node: NodeHandle, call: str) -> None:
        client = node.client
        await client.put_part(1, "p", chunked(b"payload"))
        archive = await read_all(await client.export_sectors([1]))
        await node.stop()

        async def call_and_drain() -> None:
            result = await UNAVAILABLE_CALLS[call](client, archive)
            if isinstance(result, AsyncIterable):  # a stream must not pretend to work
                await read_all(result)  # type: ignore[arg-type]

        with pytest.raises(NodeUnavailable):
            await call_and_drain()

    # -- concurrency -------------------------------------------------------------------

    async def test_concurrent_puts_to_one_sector_all_succeed(self, node: NodeHandle) -> None:
        client = node.client
        count = 40
        stats: dict[str, PartStat] = {}

        async def put(index: int) -> None:
            name = f"part-{index:02d}"
            data = payload(index * 5003, seed=index)
            stats[name] = await client.put_part(77, name, chunked(data, [1000, 7, 50_000]))

        async with anyio.create_task_group() as group:
            for index in range(count):
                group.start_soon(put, index)
        listed = await client.list_parts(77)
        assert listed == [stats[name] for name in sorted(stats)]
        assert [s.length for s in listed] == [index * 5003 for index in range(count)]
        for index in (0, 1, count - 1):
            got = await read_all(await client.get_part(77, f"part-{index:02d}"))
            assert got == payload(index * 5003, seed=index)
        tracked = await Snapshot.take(node, [77])
        await node.restart()
        assert await Snapshot.take(node, [77]) == tracked


def flip(path: Path, offset: int) -> None:
    """Flip one bit of the byte at ``offset`` of a file, as a failing disk might."""
    raw = bytearray(path.read_bytes())
    raw[offset] ^= 0x01
    path.write_bytes(raw)


def part_path(root: Path, sector: int, name: str) -> Path:
    """What :meth:`NodeHandle.part_file` returns for a node whose data lives under ``root``."""
    return root / "sectors" / f"{sector:03d}" / name


def data_files(root: Path) -> set[str]:
    """What :meth:`NodeHandle.files` returns for a node whose data lives under ``root``."""
    return {path.relative_to(root).as_posix() for path in root.rglob("*") if path.is_file()}
