"""The in-memory transport: the NodeClient contract over in-process StorageNodes, plus
what only the memory transport does (addresses, registration)."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

if "tests.transport.contract" not in sys.modules:  # rewrite its asserts for readable failures
    pytest.register_assert_rewrite("tests.transport.contract")

from s3lite import NodeUnavailable
from s3lite.storager import StorageNode
from s3lite.transport import MemoryTransport, NodeClient

from .contract import (
    NodeClientContract,
    NodeFactory,
    chunked,
    data_files,
    part_path,
    read_all,
)


class MemoryNode:
    """A StorageNode registered with a MemoryTransport, reached through ``connect``."""

    def __init__(self, transport: MemoryTransport, data_dir: Path, node: StorageNode) -> None:
        self._transport = transport
        self._data_dir = data_dir
        self._node = node

    @property
    def client(self) -> NodeClient:
        return self._transport.connect(self._node.address)

    @property
    def node_id(self) -> str:
        return self._node.node_id

    async def stop(self) -> None:
        self._node.close()

    async def restart(self) -> None:
        self._node.close()
        self._node = await StorageNode.open(self._data_dir, self.node_id, fsync=False)
        self._transport.register(self._node)

    async def settle(self) -> None:
        """Calls run to completion in the caller's task: nothing is left in flight."""

    def files(self) -> set[str]:
        return data_files(self._data_dir)

    def part_file(self, sector: int, name: str) -> Path:
        return part_path(self._data_dir, sector, name)


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    """The memory transport runs the contract on both anyio backends."""
    return str(request.param)


class TestMemoryTransportContract(NodeClientContract):
    @pytest.fixture
    async def node_factory(self, tmp_path: Path) -> AsyncIterator[NodeFactory]:
        transport = MemoryTransport()
        started: list[MemoryNode] = []

        async def start() -> MemoryNode:
            data_dir = tmp_path / f"node-{len(started)}"
            node = await StorageNode.open(data_dir, f"node-{len(started)}", fsync=False)
            transport.register(node)
            started.append(MemoryNode(transport, data_dir, node))
            return started[-1]

        yield start
        for node in started:
            await node.stop()
        await transport.aclose()


@pytest.mark.anyio
async def test_an_unknown_address_is_unavailable_on_use() -> None:
    transport = MemoryTransport()
    client = transport.connect("memory://nobody")  # lazy, like a network connect
    assert client.address == "memory://nobody"
    with pytest.raises(NodeUnavailable) as raised:
        await client.health()
    assert raised.value.node == "memory://nobody"
    with pytest.raises(NodeUnavailable):
        await client.put_part(1, "p", chunked(b"p"))


@pytest.mark.anyio
async def test_connect_finds_a_node_by_its_address(tmp_path: Path) -> None:
    transport = MemoryTransport()
    one = await StorageNode.open(tmp_path / "one", "node-one", fsync=False)
    two = await StorageNode.open(tmp_path / "two", "node-two", fsync=False)
    transport.register(one)
    transport.register(two)
    assert one.address == "memory://node-one"
    await transport.connect("memory://node-one").put_part(1, "p", chunked(b"one"))
    await transport.connect("memory://node-two").put_part(1, "p", chunked(b"two"))
    assert await read_all(await one.get_part(1, "p")) == b"one"
    assert await read_all(await two.get_part(1, "p")) == b"two"
    assert (await transport.connect(two.address).health()).node_id == "node-two"


@pytest.mark.anyio
async def test_a_closed_node_raises_node_unavailable_naming_it(tmp_path: Path) -> None:
    transport = MemoryTransport()
    node = await StorageNode.open(tmp_path / "n", "node-n", fsync=False)
    transport.register(node)
    client = transport.connect(node.address)
    await client.put_part(1, "p", chunked(b"p"))
    node.close()
    with pytest.raises(NodeUnavailable) as raised:
        await client.health()
    assert raised.value.node == "node-n"
    with pytest.raises(NodeUnavailable):
        await client.get_part(1, "p")


@pytest.mark.anyio
async def test_an_unregistered_node_is_unavailable_until_registered_again(
    tmp_path: Path,
) -> None:
    """How an in-process node stops and restarts: same address, possibly a new object;
    clients made before keep working once something serves the address again."""
    transport = MemoryTransport()
    first = await StorageNode.open(tmp_path / "n", "node-n", fsync=False)
    transport.register(first)
    client = transport.connect("memory://node-n")
    await client.put_part(1, "p", chunked(b"kept"))
    transport.unregister("memory://node-n")
    transport.unregister("memory://node-n")  # idempotent
    with pytest.raises(NodeUnavailable):
        await client.list_parts(1)
    first.close()
    second = await StorageNode.open(tmp_path / "n", fsync=False)
    transport.register(second)
    assert await read_all(await client.get_part(1, "p")) == b"kept"
    assert (await client.health()).node_id == "node-n"


@pytest.mark.anyio
async def test_a_node_can_be_registered_under_another_address(tmp_path: Path) -> None:
    transport = MemoryTransport()
    node = await StorageNode.open(tmp_path / "n", "node-n", fsync=False)
    transport.register(node, "memory://alias")
    assert (await transport.connect("memory://alias").health()).node_id == "node-n"
    with pytest.raises(NodeUnavailable):
        await transport.connect(node.address).health()


@pytest.mark.anyio
async def test_aclose_forgets_every_node(tmp_path: Path) -> None:
    transport = MemoryTransport()
    node = await StorageNode.open(tmp_path / "n", "node-n", fsync=False)
    transport.register(node)
    client = transport.connect(node.address)
    await transport.aclose()
    with pytest.raises(NodeUnavailable):
        await client.health()
