"""Prometheus metrics of the operator, served on ``--metrics-port``.

A leaf module (imports no other layer), so every layer may record into it. Every metric is
declared with :func:`counter`, :func:`gauge` or :func:`histogram`, which register it on
:data:`REGISTRY` (the one ``--metrics-port`` serves).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

import prometheus_client

REGISTRY: Final = prometheus_client.CollectorRegistry(auto_describe=True)


def counter(name: str, documentation: str, labels: Sequence[str]) -> prometheus_client.Counter:
    return prometheus_client.Counter(name, documentation, labels, registry=REGISTRY)


def gauge(name: str, documentation: str, labels: Sequence[str]) -> prometheus_client.Gauge:
    return prometheus_client.Gauge(name, documentation, labels, registry=REGISTRY)


def histogram(
    name: str, documentation: str, labels: Sequence[str], buckets: Sequence[float]
) -> prometheus_client.Histogram:
    return prometheus_client.Histogram(
        name, documentation, labels, buckets=buckets, registry=REGISTRY
    )


RECONCILE_SECONDS: Final = histogram(
    "checkout_operator_reconcile_duration_seconds",
    "Time to reconcile one CheckoutRegion (render, diff, apply, prune, status).",
    ["kind"],
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
)
RECONCILE_ERRORS: Final = counter(
    "checkout_operator_reconcile_errors_total",
    "Failed reconciles by reason (InvalidSpec, ApplyFailed, ClusterUnreachable, ...).",
    ["kind", "reason"],
)
DRIFT_CORRECTIONS: Final = counter(
    "checkout_operator_drift_corrections_total",
    "Children re-applied because they were edited or deleted by hand.",
    ["kind"],
)
OBJECTS_APPLIED: Final = counter(
    "checkout_operator_objects_applied_total", "Children server-side applied.", ["kind"]
)
OBJECTS_PRUNED: Final = counter(
    "checkout_operator_objects_pruned_total",
    "Children deleted because the render no longer produces them.",
    ["kind"],
)
REGION_READY: Final = gauge(
    "checkout_operator_region_ready",
    "1 when the CheckoutRegion's Ready condition is True, else 0.",
    ["namespace", "name"],
)
API_WRITES: Final = counter(
    "checkout_operator_api_writes_total",
    "Write requests (POST, PUT, PATCH, DELETE) sent to Kubernetes API servers.",
    ["verb", "kind"],
)


def count_write(verb: str, kind: str) -> None:
    """A ``kube.client.WriteHook``: counts one write request."""
    API_WRITES.labels(verb=verb, kind=kind).inc()


def serve(port: int, addr: str = "0.0.0.0") -> None:  # noqa: S104 - scraped from other pods
    """Serve /metrics on ``addr:port`` in a daemon thread."""
    prometheus_client.start_http_server(port, addr=addr, registry=REGISTRY)


# -- failover (checkout_operator.reconcile.failover) ------------------------------------------

FAILOVERS: Final = counter(
    "checkout_operator_failovers_total",
    "Markets moved to another writer region, by reason (ProbeFailures, Drain, Failback, ...).",
    ["fleet", "reason"],
)
MARKET_EPOCH: Final = gauge(
    "checkout_operator_market_epoch",
    "Current fencing epoch of each market's write lease.",
    ["fleet", "market"],
)
PROBE_SECONDS: Final = histogram(
    "checkout_operator_probe_duration_seconds",
    "Latency of the health probes of each region, by outcome (Success, Failure, Unknown).",
    ["region", "outcome"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
LAST_MOVE: Final = gauge(
    "checkout_operator_market_last_move_timestamp_seconds",
    "When each market last changed writer (Unix time; subtract from time() for the age).",
    ["fleet", "market"],
)
SECONDS_SINCE_MOVE: Final = gauge(
    "checkout_operator_market_seconds_since_last_move",
    "Seconds since each market last changed writer.",
    ["fleet", "market"],
)
MARKET_DOWN: Final = gauge(
    "checkout_operator_market_down",
    "1 while a market has no writer region (state Down: no healthy, legal target), else 0.",
    ["fleet", "market"],
)

# -- operator HA (checkout_operator.reconcile.election) ----------------------------------------

LEADER: Final = gauge(
    "checkout_operator_leader",
    "1 while this replica holds the operator's leader Lease (and works), 0 while it stands by.",
    ["lease"],
)


# -- remote clusters (checkout_operator.reconcile.remote_watch) -------------------------------

REMOTE_REACHABLE: Final = gauge(
    "checkout_operator_remote_cluster_reachable",
    "1 when the CheckoutRegion's remote cluster answers (RemoteClusterReachable True), else 0.",
    ["namespace", "name"],
)
REMOTE_WATCHES: Final = gauge(
    "checkout_operator_remote_watches",
    "Watches open on each remote cluster (one per child kind, shared by its regions).",
    ["secret"],
)
