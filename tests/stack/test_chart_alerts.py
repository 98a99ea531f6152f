"""The chart's PrometheusRule: over metrics the operator really exports, accepted by promtool,
and each alert fires on the state it names (``promtool test rules`` on synthetic series).

promtool is built from its Go module (github.com/prometheus/prometheus/cmd/promtool) by
``hack/stack build`` (step ``promtool``) into the stack cache.
"""

from __future__ import annotations

import pathlib
import re
import subprocess
from typing import Any

import prometheus_client
import pytest
import yaml

from checkout_operator import metrics
from checkout_operator.replication import metrics as replication_metrics

from .test_chart_render import by_kind, template

pytestmark = pytest.mark.stack

ON = ("--set", "monitoring.prometheusRule.enabled=true")
ALERTS = {
    "CheckoutMarketDown",
    "CheckoutMarketFailedOver",
    "CheckoutReplicationLagOverBudget",
    "CheckoutReplicationLagUnknown",
    "CheckoutRegionProbeFailures",
    "CheckoutRegionNotReady",
    "CheckoutOperatorDown",
    "CheckoutOperatorNotLeading",
    "CheckoutOperatorReconcileErrors",
}
# Series of the release "co" in namespace "ops" (what the rules select), and of another pod.
OWN = 'namespace="ops",pod="co-checkout-operator-6f7d9-x1"'
STANDBY = 'namespace="ops",pod="co-checkout-operator-6f7d9-x2"'
OTHER = 'namespace="ops",pod="something-else-1"'


def groups(helm_bin: pathlib.Path) -> list[dict[str, Any]]:
    (rule,) = by_kind(template(helm_bin, *ON), "PrometheusRule")
    found: list[dict[str, Any]] = rule["spec"]["groups"]
    return found


def promtool(
    promtool_bin: pathlib.Path, cwd: pathlib.Path, *args: str
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(promtool_bin), *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )


def exported_series() -> set[str]:
    """Every series name the operator's registry can expose."""
    assert replication_metrics.REGISTRY is metrics.REGISTRY
    names: set[str] = set()
    for family in metrics.REGISTRY.collect():
        suffixes = {
            "counter": ("_total", "_created"),
            "histogram": ("_bucket", "_count", "_sum", "_created"),
        }.get(family.type, ("",))
        names |= {family.name + s for s in suffixes}
    return names


def test_every_alert_uses_series_the_operator_exports(helm_bin: pathlib.Path) -> None:
    rules = [r for g in groups(helm_bin) for r in g["rules"]]
    assert {r["alert"] for r in rules} == ALERTS
    exported = exported_series()
    assert isinstance(metrics.LEADER, prometheus_client.Gauge)
    for rule in rules:
        used = set(re.findall(r"\b(checkout_operator_[a-z_]+)\b", rule["expr"]))
        assert used or "up{" in rule["expr"], rule
        assert used <= exported, (rule["alert"], used - exported)
        # only the release's own pods: a selector on namespace and pod in every vector
        for vector in re.findall(r"\b(?:checkout_operator_[a-z_]+|up)\{([^}]*)\}", rule["expr"]):
            assert 'namespace="ops"' in vector
            assert 'pod=~"co-checkout-operator-.*"' in vector
        assert rule["labels"]["severity"] in {"critical", "warning"}
        assert rule["annotations"]["summary"]


def test_promtool_checks_the_rules(
    helm_bin: pathlib.Path, promtool_bin: pathlib.Path, tmp_path: pathlib.Path
) -> None:
    path = tmp_path / "rules.yaml"
    path.write_text(yaml.safe_dump({"groups": groups(helm_bin)}))
    done = promtool(promtool_bin, tmp_path, "check", "rules", str(path))
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"SUCCESS: {len(ALERTS)} rules found" in done.stdout, done.stdout
    # and it would refuse a broken expression
    broken = groups(helm_bin)
    broken[0]["rules"][0]["expr"] = "max by (market) (checkout_operator_market_down"
    path.write_text(yaml.safe_dump({"groups": broken}))
    done = promtool(promtool_bin, tmp_path, "check", "rules", str(path))
    assert done.returncode != 0, done.stdout


def _alert(name: str, at: str, *expected: dict[str, str]) -> dict[str, Any]:
    return {
        "eval_time": at,
        "alertname": name,
        "exp_alerts": [{"exp_labels": labels} for labels in expected],
    }


def own(metric: str, values: str, pod: str = OWN, **labels: str) -> tuple[str, str]:
    """A series of ``metric`` scraped from ``pod`` with ``labels``, and its values."""
    extra = "".join(f',{k}="{v}"' for k, v in labels.items())
    return f"{metric}{{{pod}{extra}}}", values


