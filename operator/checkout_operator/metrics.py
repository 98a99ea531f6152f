"""Prometheus metrics of the operator, served on ``--metrics-port``.

A leaf module (imports no other layer), so every layer may record into it.
"""

from __future__ import annotations

from typing import Final

import prometheus_client

REGISTRY: Final = prometheus_client.CollectorRegistry(auto_describe=True)

RECONCILE_SECONDS: Final = prometheus_client.Histogram(
    "checkout_operator_reconcile_duration_seconds",
    "Time to reconcile one CheckoutRegion (render, diff, apply, prune, status).",
    ["kind"],
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
    registry=REGISTRY,
)
RECONCILE_ERRORS: Final = prometheus_client.Counter(
    "checkout_operator_reconcile_errors_total",
    "Failed reconciles by reason (InvalidSpec, ApplyFailed, ClusterUnreachable, ...).",
    ["kind", "reason"],
    registry=REGISTRY,
)
DRIFT_CORRECTIONS: Final = prometheus_client.Counter(
    "checkout_operator_drift_corrections_total",
    "Children re-applied because they were edited or deleted by hand.",
    ["kind"],
    registry=REGISTRY,
)
OBJECTS_APPLIED: Final = prometheus_client.Counter(
    "checkout_operator_objects_applied_total",
    "Children server-side applied.",
    ["kind"],
    registry=REGISTRY,
)
OBJECTS_PRUNED: Final = prometheus_client.Counter(
    "checkout_operator_objects_pruned_total",
    "Children deleted because the render no longer produces them.",
    ["kind"],
    registry=REGISTRY,
)
REGION_READY: Final = prometheus_client.Gauge(
    "checkout_operator_region_ready",
    "1 when the CheckoutRegion's Ready condition is True, else 0.",
    ["namespace", "name"],
    registry=REGISTRY,
)
API_WRITES: Final = prometheus_client.Counter(
    "checkout_operator_api_writes_total",
    "Write requests (POST, PUT, PATCH, DELETE) sent to Kubernetes API servers.",
    ["verb", "kind"],
    registry=REGISTRY,
)


def count_write(verb: str, kind: str) -> None:
    """A ``kube.client.WriteHook``: counts one write request."""
    API_WRITES.labels(verb=verb, kind=kind).inc()


def serve(port: int, addr: str = "0.0.0.0") -> None:  # noqa: S104 - scraped from other pods
    """Serve /metrics on ``addr:port`` in a daemon thread."""
    prometheus_client.start_http_server(port, addr=addr, registry=REGISTRY)


# -- failover (checkout_operator.reconcile.failover) ------------------------------------------

FAILOVERS: Final = prometheus_client.Counter(
    "checkout_operator_failovers_total",
    "Markets moved to another writer region, by reason (ProbeFailures, Drain, Failback, ...).",
    ["fleet", "reason"],
    registry=REGISTRY,
)
MARKET_EPOCH: Final = prometheus_client.Gauge(
    "checkout_operator_market_epoch",
    "Current fencing epoch of each market's write lease.",
    ["fleet", "market"],
    registry=REGISTRY,
)
PROBE_SECONDS: Final = prometheus_client.Histogram(
    "checkout_operator_probe_duration_seconds",
    "Latency of the health probes of each region, by outcome (Success, Failure, Unknown).",
    ["region", "outcome"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
    registry=REGISTRY,
)
LAST_MOVE: Final = prometheus_client.Gauge(
    "checkout_operator_market_last_move_timestamp_seconds",
    "When each market last changed writer (Unix time; subtract from time() for the age).",
    ["fleet", "market"],
    registry=REGISTRY,
)
SECONDS_SINCE_MOVE: Final = prometheus_client.Gauge(
    "checkout_operator_market_seconds_since_last_move",
    "Seconds since each market last changed writer.",
    ["fleet", "market"],
    registry=REGISTRY,
)
