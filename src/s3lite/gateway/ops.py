"""Health checks and metrics: what load balancers, orchestrators and Prometheus ask.

    GET|HEAD /health/live    200 while the process answers
    GET|HEAD /health/ready   200 once the topology is loaded and at least six ready
                             nodes are up (enough to read and write), else 503
    GET      /metrics        the Prometheus text format (on the metrics listener only)

Health answers are plain status codes with a one-line text body, need no
credentials, and cost nothing: no directory walk, no node call; readiness is read
from the liveness view that failed calls and the periodic probes keep up to date.

On the S3 port the health paths are answered only for *unsigned* requests (a bucket
may be named ``health``: signed requests to it are S3 requests as ever). Metrics
are served on a separate listener (``--metrics-listen``), never on the S3 port:
Prometheus cannot sign SigV4 requests, a listener can be bound to an internal
address, and ``/metrics`` stays a path a bucket named ``metrics`` can use (the
README says more).
"""

from __future__ import annotations

from typing import Final

from ..asgi import App, Request, Send, send_bytes
from ..metrics import CONTENT_TYPE, GatewayMetrics
from ..orchestrator import MIN_NODES, NodeState, Orchestrator

HEALTH_PATHS: Final = {("health", "live"), ("health", "ready")}


def readiness(orchestrator: Orchestrator) -> tuple[bool, str]:
    """(ready, why): the topology is loaded and at least six ready nodes are up."""
    if not orchestrator.is_open:
        return False, "the topology is not loaded yet"
    ready = [i.node_id for i in orchestrator.topology.nodes if i.state is NodeState.READY]
    up = orchestrator.liveness.up_count(ready)
    if up < MIN_NODES:
        return False, f"{up} of {len(ready)} nodes up, {MIN_NODES} needed to read and write"
    return True, f"{up} of {len(ready)} nodes up"


def is_unsigned(request: Request) -> bool:
    """No SigV4 credentials at all (header or presigned query)."""
    return "authorization" not in request.headers and not any(
        name.lower() in ("x-amz-signature", "x-amz-credential") for name in request.query
    )


async def answer_health(request: Request, send: Send, orchestrator: Orchestrator) -> None:
    """Answer GET/HEAD on one of HEALTH_PATHS (405 for other methods)."""
    if request.method not in ("GET", "HEAD"):
        await send_bytes(send, 405, b"health checks are GET or HEAD\n", _TEXT)
        return
    if request.segments[1] == "live":
        ok, why = True, "alive"
    else:
        ok, why = readiness(orchestrator)
    body = f"{'ok' if ok else 'not ready'}: {why}\n".encode()
    await send_bytes(send, 200 if ok else 503, body, _TEXT, head=request.method == "HEAD")


_TEXT = [("content-type", "text/plain; charset=utf-8"), ("cache-control", "no-store")]


class OpsApp(App):
    """The metrics listener's app: /metrics and the health checks, nothing else."""

    idle_route = None

    def __init__(self, orchestrator: Orchestrator, metrics: GatewayMetrics) -> None:
        super().__init__()
        self.orchestrator = orchestrator
        self.metrics = metrics

    async def handle(self, request: Request, send: Send) -> None:
        if request.segments in HEALTH_PATHS:
            await answer_health(request, send, self.orchestrator)
        elif request.segments == ("metrics",) and request.method in ("GET", "HEAD"):
            body = self.metrics.render()
            headers = [("content-type", CONTENT_TYPE)]
            await send_bytes(send, 200, body, headers, head=request.method == "HEAD")
        else:
            text = b"this listener serves /metrics, /health/live and /health/ready\n"
            await send_bytes(send, 404, text, _TEXT)
