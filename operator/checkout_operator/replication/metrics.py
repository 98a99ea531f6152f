"""Prometheus gauges of replication lag (per region, peer and topic).

Registered on the operator's registry (``checkout_operator.metrics``), which ``--metrics-port``
serves.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

from checkout_operator import metrics as operator_metrics
from checkout_operator.replication.lag import PeerLag

REGISTRY: Final = operator_metrics.REGISTRY

LAG_MESSAGES: Final = operator_metrics.gauge(
    "checkout_operator_replication_lag_messages",
    "Records of a peer's topic not yet replicated into the region (MirrorMaker 2 offsets).",
    ["region", "peer", "topic"],
)
LAG_SECONDS: Final = operator_metrics.gauge(
    "checkout_operator_replication_lag_seconds",
    "Age of the oldest record of a peer's topic not yet replicated into the region.",
    ["region", "peer", "topic"],
)
LAG_KNOWN: Final = operator_metrics.gauge(
    "checkout_operator_replication_lag_known",
    "1 when the last lag measurement of the flow peer -> region succeeded, else 0.",
    ["region", "peer"],
)
LAG_BUDGET: Final = operator_metrics.gauge(
    "checkout_operator_replication_lag_budget_messages",
    "The region's spec.replication.maxLagOnFailover: a peer lagging more is not promoted.",
    ["region"],
)


def record(region: str, lags: Sequence[PeerLag], budget: int | None = None) -> None:
    """Set the gauges from one measurement; an unknown flow keeps its last topic values."""
    if budget is not None:
        LAG_BUDGET.labels(region).set(budget)
    for lag in lags:
        LAG_KNOWN.labels(region, lag.peer).set(0 if lag.error else 1)
        for topic in lag.topics:
            LAG_MESSAGES.labels(region, lag.peer, topic.topic).set(topic.messages)
            LAG_SECONDS.labels(region, lag.peer, topic.topic).set(topic.seconds)
