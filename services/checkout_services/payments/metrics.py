"""Prometheus metrics, one registry per app (so several instances can live in one process)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.auth = Counter(
            "payments_authorizations_total",
            "Authorization attempts by provider and outcome (approved, pending, declined, error)",
            ["provider", "outcome", "decline_class"],
            registry=self.registry,
        )
        self.psp_latency = Histogram(
            "payments_psp_request_seconds",
            "PSP call latency by provider and operation",
            ["provider", "operation"],
            registry=self.registry,
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
        )
        self.psp_errors = Counter(
            "payments_psp_errors_total",
            "PSP calls that got no answer, by provider and failure class",
            ["provider", "failure_class"],
            registry=self.registry,
        )
        self.breaker = Gauge(
            "payments_circuit_breaker_state",
            "Circuit breaker state per provider and endpoint (0 closed, 1 half-open, 2 open)",
            ["provider", "endpoint"],
            registry=self.registry,
        )
        self.lookups = Counter(
            "payments_ambiguous_lookups_total",
            "Lookups after an ambiguous PSP result, by provider and finding",
            ["provider", "finding"],
            registry=self.registry,
        )
        self.reconciled = Counter(
            "payments_reconciled_total",
            "Reconciliation actions",
            ["action"],
            registry=self.registry,
        )

        self.saga_signals = Counter(
            "payments_saga_signals_total",
            "Signals to the checkout saga that a shopper action ended, by outcome (sent, "
            "no-saga, failed: the saga's timer and its one read at the deadline decide)",
            ["outcome"],
            registry=self.registry,
        )

    def observe_psp(self, provider: str, operation: str, seconds: float) -> None:
        self.psp_latency.labels(provider, operation).observe(seconds)
