"""deploy/grafana/s3lite.json: every metric its queries use is one s3lite exports (the
gateway's registry or a node's), so a renamed metric breaks this test, not a chart."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from s3lite import LocalCluster
from s3lite.metrics import NodeMetrics

DASHBOARD = Path(__file__).resolve().parent.parent / "deploy" / "grafana" / "s3lite.json"
SUFFIXES = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count"), "gauge": ("",)}


def queries(panels: list[dict[str, Any]]) -> list[str]:
    found = []
    for panel in panels:
        found += [target["expr"] for target in panel.get("targets", [])]
        found += queries(panel.get("panels", []))
    return found


def exported(text: str) -> set[str]:
    names = set()
    for family in text_string_to_metric_families(text):
        names |= {family.name + suffix for suffix in SUFFIXES.get(family.type, ("",))}
    return names


@pytest.mark.anyio
async def test_every_metric_the_dashboard_queries_is_exported(cluster: LocalCluster) -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    expressions = queries(dashboard["panels"])
    assert len(expressions) > 20
    used = {name for expr in expressions for name in re.findall(r"\bs3lite_\w+", expr)}
    available = exported(cluster.metrics.render().decode()) | exported(
        NodeMetrics().render().decode()
    )
    assert used - available == set()
    # The test has teeth: a name that does not exist is caught.
    assert "s3lite_no_such_metric_total" not in available
    # Every panel has a title and at least one query; ids are unique.
    panels = [p for p in dashboard["panels"] if p["type"] != "row"]
    assert all(p["title"] and p["targets"] for p in panels)
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))
