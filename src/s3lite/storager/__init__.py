"""Storage nodes: part files on disk, grouped by sector."""

from .node import StorageNode

__all__ = ["StorageNode"]
