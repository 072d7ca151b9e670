"""The ring, join policies, placement, topology persistence and live joins."""

from ..sectors import SECTORS
from .catalog import PartCatalog, PlacedPart, parse_part_name, part_name
from .orchestrator import MIN_NODES, Orchestrator
from .persistence import TopologyFile, TopologyStore
from .placement import PARTS_PER_SEGMENT, place_parts
from .policies import POLICIES, JoinPlan, JoinPolicy, get_policy
from .ring import Arc, NodeId, Ring
from .routing import RoutingView
from .topology import Migration, MigrationPhase, NodeInfo, NodeState, Topology

__all__ = [
    "MIN_NODES",
    "PARTS_PER_SEGMENT",
    "POLICIES",
    "SECTORS",
    "Arc",
    "JoinPlan",
    "JoinPolicy",
    "Migration",
    "MigrationPhase",
    "NodeId",
    "NodeInfo",
    "NodeState",
    "Orchestrator",
    "PartCatalog",
    "PlacedPart",
    "Ring",
    "RoutingView",
    "Topology",
    "TopologyFile",
    "TopologyStore",
    "get_policy",
    "parse_part_name",
    "part_name",
    "place_parts",
]
