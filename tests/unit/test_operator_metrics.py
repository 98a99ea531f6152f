"""The operator's metric families keep their names, types and labels (dashboards, alerts and
the stack tests scrape them by name), and every one is served from the operator's registry."""

from __future__ import annotations

import prometheus_client
import pytest

from checkout_operator import metrics
from checkout_operator.replication import metrics as replication_metrics

# (family, type, label names); counters are listed without the ``_total`` suffix
EXPECTED = {
    ("checkout_operator_reconcile_duration_seconds", "histogram", ("kind",)),
    ("checkout_operator_reconcile_errors", "counter", ("kind", "reason")),
    ("checkout_operator_drift_corrections", "counter", ("kind",)),
    ("checkout_operator_objects_applied", "counter", ("kind",)),
    ("checkout_operator_objects_pruned", "counter", ("kind",)),
    ("checkout_operator_region_ready", "gauge", ("namespace", "name")),
    ("checkout_operator_api_writes", "counter", ("verb", "kind")),
    ("checkout_operator_failovers", "counter", ("fleet", "reason")),
    ("checkout_operator_market_epoch", "gauge", ("fleet", "market")),
    ("checkout_operator_probe_duration_seconds", "histogram", ("region", "outcome")),
    ("checkout_operator_market_last_move_timestamp_seconds", "gauge", ("fleet", "market")),
    ("checkout_operator_market_seconds_since_last_move", "gauge", ("fleet", "market")),
    ("checkout_operator_replication_lag_messages", "gauge", ("region", "peer", "topic")),
    ("checkout_operator_replication_lag_seconds", "gauge", ("region", "peer", "topic")),
    ("checkout_operator_replication_lag_known", "gauge", ("region", "peer")),
}


def registered() -> set[tuple[str, str, tuple[str, ...]]]:
    assert replication_metrics.REGISTRY is metrics.REGISTRY
    collectors = [
        c
        for c in metrics.REGISTRY._collector_to_names
        if isinstance(
            c,
            (
                prometheus_client.Counter,
                prometheus_client.Gauge,
                prometheus_client.Histogram,
            ),
        )
    ]
    return {(c._name, c._type, tuple(c._labelnames)) for c in collectors}


def test_every_family_keeps_its_name_type_and_labels() -> None:
    got = registered()
    missing = EXPECTED - got
    assert not missing, f"changed or gone: {sorted(missing)}; registered: {sorted(got)}"


def test_the_scrape_shows_counters_with_total_and_histogram_buckets() -> None:
    metrics.RECONCILE_ERRORS.labels(kind="UnitTest", reason="UnitTest").inc()
    metrics.RECONCILE_SECONDS.labels(kind="UnitTest").observe(0.02)
    text = prometheus_client.generate_latest(metrics.REGISTRY).decode()
    assert 'checkout_operator_reconcile_errors_total{kind="UnitTest",reason="UnitTest"}' in (text)
    assert (
        'checkout_operator_reconcile_duration_seconds_bucket{kind="UnitTest",le="0.025"} 1.0'
        in (text)
    )
    assert "# TYPE checkout_operator_probe_duration_seconds histogram" in text


def test_helpers_register_on_the_served_registry() -> None:
    made = [
        metrics.counter("checkout_operator_unit_test_counter", "unit test", ["x"]),
        metrics.gauge("checkout_operator_unit_test_gauge", "unit test", ["x"]),
        metrics.histogram("checkout_operator_unit_test_seconds", "unit test", ["x"], [0.1, 1.0]),
    ]
    try:
        names = {f.name for f in metrics.REGISTRY.collect()}
        assert {
            "checkout_operator_unit_test_counter",
            "checkout_operator_unit_test_gauge",
            "checkout_operator_unit_test_seconds",
        } <= names
        with pytest.raises(ValueError, match="Duplicated"):
            metrics.gauge("checkout_operator_unit_test_gauge", "again", ["x"])
    finally:
        for collector in made:
            metrics.REGISTRY.unregister(collector)