PROBES = "checkout_operator_probe_duration_seconds_count"
LAG = "checkout_operator_replication_lag_messages"
SERIES = [
    # FR has no writer; NL does
    own("checkout_operator_market_down", "0 1 1 1 1 1 1", fleet="eu", market="FR"),
    own("checkout_operator_market_down", "0 0 0 0 0 0 0", fleet="eu", market="NL"),
    # one market moved at minute 3
    own("checkout_operator_failovers_total", "0 0 0 1 1", fleet="eu", reason="ProbeFailures"),
    # eu-a -> eu-b lags 500 (budget 100); us-a -> eu-b lags 50
    own(LAG, "500x20", region="eu-b", peer="eu-a", topic="orders"),
    own(LAG, "50x20", region="eu-b", peer="us-a", topic="orders"),
    own("checkout_operator_replication_lag_budget_messages", "100x20", region="eu-b"),
    own("checkout_operator_replication_lag_known", "1x20", region="eu-b", peer="eu-a"),
    # probes of eu-a fail; eu-b's succeed
    own(PROBES, "0+60x20", region="eu-a", outcome="Failure"),
    own(PROBES, "0+0x20", region="eu-a", outcome="Success"),
    own(PROBES, "0+60x20", region="eu-b", outcome="Success"),
    own("checkout_operator_region_ready", "1x20", name="eu-a"),
    own(
        "checkout_operator_reconcile_errors_total",
        "0+3x20",
        kind="CheckoutRegion",
        reason="Forbidden",
    ),
    # both replicas up, neither leads; another release's pod leads (not ours)
    own("up", "1x20"),
    own("up", "1x20", pod=STANDBY),
    own("checkout_operator_leader", "0x20", lease="ops/co-checkout-operator"),
    own("checkout_operator_leader", "0x20", pod=STANDBY, lease="ops/co-checkout-operator"),
    own("checkout_operator_leader", "1x20", pod=OTHER, lease="ops/other"),
]

EXPECTED = [
    _alert("CheckoutMarketDown", "5m", {"severity": "critical", "fleet": "eu", "market": "FR"}),
    _alert("CheckoutMarketDown", "1m"),  # not yet: for 1m
    _alert(
        "CheckoutMarketFailedOver",
        "4m",
        {"severity": "warning", "fleet": "eu", "reason": "ProbeFailures"},
    ),
    _alert("CheckoutMarketFailedOver", "2m"),
    _alert(
        "CheckoutReplicationLagOverBudget",
        "10m",
        {"severity": "warning", "region": "eu-b", "peer": "eu-a"},
    ),
    _alert("CheckoutReplicationLagUnknown", "15m"),
    _alert("CheckoutRegionProbeFailures", "10m", {"severity": "warning", "region": "eu-a"}),
    _alert("CheckoutRegionNotReady", "18m"),
    _alert("CheckoutOperatorDown", "10m"),  # both up
    _alert("CheckoutOperatorNotLeading", "5m", {"severity": "critical", "namespace": "ops"}),
    _alert(
        "CheckoutOperatorReconcileErrors",
        "15m",
        {"severity": "warning", "kind": "CheckoutRegion", "reason": "Forbidden"},
    ),
]

DOWN = [
    own("up", "0x10"),
    own("up", "0x10", pod=STANDBY),
    own("up", "1x10", pod=OTHER),  # another pod being up does not count
    own("checkout_operator_leader", "1x10", lease="ops/co-checkout-operator"),
]
DOWN_EXPECTED = [
    _alert("CheckoutOperatorDown", "4m"),  # for 5m
    _alert("CheckoutOperatorDown", "8m", {"severity": "critical", "namespace": "ops"}),
    _alert("CheckoutOperatorNotLeading", "8m"),
]


def test_each_alert_fires_on_the_state_it_names(
    helm_bin: pathlib.Path, promtool_bin: pathlib.Path, tmp_path: pathlib.Path
) -> None:
    rules = groups(helm_bin)
    for group in rules:
        for rule in group["rules"]:
            rule.pop("annotations")  # their templates are checked by `promtool check rules`
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump({"groups": rules}))
    tests = [
        {
            "interval": "1m",
            "input_series": [{"series": s, "values": v} for s, v in series],
            "alert_rule_test": expected,
        }
        for series, expected in ((SERIES, EXPECTED), (DOWN, DOWN_EXPECTED))
    ]
    spec = {"rule_files": ["rules.yaml"], "evaluation_interval": "1m", "tests": tests}
    (tmp_path / "tests.yaml").write_text(yaml.safe_dump(spec))
    done = promtool(promtool_bin, tmp_path, "test", "rules", "tests.yaml")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS" in done.stdout, done.stdout
